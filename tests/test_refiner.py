"""The refinement unit: network shapes and losses, checkpoints, error models, virtual cameras, a
real learning test on held-out motion capture, and the `refine` CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from epipolarpose.cli import app
from epipolarpose.errors import InputError
from epipolarpose.metrics import mpjpe
from epipolarpose.refiner import (
    ErrorModel,
    Refiner,
    RefinerTrainConfig,
    VirtualCameras,
    detect_limb_flips,
    fit_error_model,
    flip_limbs,
    limb_flip_eligible,
    load_refiner,
    make_pairs,
    refiner_loss,
    train_refiner,
)
from epipolarpose.skeleton import LIMB_BONES, bone_lengths

torch.set_num_threads(1)


def _random_poses(rng: np.random.Generator, n: int) -> np.ndarray:
    """A stand-in skeleton: a fixed rest pose plus per-pose jitter, mm."""
    rest = np.random.default_rng(123).normal(0, 300, (17, 3))
    p = rest + rng.normal(0, 40, (n, 17, 3))
    return p - p[:, :1]


def _trained_briefly(rng: np.random.Generator, steps: int = 3, **kw) -> Refiner:
    model = Refiner(hidden=32, dropout=0.1, **kw)
    clean = _random_poses(rng, 64)
    model.set_normalization(clean)
    x, _ = model.to_normalized_input(
        torch.as_tensor(clean + rng.normal(0, 20, clean.shape), dtype=torch.float64)
    )
    x = model.normalize(x.float())
    y = model.normalize(model.to_normalized_input(torch.as_tensor(clean, dtype=torch.float64))[0].float())
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        loss, _ = refiner_loss(model, x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def mocap_split(shared):
    """Real mocap: 60 training clips and 6 held-out test clips (by the project's clip split)."""
    from epipolarpose.mocap import list_shared_clips, load_clips

    train, test = list_shared_clips(shared, "train"), list_shared_clips(shared, "test")
    pick = np.random.default_rng(0)
    train = [train[i] for i in sorted(pick.choice(len(train), 60, replace=False))]
    test = [test[i] for i in sorted(pick.choice(len(test), 6, replace=False))]
    return load_clips(train, fps=10)[0], load_clips(test, fps=10)[0]


# --- network ---------------------------------------------------------------------------------


def test_shapes_and_architecture(rng):
    model = Refiner(hidden=64)
    final, inter = model(torch.zeros(5, 51))
    assert final.shape == (5, 51) and len(inter) == 1 and inter[0].shape == (5, 51)
    assert len(Refiner(hidden=16, blocks=3)(torch.zeros(4, 51))[1]) == 2
    # each block: (Linear, BatchNorm, LeakyReLU, Dropout) x 2
    kinds = [type(m).__name__ for m in model.blocks[0].layers]
    assert kinds == ["Linear", "BatchNorm1d", "LeakyReLU", "Dropout"] * 2
    assert model.inp[0].out_features == 64 and model.out.out_features == 51
    model = _trained_briefly(rng)
    p = _random_poses(rng, 6).reshape(2, 3, 17, 3).astype(np.float32)
    out = model.refine(p)
    assert isinstance(out, np.ndarray) and out.shape == p.shape and out.dtype == np.float32
    t = torch.as_tensor(p, dtype=torch.float64)
    out_t = model.refine(t)
    assert isinstance(out_t, torch.Tensor) and out_t.shape == t.shape and out_t.dtype == torch.float64
    np.testing.assert_allclose(out_t.numpy(), out, atol=1e-3)
    assert not np.allclose(out, p)  # it changes something
    assert not model.training


def test_untrained_refiner_is_identity(rng):
    model = Refiner(hidden=32)
    model.set_normalization(_random_poses(rng, 32))
    p = _random_poses(rng, 4) + 1000.0
    np.testing.assert_allclose(model.refine(p), p, atol=1e-3)


def test_intermediate_loss_contributes(rng):
    model = _trained_briefly(rng, steps=3).eval()  # non-zero heads after a few steps; no dropout
    x = torch.randn(16, 51)
    y = torch.randn(16, 51)
    total, parts = refiner_loss(model, x, y)
    final, inter = model(x)
    mse = torch.nn.functional.mse_loss
    assert parts["final"] == pytest.approx(mse(final, y).item(), rel=1e-6)
    assert (
        parts["intermediate"] == pytest.approx(mse(inter[0], y).item(), rel=1e-6)
        and parts["intermediate"] > 0
    )
    assert total.item() == pytest.approx(parts["final"] + parts["intermediate"], rel=1e-6)
    half, _ = refiner_loss(model, x, y, intermediate_weight=0.5)
    assert half.item() == pytest.approx(parts["final"] + 0.5 * parts["intermediate"], rel=1e-6)
    # the gradient of the intermediate loss alone reaches the first layers but not the final head
    model.zero_grad()
    mse(model(x)[1][0], y).backward()
    assert model.inp[0].weight.grad.abs().sum() > 0
    assert model.blocks[0].layers[0].weight.grad.abs().sum() > 0
    assert model.intermediate[0].weight.grad.abs().sum() > 0
    for later in (model.out.weight, model.blocks[1].layers[0].weight):
        assert later.grad is None or later.grad.abs().sum() == 0


def test_save_load_round_trip(tmp_path, rng):
    model = _trained_briefly(rng, steps=5)
    assert not torch.allclose(model.std, torch.ones_like(model.std))
    path = tmp_path / "r.ckpt"
    model.save(path, meta={"note": "x", "n": 3})
    loaded = load_refiner(path)
    p = _random_poses(rng, 10)
    np.testing.assert_array_equal(loaded.refine(p), model.refine(p))
    assert torch.equal(loaded.mean, model.mean) and torch.equal(loaded.std, model.std)
    assert loaded.meta == {"note": "x", "n": 3} and loaded.config() == model.config()


def test_scale_free_root_kept_and_nan_passthrough(rng):
    model = _trained_briefly(rng, steps=5)
    p = _random_poses(rng, 8)
    ref = model.refine(p)
    shift = np.array([100.0, -50.0, 4000.0])
    for k in (1e-3, 1.0, 7.0):  # metres, mm, arbitrary units
        np.testing.assert_allclose(
            model.refine(k * p + shift), k * ref + shift, rtol=1e-4, atol=1e-4 * k * 300
        )
    q = p.copy()
    q[2, 5] = np.nan
    out = model.refine(q)
    np.testing.assert_array_equal(out[2], q[2])  # unchanged, NaN included
    np.testing.assert_allclose(np.delete(out, 2, 0), np.delete(ref, 2, 0), rtol=1e-5, atol=1e-3)


# --- error model and cameras -------------------------------------------------------------


def test_flip_limbs_reflects_one_bone_depth(rng):
    p = _random_poses(rng, 5)
    flips = rng.random((5, 8)) < 0.5
    q = flip_limbs(p, flips)
    np.testing.assert_allclose(flip_limbs(q, flips), p, atol=1e-9)  # an involution
    np.testing.assert_allclose(bone_lengths(q), bone_lengths(p), atol=1e-9)
    i = int(np.argmax(flips.any(1)))
    b = int(np.argmax(flips[i]))
    par, child = LIMB_BONES[b]
    d_p, d_q = p[i, child] - p[i, par], q[i, child] - q[i, par]
    np.testing.assert_allclose(d_q, d_p * [1, 1, -1], atol=1e-9)


def test_virtual_cameras_geometry(rng):
    cams = VirtualCameras()
    R = cams.rotations(200, rng)
    np.testing.assert_allclose(R @ R.transpose(0, 2, 1), np.broadcast_to(np.eye(3), R.shape), atol=1e-9)
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-9)
    # no roll, no off-axis (huge focal length): world up is (0, -cos el, -sin el) in the camera
    el = 20.0
    fixed = VirtualCameras(elevation=(el, el), roll=0.0, focal=(1e9, 1e9))
    up = fixed.rotations(50, rng) @ np.array([0.0, 0.0, 1.0])
    np.testing.assert_allclose(
        up, np.broadcast_to([0, -np.cos(np.radians(el)), -np.sin(np.radians(el))], up.shape), atol=1e-6
    )
    poses = _random_poses(rng, 30) + rng.normal(0, 1000, (30, 1, 3))
    view = cams.view(poses, rng)
    np.testing.assert_allclose(view[:, 0], 0.0, atol=1e-9)
    np.testing.assert_allclose(bone_lengths(view), bone_lengths(poses), rtol=1e-9)
    # off-axis: a wide lens lets the person appear away from the image centre; the same random
    # draws with an infinitely long lens give the on-axis look-at rotation
    wide = VirtualCameras(focal=(300, 300), distance=(6000, 6000))
    on_axis = VirtualCameras(focal=(1e9, 1e9), distance=(6000, 6000))
    R_wide, R_on = (
        wide.rotations(300, np.random.default_rng(1)),
        on_axis.rotations(300, np.random.default_rng(1)),
    )
    root_dir = (
        R_wide @ R_on.transpose(0, 2, 1) @ np.array([0.0, 0.0, 1.0])
    )  # root direction in the wide camera
    u, v = 300 * root_dir[:, 0] / root_dir[:, 2], 300 * root_dir[:, 1] / root_dir[:, 2]
    limit = 300 * np.tan(np.arctan(500 / 300) - np.arctan(1000 / 6000))  # body stays in the 1000 px image
    assert np.abs(u).max() <= limit + 1e-6 and np.abs(v).max() <= limit + 1e-6
    assert np.abs(u).max() > 0.8 * limit and np.abs(v).max() > 0.8 * limit


