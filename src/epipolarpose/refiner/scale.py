"""The scale of a pose: one definition for the error model (numpy) and the network (torch)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..skeleton import ROOT

__all__ = ["pose_scale"]


def pose_scale(poses: Any) -> Any:
    """RMS distance of the joints from the root: (..., J, 3) -> (...,), in the poses' units.

    Works on numpy arrays and torch tensors alike (returns the same type; the root is subtracted
    first, so absolute and root-relative poses give the same scale). Not floored: the refiner's
    normalization clamps it (:meth:`~epipolarpose.refiner.Refiner.to_normalized_input`), the
    error model's reference scale is a mean over many poses.
    """
    rel = poses - poses[..., ROOT : ROOT + 1, :]
    ms = (rel**2).sum(-1).mean(-1)
    return np.sqrt(ms) if isinstance(ms, (np.ndarray, np.generic)) else ms.sqrt()
