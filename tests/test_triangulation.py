"""Triangulation: DLT, Hartley–Sturm vs OpenCV, robust view rejection and swap repair, vector median."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.spatial.transform import Rotation

from epipolarpose.camera import Camera, Rig
from epipolarpose.geometry.dlt import dlt_normal_matrices, solve_normal, triangulate_dlt
from epipolarpose.geometry.optimal_triangulation import (
    correct_matches,
    fundamental_from_projections,
    triangulate_optimal,
)
from epipolarpose.geometry.triangulation import triangulate_rig, triangulate_robust, vector_median
from epipolarpose.skeleton import FLIP_PERMUTATION


def ring_rig(n: int = 4, radius: float = 5000.0, f: float = 1100.0) -> Rig:
    """``n`` cameras on a circle around the origin, looking at it (mm, z up)."""
    cams = []
    for i in range(n):
        a = 2 * np.pi * i / n + 0.3
        c = np.array([radius * np.cos(a), radius * np.sin(a), 1500.0 + 200 * i])
        z = -c / np.linalg.norm(c)
        x = np.cross(z, [0, 0, 1.0])
        x /= np.linalg.norm(x)
        R = np.stack([x, np.cross(z, x), z])
        K = np.array([[f, 0, 500], [0, f, 500], [0, 0, 1]])
        cams.append(Camera(K=K, R=R, t=-R @ c, image_size=(1000, 1000), name=f"c{i}"))
    return Rig(cams)


def random_poses(rng: np.random.Generator, F: int) -> np.ndarray:
    """(F, 17, 3) mm skeleton-sized random point sets near the origin."""
    base = rng.normal(size=(1, 17, 3)) * [200, 200, 400] + [0, 0, 1000]
    return base + rng.normal(size=(F, 1, 3)) * 300 + rng.normal(size=(F, 17, 3)) * 50


def test_solve_normal_matches_eigh(rng):
    # homogeneous least squares (eigh) vs. fixing w = 1 (adjugate solve) on exact systems
    X = rng.normal(size=(50, 3))
    P = rng.normal(size=(50, 3, 3, 4))
    h = np.einsum("nkij,nj->nki", P, np.c_[X, np.ones(50)])
    x = h[..., :2] / h[..., 2:]
    M = dlt_normal_matrices(P, x).sum(-3)
    np.testing.assert_allclose(solve_normal(M), X, atol=1e-6)
    _, V = np.linalg.eigh(M)
    v = V[..., 0]
    np.testing.assert_allclose(v[:, :3] / v[:, 3:], X, atol=1e-6)


def test_dlt_noise_free_batched_and_missing(rng):
    rig = ring_rig()
    X = random_poses(rng, 5)  # (5, 17, 3)
    uv = rig.project(X, distort=False)  # (C, 5, 17, 2)
    P = rig.P
    got = triangulate_dlt(P, np.moveaxis(uv, 0, -2))
    np.testing.assert_allclose(got, X, atol=1e-6)
    # a view with weight 0 or NaN is ignored; one view only -> NaN
    x = np.moveaxis(uv, 0, -2).copy()
    x[..., 0, :] += 300.0
    w = np.ones(x.shape[:-1])
    w[..., 0] = 0
    np.testing.assert_allclose(triangulate_dlt(P, x, w), X, atol=1e-6)
    x[..., 1:3, :] = np.nan
    w[..., 0] = 1
    x[..., 0, :] = np.nan
    assert np.isnan(triangulate_dlt(P, x, w)).all()


def test_optimal_triangulation_matches_opencv(rng):
    rig = ring_rig(2)
    X = random_poses(rng, 20).reshape(-1, 3)
    uv = rig.project(X, distort=False) + rng.normal(size=(2, len(X), 2)) * 3.0
    P1, P2 = rig.P
    F = fundamental_from_projections(P1, P2)
    c1, c2 = correct_matches(F, uv[0], uv[1])
    o1, o2 = cv2.correctMatches(F, uv[0][None], uv[1][None])
    np.testing.assert_allclose(c1, o1[0], atol=1e-6)
    np.testing.assert_allclose(c2, o2[0], atol=1e-6)
    # corrected points satisfy the epipolar constraint exactly
    h1, h2 = np.c_[c1, np.ones(len(c1))], np.c_[c2, np.ones(len(c2))]
    assert np.abs(np.sum(h2 @ F * h1, 1)).max() < 1e-6 * np.abs(F).max() * 1e3
    Xo, _, _ = triangulate_optimal(P1, P2, uv[0], uv[1])
    Xh = cv2.triangulatePoints(P1, P2, o1[0].T, o2[0].T)
    np.testing.assert_allclose(Xo, (Xh[:3] / Xh[3]).T, atol=1e-4)
    # optimal = never a larger reprojection error than the linear method
    Xl = triangulate_dlt(np.stack([P1, P2]), np.stack([uv[0], uv[1]], 1), reweight=0)

    def cost(Xp):
        p = rig.project(Xp, distort=False)
        return (np.linalg.norm(p - uv, axis=-1) ** 2).sum(0)

    assert np.all(cost(Xo) <= cost(Xl) + 1e-6)


def test_vector_median_known_answer(rng):
    pts = rng.normal(size=(6, 3))
    pts[5] += 100.0  # one far outlier barely moves the geometric median
    med = vector_median(pts[None], axis=-2)[0]
    ref = minimize(
        lambda y: np.linalg.norm(pts - y, axis=1).sum(),
        pts[:5].mean(0),
        method="Nelder-Mead",
        options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20000},
    ).x
    np.testing.assert_allclose(med, ref, atol=1e-4)
    # NaN rows are ignored; all-NaN gives NaN
    pts2 = np.concatenate([pts, np.full((2, 3), np.nan)])
    np.testing.assert_allclose(vector_median(pts2[None])[0], med, atol=1e-9)
    assert np.isnan(vector_median(np.full((1, 3, 3), np.nan))).all()


def _observe(rig: Rig, X: np.ndarray):
    uv = rig.project(X)  # (C, F, J, 2)
    return uv, np.ones(uv.shape[:-1])


def test_robust_rejects_injected_outliers(rng):
    rig = ring_rig(4)
    X = random_poses(rng, 200)
    uv, w = _observe(rig, X)
    C, F, J = w.shape
    out = rng.random((C, F, J)) < 0.08
    out &= out.sum(0, keepdims=True) == 1  # at most one bad view per joint: identifiable
    uv = uv.copy()
    uv[out] += rng.uniform(60, 250, size=(out.sum(), 2)) * rng.choice([-1, 1], size=(out.sum(), 2))
    xn = rig.undistort(uv)
    res = triangulate_robust(np.stack([c.Rt for c in rig]), xn, w, rig.K[:, 0, 0])
    assert res.valid.all()
    np.testing.assert_allclose(res.points, X, atol=1e-3)
    # exactly the injected views were dropped
    np.testing.assert_array_equal(~res.used, out)
    # a plain DLT is pulled away by the same outliers
    Xp, _, _ = triangulate_rig(rig, uv, w, options=None)
    assert np.linalg.norm(Xp - X, axis=-1)[out.any(0)].mean() > 20


def test_robust_undoes_injected_swaps(rng):
    rig = ring_rig(4)
    X = random_poses(rng, 100)
    uv, w = _observe(rig, X)
    swapped = rng.random(w.shape[:2]) < 0.1
    swapped &= swapped.sum(0, keepdims=True) == 1
    uv = uv.copy()
    uv[swapped] = uv[swapped][:, FLIP_PERMUTATION]
    res = triangulate_robust(np.stack([c.Rt for c in rig]), rig.undistort(uv), w, rig.K[:, 0, 0])
    np.testing.assert_array_equal(res.swapped, swapped)
    assert res.valid.all()
    np.testing.assert_allclose(res.points, X, atol=1e-3)
    # undone swaps are used, not rejected
    assert res.used.all()


def test_triangulate_rig_with_distortion_noise_free(rng):
    rig = ring_rig(3)
    for c in rig.cameras:
        c.dist = np.array([-0.2, 0.2, 0.001, -0.001, 0.0])
    R = Rotation.from_rotvec([0.0, 0.0, 0.1]).as_matrix()
    rig = rig.transformed(R, np.array([10.0, 0, 0]))
    X = random_poses(rng, 30)
    uv = rig.project(X)
    sc = np.ones(uv.shape[:-1])
    uv[1, :5] = np.nan  # frames seen by two cameras only
    sc[1, :5] = 0
    uv[:, 7] = np.nan  # an all-NaN frame stays NaN, never filled
    sc[:, 7] = 0
    pts, valid, reproj = triangulate_rig(rig, uv, sc)
    ok = np.ones(30, bool)
    ok[7] = False
    np.testing.assert_allclose(pts[ok], X[ok], atol=1e-3)
    assert valid[ok].all() and not valid[7].any()
    assert np.isnan(pts[7]).all()
    assert np.nanmax(reproj) < 1e-3
    assert np.isnan(reproj[1, :5]).all()


@pytest.mark.parametrize("C", [2, 3])
def test_robust_few_cameras(rng, C):
    rig = ring_rig(C)
    X = random_poses(rng, 20)
    uv, w = _observe(rig, X)
    res = triangulate_robust(np.stack([c.Rt for c in rig]), rig.undistort(uv), w, rig.K[:, 0, 0])
    assert res.valid.all()
    np.testing.assert_allclose(res.points, X, atol=1e-3)


def test_threaded_chunks_equal_one_chunk_at_a_time(rng):
    """Chunks triangulated in threads give exactly the serial result, chunk by chunk."""
    from dataclasses import replace

    from epipolarpose.geometry.triangulation import TriangulationOptions

    rig = ring_rig(4)
    X = random_poses(rng, 90)
    uv, w = _observe(rig, X)
    uv = uv + rng.normal(0, 2.0, uv.shape)
    bad = rng.random(w.shape) < 0.08
    uv[bad] += rng.uniform(50, 200, (bad.sum(), 2))
    args = (np.stack([c.Rt for c in rig]), rig.undistort(uv), w, rig.K[:, 0, 0])
    base = TriangulationOptions(chunk_frames=25)
    serial = triangulate_robust(*args, replace(base, workers=1))
    threaded = triangulate_robust(*args, replace(base, workers=3))
    for name in ("points", "valid", "reprojection_px", "used", "swapped"):
        np.testing.assert_array_equal(getattr(threaded, name), getattr(serial, name), err_msg=name)
    assert threaded.threshold_px == serial.threshold_px and len(serial.threshold_px) == 4
    # each chunk is its own problem: the same as triangulating its frames alone
    alone = triangulate_robust(args[0], args[1][:, 25:50], w[:, 25:50], args[3], replace(base, workers=1))
    np.testing.assert_array_equal(alone.points, serial.points[25:50])
    assert alone.threshold_px == serial.threshold_px[1:2]
