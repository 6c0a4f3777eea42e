"""Hartley–Sturm optimal two-view triangulation ("polynomial" triangulation), batched over
points and over camera pairs: the closest pair of image points that satisfies the epipolar
constraint exactly, then a linear triangulation of that pair (the paper's per-frame recipe uses it,
with a different pair of projection matrices in every frame).
"""

from __future__ import annotations

import numpy as np

from .dlt import triangulate_dlt
from .numeric import skew

__all__ = ["correct_matches", "fundamental_from_projections", "triangulate_optimal"]


def _pmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Batched polynomial product, coefficients in increasing powers: (N, m), (N, n) -> (N, m+n-1)."""
    out = np.zeros((a.shape[0], a.shape[1] + b.shape[1] - 1))
    for i in range(a.shape[1]):
        out[:, i : i + b.shape[1]] += a[:, i : i + 1] * b
    return out


def fundamental_from_projections(P1: np.ndarray, P2: np.ndarray) -> np.ndarray:
    """``F`` with ``x2ᵀ F x1 = 0`` from two (..., 3, 4) projection matrices (H&Z eq. 9.1) -> (..., 3, 3)."""
    P1 = np.asarray(P1, dtype=np.float64)
    P2 = np.asarray(P2, dtype=np.float64)
    _, _, Vt = np.linalg.svd(P1)
    C1 = Vt[..., -1, :]
    e2 = (P2 @ C1[..., None])[..., 0]
    return skew(e2) @ P2 @ np.linalg.pinv(P1)


def _epipoles(F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit epipoles of (..., 3, 3) fundamental matrices: ``F e1 = 0``, ``e2ᵀ F = 0``, each (..., 3)."""
    U, _, Vt = np.linalg.svd(F)
    return Vt[..., -1, :], U[..., :, -1]


