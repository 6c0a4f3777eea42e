"""Similarity alignment of point sets, poses and camera rigs (for evaluation).

* :func:`procrustes` — batched, weighted Umeyama (1991): the rotation ``R``, scale ``s`` and
  translation ``t`` minimising ``sum_n w_n |s R x_n + t - y_n|²``. NaN points get weight 0.
* :func:`optimal_scale` — the scale of N-MPJPE (Rhodin et al., CVPR 2018).
* :func:`rotation_angle_deg` — geodesic angle between rotations.
* :func:`align_rigs` — align a self-calibrated rig (arbitrary units, first camera's frame) onto the
  true rig and report per-camera and pairwise errors.

Everything is batched over leading dimensions (``(..., N, 3)`` point sets, ``(..., 3, 3)``
rotations) and vectorised with numpy (batched SVD), no per-pose Python loops.
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

import numpy as np

from ..camera import Rig
from ..errors import InputError


def _valid_weights(X: np.ndarray, Y: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    """(..., N) float weights, 0 where X or Y has a NaN (or where ``weights`` is 0/False)."""
    w = (np.isfinite(X).all(-1) & np.isfinite(Y).all(-1)).astype(np.float64)
    if weights is not None:
        ww = np.asarray(weights, dtype=np.float64)
        w = w * np.where(np.isfinite(ww), ww, 0.0)
    return w


def procrustes(
    X: np.ndarray,
    Y: np.ndarray,
    scale: bool = True,
    reflection: bool = False,
    weights: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Similarity transform taking ``X`` onto ``Y`` (weighted Umeyama).

    Minimises ``sum_n w_n |s R X_n + t - Y_n|²`` over rotations ``R`` (proper unless
    ``reflection``), ``s > 0`` (fixed to 1 unless ``scale``) and ``t``.

    Args:
        X: (..., N, 3) source points (e.g. a predicted pose).
        Y: (..., N, 3) target points (e.g. the ground-truth pose).
        scale: estimate the scale; otherwise ``s = 1`` (rigid alignment).
        reflection: allow an improper orthogonal ``R`` (det -1).
        weights: (..., N) non-negative weights or a boolean mask; points where ``X`` or ``Y`` is
            NaN get weight 0 automatically.
    Returns:
        ``R`` (..., 3, 3), ``s`` (...,), ``t`` (..., 3). Sets with fewer than 3 points of positive
        weight (or all points coincident) are degenerate: their ``R``, ``s``, ``t`` are NaN.
    """
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    if X.shape != Y.shape or X.shape[-1] != 3:
        raise ValueError(f"procrustes: X {X.shape} and Y {Y.shape} must both be (..., N, 3)")
    w = _valid_weights(X, Y, weights)
    W = w.sum(-1)  # (...,)
    Xz = np.where(w[..., None] > 0, X, 0.0)
    Yz = np.where(w[..., None] > 0, Y, 0.0)
    Wsafe = np.where(W > 0, W, 1.0)[..., None]
    mx = (w[..., None] * Xz).sum(-2) / Wsafe
    my = (w[..., None] * Yz).sum(-2) / Wsafe
    Xc = (Xz - mx[..., None, :]) * np.sqrt(w)[..., None]
    Yc = (Yz - my[..., None, :]) * np.sqrt(w)[..., None]
    cov = np.swapaxes(Yc, -1, -2) @ Xc / Wsafe[..., None]  # (..., 3, 3) = E[(y-my)(x-mx)ᵀ]
    var_x = (Xc**2).sum((-1, -2)) / Wsafe[..., 0]
    U, S, Vt = np.linalg.svd(cov)
    d = np.ones(S.shape)
    if not reflection:
        d[..., 2] = np.sign(np.linalg.det(U @ Vt))
        d[..., 2][d[..., 2] == 0] = 1.0
    R = (U * d[..., None, :]) @ Vt
    if scale:
        s = (S * d).sum(-1) / np.where(var_x > 0, var_x, 1.0)
    else:
        s = np.ones(S.shape[:-1])
    t = my - s[..., None] * np.einsum("...ij,...j->...i", R, mx)
    degenerate = ((w > 0).sum(-1) < 3) | ~(var_x > 0)
    if np.any(degenerate):
        R = np.where(degenerate[..., None, None], np.nan, R)
        s = np.where(degenerate, np.nan, s)
        t = np.where(degenerate[..., None], np.nan, t)
    return R, s, t


def apply_similarity(X: np.ndarray, R: np.ndarray, s: np.ndarray | float, t: np.ndarray) -> np.ndarray:
    """``s R X + t`` for points X (..., N, 3) with R (..., 3, 3), s (...,), t (..., 3)."""
    X = np.asarray(X, dtype=np.float64)
    s = np.asarray(s, dtype=np.float64)
    return s[..., None, None] * (X @ np.swapaxes(R, -1, -2)) + np.asarray(t)[..., None, :]


