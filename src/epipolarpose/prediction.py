"""Predicting with a trained pose network (``epipolarpose predict``).

Two inputs:

* person crops (image files): :func:`predict_images` writes ``poses2d`` (N, J, 2) crop pixels,
  ``poses3d`` (N, J, 3) root-relative in units of the padded crop's side, ``crop_size`` (N,)
  (:func:`~epipolarpose.models.predict_crops`), and optionally overlay PNGs;
* a synthetic test split (motion-capture clips rendered through a rig): :func:`predict_clips`
  writes ``poses3d_camera`` (C, F, J, 3) mm (root depth from the ground truth, the paper's
  protocol) and the split's ``gt.npz``, the pair ``epipolarpose evaluate`` scores.

Either applies a refiner (:mod:`epipolarpose.refiner`) to the 3D poses when one is given, keeping
the raw poses under ``*_unrefined``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from .camera import Rig
from .device import resolve_device
from .errors import InputError
from .formats import GroundTruth
from .io import save_npz
from .models import PoseNet, PoseNetConfig, load_model, predict_crops
from .refiner import Refiner, load_refiner
from .skeleton import H36M_JOINTS, default_joint_names
from .synthetic import default_rig
from .synthetic.render import RenderConfig
from .training.data import MultiViewDataset, MultiViewFrames, eval_render_config
from .training.train import predict_dataset, resolve_clips

__all__ = [
    "ClipPrediction",
    "ClipSplit",
    "PredictOptions",
    "predict_clips",
    "predict_images",
    "read_rgb",
    "write_overlays",
]


@dataclass(frozen=True)
class PredictOptions:
    """How to run the network.

    Attributes:
        refiner: refiner checkpoint applied to the 3D poses (``epipolarpose refine train``), or None.
        batch_size: images per forward pass.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (:func:`~epipolarpose.device.resolve_device`).
    """

    refiner: Path | None = None
    batch_size: int = 32
    device: str = "auto"


@dataclass(frozen=True)
class ClipSplit:
    """A synthetic test split: motion-capture clips seen by a rig.

    Attributes:
        clips: BVH files, folders, or ``train``/``test`` of the shared split
            (:func:`~epipolarpose.training.train.resolve_clips`).
        rig_path: rig.json of the cameras (default: the bundled Human3.6M S9 rig).
        fps: resampling rate of the clips.
        max_clips: keep an evenly spaced subset of this many clips.
        seed: rendering seed.
    """

    clips: Sequence[str]
    rig_path: Path | None = None
    fps: float = 10.0
    max_clips: int | None = None
    seed: int = 0


@dataclass(frozen=True)
class ClipPrediction:
    """What :func:`predict_clips` wrote: ``frames`` x ``views`` predictions and their ground truth."""

    frames: int
    views: int
    gt_path: Path


def read_rgb(path: Path) -> np.ndarray:
    """Read an image file as RGB uint8 (H, W, 3); :class:`InputError` naming the file if unreadable."""
    if not path.is_file():
        raise InputError(f"image {path} does not exist")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise InputError(f"image {path} cannot be read (not an image OpenCV can decode)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def write_overlays(
    directory: Path,
    names: list[str],
    images: list[np.ndarray],
    poses2d: np.ndarray,
    poses3d: np.ndarray,
) -> None:
    """Write ``directory/<name>``: each RGB image (H, W, 3) with its 2D pose (J, 2) pixels beside a
    3D plot of its pose (J, 3) (camera frame shown with up = -y, depth = z)."""
    import matplotlib.pyplot as plt

    from .viz import draw_pose2d, plot_poses3d, save_figure

    directory.mkdir(parents=True, exist_ok=True)
    for name, image, p2, p3 in zip(names, images, poses2d, poses3d):
        fig = plt.figure(figsize=(8, 4), dpi=80)
        ax = fig.add_subplot(1, 2, 1)
        thickness = max(1, max(image.shape[:2]) // 150)
        bgr = draw_pose2d(cv2.cvtColor(image, cv2.COLOR_RGB2BGR), p2, thickness=thickness)
        ax.imshow(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        ax.set_axis_off()
        ax3 = fig.add_subplot(1, 2, 2, projection="3d")
        plot_poses3d(np.stack([p3[:, 0], p3[:, 2], -p3[:, 1]], -1), ax=ax3)
        ax3.set_xlabel("x")
        ax3.set_ylabel("depth")
        ax3.set_zlabel("up")
        save_figure(fig, directory / name, dpi=80)
        plt.close(fig)


def _load(checkpoint: Path, options: PredictOptions) -> tuple[PoseNet, PoseNetConfig, Refiner | None]:
    """The network, its configuration and the optional refiner, on ``options.device``."""
    dev = resolve_device(options.device)
    model, config, _ = load_model(checkpoint, map_location=dev)
    ref = load_refiner(options.refiner, map_location=dev) if options.refiner is not None else None
    return model, config, ref


def predict_images(
    checkpoint: Path,
    images: Sequence[Path],
    output: Path,
    *,
    overlays: Path | None = None,
    options: PredictOptions = PredictOptions(),
) -> int:
    """Predict the poses of person crops (any size; letterboxed to the network input) and write
    ``output`` (npz, keys in the module docstring, plus ``image_paths`` and ``joint_names``) and,
    with ``overlays``, ``NNNN_<stem>.png`` there. Returns the number of images."""
    model, config, ref = _load(checkpoint, options)
    if overlays is not None and config.num_joints != len(H36M_JOINTS):
        raise InputError(
            f"--overlays draws the {len(H36M_JOINTS)} Human3.6M joints; this network has {config.num_joints}"
        )
    for path in images:  # fail before any work if an input is missing
        if not path.is_file():
            raise InputError(f"image {path} does not exist")
    results: dict[str, list] = {"poses2d": [], "poses3d": [], "crop_size": []}
    step = options.batch_size
    for start in tqdm(range(0, len(images), step), desc="predict", unit="batch", disable=None):
        paths = images[start : start + step]
        rgb = [read_rgb(p) for p in paths]
        pred = predict_crops(model, rgb)
        for k in results:
            results[k].append(pred[k])
        if overlays is not None:
            names = [f"{start + i:04d}_{p.stem}.png" for i, p in enumerate(paths)]
            write_overlays(overlays, names, rgb, pred["poses2d"], pred["poses3d"])
    out = {k: np.concatenate(v).astype(np.float32) for k, v in results.items()}
    if ref is not None:
        out["poses3d_unrefined"] = out["poses3d"]
        out["poses3d"] = np.asarray(ref.refine(out["poses3d"]), dtype=np.float32)
    save_npz(
        output,
        **out,
        image_paths=np.array([str(p) for p in images]),
        joint_names=np.array(default_joint_names(config.num_joints)),
    )
    return len(images)


def predict_clips(
    checkpoint: Path,
    split: ClipSplit,
    output: Path,
    *,
    gt_out: Path | None = None,
    options: PredictOptions = PredictOptions(),
) -> ClipPrediction:
    """Render ``split``, predict every view and write ``output`` (``poses3d_camera`` (C, F, J, 3)
    mm, ``valid``, ``units``, ``joint_names``, ``rig_json``) and its ground truth ``gt_out``
    (default ``<output stem>_gt.npz``)."""
    model, config, ref = _load(checkpoint, options)
    if not config.is_3d:
        raise InputError("--clips evaluates a 3D network; this checkpoint is a 2D network (depth_bins = 1)")
    rig = Rig.load(split.rig_path) if split.rig_path is not None else default_rig()
    paths = resolve_clips(list(split.clips), max_clips=split.max_clips)
    frames = MultiViewFrames.from_clips(paths, rig, split.fps, what="--clips split")
    render = eval_render_config(RenderConfig(size=config.input_size))
    dataset = MultiViewDataset(frames, render, "full", seed=split.seed)
    frames_per_batch = max(1, options.batch_size // len(rig))
    res = predict_dataset(model, dataset, frames_per_batch=frames_per_batch, progress=True)
    cam = res["camera_mm"]  # (C, F, J, 3)
    out = {"poses3d_camera": cam.astype(np.float32)}
    if ref is not None:
        out["poses3d_camera_unrefined"] = out["poses3d_camera"]
        refined = ref.refine(cam.reshape(-1, *cam.shape[2:]))
        out["poses3d_camera"] = np.asarray(refined, np.float32).reshape(cam.shape)
    gt_path = gt_out or output.with_name(output.stem + "_gt.npz")
    save_npz(
        output,
        **out,
        valid=np.ones(cam.shape[1:3], bool),
        units=np.array("mm"),
        joint_names=np.array(H36M_JOINTS),
        rig_json=np.array(rig.to_json()),
    )
    GroundTruth(frames.poses_world.astype(np.float32), frames.clip, rig).save(gt_path)
    return ClipPrediction(frames=cam.shape[1], views=cam.shape[0], gt_path=gt_path)
