"""Similarity alignment: Umeyama Procrustes, optimal scale, rotation angles, rig alignment."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from epipolarpose.errors import InputError
from epipolarpose.geometry.alignment import (
    align_rigs,
    apply_similarity,
    optimal_scale,
    pairwise_rotation_errors_deg,
    procrustes,
    rotation_angle_deg,
)


def _random_similarity(rng: np.random.Generator, batch: tuple[int, ...]):
    n = int(np.prod(batch))
    R = Rotation.random(n, random_state=int(rng.integers(1 << 30))).as_matrix().reshape(batch + (3, 3))
    s = rng.uniform(0.3, 3.0, batch)
    t = rng.normal(scale=500, size=batch + (3,))
    return R, s, t


def test_procrustes_recovers_known_similarity_batched(rng):
    X = rng.normal(scale=300, size=(4, 5, 17, 3))
    R, s, t = _random_similarity(rng, (4, 5))
    Y = apply_similarity(X, R, s, t)
    R2, s2, t2 = procrustes(X, Y)
    np.testing.assert_allclose(R2, R, atol=1e-10)
    np.testing.assert_allclose(s2, s, rtol=1e-10)
    np.testing.assert_allclose(t2, t, atol=1e-7)
    np.testing.assert_allclose(np.linalg.det(R2), 1.0, atol=1e-12)


def test_procrustes_matches_per_pose_scipy_loop(rng):
    """Noisy sets (no exact solution): the batched result equals a per-pose loop built on
    scipy's Kabsch (Rotation.align_vectors) plus the closed-form scale and translation."""
    X = rng.normal(scale=300, size=(6, 17, 3))
    R, s, t = _random_similarity(rng, (6,))
    Y = apply_similarity(X, R, s, t) + rng.normal(scale=40, size=X.shape)
    R2, s2, t2 = procrustes(X, Y)
    for i in range(6):
        xc, yc = X[i] - X[i].mean(0), Y[i] - Y[i].mean(0)
        rot, _ = Rotation.align_vectors(yc, xc)
        Ri = rot.as_matrix()
        si = np.sum(yc * (xc @ Ri.T)) / np.sum(xc**2)
        ti = Y[i].mean(0) - si * Ri @ X[i].mean(0)
        np.testing.assert_allclose(R2[i], Ri, atol=1e-8)
        np.testing.assert_allclose(s2[i], si, rtol=1e-8)
        np.testing.assert_allclose(t2[i], ti, atol=1e-5)


def test_procrustes_rigid_and_reflection(rng):
    X = rng.normal(size=(10, 3))
    R, _, t = _random_similarity(rng, ())
    Y = X @ R.T * 2.0 + t
    R2, s2, t2 = procrustes(X, Y, scale=False)
    assert s2 == 1.0
    np.testing.assert_allclose(R2, R, atol=1e-10)  # the rotation does not depend on the scale
    # a mirrored target: proper rotation only unless reflections are allowed
    M = Y * np.array([1, 1, -1])
    Rp, _, _ = procrustes(X, M)
    assert np.linalg.det(Rp) == pytest.approx(1.0)
    Rr, sr, tr = procrustes(X, M, reflection=True)
    assert np.linalg.det(Rr) == pytest.approx(-1.0)
    np.testing.assert_allclose(apply_similarity(X, Rr, sr, tr), M, atol=1e-9)


def test_procrustes_nan_and_weights_equal_subset(rng):
    X = rng.normal(size=(12, 3))
    Y = X @ Rotation.random(random_state=3).as_matrix().T + rng.normal(scale=0.1, size=X.shape)
    keep = np.ones(12, bool)
    keep[[2, 7]] = False
    ref = procrustes(X[keep], Y[keep])
    Xn = X.copy()
    Xn[2] = np.nan
    Yn = Y.copy()
    Yn[7, 1] = np.nan
    for got in (procrustes(Xn, Yn), procrustes(X, Y, weights=keep)):
        for a, b in zip(got, ref):
            np.testing.assert_allclose(a, b, atol=1e-10)


def test_procrustes_degenerate_is_nan(rng):
    X = rng.normal(size=(2, 5, 3))
    X[0, 2:] = np.nan  # only 2 valid points
    X[1] = 1.0  # all points coincide
    R, s, t = procrustes(X, rng.normal(size=(2, 5, 3)))
    assert np.isnan(R).all() and np.isnan(s).all() and np.isnan(t).all()


