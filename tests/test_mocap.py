"""BVH reading, forward kinematics, loading as H36M-17 and the train/test split."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from epipolarpose.errors import InputError
from epipolarpose.mocap import (
    DEFAULT_BVH,
    clip_group,
    clip_split,
    list_shared_clips,
    load_clips,
    load_mocap,
    read_bvh,
)
from epipolarpose.skeleton import bone_lengths

# --- an independent FK: the `bvh` package for parsing, per-axis rotations multiplied by hand ------


def _independent_fk(path, frames):
    """Joint positions (len(frames), N, 3) in file units, names, from the `bvh` PyPI package."""
    from bvh import Bvh

    with open(path) as f:
        mocap = Bvh(f.read())
    names = mocap.get_joints_names()
    out = np.zeros((len(frames), len(names), 3))
    for fi, frame in enumerate(frames):
        glob: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for k, name in enumerate(names):
            chans = mocap.joint_channels(name)
            vals = [float(v) for v in mocap.frame_joint_channels(frame, name, chans)]
            t = np.array(mocap.joint_offset(name), dtype=float)
            R = np.eye(3)
            for c, v in zip(chans, vals):
                if c.endswith("position"):
                    t["XYZ".index(c[0])] = v
                else:  # compose left to right, one elementary rotation at a time
                    R = R @ Rotation.from_rotvec(np.deg2rad(v) * np.eye(3)["XYZ".index(c[0])]).as_matrix()
            parent = mocap.joint_parent(name)
            if parent is None:
                G = (R, t)
            else:
                PR, Pt = glob[parent.name]
                G = (PR @ R, Pt + PR @ t)
            glob[name] = G
            out[fi, k] = G[1]
    return out, names


@pytest.mark.parametrize("which", ["cmu", "bandai"])
def test_fk_matches_independent_reading(which, cmu_bvh, bandai_bvh):
    path, unit_mm = (cmu_bvh, 1000.0) if which == "cmu" else (bandai_bvh, 10.0)
    b = read_bvh(path)
    frames = [0, 1, b.num_frames // 2, b.num_frames - 1]
    ref, names = _independent_fk(path, frames)
    assert names == b.joint_names
    ours = b.forward_kinematics()[frames]
    assert np.abs(ours - ref).max() * unit_mm < 0.1
    assert np.abs(ours).max() > 10 * (1 if which == "bandai" else 0.01)  # not all zeros


def test_fk_known_answer_any_channel_order(tmp_path):
    # root: 6 channels, order Yrotation first; child: 6 channels whose positions replace OFFSET;
    # grandchild: 3 channels XZY.
    text = """HIERARCHY
