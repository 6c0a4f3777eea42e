"""Camera intrinsics (``K``, ``dist``) from a calibration board filmed by each camera -> ``K.json``.

Self-calibration finds the rig from the person, but a person in the middle of the image says
little about where the principal point is or how the lens bends straight lines: on the real
webcam footage in ``../shared/data/footage`` those two cost more than the rig's search does
(``BENCHMARKS.md``). A camera's intrinsics do not change when it is moved, so a board filmed
once per camera (at any time, anywhere) is enough; the extrinsics still come from the person.

A board is a ChArUco board (OpenCV's; white-on-black, "inverted", boards are found too) or a
plain chessboard. Every camera's frames are read (at most ``max_frames``, evenly spread), the
board's corners found (:func:`detect_board`), at most ``max_views`` views kept (evenly spread)
and ``cv2.calibrateCameraExtended`` fits the camera. The default model is ``"radial"``: square
pixels (``fx = fy``), radial ``k1, k2``, no tangential term, the model a hand-held board with
a few dozen views pins down; ``"full"`` is OpenCV's default (``fx``, ``fy``, ``k1, k2, p1, p2,
k3``), ``"pinhole"`` has no distortion.

The output is a ``rig.json`` without ``R``/``t`` (formats.md), what ``--intrinsics`` of
``detect``, ``label`` and ``calibrate`` reads. The report gives each camera's reprojection
RMS, the standard deviations OpenCV estimates for the focal length and the principal point,
and how much of the image the board's corners covered; a camera whose board was found in too
few frames is an error naming it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from .camera import Camera
from .errors import InputError
from .io import save_json
from .video import iter_frames, probe

__all__ = [
    "Board",
    "CameraIntrinsics",
    "IntrinsicsOptions",
    "IntrinsicsReport",
    "board_detector",
    "calibrate_intrinsics",
    "detect_board",
    "fit_intrinsics",
    "save_intrinsics",
]

MODELS = ("radial", "full", "pinhole")


@dataclass(frozen=True)
class Board:
    """A calibration board.

    Attributes:
        kind: ``"charuco"`` or ``"chessboard"``.
        squares: (columns, rows) of squares (a chessboard of 8 x 6 squares has 7 x 5 inner corners).
        square_size: side of a square in any unit (intrinsics do not depend on it).
        marker_ratio: ChArUco: side of a marker over the side of a square.
        dictionary: ChArUco: an OpenCV ArUco dictionary name (``DICT_4X4_50``, ...).
        legacy: ChArUco: OpenCV's pre-4.6 layout of boards with an even number of rows.
    """

    kind: str = "charuco"
    squares: tuple[int, int] = (5, 7)
    square_size: float = 1.0
    marker_ratio: float = 0.75
    dictionary: str = "DICT_4X4_50"
    legacy: bool = False

    def __post_init__(self) -> None:
        if self.kind not in ("charuco", "chessboard"):
            raise InputError(f"board kind must be charuco or chessboard, got {self.kind!r}")
        cols, rows = self.squares
        if min(cols, rows) < 2 or (self.kind == "chessboard" and min(cols, rows) < 3):
            raise InputError(
                f"a {self.kind} needs at least {2 if self.kind == 'charuco' else 3} squares per side"
            )
        if not 0 < self.marker_ratio < 1:
            raise InputError(f"marker ratio must be between 0 and 1, got {self.marker_ratio}")
        if self.kind == "charuco" and not (
            self.dictionary.startswith("DICT_") and hasattr(cv2.aruco, self.dictionary)
        ):
            names = sorted(n for n in dir(cv2.aruco) if n.startswith("DICT_") and n.upper() == n)
            raise InputError(f"unknown ArUco dictionary {self.dictionary!r}; one of {', '.join(names)}")


@dataclass(frozen=True)
class IntrinsicsOptions:
    """Knobs of :func:`calibrate_intrinsics`.

    Attributes:
        board: the :class:`Board`.
        model: ``"radial"`` (square pixels, ``k1, k2``), ``"full"`` (OpenCV's default) or
            ``"pinhole"`` (no distortion).
        max_frames: frames read per camera, evenly spread over the source.
        max_views: board views per camera given to the fit, evenly spread over those found.
        min_views: fewer views than this is an error naming the camera.
        min_corners: corners a view needs (at least 6, what a homography of a planar board needs
            with some redundancy).
        warn_focal_sd: warn when the focal length's standard deviation exceeds this share of it.
        warn_coverage: warn when the board's corners touched less than this share of the image
            (a grid of 8 x 8 cells): the lens's distortion is then extrapolated at the edges.
    """

    board: Board = field(default_factory=Board)
    model: str = "radial"
    max_frames: int = 600
    max_views: int = 60
    min_views: int = 5
    min_corners: int = 6
    warn_focal_sd: float = 0.02
    warn_coverage: float = 0.3

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise InputError(f"model must be one of {', '.join(MODELS)}, got {self.model!r}")
        if self.min_views < 3 or self.max_views < self.min_views:
            raise InputError("need 3 <= min_views <= max_views")


@dataclass
class CameraIntrinsics:
    """One camera's fit.

    Attributes:
        name: camera name (the source's stem); image_size: (width, height) pixels.
        frames: frames read; found: frames with the board; used: views given to the fit.
        corners: corners in the views used; rms_px: reprojection RMS (pixels).
        K: (3, 3); dist: (5,) ``k1, k2, p1, p2, k3``.
        focal_sd_px: standard deviation of ``fx`` (pixels); principal_sd_px: of ``(cx, cy)``.
        coverage: share of the image's 8 x 8 cells that a corner fell in.
        warnings: what makes the fit doubtful.
    """

    name: str
    image_size: tuple[int, int]
    frames: int
    found: int
    used: int
    corners: int
    rms_px: float
    K: np.ndarray
    dist: np.ndarray
    focal_sd_px: float
    principal_sd_px: tuple[float, float]
    coverage: float
    warnings: list[str] = field(default_factory=list)

    @property
    def fov_deg(self) -> float:
        """Field of view across the longer image side (degrees)."""
        return float(np.degrees(2 * np.arctan(0.5 * max(self.image_size) / self.K[0, 0])))

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "image_size": list(self.image_size),
            "frames": self.frames,
            "found": self.found,
            "used": self.used,
            "corners": self.corners,
            "rms_px": round(self.rms_px, 3),
            "focal_px": [round(float(self.K[0, 0]), 2), round(float(self.K[1, 1]), 2)],
            "focal_sd_px": round(self.focal_sd_px, 2),
            "principal_px": [round(float(self.K[0, 2]), 2), round(float(self.K[1, 2]), 2)],
            "principal_sd_px": [round(v, 2) for v in self.principal_sd_px],
            "dist": [round(float(v), 5) for v in self.dist],
            "fov_deg": round(self.fov_deg, 2),
            "coverage": round(self.coverage, 3),
            "warnings": list(self.warnings),
        }

    def summary(self) -> str:
        """One line for the terminal."""
        k = self.dist
        return (
            f"{self.name}: board in {self.found} of {self.frames} frames ({self.used} used, {self.corners} corners), "
            f"rms {self.rms_px:.2f} px, f {self.K[0, 0]:.1f} ± {self.focal_sd_px:.1f} px "
            f"({self.fov_deg:.0f}° across {max(self.image_size)} px), principal point "
            f"({self.K[0, 2]:.0f}, {self.K[1, 2]:.0f}) ± ({self.principal_sd_px[0]:.0f}, "
            f"{self.principal_sd_px[1]:.0f}) px, k1 {k[0]:+.3f} k2 {k[1]:+.3f}, "
            f"corners over {100 * self.coverage:.0f}% of the image"
        )


@dataclass
class IntrinsicsReport:
    """Every camera's :class:`CameraIntrinsics` and the options used."""

    cameras: list[CameraIntrinsics]
    model: str
    board: Board

    def as_dict(self) -> dict[str, Any]:
        b = self.board
        return {
            "model": self.model,
            "board": {
                "kind": b.kind,
                "squares": list(b.squares),
                "square_size": b.square_size,
                "marker_ratio": b.marker_ratio,
                "dictionary": b.dictionary,
                "legacy": b.legacy,
            },
            "cameras": [c.as_dict() for c in self.cameras],
        }


class _Detector:
    """Finds the board in grayscale frames: object points (N, 3) and image points (N, 2).

    ChArUco boards come black-on-white and white-on-black ("inverted"); OpenCV's inverted-marker
    option finds the markers of both but interpolates fewer corners on an inverted board than on
    the negative image (measured on the caliscope footage: 15 views against 40 on one camera). So
    the polarity is learned: both are tried until one has found the board in 3 frames (or, once
    the board has been seen, 30 frames have been read), then the one with more corners is kept."""

    def __init__(self, board: Board) -> None:
        self.board = board
        cols, rows = board.squares
        self.tries = np.zeros(2)  # corners found with the image as is / inverted
        self.hits = np.zeros(2, dtype=int)
        self.calls = 0
        self.polarity: int | None = None if board.kind == "charuco" else 0
        if board.kind == "charuco":
            dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, board.dictionary))
            self.cv_board = cv2.aruco.CharucoBoard(
                (cols, rows), board.square_size, board.square_size * board.marker_ratio, dictionary
            )
            self.cv_board.setLegacyPattern(board.legacy)
            self.det = cv2.aruco.CharucoDetector(self.cv_board)
        else:
            self.pattern = (cols - 1, rows - 1)
            gx, gy = np.meshgrid(np.arange(cols - 1), np.arange(rows - 1))
            self.grid = np.stack([gx.ravel(), gy.ravel(), np.zeros(gx.size)], -1).astype(np.float32)
            self.grid *= board.square_size

    def _charuco(self, gray: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        corners, ids, _, _ = self.det.detectBoard(gray)
        if ids is None or len(ids) == 0:
            return None
        obj, img = self.cv_board.matchImagePoints(corners, ids)
        return obj.reshape(-1, 3).astype(np.float32), img.reshape(-1, 2).astype(np.float32)

    def __call__(self, gray: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        if self.board.kind == "chessboard":
            ok, corners = cv2.findChessboardCornersSB(gray, self.pattern)
            if not ok:
                return None
            return self.grid.copy(), corners.reshape(-1, 2).astype(np.float32)
        if self.polarity is not None:
            return self._charuco(gray if self.polarity == 0 else 255 - gray)
        found = [self._charuco(gray), self._charuco(255 - gray)]
        n = np.array([0 if f is None else len(f[0]) for f in found])
        self.tries += n
        self.hits += n > 0
        self.calls += 1
        if self.hits.max() >= 3 or (self.calls >= 30 and self.hits.max() > 0):
            self.polarity = int(np.argmax(self.tries))
        return found[int(np.argmax(n))] if n.max() > 0 else None


def board_detector(board: Board) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray] | None]:
    """A function ``gray (H, W) uint8 -> (object points (N, 3), image points (N, 2))`` or None
    where the board is not found (ChArUco: the corners found, possibly a part of the board)."""
    return _Detector(board)


