"""``epipolarpose evaluate`` and ``epipolarpose pss fit|score``: score 3D poses against ground truth.

Matching rule between a prediction file (PRED) and a ground-truth file (GT):

1. PRED has ``poses3d_camera`` (C, F, J, 3) and GT has a rig (``rig_json``): every camera's
   prediction is compared with the GT transformed into that camera's frame (``R X + t``). This is
   how self-calibrated labels (first camera's frame, arbitrary units) are scored.
2. otherwise PRED's ``poses3d_world`` (or ``poses3d``) against GT's ``poses3d_world`` (or
   ``poses3d``).

A ``valid`` (F, J) key in PRED masks joints. Frame and joint counts must match.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import typer

from ..errors import InputError
from ._app import app, sub_app

pss_app = sub_app("pss", "Pose Structure Score: fit pose-structure centroids, score predictions.")

DEFAULT_PSS_K = (50, 100)


@dataclass
class _GT:
    poses: np.ndarray  # (F, J, 3)
    key: str
    clips: np.ndarray | None
    rig: Any
    joint_names: list[str] | None


@dataclass
class PosePair:
    """Predictions and ground truth matched for evaluation (see the module docstring)."""

    pred: np.ndarray  # (N, J, 3)
    gt: np.ndarray  # (N, J, 3)
    mask: np.ndarray | None  # (N, J)
    clips: np.ndarray | None  # (N,)
    cameras: np.ndarray | None  # (N,) camera index in camera mode
    joint_names: list[str] | None
    mode: str
    units: str
    warnings: list[str] = field(default_factory=list)


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    from ..formats import _open_npz

    return _open_npz(path)


def _load_gt(path: Path) -> _GT:
    from ..camera import Rig

    d = _load_npz(path)
    key = "poses3d_world" if "poses3d_world" in d else "poses3d" if "poses3d" in d else None
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
    return _GT(poses, key, clips, rig, names)


def _pred_units(d: dict[str, np.ndarray], path: Path) -> str:
    from ..camera import Rig

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
    g = _load_gt(gt_path)
    d = _load_npz(pred_path)
    F, J = g.poses.shape[:2]
    units = _pred_units(d, pred_path)
    warnings: list[str] = []
    cameras = None
    if "poses3d_camera" in d and g.rig is not None:
        P = np.asarray(d["poses3d_camera"], dtype=np.float64)
        if P.ndim != 4 or P.shape[-1] != 3:
            raise InputError(f"{pred_path}: key 'poses3d_camera' has shape {P.shape}, expected (C, F, J, 3)")
        C = P.shape[0]
        if C != len(g.rig):
            raise InputError(
                f"{pred_path}: 'poses3d_camera' has {C} cameras but the rig in {gt_path} has {len(g.rig)}"
            )
        if camera == "all":
            cams = list(range(C))
        else:
            try:
                cams = [int(camera)]
            except ValueError:
                raise InputError(f"--camera must be 'all' or a camera index, got {camera!r}") from None
            if not 0 <= cams[0] < C:
                raise InputError(f"--camera {camera}: there are {C} cameras (0..{C - 1})")
        _check_counts(P.shape[1:3], (F, J), pred_path, "poses3d_camera", gt_path, g.key)
        G = g.rig.world_to_camera(g.poses)  # (C, F, J, 3)
        pred = P[cams].reshape(-1, J, 3)
        gt = G[cams].reshape(-1, J, 3)
        cameras = np.repeat(np.asarray(cams), F)
        mode = f"poses3d_camera vs GT {g.key} in each camera's frame (cameras {', '.join(map(str, cams))})"
        reps = len(cams)
    else:
        key = "poses3d_world" if "poses3d_world" in d else "poses3d" if "poses3d" in d else None
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
        _check_counts(pred.shape[:2], (F, J), pred_path, key, gt_path, g.key)
        gt = g.poses
        mode = f"{key} vs GT {g.key}"
        reps = 1
        if camera != "all":
            warnings.append(f"--camera {camera} ignored: {pred_path} is compared as {key}")
    mask = None
    if "valid" in d:
        v = np.asarray(d["valid"]).astype(bool)
        if v.shape != (F, J):
            raise InputError(f"{pred_path}: key 'valid' has shape {v.shape}, expected ({F}, {J})")
        mask = np.tile(v, (reps, 1))
    pred_names = [str(n) for n in d["joint_names"]] if "joint_names" in d else None
    if pred_names is not None and g.joint_names is not None and pred_names != g.joint_names:
        raise InputError(f"joint names differ: {pred_path} has {pred_names}, {gt_path} has {g.joint_names}")
    clips = np.tile(g.clips, reps) if g.clips is not None else None
    pair = PosePair(pred, gt, mask, clips, cameras, pred_names or g.joint_names, mode, units, warnings)
    _check_units(pair)
    return pair


def _check_counts(pred_fj: tuple, gt_fj: tuple, pred_path: Path, pkey: str, gt_path: Path, gkey: str) -> None:
    if pred_fj[0] != gt_fj[0]:
        raise InputError(
            f"frame counts differ: {pred_path} '{pkey}' has {pred_fj[0]} frames, "
            f"{gt_path} '{gkey}' has {gt_fj[0]}"
        )
    if pred_fj[1] != gt_fj[1]:
        raise InputError(
            f"joint counts differ: {pred_path} '{pkey}' has {pred_fj[1]} joints, "
            f"{gt_path} '{gkey}' has {gt_fj[1]}"
        )


def _check_units(pair: PosePair) -> None:
    """Warn when MPJPE/PCK in mm are not meaningful (arbitrary units or a scale far from 1)."""
    from ..geometry.alignment import optimal_scale
    from ..skeleton import root_relative

    if pair.units not in ("mm", "unknown"):
        pair.warnings.append(
            f"prediction units are {pair.units!r}: MPJPE, PCK and AUC in mm are not meaningful; "
            "use N-MPJPE, P-MPJPE and NPCK"
        )
        return
    s = optimal_scale(root_relative(pair.pred), root_relative(pair.gt), pair.mask)
    med = float(np.nanmedian(s)) if np.isfinite(s).any() else float("nan")
    if np.isfinite(med) and not 0.67 < med < 1.5:
        pair.warnings.append(
            f"predictions need a scale of {med:.3g} to match the ground truth (units are not mm?): "
            "MPJPE, PCK and AUC are not meaningful; use N-MPJPE, P-MPJPE and NPCK"
        )


def _load_centroids(paths: list[Path], num_joints: int) -> list:
    from ..pss import PSSModel

    models = []
    for p in paths:
        m = PSSModel.load(p)
        if m.num_joints != num_joints:
            raise InputError(f"{p}: centroids are for {m.num_joints} joints, the poses have {num_joints}")
        models.append(m)
    return models


def _fit_in_sample(gt: np.ndarray, ks: tuple[int, ...], notes: list[str]) -> list:
    from ..pss import PSSModel

    models = []
    for k in ks:
        if len(gt) < 2 * k:
            notes.append(f"PSS@{k} skipped: only {len(gt)} ground-truth poses to fit {k} centroids")
            continue
        typer.echo(f"fitting PSS centroids k={k} on {len(gt)} ground-truth poses (in-sample)...", err=True)
        try:
            models.append(PSSModel.fit(gt, k=k, seed=0))
        except InputError as e:
            notes.append(f"PSS@{k} skipped: {e}")
    return models


def _fmt(v: Any, pct: bool = False, width: int = 9) -> str:
    if v is None:
        return "-".rjust(width)
    return f"{100 * v:{width}.1f}" if pct else f"{v:{width}.1f}"


_SUMMARY_ROWS = (
    ("MPJPE", "mpjpe", "mm"),
    ("N-MPJPE", "n_mpjpe", "mm"),
    ("P-MPJPE", "p_mpjpe", "mm"),
    ("PCK@150", "pck150", "%"),
    ("AUC", "auc", "%"),
    ("NPCK@150", "npck150", "%"),
)


def _table(result: dict[str, Any]) -> str:
    s = result["summary"]
    lines = [
        f"{result['mode']}",
        f"poses: {s['n_poses']}  joints evaluated: {s['n_joints_evaluated']}/{s['n_joints_total']}",
        "",
    ]
    lines.append(f"{'metric':<10}{'value':>9}")
    for label, key, unit in _SUMMARY_ROWS:
        lines.append(f"{label:<10}{_fmt(s[key], unit == '%')} {unit}")
    pss_keys = [k for k in s if k.startswith("pss@")]
    for k in pss_keys:
        lines.append(f"{k.upper():<10}{_fmt(s[k], True)} %")
    if pss_keys and result.get("pss_centroids") == "in-sample":
        lines.append(
            "(PSS centroids fitted on this ground truth itself: in-sample; pass --centroids for a held-out set)"
        )
    lines += ["", f"{'joint':<12}{'MPJPE':>9}{'N-MPJPE':>9}{'P-MPJPE':>9}{'PCK@150':>9}"]
    for name, e in result["per_joint"].items():
        lines.append(
            f"{name:<12}{_fmt(e['mpjpe'])}{_fmt(e['n_mpjpe'])}{_fmt(e['p_mpjpe'])}{_fmt(e['pck150'], True)}"
        )
    for title, group in (("clip", result.get("per_clip", {})), ("camera", result.get("per_camera", {}))):
        if len(group) > 1:
            head = f"{title:<24}{'poses':>7}{'MPJPE':>9}{'N-MPJPE':>9}{'P-MPJPE':>9}{'PCK@150':>9}"
            head += "".join(f"{k.upper():>9}" for k in pss_keys)
            lines += ["", head]
            for name, e in group.items():
                row = f"{str(name)[:23]:<24}{e['n_poses']:>7}{_fmt(e['mpjpe'])}{_fmt(e['n_mpjpe'])}"
                row += f"{_fmt(e['p_mpjpe'])}{_fmt(e['pck150'], True)}"
                row += "".join(_fmt(e.get(k), True) for k in pss_keys)
                lines.append(row)
    return "\n".join(lines)


@app.command()
def evaluate(
    pred: Path = typer.Argument(
        ..., help="Predictions: labels.npz (poses3d_camera / poses3d_world) or an npz with poses3d (N, J, 3)."
    ),
    gt: Path = typer.Argument(
        ..., help="Ground truth: gt.npz (poses3d_world + rig_json) or an npz with poses3d (N, J, 3)."
    ),
    centroids: list[Path] = typer.Option(
        None,
        "--centroids",
        "-c",
        metavar="C.npz",
        help="PSS centroid file(s) from 'pss fit' (repeatable). Default: fit k=50 and k=100 on GT itself (in-sample).",
    ),
    camera: str = typer.Option(
        "all", "--camera", help="With poses3d_camera: 'all' cameras or one camera index."
    ),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write all metrics as JSON here."),
) -> None:
    """Score 3D poses against ground truth: MPJPE, N-MPJPE, P-MPJPE, PCK, AUC, NPCK and PSS."""
    from ..io import save_json
    from ..metrics import evaluate_poses

    pair = load_pair(pred, gt, camera)
    J = pair.gt.shape[1]
    notes: list[str] = []
    if centroids:
        models = _load_centroids(list(centroids), J)
        pss_source: Any = [str(c) for c in centroids]
    else:
        models = _fit_in_sample(pair.gt, DEFAULT_PSS_K, notes)
        pss_source = "in-sample"
    result: dict[str, Any] = {"pred": str(pred), "gt": str(gt), "mode": pair.mode, "units": pair.units}
    result.update(evaluate_poses(pair.pred, pair.gt, pair.clips, pair.mask, models, pair.joint_names))
    if pair.cameras is not None and len(np.unique(pair.cameras)) > 1:
        result["per_camera"] = {}
        for c in np.unique(pair.cameras):
            sel = pair.cameras == c
            m = None if pair.mask is None else pair.mask[sel]
            result["per_camera"][str(int(c))] = evaluate_poses(pair.pred[sel], pair.gt[sel], None, m, models)[
                "summary"
            ]
    result["pss_centroids"] = pss_source
    result["warnings"] = pair.warnings + notes
    for w in result["warnings"]:
        typer.echo(f"warning: {w}", err=True)
    typer.echo(_table(result))
    if output is not None:
        save_json(output, result)
        typer.echo(f"wrote {output}", err=True)


def _k_path(output: Path, k: int, several: bool) -> Path:
    s = str(output)
    if "{k}" in s:
        return Path(s.format(k=k))
    if not several:
        return output
    return output.with_name(f"{output.stem}_k{k}{output.suffix or '.npz'}")


@pss_app.command("fit")
def pss_fit(
    gt: list[Path] = typer.Argument(
        ..., help="Ground-truth files: gt.npz (poses3d_world + rig_json) or npz with poses3d (N, J, 3)."
    ),
    output: Path = typer.Option(
        ...,
        "--output",
        "-o",
        help="Centroid file; with several --k, '_k{k}' is inserted before .npz (or put '{k}' in the name).",
    ),
    k: list[int] = typer.Option(list(DEFAULT_PSS_K), "--k", "-k", help="Number of clusters (repeatable)."),
    frame: str = typer.Option(
        "auto",
        "--frame",
        help="'camera': GT in every camera's frame (needs rig_json); 'world': as stored; 'auto': camera when a rig is present.",
    ),
    seed: int = typer.Option(0, "--seed", help="k-means random seed."),
    n_init: int = typer.Option(1, "--n-init", help="k-means restarts (best kept)."),
    max_iter: int = typer.Option(300, "--max-iter", help="Maximum k-means iterations."),
) -> None:
    """Fit PSS pose-structure centroids (k-means on normalised GT poses) and save them."""
    from ..pss import PSSModel

    if frame not in ("auto", "camera", "world"):
        raise InputError(f"--frame must be auto, camera or world, got {frame!r}")
    if any(kk < 2 for kk in k):
        raise InputError(f"--k must be >= 2, got {k}")
    poses, names = [], None
    for path in gt:
        g = _load_gt(path)
        use_cam = frame == "camera" or (frame == "auto" and g.rig is not None)
        if use_cam and g.rig is None:
            raise InputError(f"{path}: --frame camera needs a rig ('rig_json')")
        p = g.rig.world_to_camera(g.poses).reshape(-1, *g.poses.shape[1:]) if use_cam else g.poses
        if poses and p.shape[1] != poses[0].shape[1]:
            raise InputError(
                f"joint counts differ: {path} has {p.shape[1]} joints, {gt[0]} has {poses[0].shape[1]}"
            )
        poses.append(p)
        names = names or g.joint_names
    allp = np.concatenate(poses)
    if max(k) > len(allp):  # check before writing any file
        raise InputError(f"--k {max(k)} needs at least {max(k)} ground-truth poses, got {len(allp)}")
    for kk in dict.fromkeys(k):
        typer.echo(f"fitting k={kk} on {len(allp)} poses...", err=True)
        m = PSSModel.fit(allp, k=kk, seed=seed, n_init=n_init, max_iter=max_iter, joint_names=names)
        out = _k_path(output, kk, len(set(k)) > 1)
        m.save(out)
        typer.echo(f"wrote {out} (k={kk}, {m.n_train} poses)")


@pss_app.command("score")
def pss_score(
    pred: Path = typer.Argument(..., help="Predictions (same files as 'evaluate')."),
    gt: Path = typer.Argument(..., help="Ground truth (same files as 'evaluate')."),
    centroids: list[Path] = typer.Option(
        ..., "--centroids", "-c", metavar="C.npz", help="Centroid file(s) from 'pss fit' (repeatable)."
    ),
    camera: str = typer.Option(
        "all", "--camera", help="With poses3d_camera: 'all' cameras or one camera index."
    ),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write the scores as JSON here."),
) -> None:
    """Pose Structure Score PSS@k of predictions against ground truth."""
    from ..io import save_json

    pair = load_pair(pred, gt, camera)
    models = _load_centroids(list(centroids), pair.gt.shape[1])
    pred3 = pair.pred if pair.mask is None else np.where(pair.mask[..., None], pair.pred, np.nan)
    scores = []
    for path, m in zip(centroids, models):
        r = m.score_details(pred3, pair.gt)
        r["centroids"] = str(path)
        scores.append(r)
        typer.echo(
            f"PSS@{m.k}: {100 * r['pss']:.1f} %  ({r['n_scored']} poses; {r['n_pred_nan']} predictions with "
            f"missing joints counted as misses)  [{path}]"
        )
    if output is not None:
        save_json(output, {"pred": str(pred), "gt": str(gt), "mode": pair.mode, "scores": scores})
        typer.echo(f"wrote {output}", err=True)
