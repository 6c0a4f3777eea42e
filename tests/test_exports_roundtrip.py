"""The export fixes of issue 14, read back the way the other tools read the files.

* TRC as Pose2Sim reads it (``header[3].split('\\t')[2::3]`` for the marker names and the data from
  line 6 on, ``np.genfromtxt(skip_header=5, delimiter='\\t')`` as its ``extract_trc_data`` does) and
  as OpenSim's ``TRCFileAdapter`` lays it out (header key/value lines, ``NumMarkers`` names, rows of
  ``Frame# Time`` + 3 values per marker).
* Calibration TOML as aniposelib 0.8.0's ``CameraGroup.load`` reads it: ``toml.load``, then the
  sections in *sorted* name order except ``metadata``, each through ``Camera.from_dict``
  (``matrix``, ``rotation`` as a Rodrigues vector, ``translation``, ``distortions``, ``name``,
  ``size``). aniposelib itself cannot be a test dependency here (it imports numba, toml and pandas
  at module level), so :func:`aniposelib_load` follows that code; when aniposelib imports, the real
  loader is checked too.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import tomllib
from typer.testing import CliRunner

from epipolarpose.camera import Camera, Rig
from epipolarpose.cli import app
from epipolarpose.exports import export_rig_toml, export_trc, read_rig_toml
from epipolarpose.formats import Labels
from epipolarpose.skeleton import H36M_JOINTS

runner = CliRunner()


def pose2sim_read_trc(path):
    """Pose2Sim's reading of a TRC: marker names, frame rate, (F, M, 3) data."""
    with open(path) as f:
        header = [next(f) for _ in range(5)]
    markers = [m.strip() for m in header[3].split("\t")[2::3] if m.strip()]
    rate = float(header[2].split("\t")[0])
    data = np.genfromtxt(path, skip_header=5, delimiter="\t")
    data = np.atleast_2d(data)[:, 2:]
    return markers, rate, data.reshape(len(data), -1, 3)[:, : len(markers)], header


def opensim_read_trc(path):
    """OpenSim TRCFileAdapter's layout: metadata from lines 2-3, NumMarkers names on line 4,
    then rows with Frame#, Time and 3 numbers (or empty fields) per marker."""
    lines = path.read_text().split("\n")
    assert lines[0].split("\t")[:3] == ["PathFileType", "4", "(X/Y/Z)"]
    meta = dict(zip(lines[1].split("\t"), lines[2].split("\t")))
    M = int(meta["NumMarkers"])
    labels = [x for x in lines[3].split("\t")[2:] if x]
    assert len(labels) == M, "NumMarkers must equal the number of marker labels"
    assert lines[4].split("\t")[2:] == [f"{a}{j + 1}" for j in range(M) for a in "XYZ"]
    rows = [ln.split("\t") for ln in lines[5:] if ln]
    assert len(rows) == int(meta["NumFrames"])
    assert all(len(r) == 2 + 3 * M for r in rows)
    data = np.array([[float(v) if v else np.nan for v in r[2:]] for r in rows]).reshape(len(rows), M, 3)
    return meta, labels, data


def aniposelib_load(path):
    """aniposelib 0.8.0 ``CameraGroup.load`` (cameras.py), step by step."""
    master = tomllib.loads(path.read_text())
    keys = sorted(master.keys())
    items = [master[k] for k in keys if k != "metadata"]
    cams = []
    for d in items:
        assert not d.get("fisheye", False)
        cams.append(
            {
                "name": d["name"],
                "size": list(d["size"]),
                "matrix": np.array(d["matrix"], dtype="float64"),
                "rotation": np.array(d["rotation"], dtype="float64").ravel(),
                "translation": np.array(d["translation"], dtype="float64").ravel(),
                "dist": np.array(d["distortions"], dtype="float64").ravel(),
            }
        )
    return cams, master.get("metadata")


