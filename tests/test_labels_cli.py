"""The label pipeline (label_poses) and the calibrate / triangulate / label commands."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from epipolarpose.camera import Rig
from epipolarpose.cli import app
from epipolarpose.formats import Labels, Poses2D
from epipolarpose.geometry.alignment import rotation_angle_deg
from epipolarpose.geometry.triangulation import triangulate_rig
from epipolarpose.labelling import LabelOptions, label_poses
from epipolarpose.sync import apply_offsets
from epipolarpose.synthetic import NoiseModel, default_rig, synthesize
from epipolarpose.world import camera_horizon

runner = CliRunner()


@pytest.fixture(scope="module")
def motion():
    from epipolarpose.mocap import DEFAULT_BVH, load_mocap

    return load_mocap(DEFAULT_BVH, fps=25).poses


@pytest.fixture(scope="module")
def rig():
    return default_rig()


@pytest.fixture(scope="module")
def clean(motion, rig):
    return synthesize(motion, rig, None)


@pytest.fixture(scope="module")
def noisy(motion, rig):
    return synthesize(motion, rig, NoiseModel(), seed=1)


def n_mpjpe(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean error after root-centring and the optimal per-pose scale (local, independent)."""
    ok = np.isfinite(pred).all((-1, -2))
    p = pred[ok] - pred[ok][:, :1]
    g = gt[ok] - gt[ok][:, :1]
    s = np.sum(p * g, (-1, -2)) / np.sum(p * p, (-1, -2))
    return float(np.linalg.norm(s[:, None, None] * p - g, axis=-1).mean())


def test_label_noise_free_exact(clean, rig):
    p2, gt = clean
    res = label_poses(p2, progress=False)
    gt_cam = rig.world_to_camera(gt.poses3d_world.astype(float))
    assert res.labels.valid.all()
    for c in range(len(rig)):
        assert n_mpjpe(res.labels.poses3d_camera[c].astype(float), gt_cam[c]) < 0.5
    for i in range(4):
        for j in range(i + 1, 4):
            Ra, _ = res.rig.relative_pose(i, j)
            Rb, _ = rig.relative_pose(i, j)
            assert rotation_angle_deg(Ra, Rb) < 1e-3
    assert res.summary["coverage"] == 1.0
    assert res.summary["swaps_undone"] == 0
    assert np.nanmax(res.labels.reprojection_error) < 0.05
    # a self-calibrated world is levelled (formats.md): z up from the person, floor at z = 0
    assert res.rig.world == "levelled"
    # no floor plane here, and the cameras agree on a horizon: our up, seen from every camera, is
    # exactly the true rig's horizon (world.camera_horizon; about 1° from the true vertical)
    assert "cameras' horizon" in res.summary.world
    horizon, _ = camera_horizon(rig)
    for c in range(len(rig)):
        np.testing.assert_allclose(res.rig[c].R[:, 2], rig[c].R @ horizon, atol=1e-6)
    assert np.degrees(np.arccos(horizon[2])) < 1.5
    np.testing.assert_allclose(
        res.rig[0].world_to_camera(res.labels.poses3d_world.astype(float)),
        res.labels.poses3d_camera[0],
        atol=1e-4,
    )
    X = res.labels.poses3d_world.astype(float)
    up = np.median(X[:, 10] - X[:, [3, 6]].mean(1), axis=0)
    true_up = np.median(gt.poses3d_world[:, 10] - gt.poses3d_world[:, [3, 6]].mean(1), axis=0)
    assert up[2] / np.linalg.norm(up) > np.cos(np.radians(0.5)) * true_up[2] / np.linalg.norm(true_up)
    assert 0 < np.percentile(X[:, [3, 6], 2], 5) < 0.1 * np.median(X[:, 10, 2])  # ankles just above the floor


def test_label_noisy_beats_naive_dlt_with_true_rig(noisy, rig):
    p2, gt = noisy
    res = label_poses(p2, progress=False)
    gt0 = rig.world_to_camera(gt.poses3d_world.astype(float))[0]
    ours = n_mpjpe(res.labels.poses3d_camera[0].astype(float), gt0)
    X, _, _ = triangulate_rig(rig, p2.keypoints, p2.scores, options=None)
    naive = n_mpjpe(rig.world_to_camera(X)[0], gt0)
    assert ours < 0.8 * naive
    assert res.summary["swaps_undone"] > 0 and res.summary["views_rejected"] > 0
    assert 0.9 < res.summary["coverage"] <= 1.0
    # invalid joints are NaN, never filled
    assert np.isnan(res.labels.poses3d_world[~res.labels.valid]).all()
    assert np.isfinite(res.labels.poses3d_world[res.labels.valid]).all()


