"""The lower bound on a self-calibrated rig's error: bundle adjustment's covariance against the
scatter of repeated noisy adjustments (Monte Carlo), the conditional covariance against an
independent inverse, the motion measure's known answers, and footage that cannot give a rig."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from epipolarpose.errors import InputError
from epipolarpose.formats import Poses2D
from epipolarpose.geometry.alignment import rotation_angle_deg
from epipolarpose.geometry.bundle import BundleObservations, BundleOptions, bundle_adjust
from epipolarpose.geometry.calibration import CalibrationOptions, calibrate, distinct_frames
from epipolarpose.geometry.precision import (
    RigPrecision,
    motion_extent,
    pair_rotation_sd_deg,
    precision_verdict,
)
from epipolarpose.synthetic import NoiseModel, default_rig, synthesize


def _relative_errors(R: np.ndarray, R_true: np.ndarray) -> np.ndarray:
    C = len(R)
    return np.array(
        [
            rotation_angle_deg(R[j] @ R[i].T, R_true[j] @ R_true[i].T)
            for i in range(C)
            for j in range(i + 1, C)
        ]
    )


@pytest.mark.parametrize("refine_focal", [False, True])
def test_covariance_predicts_the_scatter_of_noisy_adjustments(refine_focal):
    """The RMS relative-rotation error over 60 noise draws is what the covariance predicts
    (within the sampling error of 60 draws), and so is the focal factors' scatter."""
    rng = np.random.default_rng(0)
    rig = default_rig().in_camera_frame(0)
    X = rng.normal(size=(80, 3)) * [300, 300, 500] + [0, 0, 5500]
    xc = rig.world_to_camera(X)
    obs = xc[..., :2] / xc[..., 2:]  # (C, N, 2)
    C, N = obs.shape[:2]
    f = rig.K[:, 0, 0]
    cam_idx, pt_idx = np.repeat(np.arange(C), N), np.tile(np.arange(N), C)
    sigma_px = 2.0
    options = BundleOptions(loss="linear", refine_focal=refine_focal, covariance=True)
    errors, focal, predicted, focal_sd = [], [], [], []
    for _ in range(60):
        noisy = obs + rng.normal(size=obs.shape) * sigma_px / f[:, None, None]
        res = bundle_adjust(
            rig.R, rig.t, X, f, BundleObservations(cam_idx, pt_idx, noisy.reshape(-1, 2)), options
        )
        errors.append(_relative_errors(res.R, rig.R))
        focal.append(res.focal_scale)
        predicted.append(pair_rotation_sd_deg(res.R, res.covariance))
        if refine_focal:
            focal_sd.append(np.sqrt(np.diag(res.covariance)[6 * (C - 1) :]))
    empirical = np.sqrt(np.mean(np.square(errors), axis=0))  # (pairs,)
    predicted = np.mean(predicted, axis=0)
    assert predicted.min() > 0.01  # not a trivial comparison
    np.testing.assert_allclose(empirical, predicted, rtol=0.3)
    assert 0.85 < empirical.mean() / predicted.mean() < 1.15
    if refine_focal:
        np.testing.assert_allclose(np.std(focal, axis=0), np.mean(focal_sd, axis=0), rtol=0.35)


def test_focal_fixed_is_the_conditional_covariance():
    """With the focal factors known, the poses' covariance is the inverse of their block of the
    information matrix: computed independently here from a random information matrix."""
    rng = np.random.default_rng(1)
    C = 3
    P = 6 * (C - 1) + C
    B = rng.normal(size=(P, P))
    info = B @ B.T + P * np.eye(P)
    cov = np.linalg.inv(info)
    R = default_rig().R[:C]
    nc = 6 * (C - 1)
    conditional = np.linalg.inv(info[:nc, :nc])
    got = pair_rotation_sd_deg(R, cov, focal_fixed=True)
    want = pair_rotation_sd_deg(R, conditional)
    np.testing.assert_allclose(got, want, rtol=1e-9)
    assert np.all(got < pair_rotation_sd_deg(R, cov))  # knowing the focal lengths only helps
    assert np.isinf(pair_rotation_sd_deg(R, np.full((P, P), np.inf))).all()


