"""A levelled world for self-calibrated rigs (``rig.json``'s ``"world": "levelled"``, formats.md).

Self-calibration leaves the world in camera 0's frame: a person walking lies on their side in
every export and plot. The person knows which way is up (:func:`level_world`):

* **up** is the plane the feet stand on when the person moves about (its normal, fitted to the
  ankles in their lowest frames), else the median direction from the ankles to the shoulders
  (their midpoints), else (no feet seen: a seated person) from the pelvis to the thorax. The
  shoulders, not the head: the head sits forward of the body's axis, and a detector's head is a
  face (measured, ``benchmarks/levelling_bench.py``: over the 456 motion-capture clips of
  ``../shared`` the ankles → head direction is 4.4° from vertical in the median clip, ankles →
  shoulders 2.8°; ``footage_bench.py``: the Pose2Sim demo's standing woman triangulated through
  the lab's rig);
* **the floor** (z = 0) lies a foot's height (:data:`~epipolarpose.skeleton.FOOT_HEIGHT_FRACTION`
  of the body height) below the ankles in their lowest frames; without feet it is put at the
  lowest joint, and the summary says so;
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

__all__ = ["Levelling", "level_world"]

_J = {n: i for i, n in enumerate(H36M_JOINTS)}
_ANKLES = [_J["RFoot"], _J["LFoot"]]
_SHOULDERS = [_J["RShoulder"], _J["LShoulder"]]
_PELVIS, _THORAX = _J["Hip"], _J["Thorax"]


@dataclass
class Levelling:
    """How the world was levelled.

    Attributes:
        R: (3, 3), t: (3,) the change ``X_new = R @ X_old + t``.
        up: how up was found: ``"floor plane"``, ``"feet to shoulders"``, ``"pelvis to thorax"``.
        floor: ``"feet"`` or ``"lowest joint"`` (no feet seen).
    """

    R: np.ndarray
    t: np.ndarray
    up: str
    floor: str

    @property
    def note(self) -> str:
        text = f"world levelled: up from the {self.up}"
        if self.floor != "feet":
            text += "; no feet seen, so the floor (z = 0) is put at the lowest joint"
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


def level_world(rig: Rig, poses: np.ndarray) -> Levelling | None:
    """The levelling of a rig's world from the person's poses (see the module docstring).

    Args:
        rig: the rig (its world frame).
        poses: (F, 17, 3) Human3.6M poses in that world, NaN where missing.
    Returns:
        a :class:`Levelling`, or None when the poses give no up direction.
    """
    poses = np.asarray(poses, dtype=np.float64)
    if poses.ndim != 3 or poses.shape[1:] != (len(H36M_JOINTS), 3):
        return None
    ankles = poses[:, _ANKLES]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # frames without an ankle or a shoulder
        mid_ankle = np.nanmean(ankles, axis=1)
        mid_shoulder = np.nanmean(poses[:, _SHOULDERS], axis=1)
    up, method = _median_direction(mid_shoulder - mid_ankle), "feet to shoulders"
    if up is None:
        up, method = _median_direction(poses[:, _THORAX] - poses[:, _PELVIS]), "pelvis to thorax"
    if up is None:
        return None
    height = body_height(poses)
    feet = np.isfinite(ankles).all(-1).sum() >= 20
    if feet:
        normal = _floor_normal(ankles.reshape(-1, 3), up, height)
        if normal is not None:
            up, method = normal, "floor plane"
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
    return Levelling(R, -R @ origin, method, floor)
