"""A synthetic multi-view image dataset rendered on the fly, and its loader.

An item is one multi-view frame: the person of frame ``f`` rendered (and cropped) in every camera
of the rig, with the targets of every view. Frames come from motion-capture clips
(:func:`epipolarpose.mocap.load_clips`); the targets come from one of

* ground-truth 3D (``--supervision full``): the poses in every camera's frame;
* 3D labels (``self``/``rt``): ``labels.npz``'s ``poses3d_camera`` (C, F, J, 3) of any scale and
  ``valid`` (F, J), made scale-free by :func:`~epipolarpose.training.targets.make_targets`;
* ground-truth 2D only (``2d``): the projections, depth masked.

Rendering is seeded by ``(seed, epoch, frame)`` (``(seed, frame)`` without augmentation), so a
dataset gives the same images in any worker and any process, and new augmentations every epoch.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..camera import Rig
from ..errors import InputError
from ..mocap import load_clips
from ..synthetic.render import RenderConfig, render_view
from .targets import keypoint_targets, make_targets


@dataclass
class MultiViewFrames:
    """Ground-truth frames seen by a rig.

    Attributes:
        poses_world: (F, J, 3) mm, world z-up.
        clip: (F,) clip name of every frame.
        rig: the cameras (mm).
    """

    poses_world: np.ndarray
    clip: np.ndarray
    rig: Rig

    def __post_init__(self) -> None:
        self.poses_world = np.asarray(self.poses_world, dtype=np.float64)
        self.clip = np.asarray(self.clip).astype(str)
        if self.poses_world.ndim != 3 or self.poses_world.shape[0] == 0:
            raise InputError(f"the split is empty (poses of shape {self.poses_world.shape})")

    @classmethod
    def from_clips(
        cls, paths: list, rig: Rig, fps: float | None = 10.0, what: str = "split"
    ) -> MultiViewFrames:
        """Load BVH clips (resampled to ``fps``) as frames seen by ``rig``, keeping the frames
        :func:`in_view` of every camera."""
        if not paths:
            raise InputError(f"the {what} is empty: no motion-capture clips given")
        poses, clip, _ = load_clips(list(paths), fps=fps)
        keep = in_view(poses, rig)
        if not keep.any():
            raise InputError(
                f"the {what} is empty: no frame of its {len(paths)} clips is in view of every camera"
            )
        return cls(poses[keep], clip[keep], rig)

    @property
    def num_frames(self) -> int:
        return self.poses_world.shape[0]

    @property
    def num_cameras(self) -> int:
        return len(self.rig)

    def poses_camera(self) -> np.ndarray:
        """(C, F, J, 3) ground truth in every camera's frame, mm."""
        return self.rig.world_to_camera(self.poses_world)

    def keypoints(self) -> np.ndarray:
        """(C, F, J, 2) ground-truth 2D (distorted pixels)."""
        return self.rig.project(self.poses_world)


def in_view(poses_world: np.ndarray, rig: Rig, min_depth: float = 300.0) -> np.ndarray:
    """(F,) bool: every joint at least ``min_depth`` (mm) in front of every camera and the root
    inside every image — the frames a multi-view dataset keeps (a walking clip may leave the
    capture volume)."""
    Xc = rig.world_to_camera(poses_world)  # (C, F, J, 3)
    uv = rig.project(poses_world[:, 0])  # (C, F, 2)
    size = np.array([c.image_size for c in rig], dtype=np.float64)[:, None]
    inside = ((uv >= 0) & (uv < size)).all(-1)
    return (Xc[..., 2] > min_depth).all(-1).all(0) & inside.all(0)


