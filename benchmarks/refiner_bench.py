"""Refinement-unit benchmark: does a refiner trained on mocap with a *fitted* error model clean
3D predictions, and is fitting worth it compared with plain Gaussian noise of matched magnitude?

Two modes (JSON on stdout, also written to benchmarks/results/refiner_bench[_real].json):

* **Real** (the issue's benchmark, once the 3D network of issue #4 exists)::

      python benchmarks/refiner_bench.py --val-pred VAL_PRED.npz --val-gt VAL_GT.npz \\
          --test-pred TEST_PRED.npz --test-gt TEST_GT.npz

  Each file holds ``poses3d`` (N, 17, 3) in the camera frame (mm; the network's predictions and
  their ground truth) for a validation split (to fit the error model) and for the test split.
  The refiner is trained only on the shared *training* mocap clips
  (``list_shared_clips(split="train")``), disjoint from the test clips.

* **Proxy** (default, no network needed): a simulated network corrupts mocap poses seen through
  random cameras with errors that are only partly inside the error model's family (depth
  shrinkage towards the root, per-joint bias, depth noise accumulating down the kinematic
  chains, heavy-tailed per-pose error scale, limb flips). Its outputs on a validation subset of
  the training clips fit the error model; the test uses the held-out test clips.

Both train two refiners with identical settings: (a) on the fitted error model, (b) on
isotropic Gaussian noise whose expected per-joint error equals the validation MPJPE, and report
MPJPE, P-MPJPE and PSS@50 (k-means centroids fitted on training mocap seen through virtual
cameras) before and after refinement.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from epipolarpose.metrics import mpjpe, p_mpjpe
from epipolarpose.mocap import list_shared_clips, load_clips
from epipolarpose.skeleton import PARENTS
from epipolarpose.training.refiner import (
    ErrorModel,
    RefinerTrainConfig,
    VirtualCameras,
    fit_error_model,
    flip_limbs,
    limb_flip_eligible,
    read_poses3d,
    subtree_matrix,
    train_refiner,
)

REPO = Path(__file__).resolve().parents[1]
#: E|e| of an isotropic 3D Gaussian with unit std per coordinate: 2 sqrt(2 / pi).
GAUSS_MEAN_NORM = 2.0 * np.sqrt(2.0 / np.pi)


def simulated_network(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A stand-in for a monocular 3D network's predictions: (N, 17, 3) camera frame, mm.

    Fixed systematic part (same seed every call): per-joint bias; random part: depth shrinkage
    (predictions regress towards the root depth by 20 %), bone-depth noise accumulating down the
    kinematic chains (25 mm per bone), 10 mm x/y noise per joint, a log-normal per-pose error
    scale (heavy tails), and 8 % limb flips.
    """
    fixed = np.random.default_rng(1234)
    bias = fixed.normal(0, 1, (17, 3)) * [12.0, 12.0, 25.0]
    bias[0] = 0
    n = len(clean)
    flips = limb_flip_eligible(clean) & (rng.random((n, 8)) < 0.08)
    pred = flip_limbs(clean, flips)
    pred[..., 2] *= 0.8
    bone_dz = rng.normal(0, 25.0, (n, 17))
    bone_dz[:, 0] = 0
    depth_walk = bone_dz @ subtree_matrix(PARENTS).astype(np.float64)  # (n, J): sum over ancestors
    noise = np.concatenate([rng.normal(0, 10.0, (n, 17, 2)), depth_walk[..., None]], -1)
    noise[:, 0] = 0
    scale = rng.lognormal(0.0, 0.4, (n, 1, 1))
    return pred + bias + scale * noise


