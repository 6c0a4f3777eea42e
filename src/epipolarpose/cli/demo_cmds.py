"""``epipolarpose demo``: the whole calibration-free pipeline on an embedded default, and ``version``."""

from __future__ import annotations

from pathlib import Path

import typer

from ._app import FOLDER, app


@app.command(outputs={})
def version() -> None:
    """Print the installed version."""
    from .. import __version__

    print(__version__)


@app.command(outputs={"out": FOLDER})
def demo(
    out: Path = typer.Option(Path("demo_out"), "--out", "-o", help="Folder for the report."),
    bvh: Path = typer.Option(None, "--bvh", help="Motion capture clip (default: the bundled CMU 131_01)."),
    rig: Path = typer.Option(
        None, "--rig", help="Camera rig used to synthesise views (default: the bundled Human3.6M S9 rig)."
    ),
    fps: float = typer.Option(50.0, help="Resample the motion to this frame rate."),
    sigma: float = typer.Option(4.0, help="Gaussian detector noise, pixels."),
    outliers: float = typer.Option(0.05, help="Fraction of joints replaced by gross outliers."),
    swaps: float = typer.Option(0.02, help="Fraction of (view, frame) with left/right swapped."),
    missing: float = typer.Option(0.05, help="Fraction of joints missing."),
    mode: str = typer.Option(
        "sequence", help="Labelling mode: sequence (ours) or per-frame (the paper's recipe)."
    ),
    seed: int = typer.Option(0, help="Random seed of the detector-noise model."),
) -> None:
    """Synthesise noisy multi-view detections, self-calibrate, label and score them (a full run)."""
    from ..demo import DemoOptions, run_demo
    from ..synthetic import NoiseModel

    noise = NoiseModel(sigma_px=sigma, outlier_prob=outliers, swap_prob=swaps, missing_prob=missing)
    run_demo(out, DemoOptions(bvh=bvh, rig_path=rig, fps=fps, noise=noise, mode=mode, seed=seed))
