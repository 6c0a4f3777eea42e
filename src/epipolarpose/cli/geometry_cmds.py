"""``epipolarpose calibrate``, ``triangulate`` and ``label``: cameras and 3D pseudo-labels from
multi-view 2D joints (see docs/labels.md)."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import InputError
from ._app import FILE, app

_POSES = typer.Argument(
    ..., help="Multi-view 2D detections (poses2d.npz, see docs/formats).", show_default=False
)
_INTRINSICS = typer.Option(
    None,
    "--intrinsics",
    help="K.json: a rig.json whose cameras may omit R/t; its K/dist override those in the npz. "
    "Without K anywhere, a 60° field of view across the longer image side is assumed and refined.",
)
_MAX_UNCERTAINTY = typer.Option(
    3.0,
    "--max-uncertainty",
    help="Refuse a self-calibrated rig when the detections' scatter alone leaves a camera pair's "
    "relative rotation uncertain by more than this many degrees (RMS; a lower bound on the rig's "
    "error: one frame, a person who hardly moves); warn above 1°. 0: never refuse.",
)
_HEIGHT = typer.Option(
    None,
    "--subject-height",
    help="The person's height in mm: makes the self-calibrated rig and labels metric (units mm) "
    "instead of unit-baseline arbitrary units.",
)


def _max_uncertainty(value: float) -> float | None:
    """``--max-uncertainty`` as :attr:`CalibrationOptions.max_uncertainty_deg` (0: None)."""
    if not value >= 0:
        raise InputError(f"--max-uncertainty must be >= 0 degrees (0: never refuse), got {value}")
    return value or None


def _load_poses(poses2d: Path, intrinsics: Path | None, cameras: str | None = None):
    """The detections, with ``--intrinsics`` (a ``K.json`` rig, one camera per view of the file)
    applied, restricted to ``--cameras`` when given."""
    from ..camera import Rig
    from ..formats import Poses2D
    from ..geometry.observations import apply_intrinsics

    p2 = Poses2D.load(poses2d)
    if intrinsics is not None:
        p2 = apply_intrinsics(p2, Rig.load(intrinsics, require_extrinsics=False))
    if cameras is not None:
        p2 = p2.take_cameras([c for c in cameras.split(",") if c.strip()])
    return p2


@app.command(outputs={"out": FILE, "report": FILE})
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
    max_uncertainty: float = _MAX_UNCERTAINTY,
    method: str = typer.Option(
        "poselib", help="Relative pose RANSAC: poselib (LO-RANSAC 5-point) or magsac (OpenCV)."
    ),
    report: Path | None = typer.Option(None, help="Also write the calibration report (JSON)."),
) -> None:
    """Self-calibrate a static camera rig from multi-view 2D joints (writes rig.json)."""
    from ..geometry.calibration import CalibrationOptions
    from ..geometry.calibration import calibrate as run_calibration
    from ..io import save_json

    options = CalibrationOptions(
        refine_focal=refine_focal,
        subject_height_mm=subject_height,
        method=method,
        max_uncertainty_deg=_max_uncertainty(max_uncertainty),
    )
    rig, rep = run_calibration(_load_poses(poses2d, intrinsics), options)
    if report is not None:
        save_json(report, rep.as_dict())
    rig.save(out)
    typer.echo(rep.format())
    typer.echo(f"wrote {out} (units: {rig.units})")


@app.command(outputs={"out": FILE})
def triangulate(
    poses2d: Path = _POSES,
    rig: Path = typer.Option(..., "--rig", help="rig.json with the cameras (extrinsics required)."),
    out: Path = typer.Option(..., "-o", "--out", help="Where to write labels.npz."),
    robust: bool = typer.Option(
        True, "--robust/--plain", help="View rejection and left/right swap repair, or a plain weighted DLT."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or progress messages."),
) -> None:
    """Triangulate 2D joints with a known rig into 3D labels (labels.npz)."""
    import numpy as np

    from ..camera import Rig
    from ..formats import Poses2D
    from ..labelling import LabelOptions, label_poses

    options = LabelOptions() if robust else LabelOptions(triangulation=None)
    res = label_poses(Poses2D.load(poses2d), Rig.load(rig), options=options, progress=not quiet)
    res.labels.save(out)
    valid, reproj = res.labels.valid, res.labels.reprojection_error
    median = np.nanmedian(reproj[:, valid]) if valid.any() else float("nan")
    typer.echo(
        f"{valid.mean():.1%} of joints triangulated, median reprojection error {median:.2f} px; wrote {out}"
    )


@app.command(outputs={"out": FILE, "rig_out": FILE, "summary_json": FILE})
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
    max_uncertainty: float = _MAX_UNCERTAINTY,
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
    offsets: str | None = typer.Option(
        None,
        "--offsets",
        help="Offsets you know, instead of --sync auto: comma-separated frames to add to each camera's "
        "index to reach the first camera's timeline (as --sync auto reports them), e.g. 0,2,-1,0.",
    ),
    cameras: str | None = typer.Option(
        None,
        "--cameras",
        help="Comma-separated camera names (or indices) to use, in this order, e.g. to leave out a "
        "camera whose detector follows another person. Default: all.",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or progress messages."),
) -> None:
    """Self-calibrate (unless --rig) and triangulate: 2D joints -> 3D pseudo-labels (labels.npz)."""
    import numpy as np

    from ..camera import Rig
    from ..geometry.calibration import CalibrationOptions
    from ..io import save_json, write_together
    from ..labelling import LabelOptions, label_poses
    from ..sync import SyncOptions

    if sync not in ("none", "auto"):
        raise InputError(f"--sync must be 'none' or 'auto', got {sync!r}")
    known_offsets = None
    if offsets is not None:
        if sync == "auto":
            raise InputError("give either --offsets or --sync auto, not both")
        try:
            known_offsets = np.array([int(v) for v in offsets.split(",")], dtype=np.int64)
        except ValueError:
            raise InputError(
                f"--offsets must be comma-separated integers, e.g. 0,2,-1,0; got {offsets!r}"
            ) from None
    options = LabelOptions(
        mode=mode,
        sync=SyncOptions(max_offset=max_offset) if sync == "auto" else None,
        calibration=CalibrationOptions(
            subject_height_mm=subject_height, max_uncertainty_deg=_max_uncertainty(max_uncertainty)
        ),
    )
    known = Rig.load(rig) if rig is not None else None
    res = label_poses(
        _load_poses(poses2d, intrinsics, cameras),
        known,
        offsets=known_offsets,
        options=options,
        progress=not quiet,
    )
    outputs = [(out, res.labels.save)]
    if rig_out is not None:
        outputs.append((rig_out, res.rig.save))
    if summary_json is not None:
        outputs.append((summary_json, lambda p: save_json(p, res.summary.as_dict())))
    write_together(outputs)
    typer.echo(res.summary.format())
    typer.echo(f"wrote {', '.join(str(p) for p, _ in outputs)}")
