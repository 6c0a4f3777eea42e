"""Robust multi-view triangulation of every frame and joint (view rejection, left/right swap
repair), the vector median, reprojection errors, and triangulation with a known rig.

Batched over frames and joints: one rig's views are combined through the compact DLT normal
equations of :mod:`.dlt`, so adding or removing a view is an addition, not a new solve.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..camera import Rig
from ..parallel import thread_map
from ..skeleton import LEFT_RIGHT_PAIRS, flip_permutation
from . import single_threaded
from .dlt import IDX9, solve9, triangulate_dlt


def reprojection_errors(rig: Rig, X: np.ndarray, keypoints: np.ndarray, distort: bool = True) -> np.ndarray:
    """Pixel distance between the projections of ``X`` and the detections.

    Args:
        rig: C cameras.
        X: (..., 3) world points.
        keypoints: (C, ..., 2) pixels (distorted, as detected).
    Returns:
        (C, ...) pixels, NaN where either is missing.
    """
    d = rig.project(X, distort=distort) - keypoints
    return np.sqrt(d[..., 0] ** 2 + d[..., 1] ** 2)


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


class _RigViews:
    """Per-camera constant parts of the DLT normal equations of fixed cameras ``P`` (C, 3, 4):
    ``AᵀA = w² ((x²+y²) p₃p₃ᵀ - x (p₃p₁ᵀ+p₁p₃ᵀ) - y (p₃p₂ᵀ+p₂p₃ᵀ) + p₁p₁ᵀ + p₂p₂ᵀ)``."""

    def __init__(self, P: np.ndarray) -> None:
        self.P = P
        p0, p1, p2 = P[:, 0], P[:, 1], P[:, 2]
        o = lambda u, v: np.einsum("ci,cj->cij", u, v)  # noqa: E731
        i, j = np.array(IDX9).T
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
        # one (M, 3) x (3, 3C) product for all cameras: numpy's broadcast matmul of tiny 3x3
        # matrices is several times slower
        h = X.reshape(-1, 3) @ self.P[:, :, :3].reshape(3 * C, 3).T + self.P[:, :, 3].reshape(-1)
        h = np.moveaxis(h.reshape(X.shape[:-1] + (C, 3)), -2, 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            return h[..., :2] / h[..., 2:3], h[..., 2]

    def solve(self, Mv: np.ndarray, use: np.ndarray) -> np.ndarray:
        """Triangulate from the views in ``use`` (C, N) with one depth-reweighting pass -> (N, 3)."""
        Mu = Mv * use[..., None]
        X = solve9(Mu.sum(0))
        _, z = self.project(X)
        good = np.isfinite(z) & (z > 0)
        iz2 = np.where(good, 1.0 / np.where(good, z, 1.0) ** 2, 0.0)
        iz2 = iz2 / np.maximum(iz2.max(0, keepdims=True), 1e-300)
        Xn = solve9((Mu * iz2[..., None]).sum(0))
        X = np.where(np.isfinite(Xn), Xn, X)
        X[use.sum(0) < 2] = np.nan
        return X

    def solve_loo(self, Mv: np.ndarray, use: np.ndarray) -> np.ndarray:
        """Leave-one-view-out solutions (C, N, 3) (no reweighting); NaN where < 2 others remain."""
        Mu = Mv * use[..., None]
        X = solve9(Mu.sum(0)[None] - Mu)
        X[(use.sum(0)[None] - use) < 2] = np.nan
        return X


def undo_swaps(
    x: np.ndarray, w: np.ndarray, swapped: np.ndarray, left_right: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Exchange left/right joints of the views flagged in ``swapped`` (C, F).

    x (C, F, J, D), w (C, F, J) -> corrected copies. ``left_right``: (P, 2) pairs (default: those
    of Human3.6M-17, see :func:`swap_pairs`)."""
    x, w = np.array(x, copy=True), np.array(w, copy=True)
    c, f = np.nonzero(swapped)
    if len(c):
        perm = flip_permutation(swap_pairs(x.shape[2], left_right), x.shape[2])
        x[c, f] = x[c, f][:, perm]
        w[c, f] = w[c, f][:, perm]
    return x, w


def swap_pairs(num_joints: int, left_right: np.ndarray | None = None) -> np.ndarray:
    """(P, 2) left/right pairs whose swaps are repaired: ``left_right`` when given, else
    Human3.6M's for 17 joints and none otherwise."""
    if left_right is not None:
        return np.asarray(left_right, dtype=np.int64).reshape(-1, 2)
    return np.array(LEFT_RIGHT_PAIRS if num_joints == 17 else [], dtype=np.int64).reshape(-1, 2)


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


