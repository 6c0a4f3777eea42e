"""``epipolarpose predict``: single-image 3D pose from person crops with a trained network."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import InputError
from ._app import app


@app.command()
def predict(
    checkpoint: Path = typer.Argument(
        ...,
        help="Trained network: a .pt from save_checkpoint or a Lightning .ckpt from `epipolarpose train`.",
    ),
    images: list[Path] = typer.Argument(
        None,
        help="Person crops (any size; letterboxed to a square and resized to the network input), or "
        "footage: one video file or image folder per camera (the person box from --poses2d or a detector).",
    ),
    poses2d: Path | None = typer.Option(
        None,
        "--poses2d",
        help="Footage: detections of the videos (`epipolarpose detect`) for the person boxes.",
    ),
    detector: str = typer.Option(
        "mediapipe",
        "--detector",
        help="Footage without --poses2d: mediapipe, or network (with --detector-checkpoint) finds the person.",
    ),
    detector_checkpoint: Path | None = typer.Option(
        None, "--detector-checkpoint", help="Footage: the 2D network of --detector network."
    ),
    intrinsics: Path | None = typer.Option(
        None, "--intrinsics", help="Footage: rig.json whose cameras give K/dist (default: the detections')."
    ),
    frames: str | None = typer.Option(
        None, "--frames", help="Footage: frames START:STOP of the detections only."
    ),
    overlay_every: int = typer.Option(1, "--overlay-every", min=1, help="Footage: overlay every N-th frame."),
    animation: Path | None = typer.Option(
        None, "--animation", help="Footage: a .gif/.mp4 of the 3D poses of --animation-camera."
    ),
    animation_camera: int = typer.Option(
        0, "--animation-camera", help="Footage: camera index of --animation."
    ),
    dataset: str | None = typer.Option(
        None,
        "--dataset",
        help="Instead of IMAGES: h36m or 3dhp test images (--root, --split test) with their ground truth "
        "(--gt-out), in the paper's protocol.",
    ),
    root: Path | None = typer.Option(None, "--root", help="With --dataset: the dataset's folder."),
    split: str = typer.Option("test", "--split", help="With --dataset: test (S9, S11 / TS1-6) or train."),
    every: int | None = typer.Option(
        None,
        "--every",
        help="With --dataset: keep every N-th frame (default: the protocol's, 64 for H36M test).",
    ),
    clips: list[str] = typer.Option(
        None,
        "--clips",
        help="Instead of IMAGES: render the synthetic views of these motion-capture clips (BVH files, "
        "folders, or 'train'/'test' of the shared split) through --rig and also write their ground truth "
        "(--gt-out), for `epipolarpose evaluate`. Repeatable.",
    ),
    rig: Path | None = typer.Option(
        None, "--rig", help="With --clips: the rig that sees them (default: the shared Human3.6M S9 rig)."
    ),
    fps: float = typer.Option(10.0, "--fps", help="With --clips: resampling rate of the clips."),
    max_clips: int | None = typer.Option(None, "--max-clips", help="With --clips: an evenly spaced subset."),
    gt_out: Path | None = typer.Option(
        None, "--gt-out", help="With --clips: where to write gt.npz (default: next to --output)."
    ),
    seed: int = typer.Option(0, "--seed", help="With --clips: rendering seed."),
    output: Path = typer.Option(..., "--output", "-o", help="Where to write the predictions (.npz)."),
    refiner: Path | None = typer.Option(
        None,
        "--refiner",
        help="Refiner checkpoint (`epipolarpose refine train`) applied to the 3D poses; the raw ones are kept as poses3d_unrefined.",
    ),
    overlays: Path | None = typer.Option(
        None, "--overlays", help="Folder for PNGs of each image with its 2D pose and a 3D plot."
    ),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Images per forward pass."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when available), cpu, cuda or cuda:N."),
) -> None:
    """Predict 3D and 2D poses from single person crops with a trained network.

    With --clips instead of images it renders a synthetic test split and writes, per camera,
    `poses3d_camera` (C, F, J, 3) mm (root depth from the ground truth, the paper's protocol) next
    to a gt.npz, so that `epipolarpose evaluate PRED GT --centroids ...` scores the network.
    """
    from ..prediction import ClipSplit, PredictOptions, predict_clips, predict_images

    if output.suffix != ".npz":
        raise InputError(f"--output {output} must end in .npz")
    if sum((bool(images), bool(clips), dataset is not None)) != 1:
        raise InputError(
            "give either IMAGES or --clips (a synthetic test split) or --dataset (a dataset's split), exactly "
            "one; IMAGES are person crops, or footage: one video or image folder per camera"
        )
    options = PredictOptions(refiner=refiner, batch_size=batch_size, device=device)
    if dataset is not None:
        from ..real_prediction import predict_dataset_split

        if root is None:
            raise InputError("--dataset needs --root DIR (the dataset's folder, see docs/datasets.md)")
        res = predict_dataset_split(
            checkpoint, dataset, root, output, split=split, every=every, gt_out=gt_out, options=options
        )
        typer.echo(
            f"wrote {res.frames} predictions to {output} and their ground truth to {res.gt_path}", err=True
        )
        return
    from ..real_prediction import FootageSpec, is_footage, predict_footage

    if images and any(is_footage(p) for p in images):
        from ..training.real import parse_frames

        spec = FootageSpec(
            sources=images,
            poses2d=poses2d,
            detector=detector,
            detector_checkpoint=detector_checkpoint,
            intrinsics=intrinsics,
            frames=parse_frames(frames),
        )
        r = predict_footage(
            checkpoint,
            spec,
            output,
            overlays=overlays,
            overlay_every=overlay_every,
            animation=animation,
            animation_camera=animation_camera,
            options=options,
        )
        typer.echo(
            f"wrote {r.cameras} cameras x {r.frames} frames to {output} ({r.with_person} views with a person)",
            err=True,
        )
        return
    if clips:
        split = ClipSplit(clips, rig_path=rig, fps=fps, max_clips=max_clips, seed=seed)
        res = predict_clips(checkpoint, split, output, gt_out=gt_out, options=options)
        typer.echo(
            f"wrote {res.frames} frames x {res.views} views to {output} and their ground truth to {res.gt_path}",
            err=True,
        )
        return
    n = predict_images(checkpoint, images, output, overlays=overlays, options=options)
    typer.echo(f"wrote {n} predictions to {output}", err=True)
