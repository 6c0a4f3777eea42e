"""Scale-free training targets and their inverse.

A 3D label of one view (a pose in that camera's frame, in *any* units — pseudo-labels of a
self-calibrated rig have an arbitrary global scale) becomes a target in crop pixels:

* ``x, y``: the joint's 2D position in the crop — the (distorted) projection of the label mapped
  by the crop affine;
* ``z = (Z_j - Z_root) * f_crop / Z_root``: the depth relative to the root in pixel units, where
  ``f_crop`` is the focal length in crop pixels (``mean(fx, fy)`` times the crop's scale).

Scaling a label by any ``s > 0`` changes neither the projections nor ``Z_j / Z_root``, so the
targets are identical: labels of arbitrary scale are consistent. Crop pixels are then converted to
the network's normalized volume coordinates with :func:`epipolarpose.models.from_pixels`
(``x, y`` as fractions of the crop, ``z`` as a fraction of ``depth_range`` crop widths).

The inverse, :func:`targets_to_camera`, turns a prediction back into a pose in the camera frame
given the root depth ``Z_root`` (the ground-truth root depth, as in the paper's evaluation, or 1
for a scale-free pose evaluated with N-MPJPE): ``Z_j = Z_root (1 + z_j / f_crop)`` and
``X_j = Z_j * undistort(u_j, v_j)``.
"""

from __future__ import annotations

import numpy as np

from ..models.posenet import from_pixels, to_pixels
from ..skeleton import ROOT
from ..synthetic.render import affine_scale, apply_affine, invert_affine


