"""Pinhole cameras with OpenCV distortion, and camera rigs (``rig.json``).

Conventions (OpenCV, as in ``docs/formats.md``): ``x_cam = R @ x_world + t``; pixel
``u = fx * x'' + cx``, ``v = fy * y'' + cy`` where ``(x'', y'')`` are the normalized coordinates
``(x/z, y/z)`` after the distortion ``dist = [k1, k2, p1, p2, k3]``. All functions are batched
over leading dimensions: points are ``(..., 3)`` and pixels ``(..., 2)``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .errors import InputError
from .io import save_json
from .parallel import thread_map


def distort_normalized(xy: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """Apply OpenCV's 5-parameter distortion to normalized coordinates, (..., 2) -> (..., 2)."""
    k1, k2, p1, p2, k3 = np.asarray(dist, dtype=np.float64).reshape(-1)[:5]
    x, y = xy[..., 0], xy[..., 1]
    r2 = x * x + y * y
    radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    return np.stack([xd, yd], axis=-1)


def undistort_normalized(uv: np.ndarray, K: np.ndarray, dist: np.ndarray | None) -> np.ndarray:
    """Pixels (distorted) -> undistorted normalized coordinates, (..., 2) -> (..., 2).

    Uses ``cv2.undistortPointsIter`` (20 iterations, 1e-10 tolerance) so that the result inverts
    :func:`distort_normalized` to well under 0.01 px for the distortion of real lenses. NaNs stay NaN.
    """
    uv = np.asarray(uv, dtype=np.float64)
    shape = uv.shape
    flat = uv.reshape(-1, 2)
    out = np.full_like(flat, np.nan)
    ok = np.isfinite(flat).all(-1)
    if ok.any():
        K = np.asarray(K, dtype=np.float64)
        if dist is None or not np.any(dist):
            xy = (flat[ok] - K[:2, 2]) / np.diag(K)[:2]
            # account for skew if present
            xy[:, 0] -= K[0, 1] * xy[:, 1] / K[0, 0]
            out[ok] = xy
        else:
            crit = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 20, 1e-10)
            src, d = flat[ok].reshape(-1, 1, 2), np.asarray(dist, np.float64)
            if hasattr(cv2, "undistortPointsIter"):
                res = cv2.undistortPointsIter(src, K, d, None, None, crit)
            else:  # OpenCV 5 folded the iterative variant into undistortPoints(..., criteria)
                res = cv2.undistortPoints(src, K, d, None, None, None, crit)
            out[ok] = res.reshape(-1, 2)
    return out.reshape(shape)


def check_rotation(R: np.ndarray, what: str = "R", tol: float = 1e-3) -> np.ndarray:
    """Return ``R`` as a float (3, 3) array, or raise :class:`InputError` if it is not a rotation."""
    R = np.asarray(R, dtype=np.float64)
    if R.shape != (3, 3) or not np.all(np.isfinite(R)):
        raise InputError(f"{what} must be a finite 3x3 matrix, got shape {R.shape}")
    err = np.abs(R @ R.T - np.eye(3)).max()
    if err > tol or np.linalg.det(R) < 0:
        raise InputError(
            f"{what} is not a rotation matrix (|R Rᵀ - I| = {err:.2g}, det = {np.linalg.det(R):.3f})"
        )
    return R


