"""Self-calibration of a static camera rig from 2D human joints (the default of ``epipolarpose
label``), as four stages that each return a small typed result:

1. :func:`pairwise_relative_poses`: for every camera pair, correspondences are pooled over all
   frames and joints seen by both with a confidence >= ``min_score``; a robust relative pose
   (poselib LO-RANSAC 5-point, or OpenCV USAC-MAGSAC) is estimated on at most
   ``max_ransac_points`` of them spread over the sequence;
2. :func:`assemble_rig`: the pairs whose relative rotations agree are found by a consensus over
   spanning trees of the camera graph, their rotations averaged (chordal L2, pairs that disagree
   with the average by more than ``max(3 x median, 2°)`` dropped and redone), and camera positions
   follow from the pairwise translation directions (:mod:`.rig_assembly`);
3. :func:`refine_rig`: a sample of frames is triangulated robustly and a sparse bundle adjustment
   refines all camera poses (camera 0 fixed), optionally the focal lengths, and the sampled 3D
   joints with a robust (soft-L1) loss;
4. gauge: world = camera 0's frame, the distance camera 0 -> camera 1 is 1 (``units =
   "arbitrary"``) unless a subject height makes it metric (:func:`make_metric`).

Every joint is undistorted once, batched (:mod:`.observations`). The paper's per-frame recipe is
in :mod:`.per_frame`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from ..camera import Rig
from ..errors import InputError
from ..formats import Poses2D
from ..skeleton import metric_scale
from ..timing import Timer
from . import single_threaded
from .bundle import BundleObservations, BundleOptions, bundle_adjust
from .epipolar import RelativePose, RelativePoseOptions, relative_pose
from .observations import NormalizedViews, normalize_views, normalized_observations
from .rig_assembly import (
    normalize_gauge,
    robust_rotation_averaging,
    translations_from_directions,
    translations_from_points,
)
from .triangulation import TriangulationOptions, triangulate_robust, undo_swaps

__all__ = [
    "CalibrationOptions",
    "CalibrationReport",
    "PairReport",
    "PairwisePoses",
    "RefinedRig",
    "RigEstimate",
    "assemble_rig",
    "calibrate",
    "make_metric",
    "pairwise_relative_poses",
    "refine_rig",
]


@dataclass(frozen=True)
class CalibrationOptions:
    """Knobs of :func:`calibrate`.

    Attributes:
        refine_focal: refine focal lengths in bundle adjustment; ``None``: only when no ``K`` is
            known.
        subject_height_mm: makes the rig metric (``units = "mm"``) with :func:`make_metric`.
        threshold_px: RANSAC inlier threshold (Sampson distance) and view-rejection floor, pixels.
        min_score: confidence needed for a joint to serve as a correspondence.
        method: relative-pose RANSAC, ``"poselib"`` (default) or ``"magsac"`` (OpenCV USAC-MAGSAC).
        max_ransac_points: correspondences per pair given to RANSAC, spread over the sequence.
        ba_frames: frames sampled for bundle adjustment.
        min_inlier_rate: pairs with fewer inliers (in front of both cameras) are skipped.
        seed: RANSAC seed.
    """

    refine_focal: bool | None = None
    subject_height_mm: float | None = None
    threshold_px: float = 8.0
    min_score: float = 0.3
    method: str = "poselib"
    max_ransac_points: int = 4000
    ba_frames: int = 600
    min_inlier_rate: float = 0.25
    seed: int = 0


@dataclass
class PairReport:
    """What happened to one camera pair (``skipped`` says why a pair was not estimated);
    ``report["key"]`` reads the JSON view of :meth:`as_dict`."""

    pair: tuple[int, int]
    correspondences: int
    inlier_rate: float | None = None
    parallax_deg: float | None = None
    rotation_only_fraction: float | None = None
    rotation_residual_deg: float | None = None
    used: bool | None = None
    skipped: str | None = None

    @property
    def status(self) -> str:
        """``used``, why it was skipped, or ``rejected by rotation averaging``."""
        return "used" if self.used else (self.skipped or "rejected by rotation averaging")

    def as_dict(self) -> dict[str, Any]:
        """The fields that are set (JSON)."""
        d = {k: v for k, v in asdict(self).items() if v is not None}
        d["pair"] = list(self.pair)
        return d

    def __getitem__(self, key: str) -> Any:
        """The JSON view: ``report["inlier_rate"]``."""
        return self.as_dict()[key]


@dataclass
class CalibrationReport:
    """What calibration found (also serialisable with :meth:`as_dict`)."""

    pairs: list[PairReport] = field(default_factory=list)
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
            "pairs": [p.as_dict() for p in self.pairs],
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

    def format(self) -> str:
        """The pair table and the bundle adjustment line (printed by ``epipolarpose calibrate``)."""
        lines = []
        for p in self.pairs:
            rate = f"{p.inlier_rate:.1%}" if p.inlier_rate is not None else "-"
            lines.append(
                f"pair {p.pair[0]}-{p.pair[1]}: {p.correspondences} correspondences, inliers {rate}, {p.status}"
            )
        before, after = self.ba_median_error_px
        lines.append(
            f"bundle adjustment: {self.ba_frames} frames, median reprojection error {before:.2f} -> "
            f"{after:.2f} px; calibration took {self.timings['total']:.2f} s"
        )
        lines.extend(f"warning: {w}" for w in self.warnings)
        return "\n".join(lines)


@dataclass
class PairwisePoses:
    """Stage 1: the relative pose of every pair that could be estimated, and a report per pair."""

    poses: dict[tuple[int, int], RelativePose]
    reports: list[PairReport]


@dataclass
class RigEstimate:
    """Stage 2: camera rotations and positions (camera 0 = world, ``|t_1| = 1``), the pairs used."""

    R: np.ndarray  # (C, 3, 3)
    t: np.ndarray  # (C, 3)
    pairs_used: list[tuple[int, int]]
    warning: str | None = None


@dataclass
class RefinedRig:
    """Stage 3: the bundle-adjusted rig in the gauge of :func:`~.rig_assembly.normalize_gauge`."""

    R: np.ndarray  # (C, 3, 3)
    t: np.ndarray  # (C, 3)
    focal_scale: np.ndarray  # (C,)
    frames: np.ndarray  # indices of the sampled frames
    observations: int
    median_error_px: tuple[float, float]  # before, after


def _pair_name(names: list[str], i: int, j: int) -> str:
    return f"camera pair {i}-{j} ({names[i]!r}, {names[j]!r})"


def pairwise_relative_poses(
    views: NormalizedViews, names: list[str], options: CalibrationOptions
) -> PairwisePoses:
    """Stage 1: a robust relative pose for every camera pair from its pooled correspondences.

    Pairs with too few correspondences or too few inliers are skipped (reported), except with two
    cameras, where that is an error; a pair explained by a pure rotation is an error (zero
    baseline: depth cannot be triangulated); so is a camera left without any pair.
    """
    C = len(views.cameras)
    good = views.w >= max(options.min_score, 1e-9)
    thr_n = options.threshold_px / float(np.mean(views.focal))
    ransac = RelativePoseOptions(options.method, options.max_ransac_points, options.seed)
    poses: dict[tuple[int, int], RelativePose] = {}
    reports = []
    for i in range(C):
        for j in range(i + 1, C):
            m = good[i] & good[j]
            name = _pair_name(names, i, j)
            rep = PairReport((i, j), int(m.sum()))
            reports.append(rep)
            try:
                rp = relative_pose(views.xn[i][m], views.xn[j][m], thr_n, ransac, pair=name)
            except InputError as e:
                if C == 2:
                    raise
                rep.skipped = str(e)
                continue
            rep.inlier_rate = rp.inlier_rate
            rep.parallax_deg = rp.parallax_deg
            rep.rotation_only_fraction = rp.rotation_only_fraction
            if rp.rotation_only_fraction > 0.8 and rp.sampson_inlier_rate >= 0.5:
                raise InputError(
                    f"{name}: zero baseline — {rp.rotation_only_fraction:.0%} of the correspondences "
                    "are explained by a pure rotation (the cameras share a centre, or the person "
                    "barely moves), so depth cannot be triangulated"
                )
            if rp.inlier_rate < options.min_inlier_rate:
                rep.skipped = f"inlier rate {rp.inlier_rate:.0%} below {options.min_inlier_rate:.0%}"
            else:
                poses[i, j] = rp
    for c in range(C):
        if not any(c in p for p in poses):
            raise InputError(
                f"camera {c} ({names[c]!r}) shares no usable pair with the other cameras "
                "(too few joints seen together, or no consistent relative pose)"
            )
    return PairwisePoses(poses, reports)


def assemble_rig(C: int, pairwise: PairwisePoses) -> RigEstimate:
    """Stage 2: rotations by robust rotation averaging, positions from the pairwise directions of
    the pairs kept. Records each pair's rotation residual and use in ``pairwise.reports``."""
    pairs = list(pairwise.poses)
    R_rel = np.stack([pairwise.poses[p].R for p in pairs])
    wts = np.array([pairwise.poses[p].inliers.sum() for p in pairs], dtype=np.float64)
    wts /= wts.max()
    avg = robust_rotation_averaging(C, pairs, R_rel, wts)
    used = [p for p, k in zip(pairs, avg.keep) if k]
    for rep in pairwise.reports:
        if rep.pair in pairwise.poses:
            rep.rotation_residual_deg = float(avg.residual_deg[pairs.index(rep.pair)])
            rep.used = rep.pair in used
    dirs = np.stack([pairwise.poses[p].t for p in used])
    t = translations_from_directions(avg.R, used, dirs, wts[avg.keep])
    worst = float(avg.residual_deg.max()) if len(avg.residual_deg) else 0.0
    warning = None
    if len(used) < len(pairs) or worst > 2.0:
        warning = (
            f"two-view relative rotations disagree by up to {worst:.1f}° ({len(pairs) - len(used)} of "
            f"{len(pairs)} pairs left out): weak geometry (the person moves little, or is small in "
            "the images); the rig may be off by a degree or more. A longer sequence in which the "
            "person walks around helps."
        )
    return RigEstimate(avg.R, t, used, warning)


