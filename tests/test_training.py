"""Training (training/module.py, data.py, train.py, `epipolarpose train`): a real learning check,
masking, scale-free labels in the dataset, resume, 2-process DDP and bad input through the CLI."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from conftest import REPO
from epipolarpose.cli import app
from epipolarpose.formats import Labels
from epipolarpose.mocap import load_mocap
from epipolarpose.models.posenet import PoseNetConfig
from epipolarpose.synthetic.render import RenderConfig
from epipolarpose.training.data import MultiViewDataset, MultiViewFrames, make_loader
from epipolarpose.training.module import PoseModule, masked_smooth_l1
from epipolarpose.training.train import CONFIGS, TrainOptions, train

BUNDLED = REPO / "src/epipolarpose/data/cmu_131_01.bvh"
MICRO = PoseNetConfig(backbone="resnet18", input_size=32, depth_bins=4, deconv_layers=1, deconv_channels=16)


@pytest.fixture(scope="module")
def frames(rig_s9) -> MultiViewFrames:
    poses = load_mocap(BUNDLED, fps=4).poses[:6]
    return MultiViewFrames(poses, ["cmu"] * len(poses), rig_s9)


def test_scaled_pseudo_labels_give_the_ground_truth_targets(frames):
    """Labels of arbitrary scale (self-calibrated rigs) train exactly like metric ones."""
    cfg = RenderConfig(size=64)
    full = MultiViewDataset(frames, cfg, "full", seed=0)
    lab = 0.0123 * frames.poses_camera()
    valid = np.ones((frames.num_frames, 17), bool)
    valid[2, 7] = False
    self_ = MultiViewDataset(frames, cfg, "self", lab, valid, seed=0)
    for f in (0, 2):
        a, b = full[f], self_[f]
        m = b["mask"].numpy()
        np.testing.assert_allclose(b["target"].numpy()[m], a["target"].numpy()[m], atol=1e-5)
        assert np.array_equal(a["images"].numpy(), b["images"].numpy())
    assert not self_[2]["mask"][:, 7].any() and self_[2]["mask"][:, 6].all()
    # 2D supervision masks depth
    d2 = MultiViewDataset(frames, cfg, "2d", seed=0)[0]
    assert not d2["mask"][..., 2].any() and d2["mask"][..., :2].all()
    np.testing.assert_allclose(d2["target"][..., :2], full[0]["target"][..., :2], atol=1e-6)


def test_optimisation_steps_reduce_the_loss_on_a_fixed_batch(frames):
    torch.manual_seed(0)
    cfg = CONFIGS["tiny"]
    ds = MultiViewDataset(frames, RenderConfig(size=cfg.input_size), "full", seed=0)
    batch = next(iter(make_loader(ds, 2, shuffle=False)))
    module = PoseModule(cfg.to_dict(), "full", beta=0.01)
    opt = torch.optim.Adam(module.parameters(), lr=2e-3)
    module.train()
    losses = []
    for _ in range(25):
        pred = module(batch["images"].flatten(0, 1))["joints3d"]
        loss = masked_smooth_l1(pred, batch["target"].flatten(0, 1), batch["mask"].flatten(0, 1), 0.01)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses
    assert np.mean(losses[-5:]) < np.mean(losses[:5])


def _options(tmp: Path, clips: list[Path], rig: Path, **kw) -> TrainOptions:
    base = dict(
        supervision="full",
        out=tmp,
        clips=clips,
        rig=rig,
        config="tiny",
        fps=2,
        batch_size=8,
        progress=False,
        checkpoint_every=1000,
        log_every=1,
    )
    base.update(kw)
    return TrainOptions(**base)


def test_resume_continues_the_step_count(tmp_path, rig_s9_path):
    s1 = train(_options(tmp_path, [BUNDLED], rig_s9_path, max_steps=2))
    assert s1["global_step"] == 2 and s1["start_step"] == 0
    ckpt = torch.load(tmp_path / "checkpoints/last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 2
    s2 = train(_options(tmp_path, [BUNDLED], rig_s9_path, max_steps=4))  # automatic from last.ckpt
    assert s2["start_step"] == 2 and s2["global_step"] == 4
    assert (tmp_path / "logs/csv/version_0/metrics.csv").is_file()  # the first run's log is kept
    ckpt = torch.load(tmp_path / "checkpoints/last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 4
    assert ckpt["optimizer_states"][0]["state"][0]["step"].item() == 4  # Adam continued, not restarted
    from epipolarpose.models.checkpoint import load_model

    model, cfg, meta = load_model(tmp_path / "checkpoints/last.ckpt")
    assert cfg == CONFIGS["tiny"] and meta["global_step"] == 4
    assert (tmp_path / "model.pt").is_file() and (tmp_path / "logs/csv/version_1/metrics.csv").is_file()


_DDP_SCRIPT = r"""
import os, sys, torch, numpy as np, lightning as L
from epipolarpose.camera import Rig
from epipolarpose.mocap import load_mocap
from epipolarpose.models.posenet import PoseNetConfig
from epipolarpose.synthetic.render import RenderConfig
from epipolarpose.training.data import MultiViewDataset, MultiViewFrames, make_loader
from epipolarpose.training.module import PoseModule, masked_smooth_l1
torch.set_num_threads(1)
out, bvh, rig = sys.argv[1:4]
L.seed_everything(0, verbose=False)
cfg = PoseNetConfig(backbone="resnet18", input_size=32, depth_bins=4, deconv_layers=1, deconv_channels=16)
poses = load_mocap(bvh, fps=4).poses[:8]
ds = MultiViewDataset(MultiViewFrames(poses, ["c"] * 8, Rig.load(rig)), RenderConfig(size=32), "full")
seen = []
class Spy(L.Callback):
    def on_train_batch_start(self, trainer, module, batch, i):
        seen.extend(batch["frame"].tolist())
