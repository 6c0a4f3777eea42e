"""Pose Structure Score: normalisation, assignment, fitting, files, the paper's point, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.spatial.distance import cdist
from typer.testing import CliRunner

from epipolarpose.cli import app
from epipolarpose.errors import InputError
from epipolarpose.metrics import mpjpe
from epipolarpose.pss import PSSModel, normalize_poses

CLIPS = (
    "cmu/131_01.bvh",
    "cmu/131_02.bvh",
    "bandai1/dataset-1_walk_normal_001.bvh",
    "bandai1/dataset-1_dash_normal_001.bvh",
    "bandai1/dataset-1_kick_normal_001.bvh",
    "bandai1/dataset-1_punch_normal_001.bvh",
)


@pytest.fixture(scope="module")
def mocap_poses(shared):
    """~1400 real poses (mm, H36M-17) from CMU and Bandai clips at 30 fps."""
    from epipolarpose.mocap import load_mocap

    return np.concatenate([load_mocap(shared / "data/mocap" / c, fps=30).poses for c in CLIPS])


def test_normalize_poses(rng):
    P = rng.normal(scale=300, size=(5, 17, 3))
    x = normalize_poses(P)
    assert x.shape == (5, 51)
    np.testing.assert_allclose(np.linalg.norm(x, axis=-1), 1.0)
    np.testing.assert_allclose(x.reshape(5, 17, 3)[:, 0], 0.0)
    # invariant to translation and positive scale, as in the paper
    np.testing.assert_allclose(normalize_poses(2.5 * P + [100.0, -40.0, 7.0]), x, atol=1e-12)
    P[1, 4] = np.nan
    assert np.isnan(normalize_poses(P)[1]).all()


def test_assign_matches_brute_force_and_chunks(rng):
    C = normalize_poses(rng.normal(size=(30, 17, 3)))
    m = PSSModel(C)
    P = rng.normal(scale=300, size=(3, 500, 17, 3))
    ref = cdist(normalize_poses(P).reshape(-1, 51), C).argmin(-1).reshape(3, 500)
    np.testing.assert_array_equal(m.assign(P), ref)
    np.testing.assert_array_equal(m.assign(P, chunk=7), ref)
    P[0, 3, 2] = np.nan
    assert m.assign(P)[0, 3] == -1


def test_score_counts_and_nan_policy(rng):
    C = normalize_poses(rng.normal(size=(10, 17, 3)))
    m = PSSModel(C)
    gt = rng.normal(scale=300, size=(40, 17, 3))
    assert m.score(gt, gt) == 1.0
    pred = gt.copy()
    pred[:4, 5] = np.nan  # missing prediction joints: a miss
    gt2 = gt.copy()
    gt2[-2:, 0] = np.nan  # GT poses with NaN: left out
    d = m.score_details(pred, gt2)
    assert d == {"pss": pytest.approx(34 / 38), "k": 10, "n_scored": 38, "n_gt_nan": 2, "n_pred_nan": 4}
    with pytest.raises(InputError, match="expected"):
        m.assign(gt[:, :16])


def test_fit_recovers_clusters_and_is_reproducible(rng):
    base = rng.normal(scale=300, size=(5, 17, 3))
    poses = np.repeat(base, 40, axis=0) + rng.normal(scale=3, size=(200, 17, 3))
    poses *= rng.uniform(0.5, 2, (200, 1, 1))  # scale does not matter after normalisation
    m = PSSModel.fit(poses, k=5, seed=0)
    labels = m.assign(poses).reshape(5, 40)
    assert all(len(set(row)) == 1 for row in labels)  # one cluster per base pose
    assert len(set(labels[:, 0])) == 5
    np.testing.assert_array_equal(PSSModel.fit(poses, k=5, seed=0).centroids, m.centroids)
    with pytest.raises(InputError, match="at least k=50"):
        PSSModel.fit(poses[:20], k=50)


def test_save_load_round_trip_and_validation(tmp_path, rng):
    m = PSSModel(normalize_poses(rng.normal(size=(8, 17, 3))), n_train=123)
    m.save(tmp_path / "c.npz")
    m2 = PSSModel.load(tmp_path / "c.npz")
    assert m2.k == 8 and m2.n_train == 123 and m2.joint_names == m.joint_names
    np.testing.assert_array_equal(m2.centroids, m.centroids)
    d = dict(np.load(tmp_path / "c.npz"))
    np.savez(tmp_path / "bad_norm.npz", **{**d, "normalization": np.array("bbox")})
    with pytest.raises(InputError, match="normalization"):
        PSSModel.load(tmp_path / "bad_norm.npz")
    np.savez(tmp_path / "bad_k.npz", **{**d, "k": np.int64(9)})
    with pytest.raises(InputError, match="shape"):
        PSSModel.load(tmp_path / "bad_k.npz")
    np.savez(tmp_path / "no_c.npz", **{k: v for k, v in d.items() if k != "centroids"})
    with pytest.raises(InputError, match="missing key 'centroids'"):
        PSSModel.load(tmp_path / "no_c.npz")


def _bend_knee_backwards(P: np.ndarray, hip: int = 1, knee: int = 2, ankle: int = 3) -> np.ndarray:
    """Rotate the knee 180° about the hip-ankle axis: same bone lengths, knee bent the wrong way."""
    a, b, k = P[:, hip], P[:, ankle], P[:, knee]
    u = (b - a) / np.linalg.norm(b - a, axis=-1, keepdims=True)
    foot = a + ((k - a) * u).sum(-1, keepdims=True) * u
    Q = P.copy()
    Q[:, knee] = 2 * foot - k
    return Q


def test_pss_separates_equal_mpjpe_predictions(mocap_poses, rng):
    """The paper's point: equal MPJPE, different structure -> different PSS."""
    from epipolarpose.skeleton import bone_lengths

    model = PSSModel.fit(mocap_poses, k=50, seed=0)
    P = mocap_poses
    a, b, k = P[:, 1], P[:, 3], P[:, 2]
    u = (b - a) / np.linalg.norm(b - a, axis=-1, keepdims=True)
    flexion = np.linalg.norm((k - a) - ((k - a) * u).sum(-1, keepdims=True) * u, axis=-1)
    gt = P[flexion > 60]  # clearly bent right knee
    assert len(gt) > 500
    wrong = _bend_knee_backwards(gt)
    np.testing.assert_allclose(bone_lengths(wrong), bone_lengths(gt), atol=1e-6)
    # same per-pose MPJPE, spread over all 16 non-root joints in random directions
    total = np.linalg.norm(wrong - gt, axis=-1).sum(-1)
    v = rng.normal(size=gt.shape)
    v /= np.linalg.norm(v, axis=-1, keepdims=True)
    v[:, 0] = 0
    jitter = gt + v * (total / 16)[:, None, None]
    assert mpjpe(wrong, gt) == pytest.approx(mpjpe(jitter, gt), rel=1e-9)
    pss_wrong, pss_jitter = model.score(wrong, gt), model.score(jitter, gt)
    assert pss_jitter > 0.95
    assert pss_wrong < pss_jitter - 0.1


