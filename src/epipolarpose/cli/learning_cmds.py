"""``epipolarpose train``: train the pose network with any supervision (see docs/training.md)."""

from __future__ import annotations

from pathlib import Path

import typer

from ._app import app

_SUP_HELP = (
    "2d: the 2D network on ground-truth 2D of its clips; self: the paper (pseudo-labels triangulated "
    "from a frozen 2D network's detections without extrinsics); rt: the same with the rig's known R/t; "
    "full: ground-truth 3D."
)


@app.command()
def train(
    supervision: str = typer.Option(..., "--supervision", "-s", help=_SUP_HELP),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Output folder: checkpoints/, logs/, model.pt, train_summary.json."
    ),
    clips: list[str] = typer.Option(
        None,
        "--clips",
        help="Training clips: BVH files, folders, or 'train'/'test' (the shared mocap split). Repeatable. "
        "Default 'train' unless --videos or --dataset is given.",
    ),
    videos: list[Path] = typer.Option(
        None,
        "--videos",
        help="Real footage instead of rendered clips: one video file or image folder per camera, in the "
        "camera order of --poses2d (repeatable). See docs/footage_training.md.",
    ),
    poses2d: Path = typer.Option(
        None, "--poses2d", help="With --videos: the detections of that footage (`epipolarpose detect`)."
    ),
    crop_cache: Path = typer.Option(
        None,
        "--crop-cache",
        help="With --videos/--dataset: folder of the cached crops (default OUT/crop_cache; reused while the "
        "inputs are unchanged).",
    ),
    frames: str = typer.Option(
        None, "--frames", help="With --videos: train on label frames START:STOP only (e.g. 0:77)."
    ),
    augment_rotation: float = typer.Option(
        10.0,
        "--augment-rotation",
        help="With --videos/--dataset: in-plane rotation augmentation, +- degrees.",
    ),
    augment_flip: float = typer.Option(
        0.5,
        "--augment-flip",
        help="With --videos/--dataset: probability of a horizontal flip (left/right joints exchanged).",
    ),
    dataset: str = typer.Option(
        None,
        "--dataset",
        help="h36m or 3dhp: train on a dataset's multi-view training split (--root) instead of rendered "
        "clips (3dhp: S1-S8, Seq1-2, cameras 0-2 and 4-8, decoded from its videos).",
    ),
    root: Path = typer.Option(
        None, "--root", help="With --dataset: the dataset's folder (docs/datasets.md)."
    ),
    every: int = typer.Option(
        None,
        "--every",
        help="With --dataset: keep every N-th frame of the training split (default 5 for h36m, 10 for 3dhp).",
    ),
    subjects: list[str] = typer.Option(
        None,
        "--subject",
        help="With --dataset: training subjects (default h36m S1 S5 S6 S7 S8, 3dhp S1-S8). Repeatable.",
    ),
    init_imagenet: Path = typer.Option(
        None,
        "--init-imagenet",
        help="torchvision ResNet ImageNet weights (.pth) for the trunk of a fresh network (no download: "
        "bring the file; see docs/models.md).",
    ),
    max_clips: int = typer.Option(
        None, "--max-clips", help="Keep an evenly spaced subset of this many clips."
    ),
    rig: Path = typer.Option(
        None, "--rig", help="rig.json of the cameras that see the training clips (default: shared H36M S1)."
    ),
    val_clips: list[str] = typer.Option(
        [], "--val-clips", help="Validation clips (same forms as --clips); logs val/mpjpe."
    ),
    labels: Path = typer.Option(
        None, "--labels", help="labels.npz pseudo-labels for self/rt (C and F must match the clips)."
    ),
    init_2d: Path = typer.Option(
        None,
        "--init-2d",
        help="Checkpoint of the 2D network: initialises the 3D one and detects the joints for self/rt.",
    ),
    label_filter: float = typer.Option(
        0.0,
        "--label-filter",
        help="self/rt: ignore label joints whose mean reprojection error exceeds this many times the median "
        "(and 2 px); 0 (default) keeps every valid joint (filtering measured worse, see BENCHMARKS.md).",
    ),
    online: bool = typer.Option(
        False, "--online", help="self/rt: triangulate the frozen 2D detections inside the training loop."
    ),
    label_rig: Path = typer.Option(
        None, "--label-rig", help="--online: rig.json to triangulate with (a self-calibrated one for self)."
    ),
    config: str = typer.Option(
        "cpu-small",
        "--config",
        help="Network: cpu-small (ResNet-18, 128 px), paper (ResNet-50, 256 px) or tiny.",
    ),
    fps: float = typer.Option(10.0, "--fps", help="Resample the clips to this frame rate."),
    epochs: int = typer.Option(
        None, "--epochs", help="Number of epochs (default 10 unless --max-steps is given)."
    ),
    max_steps: int = typer.Option(
        -1, "--max-steps", help="Stop after this many optimiser steps (-1: no limit)."
    ),
    batch_size: int = typer.Option(
        32, "--batch-size", help="Images per step (rounded down to whole multi-view frames)."
    ),
    lr: float = typer.Option(1e-3, "--lr", help="Adam learning rate (cosine-annealed)."),
    devices: str = typer.Option(
        "auto", "--devices", help="Lightning devices: auto, a count, or a list like 0,1."
    ),
    num_nodes: int = typer.Option(1, "--num-nodes", help="Number of nodes (multi-node DDP)."),
    strategy: str = typer.Option("auto", "--strategy", help="Lightning strategy: auto, ddp, ..."),
    precision: str = typer.Option(
        "32-true", "--precision", help="32-true, or 16-mixed / bf16-mixed on a GPU."
    ),
    accelerator: str = typer.Option("auto", "--accelerator", help="auto, cpu, gpu."),
    seed: int = typer.Option(0, "--seed", help="Seed of everything (rendering, initialisation, shuffling)."),
    resume: Path = typer.Option(
        None, "--resume", help="Resume from this .ckpt (default: OUT/checkpoints/last.ckpt if present)."
    ),
    num_workers: int = typer.Option(
        0, "--num-workers", help="Data-loader worker processes rendering the images."
    ),
    checkpoint_every: int = typer.Option(
        200, "--checkpoint-every", help="Save OUT/checkpoints/last.ckpt every N steps."
    ),
    shared: Path = typer.Option(
        None,
        "--shared",
        help="Shared data folder for 'train'/'test' clips and the default rig (default $EPIPOLARPOSE_SHARED or ../shared).",
    ),
) -> None:
    """Train the pose network (2d, self-supervised, with known R/t, or fully supervised) on
    rendered motion capture, on a user's footage (--videos) or on a dataset (--dataset)."""
    from ..errors import InputError
    from ..training.footage import FootageAugment
    from ..training.real import FootageOptions, parse_frames
    from ..training.train import TrainOptions, default_shared, resolve_clips, summary_json
    from ..training.train import train as run

    shared = shared or default_shared()
    real = bool(videos) or dataset is not None
    augment = FootageAugment(rotation_deg=augment_rotation, flip=augment_flip)
    footage = dataset_opts = None
    if videos:
        if clips or val_clips:
            raise InputError("--videos trains on footage: do not give --clips/--val-clips as well")
        if poses2d is None:
            raise InputError(
                "--videos needs --poses2d (the detections of that footage, from `epipolarpose detect`)"
            )
        footage = FootageOptions(
            videos=list(videos),
            poses2d=poses2d,
            crop_cache=crop_cache,
            frames=parse_frames(frames),
            augment=augment,
        )
    elif poses2d is not None or frames is not None:
        raise InputError("--poses2d and --frames go with --videos")
    if dataset is not None:
        from ..training.datasets import DatasetOptions

        if clips or val_clips:
            raise InputError("--dataset trains on that dataset: do not give --clips/--val-clips as well")
        if root is None:
            raise InputError("--dataset needs --root DIR (the dataset's folder, see docs/datasets.md)")
        dataset_opts = DatasetOptions(
            name=dataset,
            root=root,
            every=every,
            subjects=tuple(subjects or ()),
            crop_cache=crop_cache,
            augment=augment,
        )
    opts = TrainOptions(
        supervision=supervision,
        out=out,
        footage=footage,
        dataset=dataset_opts,
        init_imagenet=init_imagenet,
        clips=[] if real else resolve_clips(clips or ["train"], shared, max_clips),
        rig=rig if real else (rig or shared / "data/rigs/h36m_S1.json"),
        val_clips=resolve_clips(val_clips, shared) if val_clips else [],
        labels=labels,
        label_filter=label_filter,
        init_2d=init_2d,
        online=online,
        label_rig=label_rig,
        config=config,
        fps=fps,
        epochs=epochs,
        max_steps=max_steps,
        batch_size=batch_size,
        lr=lr,
        devices=devices,
        num_nodes=num_nodes,
        strategy=strategy,
        precision=precision,
        accelerator=accelerator,
        seed=seed,
        resume=resume,
        num_workers=num_workers,
        checkpoint_every=checkpoint_every,
    )
    typer.echo(summary_json(run(opts)))