module = PoseModule(cfg.to_dict(), "full")
init = {k: v.detach().clone() for k, v in module.model.named_parameters()}
trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp", max_steps=2, logger=False,
                    enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                    callbacks=[Spy()])
trainer.fit(module, make_loader(ds, 1, shuffle=True))
rank = trainer.global_rank
torch.save({"init": init, "final": dict(module.model.named_parameters()), "seen": seen,
            "world": trainer.world_size}, os.path.join(out, f"rank{rank}.pt"))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_ddp_all_reduces_gradients(tmp_path, rig_s9_path):
    script = tmp_path / "ddp.py"
    script.write_text(_DDP_SCRIPT)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        f"--master_port={_free_port()}",
        str(script),
        str(tmp_path),
        str(BUNDLED),
        str(rig_s9_path),
    ]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=150)
    assert res.returncode == 0, res.stderr[-3000:]
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=False)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=False)
    assert r0["world"] == r1["world"] == 2
    assert set(r0["seen"]).isdisjoint(r1["seen"])  # each rank trained on different frames ...
    for k in r0["final"]:
        assert torch.equal(r0["init"][k], r1["init"][k])
        assert torch.allclose(r0["final"][k], r1["final"][k], atol=1e-7), k  # ... yet ended identical
    moved = [not torch.equal(r0["init"][k], r0["final"][k]) for k in r0["final"]]
    assert all(moved)


# --- bad input through the CLI ---------------------------------------------------------------
def _cli(args: list[str]):
    return CliRunner().invoke(app, args)


def test_cli_labels_with_wrong_counts(tmp_path, rig_s9_path):
    C, F = 4, 3  # the bundled clip at 2 fps has more frames than 3
    lab = Labels(np.ones((F, 17, 3)), np.ones((C, F, 17, 3)), np.ones((F, 17), bool), np.zeros((C, F, 17)))
    lab.save(tmp_path / "labels.npz")
    out = tmp_path / "run"
    r = _cli(
        [
            "train",
            "--supervision",
            "self",
            "--out",
            str(out),
            "--labels",
            str(tmp_path / "labels.npz"),
            "--clips",
            str(BUNDLED),
            "--rig",
            str(rig_s9_path),
            "--config",
            "tiny",
            "--fps",
            "2",
        ]
    )
    assert r.exit_code == 2, r.output
    assert "error:" in r.output and "4 cameras x 3 frames" in r.output and "Traceback" not in r.output
    assert not (out / "model.pt").exists()


