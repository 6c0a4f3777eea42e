"""Our own 2D pose network (a PoseNet checkpoint from ``epipolarpose train``) as a :class:`Detector`.

The network sees square crops. The first frame (and any frame after the person was lost) is
cropped as the whole image padded to a square; later frames use a square around the previous
frame's joints, enlarged by ``margin`` — a simple tracker that keeps the person at the scale the
network was trained on. The score of a joint is the peak of its probability map relative to the
peak of a sharp (one-cell) map, clipped to [0, 1]. torch and the checkpoint load lazily on the
first :meth:`NetworkDetector.detect` call.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .base import Detector


class NetworkDetector(Detector):
    """PoseNet checkpoint wrapped as a detector.

    Args:
        checkpoint: a file :func:`epipolarpose.models.checkpoint.load_model` reads.
        device: torch device (``"cpu"``, ``"cuda"``).
        margin: crop side = ``margin`` x the previous pose's bounding-box side.
        min_score: joints below this score are reported missing.
    """

    name = "network"

    def __init__(
        self, checkpoint: str | os.PathLike, device: str = "cpu", margin: float = 1.4, min_score: float = 0.05
    ) -> None:
        self.checkpoint = Path(checkpoint)
        self.device = device
        self.margin = margin
        self.min_score = min_score
        self._model = None
        self._box: tuple[float, float, float] | None = None  # centre x, centre y, side

    def _load(self):
        if self._model is None:
            from ..models.checkpoint import load_model

            self._model, self._config, _ = load_model(self.checkpoint, map_location=self.device)
            self._model.eval()
        return self._model

    def reset(self) -> None:
        self._box = None

    def detect(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """frames (N, H, W, 3) uint8 BGR -> keypoints (N, 17, 2) pixels, scores (N, 17)."""
        import cv2
        import torch

        from ..models.posenet import normalize_images, to_pixels

        model = self._load()
        S = self._config.input_size
        frames = np.asarray(frames)
        n, h, w = frames.shape[:3]
        kps = np.full((n, self._config.num_joints, 2), np.nan, np.float32)
        scs = np.zeros((n, self._config.num_joints), np.float32)
        for i, frame in enumerate(frames):
            cx, cy, side = self._box if self._box is not None else (w / 2, h / 2, max(w, h))
            # affine map crop pixel -> image pixel: x_img = a * x_crop + b
            a = side / S
            b = np.array([cx - side / 2 + a / 2 - 0.5, cy - side / 2 + a / 2 - 0.5])
            M = np.array([[1 / a, 0, -b[0] / a], [0, 1 / a, -b[1] / a]])
            crop = cv2.warpAffine(frame, M, (S, S), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
            x = torch.from_numpy(cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)).permute(2, 0, 1)[None].float() / 255
            with torch.no_grad():
                out = model(normalize_images(x.to(self.device)))
            uv = to_pixels(out["joints2d"][0].cpu().numpy(), S)
            probs = out["probs2d"][0].cpu().numpy()
            score = np.clip(probs.reshape(len(probs), -1).max(-1) * 4.0, 0, 1)  # ~1 for a sharp peak
            pts = uv * a + b
            good = score >= self.min_score
            kps[i, good] = pts[good]
            scs[i, good] = score[good]
            if good.sum() >= 5:
                lo, hi = pts[good].min(0), pts[good].max(0)
                c = (lo + hi) / 2
                self._box = (float(c[0]), float(c[1]), float(max(hi - lo) * self.margin + 16))
            else:
                self._box = None
        return kps, scs
