"""One detection run: every camera's video, image folder or imported detections -> one
:class:`~epipolarpose.formats.Poses2D` (what ``epipolarpose detect`` writes).

    poses2d = detect_sources([Path("left.mp4"), Path("right.mp4")], DetectOptions(stride=2))

Stages: :func:`camera_names` (file/folder stems), :func:`import_detections` or
:func:`detect_videos` (one :class:`CameraDetections` per camera), :func:`trim_to_common_length`
(cameras with different frame counts), :func:`match_intrinsics` (K/dist/sizes of an intrinsics
rig). Input problems raise :class:`~epipolarpose.errors.InputError`.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
from tqdm import tqdm

from ..camera import Rig
from ..errors import InputError
from ..formats import Poses2D
from ..video import VideoInfo, iter_frames, probe
from . import get_detector
from .base import Detector
from .importers import load_coco, load_openpose

__all__ = [
    "IMPORT_FORMATS",
    "CameraDetections",
    "DetectOptions",
    "camera_names",
    "detect_sources",
    "detect_videos",
    "import_detections",
    "match_intrinsics",
    "trim_to_common_length",
]

IMPORT_FORMATS = ("coco", "openpose")

#: Called with each warning message (default: :func:`warnings.warn`).
WarnFn = Callable[[str], None]


@dataclass(frozen=True)
class DetectOptions:
    """How to detect (``epipolarpose detect --help``).

    Attributes:
        detector: ``mediapipe``, ``network`` (needs ``checkpoint``) or ``import`` (existing detections).
        checkpoint: PoseNet checkpoint of the ``network`` detector.
        import_format: ``coco`` or ``openpose`` (with ``detector="import"``).
        start, stop, stride: the frames used, ``range(start, stop or the end, stride)``.
        intrinsics: rig.json (or a :class:`Rig`) whose cameras give K/dist/image sizes; matched by
            name, else by order.
        image_size: (width, height) px for imported detections without image sizes.
        fps: frame rate (default: the first video's).
        strict: error (instead of trimming) when cameras have different frame counts.
        batch: frames per detector call.
    """

    detector: str = "mediapipe"
    checkpoint: Path | None = None
    import_format: str = "coco"
    start: int = 0
    stop: int | None = None
    stride: int = 1
    intrinsics: Path | Rig | None = None
    image_size: tuple[int, int] | None = None
    fps: float | None = None
    strict: bool = False
    batch: int = 16


class CameraDetections(NamedTuple):
    """One camera's detections: keypoints (F, 17, 2) px, scores (F, 17), image size (w, h) or None."""

    keypoints: np.ndarray
    scores: np.ndarray
    image_size: tuple[int, int] | None


def camera_names(sources: Sequence[Path]) -> list[str]:
    """File stems / folder names, made unique with ``_<index>`` suffixes when two are equal."""
    names = [p.stem if p.is_file() else p.name for p in sources]
    if len(set(names)) != len(names):
        names = [f"{n}_{i}" for i, n in enumerate(names)]
    return names


def import_detections(sources: Sequence[Path], options: DetectOptions) -> list[CameraDetections]:
    """Read one COCO JSON file or OpenPose JSON folder per camera, keeping ``start:stop:stride``."""
    if options.import_format not in IMPORT_FORMATS:
        raise InputError(f"--import-format must be coco or openpose, got {options.import_format!r}")
    out = []
    for p in sources:
        if options.import_format == "coco":
            kp, sc, _, size = load_coco(p)
        else:
            kp, sc, _ = load_openpose(p)
            size = None
        frames = slice(options.start, options.stop, options.stride)
        out.append(CameraDetections(kp[frames], sc[frames], size))
    return out


def _frame_range(num_frames: int, options: DetectOptions) -> range:
    """The frame numbers used of a video with ``num_frames`` frames."""
    stop = num_frames if options.stop is None else min(options.stop, num_frames)
    return range(options.start, stop, options.stride)


def _detect_one(
    detector: Detector, info: VideoInfo, options: DetectOptions, bar: tqdm
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Batches of ``options.batch`` frames of one video through ``detector`` -> [keypoints, scores]
    per batch (empty if no frame could be read); ``bar`` counts the frames."""
    kps: list[np.ndarray] = []
    scs: list[np.ndarray] = []
    buf: list[np.ndarray] = []

    def flush() -> None:
        k, s = detector.detect(np.stack(buf))
        kps.append(k)
        scs.append(s)
        bar.update(len(buf))
        buf.clear()

    for _, frame in iter_frames(info.path, options.start, options.stop, options.stride):
        if frame.shape[1::-1] != info.image_size:
            raise InputError(f"{info.path}: frame size changes within the video")
        buf.append(frame)
        if len(buf) == options.batch:
            flush()
    if buf:
        flush()
    return kps, scs


def detect_videos(
    sources: Sequence[Path], names: Sequence[str], options: DetectOptions, *, progress: bool = True
) -> tuple[list[CameraDetections], float | None]:
    """Run ``options.detector`` on every camera's video or image folder (a new detector per camera).

    Returns:
        one :class:`CameraDetections` per camera and the first video's frame rate (None if unknown).
    """
    infos = [probe(p) for p in sources]
    ranges = [len(_frame_range(info.num_frames, options)) for info in infos]
    if min(ranges) == 0:
        bad = names[int(np.argmin(ranges))]
        raise InputError(f"camera {bad!r}: no frames in the range start={options.start}, stop={options.stop}")
    out = []
    disable = None if progress else True  # None: tqdm shows the bar on a terminal only
    with tqdm(total=sum(ranges), desc="detect", unit="frame", file=None, disable=disable) as bar:
        for c, info in enumerate(infos):
            detector = get_detector(options.detector, checkpoint=options.checkpoint)
            detector.reset()
            kps, scs = _detect_one(detector, info, options, bar)
            if not kps:
                raise InputError(f"camera {names[c]!r} ({info.path}): no frames could be read")
            out.append(CameraDetections(np.concatenate(kps), np.concatenate(scs), info.image_size))
    return out, infos[0].fps


def trim_to_common_length(
    cameras: Sequence[CameraDetections],
    names: Sequence[str],
    *,
    strict: bool = False,
    warn: WarnFn | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Stack the cameras' detections, cut to the shortest camera.

    Returns:
        keypoints (C, F, 17, 2) and scores (C, F, 17).
    Raises:
        InputError: different frame counts with ``strict``, or a camera that never sees the person.
    """
    counts = [len(d.keypoints) for d in cameras]
    if len(set(counts)) > 1:
        msg = "cameras have different frame counts: " + ", ".join(f"{n} {k}" for n, k in zip(names, counts))
        if strict:
            raise InputError(msg + " (--strict)")
        (warn or warnings.warn)(f"{msg}; trimmed to {min(counts)}")
    num_frames = min(counts)
    kp = np.stack([d.keypoints[:num_frames] for d in cameras])
    sc = np.stack([d.scores[:num_frames] for d in cameras])
    return kp, sc


def match_intrinsics(
    intrinsics: str | os.PathLike | Rig | None, names: Sequence[str]
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """K (C, 3, 3), dist (C, 5) and image sizes (C, 2) of an intrinsics rig's cameras, matched to
    ``names`` by name when every name is in the rig, else by order (all None without a rig)."""
    if intrinsics is None:
        return None, None, None
    rig = intrinsics if isinstance(intrinsics, Rig) else Rig.load(intrinsics, require_extrinsics=False)
    if len(rig) != len(names):
        raise InputError(f"{intrinsics}: has {len(rig)} cameras but {len(names)} inputs were given")
    by_name = {c.name: c for c in rig}
    cams = [by_name[n] for n in names] if set(names) <= set(by_name) else list(rig)
    return (
        np.stack([c.K for c in cams]),
        np.stack([c.dist for c in cams]),
        np.array([c.image_size for c in cams]),
    )


def _image_sizes(
    cameras: Sequence[CameraDetections],
    names: Sequence[str],
    image_size: tuple[int, int] | None,
    rig_sizes: np.ndarray | None,
) -> np.ndarray:
    """(C, 2) sizes: the detections', else ``image_size``, else the intrinsics rig's."""
    sizes = []
    for c, d in enumerate(cameras):
        if d.image_size is not None:
            sizes.append(d.image_size)
        elif image_size is not None:
            sizes.append(image_size)
        elif rig_sizes is not None:
            sizes.append(tuple(int(v) for v in rig_sizes[c]))
        else:
            raise InputError(
                f"camera {names[c]!r}: image size unknown; pass --image-size WxH or --intrinsics K.json"
            )
    return np.array(sizes)


def detect_sources(
    sources: Sequence[Path],
    options: DetectOptions = DetectOptions(),
    *,
    progress: bool = True,
    warn: WarnFn | None = None,
) -> Poses2D:
    """Detect (or import) one person's 2D joints in every camera -> :class:`Poses2D`.

    Args:
        sources: one video file or image folder per camera (``detector="import"``: one COCO JSON
            file or OpenPose JSON folder per camera); camera names are the stems.
        options: see :class:`DetectOptions`.
        progress: show a progress bar (on a terminal).
        warn: receives warnings (frame counts trimmed); default :func:`warnings.warn`.
    Returns:
        keypoints (C, F, 17, 2), scores (C, F, 17), image sizes, K/dist when ``options.intrinsics``
        is given, fps, and ``extra`` ``frame_start``, ``frame_stride``, ``frame_index`` (F,).
    """
    if len(sources) < 1:
        raise InputError("give at least one video / image folder")
    names = camera_names(sources)
    video_fps = None
    if options.detector == "import":
        cameras = import_detections(sources, options)
    else:
        cameras, video_fps = detect_videos(sources, names, options, progress=progress)
    kp, sc = trim_to_common_length(cameras, names, strict=options.strict, warn=warn)
    for c, n in enumerate(names):
        if not (sc[c] > 0).any():
            raise InputError(f"camera {n!r}: the person is never detected in {sources[c]}")
    K, dist, rig_sizes = match_intrinsics(options.intrinsics, names)
    sizes = _image_sizes(cameras, names, options.image_size, rig_sizes)
    frame_index = options.start + options.stride * np.arange(kp.shape[1])
    return Poses2D(
        keypoints=kp,
        scores=sc,
        image_size=sizes,
        camera_names=names,
        K=K,
        dist=dist,
        fps=(options.fps or video_fps),
        extra={
            "frame_start": np.int64(options.start),
            "frame_stride": np.int64(options.stride),
            "frame_index": frame_index,
        },
    )
