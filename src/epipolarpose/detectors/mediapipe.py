"""MediaPipe BlazePose (the legacy ``mediapipe.solutions.pose``) as a :class:`Detector`.

Optional extra: ``pip install "epipolarpose[mediapipe]"`` then ``pip install --no-deps
mediapipe==0.10.14`` (see ``docs/footage.md``; the 0.10.x wheels ship the full pose model
(``model_complexity=1``) and run offline, 0.10.14 works with numpy 2, and ``--no-deps`` keeps jax
out). The lite (0) and heavy (2) models are downloaded by MediaPipe on first use.

The 33 BlazePose landmarks map to Human3.6M-17 with :data:`epipolarpose.skeleton.BLAZEPOSE33`:
pelvis = mean of the hips, thorax = mean of the shoulders, spine = mean of pelvis and thorax,
Neck/Nose = nose, Head = mean of the ears; limbs are taken as they are. The landmark
``visibility`` is the score (a derived joint gets the minimum of its parts).
:meth:`MediaPipeDetector.detect_all` also returns the 33 landmarks themselves
(:data:`~epipolarpose.skeleton.BLAZEPOSE33_JOINTS`, MediaPipe's ``PoseLandmark`` names in lower case).

Lifetime: the detector owns a MediaPipe graph with its own threads. Close it with
:meth:`MediaPipeDetector.close` or a ``with`` block. A graph still open when the interpreter exits is
closed by an ``atexit`` hook, while Python can still run the graph's callbacks: closing it later,
from a finaliser during interpreter shutdown, waits forever for worker threads that can no longer
take the GIL (``epipolarpose detect`` used to hang that way after writing its output).
"""

from __future__ import annotations

import atexit
import sys
import weakref

import numpy as np

from ..errors import InputError
from ..skeleton import BLAZEPOSE33, BLAZEPOSE33_JOINTS
from .base import Detections, Detector

INSTALL_HINT = (
    'MediaPipe is not installed: pip install "epipolarpose[mediapipe]" && '
    "pip install --no-deps mediapipe==0.10.14"
)

#: model_complexity -> the landmark model's name (only "full" ships in the wheel)
MODEL_FILES = {
    0: "pose_landmark_lite.tflite",
    1: "pose_landmark_full.tflite",
    2: "pose_landmark_heavy.tflite",
}


def _drop_import_tracebacks() -> None:
    """Forget the tracebacks of exceptions mediapipe keeps in module globals.

    ``mediapipe.tasks.python.audio.core.audio_record`` stores the ImportError of the optional
    ``sounddevice`` (absent with ``--no-deps``) as ``sd_error``. Its traceback holds the frames of
    the import, and through ``f_back`` every frame of whoever imported mediapipe first, with their
    locals (a detector, a batch of video frames) alive until the interpreter exits.
    """
    for name, module in list(sys.modules.items()):
        if not name.startswith("mediapipe"):
            continue
        for value in list(getattr(module, "__dict__", {}).values()):
            if isinstance(value, BaseException) and value.__traceback__ is not None:
                value.__traceback__ = None


def _import_pose():
    """``mediapipe.solutions.pose``, with shims for protobuf >= 6.30 (which dropped
    ``SymbolDatabase.GetPrototype`` and ``MessageFactory.GetPrototype``, still called by
    mediapipe 0.10.14 and its bindings)."""
    try:
        from google.protobuf import message_factory, symbol_database

        if not hasattr(symbol_database.SymbolDatabase, "GetPrototype"):
            symbol_database.SymbolDatabase.GetPrototype = lambda self, d: message_factory.GetMessageClass(d)
        if not hasattr(message_factory.MessageFactory, "GetPrototype"):
            message_factory.MessageFactory.GetPrototype = lambda self, d: message_factory.GetMessageClass(d)
        from mediapipe.python.solutions import pose
    except ImportError as e:
        raise InputError(f"{INSTALL_HINT} ({e})") from None
    _drop_import_tracebacks()
    return pose


def available() -> bool:
    """True when ``mediapipe.solutions.pose`` can be imported."""
    try:
        _import_pose()
    except InputError:
        return False
    return True


