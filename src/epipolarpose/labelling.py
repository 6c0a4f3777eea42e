"""The labelling run: multi-view 2D detections -> (time sync) -> (self-calibrated rig) -> 3D labels.

:func:`label_poses` is what ``epipolarpose label`` runs, one stage after another:

1. time synchronisation (:mod:`epipolarpose.sync`): offsets given, or estimated with
   ``options.sync``; the detections are put on the first camera's timeline;
2. cameras: a known ``rig`` (the paper's "R/t" setting), or self-calibration of a static rig
   (:func:`~epipolarpose.geometry.calibration.calibrate`, ``mode="sequence"``, the default), or the
   paper's per-frame recipe (:mod:`epipolarpose.geometry.per_frame`, ``mode="per-frame"``), whose
   rig is the static rig that best explains its labels;
3. robust triangulation of every frame (:func:`~epipolarpose.geometry.triangulation.triangulate_robust`);
4. the outputs (``labels.npz``, the rig) and a :class:`LabelSummary`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from .camera import Rig, check_image_size
from .errors import InputError
from .formats import Labels, Poses2D
from .geometry import single_threaded
from .geometry.calibration import (
    CalibrationOptions,
    CalibrationReport,
    PairReport,
    calibrate,
    calibration_detections,
    check_focal_range,
    precision_check,
)
from .geometry.dlt import triangulate_dlt
from .geometry.observations import check_observations, normalized_observations, resolve_intrinsics
from .geometry.per_frame import per_frame_reconstruct, rig_from_labels
from .geometry.triangulation import TriangulationOptions, triangulate_robust
from .io import json_default
from .parallel import thread_map
from .quality import GOOD_AGREEMENT, CameraAgreement, camera_agreement, odd_camera, off_body, quality_warnings
from .skeleton import left_right_pairs, metric_scale
from .sync import SyncOptions, SyncResult, apply_offsets, check_with_rig, estimate_offsets
from .timing import Timer
from .world import level_world

__all__ = [
    "CameraSummary",
    "LabelOptions",
    "LabelResult",
    "LabelSummary",
    "check_rig",
    "label_poses",
    "synchronize",
]

MODES = ("sequence", "per-frame")


@dataclass(frozen=True)
class LabelOptions:
    """How :func:`label_poses` runs.

    Attributes:
        mode: ``"sequence"`` (self-calibration of a static rig, default) or ``"per-frame"`` (the
            paper's recipe).
        sync: estimate time offsets with these options (``--sync auto``); ``None``: the cameras
            are synchronized (or the offsets are given).
        calibration: self-calibration knobs; its ``subject_height_mm`` makes a self-calibrated
            rig metric in either mode.
        triangulation: robust triangulation knobs (sequence mode and known rigs); ``None``: a
            plain confidence-weighted DLT of all observed views (``triangulate --plain``).
    """

    mode: str = "sequence"
    sync: SyncOptions | None = None
    calibration: CalibrationOptions = CalibrationOptions()
    triangulation: TriangulationOptions | None = TriangulationOptions()


@dataclass
class CameraSummary:
    """Reprojection error (pixels, over the camera's observed valid joints) of one camera, and
    how it agrees with the others (:mod:`epipolarpose.quality`; ``None`` when not checked)."""

    name: str
    reprojection_px_median: float
    reprojection_px_p90: float
    observed: int
    seen: float | None = None
    agrees: float | None = None


@dataclass
class LabelSummary:
    """What a labelling run did (printed by the CLI with :meth:`format`, written as JSON with
    :meth:`as_dict`; ``summary["key"]`` reads the JSON view)."""

    mode: str
    cameras: list[CameraSummary]
    coverage: float  # fraction of valid joints
    valid_frames: float  # fraction of frames with every joint valid
    swaps_undone: int
    views_rejected: int
    units: str
    frames: int
    timings_s: dict[str, float]
    pairs: list[PairReport] = field(default_factory=list)
    calibration: CalibrationReport | None = None
    rejection_threshold_px: float | None = None
    sync: SyncResult | None = None
    quality: list[str] = field(default_factory=list)
    world: str | None = None
    off_body: int = 0  # valid joints dropped as too far from the body (quality.off_body)

    @property
    def frames_per_s(self) -> float:
        return self.frames / max(self.timings_s["total"], 1e-9)

    @property
    def warnings(self) -> list[str]:
        """Sync, calibration and camera-agreement warnings."""
        out = [w.removeprefix("warning: ") for w in self.sync.warnings] if self.sync is not None else []
        if self.calibration is not None:
            out += self.calibration.warnings
        return out + self.quality

    def as_dict(self) -> dict[str, Any]:
        """The JSON summary (``label --summary``)."""
        d: dict[str, Any] = {"mode": self.mode}
        if self.sync is not None:
            d["sync"] = {
                "offsets": self.sync.offsets.tolist(),
                "confidence": self.sync.confidence.tolist(),
                "warnings": self.sync.warnings,
                # the 2D tracks' evidence (coarse epipolar cost, px, null where not scored)
                "candidates": self.sync.candidates.tolist(),
                "cost_px": [
                    [None if not np.isfinite(v) else round(float(v), 3) for v in row]
                    for row in self.sync.cost
                ],
                "reference": int(self.sync.reference),
            }
            if self.sync.epipolar_offsets is not None:
                d["sync"]["epipolar_offsets"] = self.sync.epipolar_offsets.tolist()
        if self.calibration is not None:
            d["calibration"] = self.calibration.as_dict()
        keys = ("pair", "correspondences", "inlier_rate", "used", "skipped")
        d["pairs"] = [{k: v for k, v in p.as_dict().items() if k in keys} for p in self.pairs]
        if self.rejection_threshold_px is not None:
            d["rejection_threshold_px"] = self.rejection_threshold_px
        d.update(
            cameras=[asdict(c) for c in self.cameras],
            coverage=self.coverage,
            valid_frames=self.valid_frames,
            swaps_undone=self.swaps_undone,
            views_rejected=self.views_rejected,
            joints_off_body=self.off_body,
            units=self.units,
            frames=self.frames,
            timings_s=self.timings_s,
            frames_per_s=self.frames_per_s,
            warnings=self.warnings,
            world=self.world,
        )
        return d

    def __getitem__(self, key: str) -> Any:
        return self.as_dict()[key]

    def format(self) -> str:
        """A plain-text table (printed by ``epipolarpose label``)."""
        lines = []
        if self.sync is not None:
            # the sync warnings are listed with the others at the end
            lines += [self.sync.summary([c.name for c in self.cameras], warnings=False), ""]
        lines.append(f"{'camera':<16}{'reproj median px':>18}{'reproj p90 px':>15}{'observed':>10}")

        def px(v: float, width: int) -> str:
            return f"{v:>{width}.2f}" if np.isfinite(v) else f"{'-':>{width}}"

        for c in self.cameras:
            lines.append(
                f"{c.name:<16}{px(c.reprojection_px_median, 18)}{px(c.reprojection_px_p90, 15)}{c.observed:>10d}"
            )
        if any(not np.isfinite(c.reprojection_px_median) for c in self.cameras):
            lines.append(
                "(-: no reprojection error: the camera has no triangulated joint, or some of them lie "
                "behind it"
                + (" in the static rig fitted to the per-frame labels)" if self.mode == "per-frame" else ")")
            )
        if self.pairs:
            lines += ["", f"{'pair':<10}{'correspondences':>16}{'inlier rate':>13}  status"]
            for p in self.pairs:
                rate = f"{p.inlier_rate:>13.1%}" if p.inlier_rate is not None else f"{'-':>13}"
                lines.append(f"{p.pair[0]}-{p.pair[1]:<8}{p.correspondences:>16d}{rate}  {p.status}")
        lines.append("")
        lines.append(
            f"coverage {self.coverage:.1%} of joints valid ({self.valid_frames:.1%} of frames complete), "
            f"{self.swaps_undone} left/right swaps undone, {self.views_rejected} views rejected"
            + (f", {self.off_body} joints far off the body dropped" if self.off_body else "")
        )
        t = self.timings_s
        stages = ", ".join(f"{k} {v:.2f}s" for k, v in t.items() if k != "total")
        lines.append(f"time {t['total']:.2f} s for {self.frames} frames ({stages}); units: {self.units}")
        if self.world:
            lines.append(self.world)
        if self.calibration is not None:
            lines += self.calibration.notes()
        lines += [w if w.startswith("note: ") else f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


@dataclass
class LabelResult:
    """Output of :func:`label_poses`: ``labels`` (formats.md ``labels.npz``), the ``rig`` used or
    found, and the ``summary``."""

    labels: Labels
    rig: Rig
    summary: LabelSummary


def check_rig(rig: Rig, poses2d: Poses2D, what: str = "rig") -> None:
    """:class:`InputError` unless ``rig`` has one camera per view of ``poses2d`` (in order), each
    for the view's image size (:func:`~epipolarpose.camera.check_image_size`)."""
    if len(rig) != poses2d.num_cameras:
        raise InputError(
            f"{what} has {len(rig)} cameras but the detections have {poses2d.num_cameras} "
            f"({', '.join(poses2d.camera_names)}); they must match one to one, in order"
        )
    for cam, name, size in zip(rig.cameras, poses2d.camera_names, poses2d.image_size):
        check_image_size(cam.image_size, size, f"{what} camera {cam.name!r}", name)


@dataclass
class _Reconstruction:
    """The cameras and 3D joints of a run before its outputs are made."""

    rig: Rig
    points: np.ndarray  # (F, J, 3) world
    valid: np.ndarray  # (F, J)
    swaps_undone: int = 0
    views_rejected: int = 0
    rejection_threshold_px: float | None = None
    agreement: list[CameraAgreement] = field(default_factory=list)
    agreement_threshold_px: float = float("nan")
    off_body: int = 0


def _triangulate(poses2d: Poses2D, rig: Rig, options: LabelOptions, progress: bool) -> _Reconstruction:
    """Robust (or, without triangulation options, plain DLT) triangulation of every frame."""
    xn, w = normalized_observations(poses2d, rig)
    check_observations(poses2d, w)
    Rt = np.stack([c.Rt for c in rig.cameras])
    if options.triangulation is None:
        X = triangulate_dlt(Rt, np.moveaxis(xn, 0, -2), np.moveaxis(w, 0, -1))
        return _Reconstruction(rig, X, np.isfinite(X).all(-1))
    tri_options = options.triangulation
    if tri_options.left_right is None:  # swaps of the file's own left/right joints
        pairs = left_right_pairs(poses2d.joint_names).tolist()
        tri_options = replace(tri_options, left_right=tuple(map(tuple, pairs)))
    tri = triangulate_robust(Rt, xn, w, rig.K[:, [0, 1], [0, 1]].mean(1), tri_options, progress)
    rejected = int(((w > 0) & ~tri.used & tri.valid[None]).sum())
    threshold = float(np.median(tri.threshold_px))
    agreement, agree_px = camera_agreement(rig, xn, w)
    return _Reconstruction(
        rig, tri.points, tri.valid, int(tri.swapped.sum()), rejected, threshold, agreement, agree_px
    )


def _suspicious(report: CalibrationReport, rec: _Reconstruction, warnings: list[str]) -> bool:
    """Should each camera be left out in turn (:func:`~epipolarpose.quality.odd_camera`)? When
    the pairs disagreed, a camera check warned, or one camera's pairs all have clearly fewer
    inliers than the others (the mark of a camera that follows someone else)."""
    if report.warnings or warnings or any(a.agree < GOOD_AGREEMENT for a in rec.agreement):
        return True
    rates = {p.pair: p.inlier_rate for p in report.pairs if p.inlier_rate is not None}
    if len(rates) < 3:
        return False
    for c in range(len(rec.rig)):
        mine = [r for p, r in rates.items() if c in p]
        rest = [r for p, r in rates.items() if c not in p]
        if mine and rest and max(mine) < 0.75 * float(np.median(rest)):
            return True
    return False


def _refuse_weak(report: CalibrationReport, poses2d: Poses2D, options: CalibrationOptions) -> None:
    """Refuse a rig made while synchronizing (which keeps weak rigs to score offsets with) as
    :func:`~epipolarpose.geometry.calibration.calibrate` would have (:mod:`.geometry.precision`,
    :func:`~epipolarpose.geometry.calibration.check_focal_range`)."""
    if options.max_uncertainty_deg is None:
        return
    if report.focal_refined:
        check_focal_range(np.asarray(report.focal_scale), list(poses2d.camera_names))
    _, error = precision_check(report, list(poses2d.camera_names), options)
    if error:
        raise InputError(error)


def _calibrated_error(options: LabelOptions):
    """``poses2d -> (rig, median reprojection error px)`` by self-calibration."""

    def run(p: Poses2D) -> tuple[Rig, float]:
        rig, rep = calibrate(p, replace(options.calibration, max_uncertainty_deg=None))  # scoring only
        return rig, float(rep.ba_median_error_px[1])

    return run


def _level(rec: _Reconstruction) -> str:
    """Level a self-calibrated reconstruction's world in place (:func:`~epipolarpose.world.level_world`)."""
    lev = level_world(rec.rig, rec.points) if rec.points.shape[1:] == (17, 3) else None
    if lev is None:
        return "world not levelled (no up direction found): camera 0's frame"
    rec.rig = rec.rig.transformed(lev.R, lev.t)
    rec.rig.extra["world"] = "levelled"
    rec.points = rec.points @ lev.R.T + lev.t
    return lev.note


def _per_frame(poses2d: Poses2D, rig: Rig | None, options: LabelOptions, progress: bool) -> _Reconstruction:
    """The paper's recipe; without a rig, the static rig that best explains its labels (PnP),
    metric when the subject's height is given."""
    res = per_frame_reconstruct(poses2d, rig=rig, progress=progress)
    X = res.poses
    if rig is not None:
        return _Reconstruction(rig, rig[0].camera_to_world(X), res.valid)  # the known rig's world frame
    base, _ = resolve_intrinsics(poses2d)
    xn, w = normalized_observations(poses2d, base)
    rig = rig_from_labels(base, X, xn, w)
    height = options.calibration.subject_height_mm
    if height is not None:
        s = metric_scale(X, height)
        rig = rig.transformed(np.eye(3), np.zeros(3), scale=s)
        rig.units = "mm"
        X = X * s
    return _Reconstruction(rig, X, res.valid)


def synchronize(
    poses2d: Poses2D,
    rig: Rig | None = None,
    options: LabelOptions = LabelOptions(sync=SyncOptions()),
    calibrations: dict[bytes, tuple[Rig, CalibrationReport]] | None = None,
) -> SyncResult:
    """Offsets from the 2D tracks (on the landmarks calibration uses), checked with a rig
    calibrated from all cameras (the known one, or self-calibration) in sequence mode. The
    self-calibrations made on the way are kept in ``calibrations`` (keyed by the detections).

    Args:
        poses2d: the detections, as recorded.
        rig: a known rig, else self-calibration checks the offsets.
        options: ``options.sync`` (required), the mode and the calibration options.
    """
    if options.sync is None:
        raise InputError("synchronize needs options.sync")
    calibrations = {} if calibrations is None else calibrations
    tracks = calibration_detections(poses2d, options.calibration.landmarks)
    sync = estimate_offsets(tracks, options.sync)
    if options.mode != "sequence":
        return sync

    def calibrated(shifted: Poses2D) -> Rig:
        if rig is not None:
            return rig
        key = _key(shifted)
        if key not in calibrations:  # scoring offsets: a weak rig is refused later, not here
            calibrations[key] = calibrate(shifted, replace(options.calibration, max_uncertainty_deg=None))
        return calibrations[key][0]

    return check_with_rig(poses2d, sync, calibrated, options.sync)


def _key(poses2d: Poses2D) -> bytes:
    """Identity of a set of detections (the memo of :func:`synchronize`)."""
    digest = hashlib.sha1(np.ascontiguousarray(poses2d.keypoints).data)
    digest.update(np.ascontiguousarray(poses2d.scores).data)
    return digest.digest()


def _summarise(
    poses2d: Poses2D, rec: _Reconstruction, reprojection: np.ndarray, options: LabelOptions
) -> LabelSummary:
    """Per-camera reprojection errors (C, F, J) of the valid joints, coverage and counts."""
    obs = poses2d.observed()
    cams = []
    for c in range(poses2d.num_cameras):
        e = reprojection[c][rec.valid & obs[c]]
        agreement = rec.agreement[c] if rec.agreement else None
        cams.append(
            CameraSummary(
                name=rec.rig[c].name,
                reprojection_px_median=float(np.median(e)) if e.size else float("nan"),
                reprojection_px_p90=float(np.percentile(e, 90)) if e.size else float("nan"),
                observed=int(obs[c].sum()),
                seen=None if agreement is None else agreement.seen,
                agrees=None if agreement is None else agreement.agree,
            )
        )
    return LabelSummary(
        mode=options.mode,
        cameras=cams,
        coverage=float(rec.valid.mean()),
        valid_frames=float(rec.valid.all(-1).mean()),
        swaps_undone=rec.swaps_undone,
        views_rejected=rec.views_rejected,
        off_body=rec.off_body,
        units=rec.rig.units,
        frames=poses2d.num_frames,
        timings_s={},
        rejection_threshold_px=rec.rejection_threshold_px,
    )


@single_threaded
def label_poses(
    poses2d: Poses2D,
    rig: Rig | None = None,
    *,
    offsets: np.ndarray | None = None,
    options: LabelOptions = LabelOptions(),
    progress: bool = False,
) -> LabelResult:
    """Turn multi-view 2D detections into 3D pseudo-labels (see the module docstring).

    Args:
        poses2d: (C, F, J) detections; their ``K``/``dist`` when known (see
            :func:`~epipolarpose.geometry.observations.apply_intrinsics`).
        rig: known cameras (skip calibration); must have C cameras.
        offsets: (C,) frames to add to each camera's index (time synchronisation), applied first
            and recorded in ``labels.extra["offsets"]``; ``options.sync`` estimates them instead.
        options: :class:`LabelOptions`.
        progress: progress bars on stderr.
    Returns:
        :class:`LabelResult`.
    """
    if options.mode not in MODES:
        raise InputError(f"mode must be 'sequence' or 'per-frame', got {options.mode!r}")
    if rig is not None:
        check_rig(rig, poses2d)
    timer = Timer()
    sync = None
    calibrations: dict[bytes, tuple[Rig, CalibrationReport]] = {}
    if options.sync is not None and offsets is None:
        with timer("sync"):
            sync = synchronize(poses2d, rig, options, calibrations)
        offsets = sync.offsets
    if offsets is not None:
        poses2d = apply_offsets(poses2d, offsets)
    report = None
    self_calibrated = rig is None
    if options.mode == "per-frame":
        with timer("per_frame"):
            rec = _per_frame(poses2d, rig, options, progress)
    else:
        if rig is None:
            memo = calibrations.get(_key(poses2d))
            if memo is not None:  # calibrated while synchronizing (its time is in sync's)
                rig, report = memo
            else:
                with timer("calibration"):
                    rig, report = calibrate(poses2d, options.calibration)
            _refuse_weak(report, poses2d, options.calibration)
        with timer("triangulation"):
            rec = _triangulate(poses2d, rig, options, progress)
            if options.triangulation is not None:  # the robust path: stray points are not labels
                stray = off_body(rec.points, rec.valid)
                rec.valid &= ~stray
                rec.points[stray] = np.nan
                rec.off_body = int(stray.sum())
    world_note = None
    if self_calibrated:
        with timer("levelling"):
            world_note = _level(rec)
    warnings, errors = quality_warnings(rec.agreement, rec.agreement_threshold_px)
    if not errors and report is not None and _suspicious(report, rec, warnings):
        with timer("camera_check"):
            odd = odd_camera(poses2d, report.ba_median_error_px[1], _calibrated_error(options))
        errors = [odd] if odd else []
    if errors:
        raise InputError("; ".join(errors))
    with timer("outputs"):
        labels = _make_labels(poses2d, rec, offsets)
    summary = _summarise(poses2d, rec, labels.reprojection_error, options)
    summary.calibration, summary.sync, summary.quality = report, sync, warnings
    summary.world = world_note
    summary.pairs = report.pairs if report is not None else []
    summary.timings_s = {**timer.seconds, "total": timer.total()}
    labels.extra["summary_json"] = np.array(json.dumps(summary.as_dict(), default=json_default))
    return LabelResult(labels, rec.rig, summary)


def _make_labels(poses2d: Poses2D, rec: _Reconstruction, offsets: np.ndarray | None) -> Labels:
    """``labels.npz`` of a reconstruction: world and camera-frame poses (NaN where invalid),
    reprojection errors where observed, the rig and the offsets."""
    X = np.where(rec.valid[..., None], rec.points, np.nan)
    observed = poses2d.observed()

    def camera_frame(c: int) -> tuple[np.ndarray, np.ndarray]:
        """Camera ``c``'s poses (F, J, 3) and reprojection errors (F, J), float32."""
        Xc = rec.rig[c].world_to_camera(X)
        d = rec.rig[c].project_camera(Xc) - poses2d.keypoints[c]
        err = np.where(observed[c], np.sqrt(d[..., 0] ** 2 + d[..., 1] ** 2), np.nan)
        return Xc.astype(np.float32), err.astype(np.float32)  # the file's types

    per_camera = thread_map(camera_frame, range(len(rec.rig)))
    Xc = np.stack([p[0] for p in per_camera])
    reproj = np.stack([p[1] for p in per_camera])
    extra: dict[str, Any] = {"rig_json": np.array(rec.rig.to_json())}
    if poses2d.fps is not None:
        extra["fps"] = np.float64(poses2d.fps)
    if offsets is not None:
        extra["offsets"] = np.asarray(offsets, dtype=np.int64)
    return Labels(X, Xc, rec.valid, reproj, extra=extra)
