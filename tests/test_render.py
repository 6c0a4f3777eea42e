"""The synthetic image domain (synthetic/render.py)."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

from epipolarpose.mocap import load_mocap
from epipolarpose.synthetic.render import (
    RenderConfig,
    apply_affine,
    crop_affine,
    invert_affine,
    render_view,
)
from epipolarpose.training.data import MultiViewDataset, MultiViewFrames

EXACT = RenderConfig(size=96, background=False, occluder_prob=0.0, augment=False)


@pytest.fixture(scope="module")
def poses(bandai_bvh) -> np.ndarray:
    return load_mocap(bandai_bvh, fps=5).poses[:8]


def test_same_seed_same_image_other_seed_other_image(poses, rig_s9):
    cfg = RenderConfig(size=64)
    a = render_view(poses[0], rig_s9[0], seed=3, config=cfg)
    b = render_view(poses[0], rig_s9[0], seed=3, config=cfg)
    c = render_view(poses[0], rig_s9[0], seed=4, config=cfg)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.affine, b.affine)
    assert not np.array_equal(a.image, c.image)
    # the dataset is seeded per frame: same item in any order / worker
    ds = MultiViewDataset(MultiViewFrames(poses, ["x"] * len(poses), rig_s9), cfg, seed=1)
    assert np.array_equal(ds[2]["images"].numpy(), ds[2]["images"].numpy())
    ds.set_epoch(1)  # new augmentations every epoch
    assert not np.array_equal(
        ds[2]["images"].numpy(), MultiViewDataset(ds.frames, cfg, seed=1)[2]["images"].numpy()
    )


def test_silhouette_covers_every_projected_joint(poses, rig_s9):
    for f in range(0, len(poses), 3):
        for cam in rig_s9:
            v = render_view(poses[f], cam, seed=f, config=EXACT)
            ij = np.round(v.keypoints).astype(int)
            assert ((ij >= 0) & (ij < EXACT.size)).all()
            assert v.mask[ij[:, 1], ij[:, 0]].all()
            assert (v.image[v.mask].sum(-1) > 0).mean() > 0.99  # the person is drawn where the mask is
            assert not v.image[~v.mask].any() or (v.image[~v.mask].sum(-1) > 0).mean() < 0.05


def test_left_and_right_have_distinguishable_colours(poses, rig_s9):
    """Pixels on the left forearm/shin are blue-ish, on the right red-ish (RGB)."""
    votes = []
    for f in range(len(poses)):
        for cam in rig_s9:
            v = render_view(poses[f], cam, seed=f, config=EXACT)
            for (a, b), want in (((12, 13), "l"), ((5, 6), "l"), ((15, 16), "r"), ((2, 3), "r")):
                p = np.round(0.5 * (v.keypoints[a] + v.keypoints[b])).astype(int)
                r, _, bl = v.image[p[1], p[0]].astype(int)
                votes.append((bl > r) == (want == "l"))
    # a limb may be hidden behind another one (painter's algorithm) in a few views
    assert np.mean(votes) > 0.85


def test_crop_affine_maps_image_pixels_to_crop_pixels(poses, rig_s9):
    cam = rig_s9[2]
    uv = cam.project(poses[0])
    A = crop_affine(uv, 128, margin=1.25)
    crop = apply_affine(A, uv)
    lo, hi = crop.min(0), crop.max(0)
    assert np.max(hi - lo) == pytest.approx(128 / 1.25)  # longer side fills 1/margin of the crop
    np.testing.assert_allclose(0.5 * (lo + hi), [64, 64])  # centred
    np.testing.assert_allclose(apply_affine(invert_affine(A), crop), uv, atol=1e-9)
    # warping the full image with A moves a marker drawn at a joint to the joint's crop position
    img = np.zeros((cam.image_size[1], cam.image_size[0]), np.float32)
    j = int(np.argmin(np.abs(uv - 500).max(-1)))  # a joint inside the 1000 x 1000 image
    cv2.circle(img, tuple(np.round(uv[j]).astype(int)), 12, 1.0, -1)
    warped = cv2.warpAffine(img, A, (128, 128), flags=cv2.INTER_LINEAR)
    ys, xs = np.nonzero(warped > 0.5)
    np.testing.assert_allclose([xs.mean(), ys.mean()], crop[j], atol=1.0)
    # the rendered view records the same affine and keypoints (lens distortion included)
    v = render_view(poses[0], cam, config=replace(EXACT, size=128, margin=1.25))
    np.testing.assert_allclose(v.affine, A)
    np.testing.assert_allclose(v.keypoints, crop)
