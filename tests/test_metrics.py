"""Pose metrics: hand-computed cases, invariances, missing joints, breakdowns, and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.spatial.transform import Rotation
from typer.testing import CliRunner

from epipolarpose.cli import app
from epipolarpose.metrics import (
    auc,
    evaluate_poses,
    joint_errors,
    mpjpe,
    n_mpjpe,
    npck,
    p_mpjpe,
    pck,
)


def _poses(rng: np.random.Generator, n: int = 8) -> np.ndarray:
    return rng.normal(scale=300, size=(n, 17, 3))


def test_hand_computed_case():
    gt = np.array([[0, 0, 0], [100, 0, 0], [0, 100, 0]], float)
    pred = gt.copy()
    pred[1] += [30, 40, 0]  # 50 mm error on joint 1
    np.testing.assert_allclose(joint_errors(pred, gt), [0, 50, 0])
    assert mpjpe(pred, gt) == pytest.approx(50 / 3)
    assert pck(pred, gt, threshold=40) == pytest.approx(2 / 3)
    assert pck(pred, gt, threshold=50) == pytest.approx(1.0)
    assert auc(pred, gt, thresholds=np.array([0.0, 49.0, 100.0])) == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
    # root-relative by default: moving the root moves every joint's error
    pred2 = gt.copy()
    pred2[0] += [0, 0, 60]
    np.testing.assert_allclose(joint_errors(pred2, gt), [0, 60, 60])
    np.testing.assert_allclose(joint_errors(pred2, gt, root=None), [60, 0, 0])
    # optimal scale: pred = gt / 2 is perfect after scaling
    assert n_mpjpe(gt / 2, gt) == pytest.approx(0, abs=1e-9)
    assert mpjpe(gt / 2, gt) == pytest.approx((0 + 50 + 50) / 3)


def test_p_mpjpe_matches_reference_implementation(rng):
    """Against the widely used per-pose formulation (VideoPose3D's ``p_mpjpe``), written here
    independently with normalised point sets."""
    gt = _poses(rng)
    pred = gt @ Rotation.random(random_state=5).as_matrix().T * 0.7 + rng.normal(scale=50, size=gt.shape)
    mu_x, mu_y = gt.mean(1, keepdims=True), pred.mean(1, keepdims=True)
    x0, y0 = gt - mu_x, pred - mu_y
    nx = np.sqrt((x0**2).sum((1, 2), keepdims=True))
    ny = np.sqrt((y0**2).sum((1, 2), keepdims=True))
    x0, y0 = x0 / nx, y0 / ny
    U, S, Vt = np.linalg.svd(np.matmul(x0.transpose(0, 2, 1), y0))
    V = Vt.transpose(0, 2, 1)
    R = V @ U.transpose(0, 2, 1)
    sign = np.sign(np.expand_dims(np.linalg.det(R), 1))
    V[:, :, -1] *= sign
    S[:, -1] *= sign.flatten()
    R = V @ U.transpose(0, 2, 1)
    a = np.expand_dims(S.sum(1, keepdims=True), 2) * nx / ny
    t = mu_x - a * mu_y @ R
    aligned = a * pred @ R + t
    ref = np.linalg.norm(aligned - gt, axis=-1).mean()
    assert p_mpjpe(pred, gt) == pytest.approx(ref, rel=1e-9)


def test_invariances(rng):
    gt = _poses(rng)
    pred = gt + rng.normal(scale=40, size=gt.shape)
    base = {f.__name__: f(pred, gt) for f in (mpjpe, n_mpjpe, p_mpjpe)}
    R = Rotation.random(8, random_state=2).as_matrix()
    moved = 1.7 * pred @ np.swapaxes(R, -1, -2) + rng.normal(scale=500, size=(8, 1, 3))
    assert p_mpjpe(moved, gt) == pytest.approx(base["p_mpjpe"], rel=1e-9)
    assert mpjpe(moved, gt) > 2 * base["mpjpe"]
    # scaling about the root: N-MPJPE and NPCK unchanged, MPJPE and PCK change
    root = pred[:, :1]
    scaled = root + 0.5 * (pred - root)
    assert n_mpjpe(scaled, gt) == pytest.approx(base["n_mpjpe"], rel=1e-9)
    assert npck(scaled, gt, threshold=60) == pytest.approx(npck(pred, gt, threshold=60))
    assert mpjpe(scaled, gt) > 2 * base["mpjpe"]
    assert pck(scaled, gt, threshold=60) < pck(pred, gt, threshold=60)
    # translating a prediction changes nothing root-relative
    shifted = pred + np.array([1000.0, -200.0, 50.0])
    assert mpjpe(shifted, gt) == pytest.approx(base["mpjpe"], rel=1e-9)
    # ordering of the three errors for a noisy prediction
    assert base["p_mpjpe"] <= base["n_mpjpe"] <= base["mpjpe"]


def test_missing_joints_and_mask(rng):
    gt = _poses(rng, 4)
    pred = gt + rng.normal(scale=30, size=gt.shape)
    errs = joint_errors(pred, gt)
    p = pred.copy()
    p[1, 5] = np.nan  # one missing joint
    p[2, 0] = np.nan  # missing root: the whole pose cannot be root-centred
    e = joint_errors(p, gt)
    assert np.isnan(e[1, 5]) and np.isfinite(np.delete(e[1], 5)).all()
    assert np.isnan(e[2]).all()
    keep = np.isfinite(e)
    assert mpjpe(p, gt) == pytest.approx(errs[keep].mean())
    mask = np.ones((4, 17), bool)
    mask[:, 16] = False
    assert mpjpe(pred, gt, mask=mask) == pytest.approx(errs[:, :16].mean())
    # P-MPJPE of a masked joint set equals P-MPJPE computed on the remaining joints only
    assert p_mpjpe(pred, gt, mask=mask) == pytest.approx(p_mpjpe(pred[:, :16], gt[:, :16]))
    r = evaluate_poses(p, gt)
    assert r["summary"]["n_joints_evaluated"] == 4 * 17 - 1 - 17
    assert r["summary"]["n_poses_evaluated"] == 3
    assert r["summary"]["n_joints_total"] == 68


def test_evaluate_poses_breakdowns(rng):
    from epipolarpose.pss import PSSModel

    gt = _poses(rng, 12)
    pred = gt + rng.normal(scale=30, size=gt.shape)
    clips = np.array(["a"] * 5 + ["b"] * 7)
    model = PSSModel(
        gt[:4, :, :].reshape(4, -1) / np.linalg.norm(gt[:4].reshape(4, -1), axis=-1, keepdims=True)
    )
    r = evaluate_poses(pred, gt, clips=clips, pss_model=model)
    json.dumps(r)  # JSON-ready
    s = r["summary"]
    assert s["mpjpe"] == pytest.approx(mpjpe(pred, gt))
    assert s["n_mpjpe"] == pytest.approx(n_mpjpe(pred, gt))
    assert s["p_mpjpe"] == pytest.approx(p_mpjpe(pred, gt))
    assert s["pck150"] == pytest.approx(pck(pred, gt))
    assert s["auc"] == pytest.approx(auc(pred, gt))
    assert s["npck150"] == pytest.approx(npck(pred, gt))
    assert s["pss@4"] == pytest.approx(model.score(pred, gt))
    e = joint_errors(pred, gt)
    assert r["per_joint"]["LElbow"]["mpjpe"] == pytest.approx(e[:, 12].mean())
    assert r["per_clip"]["b"]["mpjpe"] == pytest.approx(mpjpe(pred[5:], gt[5:]))
    assert r["per_clip"]["a"]["n_poses"] == 5
    assert r["per_clip"]["a"]["pss@4"] == pytest.approx(model.score(pred[:5], gt[:5]))


# --- CLI --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gt_file(tmp_path_factory, cmu_bvh, rig_s9):
    from epipolarpose.formats import GroundTruth
    from epipolarpose.mocap import load_mocap

    m = load_mocap(cmu_bvh, fps=30)
    path = tmp_path_factory.mktemp("eval") / "gt.npz"
    GroundTruth(m.poses[:240], np.array(["131_01"] * 120 + ["x"] * 120), rig_s9).save(path)
    return path


def _invoke(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_cli_gt_against_itself_is_perfect(gt_file, tmp_path):
    out = tmp_path / "m.json"
    res = _invoke("evaluate", gt_file, gt_file, "-o", out)
    assert res.exit_code == 0, res.output
    r = json.loads(out.read_text())
    s = r["summary"]
    for key in ("mpjpe", "n_mpjpe", "p_mpjpe"):
        assert s[key] == 0.0
    for key in ("pck150", "auc", "npck150", "pss@50", "pss@100"):
        assert s[key] == 1.0
    assert r["pss_centroids"] == "in-sample"
    assert set(r["per_clip"]) == {"131_01", "x"}
    assert "MPJPE" in res.output and "in-sample" in res.output and "LWrist" in res.output


def test_cli_labels_in_camera_frames_arbitrary_units(gt_file, tmp_path, rng):
    """Self-calibrated labels: each camera's frame, arbitrary scale. N-MPJPE / P-MPJPE are the
    noise level; MPJPE in mm is flagged as meaningless."""
    from epipolarpose.formats import GroundTruth, Labels
    from epipolarpose.metrics import n_mpjpe as nm

    g = GroundTruth.load(gt_file)
    noisy = g.poses3d_world + rng.normal(scale=10, size=g.poses3d_world.shape)
    cam = g.rig.world_to_camera(noisy) / 3000.0
    F, J = noisy.shape[:2]
    valid = np.ones((F, J), bool)
    valid[:, 13] = False
    rig_est = g.rig.in_camera_frame(0)
    rig_est.units = "arbitrary"
    Labels(cam[0], cam, valid, np.zeros(cam.shape[:3]), extra={"rig_json": np.array(rig_est.to_json())}).save(
        tmp_path / "labels.npz"
    )
    out = tmp_path / "m.json"
    res = _invoke("evaluate", tmp_path / "labels.npz", gt_file, "-o", out, "--camera", "2")
    assert res.exit_code == 0, res.output
    r = json.loads(out.read_text())
    gt_cam = g.rig.world_to_camera(g.poses3d_world)[2]
    expected = nm(cam[2], gt_cam, mask=valid)
    assert r["summary"]["n_mpjpe"] == pytest.approx(expected, rel=1e-5)
    assert 5 < r["summary"]["n_mpjpe"] < 25
    assert r["summary"]["n_joints_evaluated"] == F * (J - 1)
    assert r["per_joint"]["LWrist"]["mpjpe"] is None
    assert any("arbitrary" in w for w in r["warnings"])
    assert "arbitrary" in res.output
    # all cameras: per-camera breakdown
    res = _invoke("evaluate", tmp_path / "labels.npz", gt_file, "-o", out)
    r = json.loads(out.read_text())
    assert set(r["per_camera"]) == {"0", "1", "2", "3"}
    assert r["summary"]["n_poses"] == 4 * F


def test_cli_with_fitted_centroids(gt_file, tmp_path):
    res = _invoke("pss", "fit", gt_file, "-o", tmp_path / "c.npz", "--k", "20", "--k", "30")
    assert res.exit_code == 0, res.output
    files = sorted(p.name for p in tmp_path.glob("c_k*.npz"))
    assert files == ["c_k20.npz", "c_k30.npz"]
    out = tmp_path / "m.json"
    res = _invoke("evaluate", gt_file, gt_file, "-c", tmp_path / "c_k20.npz", "-o", out)
    assert res.exit_code == 0, res.output
    r = json.loads(out.read_text())
    assert r["summary"]["pss@20"] == 1.0 and "pss@50" not in r["summary"]
    assert r["pss_centroids"] == [str(tmp_path / "c_k20.npz")]


@pytest.mark.parametrize(
    "case, message",
    [
        ("joints", "joint counts differ"),
        ("frames", "frame counts differ: "),
        ("nan_gt", "contains NaN"),
        ("missing_key", "missing key 'poses3d_camera', 'poses3d_world' or 'poses3d'"),
        ("valid_shape", "key 'valid' has shape"),
    ],
)
def test_cli_bad_input(gt_file, tmp_path, case, message):
    from epipolarpose.formats import GroundTruth

    g = GroundTruth.load(gt_file)
    P = g.poses3d_world
    gt_path = gt_file
    if case == "joints":
        np.savez(tmp_path / "pred.npz", poses3d=P[:, :16])
    elif case == "frames":
        np.savez(tmp_path / "pred.npz", poses3d=P[:100])
    elif case == "nan_gt":
        bad = P.copy()
        bad[7, 3] = np.nan
        np.savez(tmp_path / "gtbad.npz", poses3d=bad)
        np.savez(tmp_path / "pred.npz", poses3d=P)
        gt_path = tmp_path / "gtbad.npz"
    elif case == "missing_key":
        np.savez(tmp_path / "pred.npz", poses=P)
    elif case == "valid_shape":
        np.savez(tmp_path / "pred.npz", poses3d=P, valid=np.ones((3, 17), bool))
    out = tmp_path / "m.json"
    res = _invoke("evaluate", tmp_path / "pred.npz", gt_path, "-o", out)
    assert res.exit_code == 2
    assert message in res.output
    assert "Traceback" not in res.output
    assert not out.exists()
