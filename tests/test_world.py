"""The levelled world (world.level_world): up from the person, known answers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from epipolarpose.camera import Camera, Rig
from epipolarpose.skeleton import H36M_JOINTS
from epipolarpose.world import _feet_seen, camera_horizon, level_world

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


def _look_at(centre: np.ndarray, target: np.ndarray, roll_deg: float = 0.0) -> Camera:
    """A camera at ``centre`` looking at ``target`` with its image rows level in a z-up world,
    then rolled about its optical axis by ``roll_deg``."""
    f = (target - centre) / np.linalg.norm(target - centre)
    right = np.cross(f, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    R = np.stack([right, np.cross(f, right), f])
    R = Rotation.from_rotvec([0.0, 0.0, np.radians(roll_deg)]).as_matrix() @ R
    return Camera(K=np.eye(3), R=R, t=-R @ centre, name="cam")


def _ring(rolls: list[float], height: float = 2500.0) -> Rig:
    """Cameras 4 m around the origin at ``height`` mm looking at (0, 0, 1000), one per roll."""
    cams = []
    for i, roll in enumerate(rolls):
        a = 2 * np.pi * i / len(rolls) + 0.3
        cams.append(
            _look_at(np.array([4000 * np.cos(a), 4000 * np.sin(a), height]), np.array([0, 0, 1000.0]), roll)
        )
    return Rig(cams)


def _tilted(rig: Rig, X: np.ndarray, tilt: np.ndarray) -> tuple[Rig, np.ndarray]:
    """The same rig and poses (..., 3) in a world turned by ``tilt`` (X_new = tilt @ X)."""
    cams = [Camera(K=c.K, R=c.R @ tilt.T, t=c.t, name=f"cam{i}") for i, c in enumerate(rig)]
    return Rig(cams), X @ tilt.T


@pytest.fixture(scope="module")
def seated(walk):
    """A seated person (thighs horizontal, shins vertical) whose legs no camera sees: 40 frames
    of the walk's upper body over a chair, the ankles NaN."""
    pose = walk[0].copy()
    hips = [J["Hip"], J["RHip"], J["LHip"]]
    pose -= pose[J["Hip"]]
    for side in "RL":  # knee 450 mm forward of the hip, ankle 450 mm below the knee
        pose[J[side + "Knee"]] = pose[J[side + "Hip"]] + [450.0, 0, 0]
        pose[J[side + "Foot"]] = pose[J[side + "Knee"]] - [0, 0, 450.0]
    pose += [0, 0, 450.0] - pose[hips].mean(0) * [0, 0, 1]
    X = np.repeat(pose[None], 40, 0) + np.random.default_rng(0).normal(0, 5, (40, 17, 3))
    X[:, [J["RFoot"], J["LFoot"]]] = np.nan
    return X


def test_the_cameras_horizon_levels_a_seated_person(seated):
    """No floor plane: up is the direction perpendicular to every camera's image rows (level
    cameras), exactly, whatever the self-calibrated world's tilt; the note says so."""
    tilt = Rotation.from_rotvec([0.4, -0.3, 0.2]).as_matrix()
    rig, X = _tilted(_ring([0.0, 0.0, 0.0, 0.0]), seated, tilt)
    up, residual = camera_horizon(rig)
    np.testing.assert_allclose(up, tilt[:, 2], atol=1e-9)
    assert residual < 1e-6
    lev = level_world(rig, X)
    assert lev.up == "cameras' horizon" and lev.floor == "lowest joint"
    np.testing.assert_allclose(lev.R[2], tilt[:, 2], atol=1e-9)
    assert "cameras' horizon" in lev.note and "image rows within 0.0° of the others' horizon" in lev.note
    Xl = X @ lev.R.T + lev.t
    assert np.nanmin(Xl[..., 2]) > -30 and np.all(Xl[:, J["Head"], 2] > Xl[:, J["Hip"], 2])


