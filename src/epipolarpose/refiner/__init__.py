"""The refinement unit: an MLP that cleans noisy root-relative 3D poses, trained only on motion
capture seen through random virtual cameras and corrupted by a model of a network's errors.

One module per concept (see ``docs/refiner.md``):

* :mod:`.model`: the network (:class:`Refiner`) and its checkpoints;
* :mod:`.scale`: the pose scale both the network and the error model use;
* :mod:`.flips`: limb flips, applied and detected;
* :mod:`.error_model`: :class:`ErrorModel` and its fitting;
* :mod:`.cameras`: the random :class:`VirtualCameras`;
* :mod:`.sources`: which error model and cameras a run uses (fitted, loaded or Gaussian);
* :mod:`.train`: training pairs, loss and loop, and the run from motion-capture files.

Importing this package imports torch (:mod:`.model`).
"""

from __future__ import annotations

from .cameras import VirtualCameras
from .error_model import ErrorModel, fit_error_model, fit_linear_errors
from .flips import detect_limb_flips, flip_limbs, limb_flip_eligible, subtree_matrix
from .model import Refiner, ResidualBlock, load_refiner
from .scale import pose_scale
from .sources import DEFAULT_SIGMA_MM, ErrorFitOptions, ErrorSource, choose_error_source, fitted_error_source
from .train import (
    RefinerRun,
    RefinerTrainConfig,
    make_pairs,
    refiner_loss,
    train_refiner,
    train_refiner_on_mocap,
)

__all__ = [
    "DEFAULT_SIGMA_MM",
    "ErrorFitOptions",
    "ErrorModel",
    "ErrorSource",
    "Refiner",
    "RefinerRun",
    "RefinerTrainConfig",
    "ResidualBlock",
    "VirtualCameras",
    "choose_error_source",
    "detect_limb_flips",
    "fit_error_model",
    "fit_linear_errors",
    "fitted_error_source",
    "flip_limbs",
    "limb_flip_eligible",
    "load_refiner",
    "make_pairs",
    "pose_scale",
    "refiner_loss",
    "subtree_matrix",
    "train_refiner",
    "train_refiner_on_mocap",
]