def test_cli_pss_fit_score(tmp_path, mocap_poses, rig_s9):
    from epipolarpose.formats import GroundTruth

    gt = mocap_poses[:400]
    GroundTruth(gt, np.array(["c"] * 400), rig_s9).save(tmp_path / "gt.npz")
    runner = CliRunner()
    res = runner.invoke(
        app, ["pss", "fit", str(tmp_path / "gt.npz"), "-o", str(tmp_path / "pss_k{k}.npz"), "--k", "20"]
    )
    assert res.exit_code == 0, res.output
    m = PSSModel.load(tmp_path / "pss_k20.npz")
    assert m.k == 20 and m.n_train == 4 * 400  # --frame auto: every camera's frame
    np.savez(tmp_path / "pred.npz", poses3d_camera=rig_s9.world_to_camera(_bend_knee_backwards(gt)))
    out = tmp_path / "s.json"
    res = runner.invoke(
        app,
        [
            "pss",
            "score",
            str(tmp_path / "pred.npz"),
            str(tmp_path / "gt.npz"),
            "-c",
            str(tmp_path / "pss_k20.npz"),
            "-o",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    r = json.loads(out.read_text())["scores"][0]
    cam = rig_s9.world_to_camera(gt).reshape(-1, 17, 3)
    assert r["pss"] == pytest.approx(
        m.score(rig_s9.world_to_camera(_bend_knee_backwards(gt)).reshape(-1, 17, 3), cam)
    )
    assert r["n_scored"] == 1600 and "PSS@20" in res.output
    # bad input: centroids for another joint count, no output written
    PSSModel(normalize_poses(rng_poses(16))).save(tmp_path / "c16.npz")
    out2 = tmp_path / "s2.json"
    res = runner.invoke(
        app,
        [
            "pss",
            "score",
            str(tmp_path / "pred.npz"),
            str(tmp_path / "gt.npz"),
            "-c",
            str(tmp_path / "c16.npz"),
            "-o",
            str(out2),
        ],
    )
    assert res.exit_code == 2 and "centroids are for 16 joints" in res.output and not out2.exists()
    res = runner.invoke(
        app, ["pss", "fit", str(tmp_path / "gt.npz"), "-o", str(tmp_path / "y.npz"), "-k", "5", "-k", "5000"]
    )
    assert res.exit_code == 2 and "--k 5000 needs at least 5000" in res.output
    assert not list(tmp_path.glob("y*.npz"))  # no file for k=5 either
    res = runner.invoke(app, ["pss", "fit", str(tmp_path / "missing.npz"), "-o", str(tmp_path / "x.npz")])
    assert res.exit_code == 2 and "no such file" in res.output and not (tmp_path / "x.npz").exists()


def rng_poses(J: int) -> np.ndarray:
    return np.random.default_rng(1).normal(size=(4, J, 3))
