"""Report and end-to-end footage run: rendered mp4s -> detect (import) -> label --sync auto -> report."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from epipolarpose.camera import Camera, Rig
from epipolarpose.cli import app
from epipolarpose.errors import InputError
from epipolarpose.formats import Labels, Poses2D
from epipolarpose.report import quality_warnings


class _Images(HTMLParser):
    def __init__(self):
        super().__init__()
        self.src = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.src.append(dict(attrs)["src"])


def _check_html(index):
    p = _Images()
    p.feed(index.read_text())
    assert {"rig.png", "errors.png", "skeleton.gif", "overlay_0.png"} <= set(p.src)
    for s in p.src:
        img = cv2.imread(str(index.parent / s)) if not s.endswith(".gif") else None
        if s.endswith(".gif"):
            from PIL import Image

            with Image.open(index.parent / s) as im:
                assert im.n_frames > 5
        else:
            assert img is not None and img.shape[0] > 50, s
    return index.read_text()


def _small_rig(rig_s9, n=3, size=160):
    cams = []
    for c in list(rig_s9)[:n]:
        s = size / c.image_size[0]
        K = c.K.copy()
        K[:2] *= s
        cams.append(
            Camera(K=K, R=c.R, t=c.t, image_size=(size, int(round(c.image_size[1] * s))), name=c.name)
        )
    return Rig(cams)


@pytest.mark.slow
def test_videos_detect_sync_label_report(tmp_path, rig_s9, cmu_bvh):
    from epipolarpose.mocap import load_mocap
    from epipolarpose.synthetic import NoiseModel, synthesize
    from epipolarpose.synthetic.render import draw_person
    from epipolarpose.video import probe, write_video

    X = load_mocap(cmu_bvh, fps=30).poses[:90]
    rig = _small_rig(rig_s9)
    offs = (0, 5, -4)
    p2d_true, gt = synthesize(X, rig, NoiseModel.clean(time_offsets=offs))
    uv = gt.extra["keypoints2d"]  # (C, F, J, 2) what every camera's frame shows
    videos, jsons = [], []
    for c, cam in enumerate(rig):
        w, h = cam.image_size
        frames = np.full((X.shape[0], h, w, 3), 40, np.uint8)
        for f in range(X.shape[0]):
            if np.isfinite(uv[c, f]).all():
                t = min(max(f + offs[c], 0), X.shape[0] - 1)
                draw_person(frames[f], uv[c, f], cam.world_to_camera(X[t])[:, 2], cam.K[0, 0])
        videos.append(tmp_path / f"{cam.name}.mp4")
        write_video(videos[-1], frames[..., ::-1], fps=30)
        assert probe(videos[-1]).num_frames == X.shape[0] and probe(videos[-1]).image_size == (w, h)
        # the "detector": COCO keypoints of the rendered person (H36M joints written in COCO order)
        coco = np.full((X.shape[0], 17, 3), 0.0)
        m = {0: 9, 5: 11, 6: 14, 7: 12, 8: 15, 9: 13, 10: 16, 11: 4, 12: 1, 13: 5, 14: 2, 15: 6, 16: 3}
        for k, j in m.items():
            coco[:, k, :2] = np.nan_to_num(uv[c, :, j])
            coco[:, k, 2] = np.isfinite(uv[c, :, j]).all(-1) * 0.9
        coco[:, 3:5] = coco[:, [0]]  # ears at the nose
        res = [
            {"image_id": f, "keypoints": coco[f].reshape(-1).tolist(), "score": 0.9} for f in range(len(coco))
        ]
        jsons.append(tmp_path / f"{cam.name}.json")
        jsons[-1].write_text(json.dumps(res))
    # intrinsics only: the extrinsics must come from self-calibration
    rig_json = json.loads(rig.to_json())
    for cam in rig_json["cameras"]:
        del cam["R"], cam["t"]
    (tmp_path / "K.json").write_text(json.dumps(rig_json))
    runner = CliRunner()
    r = runner.invoke(
        app,
        [
            "detect",
            *map(str, jsons),
            "--detector",
            "import",
            "--intrinsics",
            str(tmp_path / "K.json"),
            "--fps",
            "30",
            "-o",
            str(tmp_path / "poses2d.npz"),
        ],
    )
    assert r.exit_code == 0, r.output
    p2d = Poses2D.load(tmp_path / "poses2d.npz")
    names = [c.name for c in rig]
    assert p2d.camera_names == names
    # label --sync auto: offsets estimated, rig self-calibrated from the re-aligned tracks
    r = runner.invoke(
        app,
        [
            "label",
            str(tmp_path / "poses2d.npz"),
            "--sync",
            "auto",
            "--max-offset",
            "10",
            "--intrinsics",
            str(tmp_path / "K.json"),
            "-o",
            str(tmp_path / "labels.npz"),
            "--rig-out",
            str(tmp_path / "rig.json"),
        ],
    )
    assert r.exit_code == 0, r.output
    assert Labels.load(tmp_path / "labels.npz").extra["offsets"].tolist() == list(offs)
    est = Rig.load(tmp_path / "rig.json")
    assert [c.name for c in est] == names
    for i in range(len(rig)):
        for j in range(i + 1, len(rig)):
            R_true = rig[j].R @ rig[i].R.T  # camera i -> camera j
            R_est = est[j].R @ est[i].R.T
            angle = np.degrees(np.arccos(np.clip((np.trace(R_est @ R_true.T) - 1) / 2, -1, 1)))
            assert angle < 2, (i, j, angle)
    out = tmp_path / "report"
    r = runner.invoke(
        app,
        [
            "report",
            str(tmp_path / "labels.npz"),
            "--rig",
            str(tmp_path / "rig.json"),
            "--poses2d",
            str(tmp_path / "poses2d.npz"),
            *sum([["--videos", str(v)] for v in videos], []),
            "-o",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.output
    html = _check_html(out / "index.html")
    assert re.search(r"\+5", html) and re.search(r"-4", html)  # offsets shown per camera
    # what the self-calibration said about itself: its precision bound (K given: no focal line)
    assert "rig precision: relative rotations ±" in html and "focal lengths estimated" not in html
    # and how its world was levelled (the summary's note)
    assert "world levelled: up from the " in html
    overlay = cv2.imread(str(out / "overlay_0.png"))
    assert overlay.std() > 10  # drawn on the rendered frames, not a flat canvas


def test_report_blank_canvas_warnings_and_bad_input(tmp_path, rig_s9):
    F, J = 12, 17
    rng = np.random.default_rng(0)
    X = np.repeat(rng.normal([0, 0, 1000], 300, (1, J, 3)), F, axis=0)  # a statue: no motion
    err = rng.uniform(0, 30, (4, F, J))
    lab = Labels(X, rig_s9.world_to_camera(X), np.ones((F, J), bool), err)
    warns = quality_warnings(lab, rig_s9)
    assert any("too little motion" in w for w in warns) and any("few frames" in w for w in warns)
    assert any("median reprojection error" in w for w in warns)
    close = Rig([rig_s9[0], Camera(K=rig_s9[0].K, R=rig_s9[0].R, t=rig_s9[0].t + [50, 0, 0], name="twin")])
    lab2 = Labels(X, close.world_to_camera(X), np.ones((F, J), bool), err[:2])
    assert any("short baseline" in w for w in quality_warnings(lab2, close))
    lab.save(tmp_path / "labels.npz")
    rig_s9.save(tmp_path / "rig.json")
    r = CliRunner().invoke(
        app,
        [
            "report",
            str(tmp_path / "labels.npz"),
            "--rig",
            str(tmp_path / "rig.json"),
            "-o",
            str(tmp_path / "rep"),
        ],
    )
    assert r.exit_code == 0, r.output
    assert "too little motion" in _check_html(tmp_path / "rep/index.html")
    assert not (tmp_path / "rep/sync.png").exists()  # no --sync auto, no sync figure
    # wrong rig -> clear error and no report folder
    close.save(tmp_path / "two.json")
    r = CliRunner().invoke(
        app,
        [
            "report",
            str(tmp_path / "labels.npz"),
            "--rig",
            str(tmp_path / "two.json"),
            "-o",
            str(tmp_path / "rep2"),
        ],
    )
    assert r.exit_code == 2 and "rig has 2" in r.output and not (tmp_path / "rep2").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".rep")]


def test_report_takes_the_rigs_cameras_from_detections_of_more_cameras(tmp_path, rig_s9, cmu_bvh):
    """Labels made with ``label --cameras`` (3 of 4 cameras) and the 4-camera poses2d.npz: the
    report matches the detections (and one video per detected camera) to the rig's cameras by
    name; a rig camera the detections lack is still a clear error."""
    from epipolarpose.mocap import load_mocap
    from epipolarpose.report import _rig_cameras, write_report
    from epipolarpose.synthetic import NoiseModel, synthesize

    four = _small_rig(rig_s9, 4)
    poses = load_mocap(cmu_bvh, fps=30).poses[:15]
    p2d, _ = synthesize(poses, four, NoiseModel.clean())
    sub = Rig([four[i] for i in (0, 1, 3)])
    q, v = _rig_cameras(sub, p2d, ["a.mp4", "b.mp4", "c.mp4", "d.mp4"])
    assert q.camera_names == sub.names == [p2d.camera_names[i] for i in (0, 1, 3)]
    assert np.array_equal(q.keypoints, p2d.keypoints[[0, 1, 3]], equal_nan=True)
    assert v == ["a.mp4", "b.mp4", "d.mp4"]
    F, J = poses.shape[:2]
    lab = Labels(poses, sub.world_to_camera(poses), np.ones((F, J), bool), np.ones((3, F, J)))
    index = write_report(lab, sub, tmp_path / "rep", poses2d=p2d)
    _check_html(index)
    other = Rig(
        [
            four[0],
            four[1],
            Camera(K=four[3].K, R=four[3].R, t=four[3].t, image_size=four[3].image_size, name="x"),
        ]
    )
    with pytest.raises(InputError, match="poses2d has 4 cameras but the rig has 3"):
        write_report(lab, other, tmp_path / "rep2", poses2d=p2d)


def test_draw_pose2d_skips_joints_too_far_for_opencv():
    """A reprojection near a camera's plane is finite but beyond OpenCV's int32 pixels: it is
    skipped, the rest is drawn (the report crashed on such a frame at 100k frames)."""
    from epipolarpose.viz import draw_pose2d

    kp = np.tile([[50.0, 60.0]], (17, 1)) + np.arange(17)[:, None] * 3
    kp[3] = [1e12, -3e11]
    img = draw_pose2d(np.zeros((120, 120, 3), np.uint8), kp, marker="cross")
    assert img.any()
    ref = draw_pose2d(
        np.zeros((120, 120, 3), np.uint8), np.where(np.arange(17)[:, None] == 3, np.nan, kp), marker="cross"
    )
    np.testing.assert_array_equal(img, ref)


def test_report_options_checked():
    from epipolarpose.errors import InputError
    from epipolarpose.report import ReportOptions

    with pytest.raises(InputError, match="--samples must be >= 0, got -3"):
        ReportOptions(num_samples=-3)
    with pytest.raises(InputError, match="fps must be positive"):
        ReportOptions(fps=0)
    assert ReportOptions(num_samples=0).num_samples == 0
