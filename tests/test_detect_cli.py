"""`epipolarpose detect` as a user runs it: a separate process on rendered videos that must exit
(MediaPipe used to hang after writing its output), MediaPipe's modes, one-line errors."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from epipolarpose.camera import Camera, Rig
from epipolarpose.cli import app
from epipolarpose.formats import Poses2D
from epipolarpose.skeleton import BLAZEPOSE33_JOINTS

runner = CliRunner()
#: generous: the command takes a few seconds; a hang is what this catches, not slowness
TIMEOUT_S = 120


def _mediapipe_or_skip() -> None:
    from epipolarpose.detectors import mediapipe as mpd

    if not mpd.available():
        pytest.skip(
            "MediaPipe extra not installed (pip install 'epipolarpose[mediapipe]' + mediapipe --no-deps)"
        )


def _render_videos(tmp_path, rig_s9, cmu_bvh, cams=(1, 3), frames=10, size=160, fps=30.0) -> list:
    """Short mp4s of the capsule person (CMU mocap seen by H36M S9 cameras scaled to ``size`` px wide)."""
    from epipolarpose.mocap import load_mocap
    from epipolarpose.synthetic.render import draw_person
    from epipolarpose.video import write_video

    X = load_mocap(cmu_bvh, fps=30).poses[: 3 * frames : 3]
    paths = []
    for ci in cams:
        c = list(rig_s9)[ci]
        s = size / c.image_size[0]
        K = c.K.copy()
        K[:2] *= s
        cam = Camera(K=K, R=c.R, t=c.t, image_size=(size, int(round(c.image_size[1] * s))), name=c.name)
        w, h = cam.image_size
        rgb = np.full((len(X), h, w, 3), 90, np.uint8)
        for f in range(len(X)):
            draw_person(rgb[f], Rig([cam])[0].project(X[f]), cam.world_to_camera(X[f])[:, 2], cam.K[0, 0])
        paths.append(tmp_path / f"cam{ci}.mp4")
        write_video(paths[-1], rgb[..., ::-1], fps=fps)
    return paths


def _run_detect(args: list, cwd) -> subprocess.CompletedProcess:
    """``python -m epipolarpose detect ARGS`` in a new process; fails the test if it does not exit."""
    cmd = [sys.executable, "-m", "epipolarpose", "detect", *map(str, args)]
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired as e:  # pragma: no cover - the bug this file guards against
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else e.stderr
        pytest.fail(f"`epipolarpose detect` did not exit within {TIMEOUT_S} s:\n{err}")


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def test_detect_mediapipe_process_exits(tmp_path, rig_s9, cmu_bvh):
    """The command terminates with exit 0 after writing poses2d.npz, and also after an error
    raised once the detector has run (the person is never seen in a blank video)."""
    _mediapipe_or_skip()
    videos = _render_videos(tmp_path, rig_s9, cmu_bvh)
    out = tmp_path / "poses2d.npz"
    r = _run_detect([*videos, "--detector", "mediapipe", "-o", out], tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"wrote {out}" in r.stdout and out.is_file()
    p = Poses2D.load(out)
    assert p.camera_names == ["cam1", "cam3"] and p.keypoints.shape == (2, 10, 17, 2)
    assert p.keypoints_native.shape == (2, 10, 33, 2) and p.joint_names_native == list(BLAZEPOSE33_JOINTS)
    assert (p.scores > 0).any(axis=(1, 2)).all()  # the rendered person is found in both views
    assert p.extra["mediapipe_mode"].tolist() == ["video", "video"]  # 30 fps: auto -> video

    from epipolarpose.video import write_video

    blank = tmp_path / "blank.mp4"
    write_video(blank, np.full((4, 96, 96, 3), 90, np.uint8), fps=30)
    r = _run_detect([blank, "--detector", "mediapipe", "-o", tmp_path / "none.npz"], tmp_path)
    assert r.returncode == 2, r.stderr
    errors = _error_lines(r.stderr)
    assert len(errors) == 1 and "never detected" in errors[0] and "blank" in errors[0]
    assert not (tmp_path / "none.npz").exists()


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    """An untrained PoseNet small enough to run in a test (peaked heatmaps: it 'detects' joints)."""
    torch = pytest.importorskip("torch")
    from epipolarpose.models import PoseNet, PoseNetConfig, save_checkpoint

    torch.manual_seed(0)
    model = PoseNet(PoseNetConfig(backbone="resnet18", input_size=64, depth_bins=8, deconv_channels=16))
    for m in model.deconv_layers.modules():
        if isinstance(m, torch.nn.ConvTranspose2d):
            torch.nn.init.kaiming_normal_(m.weight)
    torch.nn.init.normal_(model.final_layer.weight, std=3.0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint(path, model.eval())
    return path


def test_detect_network_process_exits(tmp_path, rig_s9, cmu_bvh, tiny_ckpt):
    """The detector that needs no extra (our own network) also leaves a process that exits."""
    videos = _render_videos(tmp_path, rig_s9, cmu_bvh, cams=(1,), frames=4, size=96)
    out = tmp_path / "p.npz"
    r = _run_detect([*videos, "--detector", "network", "--checkpoint", tiny_ckpt, "-o", out], tmp_path)
    assert r.returncode == 0, r.stderr
    assert out.is_file()
    p = Poses2D.load(out)
    assert p.keypoints.shape == (1, 4, 17, 2) and not p.has_native
    assert str(p.extra["detector"]) == "network" and "mediapipe_mode" not in p.extra


def test_mediapipe_mode_auto_follows_the_frame_rate(tmp_path, rig_s9, cmu_bvh):
    from epipolarpose.detectors.run import mediapipe_static

    assert mediapipe_static("static", 60.0) and not mediapipe_static("video", 2.0)
    assert mediapipe_static("auto", 6.0) and not mediapipe_static("auto", 30.0)
    assert mediapipe_static("auto", 30.0, stride=3)  # the detector sees 10 fps
    assert mediapipe_static("auto", None)  # image folders without --fps

    _mediapipe_or_skip()
    videos = _render_videos(tmp_path, rig_s9, cmu_bvh, cams=(3,), frames=4, fps=6.0)
    for mode, expect in (("auto", "static"), ("video", "video"), ("static", "static")):
        out = tmp_path / f"{mode}.npz"
        r = runner.invoke(app, ["detect", *map(str, videos), "--mediapipe-mode", mode, "-o", str(out)])
        assert r.exit_code == 0, r.output
        assert f"{expect} mode" in r.output
        p = Poses2D.load(out)
        assert p.extra["mediapipe_mode"].tolist() == [expect] and int(p.extra["model_complexity"]) == 1


def test_mediapipe_detector_closes_its_graph():
    _mediapipe_or_skip()
    from epipolarpose.detectors import mediapipe as mpd

    frames = np.full((2, 64, 64, 3), 90, np.uint8)
    with mpd.MediaPipeDetector(static_image_mode=True) as det:
        out = det.detect_all(frames)
        assert det._pose is not None and det in mpd._OPEN
    assert det._pose is None and det not in mpd._OPEN
    assert out.keypoints.shape == (2, 17, 2) and out.keypoints_native.shape == (2, 33, 2)
    assert np.isnan(out.keypoints_native).all() and (out.scores_native == 0).all()  # nobody there
    det.detect(frames)  # usable again after close: opens a new graph
    det.close()
    det.close()  # twice is fine
    # no exception kept by mediapipe's modules pins the frames of whoever imported it
    kept = [
        (name, k)
        for name, m in list(sys.modules.items())
        if name.startswith("mediapipe")
        for k, v in list(getattr(m, "__dict__", {}).items())
        if isinstance(v, BaseException) and v.__traceback__ is not None
    ]
    assert not kept


def test_a_detector_left_open_does_not_hold_the_process(tmp_path):
    """A script that never closes its MediaPipe detector (a global, as in a notebook) still exits:
    the graph is closed at exit, not from a finaliser during interpreter shutdown."""
    _mediapipe_or_skip()
    script = (
        "import numpy as np\n"
        "from epipolarpose.detectors.mediapipe import MediaPipeDetector\n"
        "det = MediaPipeDetector()\n"
        "det.detect(np.full((2, 64, 64, 3), 90, np.uint8))\n"
        "print('done')\n"
    )
    try:
        r = subprocess.run(
            [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=TIMEOUT_S
        )
    except subprocess.TimeoutExpired:  # pragma: no cover
        pytest.fail(f"a script with an open MediaPipe detector did not exit within {TIMEOUT_S} s")
    assert r.returncode == 0 and r.stdout.strip() == "done", r.stderr


def test_detect_bad_input_is_one_error_line(tmp_path):
    """Empty or corrupt videos, folders without images, unknown detectors and settings: one
    ``error:`` line, exit 2, nothing written."""
    from epipolarpose.video import write_video

    ok = tmp_path / "ok.mp4"
    write_video(ok, np.full((3, 32, 32, 3), 90, np.uint8))
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "corrupt.mp4").write_bytes(
        np.random.default_rng(0).integers(0, 256, 4096, np.uint8).tobytes()
    )
    (tmp_path / "noimages").mkdir()
    (tmp_path / "noimages" / "notes.txt").write_text("no images here")
    out = tmp_path / "out.npz"
    cases = [
        (["empty.mp4"], "empty.mp4"),
        (["corrupt.mp4"], "corrupt.mp4"),
        (["noimages"], "no images"),
        (["missing.mp4"], "no such file"),
        (["ok.mp4", "--detector", "yolo"], "unknown detector 'yolo'"),
        (["ok.mp4", "--detector", "network"], "--checkpoint"),
        (["ok.mp4", "--detector", "network", "--checkpoint", "nope.pt"], "nope.pt"),
        (["ok.mp4", "--detector", "import", "--import-format", "csv"], "--import-format"),
        (["ok.mp4", "--mediapipe-mode", "fast"], "--mediapipe-mode"),
        (["ok.mp4", "--model-complexity", "3"], "--model-complexity"),
        (["ok.mp4", "--stride", "0"], "--stride"),
        (["ok.mp4", "--start", "5", "--stop", "2"], "--stop"),
    ]
    for args, needle in cases:
        r = runner.invoke(
            app, ["detect", *[str(tmp_path / a) if i == 0 else a for i, a in enumerate(args)], "-o", str(out)]
        )
        errors = [line for line in r.output.splitlines() if line.startswith("error:")]
        assert r.exit_code == 2, (args, r.output)
        assert len(errors) == 1 and needle in errors[0], (args, r.output)
        assert not out.exists()


def test_a_model_that_cannot_be_downloaded_is_an_input_error(monkeypatch):
    """Model complexity 0 and 2 are not in the wheel; offline, MediaPipe's download fails."""
    _mediapipe_or_skip()
    import urllib.error

    from epipolarpose.detectors import mediapipe as mpd
    from epipolarpose.errors import InputError

    pose = mpd._import_pose()

    def offline(model_complexity):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(pose, "_download_oss_pose_landmark_model", offline)
    with pytest.raises(InputError, match="pose_landmark_heavy.tflite.*--model-complexity 1"):
        with mpd.MediaPipeDetector(model_complexity=2) as det:
            det.detect(np.zeros((1, 32, 32, 3), np.uint8))
    with pytest.raises(InputError, match="0, 1 or 2"):
        mpd.MediaPipeDetector(model_complexity=5)


def test_a_corrupt_video_gives_one_line_and_nothing_from_ffmpeg(tmp_path):
    from epipolarpose.video import write_video

    good = tmp_path / "good.mp4"
    write_video(good, np.full((8, 64, 64, 3), 90, np.uint8), fps=30)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(good.read_bytes()[:600])  # the header without its index ("moov atom not found")
    pytest.importorskip("mediapipe")
    r = _run_detect([cut, "--detector", "mediapipe", "-o", tmp_path / "p.npz"], tmp_path)
    assert r.returncode == 2 and "cut.mp4: cannot open video" in r.stderr
    assert r.stderr.strip().splitlines() == [_error_lines(r.stderr)[0]]  # FFmpeg's own lines quieted
    assert not (tmp_path / "p.npz").exists()
