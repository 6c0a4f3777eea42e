"""Synthetic data: multi-view 2D observations of motion capture with detector-like noise
(:mod:`.observations`), and person images rendered for training (:mod:`.render`)."""

from .observations import (
    BACK_VIEW_S,
    CORRUPTION_CODES,
    DERIVED_JOINTS,
    FACE_JOINTS,
    NATIVE_SETS,
    CorruptionStats,
    MarkedPoints,
    NoiseModel,
    corrupt,
    corruption_stats,
    default_rig,
    detector_points,
    facing_directions,
    project_views,
    synthesize,
    synthesize_clips,
)
from .render import RenderConfig, RenderedView, apply_affine, crop_affine, invert_affine, render_view

__all__ = [
    "BACK_VIEW_S",
    "CORRUPTION_CODES",
    "DERIVED_JOINTS",
    "FACE_JOINTS",
    "NATIVE_SETS",
    "CorruptionStats",
    "MarkedPoints",
    "NoiseModel",
    "RenderConfig",
    "RenderedView",
    "apply_affine",
    "corrupt",
    "corruption_stats",
    "crop_affine",
    "default_rig",
    "detector_points",
    "facing_directions",
    "invert_affine",
    "project_views",
    "render_view",
    "synthesize",
    "synthesize_clips",
]
