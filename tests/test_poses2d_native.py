"""poses2d.npz's native landmarks (keypoints_native, scores_native, joint_names_native): round trip,
validation naming the key, frame re-indexing that moves them with the keypoints, mirror pairs."""

from __future__ import annotations

import numpy as np
import pytest

from epipolarpose.errors import InputError
from epipolarpose.formats import Poses2D
from epipolarpose.io import save_npz
from epipolarpose.skeleton import BLAZEPOSE33_JOINTS, COCO17_JOINTS, H36M_JOINTS, left_right_pairs


def _poses(C=2, F=5, K=4, rng=None, **overrides) -> dict:
    rng = rng or np.random.default_rng(0)
    kpn = rng.uniform(0, 100, (C, F, K, 2)).astype(np.float32)
    kpn[0, 1, 2] = np.nan
    scn = rng.uniform(0.1, 1, (C, F, K)).astype(np.float32)
    scn[0, 1, 2] = 0
    args = dict(
        keypoints=rng.uniform(0, 100, (C, F, 17, 2)),
        scores=np.ones((C, F, 17)),
        image_size=np.full((C, 2), 200),
        keypoints_native=kpn,
        scores_native=scn,
        joint_names_native=[f"lm{k}" for k in range(K)],
    )
    args.update(overrides)
    return args


def test_round_trip_keeps_the_native_keys_exactly(tmp_path):
    p = Poses2D(**_poses(), extra={"frame_index": np.arange(5)})
    assert p.has_native and p.num_native_joints == 4
    p.save(tmp_path / "p.npz")
    with np.load(tmp_path / "p.npz") as z:
        assert {"keypoints_native", "scores_native", "joint_names_native"} <= set(z.files)
        assert z["keypoints_native"].dtype == np.float32 and z["keypoints_native"].shape == (2, 5, 4, 2)
        assert z["scores_native"].dtype == np.float32 and z["joint_names_native"].dtype.kind == "U"
    q = Poses2D.load(tmp_path / "p.npz")
    np.testing.assert_array_equal(q.keypoints_native, p.keypoints_native)  # NaN where missing too
    np.testing.assert_array_equal(q.scores_native, p.scores_native)
    assert q.joint_names_native == ["lm0", "lm1", "lm2", "lm3"]
    assert set(q.extra) == {"frame_index"}  # native keys are fields, not extras
    obs = q.observed_native()
    assert obs.shape == (2, 5, 4) and not obs[0, 1, 2] and obs.sum() == 2 * 5 * 4 - 1
    # files without native landmarks stay as they were
    bare = Poses2D(**_poses(keypoints_native=None, scores_native=None, joint_names_native=None))
    bare.save(tmp_path / "b.npz")
    with np.load(tmp_path / "b.npz") as z:
        assert "keypoints_native" not in z.files
    b = Poses2D.load(tmp_path / "b.npz")
    assert not b.has_native and b.observed_native() is None and b.num_native_joints == 0


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(scores_native=None), "'keypoints_native', 'joint_names_native' given without 'scores_native'"),
        (dict(keypoints_native=None, joint_names_native=None), "given without 'keypoints_native'"),
        (dict(keypoints_native=np.zeros((3, 5, 4, 2))), "'keypoints_native' has 3 cameras x 5 frames"),
        (dict(keypoints_native=np.zeros((2, 6, 4, 2))), "'keypoints_native' has 2 cameras x 6 frames"),
        (dict(keypoints_native=np.zeros((2, 5, 4))), "'keypoints_native' has shape"),
        (dict(scores_native=np.zeros((2, 5, 3))), "'scores_native' has shape (2, 5, 3), expected (2, 5, 4)"),
        (dict(joint_names_native=["a", "b"]), "'joint_names_native' has 2 names for 4"),
        (dict(joint_names_native=[["a", "b"], ["c", "d"]]), "'joint_names_native' has shape (2, 2)"),
        (dict(keypoints_native=np.full((2, 5, 4, 2), np.inf)), "'keypoints_native' contains inf"),
        (dict(scores_native=np.full((2, 5, 4), np.nan)), "'scores_native' contains NaN"),
        (dict(keypoints_native=np.full((2, 5, 4, 2), "x")), "'keypoints_native' must hold numbers"),
    ],
)
def test_validation_names_the_key(overrides, message):
    with pytest.raises(InputError) as e:
        Poses2D(**_poses(**overrides))
    assert message in str(e.value)


