"""The paper's per-frame recipe (EpipolarPose, Kocabas et al. CVPR 2019), a baseline: for every
frame and consecutive camera pair ``(k, k+1)``, ``cv2.findFundamentalMat`` (RANSAC) on that frame's
joints, ``E = KᵀFK``, the four ``(R, t)`` and the cheirality check, Hartley–Sturm triangulation;
pairs are brought into camera 0's frame and combined by the vector median. Also the static rig
that best explains such labels (:func:`rig_from_labels`, PnP of every camera).

Only the RANSAC runs frame by frame and pair by pair (it is the recipe); the rest — ``E``, the
decomposition and cheirality, the triangulation with every frame's own projection matrices, the
alignment and the median — runs batched over frames (``tests/test_per_frame_fast.py`` pins that it
gives the labels of the frame-by-frame implementation).
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
    # undistorted pixels
    upix = xn[..., :2] * K[:, None, None, [0, 1], [0, 1]] + K[:, None, None, :2, 2]
    both = (w[:-1] > 0) & (w[1:] > 0)  # (P, F, J): joints pair (k, k+1) sees
    ok = both.sum(-1) >= 8  # (P, F): pairs and frames with enough of them
    Rs = np.full((P, F, 3, 3), np.nan)
    ts = np.full((P, F, 3), np.nan)
    if rig is not None:
        for k in range(P):
            Rs[k], ts[k] = rig.relative_pose(k, k + 1)
    else:
        # the paper's recipe: RANSAC on every frame's joints, one pair at a time (OpenCV)
        Fm = np.full((P, F, 3, 3), np.nan)
        inl = np.zeros((P, F, J), bool)
        it = range(F)
        if progress:
            it = tqdm(it, desc="per-frame", unit="frame", leave=False)
        for f in it:
            for k in np.flatnonzero(ok[:, f]):
                m = np.flatnonzero(both[k, f])
                Fk, ik = cv2.findFundamentalMat(
                    upix[k, f, m], upix[k + 1, f, m], cv2.FM_RANSAC, threshold_px, 0.99
                )
                if Fk is None or Fk.shape != (3, 3):
                    ok[k, f] = False
                    continue
                Fm[k, f] = Fk
                inl[k, f, m] = ik.ravel() > 0
        # E = KᵀFK, the four (R, t) and the cheirality check on the RANSAC inliers, all frames at once
        kk, ff = np.nonzero(ok)
        for c in _chunks(len(kk)):
            k, f = kk[c], ff[c]
            E = essential_from_fundamental(Fm[k, f], K[k], K[k + 1])
            R, t, nf = pose_from_essential(E, xn[k, f], xn[k + 1, f], both[k, f] & inl[k, f])
            ok[k[nf == 0], f[nf == 0]] = False
            Rs[k, f], ts[k, f] = R, t
    # Hartley–Sturm triangulation in camera k's frame, one (P1, P2) per pair and frame
    rec = np.full((P, F, J, 3), np.nan)
    pair_poses = np.full((P, F, 3, 4), np.nan)
    kk, ff = np.nonzero(ok)
    for c in _chunks(len(kk)):
        k, f = kk[c], ff[c]
        Rt = np.concatenate([Rs[k, f], ts[k, f, :, None]], -1)
        m = both[k, f, :, None]
        rec[k, f], _, _ = triangulate_optimal(
            K[k] @ np.eye(3, 4),
            K[k + 1] @ Rt,
            np.where(m, upix[k, f], np.nan),
            np.where(m, upix[k + 1, f], np.nan),
        )
        pair_poses[k, f] = Rt
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


def _chunks(n: int, size: int = 2048) -> list[slice]:
    """Slices of at most ``size`` (pair, frame) items: the batched steps' memory stays bounded."""
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


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