def test_optimal_scale_known_and_least_squares(rng):
    gt = rng.normal(scale=200, size=(3, 17, 3))
    np.testing.assert_allclose(optimal_scale(gt / 2.5, gt), 2.5)
    pred = 0.4 * gt + rng.normal(scale=30, size=gt.shape)
    s = optimal_scale(pred, gt)
    grid = np.linspace(0.5 * s[0], 1.5 * s[0], 20001)
    cost = ((grid[:, None, None] * pred[0] - gt[0]) ** 2).sum((1, 2))
    assert s[0] == pytest.approx(grid[np.argmin(cost)], rel=1e-4)
    # masked joints do not count, NaN joints are ignored
    mask = np.ones((3, 17), bool)
    mask[:, 5] = False
    bad = pred.copy()
    bad[:, 5] = 1e6
    np.testing.assert_allclose(
        optimal_scale(bad, gt, mask), optimal_scale(np.delete(pred, 5, 1), np.delete(gt, 5, 1))
    )
    bad[:, 5] = np.nan
    np.testing.assert_allclose(
        optimal_scale(bad, gt), optimal_scale(np.delete(pred, 5, 1), np.delete(gt, 5, 1))
    )


def test_rotation_angle_deg_against_scipy(rng):
    A = Rotation.random(50, random_state=1)
    B = Rotation.random(50, random_state=2)
    ref = np.degrees((A.inv() * B).magnitude())
    np.testing.assert_allclose(rotation_angle_deg(A.as_matrix(), B.as_matrix()), ref, atol=1e-9)
    Rz = Rotation.from_euler("z", [[0.0], [1e-7], [90.0], [179.9999]], degrees=True).as_matrix()
    np.testing.assert_allclose(rotation_angle_deg(np.eye(3), Rz), [0.0, 1e-7, 90.0, 179.9999], atol=1e-9)


def test_align_rigs_recovers_self_calibrated_rig(rig_s9):
    # a self-calibrated rig: camera 0's frame, arbitrary scale
    est = rig_s9.in_camera_frame(0).transformed(np.eye(3), np.zeros(3), scale=1 / 3700.0)
    est.units = "arbitrary"
    aligned, rep = align_rigs(est, rig_s9)
    assert rep["scale"] == pytest.approx(3700.0)
    assert rep["units"] == "mm" and aligned.units == "mm"
    # (the published H36M rotations are orthonormal to ~1e-7 only: errors of ~1 µm remain)
    np.testing.assert_allclose(rep["rotation_error_deg"], 0, atol=1e-4)
    np.testing.assert_allclose(rep["center_error"], 0, atol=0.01)
    np.testing.assert_allclose(aligned.P, rig_s9.P, rtol=1e-6, atol=1e-3)
    assert len(rep["pairs"]) == 6
    np.testing.assert_allclose(rep["pairwise_rotation_error_deg"], 0, atol=1e-4)
    np.testing.assert_allclose(rep["pairwise_baseline_direction_error_deg"], 0, atol=1e-4)


def test_align_rigs_reports_a_rotated_camera(rig_s9):
    from dataclasses import replace

    from epipolarpose.camera import Rig

    cams = list(rig_s9.cameras)
    dR = Rotation.from_euler("y", 2.0, degrees=True).as_matrix()
    cams[2] = replace(cams[2], R=dR @ cams[2].R, t=dR @ cams[2].t)  # rotate camera 2 about its centre
    est = Rig(cams, units="mm")
    _, rep = align_rigs(est, rig_s9)
    rel = dict(zip(map(tuple, rep["pairs"]), rep["pairwise_rotation_error_deg"]))
    for (i, j), e in rel.items():
        assert e == pytest.approx(2.0 if 2 in (i, j) else 0.0, abs=1e-4)
    # the same without any alignment, in whatever world frame and scale the estimate is in
    moved = est.transformed(
        Rotation.from_rotvec([0.4, -1.0, 0.2]).as_matrix(), np.array([5.0, 0, 1]), scale=0.01
    )
    np.testing.assert_allclose(
        pairwise_rotation_errors_deg(moved, rig_s9), rep["pairwise_rotation_error_deg"], atol=1e-6
    )
    # centres were not moved; the chordal-mean alignment spreads the 2° over all cameras a little
    assert max(rep["rotation_error_deg"]) < 2.0
    assert rep["summary"]["center_error"]["max"] < 0.05 * 4000  # well under 5 % of the distance


def test_align_rigs_two_cameras_and_mismatch(rig_s9):
    from epipolarpose.camera import Rig

    two = Rig(rig_s9.cameras[:2])
    est = two.in_camera_frame(0).transformed(np.eye(3), np.zeros(3), scale=0.01)
    _, rep = align_rigs(est, two)
    np.testing.assert_allclose(rep["center_error"], 0, atol=0.01)
    with pytest.raises(InputError, match="3 cameras, true rig has 4"):
        align_rigs(Rig(rig_s9.cameras[:3]), rig_s9)
