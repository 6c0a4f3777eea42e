"""Confidence-weighted linear (DLT) triangulation from any number of views, batched over points.

Views are the second-to-last axis of the 2D inputs: ``x`` is ``(..., C, 2)`` and projection
matrices ``(..., C, 3, 4)`` (broadcast, so one rig's ``(C, 3, 4)`` serves every point). The normal
equations are solved in a compact 9-entry form by the adjugate of a 3x3 system
(:func:`solve_normal`), which the robust triangulation reuses to add and remove views cheaply.
"""

from __future__ import annotations

import numpy as np

__all__ = ["dlt_normal_matrices", "solve_normal", "triangulate_dlt"]

# compact normal equations: the 9 entries of the symmetric 4x4 AᵀA that the solve needs
IDX9 = ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2), (0, 3), (1, 3), (2, 3))


def solve9(m: np.ndarray) -> np.ndarray:
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
    i, j = np.array(IDX9).T
    return solve9(M[..., i, j])


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
