"""Two-view epipolar geometry: fundamental/essential matrices, their decomposition into the four
``(R, t)`` candidates, the cheirality check, and robust relative pose from pooled correspondences.

Convention (as everywhere in epipolarpose): a relative pose ``(R, t)`` maps camera 1's frame to
camera 2's, ``x2 = R @ x1 + t``; then ``E = [t]x R`` and ``x2ᵀ E x1 = 0`` for normalized
coordinates, ``F = K2⁻ᵀ E K1⁻¹`` for pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import poselib

from ..errors import InputError
from .dlt import triangulate_dlt
from .numeric import skew

__all__ = [
    "RelativePose",
    "RelativePoseOptions",
    "cheirality",
    "decompose_essential",
    "essential_from_fundamental",
    "essential_from_pose",
    "fundamental_from_pose",
    "pose_from_essential",
    "relative_pose",
    "sampson_error",
]


def essential_from_pose(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``E = [t]x R``: (..., 3, 3), (..., 3) -> (..., 3, 3)."""
    return skew(t) @ R


def fundamental_from_pose(R: np.ndarray, t: np.ndarray, K1: np.ndarray, K2: np.ndarray) -> np.ndarray:
    """``F = K2⁻ᵀ [t]x R K1⁻¹`` (3, 3), for pixels ``u2ᵀ F u1 = 0``."""
    return np.linalg.inv(K2).T @ essential_from_pose(R, t) @ np.linalg.inv(K1)


def essential_from_fundamental(F: np.ndarray, K1: np.ndarray, K2: np.ndarray) -> np.ndarray:
    """``E = K2ᵀ F K1`` projected onto the essential manifold (two equal singular values, one zero).

    Args:
        F: (..., 3, 3) fundamental matrices (pixels of camera 1 -> lines in camera 2).
        K1, K2: (..., 3, 3) intrinsics.
    Returns:
        (..., 3, 3) essential matrices with unit Frobenius norm / sqrt(2) singular values ``(1, 1, 0)``.
    """
    E = np.swapaxes(K2, -1, -2) @ F @ K1
    U, _, Vt = np.linalg.svd(E)
    return U @ (np.array([1.0, 1.0, 0.0])[:, None] * Vt)


