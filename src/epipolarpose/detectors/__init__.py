"""2D pose detectors behind one small interface (:class:`~.base.Detector`), and importers of
existing detections (:mod:`.importers`).

``get_detector("mediapipe")`` / ``get_detector("network", checkpoint=...)`` build one; the heavy
dependencies (mediapipe, torch) load only when a detector first runs. Detectors are context
managers: ``with get_detector("mediapipe") as det: ...`` closes what they hold.
"""

from __future__ import annotations

import os

from ..errors import InputError
from .base import Detections, Detector, select_track

DETECTORS = ("mediapipe", "network")


def get_detector(
    name: str,
    checkpoint: str | os.PathLike | None = None,
    *,
    model_complexity: int = 1,
    static_image_mode: bool = False,
) -> Detector:
    """A new detector by ``name`` (``"mediapipe"`` or ``"network"``, which needs ``checkpoint``).

    ``model_complexity`` and ``static_image_mode`` configure MediaPipe (see
    :class:`~.mediapipe.MediaPipeDetector`); build :class:`~.mediapipe.MediaPipeDetector` or
    :class:`~.network.NetworkDetector` directly for other settings."""
    if name == "mediapipe":
        from .mediapipe import MediaPipeDetector

        return MediaPipeDetector(model_complexity=model_complexity, static_image_mode=static_image_mode)
    if name == "network":
        if checkpoint is None:
            raise InputError("--detector network needs --checkpoint CKPT (a trained 2D/3D PoseNet)")
        from .network import NetworkDetector

        return NetworkDetector(checkpoint)
    raise InputError(f"unknown detector {name!r}; choose one of {', '.join(DETECTORS)} or 'import'")


__all__ = ["DETECTORS", "Detections", "Detector", "get_detector", "select_track"]
