"""Bundle adjustment of a camera rig and 3D points (Levenberg–Marquardt on the reduced camera
system).

The points are eliminated exactly (*variable projection*): for given cameras every point is
the (weighted) least-squares optimum of its own reprojection errors, found by a few batched
Gauss-Newton steps on 3x3 systems, and Levenberg–Marquardt optimises only the camera parameters
(6 per camera, + 1 focal factor each when asked) with the reduced Jacobian ``(I - J_p J_p⁺) J_c``
of every point (the Schur complement, block-sparse and computed batched). A rig has few cameras,
so the reduced normal equations are small and dense and are solved exactly at every step: it
converges in a handful of iterations even in the flat valleys (bas-relief ambiguity) where a
joint sparse problem with iterative (``lsmr``) steps crawls (measured: 40+ evaluations).
The robust loss is applied by iteratively reweighted least squares (weights ``ψ(r)/r``).

Gauge: camera 0 is held fixed; the overall scale is left free and should be fixed by the caller
afterwards (e.g. unit first baseline, :func:`~epipolarpose.geometry.calibration.normalize_gauge`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .dlt import triangulate_dlt
from .numeric import rotvec_to_matrix

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
        covariance: (P, P) Gauss-Newton covariance of the camera parameters at the solution, in
            the order of the solver (per camera 1..C-1: the rotation increment applied on the
            left, as a rotation vector in radians, then the translation; then the C focal factors
            when refined): ``sigma² (A + gauge)⁻¹`` with ``A`` the reduced normal matrix (points
            eliminated, final robust weights), ``sigma²`` the weighted residual variance per degree
            of freedom and the scale gauge fixed. It is the scatter the observations' own noise
            would cause, a lower bound on the error when their errors are correlated; inf where
            the parameters are not determined; None unless ``BundleOptions.covariance``.
    """

    R: np.ndarray
    t: np.ndarray
    X: np.ndarray
    focal_scale: np.ndarray
    median_error_initial_px: float
    median_error_final_px: float
    nfev: int
    success: bool
    covariance: np.ndarray | None = None


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
        max_nfev: evaluations per IRLS round; irls_rounds: reweighting rounds at most.
        settle_deg: reweighting stops once a round turns no camera by more than this (and moves
            no camera centre by more than the same fraction of a radian of its baseline).
        covariance: also compute :attr:`BundleResult.covariance` (one more evaluation of the
            normal equations at the end; callers that only rank or warm-start rigs skip it).
    """

    refine_focal: bool = False
    loss: str = "soft_l1"
    f_scale_px: float = 4.0
    max_nfev: int = 30
    irls_rounds: int = 3
    settle_deg: float = 0.0
    covariance: bool = False


#: Bounds of the focal-length factors bundle adjustment may apply.
FOCAL_RANGE = (0.25, 4.0)


def _settled(before: tuple, after: tuple, tol_deg: float) -> bool:
    """True when the cameras moved less than ``tol_deg`` (rotations, translation directions
    relative to the rig's size) and the focal factors by less than ``tol_deg`` in radians."""
    if tol_deg <= 0:
        return False
    (R0, t0, s0), (R1, t1, s1) = before, after
    turn = np.degrees(
        np.arccos(np.clip((np.trace(np.swapaxes(R0, 1, 2) @ R1, axis1=1, axis2=2) - 1) / 2, -1, 1))
    )
    size = max(float(np.linalg.norm(t0, axis=1).max()), 1e-12)
    moved = np.degrees(np.linalg.norm(t1 - t0, axis=1).max() / size)
    return bool(turn.max() < tol_deg and moved < tol_deg and np.abs(s1 - s0).max() < np.radians(tol_deg))


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


def _adjugate3(H: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Adjugates (N, 3, 3) and inverse determinants (N,) of symmetric (N, 3, 3) matrices."""
    a, b_, c = H[:, 0, 0], H[:, 0, 1], H[:, 0, 2]
    d, e, f = H[:, 1, 1], H[:, 1, 2], H[:, 2, 2]
    A00, A01, A02 = d * f - e * e, c * e - b_ * f, b_ * e - c * d
    A11, A12, A22 = a * f - c * c, b_ * c - a * e, a * d - b_ * b_
    det = a * A00 + b_ * A01 + c * A02
    inv = 1.0 / np.where(np.abs(det) > 1e-300, det, 1e-300)
    return np.stack([A00, A01, A02, A01, A11, A12, A02, A12, A22], -1).reshape(-1, 3, 3), inv


def _inv3(H: np.ndarray) -> np.ndarray:
    """Batched inverse of symmetric positive (N, 3, 3) matrices by the adjugate."""
    adj, inv = _adjugate3(H)
    return adj * inv[:, None, None]


def _solve3(H: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Batched solve of symmetric positive (N, 3, 3) systems by the adjugate (faster than
    ``np.linalg.solve`` on many tiny systems): (N, 3, 3), (N, 3) -> (N, 3)."""
    adj, inv = _adjugate3(H)
    return np.einsum("nij,nj->ni", adj, b) * inv[:, None]


@dataclass
class _ReducedProblem:
    """The bundle adjustment with the points eliminated (variable projection). The parameters
    are the poses of cameras 1..C-1 (a rotation increment applied on the left and the
    translation) and optionally C focal factors; the points are re-solved for every camera
    estimate. Observations live in a dense (N, C) layout, weight 0 where a camera does not see a
    point; ``irls`` holds the current robust weights."""

    O: np.ndarray  # (N, C, 2) observations
    W: np.ndarray  # (N, C) confidences
    S: np.ndarray  # (N, C) noise scales, pixels
    focal: np.ndarray  # (C,)
    refine_focal: bool
    irls: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        N, C = self.W.shape
        self.seen = self.W > 0
        self.base = np.sqrt(self.W) / self.S * self.focal  # (N, C) scale of each residual
        self.nc = 6 * (C - 1)
        self.nf = C if self.refine_focal else 0
        self.irls = np.ones((N, C))

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
        gz = np.where(self.seen, g * s / z, 0.0)
        r[~self.seen] = 0.0
        return r, gz, RX, pr, g

    @staticmethod
    def point_jacobian(Rs: np.ndarray, gz: np.ndarray, pr: np.ndarray) -> np.ndarray:
        """d r / d X (N, 2C, 3): camera c's rows ``gz [[1, 0, -x], [0, 1, -y]] R_c`` written out
        (``d r / d Xc = gz [[1, 0, -x], [0, 1, -y]]``, ``gz`` and ``(x, y)`` of :meth:`project`)."""
        N, C = gz.shape
        R2 = Rs[:, 2]  # (C, 3)
        J0 = gz[..., None] * (Rs[:, 0] - pr[..., 0, None] * R2)
        J1 = gz[..., None] * (Rs[:, 1] - pr[..., 1, None] * R2)
        return np.stack([J0, J1], -2).reshape(N, 2 * C, 3)

    def triangulate(self, Rs, ts, s, fallback: np.ndarray) -> np.ndarray:
        """Points from scratch: weighted DLT (depth-reweighted); ``fallback`` where it fails."""
        P = np.concatenate([Rs, ts[:, :, None]], -1)
        Xp = triangulate_dlt(P, self.O / s[:, None], np.sqrt(self.W) / self.S * self.irls)
        bad = ~np.isfinite(Xp).all(-1)
        Xp[bad] = fallback[bad]
        return Xp

    def refine_points(self, Rs, ts, s, Xp: np.ndarray, iters: int = 2) -> np.ndarray:
        """Gauss-Newton steps on every point's own weighted reprojection error."""
        N, C = self.W.shape
        for _ in range(iters):
            r, gz, _, pr, _ = self.project(Rs, ts, s, Xp)
            Jp = self.point_jacobian(Rs, gz, pr)
            H = np.matmul(np.swapaxes(Jp, 1, 2), Jp)
            H += (1e-9 * np.trace(H, axis1=1, axis2=2) + 1e-300)[:, None, None] * np.eye(3)
            g = np.matmul(np.swapaxes(Jp, 1, 2), r.reshape(N, 2 * C, 1))[..., 0]
            Xp = Xp - _solve3(H, g)
        return Xp

    def normal_equations(self, Rs, ts, s, Xp) -> tuple[np.ndarray, np.ndarray, float]:
        """Reduced normal equations ``A = sum_p Jrᵀ Jr``, ``g = sum_p Jrᵀ r`` of the camera
        parameters, ``Jr = (I - J_p H⁻¹ J_pᵀ) J_c`` per point, and the cost ``sum r²``."""
        N, C = self.W.shape
        nc, nf = self.nc, self.nf
        r, gz, RX, pr, g = self.project(Rs, ts, s, Xp)
        Jc = np.zeros((N, C, 2, nc + nf))
        x, y = pr[..., 0], pr[..., 1]
        v1, v2, v3 = RX[..., 0], RX[..., 1], RX[..., 2]
        for c in range(1, C):
            k = 6 * (c - 1)
            q = gz[:, c]
            # rotation: -(d r / d Xc) [RX]x, written out; translation: d r / d Xc
            Jc[:, c, 0, k : k + 6] = (
                np.stack(
                    [
                        -x[:, c] * v2[:, c],
                        v3[:, c] + x[:, c] * v1[:, c],
                        -v2[:, c],
                        np.ones(N),
                        np.zeros(N),
                        -x[:, c],
                    ],
                    -1,
                )
                * q[:, None]
            )
            Jc[:, c, 1, k : k + 6] = (
                np.stack(
                    [
                        -v3[:, c] - y[:, c] * v2[:, c],
                        y[:, c] * v1[:, c],
                        v1[:, c],
                        np.zeros(N),
                        np.ones(N),
                        -y[:, c],
                    ],
                    -1,
                )
                * q[:, None]
            )
        for c in range(nf):
            Jc[:, c, :, nc + c] = np.where(self.seen[:, c, None], g[:, c, None] * pr[:, c], 0.0)
        Jc = Jc.reshape(N, 2 * C, nc + nf)
        Jp = self.point_jacobian(Rs, gz, pr)
        H = np.matmul(np.swapaxes(Jp, 1, 2), Jp)
        H += (1e-9 * np.trace(H, axis1=1, axis2=2) + 1e-300)[:, None, None] * np.eye(3)
        JpJc = np.matmul(np.swapaxes(Jp, 1, 2), Jc)  # (N, 3, P)
        M = np.matmul(_inv3(H), JpJc)  # H⁻¹ J_pᵀ J_c, (N, 3, P)
        Jc2 = Jc.reshape(-1, nc + nf)
        A = Jc2.T @ Jc2 - np.tensordot(JpJc, M, axes=([0, 1], [0, 1]))
        rf = r.reshape(N, 2 * C)
        Jpr = np.matmul(np.swapaxes(Jp, 1, 2), rf[..., None])[..., 0]  # J_pᵀ r, (N, 3)
        grad = Jc2.T @ rf.reshape(-1) - np.tensordot(M, Jpr, axes=([0, 1], [0, 1]))
        return A, grad, float(np.sum(r**2))

    def covariance(self, Rs, ts, s, Xp) -> np.ndarray:
        """Gauss-Newton covariance (P, P) of the camera parameters (see :class:`BundleResult`).
        The scale gauge (all translations and points scaled about camera 0's centre, which moves
        camera ``c``'s translation along ``t_c - R_c R_0ᵀ t_0``) is the one direction the
        residuals do not see; it is fixed by adding it to ``A``, which leaves the covariance of
        every scale-free quantity (rotations, focal factors) unchanged."""
        N, C = self.W.shape
        A, _, cost = self.normal_equations(Rs, ts, s, Xp)
        P = A.shape[0]
        multi = self.seen.sum(1) >= 2  # a point seen once fits its ray exactly: no information
        # the scale direction is not a free parameter
        dof = 2 * int(self.seen[multi].sum()) - (P - 1) - 3 * int(multi.sum())
        if dof <= 0:  # an exact fit says nothing about the noise: not determined
            return np.full((P, P), np.inf)
        sigma2 = cost / dof
        n = np.zeros(P)
        n[: self.nc] = np.concatenate([[0, 0, 0, *(ts[c] - Rs[c] @ Rs[0].T @ ts[0])] for c in range(1, C)])
        norm = np.linalg.norm(n)
        scale = max(float(np.trace(A)) / max(P, 1), 1e-300)
        if norm > 0:
            A = A + scale * np.outer(n / norm, n / norm)
        try:
            if not np.isfinite(A).all() or np.linalg.cond(A) > 1e14:
                raise np.linalg.LinAlgError
            return sigma2 * np.linalg.inv(A)
        except np.linalg.LinAlgError:
            return np.full((P, P), np.inf)

    def step(self, Rs, ts, s, delta: np.ndarray):
        """The cameras after a parameter step (rotations updated on the left, camera 0 fixed;
        focal factors kept within :data:`FOCAL_RANGE`)."""
        C = len(Rs)
        d = delta[: self.nc].reshape(C - 1, 6)
        Rn = Rs.copy()
        Rn[1:] = rotvec_to_matrix(d[:, :3]) @ Rs[1:]
        tn = ts.copy()
        tn[1:] = ts[1:] + d[:, 3:]
        sn = np.clip(s + delta[self.nc :], *FOCAL_RANGE) if self.nf else s
        return Rn, tn, sn

    def pixel_errors(self, Rs, ts, s, Xp) -> np.ndarray:
        """Errors (N, C) in units of sigma (pixels when every sigma is 1), without the
        confidences and robust weights."""
        keep = self.irls
        self.irls = np.ones_like(keep)
        r, *_ = self.project(Rs, ts, s, Xp)
        self.irls = keep
        return np.linalg.norm(r, axis=-1) / np.maximum(np.sqrt(self.W), 1e-300)

    def levenberg_marquardt(self, Rs, ts, s, Xp, max_iter: int, tol: float = 1e-8):
        """Minimise the weighted squared residuals over the cameras (points re-solved at each
        step, warm-started). Returns the cameras, points, cost evaluations and convergence."""
        lam = 1e-3
        A, grad, cost = self.normal_equations(Rs, ts, s, Xp)
        evals, converged = 1, False
        P = len(grad)
        for _ in range(max_iter):
            diag = np.maximum(np.diag(A), 1e-12 * max(np.abs(np.diag(A)).max(), 1e-300))
            accepted = False
            while lam < 1e10:
                delta = np.linalg.solve(A + lam * np.diag(diag) + 1e-15 * np.eye(P), -grad)
                Rn, tn, sn = self.step(Rs, ts, s, delta)
                Xn = self.refine_points(Rn, tn, sn, Xp, iters=1)
                r, *_ = self.project(Rn, tn, sn, Xn)
                new_cost = float(np.sum(r**2))
                evals += 1
                if np.isfinite(new_cost) and new_cost <= cost:
                    accepted = True
                    break
                lam *= 4.0
            if not accepted:
                converged = True
                break
            gain = (cost - new_cost) / max(cost, 1e-300)
            Rs, ts, s, Xp = Rn, tn, sn, Xn
            lam = max(lam / 3.0, 1e-9)
            A, grad, cost = self.normal_equations(Rs, ts, s, Xp)
            if gain < tol or np.abs(delta).max() < 1e-12:
                converged = True
                break
        return Rs, ts, s, Xp, evals, converged


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
    ``focal[c] * sqrt(w_k) * (s_c * π(R_c X_p + t_c) - obs_k) / sigma_k``, where ``obs`` are
    normalized coordinates computed with the initial focal ``focal[c]`` and ``s_c`` the focal
    factor (1 unless ``options.refine_focal``). Levenberg–Marquardt on the reduced camera system
    (points eliminated), the robust loss by iteratively reweighted least squares.

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
    prob = _ReducedProblem(O, W, S, focal, options.refine_focal)
    seen = prob.seen
    Rs, ts, s = R.copy(), t.copy(), np.ones(C)
    Xp = np.asarray(X, dtype=np.float64).copy()
    e0 = (prob.pixel_errors(Rs, ts, s, Xp) * S)[seen]
    med0 = float(np.median(e0)) if e0.size else 0.0
    nfev, ok = 0, True
    for it in range(options.irls_rounds if options.loss != "linear" else 1):
        e = prob.pixel_errors(Rs, ts, s, Xp)
        fs = max(options.f_scale_px, float(np.median(e[seen]))) if it == 0 else options.f_scale_px
        prob.irls = _robust_weights(e, options.loss, fs)
        Xp = prob.refine_points(Rs, ts, s, prob.triangulate(Rs, ts, s, Xp), iters=2)
        if prob.nc + prob.nf == 0:
            Xp = prob.refine_points(Rs, ts, s, Xp, iters=3)
            break
        before = (Rs, ts, s)
        Rs, ts, s, Xp, evals, converged = prob.levenberg_marquardt(Rs, ts, s, Xp, options.max_nfev)
        nfev, ok = nfev + evals, ok and converged
        if it > 0 and _settled(before, (Rs, ts, s), options.settle_deg):
            break
    prob.irls = _robust_weights(prob.pixel_errors(Rs, ts, s, Xp), options.loss, options.f_scale_px)
    Xp = prob.refine_points(Rs, ts, s, prob.triangulate(Rs, ts, s, Xp), iters=3)
    e1 = (prob.pixel_errors(Rs, ts, s, Xp) * S)[seen]
    med1 = float(np.median(e1)) if e1.size else 0.0
    cov = None
    if options.covariance:
        cov = prob.covariance(Rs, ts, s, Xp) if prob.nc + prob.nf else np.zeros((0, 0))
    return BundleResult(Rs, ts, Xp, np.asarray(s, dtype=np.float64).copy(), med0, med1, nfev, ok, cov)
