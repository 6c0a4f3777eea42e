"""Training the refinement unit on motion capture seen through random virtual cameras.

The refiner (:class:`~epipolarpose.refiner.Refiner`) never sees images: its training pairs are
(clean, noisy) root-relative 3D poses in a virtual camera's frame. Clean poses come from motion
capture (world z-up, mm) viewed by random cameras (:class:`~epipolarpose.refiner.VirtualCameras`);
noisy poses are the clean ones corrupted by an :class:`~epipolarpose.refiner.ErrorModel`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..device import resolve_device
from ..errors import InputError
from ..mocap import load_mocap_poses
from ..skeleton import ROOT
from .cameras import VirtualCameras
from .error_model import ErrorModel
from .model import Refiner
from .sources import ErrorSource

__all__ = [
    "RefinerRun",
    "RefinerTrainConfig",
    "make_pairs",
    "refiner_loss",
    "train_refiner",
    "train_refiner_on_mocap",
]


def make_pairs(
    poses_world: np.ndarray,
    error_model: ErrorModel,
    rng: np.random.Generator,
    cameras_per_pose: int = 1,
    cameras: VirtualCameras | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Training pairs: world poses (N, J, 3) -> (clean, noisy), each (N * cameras_per_pose, J, 3),
    root-relative camera-frame (clean) and corrupted by ``error_model`` (noisy)."""
    cameras = cameras or VirtualCameras()
    clean = cameras.view(np.repeat(np.asarray(poses_world), cameras_per_pose, axis=0), rng)
    return clean, error_model.sample(clean, rng)


@dataclass
class RefinerTrainConfig:
    """Hyper-parameters of :func:`train_refiner` (defaults: the paper's MLP, a CPU-sized budget)."""

    epochs: int = 20
    batch_size: int = 256
    lr: float = 1e-3
    lr_decay: float = 0.95  #: multiplicative learning-rate decay per epoch
    weight_decay: float = 0.0
    cameras_per_pose: int = 4
    hidden: int = 1024
    blocks: int = 2
    dropout: float = 0.1
    loss: str = "mse"  #: "mse" or "smooth_l1", in the normalized space
    intermediate_weight: float = 1.0
    max_grad_norm: float = 1.0
    seed: int = 0
    device: str = "auto"
    cameras: VirtualCameras = field(default_factory=VirtualCameras)