ROOT A
{
  OFFSET 0 0 0
  CHANNELS 6 Yrotation Xposition Yposition Zposition Zrotation Xrotation
  JOINT B
  {
    OFFSET 9 9 9
    CHANNELS 6 Zrotation Xposition Yposition Zposition Xrotation Yrotation
    JOINT C
    {
      OFFSET 0 2 0
      CHANNELS 3 Xrotation Zrotation Yrotation
      End Site
      {
        OFFSET 0 0 1
      }
    }
  }
}
MOTION
Frames: 2
Frame Time: 0.5
90 1 2 3 0 0   0 1 0 0 0 0   0 0 0
0 0 0 0 90 0   0 1 0 0 0 0   0 90 0
"""
    p = tmp_path / "t.bvh"
    p.write_text(text)
    b = read_bvh(p)
    assert [j.euler_order for j in b.joints] == ["YZX", "ZXY", "XZY"]
    pos = b.forward_kinematics(end_sites=True)
    # frame 0: root at (1,2,3) rotated 90° about y: local x -> world -z, local z -> world x
    np.testing.assert_allclose(pos[0], [[1, 2, 3], [1, 2, 2], [1, 4, 2], [2, 4, 2]], atol=1e-12)
    # frame 1: root rotated 90° about z (x -> y, y -> -x); C rotated 90° about z (its end site on z)
    np.testing.assert_allclose(pos[1], [[0, 0, 0], [0, 1, 0], [-2, 1, 0], [-2, 1, 1]], atol=1e-12)
    assert b.fps == 2.0


def test_load_mocap_units_axes_and_centering(cmu_bvh, bandai_bvh):
    cmu = load_mocap(cmu_bvh)
    assert cmu.skeleton == "cmu" and cmu.name == "131_01" and cmu.fps == 120.0
    assert cmu.poses.shape == (995, 17, 3) and cmu.poses.dtype == np.float64
    # ~1.4 m tall (the synthesised head top adds 120 mm above CMU's head joint)
    height = np.median(cmu.poses[:, 10, 2] - cmu.poses[:, [3, 6], 2].min(-1))
    assert 1250 < height < 1500
    # z up: head above pelvis above ankles; centred in x, y only
    assert (cmu.poses[:, 10, 2] > cmu.poses[:, 0, 2]).all()
    assert (cmu.poses[:, 0, 2] > cmu.poses[:, [3, 6], 2].max(-1)).all()
    np.testing.assert_allclose(cmu.poses[:, 0, :2].mean(0), 0, atol=1e-9)
    assert cmu.poses[..., 2].min() > 0

    raw = read_bvh(cmu_bvh).forward_kinematics() * 1000
    hips = raw[:, read_bvh(cmu_bvh).index("Hips")]
    np.testing.assert_allclose(cmu.poses[:, 0, 2], hips[:, 1], atol=1e-9)  # y-up -> z-up, unshifted
    np.testing.assert_allclose(cmu.poses[:, 0, 0] - cmu.poses[0, 0, 0], hips[:, 0] - hips[0, 0], atol=1e-9)
    np.testing.assert_allclose(cmu.poses[:, 0, 1] - cmu.poses[0, 0, 1], -(hips[:, 2] - hips[0, 2]), atol=1e-9)

    ban = load_mocap(bandai_bvh)
    assert ban.skeleton == "bandai" and ban.fps == 30.0
    np.testing.assert_allclose(ban.poses, load_mocap(bandai_bvh, units="cm").poses)
    # game rig: shoulders ~21 cm apart, hips ~14 cm apart
    assert 180 < np.median(np.linalg.norm(ban.poses[:, 11] - ban.poses[:, 14], axis=-1)) < 240
    assert 110 < np.median(np.linalg.norm(ban.poses[:, 1] - ban.poses[:, 4], axis=-1)) < 170
    # head top: 120 mm beyond the head joint
    np.testing.assert_allclose(np.linalg.norm(ban.poses[:, 10] - ban.poses[:, 9], axis=-1), 120, atol=1e-6)
    raw = load_mocap(bandai_bvh, center=False).poses
    np.testing.assert_allclose(ban.poses[..., 2], raw[..., 2])


@pytest.mark.parametrize("which", ["cmu", "bandai"])
def test_bone_lengths_constant(which, cmu_bvh, bandai_bvh):
    m = load_mocap(cmu_bvh if which == "cmu" else bandai_bvh)
    bl = bone_lengths(m.poses)
    assert bl.std(0).max() < 1.0
    assert bl.mean(0).min() > 50


def test_resampling_stays_on_the_trajectory(cmu_bvh):
    orig = load_mocap(cmu_bvh, center=False)
    # 120 -> 40 fps: every third original frame, exactly
    m40 = load_mocap(cmu_bvh, fps=40, center=False)
    assert m40.fps == 40.0 and m40.num_frames == (orig.num_frames - 1) // 3 + 1
    np.testing.assert_allclose(m40.poses, orig.poses[::3], atol=1e-6)
    # 120 -> 50 fps: frame k at time k/50 lies between its two bracketing original frames
    m50 = load_mocap(cmu_bvh, fps=50, center=False)
    t = np.arange(m50.num_frames) / 50 * 120
    i0 = np.floor(t + 1e-9).astype(int)
    i1 = np.minimum(i0 + 1, orig.num_frames - 1)
    w = (t - i0)[:, None, None]
    lin = (1 - w) * orig.poses[i0] + w * orig.poses[i1]
    step = np.linalg.norm(orig.poses[i1] - orig.poses[i0], axis=-1)
    dev = np.linalg.norm(m50.poses - lin, axis=-1)
    assert (dev <= 0.25 * step + 0.5).all()  # curvature within one 1/120 s step is tiny
    assert dev.max() < 5
    # bone lengths are kept exactly (rotations are slerped, not positions averaged)
    np.testing.assert_allclose(bone_lengths(m50.poses).mean(0), bone_lengths(orig.poses).mean(0), atol=0.5)
    assert bone_lengths(m50.poses).std(0).max() < 1.0


def test_unknown_skeleton_names_missing_joints(tmp_path, bandai_bvh):
    text = bandai_bvh.read_text().replace("UpperArm_L", "Arm_Left").replace("Hand_R", "Paw_R")
    p = tmp_path / "odd.bvh"
    p.write_text(text)
    with pytest.raises(InputError, match=r"unknown skeleton.*UpperArm_L.*Hand_R"):
        load_mocap(p)


@pytest.mark.parametrize(
    "text, match",
    [
        ("HIERARCHY\nROOT A\n{\n OFFSET 0 0 0\n CHANNELS 3 Xrotation Yrotation Zrotation\n", "MOTION"),
        (
            "HIERARCHY\nROOT A\n{\nOFFSET 0 0 0\nCHANNELS 1 Wrotation\n}\nMOTION\nFrames: 1\nFrame Time: 1\n0\n",
            "Wrotation",
        ),
        (
            "HIERARCHY\nROOT A\n{\nOFFSET 0 0 0\nCHANNELS 1 Xrotation\n}\nMOTION\nFrames: 3\nFrame Time: 1\n0 1\n",
            "3 frames",
        ),
    ],
)
def test_malformed_bvh(tmp_path, text, match):
    p = tmp_path / "bad.bvh"
    p.write_text(text)
    with pytest.raises(InputError, match=match):
        read_bvh(p)
    with pytest.raises(InputError, match="no such"):
        read_bvh(tmp_path / "none.bvh")


def test_default_bvh_is_bundled_cmu_clip(cmu_bvh):
    assert DEFAULT_BVH.is_file()
    assert DEFAULT_BVH.read_bytes() == cmu_bvh.read_bytes()


def test_load_clips_concatenates(cmu_bvh, bandai_bvh):
    poses, clip, fps = load_clips([bandai_bvh, cmu_bvh], fps=30)
    a, b = load_mocap(bandai_bvh, fps=30), load_mocap(cmu_bvh, fps=30)
    assert fps == 30 and poses.shape == (a.num_frames + b.num_frames, 17, 3)
    assert list(clip[[0, a.num_frames - 1, a.num_frames]]) == [a.name, a.name, b.name]
    np.testing.assert_allclose(poses[a.num_frames :], b.poses)
    with pytest.raises(InputError, match="frame rates"):
        load_clips([bandai_bvh, cmu_bvh])


def test_split_by_clip_is_deterministic_and_stratified(shared):
    clips = list_shared_clips(shared)
    assert len(clips) >= 400
    split = clip_split(clips)
    train, test = set(split["train"]), set(split["test"])
    assert not train & test and train | test == set(clips)
    assert split == clip_split(list(reversed(clips)))
    assert list_shared_clips(shared, "test") == split["test"]
    assert 0.15 < len(test) / len(clips) < 0.3
    groups: dict[str, list] = {}
    for c in clips:
        groups.setdefault(clip_group(c), []).append(c)
    for g, members in groups.items():
        n_test = sum(m in test for m in members)
        if len(members) >= 2:
            assert 1 <= n_test < len(members), g
        else:
            assert n_test == 0, g
    # a clip's assignment doesn't depend on the other groups being present
    walk = [c for c in clips if clip_group(c) == "dataset-1/walk"]
    assert set(clip_split(walk)["test"]) == {c for c in walk if c in test}
    assert clip_group("x/dataset-2_walk-turn-left_old_003.bvh") == "dataset-2/walk-turn-left"
    assert clip_group("cmu/131_02.bvh") == "cmu/131"


def test_batched_slerp_resampling_equals_scipy_slerp_per_joint(bandai_bvh):
    """The vectorised resampling (one slerp over all joints and frames) gives scipy's per-joint
    ``Slerp`` and ``np.interp`` — the implementation it replaced — to 1e-9 mm."""
    from scipy.spatial.transform import Rotation, Slerp

    from epipolarpose.mocap import read_bvh

    b = read_bvh(bandai_bvh)
    quats, trans = b.local_transforms()
    F, N = trans.shape[:2]
    src = np.arange(F) / b.fps
    dst = np.minimum(np.arange(int((F - 1) / b.fps * 24 + 1e-6) + 1) / 24, src[-1])
    rots = [Slerp(src, Rotation.from_quat(quats[:, k]))(dst).as_matrix() for k in range(N)]
    tr = np.stack(
        [np.stack([np.interp(dst, src, trans[:, k, i]) for i in range(3)], -1) for k in range(N)], 1
    )
    G_R, G_t = [None] * N, np.empty((len(dst), N, 3))
    for k, j in enumerate(b.joints):
        if j.parent < 0:
            G_R[k], G_t[:, k] = rots[k], tr[:, k]
        else:
            G_R[k] = G_R[j.parent] @ rots[k]
            G_t[:, k] = G_t[:, j.parent] + np.einsum("fij,fj->fi", G_R[j.parent], tr[:, k])
    ours = b.forward_kinematics(fps=24)
    assert ours.shape == G_t.shape
    np.testing.assert_allclose(ours, G_t, atol=1e-9)
    # the local rotations are the Euler channels, joint by joint
    k = next(i for i, j in enumerate(b.joints) if j.euler_order and j.parent >= 0)
    j = b.joints[k]
    cols = [c for c, n in enumerate(j.channels) if n.lower().endswith("rotation")]
    ref = Rotation.from_euler(j.euler_order, b.motion[:, j.channel_start + np.array(cols)], degrees=True)
    np.testing.assert_allclose(Rotation.from_quat(quats[:, k]).as_matrix(), ref.as_matrix(), atol=1e-12)


@pytest.mark.parametrize("order", ["XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX"])
def test_euler_to_quaternion_is_scipys_intrinsic_euler(order):
    from scipy.spatial.transform import Rotation

    from epipolarpose.mocap import euler_to_quaternion

    a = np.random.default_rng(0).uniform(-180, 180, (7, 5, 3))
    q = euler_to_quaternion(order, a)
    ref = Rotation.from_euler(order, a.reshape(-1, 3), degrees=True).as_matrix()
    np.testing.assert_allclose(Rotation.from_quat(q.reshape(-1, 4)).as_matrix(), ref, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(q, axis=-1), 1.0, atol=1e-12)