@dataclass(frozen=True)
class TriangulationOptions:
    """Knobs of :func:`triangulate_robust`.

    Attributes:
        min_threshold_px: floor of the view-rejection threshold (pixels).
        mad_factor: the threshold is ``max(min_threshold_px, mad_factor x median reprojection
            error)`` of all views, per chunk of frames: a noise scale measured on the data.
        accept_px: joints whose kept views still disagree by more are invalid (default: the
            threshold).
        fix_swaps: detect and undo left/right-exchanged views (>= 3 cameras).
        left_right: (left, right) joint pairs for ``fix_swaps`` (e.g.
            :func:`~epipolarpose.skeleton.left_right_pairs` of the joint names); ``None``: those of
            Human3.6M-17 when there are 17 joints.
        chunk_frames: frames processed at once (bounds memory).
        workers: chunks triangulated at once in threads (numpy releases the GIL in the batched
            arithmetic); 0: one per available core.
    """

    min_threshold_px: float = 8.0
    mad_factor: float = 4.0
    accept_px: float | None = None
    fix_swaps: bool = True
    left_right: tuple[tuple[int, int], ...] | None = None
    chunk_frames: int = 5000
    workers: int = 0


class _Chunk:
    """The views of a chunk of frames being triangulated: observations ``xs`` (C, N, 2) and
    weights ``ws`` (C, N) over the chunk's N = f·J joints, the views in use, their normal
    equations ``Mv`` (C, N, 9), the current points ``X`` (N, 3) and per-view pixel errors ``err``."""

    def __init__(self, views: _RigViews, xs: np.ndarray, ws: np.ndarray, focal: np.ndarray) -> None:
        self.views, self.xs, self.ws, self.fpx = views, xs, ws, focal[:, None]
        self.use = ws > 0
        self.Mv = views.normal9(xs, ws)
        self.X = views.solve(self.Mv, self.use)
        self.err = np.where(self.use, self.errors(self.X, slice(None)), np.nan)

    def errors(self, X: np.ndarray, idx: np.ndarray | slice) -> np.ndarray:
        """Pixel errors (C, n) of points ``X`` (n, 3) against the observations ``idx``."""
        p, _ = self.views.project(X)
        return np.sqrt(np.sum((p - self.xs[:, idx]) ** 2, axis=-1)) * self.fpx

    def worst_used_error(self, idx: np.ndarray | slice = slice(None)) -> np.ndarray:
        """Largest pixel error over the views in use, per joint (n,)."""
        return np.where(self.use[:, idx], np.nan_to_num(self.err[:, idx], nan=np.inf), 0.0).max(0)

    def threshold(self, options: TriangulationOptions) -> float:
        """The view-rejection threshold: a robust noise scale of all views' errors, floored."""
        vals = self.err[self.use & np.isfinite(self.err)]
        if not vals.size:
            return options.min_threshold_px
        return max(options.min_threshold_px, options.mad_factor * float(np.median(vals)))

    def retriangulate(self, idx: np.ndarray) -> None:
        """Solve the joints ``idx`` again from their views in use; refresh their errors."""
        self.X[idx] = self.views.solve(self.Mv[:, idx], self.use[:, idx])
        self.err[:, idx] = np.where(self.ws[:, idx] > 0, self.errors(self.X[idx], idx), np.nan)

    def repair_swaps(self, J: int, pairs: np.ndarray, thr: float, min_threshold_px: float) -> np.ndarray:
        """Left/right swaps, tested in frames whose left/right joints disagree: every view's
        joints are triangulated from the *other* views; if its left/right-exchanged joints
        reproject better by half or more (summed over the pairs), the view of that frame is
        exchanged back. Returns the swapped views (C, f)."""
        C = len(self.xs)
        f = self.xs.shape[1] // J
        swapped = np.zeros((C, f), bool)
        lr = np.concatenate([pairs[:, 0], pairs[:, 1]])
        bad_f = np.flatnonzero((self.worst_used_error().reshape(f, J)[:, lr] > thr).any(-1))
        if not len(bad_f):
            return swapped
        n_l = (bad_f[:, None] * J + pairs[:, 0]).ravel()  # (b*P,)
        n_r = (bad_f[:, None] * J + pairs[:, 1]).ravel()
        idx = np.concatenate([n_l, n_r])
        X_loo = self.views.solve_loo(self.Mv[:, idx], self.use[:, idx])  # (C, 2bP, 3)
        P = self.views.P
        h = np.einsum("cij,cnj->cni", P[:, :, :3], X_loo) + P[:, None, :, 3]
        with np.errstate(divide="ignore", invalid="ignore"):  # points on a camera plane: inf/NaN
            own = h[..., :2] / h[..., 2:3]  # view c's joints seen from the others
        k = len(n_l)
        pl, pr = own[:, :k], own[:, k:]
        xl, xr = self.xs[:, n_l], self.xs[:, n_r]
        e_orig = np.linalg.norm(xl - pl, axis=-1) + np.linalg.norm(xr - pr, axis=-1)
        e_swap = np.linalg.norm(xr - pl, axis=-1) + np.linalg.norm(xl - pr, axis=-1)
        both = np.isfinite(e_orig) & np.isfinite(e_swap)
        nb = len(bad_f)
        so = (np.where(both, e_orig, 0.0) * self.fpx).reshape(C, nb, -1).sum(-1)
        ss = (np.where(both, e_swap, 0.0) * self.fpx).reshape(C, nb, -1).sum(-1)
        npairs = both.reshape(C, nb, -1).sum(-1)
        flip = (npairs >= 2) & (ss < 0.5 * so) & (so > 2 * min_threshold_px * npairs)
        if not flip.any():
            return swapped
        c_i, b_i = np.nonzero(flip)
        fr = bad_f[b_i]
        swapped[c_i, fr] = True
        perm = flip_permutation(pairs, J)
        xs3, ws3 = self.xs.reshape(C, f, J, 2), self.ws.reshape(C, f, J)
        xs3[c_i, fr] = xs3[c_i, fr][:, perm]
        ws3[c_i, fr] = ws3[c_i, fr][:, perm]
        self.use = self.ws > 0
        touched = (np.unique(fr)[:, None] * J + np.arange(J)).ravel()
        self.Mv[:, touched] = self.views.normal9(self.xs[:, touched], self.ws[:, touched])
        self.X[touched] = self.views.solve(self.Mv[:, touched], self.use[:, touched])
        self.err[:, touched] = np.where(self.use[:, touched], self.errors(self.X[touched], touched), np.nan)
        return swapped

    def reject_views(self, thr: float) -> None:
        """Up to ``C - 2`` times, while the kept views of a joint disagree (largest error above
        ``thr``), drop the view whose removal leaves the most consistent set (smallest largest
        error of the others' triangulation) and triangulate the joint again."""
        C = len(self.xs)
        eye = np.eye(C, dtype=bool)[:, :, None]
        active = np.flatnonzero((self.worst_used_error() > thr) & (self.use.sum(0) > 2))
        for _ in range(max(C - 2, 0)):
            if not len(active):
                break
            ua = self.use[:, active]
            X_loo = self.views.solve_loo(self.Mv[:, active], ua)  # (C_left_out, n, 3)
            proj, _ = self.views.project(X_loo)  # (C_view, C_left_out, n, 2)
            e_loo = np.linalg.norm(proj - self.xs[:, None, active], axis=-1) * self.fpx[:, :, None]
            e_loo = np.where(ua[:, None] & ~eye, np.nan_to_num(e_loo, nan=np.inf), 0.0)
            r_loo = np.where(ua, e_loo.max(0), np.inf)  # (C_left_out, n)
            best = np.argmin(r_loo, axis=0)
            fine = np.isfinite(r_loo[best, np.arange(len(active))])
            active = active[fine]
            self.use[best[fine], active] = False
            self.retriangulate(active)
            active = active[(self.worst_used_error(active) > thr) & (self.use[:, active].sum(0) > 2)]

    def accept(self, acc_px: float) -> np.ndarray:
        """Final errors of every observed view; joints with fewer than two kept views, behind a
        camera, or whose kept views disagree by more than ``acc_px`` become NaN. -> valid (N,)."""
        proj, depth = self.views.project(self.X)
        err = np.sqrt(np.sum((proj - self.xs) ** 2, axis=-1)) * self.fpx
        self.err = np.where(self.ws > 0, err, np.nan)
        in_front = np.all((depth > 0) | ~self.use, axis=0)
        valid = (self.use.sum(0) >= 2) & np.isfinite(self.X).all(-1) & in_front
        valid &= self.worst_used_error() <= acc_px
        self.X[~valid] = np.nan
        return valid