@pytest.fixture
def standing():
    """A person standing on a z-up floor (mm): head high, feet low, for 5 frames."""
    from epipolarpose.mocap import DEFAULT_BVH, load_mocap

    X = load_mocap(DEFAULT_BVH, fps=10).poses[:5].astype(np.float32)
    valid = np.ones(X.shape[:2], bool)
    valid[2, 9] = False
    X[2, 9] = np.nan
    return Labels(X, X[None], valid, np.ones((1, *X.shape[:2]), np.float32))


def test_trc_as_pose2sim_and_opensim_read_it(standing, tmp_path):
    export_trc(standing, tmp_path / "p.trc", fps=50, units="mm", world="levelled")
    markers, rate, data, header = pose2sim_read_trc(tmp_path / "p.trc")
    assert markers == [n.replace("/", "_") for n in H36M_JOINTS] and rate == 50
    assert all("/" not in m and " " not in m for m in markers)
    meta, labels, data2 = opensim_read_trc(tmp_path / "p.trc")
    assert labels == markers and meta["Units"] == "m" and float(meta["DataRate"]) == 50
    np.testing.assert_array_equal(np.isnan(data), np.isnan(data2))
    np.testing.assert_allclose(data, data2, atol=1e-9)
    assert np.isnan(data[2, 9]).all() and np.isfinite(data[0]).all()
    # +Y up, metres: the head is ~1.5 m above the feet; X, Y, Z = y, z, x of the z-up world
    head, foot = markers.index("Head"), markers.index("LFoot")
    assert 1.2 < data[0, head, 1] - data[0, foot, 1] < 2.2
    np.testing.assert_allclose(data, standing.poses3d_world[..., [1, 2, 0]] / 1000, atol=2e-6)


def test_trc_camera0_world_is_turned_upright_as_far_as_camera0_is(standing, tmp_path):
    """A world in camera 0's frame (y down): the TRC's +Y is camera 0's up."""
    R = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])  # z-up world -> camera frame (y down)
    cam = Labels(
        standing.poses3d_world @ R.T, standing.poses3d_camera, standing.valid, standing.reprojection_error
    )
    export_trc(cam, tmp_path / "c.trc", fps=10, units="arbitrary", world="camera0")
    meta, names, data = opensim_read_trc(tmp_path / "c.trc")
    assert meta["Units"] == "arbitrary"
    head, foot = names.index("Head"), names.index("LFoot")
    assert data[0, head, 1] - data[0, foot, 1] > 1000  # arbitrary units keep their scale


def _labels_file(tmp_path, standing, units, world, fps):
    rig = Rig(
        [
            Camera(
                K=np.diag([1000.0, 1000, 1]), R=np.eye(3), t=np.array([0, 0, 5000.0]), image_size=(1000, 1000)
            )
        ],
        units=units,
        extra={} if world is None else {"world": world},
    )
    extra = {"rig_json": np.array(rig.to_json())}
    if fps is not None:
        extra["fps"] = np.float64(fps)
    lab = Labels(
        standing.poses3d_world, standing.poses3d_camera, standing.valid, standing.reprojection_error, extra
    )
    lab.save(tmp_path / "labels.npz")
    return tmp_path / "labels.npz"


@pytest.mark.parametrize(
    ("units", "world", "fps", "warnings", "trc_units"),
    [
        ("mm", "levelled", 50.0, [], "m"),
        ("arbitrary", "levelled", 50.0, ["not metric"], "arbitrary"),
        ("arbitrary", "camera0", 25.0, ["not metric", "camera 0's frame"], "arbitrary"),
        ("mm", None, None, ["frame rate", "assuming its world is z up"], "m"),
    ],
)
def test_cli_trc_fps_units_and_world(standing, tmp_path, units, world, fps, warnings, trc_units):
    path = _labels_file(tmp_path, standing, units, world, fps)
    r = runner.invoke(app, ["export", str(path), "--format", "trc", "-o", str(tmp_path / "o.trc")])
    assert r.exit_code == 0, r.output
    warned = [ln for ln in r.output.splitlines() if ln.startswith("warning:")]
    assert len(warned) == len(warnings) and all(any(w in ln for ln in warned) for w in warnings), r.output
    meta, _, _ = opensim_read_trc(tmp_path / "o.trc")
    assert meta["Units"] == trc_units and float(meta["DataRate"]) == (fps or 30.0)


