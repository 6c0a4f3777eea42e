"""What the commands print and report is what happened (issue 14, "honesty of what it prints")."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from epipolarpose.cli import app
from epipolarpose.labelling import CameraSummary, LabelSummary, label_poses
from epipolarpose.report import camera_errors, labelling_warnings, write_report

runner = CliRunner()


@pytest.fixture(scope="module")
def seen_rarely():
    """Camera 2 sees the person in 10 % of the frames."""
    from epipolarpose.mocap import DEFAULT_BVH, load_mocap
    from epipolarpose.synthetic import NoiseModel, default_rig, synthesize

    rig = default_rig()
    p2, gt = synthesize(load_mocap(DEFAULT_BVH, fps=25).poses[:200], rig, NoiseModel(), seed=0, fps=25.0)
    gone = np.ones(p2.num_frames, bool)
    gone[::10] = False
    p2.keypoints[2, gone] = np.nan
    p2.scores[2, gone] = 0
    return p2, rig, label_poses(p2)


def test_report_carries_the_labelling_warnings_and_names_the_camera(seen_rarely, tmp_path):
    p2, _, res = seen_rarely
    index = write_report(res.labels, res.rig, tmp_path / "rep", poses2d=p2)
    html = index.read_text()
    for w in labelling_warnings(res.labels):
        assert w.replace("'", "&#x27;").replace('"', "&quot;") in html or w in html
    assert "sees the person in only 10% of the frames" in html and p2.camera_names[2] in html
    assert "No warnings" not in html
    # warnings stored by `label` (summary_json) reach the page even when the report's checks pass
    labels = res.labels
    d = json.loads(str(labels.extra["summary_json"]))
    d["warnings"] = ["camera X: the person is small in its images"]
    labels.extra["summary_json"] = np.array(json.dumps(d))
    assert labelling_warnings(labels) == ["camera X: the person is small in its images"]
    html = write_report(labels, res.rig, tmp_path / "rep2").read_text()
    assert "camera X: the person is small in its images" in html


def test_label_and_report_count_observations_alike(seen_rarely):
    p2, _, res = seen_rarely
    from_label = [c.observed for c in res.summary.cameras]
    assert [c.observations for c in camera_errors(res.labels, res.rig)] == from_label
    del res.labels.extra["summary_json"]
    assert [c.observations for c in camera_errors(res.labels, res.rig, p2)] == from_label


def test_label_table_prints_a_dash_not_nan():
    cams = [CameraSummary("a", 1.5, 3.0, 10), CameraSummary("b", float("nan"), float("nan"), 0)]
    s = LabelSummary("per-frame", cams, 0.5, 0.1, 0, 0, "arbitrary", 10, {"total": 1.0})
    text = s.format()
    assert "nan" not in text.lower() and "1.50" in text
    assert "-: no reprojection error" in text
    s.quality = ["note: searched within ±5 frames", "cam b sees little"]
    lines = s.format().splitlines()
    assert "note: searched within ±5 frames" in lines and "warning: cam b sees little" in lines


def test_pss_fit_says_which_files_it_writes(tmp_path):
    from epipolarpose.formats import GroundTruth

    rng = np.random.default_rng(0)
    GroundTruth(rng.normal(0, 300, (60, 17, 3)).astype(np.float32), np.array(["c"] * 60)).save(
        tmp_path / "gt.npz"
    )
    r = runner.invoke(
        app, ["pss", "fit", str(tmp_path / "gt.npz"), "-o", str(tmp_path / "c.npz"), "--k", "5", "--k", "6"]
    )
    assert r.exit_code == 0, r.output
    assert f"{tmp_path / 'c_k5.npz'}, {tmp_path / 'c_k6.npz'} (not {tmp_path / 'c.npz'})" in r.output
    assert r.output.count("wrote") == 2


def test_evaluate_table_units(seen_rarely, tmp_path):
    p2, rig, res = seen_rarely
    from epipolarpose.mocap import DEFAULT_BVH, load_mocap
    from epipolarpose.synthetic import synthesize

    _, gt = synthesize(load_mocap(DEFAULT_BVH, fps=25).poses[:200], rig, None)
    gt.save(tmp_path / "gt.npz")
    res.labels.save(tmp_path / "labels.npz")  # self-calibrated: arbitrary units
    r = runner.invoke(app, ["evaluate", str(tmp_path / "labels.npz"), str(tmp_path / "gt.npz"), "-c", "x"])
    assert r.exit_code == 2  # (no centroid file x)
    r = runner.invoke(app, ["evaluate", str(tmp_path / "labels.npz"), str(tmp_path / "gt.npz")])
    assert r.exit_code == 0, r.output
    rows = {ln.split()[0]: ln for ln in r.output.splitlines() if ln.strip()}
    assert rows["MPJPE"].endswith("mm (*)") and rows["N-MPJPE"].endswith(" mm")
    assert rows["PCK@150"].endswith("% (*)") and "MPJPE, PCK, AUC not meaningful" in r.output
    # a plain npz without units against one without units: "units", no millimetres claimed
    X = gt.poses3d_world
    np.savez(tmp_path / "a.npz", poses3d=X + 1.0)
    np.savez(tmp_path / "b.npz", poses3d=X)
    r = runner.invoke(app, ["evaluate", str(tmp_path / "a.npz"), str(tmp_path / "b.npz")])
    rows = {ln.split()[0]: ln for ln in r.output.splitlines() if ln.strip()}
    assert rows["MPJPE"].endswith(" units") and "(*)" not in r.output


def test_train_prints_no_lightning_tips(tmp_path, rig_s9_path):
    """A real process (Lightning's log handlers hold the original stderr, which CliRunner does
    not capture)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    bvh = Path(__file__).resolve().parents[1] / "src/epipolarpose/data/cmu_131_01.bvh"
    args = [
        "train",
        "-s",
        "full",
        "-o",
        str(tmp_path / "run"),
        "--clips",
        str(bvh),
        "--rig",
        str(rig_s9_path),
    ]
    args += ["--config", "tiny", "--max-steps", "1", "--batch-size", "4", "--fps", "2"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), OMP_NUM_THREADS="1")
    r = subprocess.run(
        [sys.executable, "-m", "epipolarpose", *args], capture_output=True, text=True, env=env, timeout=300
    )
    assert r.returncode == 0, r.stderr[-2000:]
    for noise in ("Tip", "GPU available", "deprecated", "LeafSpec", "weights_only", "val_dataloader"):
        assert noise not in r.stdout + r.stderr, noise


