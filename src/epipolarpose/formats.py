"""The interchange files of ``docs/formats.md``: ``poses2d.npz``, ``labels.npz``, ``gt.npz`` and
the 3D pose files of ``predict`` and ``refine``.

Readers validate key names, dtypes and shapes and raise :class:`~epipolarpose.errors.InputError`
naming the file and key; writers are atomic. ``rig.json`` lives in :mod:`epipolarpose.camera`.
Notation: ``C`` cameras, ``F`` frames, ``J`` joints, ``N`` poses.

3D pose keys and the one precedence rule of every pose reader
-------------------------------------------------------------

A file holds 3D poses under one or more of three keys:

* ``poses3d`` (N, J, 3): a flat set of poses, in the frame its writer used (``predict`` on
  images and ``refine apply`` write camera-frame poses here);
* ``poses3d_camera`` (C, F, J, 3): the poses in every camera's frame (``labels.npz``,
  ``predict --clips``);
* ``poses3d_world`` (F, J, 3): the poses in the rig's world frame (``labels.npz``, ``gt.npz``),
  taken into camera frames with the file's ``rig_json``.

A reader asks for a frame and takes the **first key of that frame's precedence list that the
file holds** (:func:`pose_key`):

* camera frame (:func:`read_camera_poses`, error-model fitting): :data:`CAMERA_POSE_KEYS`,
  ``poses3d`` > ``poses3d_camera`` > ``poses3d_world`` (the last one only with ``rig_json``);
* as stored (the ground truth and the world-frame predictions of
  :mod:`epipolarpose.evaluation`): :data:`WORLD_POSE_KEYS`, ``poses3d_world`` > ``poses3d``.
  Evaluation compares ``poses3d_camera`` first when the ground truth has a rig (its matching
  rule is in :mod:`epipolarpose.evaluation`).

The two lists disagree on ``poses3d`` vs ``poses3d_world`` on purpose: a camera-frame reader
prefers the flat poses its own tools wrote in the camera frame, a world reader the explicitly
world-frame key. :func:`read_poses3d` reads one named key (``poses3d`` by default).
"""

from __future__ import annotations

import os
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .camera import Rig
from .errors import InputError
from .io import save_npz
from .skeleton import H36M_JOINTS, default_joint_names

__all__ = [
    "CAMERA_POSE_KEYS",
    "NATIVE_KEYS",
    "WORLD_POSE_KEYS",
    "GroundTruth",
    "Labels",
    "Poses2D",
    "check_shape",
    "open_npz",
    "pose_key",
    "read_camera_poses",
    "read_poses3d",
    "require_key",
]

#: Camera-frame pose readers: the first of these keys present wins (``poses3d_world`` needs ``rig_json``).
CAMERA_POSE_KEYS: tuple[str, ...] = ("poses3d", "poses3d_camera", "poses3d_world")
#: As-stored (world-frame) pose readers: the first of these keys present wins.
WORLD_POSE_KEYS: tuple[str, ...] = ("poses3d_world", "poses3d")
#: The optional native-landmark keys of ``poses2d.npz`` (all three or none).
NATIVE_KEYS: tuple[str, ...] = ("keypoints_native", "scores_native", "joint_names_native")


def open_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every array of an npz file (no pickles), each member read and decompressed here, so that a
    damaged file fails now; :class:`InputError` for a missing file, a file that is not an npz (a
    zip archive of ``.npy`` arrays), a corrupted member, or an array of pickled Python objects."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if not zipfile.is_zipfile(path):
        raise InputError(
            f"{path}: not a readable .npz file: it is not an npz (a zip archive of .npy arrays) at all"
        )
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except ValueError as e:
        if "pickle" in str(e):
            raise InputError(
                f"{path}: not a readable .npz file: it holds pickled Python objects, not plain arrays"
            ) from None
        raise InputError(f"{path}: not a readable .npz file: it is corrupted ({e})") from None
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, KeyError, NotImplementedError) as e:
        raise InputError(
            f"{path}: not a readable .npz file: it is corrupted ({type(e).__name__}: {e})"
        ) from None


