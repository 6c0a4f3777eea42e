"""Pictures: camera rigs and skeletons in 3D (matplotlib, Agg), 2D overlays (OpenCV), error plots.

The three functions other modules call are deliberately simple:

* :func:`plot_rig` — cameras as frusta with their names (several rigs overlaid to compare them),
  optionally with a pose in the middle;
* :func:`plot_poses3d` — one or more 3D skeletons overlaid in one 3D axes;
* :func:`draw_pose2d` — a 2D skeleton drawn on a copy of an image.

Left limbs are blue, right limbs red, the spine/head grey, everywhere. Figures are returned open;
write them with :func:`save_figure` (atomic) and close them with ``plt.close(fig)``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import cv2  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from .camera import Rig  # noqa: E402
from .io import atomic_path  # noqa: E402
from .skeleton import BONES, H36M_JOINTS, JOINT_SIDE, default_joint_names  # noqa: E402
from .video import write_video  # noqa: E402

#: matplotlib colours by joint side of a bone's child joint
SIDE_COLORS = {"l": "tab:blue", "r": "tab:red", "c": "0.35"}
#: OpenCV BGR colours by side
SIDE_BGR = {"l": (220, 120, 30), "r": (40, 40, 220), "c": (90, 200, 90)}
RIG_COLORS = ("tab:green", "tab:orange", "tab:purple", "tab:brown")


def save_figure(fig: plt.Figure, path: str | os.PathLike, dpi: int = 100) -> Path:
    """Save a figure atomically (format from the suffix) and return the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=path.suffix.lstrip(".") or "png")
    return path


def _set_equal_3d(ax, pts: np.ndarray) -> None:
    pts = pts[np.isfinite(pts).all(-1)]
    if len(pts) == 0:
        return
    lo, hi = pts.min(0), pts.max(0)
    c, r = (lo + hi) / 2, max(float((hi - lo).max()) / 2, 1e-6)
    ax.set_xlim(c[0] - r, c[0] + r)
    ax.set_ylim(c[1] - r, c[1] + r)
    ax.set_zlim(c[2] - r, c[2] + r)
    ax.set_box_aspect((1, 1, 1))


def _draw_skeleton3d(ax, pose: np.ndarray, color=None, alpha: float = 1.0, label: str | None = None) -> None:
    for k, (a, b) in enumerate(BONES):
        p = pose[[a, b]]
        if not np.isfinite(p).all():
            continue
        col = color or SIDE_COLORS[JOINT_SIDE[b]]
        ax.plot(p[:, 0], p[:, 1], p[:, 2], color=col, lw=2, alpha=alpha, label=label if k == 0 else None)


def _frustum(cam, depth: float) -> np.ndarray:
    """(5, 3) world points: centre and the 4 image corners at ``depth`` (rig units)."""
    w, h = cam.image_size
    corners = np.array([[0, 0, 1], [w, 0, 1], [w, h, 1], [0, h, 1]], float)
    rays = corners @ np.linalg.inv(cam.K).T * depth
    return np.vstack([cam.center, cam.camera_to_world(rays)])


def plot_rig(
    rigs: Rig | Sequence[Rig],
    *,
    labels: Sequence[str] | None = None,
    pose: np.ndarray | None = None,
    ax=None,
    frustum_depth: float | None = None,
    title: str | None = None,
) -> plt.Figure:
    """Cameras as frusta (apex at the centre, base at ``frustum_depth``) with their names.

    Args:
        rigs: one rig, or several in the same world frame to compare (e.g. recovered, aligned to
            the ground truth); each gets its own colour and legend entry.
        labels: legend label of every rig (default "rig 0", ...).
        pose: optional (17, 3) or (N, 17, 3) skeleton(s) drawn in the rig's world frame.
        ax: an existing 3D axes to draw into (default: a new figure).
        frustum_depth: frustum length in rig units (default 15 % of the rig's extent).
        title: axes title.
    Returns:
        The figure.
    """
    rigs = [rigs] if isinstance(rigs, Rig) else list(rigs)
    labels = list(labels) if labels is not None else [f"rig {i}" for i in range(len(rigs))]
    if ax is None:
        fig = plt.figure(figsize=(6, 5.5))
        ax = fig.add_subplot(projection="3d")
    fig = ax.figure
    centres = np.vstack([r.centers for r in rigs])
    pts = [centres]
    if pose is not None:
        pts.append(np.asarray(pose, float).reshape(-1, 3))
    ext = np.ptp(np.vstack(pts)[np.isfinite(np.vstack(pts)).all(-1)], axis=0).max()
    depth = frustum_depth or 0.15 * max(ext, 1e-6)
    for r, (rig, lab) in enumerate(zip(rigs, labels)):
        col = RIG_COLORS[r % len(RIG_COLORS)]
        # the first rig (e.g. the truth) wide and translucent, the others thin and dashed on top,
        # so that a rig lying exactly on another stays visible
        style = dict(lw=4.0, alpha=0.35, ls="-") if r == 0 else dict(lw=1.2, alpha=1.0, ls=(0, (4, 2)))
        marker = "o" if r == 0 else "x"
        for i, cam in enumerate(rig):
            f = _frustum(cam, depth)
            pts.append(f)
            for k in range(1, 5):
                ax.plot(*f[[0, k]].T, color=col, **{**style, "lw": style["lw"] * 0.6})
            ax.plot(*f[[1, 2, 3, 4, 1]].T, color=col, **style, label=lab if i == 0 else None)
            ax.scatter(
                *f[0], color=col, marker=marker, s=30 if r == 0 else 40, alpha=style["alpha"] + 0.3 * (r == 0)
            )
            if r == 0:
                ax.text(*f[0], f" {cam.name}", fontsize=8, color="k")
    if pose is not None:
        for p in np.asarray(pose, float).reshape(-1, len(H36M_JOINTS), 3):
            _draw_skeleton3d(ax, p)
    _set_equal_3d(ax, np.vstack(pts))
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_zlabel("z")
    if len(rigs) > 1 or labels != ["rig 0"]:
        ax.legend(loc="upper left", fontsize=8)
    if title:
        ax.set_title(title)
    return fig