def _rig(n: int, units: str = "mm") -> Rig:
    rng = np.random.default_rng(n)
    cams = []
    for i in range(n):
        R = cv2.Rodrigues(rng.normal(0, 0.5, 3))[0]
        K = np.array([[1000.0 + i, 0, 500], [0, 1001.0 + i, 400], [0, 0, 1]])
        dist = np.array([0.1, -0.05, 0.001, 0.002, 0.01 if i % 2 else 0.0])
        cams.append(
            Camera(K=K, R=R, t=rng.normal(0, 3000, 3), dist=dist, image_size=(1000 + i, 800), name=f"c{i}")
        )
    return Rig(cams, units=units)


@pytest.mark.parametrize("n", [4, 12])
def test_toml_round_trip_through_aniposelib_loader(n, tmp_path):
    rig = _rig(n)
    export_rig_toml(rig, tmp_path / "calibration.toml")
    cams, meta = aniposelib_load(tmp_path / "calibration.toml")
    assert [c["name"] for c in cams] == rig.names  # sorted section names keep the rig's order
    sections = [k for k in tomllib.loads((tmp_path / "calibration.toml").read_text()) if k != "metadata"]
    assert sections == ([f"cam_{i}" for i in range(n)] if n <= 10 else [f"cam_{i:02d}" for i in range(n)])
    for c, cam in zip(cams, rig):
        np.testing.assert_allclose(c["matrix"], cam.K)
        np.testing.assert_allclose(cv2.Rodrigues(c["rotation"])[0], cam.R, atol=1e-9)
        np.testing.assert_allclose(c["translation"] * 1000, cam.t, rtol=1e-12)  # metres
        np.testing.assert_allclose(c["dist"], cam.dist if cam.dist[4] else cam.dist[:4])
        assert c["size"] == [float(s) for s in cam.image_size]
    assert meta["units"] == "m"
    back = read_rig_toml(tmp_path / "calibration.toml")
    assert back.names == rig.names and back.units == "m"
    np.testing.assert_allclose(back.t * 1000, rig.t)


def test_toml_through_real_aniposelib_when_it_imports(tmp_path):
    cameras = pytest.importorskip(
        "aniposelib.cameras", reason="aniposelib (numba, toml, pandas) not installed"
    )
    rig = _rig(12)
    export_rig_toml(rig, tmp_path / "calibration.toml")
    group = cameras.CameraGroup.load(str(tmp_path / "calibration.toml"))
    assert group.get_names() == rig.names


def test_cli_export_rig_warns_for_arbitrary_units(tmp_path):
    _rig(3, units="arbitrary").save(tmp_path / "rig.json")
    r = runner.invoke(
        app, ["export-rig", str(tmp_path / "rig.json"), "--format", "toml", "-o", str(tmp_path / "c.toml")]
    )
    assert r.exit_code == 0, r.output
    assert sum(ln.startswith("warning:") and "arbitrary" in ln for ln in r.output.splitlines()) == 1
    assert aniposelib_load(tmp_path / "c.toml")[1]["units"] == "arbitrary"
    _rig(3).save(tmp_path / "mm.json")
    r = runner.invoke(
        app, ["export-rig", str(tmp_path / "mm.json"), "--format", "toml", "-o", str(tmp_path / "d.toml")]
    )
    assert r.exit_code == 0 and "warning" not in r.output
    json.dumps(aniposelib_load(tmp_path / "d.toml")[1])
