"""The pose network: ResNet naming, soft-argmax, shapes, 2D->3D initialisation, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from epipolarpose.errors import InputError
from epipolarpose.models import (
    PoseNet,
    PoseNetConfig,
    ResNet,
    expectation2d,
    from_pixels,
    load_model,
    load_torchvision_weights,
    save_checkpoint,
    soft_argmax2d,
    soft_argmax3d,
    to_pixels,
)

torch.set_num_threads(1)

TINY = PoseNetConfig(backbone="resnet18", input_size=64, depth_bins=8, deconv_channels=16)


def peaked(model: PoseNet) -> PoseNet:
    """Re-initialise the head so an untrained network gives input-dependent, peaked heatmaps."""
    for m in model.deconv_layers.modules():
        if isinstance(m, torch.nn.ConvTranspose2d):
            torch.nn.init.kaiming_normal_(m.weight)
    torch.nn.init.normal_(model.final_layer.weight, std=0.5)
    return model.eval()


# --------------------------------------------------------------------------- torchvision naming
def _bn(prefix: str, c: int) -> dict[str, tuple]:
    return {
        f"{prefix}.weight": (c,),
        f"{prefix}.bias": (c,),
        f"{prefix}.running_mean": (c,),
        f"{prefix}.running_var": (c,),
        f"{prefix}.num_batches_tracked": (),
    }


def torchvision_resnet_keys(name: str) -> dict[str, tuple]:
    """torchvision.models.resnet{18,50}().state_dict() names and shapes, written from
    torchvision's published architecture (BasicBlock / Bottleneck v1.5, stride in conv2)."""
    bottleneck = name == "resnet50"
    blocks = {"resnet18": (2, 2, 2, 2), "resnet50": (3, 4, 6, 3)}[name]
    keys = {"conv1.weight": (64, 3, 7, 7), **_bn("bn1", 64)}
    cin = 64
    for stage, (n, planes) in enumerate(zip(blocks, (64, 128, 256, 512)), start=1):
        cout = planes * (4 if bottleneck else 1)
        for b in range(n):
            p = f"layer{stage}.{b}"
            if bottleneck:
                keys[f"{p}.conv1.weight"] = (planes, cin, 1, 1)
                keys.update(_bn(f"{p}.bn1", planes))
                keys[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
                keys.update(_bn(f"{p}.bn2", planes))
                keys[f"{p}.conv3.weight"] = (cout, planes, 1, 1)
                keys.update(_bn(f"{p}.bn3", cout))
            else:
                keys[f"{p}.conv1.weight"] = (planes, cin, 3, 3)
                keys.update(_bn(f"{p}.bn1", planes))
                keys[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
                keys.update(_bn(f"{p}.bn2", planes))
            if b == 0 and (stage > 1 or bottleneck):
                keys[f"{p}.downsample.0.weight"] = (cout, cin, 1, 1)
                keys.update(_bn(f"{p}.downsample.1", cout))
            cin = cout
    keys["fc.weight"] = (1000, cin)
    keys["fc.bias"] = (1000,)
    return keys


@pytest.mark.parametrize("name,count", [("resnet18", 122), ("resnet50", 320)])
def test_resnet_state_dict_matches_torchvision_names(name: str, count: int) -> None:
    expected = torchvision_resnet_keys(name)
    assert len(expected) == count  # torchvision's well-known entry counts
    ours = {k: tuple(v.shape) for k, v in ResNet(name, num_classes=1000).state_dict().items()}
    assert ours == expected
    # a few entries spelled out by hand
    spot = {
        "resnet18": {
            "layer2.0.downsample.0.weight": (128, 64, 1, 1),
            "layer4.1.conv2.weight": (512, 512, 3, 3),
            "fc.weight": (1000, 512),
        },
        "resnet50": {
            "layer1.0.conv3.weight": (256, 64, 1, 1),
            "layer3.5.bn3.running_var": (1024,),
            "layer4.0.conv2.weight": (512, 512, 3, 3),
            "layer4.0.downsample.0.weight": (2048, 1024, 1, 1),
            "fc.weight": (1000, 2048),
        },
    }[name]
    for k, shape in spot.items():
        assert ours[k] == shape


def test_torchvision_state_dict_loads_into_pose_trunk() -> None:
    g = torch.Generator().manual_seed(0)
    sd = {
        k: (torch.randn(s, generator=g) if s else torch.tensor(7))
        for k, s in torchvision_resnet_keys("resnet18").items()
    }
    model = PoseNet(TINY)
    model.load_imagenet(sd)  # fc.* dropped, everything else strict
    own = model.backbone.state_dict()
    assert "fc.weight" not in own
    for k in own:
        assert torch.equal(own[k], sd[k]), k
    # the full classifier loads with plain strict load_state_dict
    full = ResNet("resnet18", num_classes=1000)
    full.load_state_dict(sd, strict=True)
    assert torch.equal(full.fc.weight, sd["fc.weight"])
    # a resnet50 dict into a resnet18 trunk: a clear error
    sd50 = {k: torch.zeros(s) for k, s in torchvision_resnet_keys("resnet50").items()}
    with pytest.raises(InputError, match="not a torchvision resnet18"):
        load_torchvision_weights(model.backbone, sd50)


def test_torchvision_weights_from_file(tmp_path) -> None:
    sd = ResNet("resnet18", num_classes=1000).state_dict()
    torch.save(sd, tmp_path / "r18.pth")
    trunk = ResNet("resnet18")
    load_torchvision_weights(trunk, tmp_path / "r18.pth")
    assert torch.equal(trunk.layer3[1].conv2.weight, sd["layer3.1.conv2.weight"])


# --------------------------------------------------------------------------- soft-argmax
def test_soft_argmax_one_hot_and_two_peaks() -> None:
    d, h, w = 4, 5, 8
    vol = torch.full((1, 2, d, h, w), -1e4)
    vol[0, 0, 1, 3, 6] = 0.0  # one-hot at (x=6, y=3, z=1)
    vol[0, 1, 0, 0, 0] = 0.0  # two equal peaks: expectation is their midpoint
    vol[0, 1, 3, 4, 2] = 0.0
    joints, probs2d = soft_argmax3d(vol)
    centre = lambda i, n: (i + 0.5) / n - 0.5  # noqa: E731
    expected0 = [centre(6, w), centre(3, h), centre(1, d)]
    expected1 = [
        (centre(0, w) + centre(2, w)) / 2,
        (centre(0, h) + centre(4, h)) / 2,
        (centre(0, d) + centre(3, d)) / 2,
    ]
    np.testing.assert_allclose(joints[0, 0].numpy(), expected0, atol=1e-6)
    np.testing.assert_allclose(joints[0, 1].numpy(), expected1, atol=1e-6)
    np.testing.assert_allclose(probs2d[0, 1, 0, 0].item(), 0.5, atol=1e-6)


def test_soft_argmax_matches_hand_expectation(rng) -> None:
    vol = rng.normal(size=(2, 3, 3, 4, 5))
    joints, _ = soft_argmax3d(torch.from_numpy(vol))
    p = np.exp(vol - vol.max(axis=(2, 3, 4), keepdims=True))
    p /= p.sum(axis=(2, 3, 4), keepdims=True)
    zz, yy, xx = np.meshgrid(*[(np.arange(n) + 0.5) / n - 0.5 for n in (3, 4, 5)], indexing="ij")
    hand = np.stack([(p * c).sum(axis=(2, 3, 4)) for c in (xx, yy, zz)], -1)
    np.testing.assert_allclose(joints.numpy(), hand, atol=1e-6)


def test_marginalising_depth_equals_2d_soft_argmax_of_depth_summed_heatmap(rng) -> None:
    vol = torch.from_numpy(rng.normal(size=(2, 3, 6, 7, 5)) * 3)
    joints, probs2d = soft_argmax3d(vol)
    # depth-summed probability volume == 2D softmax of the log-sum-exp over depth of the logits
    torch.testing.assert_close(
        probs2d, torch.softmax(torch.logsumexp(vol, 2).flatten(2), -1).reshape(probs2d.shape)
    )
    torch.testing.assert_close(joints[..., :2], soft_argmax2d(torch.logsumexp(vol, 2)))
    torch.testing.assert_close(joints[..., :2], expectation2d(probs2d))


def test_pixel_conversion_round_trip(rng) -> None:
    j = rng.uniform(-0.5, 0.5, size=(4, 17, 3))
    px = to_pixels(j, 128, depth_range=2.0)
    np.testing.assert_allclose(to_pixels(np.array([[-0.5, 0.5, 0.25]]), 128, 2.0), [[-0.5, 127.5, 64.0]])
    np.testing.assert_allclose(from_pixels(px, 128, 2.0), j)
    t = torch.from_numpy(j)
    torch.testing.assert_close(to_pixels(t, 128, 2.0), torch.from_numpy(px))
    assert np.all(j == to_pixels(j, 1.0) * 0 + j)  # the input is not modified in place


# --------------------------------------------------------------------------- architecture
@pytest.mark.parametrize(
    "cfg",
    [
        PoseNetConfig(backbone="resnet18", input_size=64, depth_bins=16, deconv_channels=32),
        PoseNetConfig(backbone="resnet34", input_size=64, depth_bins=4, deconv_channels=16, deconv_kernel=3),
        PoseNetConfig(
            backbone="resnet50",
            input_size=64,
            depth_bins=8,
            deconv_channels=16,
            deconv_layers=2,
            deconv_kernel=2,
        ),
        PoseNetConfig(backbone="resnet18", input_size=96, depth_bins=1, deconv_channels=16, num_joints=5),
    ],
)
def test_output_shapes(cfg: PoseNetConfig) -> None:
    model = PoseNet(cfg).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, cfg.input_size, cfg.input_size))
    hm = cfg.heatmap_size
    assert hm == cfg.input_size // 32 * 2**cfg.deconv_layers
    assert out["heatmaps"].shape == (2, cfg.num_joints, cfg.depth_bins, hm, hm)
    assert out["joints3d"].shape == (2, cfg.num_joints, 3)
    assert out["joints2d"].shape == (2, cfg.num_joints, 2)
    assert out["probs2d"].shape == (2, cfg.num_joints, hm, hm)
    assert out["joints3d"].abs().max() <= 0.5
    if not cfg.is_3d:
        assert torch.all(out["joints3d"][..., 2] == 0)


