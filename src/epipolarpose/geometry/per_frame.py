"""The paper's per-frame recipe (EpipolarPose, Kocabas et al. CVPR 2019), a baseline: for every
frame and consecutive camera pair ``(k, k+1)``, ``cv2.findFundamentalMat`` (RANSAC) on that frame's
joints, ``E = KᵀFK``, the four ``(R, t)`` and the cheirality check, Hartley–Sturm triangulation;
pairs are brought into camera 0's frame and combined by the vector median. Also the static rig
that best explains such labels (:func:`rig_from_labels`, PnP of every camera).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np
from tqdm import tqdm

from ..camera import Rig
from ..errors import InputError
from ..formats import Poses2D
from . import single_threaded
from .alignment import apply_similarity, procrustes
from .epipolar import essential_from_fundamental, pose_from_essential
from .observations import check_observations, normalized_observations, resolve_intrinsics
from .optimal_triangulation import triangulate_optimal
from .triangulation import vector_median

__all__ = ["PerFrameResult", "per_frame_reconstruct", "rig_from_labels"]


@dataclass
class PerFrameResult:
    """Per-frame reconstruction: poses (F, J, 3) in camera 0's frame at unit baseline 0-1 per
    frame, NaN where it failed; valid (F, J); pair_poses: (P, F, 3, 4) ``[R|t]`` per pair and frame."""

    poses: np.ndarray
    valid: np.ndarray
    pair_poses: np.ndarray


@single_threaded
def per_frame_reconstruct(
    poses2d: Poses2D, rig: Rig | None = None, threshold_px: float = 8.0, progress: bool = False
) -> PerFrameResult:
    """The paper's recipe, frame by frame (a baseline; also usable for moving cameras).

    For each frame and consecutive pair ``(k, k+1)``: ``cv2.findFundamentalMat`` (RANSAC,
    ``threshold_px``) on the frame's joints seen by both (undistorted pixels), ``E = KᵀFK``,
    :func:`~epipolarpose.geometry.epipolar.decompose_essential` + cheirality, Hartley–Sturm
    triangulation in camera ``k``'s frame with ``|t| = 1``. With a known ``rig`` (the paper's "R/t"
    setting) the pair's true ``(R, t)`` is used instead of the estimate. Without a rig the
    intrinsics come from the detections (:func:`~epipolarpose.geometry.observations.resolve_intrinsics`).

    Common frame: pair ``(0, 1)`` already lives in camera 0's frame with unit baseline. Every other
    pair's reconstruction of the frame is mapped onto it by a similarity (Umeyama) fitted on their
    common joints, then each joint is the vector (geometric) median of the pairs' estimates. Frames
    where pair (0, 1) fails have no reference and are invalid (NaN). With a known rig every pair
    is mapped into camera 0's frame exactly with the rig's extrinsics (rig units).
    """
    base = resolve_intrinsics(poses2d)[0] if rig is None else rig
    C, F, J = poses2d.num_cameras, poses2d.num_frames, poses2d.num_joints
    xn, w = normalized_observations(poses2d, base)
    check_observations(poses2d, w)
    K = base.K
    P = C - 1
    rec = np.full((P, F, J, 3), np.nan)
    pair_poses = np.full((P, F, 3, 4), np.nan)
    it = range(F)
    if progress:
        it = tqdm(it, desc="per-frame", unit="frame", leave=False)
    # undistorted pixels
    upix = xn[..., :2] * K[:, None, None, [0, 1], [0, 1]] + K[:, None, None, :2, 2]
    for f in it:
        for k in range(P):
            m = (w[k, f] > 0) & (w[k + 1, f] > 0)
            if m.sum() < 8:
                continue
            u1, u2 = upix[k, f][m], upix[k + 1, f][m]
            if rig is not None:
                R, t = rig.relative_pose(k, k + 1)
            else:
                Fm, inl = cv2.findFundamentalMat(u1, u2, cv2.FM_RANSAC, threshold_px, 0.99)
                if Fm is None or Fm.shape != (3, 3):
                    continue
                E = essential_from_fundamental(Fm, K[k], K[k + 1])
                R, t, nf = pose_from_essential(E, xn[k, f][m], xn[k + 1, f][m], inl.ravel() > 0)
                if nf == 0:
                    continue
            P1 = K[k] @ np.eye(3, 4)
            P2 = K[k + 1] @ np.hstack([R, np.reshape(t, (3, 1))])
            X, _, _ = triangulate_optimal(P1, P2, u1, u2)
            rec[k, f][np.flatnonzero(m)] = X
            pair_poses[k, f] = np.hstack([R, np.reshape(t, (3, 1))])
    if rig is not None:
        # known extrinsics: express every pair in camera 0's frame exactly, in rig units
        for k in range(P):
            R0k, t0k = rig.relative_pose(0, k)
            rec[k] = (rec[k] - t0k) @ R0k
        out = vector_median(np.moveaxis(rec, 0, -2))
    else:
        ref = rec[0]
        aligned = [ref]
        for k in range(1, P):
            R, s, t = procrustes(rec[k], ref)  # NaN where fewer than 3 common joints
            aligned.append(apply_similarity(rec[k], R, s, t))
        out = vector_median(np.stack(aligned, -2))
    valid = np.isfinite(out).all(-1)
    return PerFrameResult(out, valid, pair_poses)


def rig_from_labels(
    base: Rig, poses: np.ndarray, xn: np.ndarray, w: np.ndarray, max_points: int = 5000
) -> Rig:
    """Static rig (camera 0 = world) that best explains camera-0-frame poses: PnP (RANSAC) of every
    other camera on the pooled (pose, detection) pairs.

    Args:
        base: C cameras giving the intrinsics.
        poses: (F, J, 3) poses in camera 0's frame (NaN where missing).
        xn: (C, F, J, 2) undistorted normalized observations; w: (C, F, J) weights (0 = missing).
        max_points: PnP uses at most this many pooled joints per camera, spread over the sequence.
    """

    cams = [replace(base[0], R=np.eye(3), t=np.zeros(3))]
    ok3 = np.isfinite(poses).all(-1)
    for c in range(1, len(base)):
        m = ok3 & (w[c] > 0)
        idx = np.flatnonzero(m.ravel())
        if len(idx) < 6:
            raise InputError(f"camera {c} ({base[c].name!r}): too few labelled joints to place it (PnP)")
        idx = idx[np.linspace(0, len(idx) - 1, min(max_points, len(idx))).round().astype(np.int64)]
        X = poses.reshape(-1, 3)[idx]
        x = xn[c].reshape(-1, 2)[idx]
        f = base[c].K[0, 0]
        ok, rv, tv, _ = cv2.solvePnPRansac(
            X, x, np.eye(3), None, reprojectionError=8.0 / f, iterationsCount=1000, flags=cv2.SOLVEPNP_EPNP
        )
        if not ok:
            raise InputError(f"camera {c} ({base[c].name!r}): PnP failed on the per-frame labels")
        cams.append(replace(base[c], R=cv2.Rodrigues(rv)[0], t=tv.ravel()))
    return Rig(cams, units="arbitrary", name="per-frame", extra={"world": "camera0"})
