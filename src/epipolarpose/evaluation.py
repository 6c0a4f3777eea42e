"""Matching 3D pose predictions with their ground truth, for ``evaluate`` and ``pss fit|score``.

Matching rule between a prediction file (PRED) and a ground-truth file (GT) (:func:`load_pair`):

1. PRED has ``poses3d_camera`` (C, F, J, 3) and GT has a rig (``rig_json``): every camera's
   prediction is compared with the GT transformed into that camera's frame (``R X + t``). This is
   how self-calibrated labels (first camera's frame, arbitrary units) are scored.
2. otherwise PRED's ``poses3d_world`` (or ``poses3d``) against GT's ``poses3d_world`` (or
   ``poses3d``): :data:`~epipolarpose.formats.WORLD_POSE_KEYS`, the as-stored precedence of
   :mod:`epipolarpose.formats`.

A ``valid`` (F, J) key in PRED masks joints. Frame and joint counts must match; joint names, when
both files have them, must be equal. Units come from each file's ``units`` key, else its rig, else
"unknown"; :func:`check_units` warns when MPJPE, PCK and AUC (absolute errors) are not meaningful
(``PosePair.absolute_ok``); the scale-aligned N-MPJPE and P-MPJPE are in the ground truth's units.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .camera import Rig
from .errors import InputError
from .formats import WORLD_POSE_KEYS, open_npz, pose_key
from .geometry.alignment import optimal_scale
from .metrics import evaluate_poses
from .parallel import map_chunks
from .pss import PSSModel
from .skeleton import root_relative

__all__ = [
    "GroundTruthPoses",
    "PSSOptions",
    "PosePair",
    "check_counts",
    "check_units",
    "fit_in_sample",
    "load_centroids",
    "load_ground_truth",
    "evaluate_files",
    "load_pair",
    "pss_fit_poses",
    "score_pss",
    "prediction_units",
]


@dataclass
class GroundTruthPoses:
    """Ground truth read by :func:`load_ground_truth`."""

    poses: np.ndarray  # (F, J, 3)
    key: str
    clips: np.ndarray | None
    rig: Any
    joint_names: list[str] | None
    units: str = "unknown"


@dataclass
class PosePair:
    """Predictions and ground truth matched for evaluation (see the module docstring of :mod:`epipolarpose.evaluation`)."""

    pred: np.ndarray  # (N, J, 3)
    gt: np.ndarray  # (N, J, 3)
    mask: np.ndarray | None  # (N, J)
    clips: np.ndarray | None  # (N,)
    cameras: np.ndarray | None  # (N,) camera index in camera mode
    joint_names: list[str] | None
    mode: str
    units: str
    warnings: list[str] = field(default_factory=list)
    gt_units: str = "unknown"
    absolute_ok: bool = True  # MPJPE, PCK, AUC comparable (same units, scale near 1)


def load_ground_truth(path: Path) -> GroundTruthPoses:
    """GT poses (F, J, 3) under :data:`~epipolarpose.formats.WORLD_POSE_KEYS`, all finite, with
    the optional ``rig_json``, ``clip`` (F,) and ``joint_names``."""
    d = open_npz(path)
    key = pose_key(d, WORLD_POSE_KEYS)
    if key is None:
        raise InputError(
            f"{path}: missing key 'poses3d_world' (or 'poses3d') (found: {', '.join(sorted(d)) or 'none'})"
        )
    poses = np.asarray(d[key], dtype=np.float64)
    if poses.ndim != 3 or poses.shape[-1] != 3:
        raise InputError(f"{path}: key {key!r} has shape {poses.shape}, expected (F, J, 3)")
    bad = ~np.isfinite(poses).all((-1, -2))
    if bad.any():
        raise InputError(
            f"{path}: ground truth {key!r} contains NaN/inf in {int(bad.sum())} of {len(poses)} frames "
            f"(first: frame {int(np.argmax(bad))})"
        )
    rig = Rig.from_json(str(d["rig_json"]), source=f"{path}:rig_json") if "rig_json" in d else None
    clips = None
    if "clip" in d:
        clips = np.asarray(d["clip"]).astype(str).reshape(-1)
        if clips.shape[0] != poses.shape[0]:
            raise InputError(f"{path}: 'clip' has {clips.shape[0]} entries for {poses.shape[0]} frames")
    names = [str(n) for n in d["joint_names"]] if "joint_names" in d else None
    units = str(d["units"]) if "units" in d else (rig.units if rig is not None else "unknown")
    return GroundTruthPoses(poses, key, clips, rig, names, units)


def prediction_units(d: dict[str, np.ndarray], path: Path) -> str:
    """PRED's units: its ``units`` key, else its rig's units, else ``"unknown"``."""
    if "units" in d:
        return str(d["units"])
    if "rig_json" in d:
        return Rig.from_json(str(d["rig_json"]), source=f"{path}:rig_json").units
    return "unknown"


def load_pair(pred_path: Path, gt_path: Path, camera: str = "all") -> PosePair:
    """Read PRED and GT files and match them (rule in the module docstring).

    Args:
        pred_path: labels.npz (``poses3d_camera`` and/or ``poses3d_world``) or an npz with
            ``poses3d`` (N, J, 3); optional ``valid`` (F, J).
        gt_path: gt.npz (``poses3d_world`` + ``rig_json``) or an npz with ``poses3d`` (N, J, 3).
        camera: ``"all"`` or a camera index (camera mode only).
    """
    g = load_ground_truth(gt_path)
    d = open_npz(pred_path)
    units = prediction_units(d, pred_path)
    if "poses3d_camera" in d and g.rig is not None:
        m = _match_in_cameras(d, g, pred_path, gt_path, camera)
    else:
        m = _match_as_stored(d, g, pred_path, gt_path, camera)
    mask = _prediction_mask(d, pred_path, g.poses.shape[:2], m.views)
    pred_names = [str(n) for n in d["joint_names"]] if "joint_names" in d else None
    if pred_names is not None and g.joint_names is not None and pred_names != g.joint_names:
        raise InputError(f"joint names differ: {pred_path} has {pred_names}, {gt_path} has {g.joint_names}")
    clips = np.tile(g.clips, m.views) if g.clips is not None else None
    pair = PosePair(
        m.pred, m.gt, mask, clips, m.cameras, pred_names or g.joint_names, m.mode, units, m.warnings, g.units
    )
    check_units(pair)
    return pair


@dataclass
class _Match:
    """Predictions and ground truth (N, J, 3) compared pose by pose, and how they were matched:
    ``views`` copies of the F ground-truth frames (one per camera compared), ``cameras`` (N,) the
    camera index of every pose (camera mode only), ``mode`` a description."""

    pred: np.ndarray
    gt: np.ndarray
    views: int
    cameras: np.ndarray | None
    mode: str
    warnings: list[str] = field(default_factory=list)


def _match_in_cameras(
    d: dict[str, np.ndarray], g: GroundTruthPoses, pred_path: Path, gt_path: Path, camera: str
) -> _Match:
    """Rule 1: PRED's ``poses3d_camera`` (C, F, J, 3) against GT in every (or one) camera's frame."""
    F, J = g.poses.shape[:2]
    P = np.asarray(d["poses3d_camera"], dtype=np.float64)
    if P.ndim != 4 or P.shape[-1] != 3:
        raise InputError(f"{pred_path}: key 'poses3d_camera' has shape {P.shape}, expected (C, F, J, 3)")
    C = P.shape[0]
    if C != len(g.rig):
        raise InputError(
            f"{pred_path}: 'poses3d_camera' has {C} cameras but the rig in {gt_path} has {len(g.rig)}"
        )
    cams = _camera_indices(camera, C)
    check_counts(P.shape[1:3], (F, J), pred=f"{pred_path} 'poses3d_camera'", gt=f"{gt_path} '{g.key}'")
    rig = g.rig if len(cams) == C else Rig([g.rig[c] for c in cams], units=g.rig.units)
    G = rig.world_to_camera(g.poses)  # (len(cams), F, J, 3)
    mode = f"poses3d_camera vs GT {g.key} in each camera's frame (cameras {', '.join(map(str, cams))})"
    cameras = np.repeat(np.asarray(cams), F)
    if len(cams) < C:
        P = P[cams]
    return _Match(P.reshape(-1, J, 3), G.reshape(-1, J, 3), len(cams), cameras, mode)


def _camera_indices(camera: str, num_cameras: int) -> list[int]:
    """``--camera``: ``"all"`` or one index below ``num_cameras``."""
    if camera == "all":
        return list(range(num_cameras))
    try:
        cams = [int(camera)]
    except ValueError:
        raise InputError(f"--camera must be 'all' or a camera index, got {camera!r}") from None
    if not 0 <= cams[0] < num_cameras:
        raise InputError(f"--camera {camera}: there are {num_cameras} cameras (0..{num_cameras - 1})")
    return cams


def _match_as_stored(
    d: dict[str, np.ndarray], g: GroundTruthPoses, pred_path: Path, gt_path: Path, camera: str
) -> _Match:
    """Rule 2: PRED's ``poses3d_world`` (or ``poses3d``) against GT as stored."""
    key = pose_key(d, WORLD_POSE_KEYS)
    if key is None:
        if "poses3d_camera" in d:
            raise InputError(
                f"{pred_path} has only 'poses3d_camera': the ground truth {gt_path} needs a rig "
                "('rig_json') to compare in camera frames"
            )
        raise InputError(
            f"{pred_path}: missing key 'poses3d_camera', 'poses3d_world' or 'poses3d' "
            f"(found: {', '.join(sorted(d)) or 'none'})"
        )
    pred = np.asarray(d[key], dtype=np.float64)
    if pred.ndim != 3 or pred.shape[-1] != 3:
        raise InputError(f"{pred_path}: key {key!r} has shape {pred.shape}, expected (N, J, 3)")
    check_counts(pred.shape[:2], g.poses.shape[:2], pred=f"{pred_path} '{key}'", gt=f"{gt_path} '{g.key}'")
    warnings = []
    if camera != "all":
        warnings.append(f"--camera {camera} ignored: {pred_path} is compared as {key}")
    return _Match(pred, g.poses, 1, None, f"{key} vs GT {g.key}", warnings)


