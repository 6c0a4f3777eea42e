"""Two-view epipolar geometry: E/F, the four (R, t), cheirality, robust relative pose."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from epipolarpose.errors import InputError
from epipolarpose.geometry.alignment import rotation_angle_deg
from epipolarpose.geometry.epipolar import (
    RelativePoseOptions,
    cheirality,
    decompose_essential,
    essential_from_fundamental,
    essential_from_pose,
    fundamental_from_pose,
    pose_from_essential,
    relative_pose,
    sampson_error,
)
from epipolarpose.geometry.numeric import skew


def _scene(rng: np.random.Generator, n: int = 200):
    """A random relative pose (x2 = R x1 + t, |t| = 1) and points 3-7 units in front of both."""
    R = Rotation.from_rotvec(rng.normal(size=3) * 0.4).as_matrix()
    t = rng.normal(size=3)
    t /= np.linalg.norm(t)
    X = rng.normal(size=(n, 3)) + [0, 0, 5]
    X2 = X @ R.T + t
    keep = (X[:, 2] > 0.5) & (X2[:, 2] > 0.5)
    X, X2 = X[keep], X2[keep]
    return R, t, X, X[:, :2] / X[:, 2:], X2[:, :2] / X2[:, 2:]


def _same_up_to_scale(A: np.ndarray, B: np.ndarray) -> float:
    a, b = A / np.linalg.norm(A), B / np.linalg.norm(B)
    return min(np.abs(a - b).max(), np.abs(a + b).max())


def test_skew_is_cross_product(rng):
    a, b = rng.normal(size=(2, 5, 3))
    np.testing.assert_allclose(np.einsum("nij,nj->ni", skew(a), b), np.cross(a, b), atol=1e-12)


def test_decomposition_matches_opencv(rng):
    for _ in range(5):
        R, t, *_ = _scene(rng)
        E = essential_from_pose(R, t)
        Rs, ts = decompose_essential(E)
        R1, R2, tc = cv2.decomposeEssentialMat(E)
        # the same two rotations (as a set: the order depends on the SVD's signs) and ±t
        d = lambda A, B: np.abs(A - B).max()  # noqa: E731
        assert min(d(Rs[0], R1) + d(Rs[2], R2), d(Rs[0], R2) + d(Rs[2], R1)) < 1e-9
        np.testing.assert_allclose(np.abs(ts[0] @ tc.ravel()), 1.0, atol=1e-9)
        np.testing.assert_allclose(ts[1], -ts[0])
        # every candidate is a rotation that reproduces E up to scale, and the truth is among them
        for k in range(4):
            np.testing.assert_allclose(Rs[k] @ Rs[k].T, np.eye(3), atol=1e-9)
            assert np.linalg.det(Rs[k]) == pytest.approx(1.0)
            assert _same_up_to_scale(essential_from_pose(Rs[k], ts[k]), E) < 1e-9
        errs = [
            rotation_angle_deg(Rs[k], R) + np.degrees(np.arccos(np.clip(ts[k] @ t, -1, 1))) for k in range(4)
        ]
        assert min(errs) < 1e-5


def test_cheirality_picks_true_pose(rng):
    for _ in range(10):
        R, t, _, x1, x2 = _scene(rng)
        Rb, tb, n_front = pose_from_essential(essential_from_pose(R, t), x1, x2)
        np.testing.assert_allclose(Rb, R, atol=1e-9)
        np.testing.assert_allclose(tb, t, atol=1e-9)
        assert n_front == len(x1)
        # the other three candidates put (almost) no point in front of both cameras
        Rs, ts = decompose_essential(essential_from_pose(R, t))
        best, counts = cheirality(Rs, ts, x1, x2)
        assert sorted(counts)[-2] < 0.5 * len(x1)


def test_essential_from_fundamental(rng):
    R, t, _, x1, x2 = _scene(rng)
    K1 = np.array([[1100.0, 0, 500], [0, 1090, 510], [0, 0, 1]])
    K2 = np.array([[900.0, 0, 480], [0, 905, 490], [0, 0, 1]])
    F = fundamental_from_pose(R, t, K1, K2)
    u1 = x1 * np.diag(K1)[:2] + K1[:2, 2]
    u2 = x2 * np.diag(K2)[:2] + K2[:2, 2]
    h1, h2 = np.c_[u1, np.ones(len(u1))], np.c_[u2, np.ones(len(u2))]
    assert np.abs(np.sum(h2 @ F * h1, 1)).max() < 1e-9 * np.abs(F).max() * 1e6
    E = essential_from_fundamental(F, K1, K2)
    assert _same_up_to_scale(E, essential_from_pose(R, t)) < 1e-9
    np.testing.assert_allclose(np.linalg.svd(E, compute_uv=False), [1, 1, 0], atol=1e-9)


def test_sampson_error_zero_on_exact_and_grows_with_offset(rng):
    R, t, _, x1, x2 = _scene(rng)
    E = essential_from_pose(R, t)
    assert sampson_error(E, x1, x2).max() < 1e-12
    moved = x2 + np.array([0.01, 0.0])
    assert np.median(sampson_error(E, x1, moved)) > 1e-4


@pytest.mark.parametrize("method", ["poselib", "magsac"])
def test_relative_pose_robust_to_outliers(rng, method):
    R, t, _, x1, x2 = _scene(rng, 1500)
    f = 1000.0
    x2n = x2 + rng.normal(size=x2.shape) * 1.0 / f
    out = rng.random(len(x1)) < 0.2
    x2n[out] = rng.uniform(-0.3, 0.3, size=(out.sum(), 2))
    rp = relative_pose(x1, x2n, threshold=4.0 / f, options=RelativePoseOptions(method=method))
    # poselib refines on its inliers; OpenCV's MAGSAC result is used as is (BA refines it later)
    assert rotation_angle_deg(rp.R, R) < (0.1 if method == "poselib" else 0.6)
    assert np.degrees(np.arccos(np.clip(rp.t @ t, -1, 1))) < (0.5 if method == "poselib" else 2.0)
    assert rp.inliers[out].mean() < 0.1
    assert rp.inliers[~out].mean() > 0.9
    assert rp.rotation_only_fraction < 0.2


def test_relative_pose_noise_free_exact(rng):
    R, t, _, x1, x2 = _scene(rng, 300)
    rp = relative_pose(x1, x2, threshold=1e-3)
    assert rotation_angle_deg(rp.R, R) < 1e-5
    np.testing.assert_allclose(rp.t, t, atol=1e-6)
    assert rp.inlier_rate == 1.0


def test_relative_pose_too_few_correspondences():
    x = np.zeros((7, 2))
    with pytest.raises(InputError, match=r"cams a-b: only 7 usable correspondences"):
        relative_pose(x, x, 1e-3, pair="cams a-b")


def test_pure_rotation_is_flagged(rng):
    R = Rotation.from_rotvec([0.0, 0.3, 0.05]).as_matrix()
    X = rng.normal(size=(300, 3)) + [0, 0, 5]
    x1 = X[:, :2] / X[:, 2:]
    X2 = X @ R.T
    x2 = X2[:, :2] / X2[:, 2:]
    rp = relative_pose(x1, x2, threshold=1e-3)
    assert rp.rotation_only_fraction > 0.9
    assert rp.parallax_deg < 0.01