def triangulate_robust(
    Rt: np.ndarray,
    x: np.ndarray,
    w: np.ndarray,
    focal: np.ndarray,
    options: TriangulationOptions = TriangulationOptions(),
    progress: bool = False,
) -> RobustTriangulation:
    """Robust per-joint triangulation of every frame, fully batched over frames and joints.

    1. All views of every joint are triangulated (confidence-weighted DLT, one depth-reweighting
       pass); the rejection threshold is ``max(min_threshold_px, mad_factor * median reprojection
       error)`` — a robust noise scale measured on the data, per chunk of frames.
    2. Left/right swaps (:meth:`_Chunk.repair_swaps`, pairs of :func:`swap_pairs`; detectors flip
       whole bodies).
    3. View rejection (:meth:`_Chunk.reject_views`).
    4. Joints with fewer than two kept views, behind a camera, or whose kept views still disagree
       by more than ``accept_px`` (default: the threshold) are NaN with ``valid = False``.

    Args:
        Rt: (C, 3, 4) camera extrinsics ``[R | t]``.
        x: (C, F, J, 2) undistorted normalized coordinates, NaN where missing.
        w: (C, F, J) confidences (0 = missing).
        focal: (C,) focal lengths in pixels (to express errors in pixels).
        options: :class:`TriangulationOptions`.
        progress: a progress bar over chunks of frames.
    """
    Rt = np.asarray(Rt, dtype=np.float64)
    C, F, J, _ = x.shape
    focal = np.asarray(focal, dtype=np.float64).reshape(C)
    scale = max(float(np.abs(Rt[:, :, 3]).max()), 1e-12)
    views = _RigViews(Rt * np.array([1.0, 1.0, 1.0, 1.0 / scale]))
    pairs = swap_pairs(J, options.left_right)
    fix_swaps = options.fix_swaps and len(pairs) > 0 and C >= 3
    out = RobustTriangulation(
        points=np.full((F, J, 3), np.nan),
        valid=np.zeros((F, J), bool),
        reprojection_px=np.full((C, F, J), np.nan),
        used=np.zeros((C, F, J), bool),
        swapped=np.zeros((C, F), bool),
        threshold_px=[],
    )
    starts = list(range(0, F, options.chunk_frames))

    def run(k: int) -> float:
        s = starts[k]
        e = min(F, s + options.chunk_frames)
        f = e - s
        xs = np.array(x[:, s:e], dtype=np.float64).reshape(C, f * J, 2)
        ws = np.where(np.isfinite(xs).all(-1), np.asarray(w[:, s:e], dtype=np.float64).reshape(C, -1), 0.0)
        chunk = _Chunk(views, xs, ws, focal)
        thr = chunk.threshold(options)
        if fix_swaps:
            out.swapped[:, s:e] = chunk.repair_swaps(J, pairs, thr, options.min_threshold_px)
        chunk.reject_views(thr)
        valid = chunk.accept(thr if options.accept_px is None else options.accept_px)
        out.points[s:e] = (chunk.X * scale).reshape(f, J, 3)
        out.valid[s:e] = valid.reshape(f, J)
        out.reprojection_px[:, s:e] = chunk.err.reshape(C, f, J)
        out.used[:, s:e] = (chunk.use & valid[None]).reshape(C, f, J)
        return thr

    # chunks write disjoint slices of ``out``
    out.threshold_px = thread_map(
        run, range(len(starts)), options.workers, "triangulate" if progress else None
    )
    return out