def _prediction_mask(
    d: dict[str, np.ndarray], pred_path: Path, fj: tuple[int, int], reps: int
) -> np.ndarray | None:
    """PRED's ``valid`` (F, J), repeated for ``reps`` cameras -> (reps * F, J); None without."""
    if "valid" not in d:
        return None
    v = np.asarray(d["valid"]).astype(bool)
    if v.shape != fj:
        raise InputError(f"{pred_path}: key 'valid' has shape {v.shape}, expected ({fj[0]}, {fj[1]})")
    return np.tile(v, (reps, 1))


def check_counts(pred_fj: tuple[int, int], gt_fj: tuple[int, int], *, pred: str, gt: str) -> None:
    """:class:`InputError` unless the (frames, joints) counts of the predictions and the ground
    truth agree; ``pred`` and ``gt`` name them in the message (file and key)."""
    if pred_fj[0] != gt_fj[0]:
        raise InputError(f"frame counts differ: {pred} has {pred_fj[0]} frames, {gt} has {gt_fj[0]}")
    if pred_fj[1] != gt_fj[1]:
        raise InputError(f"joint counts differ: {pred} has {pred_fj[1]} joints, {gt} has {gt_fj[1]}")


def check_units(pair: PosePair) -> None:
    """Warn (and clear ``pair.absolute_ok``) when MPJPE/PCK/AUC are not meaningful: predictions in
    other units than the ground truth (arbitrary ones) or needing a scale far from 1."""
    known = ("unknown", pair.gt_units) if pair.gt_units != "unknown" else ("mm", "unknown")
    if pair.units not in known:
        gt = pair.gt_units if pair.gt_units != "unknown" else "the ground truth's units"
        pair.warnings.append(
            f"prediction units are {pair.units!r}, the ground truth's {gt!r}: MPJPE, PCK and AUC are not "
            "meaningful; use N-MPJPE, P-MPJPE and NPCK"
        )
        pair.absolute_ok = False
        return
    s = map_chunks(
        lambda p, g, m: optimal_scale(root_relative(p), root_relative(g), m), pair.pred, pair.gt, pair.mask
    )
    med = float(np.nanmedian(s)) if np.isfinite(s).any() else float("nan")
    if np.isfinite(med) and not 0.67 < med < 1.5:
        pair.absolute_ok = False
        pair.warnings.append(
            f"predictions need a scale of {med:.3g} to match the ground truth (units are not mm?): "
            "MPJPE, PCK and AUC are not meaningful; use N-MPJPE, P-MPJPE and NPCK"
        )