def test_fit_error_model_recovers_known_model(rng, tmp_path):
    clean = VirtualCameras().view(_random_poses(rng, 4000) + [0, 0, 900], rng)
    J = 17
    bias = rng.normal(0, 15, (J, 3))
    bias[0] = 0
    A = rng.normal(0, 1, (3 * J, 3 * J)) * 3
    cov = A @ A.T
    cov[:3] = cov[:, :3] = 0  # root-relative: no root error
    cov[2::3, 2::3] += np.eye(J) * 30**2  # depth-dominant
    cov[2, 2] = 0
    rates = np.array([0.05, 0.1, 0.15, 0.2, 0.0, 0.05, 0.1, 0.3])
    true = ErrorModel(bias=bias, cov=cov, flip_rate=rates)
    fitted = fit_error_model(true.sample(clean, rng), clean, relative=False)
    np.testing.assert_allclose(fitted.bias, bias, atol=3.0)
    sd = np.sqrt(np.diag(cov))
    np.testing.assert_allclose(np.sqrt(np.diag(fitted.cov)), sd, rtol=0.1, atol=1.0)
    corr_err = (fitted.cov - cov) / np.maximum(np.outer(sd, sd), 1e-9)
    assert np.abs(corr_err[3:, 3:]).max() < 0.12
    np.testing.assert_allclose(fitted.flip_rate, rates, atol=0.04)
    assert fitted.depth_ratio == pytest.approx(true.depth_ratio, rel=0.1) and fitted.depth_ratio > 1.5
    # the Gaussian ablation: isotropic, unbiased, no flips
    g = ErrorModel.gaussian(25.0)
    e = g.sample(clean, rng) - clean
    assert np.allclose(e[:, 0], 0) and e[:, 1:].std() == pytest.approx(25.0, rel=0.02)
    assert g.depth_ratio == pytest.approx(1.0) and not g.flip_rate.any()
    for name in ("em.npz", "em.json"):
        fitted.save(tmp_path / name)
        back = ErrorModel.load(tmp_path / name)
        np.testing.assert_allclose(back.cov, fitted.cov)
        np.testing.assert_allclose(back.bias, fitted.bias)
        np.testing.assert_allclose(back.flip_rate, fitted.flip_rate)
        assert back.reference_scale is None and back.info == fitted.info