def test_a_rolled_camera_refuses_the_horizon(seated):
    """One camera rolled by 12°: the cameras agree on no horizon (None), and up comes from the
    person (pelvis to thorax); two cameras never make a horizon (nothing to check it against)."""
    rig = _ring([0.0, 12.0, 0.0, 0.0])
    assert camera_horizon(rig) is None
    # each camera is checked against the plane of the others, so one rolled camera cannot tilt
    # the fit and pass (fitted to all four, a 10° roll leaves a residual of only 4.7°)
    assert camera_horizon(_ring([10.0, 0.0, 0.0, 0.0])) is None
    assert camera_horizon(_ring([0.0, 12.0, 0.0])) is None
    up, residual = camera_horizon(_ring([3.0, 0.0, 0.0, 0.0]))  # within 7°: accepted
    assert 2.0 < residual < 4.0 and np.degrees(np.arccos(up[2])) < 2.0
    assert camera_horizon(Rig(_ring([0.0, 0.0, 0.0, 0.0]).cameras[:2])) is None
    lev = level_world(rig, seated)
    assert lev.up == "pelvis to thorax"
    axis = np.median(seated[:, J["Thorax"]] - seated[:, J["Hip"]], axis=0)
    assert np.degrees(np.arccos(lev.R[2] @ axis / np.linalg.norm(axis))) < 5


def test_upside_down_cameras_keep_the_person_upright(seated):
    """Every camera rolled by 180° still has level image rows, but its image-down axis points up:
    the person's own up decides the sign."""
    lev = level_world(_ring([180.0, 180.0, 180.0, 180.0]), seated)
    assert lev.up == "cameras' horizon"
    np.testing.assert_allclose(lev.R[2], [0, 0, 1], atol=1e-9)


def test_guessed_feet_take_no_part(seated):
    """Legs a detector guesses under a desk: ankles in a quarter of the frames, shins of any
    length. They neither tilt up nor set the floor; real ankles (every frame, a constant shin)
    do count as feet."""
    rng = np.random.default_rng(1)
    ghost = seated.copy()
    frames = rng.choice(len(ghost), 10, replace=False)
    ghost[frames[:, None], [J["RFoot"], J["LFoot"]]] = rng.uniform(
        [-800, -800, -600], [800, 800, 300], (10, 2, 3)
    )
    assert not _feet_seen(ghost)
    # guessed in every frame, but the shin's length jumps about: not feet either
    every = seated.copy()
    for side in "RL":
        shin = rng.uniform(150, 700, len(every))[:, None] * [0, 0, 1.0]
        every[:, J[side + "Foot"]] = every[:, J[side + "Knee"]] - shin
    assert not _feet_seen(every)
    rig = Rig([Camera(K=np.eye(3), R=np.eye(3), t=np.zeros(3), name="cam0")])  # no horizon
    lev, clean = level_world(rig, ghost), level_world(rig, seated)
    assert lev.up == "pelvis to thorax" and lev.floor == "lowest joint"
    np.testing.assert_allclose(lev.R, clean.R, atol=1e-12)
    np.testing.assert_allclose(lev.t, clean.t, atol=1e-9)
    # in every frame and a constant shin: feet (this seated person's feet then give up too)
    real = seated.copy()
    for side in "RL":
        real[:, J[side + "Foot"]] = real[:, J[side + "Knee"]] - [0, 0, 450.0]
    assert _feet_seen(real) and level_world(rig, real).floor == "feet"


def test_the_floor_plane_beats_the_horizon(walk):
    """A person who walks over a floor patch: up is the floor's normal even where level cameras
    agree on a horizon 3° away from it."""
    pose = walk[0].copy()
    feet = [J["RFoot"], J["LFoot"]]
    pose[feet, 2] = pose[feet, 2].min()  # both feet on the floor
    xy = np.stack(np.meshgrid(np.linspace(-1500, 1500, 6), np.linspace(-1500, 1500, 6)), -1).reshape(-1, 2)
    X = np.stack([pose + [x, y, 0] for x, y in xy])
    off = Rotation.from_rotvec([np.radians(3.0), 0, 0]).as_matrix()  # the cameras' world is 3° off
    rig = Rig([Camera(K=c.K, R=c.R @ off, t=c.t, name=f"cam{i}") for i, c in enumerate(_ring([0.0] * 4))])
    assert camera_horizon(rig) is not None  # a horizon was there to be used
    lev = level_world(rig, X)
    assert lev.up == "floor plane"
    np.testing.assert_allclose(lev.R[2], [0, 0, 1], atol=1e-6)


def test_no_poses_no_levelling():
    """Nothing triangulated: no levelling (None), even where the cameras agree on a horizon."""
    rig = _ring([0.0, 0.0, 0.0, 0.0])
    assert camera_horizon(rig) is not None
    assert level_world(rig, np.full((10, 17, 3), np.nan)) is None
    assert level_world(rig, np.zeros((0, 17, 3))) is None
