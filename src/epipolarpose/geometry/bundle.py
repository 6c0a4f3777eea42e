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

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import least_squares
from scipy.spatial.transform import Rotation

from .dlt import triangulate_dlt
from .numeric import skew

__all__ = ["BundleObservations", "BundleOptions", "BundleResult", "bundle_adjust"]


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


@dataclass(frozen=True)
class BundleObservations:
    """The 2D observations of a bundle adjustment; each (point, camera) pair at most once.

    Attributes:
        cam_idx, pt_idx: (M,) camera and point of every observation.
        xy: (M, 2) undistorted normalized coordinates (computed with the initial focal lengths).
        weights: (M,) confidences (default 1).
        sigma_px: (M,) noise scale of every observation in pixels (default 1): residuals are
            divided by it, and the robust loss's ``f_scale_px`` is then in units of sigma (a
            heteroscedastic model, e.g. one scale per landmark).
    """

    cam_idx: np.ndarray
    pt_idx: np.ndarray
    xy: np.ndarray
    weights: np.ndarray | None = None
    sigma_px: np.ndarray | None = None


@dataclass(frozen=True)
class BundleOptions:
    """Knobs of :func:`bundle_adjust`.

    Attributes:
        refine_focal: also estimate a focal-length factor per camera (camera 0's included).
        loss, f_scale_px: robust loss (``soft_l1``, ``cauchy`` or ``linear``) and its scale in px.
        max_nfev: evaluations per IRLS round; irls_rounds: reweighting rounds.
    """

    refine_focal: bool = False
    loss: str = "soft_l1"
    f_scale_px: float = 4.0
    max_nfev: int = 30
    irls_rounds: int = 3


#: Bounds of the focal-length factors bundle adjustment may apply.
FOCAL_RANGE = (0.25, 4.0)


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


