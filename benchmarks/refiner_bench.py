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

Three refiners are trained with identical settings: (a) ``fitted``, on the fitted error model
(limb flips, errors that depend linearly on the pose, per-joint bias, full covariance, heavy-tailed
per-pose noise scale); (b) ``fitted_independent``, the same fit without the pose-dependent term and
the heavy tails (bias + covariance + flips: the error model before 2026-12); (c) ``gaussian``, on
isotropic Gaussian noise whose expected per-joint error equals the validation MPJPE. They report
MPJPE, P-MPJPE and PSS@50 (k-means centroids fitted on training mocap seen through virtual
cameras) before and after refinement.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from epipolarpose.formats import read_poses3d
from epipolarpose.metrics import mpjpe, p_mpjpe
from epipolarpose.mocap import list_shared_clips, load_clips
from epipolarpose.refiner import (
    ErrorFitOptions,
    ErrorModel,
    RefinerTrainConfig,
    VirtualCameras,
    fit_error_model,
    fitted_error_source,
    flip_limbs,
    limb_flip_eligible,
    subtree_matrix,
    train_refiner,
)
from epipolarpose.skeleton import PARENTS

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
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--lr-decay", type=float, default=0.95)
    ap.add_argument("--cameras-per-pose", type=int, default=4)
    ap.add_argument(
        "--cameras",
        choices=("match", "default"),
        default="match",
        help="virtual cameras matched to the validation ground truth (VirtualCameras.matching) or the wide defaults",
    )
    ap.add_argument(
        "--keep-val-clips",
        action="store_true",
        help="train on the validation clips too (by default they are left out when the val ground-truth file "
        "names them in a 'clip' key, so the validation numbers are on unseen poses)",
    )
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--align-scale",
        action="store_true",
        help="fit errors after per-pose scale alignment (scale-free nets)",
    )
    ap.add_argument("--pss-centroids", type=Path, help="PSS@50 centroids (.npz) instead of fitting them")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fit-only", action="store_true", help="fit and describe the error model, train nothing")
    ap.add_argument(
        "--variants",
        default="fitted,fitted_independent,gaussian",
        help="comma-separated error models to train refiners on",
    )
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
    cams = VirtualCameras()
    excluded: list[str] = []
    if real:
        val_pred, _ = read_poses3d(args.val_pred)
        val_gt, val_arrays = read_poses3d(args.val_gt)
        if "clip" in val_arrays and not args.keep_val_clips:
            names = set(np.asarray(val_arrays["clip"]).astype(str).tolist())
            excluded = sorted(c.stem for c in train_clips if c.stem in names)
            train_clips = [c for c in train_clips if c.stem not in names]
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
    train_world, train_names, _ = load_clips(train_clips, fps=args.fps)
    t_data = time.time() - t0

    try:
        from epipolarpose.pss import PSSModel

        if args.pss_centroids is not None:
            pss_model = PSSModel.load(args.pss_centroids)
        else:
            pss_model = PSSModel.fit(cams.view(train_world, np.random.default_rng(1)), k=50, seed=0)
    except ImportError:
        pss_model = None

    source = fitted_error_source(
        val_pred, val_gt, ErrorFitOptions(align_scale=args.align_scale, match_cameras=args.cameras == "match")
    )
    fitted, train_cams = source.model, source.cameras
    independent = fit_error_model(
        val_pred, val_gt, align_scale=args.align_scale, pose_dependent=False, heavy_tails=False
    )
    val_mpjpe = mpjpe(val_pred, val_gt)
    sigma = val_mpjpe / GAUSS_MEAN_NORM
    gaussian = ErrorModel.gaussian(sigma, reference_scale=fitted.reference_scale)

    def transfer(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
        """How much of a split's error the fitted model's mean error (bias + pose-dependent term)
        explains, and the RMS of what is left (mm, per coordinate, root-relative)."""
        e = (pred - pred[:, :1]) - (gt - gt[:, :1])
        left = e - fitted.expected_error(gt - gt[:, :1])
        var = np.mean((e - e.mean(0)) ** 2)
        return {
            "explained": round(1 - float(np.mean((left - left.mean(0)) ** 2)) / var, 4),
            "error_rms": round(float(np.sqrt(np.mean(e**2))), 2),
            "left_rms": round(float(np.sqrt(np.mean(left**2))), 2),
        }

    result: dict = {
        "mode": "real" if real else "proxy (simulated network)",
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "threads": args.threads,
        "train_mocap": {
            "clips": len(train_clips),
            "poses": len(train_world),
            "fps": args.fps,
            "val_clips_left_out": len(excluded),
        },
        "virtual_cameras": {k: v for k, v in vars(train_cams).items()},
        "test": {"poses": len(test_gt), "clips": None if real else len(test_clips)},
        "val": {"poses": len(val_gt), "clips": len(val_clips) or None, "mpjpe": round(val_mpjpe, 3)},
        "error_model_fitted": fitted.summary(),
        "error_model_fitted_independent": independent.summary(),
        "gaussian_sigma_mm": round(sigma, 3),
        "error_model_transfer": {
            "val_in_sample": transfer(val_pred, val_gt),
            "val_out_of_fold_left_rms": round(float(np.sqrt(np.mean(np.diag(fitted.cov)))), 2),
            "test": transfer(test_pred, test_gt),
        },
        "config": {
            k: getattr(args, k)
            for k in (
                "epochs",
                "hidden",
                "dropout",
                "lr",
                "lr_decay",
                "cameras_per_pose",
                "cameras",
                "align_scale",
                "seed",
            )
        },
        "pss": None
        if pss_model is None
        else str(args.pss_centroids or "k=50 fitted on training mocap views"),
        "before": scores(test_pred, test_gt, pss_model),
    }
    if args.fit_only:
        text = json.dumps(result, indent=1)
        print(text)
        if args.out is not None:
            args.out.write_text(text + "\n")
        return
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    models = {"fitted": fitted, "fitted_independent": independent, "gaussian": gaussian}
    if not variants or any(v not in models for v in variants):
        ap.error(f"--variants: choose from {','.join(models)}")
    for name in variants:
        model = models[name]
        cfg = RefinerTrainConfig(
            epochs=args.epochs,
            hidden=args.hidden,
            dropout=args.dropout,
            lr=args.lr,
            lr_decay=args.lr_decay,
            cameras_per_pose=args.cameras_per_pose,
            seed=args.seed,
            cameras=train_cams,
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
        if real:  # the validation split: fitted the error model, but its poses are unseen by the refiner
            v = scores(refiner.refine(val_pred), val_gt, pss_model)
            result[f"val_after_{name}"] = v
    if real:
        result["val_before"] = scores(val_pred, val_gt, pss_model)
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