@dataclass
class Camera:
    """A pinhole camera with OpenCV distortion.

    Attributes:
        K: (3, 3) intrinsics in pixels.
        R: (3, 3) world -> camera rotation.
        t: (3,) world -> camera translation (rig units).
        dist: (5,) OpenCV distortion ``[k1, k2, p1, p2, k3]``.
        image_size: (width, height) in pixels.
        name: camera name.
    """

    K: np.ndarray
    R: np.ndarray = field(default_factory=lambda: np.eye(3))
    t: np.ndarray = field(default_factory=lambda: np.zeros(3))
    dist: np.ndarray = field(default_factory=lambda: np.zeros(5))
    image_size: tuple[int, int] = (1000, 1000)
    name: str = "cam0"

    def __post_init__(self) -> None:
        self.K = np.asarray(self.K, dtype=np.float64).reshape(3, 3)
        self.R = np.asarray(self.R, dtype=np.float64).reshape(3, 3)
        self.t = np.asarray(self.t, dtype=np.float64).reshape(3)
        d = np.zeros(5)
        given = np.asarray(self.dist, dtype=np.float64).reshape(-1)[:5]
        d[: given.size] = given
        self.dist = d
        self.image_size = (int(self.image_size[0]), int(self.image_size[1]))

    # --- geometry -------------------------------------------------------------------------
    @property
    def center(self) -> np.ndarray:
        """(3,) camera centre in world coordinates, ``-Rᵀ t``."""
        return -self.R.T @ self.t

    @property
    def P(self) -> np.ndarray:
        """(3, 4) projection matrix ``K [R | t]`` (ignores distortion)."""
        return self.K @ np.hstack([self.R, self.t[:, None]])

    @property
    def Rt(self) -> np.ndarray:
        """(3, 4) extrinsic matrix ``[R | t]``."""
        return np.hstack([self.R, self.t[:, None]])

    def world_to_camera(self, X: np.ndarray) -> np.ndarray:
        """World points (..., 3) -> camera-frame points (..., 3)."""
        return np.asarray(X, dtype=np.float64) @ self.R.T + self.t

    def camera_to_world(self, X: np.ndarray) -> np.ndarray:
        """Camera-frame points (..., 3) -> world points (..., 3)."""
        return (np.asarray(X, dtype=np.float64) - self.t) @ self.R

    def project(self, X: np.ndarray, distort: bool = True) -> np.ndarray:
        """World points (..., 3) -> pixels (..., 2), with lens distortion unless ``distort=False``.

        Points at or behind the camera plane give NaN.
        """
        return self.project_camera(self.world_to_camera(X), distort=distort)

    def project_camera(self, Xc: np.ndarray, distort: bool = True) -> np.ndarray:
        """Camera-frame points (..., 3) -> pixels (..., 2)."""
        Xc = np.asarray(Xc, dtype=np.float64)
        z = Xc[..., 2:3]
        with np.errstate(invalid="ignore", divide="ignore"):
            xy = np.where(z > 1e-9, Xc[..., :2] / z, np.nan)
        if distort and np.any(self.dist):
            xy = distort_normalized(xy, self.dist)
        return self.normalized_to_pixels(xy)

    def normalized_to_pixels(self, xy: np.ndarray) -> np.ndarray:
        """Normalized (undistorted-model output) coordinates (..., 2) -> pixels (..., 2)."""
        K = self.K
        u = K[0, 0] * xy[..., 0] + K[0, 1] * xy[..., 1] + K[0, 2]
        v = K[1, 1] * xy[..., 1] + K[1, 2]
        return np.stack([u, v], axis=-1)

    def undistort(self, uv: np.ndarray) -> np.ndarray:
        """Pixels (..., 2) -> undistorted normalized coordinates (..., 2)."""
        return undistort_normalized(uv, self.K, self.dist)

    def undistort_pixels(self, uv: np.ndarray) -> np.ndarray:
        """Pixels (..., 2) -> undistorted pixels (..., 2) (same K, no distortion)."""
        return self.normalized_to_pixels(self.undistort(uv))

    # --- (de)serialisation ----------------------------------------------------------------
    def to_dict(self, extrinsics: bool = True) -> dict[str, Any]:
        d: dict[str, Any] = {
            "name": self.name,
            "image_size": list(self.image_size),
            "K": self.K.tolist(),
            "dist": self.dist.tolist(),
        }
        if extrinsics:
            d["R"] = self.R.tolist()
            d["t"] = self.t.tolist()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], index: int = 0, require_extrinsics: bool = True) -> Camera:
        """Build from a ``rig.json`` camera entry; raise :class:`InputError` naming what is wrong."""
        name = str(d.get("name", f"cam{index}"))
        where = f"camera {index} ({name!r})"
        if "K" not in d:
            raise InputError(f"{where}: missing key 'K'")
        K = np.asarray(d["K"], dtype=np.float64)
        if K.shape != (3, 3) or not np.all(np.isfinite(K)) or K[0, 0] <= 0 or K[1, 1] <= 0:
            raise InputError(f"{where}: 'K' must be a 3x3 matrix with positive focal lengths")
        has_rt = "R" in d and "t" in d
        if require_extrinsics and not has_rt:
            missing = "R" if "R" not in d else "t"
            raise InputError(f"{where}: missing key {missing!r}")
        R = check_rotation(d["R"], f"{where}: 'R'") if has_rt else np.eye(3)
        t = np.asarray(d["t"], dtype=np.float64).reshape(-1) if has_rt else np.zeros(3)
        if t.shape != (3,) or not np.all(np.isfinite(t)):
            raise InputError(f"{where}: 't' must be 3 finite numbers")
        dist = np.asarray(d.get("dist", np.zeros(5)), dtype=np.float64).reshape(-1)
        if dist.size > 5 and np.any(dist[5:]):
            raise InputError(f"{where}: only 5 distortion coefficients [k1,k2,p1,p2,k3] are supported")
        size = d.get("image_size")
        if size is None:
            size = (int(round(2 * K[0, 2])), int(round(2 * K[1, 2])))
        return cls(K=K, R=R, t=t, dist=dist[:5], image_size=tuple(size), name=name)