def test_fit_pose_dependent_and_heavy_tailed_errors(rng, tmp_path):
    """A network that shrinks every pose towards the mean pose by 30 % (errors anti-correlated with
    the pose) with log-normal per-pose noise scales: the fit recovers the gain, explains the
    shrinkage on held-out folds, keeps the heavy tails, and sampling reproduces both."""
    clean = VirtualCameras().view(_random_poses(rng, 4000) + [0, 0, 900], rng)
    center = clean.mean(0)
    lam = 0.7
    tail = rng.lognormal(0.0, 0.5, (len(clean), 1, 1))
    noise = rng.normal(0, 10, clean.shape) * tail
    noise[:, 0] = 0
    pred = center + lam * (clean - center) + noise
    fitted = fit_error_model(pred, clean, relative=False)
    assert fitted.gain is not None and fitted.info["linear_explained"] > 0.5
    np.testing.assert_allclose(np.diag(fitted.gain)[3:], lam - 1, atol=0.05)
    off = fitted.gain[3:, 3:] - np.diag(np.diag(fitted.gain)[3:])
    assert np.abs(off).max() < 0.05
    np.testing.assert_allclose(np.sqrt(np.diag(fitted.cov))[3:], 10 * np.sqrt(np.mean(tail**2)), rtol=0.1)
    # heavy tails: spread of the fitted per-pose scales vs the Gaussian chi spread (~0.1 for 48 dims)
    assert fitted.noise_scales.std() > 0.3
    np.testing.assert_allclose(np.mean(fitted.noise_scales**2), 1.0, rtol=1e-6)
    # sampling: errors regress on the pose with the same slope, and have the same tails
    e = fitted.sample(clean, rng) - clean
    u = (clean - center)[:, 1:].reshape(-1)
    slope = np.dot(e[:, 1:].reshape(-1), u) / np.dot(u, u)
    assert slope == pytest.approx(lam - 1, abs=0.03)
    norms = lambda x: np.linalg.norm((x - x.mean(0)).reshape(len(x), -1), axis=1)  # noqa: E731
    true_res, samp_res = (
        norms(pred - center - lam * (clean - center)),
        norms(e - (lam - 1) * (clean - center)),
    )
    q = [0.5, 0.9, 0.99]
    np.testing.assert_allclose(np.quantile(samp_res, q), np.quantile(true_res, q), rtol=0.12)
    # the mean error it predicts is the shrinkage itself
    miss = fitted.expected_error(clean)[:, 1:] - (lam - 1) * (clean - center)[:, 1:]
    assert np.abs(miss).mean() < 1.5 and np.abs(miss).max() < 15, (np.abs(miss).mean(), np.abs(miss).max())
    # without the new terms the same data is described by independent Gaussian noise only
    plain = fit_error_model(pred, clean, relative=False, pose_dependent=False, heavy_tails=False)
    assert plain.gain is None and plain.noise_scales is None
    assert plain.axis_std()[2] > fitted.axis_std()[2]  # the pose variance it cannot explain
    for name in ("em.npz", "em.json"):
        fitted.save(tmp_path / name)
        back = ErrorModel.load(tmp_path / name)
        np.testing.assert_allclose(back.gain, fitted.gain)
        np.testing.assert_allclose(back.center, fitted.center)
        np.testing.assert_allclose(back.noise_scales, fitted.noise_scales)
        e1 = back.sample(clean[:50], np.random.default_rng(3))
        np.testing.assert_allclose(e1, fitted.sample(clean[:50], np.random.default_rng(3)))


