"""``epipolarpose refine train|apply``: the refinement unit (clean 3D predictions with an MLP
trained only on motion capture seen through random virtual cameras). See docs/refiner.md."""

from __future__ import annotations

from pathlib import Path

import typer

from ._app import FILE, sub_app

refine_app = sub_app(
    "refine", "Refinement unit: clean 3D pose predictions with an MLP trained on motion capture."
)


@refine_app.command("train", outputs={"output": FILE, "save_error_model": FILE})
def train(
    mocap: list[Path] = typer.Option(
        ..., "--mocap", help="BVH file or folder (searched recursively); repeat for several."
    ),
    output: Path = typer.Option(..., "-o", "--output", help="Refiner checkpoint to write (.ckpt)."),
    error_model: Path | None = typer.Option(
        None, "--error-model", help="Error model (.npz/.json) written by --save-error-model."
    ),
    fit_errors: tuple[Path, Path] | None = typer.Option(
        None,
        "--fit-errors",
        metavar="PRED.npz GT.npz",
        show_default=False,
        help="Fit the error model to a network's validation predictions and their ground truth, camera "
        "frame, same units: poses3d (N, J, 3) in both, or the two files `predict --clips` writes.",
    ),
    gaussian: float | None = typer.Option(
        None, "--gaussian", metavar="SIGMA_MM", help="Plain Gaussian noise of this std (mm) instead."
    ),
    align_scale: bool = typer.Option(
        False, "--align-scale", help="With --fit-errors: rescale each prediction to its ground truth first."
    ),
    pose_dependent: bool = typer.Option(
        True,
        "--pose-dependent/--no-pose-dependent",
        help="With --fit-errors: also fit errors that depend linearly on the pose (e.g. shrinkage "
        "towards the mean pose), ridge chosen by cross-validation.",
    ),
    heavy_tails: bool = typer.Option(
        True,
        "--heavy-tails/--no-heavy-tails",
        help="With --fit-errors: draw a per-pose noise scale from the fitted residuals (a few bad poses "
        "among many good ones) instead of plain Gaussian noise.",
    ),
    match_cameras: bool = typer.Option(
        True,
        "--match-cameras/--any-cameras",
        help="With --fit-errors: draw the virtual cameras like the ones that saw the ground truth "
        "(elevation and distance read off GT.npz) instead of from the wide default ranges.",
    ),
    save_error_model: Path | None = typer.Option(
        None, "--save-error-model", help="Also write the error model used (.npz or .json)."
    ),
    epochs: int = typer.Option(20, "--epochs", min=1, help="Training epochs (fresh cameras/noise each)."),
    cameras_per_pose: int = typer.Option(
        4, "--cameras-per-pose", min=1, help="Random virtual cameras per mocap pose per epoch."
    ),
    fps: float = typer.Option(10.0, "--fps", help="Resample mocap clips to this frame rate."),
    hidden: int = typer.Option(1024, "--hidden", min=8, help="Hidden width (1024 in the paper)."),
    blocks: int = typer.Option(2, "--blocks", min=1, help="Residual blocks (2 in the paper)."),
    dropout: float = typer.Option(
        0.1,
        "--dropout",
        min=0.0,
        max=0.95,
        help="Dropout probability (the paper: 0.5; 0.1 measured better here).",
    ),
    batch_size: int = typer.Option(256, "--batch-size", min=2, help="Mini-batch size."),
    lr: float = typer.Option(1e-3, "--lr", help="Adam learning rate (decays x0.95 per epoch)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:1, ..."),
    seed: int = typer.Option(0, "--seed", help="Random seed (cameras, noise, weights)."),
) -> None:
    """Train a refiner on motion capture through random cameras, corrupted by an error model."""
    from ..refiner import ErrorFitOptions, RefinerTrainConfig, choose_error_source, train_refiner_on_mocap

    fit_options = ErrorFitOptions(
        align_scale=align_scale,
        pose_dependent=pose_dependent,
        heavy_tails=heavy_tails,
        match_cameras=match_cameras,
    )
    source = choose_error_source(
        error_model=error_model, fit_errors=fit_errors, gaussian=gaussian, options=fit_options
    )
    for note in source.notes:
        typer.echo(note, err=True)
    config = RefinerTrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        cameras_per_pose=cameras_per_pose,
        hidden=hidden,
        blocks=blocks,
        dropout=dropout,
        seed=seed,
        device=device,
    )
    run = train_refiner_on_mocap(mocap, source, config, fps=fps, log=lambda msg: typer.echo(msg, err=True))
    if save_error_model is not None:
        source.model.save(save_error_model)
    run.refiner.save(output, meta=run.meta)
    typer.echo(f"wrote {output} (final loss {run.history[-1]['loss']:.4f})")


@refine_app.command("apply", outputs={"output": FILE})
def apply(
    checkpoint: Path = typer.Argument(..., help="Refiner checkpoint from `refine train`."),
    predictions: Path = typer.Argument(
        ..., help="npz with poses3d (N, J, 3) in the camera frame, any units."
    ),
    output: Path = typer.Option(..., "-o", "--output", help="npz to write: the input keys, poses3d refined."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, ..."),
) -> None:
    """Refine the poses3d of a predictions file; the raw poses are kept as poses3d_raw."""
    import numpy as np

    from ..device import resolve_device
    from ..formats import read_poses3d
    from ..io import save_npz
    from ..refiner import load_refiner

    refiner = load_refiner(checkpoint, map_location=resolve_device(device))
    poses, arrays = read_poses3d(predictions, num_joints=refiner.num_joints)
    finite = np.isfinite(poses).all((-1, -2))
    refined = refiner.refine(poses)
    arrays["poses3d_raw"] = poses
    arrays["poses3d"] = refined
    save_npz(output, **arrays)
    msg = f"refined {int(finite.sum())} of {finite.size} poses -> {output}"
    if not finite.all():
        msg += f" ({int((~finite).sum())} poses with missing joints left unchanged)"
    typer.echo(msg)
