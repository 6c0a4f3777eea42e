"""Self-calibration of a static camera rig from 2D human landmarks (the default of
``epipolarpose label``), in stages that each return a small typed result:

1. the detections it calibrates on (:func:`calibration_detections`): the detector's own
   landmarks when the file has them (``keypoints_native``: wrists, heels, toes are the same
   physical point in every view; derived joints such as the pelvis are not), else the joints;
   left/right pairs come from their names. Frames are sampled first (``max_frames``), so the
   cost does not grow with the sequence;
2. :func:`pairwise_relative_poses`: for every camera pair, correspondences are pooled over the
   frames and landmarks seen by both with a confidence >= ``min_score``; a robust relative pose
   (poselib LO-RANSAC 5-point, or OpenCV USAC-MAGSAC) is estimated on at most
   ``max_ransac_points`` of them spread over the sequence;
3. :func:`assemble_rig`: the pairs whose relative rotations agree are found by a consensus over
   spanning trees of the camera graph, their rotations averaged, and camera positions follow
   from the pairwise translation directions (:mod:`.rig_assembly`);
4. :func:`starting_rigs`: when the pairs disagree (real detectors: two-view geometry can fit a
   wrong pose better than the true one), rigs grown from each of the best pairs too
   (:mod:`.rig_init`), ranked by a quick robust adjustment of all views (:func:`~.rig_refinement.rig_cost`);
5. :func:`refine_rig`: a robust bundle adjustment of the best start on a sample of frames, with
   a noise scale measured per landmark and view side (:mod:`.rig_refinement`), optionally the
   focal lengths;
6. gauge: world = camera 0's frame, the distance camera 0 -> camera 1 is 1 (``units =
   "arbitrary"``) unless a subject height makes it metric (:func:`make_metric`). The labelling run
   levels it afterwards.

Every landmark is undistorted once, batched (:mod:`.observations`). The paper's per-frame recipe
is in :mod:`.per_frame`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from ..camera import Rig
from ..errors import InputError
from ..formats import Poses2D
from ..parallel import thread_map
from ..skeleton import metric_scale
from ..timing import Timer
from . import single_threaded
from .bundle import FOCAL_RANGE
from .epipolar import RelativePose, RelativePoseOptions, essential_from_pose, relative_pose, sampson_error
from .observations import NormalizedViews, normalize_views, normalized_observations
from .precision import RigPrecision, precision_verdict, rig_precision
from .rig_assembly import robust_rotation_averaging, translations_from_directions, translations_from_points
from .rig_init import incremental_rig
from .rig_refinement import RefinementOptions, rig_cost, robust_bundle_adjustment
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
    "calibration_detections",
    "check_focal_range",
    "distinct_frames",
    "make_metric",
    "noise_scale",
    "pairwise_relative_poses",
    "precision_check",
    "refine_rig",
    "select_start",
    "starting_rigs",
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
        landmarks: what to calibrate on: ``"auto"`` (the detector's own landmarks when the file
            has them, else the joints), ``"native"`` or ``"joints"``.
        noise_model: noise scales of the robust adjustment: ``"view"`` (per landmark and view
            side), ``"landmark"`` or ``"none"`` (see :mod:`.rig_refinement`).
        robust_scale: Cauchy scale of the adjustment, in units of each observation's noise scale.
        max_starts: rigs grown from the best pairs, tried when the pairs disagree.
        max_frames: frames sampled (evenly) for the pairwise poses; calibration does not grow
            with the sequence beyond it.
        select_frames: frames of the quick adjustment that ranks starting rigs.
        warn_uncertainty_deg: warn when the detections' scatter alone leaves a pair's relative
            rotation uncertain by more than this (RMS degrees, :mod:`.precision`: a lower bound
            on the error; measured on real footage with a usable rig: 0.2-0.7° with the
            intrinsics, up to 1.5° without).
        max_uncertainty_deg: refuse the rig (``InputError``) beyond this; None never refuses.
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
    landmarks: str = "auto"
    noise_model: str = "view"
    robust_scale: float = 2.0
    max_starts: int = 6
    max_frames: int = 5000
    select_frames: int = 150
    warn_uncertainty_deg: float = 1.0
    max_uncertainty_deg: float | None = 3.0


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
    focal_px: list[float] = field(default_factory=list)
    fov_deg: list[float] = field(default_factory=list)
    camera_names: list[str] = field(default_factory=list)
    ba_frames: int = 0
    ba_observations: int = 0
    ba_median_error_px: tuple[float, float] = (float("nan"), float("nan"))
    scale_to_mm: float | None = None
    landmarks: list[str] = field(default_factory=list)
    noise_px: dict[str, list[float]] = field(default_factory=dict)
    precision: RigPrecision | None = None
    starts: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "pairs": [p.as_dict() for p in self.pairs],
            "pairs_used": [list(p) for p in self.pairs_used],
            "intrinsics_known": self.intrinsics_known,
            "focal_refined": self.focal_refined,
            "focal_scale": self.focal_scale,
            "focal_px": self.focal_px,
            "fov_deg": self.fov_deg,
            "ba_frames": self.ba_frames,
            "ba_observations": self.ba_observations,
            "ba_median_error_px": {"before": self.ba_median_error_px[0], "after": self.ba_median_error_px[1]},
            "scale_to_mm": self.scale_to_mm,
            "landmarks": self.landmarks,
            "noise_px": self.noise_px,
            "precision": self.precision.as_dict() if self.precision is not None else None,
            "notes": self.notes(),
            "starts": self.starts,
            "timings_s": self.timings,
            "warnings": self.warnings,
        }

    def notes(self) -> list[str]:
        """What the calibration says about itself: :meth:`precision_line` and :meth:`focal_line`
        (those that apply)."""
        return [line for line in (self.precision_line(), self.focal_line()) if line]

    def precision_line(self) -> str:
        """One line: the lower bound on the relative rotations' error (:mod:`.precision`)."""
        p = self.precision
        if p is None:
            return ""
        sd = p.rotation_sd_deg
        if not np.isfinite(sd).all():
            return "rig precision: not determined (the detections do not fix the cameras)"
        return (
            f"rig precision: relative rotations ±{float(np.mean(sd)):.2f}° rms (worst pair ±{float(np.max(sd)):.2f}°) "
            "from the detections' scatter alone, a lower bound: systematic detector errors add to it"
        )

    def focal_line(self) -> str:
        """One line, when the focal lengths were estimated: each camera's, with its field of view
        across the longer image side ("" when they were known)."""
        if not self.focal_refined or not self.focal_px:
            return ""
        cams = ", ".join(
            f"{n} {f:.0f} px ({v:.0f}°)" for n, f, v in zip(self.camera_names, self.focal_px, self.fov_deg)
        )
        if self.intrinsics_known:
            return f"focal lengths refined from the intrinsics given (field of view across the longer side): {cams}"
        return (
            f"focal lengths estimated (no intrinsics given; field of view across the longer side): {cams}. "
            "From a person alone they can be tens of per cent off (1.0-1.6x a lab calibration's on the real "
            "footage benchmark), and the cameras are taken as pinholes with their principal points at the "
            "image centres (a webcam's is often 20-35 px off, and its lens distorts: on the real footage "
            "benchmark that alone leaves seated sessions' rigs 5-8° off): give --intrinsics when you have them "
            "(a board filmed once by each camera gives them: `epipolarpose intrinsics`; on that benchmark it "
            "brought the rigs from 5.6° and 8.5° to 4.4° and 3.2°)"
        )

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
        lines.extend(self.notes())
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
    consistent: bool = True  # every estimated pair used, rotations within 2° of the average
    name: str = "averaged"


