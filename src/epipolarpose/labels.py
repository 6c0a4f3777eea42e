"""The pseudo-label pipeline: multi-view 2D detections -> (self-calibrated rig) -> 3D labels.

:func:`label_poses` is what ``epipolarpose label`` runs:

* ``mode="sequence"`` (default, static cameras): :func:`~epipolarpose.geometry.calibration.calibrate`
  then robust triangulation of every frame
  (:func:`~epipolarpose.geometry.triangulation.triangulate_robust`);
* ``mode="per-frame"``: the paper's recipe
  (:func:`~epipolarpose.geometry.calibration.per_frame_reconstruct`), the rig being the static rig
  that best explains its labels (PnP of every camera on the pooled labels);
* a known ``rig`` skips calibration (the paper's "R/t" setting).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .camera import Rig
from .errors import InputError
from .formats import Labels, Poses2D
from .geometry import single_threaded
from .geometry.calibration import (
    calibrate,
    check_observations,
    metric_scale,
    normalized_observations,
    per_frame_reconstruct,
    resolve_intrinsics,
)
from .geometry.triangulation import reprojection_errors, triangulate_robust


@dataclass
class LabelResult:
    """Output of :func:`label_poses`: ``labels`` (formats.md ``labels.npz``), the ``rig`` used or
    found, and a ``summary`` dict (see :func:`label_poses`)."""

    labels: Labels
    rig: Rig
    summary: dict[str, Any]


def apply_offsets(poses2d: Poses2D, offsets: np.ndarray) -> Poses2D:
    """Re-index every camera's frames by its offset: output frame ``i`` of camera ``c`` is input
    frame ``i - offsets[c]`` (so a camera whose frame ``k`` shows reference time ``k + o`` is
    aligned to reference time). Frames falling outside are missing (NaN, score 0)."""
    offsets = np.asarray(offsets, dtype=np.int64).reshape(-1)
    C, F = poses2d.num_cameras, poses2d.num_frames
    if offsets.shape != (C,):
        raise InputError(f"offsets: {offsets.size} values given for {C} cameras")
    kp = np.full_like(poses2d.keypoints, np.nan)
    sc = np.zeros_like(poses2d.scores)
    for c, o in enumerate(offsets):
        dst = np.arange(F)
        src = dst - o
        ok = (src >= 0) & (src < F)
        kp[c, dst[ok]] = poses2d.keypoints[c, src[ok]]
        sc[c, dst[ok]] = poses2d.scores[c, src[ok]]
    return replace(poses2d, keypoints=kp, scores=sc, extra=dict(poses2d.extra))


def _check_rig(rig: Rig, poses2d: Poses2D, what: str = "rig") -> None:
    if len(rig) != poses2d.num_cameras:
        raise InputError(
            f"{what} has {len(rig)} cameras but the detections have {poses2d.num_cameras} "
            f"({', '.join(poses2d.camera_names)}); they must match one to one, in order"
        )


def _rig_from_labels(
    base: Rig, poses: np.ndarray, xn: np.ndarray, w: np.ndarray, max_points: int = 5000
) -> Rig:
    """Static rig (camera 0 = world) that best explains camera-0-frame poses: PnP (RANSAC) of every
    other camera on the pooled (pose, detection) pairs."""
    import cv2

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
    return Rig(cams, units="arbitrary", name="per-frame")


@single_threaded
def label_poses(
    poses2d: Poses2D,
    rig: Rig | None = None,
    intrinsics: Rig | None = None,
    mode: str = "sequence",
    subject_height_mm: float | None = None,
    offsets: np.ndarray | None = None,
    progress: bool = True,
    refine_focal: bool | None = None,
    calibration_kwargs: dict[str, Any] | None = None,
) -> LabelResult:
    """Turn multi-view 2D detections into 3D pseudo-labels.

    Args:
        poses2d: (C, F, J) detections.
        rig: known cameras (skip calibration); must have C cameras.
        intrinsics: ``K``/``dist`` per camera (a ``K.json`` rig), overriding those of ``poses2d``.
        mode: ``"sequence"`` (self-calibration of a static rig, default) or ``"per-frame"`` (the paper).
        subject_height_mm: make a self-calibrated rig metric (mm).
        offsets: (C,) frames to add to each camera's index (time synchronisation); applied first
            and recorded in ``labels.extra["offsets"]``.
        progress: progress bars on stderr.
        refine_focal: refine focal lengths (default: only when no ``K`` is known).
        calibration_kwargs: extra arguments of :func:`~epipolarpose.geometry.calibration.calibrate`.
    Returns:
        :class:`LabelResult`. ``summary`` holds ``cameras`` (per camera: name, reprojection error
        median and 90th percentile px over observed joints, number observed), ``pairs`` (inlier rates per pair), ``coverage``
        (fraction of valid joints), ``valid_frames``, ``swaps_undone``, ``views_rejected``,
        ``timings_s`` per stage, ``mode``, ``units``.
    """
    t_start = time.perf_counter()
    if mode not in ("sequence", "per-frame"):
        raise InputError(f"mode must be 'sequence' or 'per-frame', got {mode!r}")
    summary: dict[str, Any] = {"mode": mode}
    if offsets is not None:
        poses2d = apply_offsets(poses2d, offsets)
    if rig is not None:
        _check_rig(rig, poses2d)
    if intrinsics is not None:
        _check_rig(intrinsics, poses2d, "intrinsics")
    timings: dict[str, float] = {}
    C, F = poses2d.num_cameras, poses2d.num_frames
    swaps_undone = 0
    views_rejected = 0

    if mode == "sequence":
        if rig is None:
            t0 = time.perf_counter()
            rig, rep = calibrate(
                poses2d, intrinsics=intrinsics, refine_focal=refine_focal,
                subject_height_mm=subject_height_mm, **(calibration_kwargs or {}),
            )  # fmt: skip
            timings["calibration"] = time.perf_counter() - t0
            summary["calibration"] = rep.as_dict()
            summary["pairs"] = [
                {k: e[k] for k in ("pair", "correspondences", "inlier_rate", "used", "skipped") if k in e}
                for e in rep.pairs
            ]
        t0 = time.perf_counter()
        xn, w = normalized_observations(poses2d, rig)
        check_observations(poses2d, w)
        Rt = np.stack([c.Rt for c in rig.cameras])
        tri = triangulate_robust(Rt, xn, w, rig.K[:, [0, 1], [0, 1]].mean(1), progress=progress)
        X, valid = tri.points, tri.valid
        swaps_undone = int(tri.swapped.sum())
        views_rejected = int(((w > 0) & ~tri.used & valid[None]).sum())
        summary["rejection_threshold_px"] = float(np.median(tri.threshold_px))
        timings["triangulation"] = time.perf_counter() - t0
    else:
        t0 = time.perf_counter()
        res = per_frame_reconstruct(poses2d, intrinsics=intrinsics, rig=rig, progress=progress)
        timings["per_frame"] = time.perf_counter() - t0
        X, valid = res.poses, res.valid
        if rig is None:
            base, _ = resolve_intrinsics(poses2d, intrinsics)
            xn, w = normalized_observations(poses2d, base)
            rig = _rig_from_labels(base, X, xn, w)
            if subject_height_mm is not None:
                s = metric_scale(X, subject_height_mm)
                rig = rig.transformed(np.eye(3), np.zeros(3), scale=s)
                rig.units = "mm"
                X = X * s
        else:
            # express in the known rig's world frame
            X = rig[0].camera_to_world(X)

    t0 = time.perf_counter()
    X = np.where(valid[..., None], X, np.nan)
    reproj = reprojection_errors(rig, X, np.asarray(poses2d.keypoints, dtype=np.float64))
    obs = poses2d.observed()
    reproj = np.where(obs, reproj, np.nan)
    Xc = rig.world_to_camera(X)
    extra: dict[str, Any] = {"rig_json": np.array(rig.to_json())}
    if offsets is not None:
        extra["offsets"] = np.asarray(offsets, dtype=np.int64)
    labels = Labels(X, Xc, valid, reproj, extra=extra)
    timings["outputs"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_start

    cams = []
    for c in range(C):
        e = reproj[c][valid & obs[c]]
        cams.append(
            {
                "name": rig[c].name,
                "reprojection_px_median": float(np.median(e)) if e.size else float("nan"),
                "reprojection_px_p90": float(np.percentile(e, 90)) if e.size else float("nan"),
                "observed": int(obs[c].sum()),
            }
        )
    summary.update(
        cameras=cams,
        coverage=float(valid.mean()),
        valid_frames=float(valid.all(-1).mean()),
        swaps_undone=swaps_undone,
        views_rejected=views_rejected,
        units=rig.units,
        frames=F,
        timings_s=timings,
        frames_per_s=F / max(timings["total"], 1e-9),
    )
    if "pairs" not in summary:
        summary["pairs"] = []
    return LabelResult(labels, rig, summary)


def format_summary(summary: dict[str, Any]) -> str:
    """A plain-text table of :func:`label_poses`'s summary (printed by the CLI)."""
    lines = [f"{'camera':<16}{'reproj median px':>18}{'reproj p90 px':>15}{'observed':>10}"]
    for c in summary["cameras"]:
        lines.append(
            f"{c['name']:<16}{c['reprojection_px_median']:>18.2f}{c['reprojection_px_p90']:>15.2f}{c['observed']:>10d}"
        )
    if summary.get("pairs"):
        lines.append("")
        lines.append(f"{'pair':<10}{'correspondences':>16}{'inlier rate':>13}  status")
        for p in summary["pairs"]:
            status = "used" if p.get("used") else p.get("skipped", "rejected by rotation averaging")
            rate = p.get("inlier_rate")
            rate_s = f"{rate:>13.1%}" if rate is not None else f"{'-':>13}"
            lines.append(f"{p['pair'][0]}-{p['pair'][1]:<8}{p['correspondences']:>16d}{rate_s}  {status}")
    lines.append("")
    lines.append(
        f"coverage {summary['coverage']:.1%} of joints valid ({summary['valid_frames']:.1%} of frames complete), "
        f"{summary['swaps_undone']} left/right swaps undone, {summary['views_rejected']} views rejected"
    )
    t = summary["timings_s"]
    stages = ", ".join(f"{k} {v:.2f}s" for k, v in t.items() if k != "total")
    lines.append(
        f"time {t['total']:.2f} s for {summary['frames']} frames ({stages}); units: {summary['units']}"
    )
    for w in summary.get("calibration", {}).get("warnings", []):
        lines.append(f"warning: {w}")
    return "\n".join(lines)
