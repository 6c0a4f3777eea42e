"""The refinement network: a residual MLP that cleans noisy root-relative 3D poses.

EpipolarPose (Kocabas et al., CVPR 2019, Section 3.3) optionally post-processes the 3D network's
predictions with a network trained only on motion capture, following the lifting network of
Martinez et al. (ICCV 2017): a first ``Linear`` to ``hidden`` units, ``blocks`` residual blocks of
``(Linear - BatchNorm - LeakyReLU - Dropout) x 2``, an intermediate prediction after every block
but the last (after the first block for the default two blocks) with its own loss, and a final
``Linear`` to ``J * 3``.

Conventions (what :meth:`Refiner.refine` does around the network):

* **Root-relative.** The input root (joint 0) is subtracted; the output keeps the input's root
  position (refinement changes only the root-relative shape).
* **Scale-free.** Each pose is divided by its own scale ``s`` = the RMS distance of its joints
  from the root (:func:`~epipolarpose.refiner.scale.pose_scale`), and the output is multiplied by the same ``s``. The refiner
  therefore works for poses in millimetres and in arbitrary units alike (``refine(k * p) ==
  k * refine(p)``). The error magnitudes it learned are *relative* to the person's size.
* **Normalization statistics** (``mean``, ``std`` of the scale-normalized, flattened clean
  training poses) are registered buffers, saved with the checkpoint; the same statistics
  normalize the input and de-normalize the output.
* **Residual output.** The network predicts a correction: ``clean_n = noisy_n + head(h)`` in the
  normalized space; the output heads are initialised to zero, so an untrained refiner is the
  identity.
* **Camera frame.** Poses are expected in the camera frame (x right, y down, z depth), the frame
  the refiner was trained in; errors of monocular networks are depth-dominant there.
* **Missing joints.** A pose with any non-finite joint (NaN/inf) is returned unchanged.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import InputError
from ..io import atomic_path
from ..models.checkpoint import check_digest, weights_digest
from ..skeleton import NUM_JOINTS, ROOT
from .scale import pose_scale

__all__ = ["Refiner", "ResidualBlock", "load_refiner"]

#: Smallest scale / std used in divisions (units of the normalized space).
_EPS = 1e-6


class ResidualBlock(nn.Module):
    """``x + (Linear - BatchNorm - LeakyReLU - Dropout) x 2 (x)`` (Martinez et al. 2017)."""

    def __init__(self, hidden: int, dropout: float) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for _ in range(2):
            layers += [
                nn.Linear(hidden, hidden),
                nn.BatchNorm1d(hidden),
                nn.LeakyReLU(0.2),
                nn.Dropout(dropout),
            ]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.layers(x)


class Refiner(nn.Module):
    """Residual MLP refining root-relative 3D poses (see the module docstring for conventions).

    Args:
        num_joints: J (17 for Human3.6M order).
        hidden: width of every hidden layer (1024 in the paper).
        blocks: number of residual blocks (2 in the paper).
        dropout: dropout probability inside the blocks.

    :meth:`forward` works in the normalized space and returns ``(final, intermediates)``;
    :meth:`refine` is what users call on poses.
    """

    def __init__(
        self, num_joints: int = NUM_JOINTS, hidden: int = 1024, blocks: int = 2, dropout: float = 0.1
    ):
        super().__init__()
        if blocks < 1:
            raise ValueError("a refiner needs at least one residual block")
        self.num_joints = int(num_joints)
        self.hidden = int(hidden)
        self.num_blocks = int(blocks)
        self.dropout = float(dropout)
        d = 3 * self.num_joints
        self.inp = nn.Sequential(
            nn.Linear(d, hidden), nn.BatchNorm1d(hidden), nn.LeakyReLU(0.2), nn.Dropout(dropout)
        )
        self.blocks = nn.ModuleList(ResidualBlock(hidden, dropout) for _ in range(blocks))
        #: one intermediate prediction head after every block but the last
        self.intermediate = nn.ModuleList(nn.Linear(hidden, d) for _ in range(blocks - 1))
        self.out = nn.Linear(hidden, d)
        for head in [self.out, *self.intermediate]:  # start as the identity (a zero correction)
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)
        self.register_buffer("mean", torch.zeros(d))
        self.register_buffer("std", torch.ones(d))
        #: training metadata (error model summary, config); filled by :func:`load_refiner`
        self.meta: dict[str, Any] = {}

    # --- configuration / statistics ---------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """Constructor arguments (saved in checkpoints)."""
        return {
            "num_joints": self.num_joints,
            "hidden": self.hidden,
            "blocks": self.num_blocks,
            "dropout": self.dropout,
        }

    @torch.no_grad()
    def set_normalization(self, clean_poses: np.ndarray | torch.Tensor) -> None:
        """Set ``mean``/``std`` from clean training poses (N, J, 3), any units (they are
        root-centred and scale-normalized first). Joints with ~zero spread (the root) get std 1."""
        x = self.to_normalized_input(torch.as_tensor(np.asarray(clean_poses), dtype=torch.float32))[0]
        flat = x.reshape(-1, 3 * self.num_joints)
        std = flat.std(0)
        std = torch.where(std > 1e-4, std, torch.ones_like(std))
        self.mean.copy_(flat.mean(0).to(self.mean))
        self.std.copy_(std.to(self.std))

    # --- the network, in the normalized space ------------------------------------------------
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Normalized noisy poses (B, J*3) -> (final (B, J*3), [intermediate (B, J*3), ...]).

        Both outputs are normalized clean poses; each is the input plus a predicted correction.
        """
        h = self.inp(x)
        inter: list[torch.Tensor] = []
        for i, block in enumerate(self.blocks):
            h = block(h)
            if i < len(self.intermediate):
                inter.append(x + self.intermediate[i](h))
        return x + self.out(h), inter

    def normalize(self, scaled: torch.Tensor) -> torch.Tensor:
        """Scale-normalized root-relative poses (..., J, 3) -> flattened normalized (..., J*3)."""
        return (scaled.reshape(*scaled.shape[:-2], -1) - self.mean) / self.std

    def denormalize(self, flat: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`normalize`: (..., J*3) -> (..., J, 3) with the root set to exactly 0."""
        out = (flat * self.std + self.mean).reshape(*flat.shape[:-1], self.num_joints, 3)
        out = out - out[..., ROOT : ROOT + 1, :]
        return out

    def to_normalized_input(self, poses: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Poses (..., J, 3) -> (root-relative poses divided by their scale, scale (..., 1, 1)).

        The scale is :func:`~epipolarpose.refiner.scale.pose_scale`, floored at a tiny positive
        value so that a degenerate pose (all joints at the root) does not divide by zero."""
        rel = poses - poses[..., ROOT : ROOT + 1, :]
        s = pose_scale(rel).clamp_min(_EPS)[..., None, None]
        return rel / s, s

    # --- user-facing ----------------------------------------------------------------------
    @torch.no_grad()
    def refine(self, poses: np.ndarray | torch.Tensor, batch_size: int = 65536) -> np.ndarray | torch.Tensor:
        """Refine poses (..., J, 3) in any units; returns the same type, dtype, shape and device.

        Runs in eval mode (the previous mode is restored). Poses with a non-finite joint are
        returned unchanged; the root position of every pose is kept.
        """
        is_numpy = not isinstance(poses, torch.Tensor)
        src = torch.from_numpy(np.asarray(poses)) if is_numpy else poses
        if src.ndim < 2 or src.shape[-2:] != (self.num_joints, 3):
            raise InputError(
                f"refiner expects poses of shape (..., {self.num_joints}, 3), got {tuple(src.shape)}"
            )
        device = self.mean.device
        flat = src.reshape(-1, self.num_joints, 3)
        out = flat.clone()
        ok = torch.isfinite(flat).all(-1).all(-1)
        idx = torch.nonzero(ok).reshape(-1)
        was_training = self.training
        self.eval()
        try:
            for start in range(0, idx.numel(), batch_size):
                sel = idx[start : start + batch_size]
                p = flat[sel].to(device=device, dtype=torch.float64)
                scaled, s = self.to_normalized_input(p)
                y, _ = self(self.normalize(scaled.float()))
                refined = self.denormalize(y).double() * s + p[:, ROOT : ROOT + 1, :]
                out[sel] = refined.to(dtype=out.dtype, device=out.device)
        finally:
            self.train(was_training)
        out = out.reshape(src.shape)
        return out.numpy() if is_numpy else out

    def save(self, path: str | os.PathLike, meta: dict[str, Any] | None = None) -> None:
        """Write a checkpoint (config, weights incl. normalization buffers, ``meta``) atomically."""
        weights = {k: v.detach().cpu() for k, v in self.state_dict().items()}
        state = {
            "kind": "epipolarpose-refiner",
            "config": self.config(),
            "state_dict": weights,
            "weights_sha256": weights_digest(weights),
            "meta": meta or {},
        }
        with atomic_path(path) as tmp:
            torch.save(state, tmp)


def load_refiner(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Refiner:
    """Load a refiner checkpoint written by :meth:`Refiner.save` (eval mode; ``.meta`` holds the
    training metadata). Raises :class:`InputError` for a missing or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"refiner checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is a user error here
        raise InputError(f"{path} is not a readable refiner checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(state, dict) or state.get("kind") != "epipolarpose-refiner":
        raise InputError(f"{path} is not a refiner checkpoint (written by `epipolarpose refine train`)")
    if isinstance(state.get("state_dict"), dict):
        check_digest(state["state_dict"], state.get("weights_sha256"), path, what="refiner checkpoint")
    model = Refiner(**state["config"])
    try:
        model.load_state_dict(state["state_dict"])
    except RuntimeError as e:
        raise InputError(f"{path}: weights do not match the saved configuration ({e})") from None
    model.meta = state.get("meta", {})
    return model.to(map_location).eval()
