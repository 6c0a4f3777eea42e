"""`epipolarpose predict`: shapes, original-image pixel coordinates, overlays, bad input."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from epipolarpose.cli import app
from epipolarpose.models import PoseNet, PoseNetConfig, save_checkpoint

torch.set_num_threads(1)
runner = CliRunner()


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """A tiny untrained network whose heatmaps are peaked and depend on the image."""
    torch.manual_seed(0)
    model = PoseNet(PoseNetConfig(backbone="resnet18", input_size=64, depth_bins=8, deconv_channels=16))
    for m in model.deconv_layers.modules():
        if isinstance(m, torch.nn.ConvTranspose2d):
            torch.nn.init.kaiming_normal_(m.weight)
    torch.nn.init.normal_(model.final_layer.weight, std=3.0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint(path, model.eval())
    return path


def _image(rng, h: int, w: int) -> np.ndarray:
    small = rng.integers(0, 256, size=(h // 8 + 1, w // 8 + 1, 3)).astype(np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _predict(args) -> dict:
    res = runner.invoke(app, ["predict", *map(str, args)])
    assert res.exit_code == 0, res.output
    return res


def test_predict_outputs_in_original_pixels(ckpt, tmp_path, rng) -> None:
    a = _image(rng, 64, 64)  # exactly the network input
    b = np.repeat(np.repeat(a, 2, 0), 2, 1)  # 128x128; INTER_AREA halving gives back `a` exactly
    c = _image(rng, 40, 64)  # non-square: letterboxed with 12 black rows above and below
    d = np.zeros((64, 64, 3), np.uint8)
    d[12:52] = c
    for name, im in zip("abcd", (a, b, c, d)):
        cv2.imwrite(str(tmp_path / f"{name}.png"), im[..., ::-1])
    out = tmp_path / "preds.npz"
    _predict(
        [ckpt, *(tmp_path / f"{n}.png" for n in "abcd"), "-o", out, "--batch-size", "3", "--device", "cpu"]
    )
    p = np.load(out)
    assert p["poses3d"].shape == (4, 17, 3) and p["poses2d"].shape == (4, 17, 2)
    assert [s.endswith(f"{n}.png") for s, n in zip(p["image_paths"], "abcd")] == [True] * 4
    assert list(p["joint_names"][:2]) == ["Hip", "RHip"]
    np.testing.assert_allclose(p["crop_size"], [64, 128, 64, 64])
    pa, pb, pc, pd = p["poses2d"]
    assert pa.std() > 1.0  # the predictions are not all at the image centre
    # same network input -> the 2D pose scales with the image (OpenCV pixel centres)
    np.testing.assert_allclose(pb, 2 * (pa + 0.5) - 0.5, atol=1e-3)
    np.testing.assert_allclose(p["poses3d"][1], p["poses3d"][0], atol=1e-5)
    # the non-square image is reported in its own pixels: 12 rows above it in the square
    np.testing.assert_allclose(pc, pd - [0, 12], atol=1e-3)
    np.testing.assert_allclose(p["poses3d"][:, 0], 0, atol=1e-7)  # root-relative
    assert np.all(np.abs(p["poses3d"]) <= 1.0)


def test_predict_overlays(ckpt, tmp_path, rng) -> None:
    cv2.imwrite(str(tmp_path / "x.jpg"), _image(rng, 80, 60))
    _predict([ckpt, tmp_path / "x.jpg", "-o", tmp_path / "p.npz", "--overlays", tmp_path / "ov"])
    files = sorted(f.name for f in (tmp_path / "ov").iterdir())
    assert files == ["0000_x.png"]
    im = cv2.imread(str(tmp_path / "ov" / files[0]))
    assert im is not None and im.shape[0] > 100


def test_predict_bad_input(ckpt, tmp_path) -> None:
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "p.npz"
    res = runner.invoke(app, ["predict", str(ckpt), str(tmp_path / "broken.jpg"), "-o", str(out)])
    assert res.exit_code == 2
    assert "broken.jpg cannot be read" in res.output and "Traceback" not in res.output
    assert not out.exists()
    res = runner.invoke(app, ["predict", str(ckpt), str(tmp_path / "missing.png"), "-o", str(out)])
    assert res.exit_code == 2 and "missing.png does not exist" in res.output
    res = runner.invoke(
        app, ["predict", str(tmp_path / "none.pt"), str(tmp_path / "broken.jpg"), "-o", str(out)]
    )
    assert res.exit_code == 2 and "none.pt does not exist" in res.output
    assert not out.exists()
    assert list(tmp_path.glob(".p.npz*")) == []  # no temporary leftovers


def test_predict_with_refiner(ckpt, tmp_path, rng) -> None:
    from epipolarpose.refiner import Refiner, load_refiner

    torch.manual_seed(0)
    refiner = Refiner(hidden=32)
    torch.nn.init.normal_(refiner.out.weight, std=0.1)  # not the identity
    refiner.save(tmp_path / "r.pt")
    cv2.imwrite(str(tmp_path / "x.png"), _image(rng, 64, 64))
    out = tmp_path / "p.npz"
    _predict([ckpt, tmp_path / "x.png", "-o", out, "--refiner", tmp_path / "r.pt"])
    p = np.load(out)
    expected = load_refiner(tmp_path / "r.pt").refine(p["poses3d_unrefined"])
    np.testing.assert_allclose(p["poses3d"], expected, atol=1e-6)
    assert np.abs(p["poses3d"] - p["poses3d_unrefined"]).max() > 1e-4
    res = runner.invoke(
        app,
        [
            "predict",
            str(ckpt),
            str(tmp_path / "x.png"),
            "-o",
            str(tmp_path / "q.npz"),
            "--refiner",
            str(tmp_path / "x.png"),
        ],
    )
    assert res.exit_code == 2 and "not a readable refiner checkpoint" in res.output
    assert not (tmp_path / "q.npz").exists()


def test_predict_clips_writes_a_split_that_evaluate_scores(ckpt, tmp_path, cmu_bvh, rig_s9_path) -> None:
    """`predict --clips` renders a synthetic split; its gt.npz is the mocap itself and `evaluate`
    gives the MPJPE computed independently from the two files."""
    import json

    from epipolarpose.camera import Rig
    from epipolarpose.metrics import mpjpe
    from epipolarpose.mocap import load_mocap
    from epipolarpose.training.data import in_view

    out = tmp_path / "preds.npz"
    _predict([ckpt, "--clips", cmu_bvh, "--rig", rig_s9_path, "--fps", 2, "-o", out])
    pred, gt = np.load(out), np.load(tmp_path / "preds_gt.npz")
    rig = Rig.load(rig_s9_path)
    poses = load_mocap(cmu_bvh, fps=2).poses
    poses = poses[in_view(poses, rig)]
    np.testing.assert_allclose(gt["poses3d_world"], poses, atol=1e-2)
    P = pred["poses3d_camera"]
    assert P.shape == (4, len(poses), 17, 3) and np.isfinite(P).all()
    G = rig.world_to_camera(poses)
    np.testing.assert_allclose(P[..., 0, 2], G[..., 0, 2], rtol=1e-5)  # the paper's protocol: GT root depth
    res = runner.invoke(
        app, ["evaluate", str(out), str(tmp_path / "preds_gt.npz"), "-o", str(tmp_path / "m.json")]
    )
    assert res.exit_code == 0, res.output
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["summary"]["mpjpe"] == pytest.approx(mpjpe(P.reshape(-1, 17, 3), G.reshape(-1, 17, 3)), rel=1e-4)
    # neither or both inputs: a clear error
    res = runner.invoke(app, ["predict", str(ckpt), "-o", str(tmp_path / "x.npz")])
    assert res.exit_code == 2 and "either IMAGES or --clips" in res.output
