"""Threads over independent pieces of work keep order, results and errors."""

from __future__ import annotations

import numpy as np
import pytest

from epipolarpose.camera import Camera, Rig
from epipolarpose.formats import Poses2D
from epipolarpose.geometry.observations import OUTSIDE_MARGIN, normalized_observations
from epipolarpose.parallel import thread_map


def test_thread_map_keeps_order():
    def f(i: int) -> int:
        return i * i

    assert thread_map(f, range(50), workers=4) == [i * i for i in range(50)]
    assert thread_map(f, [], workers=4) == []
    assert thread_map(f, range(5), workers=1) == [0, 1, 4, 9, 16]


def test_thread_map_raises_the_error():
    def f(i: int) -> int:
        if i == 3:
            raise ValueError("three")
        return i

    with pytest.raises(ValueError, match="three"):
        thread_map(f, range(6), workers=2)


def test_normalized_observations_per_camera_equal_the_plain_computation(rng):
    """The threaded per-camera path against a straightforward whole-array computation."""
    C, F, J = 3, 40, 17
    size = np.array([[1000, 800]] * C)
    kp = rng.uniform(-700, 1700, (C, F, J, 2)).astype(np.float32)
    kp[rng.random((C, F, J)) < 0.1] = np.nan
    scores = rng.uniform(0, 1, (C, F, J)).astype(np.float32)
    scores[rng.random((C, F, J)) < 0.1] = 0
    K = np.array([[900.0, 0, 500], [0, 900, 400], [0, 0, 1]])
    dist = np.array([-0.2, 0.05, 0.001, -0.001, 0.0])
    p = Poses2D(
        keypoints=kp,
        scores=scores,
        image_size=size,
        camera_names=[f"c{i}" for i in range(C)],
        joint_names=[f"j{i}" for i in range(J)],
    )
    rig = Rig([Camera(K=K, dist=dist * (i + 1), image_size=(1000, 800)) for i in range(C)])
    xn, w = normalized_observations(p, rig, min_score=0.3)
    s = size[:, None, None, :].astype(np.float64)
    with np.errstate(invalid="ignore"):
        inside = ((kp >= -OUTSIDE_MARGIN * s) & (kp <= (1 + OUTSIDE_MARGIN) * s)).all(-1)
    obs = np.isfinite(kp).all(-1) & (scores > 0) & inside & (scores >= 0.3)
    ref = np.stack(
        [rig[c].undistort(np.where(obs[c][..., None], kp[c].astype(np.float64), np.nan)) for c in range(C)]
    )
    np.testing.assert_array_equal(xn, ref)
    np.testing.assert_array_equal(w, np.where(obs & np.isfinite(ref).all(-1), scores.astype(np.float64), 0.0))
    assert 0.3 < (w > 0).mean() < 0.8
