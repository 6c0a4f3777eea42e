"""Saving and loading :class:`~epipolarpose.models.PoseNet` checkpoints.

Two kinds of file load with :func:`load_model`:

* our own (:func:`save_checkpoint`): a ``torch.save`` dict with ``format`` =
  ``"epipolarpose.posenet"``, ``model_config`` (a :class:`PoseNetConfig` as a dict),
  ``state_dict`` (the PoseNet's) and ``meta`` (anything JSON-like);
* Lightning ``.ckpt`` files written by ``epipolarpose train``: the LightningModule keeps the
  network as ``self.model`` (so its weights are the ``model.*`` entries of ``state_dict``) and its
  hyper-parameters contain the config dict under ``model_config``.

Both carry a SHA-256 of their weights (:func:`weights_digest`: every tensor's name, dtype, shape
and bytes): ours under ``weights_sha256``, Lightning's under :data:`LIGHTNING_DIGEST_KEY` (written
by :func:`weights_digest_callback`, which ``epipolarpose train`` adds to its trainer).
:func:`load_model` recomputes it and refuses a file whose weights changed since they were saved
(a damaged copy would otherwise load and predict garbage). Files without a digest (written before
it existed, or by another tool) load as before.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..errors import InputError
from ..io import atomic_path
from .posenet import PoseNet, PoseNetConfig
from .resnet import state_dict_mismatch

FORMAT = "epipolarpose.posenet"
#: Where a Lightning checkpoint keeps the digest of its ``state_dict``.
LIGHTNING_DIGEST_KEY = "epipolarpose_weights_sha256"


def weights_digest(state: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of a state dict's tensors: names, dtypes, shapes and bytes, in name order
    (entries that are not tensors are left out)."""
    h = hashlib.sha256()
    for name in sorted(state):
        v = state[name]
        if not isinstance(v, torch.Tensor):
            continue
        t = v.detach().cpu().contiguous().reshape(-1)
        h.update(f"{name}|{t.dtype}|{tuple(v.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy() if t.numel() else b"")
    return h.hexdigest()


def check_digest(
    state: Mapping[str, Any], expected: Any, path: str | os.PathLike, what: str = "checkpoint"
) -> None:
    """:class:`InputError` naming ``path`` when ``expected`` (a stored digest) is given and the
    weights ``state`` do not hash to it."""
    if expected is None:
        return
    if weights_digest(state) != str(expected):
        raise InputError(
            f"{what} {path} is damaged: its weights do not match the checksum stored when it was "
            "saved (copy it again, or use another checkpoint)"
        )


def weights_digest_callback() -> Any:
    """A Lightning callback that stores :func:`weights_digest` of every checkpoint's
    ``state_dict`` under :data:`LIGHTNING_DIGEST_KEY` (verified by :func:`load_model`)."""
    import lightning.pytorch as pl

    class WeightsDigest(pl.Callback):
        def on_save_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict[str, Any]) -> None:
            checkpoint[LIGHTNING_DIGEST_KEY] = weights_digest(checkpoint["state_dict"])

    return WeightsDigest()


def save_checkpoint(
    path: str | os.PathLike,
    model: PoseNet,
    config: PoseNetConfig | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write ``model`` (weights moved to CPU), its config and ``extra`` metadata, atomically."""
    config = config or model.config
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {
        "format": FORMAT,
        "version": 1,
        "model_config": config.to_dict(),
        "state_dict": state,
        "weights_sha256": weights_digest(state),
        "meta": dict(extra or {}),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _read(path: Path, map_location: Any) -> dict[str, Any]:
    if not path.is_file():
        raise InputError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        # Lightning checkpoints may hold hyper-parameters or callback states that are not plain
        # tensors/containers; the user named this file, so load it like Lightning does.
        try:
            ckpt = torch.load(path, map_location=map_location, weights_only=False)
        except Exception as e:  # noqa: BLE001 - any failure means "not a checkpoint"
            raise InputError(f"checkpoint {path} cannot be read: {e}") from e
    except Exception as e:  # noqa: BLE001
        raise InputError(f"checkpoint {path} cannot be read ({type(e).__name__}: {e})") from e
    if not isinstance(ckpt, dict):
        raise InputError(f"checkpoint {path} holds a {type(ckpt).__name__}, not a checkpoint dict")
    return ckpt


def _strip(state: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def load_model(
    path: str | os.PathLike,
    map_location: Any = "cpu",
    config: PoseNetConfig | None = None,
) -> tuple[PoseNet, PoseNetConfig, dict[str, Any]]:
    """Load a PoseNet from our checkpoint or a Lightning ``.ckpt``.

    Args:
        path: the checkpoint file.
        map_location: where tensors go (``"cpu"``, ``"cuda"``, a device).
        config: if given, the checkpoint must have been trained with exactly this config.
    Returns:
        (model in eval mode on ``map_location``, its config, metadata dict). For Lightning files the
        metadata has ``epoch``, ``global_step``, ``hyper_parameters`` and ``lightning: True``.
    Raises:
        InputError: unreadable file, no model config, or weights that do not fit the config.
    """
    path = Path(path)
    ckpt = _read(path, map_location)
    if ckpt.get("format") == FORMAT:
        cfg_dict, state, meta = ckpt.get("model_config"), ckpt.get("state_dict"), dict(ckpt.get("meta") or {})
        if isinstance(state, dict):
            check_digest(state, ckpt.get("weights_sha256"), path)
    elif "state_dict" in ckpt and isinstance(ckpt.get("hyper_parameters"), dict):
        if isinstance(ckpt["state_dict"], dict):
            check_digest(ckpt["state_dict"], ckpt.get(LIGHTNING_DIGEST_KEY), path)
        hp = ckpt["hyper_parameters"]
        cfg_dict = hp.get("model_config")
        if isinstance(cfg_dict, PoseNetConfig):
            cfg_dict = cfg_dict.to_dict()
        state = _strip(ckpt["state_dict"], "model.")
        state = _strip(state, "_orig_mod.") or state  # torch.compile'd module
        meta = {
            "epoch": ckpt.get("epoch"),
            "global_step": ckpt.get("global_step"),
            "hyper_parameters": hp,
            "lightning": True,
        }
    else:
        raise InputError(
            f"checkpoint {path} is neither an epipolarpose PoseNet checkpoint nor a Lightning "
            "checkpoint with hyper_parameters['model_config']"
        )
    if cfg_dict is None:
        raise InputError(f"checkpoint {path} has no model_config")
    if not isinstance(state, dict) or not state:
        raise InputError(f"checkpoint {path} has no PoseNet weights (state_dict entries 'model.*')")
    ckpt_cfg = PoseNetConfig.from_dict(dict(cfg_dict), source=f"checkpoint {path} model_config")
    if config is not None and config != ckpt_cfg:
        raise InputError(
            f"checkpoint {path} was trained with {ckpt_cfg}, not {config} ({ckpt_cfg.diff(config)})"
        )
    model = PoseNet(ckpt_cfg)
    problems = state_dict_mismatch(model.state_dict(), state)
    if problems:
        raise InputError(f"checkpoint {path}: its weights do not fit its model_config {ckpt_cfg}: {problems}")
    model.load_state_dict(state, strict=True)
    model.to(map_location).eval()
    return model, ckpt_cfg, meta
