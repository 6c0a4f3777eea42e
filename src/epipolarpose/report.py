"""An HTML report of a labelling run: rig, reprojection errors, overlays, animation, warnings.

``write_report(labels, rig, out_dir, poses2d=..., videos=...)`` writes ``out_dir/index.html`` and
its images (``rig.png``, ``errors.png``, ``overlay_<k>.png``, ``skeleton.gif``, and ``sync.png`` for
labels made with ``--sync auto``). The whole folder
is built in a temporary folder next to ``out_dir`` and moved into place at the end, so a failed
run leaves no half-written report.

Calibration quality warnings (:func:`quality_warnings`):

* low inlier rate: under 80 % of the joint observations were triangulated and accepted, or a
  camera's median reprojection error exceeds 10 px;
* short baseline: seen from the subject, a camera is within 10° of every other camera (depth is
  then poorly constrained);
* too little motion: the joints move less than 5 % of the body size (std over time), or the
  subject covers under 2 % of a camera's image (self-calibration needs joints spread over the
  views and over depth);
* few frames: under 30 frames with a valid pose;
* a camera that rarely sees the person: detections in under half of the frames (its calibration
  and its share of the labels rest on the few frames it has).

The warnings the labelling run itself gave (``labels.npz``'s ``summary_json``, see
:func:`labelling_warnings`) come first on the page, so a report never says "no warnings" about a
run that had some.
"""

from __future__ import annotations

import html
import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from .camera import Rig
from .errors import InputError
from .exports import labels_rig
from .formats import Labels, Poses2D
from .io import atomic_folder
from .video import iter_frames

__all__ = [
    "CameraErrors",
    "ReportOptions",
    "camera_errors",
    "calibration_notes",
    "labelling_summary",
    "labelling_warnings",
    "quality_warnings",
    "report_labels_file",
    "world_note",
    "write_report",
]


