"""3D pose metrics as the 3D-pose literature reports them.

All functions take batched poses ``(..., J, 3)`` in millimetres and are missing-joint aware: a
joint is evaluated only where both the prediction and the ground truth are finite and the optional
``mask`` (..., J) is True. Errors are root-relative by default (joint ``root`` subtracted from both
poses; the root joint itself, whose error is then 0, stays in the mean as in the Human3.6M
protocol). A pose whose root is missing cannot be root-centred and is left out entirely.

* MPJPE: mean per-joint position error (mm) after root alignment.
* N-MPJPE: MPJPE after scaling the root-relative prediction by the optimal scale (Rhodin et al.,
  CVPR 2018) — for predictions with unknown scale (self-calibrated rigs, "arbitrary" units).
* P-MPJPE: MPJPE after a per-pose similarity Procrustes alignment (rotation, scale, translation).
* PCK@150: fraction of joints within 150 mm (root-relative), as in MPI-INF-3DHP; AUC: mean PCK
  over thresholds 0..150 mm in 5 mm steps; NPCK: PCK after optimal scaling (Rhodin et al.).

PCK, AUC and NPCK are fractions in [0, 1]; errors are in the units of the inputs (mm).
:func:`joint_errors` gives the per-pose-per-joint errors behind every metric, so per-joint and
per-clip breakdowns are simple reductions; :func:`evaluate_poses` does them all at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from .errors import InputError
from .geometry.alignment import apply_similarity, optimal_scale, procrustes
from .parallel import map_chunks
from .skeleton import default_joint_names

if TYPE_CHECKING:
    from .pss import PSSModel

Align = Literal["none", "scale", "procrustes"]
PCK_THRESHOLD_MM = 150.0
AUC_THRESHOLDS_MM = np.linspace(0, 150, 31)


def _prepare(
    pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape or pred.ndim < 2 or pred.shape[-1] != 3:
        raise InputError(
            f"prediction shape {pred.shape} and ground-truth shape {gt.shape} must be equal (..., J, 3)"
        )
    valid = np.isfinite(pred).all(-1) & np.isfinite(gt).all(-1)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        try:
            valid = valid & np.broadcast_to(mask, valid.shape)
        except ValueError:
            raise InputError(f"mask shape {mask.shape} does not match poses {pred.shape[:-1]}") from None
    return pred, gt, valid


def joint_errors(
    pred: np.ndarray,
    gt: np.ndarray,
    mask: np.ndarray | None = None,
    root: int | None = 0,
    align: Align = "none",
) -> np.ndarray:
    """Per-pose, per-joint Euclidean errors.

    Args:
        pred: (..., J, 3) predicted poses.
        gt: (..., J, 3) ground-truth poses (same units).
        mask: (..., J) joints to evaluate (broadcastable); NaN joints are excluded anyway.
        root: root joint subtracted from both poses, or None for absolute errors
            (``align="procrustes"`` fits its own translation and ignores ``root``).
        align: ``"none"``; ``"scale"`` (optimal scale of the root-relative prediction, N-MPJPE);
            ``"procrustes"`` (similarity Procrustes per pose, P-MPJPE; needs >= 3 valid joints;
            residuals below 1e-6, numerical noise of the alignment, are reported as 0).
    Returns:
        (..., J) errors; NaN for joints (or whole poses) that were not evaluated.
    """
    pred, gt, valid = _prepare(pred, gt, mask)
    if align == "procrustes":
        R, s, t = procrustes(pred, gt, scale=True, weights=valid)
        err = np.linalg.norm(apply_similarity(pred, R, s, t) - gt, axis=-1)
        err = np.where(err < 1e-6, 0.0, err)  # numerical noise of the alignment (nm)
        return np.where(valid & np.isfinite(err), err, np.nan)
    else:
        if root is not None:
            pred = pred - pred[..., root : root + 1, :]
            gt = gt - gt[..., root : root + 1, :]
            valid = valid & valid[..., root : root + 1]
        if align == "scale":
            s = optimal_scale(pred, gt, valid)
            pred = pred * s[..., None, None]
        elif align != "none":
            raise ValueError(f"unknown align {align!r} (none, scale, procrustes)")
    err = np.linalg.norm(pred - gt, axis=-1)
    return np.where(valid & np.isfinite(err), err, np.nan)


def _all_errors(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray, root: int) -> _Errors:
    """The (N, J) errors of (N, J, 3) poses without alignment, with optimal scale and after
    Procrustes (:func:`joint_errors`), computed in chunks of poses on threads
    (:func:`~epipolarpose.parallel.map_chunks`; one pass over 400k poses at once spent half its
    time in page faults); identical to one call per alignment on all poses (every pose is aligned
    on its own)."""
    modes = ((root, "none"), (root, "scale"), (None, "procrustes"))
    return tuple(  # type: ignore[return-value]
        map_chunks(lambda p, g, v, r=r, a=a: joint_errors(p, g, v, r, a), pred, gt, valid) for r, a in modes
    )


def _nanmean(a: np.ndarray, axis: Any = None) -> Any:
    n = np.isfinite(a).sum(axis)
    s = np.where(np.isfinite(a), a, 0.0).sum(axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return s / np.where(n > 0, n, np.nan)


def _pck_of(err: np.ndarray, threshold: float) -> float:
    ok = np.isfinite(err)
    return float((err[ok] <= threshold).mean()) if ok.any() else float("nan")


def _auc_of(err: np.ndarray, thresholds: np.ndarray) -> float:
    e = err[np.isfinite(err)]
    if not e.size:
        return float("nan")
    th = np.asarray(thresholds, dtype=np.float64)
    order = np.argsort(th, kind="stable")
    # one pass: the first (sorted) threshold each error is within, then cumulative counts
    first = np.searchsorted(th[order], e, side="left")
    within = np.cumsum(np.bincount(first, minlength=len(th) + 1)[: len(th)])
    return float(np.mean(within / e.size))


def mpjpe(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None, root: int | None = 0) -> float:
    """Mean per-joint position error (mm) over all evaluated joints of (..., J, 3) poses."""
    return float(_nanmean(joint_errors(pred, gt, mask, root, "none")))


def n_mpjpe(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None, root: int | None = 0) -> float:
    """MPJPE (mm) after optimal scaling of each root-relative prediction (Rhodin et al. 2018)."""
    return float(_nanmean(joint_errors(pred, gt, mask, root, "scale")))


def p_mpjpe(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None) -> float:
    """MPJPE (mm) after a similarity Procrustes alignment of each pose (protocol #2)."""
    return float(_nanmean(joint_errors(pred, gt, mask, None, "procrustes")))


def pck(
    pred: np.ndarray,
    gt: np.ndarray,
    threshold: float = PCK_THRESHOLD_MM,
    mask: np.ndarray | None = None,
    root: int | None = 0,
) -> float:
    """Fraction of evaluated joints whose root-relative error is <= ``threshold`` mm."""
    return _pck_of(joint_errors(pred, gt, mask, root, "none"), threshold)


def npck(
    pred: np.ndarray,
    gt: np.ndarray,
    threshold: float = PCK_THRESHOLD_MM,
    mask: np.ndarray | None = None,
    root: int | None = 0,
) -> float:
    """PCK after optimal scaling of each root-relative prediction (Rhodin et al. 2018)."""
    return _pck_of(joint_errors(pred, gt, mask, root, "scale"), threshold)


def auc(
    pred: np.ndarray,
    gt: np.ndarray,
    thresholds: np.ndarray = AUC_THRESHOLDS_MM,
    mask: np.ndarray | None = None,
    root: int | None = 0,
) -> float:
    """Area under the PCK curve: mean PCK over ``thresholds`` (default 0..150 mm, 31 steps)."""
    return _auc_of(joint_errors(pred, gt, mask, root, "none"), thresholds)


def _summary(e_none: np.ndarray, e_scale: np.ndarray, e_proc: np.ndarray) -> dict[str, float | int]:
    def f(x: float) -> float | None:
        return None if not np.isfinite(x) else float(x)

    n_eval = int(np.isfinite(e_none).sum())
    return {
        "mpjpe": f(_nanmean(e_none)),
        "n_mpjpe": f(_nanmean(e_scale)),
        "p_mpjpe": f(_nanmean(e_proc)),
        "pck150": f(_pck_of(e_none, PCK_THRESHOLD_MM)),
        "auc": f(_auc_of(e_none, AUC_THRESHOLDS_MM)),
        "npck150": f(_pck_of(e_scale, PCK_THRESHOLD_MM)),
        "n_poses": int(e_none.shape[0]),
        "n_poses_evaluated": int(np.isfinite(e_none).any(-1).sum()),
        "n_joints_evaluated": n_eval,
        "n_joints_total": int(e_none.size),
    }


def evaluate_poses(
    pred: np.ndarray,
    gt: np.ndarray,
    *,
    clips: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    pss_model: PSSModel | list[PSSModel] | None = None,
    joint_names: list[str] | None = None,
    root: int = 0,
    groups: np.ndarray | None = None,
) -> dict[str, Any]:
    """All metrics with per-joint and per-clip breakdowns, JSON-ready.

    The per-pose errors and PSS assignments are computed once; every breakdown reduces them.

    Args:
        pred: (N, J, 3) or (..., J, 3) predictions (mm).
        gt: same shape, ground truth (mm).
        clips: (N,) clip name of every pose (flattened batch), for the per-clip breakdown.
        mask: (..., J) joints to evaluate.
        pss_model: one or several :class:`~epipolarpose.pss.PSSModel` for ``pss@k`` entries.
        joint_names: J names (default :func:`~epipolarpose.skeleton.default_joint_names`).
        root: root joint of the root-relative errors.
        groups: (N,) a label per pose (e.g. the camera): adds ``"per_group"``, the summary of
            every group (in order of first appearance).
    Returns:
        ``{"summary": {...}, "per_joint": {name: {...}}, "per_clip": {clip: {...}}}`` (and
        ``"per_group"``); metric keys
        are ``mpjpe, n_mpjpe, p_mpjpe`` (mm), ``pck150, auc, npck150`` (fractions), counts
        ``n_poses, n_poses_evaluated, n_joints_evaluated, n_joints_total``, and ``pss@k``.
        Metrics with nothing to evaluate are None.
    """
    pred, gt, valid = _prepare(pred, gt, mask)
    J = pred.shape[-2]
    pred = pred.reshape(-1, J, 3)
    gt = gt.reshape(-1, J, 3)
    valid = valid.reshape(-1, J)
    N = pred.shape[0]
    if clips is not None:
        clips = np.asarray(clips).astype(str).reshape(-1)
        if clips.shape[0] != N:
            raise InputError(f"clips has {clips.shape[0]} entries for {N} poses")
    errors = _all_errors(pred, gt, valid, root)
    models = [] if pss_model is None else (pss_model if isinstance(pss_model, list) else [pss_model])
    pred_for_pss = np.where(valid[..., None], pred, np.nan)
    assignments = [(m.k, m.assign(gt), m.assign(pred_for_pss)) for m in models]
    summary = _summary(*errors)
    summary.update(_pss_entries(assignments, slice(None)))
    names = joint_names if joint_names is not None else default_joint_names(J)
    if len(names) != J:
        raise InputError(f"{len(names)} joint names for {J} joints")
    out = {
        "summary": summary,
        "per_joint": _per_joint(errors, names),
        "per_clip": _per_clip(errors, clips, assignments) if clips is not None else {},
    }
    if groups is not None:
        groups = np.asarray(groups).reshape(-1)
        if groups.shape[0] != N:
            raise InputError(f"groups has {groups.shape[0]} entries for {N} poses")
        out["per_group"] = _per_clip(errors, groups, assignments)
    return out


_Errors = tuple[np.ndarray, np.ndarray, np.ndarray]  # (N, J) errors: none, scale, procrustes
_Assignments = list[tuple[int, np.ndarray, np.ndarray]]  # (k, GT centroid (N,), prediction centroid (N,))


def _pss_entries(assignments: _Assignments, sel: np.ndarray | slice) -> dict[str, float | None]:
    """``pss@k`` of the poses ``sel`` for every PSS model's centroid assignments."""
    out: dict[str, float | None] = {}
    for k, a_gt, a_pred in assignments:
        g, p = a_gt[sel], a_pred[sel]
        ok = g >= 0
        out[f"pss@{k}"] = float((g[ok] == p[ok]).mean()) if ok.any() else None
    return out


def _per_joint(errors: _Errors, names: list[str]) -> dict[str, dict[str, Any]]:
    """Per-joint MPJPE, N-MPJPE, P-MPJPE, PCK@150 and count, by joint name."""
    keep = ("mpjpe", "n_mpjpe", "p_mpjpe", "pck150", "n_joints_evaluated")
    per_joint = {}
    for j, name in enumerate(names):
        col = (slice(None), slice(j, j + 1))
        entry = _summary(*(e[col] for e in errors))
        per_joint[name] = {k: v for k, v in entry.items() if k in keep}
    return per_joint


def _per_clip(errors: _Errors, clips: np.ndarray, assignments: _Assignments) -> dict[Any, dict[str, Any]]:
    """Every summary metric per clip (or any label per pose; in order of first appearance): the
    poses are sorted by label once, so each clip is a slice."""
    names, first, inverse = np.unique(clips, return_index=True, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(inverse.reshape(-1), minlength=len(names)))])
    sorted_errors = tuple(e[order] for e in errors)
    sorted_assignments = [(k, g[order], p[order]) for k, g, p in assignments]
    per_clip = {}
    for i in np.argsort(first, kind="stable"):
        sel = slice(bounds[i], bounds[i + 1])
        entry = _summary(*(e[sel] for e in sorted_errors))
        entry.update(_pss_entries(sorted_assignments, sel))
        per_clip[names[i].item()] = entry
    return per_clip
