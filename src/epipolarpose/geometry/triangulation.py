"""Triangulation, batched over points: confidence-weighted DLT, Hartley–Sturm optimal two-view
triangulation, robust multi-view triangulation (view rejection, left/right swap repair), vector
median.

Views are the second-to-last axis of the 2D inputs: ``x`` is ``(..., C, 2)`` and projection
matrices ``(..., C, 3, 4)`` (broadcast, so one rig's ``(C, 3, 4)`` serves every point).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..camera import Rig
from ..skeleton import FLIP_PERMUTATION, LEFT_RIGHT_PAIRS
from . import single_threaded


# ------------------------------------------------------------------------------------------------
# linear triangulation
# ------------------------------------------------------------------------------------------------
def dlt_normal_matrices(P: np.ndarray, x: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    """Per-view 4x4 normal-equation matrices ``AᵀA`` of the DLT rows of every view.

    Args:
        P: (..., C, 3, 4) projection matrices.
        x: (..., C, 2) image points (same coordinates as ``P``); NaN where missing.
        w: (..., C) non-negative weights (0 = missing). Default: 1 where ``x`` is finite.
    Returns:
        (..., C, 4, 4): sum them over the view axis (any subset of views) and solve with
        :func:`solve_normal`.
    """
    x = np.asarray(x, dtype=np.float64)
    ok = np.isfinite(x).all(-1)
    w = ok.astype(np.float64) if w is None else np.where(ok, np.asarray(w, dtype=np.float64), 0.0)
    x = np.where(ok[..., None], x, 0.0)
    # rows: x * P[2] - P[0], y * P[2] - P[1]  -> (..., C, 2, 4)
    A = x[..., :, None] * P[..., 2:3, :] - P[..., :2, :]
    A = A * w[..., None, None]
    return np.einsum("...ki,...kj->...ij", A, A)


def solve_normal(M: np.ndarray) -> np.ndarray:
    """Solve summed DLT normal equations ``M`` (..., 4, 4) (symmetric) for the point (..., 3).

    Fixes the homogeneous coordinate to 1 and solves the symmetric 3x3 system by its adjugate
    (measured >12x faster than a batched ``eigh`` of the 4x4 matrices, and the same point for points
    at finite distance). NaN where singular.
    """
    i, j = np.array(_IDX9).T
    return _solve9(M[..., i, j])


def triangulate_dlt(
    P: np.ndarray, x: np.ndarray, w: np.ndarray | None = None, reweight: int = 1
) -> np.ndarray:
    """Confidence-weighted linear triangulation from any number of views.

    Each view adds the rows ``w (x P₃ - P₁), w (y P₃ - P₂)``; ``reweight`` further passes divide
    them by the view's depth of the previous estimate, which turns the algebraic error into the
    (weighted) reprojection error to first order.

    Args:
        P: (..., C, 3, 4) projection matrices (e.g. ``[R | t]`` with normalized coordinates).
        x: (..., C, 2) points; NaN where missing.
        w: (..., C) weights, 0 where missing (default 1).
        reweight: number of depth-reweighting passes.
    Returns:
        (..., 3) points; NaN where fewer than two views have weight > 0.
    """
    P = np.asarray(P, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    ok = np.isfinite(x).all(-1)
    w = ok.astype(np.float64) if w is None else np.where(ok, np.asarray(w, dtype=np.float64), 0.0)
    # balance the homogeneous coordinate against the translation's scale
    s = max(float(np.abs(P[..., 3]).max()), 1e-12) if P.size else 1.0
    Ps = P * np.array([1.0, 1.0, 1.0, 1.0 / s])
    X = solve_normal(dlt_normal_matrices(Ps, x, w).sum(-3))
    for _ in range(reweight):
        z = np.einsum("...cj,...j->...c", Ps[..., 2, :3], X)[...] + Ps[..., 2, 3]
        good = np.isfinite(z) & (z > 0)
        wz = np.where(good, w / np.where(good, z, 1.0), w)
        Xn = solve_normal(dlt_normal_matrices(Ps, x, wz).sum(-3))
        X = np.where(np.isfinite(Xn), Xn, X)
    X = X * s
    X[(w > 0).sum(-1) < 2] = np.nan
    return X


def project_points(P: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Project points with projection matrices: P (..., 3, 4), X (..., 3) -> (..., 2)."""
    h = np.einsum("...ij,...j->...i", P[..., :3], X) + P[..., 3]
    return h[..., :2] / h[..., 2:3]