def test_pose_independent_errors_fit_no_gain(rng):
    """Errors independent of the pose: cross-validation keeps the linear term at (almost) zero."""
    clean = VirtualCameras().view(_random_poses(rng, 3000), rng)
    noise = rng.normal(0, 20, clean.shape)
    noise[:, 0] = 0
    fitted = fit_error_model(clean + noise, clean, relative=False)
    assert fitted.info["linear_explained"] < 0.02
    assert np.abs(fitted.gain).max() < 0.05
    np.testing.assert_allclose(np.sqrt(np.diag(fitted.cov))[3:], 20, rtol=0.08)
    assert fitted.noise_scales.std() < 0.15  # chi with 48 degrees of freedom, no extra tails


def test_limb_flips_detected_under_depth_shrinkage(mocap_split):
    """A network that shrinks depths to 40 % *and* flips 10 % of the eligible limbs: the flip rate
    per bone is recovered (with a slope fixed at 1 the shrunk bones sit between the hypotheses)."""
    train, _ = mocap_split
    rng = np.random.default_rng(11)
    clean = VirtualCameras().view(train[::2], rng)
    flips = limb_flip_eligible(clean) & (rng.random((len(clean), 8)) < 0.1)
    pred = flip_limbs(clean, flips)
    pred[..., 2] *= 0.4
    pred += rng.normal(0, 8, pred.shape)
    found, eligible, rate = detect_limb_flips(pred, clean)
    np.testing.assert_allclose(rate, 0.1, atol=0.03)
    agree = (found == flips)[eligible].mean()
    assert agree > 0.95, agree


