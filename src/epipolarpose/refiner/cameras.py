"""Random virtual cameras that view motion capture (the refiner's training views)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation

from ..errors import InputError
from ..skeleton import NUM_JOINTS, ROOT

__all__ = ["VirtualCameras"]


@dataclass
class VirtualCameras:
    """Ranges of the random cameras that view motion capture (angles in degrees, mm, pixels).

    A camera sits at a random azimuth/elevation/distance from the person's root and looks at it;
    it is rolled a little and then turned so the person appears at a random place in an image of
    ``image_size`` pixels with focal length ``focal`` (keeping a body of ``body_radius`` inside
    the image). Off-centre people are seen obliquely, so focal length and distance change the
    root-relative pose in the camera frame, not only its projection.
    """

    azimuth: tuple[float, float] = (-180.0, 180.0)
    elevation: tuple[float, float] = (-10.0, 45.0)
    distance: tuple[float, float] = (2500.0, 7000.0)
    focal: tuple[float, float] = (600.0, 1600.0)
    roll: float = 5.0
    image_size: float = 1000.0
    body_radius: float = 1000.0

    @classmethod
    def matching(cls, poses_camera: np.ndarray, margin_deg: float = 5.0) -> VirtualCameras:
        """Cameras like the ones that saw ``poses_camera`` (N, 17, 3), camera frame, mm.

        A refiner learns a pose prior *in the camera frame*, so views it never meets (a camera
        45° above the person, for a rig at head height) spend its capacity and, with a
        pose-dependent error model, corrupt poses far from those the model was fitted on. This
        reads the viewing geometry off example poses (a validation split's ground truth):

        * **elevation**: per pose, how far the camera looks down on the pelvis→thorax axis
          (``-asin`` of its depth component; a person standing upright seen from above tilts
          away). The range is the interquartile range widened by ``margin_deg`` on each side,
          since people also lean by themselves (the mocap supplies that part again).
        * **distance**: the 5th–95th percentile of the root depth, when the poses are absolute
          (a median root depth of at least 500 mm); otherwise the default range is kept.

        Azimuth stays uniform (people turn), focal length and roll keep their defaults
        (:func:`dataclasses.replace` the result to change any field).
        """
        p = np.asarray(poses_camera, dtype=np.float64)
        if p.ndim != 3 or p.shape[1:] != (NUM_JOINTS, 3):
            raise InputError(f"matching cameras needs poses of shape (N, {NUM_JOINTS}, 3), got {p.shape}")
        p = p[np.isfinite(p).all((1, 2))]
        if len(p) < 10:
            raise InputError(f"matching cameras needs at least 10 finite poses, got {len(p)}")
        axis = p[:, 8] - p[:, ROOT]  # pelvis -> thorax
        axis /= np.maximum(np.linalg.norm(axis, axis=-1, keepdims=True), 1e-9)
        elev = -np.degrees(np.arcsin(np.clip(axis[:, 2], -1.0, 1.0)))
        q1, q3 = np.percentile(elev, [25, 75])
        fields: dict[str, Any] = {
            "elevation": (float(max(q1 - margin_deg, -89.0)), float(min(q3 + margin_deg, 89.0)))
        }
        depth = p[:, ROOT, 2]
        if np.median(depth) >= 500.0:
            lo, hi = np.percentile(depth, [5, 95])
            fields["distance"] = (float(max(lo, 500.0)), float(max(hi, lo + 1.0)))
        return cls(**fields)

    def describe(self) -> str:
        """One line for the user: the elevation (degrees) and distance (m) ranges."""
        return (
            f"elevation {self.elevation[0]:.0f} to {self.elevation[1]:.0f} deg, "
            f"distance {self.distance[0] / 1000:.1f} to {self.distance[1] / 1000:.1f} m"
        )

    def rotations(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """(n, 3, 3) world -> camera rotations (OpenCV: x right, y down, z forward), world z-up."""
        az = np.deg2rad(rng.uniform(*self.azimuth, n))
        el = np.deg2rad(rng.uniform(*self.elevation, n))
        dist = rng.uniform(*self.distance, n)
        f = rng.uniform(*self.focal, n)
        # look-at: camera on a sphere around the root, optical axis towards it
        z = -np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], -1)
        x = np.cross(z, np.array([0.0, 0.0, 1.0]))
        x /= np.linalg.norm(x, axis=-1, keepdims=True)
        y = np.cross(z, x)
        R_look = np.stack([x, y, z], -2)
        R_roll = Rotation.from_rotvec(
            np.deg2rad(rng.uniform(-self.roll, self.roll, n))[:, None] * [0, 0, 1]
        ).as_matrix()
        # place the root off-axis (within the image, keeping the body inside)
        half = np.maximum(np.arctan(0.5 * self.image_size / f) - np.arctan(self.body_radius / dist), 0.0)
        xy = np.tan(half)[:, None] * rng.uniform(-1, 1, (n, 2))
        r = np.concatenate([xy, np.ones((n, 1))], -1)
        r /= np.linalg.norm(r, axis=-1, keepdims=True)
        axis = np.stack([-r[:, 1], r[:, 0], np.zeros(n)], -1)  # (0, 0, 1) x r
        sin = np.linalg.norm(axis, axis=-1, keepdims=True)
        rotvec = np.where(sin > 1e-12, axis / np.maximum(sin, 1e-12), 0.0) * np.arctan2(sin, r[:, 2:3])
        R_off = Rotation.from_rotvec(rotvec).as_matrix()
        return R_off @ R_roll @ R_look

    def view(self, poses_world: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """World poses (N, J, 3) -> root-relative camera-frame poses (N, J, 3), one random camera
        per pose (repeat the input for several cameras per pose)."""
        poses_world = np.asarray(poses_world, dtype=np.float64)
        R = self.rotations(len(poses_world), rng)
        rel = poses_world - poses_world[:, ROOT : ROOT + 1]
        return np.einsum("nij,nkj->nki", R, rel)
