"""``epipolarpose evaluate`` and ``epipolarpose pss fit|score``: score 3D poses against ground truth.

The matching of predictions with ground truth is :mod:`epipolarpose.evaluation`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from ._app import FILE, app, sub_app

pss_app = sub_app("pss", "Pose Structure Score: fit pose-structure centroids, score predictions.")

#: PSS cluster counts: fitted in-sample by `evaluate` without --centroids, the default of `pss fit`.
DEFAULT_PSS_K = (50, 100)


def _fmt(v: Any, pct: bool = False, width: int = 9) -> str:
    if v is None:
        return "-".rjust(width)
    return f"{100 * v:{width}.1f}" if pct else f"{v:{width}.1f}"


#: (label, key, kind): "abs" absolute errors in the ground truth's units (meaningful only when
#: the predictions share them), "aligned" scale-aligned errors in the ground truth's units, "%".
_SUMMARY_ROWS = (
    ("MPJPE", "mpjpe", "abs"),
    ("N-MPJPE", "n_mpjpe", "aligned"),
    ("P-MPJPE", "p_mpjpe", "aligned"),
    ("PCK@150", "pck150", "abs%"),
    ("AUC", "auc", "abs%"),
    ("NPCK@150", "npck150", "%"),
)


def _unit(result: dict[str, Any]) -> str:
    """The ground truth's length unit for the tables (``units`` when nobody says)."""
    u = str(result.get("gt_units", "unknown"))
    return u if u not in ("unknown", "arbitrary") else "units"


def _table(result: dict[str, Any]) -> str:
    s = result["summary"]
    unit = _unit(result)
    absolute = result.get("absolute_metrics_meaningful", True)
    lines = [
        f"{result['mode']}",
        f"poses: {s['n_poses']}  joints evaluated: {s['n_joints_evaluated']}/{s['n_joints_total']}",
        f"lengths in {'the ground truth' + chr(39) + 's units' if unit == 'units' else unit}"
        + ("" if absolute else f"; predictions in {result['units']!r}: MPJPE, PCK, AUC not meaningful (*)"),
        "",
    ]
    lines.append(f"{'metric':<10}{'value':>9}")
    for label, key, kind in _SUMMARY_ROWS:
        shown = "%" if kind.endswith("%") else unit
        flag = " (*)" if kind.startswith("abs") and not absolute else ""
        lines.append(f"{label:<10}{_fmt(s[key], kind.endswith('%'))} {shown}{flag}")
    pss_keys = [k for k in s if k.startswith("pss@")]
    for k in pss_keys:
        lines.append(f"{k.upper():<10}{_fmt(s[k], True)} %")
    if pss_keys and result.get("pss_centroids") == "in-sample":
        lines.append(
            "(PSS centroids fitted on this ground truth itself: in-sample; pass --centroids for a held-out set)"
        )
    lines += ["", f"{'joint':<12}{'MPJPE':>9}{'N-MPJPE':>9}{'P-MPJPE':>9}{'PCK@150':>9}   ({unit}, %)"]
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


@app.command(outputs={"output": FILE})
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
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or progress messages."),
) -> None:
    """Score 3D poses against ground truth: MPJPE, N-MPJPE, P-MPJPE, PCK, AUC, NPCK and PSS."""
    from ..evaluation import PSSOptions, evaluate_files
    from ..io import save_json

    pss = PSSOptions(centroids=centroids or (), in_sample_k=DEFAULT_PSS_K)
    log = None if quiet else (lambda msg: typer.echo(msg, err=True))
    result = evaluate_files(pred, gt, camera=camera, pss=pss, log=log)
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


@pss_app.command("fit", outputs={"output": FILE})
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
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or progress messages."),
) -> None:
    """Fit PSS pose-structure centroids (k-means on normalised GT poses) and save them."""
    from ..evaluation import pss_fit_poses
    from ..pss import KMeansOptions, PSSModel

    allp, names = pss_fit_poses(gt, k, frame)
    outs = {kk: _k_path(output, kk, len(set(k)) > 1) for kk in dict.fromkeys(k)}
    if any(o != output for o in outs.values()) and not quiet:
        typer.echo(
            f"one file per k: {', '.join(str(o) for o in outs.values())} (not {output})",
            err=True,
        )
    for kk in dict.fromkeys(k):
        if not quiet:
            typer.echo(f"fitting k={kk} on {len(allp)} poses...", err=True)
        kmeans = KMeansOptions(n_init=n_init, max_iter=max_iter)
        m = PSSModel.fit(allp, k=kk, seed=seed, joint_names=names, kmeans=kmeans)
        out = outs[kk]
        m.save(out)
        typer.echo(f"wrote {out} (k={kk}, {m.n_train} poses)")


@pss_app.command("score", outputs={"output": FILE})
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
    from ..evaluation import load_pair, score_pss
    from ..io import save_json

    pair = load_pair(pred, gt, camera)
    details = score_pss(pair, centroids)
    scores = [r for _, r in details]
    for path, (k, r) in zip(centroids, details):
        typer.echo(
            f"PSS@{k}: {100 * r['pss']:.1f} %  ({r['n_scored']} poses; {r['n_pred_nan']} predictions with "
            f"missing joints counted as misses)  [{path}]"
        )
    if output is not None:
        save_json(output, {"pred": str(pred), "gt": str(gt), "mode": pair.mode, "scores": scores})
        typer.echo(f"wrote {output}", err=True)