def _nanmedian(a, axis=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(a, axis=axis)


def labelling_summary(labels: Labels) -> dict | None:
    """The labelling run's summary stored in ``labels.npz`` (``summary_json``, the JSON of
    :meth:`~epipolarpose.labelling.LabelSummary.as_dict`), or None when absent or unreadable."""
    if "summary_json" not in labels.extra:
        return None
    try:
        d = json.loads(str(labels.extra["summary_json"]))
    except (ValueError, TypeError):
        return None
    return d if isinstance(d, dict) else None


def labelling_warnings(labels: Labels) -> list[str]:
    """The warnings ``epipolarpose label`` printed, from ``summary_json``: its ``warnings`` list,
    else those of its ``calibration`` and ``sync`` parts."""
    d = labelling_summary(labels)
    if d is None:
        return []
    if isinstance(d.get("warnings"), list):
        found = d["warnings"]
    else:
        found = list((d.get("calibration") or {}).get("warnings") or [])
        found += list((d.get("sync") or {}).get("warnings") or [])
    return [str(w).removeprefix("warning: ") for w in found]


def _frames_seen(labels: Labels, poses2d: Poses2D | None) -> np.ndarray:
    """(C,) fraction of the frames in which each camera detected the person (any joint): from
    the detections when given, else from the reprojection errors (observed and triangulated)."""
    if poses2d is not None and poses2d.num_cameras == labels.reprojection_error.shape[0]:
        return poses2d.observed().any(-1).mean(-1)
    return np.isfinite(labels.reprojection_error).any(-1).mean(-1)


def calibration_notes(labels: Labels) -> list[str]:
    """What the self-calibration said about itself (``summary_json``'s ``calibration.notes``: the
    rig precision bound, the focal lengths it estimated); empty for a known rig."""
    d = labelling_summary(labels) or {}
    notes = (d.get("calibration") or {}).get("notes") or []
    return [str(n) for n in notes] if isinstance(notes, list) else []


def world_note(labels: Labels) -> str | None:
    """How the labelling run levelled its world (``summary_json``'s ``world``: which way up came
    from, e.g. the cameras' horizon, and where the floor was put); None for a known rig."""
    note = (labelling_summary(labels) or {}).get("world")
    return str(note) if note else None


def quality_warnings(labels: Labels, rig: Rig, poses2d: Poses2D | None = None) -> list[str]:
    """Calibration/labelling quality warnings (see the module docstring); empty when all is well."""
    out: list[str] = []
    X = np.where(labels.valid[..., None], labels.poses3d_world, np.nan).astype(np.float64)
    err = labels.reprojection_error.astype(np.float64)
    observed = np.isfinite(err)
    rate = labels.valid.mean() if labels.valid.size else 0.0
    if rate < 0.8:
        out.append(f"low inlier rate: only {100 * rate:.0f}% of the joints were triangulated and accepted")
    for c, cam in enumerate(rig):
        med = _nanmedian(err[c]) if observed[c].any() else np.nan
        if np.isfinite(med) and med > 10:
            out.append(f"camera {cam.name}: median reprojection error {med:.1f} px (> 10 px)")
    seen = _frames_seen(labels, poses2d)
    for c, cam in enumerate(rig):
        if 0 < seen[c] < 0.5:
            out.append(
                f"camera {cam.name} sees the person in only {100 * seen[c]:.0f}% of the frames: its "
                "calibration rests on those frames alone (is it placed to see the whole action?)"
            )
    good_frames = int((labels.valid.sum(-1) >= labels.valid.shape[1] // 2).sum())
    if good_frames < 30:
        out.append(f"few frames: only {good_frames} frames have a valid pose (30+ recommended)")
    subject = _nanmedian(X.reshape(-1, 3), axis=0)
    if np.isfinite(subject).all() and len(rig) > 1:
        rays = rig.centers - subject
        rays /= np.linalg.norm(rays, axis=-1, keepdims=True)
        ang = np.degrees(np.arccos(np.clip(rays @ rays.T, -1, 1)))
        np.fill_diagonal(ang, 0)
        for c, cam in enumerate(rig):
            if ang[c].max() < 10:
                out.append(
                    f"short baseline: camera {cam.name} is within {ang[c].max():.1f}° of every other "
                    "camera as seen from the subject (depth is poorly constrained; spread the cameras)"
                )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            body = _nanmedian(np.nanmax(np.linalg.norm(X - X[:, :1], axis=-1), axis=-1))
            motion = _nanmedian(np.nanstd(X - _nanmedian(X, axis=0), axis=0).mean(-1))
        if np.isfinite(body) and body > 0 and np.isfinite(motion) and motion < 0.05 * body:
            out.append(
                f"too little motion: joints move {100 * motion / body:.1f}% of the body size; "
                "self-calibration needs the person to move (walk, turn, raise the arms)"
            )
    if poses2d is not None:
        kp = np.where((poses2d.scores > 0)[..., None], poses2d.keypoints, np.nan)
        for c in range(poses2d.num_cameras):
            pts = kp[c].reshape(-1, 2)
            pts = pts[np.isfinite(pts).all(-1)]
            if len(pts) == 0:
                out.append(f"camera {poses2d.camera_names[c]}: no detections")
                continue
            w, h = poses2d.image_size[c]
            frac = np.prod(np.ptp(pts, axis=0)) / (w * h)
            if frac < 0.02:
                out.append(
                    f"small joint spread: in camera {poses2d.camera_names[c]} the person covers only "
                    f"{100 * frac:.1f}% of the image over the whole video"
                )
    return out


def _sample_frames(labels: Labels, n: int) -> list[tuple[int, str]]:
    """Up to ``n`` labels frames to overlay, by mean reprojection error (over cameras and joints):
    the largest first, then the median, then frames at evenly spaced error quantiles; each with
    what it shows. Frames without any error are not candidates (unless no frame has one)."""
    err = labels.reprojection_error.astype(np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        per_frame = np.nanmean(err.transpose(1, 0, 2).reshape(err.shape[1], -1), axis=1)
    cand = np.flatnonzero(np.isfinite(per_frame))
    if cand.size == 0:
        F = labels.valid.shape[0]
        return [(int(k), "") for k in np.linspace(0, F - 1, min(F, max(n, 1))).round().astype(int)]
    order = cand[np.argsort(per_frame[cand], kind="stable")]  # ascending error
    picks = [(order[-1], "largest error"), (order[(len(order) - 1) // 2], "median error")]
    for q in np.linspace(0.25, 0.9, max(n - 2, 0)):
        picks.append((order[int(round(q * (len(order) - 1)))], f"{100 * q:.0f}th-percentile error"))
    out, seen = [], set()
    for k, what in picks[: max(n, 1)]:
        if int(k) not in seen:
            seen.add(int(k))
            out.append((int(k), f"{what}: {per_frame[k]:.1f} px mean reprojection error"))
    return out


def _crop_to_person(img: np.ndarray, pts: np.ndarray, pad: float = 0.25, min_side: int = 96) -> np.ndarray:
    """``img`` cropped to the box around the finite points ``pts`` (N, 2) (padded by ``pad`` of its
    size, at least ``min_side`` px); the whole image without points."""
    pts = pts[np.isfinite(pts).all(-1)]
    h, w = img.shape[:2]
    pts = pts[(pts[:, 0] > -w) & (pts[:, 0] < 2 * w) & (pts[:, 1] > -h) & (pts[:, 1] < 2 * h)]
    if len(pts) == 0:
        return img
    lo, hi = pts.min(0), pts.max(0)
    c, half = (lo + hi) / 2, np.maximum((hi - lo) * (0.5 + pad), min_side / 2)
    half[:] = half.max()  # square
    x0, y0 = np.clip(np.floor(c - half), 0, [w - 1, h - 1]).astype(int)
    x1, y1 = np.clip(np.ceil(c + half), [x0 + 1, y0 + 1], [w, h]).astype(int)
    return img[y0:y1, x0:x1]


def _frame_maps(labels: Labels, C: int) -> tuple[np.ndarray, int]:
    off = np.asarray(labels.extra.get("offsets", np.zeros(C, int))).astype(int).reshape(-1)
    if off.shape != (C,):
        off = np.zeros(C, int)
    first = int(labels.extra.get("first_frame", 0))
    return off, first


def _overlay_tiles(
    labels: Labels,
    rig: Rig,
    k: int,
    *,
    poses2d: Poses2D | None,
    videos: Sequence[Path] | None,
    tile_w: int = 320,
) -> np.ndarray:
    """One row of tiles (one per camera) for labels frame ``k``: detections (dots, by side) and
    reprojections (white crosses) on the video frame or a grey canvas."""
    from .viz import draw_pose2d

    C = len(rig)
    off, first = _frame_maps(labels, C)
    tiles = []
    X = np.where(labels.valid[k][:, None], labels.poses3d_world[k], np.nan)
    for c, cam in enumerate(rig):
        w, h = cam.image_size
        fi = first + k - off[c]  # this camera's frame index in poses2d / the video
        img = None
        if videos:
            start = int(poses2d.extra.get("frame_start", 0)) if poses2d is not None else 0
            stride = int(poses2d.extra.get("frame_stride", 1)) if poses2d is not None else 1
            vf = start + fi * stride
            if vf >= 0:
                for _, frame in iter_frames(videos[c], vf, vf + 1, check_timestamps=False):
                    img = frame
        if img is None:
            img = np.full((h, w, 3), 60, np.uint8)
        person = [cam.project(X)]
        scale = max(1, round(max(w, h) / 1000))
        if poses2d is not None and 0 <= fi < poses2d.num_frames:
            img = draw_pose2d(img, poses2d.keypoints[c, fi], poses2d.scores[c, fi], thickness=2 * scale)
            person.append(np.where((poses2d.scores[c, fi] > 0)[:, None], poses2d.keypoints[c, fi], np.nan))
        img = draw_pose2d(img, person[0], color=(255, 255, 255), thickness=scale, marker="cross")
        img = _crop_to_person(img, np.concatenate(person))
        s = tile_w / img.shape[1]
        img = cv2.resize(img, (tile_w, max(1, int(round(img.shape[0] * s)))), interpolation=cv2.INTER_AREA)
        cv2.putText(img, f"{cam.name} #{fi}", (5, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 255, 255), 1)
        tiles.append(img)
    H = max(t.shape[0] for t in tiles)
    tiles = [np.pad(t, ((0, H - t.shape[0]), (0, 4), (0, 0))) for t in tiles]
    return np.concatenate(tiles, axis=1)


_CSS = """body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
img{max-width:100%;border:1px solid #ccc}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
.warn{background:#fff3cd;border:1px solid #e0c060;padding:.5em 1em}.ok{background:#e6f4ea;padding:.5em 1em}"""


@dataclass(frozen=True)
class ReportOptions:
    """How :func:`write_report` presents a run.

    Attributes:
        num_samples: number of overlay frames.
        title: page title.
        fps: animation frame rate (default: the poses' fps / 3, or 10).
    """

    num_samples: int = 3
    title: str = "epipolarpose report"
    fps: float | None = None

    def __post_init__(self) -> None:
        if self.num_samples < 0:
            raise InputError(f"--samples must be >= 0, got {self.num_samples}")
        if self.fps is not None and not self.fps > 0:
            raise InputError(f"the animation's fps must be positive, got {self.fps}")


@dataclass(frozen=True)
class CameraErrors:
    """One camera's row of the report: its reprojection errors and time offset.

    Attributes:
        name: camera name.
        observations: number of observed joints with a reprojection error.
        median_px, p90_px: median and 90th percentile reprojection error (None without observations).
        offset: frames added to this camera's index (time synchronisation).
        confidence: the synchronisation's confidence, when the labels record one.
    """

    name: str
    observations: int
    median_px: float | None
    p90_px: float | None
    offset: int
    confidence: float | None


def camera_errors(labels: Labels, rig: Rig, poses2d: Poses2D | None = None) -> list[CameraErrors]:
    """Per-camera reprojection errors (``labels.reprojection_error`` (C, F, J) px, over the joints
    observed and triangulated) and time offsets.

    ``observations`` counts the joints the camera detected, as ``epipolarpose label`` does: from
    the labelling summary stored in the labels, else from ``poses2d``, else the joints with a
    reprojection error (observed *and* triangulated; a few fewer).
    """
    off, _ = _frame_maps(labels, len(rig))
    conf = labels.extra.get("sync_confidence")
    summary = labelling_summary(labels) or {}
    counted = [c.get("observed") for c in summary.get("cameras", []) if isinstance(c, dict)]
    if len(counted) != len(rig) or not all(isinstance(n, int) for n in counted):
        counted = None
    rows = []
    for c, cam in enumerate(rig):
        e = labels.reprojection_error[c][np.isfinite(labels.reprojection_error[c])]
        if counted is not None:
            n = counted[c]
        elif poses2d is not None and poses2d.num_cameras == len(rig):
            n = int(poses2d.observed()[c].sum())
        else:
            n = int(e.size)
        rows.append(
            CameraErrors(
                name=cam.name,
                observations=n,
                median_px=float(np.median(e)) if e.size else None,
                p90_px=float(np.percentile(e, 90)) if e.size else None,
                offset=int(off[c]),
                confidence=float(conf[c]) if conf is not None else None,
            )
        )
    return rows


def write_report(
    labels: Labels,
    rig: Rig,
    out_dir: str | os.PathLike,
    *,
    poses2d: Poses2D | None = None,
    videos: Sequence[str | os.PathLike] | None = None,
    options: ReportOptions = ReportOptions(),
    progress: bool = False,
) -> Path:
    """Write the HTML report (see the module docstring) and return ``out_dir/index.html``.

    Args:
        labels: the 3D poses (``labels.npz``), in ``rig``'s world frame.
        rig: the (recovered) cameras.
        out_dir: report folder (replaced if it holds an earlier report; must otherwise be empty).
        poses2d: the detections, drawn on the overlays and used for the joint-spread check.
            Detections of more cameras than the rig's (labels made with ``--cameras``) are
            matched to the rig's cameras by name.
        videos: one video/image folder per camera for the overlays' backgrounds (of the rig's
            cameras, or of all the detections' cameras when those are matched by name).
        options: number of overlays, title, animation frame rate.
        progress: a progress bar on stderr (one step per picture group).
    """
    poses2d, videos = _rig_cameras(rig, poses2d, videos)
    video_paths = _check_report_inputs(labels, rig, out_dir, poses2d, videos)
    out_dir = Path(out_dir)
    bar = tqdm(total=4, desc="report", unit="step", disable=not progress or None)
    with atomic_folder(out_dir) as tmp, bar:
        bar.set_postfix_str("rig, errors, animation")
        _write_figures(tmp, labels, rig, poses2d, options.fps)
        bar.update()
        bar.set_postfix_str("overlays")
        overlays = _write_overlays(tmp, labels, rig, poses2d, video_paths, options.num_samples)
        bar.update()
        bar.set_postfix_str("checks")
        warn = labelling_warnings(labels)
        warn += [w for w in quality_warnings(labels, rig, poses2d) if w not in warn]
        bar.update()
        page = _html_page(
            labels,
            rig,
            camera_errors(labels, rig, poses2d),
            overlays,
            warn,
            options.title,
            (tmp / "sync.png").is_file(),
        )
        (tmp / "index.html").write_text(page)
        bar.update()
    return out_dir / "index.html"


def _rig_cameras(
    rig: Rig, poses2d: Poses2D | None, videos: Sequence[str | os.PathLike] | None
) -> tuple[Poses2D | None, Sequence[str | os.PathLike] | None]:
    """The detections (and videos, when one is given per detected camera) of the rig's cameras,
    matched by name, where the detections have more cameras than the rig (labels made from a
    subset of the cameras); unchanged otherwise."""
    if poses2d is None or poses2d.num_cameras <= len(rig) or not set(rig.names) <= set(poses2d.camera_names):
        return poses2d, videos
    index = [poses2d.camera_names.index(n) for n in rig.names]
    if videos is not None and len(videos) == poses2d.num_cameras:
        videos = [videos[i] for i in index]
    return poses2d.take_cameras(rig.names), videos


def _check_report_inputs(
    labels: Labels,
    rig: Rig,
    out_dir: str | os.PathLike,
    poses2d: Poses2D | None,
    videos: Sequence[str | os.PathLike] | None,
) -> list[Path] | None:
    """:class:`InputError` for inputs that do not fit together; the video paths (None without)."""
    C = len(rig)
    if labels.poses3d_camera.shape[0] != C:
        raise InputError(f"labels have {labels.poses3d_camera.shape[0]} cameras but the rig has {C}")
    if videos is not None and len(videos) not in (0, C):
        raise InputError(f"--videos: {len(videos)} given for {C} cameras")
    if poses2d is not None and poses2d.num_cameras != C:
        raise InputError(f"poses2d has {poses2d.num_cameras} cameras but the rig has {C}")
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / "index.html").exists():
        raise InputError(f"{out_dir}: exists and is not an earlier report; choose an empty folder")
    return [Path(v) for v in videos] if videos else None


def _write_figures(
    folder: Path, labels: Labels, rig: Rig, poses2d: Poses2D | None, fps: float | None
) -> None:
    """``rig.png`` (the rig and the best-labelled pose), ``errors.png``, ``skeleton.gif`` and, for
    labels made with ``--sync auto``, ``sync.png`` (:func:`~.viz.plot_sync_costs`)."""
    import matplotlib.pyplot as plt

    from .viz import animate_poses3d, plot_reprojection_errors, plot_rig, plot_sync_costs, save_figure

    X = np.where(labels.valid[..., None], labels.poses3d_world, np.nan)
    k_mid = int(np.argmax(labels.valid.sum(-1)))
    fig = plot_rig(rig, labels=["recovered rig"], pose=X[k_mid], title="cameras and a pose")
    save_figure(fig, folder / "rig.png")
    plt.close(fig)
    fig = plot_reprojection_errors(labels.reprojection_error, rig.names)
    save_figure(fig, folder / "errors.png")
    plt.close(fig)
    sync = (labelling_summary(labels) or {}).get("sync") or {}
    if sync.get("cost_px") and len(sync["cost_px"]) == len(rig):
        cost = np.array([[np.nan if v is None else v for v in row] for row in sync["cost_px"]], dtype=float)
        epi = sync.get("epipolar_offsets")
        fig = plot_sync_costs(
            np.asarray(sync["candidates"]),
            cost,
            np.asarray(sync["offsets"]),
            rig.names,
            int(sync.get("reference", 0)),
            None if epi is None else np.asarray(epi),
        )
        save_figure(fig, folder / "sync.png")
        plt.close(fig)
    src_fps = fps or (float(poses2d.fps) / 3 if poses2d is not None and poses2d.fps else 10.0)
    up = "-y" if rig.world == "camera0" else "z"
    animate_poses3d(X, folder / "skeleton.gif", fps=src_fps, up=up, units=rig.units)


def _write_overlays(
    folder: Path,
    labels: Labels,
    rig: Rig,
    poses2d: Poses2D | None,
    videos: list[Path] | None,
    num_samples: int,
) -> list[tuple[str, int, str]]:
    """``overlay_<i>.png`` of the frames with the largest and the median reprojection error (and
    more quantiles), cropped to the person; returns ``(file name, labels frame, what it shows)``."""
    overlays = []
    for i, (k, what) in enumerate(_sample_frames(labels, num_samples)):
        img = _overlay_tiles(labels, rig, k, poses2d=poses2d, videos=videos)
        name = f"overlay_{i}.png"
        if not cv2.imwrite(str(folder / name), img):
            raise InputError(f"cannot write {folder / name}")
        overlays.append((name, k, what))
    return overlays


def _html_page(
    labels: Labels,
    rig: Rig,
    cameras: list[CameraErrors],
    overlays: list[tuple[str, int, str]],
    warn: list[str],
    title: str,
    sync_figure: bool = False,
) -> str:
    """The report's ``index.html``."""
    rows = []
    for cam in cameras:
        med = f"{cam.median_px:.2f}" if cam.median_px is not None else "–"
        p90 = f"{cam.p90_px:.2f}" if cam.p90_px is not None else "–"
        sync = f"{cam.offset:+d}" + (f" ({cam.confidence:.2f})" if cam.confidence is not None else "")
        rows.append(
            f"<tr><td style='text-align:left'>{html.escape(cam.name)}</td><td>{cam.observations}</td>"
            f"<td>{med}</td><td>{p90}</td><td>{sync}</td></tr>"
        )
    F, J = labels.valid.shape
    warn_html = (
        "<div class='warn'><b>Warnings</b><ul>"
        + "".join(f"<li>{html.escape(w)}</li>" for w in warn)
        + "</ul></div>"
        if warn
        else "<div class='ok'>No warnings: neither the labelling run nor the report's checks found a problem.</div>"
    )
    notes = [*calibration_notes(labels), *filter(None, [world_note(labels)])]
    notes_html = "".join(f"<p>{html.escape(n)}</p>" for n in notes)
    ov_html = "".join(
        f"<p>frame {k}{' — ' + html.escape(what) if what else ''}</p><img src='{n}' alt='overlay of frame {k}'>"
        for n, k, what in overlays
    )
    sync_html = (
        "<h2>Time synchronisation</h2><p>Each camera's epipolar cost against the reference at every "
        "offset tried: a sharp dip is a clear offset, a flat curve little evidence.</p>"
        "<img src='sync.png' alt='time synchronisation cost per camera and offset'>"
        if sync_figure
        else ""
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{_CSS}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p>{F} frames, {J} joints, {len(rig)} cameras; rig units: {html.escape(rig.units)};
{100 * labels.valid.mean():.1f}% of the joints valid.</p>
{warn_html}
<h2>Cameras</h2>
<table><tr><th>camera</th><th>observed joints</th><th>median error (px)</th><th>90th pct (px)</th>
<th>time offset (confidence)</th></tr>{"".join(rows)}</table>
{sync_html}<h2>Recovered rig</h2>{notes_html}<img src="rig.png" alt="recovered camera rig in 3D">
<h2>Reprojection errors</h2><img src="errors.png" alt="per-camera and per-joint reprojection errors">
<h2>Detections vs reprojections</h2>
<p>Dots: 2D detections (left blue, right red); white crosses: the 3D pose reprojected.</p>
{ov_html}
<h2>3D skeleton</h2><img src="skeleton.gif" alt="animated 3D skeleton">
</body></html>
"""


def report_labels_file(
    labels_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    rig: str | os.PathLike | None = None,
    poses2d: str | os.PathLike | None = None,
    videos: Sequence[str | os.PathLike] | None = None,
    num_samples: int = 3,
    progress: bool = False,
) -> Path:
    """:func:`write_report` of the files ``epipolarpose report`` takes; returns ``index.html``.

    Args:
        labels_path: labels.npz.
        out_dir: report folder.
        rig: rig.json of the labels (default: the rig stored in labels.npz).
        poses2d: poses2d.npz drawn on the overlays.
        videos: one video/image folder per camera for the overlays.
        num_samples: number of overlay frames.
        progress: a progress bar on stderr.
    """
    labels = Labels.load(labels_path)
    r = labels_rig(labels, rig, source=str(labels_path))
    if r is None:
        raise InputError(f"{labels_path}: holds no rig; pass --rig rig.json")
    p2d = Poses2D.load(poses2d) if poses2d is not None else None
    for v in videos or []:
        if not Path(v).exists():
            raise InputError(f"{v}: no such video or folder")
    return write_report(
        labels, r, out_dir, poses2d=p2d, videos=videos, options=ReportOptions(num_samples), progress=progress
    )