@dataclass
class RefinedRig:
    """Stage 5: the bundle-adjusted rig in the gauge of :func:`~.rig_assembly.normalize_gauge`."""

    R: np.ndarray  # (C, 3, 3)
    t: np.ndarray  # (C, 3)
    focal_scale: np.ndarray  # (C,)
    frames: np.ndarray  # indices of the sampled frames (into the calibration sample)
    observations: int
    median_error_px: tuple[float, float]  # before, after
    noise_px: np.ndarray  # (J, 4) per landmark: front, side, back, all
    precision: RigPrecision | None = None


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
    pairs = [(i, j) for i in range(C) for j in range(i + 1, C)]

    def solve(pair: tuple[int, int]) -> tuple[int, RelativePose | InputError]:
        i, j = pair
        m = good[i] & good[j]
        try:
            return int(m.sum()), relative_pose(
                views.xn[i][m], views.xn[j][m], thr_n, ransac, pair=_pair_name(names, i, j)
            )
        except InputError as e:
            return int(m.sum()), e

    for (i, j), (count, rp) in zip(pairs, thread_map(solve, pairs)):  # pairs on threads
        name = _pair_name(names, i, j)
        rep = PairReport((i, j), count)
        reports.append(rep)
        if isinstance(rp, InputError):
            if C == 2:
                raise rp
            rep.skipped = str(rp)
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
    consistent = len(used) == len(pairs) and worst <= 2.0
    if not consistent:
        warning = (
            f"two-view relative rotations disagree by up to {worst:.1f}° ({len(pairs) - len(used)} of "
            f"{len(pairs)} pairs left out): weak geometry (the person moves little, or is small in "
            "the images); the rig may be off by a degree or more. A longer sequence in which the "
            "person walks around helps."
        )
    return RigEstimate(avg.R, t, used, warning, consistent)