def _sample_frames(w: np.ndarray, count: int) -> np.ndarray:
    """Up to ``count`` frames spread over the sequence, preferring frames where at least half the
    joints are seen by two cameras (w: (C, F, J) weights)."""
    J = w.shape[-1]
    nobs = (w > 0).sum(0)  # (F, J)
    cand = np.flatnonzero((nobs >= 2).sum(-1) >= max(J // 2, 1))
    if len(cand) == 0:
        cand = np.flatnonzero((nobs >= 2).any(-1))
    sel = cand[np.linspace(0, len(cand) - 1, min(count, len(cand))).round().astype(np.int64)]
    return np.unique(sel)


def refine_rig(
    views: NormalizedViews, estimate: RigEstimate, options: CalibrationOptions, refine_focal: bool
) -> RefinedRig:
    """Stage 3: bundle adjustment of the rig on a sample of frames.

    Translations are first re-estimated from all correspondences of the sample
    (:func:`~.rig_assembly.translations_from_points`; robust: twice, the second time with the
    views that robust triangulation kept, swaps undone; the pairwise-direction estimate is the
    fallback); the kept views of the robustly triangulated sample are then adjusted.
    """
    C = len(views.cameras)
    focal = views.focal
    sel = _sample_frames(views.w, options.ba_frames)
    xn, w = views.xn[:, sel], views.w[:, sel]
    good = w >= max(options.min_score, 1e-9)
    left_right = tuple(map(tuple, views.left_right.tolist()))
    tri_options = TriangulationOptions(min_threshold_px=options.threshold_px, left_right=left_right)
    Rs, ts = estimate.R, estimate.t
    xt, wt = xn, np.where(good, w, 0.0)
    for _ in range(2):
        ts_pts = translations_from_points(Rs, xt.reshape(C, -1, 2), wt.reshape(C, -1))
        if np.isfinite(ts_pts).all():
            ts = ts_pts
        Rt = np.concatenate([Rs, ts[:, :, None]], -1)
        tri = triangulate_robust(Rt, xn, w, focal, tri_options)
        xt, wt = undo_swaps(xn, w, tri.swapped, views.left_right)  # the kept views, swaps undone
        wt = np.where(tri.used, wt, 0.0)
    pts_ok = tri.valid.reshape(-1)
    X0 = tri.points.reshape(-1, 3)[pts_ok]
    used_v = tri.used.reshape(C, -1)[:, pts_ok]  # (C, N)
    xs, ws = undo_swaps(xn, w, tri.swapped, views.left_right)
    xs = xs.reshape(C, -1, 2)[:, pts_ok]
    ws = ws.reshape(C, -1)[:, pts_ok]
    cam_idx, pt_idx = np.nonzero(used_v & (ws > 0))
    if len(X0) < 8:
        raise InputError("too few joints could be triangulated for bundle adjustment (need >= 8)")
    obs = BundleObservations(cam_idx, pt_idx, xs[cam_idx, pt_idx], ws[cam_idx, pt_idx])
    ba_options = BundleOptions(refine_focal=refine_focal, f_scale_px=options.threshold_px / 2)
    ba = bundle_adjust(Rs, ts, X0, focal, obs, ba_options)
    Rb, tb, _, _ = normalize_gauge(ba.R, ba.t, ba.X)
    errors = (ba.median_error_initial_px, ba.median_error_final_px)
    return RefinedRig(Rb, tb, ba.focal_scale, sel, len(cam_idx), errors)


def make_metric(
    rig: Rig, poses2d: Poses2D, frames: np.ndarray, options: CalibrationOptions
) -> tuple[Rig, float]:
    """Scale a rig to mm from the subject's height: the sample ``frames`` are triangulated with
    the rig and compared with ``options.subject_height_mm`` (:func:`~epipolarpose.skeleton.metric_scale`).
    Returns the metric rig and the scale factor."""
    Rt = np.stack([c.Rt for c in rig.cameras])
    xn, w = normalized_observations(poses2d, rig)
    tri_options = TriangulationOptions(min_threshold_px=options.threshold_px)
    tri = triangulate_robust(Rt, xn[:, frames], w[:, frames], rig.K[:, 0, 0], tri_options)
    s = metric_scale(tri.points, options.subject_height_mm)
    metric = rig.transformed(np.eye(3), np.zeros(3), scale=s)
    metric.units = "mm"
    return metric, s


@single_threaded
def calibrate(
    poses2d: Poses2D, options: CalibrationOptions = CalibrationOptions()
) -> tuple[Rig, CalibrationReport]:
    """Self-calibrate a static rig from multi-view 2D joints (see the module docstring).

    Args:
        poses2d: the detections (C >= 2 cameras); their ``K``/``dist`` when present (see
            :func:`~.observations.apply_intrinsics`), else a 60° field of view refined by
            bundle adjustment.
        options: :class:`CalibrationOptions`.
    Returns:
        The rig (world = camera 0's frame, ``|t_1| = 1`` unless metric) and a report.
    Raises:
        InputError: a camera never sees the person, a pair has fewer than 8 correspondences or
            zero baseline (two-camera rigs), or a camera shares no usable pair with the others.
    """
    timer = Timer()
    with timer("undistort"):
        views = normalize_views(poses2d)
    refine_focal = not views.intrinsics_known if options.refine_focal is None else options.refine_focal
    C = poses2d.num_cameras
    report = CalibrationReport(intrinsics_known=views.intrinsics_known, focal_refined=bool(refine_focal))
    with timer("relative_poses"):
        pairwise = pairwise_relative_poses(views, poses2d.camera_names, options)
    report.pairs = pairwise.reports
    with timer("rig_assembly"):
        estimate = assemble_rig(C, pairwise)
    report.pairs_used = estimate.pairs_used
    if estimate.warning:
        report.warnings.append(estimate.warning)
    with timer("bundle_adjustment"):
        refined = refine_rig(views, estimate, options, bool(refine_focal))
    report.ba_frames = len(refined.frames)
    report.ba_observations = refined.observations
    report.ba_median_error_px = refined.median_error_px
    report.focal_scale = refined.focal_scale.tolist()
    cams = []
    for c, cam in enumerate(views.cameras.cameras):
        K = cam.K.copy()
        if refine_focal:
            K[0, 0] *= refined.focal_scale[c]
            K[1, 1] *= refined.focal_scale[c]
        cams.append(replace(cam, K=K, R=refined.R[c], t=refined.t[c]))
    rig = Rig(cams, units="arbitrary", name="self-calibrated", extra={"world": "camera0"})
    if options.subject_height_mm is not None:
        with timer("metric_scale"):
            rig, report.scale_to_mm = make_metric(rig, poses2d, refined.frames, options)
    report.timings = {**timer.seconds, "total": timer.total()}
    return rig, report