def detect_board(
    source: str | os.PathLike, options: IntrinsicsOptions, progress: bool = True
) -> tuple[list[tuple[np.ndarray, np.ndarray]], int, tuple[int, int]]:
    """The board in one camera's video or image folder.

    Returns:
        the views ``(object points (N, 3), image points (N, 2))`` with at least
        ``min_corners`` corners, the number of frames read, and the image size (width, height).
    """
    info = probe(source)
    stride = max(1, int(np.ceil(info.num_frames / max(options.max_frames, 1))))
    detect = board_detector(options.board)
    views: list[tuple[np.ndarray, np.ndarray]] = []
    frames = 0
    bar = tqdm(
        total=int(np.ceil(info.num_frames / stride)),
        desc=info.name,
        unit="frame",
        leave=False,
        disable=not progress or None,
    )
    with bar:
        for _, frame in iter_frames(source, stride=stride, check_timestamps=False):
            frames += 1
            bar.update()
            gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
            found = detect(gray)
            if found is not None and len(found[0]) >= options.min_corners:
                views.append(found)
    return views, frames, info.image_size


def _coverage(points: np.ndarray, image_size: tuple[int, int], cells: int = 8) -> float:
    """Share of the image's ``cells x cells`` grid cells that hold a point of (N, 2)."""
    w, h = image_size
    ix = np.clip((points[:, 0] / w * cells).astype(int), 0, cells - 1)
    iy = np.clip((points[:, 1] / h * cells).astype(int), 0, cells - 1)
    return len(np.unique(iy * cells + ix)) / cells**2