def test_label_per_frame_and_known_rig(clean, rig):
    p2, gt = clean
    sub = Poses2D(
        p2.keypoints[:, ::5], p2.scores[:, ::5], p2.image_size, p2.camera_names, K=p2.K, dist=p2.dist
    )
    gt_w = gt.poses3d_world[::5].astype(float)
    res = label_poses(sub, options=LabelOptions(mode="per-frame"), progress=False)
    gt0 = rig.world_to_camera(gt_w)[0]
    assert n_mpjpe(res.labels.poses3d_camera[0].astype(float), gt0) < 3.0  # OpenCV 8-point + RANSAC per frame
    # known rig: labels in the rig's world frame and mm
    res = label_poses(sub, rig, progress=False)
    np.testing.assert_allclose(res.labels.poses3d_world, gt_w, atol=0.05)
    assert res.rig.units == "mm"


def test_offsets_are_applied_and_recorded(motion, rig):
    offsets = (0, 3, -2, 5)
    p2s, gt = synthesize(motion[:120], rig, NoiseModel.clean(time_offsets=offsets))
    # camera c's frame i shows reference time i + offsets[c]: re-indexing aligns it
    aligned = apply_offsets(p2s, offsets)
    truth = rig.project(gt.poses3d_world[10:100].astype(float))
    np.testing.assert_allclose(aligned.keypoints[:, 10:100], truth, atol=1e-3)
    res = label_poses(p2s, rig=rig, offsets=np.asarray(offsets), progress=False)
    np.testing.assert_array_equal(res.labels.extra["offsets"], offsets)
    np.testing.assert_allclose(res.labels.poses3d_world[10:100], gt.poses3d_world[10:100], atol=0.05)


def test_cli_known_offsets(tmp_path, motion, rig):
    offsets = (0, 3, -2, 5)
    p2s, gt = synthesize(motion[:120], rig, NoiseModel.clean(time_offsets=offsets))
    src, out = tmp_path / "p.npz", tmp_path / "labels.npz"
    p2s.save(src)
    rig_path = tmp_path / "rig.json"
    rig.save(rig_path)
    r = runner.invoke(
        app, ["label", str(src), "-o", str(out), "--rig", str(rig_path), "--offsets", "0,3,-2,5", "-q"]
    )
    assert r.exit_code == 0, r.output
    labels = Labels.load(out)
    np.testing.assert_array_equal(labels.extra["offsets"], offsets)
    np.testing.assert_allclose(labels.poses3d_world[10:100], gt.poses3d_world[10:100], atol=0.05)
    for args, message in [
        (["--offsets", "0,3"], "offsets: 2 values given for 4 cameras"),
        (["--offsets", "0,a,1,2"], "--offsets must be comma-separated integers"),
        (["--offsets", "0,3,-2,5", "--sync", "auto"], "either --offsets or --sync auto"),
        (["--offsets", "0,3,-2,5", "--cameras", ""], "no camera named; the detections have"),
    ]:
        out.unlink(missing_ok=True)
        _bad(tmp_path, ["label", str(src), "-o", str(out), "--rig", str(rig_path), *args], message)
        assert not out.exists()


def test_joints_far_off_the_body_are_dropped(motion, clean):
    from epipolarpose.quality import off_body

    X = motion.astype(float)
    valid = np.ones(X.shape[:2], bool)
    assert not off_body(X, valid).any()  # a real body, arms and legs swinging
    Y = X.copy()
    size = np.median(np.linalg.norm(X - np.median(X, axis=1, keepdims=True), axis=-1))
    Y[40, 3] += [
        0,
        0,
        20 * size,
    ]  # a stray foot (two nearly parallel views); a foot is far from the centre anyway
    Y[41, 16] += [6 * size, 0, 0]
    got = off_body(Y, valid)
    assert sorted(map(tuple, np.argwhere(got))) == [(40, 3), (41, 16)]
    few = valid.copy()
    few[40, 6:] = False  # 6 valid joints are judged, 5 are not
    assert off_body(Y, few)[40, 3]
    few[40, 5] = False
    assert not off_body(Y, few)[40, 3]
    # the labels of clean detections lose nothing
    p2, _ = clean
    assert label_poses(p2).summary.off_body == 0


def test_rig_with_wrong_camera_count(clean, rig):
    p2, _ = clean
    with pytest.raises(Exception, match="rig has 3 cameras but the detections have 4"):
        label_poses(p2, rig=Rig(rig.cameras[:3]), progress=False)


