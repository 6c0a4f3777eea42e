"""The MPI-INF-3DHP test set and its PCK / AUC protocol.

Expected tree (as distributed, ``mpi_inf_3dhp_test_set/``)::

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
