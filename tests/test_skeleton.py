"""The Human3.6M skeleton and the mappings into it."""

from __future__ import annotations

import numpy as np
import pytest

from epipolarpose.skeleton import (
    BANDAI,
    BLAZEPOSE33,
    BONES,
    CMU,
    COCO17,
    FLIP_PERMUTATION,
    H36M_JOINTS,
    LEFT_JOINTS,
    LEFT_RIGHT_PAIRS,
    PARENTS,
    RIGHT_JOINTS,
    bone_lengths,
    flip_pose,
    root_relative,
    synthesize_head_top,
)


def test_flip_permutation_is_an_involution_swapping_sides():
    assert len(H36M_JOINTS) == 17
    np.testing.assert_array_equal(FLIP_PERMUTATION[FLIP_PERMUTATION], np.arange(17))
    np.testing.assert_array_equal(FLIP_PERMUTATION[LEFT_JOINTS], RIGHT_JOINTS)
    np.testing.assert_array_equal(FLIP_PERMUTATION[RIGHT_JOINTS], LEFT_JOINTS)
    centre = np.setdiff1d(np.arange(17), np.concatenate([LEFT_JOINTS, RIGHT_JOINTS]))
    np.testing.assert_array_equal(FLIP_PERMUTATION[centre], centre)
    for left, right in LEFT_RIGHT_PAIRS:
        assert H36M_JOINTS[left].startswith("L") and H36M_JOINTS[right].startswith("R")
        assert H36M_JOINTS[left][1:] == H36M_JOINTS[right][1:]


def test_parents_form_a_tree_rooted_at_0():
    assert PARENTS[0] == -1 and (PARENTS[1:] >= 0).all()
    assert (PARENTS[1:] < np.arange(1, 17)).all()  # parents come first: no cycles
    for j in range(17):
        seen, k = set(), j
        while k != 0:
            assert k not in seen
            seen.add(k)
            k = PARENTS[k]
    assert BONES.shape == (16, 2)
    np.testing.assert_array_equal(PARENTS[BONES[:, 1]], BONES[:, 0])
    # the flip permutation maps bones to bones
    flipped = {tuple(b) for b in FLIP_PERMUTATION[BONES]}
    assert flipped == {tuple(b) for b in BONES}


@pytest.mark.parametrize("mapping", [COCO17, BLAZEPOSE33])
def test_coco_like_mappings_give_the_promised_midpoints(mapping, rng):
    src = rng.normal(size=(3, 5, len(mapping.source_joints), 3))
    out = mapping.apply(src)
    assert out.shape == (3, 5, 17, 3)
    i = {n: k for k, n in enumerate(mapping.source_joints)}
    hips = (src[..., i["left_hip"], :] + src[..., i["right_hip"], :]) / 2
    shoulders = (src[..., i["left_shoulder"], :] + src[..., i["right_shoulder"], :]) / 2
    ears = (src[..., i["left_ear"], :] + src[..., i["right_ear"], :]) / 2
    np.testing.assert_allclose(out[..., 0, :], hips)
    np.testing.assert_allclose(out[..., 8, :], shoulders)
    np.testing.assert_allclose(out[..., 7, :], (hips + shoulders) / 2)
    np.testing.assert_allclose(out[..., 9, :], src[..., i["nose"], :])
    np.testing.assert_allclose(out[..., 10, :], ears)
    np.testing.assert_allclose(out[..., 13, :], src[..., i["left_wrist"], :])
    np.testing.assert_allclose(out[..., 3, :], src[..., i["right_ankle"], :])
    # the mixing matrix agrees with apply
    np.testing.assert_allclose(np.einsum("js,...sd->...jd", mapping.matrix(), src), out, atol=1e-12)
    # derived joints take the minimum score of their parts
    scores = rng.uniform(size=(4, len(mapping.source_joints)))
    s = mapping.apply_scores(scores)
    np.testing.assert_allclose(s[:, 0], np.minimum(scores[:, i["left_hip"]], scores[:, i["right_hip"]]))
    np.testing.assert_allclose(s[:, 12], scores[:, i["left_elbow"]])


def test_mocap_mappings_leave_head_top_to_synthesis(rng):
    for m in (BANDAI, CMU):
        out = m.apply(rng.normal(size=(2, len(m.source_joints), 3)))
        assert np.isnan(out[:, 10]).all() and np.isfinite(np.delete(out, 10, axis=1)).all()
    with pytest.raises(ValueError, match="expects"):
        COCO17.apply(np.zeros((2, 16, 2)))


def test_synthesize_head_top(rng):
    thorax, head = rng.normal(size=(10, 3)) * 100, rng.normal(size=(10, 3)) * 100
    top = synthesize_head_top(thorax, head)
    np.testing.assert_allclose(np.linalg.norm(top - head, axis=-1), 120)
    # beyond the head, on the thorax -> head line
    np.testing.assert_allclose(
        np.linalg.norm(top - thorax, axis=-1), np.linalg.norm(head - thorax, axis=-1) + 120
    )
    np.testing.assert_allclose(synthesize_head_top(np.zeros(3), np.array([0, 0, 2.0]), 1.0), [0, 0, 3])


def test_flip_root_relative_and_bone_lengths(rng):
    poses = rng.normal(size=(4, 17, 3)) * 300
    f = flip_pose(poses)
    np.testing.assert_allclose(flip_pose(f), poses)
    np.testing.assert_allclose(f[:, 4, 0], -poses[:, 1, 0])
    np.testing.assert_allclose(f[:, 4, 1:], poses[:, 1, 1:])
    np.testing.assert_allclose(np.sort(bone_lengths(f), -1), np.sort(bone_lengths(poses), -1))
    rr = root_relative(poses)
    np.testing.assert_allclose(rr[:, 0], 0)
    np.testing.assert_allclose(rr[:, 5] - rr[:, 3], poses[:, 5] - poses[:, 3])
    line = np.zeros((17, 3))
    line[:, 0] = np.arange(17) * 10.0  # joint j at x = 10 j
    np.testing.assert_allclose(bone_lengths(line), 10 * np.abs(BONES[:, 1] - BONES[:, 0]))
