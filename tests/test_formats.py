"""The interchange files of formats.md: exact keys, dtypes, shapes; clear errors; atomic writes."""

from __future__ import annotations

import numpy as np
import pytest

from epipolarpose.errors import InputError
from epipolarpose.formats import GroundTruth, Labels, Poses2D
from epipolarpose.io import atomic_path, save_json, save_npz, save_text
from epipolarpose.skeleton import H36M_JOINTS

C, F, J = 3, 6, 17


def _poses2d(rng, **kw) -> Poses2D:
    kp = rng.uniform(0, 1000, size=(C, F, J, 2))
    sc = rng.uniform(size=(C, F, J))
    kp[0, 1, 2] = np.nan
    sc[0, 1, 2] = 0
    args = dict(
        keypoints=kp,
        scores=sc,
        image_size=[[1000, 1002]] * C,
        camera_names=["a", "b", "c"],
        K=np.tile(np.eye(3), (C, 1, 1)) * [1000, 1000, 1],
        dist=np.zeros((C, 5)),
        fps=50.0,
        extra={"corrupted": np.zeros((C, F, J), np.uint8)},
    )
    args.update(kw)
    return Poses2D(**args)


def test_poses2d_round_trip_exact_keys(rng, tmp_path):
    p = _poses2d(rng)
    path = tmp_path / "poses2d.npz"
    p.save(path)
    with np.load(path) as z:
        assert set(z.files) == {
            "keypoints",
            "scores",
            "image_size",
            "camera_names",
            "joint_names",
            "K",
            "dist",
            "fps",
            "corrupted",
        }
        assert z["keypoints"].dtype == np.float32 and z["keypoints"].shape == (C, F, J, 2)
        assert z["scores"].dtype == np.float32 and z["scores"].shape == (C, F, J)
        assert np.issubdtype(z["image_size"].dtype, np.integer) and z["image_size"].shape == (C, 2)
        assert z["camera_names"].dtype.kind == "U" and z["joint_names"].tolist() == list(H36M_JOINTS)
        assert z["K"].shape == (C, 3, 3) and z["dist"].shape == (C, 5) and z["fps"].shape == ()
    q = Poses2D.load(path)
    np.testing.assert_array_equal(q.keypoints, p.keypoints)
    np.testing.assert_array_equal(q.scores, p.scores)
    assert q.camera_names == ["a", "b", "c"] and q.fps == 50.0
    np.testing.assert_array_equal(q.extra["corrupted"], p.extra["corrupted"])
    np.testing.assert_array_equal(q.observed(), np.isfinite(p.keypoints).all(-1) & (p.scores > 0))
    assert not q.observed()[0, 1, 2]


def test_poses2d_optional_keys_default(rng, tmp_path):
    path = tmp_path / "min.npz"
    np.savez(
        path,
        keypoints=np.zeros((2, 3, 17, 2), np.float32),
        scores=np.ones((2, 3, 17), np.float32),
        image_size=np.array([[640, 480], [640, 480]]),
    )
    q = Poses2D.load(path)
    assert q.camera_names == ["cam0", "cam1"] and q.joint_names == list(H36M_JOINTS)
    assert q.K is None and q.dist is None and q.fps is None


@pytest.mark.parametrize(
    "drop, change, match",
    [
        ("scores", {}, r"missing key 'scores'"),
        ("image_size", {}, r"missing key 'image_size'"),
        (None, {"scores": np.ones((C, F, J + 1), np.float32)}, r"'scores' has shape \(3, 6, 18\)"),
        (None, {"image_size": np.ones((C + 1, 2), int)}, r"'image_size' has shape"),
        (None, {"keypoints": np.ones((C, F, J, 3), np.float32)}, r"'keypoints' has shape"),
        (None, {"K": np.ones((C, 3, 4))}, r"'K' has shape"),
        (None, {"camera_names": np.array(["x"])}, r"'camera_names' has 1 names for 3 cameras"),
        (None, {"camera_names": np.array(["a", "b", "a"])}, r"'camera_names' must differ; 'a' appears twice"),
        (None, {"scores": np.full((C, F, J), np.nan, np.float32)}, r"'scores' contains NaN"),
    ],
)
def test_poses2d_bad_files_name_the_key(rng, tmp_path, drop, change, match):
    arrays = _poses2d(rng).to_arrays()
    arrays.pop(drop, None)
    arrays.update(change)
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(InputError, match=match) as e:
        Poses2D.load(path)
    assert "bad.npz" in str(e.value)


def test_unreadable_and_missing_files(tmp_path):
    p = tmp_path / "junk.npz"
    p.write_bytes(b"not a zip")
    for cls in (Poses2D, Labels, GroundTruth):
        with pytest.raises(InputError, match="not a readable"):
            cls.load(p)
        with pytest.raises(InputError, match="no such file"):
            cls.load(tmp_path / "none.npz")


def test_labels_round_trip(rng, tmp_path):
    lab = Labels(
        poses3d_world=rng.normal(size=(F, J, 3)),
        poses3d_camera=rng.normal(size=(C, F, J, 3)),
        valid=rng.uniform(size=(F, J)) > 0.2,
        reprojection_error=rng.uniform(size=(C, F, J)),
        extra={"offsets": np.array([0, 2, -1])},
    )
    path = tmp_path / "labels.npz"
    lab.save(path)
    with np.load(path) as z:
        assert z["poses3d_world"].dtype == np.float32 and z["poses3d_camera"].shape == (C, F, J, 3)
        assert z["valid"].dtype == bool and z["reprojection_error"].dtype == np.float32
    back = Labels.load(path)
    np.testing.assert_array_equal(back.valid, lab.valid)
    np.testing.assert_array_equal(back.poses3d_camera, lab.poses3d_camera)
    np.testing.assert_array_equal(back.extra["offsets"], [0, 2, -1])
    arrays = {k: v for k, v in np.load(path).items()}
    arrays["valid"] = arrays["valid"][:, :5]
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(InputError, match=r"bad\.npz.*'valid' has shape"):
        Labels.load(tmp_path / "bad.npz")