def check_image_size(calibrated: Sequence[int], size: Sequence[int], what: str, view: str) -> None:
    """:class:`InputError` when a camera calibrated for images of size ``calibrated`` (width,
    height; ``what`` names it, e.g. ``"rig camera 'cam0'"``) is applied to the detections of
    ``view`` whose images are ``size``: another camera, resolution or orientation, whose ``K``
    does not apply. Sizes within 10 % pass (a ``rig.json`` camera without ``image_size`` is taken
    as twice its principal point); an unknown size (0) passes."""
    w, h = (int(v) for v in size)
    cw, ch = (int(v) for v in calibrated)
    if min(w, h, cw, ch) <= 0:
        return
    if abs(cw - w) > 0.1 * w or abs(ch - h) > 0.1 * h:
        raise InputError(
            f"{what} is for {cw}x{ch} images but the detections of {view!r} are {w}x{h}: its K does "
            "not apply (another camera, resolution or orientation?)"
        )


def default_intrinsics(image_size: tuple[int, int], fov_deg: float = 60.0) -> np.ndarray:
    """The documented default ``K`` when none is known: principal point at the image centre and a
    focal length giving a ``fov_deg`` field of view across the image's **longer** side (60° by
    default, typical of webcams, phones at 1x and the Human3.6M cameras' ~47°-49°); bundle
    adjustment refines it. The longer side, because a camera's field of view is that of its
    sensor: a phone filming in portrait (1080 x 1920) has the same lens as in landscape, and a
    60° across the 1080 px width would make its focal length half the truth (measured on the
    portrait videos of ``pose2sim_multiperson``: 60° across 1920 px is within 1 % of the lab's
    focal lengths).

    Returns (3, 3).
    """
    w, h = image_size
    f = 0.5 * max(w, h) / np.tan(np.deg2rad(fov_deg) / 2)
    return np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1.0]])