def reprojection_errors(rig: Rig, X: np.ndarray, keypoints: np.ndarray, distort: bool = True) -> np.ndarray:
    """Pixel distance between the projections of ``X`` and the detections.

    Args:
        rig: C cameras.
        X: (..., 3) world points.
        keypoints: (C, ..., 2) pixels (distorted, as detected).
    Returns:
        (C, ...) pixels, NaN where either is missing.
    """
    uv = rig.project(X, distort=distort)
    return np.linalg.norm(uv - keypoints, axis=-1)


# ------------------------------------------------------------------------------------------------
# Hartley–Sturm optimal two-view triangulation
# ------------------------------------------------------------------------------------------------
def _pmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Batched polynomial product, coefficients in increasing powers: (N, m), (N, n) -> (N, m+n-1)."""
    out = np.zeros((a.shape[0], a.shape[1] + b.shape[1] - 1))
    for i in range(a.shape[1]):
        out[:, i : i + b.shape[1]] += a[:, i : i + 1] * b
    return out


def fundamental_from_projections(P1: np.ndarray, P2: np.ndarray) -> np.ndarray:
    """``F`` with ``x2ᵀ F x1 = 0`` from two (3, 4) projection matrices (H&Z eq. 9.1)."""
    from .epipolar import skew

    _, _, Vt = np.linalg.svd(P1)
    C1 = Vt[-1]
    e2 = P2 @ C1
    return skew(e2) @ P2 @ np.linalg.pinv(P1)


def correct_matches(F: np.ndarray, x1: np.ndarray, x2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hartley–Sturm optimal correction: the closest pair ``(x̂1, x̂2)`` (sum of squared image
    distances) that satisfies ``x̂2ᵀ F x̂1 = 0`` exactly. Batched; same answer as
    ``cv2.correctMatches``.

    Args:
        F: (3, 3). x1, x2: (N, 2).
    Returns:
        corrected x1, x2, each (N, 2).
    """
    x1 = np.asarray(x1, dtype=np.float64).reshape(-1, 2)
    x2 = np.asarray(x2, dtype=np.float64).reshape(-1, 2)
    n = len(x1)
    _, _, Vt = np.linalg.svd(F)
    e1o = Vt[-1]  # F e1 = 0
    U, _, _ = np.linalg.svd(F)
    e2o = U[:, -1]  # e2ᵀ F = 0
    # T moves each point to the origin: T = [[1,0,-x],[0,1,-y],[0,0,1]]
    e1 = np.stack([e1o[0] - x1[:, 0] * e1o[2], e1o[1] - x1[:, 1] * e1o[2], np.full(n, e1o[2])], -1)
    e2 = np.stack([e2o[0] - x2[:, 0] * e2o[2], e2o[1] - x2[:, 1] * e2o[2], np.full(n, e2o[2])], -1)
    e1 /= np.linalg.norm(e1[:, :2], axis=1, keepdims=True)
    e2 /= np.linalg.norm(e2[:, :2], axis=1, keepdims=True)

    def rot(e: np.ndarray) -> np.ndarray:
        z, o = np.zeros(n), np.ones(n)
        return np.stack(
            [
                np.stack([e[:, 0], e[:, 1], z], -1),
                np.stack([-e[:, 1], e[:, 0], z], -1),
                np.stack([z, z, o], -1),
            ],
            -2,
        )

    def tinv(x: np.ndarray) -> np.ndarray:
        T = np.broadcast_to(np.eye(3), (n, 3, 3)).copy()
        T[:, :2, 2] = x
        return T

    R1, R2 = rot(e1), rot(e2)
    T1i, T2i = tinv(x1), tinv(x2)
    F2 = R2 @ np.swapaxes(T2i, 1, 2) @ F @ T1i @ np.swapaxes(R1, 1, 2)
    f1, f2 = e1[:, 2], e2[:, 2]
    a, b, c, d = F2[:, 1, 1], F2[:, 1, 2], F2[:, 2, 1], F2[:, 2, 2]
    p = np.stack([b, a], -1)  # at + b
    q = np.stack([d, c], -1)  # ct + d
    s = _pmul(p, p) + (f2**2)[:, None] * _pmul(q, q)  # degree 2
    g1 = _pmul(np.stack([np.zeros(n), np.ones(n)], -1), _pmul(s, s))  # t s², degree 5
    u = np.stack([np.ones(n), np.zeros(n), f1**2], -1)  # 1 + f1² t²
    g2 = ((a * d - b * c)[:, None]) * _pmul(_pmul(u, u), _pmul(p, q))  # degree 6
    g = np.concatenate([g1, np.zeros((n, 1))], 1) - g2  # (n, 7), increasing powers

    # roots of every polynomial via companion-matrix eigenvalues (degree 6; lower degree rows
    # fall back to np.roots)
    lead = g[:, 6]
    big = np.abs(lead) > 1e-12 * np.maximum(np.abs(g).max(1), 1e-300)
    roots = np.full((n, 6), np.nan, dtype=np.complex128)
    if big.any():
        m = g[big] / lead[big, None]
        comp = np.zeros((int(big.sum()), 6, 6))
        comp[:, 1:, :-1] = np.eye(5)
        comp[:, :, -1] = -m[:, :6]
        roots[big] = np.linalg.eigvals(comp)
    for i in np.flatnonzero(~big):
        r = np.roots(g[i, ::-1])
        roots[i, : len(r)] = r
    # every real t is a feasible pair of epipolar lines: evaluate the cost at the real parts of all
    # roots (harmless for complex ones) and at t = inf, keep the cheapest
    t = roots.real
    pt, qt = a[:, None] * t + b[:, None], c[:, None] * t + d[:, None]
    cost = t**2 / (1 + (f1**2)[:, None] * t**2) + qt**2 / (pt**2 + (f2**2)[:, None] * qt**2)
    cost = np.where(np.isfinite(cost), cost, np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        cost_inf = np.where(f1 != 0, 1 / f1**2, np.inf) + c**2 / (a**2 + f2**2 * c**2)
    k = np.argmin(cost, 1)
    tbest = t[np.arange(n), k]
    use_inf = cost_inf < cost[np.arange(n), k]
    tb = np.where(use_inf, 0.0, tbest)
    # lines through the origin-shifted points' optimal epipolar lines
    l1 = np.where(
        use_inf[:, None],
        np.stack([f1, np.zeros(n), -np.ones(n)], -1),
        np.stack([tb * f1, np.ones(n), -tb], -1),
    )
    l2 = np.where(
        use_inf[:, None],
        np.stack([-f2 * c, a, c], -1),
        np.stack([-f2 * (c * tb + d), a * tb + b, c * tb + d], -1),
    )

    def foot(line: np.ndarray) -> np.ndarray:
        lam, mu, nu = line[:, 0], line[:, 1], line[:, 2]
        return np.stack([-lam * nu, -mu * nu, lam**2 + mu**2], -1)

    h1 = np.einsum("nij,nj->ni", T1i @ np.swapaxes(R1, 1, 2), foot(l1))
    h2 = np.einsum("nij,nj->ni", T2i @ np.swapaxes(R2, 1, 2), foot(l2))
    return h1[:, :2] / h1[:, 2:3], h2[:, :2] / h2[:, 2:3]


def triangulate_optimal(
    P1: np.ndarray, P2: np.ndarray, x1: np.ndarray, x2: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Optimal (Hartley–Sturm, "polynomial") two-view triangulation, batched over points.

    Args:
        P1, P2: (3, 4) projection matrices; x1, x2: (N, 2) points in the same coordinates.
    Returns:
        X (N, 3), corrected x1 (N, 2), corrected x2 (N, 2). NaN rows where an input is NaN.
    """
    x1 = np.asarray(x1, dtype=np.float64).reshape(-1, 2)
    x2 = np.asarray(x2, dtype=np.float64).reshape(-1, 2)
    ok = np.isfinite(x1).all(1) & np.isfinite(x2).all(1)
    X = np.full((len(x1), 3), np.nan)
    c1 = np.full_like(x1, np.nan)
    c2 = np.full_like(x2, np.nan)
    if ok.any():
        F = fundamental_from_projections(P1, P2)
        c1[ok], c2[ok] = correct_matches(F, x1[ok], x2[ok])
        X[ok] = triangulate_dlt(np.stack([P1, P2]), np.stack([c1[ok], c2[ok]], 1), reweight=0)
    return X, c1, c2


# ------------------------------------------------------------------------------------------------
# robust multi-view triangulation
# ------------------------------------------------------------------------------------------------
def vector_median(points: np.ndarray, axis: int = -2, iterations: int = 50, eps: float = 1e-9) -> np.ndarray:
    """Geometric median (the point minimising the sum of Euclidean distances; Weiszfeld) of the
    vectors along ``axis``, ignoring NaN rows.

    Args:
        points: (..., M, D) with the M candidates on ``axis`` (default -2).
    Returns:
        (..., D); NaN where all candidates are NaN.
    """
    x = np.moveaxis(np.asarray(points, dtype=np.float64), axis, -2)
    ok = np.isfinite(x).all(-1)
    xz = np.where(ok[..., None], x, 0.0)
    cnt = ok.sum(-1)
    y = xz.sum(-2) / np.maximum(cnt, 1)[..., None]
    for _ in range(iterations):
        d = np.linalg.norm(xz - y[..., None, :], axis=-1)
        wgt = np.where(ok, 1.0 / np.maximum(d, eps), 0.0)
        y_new = (wgt[..., None] * xz).sum(-2) / np.maximum(wgt.sum(-1), 1e-300)[..., None]
        if np.allclose(y_new, y, atol=0, rtol=1e-12):
            y = y_new
            break
        y = y_new
    y[cnt == 0] = np.nan
    return y


# compact normal equations: the 9 entries of the symmetric 4x4 AᵀA that the solve needs
_IDX9 = ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2), (0, 3), (1, 3), (2, 3))


def _solve9(m: np.ndarray) -> np.ndarray:
    """:func:`solve_normal` on the compact (..., 9) form."""
    a, b, c, d, e, f = m[..., 0], m[..., 1], m[..., 2], m[..., 3], m[..., 4], m[..., 5]
    r0, r1, r2 = -m[..., 6], -m[..., 7], -m[..., 8]
    A00, A01, A02 = d * f - e * e, c * e - b * f, b * e - c * d
    A11, A12, A22 = a * f - c * c, b * c - a * e, a * d - b * b
    det = a * A00 + b * A01 + c * A02
    scale = np.maximum(np.maximum(np.abs(a), np.abs(d)), np.abs(f))
    ok = np.abs(det) > 1e-12 * np.maximum(scale, 1e-300) ** 3
    inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), np.nan)
    return np.stack(
        [
            (A00 * r0 + A01 * r1 + A02 * r2) * inv,
            (A01 * r0 + A11 * r1 + A12 * r2) * inv,
            (A02 * r0 + A12 * r1 + A22 * r2) * inv,
        ],
        -1,
    )


class _RigViews:
    """Per-camera constant parts of the DLT normal equations of fixed cameras ``P`` (C, 3, 4):
    ``AᵀA = w² ((x²+y²) p₃p₃ᵀ - x (p₃p₁ᵀ+p₁p₃ᵀ) - y (p₃p₂ᵀ+p₂p₃ᵀ) + p₁p₁ᵀ + p₂p₂ᵀ)``."""

    def __init__(self, P: np.ndarray) -> None:
        self.P = P
        p0, p1, p2 = P[:, 0], P[:, 1], P[:, 2]
        o = lambda u, v: np.einsum("ci,cj->cij", u, v)  # noqa: E731
        i, j = np.array(_IDX9).T
        self.Q22 = o(p2, p2)[:, i, j][:, None]
        self.S02 = (o(p2, p0) + o(p0, p2))[:, i, j][:, None]
        self.S12 = (o(p2, p1) + o(p1, p2))[:, i, j][:, None]
        self.Q0 = (o(p0, p0) + o(p1, p1))[:, i, j][:, None]

    def normal9(self, x: np.ndarray, w: np.ndarray, cams: np.ndarray | None = None) -> np.ndarray:
        """x (C, N, 2) with NaN where missing, w (C, N) -> per-view compact normal matrices (C, N, 9)."""
        sl = slice(None) if cams is None else cams
        ok = np.isfinite(x).all(-1) & (w > 0)
        xx = np.where(ok[..., None], x, 0.0)
        w2 = np.where(ok, w, 0.0)[..., None] ** 2
        u, v = xx[..., 0:1], xx[..., 1:2]
        return w2 * ((u * u + v * v) * self.Q22[sl] - u * self.S02[sl] - v * self.S12[sl] + self.Q0[sl])

    def project(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """X (..., N, 3) -> normalized coordinates (C, ..., N, 2) and depths (C, ..., N)."""
        C = len(self.P)
        R = np.swapaxes(self.P[:, :, :3], 1, 2).reshape((C,) + (1,) * (X.ndim - 2) + (3, 3))
        h = np.matmul(X[None], R) + self.P[:, :, 3].reshape((C,) + (1,) * (X.ndim - 1) + (3,))
        with np.errstate(divide="ignore", invalid="ignore"):
            return h[..., :2] / h[..., 2:3], h[..., 2]

    def solve(self, Mv: np.ndarray, use: np.ndarray) -> np.ndarray:
        """Triangulate from the views in ``use`` (C, N) with one depth-reweighting pass -> (N, 3)."""
        Mu = Mv * use[..., None]
        X = _solve9(Mu.sum(0))
        _, z = self.project(X)
        good = np.isfinite(z) & (z > 0)
        iz2 = np.where(good, 1.0 / np.where(good, z, 1.0) ** 2, 0.0)
        iz2 = iz2 / np.maximum(iz2.max(0, keepdims=True), 1e-300)
        Xn = _solve9((Mu * iz2[..., None]).sum(0))
        X = np.where(np.isfinite(Xn), Xn, X)
        X[use.sum(0) < 2] = np.nan
        return X

    def solve_loo(self, Mv: np.ndarray, use: np.ndarray) -> np.ndarray:
        """Leave-one-view-out solutions (C, N, 3) (no reweighting); NaN where < 2 others remain."""
        Mu = Mv * use[..., None]
        X = _solve9(Mu.sum(0)[None] - Mu)
        X[(use.sum(0)[None] - use) < 2] = np.nan
        return X


def undo_swaps(x: np.ndarray, w: np.ndarray, swapped: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exchange left/right joints of the views flagged in ``swapped`` (C, F).

    x (C, F, 17, D), w (C, F, 17) -> corrected copies."""
    x, w = np.array(x, copy=True), np.array(w, copy=True)
    c, f = np.nonzero(swapped)
    x[c, f] = x[c, f][:, FLIP_PERMUTATION]
    w[c, f] = w[c, f][:, FLIP_PERMUTATION]
    return x, w


@dataclass
class RobustTriangulation:
    """Result of :func:`triangulate_robust`.

    Attributes:
        points: (F, J, 3) in the frame of the projection matrices; NaN where invalid.
        valid: (F, J) bool, triangulated from >= 2 accepted views with accepted reprojection error.
        reprojection_px: (C, F, J) undistorted pixel error of every observed view (NaN if unobserved).
        used: (C, F, J) bool, views kept in the final triangulation.
        swapped: (C, F) bool, views whose left/right labels were found exchanged and undone.
        threshold_px: the view-rejection threshold that was used, per chunk of frames.
    """

    points: np.ndarray
    valid: np.ndarray
    reprojection_px: np.ndarray
    used: np.ndarray
    swapped: np.ndarray
    threshold_px: list


def triangulate_robust(
    Rt: np.ndarray,
    x: np.ndarray,
    w: np.ndarray,
    focal: np.ndarray,
    min_threshold_px: float = 8.0,
    mad_factor: float = 4.0,
    accept_px: float | None = None,
    fix_swaps: bool = True,
    chunk_frames: int = 5000,
    progress: bool = False,
) -> RobustTriangulation:
    """Robust per-joint triangulation of every frame, fully batched over frames and joints.

    1. All views of every joint are triangulated (confidence-weighted DLT, one depth-reweighting
       pass); the rejection threshold is ``max(min_threshold_px, mad_factor * median reprojection
       error)`` — a robust noise scale measured on the data, per chunk of frames.
    2. Left/right swaps: in frames where left/right joints disagree, every view's joints are
       triangulated from the *other* views; if the view's left/right-exchanged joints
       (:data:`~epipolarpose.skeleton.LEFT_RIGHT_PAIRS`) reproject better by half or more, summed
       over the pairs, the view of that frame is exchanged back (detectors flip whole bodies).
    3. View rejection: up to ``C - 2`` times, while the kept views of a joint disagree (largest
       reprojection error above the threshold), the view whose removal leaves the most consistent
       set (smallest largest error of the others' triangulation) is dropped and the joint is
       triangulated again.
    4. Joints with fewer than two kept views, behind a camera, or whose kept views still disagree
       by more than ``accept_px`` (default: the threshold) are NaN with ``valid = False``.

    Args:
        Rt: (C, 3, 4) camera extrinsics ``[R | t]``.
        x: (C, F, J, 2) undistorted normalized coordinates, NaN where missing.
        w: (C, F, J) confidences (0 = missing).
        focal: (C,) focal lengths in pixels (to express errors in pixels).
    """
    Rt = np.asarray(Rt, dtype=np.float64)
    C, F, J, _ = x.shape
    focal = np.asarray(focal, dtype=np.float64).reshape(C)
    scale = max(float(np.abs(Rt[:, :, 3]).max()), 1e-12)
    views = _RigViews(Rt * np.array([1.0, 1.0, 1.0, 1.0 / scale]))
    pairs = np.array(LEFT_RIGHT_PAIRS) if J == 17 else np.zeros((0, 2), np.int64)
    out_X = np.full((F, J, 3), np.nan)
    out_valid = np.zeros((F, J), bool)
    out_err = np.full((C, F, J), np.nan)
    out_used = np.zeros((C, F, J), bool)
    out_swapped = np.zeros((C, F), bool)
    thresholds = []
    starts = range(0, F, chunk_frames)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc="triangulate", unit="chunk", leave=False)
    fpx = focal[:, None]
    eye = np.eye(C, dtype=bool)[:, :, None]
    for s in starts:
        e = min(F, s + chunk_frames)
        f = e - s
        xs = np.array(x[:, s:e], dtype=np.float64).reshape(C, f * J, 2)
        ws = np.where(np.isfinite(xs).all(-1), np.asarray(w[:, s:e], dtype=np.float64).reshape(C, -1), 0.0)
        use = ws > 0
        Mv = views.normal9(xs, ws)

        def errors(X: np.ndarray, idx: np.ndarray | slice, xs: np.ndarray = xs) -> np.ndarray:
            p, _ = views.project(X)
            return np.linalg.norm(p - xs[:, idx], axis=-1) * fpx

        # --- 1. all views
        X = views.solve(Mv, use)
        err = np.where(use, errors(X, slice(None)), np.nan)
        vals = err[use & np.isfinite(err)]
        thr = max(min_threshold_px, mad_factor * float(np.median(vals))) if vals.size else min_threshold_px
        thresholds.append(thr)
        r_all = np.where(use, np.nan_to_num(err, nan=np.inf), 0.0).max(0)  # (N,)
        # --- 2. left/right swaps, tested in frames whose left/right joints disagree
        swapped = np.zeros((C, f), bool)
        if fix_swaps and len(pairs) and C >= 3:
            lr = np.concatenate([pairs[:, 0], pairs[:, 1]])
            bad_f = np.flatnonzero((r_all.reshape(f, J)[:, lr] > thr).any(-1))
            if len(bad_f):
                n_l = (bad_f[:, None] * J + pairs[:, 0]).ravel()  # (b*P,)
                n_r = (bad_f[:, None] * J + pairs[:, 1]).ravel()
                idx = np.concatenate([n_l, n_r])
                X_loo = views.solve_loo(Mv[:, idx], use[:, idx])  # (C, 2bP, 3)
                h = np.einsum("cij,cnj->cni", views.P[:, :, :3], X_loo) + views.P[:, None, :, 3]
                own = h[..., :2] / h[..., 2:3]  # view c's joints seen from the others
                k = len(n_l)
                pl, pr = own[:, :k], own[:, k:]
                xl, xr = xs[:, n_l], xs[:, n_r]
                e_orig = np.linalg.norm(xl - pl, axis=-1) + np.linalg.norm(xr - pr, axis=-1)
                e_swap = np.linalg.norm(xr - pl, axis=-1) + np.linalg.norm(xl - pr, axis=-1)
                both = np.isfinite(e_orig) & np.isfinite(e_swap)
                nb = len(bad_f)
                so = (np.where(both, e_orig, 0.0) * fpx).reshape(C, nb, -1).sum(-1)
                ss = (np.where(both, e_swap, 0.0) * fpx).reshape(C, nb, -1).sum(-1)
                npairs = both.reshape(C, nb, -1).sum(-1)
                flip = (npairs >= 2) & (ss < 0.5 * so) & (so > 2 * min_threshold_px * npairs)
                if flip.any():
                    c_i, b_i = np.nonzero(flip)
                    fr = bad_f[b_i]
                    swapped[c_i, fr] = True
                    xs3, ws3 = xs.reshape(C, f, J, 2), ws.reshape(C, f, J)
                    xs3[c_i, fr] = xs3[c_i, fr][:, FLIP_PERMUTATION]
                    ws3[c_i, fr] = ws3[c_i, fr][:, FLIP_PERMUTATION]
                    use = ws > 0
                    touched = (np.unique(fr)[:, None] * J + np.arange(J)).ravel()
                    Mv[:, touched] = views.normal9(xs[:, touched], ws[:, touched])
                    X[touched] = views.solve(Mv[:, touched], use[:, touched])
                    err[:, touched] = np.where(use[:, touched], errors(X[touched], touched), np.nan)
                    r_all = np.where(use, np.nan_to_num(err, nan=np.inf), 0.0).max(0)
        # --- 3. view rejection on the joints whose views disagree
        active = np.flatnonzero((r_all > thr) & (use.sum(0) > 2))
        for _ in range(max(C - 2, 0)):
            if not len(active):
                break
            ua = use[:, active]
            X_loo = views.solve_loo(Mv[:, active], ua)  # (C_left_out, n, 3)
            proj, _ = views.project(X_loo)  # (C_view, C_left_out, n, 2)
            e_loo = np.linalg.norm(proj - xs[:, None, active], axis=-1) * fpx[:, :, None]
            e_loo = np.where(ua[:, None] & ~eye, np.nan_to_num(e_loo, nan=np.inf), 0.0)
            r_loo = np.where(ua, e_loo.max(0), np.inf)  # (C_left_out, n)
            best = np.argmin(r_loo, axis=0)
            fine = np.isfinite(r_loo[best, np.arange(len(active))])
            active = active[fine]
            use[best[fine], active] = False
            X[active] = views.solve(Mv[:, active], use[:, active])
            err[:, active] = np.where(ws[:, active] > 0, errors(X[active], active), np.nan)
            r_used = np.where(use[:, active], np.nan_to_num(err[:, active], nan=np.inf), 0.0).max(0)
            active = active[(r_used > thr) & (use[:, active].sum(0) > 2)]
        # --- 4. acceptance
        err = np.where(ws > 0, errors(X, slice(None)), np.nan)
        _, depth = views.project(X)
        acc = thr if accept_px is None else accept_px
        in_front = np.all((depth > 0) | ~use, axis=0)
        r_used = np.where(use, np.nan_to_num(err, nan=np.inf), 0.0).max(0)
        valid = (use.sum(0) >= 2) & np.isfinite(X).all(-1) & in_front & (r_used <= acc)
        X[~valid] = np.nan
        out_X[s:e] = (X * scale).reshape(f, J, 3)
        out_valid[s:e] = valid.reshape(f, J)
        out_err[:, s:e] = err.reshape(C, f, J)
        out_used[:, s:e] = (use & valid[None]).reshape(C, f, J)
        out_swapped[:, s:e] = swapped
    return RobustTriangulation(out_X, out_valid, out_err, out_used, out_swapped, thresholds)


@single_threaded
def triangulate_rig(
    rig: Rig,
    keypoints: np.ndarray,
    scores: np.ndarray,
    robust: bool = True,
    progress: bool = False,
    **kwargs,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Triangulate detections with a known rig.

    Args:
        rig: C cameras (world frame and units of the rig).
        keypoints: (C, F, J, 2) pixels in the distorted images, NaN where missing.
        scores: (C, F, J) confidences, 0 where missing.
        robust: view rejection and left/right swap repair (:func:`triangulate_robust`); otherwise a
            plain confidence-weighted DLT of all observed views.
        kwargs: passed to :func:`triangulate_robust`.
    Returns:
        points (F, J, 3) world (NaN where invalid), valid (F, J), reprojection error (C, F, J) in
        pixels of the distorted image (NaN where not observed).
    """
    keypoints = np.asarray(keypoints, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    xn = rig.undistort(keypoints)
    Rt = np.stack([c.Rt for c in rig.cameras])
    if robust:
        res = triangulate_robust(Rt, xn, scores, rig.K[:, 0, 0], progress=progress, **kwargs)
        X, valid = res.points, res.valid
    else:
        w = np.where(np.isfinite(xn).all(-1), scores, 0.0)
        X = triangulate_dlt(Rt, np.moveaxis(xn, 0, -2), np.moveaxis(w, 0, -1))
        valid = np.isfinite(X).all(-1)
    reproj = reprojection_errors(rig, np.where(valid[..., None], X, np.nan), keypoints)
    return X, valid, reproj