def test_load_reports_the_file_and_key(tmp_path):
    args = _poses()
    args["scores_native"] = args["scores_native"][:, :3]  # 3 frames instead of 5
    save_npz(tmp_path / "bad.npz", **args)
    with pytest.raises(InputError, match=r"bad\.npz: key 'scores_native' has shape \(2, 3, 4\)"):
        Poses2D.load(tmp_path / "bad.npz")
    args = _poses()
    args["keypoints_native"] = args["keypoints_native"][:, :, :3]  # 3 landmarks, the others 4
    save_npz(tmp_path / "fewer.npz", **args)
    with pytest.raises(
        InputError,
        match=r"fewer\.npz: the native landmarks disagree in number: 'keypoints_native' has 3, 'scores_native' 4 "
        r"and 'joint_names_native' 4",
    ):
        Poses2D.load(tmp_path / "fewer.npz")
    args = _poses()
    del args["joint_names_native"]
    save_npz(tmp_path / "partial.npz", **args)
    with pytest.raises(InputError, match=r"partial\.npz: .*without 'joint_names_native'"):
        Poses2D.load(tmp_path / "partial.npz")


def test_take_frames_moves_native_landmarks_with_the_keypoints():
    p = Poses2D(**_poses(), extra={"frame_index": np.arange(5)})
    # shared index: frames 4, 0, 0 and one out of range
    q = p.take_frames(np.array([4, 0, 0, 9]))
    assert q.keypoints.shape == (2, 4, 17, 2) and q.keypoints_native.shape == (2, 4, 4, 2)
    np.testing.assert_array_equal(q.keypoints_native[:, 0], p.keypoints_native[:, 4])
    np.testing.assert_array_equal(q.keypoints[:, 2], p.keypoints[:, 0])
    assert np.isnan(q.keypoints_native[:, 3]).all() and (q.scores_native[:, 3] == 0).all()
    assert np.isnan(q.keypoints[:, 3]).all() and (q.scores[:, 3] == 0).all()
    # per-camera index (a time shift of camera 1 by +1 frame, as sync offsets do)
    idx = np.stack([np.arange(5), np.arange(5) - 1])
    s = p.take_frames(idx)
    np.testing.assert_array_equal(s.keypoints_native[0], p.keypoints_native[0])
    np.testing.assert_array_equal(s.keypoints_native[1, 1:], p.keypoints_native[1, :4])
    np.testing.assert_array_equal(s.scores_native[1, 1:], p.scores_native[1, :4])
    assert np.isnan(s.keypoints_native[1, 0]).all() and np.isnan(s.keypoints[1, 0]).all()
    assert s.joint_names_native == p.joint_names_native and set(s.extra) == {"frame_index"}
    # the source is untouched
    assert np.isfinite(p.keypoints_native[1, 0]).all()
    bare = Poses2D(**_poses(keypoints_native=None, scores_native=None, joint_names_native=None))
    assert not bare.take_frames(np.arange(2)).has_native
    with pytest.raises(InputError, match="frame index"):
        p.take_frames(np.zeros((3, 2), int))


def test_mirror_pairs_of_every_skeleton():
    from epipolarpose.detectors.importers import OPENPOSE_BODY25_JOINTS

    bp = dict(left_right_pairs(BLAZEPOSE33_JOINTS))
    assert len(bp) == 16  # 33 = nose + 16 left/right pairs
    B = BLAZEPOSE33_JOINTS.index
    assert bp[B("left_heel")] == B("right_heel") and bp[B("mouth_left")] == B("mouth_right")
    assert len(left_right_pairs(COCO17_JOINTS)) == 8
    op = dict(left_right_pairs(OPENPOSE_BODY25_JOINTS))
    O = OPENPOSE_BODY25_JOINTS.index
    assert len(op) == 11 and op[O("left_big_toe")] == O(
        "right_big_toe"
    )  # 25 = nose, neck, mid_hip + 11 pairs
    h = dict(left_right_pairs(H36M_JOINTS))
    assert len(h) == 6 and h[H36M_JOINTS.index("LFoot")] == H36M_JOINTS.index("RFoot")
