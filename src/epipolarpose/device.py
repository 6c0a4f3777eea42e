"""Torch device resolution from a user's ``--device`` string (one rule for every command)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from .errors import InputError

if TYPE_CHECKING:
    import torch

__all__ = ["resolve_device"]

_CUDA = re.compile(r"cuda(?::(\d+))?")


def resolve_device(spec: str) -> torch.device:
    """``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` -> a device.

    Raises :class:`InputError` for any other string, and for a CUDA device that is not available
    (no CUDA at all, or an index beyond the visible devices).
    """
    import torch

    spec = str(spec).strip()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    m = _CUDA.fullmatch(spec)
    if m is None:
        raise InputError(f"--device must be auto, cpu, cuda or cuda:N, not {spec!r}")
    if not torch.cuda.is_available():
        raise InputError(f"--device {spec} was asked for but no CUDA device is available")
    if m.group(1) is not None and int(m.group(1)) >= torch.cuda.device_count():
        raise InputError(f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) are visible")
    return torch.device(spec)