def test_presets() -> None:
    paper = PoseNetConfig.paper()
    assert (
        paper.backbone,
        paper.input_size,
        paper.depth_bins,
        paper.deconv_layers,
        paper.deconv_channels,
        paper.deconv_kernel,
        paper.heatmap_size,
    ) == ("resnet50", 256, 64, 3, 256, 4, 64)
    small = PoseNetConfig.cpu_small()
    assert small.backbone == "resnet18" and small.input_size <= 128
    assert PoseNetConfig.from_dict(small.to_dict()) == small
    with pytest.raises(InputError, match="multiple of 32"):
        PoseNetConfig(input_size=100)
    with pytest.raises(InputError, match="unknown PoseNetConfig fields: colour"):
        PoseNetConfig.from_dict({"colour": 1})


def test_from_2d_keeps_the_2d_pose_and_starts_at_depth_centre() -> None:
    torch.manual_seed(0)
    net2d = PoseNet(PoseNetConfig(backbone="resnet18", input_size=64, depth_bins=1, deconv_channels=16))
    peaked(net2d)
    net3d = PoseNet.from_2d(net2d, depth_bins=8).eval()
    assert net3d.config.depth_bins == 8 and net3d.config.backbone == "resnet18"
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        o2, o3 = net2d(x), net3d(x)
    assert o2["joints2d"].std() > 0.01  # not a flat, trivially centred output
    torch.testing.assert_close(o3["joints2d"], o2["joints2d"], atol=1e-5, rtol=0)
    torch.testing.assert_close(o3["probs2d"], o2["probs2d"], atol=1e-6, rtol=0)
    torch.testing.assert_close(o3["joints3d"][..., 2], torch.zeros(2, 17), atol=1e-6, rtol=0)