def refiner_loss(
    model: Refiner,
    noisy_n: torch.Tensor,
    clean_n: torch.Tensor,
    loss: str = "mse",
    intermediate_weight: float = 1.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Loss of a batch in the normalized space: ``final + intermediate_weight * sum(intermediate)``.

    Args:
        model: a :class:`~epipolarpose.refiner.Refiner`.
        noisy_n, clean_n: (B, J*3) normalized noisy inputs and clean targets.
    Returns:
        ``(total loss tensor, {"final": float, "intermediate": float})``.
    """
    fn = {"mse": F.mse_loss, "smooth_l1": F.smooth_l1_loss}.get(loss)
    if fn is None:
        raise InputError(f"unknown refiner loss '{loss}' (use mse or smooth_l1)")
    final, inter = model(noisy_n)
    l_final = fn(final, clean_n)
    l_inter = sum((fn(p, clean_n) for p in inter), start=l_final.new_zeros(()))
    total = l_final + intermediate_weight * l_inter
    return total, {"final": float(l_final.detach()), "intermediate": float(l_inter.detach())}


def train_refiner(
    poses_world: np.ndarray,
    error_model: ErrorModel,
    config: RefinerTrainConfig | None = None,
    progress: bool = True,
) -> tuple[Refiner, list[dict[str, float]]]:
    """Train a refiner on motion capture through random virtual cameras.

    Every epoch draws fresh cameras (``cameras_per_pose`` per mocap pose) and fresh noise, so
    the training set never repeats. Normalization statistics come from the first epoch's clean
    poses and are saved with the model.

    Args:
        poses_world: (N, J, 3) motion-capture poses (world z-up, mm, any root position).
        error_model: the corruption to undo.
        config: hyper-parameters.
        progress: show a tqdm bar on stderr.
    Returns:
        ``(refiner in eval mode, history)`` where history is a list of per-epoch dicts
        (``epoch``, ``loss``, ``final``, ``intermediate``, ``lr``).
    """
    config = config or RefinerTrainConfig()
    poses_world = _training_poses(poses_world, error_model)
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)
    device = resolve_device(config.device)
    model = Refiner(poses_world.shape[1], hidden=config.hidden, blocks=config.blocks, dropout=config.dropout)
    clean, noisy = make_pairs(poses_world, error_model, rng, config.cameras_per_pose, config.cameras)
    model.set_normalization(clean)
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=config.lr_decay)
    history: list[dict[str, float]] = []
    bar = tqdm(range(config.epochs), desc="refiner", unit="epoch", disable=not progress)
    for epoch in bar:
        if epoch > 0:
            clean, noisy = make_pairs(poses_world, error_model, rng, config.cameras_per_pose, config.cameras)
        x_n, y_n = _normalized_pair(model, clean, noisy, device)
        record = {
            "epoch": epoch,
            "lr": opt.param_groups[0]["lr"],
            **_train_epoch(model, opt, x_n, y_n, config),
        }
        history.append(record)
        bar.set_postfix(loss=f"{record['loss']:.4f}")
        sched.step()
    model.eval()
    return model, history


def _training_poses(poses_world: np.ndarray, error_model: ErrorModel) -> np.ndarray:
    """The finite (N, J, 3) float64 training poses; :class:`InputError` when there are none or
    their joint count differs from the error model's."""
    poses_world = np.asarray(poses_world, dtype=np.float64)
    if poses_world.ndim != 3 or poses_world.shape[-1] != 3 or len(poses_world) == 0:
        raise InputError(f"training poses must be a non-empty (N, J, 3) array, got {poses_world.shape}")
    poses_world = poses_world[np.isfinite(poses_world).all((1, 2))]
    if len(poses_world) == 0:
        raise InputError("every training pose contains NaN")
    J = poses_world.shape[1]
    if J != error_model.num_joints:
        raise InputError(f"error model is for {error_model.num_joints} joints, mocap poses have {J}")
    return poses_world


def _train_epoch(
    model: Refiner,
    opt: torch.optim.Optimizer,
    x_n: torch.Tensor,
    y_n: torch.Tensor,
    config: RefinerTrainConfig,
) -> dict[str, float]:
    """One pass over shuffled mini-batches of normalized (input, target) pairs (N, J*3); returns the
    mean ``loss``, ``final`` and ``intermediate`` losses over the batches."""
    model.train()
    perm = torch.randperm(len(x_n), device=x_n.device)
    sums = {"loss": 0.0, "final": 0.0, "intermediate": 0.0}
    n_batches = 0
    for start in range(0, len(perm), config.batch_size):
        sel = perm[start : start + config.batch_size]
        if len(sel) < 2:  # BatchNorm needs two samples
            continue
        total, parts = refiner_loss(model, x_n[sel], y_n[sel], config.loss, config.intermediate_weight)
        opt.zero_grad(set_to_none=True)
        total.backward()
        if config.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
        opt.step()
        sums["loss"] += float(total.detach())
        sums["final"] += parts["final"]
        sums["intermediate"] += parts["intermediate"]
        n_batches += 1
    return {k: v / max(n_batches, 1) for k, v in sums.items()}


def _normalized_pair(
    model: Refiner, clean: np.ndarray, noisy: np.ndarray, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """(clean, noisy) camera-frame poses -> normalized (input, target) tensors on ``device``.

    Both are divided by the *noisy* pose's scale (what :meth:`Refiner.refine` can compute)."""
    noisy_t = torch.as_tensor(noisy, dtype=torch.float64)
    clean_t = torch.as_tensor(clean, dtype=torch.float64)
    scaled, s = model.to_normalized_input(noisy_t)
    target = (clean_t - clean_t[:, ROOT : ROOT + 1]) / s
    x_n = model.normalize(scaled.float().to(device))
    y_n = model.normalize(target.float().to(device))
    return x_n, y_n


@dataclass
class RefinerRun:
    """A trained refiner with what :meth:`Refiner.save <epipolarpose.refiner.Refiner.save>` records.

    Attributes:
        refiner: the network, in eval mode.
        history: per-epoch dicts of :func:`train_refiner`.
        meta: JSON-ready ``error_model`` summary, ``train_config``, ``cameras``, ``mocap_poses``,
            ``mocap_clips`` and ``final_loss``.
    """

    refiner: Refiner
    history: list[dict[str, float]]
    meta: dict[str, Any]


def train_refiner_on_mocap(
    mocap: Sequence[str | os.PathLike],
    source: ErrorSource,
    config: RefinerTrainConfig | None = None,
    *,
    fps: float = 10.0,
    log: Callable[[str], None] | None = None,
) -> RefinerRun:
    """``epipolarpose refine train``: load motion capture and train a refiner on it.

    Args:
        mocap: BVH files or folders (:func:`~epipolarpose.mocap.load_mocap_poses`).
        source: the error model and the virtual cameras (they replace ``config.cameras``).
        config: the other hyper-parameters.
        fps: resample the clips to this frame rate.
        log: receives a description of the data, the error model and the cameras.
    """
    config = replace(config or RefinerTrainConfig(), cameras=source.cameras)
    poses, clips = load_mocap_poses(mocap, fps=fps)
    if log is not None:
        log(
            f"mocap: {len(poses)} poses from {len(np.unique(clips))} clips; error model: {source.model.describe()}"
        )
        matched = " (matched to the ground truth)" if source.cameras_matched else ""
        log(f"virtual cameras: {source.cameras.describe()}{matched}")
    refiner, history = train_refiner(poses, source.model, config)
    meta = {
        "error_model": source.model.summary(),
        "train_config": {k: v for k, v in vars(config).items() if k != "cameras"},
        "cameras": dict(vars(source.cameras)),
        "mocap_poses": int(len(poses)),
        "mocap_clips": sorted(map(str, np.unique(clips))),
        "final_loss": history[-1]["loss"],
    }
    return RefinerRun(refiner, history, meta)