# --- CLI ---------------------------------------------------------------------------------------
def test_cli_label_writes_formats(tmp_path, noisy):
    p2, _ = noisy
    src = tmp_path / "poses2d.npz"
    p2.save(src)
    out, rig_out, summ = tmp_path / "labels.npz", tmp_path / "rig.json", tmp_path / "summary.json"
    r = runner.invoke(
        app, ["label", str(src), "-o", str(out), "--rig-out", str(rig_out), "--summary", str(summ)]
    )
    assert r.exit_code == 0, r.output
    assert "reproj median px" in r.output and "coverage" in r.output
    with np.load(out) as z:
        C, F, J = p2.keypoints.shape[:3]
        assert z["poses3d_world"].dtype == np.float32 and z["poses3d_world"].shape == (F, J, 3)
        assert z["poses3d_camera"].dtype == np.float32 and z["poses3d_camera"].shape == (C, F, J, 3)
        assert z["valid"].dtype == bool and z["valid"].shape == (F, J)
        assert z["reprojection_error"].dtype == np.float32 and z["reprojection_error"].shape == (C, F, J)
    d = json.loads(rig_out.read_text())
    assert d["units"] == "arbitrary"
    est = Rig.load(rig_out)
    assert est.world == "levelled" and d["world"] == "levelled"  # formats.md: z up, floor at z = 0
    assert est[0].center[2] > 0  # camera 0 stands above the floor
    assert json.loads(summ.read_text())["frames"] == F
    assert not list(tmp_path.glob(".*"))  # no temporary files left


def test_cli_calibrate_then_triangulate(tmp_path, clean, rig):
    p2, gt = clean
    src = tmp_path / "poses2d.npz"
    p2.save(src)
    rig_path = tmp_path / "rig.json"
    h = 1500.0
    r = runner.invoke(app, ["calibrate", str(src), "-o", str(rig_path), "--subject-height", str(h)])
    assert r.exit_code == 0, r.output
    est = Rig.load(rig_path)
    assert est.units == "mm"
    out = tmp_path / "labels.npz"
    r = runner.invoke(app, ["triangulate", str(src), "--rig", str(rig_path), "-o", str(out)])
    assert r.exit_code == 0, r.output
    lab = Labels.load(out)
    assert lab.valid.all()
    gt0 = rig.world_to_camera(gt.poses3d_world.astype(float))[0]
    assert n_mpjpe(lab.poses3d_camera[0].astype(float), gt0) < 0.5


def test_rig_or_intrinsics_of_other_cameras_refused_and_matched_by_name(tmp_path, clean, rig):
    from dataclasses import replace as dc_replace

    from epipolarpose.geometry.observations import apply_intrinsics

    p2, _ = clean
    bare = Poses2D(p2.keypoints, p2.scores, p2.image_size, p2.camera_names)
    # K.json in another order: matched by name
    shuffled = Rig([rig.cameras[i] for i in (2, 0, 3, 1)])
    np.testing.assert_array_equal(apply_intrinsics(bare, shuffled).K, rig.K)
    # a camera calibrated for portrait images, applied to landscape detections
    w, h = rig.cameras[1].image_size
    turned = Rig([dc_replace(c, image_size=(h + 400, w)) if i == 1 else c for i, c in enumerate(rig.cameras)])
    name = rig.cameras[1].name
    with pytest.raises(Exception, match=rf"intrinsics camera '{name}' is for {h + 400}x{w} images but"):
        apply_intrinsics(bare, turned)
    src, path, out = tmp_path / "p.npz", tmp_path / "turned.json", tmp_path / "labels.npz"
    bare.save(src)
    turned.save(path)
    _bad(tmp_path, ["label", str(src), "-o", str(out), "--rig", str(path)], f"rig camera '{name}' is for")
    _bad(tmp_path, ["label", str(src), "-o", str(out), "--intrinsics", str(path)], "its K does not apply")
    _bad(tmp_path, ["triangulate", str(src), "-o", str(out), "--rig", str(path)], "its K does not apply")
    assert not out.exists()


def test_cli_intrinsics_file(tmp_path, clean, rig):
    p2, _ = clean
    bare = Poses2D(p2.keypoints, p2.scores, p2.image_size, p2.camera_names)  # no K in the npz
    src = tmp_path / "poses2d.npz"
    bare.save(src)
    k_json = tmp_path / "K.json"
    k_json.write_text(json.dumps({"cameras": [c.to_dict(extrinsics=False) for c in rig]}))
    out = tmp_path / "labels.npz"
    r = runner.invoke(
        app,
        [
            "label",
            str(src),
            "-o",
            str(out),
            "--intrinsics",
            str(k_json),
            "--rig-out",
            str(tmp_path / "r.json"),
        ],
    )
    assert r.exit_code == 0, r.output
    est = Rig.load(tmp_path / "r.json")
    np.testing.assert_allclose(est.K, rig.K)  # given K is kept (no focal refinement)


