"""Synthetic multi-view 2D detections: 3D poses projected through a rig, with detector-like noise.

:func:`synthesize` projects world poses through every camera of a :class:`~epipolarpose.camera.Rig`
(with lens distortion) and corrupts them with a seeded :class:`NoiseModel`:

1. **time offsets** — camera ``c``'s frame ``i`` shows the motion at reference time ``i + offsets[c]``
   (reference time = the frame index of ``gt.npz``). So ``offsets`` are exactly the "frames to add
   to each camera's index" of ``labels.npz``. Frames whose time falls outside the clip are missing.
2. **visibility** — joints behind the camera or outside the image are missing.
3. **Gaussian pixel noise** of standard deviation ``sigma_px`` on both coordinates.
4. **left/right swaps** — with probability ``swap_prob`` per (camera, frame), *all* left/right pairs
   are exchanged at once (what real detectors do on back views), not per limb.
5. **gross outliers** — with probability ``outlier_prob`` per (camera, frame, joint), the joint is
   moved to a uniform position within the person's 2D box (from the true projections, padded by
   ``box_padding`` of its size on every side, clipped to the image).
6. **missing joints** — with probability ``missing_prob`` per joint: NaN coordinates, score 0.
7. **confidences** — clean joints ``~U(score_clean)``, outliers and swapped joints
   ``~U(score_corrupted)``, missing joints 0.

Before the noise, optional **detector failure modes** change *which 3D point* each camera's
detector marks (:func:`detector_points`; all off by default, see :class:`NoiseModel`): view-dependent
offsets of the derived and face joints (``derived_offset_mm``), a face hallucinated on back views
(``face_on_back``) and identity switches to a second person (``identity_switch``). ``native``
also emits a BlazePose-like set of the detector's own landmarks (``keypoints_native``). After
the noise, ``lost`` segments blank a camera's frames: its detector finds no person there.

What happened to every joint is recorded in ``Poses2D.extra["corrupted"]`` (C, F, J) uint8, see
:data:`CORRUPTION_CODES`. Every part draws from its own random stream (children of
``SeedSequence(seed)``), so changing one probability does not change the others' draws, and
raising a probability only adds corrupted joints.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..camera import Camera, Rig, distort_normalized
from ..errors import InputError
from ..formats import GroundTruth, Poses2D
from ..mocap import load_clips
from ..parallel import thread_map
from ..skeleton import FLIP_PERMUTATION, H36M_JOINTS, LEFT_JOINTS, RIGHT_JOINTS, default_joint_names

#: Codes of ``Poses2D.extra["corrupted"]``; a joint gets the highest code that applies.
CLEAN, OUTLIER, SWAPPED, MISSING, NOT_VISIBLE = 0, 1, 2, 3, 4
CORRUPTION_CODES: dict[str, int] = {
    "clean": CLEAN,  # true projection + Gaussian noise only
    "outlier": OUTLIER,  # gross outlier within the person's box
    "swapped": SWAPPED,  # a left/right joint of a swapped (camera, frame)
    "missing": MISSING,  # dropped at random (NaN, score 0)
    "not_visible": NOT_VISIBLE,  # behind the camera, outside the image, or time outside the clip
}


#: Human3.6M joints a detector does not see as one physical point: the pelvis, spine and thorax are
#: derived from other landmarks (hips, shoulders), the neck/nose and head are placed on the face or
#: the head's visible surface. They get the view-dependent offsets (``derived_offset_mm``).
DERIVED_JOINTS: tuple[int, ...] = (0, 7, 8, 9, 10)
#: The face joints (Neck/Nose, Head): hallucinated on back views with ``face_on_back``.
FACE_JOINTS: tuple[int, ...] = (9, 10)
#: A camera sees the person's back where the facing score ``s`` is below this
#: (``s = -cos`` of the angle between the person's forward direction and the camera's ray).
BACK_VIEW_S = -0.3
#: Distance (mm) of the synthetic nose in front of the head centre (the midpoint of Neck/Nose and Head).
NOSE_FORWARD_MM = 100.0
#: Native landmark sets ``NoiseModel(native=...)``: (name, Human3.6M joint or -1 for the nose).
#: ``"blazepose"``: BlazePose's names and order for the nose, shoulders, elbows, wrists, hips, knees and
#: ankles; every landmark but the nose is a Human3.6M joint that a detector sees directly.
NATIVE_SETS: dict[str, tuple[tuple[str, int], ...]] = {
    "blazepose": (
        ("nose", -1),
        ("left_shoulder", 11),
        ("right_shoulder", 14),
        ("left_elbow", 12),
        ("right_elbow", 15),
        ("left_wrist", 13),
        ("right_wrist", 16),
        ("left_hip", 4),
        ("right_hip", 1),
        ("left_knee", 5),
        ("right_knee", 2),
        ("left_ankle", 6),
        ("right_ankle", 3),
    )
}


@dataclass
class NoiseModel:
    """Detector noise; each part can be switched off by setting it to 0 / None.

    Attributes:
        sigma_px: standard deviation of the Gaussian pixel noise (per coordinate), pixels.
        outlier_prob: probability that a joint is a gross outlier (uniform within the padded box).
        swap_prob: probability that a (camera, frame) has all left/right pairs exchanged (only for
            the 17 Human3.6M joints; other joint sets get no swaps).
        missing_prob: probability that a joint is missing.
        time_offsets: per-camera offsets in frames (camera ``c``'s frame ``i`` shows reference time
            ``i + time_offsets[c]``), or None for synchronized cameras.
        score_clean: range of the uniform confidence of clean joints.
        score_corrupted: range of the uniform confidence of outliers and swapped joints.
        box_padding: padding of the outlier box on every side, as a fraction of its width/height.

    Detector failure modes (Human3.6M-17 poses; all off by default, which leaves every draw as
    it was without them). The person's **forward** direction is horizontal (world z is up),
    perpendicular to the left-minus-right hip and shoulder vectors; a camera's **facing score**
    ``s = -cos(angle(forward, ray from the camera centre to the person))`` is +1 in a front view,
    -1 in a back view and 0 in a side view (the person: the mean of hips and shoulders).

    Attributes:
        derived_offset_mm: view-dependent offset ``b`` (mm) of the derived joints
            (:data:`DERIVED_JOINTS`: pelvis, spine, thorax, neck/nose, head): each is displaced by
            ``b * s * forward`` before projection, i.e. by ``b |s|`` towards the camera. A detector
            marks the visible surface (the belly, the back, the face) and derives the pelvis or
            thorax from other landmarks, so these joints are not the same physical point in every
            view. Realistic: 40-80 mm. Also moves the native nose.
        face_on_back: in back views (``s <`` :data:`BACK_VIEW_S`) the face joints
            (:data:`FACE_JOINTS`, and the native nose) are reflected through the head centre (the
            midpoint of Neck/Nose and Head) along ``forward`` before the offset: the detector puts
            the face where it would be if the person faced the camera.
        identity_switch: segments ``(camera, start, end)`` (fractions of the frames): in camera
            frames ``round(start * F) <= i < round(end * F)`` that camera's detector follows a second person
            and reports its joints. A mapping ``{camera: fraction}`` is short for the last
            ``fraction`` of the frames, ``(camera, 1 - fraction, 1)``.
        lost: segments ``(camera, start, end)`` (fractions of the frames, as ``identity_switch``;
            a mapping ``{camera: fraction}`` is the last ``fraction``) in which that camera's
            detector finds no person: every joint (and native landmark) missing, code
            ``MISSING``. Real cameras lose a person who leaves the view or is occluded: each
            camera of a 57-frame session of ``../shared/data/footage`` sees the person in only
            53-100 % of the frames, in different parts of the clip.
        second_person: (F, J, 3) world poses of the second person; None: the same motion
            ``second_person_delay`` frames later (cyclic) displaced by ``second_person_shift_mm``.
        second_person_shift_mm: displacement of the default second person (world, mm).
        second_person_delay: time shift of the default second person (frames); None: half the clip.
        native: also emit the detector's own landmarks (``keypoints_native``, ``scores_native``,
            ``joint_names_native``): a set of :data:`NATIVE_SETS` (``"blazepose"``). The landmarks
            that are Human3.6M joints carry exactly the detections (noise, swaps, outliers,
            missing, scores) of those joints; the nose, :data:`NOSE_FORWARD_MM` in front of the
            head centre, gets the view-dependent offset, ``face_on_back`` and its own draws.
    """

    sigma_px: float = 4.0
    outlier_prob: float = 0.05
    swap_prob: float = 0.02
    missing_prob: float = 0.05
    time_offsets: tuple[int, ...] | None = None
    score_clean: tuple[float, float] = (0.5, 1.0)
    score_corrupted: tuple[float, float] = (0.1, 0.9)
    box_padding: float = 0.2
    derived_offset_mm: float = 0.0
    face_on_back: bool = False
    identity_switch: tuple[tuple[int, float, float], ...] | None = None
    lost: tuple[tuple[int, float, float], ...] | None = None
    second_person: np.ndarray | None = field(default=None, compare=False, repr=False)
    second_person_shift_mm: tuple[float, float, float] = (1500.0, 0.0, 0.0)
    second_person_delay: int | None = None
    native: str | None = None

    def __post_init__(self) -> None:
        for name in ("outlier_prob", "swap_prob", "missing_prob"):
            p = getattr(self, name)
            if not 0 <= p <= 1:
                raise InputError(f"noise: {name} must be in [0, 1], got {p}")
        if not self.sigma_px >= 0:
            raise InputError(f"noise: sigma_px must be >= 0, got {self.sigma_px}")
        if self.time_offsets is not None:
            self.time_offsets = tuple(int(o) for o in self.time_offsets)
        for name in ("score_clean", "score_corrupted"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi <= 1:
                raise InputError(f"noise: {name} must be a range within [0, 1], got ({lo}, {hi})")
        if not np.isfinite(self.derived_offset_mm):
            raise InputError(f"noise: derived_offset_mm must be finite, got {self.derived_offset_mm}")
        self.face_on_back = bool(self.face_on_back)
        if self.identity_switch is not None:
            self.identity_switch = _switch_segments(self.identity_switch, "identity_switch")
        if self.lost is not None:
            self.lost = _switch_segments(self.lost, "lost")
        if self.second_person is not None:
            self.second_person = np.asarray(self.second_person, dtype=np.float64)
        shift = np.asarray(self.second_person_shift_mm, dtype=np.float64)
        if shift.shape != (3,) or not np.isfinite(shift).all():
            raise InputError(
                f"noise: second_person_shift_mm must be 3 finite numbers, got {self.second_person_shift_mm}"
            )
        self.second_person_shift_mm = tuple(float(v) for v in shift)
        if self.native is not None and self.native not in NATIVE_SETS:
            raise InputError(
                f"noise: native must be one of {', '.join(NATIVE_SETS)} or None, got {self.native!r}"
            )

    @property
    def failure_modes(self) -> bool:
        """True when a detector failure mode or native landmarks are switched on (the detections
        are then made from :func:`detector_points`)."""
        return bool(self.derived_offset_mm or self.face_on_back or self.identity_switch or self.native)

    @classmethod
    def clean(cls, time_offsets: Sequence[int] | None = None) -> NoiseModel:
        """No noise at all (scores 1), optionally with time offsets."""
        return cls(0.0, 0.0, 0.0, 0.0, tuple(time_offsets) if time_offsets is not None else None, (1.0, 1.0))

    def to_json(self) -> str:
        d = asdict(self)
        if self.second_person is not None:
            d["second_person"] = f"array {list(self.second_person.shape)}"
        return json.dumps(d)


def _switch_segments(value, name: str) -> tuple[tuple[int, float, float], ...]:
    """``identity_switch`` or ``lost`` (``name``) as ``(camera, start, end)`` segments (a mapping
    ``{camera: fraction}`` is the last ``fraction`` of the frames)."""
    items = [(c, 1.0 - f, 1.0) for c, f in value.items()] if isinstance(value, Mapping) else list(value)
    out = []
    for item in items:
        try:
            c, lo, hi = item
            seg = (int(c), float(lo), float(hi))
        except (TypeError, ValueError):
            raise InputError(f"noise: {name} needs (camera, start, end) segments, got {item!r}") from None
        if seg[0] < 0 or not 0 <= seg[1] <= seg[2] <= 1:
            raise InputError(f"noise: {name} segment {item!r} needs a camera >= 0 and 0 <= start <= end <= 1")
        out.append(seg)
    return tuple(out)


def _lose(
    segments: tuple[tuple[int, float, float], ...],
    C: int,
    kp: np.ndarray,
    scores: np.ndarray,
    code: np.ndarray,
    native: dict,
    code_native: np.ndarray | None,
) -> None:
    """``NoiseModel.lost``, in place: every joint of the segments' camera frames (``kp`` (C, F, J, 2),
    ``scores``/``code`` (C, F, J), and the native landmarks in ``native`` with their codes) missing."""
    F = kp.shape[1]
    for c, lo, hi in segments:
        if c >= C:
            raise InputError(f"noise: lost names camera {c}, but the rig has {C} cameras")
        f = slice(int(round(lo * F)), int(round(hi * F)))
        kp[c, f] = np.nan
        scores[c, f] = 0.0
        code[c, f] = MISSING
        if native:
            native["keypoints_native"][c, f] = np.nan
            native["scores_native"][c, f] = 0.0
        if code_native is not None:
            code_native[c, f] = MISSING


def default_rig() -> Rig:
    """The bundled rig: the four Human3.6M cameras of subject S9's sessions (mm, z up)."""
    text = (resources.files("epipolarpose") / "data" / "h36m_S9.json").read_text()
    return Rig.from_json(text, source="bundled h36m_S9.json")


