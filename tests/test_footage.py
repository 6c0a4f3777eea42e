"""Footage as a training source (training/footage.py): rendered clips written to mp4 and read back
give the renderer's crops (within codec error) and exactly its targets; augmentation keeps the
targets on the person; the crop cache is reused; bad footage is one clear error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import REPO
from epipolarpose.camera import Camera, Rig
from epipolarpose.errors import InputError
from epipolarpose.formats import Labels, Poses2D
from epipolarpose.mocap import load_mocap
from epipolarpose.models.posenet import to_pixels
from epipolarpose.skeleton import FLIP_PERMUTATION
from epipolarpose.synthetic.frames import render_video_frames
from epipolarpose.synthetic.render import RenderConfig
from epipolarpose.training.data import MultiViewDataset, MultiViewFrames
from epipolarpose.training.footage import (
    FootageAugment,
    FootageDataset,
    build_crop_cache,
    footage_labels,
    footage_table,
)
from epipolarpose.video import write_video

BUNDLED = REPO / "src/epipolarpose/data/cmu_131_01.bvh"
S = 64


def small_rig(rig: Rig, width: int = 192, cameras=(0, 1)) -> Rig:
    """Cameras of ``rig`` with their images scaled to ``width`` pixels."""
    cams = []
    for i in cameras:
        c = list(rig)[i]
        s = width / c.image_size[0]
        K = c.K.copy()
        K[:2] *= s
        size = (width, 2 * int(round(c.image_size[1] * s / 2)))  # even: video codecs want it
        cams.append(Camera(K=K, R=c.R, t=c.t, dist=c.dist, image_size=size, name=c.name))
    return Rig(cams)


def write_clips(folder: Path, rig: Rig, poses: np.ndarray, **render) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for cam in rig:
        p = folder / f"{cam.name}.mp4"
        write_video(p, render_video_frames(poses, cam, **render), fps=10)
        paths.append(p)
    return paths


@pytest.fixture(scope="module")
def clip(rig_s9, tmp_path_factory):
    rig = small_rig(rig_s9)
    poses = load_mocap(BUNDLED, fps=4).poses[:6]
    folder = tmp_path_factory.mktemp("clips")
    videos = write_clips(folder, rig, poses, background=False, jitter=False)
    kp = rig.project(poses)
    p2d = Poses2D(
        keypoints=kp,
        scores=np.ones(kp.shape[:-1]),
        image_size=[c.image_size for c in rig],
        camera_names=rig.names,
        K=rig.K,
        dist=rig.dist,
    )
    scale = 0.0123  # self-calibrated labels have an arbitrary scale
    lab = Labels(
        poses3d_world=poses * scale,
        poses3d_camera=rig.world_to_camera(poses) * scale,
        valid=np.ones((len(poses), 17), bool),
        reprojection_error=np.zeros((len(rig), len(poses), 17)),
        extra={"rig_json": np.array(rig.to_json())},
    )
    return rig, poses, videos, p2d, lab, folder


def _datasets(clip, cache_dir, augment=FootageAugment(enabled=False)):
    rig, poses, videos, p2d, lab, _ = clip
    fl = footage_labels(lab, p2d)
    table, _ = footage_table(videos, p2d, fl)
    cache = build_crop_cache(table, cache_dir, S)
    ds = FootageDataset(
        cache,
        "self",
        labels_camera=fl.poses_camera,
        labels_valid=fl.valid,
        K=fl.K,
        dist=fl.dist,
        augment=augment,
    )
    return ds, cache


def test_mp4_footage_gives_the_renderers_crops_and_targets(clip, tmp_path):
    rig, poses, *_ = clip
    ds, _ = _datasets(clip, tmp_path / "cache")
    frames = MultiViewFrames(poses, ["cmu"] * len(poses), rig)
    render = RenderConfig(size=S, background=False, augment=False, occluder_prob=0.0)
    ref = MultiViewDataset(frames, render, "self", rig.world_to_camera(poses), seed=0)
    assert len(ds) == len(ref)
    for f in range(len(ds)):
        a, b = ds[f], ref[f]
        np.testing.assert_allclose(a["affine"].numpy(), b["affine"].numpy(), atol=1e-4)
        np.testing.assert_allclose(a["target"].numpy(), b["target"].numpy(), atol=1e-5)
        assert np.array_equal(a["mask"].numpy(), b["mask"].numpy()) and a["mask"].all()
        ia, ib = a["images"].numpy().astype(float), b["images"].numpy().astype(float)
        same = np.abs(ia - ib).mean()
        # a crop 3 px off (a wrong box) differs far more than the codec and resolution do
        shifted = np.abs(np.roll(ia, 3, axis=2) - ib).mean()
        assert same < 4.0 and same < 0.5 * shifted, (f, same, shifted)
        # the person is where the renderer drew it: silhouettes overlap almost entirely
        ma, mb = ia.max(-1) > 40, ib.max(-1) > 40
        assert (ma & mb).sum() / (ma | mb).sum() > 0.85


def test_augmented_targets_follow_the_person_and_flips_swap_sides(clip, tmp_path):
    aug = FootageAugment(rotation_deg=30.0, flip=0.5, scale=0.2, shift=0.05)
    ds, cache = _datasets(clip, tmp_path / "cache", aug)
    plain, _ = _datasets(clip, tmp_path / "cache")
    assert cache.path == tmp_path / "cache"
    flipped = 0
    for epoch in range(3):
        ds.set_epoch(epoch)
        for f in range(len(ds)):
            it = ds[f]
            img = it["images"].numpy()
            for c in range(img.shape[0]):
                uv = to_pixels(it["target"][c].numpy().astype(float), S)[:, :2]
                ij = np.clip(np.round(uv).astype(int), 0, S - 1)
                lit = img[c].max(-1)[ij[:, 1], ij[:, 0]] > 30
                assert lit.mean() > 0.8  # joints land on the drawn body
                # left/right: a flipped view has its joints exchanged (crop x mirrored)
                base = to_pixels(plain[f]["target"][c].numpy().astype(float), S)[:, :2]
                A = it["affine"][c].numpy().astype(float)
                flip = np.linalg.det(A[:, :2]) < 0
                flipped += flip
                if flip:
                    mirrored = uv[FLIP_PERMUTATION]
                    # the mirrored-back order of joints matches the unflipped crop's up to the jitter
                    assert np.corrcoef(mirrored[:, 1], base[:, 1])[0, 1] > 0.8
    assert flipped > 0
    # depth targets do not depend on the image augmentation
    it0, p0 = ds[0], plain[0]
    for c in range(2):
        A = it0["affine"][c].numpy().astype(float)
        perm = FLIP_PERMUTATION if np.linalg.det(A[:, :2]) < 0 else np.arange(17)
        sa, sp = (
            np.sqrt(abs(np.linalg.det(A[:, :2]))),
            np.sqrt(abs(np.linalg.det(p0["affine"][c].numpy()[:, :2]))),
        )
        np.testing.assert_allclose(
            it0["target"][c, :, 2].numpy() / sa, p0["target"][c, perm, 2].numpy() / sp, rtol=1e-3, atol=1e-5
        )


def test_the_crop_cache_is_reused_and_rebuilt_when_inputs_change(clip, tmp_path):
    rig, poses, videos, p2d, lab, folder = clip
    _, cache = _datasets(clip, tmp_path / "cache")
    stamp = (cache.path / "crops.npy").stat().st_mtime_ns
    _, again = _datasets(clip, tmp_path / "cache")
    assert (again.path / "crops.npy").stat().st_mtime_ns == stamp  # reused
    fl = footage_labels(lab, p2d)
    p2 = Poses2D(
        keypoints=p2d.keypoints + 2.0, scores=p2d.scores, image_size=p2d.image_size, K=p2d.K, dist=p2d.dist
    )
    table, _ = footage_table(videos, p2, fl)
    build_crop_cache(table, tmp_path / "cache", S)
    assert (tmp_path / "cache" / "crops.npy").stat().st_mtime_ns != stamp
    assert not list(tmp_path.glob("cache.tmp*"))


def test_bad_footage_is_one_clear_error_and_leaves_no_cache(clip, tmp_path):
    rig, poses, videos, p2d, lab, folder = clip
    fl = footage_labels(lab, p2d)
    # a video shorter than its labels
    short = write_clips(tmp_path / "short", rig, poses[:3], background=False, jitter=False)
    table, _ = footage_table(short, p2d, fl)
    with pytest.raises(InputError, match="shorter than its labels"):
        build_crop_cache(table, tmp_path / "cache", S)
    assert not (tmp_path / "cache").exists() and not list(tmp_path.glob("cache.tmp*"))
    # labels of another camera or frame count
    with pytest.raises(InputError, match="has 1 cameras but the footage has 2"):
        footage_labels(
            Labels(lab.poses3d_world, lab.poses3d_camera[:1], lab.valid, lab.reprojection_error[:1]), p2d
        )
    with pytest.raises(InputError, match="has 4 frames but the detections have 6"):
        footage_labels(
            Labels(
                lab.poses3d_world[:4], lab.poses3d_camera[:, :4], lab.valid[:4], lab.reprojection_error[:, :4]
            ),
            p2d,
        )
    with pytest.raises(InputError, match="1 videos/image folders given but"):
        footage_table(videos[:1], p2d, fl)
    # frames with no person: no crop, no target
    kp = p2d.keypoints.copy()
    kp[0, 2] = np.nan
    nobody = Poses2D(
        keypoints=kp, scores=np.where(np.isnan(kp[..., 0]), 0, 1), image_size=p2d.image_size, K=p2d.K
    )
    table, det = footage_table(videos, nobody)
    assert not table.present()[0, 2] and table.present()[1, 2]
    cache = build_crop_cache(table, tmp_path / "c2", S)
    ds = FootageDataset(cache, "2d", keypoints=det, augment=FootageAugment(enabled=False))
    it = ds[2]
    assert not it["mask"][0].any() and it["mask"][1, :, :2].all() and (it["images"][0] == 0).all()


def test_loader_workers_open_their_own_memory_map(clip, tmp_path):
    from epipolarpose.training.data import make_loader

    ds, cache = _datasets(clip, tmp_path / "cache", FootageAugment())
    assert ds.cache.crops.shape[:2] == (2, 6)  # opened here; workers open their own map
    batches = list(make_loader(ds, 2, shuffle=True, num_workers=1, seed=0))
    assert sum(b["images"].shape[0] for b in batches) == len(ds)
    assert batches[0]["images"].shape[1:] == (2, S, S, 3) and batches[0]["mask"].any()


def test_init_imagenet_loads_torchvision_weights_into_a_fresh_network(tmp_path):
    import torch

    from epipolarpose.models import PoseNet
    from epipolarpose.training.train import CONFIGS, TrainOptions, TrainTargets, build_module

    cfg = CONFIGS["tiny"]
    torch.manual_seed(1)
    trunk = PoseNet(cfg).backbone.state_dict()  # torchvision's names (conv1, bn1, layer1..4)
    torch.save(trunk, tmp_path / "resnet18.pth")
    opts = TrainOptions(supervision="full", out=tmp_path / "o", init_imagenet=tmp_path / "resnet18.pth")
    torch.manual_seed(2)
    module = build_module(opts, cfg, TrainTargets(), resumed=False)
    got = module.model.backbone.state_dict()
    assert all(torch.equal(got[k], trunk[k]) for k in trunk)