def test_gradients_reach_the_trunk() -> None:
    model = PoseNet(TINY)
    out = model(torch.randn(2, 3, 64, 64))
    out["joints3d"].sum().backward()
    assert model.backbone.conv1.weight.grad.abs().sum() > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_runs_on_cuda() -> None:
    model = PoseNet(TINY).cuda().eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 64, device="cuda"))
    assert out["joints3d"].is_cuda
    cpu = model.cpu()(torch.zeros(1, 3, 64, 64))
    assert cpu["joints3d"].device.type == "cpu"


# --------------------------------------------------------------------------- checkpoints
def test_checkpoint_round_trip(tmp_path) -> None:
    torch.manual_seed(1)
    model = peaked(PoseNet(TINY))
    path = tmp_path / "m.pt"
    save_checkpoint(path, model, extra={"epoch": 3})
    loaded, cfg, meta = load_model(path)
    assert cfg == TINY and meta == {"epoch": 3}
    assert not loaded.training
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x)["joints3d"], model(x)["joints3d"])
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # no temporary files left


def test_lightning_checkpoint_loads(tmp_path) -> None:
    model = PoseNet(TINY)
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    state["teacher.final_layer.weight"] = torch.zeros(3)  # other sub-modules are ignored
    torch.save(
        {
            "epoch": 2,
            "global_step": 40,
            "state_dict": state,
            "hyper_parameters": {"model_config": TINY.to_dict(), "lr": 1e-3},
        },
        tmp_path / "last.ckpt",
    )
    loaded, cfg, meta = load_model(tmp_path / "last.ckpt")
    assert cfg == TINY and meta["lightning"] and meta["global_step"] == 40
    torch.testing.assert_close(loaded.final_layer.weight, model.final_layer.weight)


def test_checkpoint_errors(tmp_path) -> None:
    path = tmp_path / "m.pt"
    save_checkpoint(path, PoseNet(TINY))
    other = PoseNetConfig(backbone="resnet18", input_size=64, depth_bins=16, deconv_channels=16)
    with pytest.raises(
        InputError, match=r"m\.pt was trained with .*depth_bins=8.*, not .*depth_bins=16"
    ) as e:
        load_model(path, config=other)
    assert "depth_bins 8 vs 16" in str(e.value)
    # weights that do not fit the stated config
    ckpt = torch.load(path, weights_only=True)
    ckpt["model_config"]["depth_bins"] = 16
    torch.save(ckpt, tmp_path / "bad.pt")
    with pytest.raises(
        InputError,
        match=r"bad\.pt: its weights do not fit .*final_layer\.bias has shape \(136,\), the config needs \(272,\)",
    ):
        load_model(tmp_path / "bad.pt")
    with pytest.raises(InputError, match="does not exist"):
        load_model(tmp_path / "nope.pt")
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    with pytest.raises(InputError, match="cannot be read"):
        load_model(tmp_path / "junk.pt")
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(InputError, match="neither"):
        load_model(tmp_path / "other.pt")
