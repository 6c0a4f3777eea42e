"""Exports: CSV/JSON/TRC round trips, OpenCV YAML and Pose2Sim TOML rigs read back."""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest
import tomllib
from typer.testing import CliRunner

from epipolarpose.cli import app
from epipolarpose.exports import export_poses, export_rig_toml, export_rig_yaml, read_rig_yaml, read_trc
from epipolarpose.formats import Labels
from epipolarpose.skeleton import H36M_JOINTS


@pytest.fixture
def labels(rng):
    F, J, C = 6, 17, 2
    X = rng.normal(0, 500, (F, J, 3)).astype(np.float32)
    valid = rng.random((F, J)) > 0.2
    X[~valid] = np.nan
    return Labels(X, np.repeat(X[None], C, 0), valid, np.ones((C, F, J), np.float32))


def test_csv_json_round_trip(labels, tmp_path):
    export_poses(labels, tmp_path / "p.csv", "csv", fps=50)
    rows = list(csv.DictReader(open(tmp_path / "p.csv")))
    assert len(rows) == 6 * 17 and rows[18]["joint"] == H36M_JOINTS[1] and float(rows[18]["time"]) == 0.02
    X = np.array([[float(r[k]) if r[k] else np.nan for k in "xyz"] for r in rows]).reshape(6, 17, 3)
    np.testing.assert_allclose(X, labels.poses3d_world, atol=1e-3)
    assert [bool(int(r["valid"])) for r in rows] == labels.valid.reshape(-1).tolist()

    export_poses(labels, tmp_path / "p.json", "json", fps=50)
    doc = json.loads((tmp_path / "p.json").read_text())
    assert doc["units"] == "mm" and doc["joint_names"] == list(H36M_JOINTS)
    f3 = doc["frames"][3]
    assert f3["valid"] == labels.valid[3].tolist()
    for j, n in enumerate(H36M_JOINTS):
        if labels.valid[3, j]:
            np.testing.assert_allclose(f3["joints"][n], labels.poses3d_world[3, j], atol=1e-3)
        else:
            assert f3["joints"][n] is None


def test_trc_round_trip_metres_y_up(labels, tmp_path):
    export_poses(labels, tmp_path / "p.trc", "trc", fps=25)
    text = (tmp_path / "p.trc").read_text().splitlines()
    assert text[0].startswith("PathFileType\t4\t(X/Y/Z)\tp.trc")
    names, t, M, header = read_trc(tmp_path / "p.trc")
    assert names == [n.replace("/", "_") for n in H36M_JOINTS]  # plain marker names (issue 14)
    assert header["Units"] == "m" and float(header["DataRate"]) == 25 and int(header["NumFrames"]) == 6
    np.testing.assert_allclose(t, np.arange(6) / 25)
    X = labels.poses3d_world / 1000.0  # mm -> m, z-up -> y-up: X, Y, Z = y, z, x
    np.testing.assert_allclose(M, X[..., [1, 2, 0]], atol=1e-6)


def test_rig_yaml_and_toml(rig_s9, tmp_path):
    export_rig_yaml(rig_s9, tmp_path / "rig.yaml")
    fs = cv2.FileStorage(str(tmp_path / "rig.yaml"), cv2.FILE_STORAGE_READ)
    assert int(fs.getNode("num_cameras").real()) == 4
    np.testing.assert_allclose(fs.getNode("camera_2").getNode("K").mat(), rig_s9[2].K)
    fs.release()
    back = read_rig_yaml(tmp_path / "rig.yaml")
    for a, b in zip(rig_s9, back):
        assert a.name == b.name and a.image_size == b.image_size
        np.testing.assert_allclose(b.R, a.R, atol=1e-12)
        np.testing.assert_allclose(b.t, a.t)
        np.testing.assert_allclose(b.dist, a.dist)

    export_rig_toml(rig_s9, tmp_path / "calib.toml")
    doc = tomllib.loads((tmp_path / "calib.toml").read_text())
    for i, cam in enumerate(rig_s9):
        d = doc[f"cam_{i}"]  # numbered from 0, as aniposelib writes them (issue 14)
        assert (
            d["name"] == cam.name and d["fisheye"] is False and d["size"] == list(map(float, cam.image_size))
        )
        R = cv2.Rodrigues(np.array(d["rotation"]))[0]
        np.testing.assert_allclose(R, cam.R, atol=1e-6)  # the file's R is orthonormal to ~1e-7
        np.testing.assert_allclose(np.array(d["translation"]) * 1000, cam.t, atol=1e-6)  # metres
        np.testing.assert_allclose(d["matrix"], cam.K)
        assert len(d["distortions"]) in (4, 5)


def test_cli_export_and_bad_input(labels, rig_s9_path, tmp_path):
    labels.save(tmp_path / "labels.npz")
    r = CliRunner().invoke(
        app, ["export", str(tmp_path / "labels.npz"), "--format", "trc", "-o", str(tmp_path / "a.trc")]
    )
    assert r.exit_code == 0, r.output
    assert read_trc(tmp_path / "a.trc")[2].shape == (6, 17, 3)
    r = CliRunner().invoke(
        app, ["export", str(tmp_path / "labels.npz"), "--format", "xls", "-o", str(tmp_path / "b")]
    )
    assert r.exit_code == 2 and "--format" in r.output and not (tmp_path / "b").exists()
    np.savez(tmp_path / "bad.npz", valid=np.ones((2, 17), bool))
    r = CliRunner().invoke(
        app, ["export", str(tmp_path / "bad.npz"), "--format", "csv", "-o", str(tmp_path / "c.csv")]
    )
    assert r.exit_code == 2 and "poses3d_world" in r.output and not (tmp_path / "c.csv").exists()
    for fps in ("0", "-5"):
        r = CliRunner().invoke(
            app,
            [
                "export",
                str(tmp_path / "labels.npz"),
                "--format",
                "trc",
                "--fps",
                fps,
                "-o",
                str(tmp_path / "d.trc"),
            ],
        )
        assert r.exit_code == 2 and "--fps must be a positive number" in r.output
        assert not (tmp_path / "d.trc").exists()
    # a folder that cannot be made: one error line, not a traceback
    (tmp_path / "file").write_text("")
    r = CliRunner().invoke(
        app,
        [
            "export",
            str(tmp_path / "labels.npz"),
            "--format",
            "csv",
            "-o",
            str(tmp_path / "file" / "sub" / "e.csv"),
        ],
    )
    assert r.exit_code == 2 and "error:" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(
        app, ["export-rig", str(rig_s9_path), "--format", "toml", "-o", str(tmp_path / "c.toml")]
    )
    assert r.exit_code == 0 and tomllib.loads((tmp_path / "c.toml").read_text())["cam_0"]


def test_an_unwritable_destination_is_an_input_error(tmp_path, monkeypatch):
    from pathlib import Path

    from epipolarpose.errors import InputError
    from epipolarpose.io import atomic_folder, save_json

    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "mkdir", refuse)
    with pytest.raises(InputError, match=r"cannot write there \(Permission denied\)"):
        save_json(tmp_path / "new" / "a.json", {})
    with pytest.raises(InputError, match="cannot write there"):
        with atomic_folder(tmp_path / "new" / "report"):
            pass
