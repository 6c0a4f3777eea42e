"""Saving and loading :class:`~epipolarpose.models.PoseNet` checkpoints.

Two kinds of file load with :func:`load_model`:

* our own (:func:`save_checkpoint`): a ``torch.save`` dict with ``format`` =
  ``"epipolarpose.posenet"``, ``model_config`` (a :class:`PoseNetConfig` as a dict),
  ``state_dict`` (the PoseNet's) and ``meta`` (anything JSON-like);
* Lightning ``.ckpt`` files written by ``epipolarpose train``: the LightningModule keeps the
  network as ``self.model`` (so its weights are the ``model.*`` entries of ``state_dict``) and its
  hyper-parameters contain the config dict under ``model_config``.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch

from ..errors import InputError
from ..io import atomic_path
from .posenet import PoseNet, PoseNetConfig
from .resnet import state_dict_mismatch

FORMAT = "epipolarpose.posenet"


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
    elif "state_dict" in ckpt and isinstance(ckpt.get("hyper_parameters"), dict):
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
