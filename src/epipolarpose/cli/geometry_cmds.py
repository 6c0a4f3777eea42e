"""``epipolarpose calibrate``, ``triangulate`` and ``label``: cameras and 3D pseudo-labels from
multi-view 2D joints (see docs/labels.md)."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import InputError
from ._app import app

_POSES = typer.Argument(
    ..., help="Multi-view 2D detections (poses2d.npz, see docs/formats).", show_default=False
)
_INTRINSICS = typer.Option(
    None,
    "--intrinsics",
    help="K.json: a rig.json whose cameras may omit R/t; its K/dist override those in the npz. "
    "Without K anywhere, a 60° horizontal field of view is assumed and refined.",
)
_HEIGHT = typer.Option(
    None,
    "--subject-height",
    help="The person's height in mm: makes the self-calibrated rig and labels metric (units mm) "
    "instead of unit-baseline arbitrary units.",
)


def _load_intrinsics(path: Path | None):
    from ..camera import Rig

    return None if path is None else Rig.load(path, require_extrinsics=False)


def _check_out(out: Path, what: str) -> None:

    if out.exists() and out.is_dir():
        raise InputError(f"{what} {out} is a folder, expected a file path")


@app.command()
def calibrate(
    poses2d: Path = _POSES,
    out: Path = typer.Option(..., "-o", "--out", help="Where to write the self-calibrated rig.json."),
    intrinsics: Path | None = _INTRINSICS,
    refine_focal: bool | None = typer.Option(
        None,
        "--refine-focal/--no-refine-focal",
        help="Refine focal lengths in bundle adjustment (default: only when no K is known).",
        show_default=False,
    ),
    subject_height: float | None = _HEIGHT,
    method: str = typer.Option(
        "poselib", help="Relative pose RANSAC: poselib (LO-RANSAC 5-point) or magsac (OpenCV)."
    ),
    report: Path | None = typer.Option(None, help="Also write the calibration report (JSON)."),
) -> None:
    """Self-calibrate a static camera rig from multi-view 2D joints (writes rig.json)."""
    from ..formats import Poses2D
    from ..geometry.calibration import calibrate as run_calibration
    from ..io import save_json

    _check_out(out, "output")
    p2 = Poses2D.load(poses2d)
    rig, rep = run_calibration(
        p2, intrinsics=_load_intrinsics(intrinsics), refine_focal=refine_focal,
        subject_height_mm=subject_height, method=method,
    )  # fmt: skip
    d = rep.as_dict()
    if report is not None:
        save_json(report, d)
    rig.save(out)
    for e in d["pairs"]:
        i, j = e["pair"]
        rate = f"{e['inlier_rate']:.1%}" if "inlier_rate" in e else "-"
        status = "used" if e.get("used") else e.get("skipped", "rejected by rotation averaging")
        typer.echo(f"pair {i}-{j}: {e['correspondences']} correspondences, inliers {rate}, {status}")
    b = d["ba_median_error_px"]
    typer.echo(
        f"bundle adjustment: {d['ba_frames']} frames, median reprojection error {b['before']:.2f} -> "
        f"{b['after']:.2f} px; calibration took {d['timings_s']['total']:.2f} s"
    )
    for w in d["warnings"]:
        typer.echo(f"warning: {w}")
    typer.echo(f"wrote {out} (units: {rig.units})")


@app.command()
def triangulate(
    poses2d: Path = _POSES,
    rig: Path = typer.Option(..., "--rig", help="rig.json with the cameras (extrinsics required)."),
    out: Path = typer.Option(..., "-o", "--out", help="Where to write labels.npz."),
    robust: bool = typer.Option(
        True, "--robust/--plain", help="View rejection and left/right swap repair, or a plain weighted DLT."
    ),
) -> None:
    """Triangulate 2D joints with a known rig into 3D labels (labels.npz)."""
    import numpy as np

    from ..camera import Rig
    from ..formats import Labels, Poses2D
    from ..geometry.triangulation import triangulate_rig
    from ..labels import _check_rig

    _check_out(out, "output")
    p2 = Poses2D.load(poses2d)
    r = Rig.load(rig)
    _check_rig(r, p2)
    X, valid, reproj = triangulate_rig(r, p2.keypoints, p2.scores, robust=robust, progress=True)
    reproj = np.where(p2.observed(), reproj, np.nan)
    labels = Labels(X, r.world_to_camera(X), valid, reproj, extra={"rig_json": np.array(r.to_json())})
    labels.save(out)
    typer.echo(
        f"{valid.mean():.1%} of joints triangulated, median reprojection error "
        f"{np.nanmedian(reproj[:, valid]) if valid.any() else float('nan'):.2f} px; wrote {out}"
    )


@app.command()
def label(
    poses2d: Path = _POSES,
    out: Path = typer.Option(..., "-o", "--out", help="Where to write labels.npz."),
    rig_out: Path | None = typer.Option(
        None, "--rig-out", help="Also write the rig used (self-calibrated or given) as rig.json."
    ),
    rig: Path | None = typer.Option(
        None, "--rig", help="Known rig.json: skip calibration (the paper's R/t setting)."
    ),
    intrinsics: Path | None = _INTRINSICS,
    mode: str = typer.Option(
        "sequence",
        "--mode",
        help="sequence: self-calibrate a static rig from all frames, then robust triangulation "
        "(default); per-frame: the paper's recipe, one fundamental matrix per frame and pair.",
    ),
    subject_height: float | None = _HEIGHT,
    summary_json: Path | None = typer.Option(None, "--summary", help="Also write the summary (JSON)."),
    sync: str = typer.Option(
        "none",
        "--sync",
        help="none: the cameras are synchronized; auto: estimate each camera's frame offset from "
        "epipolar consistency of the 2D tracks (labels are then on the first camera's timeline "
        "and record `offsets`).",
    ),
    max_offset: int = typer.Option(
        30, "--max-offset", help="With --sync auto: largest offset tried, frames."
    ),
) -> None:
    """Self-calibrate (unless --rig) and triangulate: 2D joints -> 3D pseudo-labels (labels.npz)."""
    from ..camera import Rig
    from ..formats import Poses2D
    from ..io import atomic_path, save_json
    from ..labels import format_summary, label_poses

    _check_out(out, "output")
    p2 = Poses2D.load(poses2d)
    known = Rig.load(rig) if rig is not None else None
    offsets = None
    if sync == "auto":
        from ..sync import estimate_offsets

        sr = estimate_offsets(p2, max_offset=max_offset)
        offsets = sr.offsets
        for w in sr.warnings:
            typer.echo(w, err=True)
        typer.echo(
            "time offsets (frames to add to each camera's index): "
            + ", ".join(
                f"{n} {o:+d} (confidence {c:.2f})"
                for n, o, c in zip(p2.camera_names, sr.offsets, sr.confidence)
            )
        )
    elif sync != "none":
        raise InputError(f"--sync must be 'none' or 'auto', got {sync!r}")
    res = label_poses(
        p2,
        rig=known,
        intrinsics=_load_intrinsics(intrinsics),
        mode=mode,
        subject_height_mm=subject_height,
        offsets=offsets,
    )
    # write every output to a temporary file first, then rename them all: no partial outputs
    outs = [(out, lambda p: res.labels.save(p))]
    if rig_out is not None:
        outs.append((rig_out, lambda p: res.rig.save(p)))
    if summary_json is not None:
        outs.append((summary_json, lambda p: save_json(p, res.summary)))
    _write_all(outs, atomic_path)
    typer.echo(format_summary(res.summary))
    typer.echo(f"wrote {', '.join(str(p) for p, _ in outs)}")


def _write_all(outs, atomic_path) -> None:
    """Write several files so that either all appear or none (each goes to a temporary file next
    to its destination; the renames happen only after every write succeeded)."""
    import contextlib

    with contextlib.ExitStack() as stack:
        tmps = [stack.enter_context(atomic_path(p, suffix=".tmp")) for p, _ in outs]
        for (_, write), tmp in zip(outs, tmps):
            write(tmp)
