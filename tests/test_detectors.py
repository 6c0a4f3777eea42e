"""Detectors: MediaPipe on real H36M crops, importers (COCO, OpenPose), one-person selection, `detect`."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from epipolarpose.cli import app
from epipolarpose.detectors.base import select_track
from epipolarpose.detectors.importers import OPENPOSE_BODY25_JOINTS, load_coco, load_openpose
from epipolarpose.formats import Poses2D
from epipolarpose.skeleton import COCO17


def test_mediapipe_on_h36m_crops(shared):
    from epipolarpose.detectors import mediapipe as mpd

    if not mpd.available():
        pytest.skip(
            "MediaPipe extra not installed (pip install 'epipolarpose[mediapipe]' + mediapipe --no-deps)"
        )
    files = sorted((shared / "data/images/h36m_samples").glob("*.jpg"))
    assert files
    det = mpd.MediaPipeDetector(static_image_mode=True)
    for f in files:
        img = cv2.imread(str(f))
        h, w = img.shape[:2]
        kp, sc = det.detect(img[None])
        kp, sc = kp[0], sc[0]
        assert np.isfinite(kp).all(), f.name
        # the crops are centred on the person: every joint inside the central 90 %
        assert ((kp > 0.05 * np.array([w, h])) & (kp < 0.95 * np.array([w, h]))).all(), f.name
        assert np.median(sc) > 0.5, f.name
        # anatomy: head above thorax above pelvis above knees above ankles (image y grows down)
        y = kp[:, 1]
        assert y[10] < y[8] < y[0] < min(y[2], y[5]) < max(y[3], y[6]) + 1, f.name
        # left and right joints are distinct points on the person
        assert np.linalg.norm(kp[11] - kp[14]) > 0.05 * w and np.linalg.norm(kp[4] - kp[1]) > 0.03 * w


def test_select_track_follows_the_largest_then_the_nearest():
    N, J = 6, 17
    big = np.random.default_rng(0).uniform(0, 100, (J, 2))
    small = big * 0.3 + 300
    kp = np.full((N, 2, J, 2), np.nan)
    sc = np.zeros((N, 2, J))
    for n in range(N):
        # the two people swap slots every frame; the big one drifts slowly
        a, b = (0, 1) if n % 2 == 0 else (1, 0)
        kp[n, a], kp[n, b] = big + n, small
        sc[n, a], sc[n, b] = 0.9, 0.9
    kp[3], sc[3] = np.nan, 0  # nobody in frame 3
    out, s = select_track(kp, sc)
    expected = np.array([big + n for n in range(N)])
    keep = np.arange(N) != 3
    np.testing.assert_allclose(out[keep], expected[keep], rtol=1e-6)
    assert np.isnan(out[3]).all() and (s[3] == 0).all()


def _coco17_from_h36m_like(rng, n):
    return rng.uniform(50, 150, (n, 17, 2))


def test_coco_import_maps_to_h36m(tmp_path, rng):
    src = _coco17_from_h36m_like(rng, 4)
    anns, images = [], []
    for i in range(4):
        images.append({"id": 10 + i, "file_name": f"f{i:03d}.jpg", "width": 200, "height": 180})
        v = np.full((17, 1), 2.0)
        v[3] = 0  # left ear not labelled in every frame
        anns.append({"image_id": 10 + i, "keypoints": np.hstack([src[i], v]).reshape(-1).tolist()})
        # a second, smaller person far away
        anns.append({"image_id": 10 + i, "keypoints": np.hstack([src[i] * 0.1 + 10, v]).reshape(-1).tolist()})
    (tmp_path / "cam0.json").write_text(json.dumps({"images": images[::-1], "annotations": anns}))
    kp, sc, names, size = load_coco(tmp_path / "cam0.json")
    assert names == [f"f{i:03d}.jpg" for i in range(4)] and size == (200, 180)
    ref = COCO17.apply(src)
    ok = np.isfinite(kp).all(-1)
    assert not ok[:, 10].any()  # Head needs both ears
    np.testing.assert_allclose(kp[ok], ref[ok], rtol=1e-6)
    np.testing.assert_allclose(kp[:, 0], (src[:, 11] + src[:, 12]) / 2, rtol=1e-6)  # pelvis


def test_openpose_body25_import(tmp_path, rng):
    d = tmp_path / "cam1"
    d.mkdir()
    pts = rng.uniform(10, 90, (3, 25, 2))
    for i in range(3):
        people = [{"pose_keypoints_2d": np.hstack([pts[i], np.full((25, 1), 0.8)]).reshape(-1).tolist()}]
        if i == 1:
            people = []  # nobody detected
        (d / f"video_{i:012d}_keypoints.json").write_text(json.dumps({"people": people}))
    kp, sc, names = load_openpose(d)
    assert names[0] == "video_000000000000_keypoints.json" and kp.shape == (3, 17, 2)
    J = {n: i for i, n in enumerate(OPENPOSE_BODY25_JOINTS)}
    np.testing.assert_allclose(kp[0, 3], pts[0, J["right_ankle"]], rtol=1e-6)
    np.testing.assert_allclose(
        kp[2, 8], (pts[2, J["left_shoulder"]] + pts[2, J["right_shoulder"]]) / 2, rtol=1e-6
    )
    assert np.isnan(kp[1]).all() and (sc[1] == 0).all() and np.allclose(sc[0], 0.8)


def _coco_file(path, kp17, visible=True, size=(120, 100)):
    n = len(kp17)
    images = [{"id": i, "file_name": f"{i:04d}.jpg", "width": size[0], "height": size[1]} for i in range(n)]
    v = np.full((17, 1), 2.0 if visible else 0.0)
    anns = [{"image_id": i, "keypoints": np.hstack([kp17[i], v]).reshape(-1).tolist()} for i in range(n)]
    path.write_text(json.dumps({"images": images, "annotations": anns}))


def test_cli_detect_import_trims_and_reports_bad_views(tmp_path, rng):
    _coco_file(tmp_path / "left.json", rng.uniform(0, 100, (10, 17, 2)))
    _coco_file(tmp_path / "right.json", rng.uniform(0, 100, (8, 17, 2)))
    out = tmp_path / "p.npz"
    args = [
        "detect",
        str(tmp_path / "left.json"),
        str(tmp_path / "right.json"),
        "--detector",
        "import",
        "-o",
        str(out),
    ]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "different frame counts" in r.output
    p = Poses2D.load(out)
    assert p.keypoints.shape == (2, 8, 17, 2) and p.camera_names == ["left", "right"]
    assert p.image_size.tolist() == [[120, 100], [120, 100]]
    r = CliRunner().invoke(app, [*args[:-1], str(tmp_path / "q.npz"), "--strict"])
    assert r.exit_code == 2 and "different frame counts" in r.output and not (tmp_path / "q.npz").exists()
    _coco_file(tmp_path / "blind.json", rng.uniform(0, 100, (10, 17, 2)), visible=False)
    r = CliRunner().invoke(
        app,
        [
            "detect",
            str(tmp_path / "left.json"),
            str(tmp_path / "blind.json"),
            "--detector",
            "import",
            "-o",
            str(tmp_path / "r.npz"),
        ],
    )
    assert r.exit_code == 2 and "'blind'" in r.output and "never detected" in r.output
    assert not (tmp_path / "r.npz").exists()
    (tmp_path / "empty.mp4").write_bytes(b"")
    r = CliRunner().invoke(app, ["detect", str(tmp_path / "empty.mp4"), "-o", str(tmp_path / "s.npz")])
    assert r.exit_code == 2 and "empty.mp4" in r.output and not (tmp_path / "s.npz").exists()


def test_network_detector_maps_crops_back_to_the_frame(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    from epipolarpose.detectors.network import NetworkDetector

    class Fake(torch.nn.Module):
        """Always answers joint j at crop-normalised (x, y) = (0.25, -0.25)."""

        def forward(self, x):
            b = x.shape[0]
            j = torch.tensor([0.25, -0.25]).expand(b, 17, 2)
            probs = torch.zeros(b, 17, 8, 8)
            probs[..., 2, 6] = 1
            return {"joints2d": j, "probs2d": probs}

    class Cfg:
        input_size, num_joints = 64, 17

    det = NetworkDetector(tmp_path / "unused.ckpt")
    det._model, det._config = Fake(), Cfg()
    kp, sc = det.detect(np.zeros((1, 100, 200, 3), np.uint8))
    # first frame: whole image padded to a 200 px square centred at (100, 50); normalised (0.25,
    # -0.25) is crop pixel (47.5, 15.5) of 64 -> image (100 - 100 + 47.5*200/64 + ..., ...)
    a = 200 / 64
    expect = np.array(
        [(0.75 * 64 - 0.5) * a + (100 - 100 + a / 2 - 0.5), (0.25 * 64 - 0.5) * a + (50 - 100 + a / 2 - 0.5)]
    )
    np.testing.assert_allclose(kp[0, 0], expect, atol=1e-4)
    assert (sc == 1).all()


def test_coco_import_keeps_the_native_keypoints_of_the_followed_person(tmp_path):
    from epipolarpose.detectors.importers import read_coco
    from epipolarpose.skeleton import COCO17_JOINTS

    big = np.array([[100.0 + 10 * k, 50.0 + 5 * k] for k in range(17)])  # a large person
    small = big * 0.1 + 500  # a small one, far away
    vis = np.full(17, 2.0)
    vis[COCO17_JOINTS.index("left_ear")] = 0  # not labelled
    anns = [
        {"image_id": 7, "keypoints": np.column_stack([small, vis]).reshape(-1).tolist()},
        {"image_id": 7, "keypoints": np.column_stack([big, vis]).reshape(-1).tolist()},
        {"image_id": 8, "keypoints": np.column_stack([big + 1, vis]).reshape(-1).tolist()},
    ]
    images = [{"id": 7, "file_name": "a.jpg", "width": 640, "height": 480}, {"id": 8, "file_name": "b.jpg"}]
    (tmp_path / "cam.json").write_text(json.dumps({"images": images, "annotations": anns}))
    d = read_coco(tmp_path / "cam.json")
    assert d.joint_names_native == COCO17_JOINTS and d.keypoints_native.shape == (2, 17, 2)
    ear = COCO17_JOINTS.index("left_ear")
    keep = np.arange(17) != ear
    np.testing.assert_allclose(d.keypoints_native[0, keep], big[keep])
    np.testing.assert_allclose(d.keypoints_native[1, keep], big[keep] + 1)
    assert np.isnan(d.keypoints_native[:, ear]).all() and (d.scores_native[:, ear] == 0).all()
    assert (d.scores_native[:, keep] == 1).all()  # ground-truth flag 2 -> score 1
    # the mapped joints come from the same person: pelvis = mean of the native hips
    hips = [COCO17_JOINTS.index("left_hip"), COCO17_JOINTS.index("right_hip")]
    np.testing.assert_allclose(d.keypoints[:, 0], d.keypoints_native[:, hips].mean(1), rtol=1e-6)


def test_openpose_import_keeps_body25_with_heels_and_toes(tmp_path):
    from epipolarpose.detectors.importers import read_openpose

    d = tmp_path / "cam"
    d.mkdir()
    J = {n: i for i, n in enumerate(OPENPOSE_BODY25_JOINTS)}
    i = np.arange(25)
    a = np.column_stack([200 + 3 * i, 400 - 2 * i, np.full(25, 0.8)]).astype(float)
    a[J["right_heel"]] = (11.0, 12.0, 0.7)
    a[J["left_big_toe"]] = (3.0, 4.0, 0.9)
    a[J["left_ear"]] = (0.0, 0.0, 0.0)  # OpenPose's "missing"
    tiny = np.column_stack([a[:, :2] * 0.05, a[:, 2]])  # a second, much smaller person
    frames = [[tiny, a], [], [a]]
    for f, people in enumerate(frames):
        doc = {"people": [{"pose_keypoints_2d": p.reshape(-1).tolist()} for p in people]}
        (d / f"clip_{f:012d}_keypoints.json").write_text(json.dumps(doc))
    out = read_openpose(d)
    assert out.joint_names_native == OPENPOSE_BODY25_JOINTS and out.keypoints_native.shape == (3, 25, 2)
    assert out.joint_names_native[J["right_heel"]] == "right_heel" and len(OPENPOSE_BODY25_JOINTS) == 25
    np.testing.assert_allclose(out.keypoints_native[0, J["right_heel"]], [11, 12])
    np.testing.assert_allclose(out.keypoints_native[2, J["left_big_toe"]], [3, 4])
    np.testing.assert_allclose(
        out.scores_native[0, [J["right_heel"], J["left_big_toe"], J["nose"]]], [0.7, 0.9, 0.8]
    )
    assert np.isnan(out.keypoints_native[0, J["left_ear"]]).all() and out.scores_native[0, J["left_ear"]] == 0
    assert np.isnan(out.keypoints_native[1]).all() and (out.scores_native[1] == 0).all()  # nobody
    np.testing.assert_allclose(out.keypoints_native[0, J["nose"]], a[J["nose"], :2])  # the big person


def test_cli_import_stores_native_keypoints_trimmed_and_strided(tmp_path, rng):
    from epipolarpose.skeleton import COCO17_JOINTS

    left, right = rng.uniform(0, 100, (10, 17, 2)), rng.uniform(0, 100, (8, 17, 2))
    _coco_file(tmp_path / "left.json", left)
    _coco_file(tmp_path / "right.json", right)
    out = tmp_path / "p.npz"
    files = [str(tmp_path / "left.json"), str(tmp_path / "right.json")]
    r = CliRunner().invoke(app, ["detect", *files, "--detector", "import", "--stride", "2", "-o", str(out)])
    assert r.exit_code == 0, r.output
    p = Poses2D.load(out)
    assert p.keypoints.shape == (2, 4, 17, 2) and p.keypoints_native.shape == (2, 4, 17, 2)
    assert p.joint_names_native == list(COCO17_JOINTS) and str(p.extra["detector"]) == "import:coco"
    np.testing.assert_allclose(p.keypoints_native[0], left[0:8:2], rtol=1e-6)
    np.testing.assert_allclose(p.keypoints_native[1], right[0:8:2], rtol=1e-6)
    np.testing.assert_array_equal(p.extra["frame_index"], [0, 2, 4, 6])


def test_cli_import_drops_native_keypoints_of_different_skeletons(tmp_path):
    for name, n in (("body25", 25), ("coco18", 18)):
        d = tmp_path / name
        d.mkdir()
        for f in range(3):
            pts = np.column_stack([np.arange(n) * 4.0 + 10, np.arange(n) * 2.0 + 10, np.full(n, 0.9)])
            doc = {"people": [{"pose_keypoints_2d": pts.reshape(-1).tolist()}]}
            (d / f"{f:06d}_keypoints.json").write_text(json.dumps(doc))
    out = tmp_path / "p.npz"
    args = ["detect", str(tmp_path / "body25"), str(tmp_path / "coco18"), "--detector", "import"]
    r = CliRunner().invoke(
        app, [*args, "--import-format", "openpose", "--image-size", "200x100", "-o", str(out)]
    )
    assert r.exit_code == 0, r.output
    assert "different native landmark sets" in r.output
    p = Poses2D.load(out)
    assert not p.has_native and p.keypoints.shape == (2, 3, 17, 2)
