"""The embedded end-to-end run behind ``epipolarpose demo``.

Motion capture (the bundled CMU clip) -> noisy 2D detections in every camera of a real Human3.6M
rig (``synthesize``) -> self-calibration and pseudo-labels without extrinsics (``label_poses``)
-> scores against the ground truth -> ``report.json`` and PNG plots.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from .camera import Rig
from .io import save_json


def run_demo(
    out: Path,
    bvh: Path | None = None,
    rig_path: Path | None = None,
    fps: float = 50.0,
    sigma: float = 4.0,
    outliers: float = 0.05,
    swaps: float = 0.02,
    missing: float = 0.05,
    mode: str = "sequence",
    seed: int = 0,
    plots: bool = True,
) -> dict[str, Any]:
    """Run the demo and write ``out/report.json`` (+ PNGs). Returns the report dict."""
    from .geometry.alignment import align_rigs
    from .labelling import LabelOptions, label_poses
    from .metrics import n_mpjpe, p_mpjpe
    from .mocap import DEFAULT_BVH, load_mocap
    from .pss import PSSModel
    from .synthetic import NoiseModel, default_rig, synthesize

    t0 = time.perf_counter()
    out = Path(out)
    motion = load_mocap(bvh if bvh is not None else DEFAULT_BVH, fps=fps)
    rig = Rig.load(rig_path) if rig_path is not None else default_rig()
    noise = NoiseModel(sigma_px=sigma, outlier_prob=outliers, swap_prob=swaps, missing_prob=missing)
    poses2d, gt = synthesize(motion.poses, rig, noise, seed=seed, clip=motion.name, fps=motion.fps)
    print(f"synthesised {poses2d.num_frames} frames of {motion.name!r} in {len(rig)} cameras "
          f"(σ={sigma:g} px, {outliers:.0%} outliers, {swaps:.0%} swaps, {missing:.0%} missing)")

    # Self-calibrate and label: no extrinsics are given; intrinsics come with the detections.
    result = label_poses(poses2d, options=LabelOptions(mode=mode))
    labels, est_rig = result.labels, result.rig

    # Score the labels in every camera's frame: scale-free metrics (the rig has arbitrary units).
    gt_cam = rig.world_to_camera(gt.poses3d_world.astype(np.float64))  # (C, F, J, 3) mm
    pred_cam = labels.poses3d_camera.astype(np.float64)
    mask = np.broadcast_to(labels.valid, pred_cam.shape[:-1])
    nm = float(np.nanmean(n_mpjpe(pred_cam, gt_cam, mask=mask)))
    pm = float(np.nanmean(p_mpjpe(pred_cam, gt_cam, mask=mask)))
    rig_report = align_rigs(est_rig, rig)[1]

    pss_scores = {}
    ok = labels.valid.all(-1)
    for k in (50, 100):
        model = PSSModel.fit(gt_cam[0], k=k, seed=0)
        pss_scores[f"PSS@{k}"] = float(model.score(pred_cam[0][ok], gt_cam[0][ok]))

    report: dict[str, Any] = {
        "clip": motion.name,
        "frames": int(poses2d.num_frames),
        "cameras": rig.names,
        "noise": {"sigma_px": sigma, "outliers": outliers, "swaps": swaps, "missing": missing},
        "mode": mode,
        "N-MPJPE_mm": nm,
        "P-MPJPE_mm": pm,
        **pss_scores,
        "pss_note": "centroids fitted on this clip's ground truth (in-sample)",
        "valid_fraction": float(labels.valid.mean()),
        "rig": rig_report,
        "summary": result.summary.as_dict(),
        "seconds": time.perf_counter() - t0,
    }
    out.mkdir(parents=True, exist_ok=True)
    if plots:
        _plots(out, rig, est_rig, labels, gt_cam, pred_cam, align_rigs)
    save_json(out / "report.json", report)
    _print_report(report, out)
    return report


def _plots(out: Path, rig: Rig, est_rig: Rig, labels, gt_cam, pred_cam, align_rigs) -> None:
    """``rig.png``: the true rig and the self-calibrated one aligned to it (similarity);
    ``poses.png``: ground truth and pseudo-labels (scaled to the truth) on four frames."""
    import matplotlib.pyplot as plt

    from .viz import plot_poses3d, plot_rig, save_figure

    fig = plot_rig([rig, align_rigs(est_rig, rig)[0]], labels=["true", "self-calibrated (aligned)"],
                   title="Camera rig (world frame, mm)")
    save_figure(fig, out / "rig.png")
    plt.close(fig)
    F = gt_cam.shape[1]
    ok = np.nonzero(labels.valid.all(-1))[0]
    idx = ok[np.linspace(0, len(ok) - 1, 4).round().astype(int)] if len(ok) else np.arange(min(F, 4))
    fig = plt.figure(figsize=(14, 4))
    pred = _scaled_like(pred_cam[0][idx], gt_cam[0][idx])
    for i, f in enumerate(idx):
        ax = fig.add_subplot(1, len(idx), i + 1, projection="3d")
        # camera frame is x right, y down, z forward: view it upright
        g, p = gt_cam[0][f] * [1, -1, 1], pred[i] * [1, -1, 1]
        plot_poses3d(np.stack([g[:, [0, 2, 1]], p[:, [0, 2, 1]]]), labels=["ground truth", "pseudo-label"],
                     colors=["k", "tab:orange"], ax=ax, title=f"frame {f}")
    save_figure(fig, out / "poses.png")
    plt.close(fig)


def _scaled_like(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Root-align ``pred`` (N, J, 3) to ``gt`` and apply the optimal per-pose scale (for plotting)."""
    from .geometry.alignment import optimal_scale

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
