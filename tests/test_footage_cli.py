"""End to end through the CLI on rendered videos: detect (imported COCO detections of the
synthetic 2D) -> label (self-calibration) -> train --supervision self on the videos -> predict on
held-out frames -> evaluate; the loss falls, the network beats the untrained one, training
resumes, and bad footage is one `error:` line with nothing written."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from epipolarpose.cli import app
from epipolarpose.formats import GroundTruth, Labels
from epipolarpose.mocap import load_mocap
from epipolarpose.models import PoseNet, save_checkpoint
from epipolarpose.training.train import CONFIGS
from test_footage import BUNDLED, small_rig, write_clips

runner = CliRunner()
TRAIN, TEST = 18, 24  # frames 0:18 train, 18:24 held out

_COCO = (
    "nose left_eye right_eye left_ear right_ear left_shoulder right_shoulder left_elbow right_elbow "
    "left_wrist right_wrist left_hip right_hip left_knee right_knee left_ankle right_ankle"
).split()
#: COCO joint -> our H36M joint (ears at the head top, so the mapped Head is exact; eyes missing)
_FROM_H36M = {"nose": 9, "left_ear": 10, "right_ear": 10, "left_shoulder": 11, "right_shoulder": 14}
_FROM_H36M.update(left_elbow=12, right_elbow=15, left_wrist=13, right_wrist=16, left_hip=4, right_hip=1)
_FROM_H36M.update(left_knee=5, right_knee=2, left_ankle=6, right_ankle=3)


def write_coco(path: Path, keypoints: np.ndarray, image_size) -> None:
    """One camera's COCO keypoint file of (F, 17, 2) H36M keypoints."""
    images, anns = [], []
    for f, kp in enumerate(keypoints):
        images.append({"id": f, "file_name": f"{f:06d}.png", "width": image_size[0], "height": image_size[1]})
        k: list[float] = []
        for name in _COCO:
            k += [*map(float, kp[_FROM_H36M[name]]), 2] if name in _FROM_H36M else [0.0, 0.0, 0]
        anns.append({"image_id": f, "keypoints": k, "score": 1.0, "category_id": 1})
    path.write_text(json.dumps({"images": images, "annotations": anns}))


def ok(args: list) -> str:
    r = runner.invoke(app, [str(a) for a in args])
    assert r.exit_code == 0, (args, r.output, r.exception)
    return r.stdout


def err(args: list) -> str:
    r = runner.invoke(app, [str(a) for a in args])
    assert r.exit_code == 2, (args, r.output, r.exception)
    lines = [ln for ln in r.output.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, r.output
    return lines[0]


@pytest.fixture(scope="module")
def footage(rig_s9, tmp_path_factory):
    """Four rendered mp4s (256 px), their COCO detections, poses2d.npz and self-calibrated labels."""
    d = tmp_path_factory.mktemp("footage")
    rig = small_rig(rig_s9, 256, cameras=(0, 1, 2, 3))
    poses = load_mocap(BUNDLED, fps=10).poses[:TEST]
    videos = write_clips(d, rig, poses)
    kp = rig.project(poses)
    for c, cam in enumerate(rig):
        write_coco(d / f"{cam.name}.json", kp[c], cam.image_size)
    (d / "rig.json").write_text(rig.to_json())
    GroundTruth(poses[TRAIN:].astype(np.float32), np.array(["cmu"] * (TEST - TRAIN)), rig).save(
        d / "gt_test.npz"
    )
    ok(
        ["detect", *(d / f"{c.name}.json" for c in rig), "--detector", "import", "--import-format", "coco"]
        + ["--intrinsics", d / "rig.json", "-o", d / "poses2d.npz"]
    )
    ok(["label", d / "poses2d.npz", "-o", d / "labels.npz"])
    return d, rig, videos


def _train_args(d: Path, videos, out: Path, steps: int) -> list:
    args = ["train", "--supervision", "self", "--poses2d", d / "poses2d.npz", "--labels", d / "labels.npz"]
    for v in videos:
        args += ["--videos", v]
    return args + ["--frames", f"0:{TRAIN}", "--config", "tiny", "--max-steps", steps, "--batch-size", 8]


def _predict(ckpt: Path, d: Path, videos, out: Path) -> dict:
    ok(["predict", ckpt, *videos, "--poses2d", d / "poses2d.npz", "--frames", f"{TRAIN}:{TEST}", "-o", out])
    ok(["evaluate", out, d / "gt_test.npz", "-o", out.with_suffix(".json")])
    return json.loads(out.with_suffix(".json").read_text())["summary"]


def test_detect_label_train_predict_evaluate_on_videos(footage, tmp_path):
    d, rig, videos = footage
    out = tmp_path / "run"
    summary = json.loads(ok(_train_args(d, videos, out, 30) + ["--out", out, "--augment-flip", 0]))
    assert summary["global_step"] == 30 and summary["source"] == "footage"
    assert summary["views_trained"] == 4 * TRAIN and summary["source_images_per_s"] > 0
    assert (out / "crop_cache" / "crops.npy").is_file() and (out / "model.pt").is_file()
    rows = list(csv.DictReader(open(next((out / "logs" / "csv").glob("version_*/metrics.csv")))))
    losses = [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    assert len(losses) >= 2 and losses[-1] < losses[0], losses
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "untrained.pt", PoseNet(CONFIGS["tiny"]), CONFIGS["tiny"])
    trained = _predict(out / "model.pt", d, videos, tmp_path / "pred.npz")
    untrained = _predict(tmp_path / "untrained.pt", d, videos, tmp_path / "pred0.npz")
    assert trained["n_mpjpe"] < untrained["n_mpjpe"] and trained["p_mpjpe"] < untrained["p_mpjpe"]
    p = np.load(tmp_path / "pred.npz")
    assert p["poses3d_camera"].shape == (4, TEST - TRAIN, 17, 3) and p["person"].all()
    assert list(p["frame_index"]) == list(range(TRAIN, TEST))
    # resume: the same command with more steps continues from OUT/checkpoints/last.ckpt
    again = json.loads(ok(_train_args(d, videos, out, 32) + ["--out", out, "--augment-flip", 0]))
    assert again["start_step"] == 30 and again["global_step"] == 32


def test_predict_on_footage_writes_overlays_animation_and_nan_without_person(footage, tmp_path):
    d, rig, videos = footage
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "net.pt", PoseNet(CONFIGS["tiny"]), CONFIGS["tiny"])
    from epipolarpose.formats import Poses2D

    p2d = Poses2D.load(d / "poses2d.npz")
    p2d.keypoints[1, 20:] = np.nan  # nobody in camera 1 from frame 20 on
    p2d.scores[1, 20:] = 0
    p2d.save(tmp_path / "poses2d.npz")
    ok(
        ["predict", tmp_path / "net.pt", *videos, "--poses2d", tmp_path / "poses2d.npz", "--frames", "16:24"]
        + ["-o", tmp_path / "p.npz", "--overlays", tmp_path / "ov", "--overlay-every", 4]
        + ["--animation", tmp_path / "a.gif"]
    )
    p = np.load(tmp_path / "p.npz")
    assert np.isnan(p["poses3d_camera"][1, 4:]).all() and not p["person"][1, 4:].any()
    assert np.isfinite(p["poses3d_camera"][1, :4]).all() and np.isfinite(p["poses3d_camera"][0]).all()
    assert len(list((tmp_path / "ov").glob("*.png"))) == 4 * 2 - 1  # camera 1 has no person at frame 20
    assert (tmp_path / "a.gif").stat().st_size > 1000


