"""Starting rigs for bundle adjustment when the camera pairs disagree.

On real detections two-view geometry is often wrong: a detector's view-dependent errors fit a
wrong relative pose better than the true one (measured on the caliscope footage: every pair's
5-point estimate had a lower Sampson error than the lab calibration, and was 3–64° off), so
rotation averaging can start bundle adjustment in the wrong basin. Starting rigs are then made
incrementally from each of the best pairs (:func:`incremental_rig`: the pair's relative pose,
its joints triangulated, every other camera placed by PnP on them, the cloud re-triangulated
as cameras are added), and the one whose bundle adjustment explains all views best is kept
(:func:`~epipolarpose.geometry.calibration.calibrate`).
"""

from __future__ import annotations

import cv2
import numpy as np

from .dlt import triangulate_dlt
from .epipolar import RelativePose
from .observations import NormalizedViews
from .rig_assembly import normalize_gauge
from .triangulation import TriangulationOptions, triangulate_robust

__all__ = ["incremental_rig"]

#: Points given to PnP RANSAC (measured: 50k points of a 3,000-frame run took 0.13 s per call).
PNP_POINTS = 5000


def incremental_rig(
    views: NormalizedViews, pair: tuple[int, int], pose: RelativePose, min_score: float, threshold_px: float
) -> tuple[np.ndarray, np.ndarray] | None:
    """A rig grown from one camera pair.

    Args:
        views: the observations (C cameras).
        pair, pose: the seed pair ``(i, j)`` and its relative pose (``x_j = R x_i + t``).
        min_score: joints below this confidence are not used.
        threshold_px: PnP RANSAC inlier threshold, pixels.
    Returns:
        ``R`` (C, 3, 3), ``t`` (C, 3) in camera 0's frame with ``|t_1| = 1``
        (:func:`~.rig_assembly.normalize_gauge`), or None when a camera cannot be placed.
    """
    C = len(views.cameras)
    i, j = pair
    R = np.tile(np.eye(3), (C, 1, 1))
    t = np.zeros((C, 3))
    R[j], t[j] = pose.R, pose.t
    placed = [i, j]
    w = np.where(views.w >= min_score, views.w, 0.0)
    f = float(np.mean(views.focal))
    while len(placed) < C:
        Rt = np.concatenate([R[placed], t[placed][:, :, None]], -1)
        if len(placed) == 2:
            X = triangulate_dlt(Rt, np.moveaxis(views.xn[placed], 0, -2), np.moveaxis(w[placed], 0, -1))
        else:
            X = triangulate_robust(
                Rt, views.xn[placed], w[placed], views.focal[placed], TriangulationOptions()
            ).points
        known = np.isfinite(X).all(-1)
        rest = [k for k in range(C) if k not in placed]
        k = max(rest, key=lambda c: int((known & (w[c] > 0)).sum()))
        m = known & (w[k] > 0)
        if m.sum() < 6:
            return None
        if m.sum() > PNP_POINTS:  # an even subset: RANSAC scores every point at every iteration
            idx = np.flatnonzero(m.ravel())
            m = np.zeros(m.size, bool)
            m[idx[np.linspace(0, len(idx) - 1, PNP_POINTS).round().astype(np.int64)]] = True
            m = m.reshape(known.shape)
        ok, rvec, tvec, _ = cv2.solvePnPRansac(
            X[m].astype(np.float64),
            views.xn[k][m].astype(np.float64),
            np.eye(3),
            None,
            reprojectionError=threshold_px / f,
            iterationsCount=300,
            confidence=0.999,
            flags=cv2.SOLVEPNP_AP3P,
        )
        if not ok:
            return None
        R[k], t[k] = cv2.Rodrigues(rvec)[0], tvec.ravel()
        placed.append(k)
    Rn, tn, _, _ = normalize_gauge(R, t)
    return Rn, tn