def translations_from_sample(
    views: NormalizedViews, start: RigEstimate, options: CalibrationOptions
) -> RigEstimate:
    """Stage 3: the averaged rig's translations from all correspondences of ``ba_frames`` sampled
    frames (:func:`~.rig_assembly.translations_from_points`), twice: the second time with the
    views that robust triangulation kept and left/right swaps undone. The pairwise directions
    are noisier where cameras face each other (measured on a 3,000-frame synthetic run: a start
    whose bundle adjustment ended 6.7° off from the directions, 0.8° from the points); they stay
    where the linear solve fails."""
    sel = _sample_frames(views.w, options.ba_frames)
    C = len(start.R)
    xn = views.xn[:, sel]
    w = np.where(views.w[:, sel] >= options.min_score, views.w[:, sel], 0.0)
    tri_options = TriangulationOptions(
        min_threshold_px=options.threshold_px, left_right=tuple(map(tuple, views.left_right.tolist()))
    )
    t, xt, wt = start.t, xn, w
    for _ in range(2):
        tp = translations_from_points(start.R, xt.reshape(C, -1, 2), wt.reshape(C, -1))
        if not np.isfinite(tp).all():
            break
        t = tp
        tri = triangulate_robust(
            np.concatenate([start.R, t[:, :, None]], -1), xn, w, views.focal, tri_options
        )
        xt, wt = undo_swaps(xn, w, tri.swapped, views.left_right)
        wt = np.where(tri.used, wt, 0.0)
    return replace(start, t=t)


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


def noise_scale(views: NormalizedViews, pairwise: PairwisePoses, options: CalibrationOptions) -> float:
    """A first noise scale of the detections (pixels): the median over the pairs of the median
    Sampson distance of their correspondences to their estimated epipolar geometry."""
    good = views.w >= max(options.min_score, 1e-9)
    f = float(np.mean(views.focal))
    medians = []
    for (i, j), rp in pairwise.poses.items():
        m = good[i] & good[j]
        e = sampson_error(essential_from_pose(rp.R, rp.t), views.xn[i][m], views.xn[j][m])
        medians.append(float(np.median(e)) * f)
    return max(float(np.median(medians)), 0.5) if medians else options.threshold_px / 2


def _refinement_options(options: CalibrationOptions, refine_focal: bool) -> RefinementOptions:
    return RefinementOptions(
        min_score=options.min_score,
        threshold_px=options.threshold_px,
        robust_scale=options.robust_scale,
        noise_model=options.noise_model,
        refine_focal=refine_focal,
    )


def starting_rigs(
    views: NormalizedViews, pairwise: PairwisePoses, averaged: RigEstimate, options: CalibrationOptions
) -> list[RigEstimate]:
    """Stage 4: the averaged rig, and when the pairs disagree rigs grown from each of the
    ``max_starts`` pairs with the most inliers (:func:`~.rig_init.incremental_rig`)."""
    starts = [averaged]
    if averaged.consistent:
        return starts
    best = sorted(pairwise.poses.items(), key=lambda kv: -int(kv[1].inliers.sum()))[: options.max_starts]
    for (i, j), pose in best:
        rig = incremental_rig(views, (i, j), pose, options.min_score, options.threshold_px)
        if rig is not None:
            starts.append(RigEstimate(rig[0], rig[1], [(i, j)], consistent=False, name=f"from pair {i}-{j}"))
    return starts


def select_start(
    views: NormalizedViews,
    starts: list[RigEstimate],
    sigma0: float,
    options: CalibrationOptions,
    refine_focal: bool,
) -> tuple[RigEstimate, list[dict[str, Any]]]:
    """The starting rig whose quick robust adjustment explains a sample of frames best (lowest
    :func:`~.rig_refinement.rig_cost`), and every start's cost."""
    if len(starts) == 1:
        return starts[0], []
    sample = views.take_frames(_sample_frames(views.w, options.select_frames))
    ropts = _refinement_options(options, refine_focal)
    costs = [rig_cost(sample, s.R, s.t, sigma0, ropts).cost for s in starts]
    k = int(np.argmin(costs))
    return starts[k], [{"start": s.name, "cost": c} for s, c in zip(starts, costs)]