def _distort(xy: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """OpenCV 5-parameter distortion with per-batch coefficients: xy (..., N, 2), dist (..., 5)."""
    k1, k2, p1, p2, k3 = (dist[..., i, None] for i in range(5))
    x, y = xy[..., 0], xy[..., 1]
    r2 = x * x + y * y
    radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    return np.stack([xd, yd], -1)


def _undistort(xyd: np.ndarray, dist: np.ndarray, iterations: int = 20) -> np.ndarray:
    """Inverse of :func:`_distort` by OpenCV's fixed-point iteration, batched: (..., N, 2), (..., 5)."""
    k1, k2, p1, p2, k3 = (dist[..., i, None] for i in range(5))
    x, y = xyd[..., 0].copy(), xyd[..., 1].copy()
    for _ in range(iterations):
        r2 = x * x + y * y
        radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
        dx = 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
        dy = p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
        x = (xyd[..., 0] - dx) / radial
        y = (xyd[..., 1] - dy) / radial
    return np.stack([x, y], -1)


def _pixels(xy: np.ndarray, K: np.ndarray) -> np.ndarray:
    u = K[..., None, 0, 0] * xy[..., 0] + K[..., None, 0, 1] * xy[..., 1] + K[..., None, 0, 2]
    v = K[..., None, 1, 1] * xy[..., 1] + K[..., None, 1, 2]
    return np.stack([u, v], -1)


def crop_focal(K: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Focal length in crop pixels, ``mean(fx, fy) * scale(affine)``: (..., 3, 3), (..., 2, 3) -> (...)."""
    K = np.asarray(K, dtype=np.float64)
    return 0.5 * (K[..., 0, 0] + K[..., 1, 1]) * affine_scale(affine)


def pose_to_crop_pixels(
    poses_camera: np.ndarray, K: np.ndarray, dist: np.ndarray | None, affine: np.ndarray
) -> np.ndarray:
    """Camera-frame poses -> (u, v, z) in crop pixels (scale-free, see the module docstring).

    Args:
        poses_camera: (..., J, 3) in the camera frame, any units (NaN allowed).
        K: (..., 3, 3) intrinsics; dist: (..., 5) distortion or None; affine: (..., 2, 3) image -> crop.
    Returns:
        (..., J, 3): crop pixels ``u, v`` and root-relative depth ``z`` in crop pixels.
    """
    X = np.asarray(poses_camera, dtype=np.float64)
    K = np.asarray(K, dtype=np.float64)
    Z = X[..., 2]
    with np.errstate(invalid="ignore", divide="ignore"):
        xy = np.where((Z > 0)[..., None], X[..., :2] / Z[..., None], np.nan)
        if dist is not None:
            xy = _distort(xy, np.asarray(dist, dtype=np.float64))
        uv = apply_affine(affine, _pixels(xy, K))
        zroot = Z[..., ROOT : ROOT + 1]
        z = (Z - zroot) / zroot * crop_focal(K, affine)[..., None]
    return np.concatenate([uv, z[..., None]], -1)


def make_targets(
    poses_camera: np.ndarray,
    K: np.ndarray,
    dist: np.ndarray | None,
    affine: np.ndarray,
    input_size: int,
    *,
    depth_range: float = 1.0,
    valid: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Network targets from camera-frame 3D labels of any scale.

    Args:
        poses_camera: (..., J, 3) labels in the camera frame (any units; NaN where missing).
        K, dist, affine: (..., 3, 3), (..., 5) or None, (..., 2, 3) — see :func:`pose_to_crop_pixels`.
        input_size: crop side S of the network input (pixels).
        depth_range: the network's ``config.depth_range``.
        valid: (..., J) joints to train on (default: all finite ones).
    Returns:
        targets (..., J, 3) float32 in normalized volume coordinates (0 where masked) and mask
        (..., J, 3) bool: x, y valid where the joint is; z also needs a valid root.
    """
    px = pose_to_crop_pixels(poses_camera, K, dist, affine)
    target = from_pixels(px, input_size, depth_range)
    ok = np.isfinite(px[..., :2]).all(-1)
    if valid is not None:
        ok &= np.asarray(valid, dtype=bool)
    mask = np.repeat(ok[..., None], 3, axis=-1)
    mask[..., 2] &= ok[..., ROOT : ROOT + 1] & np.isfinite(px[..., 2])
    target = np.where(mask, target, 0.0)
    return target.astype(np.float32), mask


def keypoint_targets(
    keypoints: np.ndarray, affine: np.ndarray, input_size: int, valid: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """2D-only targets from image keypoints (z masked): (..., J, 2) pixels -> (..., J, 3), mask (..., J, 3)."""
    uv = apply_affine(affine, np.asarray(keypoints, dtype=np.float64))
    px = np.concatenate([uv, np.zeros(uv.shape[:-1] + (1,))], -1)
    target = from_pixels(px, input_size)
    ok = np.isfinite(uv).all(-1)
    if valid is not None:
        ok &= np.asarray(valid, dtype=bool)
    mask = np.stack([ok, ok, np.zeros_like(ok)], -1)
    return np.where(mask, target, 0.0).astype(np.float32), mask


def prediction_to_image(pred: np.ndarray, affine: np.ndarray, input_size: int) -> np.ndarray:
    """Predicted normalized (x, y[, z]) (..., J, 2|3) -> image pixels (..., J, 2) via the crop's inverse affine."""
    px = to_pixels(np.asarray(pred, dtype=np.float64)[..., :2], input_size)
    return apply_affine(invert_affine(affine), px)


def targets_to_camera(
    pred: np.ndarray,
    K: np.ndarray,
    dist: np.ndarray | None,
    affine: np.ndarray,
    input_size: int,
    root_depth: np.ndarray | float,
    depth_range: float = 1.0,
) -> np.ndarray:
    """Inverse of :func:`make_targets`: predictions -> poses in the camera frame.

    The predicted root depth is replaced by ``root_depth`` (the root's ``z`` is subtracted first),
    so the pose's scale is that of ``root_depth`` (mm for the ground-truth root depth; 1 for a
    scale-free pose).

    Args:
        pred: (..., J, 3) normalized volume coordinates.
        K, dist, affine: (..., 3, 3), (..., 5) or None, (..., 2, 3).
        input_size: crop side S (pixels).
        root_depth: (...) or scalar camera depth of the root.
        depth_range: the network's ``config.depth_range``.
    Returns:
        (..., J, 3) camera-frame poses in the units of ``root_depth``.
    """
    pred = np.asarray(pred, dtype=np.float64)
    K = np.asarray(K, dtype=np.float64)
    px = to_pixels(pred, input_size, depth_range)
    uv = apply_affine(invert_affine(affine), px[..., :2])
    fx, fy = K[..., None, 0, 0], K[..., None, 1, 1]
    yd = (uv[..., 1] - K[..., None, 1, 2]) / fy
    xd = (uv[..., 0] - K[..., None, 0, 2] - K[..., None, 0, 1] * yd) / fx
    xy = np.stack([xd, yd], -1)
    if dist is not None:
        xy = _undistort(xy, np.asarray(dist, dtype=np.float64))
    zrel = (px[..., 2] - px[..., ROOT : ROOT + 1, 2]) / crop_focal(K, affine)[..., None]
    Z = np.asarray(root_depth, dtype=np.float64)[..., None] * (1.0 + zrel)
    return np.concatenate([xy * Z[..., None], Z[..., None]], -1)
