"""The Lightning module: a :class:`~epipolarpose.models.PoseNet` trained with smooth-L1 on its
soft-argmax joints against masked, scale-free targets.

The network lives in ``self.model`` and the hyper-parameters hold its config dict under
``model_config``, so :func:`epipolarpose.models.load_model` reads the ``.ckpt`` files.

With ``online=True`` (the paper's setup) the targets are made inside the training step: a frozen
copy of the 2D network (``detector_ckpt``) detects the joints in every view of the multi-view
batch, :func:`epipolarpose.labelling.label_poses` triangulates them with a known or previously
self-calibrated rig (``label_rig_json``) and :func:`~epipolarpose.training.targets.make_targets`
turns them into scale-free targets.
"""

from __future__ import annotations

import time
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..camera import Rig
from ..formats import Poses2D
from ..labelling import LabelOptions, label_poses
from ..models.checkpoint import load_model
from ..models.posenet import PoseNet, PoseNetConfig, normalize_images
from .targets import make_targets, prediction_to_image, targets_to_camera

SUPERVISIONS = ("2d", "self", "full", "rt")


def masked_smooth_l1(pred: Tensor, target: Tensor, mask: Tensor, beta: float = 0.01) -> Tensor:
    """Mean smooth-L1 over the unmasked coordinates; masked ones (even NaN targets) give no gradient.

    Args:
        pred, target: (..., J, 3); mask: (..., J, 3) bool.
    """
    mask = mask.to(torch.bool)
    target = torch.where(mask, target.to(pred.dtype), pred.detach())
    loss = F.smooth_l1_loss(pred, target, beta=beta, reduction="none")
    loss = torch.where(mask, loss, torch.zeros_like(loss))
    return loss.sum() / mask.sum().clamp(min=1)


def images_to_input(images: Tensor) -> Tensor:
    """(N, S, S, 3) uint8 RGB -> (N, 3, S, S) normalized float network input."""
    return normalize_images(images.permute(0, 3, 1, 2).float().div_(255.0))


