"""Checkpoints carry a SHA-256 of their weights; a damaged file is refused, naming the file."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from epipolarpose.errors import InputError
from epipolarpose.models import PoseNet, PoseNetConfig, load_model, save_checkpoint
from epipolarpose.models.checkpoint import LIGHTNING_DIGEST_KEY, weights_digest, weights_digest_callback
from epipolarpose.refiner import Refiner, load_refiner

CFG = PoseNetConfig(backbone="resnet18", input_size=64, depth_bins=8, deconv_channels=16)


def _flip(path, count: int = 3000) -> None:
    b = bytearray(path.read_bytes())
    start = len(b) // 2
    for i in range(start, start + count):
        b[i] ^= 0x01
    path.write_bytes(bytes(b))


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return PoseNet(CFG).eval()


def test_digest_depends_on_every_byte_name_and_shape(net):
    state = {k: v.clone() for k, v in net.state_dict().items()}
    d = weights_digest(state)
    assert d == weights_digest(dict(reversed(list(state.items()))))  # order does not matter
    k = next(k for k, v in state.items() if v.dtype == torch.float32 and v.numel() > 1)
    state[k].view(-1)[0] += 1e-6
    assert weights_digest(state) != d
    renamed = {("x" + k if i == 0 else k): v for i, (k, v) in enumerate(net.state_dict().items())}
    assert weights_digest(renamed) != d


def test_our_checkpoint_damaged_is_refused(net, tmp_path):
    path = tmp_path / "net.pt"
    save_checkpoint(path, net)
    assert torch.load(path, weights_only=True)["weights_sha256"] == weights_digest(net.state_dict())
    load_model(path)  # intact
    ckpt = torch.load(path, weights_only=True)
    k = next(iter(ckpt["state_dict"]))
    ckpt["state_dict"][k] = ckpt["state_dict"][k] + 1  # changed weights, digest kept
    torch.save(ckpt, tmp_path / "edited.pt")
    with pytest.raises(InputError, match=r"edited\.pt is damaged"):
        load_model(tmp_path / "edited.pt")
    _flip(path)  # bytes flipped on disk
    with pytest.raises(InputError, match=r"net\.pt"):
        load_model(path)


def test_old_checkpoint_without_digest_still_loads(net, tmp_path):
    path = tmp_path / "old.pt"
    save_checkpoint(path, net)
    ckpt = torch.load(path, weights_only=True)
    del ckpt["weights_sha256"]
    torch.save(ckpt, path)
    model, _, _ = load_model(path)
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(model.state_dict()[k].numpy(), v.numpy())


def test_lightning_checkpoint_digest(net, tmp_path):
    """The callback ``epipolarpose train`` adds stores the digest; load_model checks it."""
    ckpt = {
        "state_dict": {f"model.{k}": v for k, v in net.state_dict().items()},
        "hyper_parameters": {"model_config": CFG.to_dict()},
        "epoch": 1,
        "global_step": 3,
    }
    weights_digest_callback().on_save_checkpoint(None, None, ckpt)
    assert ckpt[LIGHTNING_DIGEST_KEY] == weights_digest(ckpt["state_dict"])
    torch.save(ckpt, tmp_path / "last.ckpt")
    load_model(tmp_path / "last.ckpt")
    k = next(iter(ckpt["state_dict"]))
    ckpt["state_dict"][k] = ckpt["state_dict"][k] * 2
    torch.save(ckpt, tmp_path / "bad.ckpt")
    with pytest.raises(InputError, match=r"bad\.ckpt is damaged"):
        load_model(tmp_path / "bad.ckpt")


def test_refiner_checkpoint_digest(tmp_path):
    path = tmp_path / "r.ckpt"
    Refiner(hidden=16, blocks=1).save(path)
    load_refiner(path)
    state = torch.load(path, weights_only=True)
    state["state_dict"]["out.bias"] = state["state_dict"]["out.bias"] + 1
    torch.save(state, tmp_path / "r2.ckpt")
    with pytest.raises(InputError, match=r"r2\.ckpt is damaged"):
        load_refiner(tmp_path / "r2.ckpt")