def _person_boxes(clean: np.ndarray, visible: np.ndarray, padding: float, image_size: np.ndarray):
    """Padded 2D boxes of the visible true projections: lower and upper corners, (C, F, 2) each
    (an empty box at the origin where nothing is visible)."""
    v = visible[..., None]
    lo = np.where(v, clean, np.inf).min(axis=2)
    hi = np.where(v, clean, -np.inf).max(axis=2)
    none = ~visible.any(axis=2)
    lo[none] = hi[none] = 0.0
    pad = padding * (hi - lo)
    limit = (image_size - 1).astype(np.float64)[:, None, :]
    return np.clip(lo - pad, 0, limit), np.clip(hi + pad, 0, limit)


def synthesize(
    poses_world: np.ndarray,
    rig: Rig,
    noise: NoiseModel | None = None,
    *,
    seed: int = 0,
    clip: str | Sequence[str] | np.ndarray | None = None,
    fps: float | None = None,
) -> tuple[Poses2D, GroundTruth]:
    """Project world poses through a rig and corrupt them like a 2D detector.

    Stages: :func:`project_views` (what each camera's frame shows), then :func:`corrupt` (the
    noise model's draws).

    Args:
        poses_world: (F, J, 3) poses in the rig's world frame and units (mm), usually H36M-17.
        rig: the cameras; projection includes their lens distortion.
        noise: the noise model; None gives exact projections (scores 1, only invisible joints
            missing, no time offsets).
        seed: seed of all random draws.
        clip: source clip of every frame, (F,) names or one name for all (default ``"clip"``).
        fps: frame rate recorded in both outputs.
    Returns:
        ``(poses2d, gt)``: :class:`Poses2D` with keypoints (C, F, J, 2), scores (C, F, J), the rig's
        ``K``/``dist``/image sizes/camera names and ``extra["corrupted"]`` (C, F, J) uint8 (with
        ``noise.native``: the native landmarks and ``extra["corrupted_native"]`` (C, F, K); with
        ``noise.identity_switch``: ``extra["person"]`` (C, F) uint8, 1 where the camera's frame
        shows the second person); and
        :class:`GroundTruth` with ``poses3d_world`` (F, J, 3), ``clip`` (F,), the rig, and extras
        ``offsets`` (C,) int64, ``keypoints2d`` (C, F, J, 2) float32 true projections of what each
        camera's frame shows (NaN where not visible; the person's true joints, without the
        failure modes) and ``noise_json``.
    """
    X = np.asarray(poses_world, dtype=np.float64)
    if X.ndim != 3 or X.shape[-1] != 3 or X.shape[0] == 0:
        raise InputError(f"poses_world must have shape (F, J, 3) with F > 0, got {X.shape}")
    if not np.isfinite(X).all():
        raise InputError("poses_world contains NaN or inf")
    clip_arr = _clip_names(clip, X.shape[0])
    offsets = _time_offsets(noise, len(rig))
    clean, visible = project_views(X, rig, offsets)
    image_size = np.array([c.image_size for c in rig], dtype=np.int64)  # (C, 2)
    extra: dict[str, np.ndarray] = {}
    native: dict = {}
    if noise is None:
        kp, scores = clean.copy(), visible.astype(np.float64)
        code = np.where(visible, CLEAN, NOT_VISIBLE).astype(np.uint8)
    elif not noise.failure_modes:
        kp, scores, code = corrupt(clean, visible, noise, seed, image_size)
    else:
        marked = detector_points(X, rig, noise, offsets)
        in_clip = _in_clip(offsets, X.shape[0])
        target, seen = _project_points(marked.points, rig, in_clip)
        kp, scores, code = corrupt(target, seen, noise, seed, image_size)
        if marked.switched is not None:
            extra["person"] = marked.switched.astype(np.uint8)
        if marked.native is not None:
            native = _native_detections(marked, kp, scores, code, target, seen, rig, in_clip, noise, seed)
            extra["corrupted_native"] = native.pop("code")
    if noise is not None and noise.lost:
        _lose(noise.lost, len(rig), kp, scores, code, native, extra.get("corrupted_native"))
    poses2d = Poses2D(
        keypoints=kp,
        scores=scores,
        image_size=image_size,
        camera_names=rig.names,
        joint_names=default_joint_names(X.shape[1]),
        K=rig.K,
        dist=rig.dist,
        fps=fps,
        extra={"corrupted": code, **extra},
        **native,
    )
    gt_extra: dict[str, np.ndarray] = {
        "offsets": offsets,
        "keypoints2d": clean.astype(np.float32),
        "noise_json": np.array(noise.to_json() if noise is not None else "null"),
    }
    if fps is not None:
        gt_extra["fps"] = np.float64(fps)
    return poses2d, GroundTruth(X, clip_arr, rig, extra=gt_extra)


