"""Training runs for every supervision mode, and the inference helpers they need.

* ``2d``: the 2D network (``depth_bins = 1``) on ground-truth 2D of its clips (the paper pretrains
  on MPII; here a set of clips disjoint from the 3D training clips).
* ``self`` (the paper): a frozen copy of the 2D network (``init_2d``) detects the joints in every
  view of the training frames -> :class:`~epipolarpose.formats.Poses2D` ->
  ``label_poses(..., rig=None)`` (no extrinsics) -> ``labels.npz``; the 3D network starts from the
  2D one (:meth:`PoseNet.from_2d`). ``labels`` skips the detection; ``online`` triangulates inside
  the training loop with a known or self-calibrated rig (``label_rig``).
* ``rt``: the same with the known extrinsics (``label_poses(..., rig=rig)``).
* ``full``: ground-truth 3D.

:func:`train` runs Lightning with checkpoints (``OUT/checkpoints/last.ckpt``, resumed
automatically), CSV and TensorBoard logs (``OUT/logs``), a progress bar, seeds, any
devices/precision/strategy, and writes ``OUT/model.pt`` (:func:`epipolarpose.models.save_checkpoint`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from tqdm import tqdm

from ..camera import Rig
from ..errors import InputError
from ..formats import Labels, Poses2D
from ..io import save_json
from ..labelling import label_poses
from ..mocap import list_shared_clips
from ..models.checkpoint import load_model, save_checkpoint, weights_digest_callback
from ..models.posenet import PoseNet, PoseNetConfig
from ..synthetic.render import RenderConfig
from .data import MultiViewDataset, MultiViewFrames, eval_render_config, make_loader
from .module import SUPERVISIONS, PoseModule, images_to_input
from .targets import prediction_to_image, targets_to_camera

#: Named network configurations (``--config``).
CONFIGS: dict[str, PoseNetConfig] = {
    "paper": PoseNetConfig.paper(),
    "cpu-small": PoseNetConfig.cpu_small(),
    "tiny": PoseNetConfig(backbone="resnet18", input_size=64, depth_bins=16, deconv_channels=32),
}


def model_config(name: str, supervision: str) -> PoseNetConfig:
    """The named configuration; 2D supervision gets ``depth_bins = 1``."""
    if name not in CONFIGS:
        raise InputError(f"unknown --config {name!r}; choose one of {', '.join(CONFIGS)}")
    cfg = CONFIGS[name]
    return replace(cfg, depth_bins=1) if supervision == "2d" else cfg


def default_shared() -> Path:
    """The shared data folder: ``$EPIPOLARPOSE_SHARED`` or ``../shared``."""
    return Path(os.environ.get("EPIPOLARPOSE_SHARED", "../shared"))


def resolve_clips(specs: list[str], shared: Path | None = None, max_clips: int | None = None) -> list[Path]:
    """BVH files from ``specs``: files, folders (every ``*.bvh`` below) or ``train``/``test`` (the
    shared mocap's clip split). ``max_clips`` keeps an evenly spaced subset."""
    out: list[Path] = []
    for s in specs:
        p = Path(s)
        if s in ("train", "test"):
            out += list_shared_clips(shared or default_shared(), s)
        elif p.is_dir():
            out += sorted(p.rglob("*.bvh"))
        elif p.is_file():
            out.append(p)
        else:
            raise InputError(f"clip {s!r}: no such file or folder (or use 'train'/'test')")
    out = list(dict.fromkeys(out))
    if max_clips is not None and len(out) > max_clips:
        idx = np.linspace(0, len(out) - 1, max_clips).round().astype(int)
        out = [out[i] for i in idx]
    if not out:
        raise InputError(f"the split is empty: no BVH clips found in {', '.join(specs) or '(none)'}")
    return out


@torch.no_grad()
def predict_dataset(
    model: PoseNet,
    dataset: MultiViewDataset,
    frames_per_batch: int = 8,
    num_workers: int = 0,
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """Run ``model`` on every view of every frame.

    Returns:
        ``pred`` (C, F, J, 3) normalized volume coordinates, ``affine`` (C, F, 2, 3),
        ``gt_camera`` (C, F, J, 3) mm, ``camera_mm`` (C, F, J, 3) predictions in mm in each camera
        frame with the ground-truth root depth (3D models only).
    """
    model.eval()
    device = next(model.parameters()).device
    loader = make_loader(dataset, frames_per_batch, shuffle=False, num_workers=num_workers)
    preds, affines, gts, Ks, dists = [], [], [], [], []
    for batch in tqdm(loader, desc="predict", disable=not progress, leave=False):
        B, C = batch["images"].shape[:2]
        out = model(images_to_input(batch["images"].flatten(0, 1).to(device)))
        preds.append(out["joints3d"].float().cpu().numpy().reshape(B, C, -1, 3))
        affines.append(batch["affine"].double().numpy())
        gts.append(batch["gt_camera"].double().numpy())
        Ks.append(batch["K"].double().numpy())
        dists.append(batch["dist"].double().numpy())
    res = {
        "pred": np.concatenate(preds).swapaxes(0, 1),
        "affine": np.concatenate(affines).swapaxes(0, 1),
        "gt_camera": np.concatenate(gts).swapaxes(0, 1),
    }
    if model.config.is_3d:
        K, dist = np.concatenate(Ks).swapaxes(0, 1), np.concatenate(dists).swapaxes(0, 1)
        res["camera_mm"] = targets_to_camera(
            res["pred"],
            K,
            dist,
            res["affine"],
            model.config.input_size,
            res["gt_camera"][..., 0, 2],
            model.config.depth_range,
        )
    return res


def detect_2d(
    model: PoseNet, dataset: MultiViewDataset, frames_per_batch: int = 8, progress: bool = True
) -> Poses2D:
    """Detections of a (frozen) network in every view of ``dataset``, as image-pixel :class:`Poses2D`."""
    res = predict_dataset(model, dataset, frames_per_batch, progress=progress)
    kp = prediction_to_image(res["pred"], res["affine"], model.config.input_size)
    rig = dataset.frames.rig
    return Poses2D(
        keypoints=kp.astype(np.float32),
        scores=np.ones(kp.shape[:-1], np.float32),
        image_size=np.array([c.image_size for c in rig]),
        camera_names=rig.names,
        K=rig.K,
        dist=rig.dist,
    )


def reliable_labels(
    valid: np.ndarray, reprojection_error: np.ndarray, factor: float = 2.0, floor_px: float = 2.0
) -> np.ndarray:
    """Label joints to train on: ``valid`` and a mean reprojection error over the views that saw
    them of at most ``max(factor * median, floor_px)`` pixels (the median over all valid joints).

    A pseudo-label's reprojection error is a strong hint of its 3D error (learning benchmark: the
    ~20 % of joints above 2x the median hold labels 3x worse than the rest), but dropping them
    made the trained network *worse* there (they are the hard poses the network must learn), so
    training keeps every valid joint by default (``factor <= 0``). ``floor_px`` keeps near-exact
    labels (e.g. from ground-truth 2D) from being cut by a tiny median.

    Args:
        valid: (F, J) bool. reprojection_error: (C, F, J) pixels, NaN where not observed.
    Returns:
        (F, J) bool.
    """
    valid = np.asarray(valid, bool)
    if factor <= 0:
        return valid
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        err = np.nanmean(np.asarray(reprojection_error, np.float64), axis=0)  # (F, J)
    ok = valid & np.isfinite(err)
    if not ok.any():
        return valid
    thresh = max(factor * float(np.median(err[ok])), floor_px)
    return valid & ~(np.isfinite(err) & (err > thresh))


def pseudo_labels(poses2d: Poses2D, rig: Rig | None = None, *, progress: bool = True) -> Labels:
    """``label_poses`` (no extrinsics when ``rig`` is None, ``self``; known ones otherwise, ``rt``);
    ``progress`` shows its progress bars on stderr."""
    return label_poses(poses2d, rig=rig, progress=progress).labels


def _read_ckpt(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise InputError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - any failure means "not a checkpoint"
        raise InputError(f"checkpoint {path} cannot be read ({type(e).__name__}: {e})") from e


def load_2d(path: str | os.PathLike, config: PoseNetConfig) -> PoseNet:
    """The 2D network of ``path``; :class:`InputError` if its architecture differs from ``config``'s."""
    model, cfg, _ = load_model(path)
    want = replace(config, depth_bins=cfg.depth_bins, depth_range=cfg.depth_range)
    if cfg != want:
        raise InputError(f"--init-2d {path} is from another configuration ({cfg.diff(want)})")
    return model


@dataclass
class TrainOptions:
    """Everything ``epipolarpose train`` takes (see its ``--help``)."""

    supervision: str
    out: Path
    clips: list[Path] = field(default_factory=list)
    rig: Path | None = None
    val_clips: list[Path] = field(default_factory=list)
    labels: Path | None = None
    init_2d: Path | None = None
    online: bool = False
    label_rig: Path | None = None
    config: str = "cpu-small"
    fps: float = 10.0
    epochs: int | None = None
    max_steps: int = -1
    batch_size: int = 32
    lr: float = 1e-3
    devices: str = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    accelerator: str = "auto"
    seed: int = 0
    resume: Path | None = None
    num_workers: int = 0
    label_filter: float = 0.0
    render: RenderConfig | None = None
    checkpoint_every: int = 200
    progress: bool = True
    log_every: int = 10
    #: real images instead of rendered clips (training/real.py): footage or a dataset
    footage: Any = None  # real.FootageOptions
    dataset: Any = None  # real.DatasetOptions
    init_imagenet: Path | None = None


def _parse_devices(devices: str) -> Any:
    """``--devices`` as Lightning takes it: ``"auto"``, a count, a list of indices or a string."""
    if devices == "auto":
        return "auto"
    try:
        return int(devices)
    except ValueError:
        return [int(x) for x in devices.split(",")] if "," in devices else devices


@dataclass(frozen=True)
class TrainData:
    """The training split: network configuration, rig, frames and image rendering."""

    config: PoseNetConfig
    rig: Rig
    frames: MultiViewFrames
    render: RenderConfig


@dataclass(frozen=True)
class TrainTargets:
    """What the network learns from, beyond the frames' own ground truth.

    Attributes:
        labels_camera: (C, F, J, 3) pseudo-labels in camera frames (``self``/``rt`` offline), else None.
        labels_valid: (F, J) bool joints to train on, else None.
        init_2d: the frozen 2D network (``--init-2d``), else None.
        label_rig_json: the rig to triangulate with online (rig.json text), else None.
    """

    labels_camera: np.ndarray | None = None
    labels_valid: np.ndarray | None = None
    init_2d: PoseNet | None = None
    label_rig_json: str | None = None


def check_options(opts: TrainOptions) -> PoseNetConfig:
    """The network configuration of ``opts``; :class:`InputError` for inconsistent options."""
    sup = opts.supervision
    if sup not in SUPERVISIONS:
        raise InputError(f"unknown supervision {sup!r}; choose one of {', '.join(SUPERVISIONS)}")
    if opts.online and sup not in ("self", "rt"):
        raise InputError("--online applies to --supervision self or rt")
    if opts.batch_size < 1:
        raise InputError(f"--batch-size must be >= 1, got {opts.batch_size}")
    return model_config(opts.config, sup)


def load_training_data(opts: TrainOptions) -> TrainData:
    """Check ``opts``, load the rig, seed everything and resample the training clips."""
    cfg = check_options(opts)
    rig = Rig.load(opts.rig or default_shared() / "data/rigs/h36m_S1.json")
    L.seed_everything(opts.seed, workers=True, verbose=False)
    frames = MultiViewFrames.from_clips(opts.clips, rig, opts.fps, what="training split")
    render = opts.render or RenderConfig(size=cfg.input_size)
    if render.size != cfg.input_size:
        raise InputError(f"render size {render.size} differs from the network input {cfg.input_size}")
    return TrainData(cfg, rig, frames, render)


def resume_checkpoint(opts: TrainOptions, cfg: PoseNetConfig) -> Path | None:
    """The checkpoint to resume from (``opts.resume``, else ``OUT/checkpoints/last.ckpt`` if present),
    checked to come from the same configuration and supervision; None to start afresh."""
    ckpt_path = opts.resume
    auto = Path(opts.out) / "checkpoints" / "last.ckpt"
    if ckpt_path is None and auto.is_file():
        ckpt_path = auto
    if ckpt_path is None:
        return None
    hp = _read_ckpt(Path(ckpt_path)).get("hyper_parameters") or {}
    theirs = hp.get("model_config")
    if theirs is None:
        raise InputError(f"checkpoint {ckpt_path} has no model_config: not written by 'epipolarpose train'")
    their_cfg = PoseNetConfig.from_dict(dict(theirs), source=f"checkpoint {ckpt_path}")
    if their_cfg != cfg or hp.get("supervision") != opts.supervision:
        raise InputError(
            f"cannot resume from {ckpt_path}: it was trained with --supervision {hp.get('supervision')} "
            f"and a different configuration ({their_cfg.diff(cfg) or 'same network'}); use another --out"
        )
    return Path(ckpt_path)


def build_trainer(opts: TrainOptions) -> Any:
    """The Lightning trainer (checkpoints, CSV/TensorBoard logs, progress bar) of ``opts``.

    Built before any output is written, so that invalid device/precision settings fail first.
    """
    out = Path(opts.out)
    # Lightning's banners, tips ("💡 Tip: ...") and deprecation notices are not ours to print
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module=r"lightning\.")
    ckpt_cb = ModelCheckpoint(
        dirpath=out / "checkpoints",
        save_last=True,
        save_top_k=0,
        every_n_train_steps=max(1, opts.checkpoint_every),
        save_on_train_epoch_end=True,
    )
    callbacks: list[Any] = [ckpt_cb, weights_digest_callback()]
    if opts.progress:
        callbacks.append(TQDMProgressBar(refresh_rate=5))
    try:
        return L.Trainer(
            default_root_dir=out,
            max_epochs=opts.epochs if opts.epochs is not None else (-1 if opts.max_steps > 0 else 10),
            max_steps=opts.max_steps,
            accelerator=opts.accelerator,
            devices=_parse_devices(opts.devices),
            num_nodes=opts.num_nodes,
            strategy=opts.strategy,
            precision=opts.precision,
            logger=[CSVLogger(out / "logs", name="csv"), TensorBoardLogger(out / "logs", name="tensorboard")],
            callbacks=callbacks,
            enable_progress_bar=opts.progress,
            enable_model_summary=False,
            log_every_n_steps=opts.log_every,
            num_sanity_val_steps=0,
            check_val_every_n_epoch=1,
        )
    except (ValueError, RuntimeError) as e:  # Lightning's MisconfigurationException is a ValueError
        raise InputError(
            f"invalid trainer settings (--devices/--strategy/--precision/--accelerator): {e}"
        ) from None


def online_label_rig(opts: TrainOptions, rig: Rig) -> str:
    """The rig.json text ``--online`` triangulates with: ``--label-rig``, else the known rig (``rt``)."""
    if opts.init_2d is None:
        raise InputError("--online needs --init-2d (the frozen 2D network that detects the joints)")
    if opts.label_rig is not None:
        return Rig.load(opts.label_rig).to_json()
    if opts.supervision == "rt":
        return rig.to_json()
    raise InputError("--supervision self --online needs --label-rig (a self-calibrated rig.json)")


def make_pseudo_labels(opts: TrainOptions, data: TrainData, init_2d: PoseNet | None) -> Path:
    """The labels.npz to train on: ``--labels``, else ``OUT/labels.npz``, made if missing from the
    frozen 2D network's detections (also written, ``OUT/poses2d.npz``) triangulated without
    (``self``) or with (``rt``) the rig's extrinsics."""
    if opts.labels is not None:
        return Path(opts.labels)
    if init_2d is None:
        raise InputError(f"--supervision {opts.supervision} needs --labels labels.npz or --init-2d CKPT")
    out = Path(opts.out)
    labels_path = out / "labels.npz"
    if not labels_path.is_file():
        out.mkdir(parents=True, exist_ok=True)
        det_set = MultiViewDataset(data.frames, eval_render_config(data.render), "2d", seed=opts.seed)
        p2d = detect_2d(init_2d, det_set, progress=opts.progress)
        p2d.save(out / "poses2d.npz")
        pseudo_labels(p2d, data.rig if opts.supervision == "rt" else None).save(labels_path)
    return labels_path


def load_pseudo_labels(
    labels_path: Path, frames: MultiViewFrames, label_filter: float
) -> tuple[np.ndarray, np.ndarray]:
    """Camera-frame labels (C, F, J, 3) and the joints to train on (F, J) (:func:`reliable_labels`)."""
    lab = Labels.load(labels_path)
    if lab.poses3d_camera.shape[:2] != (frames.num_cameras, frames.num_frames):
        raise InputError(
            f"{labels_path}: labels have {lab.poses3d_camera.shape[0]} cameras x "
            f"{lab.poses3d_camera.shape[1]} frames, but the training split has "
            f"{frames.num_cameras} cameras x {frames.num_frames} frames (clips, --fps and --rig must "
            "be the ones the labels were made from)"
        )
    return lab.poses3d_camera, reliable_labels(lab.valid, lab.reprojection_error, label_filter)


def training_targets(opts: TrainOptions, data: TrainData) -> TrainTargets:
    """Load ``--init-2d`` and, for ``self``/``rt``, the online label rig or the (made) pseudo-labels."""
    init2d = load_2d(opts.init_2d, data.config) if opts.init_2d is not None else None
    if opts.supervision not in ("self", "rt"):
        return TrainTargets(init_2d=init2d)
    if opts.online:
        return TrainTargets(init_2d=init2d, label_rig_json=online_label_rig(opts, data.rig))
    labels_path = make_pseudo_labels(opts, data, init2d)
    labels_camera, labels_valid = load_pseudo_labels(labels_path, data.frames, opts.label_filter)
    return TrainTargets(labels_camera, labels_valid, init2d)


def make_loaders(opts: TrainOptions, data: TrainData, targets: TrainTargets) -> tuple[Any, Any | None]:
    """Training and (with ``val_clips``) validation loaders of whole multi-view frames."""
    cfg, frames, sup = data.config, data.frames, opts.supervision
    mode = "2d" if sup == "2d" else sup
    train_set = MultiViewDataset(
        frames,
        data.render,
        mode,
        targets.labels_camera,
        targets.labels_valid,
        depth_range=cfg.depth_range,
        seed=opts.seed,
    )
    frames_per_batch = max(1, opts.batch_size // frames.num_cameras)
    train_loader = make_loader(train_set, frames_per_batch, True, opts.num_workers, opts.seed)
    if not opts.val_clips:
        return train_loader, None
    val_frames = MultiViewFrames.from_clips(opts.val_clips, data.rig, opts.fps, what="validation split")
    val_set = MultiViewDataset(
        val_frames,
        eval_render_config(data.render),
        "full" if cfg.is_3d else "2d",
        depth_range=cfg.depth_range,
        seed=opts.seed + 1,
    )
    return train_loader, make_loader(val_set, frames_per_batch, False, opts.num_workers)


def build_module(
    opts: TrainOptions, cfg: PoseNetConfig, targets: TrainTargets, *, resumed: bool
) -> PoseModule:
    """The Lightning module; a fresh run starts from ``--init-2d`` (lifted to 3D by
    :meth:`PoseNet.from_2d` for a 3D network)."""
    module = PoseModule(
        cfg.to_dict(),
        opts.supervision,
        lr=opts.lr,
        online=opts.online,
        detector_ckpt=str(opts.init_2d) if opts.online else None,
        label_rig_json=targets.label_rig_json,
    )
    init2d = targets.init_2d
    if init2d is not None and not resumed:
        if cfg.is_3d:
            module.model.load_state_dict(
                PoseNet.from_2d(init2d, cfg.depth_bins, cfg.depth_range).state_dict()
            )
        else:
            module.model.load_state_dict(init2d.state_dict())
    elif opts.init_imagenet is not None and not resumed:
        module.model.load_imagenet(opts.init_imagenet)  # torchvision's ResNet weights (.pth)
    return module


def fit(
    trainer: Any, module: PoseModule, loaders: tuple[Any, Any | None], out: Path, ckpt_path: Path | None
) -> None:
    """Run ``trainer.fit`` (Lightning's output on stderr) and save ``OUT/checkpoints/last.ckpt``."""
    out.mkdir(parents=True, exist_ok=True)
    with contextlib.redirect_stdout(sys.stderr):  # Lightning's progress bars and notices -> stderr
        trainer.fit(module, *loaders, ckpt_path=str(ckpt_path) if ckpt_path else None)
    # make sure the final state is resumable even if the step count is not a multiple of the period
    trainer.save_checkpoint(out / "checkpoints" / "last.ckpt")


def write_outputs(
    opts: TrainOptions,
    data: TrainData,
    trainer: Any,
    module: PoseModule,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The run's summary (plus ``extra``); the main process also writes ``OUT/model.pt`` and
    ``OUT/train_summary.json``. ``data`` needs only ``config`` and ``frames.num_frames/num_cameras``."""
    out, cfg, frames = Path(opts.out), data.config, data.frames
    summary = {
        "supervision": opts.supervision,
        "online": opts.online,
        "start_step": module.start_step,
        "global_step": int(trainer.global_step),
        "epochs": int(trainer.current_epoch),
        "images_per_s": module.images_per_second,
        "train_frames": frames.num_frames,
        "cameras": frames.num_cameras,
        **(extra or {}),
        "model_config": cfg.to_dict(),
        "checkpoint": str(out / "checkpoints" / "last.ckpt"),
        "model": str(out / "model.pt"),
        "metrics": {k: float(v) for k, v in trainer.callback_metrics.items()},
    }
    if trainer.is_global_zero:
        meta = {"supervision": opts.supervision, "global_step": summary["global_step"]}
        save_checkpoint(out / "model.pt", module.model, cfg, meta)
        save_json(out / "train_summary.json", summary)
    return summary


def train(opts: TrainOptions) -> dict[str, Any]:
    """Train as ``opts`` says; returns a summary (paths, steps, throughput).

    Stages: :func:`load_training_data`, :func:`resume_checkpoint`, :func:`build_trainer`,
    :func:`training_targets` (frozen-network detection and pseudo-labels), :func:`make_loaders`,
    :func:`build_module`, :func:`fit`, :func:`write_outputs`.

    Raises:
        InputError: empty split, labels whose camera/frame counts do not match the frames, a
            checkpoint (``init_2d``/``resume``) from another configuration, missing inputs.
    """
    if opts.footage is not None or opts.dataset is not None:
        from .real import train_real  # videos, image folders, Human3.6M, MPI-INF-3DHP

        return train_real(opts)
    data = load_training_data(opts)
    ckpt_path = resume_checkpoint(opts, data.config)
    trainer = build_trainer(opts)
    targets = training_targets(opts, data)
    loaders = make_loaders(opts, data, targets)
    module = build_module(opts, data.config, targets, resumed=ckpt_path is not None)
    fit(trainer, module, loaders, Path(opts.out), ckpt_path)
    return write_outputs(opts, data, trainer, module)


def summary_json(summary: dict[str, Any]) -> str:
    """The summary as indented JSON (for the CLI)."""
    return json.dumps(summary, indent=1, default=str)
