"""Video / image-folder ingestion: round trips through cv2.VideoWriter, ranges, bad input."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from epipolarpose.errors import InputError
from epipolarpose.video import iter_frames, list_images, probe, read_frames, write_video


def _frames(n=12, w=64, h=48):
    f = np.zeros((n, h, w, 3), np.uint8)
    for i in range(n):
        f[i, :, :, :] = 10 + 20 * i  # frame i has a distinct brightness
    return f


def test_video_round_trip_counts_sizes_and_ranges(tmp_path):
    path = tmp_path / "cam0.mp4"
    write_video(path, _frames(), fps=25)
    info = probe(path)
    assert (info.num_frames, info.image_size, info.name) == (12, (64, 48), "cam0")
    assert info.fps == pytest.approx(25)
    frames = read_frames(path)
    assert frames.shape == (12, 48, 64, 3)
    # brightness survives lossy coding well enough to identify every frame
    np.testing.assert_allclose(frames.mean(axis=(1, 2, 3)), 10 + 20 * np.arange(12), atol=4)
    idx = [i for i, _ in iter_frames(path, start=2, stop=11, stride=3)]
    assert idx == [2, 5, 8]
    sub = read_frames(path, start=2, stop=11, stride=3)
    np.testing.assert_allclose(sub.mean(axis=(1, 2, 3)), 10 + 20 * np.array([2, 5, 8]), atol=4)
    assert not list(tmp_path.glob(".*"))  # no temporary files left


def test_image_folder_natural_order_and_mixed_sizes(tmp_path):
    d = tmp_path / "camA"
    d.mkdir()
    for i in (1, 2, 10):
        cv2.imwrite(str(d / f"frame{i}.png"), np.full((20, 30, 3), i * 20, np.uint8))
    assert [p.name for p in list_images(d)] == ["frame1.png", "frame2.png", "frame10.png"]
    info = probe(d)
    assert (info.num_frames, info.image_size, info.is_folder, info.name) == (3, (30, 20), True, "camA")
    np.testing.assert_array_equal(read_frames(d)[:, 0, 0, 0], [20, 40, 200])
    cv2.imwrite(str(d / "frame11.png"), np.zeros((21, 30, 3), np.uint8))
    with pytest.raises(InputError, match="mixed image sizes.*frame11.png"):
        probe(d)


def test_bad_sources(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        probe(tmp_path / "missing.mp4")
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"")
    with pytest.raises(InputError, match="broken.mp4"):
        probe(bad)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no images"):
        probe(tmp_path / "empty")
    ok = tmp_path / "ok.mp4"
    write_video(ok, _frames(3))
    with pytest.raises(InputError, match="stride"):
        list(iter_frames(ok, stride=0))
