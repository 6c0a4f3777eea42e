"""epipolarpose: 3D human pose from uncalibrated multi-view video (EpipolarPose and beyond)."""

from __future__ import annotations

__version__ = "0.1.0"
