"""Synthetic multi-view observations and the `synth` CLI."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from epipolarpose.camera import Rig
from epipolarpose.cli import app
from epipolarpose.errors import InputError
from epipolarpose.formats import GroundTruth, Poses2D
from epipolarpose.mocap import load_mocap
from epipolarpose.skeleton import FLIP_PERMUTATION, LEFT_JOINTS, RIGHT_JOINTS
from epipolarpose.synthetic import CORRUPTION_CODES, NoiseModel, default_rig, synthesize

CLEAN, OUTLIER, SWAPPED = CORRUPTION_CODES["clean"], CORRUPTION_CODES["outlier"], CORRUPTION_CODES["swapped"]
MISSING, NOT_VISIBLE = CORRUPTION_CODES["missing"], CORRUPTION_CODES["not_visible"]


@pytest.fixture(scope="module")
def motion(cmu_bvh):
    return load_mocap(cmu_bvh, fps=50)  # 415 frames


@pytest.fixture(scope="module")
def noisy(motion, rig_s9):
    return synthesize(motion.poses, rig_s9, NoiseModel(), seed=3, clip=motion.name, fps=50)


def test_default_rig_is_s9(rig_s9):
    rig = default_rig()
    assert rig.names == rig_s9.names and rig.units == "mm"
    np.testing.assert_allclose(rig.P, rig_s9.P)
    np.testing.assert_allclose(rig.dist, rig_s9.dist)


def test_noise_free_reprojects_ground_truth(motion, rig_s9):
    p2d, gt = synthesize(motion.poses, rig_s9, None, clip=motion.name, fps=50)
    C, F = len(rig_s9), motion.num_frames
    assert p2d.keypoints.shape == (C, F, 17, 2) and p2d.scores.shape == (C, F, 17)
    for c, cam in enumerate(rig_s9):
        rvec = cv2.Rodrigues(cam.R)[0]
        ref, _ = cv2.projectPoints(motion.poses.reshape(-1, 3), rvec, cam.t, cam.K, cam.dist)
        ref = ref.reshape(F, 17, 2)
        ok = p2d.extra["corrupted"][c] == CLEAN
        assert ok.mean() > 0.95
        np.testing.assert_allclose(p2d.keypoints[c][ok], ref[ok], atol=1e-3)  # float32 storage
        np.testing.assert_allclose(gt.extra["keypoints2d"][c][ok], ref[ok], atol=1e-3)
    obs = p2d.extra["corrupted"] == CLEAN
    assert (p2d.scores[obs] == 1).all() and (p2d.scores[~obs] == 0).all()
    assert np.isnan(p2d.keypoints[~obs]).all()
    np.testing.assert_allclose(gt.poses3d_world, motion.poses, atol=1e-3)
    assert (gt.clip == motion.name).all() and gt.rig is rig_s9 and (gt.extra["offsets"] == 0).all()
    np.testing.assert_allclose(p2d.K, rig_s9.K)
    assert p2d.fps == 50 and p2d.camera_names == rig_s9.names


def test_joints_outside_the_image_are_missing(motion, rig_s9):
    # the person walks from the origin off to the side, out of every camera's view
    poses = motion.poses[:40] - motion.poses[:40, :1] * [1, 1, 0]
    poses[..., 0] += np.linspace(0, 5000, 40)[:, None]
    p2d, gt = synthesize(poses, rig_s9, NoiseModel.clean())
    code = p2d.extra["corrupted"]
    uv = np.stack([cam.project(poses) for cam in rig_s9])
    w, h = p2d.image_size[:, 0, None, None], p2d.image_size[:, 1, None, None]
    out = ~((uv[..., 0] >= 0) & (uv[..., 0] <= w - 1) & (uv[..., 1] >= 0) & (uv[..., 1] <= h - 1))
    assert 0.2 < out.mean() < 0.8
    np.testing.assert_array_equal(code == NOT_VISIBLE, out)
    assert np.isnan(p2d.keypoints[out]).all() and (p2d.scores[out] == 0).all()


def test_noise_statistics_match_the_model(noisy, motion):
    p2d, gt = noisy
    noise = NoiseModel()
    code = p2d.extra["corrupted"]
    truth = gt.extra["keypoints2d"]
    vis = code != NOT_VISIBLE
    n_vis = vis.sum()
    assert n_vis > 25000

    def within(measured, p, n, k=4.5):
        return abs(measured - p) < k * np.sqrt(p * (1 - p) / n)

    # missing joints: NaN and score 0
    assert within((code[vis] == MISSING).mean(), noise.missing_prob, n_vis)
    miss = code == MISSING
    assert np.isnan(p2d.keypoints[miss]).all() and (p2d.scores[miss] == 0).all()
    # outliers among visible joints (missing has priority over outlier)
    assert within((code[vis] == OUTLIER).mean(), noise.outlier_prob * (1 - noise.missing_prob), n_vis)
    # swaps: per (camera, frame), all left/right pairs at once
    swapped_views = (code == SWAPPED).any(-1)
    assert within(swapped_views.mean(), noise.swap_prob, swapped_views.size)
    c, f = np.nonzero(swapped_views)
    lr = np.concatenate([LEFT_JOINTS, RIGHT_JOINTS])
    sw = code[c, f][:, lr] == SWAPPED
    assert sw.mean() > 0.8  # every L/R joint is swapped unless it is an outlier/missing
    d = p2d.keypoints[c, f][:, lr] - truth[c, f][:, FLIP_PERMUTATION][:, lr]
    assert np.sqrt(np.mean(d[sw] ** 2)) < 1.5 * noise.sigma_px  # at the mirror joint's position
    # Gaussian noise on clean joints
    clean = code == CLEAN
    r = (p2d.keypoints - truth)[clean]
    assert abs(r.std() / noise.sigma_px - 1) < 0.03 and np.abs(r.mean(0)).max() < 0.1
    # outliers lie within the padded person box, far from the truth on average
    lo = np.nanmin(np.where(vis[..., None], truth, np.nan), axis=2)
    hi = np.nanmax(np.where(vis[..., None], truth, np.nan), axis=2)
    pad = noise.box_padding * (hi - lo)
    oc, of, oj = np.nonzero(code == OUTLIER)
    kp = p2d.keypoints[oc, of, oj]
    assert (kp >= lo[oc, of] - pad[oc, of] - 1e-3).all() and (kp <= hi[oc, of] + pad[oc, of] + 1e-3).all()
    assert np.linalg.norm(kp - truth[oc, of, oj], axis=-1).mean() > 10 * noise.sigma_px
    # confidences drop on corrupted joints
    s = p2d.scores
    (lo_c, hi_c), (lo_b, hi_b) = noise.score_clean, noise.score_corrupted
    assert (s[clean] >= lo_c).all() and (s[clean] <= hi_c).all()
    bad = (code == OUTLIER) | (code == SWAPPED)
    assert (s[bad] >= lo_b).all() and (s[bad] <= hi_b).all()
    assert abs(s[clean].mean() - (lo_c + hi_c) / 2) < 0.01
    assert s[bad].mean() < s[clean].mean() - 0.2


def test_seeded_determinism_and_independent_streams(motion, rig_s9, noisy):
    p2d, _ = noisy
    again, _ = synthesize(motion.poses, rig_s9, NoiseModel(), seed=3)
    np.testing.assert_array_equal(again.keypoints, p2d.keypoints)
    np.testing.assert_array_equal(again.scores, p2d.scores)
    other, _ = synthesize(motion.poses, rig_s9, NoiseModel(), seed=4)
    assert not np.array_equal(other.extra["corrupted"], p2d.extra["corrupted"])
    # more outliers: a superset of the outliers, and the Gaussian noise of clean joints unchanged
    more, _ = synthesize(motion.poses, rig_s9, NoiseModel(outlier_prob=0.2), seed=3)
    was, now = p2d.extra["corrupted"], more.extra["corrupted"]
    assert ((was == OUTLIER) <= ((now == OUTLIER) | (now == MISSING))).all()
    both = (was == CLEAN) & (now == CLEAN)
    np.testing.assert_array_equal(more.keypoints[both], p2d.keypoints[both])


def test_time_offsets_shift_frames_as_documented(motion, rig_s9):
    offsets = (0, 3, -2, 5)
    ref, _ = synthesize(motion.poses, rig_s9, None)
    p2d, gt = synthesize(motion.poses, rig_s9, NoiseModel.clean(offsets))
    np.testing.assert_array_equal(gt.extra["offsets"], offsets)
    F = motion.num_frames
    for c, o in enumerate(offsets):
        # camera c's frame i shows reference time i + o: adding the offset to the index recovers it
        i = np.arange(max(0, -o), min(F, F - o))
        np.testing.assert_array_equal(p2d.keypoints[c, i], ref.keypoints[c, i + o])
        outside = np.setdiff1d(np.arange(F), i)
        assert len(outside) == abs(o)
        assert (p2d.extra["corrupted"][c, outside] == NOT_VISIBLE).all()
        assert np.isnan(p2d.keypoints[c, outside]).all()
    with pytest.raises(InputError, match="3 values given for 4 cameras"):
        synthesize(motion.poses, rig_s9, NoiseModel.clean((0, 1, 2)))


def test_bad_arguments(motion, rig_s9):
    with pytest.raises(InputError, match=r"\(F, J, 3\)"):
        synthesize(motion.poses[..., :2], rig_s9)
    bad = motion.poses.copy()
    bad[3, 4, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        synthesize(bad, rig_s9)
    with pytest.raises(InputError, match="outlier_prob"):
        NoiseModel(outlier_prob=1.5)
    with pytest.raises(InputError, match="one name per frame"):
        synthesize(motion.poses, rig_s9, clip=["a", "b"])
    # another joint set: everything but the (side-dependent) swaps
    p2d, _ = synthesize(motion.poses[:50, :5], rig_s9, NoiseModel(swap_prob=0.5, outlier_prob=0.3))
    assert p2d.joint_names == [f"joint{j}" for j in range(5)]
    code = p2d.extra["corrupted"]
    assert not (code == SWAPPED).any() and (code == OUTLIER).mean() > 0.2


# --- CLI ------------------------------------------------------------------------------------


def test_cli_writes_both_files_with_exact_keys(tmp_path, cmu_bvh, bandai_bvh, rig_s9_path):
    out = tmp_path / "run"
    res = CliRunner().invoke(
        app,
        [
            "synth",
            "--bvh",
            str(bandai_bvh),
            "--bvh",
            str(cmu_bvh),
            "--rig",
            str(rig_s9_path),
            "-o",
            str(out),
            "--fps",
            "25",
            "--time-offsets",
            "0,3,-2,5",
            "--frames",
            "300",
            "--seed",
            "7",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "300 frames" in res.output and "54138969" in res.output
    with np.load(out / "poses2d.npz") as z:
        assert z["keypoints"].dtype == np.float32 and z["keypoints"].shape == (4, 300, 17, 2)
        assert z["scores"].dtype == np.float32 and z["scores"].shape == (4, 300, 17)
        assert z["image_size"].shape == (4, 2) and np.issubdtype(z["image_size"].dtype, np.integer)
        assert z["camera_names"].shape == (4,) and z["joint_names"].shape == (17,)
        assert z["K"].shape == (4, 3, 3) and z["dist"].shape == (4, 5) and float(z["fps"]) == 25
        assert z["corrupted"].dtype == np.uint8
    with np.load(out / "gt.npz") as z:
        assert z["poses3d_world"].dtype == np.float32 and z["poses3d_world"].shape == (300, 17, 3)
        assert z["clip"].shape == (300,)
        clips = list(dict.fromkeys(z["clip"].tolist()))
        assert clips == [bandai_bvh.stem, cmu_bvh.stem]
        assert json.loads(str(z["rig_json"]))["cameras"][0]["name"] == "54138969"
        np.testing.assert_array_equal(z["offsets"], [0, 3, -2, 5])
    p2d, gt = Poses2D.load(out / "poses2d.npz"), GroundTruth.load(out / "gt.npz")
    np.testing.assert_allclose(gt.rig.P, Rig.load(rig_s9_path).P)
    a = load_mocap(bandai_bvh, fps=25)
    np.testing.assert_allclose(gt.poses3d_world[: a.num_frames], a.poses, atol=1e-3)
    # same seed through the API gives the same file
    same, _ = synthesize(gt.poses3d_world, gt.rig, NoiseModel(time_offsets=(0, 3, -2, 5)), seed=7)
    np.testing.assert_allclose(p2d.keypoints, same.keypoints, atol=1e-3, equal_nan=True)


def test_cli_default_clip_no_intrinsics_and_score_ranges(tmp_path):
    out = tmp_path / "d"
    args = [
        "synth",
        "-o",
        str(out),
        "--frames",
        "100",
        "--no-intrinsics",
        "--sigma",
        "0",
        "--outliers",
        "0.3",
        "--clean-scores",
        "0.9,0.95",
        "--corrupted-scores",
        "0.2,0.3",
    ]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    with np.load(out / "poses2d.npz") as z:
        assert "K" not in z.files and "dist" not in z.files
        code, s = z["corrupted"], z["scores"]
        assert ((s[code == OUTLIER] >= 0.2) & (s[code == OUTLIER] <= 0.3)).all()
        assert ((s[code == CLEAN] >= 0.9) & (s[code == CLEAN] <= 0.95)).all()
        assert 0.2 < (code == OUTLIER).mean() < 0.4
    with np.load(out / "gt.npz") as z:
        assert set(z["clip"].tolist()) == {"cmu_131_01"}
        assert json.loads(str(z["noise_json"]))["score_corrupted"] == [0.2, 0.3]


def _no_output(out):
    return not out.exists() or not any(out.iterdir())


def test_cli_bad_input(tmp_path, rig_s9_path, bandai_bvh):
    runner = CliRunner()
    out = tmp_path / "o"
    res = runner.invoke(app, ["synth", "--bvh", str(tmp_path / "nope.bvh"), "-o", str(out)])
    assert res.exit_code == 2 and "nope.bvh: no such BVH file" in res.output and _no_output(out)

    rig = json.loads(rig_s9_path.read_text())
    rig["cameras"][2]["R"][0] = [2.0, 0.0, 0.0]
    bad_rig = tmp_path / "bad_rig.json"
    bad_rig.write_text(json.dumps(rig))
    res = runner.invoke(app, ["synth", "--bvh", str(bandai_bvh), "--rig", str(bad_rig), "-o", str(out)])
    assert res.exit_code == 2 and "camera 2" in res.output and "not a rotation" in res.output
    assert "Traceback" not in res.output and _no_output(out)

    res = runner.invoke(app, ["synth", "--bvh", str(bandai_bvh), "--time-offsets", "0,1", "-o", str(out)])
    assert res.exit_code == 2 and "2 values for 4 cameras" in res.output and _no_output(out)

    res = runner.invoke(app, ["synth", "--bvh", str(bandai_bvh), "--corrupted-scores", "0.5", "-o", str(out)])
    assert res.exit_code == 2 and "--corrupted-scores" in res.output and _no_output(out)

    odd = tmp_path / "odd.bvh"
    odd.write_text(bandai_bvh.read_text().replace("Hand_L", "Paw_L"))
    res = runner.invoke(app, ["synth", "--bvh", str(odd), "-o", str(out)])
    assert res.exit_code == 2 and "Hand_L" in res.output and _no_output(out)


def test_stages_project_views_and_corrupt(motion, rig_s9, noisy):
    """synthesize = project_views (true projections) + corrupt (the noise model's draws)."""
    from epipolarpose.synthetic import corrupt, corruption_stats, project_views

    p2d, gt = noisy
    clean, visible = project_views(motion.poses, rig_s9)
    np.testing.assert_array_equal(clean.astype(np.float32), gt.extra["keypoints2d"])
    sizes = np.array([c.image_size for c in rig_s9])
    kp, scores, code = corrupt(clean, visible, NoiseModel(), 3, sizes)
    np.testing.assert_array_equal(kp.astype(p2d.keypoints.dtype), p2d.keypoints)
    np.testing.assert_array_equal(code, p2d.extra["corrupted"])
    stats = corruption_stats(p2d)
    assert [s.camera for s in stats] == rig_s9.names
    assert all(0.03 < s.outlier < 0.07 and 0.9 < s.visible <= 1 for s in stats)


def test_synthesize_clips_checks_inputs(cmu_bvh, rig_s9, tmp_path):
    from epipolarpose.synthetic import synthesize_clips

    p2d, gt = synthesize_clips([cmu_bvh], rig_s9, None, fps=25, frames=30)
    assert p2d.num_frames == 30 and p2d.fps == 25 and float(gt.extra["fps"]) == 25
    with pytest.raises(InputError, match="no such BVH file"):
        synthesize_clips([tmp_path / "nope.bvh"], rig_s9)
    with pytest.raises(InputError, match="--frames must be positive"):
        synthesize_clips([cmu_bvh], rig_s9, frames=0)
