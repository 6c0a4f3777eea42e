"""Time synchronisation of cameras started by hand: integer frame offsets from the 2D tracks.

Convention (as in ``labels.npz``): ``offsets[c]`` is the number of frames to *add* to camera
``c``'s frame index to get the reference camera's index — frame ``i`` of camera ``c`` was taken at
the same time as frame ``i + offsets[c]`` of the reference camera (camera 0, ``offsets[0] = 0``).

Method: two cameras' joints at the same instant obey one epipolar geometry; shifted by a wrong
offset the person has moved and the correspondences leave their epipolar lines. All work is in
pixels after removing lens distortion when ``K``/``dist`` are known.

0. Tracks: points below ``min_score`` are dropped; each joint's track is smoothed in time (running
   median over ``smooth`` frames; points farther than 3x the median distance from it are dropped
   as outliers or left/right swaps; running mean of the rest over ``smooth`` frames). Smoothing
   cuts the detector noise that otherwise hides the small misalignment of a slow motion.
1. Coarse: every candidate offset in ``[-max_offset, max_offset]`` (narrowed on a short clip so
   that two cameras keep ``min_overlap`` of the frames in common) against the reference camera,
   on a subsample of frames: a fundamental matrix fitted robustly (OpenCV USAC-MAGSAC) to the
   pooled correspondences of all overlapping frames and joints, cost = its RMS Sampson error
   truncated at 3x the median (pixels). Only offsets at which at least ``min_shared_motion`` of
   one camera's motion falls on joints the other camera sees are scored (everywhere below too):
   where a camera sees the person in part of the clip only, other offsets pair frames in which
   the person hardly moves or is not seen, and those fit any geometry.
2. Periodic motion (a walk) gives minima one cycle apart that fit almost equally well. The
   near-best local minima of every camera (within 30 % of its best, up to 3) are combined and
   the combination whose relative offsets fit best over *all* camera pairs (sum of the log
   refitted costs) is kept: an alias against the reference is rarely one against the others too.
3. Fine: cameras are static, so each pair has ONE geometry. A fundamental matrix per pair is
   fitted robustly on all frames at the current relative offset and *fixed*; every relative offset
   is scored with it: weighted mean of the squared Sampson errors (truncated at 3x their median at
   the fitted offset; weights: the joints' squared speeds, since still joints carry no timing
   signal), normalised per pair. Refitting per offset would absorb part of a slow motion's
   misalignment. The offsets minimising the sum of the pair costs (``offset_ij = o_j - o_i``) are
   searched over the full range (exhaustively up to 4 cameras, else by coordinate descent); the
   geometries are refitted at the new offsets and the search repeated until nothing changes (at
   most 3 rounds).

The confidence compares the cost at the chosen offset with the best coarse cost at least 3 frames
away (``1 - best / runner_up``): near 0 when the person hardly moves (every offset fits equally).
Offsets are in frames of the ``poses2d`` file (after any ``--stride``).
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import cv2
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.signal import fftconvolve

from .camera import Rig, undistort_normalized
from .errors import InputError
from .formats import Poses2D
from .geometry.epipolar import sampson_error
from .geometry.observations import normalized_observations
from .geometry.triangulation import TriangulationOptions, triangulate_robust

__all__ = [
    "SyncOptions",
    "SyncResult",
    "apply_offsets",
    "check_with_rig",
    "estimate_offsets",
    "others_triangulation",
    "rig_errors",
    "search_range",
]


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
        epipolar_offsets: (C,) the offsets of the 2D tracks alone, before :func:`check_with_rig`
            (None when it did not run).
        rig_error_px: (C,) with :func:`check_with_rig`: every camera's median error against the
            others' triangulation at its offset (pixels; NaN for the reference).
    """

    offsets: np.ndarray
    confidence: np.ndarray
    cost: np.ndarray
    candidates: np.ndarray
    reference: int = 0
    warnings: list[str] = field(default_factory=list)
    epipolar_offsets: np.ndarray | None = None
    rig_error_px: np.ndarray | None = None

    def summary(self, names: list[str] | None = None, warnings: bool = True) -> str:
        """One line per camera: offset and confidence (then the warnings, unless told not to)."""
        names = names or [f"cam{i}" for i in range(len(self.offsets))]
        lines = []
        for c, (o, q) in enumerate(zip(self.offsets, self.confidence)):
            ref = " (reference)" if c == self.reference else ""
            lines.append(f"{names[c]}: offset {int(o):+d} frames, confidence {q:.2f}{ref}")
        return "\n".join(lines + (self.warnings if warnings else []))


# outliers: points farther than this x the median distance from the running median are dropped
_REJECT = 3.0
# periodic aliases: local coarse minima within this ratio of the best are re-examined on all pairs
_ALIAS_RATIO = 1.3
_HYPOTHESES = 3  # per camera
_MAX_COMBOS = 64
# fine pass: weight floor of still joints (x the mean squared speed); refit/re-score rounds
_WEIGHT_FLOOR = 0.05
_FINE_ITERATIONS = 3


def _smooth_tracks(x: np.ndarray, median: int = 5, mean: int = 5, reject: float = 0.0) -> np.ndarray:
    """Robust temporal smoothing of tracks (T, J, 2) over T frames: running median over ``median`` frames (drops
    isolated outliers and left/right swaps), then running mean over ``mean`` frames. NaN where
    fewer than half the median window is observed. With ``reject > 0`` the mean is taken over the
    raw points within ``reject`` x the median distance of all points from the running median."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows
        h = median // 2
        w = sliding_window_view(np.pad(x, ((h, h), (0, 0), (0, 0)), constant_values=np.nan), median, axis=0)
        m = np.nanmedian(w, -1)
        m[np.isfinite(w).sum(-1) <= h] = np.nan
        if reject > 0:
            r = np.linalg.norm(x - m, axis=-1)
            bad = ~(r <= reject * np.nanmedian(r))
            m = np.where(bad[..., None], np.nan, x)
        h = mean // 2
        w = sliding_window_view(np.pad(m, ((h, h), (0, 0), (0, 0)), constant_values=np.nan), mean, axis=0)
        out = np.nanmean(w, -1)
        if reject > 0:
            out[np.isfinite(w).sum(-1) <= h] = np.nan
        return out


def _fit_fundamental(a: np.ndarray, b: np.ndarray, thresh: float = 2.0) -> np.ndarray | None:
    """Robust fundamental matrix (OpenCV USAC-MAGSAC) of correspondences a <-> b (M, 2) pixels."""
    F, _ = cv2.findFundamentalMat(a, b, cv2.USAC_MAGSAC, thresh, 0.999, 2000)
    return None if F is None else F[:3]


def _epipolar_cost(a: np.ndarray, b: np.ndarray, thresh: float = 2.0) -> float:
    """Robust RMS Sampson error (pixels; errors truncated at 3x their median) of a robust
    fundamental-matrix fit to correspondences a <-> b (M, 2) pixels."""
    F = _fit_fundamental(a, b, thresh)
    if F is None:
        return np.inf
    e = sampson_error(F, a, b)
    return float(np.sqrt(np.mean(np.minimum(e, 3 * np.median(e)) ** 2)))


def _overlap(num_frames: int, offset: int) -> np.ndarray:
    """Frames t of camera a whose partner t - offset exists in camera b."""
    return np.arange(max(0, offset), min(num_frames, num_frames + offset))


def _pairs(x_a: np.ndarray, x_b: np.ndarray, offset: int, stride: int = 1):
    """Correspondences (M, 2) <-> (M, 2) of camera a frame t <-> camera b frame t - offset (every
    ``stride``-th overlapping frame) and the number of frames they come from."""
    t = _overlap(x_a.shape[0], offset)[::stride]
    a, b = x_a[t], x_b[t - offset]
    ok = np.isfinite(a).all(-1) & np.isfinite(b).all(-1)
    return a[ok], b[ok], len(np.unique(np.nonzero(ok)[0]))


def _fixed_cost_curve(
    x_a: np.ndarray,
    x_b: np.ndarray,
    F: np.ndarray,
    tau: float,
    shifts: np.ndarray,
    min_frames: int,
    w_a: np.ndarray | None = None,
    w_b: np.ndarray | None = None,
) -> np.ndarray:
    """Mean truncated squared Sampson error ``mean(min(e, tau)^2)`` under ONE fundamental matrix
    ``F`` of camera a frame t <-> camera b frame t - d, for every d in ``shifts`` (NaN where fewer
    than ``min_frames`` frames overlap). Weighted by ``w_a[t] + w_b[t - d]`` (T, J) when given."""
    out = np.full(len(shifts), np.nan)
    n_frames = x_a.shape[0]
    for n, d in enumerate(shifts):
        t = _overlap(n_frames, int(d))
        a, b = x_a[t], x_b[t - d]
        ok = np.isfinite(a).all(-1) & np.isfinite(b).all(-1)
        if ok.any(-1).sum() < min_frames:
            continue
        e2 = np.minimum(sampson_error(F, a[ok], b[ok]), tau) ** 2
        if w_a is None or w_b is None:
            out[n] = np.mean(e2)
        else:
            w = (w_a[t] + w_b[t - d])[ok]
            out[n] = np.sum(w * e2) / np.sum(w)
    return out


def _local_minima(cands: np.ndarray, cost: np.ndarray, ratio: float, k: int) -> list[int]:
    """Up to ``k`` candidates at local minima of ``cost`` within ``ratio`` x its minimum, best first,
    each at least 3 frames from a better one."""
    c = np.where(np.isfinite(cost), cost, np.inf)
    out: list[int] = []
    for n in np.argsort(c, kind="stable"):
        if len(out) == k or c[n] > ratio * c[out[0] if out else n] or not np.isfinite(c[n]):
            break
        is_min = (n == 0 or c[n] <= c[n - 1]) and (n == len(c) - 1 or c[n] <= c[n + 1])
        if is_min and all(abs(cands[n] - cands[m]) >= 3 for m in out):
            out.append(int(n))
    return [int(cands[n]) for n in out]


def _profile(curves: dict[tuple[int, int], np.ndarray], d0: int, o: np.ndarray, c: int, vals: np.ndarray):
    """Summed pair costs with camera ``c``'s offset set to each of ``vals``, the others at ``o``."""
    total = np.zeros(len(vals))
    for (i, j), curve in curves.items():
        if i == c:
            total += curve[o[j] - vals - d0]
        elif j == c:
            total += curve[vals - o[i] - d0]
    return total


def _joint_offsets(
    curves: dict[tuple[int, int], np.ndarray],
    shifts: np.ndarray,
    cands: np.ndarray,
    C: int,
    reference: int,
    start: np.ndarray,
    max_combinations: int = 500_000,
) -> np.ndarray:
    """Offsets (C,) minimising the sum over camera pairs (i, j) of ``curves[i, j][o_j - o_i]`` with
    ``o[reference] = 0`` and every other ``o`` in ``cands``: exhaustive search when the grid is
    small (up to 4 cameras for ±30 frames), else coordinate descent from ``start`` over the full
    candidate range."""
    d0 = int(shifts[0])
    cams = [c for c in range(C) if c != reference]
    if len(cands) ** len(cams) <= max_combinations:
        grids = np.meshgrid(*([cands] * len(cams)), indexing="ij")
        o = np.zeros((C, grids[0].size), dtype=np.int64)
        for c, g in zip(cams, grids):
            o[c] = g.ravel()
        total = np.zeros(o.shape[1])
        for (i, j), curve in curves.items():
            total += curve[o[j] - o[i] - d0]
        return o[:, int(np.argmin(total))]
    # coordinate descent; moving the reference camera (= all others together) too, else it stalls
    # where every single camera's move breaks more pairs than it mends
    lo, hi = int(cands[0]), int(cands[-1])
    o = start.copy()
    for _ in range(20):
        before = o.copy()
        for c in range(C):
            if c != reference:
                vals = cands
            else:  # keep every other camera's offset within the candidate range after re-basing
                others = np.delete(o, c)
                vals = np.arange(others.max() - hi, others.min() - lo + 1)
            o[c] = vals[int(np.argmin(_profile(curves, d0, o, c, vals)))]
            o -= o[reference]
        if np.array_equal(o, before):
            break
    return o


@dataclass(frozen=True)
class SyncOptions:
    """Knobs of :func:`estimate_offsets`.

    Attributes:
        max_offset: largest |offset| tried, frames.
        reference: camera whose timeline the offsets refer to.
        min_score: detections below this score are ignored.
        coarse_points: correspondences per candidate in the coarse pass (frames subsampled).
        max_points: cap on correspondences per pair when fitting the fixed geometry of a pair.
        smooth: temporal smoothing window of the tracks, frames (even values are rounded up to
            odd; 1: none).
        seed: OpenCV RNG seed (RANSAC), for reproducible results.
        margin: :func:`check_with_rig` moves a camera's offset only when that lowers its error
            against the others by more than this fraction; else the evidence is too weak.
        rig_rounds: rounds of :func:`check_with_rig` (calibrate, move offsets).
        min_overlap: every pair of cameras keeps at least this fraction of the frames in common
            at every offset tried: on a short clip the search is narrowed to
            ``±floor(T (1 - min_overlap) / 2)`` (with a note). An offset that leaves few frames
            in common fits them easily: unchecked, a 57-frame clip gave offsets of 20-30 frames.
            A camera that sees the person in fewer than this fraction of the frames is named in a
            warning: its offset rests on part of the clip.
        min_shared_motion: two cameras' tracks are only compared at offsets where at least this
            fraction of one camera's motion (the summed squared speed of the joints it sees) falls
            on joints the other camera sees. Where a camera sees the person only in part of
            a clip, other offsets pair little or no motion and fit any geometry: on a 57-frame
            session whose cameras each lose the person for a third of it, one camera was put 8-15
            frames off in every recording without it.
    """

    max_offset: int = 30
    reference: int = 0
    min_score: float = 0.3
    coarse_points: int = 1500
    max_points: int = 4000
    smooth: int = 5
    seed: int = 0
    margin: float = 0.05
    rig_rounds: int = 3
    min_overlap: float = 0.6
    min_shared_motion: float = 0.2


# a candidate needs correspondences from at least this many frames, and 15 of them
_MIN_FRAMES = 4
_MIN_CORRESPONDENCES = 15


def _tracks(poses2d: Poses2D, options: SyncOptions) -> np.ndarray:
    """Step 0: the joints (C, T, J, 2) in undistorted pixels (when ``K``/``dist`` are known), NaN
    below ``min_score``, each track smoothed in time."""
    C = poses2d.num_cameras
    ok = poses2d.scores >= options.min_score
    kp = np.where(ok[..., None], poses2d.keypoints, np.nan).astype(np.float64)
    if poses2d.K is not None and poses2d.dist is not None and np.any(poses2d.dist):
        # remove lens distortion (same K), so that a fundamental matrix holds exactly
        K = poses2d.K
        xy = np.stack([undistort_normalized(kp[c], K[c], poses2d.dist[c]) for c in range(C)])
        x = np.einsum("cij,cfkj->cfki", K[:, :2, :2], xy) + K[:, None, None, :2, 2]
    else:
        x = kp
    if options.smooth > 1:
        win = options.smooth + 1 - options.smooth % 2  # odd: centred windows
        x = np.stack([_smooth_tracks(x[c], win, win, _REJECT) for c in range(C)])
    return x


def _speed2(x: np.ndarray) -> np.ndarray:
    """Squared speed (C, T, J) of the tracks (C, T, J, 2), pixels² per frame² (central
    differences; 0 where a neighbour is missing and at both ends)."""
    speed2 = np.zeros(x.shape[:3])
    speed2[:, 1:-1] = np.nan_to_num(np.sum((x[:, 2:] - x[:, :-2]) ** 2, -1) / 4)
    return speed2


class _PairCosts:
    """Correspondences of camera pairs at a relative offset, and their refitted epipolar costs
    (memoised): the coarse and alias passes score the same offsets several times.

    An offset d (|d| <= ``reach``) is only scored where at least ``min_share`` of one camera's
    motion (summed squared speed of the joints it sees) falls on joints the other camera sees
    (camera a at frame t, camera b at t - d; :meth:`comparable`). Where one camera sees the person
    only in part of the clip, an offset that pairs that part with frames where the person hardly
    moves or is not seen fits any geometry. (A share relative to the pair's best-matched offset
    was tried first: it excluded true offsets of cameras with partial views on synthetic walks.)
    """

    def __init__(self, x: np.ndarray, reach: int, min_share: float) -> None:
        self.x = x
        self.seen = np.isfinite(x).all(-1)
        self.speed2 = _speed2(x)
        self.reach = reach
        self.min_share = min_share
        self.memo: dict[tuple[int, int, int], float] = {}
        self.shared: dict[tuple[int, int], np.ndarray] = {}

    def shared_motion(self, i: int, j: int) -> np.ndarray:
        """Share (2 * reach + 1,) of the motion that cameras i (frame t) and j (frame t - d) can
        check against each other at every d in ``[-reach, reach]``: of each camera's motion (summed
        squared speed of the joints it sees), the fraction recorded where the other camera sees
        the same joint; the larger of the two cameras' fractions. (Cross-correlations over time,
        by FFT.)"""
        if (i, j) not in self.shared:
            T = self.x.shape[1]
            seen_i, seen_j = self.seen[i].astype(np.float64), self.seen[j].astype(np.float64)
            move_i, move_j = self.speed2[i] * seen_i, self.speed2[j] * seen_j
            # full correlation index k <-> d = k - (T - 1): sum_t a[t] b[t - d], summed over joints
            lags = np.arange(-self.reach, self.reach + 1) + T - 1
            lags = np.clip(lags, 0, 2 * T - 2)  # |d| >= T: nothing overlaps (zeroed below)
            corr_i = fftconvolve(move_i, seen_j[::-1], axes=0).sum(1)[lags]
            corr_j = fftconvolve(seen_i, move_j[::-1], axes=0).sum(1)[lags]
            share = np.maximum(corr_i / max(move_i.sum(), 1e-12), corr_j / max(move_j.sum(), 1e-12))
            share[np.abs(np.arange(-self.reach, self.reach + 1)) >= T] = 0.0
            self.shared[i, j] = np.clip(share, 0.0, 1.0)
        return self.shared[i, j]

    def comparable(self, i: int, j: int, d: int) -> bool:
        """Whether offset ``d`` of cameras i and j shares enough motion to be scored."""
        if abs(d) > self.reach:
            return False
        return bool(self.shared_motion(i, j)[d + self.reach] >= self.min_share)

    def subsample(self, i: int, j: int, d: int, points: int) -> tuple[np.ndarray | None, np.ndarray | None]:
        """About ``points`` correspondences of cameras i (frame t) and j (frame t - d), every
        k-th frame; ``(None, None)`` where they overlap too little."""
        st = max(1, int(np.ceil((self.seen[i] & self.seen[j]).sum() / points)))
        a, b, nf = _pairs(self.x[i], self.x[j], d, st)
        return (a, b) if len(a) >= _MIN_CORRESPONDENCES and nf >= _MIN_FRAMES else (None, None)

    def refit(self, i: int, j: int, d: int, points: int) -> float:
        """Robust RMS Sampson error of a fundamental matrix refitted at offset ``d`` (NaN: too
        little overlap)."""
        if (i, j, d) not in self.memo:
            if not self.comparable(i, j, d):
                self.memo[i, j, d] = np.nan
                return np.nan
            a, b = self.subsample(i, j, d, points)
            self.memo[i, j, d] = np.nan if a is None else _epipolar_cost(a, b)
        return self.memo[i, j, d]


def _coarse_costs(costs: _PairCosts, cands: np.ndarray, names: list[str], options: SyncOptions) -> np.ndarray:
    """Step 1: cost (C, K) of every candidate offset of every camera against the reference, a
    fundamental matrix refitted per candidate on a subsample of frames (NaN for the reference)."""
    C, ref = len(names), options.reference
    cost = np.full((C, len(cands)), np.nan)
    for c in range(C):
        if c == ref:
            continue
        i, j, sign = (ref, c, 1) if ref < c else (c, ref, -1)
        cost[c] = [costs.refit(i, j, sign * int(o), options.coarse_points) for o in cands]
        if not np.isfinite(cost[c]).any():
            raise InputError(
                f"camera {names[c]!r}: too few joints seen together with {names[ref]!r} to "
                "estimate a time offset (at every offset tried they share too few frames, or less than "
                f"{options.min_shared_motion:.0%} of either camera's motion)"
            )
    return cost


def _resolve_aliases(
    costs: _PairCosts, cost: np.ndarray, cands: np.ndarray, options: SyncOptions
) -> np.ndarray:
    """Step 2: periodic motion (a walk) gives coarse minima one cycle apart that fit almost
    equally well. The near-best local minima of every camera are combined and the combination whose
    relative offsets fit best over ALL pairs (sum of the log refitted pair costs) is kept."""
    C, ref = len(cost), options.reference
    cams = [c for c in range(C) if c != ref]
    offsets = np.zeros(C, dtype=np.int64)
    for c in cams:
        offsets[c] = cands[np.nanargmin(cost[c])]
    hyps = {c: _local_minima(cands, cost[c], _ALIAS_RATIO, _HYPOTHESES) for c in cams}
    while np.prod([len(h) for h in hyps.values()]) > _MAX_COMBOS:
        c = max(hyps, key=lambda c: len(hyps[c]))
        hyps[c] = hyps[c][:-1]
    if not any(len(h) > 1 for h in hyps.values()):
        return offsets
    pairs = [(i, j) for i in range(C) for j in range(i + 1, C)]
    combos = []
    for h in itertools.product(*(hyps[c] for c in cams)):
        o = np.zeros(C, dtype=np.int64)
        o[cams] = h
        combos.append(o)
    with np.errstate(divide="ignore", invalid="ignore"):
        logc = np.log(
            [[costs.refit(i, j, int(o[j] - o[i]), options.coarse_points) for i, j in pairs] for o in combos]
        )
    # a pair with too little overlap counts as the worst of its values
    worst = np.max(np.where(np.isfinite(logc), logc, -np.inf), 0)
    logc = np.where(np.isfinite(logc), logc, np.where(np.isfinite(worst), worst, 0.0))
    return combos[int(np.argmin(logc.sum(1)))]


def _fine_offsets(
    costs: _PairCosts, offsets: np.ndarray, cands: np.ndarray, options: SyncOptions
) -> np.ndarray:
    """Step 3: ONE fundamental matrix per camera pair, fitted robustly on all frames at the current
    offsets; every relative offset scored with that fixed geometry (refitting per offset would
    absorb part of the misalignment of slow motions); the offsets minimising the sum over all pairs
    are searched over the full range; refit at the new offsets and repeat."""
    x = costs.x
    C = len(x)
    pairs = [(i, j) for i in range(C) for j in range(i + 1, C)]
    shifts = np.arange(-costs.reach, costs.reach + 1)  # relative offsets: twice the range
    # weights: squared speed of each joint (pixels / frame) -- still joints carry noise, no signal
    speed2 = costs.speed2
    weight = speed2 + _WEIGHT_FLOOR * np.mean(speed2, axis=(1, 2), keepdims=True) + 1e-9
    curves: dict[tuple[int, int], np.ndarray] = {}
    fitted: dict[tuple[int, int], int] = {}
    for _ in range(_FINE_ITERATIONS):
        for i, j in pairs:
            d = int(offsets[j] - offsets[i])
            if fitted.get((i, j)) == d:
                continue
            fitted[i, j] = d
            curves.pop((i, j), None)
            a, b = costs.subsample(i, j, d, options.max_points)
            Fm = None if a is None else _fit_fundamental(a, b)
            if Fm is None:
                continue
            tau = 3 * float(np.median(sampson_error(Fm, a, b)))
            curve = _fixed_cost_curve(x[i], x[j], Fm, tau, shifts, _MIN_FRAMES, weight[i], weight[j])
            curve[costs.shared_motion(i, j) < costs.min_share] = np.nan  # not comparable
            if np.isfinite(curve).any():
                # normalised, so that every pair weighs the same; too little overlap: the worst value
                curve /= max(float(np.nanmin(curve)), 1e-12)
                curves[i, j] = np.where(np.isfinite(curve), curve, np.nanmax(curve))
        if not curves:
            break
        new = _joint_offsets(curves, shifts, cands, C, options.reference, offsets)
        if np.array_equal(new, offsets):
            break
        offsets = new
    return offsets


def _confidence(
    cost: np.ndarray,
    offsets: np.ndarray,
    cands: np.ndarray,
    names: list[str],
    options: SyncOptions,
    narrowed: bool = False,
) -> tuple[np.ndarray, list[str]]:
    """Confidence (C,) of every offset: ``1 - best / runner_up`` of its coarse cost against the
    best candidate at least 3 frames away; warnings for offsets at the search limit or uncertain."""
    C = len(cost)
    conf = np.ones(C)
    notes: list[str] = []
    for c in range(C):
        if c == options.reference:
            continue
        far = np.abs(cands - offsets[c]) >= 3
        runner = np.nanmin(np.where(far & np.isfinite(cost[c]), cost[c], np.inf))
        best = cost[c, int(np.searchsorted(cands, offsets[c]))]
        conf[c] = float(np.clip(1 - best / runner, 0, 1)) if np.isfinite(runner * best) else 0.0
        if abs(offsets[c]) == options.max_offset:
            notes.append(
                f"warning: {names[c]}: the 2D tracks put its offset at the search limit ±{options.max_offset}"
                + ("" if narrowed else "; try a larger --max-offset")
            )
        if conf[c] < 0.2:
            notes.append(
                f"warning: {names[c]} offset is uncertain (confidence {conf[c]:.2f}): the person may "
                "move too little, or the views share too few joints"
            )
    return conf, notes


def _coverage_notes(seen: np.ndarray, names: list[str], min_overlap: float) -> list[str]:
    """Warnings for the cameras that see the person (any joint, after smoothing) in fewer than
    ``min_overlap`` of the frames: their offsets rest on part of the clip. ``seen``: (C, T, J)."""
    T = seen.shape[1]
    notes = []
    for c, frames in enumerate(seen.any(-1).sum(1)):
        if frames < min_overlap * T:
            notes.append(
                f"warning: {names[c]} sees the person in only {int(frames)} of the {T} frames: its offset rests "
                "on that part of the clip and may be a few frames off; check it (e.g. a clap or a jump seen "
                "by every camera) or pass the offsets you know (label --offsets)"
            )
    return notes


def estimate_offsets(poses2d: Poses2D, options: SyncOptions = SyncOptions()) -> SyncResult:
    """Estimate integer frame offsets of every camera against ``options.reference`` (see the
    module docstring for the method).

    Args:
        poses2d: detections (C, T, J, 2); ``K``/``dist``, when present, remove lens distortion.
        options: :class:`SyncOptions`.
    Returns:
        :class:`SyncResult` (offsets relative to the reference camera).
    """
    C, T = poses2d.num_cameras, poses2d.num_frames
    if C < 2:
        raise InputError("time synchronisation needs at least 2 cameras")
    if not 0 <= options.reference < C:
        raise InputError(f"reference camera {options.reference} out of range for {C} cameras")
    if options.max_offset < 0 or options.max_offset >= T - 2:
        raise InputError(f"max_offset must be in [0, {T - 3}] for {T} frames, got {options.max_offset}")
    if not 0 <= options.min_overlap < 1:
        raise InputError(f"min_overlap must be in [0, 1), got {options.min_overlap}")
    if not 0 <= options.min_shared_motion <= 1:
        raise InputError(f"min_shared_motion must be in [0, 1], got {options.min_shared_motion}")
    cv2.setRNGSeed(options.seed)
    names = poses2d.camera_names
    options, range_note = search_range(options, T)
    costs = _PairCosts(_tracks(poses2d, options), 2 * options.max_offset, options.min_shared_motion)
    cands = np.arange(-options.max_offset, options.max_offset + 1)
    cost = _coarse_costs(costs, cands, names, options)
    offsets = _resolve_aliases(costs, cost, cands, options)
    offsets = _fine_offsets(costs, offsets, cands, options)
    conf, notes = _confidence(cost, offsets, cands, names, options, bool(range_note))
    notes += _coverage_notes(costs.seen, names, options.min_overlap)
    cost[~np.isfinite(cost)] = np.nan
    return SyncResult(offsets, conf, cost, cands, options.reference, range_note + notes)


def search_range(options: SyncOptions, num_frames: int) -> tuple[SyncOptions, list[str]]:
    """``options`` with ``max_offset`` narrowed so that every pair of cameras keeps
    ``min_overlap`` of the ``num_frames`` frames in common (relative offsets reach twice the
    range), and the note saying so (none when nothing changes)."""
    limit = int(np.floor(num_frames * (1 - options.min_overlap) / 2))
    if options.max_offset <= limit:
        return options, []
    note = (
        f"note: offsets searched within ±{limit} frames, not ±{options.max_offset}: larger ones would leave "
        f"two cameras less than {options.min_overlap:.0%} of the {num_frames} frames in common "
        "(a longer recording allows a wider search)"
    )
    return replace(options, max_offset=limit), [note]


def apply_offsets(poses2d: Poses2D, offsets: np.ndarray) -> Poses2D:
    """Re-index every camera's frames by its offset: output frame ``i`` of camera ``c`` is input
    frame ``i - offsets[c]`` (so a camera whose frame ``k`` shows reference time ``k + o`` is
    aligned to reference time). Frames falling outside are missing (NaN, score 0)."""
    offsets = np.asarray(offsets, dtype=np.int64).reshape(-1)
    C, T = poses2d.num_cameras, poses2d.num_frames
    if offsets.shape != (C,):
        raise InputError(f"offsets: {offsets.size} values given for {C} cameras")
    return poses2d.take_frames(np.arange(T)[None] - offsets[:, None])


