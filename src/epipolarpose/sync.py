"""Time synchronisation of cameras started by hand: integer frame offsets from the 2D tracks.

Convention (as in ``labels.npz``): ``offsets[c]`` is the number of frames to *add* to camera
``c``'s frame index to get the reference camera's index — frame ``i`` of camera ``c`` was taken at
the same time as frame ``i + offsets[c]`` of the reference camera (camera 0, ``offsets[0] = 0``).

Method: two cameras' joints at the same instant obey one epipolar geometry; shifted by a wrong
offset the person has moved, and no single fundamental matrix explains the pooled
correspondences. The cost of a pair of cameras at a relative offset is found by pooling the
correspondences of all overlapping frames and joints, fitting a fundamental matrix robustly
(OpenCV USAC-MAGSAC; in pixels after removing lens distortion when ``K``/``dist`` are known) and
taking the RMS Sampson error, truncated at 3x its median (pixels).

1. Coarse: every candidate offset in ``[-max_offset, max_offset]`` against the reference camera,
   on a subsample of frames.
2. Fine: all frames and *all* camera pairs. For each camera the squared pair costs summed over the
   other cameras are evaluated in a window of ±3 frames around the current estimate, a parabola is
   fitted and its vertex rounded (coordinate descent, two sweeps). Using every pair and the shape
   of the cost curve rather than its noisy minimum matters for slow motions.

The confidence compares the cost at the chosen offset with the best coarse cost at least 3 frames
away (``1 - best / runner_up``): near 0 when the person hardly moves (every offset fits equally).
Offsets are in frames of the ``poses2d`` file (after any ``--stride``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from .camera import undistort_normalized
from .errors import InputError
from .formats import Poses2D


@dataclass
class SyncResult:
    """Estimated offsets.

    Attributes:
        offsets: (C,) int frames to add to each camera's index (``offsets[reference] = 0``).
        confidence: (C,) float in [0, 1] (1 for the reference camera).
        cost: (C, 2 * max_offset + 1) coarse cost (robust RMS Sampson error, pixels) of every
            candidate offset against the reference (NaN where the views overlap too little).
        candidates: (2 * max_offset + 1,) the candidate offsets.
        reference: index of the reference camera.
    """

    offsets: np.ndarray
    confidence: np.ndarray
    cost: np.ndarray
    candidates: np.ndarray
    reference: int = 0
    warnings: list[str] = field(default_factory=list)

    def summary(self, names: list[str] | None = None) -> str:
        """One line per camera: offset and confidence."""
        names = names or [f"cam{i}" for i in range(len(self.offsets))]
        lines = []
        for c, (o, q) in enumerate(zip(self.offsets, self.confidence)):
            ref = " (reference)" if c == self.reference else ""
            lines.append(f"{names[c]}: offset {int(o):+d} frames, confidence {q:.2f}{ref}")
        return "\n".join(lines + self.warnings)


def _normalized(uv: np.ndarray, K: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """Pixels (..., 2) -> undistorted normalized coordinates (NaN stays NaN)."""
    try:
        return undistort_normalized(uv, K, dist)
    except AttributeError:  # OpenCV 5 has no undistortPointsIter (camera.py uses it)
        out = np.full(uv.shape, np.nan)
        ok = np.isfinite(uv).all(-1)
        crit = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 20, 1e-10)
        res = cv2.undistortPoints(uv[ok].reshape(-1, 1, 2), K, dist, None, None, None, crit)
        out[ok] = res.reshape(-1, 2)
        return out


def _epipolar_cost(a: np.ndarray, b: np.ndarray, thresh: float = 2.0) -> float:
    """Robust RMS Sampson error (pixels; errors truncated at 3x their median) of a robust
    fundamental-matrix fit to correspondences a <-> b (M, 2) pixels."""
    F, _ = cv2.findFundamentalMat(a, b, cv2.USAC_MAGSAC, thresh, 0.999, 2000)
    if F is None:
        return np.inf
    F = F[:3]
    ah = np.concatenate([a, np.ones((len(a), 1))], 1)
    bh = np.concatenate([b, np.ones((len(b), 1))], 1)
    Fa = ah @ F.T  # epipolar lines in b
    Ftb = bh @ F  # epipolar lines in a
    num = np.einsum("ij,ij->i", bh, Fa) ** 2
    den = Fa[:, 0] ** 2 + Fa[:, 1] ** 2 + Ftb[:, 0] ** 2 + Ftb[:, 1] ** 2
    e = np.sqrt(num / np.maximum(den, 1e-30))
    return float(np.sqrt(np.mean(np.minimum(e, 3 * np.median(e)) ** 2)))


def _pairs(x_a: np.ndarray, x_b: np.ndarray, offset: int, stride: int = 1):
    """Correspondences (M, 2) <-> (M, 2) of camera a frame t <-> camera b frame t - offset (every
    ``stride``-th overlapping frame) and the number of frames they come from."""
    F = x_a.shape[0]
    t = np.arange(max(0, offset), min(F, F + offset))[::stride]
    a, b = x_a[t], x_b[t - offset]
    ok = np.isfinite(a).all(-1) & np.isfinite(b).all(-1)
    return a[ok], b[ok], len(np.unique(np.nonzero(ok)[0]))


def _parabola_vertex(cands: np.ndarray, values: np.ndarray) -> int:
    """Integer offset nearest the vertex of a parabola fitted to ``values`` around their minimum."""
    i = int(np.argmin(values))
    lo, hi = max(0, i - 3), min(len(values), i + 4)
    ok = np.isfinite(values[lo:hi])
    if ok.sum() >= 3:
        p = np.polyfit(cands[lo:hi][ok], values[lo:hi][ok], 2)
        if p[0] > 0:
            v = -p[1] / (2 * p[0])
            if cands[lo] <= v <= cands[hi - 1]:
                return int(np.round(v))
    return int(cands[i])


def estimate_offsets(
    poses2d: Poses2D,
    max_offset: int = 30,
    reference: int = 0,
    min_score: float = 0.3,
    coarse_points: int = 1500,
    max_points: int = 4000,
    seed: int = 0,
) -> SyncResult:
    """Estimate integer frame offsets of every camera against ``reference``.

    Args:
        poses2d: detections (C, F, J, 2); ``K``/``dist``, when present, remove lens distortion.
        max_offset: largest |offset| tried, frames.
        reference: camera whose timeline the offsets refer to.
        min_score: detections below this score are ignored.
        coarse_points: correspondences per candidate in the coarse pass (frames subsampled).
        max_points: cap on correspondences per pair in the fine pass (frames subsampled beyond it).
        seed: OpenCV RNG seed (RANSAC), for reproducible results.
    Returns:
        :class:`SyncResult` (offsets relative to ``reference``).
    """
    C, F, J, _ = poses2d.keypoints.shape
    if C < 2:
        raise InputError("time synchronisation needs at least 2 cameras")
    if not 0 <= reference < C:
        raise InputError(f"reference camera {reference} out of range for {C} cameras")
    if max_offset < 0 or max_offset >= F - 2:
        raise InputError(f"max_offset must be in [0, {F - 3}] for {F} frames, got {max_offset}")
    cv2.setRNGSeed(seed)
    kp = np.where((poses2d.scores >= min_score)[..., None], poses2d.keypoints, np.nan).astype(np.float64)
    if poses2d.K is not None and poses2d.dist is not None and np.any(poses2d.dist):
        # remove lens distortion (same K), so that a fundamental matrix holds exactly
        K = poses2d.K
        xy = np.stack([_normalized(kp[c], K[c], poses2d.dist[c]) for c in range(C)])
        x = np.einsum("cij,cfkj->cfki", K[:, :2, :2], xy) + K[:, None, None, :2, 2]
    else:
        x = kp
    cands = np.arange(-max_offset, max_offset + 1)
    cost = np.full((C, len(cands)), np.nan)
    offsets = np.zeros(C, dtype=np.int64)
    names = poses2d.camera_names
    seen = np.isfinite(x).all(-1)
    memo: dict[tuple[int, int, int, bool], float] = {}

    def pair_cost(i: int, j: int, d: int, coarse: bool = False) -> float:
        """Cost of camera i frame t <-> camera j frame t - d (all frames, or a subsample)."""
        key = (i, j, d, coarse)
        if key not in memo:
            n_obs = (seen[i] & seen[j]).sum()
            stride = max(1, int(np.ceil(n_obs / (coarse_points if coarse else max_points))))
            a, b, nf = _pairs(x[i], x[j], d, stride)
            memo[key] = _epipolar_cost(a, b) if len(a) >= 15 and nf >= 4 else np.nan
        return memo[key]

    cams = [c for c in range(C) if c != reference]
    # 1. coarse: every candidate against the reference camera, on a subsample of frames
    for c in cams:
        cost[c] = [pair_cost(reference, c, int(o), coarse=True) for o in cands]
        if not np.isfinite(cost[c]).any():
            raise InputError(
                f"camera {names[c]!r}: too few joints seen together with {names[reference]!r} to "
                "estimate a time offset"
            )
        offsets[c] = cands[np.nanargmin(cost[c])]
    # 2. fine: all frames, all pairs, parabola vertex of the summed squared costs in ±3 frames
    for _ in range(2 if C > 2 else 1):
        for c in cams:
            win = np.arange(max(offsets[c] - 3, -max_offset), min(offsets[c] + 3, max_offset) + 1)
            total = np.zeros(len(win))
            for j in range(C):
                if j != c:
                    pc = np.array([pair_cost(j, c, int(v - offsets[j])) for v in win])
                    total += np.where(np.isfinite(pc), pc**2, np.inf)
            if np.isfinite(total).any():
                offsets[c] = _parabola_vertex(win, total)
    conf = np.ones(C)
    warnings: list[str] = []
    for c in cams:
        far = np.abs(cands - offsets[c]) >= 3
        runner = np.nanmin(np.where(far & np.isfinite(cost[c]), cost[c], np.inf))
        best = cost[c, int(np.searchsorted(cands, offsets[c]))]
        conf[c] = float(np.clip(1 - best / runner, 0, 1)) if np.isfinite(runner * best) else 0.0
        if abs(offsets[c]) == max_offset:
            warnings.append(
                f"warning: {names[c]} offset hit the search limit ±{max_offset}; try a larger --max-offset"
            )
        if conf[c] < 0.2:
            warnings.append(
                f"warning: {names[c]} offset is uncertain (confidence {conf[c]:.2f}): the person may "
                "move too little, or the views share too few joints"
            )
    cost[~np.isfinite(cost)] = np.nan
    return SyncResult(offsets, conf, cost, cands, reference, warnings)
