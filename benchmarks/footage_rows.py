"""Learning from real images (issue 12): the suites ``learning_bench.py --suite videos|footage`` run.

``videos``: the same self-supervised training (labels self-calibrated from ground-truth 2D, so the
rows differ only in where the images come from) from the renderer on the fly, and from rendered
clips written to mp4 and decoded through the footage source (``train --videos``); three seeds per
row; tested on rendered S9 views (MPJPE with the ground-truth root depth, N-MPJPE, P-MPJPE,
PSS@50).

``footage``: the two caliscope sessions of ``../shared/data/footage`` (MediaPipe static-mode
detections from ``--detections``). The first 70 % of each session's frames train, the last 30 %
test against the triangulation of the same detections through the session's lab ``rig.json``. A
seated person shows only the upper body: the scores use the 9 upper-body joints (thorax, neck/nose,
head, shoulders, elbows, wrists), root-relative to the thorax: N-MPJPE, P-MPJPE and PSS@10
(centroids from the lab-rig triangulation of the training frames). Rows: a network trained on
renders only; the same network trained on footage only (random initialisation); renders then
footage (fine-tuned).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from typing import Any

import numpy as np

UPPER = [8, 9, 10, 11, 12, 13, 14, 15, 16]  # thorax, neck/nose, head, shoulders, elbows, wrists
SESSIONS = ("caliscope_charuco_calibration", "caliscope_post_optimization")


def mean_sd(values: list[float]) -> dict[str, Any]:
    a = np.asarray(values, float)
    return {"mean": float(a.mean()), "sd": float(a.std(ddof=1)) if len(a) > 1 else 0.0, "values": a.tolist()}


def scaled_rig(rig, width: int):
    from epipolarpose.camera import Camera, Rig

    cams = []
    for c in rig:
        s = width / c.image_size[0]
        K = c.K.copy()
        K[:2] *= s
        size = (width, 2 * int(round(c.image_size[1] * s / 2)))
        cams.append(Camera(K=K, R=c.R, t=c.t, dist=c.dist, image_size=size, name=c.name))
    return Rig(cams, units=rig.units)


def fit_dataset(dataset, cfg, steps: int, frames_per_batch: int, seed: int, init=None, lr: float = 1e-3):
    """Train a fresh PoseModule (or one starting from ``init``'s weights) on ``dataset``; returns
    (network, images/s of the whole training loop)."""
    import contextlib

    import lightning as L

    from epipolarpose.training.data import make_loader
    from epipolarpose.training.module import PoseModule

    L.seed_everything(seed, workers=True, verbose=False)
    module = PoseModule(cfg.to_dict(), "self", lr=lr)
    if init is not None:
        module.model.load_state_dict(init.state_dict())
    trainer = L.Trainer(
        max_steps=steps,
        max_epochs=-1,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    with contextlib.redirect_stdout(sys.stderr):
        trainer.fit(module, make_loader(dataset, frames_per_batch, True, 0, seed))
    return module.model.eval(), module.images_per_second


def videos_suite(args, b: dict, log) -> dict:
    """Renderer vs decoded rendered videos, same labels, three seeds each."""
    from epipolarpose.camera import Rig
    from epipolarpose.formats import Poses2D
    from epipolarpose.metrics import evaluate_poses
    from epipolarpose.mocap import list_shared_clips
    from epipolarpose.models import load_model
    from epipolarpose.pss import PSSModel
    from epipolarpose.synthetic.frames import render_video_frames
    from epipolarpose.synthetic.render import RenderConfig
    from epipolarpose.training.data import MultiViewDataset, MultiViewFrames, eval_render_config
    from epipolarpose.training.footage import FootageAugment
    from epipolarpose.training.real import FootageOptions
    from epipolarpose.training.train import TrainOptions, model_config, predict_dataset, pseudo_labels, train
    from epipolarpose.video import write_video
    from learning_bench import spread

    work = args.work
    cfg = model_config(args.config, "full")
    rig = scaled_rig(Rig.load(args.shared / "data/rigs/h36m_S1.json"), b["video_width"])
    rig_path = work / "rig_train.json"
    rig_path.write_text(rig.to_json())
    clips = spread(list_shared_clips(args.shared, "train")[1::2], b["clips_3d"])
    frames = MultiViewFrames.from_clips(clips, rig, b["fps"])
    gt2d = frames.keypoints()
    p2d = Poses2D(
        keypoints=gt2d,
        scores=np.ones(gt2d.shape[:-1]),
        image_size=[c.image_size for c in rig],
        camera_names=rig.names,
        K=rig.K,
        dist=rig.dist,
    )
    p2d.save(work / "videos_poses2d.npz")
    labels = work / "videos_labels.npz"
    if not labels.is_file():
        pseudo_labels(p2d, None, progress=False).save(labels)
    videos = []
    t0 = time.perf_counter()
    for c, cam in enumerate(rig):
        v = work / "videos" / f"{cam.name}.mp4"
        if not v.is_file():
            v.parent.mkdir(parents=True, exist_ok=True)
            write_video(v, render_video_frames(frames.poses_world, cam, seed=c), fps=b["fps"])
        videos.append(v)
    render_s = time.perf_counter() - t0
    log(f"videos: {frames.num_frames} frames x {len(rig)} cameras rendered and encoded in {render_s:.0f} s")
    test_rig = Rig.load(args.shared / "data/rigs/h36m_S9.json")
    test_clips = spread(list_shared_clips(args.shared, "test"), b["clips_test"])
    test_frames = MultiViewFrames.from_clips(test_clips, test_rig, b["fps"])
    render = RenderConfig(size=cfg.input_size)
    test_set = MultiViewDataset(test_frames, eval_render_config(render), "full", seed=12345)
    pss = PSSModel.fit(frames.poses_camera().reshape(-1, 17, 3), k=50, seed=0)
    common = dict(
        supervision="self",
        labels=labels,
        config=args.config,
        max_steps=b["steps_3d"],
        batch_size=b["batch"],
        progress=False,
        checkpoint_every=10**6,
    )
    augment = FootageAugment(rotation_deg=0.0, flip=0.0)  # the renderer's jitter: scale, shift, colour
    rows: dict[str, list[dict]] = {"renderer": [], "videos": []}
    for seed in range(args.seeds):
        for row in rows:
            out = work / f"{row}_seed{seed}"
            if row == "renderer":
                opts = TrainOptions(out=out, clips=clips, rig=rig_path, fps=b["fps"], seed=seed, **common)
            else:
                fo = FootageOptions(
                    videos, work / "videos_poses2d.npz", crop_cache=work / "crop_cache", augment=augment
                )
                opts = TrainOptions(out=out, footage=fo, seed=seed, **common)
            s = (
                json.loads((out / "train_summary.json").read_text())
                if (out / "model.pt").is_file()
                else train(opts)
            )
            model, _, _ = load_model(out / "model.pt")
            res = predict_dataset(model, test_set)
            ev = evaluate_poses(res["camera_mm"], res["gt_camera"], pss_model=pss)["summary"]
            r = {
                "mpjpe_mm": ev["mpjpe"],
                "n_mpjpe_mm": ev["n_mpjpe"],
                "p_mpjpe_mm": ev["p_mpjpe"],
                "pss@50": ev.get("pss@50"),
                "train_images_per_s": s["images_per_s"],
                "source_images_per_s": s.get("source_images_per_s"),
            }
            rows[row].append(r)
            log(f"{row} seed {seed}: {json.dumps(r)}")
    summary = {
        row: {k: mean_sd([r[k] for r in rs]) for k in ("mpjpe_mm", "n_mpjpe_mm", "p_mpjpe_mm", "pss@50")}
        for row, rs in rows.items()
    }
    from learning_bench import render_throughput

    renderer_ips = render_throughput(MultiViewDataset(frames, render, "full", seed=0), items=24)
    return {
        "renderer_source_images_per_s": renderer_ips,
        "frames": {"train": frames.num_frames, "test": test_frames.num_frames, "views": len(rig)},
        "video_size": list(rig[0].image_size),
        "render_encode_seconds": render_s,
        "augment_videos": augment.__dict__,
        "per_seed": rows,
        "rows": summary,
    }


def _session(args, name: str, split: float):
    """Detections, videos, lab rig, the 70/30 split and the lab-rig triangulation of a session."""
    from epipolarpose.camera import Rig
    from epipolarpose.formats import Poses2D
    from epipolarpose.labelling import label_poses

    folder = args.shared / "data/footage" / name
    p2d = Poses2D.load(args.detections / name / "poses2d_static.npz")
    videos = sorted(folder.glob("cam_*.mp4"))
    rig = Rig.load(folder / "rig.json")
    F = p2d.num_frames
    n = int(round(split * F))
    fi = np.asarray(p2d.extra.get("frame_index", np.arange(F)))

    def part(idx):
        return replace(p2d.take_frames(idx), extra={**p2d.extra, "frame_index": fi[idx]})

    train_p, test_p = part(np.arange(n)), part(np.arange(n, F))
    lab_train_rt = label_poses(train_p, rig=rig).labels
    lab_test = label_poses(test_p, rig=rig).labels
    try:
        lab_train, mode = label_poses(train_p).labels, "self"
    except Exception as e:  # noqa: BLE001 - self-calibration of a short seated clip may fail
        lab_train, mode = lab_train_rt, f"rt (self-calibration failed: {e})"
    return dict(
        name=name,
        videos=videos,
        rig=rig,
        F=F,
        n=n,
        train=train_p,
        test=test_p,
        labels=lab_train,
        label_mode=mode,
        labels_rt=lab_train_rt,
        gt_test=lab_test,
    )


def _score(pred_cam: np.ndarray, gt_cam: np.ndarray, gt_valid: np.ndarray, pss) -> dict:
    from epipolarpose.metrics import joint_errors

    P = pred_cam[..., UPPER, :]
    G = np.where(gt_valid[None, :, UPPER, None], gt_cam[..., UPPER, :], np.nan)
    n = joint_errors(P, G, root=0, align="scale")
    p = joint_errors(P, G, align="procrustes")
    return {
        "n_mpjpe_mm": float(np.nanmean(n)),
        "p_mpjpe_mm": float(np.nanmean(p)),
        "pss@10": pss.score(P.reshape(-1, len(UPPER), 3), G.reshape(-1, len(UPPER), 3)),
        "views": int(np.isfinite(P).all((-1, -2)).sum()),
    }


def footage_suite(args, b: dict, log) -> dict:
    """Renders only vs footage only vs renders then footage, on the caliscope sessions."""
    from torch.utils.data import ConcatDataset

    from epipolarpose.formats import Labels
    from epipolarpose.metrics import joint_errors
    from epipolarpose.models import load_model, save_checkpoint
    from epipolarpose.pss import PSSModel
    from epipolarpose.real_prediction import FootageSpec, predict_footage
    from epipolarpose.training.footage import (
        FootageDataset,
        build_crop_cache,
        footage_labels,
        footage_table,
    )
    from epipolarpose.training.train import TrainOptions, model_config, train
    from learning_bench import spread

    work = args.work
    cfg = model_config(args.config, "full")
    sessions = [_session(args, s, 0.7) for s in SESSIONS]
    label_quality = {}
    train_sets = []
    for s in sessions:
        lab: Labels = s["labels"]
        pc = np.where(lab.valid[None, ..., None], lab.poses3d_camera, np.nan)[..., UPPER, :]
        rt = np.where(s["labels_rt"].valid[None, ..., None], s["labels_rt"].poses3d_camera, np.nan)[
            ..., UPPER, :
        ]
        label_quality[s["name"]] = {
            "mode": s["label_mode"],
            "n_mpjpe_mm_vs_lab_rig": float(np.nanmean(joint_errors(pc, rt, root=0, align="scale"))),
        }
        fl = footage_labels(lab, s["train"])
        table, _ = footage_table(s["videos"], s["train"], fl)
        cache = build_crop_cache(table, work / f"crops_{s['name']}", cfg.input_size)
        frames = np.flatnonzero(cache.present.any(0) & fl.valid.any(-1))
        train_sets.append(
            FootageDataset(
                cache,
                "self",
                labels_camera=fl.poses_camera,
                labels_valid=fl.valid,
                K=fl.K,
                dist=fl.dist,
                frames=frames,
                depth_range=cfg.depth_range,
            )
        )
        s["train_frames"] = len(frames)
        log(f"{s['name']}: {s['n']} training frames ({len(frames)} with a person), labels {s['label_mode']}")
    source_ips = float(np.mean([d.throughput(8) for d in train_sets]))
    data = ConcatDataset(train_sets)
    gt_train = np.concatenate(
        [
            np.where(s["labels_rt"].valid[None, ..., None], s["labels_rt"].poses3d_camera, np.nan)[
                ..., UPPER, :
            ].reshape(-1, len(UPPER), 3)
            for s in sessions
        ]
    )
    pss = PSSModel.fit(gt_train, k=10, seed=0, joint_names=[str(i) for i in UPPER])

    # the renders-only network: fully supervised on rendered motion capture (S1 cameras)
    from epipolarpose.mocap import list_shared_clips

    renders = work / "renders_full"
    if not (renders / "model.pt").is_file():
        log(f"renders-only network: {b['steps_renders']} steps")
        clips = spread(list_shared_clips(args.shared, "train"), b["clips_renders"])
        train(
            TrainOptions(
                supervision="full",
                out=renders,
                clips=clips,
                rig=args.shared / "data/rigs/h36m_S1.json",
                fps=b["fps"],
                config=args.config,
                max_steps=b["steps_renders"],
                batch_size=b["batch"],
                progress=False,
                checkpoint_every=10**6,
            )
        )
    net_renders, _, _ = load_model(renders / "model.pt")

    def evaluate(model, tag: str) -> dict:
        ckpt = work / f"{tag}.pt"
        save_checkpoint(ckpt, model, cfg)
        per = {}
        for s in sessions:
            out = work / f"pred_{tag}_{s['name']}.npz"
            (work / "p2d").mkdir(exist_ok=True)
            s["test"].save(work / "p2d" / f"{s['name']}_test.npz")
            spec = FootageSpec(s["videos"], poses2d=work / "p2d" / f"{s['name']}_test.npz")
            predict_footage(ckpt, spec, out, progress=False)
            pred = np.load(out)["poses3d_camera"].astype(np.float64)
            per[s["name"]] = _score(pred, s["gt_test"].poses3d_camera, s["gt_test"].valid, pss)
        keys = ("n_mpjpe_mm", "p_mpjpe_mm", "pss@10")
        per["both"] = {k: float(np.mean([per[s["name"]][k] for s in sessions])) for k in keys}
        return per

    # references: the mean training pose for every view, and the test frames' own self-calibrated
    # triangulation (what multi-view geometry gives from the same detections)
    from epipolarpose.labelling import label_poses
    from epipolarpose.pss import normalize_poses

    mean = normalize_poses(gt_train[np.isfinite(gt_train).all((-1, -2))]).mean(0).reshape(len(UPPER), 3)
    references = {}
    for s in sessions:
        G = s["gt_test"]
        shape = G.poses3d_camera.shape
        pm = np.zeros(shape)
        pm[..., UPPER, :] = mean
        ref = {"mean_training_pose": _score(pm, G.poses3d_camera, G.valid, pss)}
        try:
            own = label_poses(s["test"]).labels
            pc = np.where(own.valid[None, ..., None], own.poses3d_camera, np.nan)
            ref["test_frames_self_calibrated"] = _score(pc, G.poses3d_camera, G.valid, pss)
        except Exception as e:  # noqa: BLE001
            ref["test_frames_self_calibrated"] = f"failed: {e}"
        references[s["name"]] = ref
    log(f"references: {json.dumps(references)}")

    fpb = max(1, b["batch"] // 4)
    rows: dict[str, Any] = {"renders_only": evaluate(net_renders, "renders_only")}
    log(f"renders_only: {json.dumps(rows['renders_only']['both'])}")
    ips = {}
    for row, init in (("footage_only", None), ("renders_then_footage", net_renders)):
        per_seed = []
        for seed in range(args.seeds):
            model, ips[row] = fit_dataset(data, cfg, b["steps_footage"], fpb, seed, init=init)
            per_seed.append(evaluate(model, f"{row}_seed{seed}"))
            log(f"{row} seed {seed}: {json.dumps(per_seed[-1]['both'])}")
        rows[row] = {
            "both": {k: mean_sd([p["both"][k] for p in per_seed]) for k in per_seed[0]["both"]},
            "per_seed": per_seed,
        }
    return {
        "sessions": {
            s["name"]: {
                "frames": s["F"],
                "train": s["n"],
                "train_with_person": s["train_frames"],
                "test": s["F"] - s["n"],
            }
            for s in sessions
        },
        "detections": "MediaPipe BlazePose static mode, model complexity 1 (cached poses2d_static.npz)",
        "joints_scored": "thorax, neck/nose, head, shoulders, elbows, wrists (root: thorax)",
        "label_quality_train": label_quality,
        "references": references,
        "source_images_per_s": source_ips,
        "train_images_per_s": ips,
        "rows": rows,
    }
