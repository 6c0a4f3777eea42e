"""Human3.6M as extracted by the common preprocessing scripts (anibali/h36m-fetch layout).

Expected tree (``docs/datasets.md``)::

    ROOT/
      S9/
        rig.json                      # optional: the subject's 4 cameras (our rig.json format,
                                      #   camera names = H36M camera ids); else intrinsics only
        Directions-1/                 # <Action>-<subaction>
          annot.h5                    # or annot.npz with the same keys (no h5py needed)
          imageSequence/
            54138969/img_000001.jpg   # frame numbers are 1-based, as in annot['frame']
            55011271/...

``annot`` keys (all cameras of the sequence concatenated, one row per image):
``pose/2d`` (N, 32, 2) pixels, ``pose/3d`` (N, 32, 3) mm in the camera frame, ``frame`` (N,)
1-based frame numbers, ``camera`` (N,) camera ids (e.g. 54138969), optional
``intrinsics/<camera id>`` (4,) ``[fx, cx, fy, cy]``. 17-joint arrays (already in our order) are
accepted as well as the original 32 joints.

Splits: train = S1, S5, S6, S7, S8; test = S9, S11; evaluation uses every 64th frame
(``(frame - 1) % 64 == 0``, i.e. frames 0, 64, 128, ... counted from 0).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..camera import Camera, Rig
from ..errors import InputError

TRAIN_SUBJECTS: tuple[str, ...] = ("S1", "S5", "S6", "S7", "S8")
TEST_SUBJECTS: tuple[str, ...] = ("S9", "S11")
CAMERA_IDS: tuple[str, ...] = ("54138969", "55011271", "58860488", "60457274")

#: Indices of the standard 17 joints among Human3.6M's 32 (our ``H36M_JOINTS`` order).
H36M32_TO_17 = np.array([0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27])

#: Default frame stride of the evaluation protocol.
EVAL_EVERY = 64


def square_bbox(joints2d: np.ndarray, margin: float = 1.3) -> np.ndarray:
    """Square person boxes around 2D joints (the crop the network sees).

    Args:
        joints2d: (..., J, 2) pixels (NaNs ignored).
        margin: box side / longer side of the joints' bounding box.
    Returns:
        (..., 4) ``[x0, y0, x1, y1]`` pixels, centred on the joints' bounding box.
    """
    kp = np.asarray(joints2d, dtype=np.float64)
    lo, hi = np.nanmin(kp, axis=-2), np.nanmax(kp, axis=-2)
    centre = 0.5 * (lo + hi)
    half = 0.5 * margin * np.max(hi - lo, axis=-1, keepdims=True)
    return np.concatenate([centre - half, centre + half], axis=-1)


def read_annotation(path: Path) -> dict[str, np.ndarray]:
    """Read an ``annot.h5`` (needs h5py) or ``annot.npz`` into a flat dict of arrays."""
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError) as e:
            raise InputError(f"{path}: not a readable .npz ({e})") from None
    try:
        import h5py
    except ImportError:
        raise InputError(
            f"{path}: reading .h5 annotations needs h5py (pip install h5py), "
            "or convert it to annot.npz with the same keys"
        ) from None
    out: dict[str, np.ndarray] = {}
    try:
        with h5py.File(path, "r") as f:
            f.visititems(
                lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None
            )
    except OSError as e:
        raise InputError(f"{path}: not a readable HDF5 file ({e})") from None
    return out


@dataclass(frozen=True)
class H36MSample:
    """One image of Human3.6M.

    Attributes:
        image_path: the frame's image file.
        bbox: (4,) ``[x0, y0, x1, y1]`` square person box in pixels (:func:`square_bbox`).
        joints2d: (17, 2) pixels.
        joints3d_camera: (17, 3) mm in the camera frame.
        camera: the camera (extrinsics from ``rig.json`` when present, else ``R = I, t = 0``).
        subject, sequence, frame: e.g. "S9", "Directions-1", 1 (1-based).
    """

    image_path: Path
    bbox: np.ndarray
    joints2d: np.ndarray
    joints3d_camera: np.ndarray
    camera: Camera
    subject: str
    sequence: str
    frame: int


class H36M:
    """The images of a Human3.6M split with their 17-joint 2D/3D poses and cameras.

    Args:
        root: the dataset root (see the module docstring for the tree).
        split: "train" (S1, S5, S6, S7, S8) or "test" (S9, S11); ignored when ``subjects`` is given.
        subjects: explicit subject folders, e.g. ``["S9"]``.
        every: keep frames with ``(frame - 1) % every == 0`` (default 64 for "test", 1 for "train").
        cameras: camera ids to keep (default all).
        margin: person-box margin for :func:`square_bbox`.

    Arrays over all N samples: ``image_paths`` (list), ``joints2d`` (N, 17, 2), ``joints3d_camera``
    (N, 17, 3), ``bbox`` (N, 4), ``camera_names``, ``subjects``, ``sequences`` (N,) str, ``frames``
    (N,) int; ``cameras[(subject, camera id)]`` -> :class:`Camera`. Indexing gives
    :class:`H36MSample`.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        split: str = "test",
        subjects: Sequence[str] | None = None,
        every: int | None = None,
        cameras: Sequence[str] | None = None,
        margin: float = 1.3,
    ):
        self.root = root = Path(root)
        if not root.is_dir():
            raise InputError(f"Human3.6M root {root} is not a folder")
        if subjects is None:
            if split not in ("train", "test"):
                raise InputError(f"split must be 'train' or 'test', not {split!r}")
            subjects = TRAIN_SUBJECTS if split == "train" else TEST_SUBJECTS
        every = every or (EVAL_EVERY if split == "test" else 1)
        keep_cams = None if cameras is None else {str(c) for c in cameras}
        parts: dict[str, list] = {k: [] for k in ("j2", "j3", "paths", "cams", "subj", "seq", "frame")}
        self.cameras: dict[tuple[str, str], Camera] = {}
        for subject in subjects:
            sdir = root / subject
            if not sdir.is_dir():
                raise InputError(f"Human3.6M subject folder {sdir} is missing")
            rig = Rig.load(sdir / "rig.json") if (sdir / "rig.json").is_file() else None
            seqs = sorted(p for p in sdir.iterdir() if p.is_dir())
            if not seqs:
                raise InputError(f"{sdir} has no sequence folders (<Action>-<subaction>)")
            for seq in seqs:
                self._read_sequence(seq, subject, rig, every, keep_cams, parts)
        if not parts["paths"]:
            raise InputError(
                f"no Human3.6M samples in {root} for subjects {', '.join(subjects)} (every={every})"
            )
        self.image_paths: list[Path] = parts["paths"]
        self.joints2d = np.concatenate(parts["j2"])
        self.joints3d_camera = np.concatenate(parts["j3"])
        self.camera_names = np.array(parts["cams"])
        self.subjects = np.array(parts["subj"])
        self.sequences = np.array(parts["seq"])
        self.frames = np.concatenate(parts["frame"])
        self.bbox = square_bbox(self.joints2d, margin)

    def _read_sequence(
        self,
        seq: Path,
        subject: str,
        rig: Rig | None,
        every: int,
        keep_cams: set[str] | None,
        parts: dict[str, list],
    ) -> None:
        annot_path = next((p for p in (seq / "annot.h5", seq / "annot.npz") if p.is_file()), None)
        if annot_path is None:
            raise InputError(f"{seq} has no annot.h5 or annot.npz")
        a = read_annotation(annot_path)
        for key in ("pose/2d", "pose/3d", "frame", "camera"):
            if key not in a:
                raise InputError(f"{annot_path}: missing key {key!r}")
        j2, j3 = np.asarray(a["pose/2d"], np.float64), np.asarray(a["pose/3d"], np.float64)
        frame, cam = np.asarray(a["frame"]).astype(np.int64).reshape(-1), np.asarray(a["camera"]).reshape(-1)
        n = len(frame)
        for key, arr, d in (("pose/2d", j2, 2), ("pose/3d", j3, 3)):
            if arr.ndim != 3 or arr.shape[0] != n or arr.shape[1] not in (17, 32) or arr.shape[2] != d:
                raise InputError(f"{annot_path}: {key} has shape {arr.shape}, expected ({n}, 32 or 17, {d})")
        if len(cam) != n:
            raise InputError(f"{annot_path}: camera has {len(cam)} rows, frame has {n}")
        if j2.shape[1] == 32:
            j2, j3 = j2[:, H36M32_TO_17], j3[:, H36M32_TO_17]
        cam = np.array(
            [str(int(c)) if np.issubdtype(np.asarray(c).dtype, np.number) else str(c) for c in cam]
        )
        keep = (frame - 1) % every == 0
        if keep_cams is not None:
            keep &= np.isin(cam, list(keep_cams))
        for c in np.unique(cam[keep]):
            sel = keep & (cam == c)
            img_dir = seq / "imageSequence" / c
            if not img_dir.is_dir():
                raise InputError(f"image folder {img_dir} is missing (annotated in {annot_path})")
            paths = [img_dir / f"img_{f:06d}.jpg" for f in frame[sel]]
            if (subject, c) not in self.cameras:
                self.cameras[(subject, c)] = self._camera(subject, c, rig, a, paths[0], annot_path)
            parts["j2"].append(j2[sel])
            parts["j3"].append(j3[sel])
            parts["paths"] += paths
            parts["cams"] += [c] * len(paths)
            parts["subj"] += [subject] * len(paths)
            parts["seq"] += [seq.name] * len(paths)
            parts["frame"].append(frame[sel])

    @staticmethod
    def _camera(
        subject: str, cam: str, rig: Rig | None, a: dict, first_image: Path, annot_path: Path
    ) -> Camera:
        if rig is not None:
            if cam not in rig.names:
                raise InputError(
                    f"{subject}/rig.json has no camera named {cam} (it has {', '.join(rig.names)})"
                )
            return rig[rig.names.index(cam)]
        key = f"intrinsics/{cam}"
        if key not in a:
            raise InputError(f"{annot_path}: no {key!r} and no {subject}/rig.json: camera {cam} is unknown")
        fx, cx, fy, cy = np.asarray(a[key], np.float64).reshape(-1)[:4]
        image = cv2.imread(str(first_image), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise InputError(f"image {first_image} is missing or unreadable")
        h, w = image.shape[:2]
        return Camera(K=[[fx, 0, cx], [0, fy, cy], [0, 0, 1]], image_size=(w, h), name=cam)

    def __len__(self) -> int:
        return len(self.image_paths)

    def __getitem__(self, i: int) -> H36MSample:
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        subject, cam = str(self.subjects[i]), str(self.camera_names[i])
        return H36MSample(
            self.image_paths[i],
            self.bbox[i],
            self.joints2d[i],
            self.joints3d_camera[i],
            self.cameras[(subject, cam)],
            subject,
            str(self.sequences[i]),
            int(self.frames[i]),
        )

    def __iter__(self) -> Iterator[H36MSample]:
        return (self[i] for i in range(len(self)))
