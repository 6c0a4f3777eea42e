"""Bundle adjustment of a self-calibrated rig against what the cameras agree on.

Real detectors are not equally good at every landmark, and not from every side: a wrist is the
same physical point in every view, a face seen from behind is a guess, a hip is a guess under
clothes. So the noise is modelled, not assumed: every observation has a noise scale ``sigma``
measured on the data — the median reprojection error of its landmark, seen from its side of
the person (front, side or back: where the person's left-to-right axis points in the camera) —
and the rig minimises a Cauchy loss of the reprojection errors in units of their ``sigma``
(:func:`robust_bundle_adjustment`). Landmarks the cameras disagree on weigh less, whatever the
detector and its landmark set; the scales are re-measured after each adjustment.

All observations of the sampled frames take part (with left/right swaps undone first); the
robust loss, not a hard rejection, decides how much a disagreeing view counts, so that the cost
of different starting rigs can be compared (:func:`rig_cost`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .bundle import BundleObservations, BundleOptions, bundle_adjust
from .dlt import triangulate_dlt
from .observations import NormalizedViews
from .precision import motion_extent
from .rig_assembly import normalize_gauge
from .triangulation import TriangulationOptions, triangulate_robust, undo_swaps

__all__ = ["RefinementOptions", "RobustFit", "rig_cost", "robust_bundle_adjustment", "view_sides"]

#: View sides: the person's front, a side, or its back faces the camera.
SIDES = ("front", "side", "back")


@dataclass(frozen=True)
class RefinementOptions:
    """Knobs of :func:`robust_bundle_adjustment`.

    Attributes:
        min_score: observations below this confidence are left out.
        threshold_px: floor of the robust triangulation that finds left/right swaps (pixels).
        robust_scale: Cauchy scale in units of each observation's sigma.
        noise_model: ``"view"`` (a sigma per landmark and view side), ``"landmark"`` (per
            landmark) or ``"none"`` (one sigma for all).
        rounds: adjustments, each followed by re-measuring the sigmas.
        irls_rounds, max_nfev: of each adjustment (see :class:`~.bundle.BundleOptions`).
        refine_focal: also estimate a focal-length factor per camera.
        min_count: observations a landmark (and side) needs for a sigma of its own.
        covariance: the last adjustment's covariance (:attr:`RobustFit.covariance`); off for the
            quick adjustments that only rank starting rigs.
    """

    min_score: float = 0.3
    threshold_px: float = 8.0
    robust_scale: float = 2.0
    noise_model: str = "view"
    rounds: int = 2
    irls_rounds: int = 4
    max_nfev: int = 100
    refine_focal: bool = False
    min_count: int = 20
    covariance: bool = True


@dataclass
class RobustFit:
    """A rig adjusted by :func:`robust_bundle_adjustment`.

    Attributes:
        R: (C, 3, 3), t: (C, 3) in camera 0's frame with ``|t_1| = 1``.
        focal_scale: (C,) factor on each focal length (1 unless refined).
        cost: mean weighted negative log-likelihood (:func:`cauchy_nll`) of all observations
            at the end, with the sigmas measured at the end (comparable between starting rigs).
        median_error_px: median reprojection error of all observations, before and after.
        observations: number of observations adjusted.
        sigma_px: (J, 4) noise scale of every landmark seen from the front, side and back, and
            over all sides (pixels).
        covariance: (P, P) of the last adjustment's camera parameters
            (:attr:`~.bundle.BundleResult.covariance`; its rotations are those of ``R`` before the
            gauge was normalized, which leaves relative rotations unchanged).
        motion: :func:`~.precision.motion_extent` of the adjusted points.
        frames: frames with a point seen by two cameras or more.
        camera_frames: (C,) of those, the frames in which each camera's observations take part.
    """

    R: np.ndarray
    t: np.ndarray
    focal_scale: np.ndarray
    cost: float
    median_error_px: tuple[float, float]
    observations: int
    sigma_px: np.ndarray
    covariance: np.ndarray | None = None
    motion: float = float("nan")
    frames: int = 0
    camera_frames: np.ndarray | None = None


@dataclass
class _Observations:
    """Swap-corrected observations of a rig's sampled frames (flattened frame x joint points)."""

    X: np.ndarray  # (N, 3) initial points
    cam: np.ndarray  # (M,)
    point: np.ndarray  # (M,)
    xy: np.ndarray  # (M, 2) normalized
    w: np.ndarray  # (M,) confidences
    joint: np.ndarray  # (M,) landmark of each observation
    point_frame: np.ndarray  # (N,) frame of each point
    point_joint: np.ndarray  # (N,) landmark of each point