def test_ground_truth_round_trip_and_nan(rng, rig_s9, tmp_path):
    gt = GroundTruth(
        rng.normal(size=(F, J, 3)) * 500, ["a"] * 3 + ["b"] * 3, rig_s9, {"offsets": np.zeros(4, int)}
    )
    path = tmp_path / "gt.npz"
    gt.save(path)
    with np.load(path) as z:
        assert {"poses3d_world", "clip", "rig_json"} <= set(z.files)
        assert z["poses3d_world"].dtype == np.float32 and z["clip"].shape == (F,)
        assert z["rig_json"].dtype.kind == "U"
    back = GroundTruth.load(path)
    np.testing.assert_array_equal(back.poses3d_world, gt.poses3d_world)
    assert back.clip.tolist() == ["a"] * 3 + ["b"] * 3
    np.testing.assert_allclose(back.rig.P, rig_s9.P)

    poses = gt.poses3d_world.copy()
    poses[2, 5, 1] = np.nan
    np.savez(tmp_path / "nan.npz", poses3d_world=poses, clip=gt.clip)
    with pytest.raises(InputError, match=r"nan\.npz: 'poses3d_world' contains NaN in 1 frames"):
        GroundTruth.load(tmp_path / "nan.npz")
    assert np.isnan(GroundTruth.load(tmp_path / "nan.npz", allow_nan=True).poses3d_world).sum() == 1
    np.savez(tmp_path / "short.npz", poses3d_world=gt.poses3d_world, clip=gt.clip[:2])
    with pytest.raises(InputError, match="'clip' has shape"):
        GroundTruth.load(tmp_path / "short.npz")
    np.savez(tmp_path / "nokey.npz", clip=gt.clip)
    with pytest.raises(InputError, match="missing key 'poses3d_world'"):
        GroundTruth.load(tmp_path / "nokey.npz")


class _Boom:
    def __array__(self, *a, **k):
        raise RuntimeError("boom")


def test_atomic_writes_leave_nothing_behind_on_failure(tmp_path):
    target = tmp_path / "out" / "x.npz"
    with pytest.raises(RuntimeError, match="boom"):
        save_npz(target, a=np.zeros(3), b=_Boom())
    assert not target.exists() and list(target.parent.iterdir()) == []
    # an existing file is kept intact when rewriting it fails
    save_npz(target, a=np.arange(3))
    with pytest.raises(RuntimeError):
        save_npz(target, a=_Boom())
    with np.load(target) as z:
        np.testing.assert_array_equal(z["a"], [0, 1, 2])
    assert sorted(p.name for p in target.parent.iterdir()) == ["x.npz"]
    # json / text writers
    with pytest.raises(TypeError):
        save_json(tmp_path / "o.json", {"x": object()})
    assert not (tmp_path / "o.json").exists()
    save_json(tmp_path / "o.json", {"a": np.arange(2), "b": np.float32(1.5)})
    assert (tmp_path / "o.json").read_text().replace(" ", "").replace("\n", "") == '{"a":[0,1],"b":1.5}'
    save_text(tmp_path / "t.txt", "hello")
    assert (tmp_path / "t.txt").read_text() == "hello"
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(tmp_path / "k.bin") as tmp:
            tmp.write_bytes(b"half")
            raise KeyboardInterrupt
    assert not (tmp_path / "k.bin").exists() and not list(tmp_path.glob(".k.bin*"))


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_outputs_get_the_umask_permissions(tmp_path, umask):
    """Atomic writes (temporary names from mkstemp/mkdtemp: 0600/0700) end with the mode an
    ordinary open()/mkdir() gives under the user's umask; a replaced file keeps its own mode."""
    import os
    import stat

    from epipolarpose.io import atomic_folder

    def mode(p):
        return stat.S_IMODE(os.stat(p).st_mode)

    old = os.umask(umask)
    try:
        save_npz(tmp_path / "a.npz", x=np.zeros(3))
        save_text(tmp_path / "b.txt", "hi")
        save_json(tmp_path / "sub" / "c.json", {"a": 1})
        with atomic_folder(tmp_path / "report") as d:
            (d / "index.html").write_text("x")
            save_text(d / "fig.txt", "y")
        (tmp_path / "plain.txt").write_text("reference")
        os.mkdir(tmp_path / "plain_dir")
        want_file, want_dir = mode(tmp_path / "plain.txt"), mode(tmp_path / "plain_dir")
        assert want_file == 0o666 & ~umask and want_dir == 0o777 & ~umask
        for f in ("a.npz", "b.txt", "sub/c.json", "report/index.html", "report/fig.txt"):
            assert mode(tmp_path / f) == want_file, f
        assert mode(tmp_path / "report") == want_dir and mode(tmp_path / "sub") == want_dir
        with atomic_folder(tmp_path / "report") as d:  # replacing an earlier report
            (d / "index.html").write_text("z")
        assert mode(tmp_path / "report") == want_dir
        os.chmod(tmp_path / "b.txt", 0o640)
        save_text(tmp_path / "b.txt", "again")
        assert mode(tmp_path / "b.txt") == 0o640
    finally:
        os.umask(old)