def fit_intrinsics(
    name: str,
    views: Sequence[tuple[np.ndarray, np.ndarray]],
    image_size: tuple[int, int],
    options: IntrinsicsOptions,
    frames: int | None = None,
) -> CameraIntrinsics:
    """``cv2.calibrateCameraExtended`` on at most ``max_views`` of ``views`` (evenly spread) with
    ``options.model``; :class:`InputError` naming the camera with fewer than ``min_views``."""
    found = len(views)
    if found < options.min_views:
        raise InputError(
            f"{name}: the board was found in {found} frame(s), {options.min_views} needed: film it "
            "closer and from more angles, or check the board options (kind, squares, dictionary)"
        )
    keep = np.unique(np.linspace(0, found - 1, min(found, options.max_views)).round().astype(int))
    obj = [views[i][0] for i in keep]
    img = [views[i][1] for i in keep]
    w, h = image_size
    f0 = 0.5 * max(w, h) / np.tan(np.radians(30))  # the default 60° field of view as the start
    K0 = np.array([[f0, 0, w / 2], [0, f0, h / 2], [0, 0, 1.0]])
    flags = cv2.CALIB_USE_INTRINSIC_GUESS
    if options.model == "radial":
        flags |= cv2.CALIB_FIX_ASPECT_RATIO | cv2.CALIB_ZERO_TANGENT_DIST | cv2.CALIB_FIX_K3
    elif options.model == "pinhole":
        flags |= cv2.CALIB_FIX_ASPECT_RATIO | cv2.CALIB_ZERO_TANGENT_DIST
        flags |= cv2.CALIB_FIX_K1 | cv2.CALIB_FIX_K2 | cv2.CALIB_FIX_K3
    try:
        rms, K, dist, _, _, sd, _, _ = cv2.calibrateCameraExtended(
            obj, img, (w, h), K0, np.zeros(5), flags=flags
        )
    except cv2.error as e:
        raise InputError(
            f"{name}: the board views do not determine the camera ({str(e).strip()[-120:]})"
        ) from None
    sd = np.asarray(sd, dtype=np.float64).ravel()
    if not (np.isfinite(K).all() and np.isfinite(dist).all() and K[0, 0] > 0):
        raise InputError(f"{name}: the board views do not determine the camera (the fit diverged)")
    cam = CameraIntrinsics(
        name=name,
        image_size=(int(w), int(h)),
        frames=int(frames if frames is not None else found),
        found=found,
        used=len(keep),
        corners=int(sum(len(o) for o in obj)),
        rms_px=float(rms),
        K=np.asarray(K, dtype=np.float64),
        dist=np.asarray(dist, dtype=np.float64).ravel()[:5],
        focal_sd_px=float(max(sd[0], sd[1])) if sd.size >= 2 else float("nan"),  # fx's or fy's (aspect fixed)
        principal_sd_px=(float(sd[2]), float(sd[3])) if sd.size >= 4 else (float("nan"),) * 2,
        coverage=_coverage(np.concatenate(img), (w, h)),
    )
    if not cam.focal_sd_px <= options.warn_focal_sd * cam.K[0, 0]:
        cam.warnings.append(
            f"{name}: the focal length is uncertain (± {cam.focal_sd_px:.0f} px, "
            f"{100 * cam.focal_sd_px / cam.K[0, 0]:.1f}%): the board views are too alike; tilt the board "
            "(30-45°) towards the camera in several directions"
        )
    if cam.coverage < options.warn_coverage:
        cam.warnings.append(
            f"{name}: the board's corners covered {100 * cam.coverage:.0f}% of the image: the lens "
            "distortion near the edges is extrapolated; move the board over the whole image"
        )
    return cam