def test_bad_footage_is_one_error_and_writes_nothing(footage, tmp_path):
    d, rig, videos = footage
    out = tmp_path / "run"
    # a video shorter than its labels
    short = write_clips(tmp_path / "short", rig, load_mocap(BUNDLED, fps=10).poses[:10])
    msg = err(_train_args(d, short, out, 2) + ["--out", out])
    assert "shorter than its labels" in msg and not out.exists()
    # labels of another camera count / frame count
    lab = Labels.load(d / "labels.npz")
    Labels(lab.poses3d_world, lab.poses3d_camera[:3], lab.valid, lab.reprojection_error[:3]).save(
        tmp_path / "l3.npz"
    )
    args = _train_args(d, videos, out, 2)
    args[args.index("--labels") + 1] = tmp_path / "l3.npz"
    assert "has 3 cameras but the footage has 4" in err(args + ["--out", out]) and not out.exists()
    Labels(
        lab.poses3d_world[:20], lab.poses3d_camera[:, :20], lab.valid[:20], lab.reprojection_error[:, :20]
    ).save(tmp_path / "l20.npz")
    args[args.index("--labels") + 1] = tmp_path / "l20.npz"
    assert "has 20 frames but the detections have 24" in err(args + ["--out", out]) and not out.exists()
    # videos that do not match the detections' cameras
    assert "3 videos/image folders given" in err(_train_args(d, videos[:3], out, 2) + ["--out", out])
    # footage has no ground-truth 3D; --videos needs --poses2d
    args = _train_args(d, videos, out, 2)
    args[args.index("self")] = "full"
    assert "no ground-truth 3D" in err(args + ["--out", out])
    assert "--poses2d" in err(["train", "-s", "self", "--videos", videos[0], "--out", out])
    # frames with no person at all
    from epipolarpose.formats import Poses2D

    p2d = Poses2D.load(d / "poses2d.npz")
    p2d.keypoints[:] = np.nan
    p2d.scores[:] = 0
    p2d.save(tmp_path / "nobody.npz")
    args = ["train", "-s", "2d", "--poses2d", tmp_path / "nobody.npz", "--config", "tiny", "--out", out]
    for v in videos:
        args += ["--videos", v]
    assert "no frame of the footage has a person" in err(args) and not out.exists()
    # prediction: a video shorter than its detections
    save_checkpoint(tmp_path / "net.pt", PoseNet(CONFIGS["tiny"]), CONFIGS["tiny"])
    msg = err(
        ["predict", tmp_path / "net.pt", *short, "--poses2d", d / "poses2d.npz", "-o", tmp_path / "p.npz"]
    )
    assert "shorter than its labels" in msg and not (tmp_path / "p.npz").exists()