def synthesize_clips(
    paths: Sequence[str | os.PathLike],
    rig: Rig,
    noise: NoiseModel | None = None,
    *,
    fps: float = 50.0,
    seed: int = 0,
    frames: int | None = None,
    progress: bool = False,
) -> tuple[Poses2D, GroundTruth]:
    """:func:`synthesize` of BVH clips (``epipolarpose synth``).

    Args:
        paths: BVH files, concatenated in time (:func:`~epipolarpose.mocap.load_clips`).
        rig: the cameras (mm).
        noise: the noise model (None: exact projections).
        fps: resample the motion to this frame rate.
        seed: seed of all random draws.
        frames: keep only the first ``frames`` frames.
        progress: progress bars on stderr (loading the clips, then projecting).
    Raises:
        InputError: a missing file, ``frames < 1``, or time offsets that do not match the rig.
    """
    for path in paths:
        if not Path(path).is_file():
            raise InputError(f"{path}: no such BVH file")
    if frames is not None and frames < 1:
        raise InputError(f"--frames must be positive, got {frames}")
    if noise is not None and noise.time_offsets is not None and len(noise.time_offsets) != len(rig):
        raise InputError(f"--time-offsets has {len(noise.time_offsets)} values for {len(rig)} cameras")
    poses, clip, _ = load_clips(list(paths), fps=fps, progress=progress)
    if frames is not None:
        poses, clip = poses[:frames], clip[:frames]
    with tqdm(
        total=1, desc=f"projecting {len(poses)} frames", unit="step", disable=not progress or None
    ) as bar:
        out = synthesize(poses, rig, noise, seed=seed, clip=clip, fps=fps)
        bar.update()
    return out


