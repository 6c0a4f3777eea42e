"""Real footage: ``intrinsics`` (a board filmed by each camera -> K.json), ``detect``
(videos/image folders/existing detections -> poses2d.npz), ``report`` (HTML page), ``export`` (3D
poses to CSV/JSON/TRC) and ``export-rig`` (OpenCV YAML, Pose2Sim TOML)."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import InputError
from ._app import FILE, FOLDER, app


def parse_pair(text: str, option: str, example: str) -> tuple[int, int]:
    """``"1920x1080"`` -> (1920, 1080); :class:`InputError` naming ``option`` and ``example``
    (e.g. ``"1920x1080"``, ``"5x7 (columns x rows of squares)"``) otherwise."""
    try:
        a, b = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise InputError(f"{option} must look like {example}, got {text!r}") from None
    return a, b


def _warn(message: str) -> None:
    typer.echo(f"warning: {message}", err=True)


@app.command(outputs={"output": FILE, "report_json": FILE})
def intrinsics(
    inputs: list[Path] = typer.Argument(
        ...,
        help="One video file or image folder per camera, filming a calibration board (any time, "
        "anywhere: intrinsics do not change when a camera moves). Camera names are the stems, as in "
        "`detect`.",
    ),
    output: Path = typer.Option(..., "-o", "--output", help="K.json to write (a rig.json without R/t)"),
    board: str = typer.Option("charuco", "--board", help="charuco or chessboard"),
    squares: str = typer.Option(
        "5x7", "--squares", help="columns x rows of SQUARES (a chessboard with 7x5 inner corners is 8x6)"
    ),
    dictionary: str = typer.Option("DICT_4X4_50", "--dictionary", help="ChArUco: the ArUco dictionary"),
    marker_ratio: float = typer.Option(0.75, "--marker-ratio", help="ChArUco: marker side / square side"),
    legacy: bool = typer.Option(
        False, "--legacy", help="ChArUco: OpenCV's pre-4.6 layout (boards with an even number of rows)"
    ),
    model: str = typer.Option(
        "radial",
        "--model",
        help="radial (square pixels, k1 k2: what a hand-held board pins down), full (OpenCV's fx fy k1 "
        "k2 p1 p2 k3) or pinhole (no distortion)",
    ),
    max_frames: int = typer.Option(600, "--max-frames", help="frames read per camera, evenly spread"),
    max_views: int = typer.Option(60, "--max-views", help="board views per camera in the fit, evenly spread"),
    report_json: Path | None = typer.Option(
        None, "--report", help="also write the fit's report (JSON) here (it is in K.json too)"
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Camera intrinsics (K, lens distortion) from a calibration board filmed by each camera ->
    K.json for --intrinsics of detect, label and calibrate."""
    from ..intrinsics import Board, IntrinsicsOptions, calibrate_intrinsics, save_intrinsics
    from ..io import save_json

    spec = Board(
        kind=board,
        squares=parse_pair(squares, "--squares", "5x7 (columns x rows of squares)"),
        marker_ratio=marker_ratio,
        dictionary=dictionary,
        legacy=legacy,
    )
    options = IntrinsicsOptions(board=spec, model=model, max_frames=max_frames, max_views=max_views)
    result = calibrate_intrinsics(inputs, options, progress=not quiet)
    for cam in result.cameras:
        typer.echo(cam.summary(), err=True)
        for w in cam.warnings:
            _warn(w)
    save_intrinsics(output, result)
    if report_json is not None:
        save_json(report_json, result.as_dict())
    typer.echo(f"wrote {output}")


