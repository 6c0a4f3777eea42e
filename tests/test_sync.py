"""Time synchronisation: offsets recovered from epipolar consistency."""

from __future__ import annotations

import numpy as np
import pytest

from epipolarpose.formats import Poses2D
from epipolarpose.sync import SyncOptions, estimate_offsets


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
    res = estimate_offsets(p2d, SyncOptions(max_offset=25))
    np.testing.assert_array_equal(res.offsets, offs)
    assert (res.confidence[1:] > 0.1).all()
    # the coarse cost curve has its minimum at (or next to) the true offset
    k = np.nanargmin(res.cost[1])
    assert abs(res.candidates[k] - offs[1]) <= 1


@pytest.mark.parametrize("offs, seed", [((0, -1, -14), 104), ((0, -4, 18), 105)])
def test_slow_motion_offsets_exact(walk, rig_s9, offs, seed):
    """A walk at half speed: refitting F at every candidate offset absorbed part of the
    misalignment and the previous method was one frame off on these clips; one fixed geometry per
    pair (and smoothed tracks) recovers them exactly."""
    from epipolarpose.synthetic import NoiseModel, synthesize

    t = np.arange(150) / 2
    i = t.astype(int)
    f = (t - i)[:, None, None]
    slow = walk[i] * (1 - f) + walk[i + 1] * f
    p2d, _ = synthesize(slow, _subset(rig_s9, [0, 1, 2]), NoiseModel(time_offsets=offs), seed=seed)
    assert estimate_offsets(p2d, SyncOptions(max_offset=20)).offsets.tolist() == list(offs)


def test_joint_search_exhaustive_and_coordinate_descent_agree():
    """The joint search over all pairs finds planted offsets by either strategy."""
    from epipolarpose.sync import _joint_offsets

    rng = np.random.default_rng(0)
    C, M = 5, 6
    truth = np.array([0, 4, -6, 2, -3])
    cands = np.arange(-M, M + 1)
    shifts = np.arange(-2 * M, 2 * M + 1)
    curves = {
        (i, j): 1 + 0.1 * np.abs(shifts - (truth[j] - truth[i])) + 0.01 * rng.random(len(shifts))
        for i in range(C)
        for j in range(i + 1, C)
    }
    start = np.zeros(C, dtype=np.int64)
    full = _joint_offsets(curves, shifts, cands, C, 0, start)
    descent = _joint_offsets(curves, shifts, cands, C, 0, start, max_combinations=10)
    assert full.tolist() == descent.tolist() == truth.tolist()


def test_offsets_without_intrinsics_and_other_reference(walk, rig_s9):
    from epipolarpose.synthetic import NoiseModel, synthesize

    p2d, _ = synthesize(walk, _subset(rig_s9, [0, 3]), NoiseModel(time_offsets=(0, 7)), seed=1)
    p2d.K = None
    p2d.dist = None
    assert estimate_offsets(p2d, SyncOptions(max_offset=15)).offsets.tolist() == [0, 7]
    # relative to camera 1, camera 0 is 7 frames the other way
    assert estimate_offsets(p2d, SyncOptions(max_offset=15, reference=1)).offsets.tolist() == [-7, 0]


def test_static_person_gives_low_confidence(rig_s9, walk):
    from epipolarpose.synthetic import NoiseModel, synthesize

    still = np.repeat(walk[:1], 80, axis=0)
    p2d, _ = synthesize(still, _subset(rig_s9, [0, 1]), NoiseModel(), seed=0)
    res = estimate_offsets(p2d, SyncOptions(max_offset=10))
    assert res.confidence[1] < 0.2
    assert any("uncertain" in w for w in res.warnings)


def test_bad_input_messages(rig_s9, walk):
    from epipolarpose.errors import InputError

    p = Poses2D(np.zeros((2, 10, 17, 2)), np.ones((2, 10, 17)), np.full((2, 2), 100))
    with pytest.raises(InputError, match="max_offset"):
        estimate_offsets(p, SyncOptions(max_offset=30))