def load_centroids(paths: Sequence[Path], num_joints: int) -> list[PSSModel]:
    """PSS centroid files, checked to be for ``num_joints`` joints."""
    models = []
    for p in paths:
        m = PSSModel.load(p)
        if m.num_joints != num_joints:
            raise InputError(f"{p}: centroids are for {m.num_joints} joints, the poses have {num_joints}")
        models.append(m)
    return models


#: In-sample PSS centroids are fitted on at most this many evenly spaced ground-truth poses.
IN_SAMPLE_MAX_POSES = 20_000


def fit_in_sample(
    gt: np.ndarray,
    ks: Sequence[int],
    notes: list[str],
    log: Callable[[str], None] | None = None,
    max_poses: int = IN_SAMPLE_MAX_POSES,
) -> list[PSSModel]:
    """PSS models with ``k`` in ``ks`` fitted on the ground truth (N, J, 3) itself (in-sample; on
    ``max_poses`` evenly spaced poses when there are more: 50 or 100 pose structures need no
    more, and k-means on 400k poses took most of ``evaluate``'s time); a ``k`` that cannot be
    fitted is skipped with a note appended to ``notes``."""
    models = []
    if len(gt) > max_poses:
        if log is not None:
            log(f"PSS centroids: {max_poses} evenly spaced poses of the {len(gt)} ground-truth poses")
        gt = gt[np.linspace(0, len(gt) - 1, max_poses).round().astype(int)]
    for k in ks:
        if len(gt) < 2 * k:
            notes.append(f"PSS@{k} skipped: only {len(gt)} ground-truth poses to fit {k} centroids")
            continue
        if log is not None:
            log(f"fitting PSS centroids k={k} on {len(gt)} ground-truth poses (in-sample)...")
        try:
            models.append(PSSModel.fit(gt, k=k, seed=0))
        except InputError as e:
            notes.append(f"PSS@{k} skipped: {e}")
    return models