def _bad(tmp_path, args, message):
    r = runner.invoke(app, args)
    assert r.exit_code == 2, r.output
    assert message in r.output
    assert "Traceback" not in r.output
    return r


def test_cli_bad_inputs_no_outputs(tmp_path, clean, rig):
    p2, _ = clean
    out, rig_out = tmp_path / "labels.npz", tmp_path / "rig.json"
    # a camera that never sees the person
    blind = Poses2D(
        p2.keypoints.copy(), p2.scores.copy(), p2.image_size, p2.camera_names, K=p2.K, dist=p2.dist
    )
    blind.keypoints[1] = np.nan
    blind.scores[1] = 0
    src = tmp_path / "blind.npz"
    blind.save(src)
    _bad(
        tmp_path,
        ["label", str(src), "-o", str(out), "--rig-out", str(rig_out)],
        "camera 1 ('55011271') never sees the person",
    )
    _bad(tmp_path, ["calibrate", str(src), "-o", str(rig_out)], "never sees the person")
    # a rig whose camera count does not match
    good = tmp_path / "good.npz"
    p2.save(good)
    small = tmp_path / "small.json"
    Rig(rig.cameras[:2]).save(small)
    _bad(
        tmp_path,
        ["label", str(good), "-o", str(out), "--rig", str(small)],
        "rig has 2 cameras but the detections have 4",
    )
    _bad(tmp_path, ["triangulate", str(good), "--rig", str(small), "-o", str(out)], "rig has 2 cameras")
    # missing file, unknown mode
    _bad(tmp_path, ["label", str(tmp_path / "nope.npz"), "-o", str(out)], "no such file")
    _bad(
        tmp_path,
        ["label", str(good), "-o", str(out), "--mode", "fast"],
        "mode must be 'sequence' or 'per-frame'",
    )
    assert not out.exists() and not rig_out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blind.npz", "good.npz", "small.json"]


def test_cli_all_nan_frames_are_invalid(tmp_path, clean):
    p2, _ = clean
    kp, sc = p2.keypoints.copy(), p2.scores.copy()
    kp[:, 20:30] = np.nan
    sc[:, 20:30] = 0
    src = tmp_path / "p.npz"
    Poses2D(kp, sc, p2.image_size, p2.camera_names, K=p2.K, dist=p2.dist).save(src)
    out = tmp_path / "labels.npz"
    r = runner.invoke(app, ["label", str(src), "-o", str(out)])
    assert r.exit_code == 0, r.output
    lab = Labels.load(out)
    assert not lab.valid[20:30].any() and np.isnan(lab.poses3d_world[20:30]).all()
    assert lab.valid[:20].all() and lab.valid[30:].all()


def test_cli_degenerate_pairs_exit_2(tmp_path, rng):
    from scipy.spatial.transform import Rotation

    from epipolarpose.camera import Camera

    K = np.array([[1000.0, 0, 500], [0, 1000, 500], [0, 0, 1]])
    R2 = Rotation.from_rotvec([0, 0.2, 0]).as_matrix()
    same_place = Rig([Camera(K=K, name="a"), Camera(K=K, R=R2, name="b")])
    X = rng.normal(size=(40, 17, 3)) * 300 + [0, 0, 5000]
    p2, _ = synthesize(X, same_place, None)
    src = tmp_path / "rot.npz"
    p2.save(src)
    out, rig_out = tmp_path / "labels.npz", tmp_path / "rig.json"
    _bad(
        tmp_path,
        ["label", str(src), "-o", str(out), "--rig-out", str(rig_out)],
        "camera pair 0-1 ('a', 'b'): zero baseline",
    )
    # two cameras that share only 7 joints
    moved = Rig([Camera(K=K, name="a"), Camera(K=K, t=np.array([-1000.0, 0, 0]), name="b")])
    p2, _ = synthesize(X[:1, :7], moved, None)
    src = tmp_path / "few.npz"
    p2.save(src)
    _bad(
        tmp_path,
        ["calibrate", str(src), "-o", str(rig_out)],
        "camera pair 0-1 ('a', 'b'): only 7 usable correspondences",
    )
    assert not out.exists() and not rig_out.exists()


def test_the_labelling_path_imports_no_heavy_packages():
    """`epipolarpose label` starts fast: the CLI and the labelling run import no torch,
    lightning, matplotlib or scikit-learn (issue 13)."""
    import subprocess
    import sys

    code = (
        "import sys, epipolarpose.cli, epipolarpose.labelling\n"
        "print(','.join(m for m in ('torch', 'lightning', 'matplotlib', 'sklearn', 'mediapipe') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
