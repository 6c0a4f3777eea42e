"""``epipolarpose synth``: motion capture -> noisy multi-view 2D detections + ground truth."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import InputError
from ._app import FOLDER, app


def _parse_offsets(text: str | None) -> tuple[int, ...] | None:
    if text is None or not text.strip():
        return None
    try:
        return tuple(int(x) for x in text.replace(" ", "").split(","))
    except ValueError:
        raise InputError(f"--time-offsets must be comma-separated integers, got {text!r}") from None


def _parse_range(text: str, option: str) -> tuple[float, float]:
    try:
        lo, hi = (float(x) for x in text.split(","))
    except ValueError:
        raise InputError(f"{option} must be two comma-separated numbers LO,HI, got {text!r}") from None
    return lo, hi


@app.command(outputs={"out": FOLDER})
def synth(
    out: Path = typer.Option(..., "-o", "--out", help="Output folder for poses2d.npz and gt.npz."),
    bvh: list[Path] = typer.Option(
        None,
        "--bvh",
        help="BVH clip(s) (Bandai-Namco or CMU skeleton); repeat to concatenate several. "
        "Default: the bundled CMU clip 131_01.",
    ),
    rig: Path | None = typer.Option(
        None, "--rig", help="rig.json with the cameras. Default: the bundled Human3.6M S9 rig."
    ),
    fps: float = typer.Option(50.0, "--fps", help="Resample the motion to this frame rate (slerp)."),
    sigma: float = typer.Option(4.0, "--sigma", help="Gaussian pixel noise, std per coordinate (px)."),
    outliers: float = typer.Option(
        0.05, "--outliers", help="Probability that a joint is a gross outlier within the person's box."
    ),
    swaps: float = typer.Option(
        0.02, "--swaps", help="Probability that a (camera, frame) has all left/right joints swapped."
    ),
    missing: float = typer.Option(0.05, "--missing", help="Probability that a joint is missing."),
    time_offsets: str | None = typer.Option(
        None,
        "--time-offsets",
        help="Per-camera offsets in frames, e.g. 0,3,-2,5: camera c's frame i shows the motion at time i + (its offset).",
    ),
    clean_scores: str = typer.Option(
        "0.5,1", "--clean-scores", help="LO,HI: range of the uniform confidence of clean joints."
    ),
    corrupted_scores: str = typer.Option(
        "0.1,0.9",
        "--corrupted-scores",
        help="LO,HI: range of the uniform confidence of outliers and swapped joints "
        "(overlap it with --clean-scores for a harder test).",
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of all random draws."),
    frames: int | None = typer.Option(None, "--frames", help="Keep only the first N frames."),
    no_intrinsics: bool = typer.Option(
        False, "--no-intrinsics", help="Leave K and dist out of poses2d.npz (fully uncalibrated input)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or progress messages."),
) -> None:
    """Project motion capture through a rig into noisy 2D detections (poses2d.npz) and gt.npz."""
    from ..camera import Rig
    from ..io import write_together
    from ..mocap import DEFAULT_BVH
    from ..synthetic import NoiseModel, corruption_stats, default_rig, synthesize_clips

    paths = list(bvh) if bvh else [DEFAULT_BVH]
    the_rig = Rig.load(rig) if rig is not None else default_rig()
    noise = NoiseModel(
        sigma_px=sigma,
        outlier_prob=outliers,
        swap_prob=swaps,
        missing_prob=missing,
        time_offsets=_parse_offsets(time_offsets),
        score_clean=_parse_range(clean_scores, "--clean-scores"),
        score_corrupted=_parse_range(corrupted_scores, "--corrupted-scores"),
    )
    poses2d, gt = synthesize_clips(
        paths, the_rig, noise, fps=fps, seed=seed, frames=frames, progress=not quiet
    )
    if no_intrinsics:
        poses2d.K = poses2d.dist = None
    write_together([(out / "poses2d.npz", poses2d.save), (out / "gt.npz", gt.save)])

    typer.echo(
        f"wrote {out / 'poses2d.npz'} and {out / 'gt.npz'}: {poses2d.num_frames} frames at {fps:g} fps "
        f"from {len(paths)} clip(s), {len(the_rig)} cameras, {poses2d.num_joints} joints"
    )
    typer.echo(
        f"noise: sigma {sigma:g} px, outliers {outliers:g}, swaps {swaps:g} per view-frame, "
        f"missing {missing:g}, time offsets {list(noise.time_offsets or [0] * len(the_rig))}, seed {seed}"
    )
    typer.echo("camera            visible  detected  outlier  swapped  missing")
    for st in corruption_stats(poses2d):
        typer.echo(
            f"{st.camera:<16} {st.visible:8.1%} {st.detected:9.1%} "
            f"{st.outlier:8.1%} {st.swapped:8.1%} {st.missing:8.1%}"
        )