def correct_matches(F: np.ndarray, x1: np.ndarray, x2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hartley–Sturm optimal correction: the closest pair ``(x̂1, x̂2)`` (sum of squared image
    distances) that satisfies ``x̂2ᵀ F x̂1 = 0`` exactly. Batched; same answer as
    ``cv2.correctMatches``.

    Args:
        F: (3, 3), or (..., 3, 3) one per batch element. x1, x2: (..., N, 2) (the batch dimensions
            broadcast with ``F``'s).
    Returns:
        corrected x1, x2, each (..., N, 2).
    """
    F = np.asarray(F, dtype=np.float64)
    x1 = np.asarray(x1, dtype=np.float64)
    x2 = np.asarray(x2, dtype=np.float64)
    batch = np.broadcast_shapes(F.shape[:-2], x1.shape[:-2], x2.shape[:-2])
    shape = batch + (np.broadcast_shapes(x1.shape[-2:-1], x2.shape[-2:-1])[0], 2)
    e1o, e2o = _epipoles(F)
    if F.ndim > 2:  # one F per batch element: gather it (and its epipoles) for every point
        F = np.broadcast_to(F[..., None, :, :], shape[:-1] + (3, 3)).reshape(-1, 3, 3)
        e1o = np.broadcast_to(e1o[..., None, :], shape[:-1] + (3,)).reshape(-1, 3)
        e2o = np.broadcast_to(e2o[..., None, :], shape[:-1] + (3,)).reshape(-1, 3)
    c1, c2 = _correct(
        F, e1o, e2o, np.broadcast_to(x1, shape).reshape(-1, 2), np.broadcast_to(x2, shape).reshape(-1, 2)
    )
    return c1.reshape(shape), c2.reshape(shape)


def _correct(
    F: np.ndarray, e1o: np.ndarray, e2o: np.ndarray, x1: np.ndarray, x2: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`correct_matches` of (n, 2) points with one ``F`` (3, 3) and its epipoles (3,), or one
    per point: F (n, 3, 3), epipoles (n, 3)."""
    n = len(x1)
    e1o = np.broadcast_to(e1o, (n, 3))
    e2o = np.broadcast_to(e2o, (n, 3))
    # T moves each point to the origin: T = [[1,0,-x],[0,1,-y],[0,0,1]]
    e1 = np.stack([e1o[:, 0] - x1[:, 0] * e1o[:, 2], e1o[:, 1] - x1[:, 1] * e1o[:, 2], e1o[:, 2]], -1)
    e2 = np.stack([e2o[:, 0] - x2[:, 0] * e2o[:, 2], e2o[:, 1] - x2[:, 1] * e2o[:, 2], e2o[:, 2]], -1)
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

    roots = _roots(g)
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


def _roots(g: np.ndarray) -> np.ndarray:
    """Roots of polynomials of degree at most 6, (n, 7) coefficients in increasing powers ->
    (n, 6) complex, NaN-padded.

    Rows whose leading coefficient is not negligible: eigenvalues of the monic companion matrix.
    The others get exactly what ``np.roots`` gives them (its companion matrix, eigenvalues of all
    such rows in one batched call; only rows with an exactly zero leading or constant coefficient,
    which ``np.roots`` trims, go through ``np.roots`` one by one). Rows with a non-finite
    coefficient get NaN.
    """
    n = len(g)
    fin = np.isfinite(g).all(1)
    lead = g[:, 6]
    big = fin & (np.abs(lead) > 1e-12 * np.maximum(np.abs(g).max(1), 1e-300))
    roots = np.full((n, 6), np.nan, dtype=np.complex128)
    if big.any():
        m = g[big] / lead[big, None]
        comp = np.zeros((int(big.sum()), 6, 6))
        comp[:, 1:, :-1] = np.eye(5)
        comp[:, :, -1] = -m[:, :6]
        roots[big] = np.linalg.eigvals(comp)
    rest = fin & ~big
    full = rest & (lead != 0) & (g[:, 0] != 0)  # np.roots trims nothing: a 6x6 companion
    if full.any():
        p = g[full, ::-1]  # decreasing powers, as np.roots takes them
        comp = np.zeros((int(full.sum()), 6, 6))
        comp[:, 1:, :-1] = np.eye(5)
        comp[:, 0, :] = -p[:, 1:] / p[:, :1]
        roots[full] = np.linalg.eigvals(comp)
    for i in np.flatnonzero(rest & ~full):
        r = np.roots(g[i, ::-1])
        roots[i, : len(r)] = r
    return roots


def triangulate_optimal(
    P1: np.ndarray, P2: np.ndarray, x1: np.ndarray, x2: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Optimal (Hartley–Sturm, "polynomial") two-view triangulation, batched over points and over
    camera pairs.

    Args:
        P1, P2: (3, 4) projection matrices, or (..., 3, 4) one pair per batch element (e.g. one per
            frame); x1, x2: (..., N, 2) points in the same coordinates (batch dimensions broadcast
            with the matrices').
    Returns:
        X (..., N, 3), corrected x1 (..., N, 2), corrected x2 (..., N, 2). NaN rows where an input
        is NaN.
    """
    P1 = np.asarray(P1, dtype=np.float64)
    P2 = np.asarray(P2, dtype=np.float64)
    x1 = np.asarray(x1, dtype=np.float64)
    x2 = np.asarray(x2, dtype=np.float64)
    if P1.ndim == 2 and P2.ndim == 2:  # one pair for every point
        x1, x2 = x1.reshape(-1, 2), x2.reshape(-1, 2)
    batch = np.broadcast_shapes(P1.shape[:-2], P2.shape[:-2], x1.shape[:-2], x2.shape[:-2])
    pts = batch + (np.broadcast_shapes(x1.shape[-2:-1], x2.shape[-2:-1])[0],)
    x1 = np.broadcast_to(x1, pts + (2,))
    x2 = np.broadcast_to(x2, pts + (2,))
    ok = np.isfinite(x1).all(-1) & np.isfinite(x2).all(-1)
    X = np.full(pts + (3,), np.nan)
    c1 = np.full(pts + (2,), np.nan)
    c2 = np.full(pts + (2,), np.nan)
    if not ok.any():
        return X, c1, c2
    F = fundamental_from_projections(P1, P2)
    e1o, e2o = _epipoles(F)
    if F.ndim == 2:
        P = np.stack([P1, P2])
    else:  # one pair per batch element: gather it for every point
        at, nb = np.nonzero(ok)[:-1], F.ndim - 2
        F, e1o, e2o = (np.broadcast_to(v, batch + v.shape[nb:])[at] for v in (F, e1o, e2o))
        P = np.stack([np.broadcast_to(P1, batch + (3, 4))[at], np.broadcast_to(P2, batch + (3, 4))[at]], 1)
    c1[ok], c2[ok] = _correct(F, e1o, e2o, x1[ok], x2[ok])
    X[ok] = triangulate_dlt(P, np.stack([c1[ok], c2[ok]], 1), reweight=0)
    return X, c1, c2
