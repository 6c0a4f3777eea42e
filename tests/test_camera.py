"""Cameras and rigs: projection against OpenCV, (un)distortion, frames, rig.json."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from epipolarpose.camera import (
    Camera,
    Rig,
    check_rotation,
    default_intrinsics,
    distort_normalized,
    undistort_normalized,
)
from epipolarpose.errors import InputError


def _points(rng, n=500):
    """World points in the Human3.6M capture volume (mm)."""
    return rng.uniform([-1500, -1500, 0], [1500, 1500, 2000], size=(n, 3))


def test_project_matches_opencv(rig_s9, rng):
    X = _points(rng)
    assert np.any(rig_s9.dist != 0)
    for cam in rig_s9:
        ref, _ = cv2.projectPoints(X, cv2.Rodrigues(cam.R)[0], cam.t, cam.K, cam.dist)
        np.testing.assert_allclose(cam.project(X), ref.reshape(-1, 2), atol=1e-4)  # Rodrigues round trip
        ref0, _ = cv2.projectPoints(X, cv2.Rodrigues(cam.R)[0], cam.t, cam.K, None)
        np.testing.assert_allclose(cam.project(X, distort=False), ref0.reshape(-1, 2), atol=1e-4)
    # batched: any leading shape, rig stacks cameras first
    Xb = X.reshape(5, 10, 10, 3)
    uv = rig_s9.project(Xb)
    assert uv.shape == (4, 5, 10, 10, 2)
    np.testing.assert_allclose(uv[2, 1, 3], rig_s9[2].project(X[130:140]))


def test_projection_matrix_and_behind_camera(rig_s9, rng):
    cam = rig_s9[1]
    X = _points(rng, 50)
    h = np.hstack([X, np.ones((50, 1))]) @ cam.P.T
    np.testing.assert_allclose(cam.project(X, distort=False), h[:, :2] / h[:, 2:], atol=1e-6)
    np.testing.assert_allclose(cam.world_to_camera(cam.center), 0, atol=1e-3)  # R is orthonormal to ~1e-7
    behind = cam.camera_to_world(np.array([[0.0, 0, -1000], [10, 20, 1000]]))
    uv = cam.project(behind)
    assert np.isnan(uv[0]).all() and np.isfinite(uv[1]).all()


def test_distortion_round_trip(rig_s9, rng):
    for cam in rig_s9:
        X = _points(rng)
        Xc = cam.world_to_camera(X)
        xy = Xc[:, :2] / Xc[:, 2:]
        uv = cam.project(X)
        back = cam.undistort(uv)
        f = cam.K[0, 0]
        assert np.abs(back - xy).max() * f < 1e-3
        np.testing.assert_allclose(cam.undistort_pixels(uv), cam.project(X, distort=False), atol=1e-3)
        # also the module-level functions, NaNs passed through
        d = distort_normalized(xy, cam.dist)
        uv2 = cam.normalized_to_pixels(d)
        np.testing.assert_allclose(uv2, uv, atol=1e-9)
        uvn = np.vstack([uv[:3], [[np.nan, np.nan]]])
        out = undistort_normalized(uvn, cam.K, cam.dist)
        assert np.isnan(out[3]).all() and np.abs(out[:3] - xy[:3]).max() * f < 1e-3


def test_undistort_without_distortion_is_inverse_of_K(rng):
    K = np.array([[800.0, 2.0, 320], [0, 780, 240], [0, 0, 1]])
    cam = Camera(K=K)
    xy = rng.normal(size=(20, 2)) * 0.3
    uv = cam.normalized_to_pixels(xy)
    np.testing.assert_allclose(cam.undistort(uv), xy, atol=1e-12)


def test_world_camera_round_trip(rig_s9, rng):
    X = _points(rng).reshape(10, 50, 3)
    for cam in rig_s9:
        np.testing.assert_allclose(cam.camera_to_world(cam.world_to_camera(X)), X, atol=1e-3)
        # distances are preserved (rigid transform)
        np.testing.assert_allclose(
            np.linalg.norm(cam.world_to_camera(X[0, :1]) - cam.world_to_camera(X[0, 1:2])),
            np.linalg.norm(X[0, 0] - X[0, 1]),
        )
    Xc = rig_s9.world_to_camera(X)
    assert Xc.shape == (4, 10, 50, 3)
    np.testing.assert_allclose(Xc[3], rig_s9[3].world_to_camera(X), atol=1e-9)
    # person ~4-5.5 m from every camera
    d = np.linalg.norm(rig_s9.centers, axis=-1)
    assert (d > 3500).all() and (d < 6500).all()


def test_rig_json_round_trip(rig_s9, rig_s9_path, tmp_path):
    out = tmp_path / "rig.json"
    rig_s9.save(out)
    back = Rig.load(out)
    assert back.names == rig_s9.names and back.units == "mm" and back.name == rig_s9.name
    for a, b in zip(rig_s9, back):
        np.testing.assert_allclose(a.K, b.K)
        np.testing.assert_allclose(a.R, b.R)
        np.testing.assert_allclose(a.t, b.t)
        np.testing.assert_allclose(a.dist, b.dist)
        assert a.image_size == b.image_size
    # the published file's extra keys survive, and the JSON has the formats.md layout
    d = json.loads(out.read_text())
    assert d["world_up"] == [0, 0, 1]
    assert set(d["cameras"][0]) >= {"name", "image_size", "K", "dist", "R", "t"}
    assert Rig.from_json(rig_s9.to_json()).names == rig_s9.names
    src = json.loads(rig_s9_path.read_text())
    np.testing.assert_allclose(back[0].K, src["cameras"][0]["K"])


def test_relative_pose_and_reframing(rig_s9, rng):
    X = _points(rng, 100)
    for i, j in [(0, 1), (2, 3), (3, 0)]:
        R, t = rig_s9.relative_pose(i, j)
        check_rotation(R)
        np.testing.assert_allclose(
            rig_s9[i].world_to_camera(X) @ R.T + t, rig_s9[j].world_to_camera(X), atol=1e-3
        )
        Rb, tb = rig_s9.relative_pose(j, i)
        np.testing.assert_allclose(Rb, R.T, atol=1e-6)
        np.testing.assert_allclose(tb, -R.T @ t, atol=1e-3)
    r1 = rig_s9.in_camera_frame(1)
    np.testing.assert_allclose(r1[1].R, np.eye(3), atol=1e-6)
    np.testing.assert_allclose(r1[1].t, 0, atol=1e-3)
    np.testing.assert_allclose(r1.project(rig_s9[1].world_to_camera(X)), rig_s9.project(X), atol=1e-3)
    # similarity change of the world: projections of the transformed points are unchanged
    R = Rotation.from_rotvec([0.3, -0.2, 0.5]).as_matrix()
    t, s = np.array([100.0, -50, 20]), 0.01
    moved = rig_s9.transformed(R, t, s)
    np.testing.assert_allclose(moved.project(s * (X @ R.T + t)), rig_s9.project(X), atol=1e-3)


def test_non_rotation_is_rejected(rig_s9_path, tmp_path):
    d = json.loads(rig_s9_path.read_text())
    d["cameras"][1]["R"] = (2 * np.eye(3)).tolist()
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(d))
    with pytest.raises(InputError, match=r"bad\.json.*camera 1.*'R' is not a rotation"):
        Rig.load(p)
    with pytest.raises(InputError, match="not a rotation"):
        check_rotation(np.diag([1.0, 1, -1]))  # a reflection
    with pytest.raises(InputError, match="3x3"):
        check_rotation(np.eye(2))
    with pytest.raises(InputError, match="no such file"):
        Rig.load(tmp_path / "none.json")
    p.write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        Rig.load(p)


def test_intrinsics_only_file(tmp_path):
    K = default_intrinsics((1920, 1080))
    # 60° field of view across the longer side, principal point at the centre
    np.testing.assert_allclose(2 * np.degrees(np.arctan(960 / K[0, 0])), 60)
    np.testing.assert_allclose(K[:2, 2], [960, 540])
    # a portrait video is the same lens turned: same focal length, principal point swapped
    Kp = default_intrinsics((1080, 1920))
    np.testing.assert_allclose(Kp[0, 0], K[0, 0])
    np.testing.assert_allclose(Kp[:2, 2], [540, 960])
    p = tmp_path / "K.json"
    p.write_text(json.dumps({"cameras": [{"name": "phone", "image_size": [1920, 1080], "K": K.tolist()}]}))
    rig = Rig.load(p, require_extrinsics=False)
    np.testing.assert_allclose(rig[0].R, np.eye(3))
    np.testing.assert_allclose(rig[0].t, 0)
    np.testing.assert_allclose(rig[0].dist, 0)
    assert rig[0].image_size == (1920, 1080)
    with pytest.raises(InputError, match="missing key 'R'"):
        Rig.load(p)
    p.write_text(json.dumps({"cameras": [{"name": "x", "K": [[0, 0, 1], [0, 1, 1], [0, 0, 1]]}]}))
    with pytest.raises(InputError, match="positive focal"):
        Rig.load(p, require_extrinsics=False)
