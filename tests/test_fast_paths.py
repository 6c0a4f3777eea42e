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
