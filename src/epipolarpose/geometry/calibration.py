"""Self-calibration of a static camera rig from 2D human joints, and the paper's per-frame recipe.

Sequence self-calibration (:func:`calibrate`, the default of ``epipolarpose label``):

1. every 2D joint is undistorted once to normalized coordinates (batched);
2. for every camera pair, correspondences are pooled over all frames and joints seen by both with
   a confidence >= ``min_score``; a robust relative pose (poselib LO-RANSAC 5-point, or OpenCV
   USAC-MAGSAC) is estimated on at most ``max_ransac_points`` of them spread over the sequence;
3. the pairs whose relative rotations agree are found by a consensus over spanning trees of the
   camera graph (:func:`consistent_pairs`), and their rotations are averaged (chordal L2 by
   eigen-decomposition; pairs that disagree with the average by more than ``max(3 x median, 2°)``
   are dropped and it is redone);
4. camera positions follow from the pairwise translation directions (homogeneous least squares);
5. a sample of frames is triangulated robustly and a sparse bundle adjustment refines all camera
   poses (camera 0 fixed), optionally the focal lengths, and the sampled 3D joints with a robust
   (soft-L1) loss;
6. gauge: world = camera 0's frame, the distance camera 0 -> camera 1 is 1 (``units = "arbitrary"``)
   unless a subject height makes it metric (:func:`metric_scale`).

Per-frame recipe (:func:`per_frame_reconstruct`, EpipolarPose, Kocabas et al. CVPR 2019): for every
frame and consecutive camera pair ``(k, k+1)``, ``cv2.findFundamentalMat`` (RANSAC) on that frame's
joints, ``E = KᵀFK``, the four ``(R, t)`` and the cheirality check, Hartley–Sturm triangulation;
pairs are brought into camera 0's frame and combined by the vector median (see the function).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..camera import Camera, Rig, default_intrinsics
from ..errors import InputError
from ..formats import Poses2D
from ..skeleton import BONES
from . import single_threaded
from .alignment import rotation_angle_deg
from .bundle import bundle_adjust
from .epipolar import (
    RelativePose,
    essential_from_fundamental,
    pose_from_essential,
    relative_pose,
)
from .triangulation import triangulate_optimal, triangulate_robust, undo_swaps, vector_median


# ------------------------------------------------------------------------------------------------
# intrinsics and normalized coordinates
# ------------------------------------------------------------------------------------------------
def resolve_intrinsics(poses2d: Poses2D, intrinsics: Rig | None = None) -> tuple[Rig, bool]:
    """Cameras with intrinsics only (``R = I, t = 0``): from ``intrinsics`` (a ``K.json`` rig),
    else from the npz's ``K``/``dist``, else :func:`~epipolarpose.camera.default_intrinsics`
    (60° horizontal FOV, principal point at the image centre).

    Returns the rig and whether ``K`` was known (False: the documented default was used).
    """
    C = poses2d.num_cameras
    if intrinsics is not None:
        if len(intrinsics) != C:
            raise InputError(
                f"intrinsics: {len(intrinsics)} cameras given but the detections have {C} cameras "
                f"({', '.join(poses2d.camera_names)})"
            )
        cams = [
            Camera(K=c.K, dist=c.dist, image_size=tuple(poses2d.image_size[i]), name=poses2d.camera_names[i])
            for i, c in enumerate(intrinsics.cameras)
        ]
        return Rig(cams, units="arbitrary"), True
    known = poses2d.K is not None
    cams = []
    for i in range(C):
        size = tuple(int(v) for v in poses2d.image_size[i])
        K = poses2d.K[i] if known else default_intrinsics(size)
        dist = poses2d.dist[i] if (known and poses2d.dist is not None) else np.zeros(5)
        cams.append(Camera(K=K, dist=dist, image_size=size, name=poses2d.camera_names[i]))
    return Rig(cams, units="arbitrary"), known


def normalized_observations(
    poses2d: Poses2D, rig: Rig, min_score: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Undistorted normalized coordinates (C, F, J, 2) (NaN where unobserved) and weights (C, F, J)
    (the scores, 0 where unobserved or below ``min_score``)."""
    kp = np.asarray(poses2d.keypoints, dtype=np.float64)
    obs = poses2d.observed() & (poses2d.scores >= min_score)
    kp = np.where(obs[..., None], kp, np.nan)
    xn = rig.undistort(kp)
    w = np.where(obs & np.isfinite(xn).all(-1), poses2d.scores.astype(np.float64), 0.0)
    return xn, w


