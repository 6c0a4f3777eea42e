"""Synthetic data: multi-view 2D observations of motion capture with detector-like noise."""

from .observations import CORRUPTION_CODES, NoiseModel, default_rig, synthesize

__all__ = ["CORRUPTION_CODES", "NoiseModel", "default_rig", "synthesize"]
from .render import RenderConfig, RenderedView, apply_affine, crop_affine, invert_affine, render_view  # noqa: F401
