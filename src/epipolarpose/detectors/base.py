"""The one interface every 2D detector implements, and choosing one person per view.

A detector turns a batch of frames of ONE camera into Human3.6M-17 keypoints::

    with get_detector("mediapipe") as detector:      # closes the detector's resources on exit
        keypoints, scores = detector.detect(frames)   # frames (N, H, W, 3) uint8 BGR
    # keypoints (N, 17, 2) float pixels, NaN where missing; scores (N, 17) in [0, 1], 0 where missing

:meth:`Detector.detect_all` also returns the detector's own landmarks before the mapping
(``native_joint_names``, e.g. BlazePose's 33) when it has them. Detectors may keep state between
calls (tracking), so use one instance per camera and call :meth:`Detector.reset` before a new
video; :meth:`Detector.close` (or the ``with`` block) releases what it holds (MediaPipe's graph
and its threads). :func:`select_track` reduces several people per frame to the one person the
multi-view pipeline follows (largest, most consistent track).
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from typing import NamedTuple

import numpy as np


class Detections(NamedTuple):
    """One camera's detections for N frames.

    Attributes:
        keypoints: (N, 17, 2) float32 pixels, Human3.6M order; NaN where missing.
        scores: (N, 17) float32 in [0, 1]; 0 where missing.
        keypoints_native: (N, K, 2) float32 pixels in the detector's own order, or None.
        scores_native: (N, K) float32, or None.
    """

    keypoints: np.ndarray
    scores: np.ndarray
    keypoints_native: np.ndarray | None = None
    scores_native: np.ndarray | None = None


class Detector(ABC):
    """A 2D pose detector returning one person per frame in Human3.6M-17 order.

    A context manager: ``with detector: ...`` calls :meth:`close` on the way out.
    """

    #: name used by ``epipolarpose detect --detector NAME``
    name: str = "detector"
    #: names of the detector's own landmarks (K,), as :meth:`detect_all` returns them; None if it has none
    native_joint_names: tuple[str, ...] | None = None

    @abstractmethod
    def detect(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Detect the person in consecutive frames of one camera.

        Args:
            frames: (N, H, W, 3) uint8 BGR.
        Returns:
            keypoints (N, 17, 2) float32 pixels (NaN where missing) and scores (N, 17) float32 in
            [0, 1] (0 where missing).
        """

    def detect_all(self, frames: np.ndarray) -> Detections:
        """:meth:`detect`, plus the native landmarks (N, K, 2) / scores (N, K) where the detector
        has them (``native_joint_names`` not None); the default has none."""
        kp, sc = self.detect(frames)
        return Detections(kp, sc)

    def reset(self) -> None:  # noqa: B027 - optional hook
        """Forget any tracking state (call before the frames of another video)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the detector holds (models, graphs, threads); it may be used again after."""

    def __enter__(self) -> Detector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def select_track_index(keypoints: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """The person :func:`select_track` follows, per frame.

    Args:
        keypoints: (N, P, J, 2) candidates per frame (NaN-padded where fewer than P people).
        scores: (N, P, J), 0 for padding.
    Returns:
        (N,) int index into P, -1 where nobody is followed.
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    sc = np.asarray(scores, dtype=np.float64)
    N, P, J, _ = kp.shape
    chosen = np.full(N, -1, dtype=np.int64)
    ok = np.isfinite(kp).all(-1) & (sc > 0)  # (N, P, J)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN people (padding)
        lo = np.nanmin(np.where(ok[..., None], kp, np.nan), axis=2)
        hi = np.nanmax(np.where(ok[..., None], kp, np.nan), axis=2)
    size = np.nan_to_num(np.linalg.norm(hi - lo, axis=-1))  # (N, P)
    mean_score = np.where(ok, sc, 0).sum(-1) / np.maximum(ok.sum(-1), 1)
    last, last_size, lost = None, 0.0, 0
    for n in range(N):
        present = ok[n].sum(-1) >= 3
        if not present.any():
            lost += 1
            continue
        if last is None or lost > 5:
            p = int(np.argmax(np.where(present, size[n] * mean_score[n], -1)))
        else:
            both = ok[n] & np.isfinite(last).all(-1)[None]
            d = np.linalg.norm(np.where(both[..., None], kp[n] - last[None], 0), axis=-1).sum(-1)
            d = np.where(present & (both.sum(-1) > 0), d / np.maximum(both.sum(-1), 1), np.inf)
            p = int(np.argmin(d))
            if not np.isfinite(d[p]) or d[p] > max(last_size, 1.0):
                lost += 1
                continue
        chosen[n] = p
        last, last_size, lost = np.where(ok[n, p, :, None], kp[n, p], np.nan), size[n, p], 0
    return chosen


def select_track(keypoints: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pick one person per frame among several candidates: the largest, most consistent track.

    The first person is the largest (bounding-box diagonal x mean score) in the first frame where
    anyone is seen; in later frames it is the candidate whose joints are closest to the last
    chosen pose (mean distance, relative to its size); a candidate farther than one body size
    away only takes over if the track was lost for more than 5 frames.

    Args:
        keypoints: (N, P, J, 2) candidates per frame (NaN-padded where fewer than P people).
        scores: (N, P, J), 0 for padding.
    Returns:
        keypoints (N, J, 2) and scores (N, J) of the chosen person (NaN / 0 where nobody is seen).
    """
    return take_person(keypoints, scores, select_track_index(keypoints, scores))


def take_person(
    keypoints: np.ndarray, scores: np.ndarray, person: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Person ``person[n]`` of every frame ``n`` (-1: nobody).

    Args:
        keypoints: (N, P, J, 2); scores: (N, P, J); person: (N,) int (from :func:`select_track_index`).
    Returns:
        keypoints (N, J, 2) float32 (NaN where missing) and scores (N, J) float32 (0 where missing).
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    sc = np.asarray(scores, dtype=np.float64)
    N, _, J, _ = kp.shape
    out_kp = np.full((N, J, 2), np.nan)
    out_sc = np.zeros((N, J))
    n = np.flatnonzero(person >= 0)
    ok = np.isfinite(kp[n, person[n]]).all(-1) & (sc[n, person[n]] > 0)
    out_kp[n] = np.where(ok[..., None], kp[n, person[n]], np.nan)
    out_sc[n] = np.where(ok, sc[n, person[n]], 0)
    return out_kp.astype(np.float32), out_sc.astype(np.float32)
