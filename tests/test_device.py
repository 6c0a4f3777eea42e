"""Device resolution: one rule for every command (``--device``)."""

from __future__ import annotations

import pytest
import torch

from epipolarpose.device import resolve_device
from epipolarpose.errors import InputError


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    for bad in ("gpu", "cuda:x", "cpu:0", "", "mps"):
        with pytest.raises(InputError, match="--device must be"):
            resolve_device(bad)
    if torch.cuda.is_available():
        assert resolve_device("cuda:0") == torch.device("cuda:0")
        with pytest.raises(InputError, match="CUDA device"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")
    else:
        for spec in ("cuda", "cuda:1"):
            with pytest.raises(InputError, match="no CUDA device is available"):
                resolve_device(spec)
