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

What happened to every joint is recorded in ``Poses2D.extra["corrupted"]`` (C, F, J) uint8, see
:data:`CORRUPTION_CODES`. Every part draws from its own random stream (children of
``SeedSequence(seed)``), so changing one probability does not change the others' draws, and
raising a probability only adds corrupted joints.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..camera import Camera, Rig, distort_normalized
from ..errors import InputError
from ..formats import GroundTruth, Poses2D
from ..mocap import load_clips
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
    """

    sigma_px: float = 4.0
    outlier_prob: float = 0.05
    swap_prob: float = 0.02
    missing_prob: float = 0.05
    time_offsets: tuple[int, ...] | None = None
    score_clean: tuple[float, float] = (0.5, 1.0)
    score_corrupted: tuple[float, float] = (0.1, 0.9)
    box_padding: float = 0.2

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

    @classmethod
    def clean(cls, time_offsets: Sequence[int] | None = None) -> NoiseModel:
        """No noise at all (scores 1), optionally with time offsets."""
        return cls(0.0, 0.0, 0.0, 0.0, tuple(time_offsets) if time_offsets is not None else None, (1.0, 1.0))

    def to_json(self) -> str:
        return json.dumps(asdict(self))


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
        ``K``/``dist``/image sizes/camera names and ``extra["corrupted"]`` (C, F, J) uint8; and
        :class:`GroundTruth` with ``poses3d_world`` (F, J, 3), ``clip`` (F,), the rig, and extras
        ``offsets`` (C,) int64, ``keypoints2d`` (C, F, J, 2) float32 true projections of what each
        camera's frame shows (NaN where not visible) and ``noise_json``.
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
    if noise is None:
        kp, scores = clean.copy(), visible.astype(np.float64)
        code = np.where(visible, CLEAN, NOT_VISIBLE).astype(np.uint8)
    else:
        kp, scores, code = corrupt(clean, visible, noise, seed, image_size)
    poses2d = Poses2D(
        keypoints=kp,
        scores=scores,
        image_size=image_size,
        camera_names=rig.names,
        joint_names=default_joint_names(X.shape[1]),
        K=rig.K,
        dist=rig.dist,
        fps=fps,
        extra={"corrupted": code},
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
    F, J, _ = X.shape
    C = len(rig)
    offsets = np.zeros(C, dtype=np.int64) if offsets is None else np.asarray(offsets, dtype=np.int64)
    times = np.arange(F)[None, :] + offsets[:, None]  # (C, F) reference time of camera c's frame i
    in_clip = (times >= 0) & (times < F)
    Xt = X[np.clip(times, 0, F - 1)]  # (C, F, J, 3)
    clean = np.empty((C, F, J, 2))
    visible = np.empty((C, F, J), dtype=bool)
    for c, cam in enumerate(rig):
        uv, seen = _project_camera(cam, Xt[c])
        visible[c] = seen & in_clip[c, :, None]
        clean[c] = np.where(visible[c, ..., None], uv, np.nan)
    return clean, visible


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
    clean: np.ndarray, visible: np.ndarray, noise: NoiseModel, seed: int, image_size: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Corrupt true projections like a detector (steps 3-7 of the module docstring).

    Args:
        clean: (C, F, J, 2) true projections (NaN where not visible); visible: (C, F, J) bool.
        noise: the noise model.
        seed: seed of the five random streams (Gaussian, swaps, outliers, missing, scores).
        image_size: (C, 2) width and height of every camera's image.
    Returns:
        ``(keypoints (C, F, J, 2), scores (C, F, J), corrupted (C, F, J) uint8)``: missing joints
        are NaN with score 0; codes as :data:`CORRUPTION_CODES`.
    """
    C, F, J = visible.shape
    r_gauss, r_swap, r_out, r_miss, r_score = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(5)
    )
    kp = clean + noise.sigma_px * r_gauss.standard_normal(clean.shape)

    # left/right swaps need to know the sides: only for the 17 H36M joints
    h36m = J == len(H36M_JOINTS)
    perm = FLIP_PERMUTATION if h36m else np.arange(J)
    swap = r_swap.random((C, F)) < (noise.swap_prob if h36m else 0.0)
    kp[swap] = kp[swap][:, perm]
    vis = visible.copy()
    vis[swap] = vis[swap][:, perm]
    lr = np.zeros(J, dtype=bool)
    if h36m:
        lr[LEFT_JOINTS] = lr[RIGHT_JOINTS] = True
    swapped = swap[..., None] & lr

    lo, hi = _person_boxes(clean, visible, noise.box_padding, image_size)
    u_pos = r_out.random((C, F, J, 2))
    outlier = (r_out.random((C, F, J)) < noise.outlier_prob) & vis
    box_pts = lo[:, :, None] + u_pos * (hi - lo)[:, :, None]
    kp = np.where(outlier[..., None], box_pts, kp)

    missing = r_miss.random((C, F, J)) < noise.missing_prob

    code = np.full((C, F, J), CLEAN, dtype=np.uint8)
    code[swapped] = SWAPPED
    code[outlier] = OUTLIER
    code[missing] = MISSING
    code[~vis] = NOT_VISIBLE

    u_score = r_score.random((C, F, J))
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