def calibrate_intrinsics(
    sources: Sequence[str | os.PathLike],
    options: IntrinsicsOptions = IntrinsicsOptions(),
    names: Sequence[str] | None = None,
    progress: bool = True,
) -> IntrinsicsReport:
    """Intrinsics of every camera from its own video or image folder of a board (module docstring).

    Args:
        sources: one video file or image folder per camera.
        options: :class:`IntrinsicsOptions`.
        names: camera names (default: the sources' stems, what ``detect`` names them).
    Raises:
        InputError: an unreadable source, or a camera whose board was found in too few frames
            (naming it).
    """
    if not sources:
        raise InputError("no video or image folder given")
    names = list(names) if names is not None else [probe(s).name for s in sources]
    if len(set(names)) != len(names):
        raise InputError(f"camera names must differ, got {names}")
    cams = []
    for name, src in zip(names, sources):
        views, frames, size = detect_board(src, options, progress=progress)
        cams.append(fit_intrinsics(name, views, size, options, frames))
    return IntrinsicsReport(cams, options.model, options.board)


def save_intrinsics(path: str | os.PathLike, report: IntrinsicsReport) -> None:
    """Write ``K.json``: a ``rig.json`` whose cameras have ``K``, ``dist``, ``image_size`` and no
    ``R``/``t`` (formats.md), plus the fit's report under ``"intrinsics"``."""
    cams = [
        Camera(K=c.K, dist=c.dist, image_size=c.image_size, name=c.name).to_dict(extrinsics=False)
        for c in report.cameras
    ]
    save_json(Path(path), {"name": "intrinsics", "intrinsics": report.as_dict(), "cameras": cams})