def test_cli_empty_split(tmp_path, rig_s9_path):
    (tmp_path / "empty").mkdir()
    r = _cli(
        [
            "train",
            "--supervision",
            "full",
            "--out",
            str(tmp_path / "run"),
            "--clips",
            str(tmp_path / "empty"),
            "--rig",
            str(rig_s9_path),
            "--config",
            "tiny",
        ]
    )
    assert r.exit_code == 2 and "split is empty" in r.output
    assert not (tmp_path / "run").exists()


def test_cli_checkpoint_from_another_configuration(tmp_path, rig_s9_path):
    from epipolarpose.models import PoseNet, save_checkpoint

    save_checkpoint(tmp_path / "other.pt", PoseNet(MICRO))  # 32 px net; --config tiny is 64 px
    r = _cli(
        [
            "train",
            "--supervision",
            "full",
            "--out",
            str(tmp_path / "run"),
            "--clips",
            str(BUNDLED),
            "--rig",
            str(rig_s9_path),
            "--config",
            "tiny",
            "--init-2d",
            str(tmp_path / "other.pt"),
        ]
    )
    assert r.exit_code == 2 and "another configuration" in r.output and "input_size" in r.output
    assert not (tmp_path / "run" / "model.pt").exists()
    # resuming a run of another configuration is refused as well
    run = tmp_path / "run2"
    train(_options(run, [BUNDLED], rig_s9_path, max_steps=1))
    r = _cli(
        [
            "train",
            "--supervision",
            "2d",
            "--out",
            str(run),
            "--clips",
            str(BUNDLED),
            "--rig",
            str(rig_s9_path),
            "--config",
            "tiny",
            "--fps",
            "2",
        ]
    )
    assert r.exit_code == 2 and "cannot resume" in r.output


def test_online_targets_triangulate_the_frozen_detections(tmp_path, frames, rig_s9):
    """--online: detections -> label_poses with the rig -> targets. With a detector that returns the
    true 2D pose, the online targets equal the ground-truth ones."""
    from dataclasses import replace

    from epipolarpose.models import PoseNet, save_checkpoint

    save_checkpoint(tmp_path / "net2d.pt", PoseNet(replace(MICRO, depth_bins=1)))
    module = PoseModule(
        MICRO.to_dict(),
        "rt",
        online=True,
        detector_ckpt=str(tmp_path / "net2d.pt"),
        label_rig_json=rig_s9.to_json(),
    )
    ds = MultiViewDataset(frames, RenderConfig(size=MICRO.input_size), "full", seed=0)
    batch = next(iter(make_loader(ds, 3, shuffle=False)))

    class Oracle(torch.nn.Module):
        def forward(self, x):
            return {"joints2d": batch["target"].flatten(0, 1)[..., :2]}

    module.detector = Oracle()
    target, mask = module.online_targets(batch)
    assert mask[..., :2].all()
    np.testing.assert_allclose(target.numpy(), batch["target"].numpy(), atol=1e-4)
    loss = module.training_step(batch, 0)
    assert torch.isfinite(loss)


def test_reliable_labels_drop_joints_with_large_reprojection_error():
    from epipolarpose.training.train import reliable_labels

    valid = np.ones((3, 4), bool)
    valid[2, 3] = False
    err = np.full((2, 3, 4), 1.0)
    err[:, 0, 0] = [10.0, 2.0]  # mean 6 px > 2 x median (1 px), and > the 2 px floor: dropped
    err[:, 1, 1] = [3.0, np.nan]  # seen by one view: mean 3 px: dropped
    err[:, 1, 2] = [1.9, 2.0]  # mean 1.95 px: under the floor, kept
    err[:, 2, 3] = 50.0  # already invalid
    kept = reliable_labels(valid, err, factor=2.0)
    expect = valid.copy()
    expect[0, 0] = expect[1, 1] = False
    np.testing.assert_array_equal(kept, expect)
    np.testing.assert_array_equal(reliable_labels(valid, err, factor=0), valid)  # disabled
    np.testing.assert_array_equal(reliable_labels(valid, err * 1e-4, factor=2.0), valid)  # near-exact: floor