def refine_rig(
    views: NormalizedViews, start: RigEstimate, sigma0: float, options: CalibrationOptions, refine_focal: bool
) -> RefinedRig:
    """Stage 5: the robust bundle adjustment (:func:`~.rig_refinement.robust_bundle_adjustment`)
    of the rig on ``ba_frames`` frames spread over the sample."""
    sel = _sample_frames(views.w, options.ba_frames)
    fit = robust_bundle_adjustment(
        views.take_frames(sel), start.R, start.t, sigma0, _refinement_options(options, refine_focal)
    )
    if fit.observations < 8:
        raise InputError("too few landmarks could be triangulated for bundle adjustment (need >= 8)")
    precision = None
    if fit.covariance is not None:
        precision = rig_precision(fit.R, fit.covariance, fit.frames, fit.motion, fit.camera_frames)
    return RefinedRig(
        fit.R, fit.t, fit.focal_scale, sel, fit.observations, fit.median_error_px, fit.sigma_px, precision
    )


def check_focal_range(focal_scale: np.ndarray, names: list[str]) -> None:
    """:class:`InputError` naming every camera whose focal factor (C,) ran to the edge of
    :data:`~.bundle.FOCAL_RANGE`: no pinhole camera explains its detections together with the
    others' (measured: a mirrored video's camera ends at 4x the start, 175° off, while the
    precision bound stays near 1°)."""
    lo, hi = FOCAL_RANGE
    edge = [c for c, s in enumerate(focal_scale) if s >= 0.99 * hi or s <= 1.01 * lo]
    if edge:
        which = ", ".join(f"{names[c]!r} ({focal_scale[c]:.2f}x its start)" for c in edge)
        raise InputError(
            f"the focal length of camera {which} ran to the edge of the search ({lo}x-{hi}x the start): "
            "no pinhole camera explains its detections together with the other cameras' - a mirrored "
            "(selfie) video, a camera that follows another person, or detections of another image size; "
            "check that camera, leave it out (label --cameras) or pass the intrinsics (--intrinsics)"
        )


def precision_check(
    report: CalibrationReport, names: list[str], options: CalibrationOptions
) -> tuple[str | None, str | None]:
    """The warning and the refusal (:func:`~.precision.precision_verdict`) of a calibration's
    precision bound under ``options``' limits; ``(None, None)`` without a bound."""
    if report.precision is None:
        return None, None
    return precision_verdict(
        report.precision,
        names,
        options.warn_uncertainty_deg,
        options.max_uncertainty_deg,
        report.intrinsics_known,
    )


def make_metric(
    rig: Rig, poses2d: Poses2D, frames: np.ndarray, options: CalibrationOptions
) -> tuple[Rig, float]:
    """Scale a rig to mm from the subject's height: the ``frames`` are triangulated with the rig
    and compared with ``options.subject_height_mm`` (:func:`~epipolarpose.skeleton.metric_scale`).
    Returns the metric rig and the scale factor."""
    Rt = np.stack([c.Rt for c in rig.cameras])
    xn, w = normalized_observations(poses2d.take_frames(frames), rig)
    tri_options = TriangulationOptions(min_threshold_px=options.threshold_px)
    tri = triangulate_robust(Rt, xn, w, rig.K[:, 0, 0], tri_options)
    s = metric_scale(tri.points, options.subject_height_mm)
    metric = rig.transformed(np.eye(3), np.zeros(3), scale=s)
    metric.units = "mm"
    return metric, s


def calibration_detections(poses2d: Poses2D, landmarks: str = "auto") -> Poses2D:
    """The detections calibration works on: the native landmarks as joints (``"auto"`` when
    present, ``"native"``), or the joints themselves (``"joints"``)."""
    if landmarks not in ("auto", "native", "joints"):
        raise InputError(f"landmarks must be auto, native or joints, got {landmarks!r}")
    if landmarks == "joints" or (landmarks == "auto" and not poses2d.has_native):
        return poses2d
    if not poses2d.has_native:
        raise InputError(
            "calibration on native landmarks asked for, but the detections have none (keypoints_native)"
        )
    return replace(
        poses2d,
        keypoints=poses2d.keypoints_native,
        scores=poses2d.scores_native,
        joint_names=list(poses2d.joint_names_native),
        keypoints_native=None,
        scores_native=None,
        joint_names_native=None,
    )


