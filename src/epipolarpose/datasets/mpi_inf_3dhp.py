"""MPI-INF-3DHP: its multi-view training set, its test set and the PCK / AUC protocol.

Training set (as distributed, ``mpi_inf_3dhp/``; :class:`MPIINF3DHPTrain`)::

    ROOT/
      S1/
        Seq1/
          annot.mat                  # annot2, annot3, univ_annot3 (one cell per camera), cameras, frames
          camera.calibration         # the 14 cameras (Skeletool format: size, intrinsic, extrinsic)
          imageSequence/video_0.avi  # one video per camera; or video_0/ holding its frames as images
        Seq2/
      S2/ ... S8/

``annot.mat`` (MATLAB v5, read with scipy): ``annot2{c}`` (N, 56) pixels, ``annot3{c}`` /
``univ_annot3{c}`` (N, 84) mm in camera ``c``'s frame, 28 joints (:data:`MPI28_JOINTS`);
``cameras`` the camera numbers of the cells, ``frames`` (N,) 0-based video frames. The cameras of a
sequence are synchronized: row ``n`` of every cell is the same instant. ``camera.calibration``
gives each camera's image ``size``, ``intrinsic`` and ``extrinsic`` (row-major 4 x 4, world ->
camera, mm).

Test set (as distributed, ``mpi_inf_3dhp_test_set/``; :class:`MPIINF3DHPTest`)::

    ROOT/
      TS1/
        annot_data.mat               # annot2, annot3, univ_annot3, valid_frame, activity_annotation
        imageSequence/img_000001.jpg  # 1-based frame numbers
      TS2/ ... TS6/

The distributed ``annot_data.mat`` files are MATLAB v7.3 (HDF5; reading them needs h5py); v5
``.mat`` files (``scipy.io.savemat``) are read with scipy. In MATLAB order the arrays are
``annot2`` (2, 17, 1, N) pixels, ``annot3`` / ``univ_annot3`` (3, 17, 1, N) mm in the camera frame,
``valid_frame`` (1, N) and ``activity_annotation`` (1, N) in 1..7 (:data:`ACTIVITIES`).

The test set's 17 joints are ``head_top, neck, right_shoulder, right_elbow, right_wrist,
left_shoulder, left_elbow, left_wrist, right_hip, right_knee, right_ankle, left_hip, left_knee,
left_ankle, pelvis, spine, head``; :data:`MPI17_TO_H36M` reorders them into our Human3.6M order
(MPI ``head`` -> our ``Neck/Nose``, ``head_top`` -> ``Head``, ``neck`` -> ``Thorax``).

Protocol: root(pelvis)-relative poses in mm on the *universal* (height-normalised) skeleton
``univ_annot3``; PCK = share of joints within 150 mm, AUC = mean PCK over thresholds 0, 5, ...,
150 mm; both over the 14 standard joints (:data:`PCK_JOINTS`: all but pelvis, spine and head).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..camera import Camera, check_rotation
from ..errors import InputError
from .h36m import square_bbox

SEQUENCES: tuple[str, ...] = ("TS1", "TS2", "TS3", "TS4", "TS5", "TS6")
ACTIVITIES: tuple[str, ...] = (
    "Stand/Walk",
    "Exercise",
    "Sit on Chair",
    "Reach/Crouch",
    "On Floor",
    "Sports",
    "Misc.",
)
MPI17_JOINTS: tuple[str, ...] = (
    "head_top",
    "neck",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "right_hip",
    "right_knee",
    "right_ankle",
    "left_hip",
    "left_knee",
    "left_ankle",
    "pelvis",
    "spine",
    "head",
)
#: ``h36m = mpi[..., MPI17_TO_H36M, :]``
MPI17_TO_H36M = np.array([14, 8, 9, 10, 11, 12, 13, 15, 1, 16, 0, 5, 6, 7, 2, 3, 4])
#: The 28 joints of the training set's annotations.
MPI28_JOINTS: tuple[str, ...] = (
    "spine3",
    "spine4",
    "spine2",
    "spine",
    "pelvis",
    "neck",
    "head",
    "head_top",
    "left_clavicle",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "left_hand",
    "right_clavicle",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
    "right_hand",
    "left_hip",
    "left_knee",
    "left_ankle",
    "left_foot",
    "left_toe",
    "right_hip",
    "right_knee",
    "right_ankle",
    "right_foot",
    "right_toe",
)
#: ``mpi17 = mpi28[..., MPI28_TO_MPI17, :]`` (the test set's 17 joints among the training set's 28)
MPI28_TO_MPI17 = np.array([MPI28_JOINTS.index(n) for n in MPI17_JOINTS])
#: ``h36m = mpi28[..., MPI28_TO_H36M, :]``
MPI28_TO_H36M = MPI28_TO_MPI17[MPI17_TO_H36M]
TRAIN_SUBJECTS: tuple[str, ...] = tuple(f"S{i}" for i in range(1, 9))
TRAIN_SEQUENCES: tuple[str, ...] = ("Seq1", "Seq2")
#: The cameras commonly trained on (0-2 and 4-8: chest-height and tilted views like the test set's).
TRAIN_CAMERAS: tuple[int, ...] = (0, 1, 2, 4, 5, 6, 7, 8)
#: Our (H36M-order) indices of the 14 joints the PCK/AUC protocol scores (not Hip, Spine, Neck/Nose).
PCK_JOINTS = np.array([1, 2, 3, 4, 5, 6, 8, 10, 11, 12, 13, 14, 15, 16])
PCK_THRESHOLD_MM = 150.0
AUC_THRESHOLDS_MM = np.linspace(0.0, 150.0, 31)


def read_mat(path: Path) -> dict[str, np.ndarray]:
    """Read a .mat file (v5 with scipy, v7.3 with h5py) with arrays in **h5py axis order**
    (MATLAB's reversed, e.g. ``annot2`` -> (N, 1, 17, 2))."""
    import scipy.io

    try:
        d = scipy.io.loadmat(path)
        return {k: np.asarray(v).transpose() for k, v in d.items() if not k.startswith("__")}
    except NotImplementedError:  # MATLAB v7.3 = HDF5
        pass
    except (OSError, ValueError, scipy.io.matlab.MatReadError) as e:
        raise InputError(f"{path}: not a readable .mat file ({e})") from None
    try:
        import h5py
    except ImportError:
        raise InputError(f"{path} is a MATLAB v7.3 file: reading it needs h5py (pip install h5py)") from None
    with h5py.File(path, "r") as f:
        return {k: np.asarray(f[k]) for k in f.keys() if isinstance(f[k], h5py.Dataset)}


@dataclass(frozen=True)
class MPIINF3DHPSample:
    """One valid test frame: image, square person box (4,), ``joints2d`` (17, 2) px,
    ``joints3d_camera`` (17, 3) mm, ``joints3d_univ`` (17, 3) mm (universal skeleton), all in our
    Human3.6M joint order; ``activity`` 1..7; ``sequence`` "TS1".."TS6"; ``frame`` 1-based."""

    image_path: Path
    bbox: np.ndarray
    joints2d: np.ndarray
    joints3d_camera: np.ndarray
    joints3d_univ: np.ndarray
    activity: int
    sequence: str
    frame: int


class MPIINF3DHPTest:
    """The valid frames of the MPI-INF-3DHP test sequences.

    Args:
        root: folder holding ``TS1`` .. ``TS6``.
        sequences: which sequences (default all six).
        margin: person-box margin (:func:`~epipolarpose.datasets.h36m.square_bbox`).

    Arrays over the N valid frames: ``image_paths``, ``joints2d`` (N, 17, 2), ``joints3d_camera``,
    ``joints3d_univ`` (N, 17, 3), ``bbox`` (N, 4), ``activities``, ``frames`` (N,) int,
    ``sequence_names`` (N,) str.
    """

    def __init__(self, root: str | os.PathLike, sequences: Sequence[str] = SEQUENCES, margin: float = 1.3):
        self.root = root = Path(root)
        if not root.is_dir():
            raise InputError(f"MPI-INF-3DHP test set root {root} is not a folder")
        parts: dict[str, list] = {k: [] for k in ("paths", "j2", "j3", "ju", "act", "frame", "seq")}
        for seq in sequences:
            sdir = root / seq
            if not sdir.is_dir():
                raise InputError(f"MPI-INF-3DHP sequence folder {sdir} is missing")
            mat_path = sdir / "annot_data.mat"
            if not mat_path.is_file():
                raise InputError(f"{mat_path} is missing")
            m = read_mat(mat_path)
            for key in ("annot2", "annot3", "univ_annot3", "valid_frame"):
                if key not in m:
                    raise InputError(f"{mat_path}: missing key {key!r}")
            valid = np.asarray(m["valid_frame"]).reshape(-1).astype(bool)
            n = len(valid)
            arrays = {}
            for key, d in (("annot2", 2), ("annot3", 3), ("univ_annot3", 3)):
                a = np.asarray(m[key], np.float64)
                if a.size != n * 17 * d or a.shape[-1] != d:
                    raise InputError(
                        f"{mat_path}: {key} has shape {a.shape} (h5py order), expected ({n}, 1, 17, {d})"
                    )
                arrays[key] = a.reshape(n, 17, d)[:, MPI17_TO_H36M]
            act = m.get("activity_annotation")
            act = np.zeros(n, np.int64) if act is None else np.asarray(act).reshape(-1).astype(np.int64)
            if len(act) != n:
                raise InputError(
                    f"{mat_path}: activity_annotation has {len(act)} frames, valid_frame has {n}"
                )
            idx = np.flatnonzero(valid)
            img_dir = sdir / "imageSequence"
            if len(idx) and not img_dir.is_dir():
                raise InputError(f"image folder {img_dir} is missing")
            parts["paths"] += [img_dir / f"img_{i + 1:06d}.jpg" for i in idx]
            parts["j2"].append(arrays["annot2"][idx])
            parts["j3"].append(arrays["annot3"][idx])
            parts["ju"].append(arrays["univ_annot3"][idx])
            parts["act"].append(act[idx])
            parts["frame"].append(idx + 1)
            parts["seq"] += [seq] * len(idx)
        if not parts["paths"]:
            raise InputError(f"no valid MPI-INF-3DHP test frames in {root} ({', '.join(sequences)})")
        self.image_paths: list[Path] = parts["paths"]
        self.joints2d = np.concatenate(parts["j2"])
        self.joints3d_camera = np.concatenate(parts["j3"])
        self.joints3d_univ = np.concatenate(parts["ju"])
        self.activities = np.concatenate(parts["act"])
        self.frames = np.concatenate(parts["frame"])
        self.sequence_names = np.array(parts["seq"])
        self.bbox = square_bbox(self.joints2d, margin)

    def __len__(self) -> int:
        return len(self.image_paths)

    def __getitem__(self, i: int) -> MPIINF3DHPSample:
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        return MPIINF3DHPSample(
            self.image_paths[i],
            self.bbox[i],
            self.joints2d[i],
            self.joints3d_camera[i],
            self.joints3d_univ[i],
            int(self.activities[i]),
            str(self.sequence_names[i]),
            int(self.frames[i]),
        )

    def __iter__(self) -> Iterator[MPIINF3DHPSample]:
        return (self[i] for i in range(len(self)))


def pck_auc(
    pred: np.ndarray,
    gt: np.ndarray,
    activities: np.ndarray | None = None,
    joints: np.ndarray = PCK_JOINTS,
    threshold: float = PCK_THRESHOLD_MM,
) -> dict[str, float | dict[str, float]]:
    """The MPI-INF-3DHP 3D PCK and AUC (percent).

    Args:
        pred, gt: (N, 17, 3) poses in mm, our joint order; both are made root(pelvis)-relative here.
        activities: optional (N,) activity ids 1..7 for per-activity PCK.
        joints: joints scored (default the 14 of the protocol).
        threshold: PCK threshold, mm.
    Returns:
        ``{"pck": ..., "auc": ..., "per_activity_pck": {name: pck}}`` (the last only with activities).
    """
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    if pred.shape != gt.shape or pred.ndim != 3 or pred.shape[-1] != 3:
        raise InputError(f"predictions {pred.shape} and ground truth {gt.shape} must both be (N, J, 3)")
    err = np.linalg.norm((pred - pred[:, :1]) - (gt - gt[:, :1]), axis=-1)[:, joints]  # (N, 14)
    out: dict = {
        "pck": float(np.mean(err < threshold) * 100),
        "auc": float(np.mean(err[None] < AUC_THRESHOLDS_MM[:, None, None]) * 100),
    }
    if activities is not None:
        activities = np.asarray(activities).reshape(-1)
        out["per_activity_pck"] = {
            ACTIVITIES[a - 1]: float(np.mean(err[activities == a] < threshold) * 100)
            for a in np.unique(activities)
            if 1 <= a <= len(ACTIVITIES)
        }
    return out


# --------------------------------------------------------------------------- training set
def read_calibration(path: Path) -> dict[int, Camera]:
    """The cameras of a training sequence's ``camera.calibration`` (Skeletool format), by number.

    Each ``name N`` block has ``size W H``, ``intrinsic`` and ``extrinsic`` (16 numbers each,
    row-major 4 x 4; the extrinsic maps world to camera, mm). Cameras are named ``"N"``.
    """
    try:
        lines = Path(path).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: not a readable camera.calibration ({e})") from None
    blocks: dict[int, dict[str, list[str]]] = {}
    cur: dict[str, list[str]] | None = None
    for line in lines:
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "name":
            try:
                cur = blocks.setdefault(int(parts[1]), {})
            except (IndexError, ValueError):
                raise InputError(f"{path}: bad camera line {line.strip()!r}") from None
        elif cur is not None:
            cur[parts[0]] = parts[1:]
    if not blocks:
        raise InputError(f"{path}: no cameras (expected 'name N' blocks of the Skeletool format)")
    cams = {}
    for n, b in blocks.items():
        try:
            w, h = (int(float(v)) for v in b["size"][:2])
            Ki = np.array(b["intrinsic"][:16], dtype=np.float64).reshape(4, 4)
            E = np.array(b["extrinsic"][:16], dtype=np.float64).reshape(4, 4)
        except (KeyError, ValueError):
            raise InputError(
                f"{path}: camera {n} needs 'size W H', 'intrinsic' and 'extrinsic' (16 numbers each)"
            ) from None
        if not (np.isfinite(Ki).all() and np.isfinite(E).all()) or Ki[0, 0] <= 0 or w <= 0 or h <= 0:
            raise InputError(f"{path}: camera {n} has invalid numbers (size, focal length or NaN)")
        try:
            R = check_rotation(E[:3, :3], f"camera {n}'s extrinsic rotation")
        except (InputError, ValueError) as e:
            raise InputError(f"{path}: {e}") from None
        cams[n] = Camera(K=Ki[:3, :3], R=R, t=E[:3, 3], image_size=(w, h), name=str(n))
    return cams


def _cells(m: dict, key: str, path: Path) -> np.ndarray:
    if key not in m:
        raise InputError(f"{path}: missing key {key!r}")
    return np.asarray(m[key], dtype=object).reshape(-1)


@dataclass(frozen=True)
class MPIINF3DHPSequence:
    """One training sequence (e.g. ``S1/Seq1``) in C of its cameras, N kept frames.

    Attributes:
        name: ``"S1/Seq1"``; subject: ``"S1"``.
        cameras: C :class:`~epipolarpose.camera.Camera` (mm, named by number).
        sources: C videos (``video_N.avi``) or image folders (``video_N/``).
        frames: (N,) 0-based frames of the sources.
        joints2d: (C, N, 17, 2) px; joints3d_camera, joints3d_univ: (C, N, 17, 3) mm in each
            camera's frame; all in our Human3.6M joint order.
    """

    name: str
    subject: str
    cameras: list[Camera]
    sources: list[Path]
    frames: np.ndarray
    joints2d: np.ndarray
    joints3d_camera: np.ndarray
    joints3d_univ: np.ndarray


class MPIINF3DHPTrain:
    """The multi-view training sequences of MPI-INF-3DHP (see the module docstring for the tree).

    Args:
        root: folder holding ``S1`` .. ``S8``.
        subjects, sequences: which (default all eight, ``Seq1`` and ``Seq2``).
        cameras: camera numbers (default :data:`TRAIN_CAMERAS`).
        every: keep frames with ``frame % every == 0``.

    ``self.sequences``: the :class:`MPIINF3DHPSequence` read, in order.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        subjects: Sequence[str] = TRAIN_SUBJECTS,
        sequences: Sequence[str] = TRAIN_SEQUENCES,
        cameras: Sequence[int] = TRAIN_CAMERAS,
        every: int = 1,
    ):
        self.root = root = Path(root)
        if not root.is_dir():
            raise InputError(f"MPI-INF-3DHP training set root {root} is not a folder")
        if every < 1:
            raise InputError(f"every must be >= 1, got {every}")
        self.camera_numbers = [int(c) for c in cameras]
        self.sequences: list[MPIINF3DHPSequence] = []
        for subject in subjects:
            if not (root / subject).is_dir():
                raise InputError(f"MPI-INF-3DHP subject folder {root / subject} is missing")
            for seq in sequences:
                self.sequences.append(self._read_sequence(root / subject / seq, subject, every))
        if not any(len(s.frames) for s in self.sequences):
            raise InputError(f"no MPI-INF-3DHP training frames in {root} (every={every})")

    def _read_sequence(self, sdir: Path, subject: str, every: int) -> MPIINF3DHPSequence:
        import scipy.io

        if not sdir.is_dir():
            raise InputError(f"MPI-INF-3DHP sequence folder {sdir} is missing")
        mat_path, calib_path = sdir / "annot.mat", sdir / "camera.calibration"
        for p in (mat_path, calib_path):
            if not p.is_file():
                raise InputError(f"{p} is missing")
        try:
            m = scipy.io.loadmat(mat_path)
        except NotImplementedError:
            raise InputError(
                f"{mat_path}: MATLAB v7.3 annotations; save them as v5 (scipy reads those)"
            ) from None
        except (OSError, ValueError, scipy.io.matlab.MatReadError) as e:
            raise InputError(f"{mat_path}: not a readable .mat file ({e})") from None
        cells = {k: _cells(m, k, mat_path) for k in ("annot2", "annot3", "univ_annot3")}
        numbers = (
            np.asarray(m["cameras"]).reshape(-1).astype(np.int64)
            if "cameras" in m
            else np.arange(len(cells["annot2"]))
        )
        if not all(len(v) == len(numbers) for v in cells.values()):
            raise InputError(
                f"{mat_path}: annot2/annot3/univ_annot3 and cameras have different camera counts"
            )
        calib = read_calibration(calib_path)
        name = f"{subject}/{sdir.name}"
        cams, sources, arrays = [], [], {k: [] for k in cells}
        n = None
        for c in self.camera_numbers:
            where = np.flatnonzero(numbers == c)
            if not len(where):
                raise InputError(f"{mat_path}: no annotations of camera {c} (it has {numbers.tolist()})")
            if c not in calib:
                raise InputError(f"{calib_path}: no camera {c}")
            for key, d in (("annot2", 2), ("annot3", 3), ("univ_annot3", 3)):
                a = np.asarray(cells[key][where[0]], dtype=np.float64)
                if a.ndim != 2 or a.shape[1] != 28 * d or (n is not None and len(a) != n):
                    raise InputError(
                        f"{mat_path}: {key} of camera {c} has shape {a.shape}, expected "
                        f"({n if n is not None else 'N'}, {28 * d}) like the other cameras"
                    )
                n = len(a)
                arrays[key].append(a.reshape(n, 28, d)[:, MPI28_TO_H36M])
            cams.append(calib[c])
            img = sdir / "imageSequence"
            src = next((p for p in (img / f"video_{c}.avi", img / f"video_{c}") if p.exists()), None)
            if src is None:
                raise InputError(f"{img}: neither video_{c}.avi nor a folder video_{c}/ of its frames")
            sources.append(src)
        frames = np.asarray(m["frames"]).reshape(-1).astype(np.int64) if "frames" in m else np.arange(n or 0)
        if len(frames) != n:
            raise InputError(f"{mat_path}: frames has {len(frames)} entries, the annotations {n}")
        keep = frames % every == 0
        j2, j3, ju = (np.stack(arrays[k])[:, keep] for k in ("annot2", "annot3", "univ_annot3"))
        return MPIINF3DHPSequence(name, subject, cams, sources, frames[keep], j2, j3, ju)
