"""Tiny Human3.6M- and MPI-INF-3DHP-layout folders made here drive `train --dataset` and
`predict --dataset` (training/datasets.py, real_prediction.predict_dataset_split): the paper's
settings (full, rt with a frozen 2D network, self-calibrated labels), the protocol's numbers
through `evaluate`, and bad roots as one `error:` line with nothing written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io
import torch

from conftest import REPO
from epipolarpose.datasets.mpi_inf_3dhp import MPI17_TO_H36M
from epipolarpose.mocap import load_mocap
from epipolarpose.models import PoseNet, save_checkpoint
from epipolarpose.synthetic.frames import render_frame
from epipolarpose.training.datasets import dataset_labels, h36m_multiview
from epipolarpose.training.train import CONFIGS, model_config
from test_footage import small_rig
from test_footage_cli import err, ok

BUNDLED = REPO / "src/epipolarpose/data/cmu_131_01.bvh"


def _h36m_subject(root: Path, subject: str, rig, poses: np.ndarray, frames: list[int]) -> None:
    seq = root / subject / "Directions-1"
    (root / subject).mkdir(parents=True, exist_ok=True)
    (root / subject / "rig.json").write_text(rig.to_json())
    j2, j3, fr, cams = [], [], [], []
    for cam in rig:
        d = seq / "imageSequence" / cam.name
        d.mkdir(parents=True, exist_ok=True)
        for k, f in enumerate(frames):
            img = render_frame(poses[k], cam, np.random.default_rng([k, int(cam.name) % 1000]))
            cv2.imwrite(str(d / f"img_{f:06d}.jpg"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        j2.append(cam.project(poses))
        j3.append(cam.world_to_camera(poses))
        fr += frames
        cams += [int(cam.name)] * len(frames)
    np.savez(
        seq / "annot.npz",
        **{
            "pose/2d": np.concatenate(j2),
            "pose/3d": np.concatenate(j3),
            "frame": np.array(fr),
            "camera": np.array(cams),
        },
    )


@pytest.fixture(scope="module")
def h36m_root(rig_s9, tmp_path_factory):
    """S1 (10 frames, every 5th of 50) for training, S9 and S11 (frames 1 and 65) for testing."""
    root = tmp_path_factory.mktemp("h36m")
    rig = small_rig(rig_s9, 128, cameras=(0, 1, 2, 3))
    poses = load_mocap(BUNDLED, fps=10).poses
    _h36m_subject(root, "S1", rig, poses[:10], [1 + 5 * i for i in range(10)])
    _h36m_subject(root, "S9", rig, poses[20:22], [1, 65])
    _h36m_subject(root, "S11", rig, poses[30:32], [1, 65])
    return root


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    d = tmp_path_factory.mktemp("nets")
    torch.manual_seed(0)
    cfg2 = model_config("tiny", "2d")
    save_checkpoint(d / "net2d.pt", PoseNet(cfg2), cfg2)
    save_checkpoint(d / "net3d.pt", PoseNet(CONFIGS["tiny"]), CONFIGS["tiny"])
    return d


def _train(root: Path, out: Path, supervision: str, *extra) -> dict:
    args = ["train", "--dataset", "h36m", "--root", root, "--subject", "S1", "-s", supervision, "--out", out]
    args += ["--config", "tiny", "--max-steps", 2, "--batch-size", 8, *extra]
    return json.loads(ok(args))


def test_train_and_predict_on_a_tiny_human36m(h36m_root, nets, tmp_path):
    s = _train(h36m_root, tmp_path / "full", "full")
    assert (
        s["source"] == "h36m"
        and s["subjects"] == ["S1"]
        and s["train_frames"] == 10
        and s["global_step"] == 2
    )
    s = _train(h36m_root, tmp_path / "rt", "rt", "--init-2d", nets / "net2d.pt")
    assert s["labels"]["S1"]["frames"] == 10
    out = tmp_path / "pred.npz"
    ok(["predict", tmp_path / "full" / "model.pt", "--dataset", "h36m", "--root", h36m_root, "-o", out])
    p, g = np.load(out), np.load(tmp_path / "pred_gt.npz")
    assert (
        p["poses3d"].shape == g["poses3d"].shape == (2 * 2 * 4, 17, 3)
    )  # S9 + S11, frames 1 and 65, 4 cameras
    assert set(p["clip"]) == {"S9/Directions-1", "S11/Directions-1"}
    # the root depth is the ground truth's (protocol 1): roots coincide
    np.testing.assert_allclose(p["poses3d"][:, 0, 2], g["poses3d"][:, 0, 2], rtol=1e-4)
    ok(["evaluate", out, tmp_path / "pred_gt.npz", "-o", tmp_path / "m.json"])
    m = json.loads((tmp_path / "m.json").read_text())["summary"]
    proto = json.loads((tmp_path / "pred_protocol.json").read_text())
    assert m["mpjpe"] == pytest.approx(proto["mpjpe_mm (protocol 1, ground-truth root depth)"])
    assert m["p_mpjpe"] <= m["mpjpe"]


def test_self_calibrated_labels_of_a_subject_match_the_ground_truth(h36m_root):
    """`self` without extrinsics: exact 2D detections give labels equal to the ground truth up to scale."""
    mv = h36m_multiview(h36m_root, ("S1",), 5)
    res = dataset_labels(mv, mv.joints2d, "self")
    lab, gt = res["labels_camera"], mv.joints3d_camera
    assert res["labels_valid"].mean() > 0.9
    rel_l = lab - lab[..., :1, :]
    rel_g = gt - gt[..., :1, :]
    ok_ = np.isfinite(rel_l).all(-1)
    s = (rel_l[ok_] * rel_g[ok_]).sum() / (rel_l[ok_] ** 2).sum()
    err_mm = np.linalg.norm(s * rel_l[ok_] - rel_g[ok_], axis=-1).mean()
    assert err_mm < 15.0, err_mm


def _mpi_sequence(root: Path, name: str, cam, poses: np.ndarray) -> None:
    d = root / name / "imageSequence"
    d.mkdir(parents=True)
    inv = np.argsort(MPI17_TO_H36M)  # our order -> MPI order
    j2 = cam.project(poses)[:, inv]
    j3 = cam.world_to_camera(poses)[:, inv]
    for k in range(len(poses)):
        img = render_frame(poses[k], cam, k)
        cv2.imwrite(str(d / f"img_{k + 1:06d}.jpg"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    mat = {
        "annot2": j2[:, None].transpose(3, 2, 1, 0),  # MATLAB order (2, 17, 1, N)
        "annot3": j3[:, None].transpose(3, 2, 1, 0),
        "univ_annot3": j3[:, None].transpose(3, 2, 1, 0),
        "valid_frame": np.ones((1, len(poses))),
        "activity_annotation": np.ones((1, len(poses))),
    }
    scipy.io.savemat(root / name / "annot_data.mat", mat)


def test_predict_on_a_tiny_mpi_inf_3dhp_test_set_and_training_there_is_refused(rig_s9, nets, tmp_path):
    root = tmp_path / "3dhp"
    cam = small_rig(rig_s9, 128, cameras=(0,))[0]
    poses = load_mocap(BUNDLED, fps=10).poses
    for i, ts in enumerate(("TS1", "TS2", "TS3", "TS4", "TS5", "TS6")):
        _mpi_sequence(root, ts, cam, poses[3 * i : 3 * i + 2])
    out = tmp_path / "p3.npz"
    ok(["predict", nets / "net3d.pt", "--dataset", "3dhp", "--root", root, "-o", out])
    proto = json.loads((tmp_path / "p3_protocol.json").read_text())
    pa = proto["pck_auc (14 joints, universal skeleton)"]
    assert 0 <= pa["pck"] <= 100 and 0 <= pa["auc"] <= 100 and "Stand/Walk" in pa["per_activity_pck"]
    assert np.load(out)["poses3d"].shape == (12, 17, 3)
    ok(["evaluate", out, tmp_path / "p3_gt.npz"])
    msg = err(
        [
            "train",
            "--dataset",
            "3dhp",
            "--root",
            root,
            "-s",
            "full",
            "--out",
            tmp_path / "o",
            "--config",
            "tiny",
        ]
    )
    assert "training set" in msg and not (tmp_path / "o").exists()


def test_bad_dataset_roots_are_one_error_and_write_nothing(h36m_root, nets, tmp_path):
    out = tmp_path / "run"
    base = ["train", "--dataset", "h36m", "-s", "full", "--out", out, "--config", "tiny", "--max-steps", 1]
    # the paper's training subjects: S5..S8 are missing in the tiny root
    assert "S5 is missing" in err([*base, "--root", h36m_root]) and not out.exists()
    broken = tmp_path / "broken"
    shutil.copytree(h36m_root / "S1", broken / "S1")
    (broken / "S1" / "Directions-1" / "annot.npz").unlink()
    assert (
        "has no annot.h5 or annot.npz" in err([*base, "--root", broken, "--subject", "S1"])
        and not out.exists()
    )
    args = ["train", "--dataset", "h36m", "--root", h36m_root, "--subject", "S1", "-s", "self", "--out", out]
    assert "needs --init-2d" in err(args)
    assert not out.exists()
    assert "--root" in err(["train", "--dataset", "h36m", "-s", "full", "--out", out])
    msg = err(["predict", nets / "net3d.pt", "--dataset", "h36m", "--root", broken, "-o", tmp_path / "p.npz"])
    assert "S9 is missing" in msg and not (tmp_path / "p.npz").exists()