@dataclass(frozen=True)
class PSSOptions:
    """Where :func:`evaluate_files` gets its PSS centroids.

    Attributes:
        centroids: centroid files from ``pss fit``; when empty, centroids are fitted on the ground
            truth itself (in-sample) for every ``k`` in ``in_sample_k``.
        in_sample_k: cluster counts fitted in-sample (none: no PSS without centroid files).
    """

    centroids: Sequence[Path] = ()
    in_sample_k: Sequence[int] = ()


def evaluate_files(
    pred: Path,
    gt: Path,
    *,
    camera: str = "all",
    pss: PSSOptions = PSSOptions(),
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Every metric of PRED against GT (:func:`load_pair`, then
    :func:`~epipolarpose.metrics.evaluate_poses`), with PSS as ``pss`` says; per camera too when
    several are compared.

    Returns the JSON-ready result of ``epipolarpose evaluate`` (``warnings`` included); ``log``
    receives progress messages.
    """
    pair = load_pair(pred, gt, camera)
    J = pair.gt.shape[1]
    notes: list[str] = []
    if pss.centroids:
        models = load_centroids(list(pss.centroids), J)
        pss_source: Any = [str(c) for c in pss.centroids]
    else:
        models = fit_in_sample(pair.gt, pss.in_sample_k, notes, log)
        pss_source = "in-sample"
    result: dict[str, Any] = {
        "pred": str(pred),
        "gt": str(gt),
        "mode": pair.mode,
        "units": pair.units,
        "gt_units": pair.gt_units,
        "absolute_metrics_meaningful": pair.absolute_ok,
    }
    several = pair.cameras is not None and len(np.unique(pair.cameras)) > 1
    metrics = evaluate_poses(
        pair.pred,
        pair.gt,
        clips=pair.clips,
        mask=pair.mask,
        pss_model=models,
        joint_names=pair.joint_names,
        groups=pair.cameras if several else None,
    )
    per_group = metrics.pop("per_group", None)
    result.update(metrics)
    if per_group is not None:
        result["per_camera"] = {str(int(c)): per_group[c] for c in sorted(per_group)}
    result["pss_centroids"] = pss_source
    result["warnings"] = pair.warnings + notes
    return result


def pss_fit_poses(
    paths: Sequence[Path], ks: Sequence[int], frame: str = "auto"
) -> tuple[np.ndarray, list[str] | None]:
    """The ground-truth poses of several files for fitting PSS centroids with every ``k`` in ``ks``:
    ``(poses (N, J, 3), joint names or None)``. ``frame``: ``"camera"`` (every camera's frame,
    needs ``rig_json``), ``"world"`` (as stored) or ``"auto"`` (camera when a rig is present).
    Raises :class:`InputError` for a ``k`` below 2 or above the number of poses."""
    if frame not in ("auto", "camera", "world"):
        raise InputError(f"--frame must be auto, camera or world, got {frame!r}")
    if any(kk < 2 for kk in ks):
        raise InputError(f"--k must be >= 2, got {ks}")
    poses: list[np.ndarray] = []
    names = None
    for path in paths:
        g = load_ground_truth(path)
        use_cam = frame == "camera" or (frame == "auto" and g.rig is not None)
        if use_cam and g.rig is None:
            raise InputError(f"{path}: --frame camera needs a rig ('rig_json')")
        p = g.rig.world_to_camera(g.poses).reshape(-1, *g.poses.shape[1:]) if use_cam else g.poses
        if poses and p.shape[1] != poses[0].shape[1]:
            raise InputError(
                f"joint counts differ: {path} has {p.shape[1]} joints, {paths[0]} has {poses[0].shape[1]}"
            )
        poses.append(p)
        names = names or g.joint_names
    allp = np.concatenate(poses)
    if max(ks) > len(allp):  # check before writing any file
        raise InputError(f"--k {max(ks)} needs at least {max(ks)} ground-truth poses, got {len(allp)}")
    return allp, names


def score_pss(pair: PosePair, centroids: Sequence[Path]) -> list[tuple[int, dict[str, Any]]]:
    """``(k, details)`` for every centroid file: :meth:`~epipolarpose.pss.PSSModel.score_details`
    of a matched pair plus ``centroids`` (the file); masked joints count as missing predictions."""
    models = load_centroids(list(centroids), pair.gt.shape[1])
    pred3 = pair.pred if pair.mask is None else np.where(pair.mask[..., None], pair.pred, np.nan)
    scores = []
    for path, m in zip(centroids, models):
        r = m.score_details(pred3, pair.gt)
        r["centroids"] = str(path)
        scores.append((m.k, r))
    return scores
