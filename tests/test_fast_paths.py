"""The faster evaluate/save paths give what the straightforward code gave (issue 13)."""

from __future__ import annotations

import numpy as np

from epipolarpose.io import save_npz
from epipolarpose.metrics import AUC_THRESHOLDS_MM, _auc_of, _summary, evaluate_poses, joint_errors
from epipolarpose.pss import PSSModel


def test_auc_one_pass_equals_the_threshold_loop(rng):
    e = np.abs(rng.normal(0, 80, 5000))
    e[::7] = np.nan
    e[3] = 150.0  # on a threshold
    ref = np.mean([(e[np.isfinite(e)] <= th).mean() for th in AUC_THRESHOLDS_MM])
    assert _auc_of(e, AUC_THRESHOLDS_MM) == ref


def test_groups_and_clips_equal_separate_evaluations(rng):
    N, J = 300, 17
    gt = rng.normal(0, 300, (N, J, 3))
    pred = 0.9 * gt + rng.normal(0, 30, (N, J, 3))
    mask = rng.random((N, J)) > 0.05
    clips = np.array(["b", "a", "c"])[rng.integers(0, 3, N)]
    cams = np.repeat(np.arange(3), N // 3)
    model = PSSModel.fit(gt, k=5, seed=0)
    res = evaluate_poses(pred, gt, clips=clips, mask=mask, pss_model=[model], groups=cams)
    assert list(res["per_clip"]) == list(dict.fromkeys(clips.tolist()))  # first appearance
    for c in ("a", "b", "c"):
        sel = clips == c
        errs = [
            joint_errors(pred[sel], gt[sel], mask[sel], r, a)
            for r, a in ((0, "none"), (0, "scale"), (None, "procrustes"))
        ]
        ref = _summary(*errs)
        for k, v in ref.items():
            assert res["per_clip"][c][k] == v, (c, k)
    for c in range(3):
        sel = cams == c
        ref = evaluate_poses(pred[sel], gt[sel], mask=mask[sel], pss_model=[model])["summary"]
        assert res["per_group"][c] == ref


def test_save_npz_reads_back_exactly(rng, tmp_path):
    arrays = {
        "noisy": rng.normal(0, 500, (2, 40000, 17, 2)).astype(np.float32),  # stored
        "smooth": np.zeros((300000,), np.float64),  # deflated
        "codes": rng.integers(0, 4, (1000,)).astype(np.uint8),
        "names": np.array(["a", "Neck/Nose"]),
        "scalar": np.float64(50.0),
        "text": np.array('{"a": 1}'),
    }
    save_npz(tmp_path / "x.npz", **arrays)
    with np.load(tmp_path / "x.npz") as z:
        assert set(z.files) == set(arrays)
        for k, v in arrays.items():
            assert z[k].dtype == v.dtype and np.array_equal(z[k], v), k


def test_chunked_threaded_errors_equal_one_pass_over_all_poses(rng):
    """evaluate_poses computes the errors in chunks of poses on threads: the same numbers as one
    call of joint_errors per alignment on all poses (more poses than one chunk, NaN joints too)."""
    from epipolarpose.metrics import _all_errors
    from epipolarpose.parallel import CHUNK, map_chunks

    N = 2 * CHUNK + 123
    gt = rng.normal(0, 300, (N, 17, 3))
    pred = 1.3 * gt + rng.normal(0, 20, gt.shape)
    pred[rng.random((N, 17)) < 0.05] = np.nan
    valid = np.isfinite(pred).all(-1)
    got = _all_errors(pred, gt, valid, 0)
    for e, (root, align) in zip(got, ((0, "none"), (0, "scale"), (None, "procrustes"))):
        np.testing.assert_array_equal(e, joint_errors(pred, gt, valid, root, align))
    # the generic helper: chunks of the leading axis, concatenated in order
    np.testing.assert_array_equal(
        map_chunks(lambda a, m: a.sum(-1) * (m is None), gt, None, chunk=1000), gt.sum(-1)
    )


def test_pss_assignment_in_threaded_chunks_equals_one_chunk(rng):
    poses = rng.normal(0, 300, (5000, 17, 3))
    poses[7, 3] = np.nan
    m = PSSModel.fit(poses[:2000], k=10, seed=0)
    np.testing.assert_array_equal(m.assign(poses, chunk=512), m.assign(poses, chunk=10_000))
    assert m.assign(poses)[7] == -1


def test_animation_frames_drawn_in_processes_equal_those_drawn_here():
    from epipolarpose.viz import _AnimationView, _render_frames, _render_in_processes

    poses = np.random.default_rng(0).normal(0, 300, (16, 17, 3))
    poses[3, 5] = np.nan
    view = _AnimationView(16, 900.0, "t", 120, " (mm)")
    jobs = [(poses[i], np.nanmean(poses[i], 0), i) for i in range(16)]
    here, there = _render_frames(view, jobs), _render_in_processes(view, jobs)
    assert len(there) == 16
    for a, b in zip(here, there):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(here[0], here[1])  # the frames do differ