def check_observations(poses2d: Poses2D, w: np.ndarray) -> None:
    """Raise :class:`InputError` for cameras that never see the person or no usable frames."""
    names = poses2d.camera_names
    seen = (w > 0).any(axis=(1, 2))
    for c in np.flatnonzero(~seen):
        raise InputError(
            f"camera {c} ({names[c]!r}) never sees the person: all its joints are missing (NaN) or "
            "have score 0"
        )
    if poses2d.num_cameras < 2:
        raise InputError(f"need at least 2 cameras to triangulate, got {poses2d.num_cameras}")
    usable = ((w > 0).sum(0) >= 2).any(-1)
    if not usable.any():
        raise InputError("no frame has a joint seen by two cameras: nothing can be triangulated")


# ------------------------------------------------------------------------------------------------
# rig assembly
# ------------------------------------------------------------------------------------------------
def project_to_so3(M: np.ndarray) -> np.ndarray:
    """Nearest rotations (Frobenius) of (..., 3, 3) matrices."""
    U, _, Vt = np.linalg.svd(M)
    d = np.sign(np.linalg.det(U @ Vt))
    return U @ (np.concatenate([np.ones(d.shape + (2,)), d[..., None]], -1)[..., :, None] * Vt)


def average_rotations(
    C: int, pairs: list[tuple[int, int]], R_rel: np.ndarray, weights: np.ndarray | None = None
) -> np.ndarray:
    """Chordal L2 rotation averaging: rotations ``R_c`` (camera 0 = I) with ``R_j ≈ R_ij R_i``.

    Args:
        C: number of cameras; pairs: list of (i, j); R_rel: (P, 3, 3) with ``x_j = R_ij x_i + t``.
        weights: (P,) pair weights (default 1).
    Returns:
        (C, 3, 3) world(=camera 0) -> camera rotations.
    """
    w = np.ones(len(pairs)) if weights is None else np.asarray(weights, dtype=np.float64)
    Q = np.zeros((3 * C, 3 * C))
    deg = np.zeros(C)
    for (i, j), Rij, wk in zip(pairs, R_rel, w):
        Q[3 * j : 3 * j + 3, 3 * i : 3 * i + 3] += wk * Rij
        Q[3 * i : 3 * i + 3, 3 * j : 3 * j + 3] += wk * Rij.T
        deg[i] += wk
        deg[j] += wk
    for c in range(C):
        Q[3 * c : 3 * c + 3, 3 * c : 3 * c + 3] += deg[c] * np.eye(3)
    _, V = np.linalg.eigh(Q)
    U = V[:, -3:].reshape(C, 3, 3)
    if np.sum(np.linalg.det(U) > 0) < C / 2:
        U = -U
    Rs = project_to_so3(U)
    return Rs @ Rs[0].T


def _tree_rotations(C: int, tree: list[tuple[int, int]], R_rel: list[np.ndarray]) -> np.ndarray | None:
    """Absolute rotations (camera 0 = I) chained along a spanning tree; None if not spanning."""
    Rs: list[np.ndarray | None] = [None] * C
    Rs[0] = np.eye(3)
    todo = list(zip(tree, R_rel))
    while todo:
        rest = []
        for (i, j), Rij in todo:
            if Rs[i] is not None and Rs[j] is None:
                Rs[j] = Rij @ Rs[i]
            elif Rs[j] is not None and Rs[i] is None:
                Rs[i] = Rij.T @ Rs[j]
            elif Rs[i] is None:
                rest.append(((i, j), Rij))
        if len(rest) == len(todo):
            return None
        todo = rest
    return np.stack(Rs) if all(R is not None for R in Rs) else None