def test_label_sync_auto_recovers_offsets_and_aligns_labels(tmp_path):
    """`label --sync auto`: offsets recorded in labels.npz, labels on the first camera's timeline."""
    from typer.testing import CliRunner

    from epipolarpose.cli import app
    from epipolarpose.formats import GroundTruth, Labels
    from epipolarpose.metrics import n_mpjpe

    run = CliRunner()
    res = run.invoke(app, ["synth", "-o", str(tmp_path), "--time-offsets", "0,7,-12,25", "--seed", "3"])
    assert res.exit_code == 0, res.output
    res = run.invoke(
        app, ["label", str(tmp_path / "poses2d.npz"), "-o", str(tmp_path / "labels.npz"), "--sync", "auto"]
    )
    assert res.exit_code == 0, res.output
    labels = Labels.load(tmp_path / "labels.npz")
    assert labels.extra["offsets"].tolist() == [0, 7, -12, 25]
    gt = GroundTruth.load(tmp_path / "gt.npz")
    gt_cam0 = gt.rig.world_to_camera(gt.poses3d_world.astype(float))[0]
    err = n_mpjpe(labels.poses3d_camera[0].astype(float), gt_cam0, mask=labels.valid)
    assert err < 60
    # the summary keeps the tracks' evidence; the report plots it (sync.png) and links it
    import json

    sync = json.loads(str(labels.extra["summary_json"]))["sync"]
    cost = np.array([[np.nan if v is None else v for v in row] for row in sync["cost_px"]])
    assert cost.shape == (4, len(sync["candidates"])) and np.isnan(cost[0]).all()
    best = np.array(sync["candidates"])[np.nanargmin(cost[1:], axis=1)]
    assert np.abs(best - [7, -12, 25]).max() <= 1
    res = run.invoke(app, ["report", str(tmp_path / "labels.npz"), "-o", str(tmp_path / "report")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "report" / "sync.png").stat().st_size > 10_000
    assert "<img src='sync.png'" in (tmp_path / "report" / "index.html").read_text()
    res = run.invoke(
        app, ["label", str(tmp_path / "poses2d.npz"), "-o", str(tmp_path / "x.npz"), "--sync", "maybe"]
    )
    assert res.exit_code == 2 and "--sync" in res.output and not (tmp_path / "x.npz").exists()


def test_short_clip_search_is_narrowed_to_keep_most_frames_in_common(walk, rig_s9):
    """A 60-frame clip asked for ±30: offsets beyond ±12 would leave two cameras < 60 % of the
    frames in common (where a wrong offset fits the few frames left easily); the search is
    narrowed, a note says so, and the true offsets are found."""
    from epipolarpose.sync import search_range
    from epipolarpose.synthetic import NoiseModel, synthesize

    opts, note = search_range(SyncOptions(max_offset=30), 60)
    assert opts.max_offset == 12 and "±12" in note[0] and "60 frames" in note[0]
    assert search_range(SyncOptions(max_offset=10), 60) == (SyncOptions(max_offset=10), [])
    p2d, _ = synthesize(walk[:60], _subset(rig_s9, [0, 1, 2]), NoiseModel(time_offsets=(0, 5, -4)), seed=2)
    res = estimate_offsets(p2d, SyncOptions(max_offset=30))
    assert res.offsets.tolist() == [0, 5, -4]
    assert res.candidates[0] == -12 and res.candidates[-1] == 12
    assert any(w.startswith("note: offsets searched within ±12") for w in res.warnings)


def test_rig_check_names_a_camera_whose_offset_the_tracks_do_not_support(walk, rig_s9):
    """The tracks' estimate is wrong for camera 1 (+9 instead of +5): the rig check, with the true
    rig, moves it to +5 and warns that the two disagree, naming the camera; camera 2, on which
    they agree, gets no such warning."""
    from dataclasses import replace

    from epipolarpose.sync import check_with_rig
    from epipolarpose.synthetic import NoiseModel, synthesize

    rig = _subset(rig_s9, [0, 1, 2])
    p2d, _ = synthesize(walk, rig, NoiseModel(time_offsets=(0, 5, -4)), seed=3)
    opts = SyncOptions(max_offset=15)
    res = estimate_offsets(p2d, opts)
    assert res.offsets.tolist() == [0, 5, -4]
    wrong = replace(res, offsets=np.array([0, 9, -4]), warnings=[])
    checked = check_with_rig(p2d, wrong, lambda _p: rig, opts)
    assert checked.offsets.tolist() == [0, 5, -4]
    names = p2d.camera_names
    flagged = [w for w in checked.warnings if "is uncertain: the calibrated rig prefers it" in w]
    assert len(flagged) == 1 and names[1] in flagged[0] and "+9" in flagged[0]
    quiet = check_with_rig(p2d, res, lambda _p: rig, opts)
    assert quiet.offsets.tolist() == [0, 5, -4] and not any("prefers it" in w for w in quiet.warnings)


def test_rig_check_names_a_camera_it_keeps_at_zero_against_the_tracks(walk, rig_s9):
    """Synchronized cameras, but the tracks' estimate puts camera 1 at +6: the rig check, with the
    true rig, keeps it at 0 (the zero offsets fit better) and names it in a warning, since the two
    sources disagree; camera 2, where they agree, is not named."""
    from dataclasses import replace

    from epipolarpose.sync import check_with_rig
    from epipolarpose.synthetic import NoiseModel, synthesize

    rig = _subset(rig_s9, [0, 1, 2])
    p2d, _ = synthesize(walk, rig, NoiseModel(), seed=4)
    opts = SyncOptions(max_offset=15)
    res = estimate_offsets(p2d, opts)
    assert res.offsets.tolist() == [0, 0, 0]
    wrong = replace(res, offsets=np.array([0, 6, 0]), warnings=[])
    checked = check_with_rig(p2d, wrong, lambda _p: rig, opts)
    assert checked.offsets.tolist() == [0, 0, 0]
    names = p2d.camera_names
    kept = [w for w in checked.warnings if "kept at 0: the 2D tracks put the camera at +6" in w]
    assert len(kept) == 1 and kept[0].startswith(f"warning: {names[1]} offset")
    assert not any(w.startswith(f"warning: {names[2]} offset") for w in checked.warnings)
    quiet = check_with_rig(p2d, res, lambda _p: rig, opts)
    assert not any("kept at 0" in w for w in quiet.warnings)


def test_shared_motion_known_answer():
    """The share of motion two tracks can check against each other at an offset: camera a moves
    1 px/frame over 20 frames (squared speed 1 at frames 1-18), camera b likewise but sees frames
    0-9 only (speed known at 1-8). At offset d, camera a's frame t meets b's frame t - d."""
    from epipolarpose.sync import _PairCosts

    T = 20
    x = np.zeros((2, T, 1, 2))
    x[:, :, 0, 0] = np.arange(T)
    x[1, 10:] = np.nan
    costs = _PairCosts(x, reach=19, min_share=0.2)
    share = costs.shared_motion(0, 1)
    # d = 0: b's whole motion (8/8); d = 15: b frames 0-4 (4/8, a 15-19: 4/18); d = -5: b 5-9 (4/8);
    # d = 18: b frames 0-1 (1/8), a frames 18-19 (1/18)
    for d, want in [(0, 1.0), (15, 0.5), (-5, 0.5), (18, 0.125), (-19, 0.0)]:
        assert share[d + 19] == pytest.approx(want), d
    assert costs.comparable(0, 1, 15) and not costs.comparable(0, 1, 18)
    assert np.isnan(costs.refit(0, 1, 18, 100))  # not scored


def test_camera_seeing_the_person_in_part_of_the_clip_is_named(walk, rig_s9):
    """A camera that sees the person in fewer than ``min_overlap`` of the frames is named: its
    offset rests on that part of the clip. The others are not, and the offsets are found."""
    from epipolarpose.errors import InputError
    from epipolarpose.synthetic import NoiseModel, synthesize

    offs = (0, 3, -2, 0)
    # camera 1 loses the person from frame 27 of 50 (round(0.54 * 50))
    noise = NoiseModel(time_offsets=offs, lost=((1, 0.54, 1.0),))
    p2d, _ = synthesize(walk[100:160], _subset(rig_s9, [0, 1, 2, 3]), noise, seed=1)
    assert (p2d.scores[1, 27:] == 0).all() and np.isnan(p2d.keypoints[1, 27:]).all()
    assert p2d.scores[1, 26].any() and (p2d.extra["corrupted"][1, 27:] == 3).all()
    res = estimate_offsets(p2d, SyncOptions())
    assert res.offsets.tolist() == list(offs)
    named = [w for w in res.warnings if "sees the person in only" in w]
    assert len(named) == 1 and named[0].startswith(f"warning: {p2d.camera_names[1]} ")
    assert p2d.num_frames == 50 and "27 of the 50 frames" in named[0]
    with pytest.raises(InputError, match="min_shared_motion"):
        estimate_offsets(p2d, SyncOptions(min_shared_motion=1.5))
    # a camera that sees the person only while the reference does not: nothing to compare
    apart = NoiseModel(lost=((0, 0.5, 1.0), (1, 0.0, 0.5)))
    q2d, _ = synthesize(walk[100:160], _subset(rig_s9, [0, 1, 2]), apart, seed=1)
    with pytest.raises(InputError, match="camera '.*': too few joints seen together .* 20% of either camera"):
        estimate_offsets(q2d, SyncOptions(max_offset=3))
    with pytest.raises(InputError, match="lost segment"):
        NoiseModel(lost=((1, 0.8, 0.2),))
    with pytest.raises(InputError, match="lost names camera 7"):
        synthesize(walk[:20], _subset(rig_s9, [0, 1]), NoiseModel(lost={7: 0.5}))
