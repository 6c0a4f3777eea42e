"""The embedded end-to-end run behind ``epipolarpose demo``.

Motion capture (the bundled CMU clip) -> noisy 2D detections in every camera of a real Human3.6M
rig (:func:`~epipolarpose.synthetic.synthesize`) -> self-calibration and pseudo-labels without
extrinsics (:func:`~epipolarpose.labelling.label_poses`) -> scores against the ground truth
(:func:`score_labels`) -> ``report.json`` and PNG plots.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .camera import Rig
from .formats import GroundTruth, Labels, Poses2D
from .geometry.alignment import align_rigs, optimal_scale
from .io import save_json
from .labelling import LabelOptions, label_poses
from .metrics import n_mpjpe, p_mpjpe
from .mocap import DEFAULT_BVH, Motion, load_mocap
from .pss import PSSModel
from .synthetic import NoiseModel, default_rig, synthesize
from .timing import Timer

__all__ = ["DemoOptions", "DemoScores", "run_demo", "score_labels", "synthesize_demo"]

#: PSS cluster counts of the demo (centroids fitted on the clip's own ground truth).
PSS_K = (50, 100)


@dataclass(frozen=True)
class DemoOptions:
    """What the demo runs (the defaults are ``epipolarpose demo``'s).

    Attributes:
        bvh: motion capture clip (default: the bundled CMU 131_01).
        rig_path: rig.json of the cameras that see it (default: the bundled Human3.6M S9 rig).
        fps: resample the motion to this frame rate.
        noise: the detector noise of the synthetic 2D detections.
        mode: labelling mode, ``"sequence"`` (ours) or ``"per-frame"`` (the paper's recipe).
        seed: seed of the detector-noise model.
        plots: also write ``rig.png`` and ``poses.png``.
    """

    bvh: Path | None = None
    rig_path: Path | None = None
    fps: float = 50.0
    noise: NoiseModel = field(default_factory=NoiseModel)
    mode: str = "sequence"
    seed: int = 0
    plots: bool = True


@dataclass(frozen=True)
class DemoScores:
    """Pseudo-labels scored against the ground truth in every camera's frame (scale-free metrics:
    a self-calibrated rig has arbitrary units).

    Attributes:
        n_mpjpe_mm: N-MPJPE (mm), mean over cameras and poses.
        p_mpjpe_mm: P-MPJPE (mm).
        pss: ``{k: PSS@k}`` in the first camera, centroids fitted on the clip's ground truth.
        valid_fraction: fraction of (frame, joint) triangulated.
        rig: :func:`~epipolarpose.geometry.alignment.align_rigs`'s report of the recovered rig.
    """

    n_mpjpe_mm: float
    p_mpjpe_mm: float
    pss: dict[int, float]
    valid_fraction: float
    rig: dict[str, Any]


def synthesize_demo(options: DemoOptions) -> tuple[Motion, Rig, Poses2D, GroundTruth]:
    """The demo's input: the motion, the true rig, and the noisy detections with their ground truth."""
    motion = load_mocap(options.bvh if options.bvh is not None else DEFAULT_BVH, fps=options.fps)
    rig = Rig.load(options.rig_path) if options.rig_path is not None else default_rig()
    poses2d, gt = synthesize(
        motion.poses, rig, options.noise, seed=options.seed, clip=motion.name, fps=motion.fps
    )
    return motion, rig, poses2d, gt


def score_labels(labels: Labels, est_rig: Rig, rig: Rig, gt: GroundTruth) -> DemoScores:
    """Score pseudo-labels and their self-calibrated rig against the true ``rig`` and ``gt``."""
    gt_cam = rig.world_to_camera(gt.poses3d_world.astype(np.float64))  # (C, F, J, 3) mm
    pred_cam = labels.poses3d_camera.astype(np.float64)
    mask = np.broadcast_to(labels.valid, pred_cam.shape[:-1])
    ok = labels.valid.all(-1)
    pss = {}
    for k in PSS_K:
        model = PSSModel.fit(gt_cam[0], k=k, seed=0)
        pss[k] = float(model.score(pred_cam[0][ok], gt_cam[0][ok]))
    return DemoScores(
        n_mpjpe_mm=float(np.nanmean(n_mpjpe(pred_cam, gt_cam, mask=mask))),
        p_mpjpe_mm=float(np.nanmean(p_mpjpe(pred_cam, gt_cam, mask=mask))),
        pss=pss,
        valid_fraction=float(labels.valid.mean()),
        rig=align_rigs(est_rig, rig)[1],
    )


def run_demo(out: Path, options: DemoOptions = DemoOptions()) -> dict[str, Any]:
    """Run the demo and write ``out/report.json`` (+ PNGs); prints a summary. Returns the report."""
    timer = Timer()
    out = Path(out)
    noise = options.noise
    motion, rig, poses2d, gt = synthesize_demo(options)
    print(
        f"synthesised {poses2d.num_frames} frames of {motion.name!r} in {len(rig)} cameras "
        f"(σ={noise.sigma_px:g} px, {noise.outlier_prob:.0%} outliers, {noise.swap_prob:.0%} swaps, "
        f"{noise.missing_prob:.0%} missing)"
    )
    # Self-calibrate and label: no extrinsics are given; intrinsics come with the detections.
    result = label_poses(poses2d, options=LabelOptions(mode=options.mode))
    scores = score_labels(result.labels, result.rig, rig, gt)
    report: dict[str, Any] = {
        "clip": motion.name,
        "frames": int(poses2d.num_frames),
        "cameras": rig.names,
        "noise": {
            "sigma_px": noise.sigma_px,
            "outliers": noise.outlier_prob,
            "swaps": noise.swap_prob,
            "missing": noise.missing_prob,
        },
        "mode": options.mode,
        "N-MPJPE_mm": scores.n_mpjpe_mm,
        "P-MPJPE_mm": scores.p_mpjpe_mm,
        **{f"PSS@{k}": v for k, v in scores.pss.items()},
        "pss_note": "centroids fitted on this clip's ground truth (in-sample)",
        "valid_fraction": scores.valid_fraction,
        "rig": scores.rig,
        "summary": result.summary.as_dict(),
        "seconds": timer.total(),
    }
    out.mkdir(parents=True, exist_ok=True)
    if options.plots:
        _plots(out, rig, result.rig, result.labels, gt)
    save_json(out / "report.json", report)
    _print_report(report, out)
    return report


def _plots(out: Path, rig: Rig, est_rig: Rig, labels: Labels, gt: GroundTruth) -> None:
    """``rig.png``: the true rig and the self-calibrated one aligned to it (similarity);
    ``poses.png``: ground truth and pseudo-labels (scaled to the truth) on four frames."""
    import matplotlib.pyplot as plt

    from .viz import plot_poses3d, plot_rig, save_figure

    fig = plot_rig(
        [rig, align_rigs(est_rig, rig)[0]],
        labels=["true", "self-calibrated (aligned)"],
        title="Camera rig (world frame, mm)",
    )
    save_figure(fig, out / "rig.png")
    plt.close(fig)
    gt_cam = rig.world_to_camera(gt.poses3d_world.astype(np.float64))[0]  # camera 0: (F, J, 3) mm
    pred_cam = labels.poses3d_camera[0].astype(np.float64)
    ok = np.nonzero(labels.valid.all(-1))[0]
    n = len(gt_cam)
    idx = ok[np.linspace(0, len(ok) - 1, 4).round().astype(int)] if len(ok) else np.arange(min(n, 4))
    fig = plt.figure(figsize=(14, 4))
    pred = _scaled_like(pred_cam[idx], gt_cam[idx])
    for i, f in enumerate(idx):
        ax = fig.add_subplot(1, len(idx), i + 1, projection="3d")
        # camera frame is x right, y down, z forward: view it upright
        g, p = gt_cam[f] * [1, -1, 1], pred[i] * [1, -1, 1]
        plot_poses3d(
            np.stack([g[:, [0, 2, 1]], p[:, [0, 2, 1]]]),
            labels=["ground truth", "pseudo-label"],
            colors=["k", "tab:orange"],
            ax=ax,
            title=f"frame {f}",
        )
    save_figure(fig, out / "poses.png")
    plt.close(fig)


def _scaled_like(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Root-align ``pred`` (N, J, 3) to ``gt`` and apply the optimal per-pose scale (for plotting)."""
    p = pred - pred[:, :1]
    g = gt - gt[:, :1]
    s = optimal_scale(p, g)
    return p * s[:, None, None] + gt[:, :1]


def _print_report(r: dict[str, Any], out: Path) -> None:
    rot = r["rig"].get("pairwise_rotation_error_deg")
    lines = [
        f"N-MPJPE  {r['N-MPJPE_mm']:7.1f} mm   (camera frames, optimal scale per pose)",
        f"P-MPJPE  {r['P-MPJPE_mm']:7.1f} mm",
        f"PSS@50   {r['PSS@50']:7.3f}      PSS@100 {r['PSS@100']:.3f}",
        f"valid    {r['valid_fraction']:7.1%} of joints triangulated",
    ]
    if rot is not None:
        lines.append(f"rig      max relative-rotation error {np.max(rot):.2f}°")
    lines.append(f"time     {r['seconds']:.1f} s; report in {out}/report.json")
    print("\n".join(lines))
