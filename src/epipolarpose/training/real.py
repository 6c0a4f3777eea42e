"""Training on real images: a user's footage (``train --videos ... --poses2d ...``) or a dataset
(``train --dataset h36m|3dhp --root DIR``), through the crop cache of :mod:`.footage`.

Footage, supervision by mode:

* ``self``: ``labels.npz`` made by ``epipolarpose label`` without a rig (self-calibration), or made
  here from ``poses2d.npz`` the same way when ``--labels`` is not given (``OUT/labels.npz``);
* ``rt``: labels triangulated with a known rig (``epipolarpose label --rig``, or ``--rig`` here);
* ``2d``: the detections of ``poses2d.npz`` themselves (the 2D network).

The detections play the paper's frozen 2D estimator. ``labels.npz``'s ``offsets`` (``--sync
auto``) map its timeline to each camera's detections and video frames (:func:`footage_table`).

Everything is checked before the first output; an :class:`InputError` leaves no output folder
that this run created. Checkpoints, resume, logs and ``model.pt`` are those of
:func:`epipolarpose.training.train.train`.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import lightning as L
import numpy as np

from ..camera import Rig
from ..errors import InputError
from ..formats import Labels, Poses2D
from ..labelling import label_poses
from .data import make_loader
from .footage import (
    FootageAugment,
    FootageDataset,
    ViewTable,
    build_crop_cache,
    footage_labels,
    footage_table,
)
from .train import (
    TrainOptions,
    TrainTargets,
    build_module,
    build_trainer,
    check_options,
    fit,
    load_2d,
    reliable_labels,
    resume_checkpoint,
    write_outputs,
)

__all__ = ["FootageOptions", "RealViews", "footage_views", "parse_frames", "train_real"]


@dataclass(frozen=True)
class FootageOptions:
    """A user's footage as training data.

    Attributes:
        videos: one video file or image folder per camera, in ``poses2d.npz``'s camera order.
        poses2d: the detections (``epipolarpose detect``).
        crop_cache: where the crops are cached (default ``OUT/crop_cache``; reused when unchanged).
        frames: (start, stop) label frames to train on (None: all), e.g. the first 70 %.
        augment: augmentation of the crops.
    """

    videos: list[Path]
    poses2d: Path
    crop_cache: Path | None = None
    frames: tuple[int, int | None] | None = None
    augment: FootageAugment = FootageAugment()


def parse_frames(text: str | None) -> tuple[int, int | None] | None:
    """``--frames START:STOP`` (either may be empty; ``0.7`` style fractions are not accepted)."""
    if text is None:
        return None
    try:
        a, b = text.split(":")
        start = int(a) if a.strip() else 0
        stop = int(b) if b.strip() else None
    except ValueError:
        raise InputError(f"--frames must look like START:STOP (e.g. 0:70 or 70:), got {text!r}") from None
    if start < 0 or (stop is not None and stop <= start):
        raise InputError(f"--frames {text}: need 0 <= START < STOP")
    return start, stop


@dataclass
class RealViews:
    """What a real-image training run trains on.

    Attributes:
        table: the views (:class:`~.footage.ViewTable`).
        supervision: the dataset's target mode ("2d" or a 3D mode).
        arrays: keyword arguments of :class:`~.footage.FootageDataset` (labels, K, dist, ...).
        frames: (F,) bool frames allowed (a range, a split).
        made: files to write into OUT (name -> object with ``save``), e.g. labels made here.
        summary: facts for ``train_summary.json``.
    """

    table: ViewTable
    supervision: str
    arrays: dict[str, Any]
    frames: np.ndarray
    made: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)


def _frame_range(F: int, frames: tuple[int, int | None] | None) -> np.ndarray:
    keep = np.ones(F, bool)
    if frames is not None:
        start, stop = frames
        if start >= F:
            raise InputError(
                f"--frames {start}:{stop if stop is not None else ''}: the labels have only {F} frames"
            )
        keep[:] = False
        keep[start : F if stop is None else min(stop, F)] = True
    return keep


def footage_views(opts: TrainOptions) -> RealViews:
    """Views, labels and targets of ``opts.footage`` (see the module docstring)."""
    fo: FootageOptions = opts.footage
    sup = opts.supervision
    if sup == "full":
        raise InputError("footage has no ground-truth 3D: use --supervision self, rt (3D) or 2d")
    p2d_path = Path(fo.poses2d)
    p2d = Poses2D.load(p2d_path)
    made: dict[str, Any] = {}
    summary: dict[str, Any] = {
        "source": "footage",
        "poses2d": str(p2d_path),
        "videos": [str(v) for v in fo.videos],
    }
    if sup == "2d":
        table, det = footage_table(fo.videos, p2d, None, src=str(p2d_path))
        valid = np.isfinite(det).all(-1)
        arrays = dict(keypoints=det, keypoints_valid=valid)
        has_target = (valid & table.present()[..., None]).any((0, 2))
    else:
        lab, lab_src = _footage_labels(opts, p2d, made)
        fl = footage_labels(lab, p2d, src=lab_src)
        trained = reliable_labels(fl.valid, lab.reprojection_error, opts.label_filter)
        table, _ = footage_table(fo.videos, p2d, fl, src=str(p2d_path))
        arrays = dict(labels_camera=fl.poses_camera, labels_valid=trained, K=fl.K, dist=fl.dist)
        finite = np.isfinite(fl.poses_camera).all(-1) & trained[None]
        has_target = (finite & table.present()[..., None]).any((0, 2))
        summary.update(labels=lab_src, offsets=fl.offsets.tolist())
    keep = _frame_range(table.num_frames, fo.frames)
    summary["frames_without_person"] = int((keep & ~has_target).sum())
    frames = keep & has_target
    if not frames.any():
        raise InputError(
            f"no frame of the footage has a person with {'detections' if sup == '2d' else 'labels'} "
            f"(in --frames {fo.frames}): nothing to train on"
            if fo.frames
            else f"no frame of the footage has a person with {'detections' if sup == '2d' else 'labels'}: "
            "nothing to train on"
        )
    return RealViews(table, sup, arrays, frames, made, summary)


def _footage_labels(opts: TrainOptions, p2d: Poses2D, made: dict[str, Any]) -> tuple[Labels, str]:
    """``--labels``, else ``OUT/labels.npz`` from an earlier run, else labels made now from the
    detections: self-calibrated (``self``) or with ``--rig`` (``rt``)."""
    if opts.labels is not None:
        return Labels.load(opts.labels), str(opts.labels)
    own = Path(opts.out) / "labels.npz"
    if own.is_file():
        return Labels.load(own), str(own)
    if opts.supervision == "rt":
        if opts.rig is None:
            raise InputError(
                "--supervision rt on footage needs --labels (made with a known rig) or --rig rig.json"
            )
        rig = Rig.load(opts.rig)
        if len(rig) != p2d.num_cameras:
            raise InputError(f"--rig {opts.rig} has {len(rig)} cameras, the detections {p2d.num_cameras}")
    else:
        rig = None
    lab = label_poses(p2d, rig=rig, progress=opts.progress).labels
    made["labels.npz"] = lab
    return lab, str(own)


def train_real(opts: TrainOptions) -> dict[str, Any]:
    """Train on footage or a dataset (``opts.footage`` / ``opts.dataset``); returns the summary."""
    cfg = check_options(opts)
    if opts.online:
        raise InputError("--online applies to rendered clips; footage and datasets use offline labels")
    if opts.footage is not None and opts.dataset is not None:
        raise InputError("give either --videos (footage) or --dataset, not both")
    out = Path(opts.out)
    created = not out.exists()
    try:
        ckpt_path = resume_checkpoint(opts, cfg)
        trainer = build_trainer(opts)
        L.seed_everything(opts.seed, workers=True, verbose=False)
        init2d = load_2d(opts.init_2d, cfg) if opts.init_2d is not None else None
        if opts.footage is not None:
            views = footage_views(opts)
            cache_dir = opts.footage.crop_cache or out / "crop_cache"
            augment = opts.footage.augment
        else:
            from .datasets import dataset_views

            views = dataset_views(opts, cfg, init2d)
            cache_dir = opts.dataset.crop_cache or out / "crop_cache"
            augment = opts.dataset.augment
        cache = build_crop_cache(views.table, cache_dir, cfg.input_size, progress=opts.progress)
        if "prepare" in views.arrays:  # labels that need the crops (a frozen 2D network's detections)
            views.arrays.update(views.arrays.pop("prepare")(cache))
        frames = np.flatnonzero(views.frames & cache.present.any(0))
        if len(frames) == 0:
            raise InputError("no view could be cropped: nothing to train on")
        dataset = FootageDataset(
            cache,
            views.supervision,
            frames=frames,
            augment=augment,
            depth_range=cfg.depth_range,
            seed=opts.seed,
            **views.arrays,
        )
        source_ips = dataset.throughput()
        C = views.table.num_cameras
        loader = make_loader(dataset, max(1, opts.batch_size // C), True, opts.num_workers, opts.seed)
        module = build_module(opts, cfg, TrainTargets(init_2d=init2d), resumed=ckpt_path is not None)
        out.mkdir(parents=True, exist_ok=True)
        for name, obj in views.made.items():
            obj.save(out / name)
    except (InputError, KeyboardInterrupt):
        if created and out.exists():
            shutil.rmtree(out, ignore_errors=True)
        raise
    fit(trainer, module, (loader, None), out, ckpt_path)
    data = SimpleNamespace(config=cfg, frames=SimpleNamespace(num_frames=len(dataset), num_cameras=C))
    extra = {
        **views.summary,
        "crop_cache": str(cache.path),
        "source_images_per_s": source_ips,
        "views_trained": int(cache.present[:, frames].sum()),
    }
    return write_outputs(opts, data, trainer, module, extra)