@dataclass(frozen=True)
class CorruptionStats:
    """What the noise did in one camera (fractions).

    Attributes:
        camera: camera name.
        visible: joints visible (of all joints of all frames).
        detected: joints with a score > 0 (of all).
        outlier, swapped, missing: joints with that code, of the visible ones.
    """

    camera: str
    visible: float
    detected: float
    outlier: float
    swapped: float
    missing: float


def corruption_stats(poses2d: Poses2D) -> list[CorruptionStats]:
    """Per camera, the fractions of :data:`CORRUPTION_CODES` in ``poses2d.extra["corrupted"]``
    (C, F, J), as :func:`synthesize` writes it."""
    stats = []
    for c, name in enumerate(poses2d.camera_names):
        code = poses2d.extra["corrupted"][c]
        vis = code != NOT_VISIBLE
        nv = max(int(vis.sum()), 1)
        stats.append(
            CorruptionStats(
                camera=name,
                visible=float(vis.mean()),
                detected=float((poses2d.scores[c] > 0).mean()),
                outlier=int((code == OUTLIER).sum()) / nv,
                swapped=int((code == SWAPPED).sum()) / nv,
                missing=int((code == MISSING).sum()) / nv,
            )
        )
    return stats


def _clip_names(clip: str | Sequence[str] | np.ndarray | None, num_frames: int) -> np.ndarray:
    """(F,) clip name of every frame from one name, F names or None (``"clip"``)."""
    clip_arr = np.asarray("clip" if clip is None else clip).astype(str)
    if clip_arr.ndim == 0:
        clip_arr = np.full(num_frames, str(clip_arr))
    if clip_arr.shape != (num_frames,):
        raise InputError(f"clip must have one name per frame ({num_frames}), got shape {clip_arr.shape}")
    return clip_arr