@single_threaded
def triangulate_rig(
    rig: Rig,
    keypoints: np.ndarray,
    scores: np.ndarray,
    options: TriangulationOptions | None = TriangulationOptions(),
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Triangulate detections with a known rig.

    Args:
        rig: C cameras (world frame and units of the rig).
        keypoints: (C, F, J, 2) pixels in the distorted images, NaN where missing.
        scores: (C, F, J) confidences, 0 where missing.
        options: robust triangulation (view rejection, left/right swap repair,
            :func:`triangulate_robust`); ``None``: a plain confidence-weighted DLT of all observed
            views.
        progress: a progress bar.
    Returns:
        points (F, J, 3) world (NaN where invalid), valid (F, J), reprojection error (C, F, J) in
        pixels of the distorted image (NaN where not observed).
    """
    keypoints = np.asarray(keypoints, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    xn = rig.undistort(keypoints)
    Rt = np.stack([c.Rt for c in rig.cameras])
    if options is not None:
        res = triangulate_robust(Rt, xn, scores, rig.K[:, [0, 1], [0, 1]].mean(1), options, progress=progress)
        X, valid = res.points, res.valid
    else:
        w = np.where(np.isfinite(xn).all(-1), scores, 0.0)
        X = triangulate_dlt(Rt, np.moveaxis(xn, 0, -2), np.moveaxis(w, 0, -1))
        valid = np.isfinite(X).all(-1)
    reproj = reprojection_errors(rig, np.where(valid[..., None], X, np.nan), keypoints)
    return X, valid, reproj