def _find(parent: list[int], a: int) -> int:
    """Union-find root with path halving."""
    while parent[a] != a:
        parent[a] = parent[parent[a]]
        a = parent[a]
    return a


def consistent_pairs(
    C: int,
    pairs: list[tuple[int, int]],
    R_rel: np.ndarray,
    weights: np.ndarray | None = None,
    threshold_deg: float = 3.0,
    max_trees: int = 300,
    seed: int = 0,
) -> np.ndarray:
    """Which relative rotations agree with each other: a consensus over spanning trees.

    Every spanning tree of the camera graph (all of them for small rigs, ``max_trees`` random
    ones otherwise) gives absolute rotations by chaining; the tree whose rotations explain the
    largest weight of pairs within ``threshold_deg`` wins (ties: smaller total residual). One bad
    pair (e.g. a flipped solution of the two-view bas-relief ambiguity) then cannot spoil the rig.

    Returns:
        (P,) bool, the pairs consistent with the winning tree.
    """
    from itertools import combinations

    P = len(pairs)
    w = np.ones(P) if weights is None else np.asarray(weights, dtype=np.float64)
    trees: list[tuple[int, ...]] = []
    if P <= 12:
        trees = list(combinations(range(P), C - 1))
    else:
        rng = np.random.default_rng(seed)
        for _ in range(max_trees):
            parent = list(range(C))
            tree = []
            for k in rng.permutation(P):
                a, b = _find(parent, pairs[k][0]), _find(parent, pairs[k][1])
                if a != b:
                    parent[a] = b
                    tree.append(int(k))
            trees.append(tuple(tree))
    best, best_key = None, None
    for tree in trees:
        Rs = _tree_rotations(C, [pairs[k] for k in tree], [R_rel[k] for k in tree])
        if Rs is None:
            continue
        resid = np.array([rotation_angle_deg(Rs[j] @ Rs[i].T, Rr) for (i, j), Rr in zip(pairs, R_rel)])
        ok = resid <= threshold_deg
        key = (float(w[ok].sum()), -float(np.minimum(resid, threshold_deg).sum()))
        if best_key is None or key > best_key:
            best, best_key = ok, key
    if best is None:
        return np.ones(P, bool)
    return best


def translations_from_directions(
    Rs: np.ndarray, pairs: list[tuple[int, int]], dirs: np.ndarray, weights: np.ndarray | None = None
) -> np.ndarray:
    """Camera translations (camera 0 at the origin, ``|t_1| = 1``) from pairwise directions.

    With rotations known, ``t_ij = t_j - R_ij t_i`` must be parallel to the measured unit direction
    ``d_ij``: ``[d_ij]x (t_j - R_ij t_i) = 0``, a homogeneous linear system in ``t_1..t_{C-1}``
    solved by SVD; the sign makes the directions agree.

    Args:
        Rs: (C, 3, 3); pairs: P pairs (i, j); dirs: (P, 3) unit ``t_ij``; weights: (P,).
    Returns:
        (C, 3).
    """
    from .epipolar import skew

    C = len(Rs)
    w = np.ones(len(pairs)) if weights is None else np.asarray(weights, dtype=np.float64)
    rows = []
    for (i, j), d, wk in zip(pairs, dirs, w):
        A = np.zeros((3, 3 * C))
        S = skew(d)
        Rij = Rs[j] @ Rs[i].T
        A[:, 3 * j : 3 * j + 3] += S
        A[:, 3 * i : 3 * i + 3] -= S @ Rij
        rows.append(np.sqrt(wk) * A)
    A = np.concatenate(rows)[:, 3:]  # camera 0 fixed at t = 0
    _, sv, Vt = np.linalg.svd(A)
    t = np.concatenate([np.zeros(3), Vt[-1]]).reshape(C, 3)
    agree = sum(float(d @ (t[j] - (Rs[j] @ Rs[i].T) @ t[i])) for (i, j), d in zip(pairs, dirs))
    if agree < 0:
        t = -t
    n = np.linalg.norm(t[1]) if C > 1 else 1.0
    return t / max(n, 1e-12)


