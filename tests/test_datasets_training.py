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
from epipolarpose.synthetic.frames import render_frame, render_video_frames
from epipolarpose.training.datasets import dataset_labels, h36m_multiview, mpi_multiview
from epipolarpose.training.footage import build_crop_cache, warp_crop
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


def test_predict_on_a_tiny_mpi_inf_3dhp_test_set(rig_s9, nets, tmp_path):
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


# --------------------------------------------------------------------------- 3DHP training set
#: our joints -> the training set's 28 (written out here, independently of the reader's table)
OURS_TO_MPI28 = {
    "Hip": "pelvis",
    "RHip": "right_hip",
    "RKnee": "right_knee",
    "RFoot": "right_ankle",
    "LHip": "left_hip",
    "LKnee": "left_knee",
    "LFoot": "left_ankle",
    "Spine": "spine",
    "Thorax": "neck",
    "Neck/Nose": "head",
    "Head": "head_top",
    "LShoulder": "left_shoulder",
    "LElbow": "left_elbow",
    "LWrist": "left_wrist",
    "RShoulder": "right_shoulder",
    "RElbow": "right_elbow",
    "RWrist": "right_wrist",
}
MPI_CAMS = (0, 1, 2, 4, 5, 6, 7, 8)


def _rot_z(deg: float) -> np.ndarray:
    a = np.radians(deg)
    return np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])


def _mpi_rig(rig_s9) -> list:
    """8 cameras (3DHP numbers 0-2, 4-8): Human3.6M's four, and the same four turned 90 deg about
    the vertical through the world origin."""
    from epipolarpose.camera import Camera

    base = list(small_rig(rig_s9, 128, cameras=(0, 1, 2, 3)))
    cams = base + [Camera(K=c.K, R=c.R @ _rot_z(90), t=c.t, image_size=c.image_size) for c in base]
    return [Camera(K=c.K, R=c.R, t=c.t, image_size=c.image_size, name=str(n)) for n, c in zip(MPI_CAMS, cams)]


def _to_mpi28(x: np.ndarray, fill: float) -> np.ndarray:
    """(N, 17, d) in our order -> (N, 28 * d) in the training set's order (other joints ``fill``)."""
    from epipolarpose.datasets.mpi_inf_3dhp import MPI28_JOINTS
    from epipolarpose.skeleton import H36M_JOINTS

    out = np.full((len(x), 28, x.shape[-1]), fill)
    for j, name in enumerate(H36M_JOINTS):
        out[:, MPI28_JOINTS.index(OURS_TO_MPI28[name])] = x[:, j]
    return out.reshape(len(x), -1)


def _mpi_train_sequence(seq: Path, cams: list, poses: np.ndarray, as_folders: bool) -> None:
    """A 3DHP training sequence: annot.mat with a cell per camera (14 of them; cameras 3 and 9-13
    hold copies), camera.calibration, and videos (or folders of frames) for the 8 cameras."""
    from epipolarpose.video import write_video

    img = seq / "imageSequence"
    img.mkdir(parents=True)
    by_num = {int(c.name): c for c in cams}
    lines = ["Skeletool Camera Calibration File V1.0"]
    a2, a3 = np.empty((14, 1), object), np.empty((14, 1), object)
    for n in range(14):
        cam = by_num.get(n, cams[0])
        Ki, E = np.eye(4), np.eye(4)
        Ki[:3, :3], E[:3, :3], E[:3, 3] = cam.K, cam.R, cam.t
        lines += [
            f"name          {n}",
            "  sensor      10 10",
            f"  size        {cam.image_size[0]} {cam.image_size[1]}",
            "  animated    0",
            "  intrinsic   " + " ".join(f"{v:.10g}" for v in Ki.reshape(-1)) + " ",
            "  extrinsic   " + " ".join(f"{v:.10g}" for v in E.reshape(-1)) + " ",
            "  radial      0",
        ]
        a2[n, 0] = _to_mpi28(cam.project(poses), -1.0)
        a3[n, 0] = _to_mpi28(cam.world_to_camera(poses), 0.0)
        if n in by_num:
            frames = render_video_frames(poses, cam, seed=n)  # BGR
            if as_folders:
                (img / f"video_{n}").mkdir()
                for k, f in enumerate(frames):
                    cv2.imwrite(str(img / f"video_{n}" / f"frame_{k + 1:06d}.png"), f)
            else:
                write_video(img / f"video_{n}.avi", frames, fps=25, codec="MJPG")
    (seq / "camera.calibration").write_text("\n".join(lines) + "\n")
    scipy.io.savemat(
        seq / "annot.mat",
        {
            "annot2": a2,
            "annot3": a3,
            "univ_annot3": a3,
            "cameras": np.arange(14)[None],
            "frames": np.arange(len(poses))[:, None],
        },
    )


@pytest.fixture(scope="module")
def mpi_train(rig_s9, tmp_path_factory):
    """S1 with Seq1 (videos) and Seq2 (folders of frames), 20 frames each, 8 cameras."""
    root = tmp_path_factory.mktemp("3dhp_train")
    cams = _mpi_rig(rig_s9)
    poses = load_mocap(BUNDLED, fps=10).poses
    _mpi_train_sequence(root / "S1" / "Seq1", cams, poses[:20], as_folders=False)
    _mpi_train_sequence(root / "S1" / "Seq2", cams, poses[40:60], as_folders=True)
    return root, cams, poses


