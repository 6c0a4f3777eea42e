"""`epipolarpose demo`: the embedded end-to-end run meets its accuracy claims and writes its report."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from epipolarpose.cli import app


def test_demo_end_to_end(tmp_path):
    out = tmp_path / "demo"
    res = CliRunner().invoke(app, ["demo", "-o", str(out)])
    assert res.exit_code == 0, res.output
    report = json.loads((out / "report.json").read_text())
    # self-calibrated without extrinsics: the rig is recovered and labels are accurate
    assert max(report["rig"]["pairwise_rotation_error_deg"]) < 0.5
    assert report["N-MPJPE_mm"] < 60 and report["P-MPJPE_mm"] < report["N-MPJPE_mm"]
    assert report["valid_fraction"] > 0.95
    assert report["PSS@50"] > 0.8
    assert (out / "rig.png").stat().st_size > 1000 and (out / "poses.png").stat().st_size > 1000


def test_demo_noise_free_is_exact(tmp_path):
    res = CliRunner().invoke(
        app,
        ["demo", "-o", str(tmp_path), "--sigma", "0", "--outliers", "0", "--swaps", "0", "--missing", "0"],
    )
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["N-MPJPE_mm"] < 1.0
    assert max(report["rig"]["pairwise_rotation_error_deg"]) < 0.01
    assert report["PSS@50"] == 1.0