def translations_from_points(Rs: np.ndarray, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Camera translations from known rotations and 2D observations of common points (linear).

    Every observation gives ``[x̃_cp]x (R_c X_p + t_c) = 0`` (x̃ homogeneous, normalized), linear
    in the points and translations together. The points are eliminated (Schur complement of the
    normal equations, 3x3 per point) and the translations are the smallest eigenvector of the
    remaining ``3(C-1)``-square system (camera 0 at the origin), signed so that points lie in
    front of the cameras, scaled to ``|t_1| = 1``. Uses all correspondences of all cameras at once,
    so it needs no pairwise baseline directions.

    Args:
        Rs: (C, 3, 3) rotations; x: (C, N, 2) normalized points (NaN where unobserved);
        w: (C, N) weights (0 = unobserved).
    Returns:
        (C, 3).
    """
    from .epipolar import skew

    C = len(Rs)
    ok = np.isfinite(x).all(-1) & (w > 0)
    keep = ok.sum(0) >= 2
    x, w, ok = x[:, keep], np.where(ok, w, 0.0)[:, keep], ok[:, keep]
    h = np.concatenate([np.where(ok[..., None], x, 0.0), np.ones(x.shape[:-1] + (1,))], -1)
    S = skew(h) * np.sqrt(w)[..., None, None]  # (C, N, 3, 3): B = [x]x
    A = S @ Rs[:, None]  # (C, N, 3, 3): A = [x]x R_c
    Mpp = np.einsum("cnki,cnkj->nij", A, A)
    Mpt = np.einsum("cnki,cnkj->cnij", A, S)  # AᵀB
    Mtt = np.einsum("cnki,cnkj->cij", S, S)
    Minv = np.linalg.inv(Mpp + 1e-12 * np.eye(3))
    G = np.einsum("nij,dnjk->dnik", Minv, Mpt)  # M_pp⁻¹ M_pt[d]
    Sc = -np.einsum("cnji,dnjk->cdik", Mpt, G)  # (C, C, 3, 3)
    Sc[np.arange(C), np.arange(C)] += Mtt
    Sm = Sc.transpose(0, 2, 1, 3).reshape(3 * C, 3 * C)[3:, 3:]
    _, V = np.linalg.eigh(0.5 * (Sm + Sm.T))
    t = np.concatenate([np.zeros(3), V[:, 0]]).reshape(C, 3)
    X = -np.einsum("dnik,dk->ni", G, t)  # points for this t
    depth = np.einsum("cij,nj->cn", Rs, X) + t[:, 2:3]
    if np.sum(np.sign(depth[:, :][ok]) * 1.0) < 0:
        t = -t
    return t / max(np.linalg.norm(t[1]), 1e-12)


def normalize_gauge(R: np.ndarray, t: np.ndarray, X: np.ndarray | None = None):
    """Express a rig in camera 0's frame with ``|t_1| = 1``; returns ``R, t, X, scale``."""
    R0, t0 = R[0], t[0]
    Rn = R @ R0.T
    tn = t - np.einsum("cij,j->ci", Rn, t0)
    s = 1.0 / max(np.linalg.norm(tn[1]), 1e-12) if len(R) > 1 else 1.0
    tn = tn * s
    Xn = None if X is None else s * (X @ R0.T + t0)
    return Rn, tn, Xn, s


# ------------------------------------------------------------------------------------------------
# sequence self-calibration
# ------------------------------------------------------------------------------------------------
@dataclass
class CalibrationReport:
    """What calibration found (also serialisable with :meth:`as_dict`)."""

    pairs: list[dict[str, Any]] = field(default_factory=list)
    pairs_used: list[tuple[int, int]] = field(default_factory=list)
    intrinsics_known: bool = True
    focal_refined: bool = False
    focal_scale: list[float] = field(default_factory=list)
    ba_frames: int = 0
    ba_observations: int = 0
    ba_median_error_px: tuple[float, float] = (float("nan"), float("nan"))
    scale_to_mm: float | None = None
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "pairs": self.pairs,
            "pairs_used": [list(p) for p in self.pairs_used],
            "intrinsics_known": self.intrinsics_known,
            "focal_refined": self.focal_refined,
            "focal_scale": self.focal_scale,
            "ba_frames": self.ba_frames,
            "ba_observations": self.ba_observations,
            "ba_median_error_px": {"before": self.ba_median_error_px[0], "after": self.ba_median_error_px[1]},
            "scale_to_mm": self.scale_to_mm,
            "timings_s": self.timings,
            "warnings": self.warnings,
        }


