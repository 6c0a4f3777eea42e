"""Screening runs for the refinement unit: one refiner per call, one setting changed at a time.

Reads the learning benchmark's saved predictions of its self-supervised network
(``runs/learning_full/self_{val,test}_{pred,gt}.npz`` and ``pss_k50.npz``, written by
``python benchmarks/learning_bench.py --budget full``), fits the error model on the validation
split, trains one refiner on the training-split mocap *without* the validation clips (so the
validation numbers are on poses the refiner never saw), and prints JSON:

* ``val`` / ``test``: MPJPE before and after refinement, the reduction, PSS@50 before and after;
* ``val_synthetic`` / ``test_synthetic``: the same refiner on errors *sampled from the fitted
  model* on the ground truth of each split -- what the refiner achieves where the error model is
  exactly right, so ``test_synthetic - test`` is the cost of the model's mismatch;
* ``sample_mpjpe_virtual`` / ``sample_mpjpe_val``: the error model's MPJPE on the virtual views it
  trains on and on the validation views it was fitted on (far apart: the views do not match).

Examples (10 epochs each; the settings the BENCHMARKS.md table reports)::

    python benchmarks/refiner_ablation.py --elevation 5 25 --dropout 0.5            # baseline
    python benchmarks/refiner_ablation.py --elevation -10 45 --dropout 0.5          # default cameras
    python benchmarks/refiner_ablation.py --elevation 5 25 --dropout 0.1
    python benchmarks/refiner_ablation.py --elevation 5 25 --dropout 0.1 --cameras-per-pose 1
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

from epipolarpose.metrics import mpjpe
from epipolarpose.mocap import list_shared_clips, load_clips
from epipolarpose.pss import PSSModel
from epipolarpose.refiner import (
    ErrorFitOptions,
    RefinerTrainConfig,
    VirtualCameras,
    fitted_error_source,
    train_refiner,
)
from epipolarpose.skeleton import flip_pose

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from learning_bench import BUDGETS, spread  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, default=HERE.parent / "runs" / "learning_full")
    ap.add_argument("--shared", type=Path, default=HERE.parent.parent / "shared")
    ap.add_argument(
        "--gain",
        choices=("full", "independent"),
        default="full",
        help="pose-dependent error model, or bias + covariance + flips only",
    )
    ap.add_argument("--heavy-tails", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument(
        "--elevation",
        nargs=2,
        type=float,
        metavar=("LO", "HI"),
        default=None,
        help="virtual camera elevation range (deg); default: matched to the validation views",
    )
    ap.add_argument("--cameras-per-pose", type=int, default=4)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--fps", type=float, default=10.0)
    ap.add_argument("--mirror", action="store_true", help="add every mocap pose mirrored left/right")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    def load(name: str) -> np.ndarray:
        p = np.load(args.work / name)["poses3d"]
        return p - p[:, :1]

    vp, vg, tp, tg = (load(f"self_{s}.npz") for s in ("val_pred", "val_gt", "test_pred", "test_gt"))
    pss = PSSModel.load(args.work / "pss_k50.npz")
    # the learning benchmark's validation clips (training-split clips no network trained on)
    b = BUDGETS["full"]
    train_clips = list_shared_clips(args.shared, "train")
    clips_3d = set(spread(train_clips[1::2], b["clips_3d"]))
    clips_val = set(spread([c for c in train_clips[1::2] if c not in clips_3d], b["clips_val"]))
    world = load_clips([c for c in train_clips if c not in clips_val], fps=args.fps)[0]
    if args.mirror:
        world = np.concatenate([world, flip_pose(world, axis=0)])

    dep = args.gain == "full"
    gt_val_abs = np.load(args.work / "self_val_gt.npz")["poses3d"]
    options = ErrorFitOptions(
        pose_dependent=dep, heavy_tails=args.heavy_tails, match_cameras=args.elevation is None
    )
    source = fitted_error_source(vp, vg, options, view_poses=gt_val_abs)
    em = source.model
    cams = VirtualCameras(elevation=tuple(args.elevation)) if args.elevation is not None else source.cameras
    rng = np.random.default_rng(0)
    v = cams.view(world[::10], rng)
    out: dict = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, torch threads {args.threads}",
        "args": {k: (str(x) if isinstance(x, Path) else x) for k, x in vars(args).items()},
        "virtual_cameras": {"elevation": cams.elevation, "distance": cams.distance},
        "mocap_poses": len(world),
        "sample_mpjpe_virtual": mpjpe(em.sample(v, rng), v),
        "sample_mpjpe_val": mpjpe(em.sample(vg, rng), vg),
    }
    cfg = RefinerTrainConfig(
        epochs=args.epochs,
        cameras=cams,
        cameras_per_pose=args.cameras_per_pose,
        hidden=args.hidden,
        dropout=args.dropout,
        seed=args.seed,
    )
    t = time.time()
    refiner, _ = train_refiner(world, em, cfg, progress=False)
    out["train_s"] = round(time.time() - t, 1)
    for name, (p, g) in {"val": (vp, vg), "test": (tp, tg)}.items():
        r = refiner.refine(p)
        out[name] = {
            "before": mpjpe(p, g),
            "after": mpjpe(r, g),
            "red": 1 - mpjpe(r, g) / mpjpe(p, g),
            "pss_before": pss.score(p, g),
            "pss_after": pss.score(r, g),
        }
    rs = np.random.default_rng(5)
    for name, g in {"val": vg, "test": tg}.items():
        p = em.sample(g, rs)
        r = refiner.refine(p)
        out[name + "_synthetic"] = {
            "before": mpjpe(p, g),
            "after": mpjpe(r, g),
            "red": 1 - mpjpe(r, g) / mpjpe(p, g),
        }
    text = json.dumps(out, indent=1)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
