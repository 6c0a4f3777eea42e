"""Real footage: ``detect`` (videos/image folders/existing detections -> poses2d.npz), ``report``
(HTML page), ``export`` (3D poses to CSV/JSON/TRC) and ``export-rig`` (OpenCV YAML, Pose2Sim TOML)."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import InputError
from ._app import app


def _parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise InputError(f"--image-size must look like 1920x1080, got {text!r}") from None
    return w, h


def _intrinsics(path: Path | None, names: list[str]):
    """(K (C,3,3), dist (C,5), sizes) from an intrinsics rig.json, matched by name else by order."""
    if path is None:
        return None, None, None
    from ..camera import Rig

    rig = Rig.load(path, require_extrinsics=False)
    if len(rig) != len(names):
        raise InputError(f"{path}: has {len(rig)} cameras but {len(names)} inputs were given")
    by_name = {c.name: c for c in rig}
    cams = [by_name[n] for n in names] if set(names) <= set(by_name) else list(rig)
    import numpy as np

    return (
        np.stack([c.K for c in cams]),
        np.stack([c.dist for c in cams]),
        np.array([c.image_size for c in cams]),
    )


@app.command()
def detect(
    inputs: list[Path] = typer.Argument(
        ...,
        help="One video file or image folder per camera (with --detector import: one COCO JSON "
        "file or OpenPose JSON folder per camera). Camera names are the file/folder stems.",
    ),  # fmt: skip
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
) -> None:
    """Detect one person's 2D joints in every camera's video or image folder -> poses2d.npz."""
    import numpy as np
    from tqdm import tqdm

    from ..formats import Poses2D

    if len(inputs) < 1:
        raise InputError("give at least one video / image folder")
    names = [p.stem if p.is_file() else p.name for p in inputs]
    if len(set(names)) != len(names):
        names = [f"{n}_{i}" for i, n in enumerate(names)]
    kps, scs, sizes = [], [], []
    video_fps = None
    if detector == "import":
        from ..detectors.importers import load_coco, load_openpose

        for p in inputs:
            if import_format == "coco":
                kp, sc, _, size = load_coco(p)
            elif import_format == "openpose":
                kp, sc, _ = load_openpose(p)
                size = None
            else:
                raise InputError(f"--import-format must be coco or openpose, got {import_format!r}")
            kp, sc = kp[start:stop:stride], sc[start:stop:stride]
            kps.append(kp)
            scs.append(sc)
            sizes.append(size)
    else:
        from ..detectors import get_detector
        from ..video import iter_frames, probe

        infos = [probe(p) for p in inputs]
        video_fps = infos[0].fps
        ranges = [
            len(range(start, info.num_frames if stop is None else min(stop, info.num_frames), stride))
            for info in infos
        ]
        if min(ranges) == 0:
            bad = names[int(np.argmin(ranges))]
            raise InputError(f"camera {bad!r}: no frames in the range start={start}, stop={stop}")
        total = sum(ranges)
        with tqdm(total=total, desc="detect", unit="frame", file=None, disable=None) as bar:
            for c, info in enumerate(infos):
                det = get_detector(detector, checkpoint=checkpoint)
                det.reset()
                kp_c, sc_c, buf = [], [], []
                for _, frame in iter_frames(info.path, start, stop, stride):
                    if frame.shape[1::-1] != info.image_size:
                        raise InputError(f"{info.path}: frame size changes within the video")
                    buf.append(frame)
                    if len(buf) == batch:
                        k, s = det.detect(np.stack(buf))
                        kp_c.append(k)
                        sc_c.append(s)
                        bar.update(len(buf))
                        buf = []
                if buf:
                    k, s = det.detect(np.stack(buf))
                    kp_c.append(k)
                    sc_c.append(s)
                    bar.update(len(buf))
                if not kp_c:
                    raise InputError(f"camera {names[c]!r} ({info.path}): no frames could be read")
                kps.append(np.concatenate(kp_c))
                scs.append(np.concatenate(sc_c))
                sizes.append(info.image_size)
    counts = [len(k) for k in kps]
    if len(set(counts)) > 1:
        msg = "cameras have different frame counts: " + ", ".join(f"{n} {k}" for n, k in zip(names, counts))
        if strict:
            raise InputError(msg + " (--strict)")
        typer.echo(f"warning: {msg}; trimmed to {min(counts)}", err=True)
    F = min(counts)
    kp = np.stack([k[:F] for k in kps])
    sc = np.stack([s[:F] for s in scs])
    for c, n in enumerate(names):
        if not (sc[c] > 0).any():
            raise InputError(f"camera {n!r}: the person is never detected in {inputs[c]}")
    K, dist, rig_sizes = _intrinsics(intrinsics, names)
    for c in range(len(sizes)):
        if sizes[c] is None:
            if image_size is not None:
                sizes[c] = _parse_size(image_size)
            elif rig_sizes is not None:
                sizes[c] = tuple(int(v) for v in rig_sizes[c])
            else:
                raise InputError(
                    f"camera {names[c]!r}: image size unknown; pass --image-size WxH or --intrinsics K.json"
                )
    frame_index = start + stride * np.arange(F)
    out = Poses2D(
        keypoints=kp,
        scores=sc,
        image_size=np.array(sizes),
        camera_names=names,
        K=K,
        dist=dist,
        fps=(fps or video_fps),
        extra={"frame_start": np.int64(start), "frame_stride": np.int64(stride), "frame_index": frame_index},
    )
    out.save(output)
    det_rate = (sc > 0).mean(axis=(1, 2))
    for n, r in zip(names, det_rate):
        typer.echo(f"{n}: {F} frames, {100 * r:.0f}% of the joints detected", err=True)
    typer.echo(f"wrote {output}")


def _rig_for(labels_path: Path, labels, rig: Path | None):
    from ..camera import Rig

    if rig is not None:
        return Rig.load(rig)
    if "rig_json" in labels.extra:
        return Rig.from_json(str(labels.extra["rig_json"]), source=f"{labels_path}:rig_json")
    return None


@app.command()
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
) -> None:
    """Write an HTML report: rig in 3D, reprojection errors, overlays, 3D animation, warnings."""
    from ..formats import Labels, Poses2D
    from ..report import write_report

    lab = Labels.load(labels)
    r = _rig_for(labels, lab, rig)
    if r is None:
        raise InputError(f"{labels}: holds no rig; pass --rig rig.json")
    p2d = Poses2D.load(poses2d) if poses2d is not None else None
    for v in videos or []:
        if not v.exists():
            raise InputError(f"{v}: no such video or folder")
    index = write_report(lab, r, output, poses2d=p2d, videos=videos, num_samples=samples)
    typer.echo(f"wrote {index}")


@app.command()
def export(
    labels: Path = typer.Argument(..., help="labels.npz"),
    fmt: str = typer.Option(..., "--format", help="csv, json or trc"),
    output: Path = typer.Option(..., "-o", "--output", help="file to write"),
    fps: float | None = typer.Option(
        None, "--fps", help="frame rate (default: stored in labels.npz, else 30 for TRC)"
    ),
    rig: Path | None = typer.Option(
        None, "--rig", help="rig.json giving the units (default: the rig in labels.npz, else mm)"
    ),
) -> None:
    """Export 3D poses per frame and joint (with validity) to CSV, JSON or TRC (OpenSim/Pose2Sim)."""
    from ..exports import FORMATS, export_poses
    from ..formats import Labels

    if fmt not in FORMATS:
        raise InputError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    lab = Labels.load(labels)
    r = _rig_for(labels, lab, rig)
    units = r.units if r is not None else "mm"
    if fps is None and "fps" in lab.extra:
        fps = float(lab.extra["fps"])
    if units != "mm" and fmt == "trc":
        typer.echo(f"warning: rig units are {units!r}; TRC values keep that scale (labelled m)", err=True)
    export_poses(lab, output, fmt, fps=fps, units=units)
    typer.echo(f"wrote {output}")


@app.command("export-rig")
def export_rig_cmd(
    rig: Path = typer.Argument(..., help="rig.json"),
    fmt: str = typer.Option(..., "--format", help="opencv-yaml or toml (Pose2Sim/aniposelib calibration)"),
    output: Path = typer.Option(..., "-o", "--output", help="file to write"),
) -> None:
    """Export a rig to OpenCV FileStorage YAML or a Pose2Sim/aniposelib calibration TOML."""
    from ..camera import Rig
    from ..exports import RIG_FORMATS, export_rig

    if fmt not in RIG_FORMATS:
        raise InputError(f"--format must be one of {', '.join(RIG_FORMATS)}, got {fmt!r}")
    export_rig(Rig.load(rig), output, fmt)
    typer.echo(f"wrote {output}")