def _pair_name(poses2d: Poses2D, i: int, j: int) -> str:
    n = poses2d.camera_names
    return f"camera pair {i}-{j} ({n[i]!r}, {n[j]!r})"


@single_threaded
def calibrate(
    poses2d: Poses2D,
    intrinsics: Rig | None = None,
    refine_focal: bool | None = None,
    subject_height_mm: float | None = None,
    threshold_px: float = 8.0,
    min_score: float = 0.3,
    method: str = "poselib",
    max_ransac_points: int = 4000,
    ba_frames: int = 600,
    min_inlier_rate: float = 0.25,
    seed: int = 0,
) -> tuple[Rig, CalibrationReport]:
    """Self-calibrate a static rig from multi-view 2D joints (see the module docstring).

    Args:
        poses2d: the detections (C >= 2 cameras).
        intrinsics: a rig giving ``K``/``dist`` per camera (overrides those in ``poses2d``).
        refine_focal: refine focal lengths in bundle adjustment; default: only when ``K`` is unknown.
        subject_height_mm: makes the rig metric (``units = "mm"``) with :func:`metric_scale`.
        threshold_px: RANSAC inlier threshold (Sampson distance) in pixels.
        min_score: confidence needed for a joint to serve as a correspondence.
        method: ``"poselib"`` (default) or ``"magsac"`` (OpenCV USAC-MAGSAC).
        ba_frames: frames sampled for bundle adjustment.
    Returns:
        The rig (world = camera 0's frame, ``|t_1| = 1`` unless metric) and a report.
    Raises:
        InputError: a camera never sees the person, a pair has fewer than 8 correspondences or
            zero baseline (two-camera rigs), or a camera shares no usable pair with the others.
    """
    timings: dict[str, float] = {}
    t_start = time.perf_counter()
    base, known = resolve_intrinsics(poses2d, intrinsics)
    if refine_focal is None:
        refine_focal = not known
    C, J = poses2d.num_cameras, poses2d.num_joints
    xn, w = normalized_observations(poses2d, base)
    check_observations(poses2d, w)
    focal = base.K[:, [0, 1], [0, 1]].mean(1)
    timings["undistort"] = time.perf_counter() - t_start

    # --- pairwise relative poses
    t0 = time.perf_counter()
    good = w >= max(min_score, 1e-9)
    report = CalibrationReport(intrinsics_known=known, focal_refined=bool(refine_focal))
    rel: dict[tuple[int, int], RelativePose] = {}
    thr_n = threshold_px / float(np.mean(focal))
    for i in range(C):
        for j in range(i + 1, C):
            m = good[i] & good[j]
            name = _pair_name(poses2d, i, j)
            entry: dict[str, Any] = {"pair": [i, j], "correspondences": int(m.sum())}
            try:
                rp = relative_pose(xn[i][m], xn[j][m], thr_n, method, max_ransac_points, seed, pair=name)
            except InputError as e:
                if C == 2:
                    raise
                entry["skipped"] = str(e)
                report.pairs.append(entry)
                continue
            entry.update(
                inlier_rate=rp.inlier_rate,
                parallax_deg=rp.parallax_deg,
                rotation_only_fraction=rp.rotation_only_fraction,
            )
            if rp.rotation_only_fraction > 0.8 and rp.sampson_inlier_rate >= 0.5:
                raise InputError(
                    f"{name}: zero baseline — {rp.rotation_only_fraction:.0%} of the correspondences "
                    "are explained by a pure rotation (the cameras share a centre, or the person "
                    "barely moves), so depth cannot be triangulated"
                )
            elif rp.inlier_rate < min_inlier_rate:
                entry["skipped"] = f"inlier rate {rp.inlier_rate:.0%} below {min_inlier_rate:.0%}"
            else:
                rel[(i, j)] = rp
            report.pairs.append(entry)
    timings["relative_poses"] = time.perf_counter() - t0
    for c in range(C):
        if not any(c in p for p in rel):
            raise InputError(
                f"camera {c} ({poses2d.camera_names[c]!r}) shares no usable pair with the other cameras "
                "(too few joints seen together, or no consistent relative pose)"
            )

    # --- rotation averaging with pair rejection
    t0 = time.perf_counter()
    pairs = list(rel)
    R_rel = np.stack([rel[p].R for p in pairs])
    wts = np.array([rel[p].inliers.sum() for p in pairs], dtype=np.float64)
    wts /= wts.max()
    keep = consistent_pairs(C, pairs, R_rel, wts)
    for _ in range(3):
        Rs = average_rotations(C, [p for p, k in zip(pairs, keep) if k], R_rel[keep], wts[keep])
        resid = np.array([rotation_angle_deg(Rs[j] @ Rs[i].T, Rr) for (i, j), Rr in zip(pairs, R_rel)])
        new_keep = resid <= max(3 * np.median(resid), 2.0)
        if np.array_equal(new_keep, keep) or not all(
            any(c in p for p, k in zip(pairs, new_keep) if k) for c in range(C)
        ):
            break
        keep = new_keep
    used = [p for p, k in zip(pairs, keep) if k]
    for e in report.pairs:
        p = tuple(e["pair"])
        if p in rel:
            e["rotation_residual_deg"] = float(resid[pairs.index(p)])
            e["used"] = p in used
    dirs = np.stack([rel[p].t for p in used])
    ts = translations_from_directions(Rs, used, dirs, wts[keep])
    report.pairs_used = used
    timings["rig_assembly"] = time.perf_counter() - t0
    worst = float(resid.max()) if len(resid) else 0.0
    if len(used) < len(pairs) or worst > 2.0:
        report.warnings.append(
            f"two-view relative rotations disagree by up to {worst:.1f}° ({len(pairs) - len(used)} of "
            f"{len(pairs)} pairs left out): weak geometry (the person moves little, or is small in "
            "the images); the rig may be off by a degree or more. A longer sequence in which the "
            "person walks around helps."
        )

    # --- bundle adjustment on a sample of frames
    t0 = time.perf_counter()
    nobs = (w > 0).sum(0)  # (F, J)
    cand = np.flatnonzero((nobs >= 2).sum(-1) >= max(J // 2, 1))
    if len(cand) == 0:
        cand = np.flatnonzero((nobs >= 2).any(-1))
    sel = cand[np.linspace(0, len(cand) - 1, min(ba_frames, len(cand))).round().astype(np.int64)]
    sel = np.unique(sel)
    # translations from all correspondences of the sample (robust: twice, the second time with
    # the views that robust triangulation kept); the pairwise-direction solution is the fallback
    xt, wt = xn[:, sel], np.where(good[:, sel], w[:, sel], 0.0)
    for _ in range(2):
        ts_pts = translations_from_points(Rs, xt.reshape(C, -1, 2), wt.reshape(C, -1))
        if np.isfinite(ts_pts).all():
            ts = ts_pts
        Rt = np.concatenate([Rs, ts[:, :, None]], -1)
        tri = triangulate_robust(Rt, xn[:, sel], w[:, sel], focal, min_threshold_px=threshold_px)
        xt, wt = undo_swaps(xn[:, sel], w[:, sel], tri.swapped)  # the kept views, swaps undone
        wt = np.where(tri.used, wt, 0.0)
    pts_ok = tri.valid.reshape(-1)
    X0 = tri.points.reshape(-1, 3)[pts_ok]
    used_v = tri.used.reshape(C, -1)[:, pts_ok]  # (C, N)
    xs, ws = undo_swaps(xn[:, sel], w[:, sel], tri.swapped)
    xs = xs.reshape(C, -1, 2)[:, pts_ok]
    ws = ws.reshape(C, -1)[:, pts_ok]
    cam_idx, pt_idx = np.nonzero(used_v & (ws > 0))
    if len(X0) < 8:
        raise InputError("too few joints could be triangulated for bundle adjustment (need >= 8)")
    ba = bundle_adjust(
        Rs, ts, X0, cam_idx, pt_idx, xs[cam_idx, pt_idx], focal, ws[cam_idx, pt_idx],
        refine_focal=bool(refine_focal), f_scale_px=threshold_px / 2,
    )  # fmt: skip
    Rb, tb, _, _ = normalize_gauge(ba.R, ba.t, ba.X)
    report.ba_frames = len(sel)
    report.ba_observations = len(cam_idx)
    report.ba_median_error_px = (ba.median_error_initial_px, ba.median_error_final_px)
    report.focal_scale = ba.focal_scale.tolist()
    timings["bundle_adjustment"] = time.perf_counter() - t0

    cams = []
    for c, cam in enumerate(base.cameras):
        K = cam.K.copy()
        if refine_focal:
            K[0, 0] *= ba.focal_scale[c]
            K[1, 1] *= ba.focal_scale[c]
        cams.append(replace(cam, K=K, R=Rb[c], t=tb[c]))
    rig = Rig(cams, units="arbitrary", name="self-calibrated")
    if subject_height_mm is not None:
        t0 = time.perf_counter()
        # triangulate the BA sample with the final rig and scale it to the subject's height
        Rt = np.stack([c.Rt for c in rig.cameras])
        xn2, _ = normalized_observations(poses2d, rig)
        tri = triangulate_robust(Rt, xn2[:, sel], w[:, sel], rig.K[:, 0, 0], min_threshold_px=threshold_px)
        s = metric_scale(tri.points, subject_height_mm)
        rig = rig.transformed(np.eye(3), np.zeros(3), scale=s)
        rig.units = "mm"
        report.scale_to_mm = s
        timings["metric_scale"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_start
    report.timings = timings
    return rig, report


# chain from the ankles up to the head top (H36M indices): ankle-knee, knee-hip, hip-pelvis is
# skipped (horizontal), pelvis-spine, spine-thorax, thorax-neck/nose, neck/nose-head top
_LEG_R = [(3, 2), (2, 1)]
_LEG_L = [(6, 5), (5, 4)]
_TRUNK = [(0, 7), (7, 8), (8, 9), (9, 10)]


def body_height(poses: np.ndarray) -> float:
    """Standing height estimated from median bone lengths of (F, 17, 3) poses: mean leg length
    (ankle-knee-hip) + pelvis-spine-thorax-neck-head-top chain. Ignores the foot below the ankle
    (~5 % of the height) — it approximates the *ankle-to-head-top* height."""
    poses = np.asarray(poses, dtype=np.float64)

    def med(pairs: list[tuple[int, int]]) -> float:
        return float(sum(np.nanmedian(np.linalg.norm(poses[:, a] - poses[:, b], axis=-1)) for a, b in pairs))

    return 0.5 * (med(_LEG_R) + med(_LEG_L)) + med(_TRUNK)


def metric_scale(poses: np.ndarray, subject_height_mm: float) -> float:
    """Scale factor turning arbitrary-unit poses (F, 17, 3) into mm given the subject's height.

    The height is compared with :func:`body_height` (ankle to head top) plus 4.5 % for the foot.
    """
    if not subject_height_mm or subject_height_mm <= 0:
        raise InputError(f"subject height must be a positive number of mm, got {subject_height_mm}")
    if poses.shape[-2] != 17:
        raise InputError("--subject-height needs the Human3.6M 17-joint skeleton")
    h = body_height(poses) * 1.045
    if not np.isfinite(h) or h <= 0:
        raise InputError("cannot measure the subject's height: too few triangulated joints")
    return float(subject_height_mm / h)


assert len(BONES) == 16  # the chains above use the H36M skeleton


# ------------------------------------------------------------------------------------------------
# the paper's per-frame recipe
# ------------------------------------------------------------------------------------------------
def _umeyama(src: np.ndarray, dst: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Batched similarity ``dst ≈ s R src + t`` over masked points: (B, N, 3) -> s (B,), R (B,3,3), t (B,3)."""
    m = mask[..., None].astype(np.float64)
    n = np.maximum(m.sum(1), 1)
    src0 = np.where(mask[..., None], src, 0.0)
    dst0 = np.where(mask[..., None], dst, 0.0)
    mu_s, mu_d = src0.sum(1) / n, dst0.sum(1) / n
    a, b = (src0 - mu_s[:, None]) * m, (dst0 - mu_d[:, None]) * m
    H = np.einsum("bni,bnj->bij", b, a) / n[..., None]
    U, S, Vt = np.linalg.svd(H)
    d = np.sign(np.linalg.det(U @ Vt))
    D = np.concatenate([np.ones(d.shape + (2,)), d[:, None]], -1)
    R = U @ (D[..., :, None] * Vt)
    var = (a**2).sum((1, 2)) / n[:, 0]
    s = (S * D).sum(-1) / np.maximum(var, 1e-300)
    t = mu_d - s[:, None] * np.einsum("bij,bj->bi", R, mu_s)
    return s, R, t


@dataclass
class PerFrameResult:
    """Per-frame reconstruction: poses (F, J, 3) in camera 0's frame at unit baseline 0-1 per
    frame, NaN where it failed; valid (F, J); pair_poses: (P, F, 3, 4) ``[R|t]`` per pair and frame."""

    poses: np.ndarray
    valid: np.ndarray
    pair_poses: np.ndarray


@single_threaded
def per_frame_reconstruct(
    poses2d: Poses2D,
    intrinsics: Rig | None = None,
    rig: Rig | None = None,
    threshold_px: float = 8.0,
    progress: bool = False,
) -> PerFrameResult:
    """The paper's recipe, frame by frame (a baseline; also usable for moving cameras).

    For each frame and consecutive pair ``(k, k+1)``: ``cv2.findFundamentalMat`` (RANSAC,
    ``threshold_px``) on the frame's joints seen by both (undistorted pixels), ``E = KᵀFK``,
    :func:`~epipolarpose.geometry.epipolar.decompose_essential` + cheirality, Hartley–Sturm
    triangulation in camera ``k``'s frame with ``|t| = 1``. With a known ``rig`` (the paper's "R/t"
    setting) the pair's true ``(R, t)`` is used instead of the estimate.

    Common frame: pair ``(0, 1)`` already lives in camera 0's frame with unit baseline. Every other
    pair's reconstruction of the frame is mapped onto it by a similarity (Umeyama) fitted on their
    common joints, then each joint is the vector (geometric) median of the pairs' estimates. Frames
    where pair (0, 1) fails have no reference and are invalid (NaN). With a known rig every pair
    is mapped into camera 0's frame exactly with the rig's extrinsics (rig units).
    """
    import cv2

    base, _ = resolve_intrinsics(poses2d, intrinsics) if rig is None else (rig, True)
    C, F, J = poses2d.num_cameras, poses2d.num_frames, poses2d.num_joints
    xn, w = normalized_observations(poses2d, base)
    check_observations(poses2d, w)
    K = base.K
    P = C - 1
    rec = np.full((P, F, J, 3), np.nan)
    pair_poses = np.full((P, F, 3, 4), np.nan)
    it = range(F)
    if progress:
        from tqdm import tqdm

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
            mask = np.isfinite(ref).all(-1) & np.isfinite(rec[k]).all(-1)
            ok = mask.sum(-1) >= 3
            s, R, t = _umeyama(rec[k], ref, mask)
            a = s[:, None, None] * np.einsum("fij,fnj->fni", R, rec[k]) + t[:, None]
            a[~ok] = np.nan
            aligned.append(a)
        out = vector_median(np.stack(aligned, -2))
    valid = np.isfinite(out).all(-1)
    return PerFrameResult(out, valid, pair_poses)
