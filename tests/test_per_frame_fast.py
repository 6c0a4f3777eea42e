"""The batched per-frame recipe gives the labels the frame-by-frame implementation gave (issue 13).

``_per_frame_reference`` is the implementation before batching, kept verbatim (per frame and pair:
RANSAC, ``E = KᵀFK``, decomposition + cheirality, Hartley–Sturm triangulation of that frame alone);
``_roots_reference`` is the root finding before batching (``np.roots`` row by row)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from epipolarpose.camera import Rig
from epipolarpose.formats import Poses2D
from epipolarpose.geometry.alignment import apply_similarity, procrustes
from epipolarpose.geometry.epipolar import essential_from_fundamental, pose_from_essential
from epipolarpose.geometry.observations import check_observations, normalized_observations, resolve_intrinsics
from epipolarpose.geometry.optimal_triangulation import (
    _roots,
    correct_matches,
    fundamental_from_projections,
    triangulate_optimal,
)
from epipolarpose.geometry.per_frame import per_frame_reconstruct
from epipolarpose.geometry.triangulation import vector_median
from epipolarpose.synthetic import NoiseModel, default_rig, synthesize


def _per_frame_reference(poses2d: Poses2D, rig: Rig | None = None, threshold_px: float = 8.0):
    """per_frame_reconstruct as it was: one frame and pair at a time -> (poses, valid, pair_poses)."""
    base = resolve_intrinsics(poses2d)[0] if rig is None else rig
    C, F, J = poses2d.num_cameras, poses2d.num_frames, poses2d.num_joints
    xn, w = normalized_observations(poses2d, base)
    check_observations(poses2d, w)
    K = base.K
    P = C - 1
    rec = np.full((P, F, J, 3), np.nan)
    pair_poses = np.full((P, F, 3, 4), np.nan)
    upix = xn[..., :2] * K[:, None, None, [0, 1], [0, 1]] + K[:, None, None, :2, 2]
    for f in range(F):
        for k in range(P):
            m = (w[k, f] > 0) & (w[k + 1, f] > 0)
            if m.sum() < 8:
                continue
            u1, u2 = upix[k, f][m], upix[k + 1, f][m]
            if rig is not None:
                R, t = rig.relative_pose(k, k + 1)
            else:
                Fm, inl = cv2.findFundamentalMat(u1, u2, cv2.FM_RANSAC, threshold_px, 0.99)
                if Fm is None or Fm.shape != (3, 3):
                    continue
                E = essential_from_fundamental(Fm, K[k], K[k + 1])
                R, t, nf = pose_from_essential(E, xn[k, f][m], xn[k + 1, f][m], inl.ravel() > 0)
                if nf == 0:
                    continue
            P1 = K[k] @ np.eye(3, 4)
            P2 = K[k + 1] @ np.hstack([R, np.reshape(t, (3, 1))])
            X, _, _ = triangulate_optimal(P1, P2, u1, u2)
            rec[k, f][np.flatnonzero(m)] = X
            pair_poses[k, f] = np.hstack([R, np.reshape(t, (3, 1))])
    if rig is not None:
        for k in range(P):
            R0k, t0k = rig.relative_pose(0, k)
            rec[k] = (rec[k] - t0k) @ R0k
        out = vector_median(np.moveaxis(rec, 0, -2))
    else:
        ref = rec[0]
        aligned = [ref]
        for k in range(1, P):
            R, s, t = procrustes(rec[k], ref)
            aligned.append(apply_similarity(rec[k], R, s, t))
        out = vector_median(np.stack(aligned, -2))
    return out, np.isfinite(out).all(-1), pair_poses


def _roots_reference(g: np.ndarray) -> np.ndarray:
    """The root finding of correct_matches before batching."""
    n = len(g)
    lead = g[:, 6]
    big = np.abs(lead) > 1e-12 * np.maximum(np.abs(g).max(1), 1e-300)
    roots = np.full((n, 6), np.nan, dtype=np.complex128)
    if big.any():
        m = g[big] / lead[big, None]
        comp = np.zeros((int(big.sum()), 6, 6))
        comp[:, 1:, :-1] = np.eye(5)
        comp[:, :, -1] = -m[:, :6]
        roots[big] = np.linalg.eigvals(comp)
    for i in np.flatnonzero(~big):
        r = np.roots(g[i, ::-1])
        roots[i, : len(r)] = r
    return roots


@pytest.fixture(scope="module")
def noisy():
    from epipolarpose.mocap import DEFAULT_BVH, load_mocap

    rig = default_rig()
    poses = load_mocap(DEFAULT_BVH, fps=25).poses[::3]  # 70 frames
    p2, _ = synthesize(poses, rig, NoiseModel(), seed=3)  # outliers, swaps, missing joints
    return p2, rig


def test_roots_equal_np_roots_row_by_row(rng):
    g = rng.normal(size=(400, 7))
    g[::3, 6] *= 1e-14  # negligible leading coefficient: np.roots's path
    g[5, 6] = 0.0  # exactly zero: trimmed by np.roots (degree 5)
    g[7, 0] = 0.0  # a zero root
    g[9, 6] = g[9, 5] = 0.0
    got, ref = _roots(g), _roots_reference(g)
    assert np.array_equal(got, ref, equal_nan=True)


def test_batched_optimal_triangulation_equals_one_pair_at_a_time(rng):
    B, N = 30, 17
    K = np.array([[1145.0, 0, 512], [0, 1143, 515], [0, 0, 1]])
    P1 = np.broadcast_to(K @ np.eye(3, 4), (B, 3, 4))
    rv = rng.normal(size=(B, 3)) * 0.8
    t = rng.normal(size=(B, 3))
    R = np.stack([cv2.Rodrigues(r)[0] for r in rv])
    P2 = K @ np.concatenate([R, (t / np.linalg.norm(t, axis=1, keepdims=True))[..., None]], -1)
    X = rng.normal(size=(B, N, 3)) * 0.2 + [0, 0, 3]
    Xh = np.concatenate([X, np.ones((B, N, 1))], -1)
    h1, h2 = Xh @ np.swapaxes(P1, 1, 2), Xh @ np.swapaxes(P2, 1, 2)
    x1 = h1[..., :2] / h1[..., 2:] + rng.normal(size=(B, N, 2)) * 4
    x2 = h2[..., :2] / h2[..., 2:] + rng.normal(size=(B, N, 2)) * 4
    x1[rng.random((B, N)) < 0.1] = np.nan
    got = triangulate_optimal(P1, P2, x1, x2)
    for b in range(B):
        ref = triangulate_optimal(P1[b], P2[b], x1[b], x2[b])
        for g, r in zip(got, ref):
            np.testing.assert_allclose(g[b], r, rtol=1e-9, atol=1e-9)
            assert np.array_equal(np.isnan(g[b]), np.isnan(r))
    # correct_matches with one F per batch element: the same as one F at a time
    Fb = fundamental_from_projections(P1, P2)
    y1 = np.nan_to_num(x1)
    c1, c2 = correct_matches(Fb, y1, x2)
    for b in range(B):
        r1, r2 = correct_matches(Fb[b], y1[b], x2[b])
        assert np.array_equal(c1[b], r1) and np.array_equal(c2[b], r2)


@pytest.mark.parametrize("known_rig", [False, True])
def test_per_frame_batched_equals_frame_by_frame(noisy, known_rig):
    p2, rig = noisy
    rig = rig if known_rig else None
    got = per_frame_reconstruct(p2, rig=rig)
    poses, valid, pair_poses = _per_frame_reference(p2, rig=rig)
    assert valid.mean() > 0.8
    assert np.array_equal(got.valid, valid)
    np.testing.assert_allclose(got.poses, poses, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(got.pair_poses, pair_poses, rtol=1e-9, atol=1e-12)
    assert np.array_equal(np.isnan(got.pair_poses), np.isnan(pair_poses))