#: Detectors whose graph is open (closed by :func:`_close_all` at exit at the latest).
_OPEN: weakref.WeakSet[MediaPipeDetector] = weakref.WeakSet()
_ATEXIT_REGISTERED = False


def _close_all() -> None:
    """Close every graph still open (an ``atexit`` hook: runs before interpreter shutdown)."""
    for det in list(_OPEN):
        det.close()


class MediaPipeDetector(Detector):
    """BlazePose via ``mediapipe.solutions.pose`` (one person per frame, with tracking).

    Use as a context manager (or call :meth:`close`) so that MediaPipe's graph is closed
    deterministically; after :meth:`close` or :meth:`reset` the next :meth:`detect` opens a new one.

    Args:
        model_complexity: 0 (lite), 1 (full, in the wheel) or 2 (heavy) landmark model; 0 and 2 are
            downloaded by MediaPipe on first use.
        static_image_mode: detect the person in every frame independently, without landmark
            smoothing (unrelated images, or videos below ~15 fps) instead of tracking it through a
            video with MediaPipe's smoothing (tuned for ~30 fps).
        min_detection_confidence: person-detector threshold.
        min_tracking_confidence: landmark-tracking threshold (video mode).
    """

    name = "mediapipe"
    native_joint_names = BLAZEPOSE33_JOINTS

    def __init__(
        self,
        model_complexity: int = 1,
        static_image_mode: bool = False,
        min_detection_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
    ) -> None:
        if model_complexity not in MODEL_FILES:
            raise InputError(f"MediaPipe model complexity must be 0, 1 or 2, got {model_complexity!r}")
        self._kwargs = dict(
            model_complexity=model_complexity,
            static_image_mode=static_image_mode,
            min_detection_confidence=min_detection_confidence,
            min_tracking_confidence=min_tracking_confidence,
            smooth_landmarks=not static_image_mode,
        )
        self._pose = None

    @property
    def model_complexity(self) -> int:
        return int(self._kwargs["model_complexity"])

    @property
    def static_image_mode(self) -> bool:
        return bool(self._kwargs["static_image_mode"])

    def _model(self):
        global _ATEXIT_REGISTERED
        if self._pose is None:
            pose = _import_pose()
            try:
                self._pose = pose.Pose(**self._kwargs)
            except OSError as e:  # the lite/heavy model could not be downloaded (URLError is an OSError)
                name = MODEL_FILES[self.model_complexity]
                raise InputError(
                    f"MediaPipe model complexity {self.model_complexity} needs {name}, which is not in "
                    f"the mediapipe wheel and could not be downloaded ({e}); use --model-complexity 1"
                ) from None
            _OPEN.add(self)
            if not _ATEXIT_REGISTERED:
                atexit.register(_close_all)
                _ATEXIT_REGISTERED = True
        return self._pose

    def close(self) -> None:
        """Close MediaPipe's graph (stops its threads); a later :meth:`detect` opens a new one."""
        pose, self._pose = self._pose, None
        _OPEN.discard(self)
        if pose is not None:
            pose.close()

    def reset(self) -> None:
        """Forget the tracked person (closes the graph; the next frame starts a new one)."""
        self.close()

    def detect(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """frames (N, H, W, 3) uint8 BGR -> keypoints (N, 17, 2) pixels, scores (N, 17)."""
        out = self.detect_all(frames)
        return out.keypoints, out.scores

    def detect_all(self, frames: np.ndarray) -> Detections:
        """frames (N, H, W, 3) uint8 BGR -> H36M keypoints (N, 17, 2) / scores (N, 17) and the
        33 BlazePose landmarks (N, 33, 2) px / visibilities (N, 33); NaN / 0 where nobody is found."""
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
        missing = ~np.isfinite(raw).all(-1) | (vis <= 0)
        raw[missing] = np.nan
        vis[missing] = 0
        return Detections(
            kp.astype(np.float32), sc.astype(np.float32), raw.astype(np.float32), vis.astype(np.float32)
        )

    def __del__(self) -> None:  # pragma: no cover - best effort
        # Never close from a finaliser during interpreter shutdown: the graph's threads can no longer
        # take the GIL and the close would wait forever (the atexit hook has closed it already).
        if sys.is_finalizing():
            return
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass
