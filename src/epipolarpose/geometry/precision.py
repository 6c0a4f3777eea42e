"""How firmly the detections pin a self-calibrated rig down.

Bundle adjustment's Gauss-Newton covariance of the camera parameters (points eliminated, scale
gauge fixed; :attr:`~.bundle.BundleResult.covariance`) gives the scatter of the rig that the
detections' own noise alone would cause. It is a **lower bound** on the rig's error, not an
estimate of it: a detector's systematic errors (a face put on the back of a head, the same bias in
every frame of a person who does not move) add to it and no scatter shows them. On real footage
the errors measured 4-19x this bound (``benchmarks/footage_bench.py``, BENCHMARKS.md). What the
bound is good for is footage that cannot give a rig at all: a single frame, a person who hardly
moves, focal lengths that are unknown and that the footage does not pin down. There even the
lower bound is degrees, and a calibration that says nothing returns a confident wrong rig
(measured: one frame of a standing person gave a rig 9° off with the intrinsics, 68° without).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np

__all__ = ["RigPrecision", "motion_extent", "pair_rotation_sd_deg", "precision_verdict", "rig_precision"]


def _pairs(num_cameras: int) -> list[tuple[int, int]]:
    return list(combinations(range(num_cameras), 2))


def pair_rotation_sd_deg(R: np.ndarray, covariance: np.ndarray, focal_fixed: bool = False) -> np.ndarray:
    """RMS angle (degrees) of every camera pair's relative rotation error under ``covariance``.

    A left increment ``a_c`` on every rotation turns ``R_j R_iᵀ`` by ``a_j - R_j R_iᵀ a_i`` (to
    first order; camera 0 is fixed, ``a_0 = 0``), whose RMS angle is ``sqrt(trace(L Σ Lᵀ))``.

    Args:
        R: (C, 3, 3) the adjusted rotations.
        covariance: (P, P) in the order of :class:`~.bundle.BundleResult` (``6 (C - 1)`` pose
            parameters, then C focal factors or none).
        focal_fixed: the covariance of the poses were the focal factors known (the Gaussian
            conditional ``Σ_pp - Σ_pf Σ_ff⁻¹ Σ_fp``); the same as without when none were refined.
    Returns:
        (C (C - 1) / 2,) for the pairs ``(0, 1), (0, 2), ..., (C - 2, C - 1)``; inf where the
        covariance is not finite.
    """
    C = len(R)
    nc = 6 * (C - 1)
    cov = np.asarray(covariance, dtype=np.float64)
    if not np.isfinite(cov).all():
        return np.full(len(_pairs(C)), np.inf)
    if focal_fixed and cov.shape[0] > nc:
        Spp, Spf, Sff = cov[:nc, :nc], cov[:nc, nc:], cov[nc:, nc:]
        cov = Spp - Spf @ np.linalg.pinv(Sff) @ Spf.T
    else:
        cov = cov[:nc, :nc]

    def select(c: int) -> np.ndarray:
        E = np.zeros((3, nc))
        if c > 0:
            E[:, 6 * (c - 1) : 6 * (c - 1) + 3] = np.eye(3)
        return E

    out = []
    for i, j in _pairs(C):
        L = select(j) - (R[j] @ R[i].T) @ select(i)
        out.append(np.degrees(np.sqrt(max(float(np.trace(L @ cov @ L.T)), 0.0))))
    return np.array(out)


def motion_extent(X: np.ndarray, frame: np.ndarray, joint: np.ndarray) -> float:
    """How far the person, or their limbs, move, in units of the body's own size: the larger of
    the RMS distance of the per-frame body centres (the median of the frame's joints) from their
    median, and the 90th percentile over landmarks of a landmark's median distance from its own
    median position — so that arms raised in place count as motion, not only walking. Over the
    median distance of a frame's joints from its centre (the body's size). 0 for a person who
    does not move (plus the triangulation noise: ~0.1 with detector-like noise), a few for one
    walking across a room, NaN when no frame has 3 points or more. Medians, so that a few wrongly
    triangulated points do not count as motion.

    Args:
        X: (N, 3) points; frame, joint: (N,) the frame and landmark of every point.
    """
    frame = np.asarray(frame, dtype=np.int64)
    joint = np.asarray(joint, dtype=np.int64)
    ok = np.isfinite(X).all(-1)
    if not ok.any():
        return float("nan")
    uniq, inv = np.unique(frame[ok], return_inverse=True)
    grid = np.full((len(uniq), int(joint[ok].max()) + 1, 3), np.nan)
    grid[inv, joint[ok]] = X[ok]
    count = np.isfinite(grid[..., 0]).sum(1)
    full = count >= max(3, int(np.median(count)) // 2)  # frames that see most of the body
    if not full.any():
        return float("nan")
    grid = grid[full]
    with warnings.catch_warnings():  # landmarks never seen: all-NaN slices
        warnings.simplefilter("ignore", RuntimeWarning)
        centre = np.nanmedian(grid, axis=1)  # (F, 3)
        size = float(np.nanmedian(np.linalg.norm(grid - centre[:, None], axis=-1)))
        spread = float(np.sqrt(np.mean(np.sum((centre - np.median(centre, 0)) ** 2, -1))))
        own = np.nanmedian(np.linalg.norm(grid - np.nanmedian(grid, axis=0), axis=-1), axis=0)  # (J,)
    own = own[np.isfinite(own)]
    limbs = float(np.percentile(own, 90)) if own.size else 0.0
    return max(spread, limbs) / max(size, 1e-12)


@dataclass(frozen=True)
class RigPrecision:
    """The lower bound on a self-calibrated rig's error (module docstring).

    Attributes:
        rotation_sd_deg: (Q,) RMS relative-rotation scatter of every pair (degrees).
        rotation_sd_focal_fixed_deg: (Q,) the same were the focal lengths known (None when they
            were not refined).
        focal_sd: (C,) standard deviation of the focal factors (None when not refined).
        frames: frames in the bundle adjustment.
        motion: :func:`motion_extent` of the adjusted points.
        camera_frames: (C,) of those frames, the ones in which each camera's landmarks take part
            (None when not known).
    """

    rotation_sd_deg: np.ndarray
    rotation_sd_focal_fixed_deg: np.ndarray | None
    focal_sd: np.ndarray | None
    frames: int
    motion: float
    camera_frames: np.ndarray | None = None

    @property
    def worst(self) -> tuple[float, int]:
        """The largest pair scatter (degrees) and its pair index."""
        k = int(np.argmax(self.rotation_sd_deg))
        return float(self.rotation_sd_deg[k]), k

    def as_dict(self) -> dict[str, Any]:
        def r(a: np.ndarray | None, nd: int = 3) -> list[float] | None:
            # None where not determined (strict JSON has no infinity)
            return None if a is None else [round(float(v), nd) if np.isfinite(v) else None for v in a]

        return {
            "rotation_sd_deg": r(self.rotation_sd_deg),
            "rotation_sd_focal_fixed_deg": r(self.rotation_sd_focal_fixed_deg),
            "focal_sd": r(self.focal_sd, 4),
            "frames": self.frames,
            "motion": round(self.motion, 3) if np.isfinite(self.motion) else None,
        }


def rig_precision(
    R: np.ndarray, covariance: np.ndarray, frames: int, motion: float, camera_frames: np.ndarray | None = None
) -> RigPrecision:
    """:class:`RigPrecision` of adjusted rotations R (C, 3, 3) and their bundle covariance."""
    nc = 6 * (len(R) - 1)
    refined = covariance.shape[0] > nc
    focal_sd = None
    if refined:
        d = np.diag(covariance)[nc:]
        focal_sd = np.sqrt(np.where(np.isfinite(d), np.maximum(d, 0.0), np.inf))
    return RigPrecision(
        rotation_sd_deg=pair_rotation_sd_deg(R, covariance),
        rotation_sd_focal_fixed_deg=pair_rotation_sd_deg(R, covariance, focal_fixed=True)
        if refined
        else None,
        focal_sd=focal_sd,
        frames=int(frames),
        motion=float(motion),
        camera_frames=None if camera_frames is None else np.asarray(camera_frames, dtype=np.int64),
    )


#: Too few frames, too little motion: the causes named when the bound is large.
FEW_FRAMES = 20
LITTLE_MOTION = 0.5
#: Below this :func:`motion_extent` the person stands still: a warning whatever the bound, which
#: cannot show a detector's errors repeated in every frame (measured, benchmarks/precision_bench.py
#: and footage_bench.py: a synthetic person standing still or swaying by 2 cm for 200 frames gave
#: ~0.1 and rigs 1.4-3.0° off on average with bounds of 0.7-0.8°; every real session of ../shared
#: 0.35 or more, a 50-frame walk 0.5).
STILL = 0.2


def precision_verdict(
    precision: RigPrecision,
    names: list[str],
    warn_deg: float,
    refuse_deg: float | None,
    intrinsics_known: bool = False,
) -> tuple[str | None, str | None]:
    """A warning when the worst pair's bound exceeds ``warn_deg``, an error (the rig cannot be
    trusted) when it exceeds ``refuse_deg``; each names the causes it can measure: few frames,
    little motion, unknown focal lengths, a camera whose pairs stand out. Below those, a warning
    when the person stands still (:data:`STILL`). ``intrinsics_known``: the focal lengths were
    given (and refined on request), which changes the advice.

    Returns:
        ``(warning, error)``, each None when not raised.
    """
    worst, k = precision.worst
    if not worst > min(warn_deg, refuse_deg if refuse_deg is not None else warn_deg):
        if precision.motion < STILL:
            return (
                f"the person hardly moves (body and limbs move {precision.motion:.2f} x the body's size "
                f"over {precision.frames} frames): the rig rests on a few distinct poses, and a detector repeats "
                f"its errors in every frame, which the rig precision bound (±{worst:.1f}° on the worst pair) "
                "cannot show (a synthetic person standing still gave rigs 1.4-3.0° off against bounds of "
                "0.7-0.8°). Have the person walk through the shared view"
            ), None
        return None, None
    pairs = _pairs(len(names))
    causes = []
    if precision.frames < FEW_FRAMES:
        n = precision.frames
        causes.append(f"only {n} frame{' shows' if n == 1 else 's show'} the person in two or more views")
    if precision.motion < LITTLE_MOTION:
        causes.append(
            f"the person hardly moves (body and limbs move {precision.motion:.2f} x the body's size)"
        )
    fixed = precision.rotation_sd_focal_fixed_deg
    if fixed is not None and np.isfinite(worst) and float(np.max(fixed)) < 0.5 * worst:
        if intrinsics_known:
            causes.append(
                f"the focal lengths are being refined and the footage does not pin them down (kept, the bound "
                f"would be ±{float(np.max(fixed)):.1f}°: --no-refine-focal)"
            )
        else:
            causes.append(
                f"the focal lengths are unknown and the footage does not pin them down (known, the bound would "
                f"be ±{float(np.max(fixed)):.1f}°: pass --intrinsics)"
            )
    sd = precision.rotation_sd_deg
    if len(names) >= 3 and np.isfinite(sd).all():
        ratios = []
        for c in range(len(names)):
            mine = [sd[n] for n, p in enumerate(pairs) if c in p]
            rest = [sd[n] for n, p in enumerate(pairs) if c not in p]
            ratios.append(float(np.median(mine)) / max(float(np.median(rest)), 1e-12))
        c = int(np.argmax(ratios))
        if ratios[c] > 2.0:
            seen = precision.camera_frames
            rarely = ""
            if seen is not None and len(seen) == len(names) and seen[c] < 0.5 * seen.max():
                rarely = f": it sees the person in only {int(seen[c])} of the {precision.frames} frames"
            causes.append(
                f"camera {names[c]!r} is the least constrained (its pairs' bounds are {ratios[c]:.1f} x the "
                f"others'){rarely}"
            )
    why = "; ".join(causes) or (
        f"{precision.frames} frames in which body and limbs move {precision.motion:.2f} x the body's size: "
        "the views overlap little or the detections are noisy"
    )
    remedy = "Film the person moving through the shared view for longer" + (
        ", or pass the intrinsics (--intrinsics)" if fixed is not None and not intrinsics_known else ""
    )
    if np.isfinite(worst):
        i, j = pairs[k]
        what = (
            f"uncertain by ±{worst:.1f}° (rms, worst pair {names[i]!r}-{names[j]!r}), a lower bound on the "
            "rig's error"
        )
    else:
        what = "undetermined"
    text = (
        f"the detections pin the cameras down poorly: their scatter alone leaves the relative rotations "
        f"{what}; {'causes' if len(causes) > 1 else 'cause'}: {why}. {remedy}"
    )
    if refuse_deg is not None and not worst <= refuse_deg:
        return None, text + (
            f" (no rig is returned: the worst pair's bound is over {refuse_deg:g}°, and the rig could be tens of "
            "degrees off; the limit is --max-uncertainty of label and calibrate, "
            "CalibrationOptions.max_uncertainty_deg in Python)"
        )
    return text + " (the rig may be off by degrees)", None