def scores(pred: np.ndarray, gt: np.ndarray, pss_model) -> dict[str, float]:
    out = {"mpjpe": mpjpe(pred, gt), "p_mpjpe": p_mpjpe(pred, gt)}
    if pss_model is not None:
        out["pss50"] = float(pss_model.score(pred, gt))
    return {k: round(v, 4) for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    ap.add_argument("--val-pred", type=Path)
    ap.add_argument("--val-gt", type=Path)
    ap.add_argument("--test-pred", type=Path)
    ap.add_argument("--test-gt", type=Path)
    ap.add_argument("--fps", type=float, default=10.0, help="mocap resampling rate")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--dropout", type=float, default=0.5)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--lr-decay", type=float, default=0.95)
    ap.add_argument("--cameras-per-pose", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--align-scale",
        action="store_true",
        help="fit errors after per-pose scale alignment (scale-free nets)",
    )
    ap.add_argument("--pss-centroids", type=Path, help="PSS@50 centroids (.npz) instead of fitting them")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="JSON file (default benchmarks/results/...)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    real = any(p is not None for p in (args.val_pred, args.val_gt, args.test_pred, args.test_gt))
    if real and not all(p is not None for p in (args.val_pred, args.val_gt, args.test_pred, args.test_gt)):
        ap.error("real mode needs --val-pred, --val-gt, --test-pred and --test-gt")
    rng = np.random.default_rng(args.seed)
    t0 = time.time()

    train_clips = list_shared_clips(args.shared, "train")
    test_clips = list_shared_clips(args.shared, "test")
    train_world, train_names, _ = load_clips(train_clips, fps=args.fps)
    cams = VirtualCameras()
    if real:
        val_pred, _ = read_poses3d(args.val_pred)
        val_gt, _ = read_poses3d(args.val_gt)
        test_pred, _ = read_poses3d(args.test_pred)
        test_gt, _ = read_poses3d(args.test_gt)
        val_clips = []
    else:
        val_clips = train_clips[::5]  # the simulated network's validation split
        val_world = load_clips(val_clips, fps=args.fps)[0]
        val_gt = cams.view(val_world, rng)
        val_pred = simulated_network(val_gt, rng)
        test_world = load_clips(test_clips, fps=args.fps)[0]
        test_gt = cams.view(np.repeat(test_world, 2, axis=0), rng)
        test_pred = simulated_network(test_gt, rng)
    t_data = time.time() - t0

    try:
        from epipolarpose.pss import PSSModel

        if args.pss_centroids is not None:
            pss_model = PSSModel.load(args.pss_centroids)
        else:
            pss_model = PSSModel.fit(cams.view(train_world, np.random.default_rng(1)), k=50, seed=0)
    except ImportError:
        pss_model = None

    fitted = fit_error_model(val_pred, val_gt, align_scale=args.align_scale)
    val_mpjpe = mpjpe(val_pred, val_gt)
    sigma = val_mpjpe / GAUSS_MEAN_NORM
    gaussian = ErrorModel.gaussian(sigma, reference_scale=fitted.reference_scale)
    result: dict = {
        "mode": "real" if real else "proxy (simulated network)",
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "threads": args.threads,
        "train_mocap": {"clips": len(train_clips), "poses": len(train_world), "fps": args.fps},
        "test": {"poses": len(test_gt), "clips": None if real else len(test_clips)},
        "val": {"poses": len(val_gt), "clips": len(val_clips) or None, "mpjpe": round(val_mpjpe, 3)},
        "error_model_fitted": fitted.summary(),
        "gaussian_sigma_mm": round(sigma, 3),
        "config": {
            k: getattr(args, k)
            for k in (
                "epochs",
                "hidden",
                "dropout",
                "lr",
                "lr_decay",
                "cameras_per_pose",
                "align_scale",
                "seed",
            )
        },
        "pss": None
        if pss_model is None
        else str(args.pss_centroids or "k=50 fitted on training mocap views"),
        "before": scores(test_pred, test_gt, pss_model),
    }
    for name, model in (("fitted", fitted), ("gaussian", gaussian)):
        cfg = RefinerTrainConfig(
            epochs=args.epochs,
            hidden=args.hidden,
            dropout=args.dropout,
            lr=args.lr,
            lr_decay=args.lr_decay,
            cameras_per_pose=args.cameras_per_pose,
            seed=args.seed,
        )
        t = time.time()
        refiner, history = train_refiner(train_world, model, cfg, progress=True)
        train_s = time.time() - t
        t = time.time()
        refined = refiner.refine(test_pred)
        apply_s = time.time() - t
        result[f"after_{name}"] = {
            **scores(refined, test_gt, pss_model),
            "train_s": round(train_s, 1),
            "train_samples_per_s": round(len(train_world) * args.cameras_per_pose * args.epochs / train_s, 1),
            "apply_poses_per_s": round(len(test_pred) / max(apply_s, 1e-9), 1),
            "final_loss": round(history[-1]["loss"], 5),
        }
        before = result["before"]["mpjpe"]
        result[f"mpjpe_reduction_{name}"] = round(1 - result[f"after_{name}"]["mpjpe"] / before, 4)
    result["data_s"] = round(t_data, 1)
    result["total_s"] = round(time.time() - t0, 1)
    text = json.dumps(result, indent=1)
    print(text)
    out = args.out or REPO / "benchmarks" / "results" / (
        "refiner_bench_real.json" if real else "refiner_bench.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
