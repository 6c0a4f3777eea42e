"""The interchange files of ``docs/formats.md``: ``poses2d.npz``, ``labels.npz`` and ``gt.npz``.

Readers validate key names, dtypes and shapes and raise :class:`~epipolarpose.errors.InputError`
naming the file and key; writers are atomic. ``rig.json`` lives in :mod:`epipolarpose.camera`.
Notation: ``C`` cameras, ``F`` frames, ``J`` joints.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .camera import Rig
from .errors import InputError
from .io import save_npz
from .skeleton import H36M_JOINTS


def _open_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise InputError(f"{path}: not a readable .npz file ({e})") from None


def _require(d: dict[str, np.ndarray], key: str, src: str) -> np.ndarray:
    if key not in d:
        raise InputError(f"{src}: missing key {key!r} (found: {', '.join(sorted(d)) or 'none'})")
    return d[key]


def _check_shape(a: np.ndarray, shape: tuple, key: str, src: str) -> None:
    """``shape`` entries of None match any size."""
    ok = a.ndim == len(shape) and all(s is None or s == n for s, n in zip(shape, a.shape))
    if not ok:
        want = "(" + ", ".join("?" if s is None else str(s) for s in shape) + ")"
        raise InputError(f"{src}: key {key!r} has shape {a.shape}, expected {want}")


def default_joint_names(num_joints: int) -> list[str]:
    """Human3.6M names for 17 joints, ``joint0..`` otherwise."""
    return list(H36M_JOINTS) if num_joints == len(H36M_JOINTS) else [f"joint{i}" for i in range(num_joints)]


@dataclass
class Poses2D:
    """Multi-view 2D detections.

    Attributes:
        keypoints: (C, F, J, 2) float32 pixels in the distorted image; NaN where missing.
        scores: (C, F, J) float32 confidences in [0, 1]; 0 where missing.
        image_size: (C, 2) int (width, height).
        camera_names: C names.
        joint_names: J names.
        K: (C, 3, 3) intrinsics or None.
        dist: (C, 5) distortion or None.
        fps: frames per second or None.
        extra: any other arrays found in (or to be written to) the file.
    """

    keypoints: np.ndarray
    scores: np.ndarray
    image_size: np.ndarray
    camera_names: list[str] = field(default_factory=list)
    joint_names: list[str] = field(default_factory=lambda: list(H36M_JOINTS))
    K: np.ndarray | None = None
    dist: np.ndarray | None = None
    fps: float | None = None
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.keypoints = np.asarray(self.keypoints, dtype=np.float32)
        self.scores = np.asarray(self.scores, dtype=np.float32)
        self.image_size = np.asarray(self.image_size, dtype=np.int64)
        if not self.camera_names:
            self.camera_names = [f"cam{i}" for i in range(self.keypoints.shape[0])]
        self.camera_names = [str(n) for n in self.camera_names]
        self.joint_names = [str(n) for n in self.joint_names]
        self.validate()

    @property
    def num_cameras(self) -> int:
        return self.keypoints.shape[0]

    @property
    def num_frames(self) -> int:
        return self.keypoints.shape[1]

    @property
    def num_joints(self) -> int:
        return self.keypoints.shape[2]

    def validate(self, src: str = "poses2d") -> None:
        """Raise :class:`InputError` if shapes are inconsistent."""
        _check_shape(self.keypoints, (None, None, None, 2), "keypoints", src)
        C, F, J, _ = self.keypoints.shape
        if C == 0 or F == 0 or J == 0:
            raise InputError(f"{src}: 'keypoints' is empty, shape {self.keypoints.shape}")
        _check_shape(self.scores, (C, F, J), "scores", src)
        _check_shape(self.image_size, (C, 2), "image_size", src)
        if np.any(self.image_size <= 0):
            raise InputError(f"{src}: 'image_size' must be positive (width, height) per camera")
        if len(self.camera_names) != C:
            raise InputError(f"{src}: 'camera_names' has {len(self.camera_names)} names for {C} cameras")
        if len(self.joint_names) != J:
            raise InputError(f"{src}: 'joint_names' has {len(self.joint_names)} names for {J} joints")
        if self.K is not None:
            self.K = np.asarray(self.K, dtype=np.float64)
            _check_shape(self.K, (C, 3, 3), "K", src)
            if not np.all(np.isfinite(self.K)):
                raise InputError(f"{src}: 'K' contains NaN or inf")
        if self.dist is not None:
            self.dist = np.asarray(self.dist, dtype=np.float64)
            _check_shape(self.dist, (C, 5), "dist", src)
        if np.any(np.isinf(self.keypoints)):
            raise InputError(f"{src}: 'keypoints' contains inf (use NaN for missing joints)")
        if np.any(np.isnan(self.scores)):
            raise InputError(f"{src}: 'scores' contains NaN (use 0 for missing joints)")

    def observed(self) -> np.ndarray:
        """(C, F, J) bool: joint detected (finite coordinates and score > 0)."""
        return np.isfinite(self.keypoints).all(-1) & (self.scores > 0)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Poses2D:
        src = str(path)
        d = _open_npz(path)
        kp = _require(d, "keypoints", src)
        sc = _require(d, "scores", src)
        size = _require(d, "image_size", src)
        _check_shape(kp, (None, None, None, 2), "keypoints", src)
        known = {"keypoints", "scores", "image_size", "camera_names", "joint_names", "K", "dist", "fps"}
        try:
            out = cls(
                keypoints=kp,
                scores=sc,
                image_size=size,
                camera_names=[str(x) for x in d.get("camera_names", [])],
                joint_names=[str(x) for x in d["joint_names"]]
                if "joint_names" in d
                else default_joint_names(kp.shape[2]),
                K=d.get("K"),
                dist=d.get("dist"),
                fps=float(d["fps"]) if "fps" in d else None,
                extra={k: v for k, v in d.items() if k not in known},
            )
        except InputError as e:
            msg = str(e).replace("poses2d:", f"{src}:", 1)
            raise InputError(msg) from None
        return out

    def to_arrays(self) -> dict[str, Any]:
        d: dict[str, Any] = dict(self.extra)
        d.update(
            keypoints=self.keypoints.astype(np.float32),
            scores=self.scores.astype(np.float32),
            image_size=self.image_size.astype(np.int64),
            camera_names=np.array(self.camera_names),
            joint_names=np.array(self.joint_names),
        )
        if self.K is not None:
            d["K"] = np.asarray(self.K, dtype=np.float64)
        if self.dist is not None:
            d["dist"] = np.asarray(self.dist, dtype=np.float64)
        if self.fps is not None:
            d["fps"] = np.float64(self.fps)
        return d

    def save(self, path: str | os.PathLike) -> None:
        save_npz(path, **self.to_arrays())


@dataclass
class Labels:
    """Pseudo 3D labels (``labels.npz``).

    Attributes:
        poses3d_world: (F, J, 3) float32 in the rig's world frame and units; NaN where invalid.
        poses3d_camera: (C, F, J, 3) float32, the same poses in each camera's frame.
        valid: (F, J) bool.
        reprojection_error: (C, F, J) float32 pixels; NaN where not observed.
        extra: other arrays (e.g. ``offsets`` (C,) int, ``rig_json``).
    """

    poses3d_world: np.ndarray
    poses3d_camera: np.ndarray
    valid: np.ndarray
    reprojection_error: np.ndarray
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.poses3d_world = np.asarray(self.poses3d_world, dtype=np.float32)
        self.poses3d_camera = np.asarray(self.poses3d_camera, dtype=np.float32)
        self.valid = np.asarray(self.valid, dtype=bool)
        self.reprojection_error = np.asarray(self.reprojection_error, dtype=np.float32)
        self.validate()

    def validate(self, src: str = "labels") -> None:
        _check_shape(self.poses3d_world, (None, None, 3), "poses3d_world", src)
        F, J, _ = self.poses3d_world.shape
        _check_shape(self.poses3d_camera, (None, F, J, 3), "poses3d_camera", src)
        C = self.poses3d_camera.shape[0]
        _check_shape(self.valid, (F, J), "valid", src)
        _check_shape(self.reprojection_error, (C, F, J), "reprojection_error", src)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Labels:
        src = str(path)
        d = _open_npz(path)
        keys = ("poses3d_world", "poses3d_camera", "valid", "reprojection_error")
        arrays = {k: _require(d, k, src) for k in keys}
        try:
            return cls(**arrays, extra={k: v for k, v in d.items() if k not in keys})
        except InputError as e:
            raise InputError(str(e).replace("labels:", f"{src}:", 1)) from None

    def save(self, path: str | os.PathLike) -> None:
        save_npz(
            path,
            **self.extra,
            poses3d_world=self.poses3d_world,
            poses3d_camera=self.poses3d_camera,
            valid=self.valid,
            reprojection_error=self.reprojection_error,
        )


@dataclass
class GroundTruth:
    """Ground truth written by ``epipolarpose synth`` (``gt.npz``).

    Attributes:
        poses3d_world: (F, J, 3) float32 mm in the rig's world frame.
        clip: (F,) str, source clip of every frame.
        rig: the rig the observations were made with.
        extra: other arrays.
    """

    poses3d_world: np.ndarray
    clip: np.ndarray
    rig: Rig | None = None
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.poses3d_world = np.asarray(self.poses3d_world, dtype=np.float32)
        self.clip = np.asarray(self.clip).astype(str)
        _check_shape(self.poses3d_world, (None, None, 3), "poses3d_world", "gt")
        _check_shape(self.clip, (self.poses3d_world.shape[0],), "clip", "gt")

    @classmethod
    def load(cls, path: str | os.PathLike, allow_nan: bool = False) -> GroundTruth:
        src = str(path)
        d = _open_npz(path)
        poses = _require(d, "poses3d_world", src)
        clip = d.get("clip", np.array(["clip"] * (poses.shape[0] if poses.ndim else 0)))
        rig = None
        if "rig_json" in d:
            rig = Rig.from_json(str(d["rig_json"]), source=f"{src}:rig_json")
        if not allow_nan and np.isnan(poses).any():
            n = int(np.isnan(poses).any(-1).any(-1).sum())
            raise InputError(f"{src}: 'poses3d_world' contains NaN in {n} frames")
        try:
            return cls(
                poses,
                clip,
                rig,
                extra={k: v for k, v in d.items() if k not in ("poses3d_world", "clip", "rig_json")},
            )
        except InputError as e:
            raise InputError(str(e).replace("gt:", f"{src}:", 1)) from None

    def save(self, path: str | os.PathLike) -> None:
        arrays: dict[str, Any] = dict(self.extra)
        arrays.update(poses3d_world=self.poses3d_world, clip=self.clip)
        if self.rig is not None:
            arrays["rig_json"] = np.array(self.rig.to_json())
        save_npz(path, **arrays)