def test_motion_extent_known_answers():
    rng = np.random.default_rng(2)
    body = rng.normal(size=(17, 3))
    size = np.median(np.linalg.norm(body - np.median(body, 0), axis=-1))
    frame, joint = np.repeat(np.arange(50), 17), np.tile(np.arange(17), 50)
    still = np.tile(body, (50, 1))
    assert motion_extent(still, frame, joint) == pytest.approx(0.0, abs=1e-12)
    # the body moved to +-d along x, half the frames each: RMS distance d from the median centre
    d = 3.0 * size
    moved = still + np.where(np.arange(50) % 2 == 0, d, -d).repeat(17)[:, None] * [1, 0, 0]
    assert motion_extent(moved, frame, joint) == pytest.approx(3.0, rel=1e-6)
    # a few wildly wrong points (one joint in a frame, 10^4 body sizes off) hardly count as
    # motion (a mean centre would move by ~600 body sizes in those frames)
    wild = still.copy()
    wild[::40] += 1e4 * size
    assert motion_extent(wild, frame, joint) < 0.2
    # limbs moving in place: 3 of 17 landmarks swing by +-2 body sizes while the body's centre (a
    # median) hardly moves; the 90th percentile of the landmarks' own movement is theirs, 2 body
    # sizes (a little less: the swinging limbs also make the body's size larger)
    arms = still.copy().reshape(50, 17, 3)
    arms[:, :3, 2] += np.where(np.arange(50) % 2 == 0, 2, -2)[:, None] * size
    assert 1.5 < motion_extent(arms.reshape(-1, 3), frame, joint) <= 2.0
    # no frame with 3 points: unknown
    assert np.isnan(motion_extent(still[:2], frame[:2], joint[:2]))


def test_verdict_thresholds_and_causes():
    names = ["a", "b", "c"]
    sd = np.array([0.5, 0.6, 2.0])  # pairs a-b, a-c, b-c
    p = RigPrecision(sd, None, None, frames=10, motion=0.3)
    assert precision_verdict(p, names, warn_deg=3.0, refuse_deg=5.0) == (None, None)
    # a person standing still is named whatever the bound
    still = RigPrecision(sd, None, None, frames=200, motion=0.1)
    warning, error = precision_verdict(still, names, warn_deg=3.0, refuse_deg=5.0)
    assert error is None and "hardly moves" in warning and "200 frames" in warning
    warning, error = precision_verdict(p, names, warn_deg=1.0, refuse_deg=5.0)
    assert error is None and "±2.0°" in warning and "worst pair 'b'-'c'" in warning
    assert "only 10 frames" in warning and "--intrinsics" not in warning and "causes:" in warning
    # one camera named: c (its pairs' median 1.3° vs 0.5°, 2.6 x) rather than b (1.25° vs 0.6°)
    assert "camera 'c' is the least constrained" in warning and "camera 'b'" not in warning
    assert "hardly moves (body and limbs move 0.30" in warning  # under LITTLE_MOTION
    assert "sees the person in only" not in warning  # not known
    rare = RigPrecision(sd, None, None, frames=10, motion=0.3, camera_frames=np.array([10, 9, 3]))
    warning, _ = precision_verdict(rare, names, warn_deg=1.0, refuse_deg=5.0)
    assert (
        "camera 'c' is the least constrained (its pairs' bounds are 2.6 x the others'): it sees the person in only 3 of the 10 frames"
        in warning
    )
    often = RigPrecision(sd, None, None, frames=10, motion=0.3, camera_frames=np.array([10, 9, 8]))
    assert "sees the person" not in precision_verdict(often, names, warn_deg=1.0, refuse_deg=5.0)[0]

    warning, error = precision_verdict(p, names, warn_deg=1.0, refuse_deg=1.5)
    assert warning is None and "no rig is returned" in error and "--max-uncertainty" in error
    # a refusal limit below the warning threshold still refuses
    assert precision_verdict(p, names, warn_deg=3.0, refuse_deg=1.5)[1] is not None
    # unknown focal lengths named when knowing them would more than halve the bound
    focal = RigPrecision(sd, sd / 4, np.full(3, 0.2), frames=300, motion=2.0)
    warning, _ = precision_verdict(focal, names, warn_deg=1.0, refuse_deg=None)
    assert "focal lengths are unknown" in warning and "pass --intrinsics" in warning
    assert "only 300" not in warning and "hardly moves" not in warning
    # ... and when they were given but refined on request, the advice is not to refine them
    warning, _ = precision_verdict(focal, names, warn_deg=1.0, refuse_deg=None, intrinsics_known=True)
    assert "--no-refine-focal" in warning and "--intrinsics" not in warning
    # not determined at all: said so, no pair named, refused
    inf = RigPrecision(np.full(3, np.inf), None, None, frames=1, motion=0.0)
    _, error = precision_verdict(inf, names, warn_deg=1.0, refuse_deg=3.0)
    assert "relative rotations undetermined" in error and "worst pair '" not in error
    assert inf.as_dict()["rotation_sd_deg"] == [None, None, None]
    # no frame with enough points: motion unknown, no "hardly moves"
    nan = RigPrecision(np.full(3, 0.5), None, None, frames=50, motion=float("nan"))
    assert precision_verdict(nan, names, warn_deg=1.0, refuse_deg=3.0) == (None, None)


