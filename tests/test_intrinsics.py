"""Intrinsics from a board: rendered views of a ChArUco board and a chessboard through a camera
with known K and lens distortion are fitted back; the CLI writes a K.json that --intrinsics reads;
bad input names the camera."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from epipolarpose.camera import Rig
from epipolarpose.cli.footage_cmds import parse_pair
from epipolarpose.errors import InputError
from epipolarpose.intrinsics import (
    Board,
    IntrinsicsOptions,
    board_detector,
    calibrate_intrinsics,
    fit_intrinsics,
)

SIZE = (640, 480)
K_TRUE = np.array([[520.0, 0, 331.0], [0, 520.0, 236.0], [0, 0, 1]])
DIST_TRUE = np.array([-0.25, 0.08, 0, 0, 0])
PX, MARGIN = 60, 30  # board image: pixels per square, white margin


def board_image(board: Board) -> np.ndarray:
    """The board's printable image (grayscale), PX pixels per square plus MARGIN."""
    cols, rows = board.squares
    out = (cols * PX + 2 * MARGIN, rows * PX + 2 * MARGIN)
    if board.kind == "charuco":
        d = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, board.dictionary))
        cb = cv2.aruco.CharucoBoard((cols, rows), 1.0, board.marker_ratio, d)
        return cb.generateImage(out, marginSize=MARGIN)
    img = np.full(out[::-1], 255, np.uint8)
    for r in range(rows):
        for c in range(cols):
            if (r + c) % 2 == 0:
                y, x = MARGIN + r * PX, MARGIN + c * PX
                img[y : y + PX, x : x + PX] = 0
    return img


def render(
    board: Board, poses: list[tuple[np.ndarray, np.ndarray]], K=K_TRUE, dist=DIST_TRUE
) -> list[np.ndarray]:
    """Views of the board (its plane z = 0, one unit per square) from camera poses (R, t), with
    lens distortion: every output pixel takes the board's colour at its undistorted position."""
    src = board_image(board)
    A = np.array([[1 / PX, 0, -MARGIN / PX], [0, 1 / PX, -MARGIN / PX], [0, 0, 1]])  # board px -> plane
    w, h = SIZE
    u, v = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    pix = np.stack([u.ravel(), v.ravel()], -1)[:, None]
    und = cv2.undistortPoints(pix, K, dist, P=K).reshape(h, w, 2)
    out = []
    for R, t in poses:
        H = K @ np.column_stack([R[:, 0], R[:, 1], t]) @ A
        ideal = cv2.warpPerspective(src, H, (w, h), flags=cv2.INTER_AREA, borderValue=150)
        img = cv2.remap(ideal, und[..., 0], und[..., 1], cv2.INTER_LINEAR, borderValue=150)
        out.append(img)
    return out


