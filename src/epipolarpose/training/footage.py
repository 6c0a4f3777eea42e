"""Real images as a training source: videos, image folders or dataset images, cropped once.

A :class:`ViewTable` says where every view of every multi-view frame comes from (a frame of a
camera's video or image folder, or an image file) and which 2D joints its person box is drawn
around. :func:`build_crop_cache` decodes each source **once**, crops every view the way the
renderer crops (:func:`~epipolarpose.synthetic.render.crop_affine`: a square box centred on the
joints' bounding box, ``margin`` x its longer side) with some context around it, and stores the
crops as one memory-mapped ``.npy`` (reused while its inputs are unchanged). :class:`FootageDataset`
then serves whole multi-view frames from the cache — in data-loader workers, with augmentation
(scale, shift, in-plane rotation, horizontal flip with left/right exchange, colour) — and the same
targets as the rendered dataset (:func:`~epipolarpose.training.targets.make_targets`, scale-free,
in each camera's frame).

For footage (``epipolarpose train --videos ... --poses2d ... --labels ...``), :func:`footage_table`
maps ``labels.npz``'s timeline to video frames: label frame ``f`` of camera ``c`` is detection
frame ``f - offsets[c]`` (the ``--sync auto`` offsets), which is video frame ``frame_index[...]``
of ``poses2d.npz`` (``detect --start/--stride``). The box of a view is drawn around its detected
joints (what prediction does too), else around its label's projection.

Without augmentation the crop of a view is exactly the renderer's crop of the same joints: the
cache holds it with ``pad`` pixels of context on every side, and the crop is a pixel-aligned
window of it (no second resampling).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from ..errors import InputError
from ..formats import Labels, Poses2D
from ..skeleton import FLIP_PERMUTATION
from ..synthetic.render import affine_scale, crop_affine
from ..video import iter_frames, probe
from .targets import keypoint_targets, make_targets, pose_to_crop_pixels

__all__ = [
    "BOX_MIN_SCORE",
    "CACHE_VERSION",
    "MIN_BOX_JOINTS",
    "CropCache",
    "FootageAugment",
    "FootageDataset",
    "FootageLabels",
    "ViewTable",
    "build_crop_cache",
    "footage_labels",
    "footage_table",
    "warp_crop",
]

CACHE_VERSION = 1
#: A view's person box needs at least this many detected (or labelled) joints.
MIN_BOX_JOINTS = 4
#: Detected joints below this score are not used (person box, 2D targets).
BOX_MIN_SCORE = 0.3


def _to3(A: np.ndarray) -> np.ndarray:
    """(..., 2, 3) affines -> (..., 3, 3)."""
    A = np.asarray(A, dtype=np.float64)
    out = np.zeros(A.shape[:-2] + (3, 3))
    out[..., :2, :] = A
    out[..., 2, 2] = 1.0
    return out


def warp_crop(
    image: np.ndarray, affine: np.ndarray, size: int, border: int = cv2.BORDER_CONSTANT
) -> np.ndarray:
    """The square crop ``affine`` (image -> crop pixels) maps ``image`` to, ``size`` x ``size``.

    Strong reductions first halve the image (``cv2.pyrDown``, which low-passes) until the remaining
    scale is at least 0.5, so thin limbs do not alias away.
    """
    A = np.asarray(affine, dtype=np.float64).copy()
    img = image
    while affine_scale(A) < 0.5 and min(img.shape[:2]) >= 4:
        img = cv2.pyrDown(img)
        A[:, :2] *= 2.0  # new pixel x' sits at old pixel 2 x'
    return cv2.warpAffine(img, A, (size, size), flags=cv2.INTER_LINEAR, borderMode=border, borderValue=0)


@dataclass
class ViewTable:
    """Where every view (camera ``c``, frame ``f``) of a multi-view set comes from.

    Attributes:
        names: C camera names.
        image_size: (C, 2) (width, height) every view's image must have.
        box_keypoints: (C, F, J, 2) pixels the person box is drawn around (NaN: unknown joint; a
            view with fewer than :data:`MIN_BOX_JOINTS` known joints has no crop).
        sources: C video files or image folders, with ``frame_index``; or None with ``paths``.
            With ``segment``, each camera's entry is a list of S sources (one per recorded
            sequence, e.g. a dataset's ``S1/Seq1``, ``S1/Seq2``, ...).
        frame_index: (C, F) int frame of the view's source (-1: the view does not exist).
        paths: (C, F) object array of image files (None: no view), instead of sources.
        segment: (F,) int, which of every camera's S sources frame ``f`` comes from (None: one
            source per camera).
    """

    names: list[str]
    image_size: np.ndarray
    box_keypoints: np.ndarray
    sources: list[Path] | list[list[Path]] | None = None
    frame_index: np.ndarray | None = None
    paths: np.ndarray | None = None
    segment: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.image_size = np.asarray(self.image_size, dtype=np.int64)
        self.box_keypoints = np.asarray(self.box_keypoints, dtype=np.float64)
        if (self.sources is None) == (self.paths is None):
            raise ValueError("a ViewTable needs either sources + frame_index or paths")
        if self.segment is not None:
            self.segment = np.asarray(self.segment, dtype=np.int64).reshape(-1)
            if self.sources is None or self.segment.shape != (self.num_frames,):
                raise ValueError("segment needs sources and one entry per frame")

    def camera_sources(self, c: int) -> list[tuple[Path, np.ndarray]]:
        """``(source, frames)`` of camera ``c``: each of its sources and the (F,) bool frames
        that come from it."""
        if self.segment is None:
            return [(Path(self.sources[c]), np.ones(self.num_frames, bool))]
        return [(Path(src), self.segment == s) for s, src in enumerate(self.sources[c])]

    @property
    def num_cameras(self) -> int:
        return self.box_keypoints.shape[0]

    @property
    def num_frames(self) -> int:
        return self.box_keypoints.shape[1]

    def has_box(self) -> np.ndarray:
        """(C, F) bool: enough known joints for a person box."""
        return np.isfinite(self.box_keypoints).all(-1).sum(-1) >= MIN_BOX_JOINTS

    def exists(self) -> np.ndarray:
        """(C, F) bool: the view has an image."""
        if self.paths is not None:
            return np.vectorize(lambda p: p is not None, otypes=[bool])(self.paths)
        return np.asarray(self.frame_index) >= 0

    def present(self) -> np.ndarray:
        """(C, F) bool: views that get a crop (an image and a person box)."""
        return self.exists() & self.has_box()

    def key(self) -> str:
        """A hash of everything the crops depend on (sources and their files' size and mtime)."""
        h = hashlib.sha1()

        def stamp(p: Path) -> str:
            try:
                st = Path(p).stat()
                return f"{Path(p).resolve()}:{st.st_size}:{st.st_mtime_ns}"
            except OSError:
                return f"{p}:missing"

        if self.sources is not None:
            for c in range(self.num_cameras):
                for s, _ in self.camera_sources(c):
                    h.update(stamp(s).encode())
                    if s.is_dir():  # an image folder: its files too
                        for f in sorted(s.iterdir()):
                            h.update(stamp(f).encode())
            h.update(np.ascontiguousarray(self.frame_index, dtype=np.int64).tobytes())
            if self.segment is not None:
                h.update(np.ascontiguousarray(self.segment).tobytes())
        else:
            for p in self.paths.reshape(-1):
                h.update((stamp(p) if p is not None else "-").encode())
        h.update(np.ascontiguousarray(np.nan_to_num(self.box_keypoints, nan=-1e9)).tobytes())
        h.update(np.ascontiguousarray(self.image_size).tobytes())
        return h.hexdigest()


@dataclass
class CropCache:
    """Crops of every view with context, memory-mapped.

    Attributes:
        path: the cache folder (``crops.npy``, ``affines.npy``, ``present.npy``, ``meta.json``).
        size: side S of the network's crop; the stored crops have side ``S + 2 * pad``.
        pad: context pixels on every side.
        affines: (C, F, 2, 3) image pixels -> **network crop** pixels (the renderer's crop).
        present: (C, F) bool views that have a crop.
    """

    path: Path
    size: int
    pad: int
    affines: np.ndarray
    present: np.ndarray
    _crops: np.ndarray | None = field(default=None, repr=False)

    @property
    def crops(self) -> np.ndarray:
        """(C, F, S + 2 pad, S + 2 pad, 3) uint8 RGB, opened read-only on first use (per process)."""
        if self._crops is None:
            self._crops = np.load(self.path / "crops.npy", mmap_mode="r")
        return self._crops

    def __getstate__(self) -> dict:  # data-loader workers open their own memory map
        d = dict(self.__dict__)
        d["_crops"] = None
        return d

    def crop(self, c: int, f: int) -> np.ndarray:
        """The network crop (S, S, 3) of a view without augmentation (a window of the stored one)."""
        p, S = self.pad, self.size
        return np.asarray(self.crops[c, f, p : p + S, p : p + S])

    @classmethod
    def open(cls, path: Path) -> CropCache:
        meta = json.loads((path / "meta.json").read_text())
        return cls(
            path,
            int(meta["size"]),
            int(meta["pad"]),
            np.load(path / "affines.npy"),
            np.load(path / "present.npy"),
        )


def _read_meta(path: Path) -> dict | None:
    try:
        return json.loads((path / "meta.json").read_text())
    except (OSError, ValueError):
        return None


def check_sources(table: ViewTable) -> None:
    """:class:`InputError` before any decoding: missing sources, a video or folder with fewer
    frames than the table needs, or frames of another size than the detections'."""
    if table.sources is None:
        for p in table.paths.reshape(-1):
            if p is not None and not Path(p).is_file():
                raise InputError(f"image {p} is missing")
        return
    present = table.present()
    for c in range(table.num_cameras):
        for src, frames in table.camera_sources(c):
            sel = present[c] & frames
            if not sel.any():
                continue
            need = int(np.asarray(table.frame_index)[c, sel].max())
            info = probe(src)
            if need >= info.num_frames:
                raise InputError(
                    f"{src}: has {info.num_frames} frames but the labels/detections need frame {need} "
                    f"(camera {table.names[c]}); the video is shorter than its labels (wrong file, or trimmed?)"
                )
            if tuple(info.image_size) != tuple(int(v) for v in table.image_size[c]):
                w, h = table.image_size[c]
                raise InputError(
                    f"{src}: frames are {info.image_size[0]}x{info.image_size[1]} but the detections of "
                    f"camera {table.names[c]} are for {w}x{h} images"
                )


def build_crop_cache(
    table: ViewTable,
    cache_dir: str | os.PathLike,
    size: int,
    *,
    margin: float = 1.3,
    context: float = 1.5,
    progress: bool = False,
) -> CropCache:
    """Decode every source once and store the crops of every present view (see the module doc).

    Reuses ``cache_dir`` when its ``meta.json`` matches the table and settings; otherwise writes a
    new cache next to it and moves it in place only when complete (a failed run leaves none).

    Args:
        table: the views.
        cache_dir: the cache folder.
        size: the network's crop side S.
        margin: person box side / longer side of the joints' bounding box (the renderer's 1.3).
        context: stored side / crop side (room for scale, shift and rotation augmentation).
    Raises:
        InputError: missing or short sources, frames of an unexpected size, unreadable images.
    """
    cache_dir = Path(cache_dir)
    pad = int(round(size * (context - 1.0) / 2.0))
    Sc = size + 2 * pad
    key = {"version": CACHE_VERSION, "table": table.key(), "size": size, "pad": pad, "margin": margin}
    meta = _read_meta(cache_dir)
    if meta is not None and meta.get("key") == key and (cache_dir / "crops.npy").is_file():
        return CropCache.open(cache_dir)
    check_sources(table)
    C, F = table.num_cameras, table.num_frames
    present = table.present()
    A = np.zeros((C, F, 2, 3))
    if present.any():
        A[present] = crop_affine(table.box_keypoints[present], size, margin)
    tmp = cache_dir.with_name(f"{cache_dir.name}.tmp{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        crops = np.lib.format.open_memmap(
            tmp / "crops.npy", mode="w+", dtype=np.uint8, shape=(C, F, Sc, Sc, 3)
        )
        A_cache = A.copy()
        A_cache[..., 2] += pad
        bar = tqdm(total=int(present.sum()), desc="crop", unit="view", disable=not progress, leave=False)
        for c in range(C):
            for f, frame in _frames_of_camera(table, c, present[c]):
                crops[c, f] = cv2.cvtColor(warp_crop(frame, A_cache[c, f], Sc), cv2.COLOR_BGR2RGB)
                bar.update(1)
        bar.close()
        crops.flush()
        del crops
        np.save(tmp / "affines.npy", A)
        np.save(tmp / "present.npy", present)
        (tmp / "meta.json").write_text(json.dumps({"key": key, "size": size, "pad": pad, "C": C, "F": F}))
        if cache_dir.exists():
            shutil.rmtree(cache_dir)
        os.replace(tmp, cache_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return CropCache.open(cache_dir)


def _frames_of_camera(table: ViewTable, c: int, present: np.ndarray):
    """Yield ``(f, BGR frame)`` for every present view of camera ``c``, decoding each source once."""
    size = tuple(int(v) for v in table.image_size[c])
    if table.paths is not None:
        for f in np.flatnonzero(present):
            p = table.paths[c, f]
            img = cv2.imread(str(p), cv2.IMREAD_COLOR)
            if img is None:
                raise InputError(f"image {p} is missing or unreadable")
            if (img.shape[1], img.shape[0]) != size:
                raise InputError(f"image {p} is {img.shape[1]}x{img.shape[0]}, expected {size[0]}x{size[1]}")
            yield int(f), img
        return
    for src, frames in table.camera_sources(c):
        yield from _frames_of_source(table, c, src, present & frames, size)


def _frames_of_source(table: ViewTable, c: int, src: Path, present: np.ndarray, size: tuple[int, int]):
    """Yield ``(f, BGR frame)`` for the ``present`` views of camera ``c`` that come from ``src``."""
    idx = np.asarray(table.frame_index[c])
    wanted: dict[int, list[int]] = {}
    for f in np.flatnonzero(present):
        wanted.setdefault(int(idx[f]), []).append(int(f))
    if not wanted:
        return
    lo, hi = min(wanted), max(wanted)
    stride = int(np.gcd.reduce(np.diff(sorted(wanted)))) if len(wanted) > 1 else 1
    got = set()
    for i, frame in iter_frames(src, start=lo, stop=hi + 1, stride=stride):
        if i in wanted:
            if (frame.shape[1], frame.shape[0]) != size:
                raise InputError(
                    f"{src}: frame {i} is {frame.shape[1]}x{frame.shape[0]}, expected {size[0]}x{size[1]}"
                )
            got.add(i)
            for f in wanted[i]:
                yield f, frame
    missing = sorted(set(wanted) - got)
    if missing:
        raise InputError(
            f"{src}: the video ends before frame {missing[0]} that the labels/detections need "
            f"({len(missing)} frames missing, camera {table.names[c]}); the video is shorter than its labels"
        )


@dataclass(frozen=True)
class FootageAugment:
    """Augmentation of cached crops (all off with ``enabled=False``, the evaluation crop).

    Attributes:
        scale: box side multiplied by ``1 + U(-scale, scale)``.
        shift: box centre moved by ``U(-shift, shift)`` of its side, in x and y.
        rotation_deg: in-plane rotation ``U(-rotation_deg, rotation_deg)``.
        flip: probability of a horizontal flip (left/right joints exchanged,
            :data:`~epipolarpose.skeleton.FLIP_PERMUTATION`).
        colour: gain ``1 + U(-colour, colour)`` and per-channel tint ``1 + U(-colour/2, colour/2)``.
    """

    enabled: bool = True
    scale: float = 0.1
    shift: float = 0.05
    rotation_deg: float = 10.0
    flip: float = 0.5
    colour: float = 0.2


def augment_affine(rng: np.random.Generator, size: int, aug: FootageAugment) -> tuple[np.ndarray, bool]:
    """A random (3, 3) map from the network crop to the augmented crop, and whether it flips."""
    S = float(size)
    c = np.array([S / 2.0, S / 2.0])
    s = 1.0 + rng.uniform(-aug.scale, aug.scale)
    shift = rng.uniform(-aug.shift, aug.shift, 2) * S
    th = np.radians(rng.uniform(-aug.rotation_deg, aug.rotation_deg))
    flip = bool(rng.uniform() < aug.flip)
    R = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]]) / s
    M = np.eye(3)
    M[:2, :2] = R
    M[:2, 2] = c - R @ (c + shift)  # box centre (c + shift) -> crop centre, scaled and rotated about it
    if flip:
        F = np.array([[-1.0, 0.0, S - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
        M = F @ M
    return M, flip


class FootageDataset(Dataset):
    """Multi-view frames of cached crops with targets (the items of
    :class:`~epipolarpose.training.data.MultiViewDataset`).

    ``dataset[i]`` is frame ``frames[i]``: ``images`` (C, S, S, 3) uint8 RGB (zeros for a missing
    view); ``target``, ``mask`` (C, J, 3); ``affine`` (C, 2, 3) image -> crop (augmentation
    included); ``K`` (C, 3, 3), ``dist`` (C, 5); ``gt_camera`` (C, J, 3) (NaN without ground
    truth); ``frame`` () int64. ``K``/``dist`` are per camera (C, 3, 3) or per view (C, F, 3, 3)
    (a dataset whose subjects have different cameras).

    Targets by ``supervision``: ``2d`` — the 2D ``keypoints`` (depth masked); otherwise the
    camera-frame 3D ``labels`` (any scale, :func:`make_targets`) with ``valid``. A flipped view gets
    its joints' left/right exchanged.
    """

    def __init__(
        self,
        cache: CropCache,
        supervision: str,
        *,
        labels_camera: np.ndarray | None = None,
        labels_valid: np.ndarray | None = None,
        K: np.ndarray | None = None,
        dist: np.ndarray | None = None,
        keypoints: np.ndarray | None = None,
        keypoints_valid: np.ndarray | None = None,
        gt_camera: np.ndarray | None = None,
        frames: np.ndarray | None = None,
        augment: FootageAugment = FootageAugment(),
        depth_range: float = 1.0,
        seed: int = 0,
    ):
        self.cache = cache
        self.supervision = supervision
        C, F = cache.present.shape
        if supervision == "2d":
            if keypoints is None:
                raise ValueError("2d supervision needs keypoints")
            self.keypoints = np.asarray(keypoints, np.float64)
            kv = np.isfinite(self.keypoints).all(-1)
            self.keypoints_valid = kv if keypoints_valid is None else kv & np.asarray(keypoints_valid, bool)
        elif labels_camera is None:
            raise ValueError(f"{supervision} supervision needs labels")
        self.labels_camera = None if labels_camera is None else np.asarray(labels_camera, np.float64)
        J = (self.labels_camera if self.labels_camera is not None else self.keypoints).shape[2]
        self.labels_valid = None if labels_valid is None else np.asarray(labels_valid, bool)
        self.K = np.tile(np.eye(3), (C, 1, 1)) if K is None else np.asarray(K, np.float64)
        self.dist = np.zeros((C, 5)) if dist is None else np.asarray(dist, np.float64)
        self.gt_camera = (
            np.full((C, F, J, 3), np.nan, np.float32)
            if gt_camera is None
            else np.asarray(gt_camera, np.float32)
        )
        self.frames = np.arange(F) if frames is None else np.asarray(frames, np.int64)
        self.augment = augment
        self.depth_range = depth_range
        self.seed = int(seed)
        self.epoch = 0
        self.num_joints = J

    def __len__(self) -> int:
        return len(self.frames)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _K(self, f: int) -> np.ndarray:
        """(C, 3, 3) intrinsics of frame ``f`` (``K`` is per camera, or per view (C, F, 3, 3))."""
        return self.K[:, f] if self.K.ndim == 4 else self.K

    def _dist(self, f: int) -> np.ndarray:
        return self.dist[:, f] if self.dist.ndim == 3 else self.dist

    def views(self, f: int, rng: np.random.Generator | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Images (C, S, S, 3), affines (C, 2, 3) image -> crop and flips (C,) of frame ``f``."""
        cache, S = self.cache, self.cache.size
        C = cache.present.shape[0]
        images = np.zeros((C, S, S, 3), np.uint8)
        A = cache.affines[:, f].astype(np.float64).copy()
        flips = np.zeros(C, bool)
        for c in range(C):
            if not cache.present[c, f]:
                continue
            if rng is None:
                images[c] = cache.crop(c, f)
                continue
            M, flips[c] = augment_affine(rng, S, self.augment)
            A_total = M @ _to3(A[c])
            A_cache = _to3(A[c])
            A_cache[:2, 2] += cache.pad
            T = (A_total @ np.linalg.inv(A_cache))[:2]
            img = cv2.warpAffine(
                np.asarray(cache.crops[c, f]),
                T,
                (S, S),
                flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_REPLICATE,
            )
            col = self.augment.colour
            if col > 0:
                gain = rng.uniform(1 - col, 1 + col) * rng.uniform(1 - col / 2, 1 + col / 2, 3)
                img = np.clip(img.astype(np.float32) * gain.astype(np.float32), 0, 255).astype(np.uint8)
            images[c] = img
            A[c] = A_total[:2]
        return images, A, flips

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        f = int(self.frames[index])
        aug = self.augment.enabled
        rng = np.random.default_rng([self.seed, self.epoch, f]) if aug else None
        images, A, flips = self.views(f, rng)
        S = self.cache.size
        present = self.cache.present[:, f]
        if self.supervision == "2d":
            valid = self.keypoints_valid[:, f] & present[:, None]
            target, mask = keypoint_targets(self.keypoints[:, f], A, S, valid)
        else:
            valid = np.broadcast_to(present[:, None], (len(present), self.num_joints)).copy()
            if self.labels_valid is not None:
                valid &= self.labels_valid[f][None]
            with np.errstate(invalid="ignore"):
                target, mask = make_targets(
                    self.labels_camera[:, f],
                    self._K(f),
                    self._dist(f),
                    np.where(present[:, None, None], A, np.eye(2, 3)),
                    S,
                    depth_range=self.depth_range,
                    valid=valid,
                )
        gt = self.gt_camera[:, f].copy()
        if flips.any():
            target[flips] = target[flips][:, FLIP_PERMUTATION]
            mask[flips] = mask[flips][:, FLIP_PERMUTATION]
            gt[flips] = gt[flips][:, FLIP_PERMUTATION]
        return {
            "images": torch.from_numpy(images),
            "target": torch.from_numpy(target),
            "mask": torch.from_numpy(mask),
            "affine": torch.from_numpy(A.astype(np.float32)),
            "K": torch.from_numpy(self._K(f).astype(np.float32)),
            "dist": torch.from_numpy(self._dist(f).astype(np.float32)),
            "gt_camera": torch.from_numpy(gt),
            "frame": torch.tensor(f, dtype=torch.int64),
        }

    def throughput(self, items: int = 16) -> float:
        """Images/s of this source alone (cached crops -> augmented views + targets), in this process."""
        import time

        n = min(items, len(self))
        t0 = time.perf_counter()
        imgs = 0
        for i in range(n):
            imgs += int(self.cache.present[:, self.frames[i % len(self)]].sum())
            self[i % len(self)]
        return imgs / max(time.perf_counter() - t0, 1e-9)


# --- footage: videos + poses2d.npz + labels.npz -> views ------------------------------------------


@dataclass
class FootageLabels:
    """Labels of footage in the form the dataset needs.

    Attributes:
        poses_camera: (C, F, J, 3) camera-frame labels (any scale), NaN where invalid.
        valid: (F, J) bool.
        K, dist: (C, 3, 3), (C, 5) of the rig the labels were made with.
        offsets: (C,) int frames added to each camera's detection index (``--sync auto``).
    """

    poses_camera: np.ndarray
    valid: np.ndarray
    K: np.ndarray
    dist: np.ndarray
    offsets: np.ndarray


def footage_labels(labels: Labels, poses2d: Poses2D, src: str = "labels.npz") -> FootageLabels:
    """Check ``labels`` against the detections they were made from and collect what training needs.

    Raises:
        InputError: another camera or frame count than ``poses2d``, offsets of the wrong length,
            labels without a rig and detections without intrinsics.
    """
    from ..camera import Rig

    C, F = poses2d.num_cameras, poses2d.num_frames
    Cl, Fl = labels.poses3d_camera.shape[:2]
    if Cl != C:
        raise InputError(
            f"{src} has {Cl} cameras but the footage has {C} ({', '.join(poses2d.camera_names)})"
        )
    if Fl != F:
        raise InputError(
            f"{src} has {Fl} frames but the detections have {F}: the labels were made from other detections"
        )
    offsets = np.asarray(labels.extra.get("offsets", np.zeros(C)), dtype=np.int64).reshape(-1)
    if offsets.shape != (C,):
        raise InputError(f"{src}: 'offsets' has {offsets.size} values for {C} cameras")
    if "rig_json" in labels.extra:
        rig = Rig.from_json(str(labels.extra["rig_json"]), source=f"{src}:rig_json")
        if len(rig) != C:
            raise InputError(f"{src}: its rig has {len(rig)} cameras, the labels {C}")
        K, dist = rig.K, rig.dist
    elif poses2d.K is not None:
        K = poses2d.K
        dist = poses2d.dist if poses2d.dist is not None else np.zeros((C, 5))
    else:
        raise InputError(f"{src} has no rig ('rig_json') and the detections no intrinsics ('K')")
    pc = np.where(labels.valid[None, ..., None], labels.poses3d_camera, np.nan)
    return FootageLabels(pc.astype(np.float64), labels.valid.copy(), np.asarray(K), np.asarray(dist), offsets)


def footage_table(
    sources: Sequence[str | os.PathLike],
    poses2d: Poses2D,
    labels: FootageLabels | None = None,
    src: str = "poses2d.npz",
    min_score: float = BOX_MIN_SCORE,
) -> tuple[ViewTable, np.ndarray]:
    """The views of footage on the labels' timeline (the detections' without labels).

    Joints detected with a score below ``min_score`` count as missing, for the person box and the
    2D targets (MediaPipe scores the legs it guesses behind a desk near 0 and places them outside
    the image; a box around them would be half empty).

    Returns:
        the table and the (C, F, J, 2) detections of every view on that timeline (NaN where none).
    Raises:
        InputError: another number of sources than cameras in the detections.
    """
    C, F = poses2d.num_cameras, poses2d.num_frames
    sources = [Path(s) for s in sources]
    if len(sources) != C:
        raise InputError(
            f"{len(sources)} videos/image folders given but {src} has {C} cameras "
            f"({', '.join(poses2d.camera_names)}); give one per camera, in that order"
        )
    offsets = np.zeros(C, np.int64) if labels is None else labels.offsets
    det_frame = np.arange(F)[None] - offsets[:, None]  # (C, F) detection frame of each label frame
    ok = (det_frame >= 0) & (det_frame < F)
    moved = poses2d.take_frames(det_frame)
    seen = moved.observed() & (moved.scores >= min_score)
    kp = np.where(seen[..., None], moved.keypoints, np.nan).astype(np.float64)
    frame_index = np.asarray(poses2d.extra.get("frame_index", np.arange(F)), dtype=np.int64).reshape(-1)
    if frame_index.shape != (F,):
        raise InputError(f"{src}: 'frame_index' has {frame_index.size} entries for {F} frames")
    video_frame = np.where(ok, frame_index[np.clip(det_frame, 0, F - 1)], -1)
    box = kp.copy()
    if labels is not None:  # views without enough detected joints: the label's projection
        few = np.isfinite(kp).all(-1).sum(-1) < MIN_BOX_JOINTS
        if few.any():
            eye = np.broadcast_to(np.eye(2, 3), (C, F, 2, 3))
            with np.errstate(invalid="ignore"):
                proj = pose_to_crop_pixels(labels.poses_camera, labels.K[:, None], labels.dist[:, None], eye)
            box = np.where(few[..., None, None], proj[..., :2], kp)
    table = ViewTable(
        names=list(poses2d.camera_names),
        image_size=poses2d.image_size,
        box_keypoints=box,
        sources=sources,
        frame_index=video_frame,
    )
    return table, kp


def frames_with_people(present: np.ndarray, mask_of: Callable[[int], np.ndarray]) -> np.ndarray:
    """Frames (indices) where at least one present view has a target."""
    keep = [f for f in range(present.shape[1]) if present[:, f].any() and mask_of(f).any()]
    return np.asarray(keep, dtype=np.int64)