def plot_poses3d(
    poses: np.ndarray,
    *,
    labels: Sequence[str] | None = None,
    colors: Sequence[str] | None = None,
    ax=None,
    title: str | None = None,
    elev: float = 15.0,
    azim: float = -70.0,
) -> plt.Figure:
    """One or more 3D skeletons overlaid in one axes (equal aspect).

    Args:
        poses: (17, 3) or (N, 17, 3) joints (any units; NaN joints are skipped).
        labels: legend label per skeleton (e.g. ``["prediction", "ground truth"]``).
        colors: one colour per skeleton; default colours by side (left blue, right red) for the
            first and grey shades for the others.
        ax: an existing 3D axes (default: a new figure).
        title: axes title.
        elev, azim: view angles in degrees.
    Returns:
        The figure.
    """
    P = np.asarray(poses, float).reshape(-1, len(H36M_JOINTS), 3)
    if ax is None:
        fig = plt.figure(figsize=(5, 5))
        ax = fig.add_subplot(projection="3d")
    for i, p in enumerate(P):
        col = colors[i] if colors is not None else (None if i == 0 else str(0.3 + 0.4 * i / len(P)))
        _draw_skeleton3d(ax, p, col, 1.0 if i == 0 else 0.7, labels[i] if labels else None)
    _set_equal_3d(ax, P.reshape(-1, 3))
    ax.view_init(elev=elev, azim=azim)
    if labels:
        ax.legend(loc="upper left", fontsize=8)
    if title:
        ax.set_title(title)
    return ax.figure


def draw_pose2d(
    image: np.ndarray,
    keypoints: np.ndarray,
    scores: np.ndarray | None = None,
    *,
    color: tuple[int, int, int] | None = None,
    thickness: int = 2,
    min_score: float = 0.0,
    marker: str = "circle",
) -> np.ndarray:
    """Draw a 2D skeleton on a copy of ``image``.

    Args:
        image: (H, W, 3) uint8 BGR (or (H, W) gray, converted to BGR).
        keypoints: (17, 2) pixels; NaN joints are skipped.
        scores: (17,) confidences; joints with score <= ``min_score`` are skipped.
        color: one BGR colour for everything (default: by side, left blue / right red).
        thickness: line thickness in pixels.
        marker: ``"circle"`` (filled dots, e.g. detections) or ``"cross"`` (e.g. reprojections).
    Returns:
        The new (H, W, 3) uint8 image.
    """
    img = np.ascontiguousarray(image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)).copy()
    kp = np.asarray(keypoints, float)
    # finite but far off (a reprojection near a camera's plane) does not fit OpenCV's int32
    ok = np.isfinite(kp).all(-1) & (np.abs(np.nan_to_num(kp)) < 1e6).all(-1)
    if scores is not None:
        ok &= np.asarray(scores) > min_score
    for a, b in BONES:
        if ok[a] and ok[b]:
            col = color or SIDE_BGR[JOINT_SIDE[b]]
            p, q = tuple(np.round(kp[a]).astype(int)), tuple(np.round(kp[b]).astype(int))
            cv2.line(img, p, q, col, thickness, cv2.LINE_AA)
    for j in np.nonzero(ok)[0]:
        col = color or SIDE_BGR[JOINT_SIDE[j]]
        p = tuple(np.round(kp[j]).astype(int))
        if marker == "cross":
            cv2.drawMarker(img, p, col, cv2.MARKER_CROSS, 3 * thickness + 4, thickness)
        else:
            cv2.circle(img, p, thickness + 1, col, -1, cv2.LINE_AA)
    return img