class PoseModule(L.LightningModule):
    """Training of the 2D/3D pose network for every supervision mode.

    Args:
        model_config: :class:`PoseNetConfig` as a dict.
        supervision: "2d", "self", "full" or "rt" (recorded; the data decides the targets).
        lr: Adam learning rate (cosine-annealed to 1% over the run).
        beta: smooth-L1 transition, in normalized volume units (0.01 = 1% of the crop).
        weight_decay: Adam weight decay.
        online: make targets inside the training step from a frozen 2D detector (see module doc).
        detector_ckpt: the frozen 2D network's checkpoint (online only).
        label_rig_json: the rig used to triangulate online (rig.json text).
        label_options: :class:`~epipolarpose.labelling.LabelOptions` fields for the online labels (a
            dict, kept in the checkpoint's hyper-parameters; online only).
    """

    def __init__(
        self,
        model_config: dict[str, Any],
        supervision: str = "full",
        *,
        lr: float = 1e-3,
        beta: float = 0.01,
        weight_decay: float = 0.0,
        online: bool = False,
        detector_ckpt: str | None = None,
        label_rig_json: str | None = None,
        label_options: dict[str, Any] | None = None,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.config = PoseNetConfig.from_dict(dict(model_config))
        self.model = PoseNet(self.config)
        self.detector: PoseNet | None = None
        self._label_rig = None
        if online:
            if detector_ckpt is None or label_rig_json is None:
                raise ValueError("online training needs detector_ckpt and label_rig_json")
            det, _, _ = load_model(detector_ckpt)
            det.requires_grad_(False)
            self.detector = det
            self._label_rig = Rig.from_json(label_rig_json, source="label rig")
        self._t_last: float | None = None
        self._n_images = 0
        self._t_total = 0.0
        self.start_step = 0

    # --- forward -----------------------------------------------------------------------------
    def forward(self, images: Tensor) -> dict[str, Tensor]:
        """(N, S, S, 3) uint8 crops -> the PoseNet outputs (``joints3d`` (N, J, 3) normalized)."""
        return self.model(images_to_input(images))

    def train(self, mode: bool = True) -> PoseModule:
        super().train(mode)
        if self.detector is not None:
            self.detector.eval()  # frozen: BN statistics stay as trained
        return self

    # --- targets made online -------------------------------------------------------------------
    @torch.no_grad()
    def online_targets(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """Targets (B, C, J, 3) and mask from the frozen detector + triangulation of this batch."""
        assert self.detector is not None and self._label_rig is not None
        B, C = batch["images"].shape[:2]
        S = self.config.input_size
        imgs = batch["images"].flatten(0, 1)
        det = self.detector(images_to_input(imgs))["joints2d"].float().cpu().numpy()
        A = batch["affine"].double().cpu().numpy()
        kp = prediction_to_image(det.reshape(B, C, -1, 2), A, S)  # (B, C, J, 2) image pixels
        rig = self._label_rig
        p2d = Poses2D(
            keypoints=kp.transpose(1, 0, 2, 3),
            scores=np.ones(kp.shape[:-1], np.float32).transpose(1, 0, 2),
            image_size=np.array([c.image_size for c in rig]),
            K=rig.K,
            dist=rig.dist,
        )
        options = LabelOptions(**(self.hparams.label_options or {}))
        labels = label_poses(p2d, rig, options=options).labels
        lab = labels.poses3d_camera.transpose(1, 0, 2, 3)  # (B, C, J, 3)
        target, mask = make_targets(
            lab,
            rig.K[None],
            rig.dist[None],
            A,
            S,
            depth_range=self.config.depth_range,
            valid=labels.valid[:, None],
        )
        return torch.from_numpy(target).to(self.device), torch.from_numpy(mask).to(self.device)

    # --- steps ---------------------------------------------------------------------------------
    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        if self.detector is not None:
            target, mask = self.online_targets(batch)
        else:
            target, mask = batch["target"], batch["mask"]
        out = self(batch["images"].flatten(0, 1))
        pred = out["joints3d"].float()
        loss = masked_smooth_l1(pred, target.flatten(0, 1), mask.flatten(0, 1), self.hparams.beta)
        n = pred.shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=n)
        self.log("train/valid_fraction", mask.float().mean(), batch_size=n)
        return loss

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        out = self(batch["images"].flatten(0, 1))
        pred = out["joints3d"].float()
        n = pred.shape[0]
        err = (pred - batch["target"].flatten(0, 1)).abs()
        mask = batch["mask"].flatten(0, 1)
        px = (err[..., :2] * self.config.input_size).norm(dim=-1)
        m2 = mask[..., 0]
        self.log("val/px_error", (px * m2).sum() / m2.sum().clamp(min=1), sync_dist=True, batch_size=n)
        if self.config.is_3d:
            cam = self._to_camera(pred, batch)
            gt = batch["gt_camera"].flatten(0, 1).cpu().numpy().astype(np.float64)
            rel = cam - cam[:, :1]
            e = np.linalg.norm(rel - (gt - gt[:, :1]), axis=-1).mean()
            self.log("val/mpjpe", float(e), prog_bar=True, sync_dist=True, batch_size=n)

    def _to_camera(self, pred: Tensor, batch: dict[str, Tensor]) -> np.ndarray:
        """Predictions (N, J, 3) -> camera-frame mm with the ground-truth root depth (the paper's protocol)."""
        gt = batch["gt_camera"].flatten(0, 1).double().cpu().numpy()
        return targets_to_camera(
            pred.detach().double().cpu().numpy(),
            batch["K"].flatten(0, 1).double().cpu().numpy(),
            batch["dist"].flatten(0, 1).double().cpu().numpy(),
            batch["affine"].flatten(0, 1).double().cpu().numpy(),
            self.config.input_size,
            gt[:, 0, 2],
            self.config.depth_range,
        )

    # --- bookkeeping ---------------------------------------------------------------------------
    def on_train_start(self) -> None:
        self.start_step = int(self.trainer.global_step)  # > 0 when resumed

    def on_train_epoch_start(self) -> None:
        loader = getattr(self.trainer, "train_dataloader", None)
        dataset = getattr(loader, "dataset", None)
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(self.current_epoch)

    def on_train_batch_start(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        now = time.perf_counter()
        if self._t_last is not None:
            self._t_total += now - self._t_last
            self._n_images += int(batch["images"].shape[0] * batch["images"].shape[1])
        self._t_last = now

    def on_train_epoch_end(self) -> None:
        self._t_last = None  # do not count the pause between epochs
        if self._t_total > 0:
            self.log("train/images_per_s", self._n_images / self._t_total, sync_dist=False)

    @property
    def images_per_second(self) -> float:
        """Training throughput measured so far (batch start to batch start, first batch excluded)."""
        return self._n_images / self._t_total if self._t_total > 0 else float("nan")

    def configure_optimizers(self) -> Any:
        opt = torch.optim.Adam(
            self.model.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay
        )
        total = int(self.trainer.estimated_stepping_batches) if self.trainer is not None else 0
        if total <= 0 or total > 10**8:
            return opt
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total, eta_min=self.hparams.lr * 0.01)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