@dataclass
class _ReducedProblem:
    """The bundle adjustment with the points eliminated: parameters are the poses of cameras
    1..C-1 (rotation vector relative to the initial rotation, translation) and optionally C focal
    factors. Observations live in a dense (N, C) layout, weight 0 where a camera does not see a
    point; ``X`` holds the current optimal points and ``irls`` the current robust weights."""

    R0: np.ndarray  # (C, 3, 3) initial rotations
    t0: np.ndarray  # (C, 3) initial translations
    O: np.ndarray  # (N, C, 2) observations
    W: np.ndarray  # (N, C) confidences
    S: np.ndarray  # (N, C) noise scales, pixels
    focal: np.ndarray  # (C,)
    refine_focal: bool
    X: np.ndarray  # (N, 3)
    irls: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        N, C = self.W.shape
        self.seen = self.W > 0
        self.base = np.sqrt(self.W) / self.S * self.focal  # (N, C) scale of each residual
        self.nc = 6 * (C - 1)
        self.nf = C if self.refine_focal else 0
        self.irls = np.ones((N, C))

    def unpack(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Parameters -> rotations (C, 3, 3), translations (C, 3), focal factors (C,)."""
        C = len(self.focal)
        cp = p[: self.nc].reshape(C - 1, 6)
        Rs = np.concatenate([self.R0[:1], Rotation.from_rotvec(cp[:, :3]).as_matrix() @ self.R0[1:]])
        ts = np.concatenate([self.t0[:1], cp[:, 3:]])
        s = p[self.nc : self.nc + self.nf] if self.nf else np.ones(C)
        return Rs, ts, s

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Poses are free; focal factors stay within :data:`FOCAL_RANGE` (a focal length that
        shrinks towards zero or changes sign is a degenerate fit, not a camera)."""
        lo = np.concatenate([np.full(self.nc, -np.inf), np.full(self.nf, FOCAL_RANGE[0])])
        hi = np.concatenate([np.full(self.nc, np.inf), np.full(self.nf, FOCAL_RANGE[1])])
        return lo, hi

    def initial(self) -> np.ndarray:
        """Parameter vector of the initial rig (unit focal factors)."""
        C = len(self.t0)
        return np.concatenate([np.hstack([np.zeros((C - 1, 3)), self.t0[1:]]).ravel(), np.ones(self.nf)])

    def project(self, Rs, ts, s, Xp):
        """-> residuals (N, C, 2), d r/d Xc (N, C, 2, 3), RX (N, C, 3), normalized projections
        (N, C, 2) and residual scales (N, C)."""
        N, C = self.W.shape
        RX = (Xp @ Rs.reshape(3 * C, 3).T).reshape(N, C, 3)
        Xc = RX + ts
        z = np.where(np.abs(Xc[..., 2]) < 1e-12, 1e-12, Xc[..., 2])
        pr = Xc[..., :2] / z[..., None]
        g = self.base * self.irls  # (N, C)
        r = g[..., None] * (s[:, None] * pr - self.O)
        gz = g * s / z
        D = np.zeros((N, C, 2, 3))
        D[..., 0, 0] = gz
        D[..., 1, 1] = gz
        D[..., 0, 2] = -gz * pr[..., 0]
        D[..., 1, 2] = -gz * pr[..., 1]
        D[~self.seen] = 0.0
        r[~self.seen] = 0.0
        return r, D, RX, pr, g

    def solve_points(self, Rs, ts, s, iters: int = 2) -> np.ndarray:
        """Optimal points for given cameras: weighted DLT (depth-reweighted), then Gauss-Newton."""
        N, C = self.W.shape
        P = np.concatenate([Rs, ts[:, :, None]], -1)
        Xp = triangulate_dlt(P, self.O / s[:, None], np.sqrt(self.W) / self.S * self.irls)
        bad = ~np.isfinite(Xp).all(-1)
        Xp[bad] = self.X[bad]
        for _ in range(iters):
            r, D, _, _, _ = self.project(Rs, ts, s, Xp)
            Jp = np.matmul(D, Rs).reshape(N, 2 * C, 3)
            H = np.matmul(np.swapaxes(Jp, 1, 2), Jp)
            H += (1e-9 * np.trace(H, axis1=1, axis2=2) + 1e-300)[:, None, None] * np.eye(3)
            g = np.matmul(np.swapaxes(Jp, 1, 2), r.reshape(N, 2 * C, 1))[..., 0]
            Xp = Xp - np.linalg.solve(H, g[..., None])[..., 0]
        self.X = Xp
        return Xp

    def residuals(self, p: np.ndarray) -> np.ndarray:
        """Weighted pixel residuals (N·C·2,) at the optimal points of parameters ``p``."""
        Rs, ts, s = self.unpack(p)
        r, *_ = self.project(Rs, ts, s, self.solve_points(Rs, ts, s))
        return r.ravel()

    def jacobian(self, p: np.ndarray) -> np.ndarray:
        """Reduced Jacobian ``(I - J_p H⁻¹ J_pᵀ) J_c`` per point, (N·C·2, parameters)."""
        N, C = self.W.shape
        nc, nf = self.nc, self.nf
        Rs, ts, s = self.unpack(p)
        _, D, RX, pr, g = self.project(Rs, ts, s, self.X)
        Jc = np.zeros((N, C, 2, nc + nf))
        for c in range(1, C):
            k = 6 * (c - 1)
            Jc[:, c, :, k : k + 3] = -np.matmul(D[:, c], skew(RX[:, c]))
            Jc[:, c, :, k + 3 : k + 6] = D[:, c]
        for c in range(nf):
            Jc[:, c, :, nc + c] = np.where(self.seen[:, c, None], g[:, c, None] * pr[:, c], 0.0)
        Jc = Jc.reshape(N, 2 * C, nc + nf)
        Jp = np.matmul(D, Rs).reshape(N, 2 * C, 3)
        H = np.matmul(np.swapaxes(Jp, 1, 2), Jp)
        H += (1e-9 * np.trace(H, axis1=1, axis2=2) + 1e-300)[:, None, None] * np.eye(3)
        Jr = Jc - Jp @ np.linalg.solve(H, np.swapaxes(Jp, 1, 2) @ Jc)
        return Jr.reshape(N * 2 * C, nc + nf)

    def pixel_errors(self, p: np.ndarray) -> np.ndarray:
        """Errors (N, C) of the current points under parameters ``p``, in units of sigma (pixels
        when every sigma is 1), without the confidences and robust weights."""
        Rs, ts, s = self.unpack(p)
        keep = self.irls
        self.irls = np.ones_like(keep)
        r, *_ = self.project(Rs, ts, s, self.X)
        self.irls = keep
        return np.linalg.norm(r, axis=-1) / np.maximum(np.sqrt(self.W), 1e-300)


def bundle_adjust(
    R: np.ndarray,
    t: np.ndarray,
    X: np.ndarray,
    focal: np.ndarray,
    observations: BundleObservations,
    options: BundleOptions = BundleOptions(),
) -> BundleResult:
    """Jointly refine camera poses (all but camera 0), optionally per-camera focal lengths, and
    3D points by minimising robust reprojection error in pixels.

    Residual of observation ``k`` of point ``p`` in camera ``c``:
    ``focal[c] * sqrt(w_k) * (s_c * π(R_c X_p + t_c) - obs_k)``, where ``obs`` are normalized
    coordinates computed with the initial focal ``focal[c]`` and ``s_c`` the focal factor (1 unless
    ``options.refine_focal``).

    Args:
        R: (C, 3, 3), t: (C, 3) initial extrinsics.
        X: (N, 3) initial points.
        focal: (C,) focal lengths in pixels (sets the pixel scale of the residuals).
        observations: :class:`BundleObservations` of the points.
        options: :class:`BundleOptions`.
    """
    R = np.asarray(R, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    C, N = len(R), len(X)
    focal = np.asarray(focal, dtype=np.float64).reshape(C)
    cam_idx = np.asarray(observations.cam_idx, dtype=np.int64)
    pt_idx = np.asarray(observations.pt_idx, dtype=np.int64)
    O = np.zeros((N, C, 2))
    W = np.zeros((N, C))
    S = np.ones((N, C))
    O[pt_idx, cam_idx] = observations.xy
    w = observations.weights
    W[pt_idx, cam_idx] = 1.0 if w is None else np.asarray(w, dtype=np.float64)
    if observations.sigma_px is not None:
        S[pt_idx, cam_idx] = np.asarray(observations.sigma_px, dtype=np.float64)
    X = np.asarray(X, dtype=np.float64).copy()
    prob = _ReducedProblem(R, t, O, W, S, focal, options.refine_focal, X)
    p = prob.initial()
    seen = prob.seen
    e0 = (prob.pixel_errors(p) * S)[seen]
    med0 = float(np.median(e0)) if e0.size else 0.0
    nfev, ok = 0, True
    for it in range(options.irls_rounds if options.loss != "linear" else 1):
        e = prob.pixel_errors(p)
        fs = max(options.f_scale_px, float(np.median(e[seen]))) if it == 0 else options.f_scale_px
        prob.irls = _robust_weights(e, options.loss, fs)
        if prob.nc + prob.nf == 0:
            prob.solve_points(*prob.unpack(p), iters=5)
            break
        solver = dict(method="trf", x_scale="jac", tr_solver="exact", xtol=1e-8, ftol=1e-8)
        res = least_squares(
            prob.residuals, p, jac=prob.jacobian, bounds=prob.bounds(), max_nfev=options.max_nfev, **solver
        )
        p, nfev, ok = res.x, nfev + int(res.nfev), ok and res.status > 0
    prob.irls = _robust_weights(prob.pixel_errors(p), options.loss, options.f_scale_px)
    Rs, ts, s = prob.unpack(p)
    prob.solve_points(Rs, ts, s, iters=3)
    e1 = (prob.pixel_errors(p) * S)[seen]
    med1 = float(np.median(e1)) if e1.size else 0.0
    return BundleResult(Rs, ts, prob.X, np.asarray(s, dtype=np.float64).copy(), med0, med1, nfev, ok)
