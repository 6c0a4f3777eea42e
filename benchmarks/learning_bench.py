"""A miniature of EpipolarPose's Table: single-image 3D pose learned with different supervision.

Synthetic images (``epipolarpose.synthetic.render``) of the shared motion capture, seen by the
Human3.6M S1 cameras for training and the S9 cameras for testing; the 2D network, the 3D training
clips and the test clips are three disjoint sets of clips (the test clips come from the mocap's
``test`` split). One network configuration and one training budget for every row:

* ``full``: ground-truth 3D;
* ``rt``: self-supervised, pseudo-labels triangulated from the frozen 2D network's detections with
  the known extrinsics;
* ``self``: self-supervised without extrinsics (our default: ``label_poses`` self-calibrates);
* ``self_gt2d``: self-supervised without extrinsics from ground-truth 2D.

Every 3D network starts from the same trained 2D network. Metrics on the test views: MPJPE with
the ground-truth root depth (the paper's protocol), N-MPJPE, P-MPJPE, PSS@50 (centroids fitted on
the training split's ground truth), plus the pseudo-labels' own N-MPJPE, the training throughput
and the bare network's forward+backward throughput.

    python benchmarks/learning_bench.py --budget tiny   # a few minutes: checks that it works
    python benchmarks/learning_bench.py --budget full   # the reported numbers (~60-70 min on 2 CPU cores,
                                                        # ~25 of them the refiner stage; --no-refiner skips it)

Prints JSON to stdout and writes ``benchmarks/results/learning_<budget>.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

BUDGETS = {
    # clips per set, frames per second, steps of the 2D and of every 3D run, images per step
    "tiny": dict(
        clips_2d=3,
        clips_3d=3,
        clips_test=2,
        clips_val=2,
        fps=4,
        steps_2d=60,
        steps_3d=40,
        batch=16,
        refiner_epochs=1,
    ),
    "medium": dict(
        clips_2d=20,
        clips_3d=20,
        clips_test=8,
        clips_val=8,
        fps=4,
        steps_2d=600,
        steps_3d=400,
        batch=16,
        refiner_epochs=5,
    ),
    "full": dict(
        clips_2d=40,
        clips_3d=40,
        clips_test=16,
        clips_val=48,
        fps=5,
        steps_2d=3500,
        steps_3d=1000,
        batch=16,
        refiner_epochs=20,
    ),
}
ROWS = ("full", "rt", "self", "self_gt2d")
#: issue 12 (benchmarks/footage_rows.py): --suite videos (renderer vs decoded rendered videos) and
#: --suite footage (the caliscope sessions); steps per run, images per step
SUITE_BUDGETS = {
    "tiny": dict(
        clips_3d=2,
        clips_test=2,
        fps=4,
        steps_3d=20,
        batch=16,
        video_width=320,
        clips_renders=4,
        steps_renders=20,
        steps_footage=20,
    ),
    "small": dict(
        clips_3d=6,
        clips_test=6,
        fps=5,
        steps_3d=120,
        batch=16,
        video_width=400,
        clips_renders=20,
        steps_renders=200,
        steps_footage=100,
    ),
    "medium": dict(
        clips_3d=8,
        clips_test=8,
        fps=5,
        steps_3d=250,
        batch=16,
        video_width=500,
        clips_renders=40,
        steps_renders=600,
        steps_footage=300,
    ),
    "full": dict(
        clips_3d=16,
        clips_test=16,
        fps=5,
        steps_3d=600,
        batch=16,
        video_width=500,
        clips_renders=80,
        steps_renders=1500,
        steps_footage=600,
    ),
}


def spread(items: list, n: int, offset: int = 0) -> list:
    """``n`` evenly spaced items, starting ``offset`` positions in (deterministic)."""
    if n >= len(items):
        return list(items)
    idx = (np.arange(n) * (len(items) / n) + offset).astype(int) % len(items)
    return [items[i] for i in idx]


def bare_throughput(cfg, batch: int, repeats: int = 5) -> float:
    """Images/s of the bare network's forward + backward + Adam step on random input."""
    import torch

    from epipolarpose.models import PoseNet

    model = PoseNet(cfg).train()
    opt = torch.optim.Adam(model.parameters())
    x = torch.randn(batch, 3, cfg.input_size, cfg.input_size)
    t = 0.0
    for i in range(repeats + 1):
        t0 = time.perf_counter()
        model(x)["joints3d"].square().mean().backward()
        opt.step()
        opt.zero_grad()
        if i:
            t += time.perf_counter() - t0
    return batch * repeats / t


