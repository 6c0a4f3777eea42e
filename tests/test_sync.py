"""Time synchronisation: offsets recovered from epipolar consistency; apply_offsets trims."""

from __future__ import annotations

import numpy as np
import pytest

from epipolarpose.formats import Poses2D
from epipolarpose.sync import apply_offsets, estimate_offsets


@pytest.fixture(scope="module")
def walk(cmu_bvh):
    from epipolarpose.mocap import load_mocap

    return load_mocap(cmu_bvh, fps=30).poses[:150]


def _subset(rig, idx):
    from epipolarpose.camera import Rig

    return Rig([rig[i] for i in idx], units=rig.units)


@pytest.mark.parametrize("offs", [(0, 12, -9), (0, -20, 17)])
def test_offsets_recovered_with_default_noise(walk, rig_s9, offs):
    from epipolarpose.synthetic import NoiseModel, synthesize

    p2d, _ = synthesize(walk, _subset(rig_s9, [0, 1, 2]), NoiseModel(time_offsets=offs), seed=3)
    res = estimate_offsets(p2d, max_offset=25)
    np.testing.assert_array_equal(res.offsets, offs)
    assert (res.confidence[1:] > 0.1).all()
    # the coarse cost curve has its minimum at (or next to) the true offset
    k = np.nanargmin(res.cost[1])
    assert abs(res.candidates[k] - offs[1]) <= 1


def test_offsets_without_intrinsics_and_other_reference(walk, rig_s9):
    from epipolarpose.synthetic import NoiseModel, synthesize

    p2d, _ = synthesize(walk, _subset(rig_s9, [0, 3]), NoiseModel(time_offsets=(0, 7)), seed=1)
    p2d.K = None
    p2d.dist = None
    assert estimate_offsets(p2d, max_offset=15).offsets.tolist() == [0, 7]
    # relative to camera 1, camera 0 is 7 frames the other way
    assert estimate_offsets(p2d, max_offset=15, reference=1).offsets.tolist() == [-7, 0]


def test_static_person_gives_low_confidence(rig_s9, walk):
    from epipolarpose.synthetic import NoiseModel, synthesize

    still = np.repeat(walk[:1], 80, axis=0)
    p2d, _ = synthesize(still, _subset(rig_s9, [0, 1]), NoiseModel(), seed=0)
    res = estimate_offsets(p2d, max_offset=10)
    assert res.confidence[1] < 0.2
    assert any("uncertain" in w for w in res.warnings)


def test_apply_offsets_aligns_and_trims():
    C, F, J = 3, 50, 17
    t = np.arange(F, dtype=float)
    offs = np.array([0, 4, -3])
    # camera c's frame i shows time i + offs[c]: encode the time in the x coordinate
    kp = np.zeros((C, F, J, 2), np.float32)
    for c in range(C):
        kp[c, :, :, 0] = (t + offs[c])[:, None]
    p = Poses2D(kp, np.ones((C, F, J)), np.full((C, 2), 100), extra={"frame_index": np.arange(F)})
    out = apply_offsets(p, offs)
    assert out.num_frames == F - 7  # common time range [4, 47)
    np.testing.assert_array_equal(out.keypoints[:, :, 0, 0], np.tile(np.arange(4, F - 3), (C, 1)))
    assert out.extra["offsets"].tolist() == [0, 4, -3] and int(out.extra["first_frame"]) == 4
    np.testing.assert_array_equal(out.extra["frame_index"], np.arange(4, F - 3))


def test_bad_input_messages(rig_s9, walk):
    from epipolarpose.errors import InputError

    p = Poses2D(np.zeros((2, 10, 17, 2)), np.ones((2, 10, 17)), np.full((2, 2), 100))
    with pytest.raises(InputError, match="max_offset"):
        estimate_offsets(p, max_offset=30)
    with pytest.raises(InputError, match="do not overlap"):
        apply_offsets(p, [0, 9])
    with pytest.raises(InputError, match="one entry per camera"):
        apply_offsets(p, [0, 1, 2])