def _observations(
    views: NormalizedViews, R: np.ndarray, t: np.ndarray, options: RefinementOptions
) -> _Observations:
    """Every observation above ``min_score`` of points seen at least twice, left/right swaps
    undone (found by robust triangulation with the rig); initial points from the robust
    triangulation, else a weighted DLT of all views."""
    C, F, J, _ = views.xn.shape
    w = np.where(views.w >= options.min_score, views.w, 0.0)
    Rt = np.concatenate([R, t[:, :, None]], -1)
    left_right = tuple(map(tuple, views.left_right.tolist()))
    tri_options = TriangulationOptions(min_threshold_px=options.threshold_px, left_right=left_right)
    tri = triangulate_robust(Rt, views.xn, w, views.focal, tri_options)
    xs, ws = undo_swaps(views.xn, w, tri.swapped, views.left_right)
    X = tri.points.reshape(-1, 3)
    dlt = triangulate_dlt(Rt, np.moveaxis(xs, 0, -2), np.moveaxis(ws, 0, -1)).reshape(-1, 3)
    X = np.where(np.isfinite(X).all(-1, keepdims=True), X, dlt)
    xs, ws = xs.reshape(C, -1, 2), ws.reshape(C, -1)
    keep = np.isfinite(X).all(-1) & ((ws > 0).sum(0) >= 2)
    xs, ws, X = xs[:, keep], ws[:, keep], X[keep]
    cam, point = np.nonzero(ws > 0)
    joint = np.tile(np.arange(J), F)[keep]
    frame = np.repeat(np.arange(F), J)[keep]
    return _Observations(X, cam, point, xs[cam, point], ws[cam, point], joint[point], frame, joint)


def view_sides(
    R: np.ndarray, X: np.ndarray, frame: np.ndarray, joint: np.ndarray, left_right: np.ndarray
) -> np.ndarray:
    """Which side of the person every camera sees, per frame: 0 front, 1 side, 2 back, -1 unknown.

    The person's left-to-right axis (the mean over left/right landmark pairs of the unit vectors
    ``right - left``) points to the camera's left (image -x) when the person faces the camera,
    and to its right when the camera sees the back.

    Args:
        R: (C, 3, 3) rotations; X: (N, 3) points; frame, joint: (N,) of every point;
        left_right: (P, 2) landmark pairs (left, right).
    Returns:
        (C, F) int, F = ``frame.max() + 1``.
    """
    C = len(R)
    F = int(frame.max()) + 1 if len(frame) else 0
    J = int(max(joint.max() if len(joint) else 0, left_right.max() if left_right.size else 0)) + 1
    pts = np.full((F, J, 3), np.nan)
    pts[frame, joint] = X
    lr = np.asarray(left_right, dtype=np.int64).reshape(-1, 2)
    d = pts[:, lr[:, 1]] - pts[:, lr[:, 0]]  # (F, P, 3)
    d = d / np.maximum(np.linalg.norm(d, axis=-1, keepdims=True), 1e-12)
    axis = np.nansum(d, axis=1)
    norm = np.linalg.norm(axis, axis=-1)
    axis = axis / np.maximum(norm, 1e-12)[:, None]
    x_cam = np.einsum("ci,fi->cf", R[:, 0], axis)  # the axis along each camera's image x
    side = np.where(x_cam < -0.5, 0, np.where(x_cam > 0.5, 2, 1))
    return np.where(norm[None] > 1e-9, side, -1) if C else side


def _noise_scales(
    error: np.ndarray, joint: np.ndarray, side: np.ndarray, num_joints: int, options: RefinementOptions
) -> np.ndarray:
    """sigma (J, 4): per landmark and side (columns 0-2, :data:`SIDES`) and per landmark (column
    3, also for an unknown side, -1): the median error where a landmark (and side) has
    ``min_count`` observations, else the landmark's, else the global median; never below half
    the global median (a few well-agreeing observations must not dominate)."""
    g = float(np.median(error)) if error.size else 1.0
    sigma = np.full((num_joints, len(SIDES) + 1), g)
    if options.noise_model == "none":
        return sigma
    for j in range(num_joints):
        mj = joint == j
        if mj.sum() >= options.min_count:
            sigma[j] = np.median(error[mj])
        if options.noise_model == "view":
            for s in range(len(SIDES)):
                ms = mj & (side == s)
                if ms.sum() >= options.min_count:
                    sigma[j, s] = np.median(error[ms])
    return np.maximum(sigma, 0.5 * g)


