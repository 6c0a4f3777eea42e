"""From detections to the observations the geometry works on: each camera's intrinsics, and the
joints undistorted once (batched) to normalized coordinates with their weights."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..camera import Camera, Rig, check_image_size, default_intrinsics
from ..errors import InputError
from ..formats import Poses2D
from ..parallel import thread_map
from ..skeleton import left_right_pairs

__all__ = [
    "NormalizedViews",
    "apply_intrinsics",
    "check_observations",
    "normalize_views",
    "normalized_observations",
    "resolve_intrinsics",
    "usable",
]


def apply_intrinsics(poses2d: Poses2D, intrinsics: Rig) -> Poses2D:
    """The detections with ``K``/``dist`` taken from ``intrinsics`` (a ``K.json`` rig, one camera
    per view: matched by name when every view's name is in it, else in order); the user's
    ``--intrinsics`` override those stored in the npz. :class:`InputError` when the counts differ
    or a camera was calibrated for another image size (:func:`~epipolarpose.camera.check_image_size`)."""
    C = poses2d.num_cameras
    if len(intrinsics) != C:
        raise InputError(
            f"intrinsics has {len(intrinsics)} cameras but the detections have {C} "
            f"({', '.join(poses2d.camera_names)}); they must match one to one, by name or in order"
        )
    names = list(poses2d.camera_names)
    cams = intrinsics.matched(names)
    for cam, name, size in zip(cams, names, poses2d.image_size):
        check_image_size(cam.image_size, size, f"intrinsics camera {cam.name!r}", name)
    K = np.stack([c.K for c in cams])
    dist = np.stack([c.dist for c in cams])
    return replace(poses2d, K=K, dist=dist, extra=dict(poses2d.extra))


def resolve_intrinsics(poses2d: Poses2D) -> tuple[Rig, bool]:
    """Cameras with intrinsics only (``R = I, t = 0``): from the detections' ``K``/``dist`` (see
    :func:`apply_intrinsics`), else :func:`~epipolarpose.camera.default_intrinsics` (60°
    across the longer image side, principal point at the image centre).

    Returns the rig and whether ``K`` was known (False: the documented default was used).
    """
    C = poses2d.num_cameras
    known = poses2d.K is not None
    cams = []
    for i in range(C):
        size = tuple(int(v) for v in poses2d.image_size[i])
        K = poses2d.K[i] if known else default_intrinsics(size)
        dist = poses2d.dist[i] if (known and poses2d.dist is not None) else np.zeros(5)
        cams.append(Camera(K=K, dist=dist, image_size=size, name=poses2d.camera_names[i]))
    return Rig(cams, units="arbitrary"), known


#: Detections farther outside the image than this fraction of its size are not the person: a
#: detector that fired on nothing, or a corrupted file (they would sit behind the camera).
OUTSIDE_MARGIN = 0.5


def usable(poses2d: Poses2D, camera: int | None = None) -> np.ndarray:
    """(C, F, J) bool: detected (finite, score > 0) and inside the image, give or take
    :data:`OUTSIDE_MARGIN` of its size; (F, J) for one ``camera`` only."""
    if camera is None:
        return np.stack([usable(poses2d, c) for c in range(poses2d.num_cameras)])
    size = poses2d.image_size[camera].astype(np.float64)
    kp = poses2d.keypoints[camera]
    with np.errstate(invalid="ignore"):
        inside = np.all((kp >= -OUTSIDE_MARGIN * size) & (kp <= (1 + OUTSIDE_MARGIN) * size), axis=-1)
    return inside & (poses2d.scores[camera] > 0)  # inside implies finite


def normalized_observations(
    poses2d: Poses2D, rig: Rig, min_score: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Undistorted normalized coordinates (C, F, J, 2) (NaN where unobserved) and weights (C, F, J)
    (the scores, 0 where unobserved, far outside the image (:func:`usable`) or below
    ``min_score``). Cameras are processed in threads."""

    def camera(c: int) -> tuple[np.ndarray, np.ndarray]:
        scores = poses2d.scores[c].astype(np.float64)
        obs = usable(poses2d, c) & (scores >= min_score)
        xn = rig[c].undistort(np.where(obs[..., None], poses2d.keypoints[c].astype(np.float64), np.nan))
        return xn, np.where(obs & np.isfinite(xn).all(-1), scores, 0.0)

    per_camera = thread_map(camera, range(poses2d.num_cameras))
    return np.stack([p[0] for p in per_camera]), np.stack([p[1] for p in per_camera])


def check_observations(poses2d: Poses2D, w: np.ndarray) -> None:
    """Raise :class:`InputError` for cameras that never see the person or no usable frames."""
    names = poses2d.camera_names
    seen = (w > 0).any(axis=(1, 2))
    for c in np.flatnonzero(~seen):
        raise InputError(
            f"camera {c} ({names[c]!r}) never sees the person: all its joints are missing (NaN), "
            "have score 0 or lie far outside the image"
        )
    if poses2d.num_cameras < 2:
        raise InputError(f"need at least 2 cameras to triangulate, got {poses2d.num_cameras}")
    usable = ((w > 0).sum(0) >= 2).any(-1)
    if not usable.any():
        raise InputError("no frame has a joint seen by two cameras: nothing can be triangulated")


@dataclass(frozen=True)
class NormalizedViews:
    """The detections as the geometry uses them.

    Attributes:
        cameras: C cameras with intrinsics only (``R = I``, ``t = 0``).
        intrinsics_known: False where the documented default ``K`` was used.
        xn: (C, F, J, 2) undistorted normalized coordinates, NaN where unobserved.
        w: (C, F, J) weights (the scores; 0 where unobserved).
        left_right: (P, 2) left/right joint pairs, from the joint names.
    """

    cameras: Rig
    intrinsics_known: bool
    xn: np.ndarray
    w: np.ndarray
    left_right: np.ndarray

    @property
    def focal(self) -> np.ndarray:
        """(C,) mean of ``fx`` and ``fy`` per camera, pixels (the pixel scale of errors)."""
        return self.cameras.K[:, [0, 1], [0, 1]].mean(1)

    def take_frames(self, frames: np.ndarray) -> NormalizedViews:
        """The same views restricted to ``frames`` (indices)."""
        return replace(self, xn=self.xn[:, frames], w=self.w[:, frames])


def normalize_views(poses2d: Poses2D, frames: np.ndarray | None = None) -> NormalizedViews:
    """Intrinsics (:func:`resolve_intrinsics`) and undistorted observations of the detections
    (of ``frames`` only, when given: undistortion is the costly part); :class:`InputError` where
    a camera never sees the person (:func:`check_observations`)."""
    cameras, known = resolve_intrinsics(poses2d)
    check_observations(poses2d, usable(poses2d))
    if frames is not None:
        poses2d = poses2d.take_frames(frames)
    xn, w = normalized_observations(poses2d, cameras)
    return NormalizedViews(cameras, known, xn, w, left_right_pairs(poses2d.joint_names))