def _even(num_frames: int, count: int) -> np.ndarray:
    return np.unique(np.linspace(0, num_frames - 1, min(count, num_frames)).round().astype(np.int64))


def distinct_frames(poses2d: Poses2D, frames: np.ndarray) -> np.ndarray:
    """``frames`` (sorted indices) without those whose detections repeat an earlier frame's exactly
    (every camera's keypoints and scores): a repeated frame is the same observation, not new
    evidence, and counting it again would shrink the rig's precision bound (measured: one frame
    copied 57 times gave a bound of ±0.9° to a rig 104° off; the single frame is refused)."""
    if len(frames) < 2:
        return frames
    kp = np.nan_to_num(poses2d.keypoints[:, frames].astype(np.float64), nan=-1e9)
    sc = poses2d.scores[:, frames].astype(np.float64)
    rows = np.concatenate(
        [np.moveaxis(kp, 1, 0).reshape(len(frames), -1), np.moveaxis(sc, 1, 0).reshape(len(frames), -1)], 1
    )
    _, first = np.unique(rows, axis=0, return_index=True)
    return frames[np.sort(first)]


@single_threaded
def calibrate(
    poses2d: Poses2D, options: CalibrationOptions = CalibrationOptions()
) -> tuple[Rig, CalibrationReport]:
    """Self-calibrate a static rig from multi-view 2D landmarks (see the module docstring).

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
    detections = calibration_detections(poses2d, options.landmarks)
    with timer("undistort"):
        frames = distinct_frames(detections, _even(poses2d.num_frames, options.max_frames))
        views = normalize_views(detections, frames)
    refine_focal = not views.intrinsics_known if options.refine_focal is None else options.refine_focal
    C = poses2d.num_cameras
    report = CalibrationReport(intrinsics_known=views.intrinsics_known, focal_refined=bool(refine_focal))
    report.landmarks = list(detections.joint_names)
    with timer("relative_poses"):
        pairwise = pairwise_relative_poses(views, poses2d.camera_names, options)
    report.pairs = pairwise.reports
    with timer("rig_assembly"):
        averaged = translations_from_sample(views, assemble_rig(C, pairwise), options)
        sigma0 = noise_scale(views, pairwise, options)
    report.pairs_used = averaged.pairs_used
    with timer("starting_rigs"):
        starts = starting_rigs(views, pairwise, averaged, options)
        start, report.starts = select_start(views, starts, sigma0, options, bool(refine_focal))
    if averaged.warning and start is averaged:
        report.warnings.append(averaged.warning)
    with timer("bundle_adjustment"):
        refined = refine_rig(views, start, sigma0, options, bool(refine_focal))
    report.ba_frames = len(refined.frames)
    report.ba_observations = refined.observations
    report.ba_median_error_px = refined.median_error_px
    report.focal_scale = refined.focal_scale.tolist()
    report.precision = refined.precision
    if refine_focal and options.max_uncertainty_deg is not None:  # None: a rig that only scores
        check_focal_range(refined.focal_scale, list(poses2d.camera_names))
    warning, error = precision_check(report, list(poses2d.camera_names), options)
    if error:
        raise InputError(error)
    if warning:
        report.warnings.append(warning)
    report.noise_px = {
        n: [round(float(v), 2) for v in row] for n, row in zip(detections.joint_names, refined.noise_px)
    }
    cams = []
    for c, cam in enumerate(views.cameras.cameras):
        K = cam.K.copy()
        if refine_focal:
            K[0, 0] *= refined.focal_scale[c]
            K[1, 1] *= refined.focal_scale[c]
        cams.append(replace(cam, K=K, R=refined.R[c], t=refined.t[c]))
    report.camera_names = list(poses2d.camera_names)
    report.focal_px = [float(c.K[0, 0]) for c in cams]
    report.fov_deg = [float(np.degrees(2 * np.arctan(0.5 * max(c.image_size) / c.K[0, 0]))) for c in cams]
    rig = Rig(cams, units="arbitrary", name="self-calibrated", extra={"world": "camera0"})
    if options.subject_height_mm is not None:
        with timer("metric_scale"):
            rig, report.scale_to_mm = make_metric(rig, poses2d, frames[refined.frames], options)
    report.timings = {**timer.seconds, "total": timer.total()}
    return rig, report
