"""The single-image pose network (ResNet + deconvolutions + integral regression) and checkpoints.

See ``docs/models.md`` for the output convention; in short, :class:`PoseNet` returns joints in
normalized volume coordinates in [-0.5, 0.5] (:func:`to_pixels` converts them to crop pixels).
"""

from __future__ import annotations

from .checkpoint import load_model, save_checkpoint
from .posenet import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    PoseNet,
    PoseNetConfig,
    expectation2d,
    from_pixels,
    letterbox,
    normalize_images,
    predict_crops,
    soft_argmax2d,
    soft_argmax3d,
    to_pixels,
)
from .resnet import ResNet, load_torchvision_weights

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "PoseNet",
    "PoseNetConfig",
    "ResNet",
    "expectation2d",
    "from_pixels",
    "load_model",
    "load_torchvision_weights",
    "normalize_images",
    "letterbox",
    "predict_crops",
    "save_checkpoint",
    "soft_argmax2d",
    "soft_argmax3d",
    "to_pixels",
]