def test_mpi_training_set_reader_gives_the_views_known_answers(mpi_train):
    root, cams, poses = mpi_train
    mv = mpi_multiview(root, ("S1",), 4)  # frames 0, 4, ..., 16 of both sequences
    assert mv.camera_ids == [str(c) for c in MPI_CAMS] and mv.joints2d.shape == (8, 10, 17, 2)
    assert list(mv.subjects) == ["S1/Seq1"] * 5 + ["S1/Seq2"] * 5
    np.testing.assert_array_equal(mv.frames, [0, 4, 8, 12, 16] * 2)
    sel = np.r_[poses[0:20:4], poses[40:60:4]]
    for c, cam in enumerate(cams):
        np.testing.assert_allclose(mv.joints3d_camera[c], cam.world_to_camera(sel), atol=1e-6)
        np.testing.assert_allclose(mv.joints2d[c], cam.project(sel), atol=1e-6)
        got = mv.cameras[("S1/Seq2", cam.name)]
        np.testing.assert_allclose(got.P, cam.P, rtol=1e-8, atol=1e-6)
        np.testing.assert_allclose(mv.K[c, 7], cam.K)
    # crops decoded from the videos (Seq1) and the frame folders (Seq2) are the renderer's images
    cache = build_crop_cache(mv.table, root.parent / "cache_3dhp", 64)
    for c, f, k in ((0, 1, 4), (5, 3, 12), (2, 6, 44), (7, 9, 56)):
        start = 0 if f < 5 else 40  # the sequence's first frame
        frame = render_video_frames(poses[start : k + 1], cams[c], seed=int(cams[c].name))[-1]
        ref = cv2.cvtColor(warp_crop(frame, cache.affines[c, f], 64), cv2.COLOR_BGR2RGB)
        diff = np.abs(cache.crop(c, f).astype(float) - ref)
        assert diff.mean() < (6.0 if f < 5 else 0.5), (c, f, diff.mean())


def test_self_calibrated_labels_of_a_3dhp_sequence_match_the_ground_truth(mpi_train):
    """`self` on 3DHP: each sequence self-calibrated from exact 2D; labels = ground truth up to scale."""
    mv = mpi_multiview(mpi_train[0], ("S1",), 1)
    res = dataset_labels(mv, mv.joints2d, "self")
    assert set(res["summary"]) == {"S1/Seq1", "S1/Seq2"}
    lab, gt = res["labels_camera"], mv.joints3d_camera
    assert res["labels_valid"].mean() > 0.9
    rel_l, rel_g = lab - lab[..., :1, :], gt - gt[..., :1, :]
    for g in ("S1/Seq1", "S1/Seq2"):
        m = (mv.subjects == g)[None, :, None] & np.isfinite(rel_l).all(-1)
        s = (rel_l[m] * rel_g[m]).sum() / (rel_l[m] ** 2).sum()
        err_mm = np.linalg.norm(s * rel_l[m] - rel_g[m], axis=-1).mean()
        assert err_mm < 15.0, (g, err_mm)


def test_train_on_a_tiny_mpi_inf_3dhp_training_set(mpi_train, nets, tmp_path):
    root = mpi_train[0]
    base = ["train", "--dataset", "3dhp", "--root", root, "--subject", "S1", "--every", 4]
    base += ["--config", "tiny", "--max-steps", 2, "--batch-size", 8]
    s = json.loads(ok([*base, "-s", "full", "--out", tmp_path / "full"]))
    assert s["source"] == "3dhp" and s["subjects"] == ["S1"] and s["train_frames"] == 10
    assert s["global_step"] == 2 and (tmp_path / "full" / "model.pt").is_file()
    s = json.loads(ok([*base, "-s", "rt", "--init-2d", nets / "net2d.pt", "--out", tmp_path / "rt"]))
    assert s["labels"]["S1/Seq1"]["frames"] == 5 and s["labels"]["S1/Seq2"]["frames"] == 5


def test_bad_3dhp_training_roots_are_one_error_and_write_nothing(mpi_train, tmp_path):
    root = mpi_train[0]
    out = tmp_path / "run"
    base = ["train", "--dataset", "3dhp", "-s", "full", "--out", out, "--config", "tiny", "--max-steps", 1]
    assert "S2 is missing" in err([*base, "--root", root]) and not out.exists()  # default S1-S8
    broken = tmp_path / "broken"
    shutil.copytree(root / "S1", broken / "S1")
    cal = broken / "S1" / "Seq1" / "camera.calibration"
    cal.write_text(cal.read_text().replace("extrinsic", "extrinsics", 1))
    assert "camera 0 needs" in err([*base, "--root", broken, "--subject", "S1"]) and not out.exists()
    cal.unlink()
    assert "camera.calibration is missing" in err([*base, "--root", broken, "--subject", "S1"])
    shutil.copy(root / "S1" / "Seq1" / "camera.calibration", cal)
    (broken / "S1" / "Seq1" / "imageSequence" / "video_5.avi").unlink()
    assert "video_5" in err([*base, "--root", broken, "--subject", "S1"]) and not out.exists()
    (broken / "S1" / "Seq2" / "annot.mat").write_bytes(b"not a mat file")
    shutil.copy(
        root / "S1" / "Seq1" / "imageSequence" / "video_0.avi",
        broken / "S1" / "Seq1" / "imageSequence" / "video_5.avi",
    )
    assert "annot.mat" in err([*base, "--root", broken, "--subject", "S1"]) and not out.exists()
    shutil.copy(root / "S1" / "Seq2" / "annot.mat", broken / "S1" / "Seq2" / "annot.mat")
    # a video shorter than its annotations: found before anything is decoded into the cache
    short = broken / "S1" / "Seq1" / "imageSequence" / "video_5.avi"
    from epipolarpose.video import read_frames, write_video

    write_video(
        short, read_frames(root / "S1" / "Seq1" / "imageSequence" / "video_5.avi", 0, 6), codec="MJPG"
    )
    msg = err([*base, "--root", broken, "--subject", "S1", "--every", 4])
    assert "shorter than its labels" in msg and not out.exists()


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
