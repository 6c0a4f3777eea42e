"""A levelled world for self-calibrated rigs (``rig.json``'s ``"world": "levelled"``, formats.md).

Self-calibration leaves the world in camera 0's frame: a person walking lies on their side in
every export and plot. The person knows which way is up (:func:`level_world`):

* **up** is the plane the feet stand on when the person moves about (its normal, fitted to the
  ankles in their lowest frames); else the cameras' horizon when at least three cameras agree on
  one (:func:`camera_horizon`: a tripod keeps a camera's image rows level, so up is the direction
  perpendicular to every camera's x axis, each camera checked against the others; measured on
  the Human3.6M rigs 1.0–1.4° from the lab's vertical, and refused on the Pose2Sim demo, whose
  cameras are rolled by up to 24°); else the
  median direction from the ankles to the shoulders (their midpoints); else (no feet seen: a
  seated person) from the pelvis to the thorax. The shoulders, not the head: the head sits
  forward of the body's axis, and a detector's head is a face (measured,
  ``benchmarks/levelling_bench.py``: over the 456 motion-capture clips of ``../shared`` the
  ankles → head direction is 4.4° from vertical in the median clip, ankles → shoulders 2.8°;
  ``footage_bench.py``: the Pose2Sim demo's standing woman triangulated through the lab's rig);
* **the feet count** only when the ankles are seen in at least half of the frames that show the
  shoulders and the shin keeps its length (interquartile range within a quarter of its median):
  a detector guesses legs hidden under a desk, and those ghosts tilted a seated person's world by
  46° on the caliscope footage;
* **the floor** (z = 0) lies a foot's height (:data:`~epipolarpose.skeleton.FOOT_HEIGHT_FRACTION`
  of the body height) below the ankles in their lowest frames; without feet it is put at the
  lowest joint other than guessed ankles, and the summary says so;
* **the origin** lies on the floor below the person's mean position, and **x** is camera 0's
  viewing direction projected onto the floor.

Units stay those of the rig.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from .camera import Rig
from .skeleton import FOOT_HEIGHT_FRACTION, H36M_JOINTS, body_height

__all__ = ["Levelling", "camera_horizon", "level_world"]

_J = {n: i for i, n in enumerate(H36M_JOINTS)}
_ANKLES = [_J["RFoot"], _J["LFoot"]]
_SHOULDERS = [_J["RShoulder"], _J["LShoulder"]]
_PELVIS, _THORAX = _J["Hip"], _J["Thorax"]
_SHINS = [(_J["RKnee"], _J["RFoot"]), (_J["LKnee"], _J["LFoot"])]

MIN_FEET_FRACTION = 0.5
"""The ankles count as seen when they are in at least this fraction of the frames with shoulders."""
MAX_SHIN_SPREAD = 0.25
"""... and the shin's length varies (interquartile range over median) by at most this much: seen
feet measured 0.02–0.03 on the Pose2Sim demo, guessed ones under a desk 0.7–1.1 (caliscope)."""
MAX_HORIZON_RESIDUAL_DEG = 7.0
"""The cameras' horizon counts when every camera's x axis is within this angle of the plane the
other cameras' x axes define (Human3.6M rigs: at most 5.1° / 6.1° / 6.0°; caliscope: 3.1°; the
Pose2Sim demo: 26°, refused)."""


@dataclass
class Levelling:
    """How the world was levelled.

    Attributes:
        R: (3, 3), t: (3,) the change ``X_new = R @ X_old + t``.
        up: how up was found: ``"floor plane"``, ``"cameras' horizon"``, ``"feet to
            shoulders"``, ``"pelvis to thorax"``.
        floor: ``"feet"`` or ``"lowest joint"`` (no feet seen).
        detail: what the note adds about the choice ("" when nothing).
    """

    R: np.ndarray
    t: np.ndarray
    up: str
    floor: str
    detail: str = ""

    @property
    def note(self) -> str:
        text = f"world levelled: up from the {self.up}"
        if self.detail:
            text += f" ({self.detail})"
        if self.floor != "feet":
            text += "; no feet seen (or only guessed ones), so the floor (z = 0) is put at the lowest joint"
        return text


def _median_direction(v: np.ndarray) -> np.ndarray | None:
    """Unit median (component-wise, then normalised) of the finite unit vectors among v (N, 3)."""
    v = v[np.isfinite(v).all(-1)]
    n = np.linalg.norm(v, axis=-1)
    v = v[n > 0] / n[n > 0, None]
    if len(v) < 5:
        return None
    m = np.median(v, axis=0)
    return m / np.linalg.norm(m) if np.linalg.norm(m) > 0 else None


def _floor_normal(ankles: np.ndarray, up: np.ndarray, height: float) -> np.ndarray | None:
    """Normal of the plane through the ankles in their lowest frames, when they spread over a
    floor patch at least half a body height wide in two directions; None otherwise."""
    a = ankles[np.isfinite(ankles).all(-1)]
    if len(a) < 20 or not np.isfinite(height):
        return None
    h = a @ up
    low = a[h <= np.percentile(h, 30)]
    centred = low - low.mean(0)
    _, s, Vt = np.linalg.svd(centred, full_matrices=False)
    spread = s / np.sqrt(max(len(low), 1))
    if spread[1] < 0.15 * height:  # the feet did not cover a floor patch: the fit would tilt
        return None
    n = Vt[2]
    return n if n @ up > 0 else -n


def _rows_plane(x: np.ndarray) -> np.ndarray | None:
    """Unit normal (3,) of the plane the unit vectors x (N, 3) lie closest to, or None when they
    are too nearly parallel to define one (two vectors: less than 16° apart or than 16° from
    opposite)."""
    _, s, Vt = np.linalg.svd(x)
    return Vt[2] if s[1] >= 0.2 * np.sqrt(len(x) - 1) else None


def camera_horizon(
    rig: Rig, max_residual_deg: float = MAX_HORIZON_RESIDUAL_DEG
) -> tuple[np.ndarray, float] | None:
    """Up from the cameras' image rows: the unit direction most nearly perpendicular to every
    camera's x axis (the smallest right singular vector of their stack), signed against the
    cameras' mean image-down axis.

    Each camera is checked against the others: the angle between its x axis and the plane the
    other cameras' x axes define (so that one rolled camera cannot tilt the fit and pass).

    Args:
        rig: at least three cameras whose x axes are not all parallel.
        max_residual_deg: the largest such angle accepted.
    Returns:
        ``(up (3,), the largest such angle in degrees)``, or None when fewer than three cameras,
        x axes too nearly parallel to define a plane, a camera beyond ``max_residual_deg``, or
        cameras that do not say which way is down (image-down axes that cancel out).
    """
    if len(rig) < 3:
        return None
    R = rig.R  # (C, 3, 3) world -> camera; row 0 is the camera's x axis in the world
    rows = R[:, 0, :]
    up = _rows_plane(rows)
    if up is None:
        return None
    residual = 0.0
    for c in range(len(rig)):
        others = _rows_plane(np.delete(rows, c, axis=0))
        if others is None:  # this camera cannot be checked against the others
            return None
        residual = max(residual, float(np.degrees(np.arcsin(min(abs(rows[c] @ others), 1.0)))))
    if residual > max_residual_deg:
        return None
    down = R[:, 1, :].sum(0) @ up  # image down (row 1) points down
    if abs(down) < 0.1 * len(rig):
        return None
    return (-up if down > 0 else up), residual


def _feet_seen(poses: np.ndarray) -> bool:
    """Whether the ankles of poses (F, 17, 3) are seen often enough and keep the shins' length
    (:data:`MIN_FEET_FRACTION`, :data:`MAX_SHIN_SPREAD`)."""
    finite = np.isfinite(poses).all(-1)
    shoulders = finite[:, _SHOULDERS].any(-1)
    ankles = finite[:, _ANKLES].any(-1) & shoulders
    if ankles.sum() < 5 or ankles.sum() < MIN_FEET_FRACTION * shoulders.sum():
        return False
    for knee, ankle in _SHINS:
        length = np.linalg.norm(poses[:, knee] - poses[:, ankle], axis=-1)
        length = length[np.isfinite(length)]
        if len(length) >= 5:
            q25, q50, q75 = np.percentile(length, [25, 50, 75])
            if q50 <= 0 or (q75 - q25) > MAX_SHIN_SPREAD * q50:
                return False
    return True


def level_world(rig: Rig, poses: np.ndarray) -> Levelling | None:
    """The levelling of a rig's world from the person's poses and, where the feet give no floor
    plane, the cameras' horizon (see the module docstring).

    Args:
        rig: the rig (its world frame).
        poses: (F, 17, 3) Human3.6M poses in that world, NaN where missing.
    Returns:
        a :class:`Levelling`, or None when neither the poses nor the cameras give an up direction.
    """
    poses = np.asarray(poses, dtype=np.float64)
    if poses.ndim != 3 or poses.shape[1:] != (len(H36M_JOINTS), 3) or not np.isfinite(poses).all(-1).any():
        return None
    feet = _feet_seen(poses)
    if not feet:  # guessed legs: the ankles take no part (neither up nor the floor)
        poses = poses.copy()
        poses[:, _ANKLES] = np.nan
    ankles = poses[:, _ANKLES]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # frames without an ankle or a shoulder
        mid_ankle = np.nanmean(ankles, axis=1)
        mid_shoulder = np.nanmean(poses[:, _SHOULDERS], axis=1)
    person, method = _median_direction(mid_shoulder - mid_ankle), "feet to shoulders"
    if person is None:
        person, method = _median_direction(poses[:, _THORAX] - poses[:, _PELVIS]), "pelvis to thorax"
    height = body_height(poses) if feet else np.nan
    normal = None
    if feet and person is not None and np.isfinite(ankles).all(-1).sum() >= 20:
        normal = _floor_normal(ankles.reshape(-1, 3), person, height)
    horizon = camera_horizon(rig)
    detail = ""
    if normal is not None:
        up, method = normal, "floor plane"
    elif horizon is not None:
        up, residual = horizon
        if person is not None and up @ person < -0.5:  # cameras upside down: the person decides
            up = -up
        detail = f"every camera's image rows within {residual:.1f}° of the others' horizon"
        if person is not None:
            detail += f"; the person's axis, {method}, is {_angle_deg(up, person):.0f}° from it"
        method = "cameras' horizon"
    elif person is not None:
        up = person
    else:
        return None
    forward = rig[0].R[2]  # camera 0's viewing direction in the world
    x = forward - (forward @ up) * up
    if np.linalg.norm(x) < 1e-6:  # camera 0 looks straight down: any horizontal axis
        x = np.cross(up, [1.0, 0.0, 0.0]) if abs(up[0]) < 0.9 else np.cross(up, [0.0, 1.0, 0.0])
    x /= np.linalg.norm(x)
    R = np.stack([x, np.cross(up, x), up])
    heights = poses @ up
    if feet:
        floor_h, floor = (
            float(np.nanpercentile(heights[:, _ANKLES], 5)) - FOOT_HEIGHT_FRACTION * height,
            "feet",
        )
        if not np.isfinite(floor_h):
            floor_h = float(np.nanpercentile(heights[:, _ANKLES], 5))
    else:
        floor_h, floor = float(np.nanpercentile(heights, 2)), "lowest joint"
    centre = np.nanmean(poses.reshape(-1, 3), axis=0)
    origin = centre - (centre @ up - floor_h) * up
    return Levelling(R, -R @ origin, method, floor, detail)


def _angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    """Angle (degrees) between two unit vectors (3,)."""
    return float(np.degrees(np.arccos(np.clip(a @ b, -1.0, 1.0))))
