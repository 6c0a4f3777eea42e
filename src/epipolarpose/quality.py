"""Is a labelling run to be trusted? Checks of every camera against the others, with causes.

Real footage fails in ways the geometry alone hides: a single-person detector that follows
another person in one view (two people in the room), a camera that sees the person in a few
frames only, a wrong intrinsics file. Each camera's detections are compared with the joints the
*other* cameras triangulate (:func:`camera_agreement`): a camera that agrees in few frames while
the others agree is named, with the likely cause.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from .camera import Rig
from .errors import InputError
from .formats import Poses2D
from .geometry.observations import normalized_observations, resolve_intrinsics
from .geometry.triangulation import TriangulationOptions, triangulate_robust
from .parallel import thread_map

__all__ = ["CameraAgreement", "camera_agreement", "off_body", "odd_camera", "quality_warnings"]

#: A frame of a camera agrees when its median joint error is within this many times the typical
#: error of the best-agreeing camera (or within ``AGREE_FLOOR_PX``).
AGREE_FACTOR = 4.0
AGREE_FLOOR_PX = 15.0
#: A camera that agrees in fewer frames than this, while the others agree in more than
#: ``GOOD_AGREEMENT``, follows something else (another person).
BAD_AGREEMENT = 0.5
GOOD_AGREEMENT = 0.7
#: A camera that sees the person in fewer frames than this is named.
RARE_VIEW = 0.2
#: A 3D joint farther than this from its frame's median joint, in units of its own typical
#: distance (or the body's, if larger), is not on the person (:func:`off_body`). Measured on 120
#: motion-capture clips of ``../shared/data/mocap`` (kicks, raised arms, CMU 131): at most 2.65;
#: the self-calibrated real footage's stray points (two nearly parallel views, a third one
#: rejected) 4-34.
OFF_BODY = 4.0


def off_body(
    points: np.ndarray, valid: np.ndarray, factor: float = OFF_BODY, min_joints: int = 6
) -> np.ndarray:
    """Valid joints too far from their body to be on it.

    Args:
        points: (F, J, 3); valid: (F, J).
        factor: the limit, :data:`OFF_BODY`.
        min_joints: frames with fewer valid joints are not judged (their median is no body centre).
    Returns:
        (F, J) bool: valid joints farther from their frame's median joint than ``factor`` times
        the larger of the joint's median distance over the sequence and the body's (the median of
        those over the joints).
    """
    P = np.where(valid[..., None], points, np.nan)
    full = valid.all(1)  # frames with every joint: the plain median, several times faster
    centre = np.empty((len(P), 1, 3))
    centre[full] = np.median(P[full], axis=1, keepdims=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN frames and joints
        centre[~full] = np.nanmedian(P[~full], axis=1, keepdims=True)
        r = np.linalg.norm(P - centre, axis=-1)  # (F, J)
        typical = np.nanmedian(r, axis=0)  # (J,)
        scale = np.nanmedian(typical)
    if not np.isfinite(scale):
        return np.zeros(valid.shape, dtype=bool)
    limit = factor * np.fmax(typical, scale)
    judged = valid.sum(1, keepdims=True) >= min_joints
    with np.errstate(invalid="ignore"):
        return valid & judged & (r > limit)


@dataclass
class CameraAgreement:
    """How one camera agrees with the others.

    Attributes:
        name: the camera.
        seen: fraction of frames in which it sees at least 3 joints.
        agree: fraction of those frames (where the others triangulate the joints too) in which
            its joints lie within the agreement threshold of the others' triangulation.
        median_error_px: median over those frames of its median joint error (pixels).
    """

    name: str
    seen: float
    agree: float
    median_error_px: float


def camera_agreement(
    rig: Rig, xn: np.ndarray, w: np.ndarray, max_frames: int = 1000
) -> tuple[list[CameraAgreement], float]:
    """Every camera's detections against the triangulation of the other cameras.

    Args:
        rig: C >= 3 cameras.
        xn: (C, F, J, 2) undistorted normalized detections; w: (C, F, J) weights (0 = missing).
        max_frames: frames used, evenly spread.
    Returns:
        one :class:`CameraAgreement` per camera, and the agreement threshold used (pixels).
    """
    C, F = w.shape[:2]
    frames = np.unique(np.linspace(0, F - 1, min(F, max_frames)).round().astype(np.int64))
    xn, w = xn[:, frames], w[:, frames]
    Rt = np.stack([c.Rt for c in rig.cameras])
    focal = rig.K[:, [0, 1], [0, 1]].mean(1)
    seen = ((w > 0).sum(-1) >= 3).mean(-1)

    def against_others(c: int) -> np.ndarray:
        """Camera ``c``'s median error per frame against the other cameras' triangulation."""
        others = [k for k in range(C) if k != c]
        tri = triangulate_robust(Rt[others], xn[others], w[others], focal[others], TriangulationOptions())
        Xc = tri.points @ Rt[c, :, :3].T + Rt[c, :, 3]
        with np.errstate(invalid="ignore", divide="ignore"):
            proj = Xc[..., :2] / Xc[..., 2:3]
        err = np.linalg.norm(proj - xn[c], axis=-1) * focal[c]
        ok = np.isfinite(err) & (w[c] > 0) & (Xc[..., 2] > 0)
        enough = ok.sum(-1) >= 3
        med = np.full(len(frames), np.nan)
        if enough.any():
            med[enough] = np.nanmedian(np.where(ok[enough], err[enough], np.nan), axis=-1)
        return med

    per_frame = np.full((C, len(frames)), np.nan)
    if C >= 3:
        per_frame = np.stack(thread_map(against_others, range(C)))
    # the typical error of the camera that agrees best (one that follows someone else, or a wrong
    # rig, must not raise the bar for the others)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        medians = np.nanmedian(per_frame, axis=1)
    typical = float(np.nanmin(medians)) if np.isfinite(medians).any() else np.nan
    threshold = max(AGREE_FACTOR * typical, AGREE_FLOOR_PX) if np.isfinite(typical) else np.nan
    out = []
    for c in range(C):
        m = per_frame[c][np.isfinite(per_frame[c])]
        agree = float(np.mean(m <= threshold)) if m.size else float("nan")
        med = float(np.median(m)) if m.size else float("nan")
        out.append(CameraAgreement(rig[c].name, float(seen[c]), agree, med))
    return out, threshold


def quality_warnings(agreement: list[CameraAgreement], threshold_px: float) -> tuple[list[str], list[str]]:
    """Warnings naming cameras and causes, and the errors (cameras no rig can be trusted with).

    Returns:
        ``(warnings, errors)``: errors are for a camera that disagrees with the others in most
        frames while they agree (another person followed, or wrong detections): the labels
        would mix two people and the rig is not to be trusted.
    """
    warnings, errors = [], []
    for a in agreement:
        if a.seen < RARE_VIEW:
            warnings.append(
                f"camera {a.name!r} sees the person in only {a.seen:.0%} of the frames: it constrains the "
                "rig little (move it, or check its detections)"
            )
    agree = np.array([a.agree for a in agreement], dtype=np.float64)
    for k, a in enumerate(agreement):
        others = np.delete(agree, k)
        if not np.isfinite(a.agree) or not np.isfinite(others).any():
            continue
        if a.agree < BAD_AGREEMENT and np.nanmin(others) >= GOOD_AGREEMENT:
            errors.append(
                f"camera {a.name!r} disagrees with the other cameras in {1 - a.agree:.0%} of the frames "
                f"(median error {a.median_error_px:.0f} px, threshold {threshold_px:.0f} px) while they agree "
                "with each other: its detector probably follows another person (or its detections or "
                "intrinsics are wrong). Leave it out (label --cameras) or fix its detections"
            )
        elif a.agree < GOOD_AGREEMENT and np.nanmin(others) >= GOOD_AGREEMENT:
            warnings.append(
                f"camera {a.name!r} agrees with the others in only {a.agree:.0%} of the frames (median "
                f"error {a.median_error_px:.0f} px) while they agree with each other: its detections "
                "are poor (a hard view of the person) or its detector follows another person part of "
                "the time, and the rig may be off by degrees. Check its detections, or leave it out "
                "(label --cameras)"
            )
        elif a.agree < BAD_AGREEMENT:
            warnings.append(
                f"camera {a.name!r} agrees with the others in only {a.agree:.0%} of the frames (median "
                f"error {a.median_error_px:.0f} px), and they disagree among themselves too: the rig is "
                "probably off, or several views follow other people"
            )
    return warnings, errors


#: Leaving out one camera must lower the rig's median reprojection error below this fraction of
#: the full rig's for that camera to be suspected ...
ODD_ERROR_RATIO = 0.75
#: ... and its detections must fit a pose of it (PnP on the others' triangulation) in fewer than
#: this fraction of its observations ...
ODD_FIT = 0.5
#: ... and leaving it out must lower the error clearly more than leaving out any other camera:
#: below this fraction of the second-lowest error. Three cameras always agree better than four,
#: so without this a hard single-person footage is refused. Measured (best / second-best
#: leave-one-out error): single-person real footage (caliscope, 2 sessions x video/static x
#: with/without K) 0.76-1.0; one camera on another person: pose2sim 0.57-0.60, synthetic
#: identity switch in each of 4 cameras 0.45-0.66.
ODD_UNIQUE = 0.7


def odd_camera(
    poses2d: Poses2D, full_error_px: float, calibrate: Callable[[Poses2D], tuple[Rig, float]]
) -> str | None:
    """The camera that does not belong, found by leaving each camera out in turn.

    A camera whose detector follows another person can pull a self-calibrated rig so far that
    the camera checks compare every view with a wrong rig. Each camera is left out in turn and
    the others calibrated (``calibrate`` returns the rig and its median reprojection error); the
    camera whose absence lowers that error most is suspected when it lowers it below
    :data:`ODD_ERROR_RATIO` of ``full_error_px`` and below :data:`ODD_UNIQUE` of the error
    without any other camera, and the camera's own detections cannot be placed on the others'
    triangulation (PnP inliers below :data:`ODD_FIT`).

    Returns:
        an error message naming the camera and the cause, or None.
    """
    names = poses2d.camera_names
    C = len(names)
    if C < 4:
        return None
    results = []
    for c in range(C):
        rest = [n for k, n in enumerate(names) if k != c]
        try:
            rig, err = calibrate(poses2d.take_cameras(rest))
        except InputError:
            continue
        results.append((err, c, rig, rest))
    if not results:
        return None
    results.sort(key=lambda r: r[0])
    err, c, rig, rest = results[0]
    if not err < ODD_ERROR_RATIO * full_error_px:
        return None
    if len(results) > 1 and not err < ODD_UNIQUE * results[1][0]:
        return None  # no single camera stands out
    fit = _pose_fit(poses2d, rig, rest, c, err)
    if fit >= ODD_FIT:
        return None
    return (
        f"camera {names[c]!r} does not belong with the others: without it the rig's median "
        f"reprojection error drops from {full_error_px:.1f} to {err:.1f} px, and its detections fit "
        f"a pose of it in only {fit:.0%} of its observations: its detector probably follows another "
        "person (or its detections are wrong). Leave it out (label --cameras) or fix its detections"
    )


def _pose_fit(poses2d: Poses2D, rig: Rig, rest: list[str], camera: int, error_px: float) -> float:
    """Fraction of a camera's observations within ``max(4 x error_px, 15 px)`` of the others'
    triangulation after placing the camera by PnP (RANSAC) on it."""
    others = poses2d.take_cameras(rest)
    xn, w = normalized_observations(others, rig)
    Rt = np.stack([c.Rt for c in rig.cameras])
    focal = rig.K[:, [0, 1], [0, 1]].mean(1)
    X = triangulate_robust(Rt, xn, w, focal, TriangulationOptions()).points
    own = poses2d.take_cameras([poses2d.camera_names[camera]])
    cams, _ = resolve_intrinsics(own)
    xc, wc = normalized_observations(own, cams)
    ok = np.isfinite(X).all(-1) & (wc[0] > 0)
    if ok.sum() < 12:
        return 0.0
    f = float(cams.K[0, [0, 1], [0, 1]].mean())
    thr = max(4 * error_px, AGREE_FLOOR_PX) / f
    found, _, _, inliers = cv2.solvePnPRansac(
        X[ok].astype(np.float64),
        xc[0][ok].astype(np.float64),
        np.eye(3),
        None,
        reprojectionError=thr,
        iterationsCount=1000,
        flags=cv2.SOLVEPNP_EPNP,
    )
    return 0.0 if not found or inliers is None else len(inliers) / int(ok.sum())