class MultiViewDataset(Dataset):
    """Rendered multi-view frames with targets (see the module docstring).

    ``dataset[f]`` is a dict of tensors for frame ``f`` and its C views:
    ``images`` (C, S, S, 3) uint8 RGB; ``target`` (C, J, 3) float32 normalized volume coordinates;
    ``mask`` (C, J, 3) bool; ``affine`` (C, 2, 3) image -> crop; ``K`` (C, 3, 3); ``dist`` (C, 5);
    ``gt_camera`` (C, J, 3) ground truth in mm in each camera's frame; ``frame`` () int64.
    """

    def __init__(
        self,
        frames: MultiViewFrames,
        render: RenderConfig,
        supervision: str = "full",
        labels_camera: np.ndarray | None = None,
        labels_valid: np.ndarray | None = None,
        *,
        depth_range: float = 1.0,
        seed: int = 0,
    ):
        self.frames = frames
        self.render = render
        self.supervision = supervision
        self.depth_range = depth_range
        self.seed = int(seed)
        self.epoch = 0
        C, F = frames.num_cameras, frames.num_frames
        if supervision in ("self", "rt") and labels_camera is not None:
            labels_camera = np.asarray(labels_camera)
            if labels_camera.shape[:2] != (C, F):
                raise InputError(
                    f"labels have {labels_camera.shape[0]} cameras x {labels_camera.shape[1]} frames, "
                    f"but the dataset has {C} cameras x {F} frames"
                )
            if labels_valid is not None and np.asarray(labels_valid).shape[0] != F:
                raise InputError(
                    f"labels 'valid' has {np.asarray(labels_valid).shape[0]} frames, dataset {F}"
                )
        self.labels_camera = labels_camera
        self.labels_valid = labels_valid
        self._gt_camera = frames.poses_camera().astype(np.float32)
        self._K = frames.rig.K.astype(np.float32)
        self._dist = frames.rig.dist.astype(np.float32)

    def __len__(self) -> int:
        return self.frames.num_frames

    def set_epoch(self, epoch: int) -> None:
        """New augmentations every epoch (called by the training module)."""
        self.epoch = int(epoch)

    def rng(self, index: int) -> np.random.Generator:
        key = [self.seed, self.epoch, index] if self.render.augment else [self.seed, index]
        return np.random.default_rng(key)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rig = self.frames.rig
        rng = self.rng(index)
        pose = self.frames.poses_world[index]
        views = [render_view(pose, cam, rng, self.render) for cam in rig]
        A = np.stack([v.affine for v in views])
        S = self.render.size
        if self.supervision == "2d":
            target, mask = keypoint_targets(rig.project(pose), A, S)
        else:
            if self.labels_camera is None:
                lab, valid = self._gt_camera[:, index], None
            else:
                lab = self.labels_camera[:, index]
                valid = None if self.labels_valid is None else self.labels_valid[index][None]
            target, mask = make_targets(
                lab, self._K, self._dist, A, S, depth_range=self.depth_range, valid=valid
            )
        return {
            "images": torch.from_numpy(np.stack([v.image for v in views])),
            "target": torch.from_numpy(target),
            "mask": torch.from_numpy(mask),
            "affine": torch.from_numpy(A.astype(np.float32)),
            "K": torch.from_numpy(self._K),
            "dist": torch.from_numpy(self._dist),
            "gt_camera": torch.from_numpy(self._gt_camera[:, index]),
            "frame": torch.tensor(index, dtype=torch.int64),
        }


def eval_render_config(render: RenderConfig) -> RenderConfig:
    """The evaluation variant of a render config: no crop/colour jitter (backgrounds stay random,
    seeded per frame, as does the occluder draw)."""
    return replace(render, augment=False)


def make_loader(
    dataset: Dataset, frames_per_batch: int, shuffle: bool, num_workers: int = 0, seed: int = 0
) -> DataLoader:
    """A DataLoader of multi-view frames (each batch holds ``frames_per_batch`` x C images)."""
    g = torch.Generator()
    g.manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=max(1, frames_per_batch),
        shuffle=shuffle,
        num_workers=num_workers,
        persistent_workers=False,
        drop_last=False,
        generator=g if shuffle else None,
    )