@app.command(outputs={"output": FILE})
def detect(
    inputs: list[Path] = typer.Argument(
        ...,
        help="One video file or image folder per camera (with --detector import: one COCO JSON "
        "file or OpenPose JSON folder per camera). Camera names are the file/folder stems.",
    ),
    output: Path = typer.Option(..., "-o", "--output", help="poses2d.npz to write"),
    detector: str = typer.Option(
        "mediapipe",
        "--detector",
        help="mediapipe (BlazePose, optional extra), network (our checkpoint) or import",
    ),
    checkpoint: Path | None = typer.Option(
        None, "--checkpoint", help="PoseNet checkpoint for --detector network"
    ),
    import_format: str = typer.Option(
        "coco", "--import-format", help="coco or openpose (with --detector import)"
    ),
    start: int = typer.Option(0, "--start", help="first frame"),
    stop: int | None = typer.Option(None, "--stop", help="stop before this frame (default: the end)"),
    stride: int = typer.Option(1, "--stride", help="use every N-th frame"),
    intrinsics: Path | None = typer.Option(
        None,
        "--intrinsics",
        help="rig.json whose cameras give K/dist (R/t may be omitted); matched by name, else by order",
    ),
    image_size: str | None = typer.Option(
        None, "--image-size", help="WxH for imported detections without image sizes"
    ),
    fps: float | None = typer.Option(None, "--fps", help="frame rate (default: from the first video)"),
    strict: bool = typer.Option(
        False, "--strict", help="error (instead of trimming) when cameras have different frame counts"
    ),
    batch: int = typer.Option(16, "--batch", help="frames per detector call"),
    mediapipe_mode: str = typer.Option(
        "auto",
        "--mediapipe-mode",
        help="MediaPipe: video (track + smooth landmarks, for >= 15 fps), static (every frame on its "
        "own) or auto (static when fps / stride < 15 or unknown, else video)",
    ),
    model_complexity: int = typer.Option(
        1,
        "--model-complexity",
        help="MediaPipe landmark model: 0 lite, 1 full (ships with mediapipe), 2 heavy (0 and 2 are "
        "downloaded on first use)",
    ),
) -> None:
    """Detect one person's 2D joints in every camera's video or image folder -> poses2d.npz
    (with the detector's own landmarks as keypoints_native where it has them)."""
    from ..detectors.run import DetectOptions, detect_sources

    options = DetectOptions(
        detector=detector,
        checkpoint=checkpoint,
        import_format=import_format,
        start=start,
        stop=stop,
        stride=stride,
        intrinsics=intrinsics,
        image_size=parse_pair(image_size, "--image-size", "1920x1080") if image_size is not None else None,
        fps=fps,
        strict=strict,
        batch=batch,
        mediapipe_mode=mediapipe_mode,
        model_complexity=model_complexity,
    )
    out = detect_sources(inputs, options, warn=_warn)
    out.save(output)
    det_rate = (out.scores > 0).mean(axis=(1, 2))
    frame_rate = (out.scores > 0).any(-1).mean(axis=1)
    modes = out.extra.get("mediapipe_mode")
    num_frames = out.keypoints.shape[1]
    for c, (n, r, f) in enumerate(zip(out.camera_names, det_rate, frame_rate)):
        mode = f", {modes[c]} mode" if modes is not None else ""
        typer.echo(
            f"{n}: {num_frames} frames, person in {100 * f:.0f}% of them, {100 * r:.0f}% of the joints "
            f"detected{mode}",
            err=True,
        )
    typer.echo(f"wrote {output}")


@app.command(outputs={"output": FOLDER})
def report(
    labels: Path = typer.Argument(..., help="labels.npz from `epipolarpose label`"),
    rig: Path | None = typer.Option(
        None, "--rig", help="rig.json of the labels (default: the rig stored in labels.npz)"
    ),
    poses2d: Path | None = typer.Option(
        None, "--poses2d", help="poses2d.npz: draws the detections on the overlays"
    ),
    videos: list[Path] | None = typer.Option(
        None, "--videos", help="one video/image folder per camera (repeat the option), for the overlays"
    ),
    output: Path = typer.Option(Path("report"), "-o", "--output", help="report folder (index.html + images)"),
    samples: int = typer.Option(3, "--samples", help="number of overlay frames"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or progress messages."),
) -> None:
    """Write an HTML report: rig in 3D, reprojection errors, overlays, 3D animation, warnings."""
    from ..report import report_labels_file

    index = report_labels_file(
        labels, output, rig=rig, poses2d=poses2d, videos=videos, num_samples=samples, progress=not quiet
    )
    typer.echo(f"wrote {index}")


@app.command(outputs={"output": FILE})
def export(
    labels: Path = typer.Argument(..., help="labels.npz"),
    fmt: str = typer.Option(..., "--format", help="csv, json or trc"),
    output: Path = typer.Option(..., "-o", "--output", help="file to write"),
    fps: float | None = typer.Option(
        None, "--fps", help="frame rate (default: stored in labels.npz, else 30 for TRC)"
    ),
    rig: Path | None = typer.Option(
        None,
        "--rig",
        help="rig.json giving the units and the world's up direction (default: the rig in labels.npz, "
        "else a z-up rig in mm)",
    ),
) -> None:
    """Export 3D poses per frame and joint (with validity) to CSV, JSON or TRC (OpenSim/Pose2Sim)."""
    from ..exports import export_labels_file

    export_labels_file(labels, output, fmt, fps=fps, rig=rig, warn=_warn)
    typer.echo(f"wrote {output}")


@app.command("export-rig", outputs={"output": FILE})
def export_rig_cmd(
    rig: Path = typer.Argument(..., help="rig.json"),
    fmt: str = typer.Option(..., "--format", help="opencv-yaml or toml (Pose2Sim/aniposelib calibration)"),
    output: Path = typer.Option(..., "-o", "--output", help="file to write"),
) -> None:
    """Export a rig to OpenCV FileStorage YAML or a Pose2Sim/aniposelib calibration TOML."""
    from ..exports import export_rig_file

    export_rig_file(rig, output, fmt, warn=_warn)
    typer.echo(f"wrote {output}")
