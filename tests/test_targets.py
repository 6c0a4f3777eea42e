"""Scale-free targets (training/targets.py): invariance, inverse, OpenCV agreement, masking."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from epipolarpose.models.posenet import from_pixels
from epipolarpose.synthetic.render import apply_affine, crop_affine
from epipolarpose.training.module import masked_smooth_l1
from epipolarpose.training.targets import (
    keypoint_targets,
    make_targets,
    pose_to_crop_pixels,
    prediction_to_image,
    targets_to_camera,
)


def _views(rig, rng, n=5):
    """Random standing-ish poses seen by every camera of ``rig``: camera-frame poses (C, n, 17, 3),
    K (C, 1, 3, 3), dist (C, 1, 5), crop affines (C, n, 2, 3), world poses (n, 17, 3)."""
    world = rng.normal(0, 250, (n, 17, 3)) + np.array([0, 0, 1000.0])
    world[:, 0] = [0, 0, 1000.0]
    Xc = rig.world_to_camera(world)
    A = crop_affine(rig.project(world), 64, 1.3)
    return Xc, rig.K[:, None], rig.dist[:, None], A, world


def test_targets_are_scale_invariant(rig_s9, rng):
    Xc, K, dist, A, world = _views(rig_s9, rng)
    ref, mask = make_targets(Xc, K, dist, A, 64)
    assert mask.all()
    for s in (1e-3, 0.37, 1.0, 42.0, 1e4):
        np.testing.assert_allclose(
            pose_to_crop_pixels(s * Xc, K, dist, A), pose_to_crop_pixels(Xc, K, dist, A), rtol=1e-9, atol=1e-9
        )
        t, m = make_targets(s * Xc, K, dist, A, 64)
        np.testing.assert_allclose(t, ref, atol=1e-6)
        assert (m == mask).all()


def test_xy_match_opencv_projection_and_z_hand_computed(rig_s9, rng):
    Xc, K, dist, A, world = _views(rig_s9, rng, n=3)
    px = pose_to_crop_pixels(Xc, K, dist, A)
    for c, cam in enumerate(rig_s9):
        uv, _ = cv2.projectPoints(Xc[c].reshape(-1, 3), np.zeros(3), np.zeros(3), cam.K, cam.dist)
        uv = apply_affine(A[c], uv.reshape(3, 17, 2))
        np.testing.assert_allclose(px[c, ..., :2], uv, atol=1e-6)
    # z: (Z_j - Z_root) * f_crop / Z_root, by hand for one joint
    c, f, j = 1, 2, 5
    fcrop = 0.5 * (K[c, 0, 0, 0] + K[c, 0, 1, 1]) * A[c, f, 0, 0]
    zr = Xc[c, f, 0, 2]
    assert px[c, f, j, 2] == pytest.approx((Xc[c, f, j, 2] - zr) * fcrop / zr, rel=1e-12)
    assert px[c, f, 0, 2] == 0.0
    # normalized volume convention of the models package
    t, _ = make_targets(Xc, K, dist, A, 64, depth_range=2.0)
    np.testing.assert_allclose(t, from_pixels(px, 64, 2.0), atol=1e-6)


def test_inverse_round_trip(rig_s9, rng):
    Xc, K, dist, A, world = _views(rig_s9, rng)
    t, _ = make_targets(Xc, K, dist, A, 64, depth_range=1.5)
    back = targets_to_camera(t.astype(np.float64), K, dist, A, 64, Xc[..., 0, 2], depth_range=1.5)
    # float32 targets: sub-millimetre at 5 m
    np.testing.assert_allclose(back, Xc, atol=0.5)
    exact = from_pixels(pose_to_crop_pixels(Xc, K, dist, A), 64, 1.5)
    np.testing.assert_allclose(targets_to_camera(exact, K, dist, A, 64, Xc[..., 0, 2], 1.5), Xc, atol=1e-6)
    # scale-free: root depth 1 gives the pose divided by the root depth
    unit = targets_to_camera(exact, K, dist, A, 64, 1.0, 1.5)
    np.testing.assert_allclose(unit * Xc[..., :1, 2:3], Xc, atol=1e-6)
    # 2D back to image pixels agrees with OpenCV's distorted projection
    uv = prediction_to_image(exact, A, 64)
    np.testing.assert_allclose(uv, rig_s9.project(world), atol=1e-6)


def test_invalid_joints_and_roots_are_masked(rig_s9, rng):
    Xc, K, dist, A, world = _views(rig_s9, rng, n=2)
    Xc = Xc.copy()
    Xc[0, 0, 3] = np.nan  # missing joint in camera 0, frame 0
    valid = np.ones((2, 17), bool)
    valid[1, 0] = False  # invalid root in frame 1: no depth target there
    t, m = make_targets(Xc, K, dist, A, 64, valid=valid[None])
    assert not m[0, 0, 3].any() and np.all(t[0, 0, 3] == 0)
    assert m[:, 1, 1:, :2].all() and not m[:, 1, :, 2].any()
    assert np.isfinite(t).all()
    kt, km = keypoint_targets(rig_s9.project(world), A, 64)
    assert not km[..., 2].any() and km[:, 1, :, :2].all()


def test_masked_joints_contribute_zero_gradient():
    g = torch.Generator().manual_seed(0)
    pred = torch.rand(4, 17, 3, generator=g, requires_grad=True)
    target = torch.rand(4, 17, 3, generator=g)
    mask = torch.rand(4, 17, 3, generator=g) > 0.3
    target[~mask] = float("nan")  # whatever a masked target holds must not matter
    loss = masked_smooth_l1(pred, target, mask, beta=0.01)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.all(pred.grad[~mask] == 0)
    assert torch.all(pred.grad[mask] != 0)
    # equals the mean over the unmasked entries
    t = torch.where(mask, target, 0)
    ref = torch.nn.functional.smooth_l1_loss(pred[mask], t[mask], beta=0.01)
    assert loss.item() == pytest.approx(ref.item(), rel=1e-6)