def cauchy_nll(error: np.ndarray, sigma: np.ndarray, robust_scale: float) -> np.ndarray:
    """Negative log-likelihood (up to a constant, in units of 1.5 nats) of 2D errors of norm
    ``error`` under a bivariate Cauchy of scale ``robust_scale * sigma``:
    ``log1p((e / (k sigma))²) + 4/3 log(sigma)``. The scale term matters: the sigmas are measured
    on the errors, and without it a wrong rig, whose errors inflate its sigmas, would look as good
    as the right one (measured: a start 25° off had the lower Cauchy loss of the two)."""
    return np.log1p((error / (robust_scale * sigma)) ** 2) + (4.0 / 3.0) * np.log(sigma)


def _errors(
    R: np.ndarray, t: np.ndarray, focal: np.ndarray, scale: np.ndarray, X: np.ndarray, obs: _Observations
) -> np.ndarray:
    """Reprojection error (M,) of every observation, pixels."""
    Xc = np.einsum("mij,mj->mi", R[obs.cam], X[obs.point]) + t[obs.cam]
    with np.errstate(divide="ignore", invalid="ignore"):  # a point on a camera plane: inf/NaN
        proj = scale[obs.cam, None] * Xc[:, :2] / Xc[:, 2:3]
    return np.linalg.norm(proj - obs.xy, axis=-1) * focal[obs.cam]


def robust_bundle_adjustment(
    views: NormalizedViews, R: np.ndarray, t: np.ndarray, sigma0: float, options: RefinementOptions
) -> RobustFit:
    """Adjust a rig (and the focal lengths when asked) to all observations of ``views`` with a
    Cauchy loss of the errors in units of a per-landmark, per-side noise scale (module docstring).

    Args:
        views: the (sampled) observations.
        R: (C, 3, 3), t: (C, 3) the starting rig.
        sigma0: the starting noise scale of every observation, pixels.
        options: :class:`RefinementOptions`.
    """
    obs = _observations(views, R, t, options)
    J = views.xn.shape[2]
    sigma = np.full((J, len(SIDES) + 1), sigma0)
    side = np.full(len(obs.cam), -1)
    focal = views.focal
    scale = np.ones(len(R))
    X = obs.X
    before = float(np.median(_errors(R, t, focal, scale, X, obs))) if len(obs.cam) else float("nan")
    ba_options = BundleOptions(
        refine_focal=options.refine_focal,
        loss="cauchy",
        f_scale_px=options.robust_scale,
        irls_rounds=options.irls_rounds,
        max_nfev=options.max_nfev,
        settle_deg=0.01,
    )
    for k in range(options.rounds):
        s = sigma[obs.joint, side]
        bundle_obs = BundleObservations(obs.cam, obs.point, obs.xy, obs.w, s)
        # every round but the last only needs a rig good enough to measure the noise scales
        last = k == options.rounds - 1
        opts = (
            replace(ba_options, covariance=options.covariance)
            if last
            else replace(ba_options, irls_rounds=max(1, options.irls_rounds // 2))
        )
        ba = bundle_adjust(R, t, X, focal, bundle_obs, opts)
        R, t, X, scale = ba.R, ba.t, ba.X, ba.focal_scale
        error = _errors(R, t, focal, scale, X, obs)
        sides = view_sides(R, X, obs.point_frame, obs.point_joint, views.left_right)
        side = sides[obs.cam, obs.point_frame[obs.point]]
        sigma = _noise_scales(error, obs.joint, side, J, options)
    s = sigma[obs.joint, side]
    cost = float(np.sum(obs.w * cauchy_nll(error, s, options.robust_scale)) / max(obs.w.sum(), 1e-12))
    Rn, tn, _, _ = normalize_gauge(R, t)
    after = float(np.median(error)) if error.size else float("nan")
    motion = motion_extent(X, obs.point_frame, obs.point_joint)
    frames = len(np.unique(obs.point_frame))
    per_camera = np.array([len(np.unique(obs.point_frame[obs.point[obs.cam == c]])) for c in range(len(R))])
    return RobustFit(
        Rn, tn, scale, cost, (before, after), len(obs.cam), sigma, ba.covariance, motion, frames, per_camera
    )


def rig_cost(
    views: NormalizedViews, R: np.ndarray, t: np.ndarray, sigma0: float, options: RefinementOptions
) -> RobustFit:
    """A quick adjustment of a starting rig with one noise scale for all observations (one
    round, few iterations): its ``cost`` ranks starting rigs."""
    quick = RefinementOptions(
        min_score=options.min_score,
        threshold_px=options.threshold_px,
        robust_scale=options.robust_scale,
        noise_model="none",
        rounds=1,
        irls_rounds=2,
        max_nfev=15,
        refine_focal=options.refine_focal,
        covariance=False,
    )
    return robust_bundle_adjustment(views, R, t, sigma0, quick)
