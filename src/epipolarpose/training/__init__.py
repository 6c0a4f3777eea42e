"""Training the pose network: synthetic multi-view data, scale-free targets, the Lightning module
and the runs of every supervision mode (``epipolarpose train``). See ``docs/training.md``.

Importing this package does not import Lightning; :mod:`.module` and :mod:`.train` do.
"""

from __future__ import annotations

from .targets import (
    keypoint_targets,
    make_targets,
    pose_to_crop_pixels,
    prediction_to_image,
    targets_to_camera,
)

__all__ = [
    "keypoint_targets",
    "make_targets",
    "pose_to_crop_pixels",
    "prediction_to_image",
    "targets_to_camera",
]