def decompose_essential(E: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The four ``(R, t)`` that an essential matrix allows (Hartley & Zisserman, result 9.19).

    Args:
        E: (..., 3, 3).
    Returns:
        R: (..., 4, 3, 3) and t: (..., 4, 3) unit vectors, in the order ``(R1, t), (R1, -t),
        (R2, t), (R2, -t)``; ``{R1, R2}`` and ``±t`` are the sets ``cv2.decomposeEssentialMat``
        returns (the sign of ``t`` depends on the SVD's sign choice).
    """
    E = np.asarray(E, dtype=np.float64)
    U, _, Vt = np.linalg.svd(E)
    # make U and V proper rotations (E is defined up to sign, so flipping is allowed)
    U = U * np.where(np.linalg.det(U) < 0, -1.0, 1.0)[..., None, None]
    Vt = Vt * np.where(np.linalg.det(Vt) < 0, -1.0, 1.0)[..., None, None]
    W = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    R1 = U @ W @ Vt
    R2 = U @ W.T @ Vt
    t = U[..., :, 2]
    t = t / np.linalg.norm(t, axis=-1, keepdims=True)
    Rs = np.stack([R1, R1, R2, R2], axis=-3)
    ts = np.stack([t, -t, t, -t], axis=-2)
    return Rs, ts


def _triangulate_two(R: np.ndarray, t: np.ndarray, x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
    """Midpoint-free linear two-view triangulation in camera 1's frame.

    R (..., 3, 3), t (..., 3), x1/x2 (..., N, 2) normalized -> (..., N, 3)."""
    batch = np.broadcast_shapes(R.shape[:-2], x1.shape[:-2])
    P1 = np.broadcast_to(np.eye(3, 4), batch + (3, 4))
    P2 = np.broadcast_to(np.concatenate([R, t[..., None]], -1), batch + (3, 4))
    P = np.stack([P1, P2], axis=-3)[..., None, :, :, :]  # (..., 1, 2, 3, 4)
    x = np.stack([np.broadcast_to(x1, batch + x1.shape[-2:]), np.broadcast_to(x2, batch + x2.shape[-2:])], -2)
    return triangulate_dlt(P, x)


def cheirality(
    Rs: np.ndarray, ts: np.ndarray, x1: np.ndarray, x2: np.ndarray, mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Pick, among candidate poses, the one that puts most points in front of both cameras.

    Args:
        Rs: (..., K, 3, 3), ts: (..., K, 3) candidates (e.g. from :func:`decompose_essential`).
        x1, x2: (..., N, 2) normalized coordinates of the correspondences.
        mask: (..., N) bool, correspondences to count (default all finite ones).
    Returns:
        best: (...) int index of the chosen candidate; counts: (..., K) points in front of both.
    """
    x1 = np.asarray(x1, dtype=np.float64)
    x2 = np.asarray(x2, dtype=np.float64)
    ok = np.isfinite(x1).all(-1) & np.isfinite(x2).all(-1)
    if mask is not None:
        ok &= mask
    x1 = np.where(ok[..., None], x1, 0.0)[..., None, :, :]
    x2 = np.where(ok[..., None], x2, 0.0)[..., None, :, :]
    X = _triangulate_two(Rs, ts, x1, x2)  # (..., K, N, 3)
    z1 = X[..., 2]
    z2 = np.einsum("...ij,...nj->...ni", Rs, X)[..., 2] + ts[..., None, 2]
    counts = ((z1 > 0) & (z2 > 0) & ok[..., None, :]).sum(-1)
    return np.argmax(counts, axis=-1), counts


def pose_from_essential(
    E: np.ndarray, x1: np.ndarray, x2: np.ndarray, mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decompose ``E`` and keep the candidate that passes the cheirality check.

    E (..., 3, 3); x1, x2 (..., N, 2) normalized; returns R (..., 3, 3), t (..., 3) unit,
    n_front (...) number of points in front of both cameras.
    """
    Rs, ts = decompose_essential(E)
    best, counts = cheirality(Rs, ts, x1, x2, mask)
    idx = best[..., None, None, None]
    R = np.take_along_axis(Rs, np.broadcast_to(idx, best.shape + (1, 3, 3)), -3)[..., 0, :, :]
    t = np.take_along_axis(ts, np.broadcast_to(best[..., None, None], best.shape + (1, 3)), -2)[..., 0, :]
    return R, t, np.take_along_axis(counts, best[..., None], -1)[..., 0]


def sampson_error(E: np.ndarray, x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
    """First-order geometric (Sampson) distance of correspondences ``x1 <-> x2`` to the epipolar
    constraint ``x2ᵀ E x1 = 0``: with an essential matrix and normalized coordinates it is in
    normalized units, with a fundamental matrix and pixels in pixels.

    E (..., 3, 3); x1, x2 (..., N, 2) -> (..., N).
    """
    h1 = np.concatenate([x1, np.ones(x1.shape[:-1] + (1,))], -1)
    h2 = np.concatenate([x2, np.ones(x2.shape[:-1] + (1,))], -1)
    Ex1 = h1 @ np.swapaxes(E, -1, -2)  # (..., N, 3)
    Etx2 = h2 @ E
    num = np.sum(h2 * Ex1, -1)
    den = Ex1[..., 0] ** 2 + Ex1[..., 1] ** 2 + Etx2[..., 0] ** 2 + Etx2[..., 1] ** 2
    return np.abs(num) / np.sqrt(np.maximum(den, 1e-300))


@dataclass
class RelativePose:
    """A robustly estimated relative pose of a camera pair, ``x2 = R x1 + t`` (``|t| = 1``).

    Attributes:
        R: (3, 3); t: (3,) unit vector.
        inliers: (N,) bool over the correspondences passed in (Sampson distance below threshold).
        num_correspondences: correspondences offered.
        inlier_rate: inliers in front of both cameras / correspondences.
        sampson_inlier_rate: inliers / correspondences (cheirality not checked).
        parallax_deg: median angle between the two rays of inlier correspondences (a small value
            means a near-zero baseline).
        rotation_only_fraction: fraction of inliers that a pure rotation (``x2 ∝ R x1``) also explains.
    """

    R: np.ndarray
    t: np.ndarray
    inliers: np.ndarray
    num_correspondences: int
    inlier_rate: float
    sampson_inlier_rate: float
    parallax_deg: float
    rotation_only_fraction: float


@dataclass(frozen=True)
class RelativePoseOptions:
    """How :func:`relative_pose` runs its RANSAC.

    Attributes:
        method: ``"poselib"`` (5-point LO-RANSAC with non-linear refinement, default) or
            ``"magsac"`` (OpenCV USAC-MAGSAC ``findEssentialMat`` + the cheirality check).
        max_points: RANSAC runs on at most this many correspondences, spread evenly over the input
            order (pass them in frame order); inliers are then counted on all of them.
        seed: RANSAC seed (poselib), for reproducible results.
    """

    method: str = "poselib"
    max_points: int = 4000
    seed: int = 0


def relative_pose(
    x1: np.ndarray,
    x2: np.ndarray,
    threshold: float,
    options: RelativePoseOptions = RelativePoseOptions(),
    pair: str = "pair",
) -> RelativePose:
    """Robust relative pose from pooled normalized correspondences.

    Args:
        x1, x2: (N, 2) undistorted normalized coordinates in camera 1 / camera 2.
        threshold: inlier threshold in normalized units (pixels / focal length).
        options: the RANSAC (:class:`RelativePoseOptions`).
        pair: a name for error messages (e.g. ``"cameras 0 (a) and 1 (b)"``).
    Raises:
        InputError: fewer than 8 correspondences, no consistent pose, or a pure rotation
            (zero baseline) between the two cameras.
    """
    x1 = np.asarray(x1, dtype=np.float64)
    x2 = np.asarray(x2, dtype=np.float64)
    n = len(x1)
    if n < 8:
        raise InputError(
            f"{pair}: only {n} usable correspondences (joints seen by both cameras), at least 8 are "
            "needed to estimate their relative pose"
        )
    sel = np.arange(n)
    if n > options.max_points:
        sel = np.linspace(0, n - 1, options.max_points).round().astype(np.int64)
    R, t = _ransac_pose(x1[sel], x2[sel], threshold, options)
    norm = np.linalg.norm(t)
    if not np.isfinite(norm) or norm < 1e-12:
        raise InputError(f"{pair}: no consistent relative pose found among {n} correspondences")
    return _pose_statistics(R, t / norm, x1, x2, threshold)


def _ransac_pose(
    x1: np.ndarray, x2: np.ndarray, threshold: float, options: RelativePoseOptions
) -> tuple[np.ndarray, np.ndarray]:
    """RANSAC of :func:`relative_pose` on (N, 2) normalized correspondences -> R (3, 3), t (3,)."""
    if options.method == "poselib":
        cam = {"model": "PINHOLE", "width": 2, "height": 2, "params": [1.0, 1.0, 0.0, 0.0]}
        ransac = {"max_epipolar_error": threshold, "seed": options.seed}
        ransac.update(min_iterations=50, max_iterations=5000)
        pose, _ = poselib.estimate_relative_pose(x1, x2, cam, cam, ransac, {})
        return np.asarray(pose.R), np.asarray(pose.t)
    if options.method == "magsac":
        k = 1000.0  # pixel-like units for OpenCV's internal normalisation
        E, m = cv2.findEssentialMat(
            k * x1, k * x2, np.diag([k, k, 1.0]), method=cv2.USAC_MAGSAC, prob=0.9999, threshold=k * threshold
        )
        if E is None or E.shape != (3, 3):
            E = np.zeros((3, 3))
        R, t, _ = pose_from_essential(E, x1, x2, m.ravel() > 0 if m is not None else None)
        return R, t
    raise ValueError(f"unknown relative pose method {options.method!r}")


def _pose_statistics(
    R: np.ndarray, t: np.ndarray, x1: np.ndarray, x2: np.ndarray, threshold: float
) -> RelativePose:
    """Inliers, cheirality, parallax and rotation-only fraction of a pose (``|t| = 1``) over all
    (N, 2) correspondences; the last three on at most 20k inliers spread over the input."""
    inl = sampson_error(essential_from_pose(R, t), x1, x2) < threshold
    idx = np.flatnonzero(inl)
    if len(idx) > 20000:
        idx = idx[np.linspace(0, len(idx) - 1, 20000).round().astype(np.int64)]
    X = _triangulate_two(R, t, x1[idx], x2[idx])
    z2 = X @ R[2] + t[2]
    front = (X[:, 2] > 0) & (z2 > 0)
    front_rate = float(front.mean()) if len(idx) else 0.0
    h1 = np.concatenate([x1[idx], np.ones((len(idx), 1))], 1)
    h2 = np.concatenate([x2[idx], np.ones((len(idx), 1))], 1)
    r1 = h1 @ R.T
    r1 /= np.linalg.norm(r1, axis=1, keepdims=True)
    r2 = h2 / np.linalg.norm(h2, axis=1, keepdims=True)
    ang = np.arccos(np.clip(np.sum(r1 * r2, 1), -1, 1))  # rotation-only residual (radians)
    return RelativePose(
        R=R,
        t=t,
        inliers=inl,
        num_correspondences=len(x1),
        inlier_rate=float(inl.mean()) * front_rate,
        sampson_inlier_rate=float(inl.mean()),
        parallax_deg=float(np.degrees(np.median(ang))) if len(idx) else 0.0,
        rotation_only_fraction=float(np.mean(ang < 2 * threshold)) if len(idx) else 1.0,
    )
