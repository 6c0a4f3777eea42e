"""MediaPipe BlazePose (the legacy ``mediapipe.solutions.pose``) as a :class:`Detector`.

Optional extra: ``pip install "epipolarpose[mediapipe]"`` then ``pip install --no-deps
mediapipe==0.10.14`` (see ``docs/footage.md``; the 0.10.x wheels ship the pose models and run
offline, 0.10.14 works with numpy 2, and ``--no-deps`` keeps jax out).

The 33 BlazePose landmarks map to Human3.6M-17 with :data:`epipolarpose.skeleton.BLAZEPOSE33`:
pelvis = mean of the hips, thorax = mean of the shoulders, spine = mean of pelvis and thorax,
Neck/Nose = nose, Head = mean of the ears; limbs are taken as they are. The landmark
``visibility`` is the score (a derived joint gets the minimum of its parts).
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..skeleton import BLAZEPOSE33, BLAZEPOSE33_JOINTS
from .base import Detector

INSTALL_HINT = (
    'MediaPipe is not installed: pip install "epipolarpose[mediapipe]" && '
    "pip install --no-deps mediapipe==0.10.14"
)


def _import_pose():
    """``mediapipe.solutions.pose``, with a shim for protobuf >= 6.30 (which dropped
    ``SymbolDatabase.GetPrototype``, still called by mediapipe 0.10.14)."""
    try:
        from google.protobuf import message_factory, symbol_database

        if not hasattr(symbol_database.SymbolDatabase, "GetPrototype"):
            symbol_database.SymbolDatabase.GetPrototype = lambda self, d: message_factory.GetMessageClass(d)
        import mediapipe as mp
    except ImportError as e:
        raise InputError(f"{INSTALL_HINT} ({e})") from None
    return mp.solutions.pose


def available() -> bool:
    """True when ``mediapipe.solutions.pose`` can be imported."""
    try:
        _import_pose()
    except InputError:
        return False
    return True


class MediaPipeDetector(Detector):
    """BlazePose via ``mediapipe.solutions.pose`` (one person per frame, with tracking).

    Args:
        model_complexity: 0 (lite), 1 (full) or 2 (heavy) landmark model.
        static_image_mode: detect the person in every frame independently (for unrelated images)
            instead of tracking it through a video.
        min_detection_confidence: person-detector threshold.
        min_tracking_confidence: landmark-tracking threshold (video mode).
    """

    name = "mediapipe"

    def __init__(
        self,
        model_complexity: int = 1,
        static_image_mode: bool = False,
        min_detection_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
    ) -> None:
        self._kwargs = dict(
            model_complexity=model_complexity,
            static_image_mode=static_image_mode,
            min_detection_confidence=min_detection_confidence,
            min_tracking_confidence=min_tracking_confidence,
            smooth_landmarks=not static_image_mode,
        )
        self._pose = None

    def _model(self):
        if self._pose is None:
            self._pose = _import_pose().Pose(**self._kwargs)
        return self._pose

    def reset(self) -> None:
        if self._pose is not None:
            self._pose.close()
        self._pose = None

    def detect(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """frames (N, H, W, 3) uint8 BGR -> keypoints (N, 17, 2) pixels, scores (N, 17)."""
        import cv2

        frames = np.asarray(frames)
        n, h, w = frames.shape[:3]
        raw = np.full((n, len(BLAZEPOSE33_JOINTS), 2), np.nan)
        vis = np.zeros((n, len(BLAZEPOSE33_JOINTS)))
        pose = self._model()
        for i, frame in enumerate(frames):
            res = pose.process(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            if res.pose_landmarks is None:
                continue
            lm = np.array([(p.x, p.y, p.visibility) for p in res.pose_landmarks.landmark])
            # normalized image coordinates -> pixels (x * width, y * height); OpenCV pixel centres
            raw[i] = lm[:, :2] * (w, h) - 0.5
            vis[i] = np.clip(lm[:, 2], 0, 1)
        kp = BLAZEPOSE33.apply(raw)
        sc = BLAZEPOSE33.apply_scores(vis)
        missing = ~np.isfinite(kp).all(-1) | (sc <= 0)
        kp[missing] = np.nan
        sc[missing] = 0
        return kp.astype(np.float32), sc.astype(np.float32)

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self.reset()
        except Exception:  # noqa: BLE001
            pass
