"""One detection run: every camera's video, image folder or imported detections -> one
:class:`~epipolarpose.formats.Poses2D` (what ``epipolarpose detect`` writes).

    poses2d = detect_sources([Path("left.mp4"), Path("right.mp4")], DetectOptions(stride=2))

Stages: :func:`check_options` (before any work), :func:`camera_names` (file/folder stems),
:func:`import_detections` or :func:`detect_videos` (one :class:`CameraDetections` per camera, with
the detector's native landmarks where it has them), :func:`trim_to_common_length` and
:func:`stack_native` (cameras with different frame counts), :func:`match_intrinsics` (K/dist/sizes
of an intrinsics rig). Input problems raise :class:`~epipolarpose.errors.InputError`.

MediaPipe's mode (:func:`mediapipe_static`): ``video`` tracks the person and smooths the landmarks
over time (tuned for ~30 fps), ``static`` detects every frame on its own; ``auto`` takes ``static``
when the frame rate the detector sees (fps / stride) is below :data:`AUTO_STATIC_BELOW_FPS` or
unknown (image folders without ``--fps``), else ``video``.
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

from ..camera import Rig, check_image_size
from ..errors import InputError
from ..formats import Poses2D
from ..video import VideoInfo, iter_frames, probe
from . import DETECTORS, get_detector
from .base import Detections, Detector
from .importers import read_coco, read_openpose

__all__ = [
    "AUTO_STATIC_BELOW_FPS",
    "IMPORT_FORMATS",
    "MEDIAPIPE_MODES",
    "CameraDetections",
    "DetectOptions",
    "camera_names",
    "check_options",
    "detect_sources",
    "detect_videos",
    "import_detections",
    "match_intrinsics",
    "mediapipe_static",
    "stack_native",
    "trim_to_common_length",
]

IMPORT_FORMATS = ("coco", "openpose")
MEDIAPIPE_MODES = ("auto", "video", "static")
#: ``--mediapipe-mode auto`` runs MediaPipe in static-image mode below this many frames per second
#: (as the detector sees them: fps / stride), where video-mode smoothing lags the motion.
AUTO_STATIC_BELOW_FPS = 15.0

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
        mediapipe_mode: ``auto``, ``video`` or ``static`` (see :func:`mediapipe_static`).
        model_complexity: MediaPipe landmark model, 0 (lite), 1 (full) or 2 (heavy); only 1 ships
            with the mediapipe wheel, 0 and 2 are downloaded on first use.
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
    mediapipe_mode: str = "auto"
    model_complexity: int = 1


class CameraDetections(NamedTuple):
    """One camera's detections.

    Attributes:
        keypoints: (F, 17, 2) px; scores: (F, 17); image_size: (w, h) or None.
        keypoints_native: (F, K, 2) px of the detector's own landmarks, or None.
        scores_native: (F, K), or None.
        joint_names_native: K names, or None.
        mode: how the detector ran (MediaPipe: ``video`` or ``static``), or None.
    """

    keypoints: np.ndarray
    scores: np.ndarray
    image_size: tuple[int, int] | None
    keypoints_native: np.ndarray | None = None
    scores_native: np.ndarray | None = None
    joint_names_native: tuple[str, ...] | None = None
    mode: str | None = None


def check_options(options: DetectOptions) -> None:
    """:class:`InputError` for settings that cannot work, before any video is read (an unknown
    detector or import format, a missing checkpoint, bad ranges). Whether MediaPipe is installed
    is checked once the inputs are probed (:func:`detect_videos`)."""
    if options.detector not in (*DETECTORS, "import"):
        raise InputError(
            f"unknown detector {options.detector!r}; choose one of {', '.join(DETECTORS)} or 'import'"
        )
    if options.detector == "import" and options.import_format not in IMPORT_FORMATS:
        raise InputError(f"--import-format must be coco or openpose, got {options.import_format!r}")
    if options.mediapipe_mode not in MEDIAPIPE_MODES:
        raise InputError(
            f"--mediapipe-mode must be one of {', '.join(MEDIAPIPE_MODES)}, got {options.mediapipe_mode!r}"
        )
    if options.model_complexity not in (0, 1, 2):
        raise InputError(f"--model-complexity must be 0, 1 or 2, got {options.model_complexity}")
    if options.start < 0:
        raise InputError(f"--start must be >= 0, got {options.start}")
    if options.stride < 1:
        raise InputError(f"--stride must be >= 1, got {options.stride}")
    if options.stop is not None and options.stop <= options.start:
        raise InputError(f"--stop ({options.stop}) must be greater than --start ({options.start})")
    if options.batch < 1:
        raise InputError(f"--batch must be >= 1, got {options.batch}")
    if options.fps is not None and not options.fps > 0:
        raise InputError(f"--fps must be positive, got {options.fps}")
    if options.detector == "network":
        if options.checkpoint is None:
            raise InputError("--detector network needs --checkpoint CKPT (a trained 2D/3D PoseNet)")
        if not Path(options.checkpoint).is_file():
            raise InputError(f"{options.checkpoint}: no such checkpoint file")


def mediapipe_static(mode: str, fps: float | None, stride: int = 1) -> bool:
    """Whether MediaPipe runs in static-image mode: ``static`` -> True, ``video`` -> False,
    ``auto`` -> True when ``fps / stride`` is unknown or below :data:`AUTO_STATIC_BELOW_FPS`."""
    if mode not in MEDIAPIPE_MODES:
        raise InputError(f"--mediapipe-mode must be one of {', '.join(MEDIAPIPE_MODES)}, got {mode!r}")
    if mode != "auto":
        return mode == "static"
    return fps is None or fps / max(stride, 1) < AUTO_STATIC_BELOW_FPS


def camera_names(sources: Sequence[Path]) -> list[str]:
    """File stems / folder names, made unique with ``_<index>`` suffixes when two are equal."""
    names = [p.stem if p.is_file() else p.name for p in sources]
    if len(set(names)) != len(names):
        names = [f"{n}_{i}" for i, n in enumerate(names)]
    return names


def import_detections(sources: Sequence[Path], options: DetectOptions) -> list[CameraDetections]:
    """Read one COCO JSON file or OpenPose JSON folder per camera, keeping ``start:stop:stride``
    (of the mapped and the native keypoints)."""
    if options.import_format not in IMPORT_FORMATS:
        raise InputError(f"--import-format must be coco or openpose, got {options.import_format!r}")
    out = []
    frames = slice(options.start, options.stop, options.stride)
    for p in sources:
        d = read_coco(p) if options.import_format == "coco" else read_openpose(p)
        out.append(
            CameraDetections(
                d.keypoints[frames],
                d.scores[frames],
                d.image_size,
                d.keypoints_native[frames],
                d.scores_native[frames],
                d.joint_names_native,
            )
        )
    return out


def _frame_range(num_frames: int, options: DetectOptions) -> range:
    """The frame numbers used of a video with ``num_frames`` frames."""
    stop = num_frames if options.stop is None else min(options.stop, num_frames)
    return range(options.start, stop, options.stride)


def _detect_one(detector: Detector, info: VideoInfo, options: DetectOptions, bar: tqdm) -> list[Detections]:
    """Batches of ``options.batch`` frames of one video through ``detector`` -> one
    :class:`~.base.Detections` per batch (empty if no frame could be read); ``bar`` counts the frames."""
    out: list[Detections] = []
    buf: list[np.ndarray] = []
    for _, frame in iter_frames(info.path, options.start, options.stop, options.stride):
        if frame.shape[1::-1] != info.image_size:
            raise InputError(f"{info.path}: frame size changes within the video")
        buf.append(frame)
        if len(buf) == options.batch:
            out.append(detector.detect_all(np.stack(buf)))
            bar.update(len(buf))
            buf.clear()
    if buf:
        out.append(detector.detect_all(np.stack(buf)))
        bar.update(len(buf))
    return out


def _concat(arrays: Sequence[np.ndarray | None]) -> np.ndarray | None:
    return None if any(a is None for a in arrays) else np.concatenate(arrays)


def detect_videos(
    sources: Sequence[Path], names: Sequence[str], options: DetectOptions, *, progress: bool = True
) -> tuple[list[CameraDetections], float | None]:
    """Run ``options.detector`` on every camera's video or image folder (a new detector per camera,
    closed before the next one starts, also when detection fails).

    Returns:
        one :class:`CameraDetections` per camera (with the native landmarks when the detector has
        them) and the first video's frame rate (None if unknown).
    """
    infos = [probe(p) for p in sources]
    if options.detector == "mediapipe":
        from .mediapipe import _import_pose

        _import_pose()  # InputError with the install hint when the extra is missing
    ranges = [len(_frame_range(info.num_frames, options)) for info in infos]
    if min(ranges) == 0:
        bad = names[int(np.argmin(ranges))]
        raise InputError(f"camera {bad!r}: no frames in the range start={options.start}, stop={options.stop}")
    out = []
    disable = None if progress else True  # None: tqdm shows the bar on a terminal only
    with tqdm(total=sum(ranges), desc="detect", unit="frame", file=None, disable=disable) as bar:
        for c, info in enumerate(infos):
            static = mediapipe_static(options.mediapipe_mode, options.fps or info.fps, options.stride)
            detector = get_detector(
                options.detector,
                checkpoint=options.checkpoint,
                model_complexity=options.model_complexity,
                static_image_mode=static,
            )
            with detector:
                batches = _detect_one(detector, info, options, bar)
            if not batches:
                raise InputError(f"camera {names[c]!r} ({info.path}): no frames could be read")
            native = detector.native_joint_names
            out.append(
                CameraDetections(
                    np.concatenate([b.keypoints for b in batches]),
                    np.concatenate([b.scores for b in batches]),
                    info.image_size,
                    _concat([b.keypoints_native for b in batches]) if native else None,
                    _concat([b.scores_native for b in batches]) if native else None,
                    tuple(native) if native else None,
                    ("static" if static else "video") if options.detector == "mediapipe" else None,
                )
            )
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


def stack_native(
    cameras: Sequence[CameraDetections],
    names: Sequence[str],
    num_frames: int,
    *,
    warn: WarnFn | None = None,
) -> tuple[np.ndarray, np.ndarray, list[str]] | None:
    """The cameras' native landmarks cut to ``num_frames`` (as :func:`trim_to_common_length` cuts
    the keypoints).

    Returns:
        keypoints_native (C, F, K, 2), scores_native (C, F, K) and the K names; None when a camera
        has none or the cameras' landmark sets differ (then with a warning).
    """
    if any(d.keypoints_native is None for d in cameras):
        return None
    sets = [tuple(d.joint_names_native or ()) for d in cameras]
    if len(set(sets)) > 1:
        kinds = ", ".join(f"{n} {len(s)}" for n, s in zip(names, sets))
        (warn or warnings.warn)(
            f"cameras have different native landmark sets ({kinds}); native landmarks dropped"
        )
        return None
    kp = np.stack([d.keypoints_native[:num_frames] for d in cameras])
    sc = np.stack([d.scores_native[:num_frames] for d in cameras])
    return kp, sc, list(sets[0])


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
    cams = rig.matched(names)
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
            if rig_sizes is not None:
                check_image_size(rig_sizes[c], d.image_size, f"intrinsics camera for {names[c]!r}", names[c])
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
        keypoints (C, F, 17, 2), scores (C, F, 17), the detector's native landmarks
        (``keypoints_native`` (C, F, K, 2), ``scores_native``, ``joint_names_native``) when it has
        them, image sizes, K/dist when ``options.intrinsics`` is given, fps, and ``extra``
        ``frame_start``, ``frame_stride``, ``frame_index`` (F,), ``detector`` (str; ``import:coco``
        for imports) and, for MediaPipe, ``mediapipe_mode`` (C,) (``video``/``static``) and
        ``model_complexity``.
    """
    if len(sources) < 1:
        raise InputError("give at least one video / image folder")
    check_options(options)
    names = camera_names(sources)
    video_fps = None
    if options.detector == "import":
        cameras = import_detections(sources, options)
    else:
        cameras, video_fps = detect_videos(sources, names, options, progress=progress)
    kp, sc = trim_to_common_length(cameras, names, strict=options.strict, warn=warn)
    native = stack_native(cameras, names, kp.shape[1], warn=warn)
    for c, n in enumerate(names):
        if not (sc[c] > 0).any():
            raise InputError(f"camera {n!r}: the person is never detected in {sources[c]}")
    K, dist, rig_sizes = match_intrinsics(options.intrinsics, names)
    sizes = _image_sizes(cameras, names, options.image_size, rig_sizes)
    frame_index = options.start + options.stride * np.arange(kp.shape[1])
    extra: dict[str, np.ndarray] = {
        "frame_start": np.int64(options.start),
        "frame_stride": np.int64(options.stride),
        "frame_index": frame_index,
        "detector": np.array(
            f"import:{options.import_format}" if options.detector == "import" else options.detector
        ),
    }
    if options.detector == "mediapipe":
        extra["mediapipe_mode"] = np.array([d.mode for d in cameras])
        extra["model_complexity"] = np.int64(options.model_complexity)
    return Poses2D(
        keypoints=kp,
        scores=sc,
        image_size=sizes,
        camera_names=names,
        K=K,
        dist=dist,
        fps=(options.fps or video_fps),
        extra=extra,
        keypoints_native=None if native is None else native[0],
        scores_native=None if native is None else native[1],
        joint_names_native=None if native is None else native[2],
    )