def others_triangulation(
    rig: Rig, poses2d: Poses2D, camera: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """What a camera's detections are checked against: the normalized observations (C, T, J, 2)
    and weights (C, T, J) of every camera, the cameras' [R | t] (C, 3, 4) and focal lengths (C,)
    in pixels, and the joints (T, J, 3) that the OTHER cameras triangulate (robustly) with ``rig``."""
    xn, w = normalized_observations(poses2d, rig)
    Rt = np.stack([c.Rt for c in rig.cameras])
    focal = rig.K[:, [0, 1], [0, 1]].mean(1)
    others = [k for k in range(len(Rt)) if k != camera]
    X = triangulate_robust(Rt[others], xn[others], w[others], focal[others], TriangulationOptions()).points
    return xn, w, Rt, focal, X


def rig_errors(
    rig: Rig, poses2d: Poses2D, camera: int, shifts: np.ndarray, max_frames: int = 2000
) -> np.ndarray:
    """Median error (pixels) of one camera's detections against the joints the *other* cameras
    triangulate with ``rig``, with the camera's frames shifted by each of ``shifts`` (its frame
    ``t`` compared with time ``t + d``): (S,), NaN where fewer than 50 joints overlap."""
    xn, w, Rt, focal, X = others_triangulation(rig, poses2d, camera)
    T = w.shape[1]
    step = max(1, int(np.ceil(T / max_frames)))
    out = np.full(len(shifts), np.nan)
    for n, d in enumerate(shifts):
        t = np.arange(max(0, -d), min(T, T - d), step)
        Xc = X[t + d] @ Rt[camera, :, :3].T + Rt[camera, :, 3]
        with np.errstate(invalid="ignore", divide="ignore"):
            err = np.linalg.norm(Xc[..., :2] / Xc[..., 2:3] - xn[camera, t], axis=-1) * focal[camera]
        ok = np.isfinite(err) & (w[camera, t] > 0) & (Xc[..., 2] > 0)
        if ok.sum() >= 50:
            out[n] = float(np.median(err[ok]))
    return out


def _rig_rounds(
    poses2d: Poses2D, start: np.ndarray, calibrate: Callable[[Poses2D], Rig], options: SyncOptions
) -> tuple[np.ndarray, np.ndarray, float]:
    """From ``start``: calibrate with the current offsets, move every camera in turn to the shift
    that lowers its error against the others (at their latest offsets) by more than ``margin``,
    repeat. (Moving all cameras at once, each judged against the others' old offsets, settled on
    wrong offsets even with the true rig.) Returns the offsets, the
    errors (C,) at them and their mean (inf when calibration fails)."""
    C = poses2d.num_cameras
    o = np.asarray(start, dtype=np.int64).copy()
    errors = np.full(C, np.nan)
    for _ in range(options.rig_rounds):
        shifted = apply_offsets(poses2d, o)
        try:
            rig = calibrate(shifted)
        except InputError:
            return o, errors, np.inf
        M = options.max_offset
        new, current = o.copy(), shifted
        for c in range(C):  # one camera after the other, each against the others' latest offsets
            if c == options.reference:
                continue
            shifts = np.arange(-M - new[c], M - new[c] + 1)  # offsets stay within +-max_offset
            curve = rig_errors(rig, current, c, shifts)
            here = curve[int(new[c]) + M]
            if not np.isfinite(curve).any():
                continue
            k = int(np.nanargmin(curve))
            if np.isfinite(here) and curve[k] < (1 - options.margin) * here:
                new[c] = new[c] + shifts[k]
                errors[c] = curve[k]
                current = apply_offsets(poses2d, new)
            else:
                errors[c] = here
        if np.array_equal(new, o):
            break
        o = new
    finite = errors[np.isfinite(errors)]
    return o, errors, float(np.mean(finite)) if finite.size else np.inf


def check_with_rig(
    poses2d: Poses2D, result: SyncResult, calibrate: Callable[[Poses2D], Rig], options: SyncOptions
) -> SyncResult:
    """Check the epipolar offsets with a calibrated rig, the way the labels will use them.

    Two-view geometry on real detections can prefer a wrong offset (it fits a free fundamental
    matrix per pair); a rig calibrated from all cameras cannot be fooled as easily. Starting from
    zero offsets and from ``result.offsets``, the rig is calibrated (``calibrate``), each camera's
    detections are compared with the others' triangulation at every shift (:func:`rig_errors`) and
    moved where that lowers the error by more than ``options.margin``; the start that ends with
    the lower error wins. An offset that the rig does not support better than zero by the margin
    is set back to zero, with a warning: the evidence is too weak. An offset more than one frame
    away from the tracks' (a non-zero one the rig prefers, or zero where the rig did not move the
    camera to the tracks' offset) is kept with a warning naming the camera: the two disagree.
    """
    C = poses2d.num_cameras
    options = replace(options, max_offset=int(result.candidates[-1]))  # the range searched
    zero = np.zeros(C, dtype=np.int64)
    starts = [zero] if not np.any(result.offsets) else [zero, result.offsets]
    runs = [_rig_rounds(poses2d, s, calibrate, options) for s in starts]
    offsets, errors, _ = min(runs, key=lambda r: r[2])
    notes: list[str] = []
    names = poses2d.camera_names
    reset: set[int] = set()  # cameras set back to zero (already named)
    if np.any(offsets):
        shifted = apply_offsets(poses2d, offsets)
        try:
            rig = calibrate(shifted)
        except InputError:
            rig = None
        for c in np.flatnonzero(offsets):
            if rig is None:
                break
            pair = rig_errors(rig, shifted, int(c), np.array([0, -int(offsets[c])]))
            if np.isfinite(pair[0]) and not (pair[0] < (1 - options.margin) * pair[1]):
                notes.append(
                    f"warning: {names[c]} offset {int(offsets[c]):+d} is not supported by the calibrated "
                    f"rig ({pair[0]:.1f} px vs {pair[1]:.1f} px at 0): kept at 0, the evidence is too weak"
                )
                offsets[c] = 0
                reset.add(int(c))
    for c in range(C):
        if abs(int(offsets[c]) - int(result.offsets[c])) <= 1 or c in reset:
            continue
        if offsets[c]:
            notes.append(
                f"warning: {names[c]} offset {int(offsets[c]):+d} is uncertain: the calibrated rig prefers it, "
                f"but the 2D tracks put the camera at {int(result.offsets[c]):+d}; check it (e.g. a clap or a "
                "jump seen by every camera) or pass the offsets you know (label --offsets)"
            )
        else:
            notes.append(
                f"warning: {names[c]} offset kept at 0: the 2D tracks put the camera at "
                f"{int(result.offsets[c]):+d}, but the calibrated rig fits it better at 0; if the cameras were "
                "not started together, check it (e.g. a clap or a jump seen by every camera) or pass the "
                "offsets you know (label --offsets)"
            )
    if not np.array_equal(offsets, result.offsets):
        notes.append(
            "warning: the 2D tracks alone suggested offsets "
            + ", ".join(f"{n} {int(o):+d}" for n, o in zip(names, result.offsets))
            + "; the calibrated rig supports "
            + ", ".join(f"{n} {int(o):+d}" for n, o in zip(names, offsets))
        )
    return replace(
        result,
        offsets=offsets,
        warnings=[*result.warnings, *notes],
        epipolar_offsets=result.offsets,
        rig_error_px=errors,
    )
