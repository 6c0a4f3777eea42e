"""Reading videos and image folders frame by frame, and writing mp4 files.

A *source* is either a video file (anything OpenCV's FFmpeg backend decodes) or a folder of images
(``.jpg``, ``.jpeg``, ``.png``, ``.bmp``, ``.tif``, ``.tiff``, ``.webp``; frames in natural sort
order, so ``frame2.png`` comes before ``frame10.png``). Frames are ``(H, W, 3)`` uint8 BGR arrays,
as OpenCV returns them.

Bad input raises :class:`~epipolarpose.errors.InputError` naming the file: missing or unreadable
files, videos with zero frames, decreasing timestamps, image folders without images or with
images of different sizes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .errors import InputError
from .io import atomic_path

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")

# FFmpeg's own log lines ("moov atom not found", "header damaged") would come before our one
# error line about the same file; quiet unless the user asks for them (read when a video opens).
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe` finds out about a source without decoding it.

    Attributes:
        path: the video file or image folder.
        num_frames: number of frames (container metadata for videos, file count for folders).
        fps: frames per second (None for image folders or when the container does not say).
        image_size: (width, height) in pixels.
        is_folder: True for an image folder.
    """

    path: Path
    num_frames: int
    fps: float | None
    image_size: tuple[int, int]
    is_folder: bool

    @property
    def name(self) -> str:
        """Camera name: the file stem (or the folder's name)."""
        return self.path.stem if not self.is_folder else self.path.name


def _natural_key(p: Path) -> list:
    return [int(s) if s.isdigit() else s.lower() for s in re.split(r"(\d+)", p.name)]


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files of ``folder`` in natural sort order; InputError if there are none."""
    folder = Path(folder)
    files = sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=_natural_key)
    if not files:
        raise InputError(f"{folder}: image folder contains no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def _image_size(path: Path) -> tuple[int, int]:
    from PIL import Image  # reads only the header

    try:
        with Image.open(path) as im:
            return int(im.size[0]), int(im.size[1])
    except Exception as e:  # noqa: BLE001 - any failure means "not an image"
        raise InputError(f"{path}: not a readable image ({e})") from None


def probe(path: str | os.PathLike) -> VideoInfo:
    """Frame count, fps and image size of a video file or image folder.

    Raises InputError for a missing path, an unreadable or zero-length video, or an image folder
    whose images do not all have the same size (naming the first odd one).
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if path.is_dir():
        files = list_images(path)
        size = _image_size(files[0])
        for f in files[1:]:
            s = _image_size(f)
            if s != size:
                raise InputError(
                    f"{path}: mixed image sizes in one camera's folder: {files[0].name} is "
                    f"{size[0]}x{size[1]} but {f.name} is {s[0]}x{s[1]}"
                )
        return VideoInfo(path, len(files), None, size, True)
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise InputError(f"{path}: cannot open video (unreadable or unsupported format)")
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        fps = float(cap.get(cv2.CAP_PROP_FPS)) or None
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        ok, frame = cap.read()
        if not ok or frame is None:
            raise InputError(f"{path}: video has no decodable frames (zero-length or corrupt)")
        h, w = frame.shape[:2]
    finally:
        cap.release()
    return VideoInfo(path, max(n, 1), fps, (w, h), False)


def _frame_range(num_frames: int, start: int, stop: int | None, stride: int) -> range:
    if stride < 1:
        raise InputError(f"stride must be >= 1, got {stride}")
    if start < 0:
        raise InputError(f"start must be >= 0, got {start}")
    stop = num_frames if stop is None else min(stop, num_frames)
    return range(start, stop, stride)


def iter_frames(
    path: str | os.PathLike,
    start: int = 0,
    stop: int | None = None,
    stride: int = 1,
    check_timestamps: bool = True,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(frame_index, frame)`` for frames ``start, start + stride, ... < stop``.

    Args:
        path: video file or image folder.
        start, stop, stride: frame range (``stop=None``: to the end).
        check_timestamps: for videos, raise InputError if the decoder's timestamps decrease.
    Yields:
        (index, (H, W, 3) uint8 BGR frame). A video that ends earlier than its metadata claims
        simply stops early.
    """
    info = probe(path)
    rng = _frame_range(info.num_frames, start, stop, stride)
    if info.is_folder:
        files = list_images(info.path)
        for i in rng:
            frame = cv2.imread(str(files[i]), cv2.IMREAD_COLOR)
            if frame is None:
                raise InputError(f"{files[i]}: not a readable image")
            yield i, frame
        return
    cap = cv2.VideoCapture(str(info.path))
    try:
        if start > 0:
            cap.set(cv2.CAP_PROP_POS_FRAMES, start)
        last_t = -np.inf
        i = start
        while i < rng.stop:
            wanted = (i - start) % stride == 0
            if wanted:
                ok, frame = cap.read()
            else:  # skipped frames are decoded (the codec needs them) but not converted
                ok, frame = cap.grab(), None
            if not ok or (wanted and frame is None):
                break
            if check_timestamps:
                t = cap.get(cv2.CAP_PROP_POS_MSEC)
                if t < last_t - 1e-6:
                    raise InputError(
                        f"{info.path}: non-monotonic timestamps (frame {i} at {t:.1f} ms "
                        f"comes after {last_t:.1f} ms); re-encode the video, e.g. "
                        "`ffmpeg -i IN -vf setpts=N/FRAME_RATE/TB OUT.mp4`"
                    )
                last_t = t
            if wanted:
                yield i, frame
            i += 1
    finally:
        cap.release()


def read_frames(
    path: str | os.PathLike, start: int = 0, stop: int | None = None, stride: int = 1
) -> np.ndarray:
    """All frames of a range as one array (N, H, W, 3) uint8 BGR (see :func:`iter_frames`)."""
    frames = [f for _, f in iter_frames(path, start, stop, stride)]
    if not frames:
        raise InputError(f"{path}: no frames in the range start={start}, stop={stop}, stride={stride}")
    return np.stack(frames)


def write_video(path: str | os.PathLike, frames: np.ndarray, fps: float = 30.0, codec: str = "mp4v") -> None:
    """Write frames (N, H, W, 3) uint8 BGR (or (N, H, W) gray) to a video, atomically.

    ``codec`` is an OpenCV FourCC (``mp4v`` plays almost everywhere and needs no extra libraries).
    """
    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = np.repeat(frames[..., None], 3, axis=-1)
    if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise ValueError(f"frames must be (N, H, W, 3) with N > 0, got {frames.shape}")
    frames = np.ascontiguousarray(frames.astype(np.uint8))
    h, w = frames.shape[1:3]
    path = Path(path)
    with atomic_path(path) as tmp:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*codec), float(fps), (w, h))
        if not writer.isOpened():
            raise InputError(f"{path}: OpenCV cannot write a video with codec {codec!r}")
        try:
            for f in frames:
                writer.write(f)
        finally:
            writer.release()
