"""The levelled world (world.level_world): up from the person, known answers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from epipolarpose.camera import Camera, Rig
from epipolarpose.skeleton import H36M_JOINTS
from epipolarpose.world import level_world

J = {n: i for i, n in enumerate(H36M_JOINTS)}


@pytest.fixture(scope="module")
def walk():
    from epipolarpose.mocap import DEFAULT_BVH, load_mocap

    return load_mocap(DEFAULT_BVH, fps=25).poses  # (F, 17, 3) mm, z up


def test_a_standing_person_gives_the_ankles_to_shoulders_axis(walk):
    """A person standing still in a tilted world: up is the unit ankles -> shoulders direction
    (midpoints), not ankles -> head (the head sits forward of the body's axis)."""
    pose = walk[0]
    tilt = Rotation.from_rotvec([0.3, -0.2, 0.1]).as_matrix()  # the self-calibrated world
    X = np.repeat(pose[None], 30, 0) @ tilt.T
    rig = Rig([Camera(K=np.eye(3), R=tilt.T, t=np.zeros(3), name="cam0")])
    lev = level_world(rig, X)
    assert lev.up == "feet to shoulders" and lev.floor == "feet"
    axis = pose[[J["RShoulder"], J["LShoulder"]]].mean(0) - pose[[J["RFoot"], J["LFoot"]]].mean(0)
    axis = tilt @ (axis / np.linalg.norm(axis))
    np.testing.assert_allclose(lev.R[2], axis, atol=1e-9)
    head = tilt @ (pose[J["Head"]] - pose[[J["RFoot"], J["LFoot"]]].mean(0))
    assert not np.allclose(lev.R[2], head / np.linalg.norm(head), atol=1e-3)  # a different axis
    # the levelled world: the ankles above the floor, z = 0 below them, R a rotation
    np.testing.assert_allclose(lev.R @ lev.R.T, np.eye(3), atol=1e-12)
    Xl = X @ lev.R.T + lev.t
    assert np.all(Xl[:, [J["RFoot"], J["LFoot"]], 2] > 0)
    assert np.all(Xl[:, J["Head"], 2] > Xl[:, J["Hip"], 2])