def _time_offsets(noise: NoiseModel | None, num_cameras: int) -> np.ndarray:
    """(C,) int64 time offsets of the noise model (zeros without)."""
    if noise is None or noise.time_offsets is None:
        return np.zeros(num_cameras, dtype=np.int64)
    if len(noise.time_offsets) != num_cameras:
        raise InputError(f"time offsets: {len(noise.time_offsets)} values given for {num_cameras} cameras")
    return np.asarray(noise.time_offsets, dtype=np.int64)


def project_views(
    poses_world: np.ndarray, rig: Rig, offsets: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """True projections of what each camera's frame shows.

    Args:
        poses_world: (F, J, 3) world poses, the rig's units.
        rig: C cameras (projection with lens distortion).
        offsets: (C,) camera ``c``'s frame ``i`` shows time ``i + offsets[c]`` (default zeros).
    Returns:
        ``(clean, visible)``: (C, F, J, 2) pixels, NaN where not visible, and (C, F, J) bool:
        in front of the camera, inside the image and near the field of view, at a time inside
        the clip.
    """
    X = np.asarray(poses_world, dtype=np.float64)
    F = X.shape[0]
    offsets = np.zeros(len(rig), dtype=np.int64) if offsets is None else np.asarray(offsets, dtype=np.int64)
    return _project_points(X[_times(offsets, F)], rig, _in_clip(offsets, F))


def _times(offsets: np.ndarray, num_frames: int) -> np.ndarray:
    """(C, F) reference time of camera c's frame i, clipped to the clip."""
    return np.clip(np.arange(num_frames)[None, :] + offsets[:, None], 0, num_frames - 1)


def _in_clip(offsets: np.ndarray, num_frames: int) -> np.ndarray:
    """(C, F) camera c's frame i shows a time inside the clip."""
    times = np.arange(num_frames)[None, :] + offsets[:, None]
    return (times >= 0) & (times < num_frames)


def _project_points(Xt: np.ndarray, rig: Rig, in_clip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-camera world points (C, F, J, 3) -> pixels (C, F, J, 2), NaN where not visible, and
    (C, F, J) visibility (in front, inside the image, near the field of view, time in the clip)."""
    C, F, J, _ = Xt.shape
    clean = np.empty((C, F, J, 2))
    visible = np.empty((C, F, J), dtype=bool)

    def one(c: int) -> None:  # cameras in threads (numpy releases the GIL)
        uv, seen = _project_camera(rig[c], Xt[c])
        visible[c] = seen & in_clip[c, :, None]
        clean[c] = np.where(visible[c, ..., None], uv, np.nan)

    thread_map(one, range(C))
    return clean, visible


@dataclass
class MarkedPoints:
    """What each camera's detector marks in 3D (:func:`detector_points`).

    Attributes:
        points: (C, F, J, 3) world points marked as the joints in camera c's frame i.
        native: (C, F, K, 3) world points of the native landmarks, or None.
        native_names: K names.
        native_joints: (K,) the Human3.6M joint of every native landmark (-1: none, the nose).
        switched: (C, F) bool, the frame shows the second person; None without identity switches.
        facing: (C, F) the facing score ``s`` (+1 front view, -1 back view) of the person shown.
        forward: (C, F, 3) unit forward direction of the person shown (0 where undefined).
    """

    points: np.ndarray
    native: np.ndarray | None
    native_names: list[str]
    native_joints: np.ndarray
    switched: np.ndarray | None
    facing: np.ndarray
    forward: np.ndarray


def facing_directions(poses: np.ndarray) -> np.ndarray:
    """(..., 3) unit forward directions of (..., 17, 3) Human3.6M poses in a z-up world: horizontal,
    perpendicular to the left-minus-right hip and shoulder vectors (zero where those are vertical)."""
    left = (poses[..., 4, :] - poses[..., 1, :]) + (poses[..., 11, :] - poses[..., 14, :])
    forward = np.cross(left, np.array([0.0, 0.0, 1.0]))  # left x up
    forward[..., 2] = 0.0
    n = np.linalg.norm(forward, axis=-1, keepdims=True)
    return np.where(n > 1e-9, forward / np.maximum(n, 1e-12), 0.0)


def detector_points(
    poses_world: np.ndarray, rig: Rig, noise: NoiseModel, offsets: np.ndarray | None = None
) -> MarkedPoints:
    """The 3D points each camera's detector marks with the noise model's failure modes (batched).

    Camera c's frame i shows reference time ``i + offsets[c]`` (as :func:`project_views`), of the
    second person where ``noise.identity_switch`` says so; the derived and face joints move with
    the view (``derived_offset_mm``, ``face_on_back``; see :class:`NoiseModel`).

    Args:
        poses_world: (F, J, 3) world poses (z up, mm); Human3.6M-17 when the offsets, the face or
            native landmarks are asked for.
        rig: C cameras; noise: the noise model; offsets: (C,) time offsets (default zeros).
    Returns:
        :class:`MarkedPoints`.
    """
    X = np.asarray(poses_world, dtype=np.float64)
    F, J, _ = X.shape
    C = len(rig)
    offsets = np.zeros(C, dtype=np.int64) if offsets is None else np.asarray(offsets, dtype=np.int64)
    times = _times(offsets, F)
    P = X[times]  # (C, F, J, 3)
    switched = None
    if noise.identity_switch:
        switched = _switch_mask(noise, C, F)
        P = np.where(switched[..., None, None], _second_person(X, noise)[times], P)
    names = [n for n, _ in NATIVE_SETS[noise.native]] if noise.native else []
    native_joints = np.array(
        [j for _, j in NATIVE_SETS[noise.native]] if noise.native else [], dtype=np.int64
    )
    needs_body = bool(noise.derived_offset_mm or noise.face_on_back or noise.native)
    if needs_body and J != len(H36M_JOINTS):
        raise InputError(
            f"noise: derived_offset_mm, face_on_back and native need Human3.6M-17 poses, got {J} joints"
        )
    forward = np.zeros((C, F, 3))
    facing = np.zeros((C, F))
    if J == len(H36M_JOINTS):
        forward = facing_directions(P)
        centre = P[..., [1, 4, 11, 14], :].mean(-2)  # (C, F, 3)
        ray = centre - rig.centers[:, None, :]
        facing = -np.einsum("cfi,cfi->cf", forward, ray) / np.maximum(np.linalg.norm(ray, axis=-1), 1e-12)
    if not needs_body:
        return MarkedPoints(P, None, names, native_joints, switched, facing, forward)

    b = float(noise.derived_offset_mm)
    shift = (b * facing)[..., None] * forward  # (C, F, 3), towards the camera
    back = (facing < BACK_VIEW_S) & noise.face_on_back  # (C, F)
    head = 0.5 * (P[..., 9, :] + P[..., 10, :])  # (C, F, 3) head centre

    def reflect(pts: np.ndarray) -> np.ndarray:
        """Points (C, F, K, 3) reflected through the head centre along forward in back views."""
        along = np.einsum("cfki,cfi->cfk", pts - head[:, :, None], forward)
        return np.where(back[..., None, None], pts - 2 * along[..., None] * forward[:, :, None], pts)

    points = P.copy()
    derived = list(DERIVED_JOINTS)
    points[..., derived, :] += shift[:, :, None]
    face = list(FACE_JOINTS)
    points[..., face, :] = reflect(P[..., face, :]) + shift[:, :, None]
    native = None
    if noise.native:
        native = P[..., np.maximum(native_joints, 0), :].copy()
        nose = native_joints < 0
        nose_pts = (head + NOSE_FORWARD_MM * forward)[:, :, None]
        native[..., nose, :] = (
            reflect(np.broadcast_to(nose_pts, (C, F, int(nose.sum()), 3))) + shift[:, :, None]
        )
    return MarkedPoints(points, native, names, native_joints, switched, facing, forward)


def _switch_mask(noise: NoiseModel, num_cameras: int, num_frames: int) -> np.ndarray:
    """(C, F) bool: camera c's frame i shows the second person."""
    mask = np.zeros((num_cameras, num_frames), dtype=bool)
    i = np.arange(num_frames)
    for c, lo, hi in noise.identity_switch or ():
        if c >= num_cameras:
            raise InputError(
                f"noise: identity_switch names camera {c}, but the rig has {num_cameras} cameras"
            )
        mask[c] |= (i >= round(lo * num_frames)) & (i < round(hi * num_frames))
    return mask


def _second_person(X: np.ndarray, noise: NoiseModel) -> np.ndarray:
    """(F, J, 3) world poses of the second person."""
    if noise.second_person is not None:
        if noise.second_person.shape != X.shape or not np.isfinite(noise.second_person).all():
            raise InputError(
                f"noise: second_person must be finite with the poses' shape {X.shape}, got {noise.second_person.shape}"
            )
        return noise.second_person
    F = X.shape[0]
    delay = F // 2 if noise.second_person_delay is None else int(noise.second_person_delay)
    return X[(np.arange(F) + delay) % F] + np.asarray(noise.second_person_shift_mm)


def _native_detections(
    marked: MarkedPoints,
    kp: np.ndarray,
    scores: np.ndarray,
    code: np.ndarray,
    target: np.ndarray,
    seen: np.ndarray,
    rig: Rig,
    in_clip: np.ndarray,
    noise: NoiseModel,
    seed: int,
) -> dict:
    """The native landmarks: the detections of their Human3.6M joints, and for the others (the
    nose) their own projection and draws (outliers within the person's box of the joints)."""
    j = marked.native_joints
    kp_n, sc_n, code_n = (
        kp[:, :, np.maximum(j, 0)],
        scores[:, :, np.maximum(j, 0)],
        code[:, :, np.maximum(j, 0)],
    )
    own = j < 0
    if own.any():
        assert marked.native is not None
        clean_o, vis_o = _project_points(marked.native[:, :, own], rig, in_clip)
        image_size = np.array([c.image_size for c in rig], dtype=np.int64)
        boxes = _person_boxes(target, seen, noise.box_padding, image_size)
        k, s, c = corrupt(clean_o, vis_o, noise, (seed, 1), image_size, boxes=boxes)
        kp_n[:, :, own], sc_n[:, :, own], code_n[:, :, own] = k, s, c
    return {
        "keypoints_native": kp_n,
        "scores_native": sc_n,
        "joint_names_native": list(marked.native_names),
        "code": code_n,
    }


def _project_camera(cam: Camera, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World points (..., 3) -> pixels (..., 2) with distortion, and where they are visible."""
    Xc = cam.world_to_camera(X)
    z = Xc[..., 2]
    front = z > 1e-6
    with np.errstate(invalid="ignore", divide="ignore"):
        xy = Xc[..., :2] / np.where(front, z, np.nan)[..., None]
    # distortion polynomials fold far-away points back into the image: also require the
    # undistorted ray to be near the field of view (1.5x the image half-diagonal)
    w, h = cam.image_size
    r_max = 1.5 * np.hypot(w, h) / min(cam.K[0, 0], cam.K[1, 1])
    with np.errstate(invalid="ignore"):
        near = np.einsum("...i,...i->...", xy, xy) < r_max**2
    uv = cam.normalized_to_pixels(distort_normalized(xy, cam.dist) if np.any(cam.dist) else xy)
    with np.errstate(invalid="ignore"):
        inside = (uv[..., 0] >= 0) & (uv[..., 0] <= w - 1) & (uv[..., 1] >= 0) & (uv[..., 1] <= h - 1)
    return uv, inside & near


def corrupt(
    clean: np.ndarray,
    visible: np.ndarray,
    noise: NoiseModel,
    seed: int | Sequence[int],
    image_size: np.ndarray,
    *,
    boxes: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Corrupt true projections like a detector (steps 3-7 of the module docstring).

    Args:
        clean: (C, F, J, 2) true projections (NaN where not visible); visible: (C, F, J) bool.
        noise: the noise model.
        seed: seed of the five random streams (Gaussian, swaps, outliers, missing, scores).
        image_size: (C, 2) width and height of every camera's image.
        boxes: the outlier boxes' lower and upper corners (C, F, 2) each; default: the padded
            boxes of ``clean`` (given for landmarks drawn apart from the joints of their person).
    Returns:
        ``(keypoints (C, F, J, 2), scores (C, F, J), corrupted (C, F, J) uint8)``: missing joints
        are NaN with score 0; codes as :data:`CORRUPTION_CODES`.
    """
    C, F, J = visible.shape
    r_gauss, r_swap, r_out, r_miss, r_score = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(5)
    )
    # the five streams are independent: drawn in threads (each in its own order, so the draws
    # do not depend on the threads)
    draws = thread_map(
        lambda f: f(),
        [
            lambda: r_gauss.standard_normal(clean.shape),
            lambda: r_swap.random((C, F)),
            lambda: (r_out.random((C, F, J, 2)), r_out.random((C, F, J))),
            lambda: r_miss.random((C, F, J)),
            lambda: r_score.random((C, F, J)),
        ],
    )
    gauss, u_swap, (u_pos, u_out), u_miss, u_score = draws
    kp = gauss
    kp *= noise.sigma_px
    kp += clean

    # left/right swaps need to know the sides: only for the 17 H36M joints
    h36m = J == len(H36M_JOINTS)
    perm = FLIP_PERMUTATION if h36m else np.arange(J)
    swap = u_swap < (noise.swap_prob if h36m else 0.0)
    kp[swap] = kp[swap][:, perm]
    vis = visible.copy()
    vis[swap] = vis[swap][:, perm]
    lr = np.zeros(J, dtype=bool)
    if h36m:
        lr[LEFT_JOINTS] = lr[RIGHT_JOINTS] = True
    swapped = swap[..., None] & lr

    lo, hi = _person_boxes(clean, visible, noise.box_padding, image_size) if boxes is None else boxes
    outlier = (u_out < noise.outlier_prob) & vis
    box_pts = lo[:, :, None] + u_pos * (hi - lo)[:, :, None]
    kp = np.where(outlier[..., None], box_pts, kp)

    missing = u_miss < noise.missing_prob

    code = np.full((C, F, J), CLEAN, dtype=np.uint8)
    code[swapped] = SWAPPED
    code[outlier] = OUTLIER
    code[missing] = MISSING
    code[~vis] = NOT_VISIBLE

    lo_c, hi_c = noise.score_clean
    lo_b, hi_b = noise.score_corrupted
    scores = np.where(
        (code == OUTLIER) | (code == SWAPPED),
        lo_b + u_score * (hi_b - lo_b),
        lo_c + u_score * (hi_c - lo_c),
    )
    observed = code < MISSING
    scores = np.where(observed, scores, 0.0)
    kp = np.where(observed[..., None], kp, np.nan)
    return kp, scores, code