@pytest.fixture(scope="module")
def walk():
    from epipolarpose.mocap import DEFAULT_BVH, load_mocap

    return load_mocap(DEFAULT_BVH, fps=25).poses


def test_a_single_frame_is_refused_and_a_walk_is_not(walk):
    """One frame of a person gives a rig degrees off (measured 9° with K) with no warning until
    the bound said so; a walk gives a bound near its true error and no warning."""
    rig = default_rig()
    one, _ = synthesize(walk[:1], rig, NoiseModel(), seed=0)
    with pytest.raises(
        InputError, match=r"pin the cameras down poorly.*only 1 frame shows.*no rig is returned"
    ):
        calibrate(one)
    est, rep = calibrate(one, CalibrationOptions(max_uncertainty_deg=None))
    assert any("pin the cameras down poorly" in w for w in rep.warnings)
    assert rep.precision.rotation_sd_deg.max() > 3.0
    p2, _ = synthesize(walk, rig, NoiseModel(), seed=0)
    est, rep = calibrate(p2)
    err = _relative_errors(est.R, rig.R)
    sd = rep.precision.rotation_sd_deg
    assert sd.max() < 0.3 and not any("pin the cameras" in w for w in rep.warnings)
    assert 0.3 < err.mean() / sd.mean() < 3.0  # i.i.d. synthetic noise: the bound is close
    assert "rig precision" in rep.format() and rep.as_dict()["precision"]["frames"] == len(walk)


def test_a_frame_repeated_counts_once(walk):
    """The same detections copied into every frame are one observation, not 60: the rig is
    refused like a single frame's (measured on real footage: 57 copies of a frame gave a bound
    of ±0.9° to a rig 104° off)."""
    rig = default_rig()
    p2, _ = synthesize(walk[:80], rig, NoiseModel(), seed=0)
    copies = p2.take_frames(np.full(60, 30))
    assert distinct_frames(copies, np.arange(60)).tolist() == [0]
    assert distinct_frames(p2, np.arange(80)).tolist() == list(range(80))
    with pytest.raises(InputError, match=r"only 1 frame shows"):
        calibrate(copies)  # with K: the precision bound refuses
    # two distinct frames alternating: two frames, not 60
    two = p2.take_frames(np.tile([10, 50], 30))
    assert distinct_frames(two, np.arange(60)).tolist() == [0, 1]


def test_a_mirrored_camera_is_refused_by_name(walk):
    """A mirrored (selfie) video fits no pinhole camera with the others: without K its focal
    length runs to the edge of the search; refused, naming it (it used to give a rig 175° off
    with a bound of ±1.3°)."""
    rig = default_rig()
    p2, _ = synthesize(walk, rig, NoiseModel(), seed=1)
    kp = p2.keypoints.copy()
    kp[1, ..., 0] = p2.image_size[1][0] - kp[1, ..., 0]
    mirrored = Poses2D(kp, p2.scores, p2.image_size, p2.camera_names)
    with pytest.raises(InputError, match=rf"focal length of camera .*'{p2.camera_names[1]}' \(4.00x"):
        calibrate(mirrored)
    rig_est, _ = calibrate(Poses2D(p2.keypoints, p2.scores, p2.image_size, p2.camera_names))
    assert rig_est.K[:, 0, 0].min() > 0  # the same detections unmirrored calibrate