def test_matching_cameras_reads_elevation_and_distance(mocap_split):
    """Poses seen from cameras 10-16 deg above the pelvis at 4-5.5 m: the matched cameras centre
    on that elevation and distance; another elevation gives another range."""
    train, _ = mocap_split
    rng = np.random.default_rng(5)
    for lo, hi in ((10.0, 16.0), (30.0, 40.0)):
        seen = VirtualCameras(elevation=(lo, hi)).view(train[::3], rng)
        depth = rng.uniform(4000, 5500, len(seen))
        cams = VirtualCameras.matching(seen + depth[:, None, None] * np.array([0, 0, 1.0]))
        centre = 0.5 * (cams.elevation[0] + cams.elevation[1])
        assert centre == pytest.approx(0.5 * (lo + hi), abs=3.0), cams.elevation
        assert (
            cams.elevation[0] < lo and cams.elevation[1] > hi and cams.elevation[1] - cams.elevation[0] < 30
        )
        np.testing.assert_allclose(cams.distance, (4075, 5425), rtol=0.03)
    # root-relative poses carry no distance: the default range is kept
    assert VirtualCameras.matching(seen).distance == VirtualCameras().distance
    with pytest.raises(InputError, match="at least 10 finite poses"):
        VirtualCameras.matching(np.full((20, 17, 3), np.nan))


def test_relative_error_model_scales_with_person(rng):
    clean = VirtualCameras().view(_random_poses(rng, 2000), rng)
    m = ErrorModel.gaussian(10.0, reference_scale=float(np.sqrt((clean**2).sum(-1).mean())))
    e_small = m.sample(0.5 * clean, rng) - 0.5 * clean
    assert e_small[:, 1:].std() == pytest.approx(5.0, rel=0.05)


# --- learning ---------------------------------------------------------------------------------