def require_key(d: Mapping[str, np.ndarray], key: str, src: str) -> np.ndarray:
    """``d[key]``, or :class:`InputError` naming ``src``, the key and the keys found."""
    if key not in d:
        raise InputError(f"{src}: missing key {key!r} (found: {', '.join(sorted(d)) or 'none'})")
    return d[key]


def check_shape(a: np.ndarray, shape: tuple[int | None, ...], key: str, src: str) -> None:
    """:class:`InputError` naming ``src`` and ``key`` unless ``a`` has ``shape`` (None entries
    match any size)."""
    ok = a.ndim == len(shape) and all(s is None or s == n for s, n in zip(shape, a.shape))
    if not ok:
        want = "(" + ", ".join("?" if s is None else str(s) for s in shape) + ")"
        raise InputError(f"{src}: key {key!r} has shape {a.shape}, expected {want}")


def _floats(a: Any, key: str, src: str = "poses2d") -> np.ndarray:
    """``a`` as a float32 array, or :class:`InputError` naming ``key``."""
    a = np.asarray(a)
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise InputError(f"{src}: key {key!r} must hold numbers, got {a.dtype}")
    return a.astype(np.float32)


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
        keypoints_native: (C, F, K, 2) float32 pixels of the detector's own landmarks before the
            mapping to ``joint_names`` (BlazePose-33, COCO-17, OpenPose BODY_25, ...); NaN where
            missing; None when the file has none. Given together with the next two.
        scores_native: (C, F, K) float32 confidences of ``keypoints_native``; 0 where missing.
        joint_names_native: K names of ``keypoints_native``.

    Every frame index of ``keypoints`` is a frame index of ``keypoints_native``: code that
    re-indexes frames re-indexes both (:meth:`take_frames`).
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
    keypoints_native: np.ndarray | None = None
    scores_native: np.ndarray | None = None
    joint_names_native: list[str] | None = None

    def __post_init__(self) -> None:
        self.keypoints = np.asarray(self.keypoints, dtype=np.float32)
        self.scores = np.asarray(self.scores, dtype=np.float32)
        self.image_size = np.asarray(self.image_size, dtype=np.int64)
        if not self.camera_names:
            self.camera_names = [f"cam{i}" for i in range(self.keypoints.shape[0])]
        self.camera_names = [str(n) for n in self.camera_names]
        self.joint_names = [str(n) for n in self.joint_names]
        if self.keypoints_native is not None:
            self.keypoints_native = _floats(self.keypoints_native, "keypoints_native")
        if self.scores_native is not None:
            self.scores_native = _floats(self.scores_native, "scores_native")
        if self.joint_names_native is not None:
            names = np.asarray(self.joint_names_native)
            if names.ndim != 1:
                raise InputError(f"poses2d: key 'joint_names_native' has shape {names.shape}, expected (K,)")
            self.joint_names_native = [str(n) for n in names]
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
        check_shape(self.keypoints, (None, None, None, 2), "keypoints", src)
        C, F, J, _ = self.keypoints.shape
        if C == 0 or F == 0 or J == 0:
            raise InputError(f"{src}: 'keypoints' is empty, shape {self.keypoints.shape}")
        check_shape(self.scores, (C, F, J), "scores", src)
        check_shape(self.image_size, (C, 2), "image_size", src)
        if np.any(self.image_size <= 0):
            raise InputError(f"{src}: 'image_size' must be positive (width, height) per camera")
        if len(self.camera_names) != C:
            raise InputError(f"{src}: 'camera_names' has {len(self.camera_names)} names for {C} cameras")
        if len(set(self.camera_names)) != C:
            twice = sorted({n for n in self.camera_names if self.camera_names.count(n) > 1})
            raise InputError(
                f"{src}: 'camera_names' must differ; {', '.join(map(repr, twice))} appears twice"
            )
        if len(self.joint_names) != J:
            raise InputError(f"{src}: 'joint_names' has {len(self.joint_names)} names for {J} joints")
        if self.K is not None:
            self.K = np.asarray(self.K, dtype=np.float64)
            check_shape(self.K, (C, 3, 3), "K", src)
            if not np.all(np.isfinite(self.K)):
                raise InputError(f"{src}: 'K' contains NaN or inf")
        if self.dist is not None:
            self.dist = np.asarray(self.dist, dtype=np.float64)
            check_shape(self.dist, (C, 5), "dist", src)
        if np.any(np.isinf(self.keypoints)):
            raise InputError(f"{src}: 'keypoints' contains inf (use NaN for missing joints)")
        if np.any(np.isnan(self.scores)):
            raise InputError(f"{src}: 'scores' contains NaN (use 0 for missing joints)")
        self._validate_native(src)

    def _validate_native(self, src: str) -> None:
        """The three native keys: all or none; shapes (C, F, K, 2), (C, F, K), (K,) with the C and
        F of ``keypoints``."""
        native = {k: getattr(self, k) for k in NATIVE_KEYS}
        given = [k for k, v in native.items() if v is not None]
        if not given:
            return
        if len(given) < len(native):
            missing = [k for k in native if native[k] is None]
            raise InputError(
                f"{src}: {', '.join(map(repr, given))} given without {', '.join(map(repr, missing))} "
                "(the native landmarks need all three keys)"
            )
        C, F = self.keypoints.shape[:2]
        kp = self.keypoints_native
        check_shape(kp, (None, None, None, 2), "keypoints_native", src)
        if kp.shape[:2] != (C, F):
            raise InputError(
                f"{src}: key 'keypoints_native' has {kp.shape[0]} cameras x {kp.shape[1]} frames but "
                f"'keypoints' has {C} x {F}"
            )
        K = kp.shape[2]
        if K == 0:
            raise InputError(f"{src}: 'keypoints_native' has no landmarks, shape {kp.shape}")
        others = self.scores_native.shape[-1] if self.scores_native.ndim == 3 else None
        if others == len(self.joint_names_native) != K:  # the odd one out is keypoints_native itself
            raise InputError(
                f"{src}: the native landmarks disagree in number: 'keypoints_native' has {K}, "
                f"'scores_native' {others} and 'joint_names_native' {others}"
            )
        check_shape(self.scores_native, (C, F, K), "scores_native", src)
        if len(self.joint_names_native) != K:
            raise InputError(
                f"{src}: 'joint_names_native' has {len(self.joint_names_native)} names for {K} native landmarks"
            )
        if np.any(np.isinf(kp)):
            raise InputError(f"{src}: 'keypoints_native' contains inf (use NaN for missing landmarks)")
        if np.any(np.isnan(self.scores_native)):
            raise InputError(f"{src}: 'scores_native' contains NaN (use 0 for missing landmarks)")

    @property
    def has_native(self) -> bool:
        """True when the detector's own landmarks are present (``keypoints_native`` and co.)."""
        return self.keypoints_native is not None

    @property
    def num_native_joints(self) -> int:
        """K, the number of native landmarks (0 without them)."""
        return 0 if self.keypoints_native is None else self.keypoints_native.shape[2]

    def observed(self) -> np.ndarray:
        """(C, F, J) bool: joint detected (finite coordinates and score > 0)."""
        return np.isfinite(self.keypoints).all(-1) & (self.scores > 0)

    def observed_native(self) -> np.ndarray | None:
        """(C, F, K) bool: native landmark detected (finite and score > 0); None without them."""
        if self.keypoints_native is None:
            return None
        return np.isfinite(self.keypoints_native).all(-1) & (self.scores_native > 0)

    def take_frames(self, index: np.ndarray) -> Poses2D:
        """Re-index the frames of every camera: frame ``i`` of camera ``c`` becomes input frame
        ``index[c, i]`` (or ``index[i]`` for every camera); an index outside ``[0, F)`` gives a
        missing frame (NaN, score 0).

        ``keypoints``, ``scores`` and the native landmarks move together; ``extra`` is copied
        unchanged (its frame arrays are the caller's to update).

        Args:
            index: (F',) or (C, F') int source frames.
        Returns:
            a new :class:`Poses2D` with F' frames.
        """
        C, F = self.num_cameras, self.num_frames
        idx = np.asarray(index, dtype=np.int64)
        if idx.ndim == 1:
            idx = np.broadcast_to(idx, (C, idx.shape[0]))
        if idx.ndim != 2 or idx.shape[0] != C:
            raise InputError(f"frame index must be (F,) or ({C}, F), got shape {idx.shape}")
        ok = (idx >= 0) & (idx < F)
        src = np.where(ok, idx, 0)
        cam = np.arange(C)[:, None]

        def take(a: np.ndarray | None, fill: float) -> np.ndarray | None:
            if a is None:
                return None
            out = a[cam, src]
            out[~ok] = fill
            return out

        return replace(
            self,
            keypoints=take(self.keypoints, np.nan),
            scores=take(self.scores, 0.0),
            keypoints_native=take(self.keypoints_native, np.nan),
            scores_native=take(self.scores_native, 0.0),
            joint_names_native=None if self.joint_names_native is None else list(self.joint_names_native),
            camera_names=list(self.camera_names),
            joint_names=list(self.joint_names),
            extra=dict(self.extra),
        )

    def take_cameras(self, names: Sequence[str]) -> Poses2D:
        """The detections of the cameras ``names`` (camera names, or indices as strings), in
        that order; :class:`InputError` for an unknown camera."""
        if not [n for n in names if str(n).strip()]:
            raise InputError(f"no camera named; the detections have {', '.join(self.camera_names)}")
        index = []
        for n in names:
            n = str(n).strip()
            if n in self.camera_names:
                index.append(self.camera_names.index(n))
            elif n.isdigit() and int(n) < self.num_cameras:
                index.append(int(n))
            else:
                raise InputError(f"unknown camera {n!r}; the detections have {', '.join(self.camera_names)}")
        if len(set(index)) != len(index):
            raise InputError(f"a camera is named twice in {', '.join(names)}")
        cams = np.asarray(index, dtype=np.int64)

        def take(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else np.asarray(a)[cams]

        return replace(
            self,
            keypoints=self.keypoints[cams],
            scores=self.scores[cams],
            image_size=self.image_size[cams],
            camera_names=[self.camera_names[i] for i in index],
            K=take(self.K),
            dist=take(self.dist),
            keypoints_native=take(self.keypoints_native),
            scores_native=take(self.scores_native),
            joint_names_native=None if self.joint_names_native is None else list(self.joint_names_native),
            joint_names=list(self.joint_names),
            extra=dict(self.extra),
        )

    @classmethod
    def load(cls, path: str | os.PathLike) -> Poses2D:
        src = str(path)
        d = open_npz(path)
        kp = require_key(d, "keypoints", src)
        sc = require_key(d, "scores", src)
        size = require_key(d, "image_size", src)
        check_shape(kp, (None, None, None, 2), "keypoints", src)
        known = {
            "keypoints",
            "scores",
            "image_size",
            "camera_names",
            "joint_names",
            "K",
            "dist",
            "fps",
            *NATIVE_KEYS,
        }
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
                keypoints_native=d.get("keypoints_native"),
                scores_native=d.get("scores_native"),
                joint_names_native=d.get("joint_names_native"),
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
        if self.keypoints_native is not None:
            d["keypoints_native"] = self.keypoints_native.astype(np.float32)
            d["scores_native"] = np.asarray(self.scores_native, dtype=np.float32)
            d["joint_names_native"] = np.array(self.joint_names_native)
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
        check_shape(self.poses3d_world, (None, None, 3), "poses3d_world", src)
        F, J, _ = self.poses3d_world.shape
        check_shape(self.poses3d_camera, (None, F, J, 3), "poses3d_camera", src)
        C = self.poses3d_camera.shape[0]
        check_shape(self.valid, (F, J), "valid", src)
        check_shape(self.reprojection_error, (C, F, J), "reprojection_error", src)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Labels:
        src = str(path)
        d = open_npz(path)
        keys = ("poses3d_world", "poses3d_camera", "valid", "reprojection_error")
        arrays = {k: require_key(d, k, src) for k in keys}
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
        check_shape(self.poses3d_world, (None, None, 3), "poses3d_world", "gt")
        check_shape(self.clip, (self.poses3d_world.shape[0],), "clip", "gt")

    @classmethod
    def load(cls, path: str | os.PathLike, allow_nan: bool = False) -> GroundTruth:
        src = str(path)
        d = open_npz(path)
        poses = require_key(d, "poses3d_world", src)
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


def pose_key(arrays: Mapping[str, np.ndarray], keys: Sequence[str]) -> str | None:
    """The first of ``keys`` (a precedence list, see the module docstring) that ``arrays`` holds."""
    return next((k for k in keys if k in arrays), None)


def read_poses3d(
    path: str | os.PathLike, key: str = "poses3d", num_joints: int | None = None
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Read ``key`` (N, J, 3) from an npz (dtype kept) and every array of the file.

    Raises :class:`InputError` naming the file and key for a missing key, a wrong shape, or a joint
    count different from ``num_joints``. NaN joints are allowed (the refiner passes such poses
    through unchanged).
    """
    arrays = open_npz(path)
    poses = require_key(arrays, key, str(path))
    check_shape(poses, (None, num_joints, 3), key, str(path))
    if not np.issubdtype(poses.dtype, np.floating):
        raise InputError(f"{path}: key {key!r} must hold floats, got {poses.dtype}")
    return poses, arrays


def read_camera_poses(
    path: str | os.PathLike, num_joints: int | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Camera-frame 3D poses (for fitting an error model) from any of the project's files.

    Takes the first of :data:`CAMERA_POSE_KEYS` the file holds:

    * ``poses3d`` (N, J, 3): poses already flattened (``refine apply`` input and output);
    * ``poses3d_camera`` (C, F, J, 3): ``epipolarpose predict --clips`` predictions;
    * ``poses3d_world`` (F, J, 3) with ``rig_json``: a ``gt.npz`` (``synth`` or ``predict
      --clips``), taken into every camera's frame.

    Returns:
        ``(poses (N, J, 3) float64, clip (N,) str or None)``, camera-major (camera 0's frames
        first) for the last two layouts, so a prediction file and its ground truth line up.
    """
    arrays = open_npz(path)
    src = str(path)
    J = num_joints
    key = pose_key(arrays, CAMERA_POSE_KEYS if "rig_json" in arrays else CAMERA_POSE_KEYS[:2])
    if key == "poses3d":
        poses = arrays["poses3d"]
        check_shape(poses, (None, J, 3), "poses3d", src)
        clip = arrays.get("clip")
        clip = np.asarray(clip).astype(str) if clip is not None and clip.shape == poses.shape[:1] else None
    elif key == "poses3d_camera":
        cam = arrays["poses3d_camera"]
        check_shape(cam, (None, None, J, 3), "poses3d_camera", src)
        poses, clip = cam.reshape(-1, *cam.shape[2:]), None
    elif key == "poses3d_world":
        world = arrays["poses3d_world"]
        check_shape(world, (None, J, 3), "poses3d_world", src)
        rig = Rig.from_json(str(arrays["rig_json"]), source=f"{src}:rig_json")
        cam = rig.world_to_camera(world)  # (C, F, J, 3)
        poses = cam.reshape(-1, *cam.shape[2:])
        clip = arrays.get("clip")
        if clip is not None and len(clip) == len(world):
            clip = np.tile(np.asarray(clip).astype(str), len(rig))
        else:
            clip = None
    else:
        raise InputError(
            f"{src}: needs poses3d (N, J, 3), poses3d_camera (C, F, J, 3) or poses3d_world with rig_json "
            f"(found: {', '.join(sorted(arrays)) or 'none'})"
        )
    if not np.issubdtype(poses.dtype, np.floating):
        raise InputError(f"{src}: the 3D poses must be floats, got {poses.dtype}")
    return np.asarray(poses, dtype=np.float64), clip
