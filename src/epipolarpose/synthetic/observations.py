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
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib import resources

import numpy as np

from ..camera import Rig, distort_normalized
from ..errors import InputError
from ..formats import GroundTruth, Poses2D
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
    F, J, _ = X.shape
    C = len(rig)
    if clip is None:
        clip = "clip"
    clip_arr = np.asarray(clip).astype(str)
    if clip_arr.ndim == 0:
        clip_arr = np.full(F, str(clip_arr))
    if clip_arr.shape != (F,):
        raise InputError(f"clip must have one name per frame ({F}), got shape {clip_arr.shape}")

    offsets = np.zeros(C, dtype=np.int64)
    if noise is not None and noise.time_offsets is not None:
        if len(noise.time_offsets) != C:
            raise InputError(f"time offsets: {len(noise.time_offsets)} values given for {C} cameras")
        offsets = np.asarray(noise.time_offsets, dtype=np.int64)

    # --- true projections of what each camera's frame shows -------------------------------
    times = np.arange(F)[None, :] + offsets[:, None]  # (C, F) reference time of camera c's frame i
    in_clip = (times >= 0) & (times < F)
    Xt = X[np.clip(times, 0, F - 1)]  # (C, F, J, 3)
    image_size = np.array([c.image_size for c in rig], dtype=np.int64)  # (C, 2)
    clean = np.empty((C, F, J, 2))
    visible = np.empty((C, F, J), dtype=bool)
    for c, cam in enumerate(rig):
        Xc = cam.world_to_camera(Xt[c])
        z = Xc[..., 2]
        front = z > 1e-6
        with np.errstate(invalid="ignore", divide="ignore"):
            xy = Xc[..., :2] / np.where(front, z, np.nan)[..., None]
        # distortion polynomials fold far-away points back into the image: also require the
        # undistorted ray to be near the field of view (1.5x the image half-diagonal)
        w, h = image_size[c]
        r_max = 1.5 * np.hypot(w, h) / min(cam.K[0, 0], cam.K[1, 1])
        with np.errstate(invalid="ignore"):
            near = np.einsum("...i,...i->...", xy, xy) < r_max**2
        uv = cam.normalized_to_pixels(distort_normalized(xy, cam.dist) if np.any(cam.dist) else xy)
        with np.errstate(invalid="ignore"):
            inside = (uv[..., 0] >= 0) & (uv[..., 0] <= w - 1) & (uv[..., 1] >= 0) & (uv[..., 1] <= h - 1)
        visible[c] = inside & near & in_clip[c, :, None]
        clean[c] = np.where(visible[c, ..., None], uv, np.nan)

    code = np.where(visible, CLEAN, NOT_VISIBLE).astype(np.uint8)
    kp = clean.copy()
    scores = visible.astype(np.float64)
    if noise is not None:
        r_gauss, r_swap, r_out, r_miss, r_score = (
            np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(5)
        )
        kp = kp + noise.sigma_px * r_gauss.standard_normal(kp.shape)

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

    poses2d = Poses2D(
        keypoints=kp,
        scores=scores,
        image_size=image_size,
        camera_names=rig.names,
        joint_names=default_joint_names(J),
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
    gt = GroundTruth(X, clip_arr, rig, extra=gt_extra)
    return poses2d, gt