def test_refiner_removes_known_corruption_on_held_out_clips(mocap_split):
    """Known corruption (per-joint bias + depth-dominant noise + 10 % limb flips) applied to real
    mocap through virtual cameras; a briefly trained refiner removes most of it on test clips."""
    train, test = mocap_split
    rng = np.random.default_rng(7)
    J = 17
    bias = rng.normal(0, 30, (J, 3))
    bias[0] = 0
    var = np.zeros((J, 3))
    var[1:] = [8.0**2, 8.0**2, 30.0**2]
    corruption = ErrorModel(bias=bias, cov=np.diag(var.ravel()), flip_rate=np.full(8, 0.1))
    cfg = RefinerTrainConfig(
        epochs=10, hidden=256, dropout=0.1, cameras_per_pose=4, lr=3e-3, lr_decay=0.9, seed=0
    )
    model, history = train_refiner(train, corruption, cfg, progress=False)
    assert history[-1]["loss"] < history[0]["loss"]
    clean, noisy = make_pairs(test, corruption, np.random.default_rng(99), cameras_per_pose=2)
    before, after = mpjpe(noisy, clean), mpjpe(model.refine(noisy), clean)
    assert before > 50
    assert after < 0.5 * before, (before, after)


# --- CLI ----------------------------------------------------------------------------------


def test_cli_fit_errors_from_predict_clips_files(tmp_path, shared):
    """`refine train --fit-errors` reads the two files `predict --clips` writes (predictions per
    camera, ground truth in the world with its rig) and lines them up camera by camera: the fitted
    raw MPJPE is the known noise, and the cameras are matched to the rig's views."""
    from epipolarpose.formats import GroundTruth, read_camera_poses
    from epipolarpose.mocap import list_shared_clips, load_clips
    from epipolarpose.synthetic import default_rig

    clips = list_shared_clips(shared, "test")[:2]
    world, clip, _ = load_clips(clips, fps=5)
    world = world + np.array([0.0, 0.0, 900.0])  # pelvis height, as the clips are centred
    rig = default_rig()
    rng = np.random.default_rng(4)
    cam = rig.world_to_camera(world)  # (C, F, J, 3)
    noise = rng.normal(0, 10, cam.shape)
    noise[..., 0, :] = 0
    np.savez(tmp_path / "val.npz", poses3d_camera=(cam + noise).astype(np.float32))
    GroundTruth(world.astype(np.float32), clip, rig).save(tmp_path / "val_gt.npz")
    gt, gt_clip = read_camera_poses(tmp_path / "val_gt.npz")
    assert gt.shape == (cam.shape[0] * cam.shape[1], 17, 3) and gt_clip[: len(clip)].tolist() == clip.tolist()
    res = CliRunner().invoke(
        app,
        [
            "refine",
            "train",
            "--mocap",
            str(clips[0]),
            "-o",
            str(tmp_path / "r.ckpt"),
            "--epochs",
            "1",
            "--hidden",
            "32",
            "--cameras-per-pose",
            "1",
            "--device",
            "cpu",
            "--save-error-model",
            str(tmp_path / "em.json"),
            "--fit-errors",
            str(tmp_path / "val.npz"),
            str(tmp_path / "val_gt.npz"),
        ],
    )
    assert res.exit_code == 0, res.output
    em = ErrorModel.load(tmp_path / "em.json")
    expected = np.linalg.norm(noise[..., 1:, :], axis=-1).sum() / noise[..., 0].size
    assert em.info["raw_mpjpe"] == pytest.approx(expected, rel=0.02)
    cams = load_refiner(tmp_path / "r.ckpt").meta["cameras"]
    assert 0 < cams["elevation"][0] < 15 < cams["elevation"][1] < 35  # H36M cameras look down 10-16 deg
    assert "matched to the ground truth" in res.output
    np.savez(tmp_path / "bad.npz", joints=cam)
    res = CliRunner().invoke(
        app,
        [
            "refine",
            "train",
            "--mocap",
            str(clips[0]),
            "-o",
            str(tmp_path / "x.ckpt"),
            "--fit-errors",
            str(tmp_path / "bad.npz"),
            str(tmp_path / "val_gt.npz"),
        ],
    )
    assert res.exit_code == 2 and "needs poses3d (N, J, 3), poses3d_camera" in res.output
    assert not (tmp_path / "x.ckpt").exists()