def test_quiet_commands_print_only_their_results(tmp_path):
    """--quiet: no progress bars or progress messages, the results still printed."""
    r = runner.invoke(app, ["synth", "--frames", "120", "-o", str(tmp_path / "s"), "--quiet"])
    assert r.exit_code == 0, r.output
    assert "loading BVH" not in r.output and "projecting" not in r.output and "wrote" in r.output
    r = runner.invoke(app, ["label", str(tmp_path / "s/poses2d.npz"), "-o", str(tmp_path / "l.npz"), "-q"])
    assert r.exit_code == 0 and "triangulate:" not in r.output and "wrote" in r.output
    r = runner.invoke(app, ["evaluate", str(tmp_path / "l.npz"), str(tmp_path / "s/gt.npz"), "-q"])
    assert r.exit_code == 0 and "fitting" not in r.output and "N-MPJPE" in r.output
    r = runner.invoke(app, ["report", str(tmp_path / "l.npz"), "-o", str(tmp_path / "rep"), "-q"])
    assert r.exit_code == 0 and r.output.strip() == f"wrote {tmp_path / 'rep' / 'index.html'}"


def test_overlays_show_the_largest_and_the_median_error():
    from epipolarpose.formats import Labels
    from epipolarpose.report import _crop_to_person, _sample_frames

    F, J = 9, 17
    err = np.tile(np.arange(F, dtype=np.float32)[None, :, None], (2, 1, J))  # frame f: f px
    err[:, 4] = 100.0
    err[:, 7] = np.nan
    X = np.zeros((F, J, 3), np.float32)
    lab = Labels(X, X[None].repeat(2, 0), np.ones((F, J), bool), err)
    picks = _sample_frames(lab, 3)
    assert [k for k, _ in picks[:2]] == [4, 3] and "largest" in picks[0][1] and "median" in picks[1][1]
    img = np.zeros((1000, 1000, 3), np.uint8)
    crop = _crop_to_person(img, np.array([[400.0, 300], [500, 700], [np.nan, 1]]))
    assert crop.shape[0] == crop.shape[1] and 400 <= crop.shape[0] <= 700
