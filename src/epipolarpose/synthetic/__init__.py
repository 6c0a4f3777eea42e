"""Synthetic data: multi-view 2D observations of motion capture with detector-like noise
(:mod:`.observations`), and person images rendered for training (:mod:`.render`)."""

from .observations import (
    CORRUPTION_CODES,
    CorruptionStats,
    NoiseModel,
    corrupt,
    corruption_stats,
    default_rig,
    project_views,
    synthesize,
    synthesize_clips,
)
from .render import RenderConfig, RenderedView, apply_affine, crop_affine, invert_affine, render_view

__all__ = [
    "CORRUPTION_CODES",
    "CorruptionStats",
    "NoiseModel",
    "RenderConfig",
    "RenderedView",
    "apply_affine",
    "corrupt",
    "corruption_stats",
    "crop_affine",
    "default_rig",
    "invert_affine",
    "project_views",
    "render_view",
    "synthesize",
    "synthesize_clips",
]