@dataclass
class Rig:
    """Cameras that watch the same scene, in one world frame.

    ``units`` is ``"mm"`` for metric rigs and ``"arbitrary"`` for self-calibrated rigs whose scale
    is unknown. ``world`` (``rig.json``'s optional ``"world"`` key, kept in ``extra``) says what
    the world frame is: ``"levelled"`` (z up, floor at z = 0, origin under the person, see
    formats.md; self-calibrated rigs), ``"camera0"`` (camera 0's frame, first baseline of unit
    length: a rig not levelled), ``None`` (a rig given by the user, e.g. a lab calibration).
    """

    cameras: list[Camera]
    units: str = "mm"
    name: str = "rig"
    extra: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.cameras)

    def __getitem__(self, i: int) -> Camera:
        return self.cameras[i]

    def __iter__(self):
        return iter(self.cameras)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.cameras]

    def matched(self, names: Sequence[str]) -> list[Camera]:
        """The cameras for views ``names``: by name when every name is in the rig, else in order
        (an intrinsics file whose cameras are named otherwise); the caller checks the counts."""
        by_name = {c.name: c for c in self.cameras}
        return [by_name[n] for n in names] if set(names) <= set(by_name) else list(self.cameras)

    @property
    def world(self) -> str | None:
        """``"levelled"``, ``"camera0"`` or ``None`` (unknown; see the class docstring)."""
        w = self.extra.get("world")
        return None if w is None else str(w)

    @property
    def K(self) -> np.ndarray:
        """(C, 3, 3) intrinsics."""
        return np.stack([c.K for c in self.cameras])

    @property
    def R(self) -> np.ndarray:
        """(C, 3, 3) rotations."""
        return np.stack([c.R for c in self.cameras])

    @property
    def t(self) -> np.ndarray:
        """(C, 3) translations."""
        return np.stack([c.t for c in self.cameras])

    @property
    def dist(self) -> np.ndarray:
        """(C, 5) distortion."""
        return np.stack([c.dist for c in self.cameras])

    @property
    def P(self) -> np.ndarray:
        """(C, 3, 4) projection matrices."""
        return np.stack([c.P for c in self.cameras])

    @property
    def centers(self) -> np.ndarray:
        """(C, 3) camera centres in world coordinates."""
        return np.stack([c.center for c in self.cameras])

    def project(self, X: np.ndarray, distort: bool = True) -> np.ndarray:
        """World points (..., 3) -> pixels in every camera, (C, ..., 2)."""
        return self.project_camera(self.world_to_camera(X), distort=distort)

    def project_camera(self, Xc: np.ndarray, distort: bool = True) -> np.ndarray:
        """Points in every camera's frame (C, ..., 3) -> pixels (C, ..., 2)."""
        return np.stack([c.project_camera(x, distort=distort) for c, x in zip(self.cameras, Xc)])

    def world_to_camera(self, X: np.ndarray) -> np.ndarray:
        """World points (..., 3) -> points in every camera's frame, (C, ..., 3)."""
        X = np.asarray(X, dtype=np.float64)
        C = len(self)
        # one (M, 3) x (3, 3C) product: faster than an einsum over the cameras
        Xc = X.reshape(-1, 3) @ self.R.reshape(3 * C, 3).T + self.t.reshape(-1)
        return np.ascontiguousarray(np.moveaxis(Xc.reshape(X.shape[:-1] + (C, 3)), -2, 0))

    def undistort(self, uv: np.ndarray) -> np.ndarray:
        """Pixels (C, ..., 2) -> undistorted normalized coordinates (C, ..., 2)."""
        return np.stack(thread_map(lambda c: self.cameras[c].undistort(uv[c]), range(len(self.cameras))))

    def relative_pose(self, i: int, j: int) -> tuple[np.ndarray, np.ndarray]:
        """``(R_ij, t_ij)`` taking camera ``i``'s frame to camera ``j``'s: ``x_j = R_ij x_i + t_ij``."""
        Ri, ti, Rj, tj = self[i].R, self[i].t, self[j].R, self[j].t
        R = Rj @ Ri.T
        return R, tj - R @ ti

    def transformed(self, R: np.ndarray, t: np.ndarray, scale: float = 1.0) -> Rig:
        """The same cameras after the world change ``X_new = scale * (R @ X_old + t)``."""
        cams = []
        for c in self.cameras:
            Rn = c.R @ R.T
            tn = scale * (c.t - Rn @ t)
            cams.append(replace(c, R=Rn, t=tn))
        return Rig(cams, units=self.units, name=self.name, extra=dict(self.extra))

    def in_camera_frame(self, index: int = 0) -> Rig:
        """The rig re-expressed in camera ``index``'s frame (that camera gets ``R = I, t = 0``)."""
        c = self[index]
        return self.transformed(c.R, c.t)

    # --- (de)serialisation ----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = {"name": self.name, "units": self.units}
        d.update(self.extra)
        d["cameras"] = [c.to_dict() for c in self.cameras]
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    def save(self, path: str | os.PathLike) -> None:
        """Write ``rig.json`` atomically."""
        save_json(path, self.to_dict())

    @classmethod
    def from_dict(cls, d: dict[str, Any], require_extrinsics: bool = True, source: str = "rig") -> Rig:
        if not isinstance(d, dict) or "cameras" not in d:
            raise InputError(f"{source}: missing key 'cameras'")
        if not isinstance(d["cameras"], list) or not d["cameras"]:
            raise InputError(f"{source}: 'cameras' must be a non-empty list")
        try:
            cams = [
                Camera.from_dict(c, i, require_extrinsics=require_extrinsics)
                for i, c in enumerate(d["cameras"])
            ]
        except InputError as e:
            raise InputError(f"{source}: {e}") from None
        except (TypeError, ValueError) as e:
            raise InputError(f"{source}: malformed camera entry ({e})") from None
        extra = {k: v for k, v in d.items() if k not in ("cameras", "units", "name")}
        return cls(cams, units=str(d.get("units", "mm")), name=str(d.get("name", "rig")), extra=extra)

    @classmethod
    def from_json(cls, text: str, require_extrinsics: bool = True, source: str = "rig") -> Rig:
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise InputError(f"{source}: not valid JSON ({e})") from None
        return cls.from_dict(d, require_extrinsics=require_extrinsics, source=source)

    @classmethod
    def load(cls, path: str | os.PathLike, require_extrinsics: bool = True) -> Rig:
        """Read a ``rig.json``. With ``require_extrinsics=False`` cameras may omit ``R``/``t``
        (an intrinsics file, ``K.json``); they then get ``R = I, t = 0``."""
        path = Path(path)
        if not path.is_file():
            raise InputError(f"{path}: no such file")
        try:
            text = path.read_text()
        except (UnicodeDecodeError, OSError) as e:
            raise InputError(f"{path}: not a readable rig.json ({type(e).__name__})") from None
        return cls.from_json(text, require_extrinsics, source=str(path))
