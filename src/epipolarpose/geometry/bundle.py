"""Bundle adjustment of a camera rig and 3D points with scipy ``least_squares``.

The points are eliminated exactly (*variable projection*): for given cameras every point is
the (weighted) least-squares optimum of its own reprojection errors, found by a few batched
Gauss-Newton steps on 3x3 systems, and ``least_squares`` optimises only the camera parameters
(6 per camera, + 1 focal factor each when asked) with the reduced Jacobian ``(I - J_p J_p⁺) J_c``
of every point (the Schur complement, block-sparse and computed batched). A rig has few cameras,
so the reduced problem is small and dense and ``least_squares`` solves it with exact trust-region
steps: it converges in a handful of iterations even in the flat valleys (bas-relief ambiguity)
where a joint sparse problem with iterative (``lsmr``) steps crawls (measured: 40+ evaluations).
The robust loss is applied by iteratively reweighted least squares (weights ``ψ(r)/r``).

Gauge: camera 0 is held fixed; the overall scale is left free and should be fixed by the caller
afterwards (e.g. unit first baseline, :func:`~epipolarpose.geometry.calibration.normalize_gauge`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares
from scipy.spatial.transform import Rotation

from .epipolar import skew
from .triangulation import triangulate_dlt


@dataclass
class BundleResult:
    """Refined parameters.

    Attributes:
        R: (C, 3, 3); t: (C, 3); X: (N, 3).
        focal_scale: (C,) factor applied to each camera's focal length (1 when not refined).
        median_error_initial_px / median_error_final_px: median reprojection error (pixels) of the
            observations before/after.
        nfev: function evaluations; success: every solver round ended by a tolerance.
    """

    R: np.ndarray
    t: np.ndarray
    X: np.ndarray
    focal_scale: np.ndarray
    median_error_initial_px: float
    median_error_final_px: float
    nfev: int
    success: bool


def _robust_weights(r_px: np.ndarray, loss: str, f_scale: float) -> np.ndarray:
    """IRLS weights (multiplying residuals) of a robust loss for residual norms ``r_px``."""
    u = (r_px / f_scale) ** 2
    if loss == "soft_l1":
        return (1 + u) ** -0.25
    if loss == "cauchy":
        return (1 + u) ** -0.5
    if loss == "linear":
        return np.ones_like(r_px)
    raise ValueError(f"unknown loss {loss!r}")


def bundle_adjust(
    R: np.ndarray,
    t: np.ndarray,
    X: np.ndarray,
    cam_idx: np.ndarray,
    pt_idx: np.ndarray,
    obs: np.ndarray,
    focal: np.ndarray,
    weights: np.ndarray | None = None,
    refine_focal: bool = False,
    loss: str = "soft_l1",
    f_scale_px: float = 4.0,
    max_nfev: int = 30,
    irls_rounds: int = 3,
) -> BundleResult:
    """Jointly refine camera poses (all but camera 0), optionally per-camera focal lengths, and
    3D points by minimising robust reprojection error in pixels.

    Residual of observation ``k`` of point ``p`` in camera ``c``:
    ``focal[c] * sqrt(w_k) * (s_c * π(R_c X_p + t_c) - obs_k)``, where ``obs`` are normalized
    coordinates computed with the initial focal ``focal[c]`` and ``s_c`` the focal factor (1 unless
    ``refine_focal``). Each (point, camera) pair may be observed at most once.

    Args:
        R: (C, 3, 3), t: (C, 3) initial extrinsics.
        X: (N, 3) initial points.
        cam_idx, pt_idx: (M,) camera and point of every observation.
        obs: (M, 2) undistorted normalized coordinates.
        focal: (C,) focal lengths in pixels (sets the pixel scale of the residuals).
        weights: (M,) confidences (default 1).
        refine_focal: also estimate a focal-length factor per camera (camera 0's included).
        loss, f_scale_px: robust loss (``soft_l1``, ``cauchy`` or ``linear``) and its scale in px.
        max_nfev: evaluations per IRLS round; irls_rounds: reweighting rounds.
    """
    R = np.asarray(R, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    C, N = len(R), len(X)
    focal = np.asarray(focal, dtype=np.float64).reshape(C)
    cam_idx = np.asarray(cam_idx, dtype=np.int64)
    pt_idx = np.asarray(pt_idx, dtype=np.int64)
    # dense (N, C) layout: zero weight where a camera does not observe a point
    O = np.zeros((N, C, 2))
    W = np.zeros((N, C))
    O[pt_idx, cam_idx] = obs
    W[pt_idx, cam_idx] = 1.0 if weights is None else np.asarray(weights, dtype=np.float64)
    seen = W > 0
    base = np.sqrt(W) * focal  # (N, C) pixel scale of each residual
    nc = 6 * (C - 1)
    nf = C if refine_focal else 0
    state = {"X": np.asarray(X, dtype=np.float64).copy(), "irls": np.ones((N, C))}

    def unpack(p: np.ndarray):
        cp = p[:nc].reshape(C - 1, 6)
        Rs = np.concatenate([R[:1], Rotation.from_rotvec(cp[:, :3]).as_matrix() @ R[1:]])
        ts = np.concatenate([t[:1], cp[:, 3:]])
        s = p[nc : nc + nf] if nf else np.ones(C)
        return Rs, ts, s

    def project(Rs, ts, s, Xp):
        """-> residuals (N, C, 2), d r/d Xc (N, C, 2, 3), RX (N, C, 3), normalized proj (N, C, 2)."""
        RX = (Xp @ Rs.reshape(3 * C, 3).T).reshape(N, C, 3)
        Xc = RX + ts
        z = np.where(np.abs(Xc[..., 2]) < 1e-12, 1e-12, Xc[..., 2])
        pr = Xc[..., :2] / z[..., None]
        g = base * state["irls"]  # (N, C)
        r = g[..., None] * (s[:, None] * pr - O)
        gz = g * s / z
        D = np.zeros((N, C, 2, 3))
        D[..., 0, 0] = gz
        D[..., 1, 1] = gz
        D[..., 0, 2] = -gz * pr[..., 0]
        D[..., 1, 2] = -gz * pr[..., 1]
        D[~seen] = 0.0
        r[~seen] = 0.0
        return r, D, RX, pr, g

    def solve_points(Rs, ts, s, iters: int = 2) -> np.ndarray:
        """Optimal points for given cameras: weighted DLT (depth-reweighted), then Gauss-Newton."""
        P = np.concatenate([Rs, ts[:, :, None]], -1)
        Xp = triangulate_dlt(P, O / s[:, None], np.sqrt(W) * state["irls"])
        bad = ~np.isfinite(Xp).all(-1)
        Xp[bad] = state["X"][bad]
        for _ in range(iters):
            r, D, _, _, _ = project(Rs, ts, s, Xp)
            Jp = np.matmul(D, Rs).reshape(N, 2 * C, 3)
            H = np.matmul(np.swapaxes(Jp, 1, 2), Jp)
            H += (1e-9 * np.trace(H, axis1=1, axis2=2) + 1e-300)[:, None, None] * np.eye(3)
            g = np.matmul(np.swapaxes(Jp, 1, 2), r.reshape(N, 2 * C, 1))[..., 0]
            Xp = Xp - np.linalg.solve(H, g[..., None])[..., 0]
        state["X"] = Xp
        return Xp

    def fun(p: np.ndarray) -> np.ndarray:
        Rs, ts, s = unpack(p)
        Xp = solve_points(Rs, ts, s)
        r, *_ = project(Rs, ts, s, Xp)
        return r.ravel()

    def jac(p: np.ndarray) -> np.ndarray:
        Rs, ts, s = unpack(p)
        Xp = state["X"]
        _, D, RX, pr, g = project(Rs, ts, s, Xp)
        Jc = np.zeros((N, C, 2, nc + nf))
        for c in range(1, C):
            k = 6 * (c - 1)
            Jc[:, c, :, k : k + 3] = -np.matmul(D[:, c], skew(RX[:, c]))
            Jc[:, c, :, k + 3 : k + 6] = D[:, c]
        for c in range(nf):
            Jc[:, c, :, nc + c] = np.where(seen[:, c, None], g[:, c, None] * pr[:, c], 0.0)
        Jc = Jc.reshape(N, 2 * C, nc + nf)
        Jp = np.matmul(D, Rs).reshape(N, 2 * C, 3)
        H = np.matmul(np.swapaxes(Jp, 1, 2), Jp)
        H += (1e-9 * np.trace(H, axis1=1, axis2=2) + 1e-300)[:, None, None] * np.eye(3)
        # reduced Jacobian: (I - Jp H⁻¹ Jpᵀ) Jc per point
        Jr = Jc - Jp @ np.linalg.solve(H, np.swapaxes(Jp, 1, 2) @ Jc)
        return Jr.reshape(N * 2 * C, nc + nf)

    def pixel_errors(p: np.ndarray) -> np.ndarray:
        Rs, ts, s = unpack(p)
        keep = state["irls"]
        state["irls"] = np.ones((N, C))
        r, *_ = project(Rs, ts, s, state["X"])
        state["irls"] = keep
        return np.linalg.norm(r, axis=-1) / np.maximum(np.sqrt(W), 1e-300)

    p = np.concatenate([np.hstack([np.zeros((C - 1, 3)), t[1:]]).ravel(), np.ones(nf)])
    e0 = pixel_errors(p)[seen]
    med0 = float(np.median(e0)) if e0.size else 0.0
    nfev, ok = 0, True
    for it in range(irls_rounds if loss != "linear" else 1):
        e = pixel_errors(p)
        fs = max(f_scale_px, float(np.median(e[seen]))) if it == 0 else f_scale_px
        state["irls"] = _robust_weights(e, loss, fs)
        if nc + nf == 0:
            solve_points(*unpack(p), iters=5)
            break
        res = least_squares(fun, p, jac=jac, method="trf", x_scale="jac", tr_solver="exact",
                            max_nfev=max_nfev, xtol=1e-8, ftol=1e-8)  # fmt: skip
        p, nfev, ok = res.x, nfev + int(res.nfev), ok and res.status > 0
    state["irls"] = _robust_weights(pixel_errors(p), loss, f_scale_px)
    Rs, ts, s = unpack(p)
    solve_points(Rs, ts, s, iters=3)
    e1 = pixel_errors(p)[seen]
    med1 = float(np.median(e1)) if e1.size else 0.0
    return BundleResult(Rs, ts, state["X"], np.asarray(s, dtype=np.float64).copy(), med0, med1, nfev, ok)