def test_label_cli_refuses_a_single_frame_and_can_be_told_not_to(walk, tmp_path):
    one, _ = synthesize(np.repeat(walk[:1], 3, 0), default_rig(), NoiseModel(), seed=0)
    src = tmp_path / "p.npz"
    one.save(src)
    out = tmp_path / "labels.npz"
    cmd = [sys.executable, "-m", "epipolarpose", "label", str(src), "-o", str(out), "-q"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert run.returncode == 2 and not out.exists()
    assert run.stderr.startswith("error: ") and "Traceback" not in run.stderr
    assert "pin the cameras down poorly" in run.stderr
    run = subprocess.run([*cmd, "--max-uncertainty", "0"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and out.exists()
    assert "warning: the detections pin the cameras down poorly" in run.stdout
    assert "rig precision: relative rotations" in run.stdout
    run = subprocess.run([*cmd, "--max-uncertainty", "-1"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 2 and "--max-uncertainty must be >= 0" in run.stderr


def test_label_refuses_a_weak_rig_also_when_synchronizing(walk, monkeypatch):
    """With --sync auto the rigs made while scoring offsets are kept even when weak (they only
    score), and the labelling reuses one of them: it must still refuse it. A person standing
    still for 40 frames (bound ~0.8°) with the limit lowered to 0.3°."""
    from dataclasses import replace

    import epipolarpose.labelling as labelling
    from epipolarpose.labelling import LabelOptions, label_poses
    from epipolarpose.sync import SyncOptions

    still, _ = synthesize(np.repeat(walk[:1], 40, 0), default_rig(), NoiseModel(), seed=0)
    strict = CalibrationOptions(max_uncertainty_deg=0.3)
    for sync in (None, SyncOptions(max_offset=5)):
        options = replace(LabelOptions(), calibration=strict, sync=sync)
        limits = []  # the limit of every calibration the run makes

        def counted(p, o, limits=limits):
            limits.append(o.max_uncertainty_deg)
            return calibrate(p, o)

        monkeypatch.setattr(labelling, "calibrate", counted)
        with pytest.raises(InputError, match="pin the cameras down poorly.*hardly moves"):
            label_poses(still, options=options)
        # synchronizing: every calibration was a scoring one (no limit), so the refusal came from
        # the check of the memoized rig; without sync the labelling's own calibration refused
        assert limits == ([0.3] if sync is None else [None] * len(limits)), limits
        monkeypatch.undo()
    res = label_poses(still, options=replace(LabelOptions(), sync=SyncOptions(max_offset=5)))
    assert res.summary.calibration.precision.rotation_sd_deg.max() > 0.3
    # with the default limits: kept, but the summary says the person hardly moves
    assert any("hardly moves" in w for w in res.summary.warnings), res.summary.warnings


def test_an_exact_fit_leaves_the_covariance_undetermined():
    """Two cameras and 5 points: 20 residuals, 5 free pose parameters (scale is a gauge) and 15
    point coordinates leave no degree of freedom to measure the noise on; 12 points leave 7."""
    rng = np.random.default_rng(3)
    rig = default_rig().in_camera_frame(0)
    two = [rig.cameras[0], rig.cameras[1]]
    R, t = np.stack([c.R for c in two]), np.stack([c.t for c in two])
    f = np.array([c.K[0, 0] for c in two])
    for n, determined in ((5, False), (12, True)):
        X = rng.normal(size=(n, 3)) * 400 + [0, 0, 5500]
        obs = np.stack([(X @ c.R.T + c.t)[:, :2] / (X @ c.R.T + c.t)[:, 2:] for c in two])
        obs = obs + rng.normal(size=obs.shape) * 2 / f[:, None, None]
        cam_idx, pt_idx = np.repeat(np.arange(2), n), np.tile(np.arange(n), 2)
        observations = BundleObservations(cam_idx, pt_idx, obs.reshape(-1, 2))
        assert bundle_adjust(R, t, X, f, observations).covariance is None  # not asked for
        res = bundle_adjust(R, t, X, f, observations, BundleOptions(covariance=True))
        assert np.isfinite(res.covariance).all() == determined
        assert np.isfinite(pair_rotation_sd_deg(res.R, res.covariance)).all() == determined
