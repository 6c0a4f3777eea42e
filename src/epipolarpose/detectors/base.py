"""The one interface every 2D detector implements, and choosing one person per view.

A detector turns a batch of frames of ONE camera into Human3.6M-17 keypoints::

    keypoints, scores = detector.detect(frames)   # frames (N, H, W, 3) uint8 BGR
    # keypoints (N, 17, 2) float pixels, NaN where missing; scores (N, 17) in [0, 1], 0 where missing

Detectors may keep state between calls (tracking), so use one instance per camera and call
:meth:`Detector.reset` before a new video. :func:`select_track` reduces several people per frame
to the one person the multi-view pipeline follows (largest, most consistent track).
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod

import numpy as np


class Detector(ABC):
    """A 2D pose detector returning one person per frame in Human3.6M-17 order."""

    #: name used by ``epipolarpose detect --detector NAME``
    name: str = "detector"

    @abstractmethod
    def detect(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Detect the person in consecutive frames of one camera.

        Args:
            frames: (N, H, W, 3) uint8 BGR.
        Returns:
            keypoints (N, 17, 2) float32 pixels (NaN where missing) and scores (N, 17) float32 in
            [0, 1] (0 where missing).
        """

    def reset(self) -> None:  # noqa: B027 - optional hook
        """Forget any tracking state (call before the frames of another video)."""


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
    kp = np.asarray(keypoints, dtype=np.float64)
    sc = np.asarray(scores, dtype=np.float64)
    N, P, J, _ = kp.shape
    out_kp = np.full((N, J, 2), np.nan)
    out_sc = np.zeros((N, J))
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
        out_kp[n] = np.where(ok[n, p, :, None], kp[n, p], np.nan)
        out_sc[n] = np.where(ok[n, p], sc[n, p], 0)
        last, last_size, lost = out_kp[n], size[n, p], 0
    return out_kp.astype(np.float32), out_sc.astype(np.float32)