def plot_reprojection_errors(
    reprojection_error: np.ndarray, camera_names: Sequence[str] | None = None
) -> plt.Figure:
    """Per-camera and per-joint reprojection errors (median bar, 90th percentile whisker).

    Args:
        reprojection_error: (C, F, J) pixels, NaN where not observed.
        camera_names: C names.
    Returns:
        The figure (two panels).
    """
    e = np.asarray(reprojection_error, float)
    C, F, J = e.shape
    names = list(camera_names) if camera_names is not None else [f"cam{c}" for c in range(C)]
    jn = default_joint_names(J)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), gridspec_kw={"width_ratios": [max(C, 2), J]})
    for ax, flat, lab in (
        (axes[0], e.transpose(0, 1, 2).reshape(C, -1), names),
        (axes[1], e.transpose(2, 0, 1).reshape(J, -1), jn),
    ):
        with np.errstate(all="ignore"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                med = np.nanmedian(flat, axis=1)
                p90 = np.nanpercentile(flat, 90, axis=1)
        x = np.arange(len(lab))
        ax.bar(x, np.nan_to_num(med), color="tab:blue", label="median")
        ax.errorbar(
            x,
            np.nan_to_num(med),
            yerr=[np.zeros_like(med), np.nan_to_num(p90 - med)],
            fmt="none",
            ecolor="k",
            capsize=3,
            label="90th percentile",
        )
        tilt = len(lab) > 6 or max(len(n) for n in lab) > 5
        ax.set_xticks(x, lab, rotation=45 if tilt else 0, ha="right" if tilt else "center")
        ax.set_ylabel("reprojection error (px)")
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_title("per camera")
    axes[1].set_title("per joint")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_sync_costs(
    candidates: np.ndarray,
    cost: np.ndarray,
    offsets: np.ndarray,
    camera_names: Sequence[str],
    reference: int = 0,
    epipolar_offsets: np.ndarray | None = None,
) -> plt.Figure:
    """The time synchronisation's evidence: every camera's epipolar cost against the reference at
    every candidate offset (a sharp dip: a clear offset; a flat curve: little evidence), the offset
    kept (solid line) and, where it differs, the 2D tracks' own (dashed).

    Args:
        candidates: (K,) offsets tried, frames.
        cost: (C, K) cost, pixels (NaN where not scored; the reference's row is ignored).
        offsets: (C,) offsets kept; epipolar_offsets: (C,) the 2D tracks' offsets, or None.
        camera_names: C names; reference: the reference camera's index.
    Returns:
        The figure.
    """
    cands = np.asarray(candidates)
    cost = np.asarray(cost, dtype=float)
    fig, ax = plt.subplots(figsize=(8, 3.6))
    for c, name in enumerate(camera_names):
        if c == reference or not np.isfinite(cost[c]).any():
            continue
        line = ax.plot(cands, cost[c], marker=".", ms=3, lw=1, label=f"{name}: {int(offsets[c]):+d}")[0]
        ax.axvline(int(offsets[c]), color=line.get_color(), lw=1.2)
        if epipolar_offsets is not None and epipolar_offsets[c] != offsets[c]:
            ax.axvline(int(epipolar_offsets[c]), color=line.get_color(), lw=1, ls="--")
    ax.set_xlabel(f"offset against {camera_names[reference]} (frames)")
    ax.set_ylabel("epipolar cost (px)")
    ax.set_title("time synchronisation: solid = offset kept, dashed = the 2D tracks' own where different")
    ax.title.set_fontsize(9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    return fig


@dataclass(frozen=True)
class _AnimationView:
    """What every frame of :func:`animate_poses3d` shares: the number of frames of the sequence
    (for the turning view), the half extent ``r`` of the axes, the title, the picture size and the
    axis units."""

    num_frames: int
    r: float
    title: str | None
    size_px: int
    unit: str


def _render_frames(view: _AnimationView, jobs: list[tuple[np.ndarray, np.ndarray, int]]) -> list[np.ndarray]:
    """RGB pictures (size_px, size_px, 3) of ``(pose (17, 3), centre (3,), frame index)`` jobs,
    drawn on one figure whose bone lines move from frame to frame (clearing and re-plotting the
    axes cost as much as drawing them)."""
    fig = plt.figure(figsize=(view.size_px / 100, view.size_px / 100), dpi=100)
    ax = fig.add_subplot(projection="3d")
    ax.set_box_aspect((1, 1, 1))
    ax.set_xlabel("x" + view.unit, fontsize=7)
    ax.set_ylabel("y" + view.unit, fontsize=7)
    ax.set_zlabel("z (up)" + view.unit, fontsize=7)
    ax.tick_params(labelsize=6)
    bones = [ax.plot([], [], [], color=SIDE_COLORS[JOINT_SIDE[b]], lw=2)[0] for _, b in BONES]
    r, out = view.r, []
    for pose, c, i in jobs:
        for line, (a, b) in zip(bones, BONES):
            seg = pose[[a, b]]
            line.set_data_3d(*(seg.T if np.isfinite(seg).all() else np.empty((3, 0))))
        ax.set_xlim(c[0] - r, c[0] + r)
        ax.set_ylim(c[1] - r, c[1] + r)
        ax.set_zlim(c[2] - r, c[2] + r)
        ax.view_init(elev=15, azim=-70 + 60 * i / max(view.num_frames - 1, 1))
        ax.set_title(f"{view.title + ' ' if view.title else ''}frame {i}", fontsize=9)
        fig.canvas.draw()
        out.append(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy())
    plt.close(fig)
    return out


def _render_in_processes(view: _AnimationView, jobs: list) -> list[np.ndarray]:
    """:func:`_render_frames` split over forked processes, one per core (matplotlib holds the GIL,
    so threads would not help); in this process where there is one core, no ``fork`` (macOS,
    Windows) or the pool fails."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    from .parallel import available_cores

    n = min(available_cores(), len(jobs) // 8)
    if n < 2 or "fork" not in mp.get_all_start_methods():
        return _render_frames(view, jobs)
    parts = [jobs[k::n] for k in range(n)]  # interleaved: equal work
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # fork with BLAS threads (3.12+)
            with ProcessPoolExecutor(n, mp_context=mp.get_context("fork")) as pool:
                done = list(pool.map(_render_frames, [view] * n, parts))
    except Exception:  # a broken pool (no /dev/shm, killed worker): draw here
        return _render_frames(view, jobs)
    frames: list[np.ndarray] = [None] * len(jobs)  # type: ignore[list-item]
    for k, part in enumerate(done):
        frames[k::n] = part
    return frames


def animate_poses3d(
    poses: np.ndarray,
    path: str | os.PathLike,
    *,
    fps: float = 10.0,
    max_frames: int = 60,
    title: str | None = None,
    size_px: int = 480,
    up: str = "z",
    units: str | None = None,
) -> Path:
    """Write an animated 3D skeleton (GIF via Pillow, or MP4 via OpenCV), atomically.

    The view follows the person (each frame centred on its pelvis, a fixed extent of about one
    body height), so the skeleton fills the picture wherever it walks; the axes keep their ticks
    (world coordinates) and labels.

    Args:
        poses: (F, 17, 3) joints; at most ``max_frames`` evenly spaced frames are drawn.
        path: ``.gif`` or ``.mp4``.
        fps: playback frame rate.
        title: figure title.
        size_px: side of the square frames.
        up: the world's up axis: ``"z"`` (levelled worlds, the example rigs) or ``"-y"`` (a camera
            frame, e.g. a self-calibrated rig that is not levelled), drawn upright either way.
        units: axis label units (e.g. ``"mm"``).
    Returns:
        The path.
    """
    P = np.asarray(poses, float)
    if up == "-y":  # camera frame (x right, y down, z forward) -> z up
        P = np.stack([P[..., 0], P[..., 2], -P[..., 1]], -1)
    elif up != "z":
        raise ValueError(f"up must be 'z' or '-y', got {up!r}")
    idx = np.unique(np.linspace(0, len(P) - 1, min(max_frames, len(P))).round().astype(int))
    shown = P[idx]
    with warnings.catch_warnings(), np.errstate(invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        centre = np.nanmedian(shown, axis=1)  # (n, 3) per drawn frame
        height = np.nanpercentile(np.nanmax(shown[..., 2], -1) - np.nanmin(shown[..., 2], -1), 90)
    fill = np.nanmedian(centre, axis=0) if np.isfinite(centre).any() else np.zeros(3)
    centre = np.where(np.isfinite(centre), centre, fill)
    r = 0.6 * height if np.isfinite(height) and height > 0 else 1.0
    view = _AnimationView(len(P), r, title, size_px, f" ({units})" if units else "")
    jobs = [(P[i], centre[n], int(i)) for n, i in enumerate(idx)]
    frames = _render_in_processes(view, jobs)
    path = Path(path)
    if path.suffix.lower() == ".mp4":
        write_video(path, np.stack(frames)[..., ::-1], fps=fps)
        return path
    # 64 colours per frame (flat plot colours); the octree quantizer is 3x faster than median cut
    ims = [Image.fromarray(f).quantize(colors=64, method=Image.Quantize.FASTOCTREE) for f in frames]
    with atomic_path(path, suffix=".gif") as tmp:
        ims[0].save(tmp, format="GIF", save_all=True, append_images=ims[1:], duration=int(1000 / fps), loop=0)
    return path