def poses(board: Board, n: int = 16, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Board poses spread over the image, tilted up to ~35° in every direction, 10-14 squares away."""
    rng = np.random.default_rng(seed)
    cols, rows = board.squares
    out = []
    for _ in range(n):
        tilt = Rotation.from_rotvec(np.r_[rng.uniform(-0.6, 0.6, 2), rng.uniform(-0.3, 0.3)]).as_matrix()
        z = rng.uniform(10, 14)
        centre = np.array([rng.uniform(-0.35, 0.35) * z, rng.uniform(-0.25, 0.25) * z, z])
        t = centre - tilt @ np.array([cols / 2, rows / 2, 0])
        out.append((tilt, t))
    return out


def write_folder(folder: Path, images: list[np.ndarray]) -> Path:
    folder.mkdir(parents=True)
    for i, img in enumerate(images):
        cv2.imwrite(str(folder / f"frame{i:03d}.png"), img)
    return folder


CHARUCO = Board(kind="charuco", squares=(5, 7), dictionary="DICT_4X4_50")
CHESS = Board(kind="chessboard", squares=(8, 6))


@pytest.mark.parametrize("board", [CHARUCO, CHESS], ids=["charuco", "chessboard"])
def test_rendered_board_gives_back_the_camera(tmp_path, board):
    cam = write_folder(tmp_path / "camA", render(board, poses(board)))
    rep = calibrate_intrinsics([cam], IntrinsicsOptions(board=board), progress=False)
    c = rep.cameras[0]
    assert c.name == "camA" and c.frames == 16 and c.found >= 12  # a chessboard must be whole
    assert c.rms_px < 0.5
    assert c.K[0, 0] == pytest.approx(520.0, rel=0.01)
    assert c.K[0, 0] == c.K[1, 1]  # the radial model's square pixels
    np.testing.assert_allclose(c.K[:2, 2], K_TRUE[:2, 2], atol=4.0)
    assert c.dist[0] == pytest.approx(-0.25, abs=0.04)
    assert c.dist[2:].tolist() == [0, 0, 0]  # no tangential, no k3
    # the uncertainty OpenCV reports covers the actual error
    assert abs(c.K[0, 0] - 520.0) < 4 * c.focal_sd_px + 1.0


def test_inverted_charuco_board_found_like_a_normal_one(tmp_path):
    imgs = render(CHARUCO, poses(CHARUCO, n=8, seed=1))
    det = board_detector(CHARUCO)
    normal = [det(im) for im in imgs]
    det = board_detector(CHARUCO)
    inverted = [det(255 - im) for im in imgs]  # white markers on black
    assert sum(v is not None for v in normal) >= 7
    assert [None if v is None else len(v[0]) for v in inverted] == [
        None if v is None else len(v[0]) for v in normal
    ]
    for a, b in zip(normal, inverted):
        if a is not None:
            np.testing.assert_allclose(a[1], b[1], atol=0.05)


def test_too_few_views_names_the_camera(tmp_path):
    imgs = render(CHARUCO, poses(CHARUCO, n=3))
    blank = [np.full(SIZE[::-1], 200, np.uint8)] * 5
    cam = write_folder(tmp_path / "side_cam", imgs + blank)
    with pytest.raises(InputError, match=r"side_cam: the board was found in 3 frame\(s\), 5 needed"):
        calibrate_intrinsics([cam], IntrinsicsOptions(board=CHARUCO), progress=False)


def test_board_options_checked():
    with pytest.raises(InputError, match="unknown ArUco dictionary 'DICT_9X9_1'"):
        Board(dictionary="DICT_9X9_1")
    with pytest.raises(InputError, match="board kind"):
        Board(kind="circles")
    with pytest.raises(InputError, match="--squares must look like 5x7"):
        parse_pair("5by7", "--squares", "5x7 (columns x rows of squares)")
    assert parse_pair("4x5", "--squares", "5x7") == (4, 5)
    with pytest.raises(InputError, match="model must be one of"):
        IntrinsicsOptions(model="fisheye")


def test_views_too_alike_warn_about_the_focal_length():
    # a board always facing the camera (no tilt) leaves the focal length undetermined
    board = CHARUCO
    flat = [
        (np.eye(3), np.array([-2.5 + dx, -3.5 + dy, 20.0]))
        for dx, dy in [(0, 0), (1, 0), (0, 1), (-1, 0), (0, -1)]
    ]
    det = board_detector(board)
    views = [v for v in (det(im) for im in render(board, flat, dist=np.zeros(5))) if v is not None]
    cam = fit_intrinsics("front", views, SIZE, IntrinsicsOptions(board=board, min_views=3))
    assert any("focal length is uncertain" in w for w in cam.warnings)
    assert any("covered" in w for w in cam.warnings)  # all views in the middle of the image


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "epipolarpose", *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def test_cli_writes_a_k_json_that_intrinsics_options_read(tmp_path):
    a = write_folder(tmp_path / "cam_a", render(CHARUCO, poses(CHARUCO, n=10, seed=2)))
    b = write_folder(tmp_path / "cam_b", render(CHARUCO, poses(CHARUCO, n=10, seed=3)))
    old = os.umask(0o027)
    try:
        r = _cli("intrinsics", str(a), str(b), "-o", "K.json", "--squares", "5x7", "-q", cwd=tmp_path)
    finally:
        os.umask(old)
    assert r.returncode == 0, r.stderr
    assert "wrote K.json" in r.stdout and "cam_a: board in 10 of 10 frames" in r.stderr
    assert (os.stat(tmp_path / "K.json").st_mode & 0o777) == 0o640
    rig = Rig.load(tmp_path / "K.json", require_extrinsics=False)
    assert rig.names == ["cam_a", "cam_b"]
    np.testing.assert_allclose(rig.K[:, 0, 0], 520.0, rtol=0.015)
    assert rig.cameras[0].image_size == SIZE
    d = json.loads((tmp_path / "K.json").read_text())
    assert "R" not in d["cameras"][0] and d["intrinsics"]["model"] == "radial"


def test_cli_bad_input_is_one_error_line_and_no_file(tmp_path):
    blank = write_folder(tmp_path / "empty_cam", [np.full(SIZE[::-1], 200, np.uint8)] * 4)
    r = _cli("intrinsics", str(blank), "-o", "K.json", "--squares", "5x7", "-q", cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1].startswith("error: empty_cam: the board was found in 0 frame(s)")
    assert "Traceback" not in r.stderr and not (tmp_path / "K.json").exists()
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    r = _cli("intrinsics", "broken.mp4", "-o", "K.json", cwd=tmp_path)
    assert r.returncode == 2 and "error:" in r.stderr and "broken.mp4" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "K.json").exists()
    r = _cli("intrinsics", str(blank), "-o", "K.json", "--squares", "5", cwd=tmp_path)
    assert r.returncode == 2 and "error: --squares must look like 5x7" in r.stderr