def render_throughput(dataset, items: int = 12) -> float:
    """Images/s of the data pipeline alone (render + crop + targets) in one process."""
    t0 = time.perf_counter()
    n = 0
    for i in range(items):
        n += dataset[i % len(dataset)]["images"].shape[0]
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--budget", choices=sorted(set(BUDGETS) | set(SUITE_BUDGETS)), default="tiny")
    ap.add_argument("--shared", type=Path, default=Path(os.environ.get("EPIPOLARPOSE_SHARED", "../shared")))
    ap.add_argument(
        "--work",
        type=Path,
        default=None,
        help="scratch folder for checkpoints and labels (default runs/learning_<budget>/, git-ignored)",
    )
    ap.add_argument(
        "--config", default="tiny", help="network configuration (epipolarpose.training.train.CONFIGS)"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--reuse",
        action="store_true",
        help="reuse networks already trained in --work (their model.pt and train_summary.json)",
    )
    ap.add_argument(
        "--label-filter", type=float, default=0.0, help="TrainOptions.label_filter for the self/rt rows"
    )
    ap.add_argument(
        "--refiner",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="then train the refinement unit on the self-supervised model's errors (issue 5)",
    )
    ap.add_argument("--refiner-epochs", type=int, default=None, help="refiner epochs (default: the budget's)")
    ap.add_argument(
        "--rows",
        default=",".join(ROWS),
        help=f"comma-separated 3D rows to train (default all: {','.join(ROWS)}); the refiner needs 'self'",
    )
    ap.add_argument(
        "--suite",
        choices=("table", "videos", "footage"),
        default="table",
        help="table: the supervision rows above; videos: renderer vs rendered mp4s through the footage source; "
        "footage: the caliscope sessions (benchmarks/footage_rows.py)",
    )
    ap.add_argument("--seeds", type=int, default=3, help="--suite videos/footage: seeds per row")
    ap.add_argument(
        "--detections",
        type=Path,
        default=Path("/work/cache/footage"),
        help="--suite footage: folder with <session>/poses2d_static.npz (epipolarpose detect on the footage)",
    )
    args = ap.parse_args()

    import torch

    if args.suite != "table":
        torch.set_num_threads(args.threads)
        suite_main(args)
        return
    if args.budget not in BUDGETS:
        ap.error(f"--budget {args.budget} is for --suite videos/footage; the table has {', '.join(BUDGETS)}")

    torch.set_num_threads(args.threads)
    from epipolarpose.camera import Rig
    from epipolarpose.formats import Labels, Poses2D
    from epipolarpose.metrics import evaluate_poses, n_mpjpe
    from epipolarpose.mocap import list_shared_clips
    from epipolarpose.models import load_model
    from epipolarpose.synthetic.render import RenderConfig
    from epipolarpose.training.data import MultiViewDataset, MultiViewFrames, eval_render_config
    from epipolarpose.training.train import (
        TrainOptions,
        detect_2d,
        model_config,
        predict_dataset,
        pseudo_labels,
        reliable_labels,
        train,
    )

    b = BUDGETS[args.budget]
    rows_wanted = [r.strip() for r in args.rows.split(",") if r.strip()]
    if not rows_wanted or any(r not in ROWS for r in rows_wanted):
        ap.error(f"--rows: choose from {','.join(ROWS)}, got {args.rows!r}")
    if args.refiner and "self" not in rows_wanted:
        ap.error("the refiner stage needs the 'self' row (add it to --rows or pass --no-refiner)")
    here = Path(__file__).resolve().parent
    work = args.work or here.parent / "runs" / f"learning_{args.budget}"
    work.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    rig_train = Rig.load(args.shared / "data/rigs/h36m_S1.json")
    rig_test = Rig.load(args.shared / "data/rigs/h36m_S9.json")
    train_clips = list_shared_clips(args.shared, "train")
    test_clips = list_shared_clips(args.shared, "test")
    clips_2d = spread(train_clips[0::2], b["clips_2d"])  # disjoint halves of the training split
    clips_3d = spread(train_clips[1::2], b["clips_3d"])
    clips_test = spread(test_clips, b["clips_test"])
    # validation clips for the refiner's error model: training-split clips used by no network
    unused = [c for c in train_clips[1::2] if c not in set(clips_3d)]
    clips_val = spread(unused, b["clips_val"])
    cfg3 = model_config(args.config, "full")
    render = RenderConfig(size=cfg3.input_size)
    common = dict(
        rig=args.shared / "data/rigs/h36m_S1.json",
        config=args.config,
        fps=b["fps"],
        batch_size=b["batch"],
        seed=args.seed,
        progress=False,
        checkpoint_every=10**6,
    )
    log = lambda *a: print(f"[{time.perf_counter() - t_start:7.1f}s]", *a, file=sys.stderr, flush=True)

    # 1. the 2D network, on its own clips
    log(f"2D network: {len(clips_2d)} clips, {b['steps_2d']} steps")

    def run(out: Path, **kw) -> dict:
        if args.reuse and (out / "model.pt").is_file():
            log(f"reusing {out}")
            return json.loads((out / "train_summary.json").read_text())
        return train(TrainOptions(out=out, **kw, **common))

    s2d = run(work / "net2d", supervision="2d", clips=clips_2d, max_steps=b["steps_2d"])
    net2d = work / "net2d" / "model.pt"

    # 2. its detections on the 3D training views, and the pseudo-labels
    frames = MultiViewFrames.from_clips(clips_3d, rig_train, b["fps"])
    gt_cam = frames.poses_camera()
    model2d, _, _ = load_model(net2d)
    det = detect_2d(
        model2d, MultiViewDataset(frames, eval_render_config(render), "2d", seed=args.seed), progress=False
    )
    gt2d = frames.keypoints()
    det_err = float(np.nanmean(np.linalg.norm(det.keypoints - gt2d, axis=-1)))
    log(
        f"frozen 2D detections: {det_err:.1f} px mean error on {frames.num_frames} frames x {frames.num_cameras} views"
    )
    p2d_gt = Poses2D(
        keypoints=gt2d,
        scores=np.ones(gt2d.shape[:-1]),
        image_size=det.image_size,
        K=rig_train.K,
        dist=rig_train.dist,
    )
    label_sets = {
        "rt": lambda: pseudo_labels(det, rig_train, progress=False),
        "self": lambda: pseudo_labels(det, None, progress=False),
        "self_gt2d": lambda: pseudo_labels(p2d_gt, None, progress=False),
    }
    label_quality = {}
    for name, make in label_sets.items():
        if name not in rows_wanted:
            continue
        t0 = time.perf_counter()
        lab: Labels = make()
        lab.save(work / f"labels_{name}.npz")
        pc = np.where(lab.valid[None, ..., None], lab.poses3d_camera, np.nan)
        kept = reliable_labels(lab.valid, lab.reprojection_error, args.label_filter)
        label_quality[name] = {
            "n_mpjpe_mm": n_mpjpe(pc, gt_cam),
            "n_mpjpe_mm_trained_on": n_mpjpe(np.where(kept[None, ..., None], pc, np.nan), gt_cam),
            "trained_fraction": float(kept.mean()),
            "valid_fraction": float(lab.valid.mean()),
            "seconds": time.perf_counter() - t0,
        }
        log(f"labels {name}: N-MPJPE {label_quality[name]['n_mpjpe_mm']:.1f} mm")

    # 3. the 3D networks, all from the same 2D network, same budget
    from epipolarpose.pss import PSSModel

    pss = PSSModel.fit(gt_cam.reshape(-1, 17, 3), k=50, seed=0)
    test_frames = MultiViewFrames.from_clips(clips_test, rig_test, b["fps"])
    test_set = MultiViewDataset(test_frames, eval_render_config(render), "full", seed=args.seed + 12345)
    rows = {}
    for row in rows_wanted:
        log(f"3D network '{row}': {b['steps_3d']} steps")
        sup = {"full": "full", "rt": "rt", "self": "self", "self_gt2d": "self"}[row]
        labels = None if row == "full" else work / f"labels_{row}.npz"
        s = run(
            work / f"net_{row}",
            supervision=sup,
            clips=clips_3d,
            labels=labels,
            init_2d=net2d,
            max_steps=b["steps_3d"],
            label_filter=args.label_filter,
        )
        model, _, _ = load_model(work / f"net_{row}" / "model.pt")
        res = predict_dataset(model, test_set)
        if row == "self":  # the refiner's test input (issue 5)
            np.savez(work / "self_test_pred.npz", poses3d=res["camera_mm"].reshape(-1, 17, 3))
            np.savez(work / "self_test_gt.npz", poses3d=res["gt_camera"].reshape(-1, 17, 3))
            val_frames = MultiViewFrames.from_clips(clips_val, rig_test, b["fps"])
            val_set = MultiViewDataset(val_frames, eval_render_config(render), "full", seed=args.seed + 999)
            val = predict_dataset(model, val_set)
            np.savez(work / "self_val_pred.npz", poses3d=val["camera_mm"].reshape(-1, 17, 3))
            np.savez(
                work / "self_val_gt.npz",
                poses3d=val["gt_camera"].reshape(-1, 17, 3),
                clip=np.tile(val_frames.clip, val_frames.num_cameras),
            )  # camera-major, like poses3d
        ev = evaluate_poses(res["camera_mm"], res["gt_camera"], pss_model=pss)["summary"]
        rows[row] = {
            "mpjpe_mm": ev["mpjpe"],
            "n_mpjpe_mm": ev["n_mpjpe"],
            "p_mpjpe_mm": ev["p_mpjpe"],
            "pss@50": ev.get("pss@50"),
            "train_images_per_s": s["images_per_s"],
            "steps": s["global_step"],
        }
        log(row, json.dumps(rows[row]))

    full = rows["full"]["mpjpe_mm"] if "full" in rows else float("nan")
    result = {
        "benchmark": "learning",
        "budget": args.budget,
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch threads {args.threads}",
        "config": cfg3.to_dict(),
        "budget_settings": b,
        "label_filter": args.label_filter,
        "clips": {
            "2d": len(clips_2d),
            "3d_train": len(clips_3d),
            "test": len(clips_test),
            "val": len(clips_val),
        },
        "frames": {
            "3d_train": frames.num_frames,
            "test": test_frames.num_frames,
            "views": frames.num_cameras,
        },
        "rigs": {"train": "h36m_S1", "test": "h36m_S9"},
        "net2d": {
            "steps": s2d["global_step"],
            "train_images_per_s": s2d["images_per_s"],
            "detection_error_px": det_err,
        },
        "label_quality": label_quality,
        "rows": rows,
        "ratio_vs_full": {k: v["mpjpe_mm"] / full for k, v in rows.items()} if "full" in rows else None,
        "goal_self_le_1.15x_full": rows["self"]["mpjpe_mm"] <= 1.15 * full
        if {"self", "full"} <= set(rows)
        else None,
        "paper_h36m_mpjpe_mm": {"full": 51.8, "self": 76.6, "self_gt2d": 55.0},
        "bare_model_fwd_bwd_images_per_s": bare_throughput(cfg3, b["batch"]),
        "data_pipeline_images_per_s": render_throughput(
            MultiViewDataset(frames, render, "full", seed=args.seed)
        ),
        "seconds": time.perf_counter() - t_start,
    }
    if args.refiner:
        # issue 5: the refinement unit, trained on the training split's mocap only (virtual cameras),
        # with the error model fitted to the self-supervised network's errors on the validation
        # clips, vs plain Gaussian noise; scored on the same test views with the same PSS centroids
        import subprocess

        pss.save(work / "pss_k50.npz")
        out_json = work / "refiner.json"
        cmd = [
            sys.executable,
            str(here / "refiner_bench.py"),
            "--shared",
            str(args.shared),
            "--val-pred",
            str(work / "self_val_pred.npz"),
            "--val-gt",
            str(work / "self_val_gt.npz"),
            "--test-pred",
            str(work / "self_test_pred.npz"),
            "--test-gt",
            str(work / "self_test_gt.npz"),
            "--pss-centroids",
            str(work / "pss_k50.npz"),
            "--threads",
            str(args.threads),
            "--epochs",
            str(args.refiner_epochs or b["refiner_epochs"]),
            "--out",
            str(out_json),
        ]
        log("refiner:", " ".join(cmd[1:]))
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        ref = json.loads(out_json.read_text())
        ref["val_clips"] = len(clips_val)
        ref["seconds"] = time.perf_counter() - t0
        ref["goal_fitted_reduction_ge_15pct"] = ref["mpjpe_reduction_fitted"] >= 0.15
        ref["goal_pss50_not_lowered"] = ref["after_fitted"].get("pss50", 0) >= ref["before"].get("pss50", 0)
        result["refiner"] = ref
    from epipolarpose.io import save_json

    suffix = "" if rows_wanted == list(ROWS) else "_" + "_".join(rows_wanted)
    save_json(here / "results" / f"learning_{args.budget}{suffix}.json", result)
    print(json.dumps(result, indent=1))


def suite_main(args) -> None:
    """``--suite videos|footage`` (issue 12): JSON to stdout and benchmarks/results/."""
    import footage_rows
    from epipolarpose.io import save_json

    here = Path(__file__).resolve().parent
    b = SUITE_BUDGETS[args.budget]
    args.work = args.work or here.parent / "runs" / f"learning_{args.suite}_{args.budget}"
    args.work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    log = lambda *a: print(f"[{time.perf_counter() - t0:7.1f}s]", *a, file=sys.stderr, flush=True)
    run = footage_rows.videos_suite if args.suite == "videos" else footage_rows.footage_suite
    result = {
        "benchmark": f"learning_{args.suite}",
        "budget": args.budget,
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared with other jobs), torch threads {args.threads}",
        "command": " ".join(["python", *sys.argv]),
        "config": args.config,
        "seeds": args.seeds,
        "budget_settings": b,
        **run(args, b, log),
    }
    from epipolarpose.training.train import model_config

    result["bare_model_fwd_bwd_images_per_s"] = bare_throughput(model_config(args.config, "full"), b["batch"])
    result["seconds"] = time.perf_counter() - t0
    save_json(here / "results" / f"learning_{args.suite}_{args.budget}.json", result)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