def optimal_scale(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Scale ``s`` minimising ``sum_j |s pred_j - gt_j|²`` (N-MPJPE, Rhodin et al. 2018).

    Pass root-relative poses (the scale is about the origin). Joints that are NaN in either pose
    or False in ``mask`` are ignored.

    Args:
        pred: (..., J, 3) predicted poses.
        gt: (..., J, 3) ground-truth poses.
        mask: (..., J) optional boolean mask of joints to use.
    Returns:
        (...,) scales; NaN where no usable joint has a non-zero prediction.
    """
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    w = _valid_weights(pred, gt, mask) > 0
    p = np.where(w[..., None], pred, 0.0)
    g = np.where(w[..., None], gt, 0.0)
    num = (p * g).sum((-1, -2))
    den = (p * p).sum((-1, -2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def rotation_angle_deg(R1: np.ndarray, R2: np.ndarray) -> np.ndarray:
    """Geodesic angle (degrees) between rotations, (..., 3, 3) x (..., 3, 3) -> (...,).

    Computed as ``atan2(|axis part|, cos part)`` of ``R1ᵀ R2``, which is accurate near 0° and
    180° (unlike ``arccos((tr - 1) / 2)``).
    """
    D = np.swapaxes(np.asarray(R1, dtype=np.float64), -1, -2) @ np.asarray(R2, dtype=np.float64)
    cos = (np.trace(D, axis1=-2, axis2=-1) - 1.0) / 2.0
    v = np.stack([D[..., 2, 1] - D[..., 1, 2], D[..., 0, 2] - D[..., 2, 0], D[..., 1, 0] - D[..., 0, 1]], -1)
    sin = np.linalg.norm(v, axis=-1) / 2.0
    return np.degrees(np.arctan2(sin, cos))


def _angle_between_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle (degrees) between vectors (..., 3) and (..., 3)."""
    cross = np.linalg.norm(np.cross(a, b), axis=-1)
    return np.degrees(np.arctan2(cross, (a * b).sum(-1)))


def pairwise_rotation_errors_deg(rig_est: Rig, rig_true: Rig) -> np.ndarray:
    """Relative rotation error (degrees) of every camera pair ``i < j`` (in
    ``itertools.combinations`` order): (C (C - 1) / 2,). Gauge-free: it needs no alignment."""
    return np.array(
        [
            float(rotation_angle_deg(rig_est.relative_pose(i, j)[0], rig_true.relative_pose(i, j)[0]))
            for i, j in combinations(range(len(rig_true)), 2)
        ]
    )


def align_rigs(rig_est: Rig, rig_true: Rig) -> tuple[Rig, dict[str, Any]]:
    """Align an estimated rig (any units and world frame) onto the true rig and measure its error.

    The similarity ``X_true = s R X_est + t`` is found in two steps that work for any number of
    cameras (two included, where camera centres alone leave a rotation about the baseline free):

    1. ``R`` is the chordal mean of the per-camera estimates ``R_true,cᵀ R_est,c`` (projection of
       their sum onto SO(3) by SVD), since ``R_est,c = R_true,c R`` for a perfect rig;
    2. ``s`` and ``t`` are the least-squares fit of the rotated estimated centres onto the true
       centres (for a single camera ``s = 1``).

    Cameras are matched by order. The errors that do not depend on the alignment are reported
    too: pairwise relative rotation errors and pairwise baseline-direction errors.

    Args:
        rig_est: the estimated rig (e.g. self-calibrated, ``units="arbitrary"``).
        rig_true: the reference rig (its units, normally mm, are used for centre errors).
    Returns:
        ``(aligned, report)``: ``rig_est`` expressed in ``rig_true``'s world and units, and a
        JSON-ready dict with ``scale``, ``rotation_error_deg`` (C,), ``center_error`` (C,),
        ``units``, ``pairs`` (list of ``[i, j]``), ``pairwise_rotation_error_deg`` (P,),
        ``pairwise_baseline_direction_error_deg`` (P,) and their means/maxima.
    """
    C = len(rig_true)
    if len(rig_est) != C:
        raise InputError(f"align_rigs: estimated rig has {len(rig_est)} cameras, true rig has {C}")
    Re, Rt_ = rig_est.R, rig_true.R
    M = (np.swapaxes(Rt_, -1, -2) @ Re).sum(0)
    U, _, Vt = np.linalg.svd(M)
    d = np.sign(np.linalg.det(U @ Vt)) or 1.0
    R = U @ np.diag([1.0, 1.0, d]) @ Vt
    ce = rig_est.centers @ R.T  # rotated estimated centres
    ct = rig_true.centers
    ce0, ct0 = ce - ce.mean(0), ct - ct.mean(0)
    den = (ce0**2).sum()
    s = float((ce0 * ct0).sum() / den) if C > 1 and den > 0 else 1.0
    if not s > 0:
        raise InputError("align_rigs: the estimated camera centres do not match the true ones (scale <= 0)")
    t = ct.mean(0) - s * ce.mean(0)
    aligned = rig_est.transformed(R, t / s, scale=s)
    aligned.units = rig_true.units

    rot_err = rotation_angle_deg(aligned.R, rig_true.R)
    center_err = np.linalg.norm(aligned.centers - ct, axis=-1)
    pairs = list(combinations(range(C), 2))
    rel_rot_a = pairwise_rotation_errors_deg(rig_est, rig_true)
    base_dir = [
        float(_angle_between_deg(rig_est.relative_pose(i, j)[1], rig_true.relative_pose(i, j)[1]))
        for i, j in pairs
    ]
    rel_rot, base_a = rel_rot_a.tolist(), np.asarray(base_dir)

    def _stats(a: np.ndarray) -> dict[str, float]:
        return {"mean": float(a.mean()) if a.size else 0.0, "max": float(a.max()) if a.size else 0.0}

    report: dict[str, Any] = {
        "cameras": rig_true.names,
        "units": rig_true.units,
        "scale": s,
        "rotation_error_deg": rot_err.tolist(),
        "center_error": center_err.tolist(),
        "pairs": [list(p) for p in pairs],
        "pairwise_rotation_error_deg": rel_rot,
        "pairwise_baseline_direction_error_deg": base_dir,
        "summary": {
            "rotation_error_deg": _stats(rot_err),
            "center_error": _stats(center_err),
            "pairwise_rotation_error_deg": _stats(rel_rot_a),
            "pairwise_baseline_direction_error_deg": _stats(base_a),
        },
    }
    return aligned, report