def test_cli_train_apply_and_bad_input(tmp_path, shared, rng):
    from epipolarpose.mocap import list_shared_clips, load_clips

    runner = CliRunner()
    clips = list_shared_clips(shared, "test")[:2]
    world = load_clips(clips, fps=5)[0]
    clean = VirtualCameras().view(world, rng)
    noisy = ErrorModel.gaussian(30.0).sample(clean, rng)
    np.savez(tmp_path / "pred.npz", poses3d=noisy.astype(np.float32), frame=np.arange(len(noisy)))
    np.savez(tmp_path / "gt.npz", poses3d=clean)
    ckpt = tmp_path / "r.ckpt"
    args = [
        "refine",
        "train",
        "--mocap",
        str(clips[0]),
        "--mocap",
        str(clips[1]),
        "-o",
        str(ckpt),
        "--epochs",
        "1",
        "--hidden",
        "32",
        "--device",
        "cpu",
    ]
    res = runner.invoke(
        app,
        args
        + [
            "--fit-errors",
            str(tmp_path / "pred.npz"),
            str(tmp_path / "gt.npz"),
            "--save-error-model",
            str(tmp_path / "em.json"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert load_refiner(ckpt).meta["error_model"]["kind"] == "fitted"
    assert ErrorModel.load(tmp_path / "em.json").info["num_poses"] == len(noisy)

    out = tmp_path / "refined.npz"
    with_nan = noisy.astype(np.float32)
    with_nan[3, 7] = np.nan
    np.savez(tmp_path / "pred_nan.npz", poses3d=with_nan, frame=np.arange(len(noisy)))
    res = runner.invoke(app, ["refine", "apply", str(ckpt), str(tmp_path / "pred_nan.npz"), "-o", str(out)])
    assert res.exit_code == 0, res.output
    with np.load(out) as z:
        np.testing.assert_array_equal(z["poses3d_raw"], with_nan)
        np.testing.assert_array_equal(z["frame"], np.arange(len(noisy)))
        np.testing.assert_array_equal(z["poses3d"][3], with_nan[3])
        assert z["poses3d"].dtype == np.float32 and not np.allclose(z["poses3d"][4:], with_nan[4:])
        np.testing.assert_allclose(z["poses3d"], load_refiner(ckpt).refine(with_nan))

    # bad input: exit 2, one clear message, no output file
    np.savez(tmp_path / "nokey.npz", joints=noisy)
    np.savez(tmp_path / "j16.npz", poses3d=noisy[:, :16])
    bad = tmp_path / "bad.npz"
    cases = [
        (
            ["refine", "apply", str(ckpt), str(tmp_path / "nokey.npz"), "-o", str(bad)],
            "missing key 'poses3d'",
        ),
        (["refine", "apply", str(ckpt), str(tmp_path / "j16.npz"), "-o", str(bad)], "expected (?, 17, 3)"),
        (
            ["refine", "apply", str(tmp_path / "none.ckpt"), str(tmp_path / "pred.npz"), "-o", str(bad)],
            "does not exist",
        ),
        (
            ["refine", "apply", str(tmp_path / "gt.npz"), str(tmp_path / "pred.npz"), "-o", str(bad)],
            "refiner checkpoint",
        ),
        (
            args[:-6] + ["-o", str(bad), "--gaussian", "20", "--error-model", str(tmp_path / "em.json")],
            "choose one",
        ),
        (
            args[:-6]
            + ["-o", str(bad), "--fit-errors", str(tmp_path / "pred.npz"), str(tmp_path / "j16.npz")],
            "differ in shape",
        ),
    ]
    for argv, message in cases:
        res = runner.invoke(app, argv)
        assert res.exit_code == 2, (argv, res.output)
        assert message in res.output and "Traceback" not in res.output, res.output
        assert not bad.exists()
