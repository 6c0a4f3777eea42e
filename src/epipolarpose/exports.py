"""Exports of 3D poses (CSV, JSON, TRC) and of rigs (OpenCV YAML, Pose2Sim/aniposelib TOML).

Poses come from ``labels.npz`` (:class:`~epipolarpose.formats.Labels`), in the rig's world frame
and units; every writer is atomic.

* CSV: one row per frame and joint: ``frame,time,joint,x,y,z,valid`` (empty x/y/z where invalid).
* JSON: ``{"units", "fps", "joint_names", "frames": [{"frame", "time", "joints": {name: [x, y, z]
  or null}, "valid": [...]}]}``.
* TRC (OpenSim / Pose2Sim markers), laid out as Pose2Sim writes it: tab-separated; header lines
  ``PathFileType``, ``DataRate CameraRate NumFrames NumMarkers Units OrigDataRate
  OrigDataStartFrame OrigNumFrames`` and their values, ``Frame# Time`` and the marker names (each
  followed by two empty fields), ``X1 Y1 Z1 ...``; then ``Frame#  Time  x y z ...`` (1-based
  frames; invalid joints are empty fields). Pose2Sim reads it with ``header[3].split('\t')[2::3]``
  for the names and ``pandas.read_csv(sep='\t', skiprows=4)`` for the data.

  - *Marker names* are plain (:func:`trc_marker_name`: ``Neck/Nose`` -> ``Neck_Nose``; OpenSim
    reads ``/`` as a component path).
  - *Frame rate*: ``--fps``, else the labels' ``fps`` (``label`` carries it from
    ``poses2d.npz``), else 30 with a warning.
  - *Units*: mm and m rigs are written in metres (``Units m``); a rig in arbitrary units (self-
    calibrated without ``--subject-height``) keeps its numbers and says ``Units arbitrary``, with a
    warning — it is never labelled ``m``.
  - *Up*: OpenSim is +Y up. The rig's world (:attr:`~epipolarpose.camera.Rig.world`) decides:
    ``"levelled"`` worlds (z up) and user rigs (``None``, assumed z up like the example rigs, with
    a note) are rotated as Pose2Sim does, ``X, Y, Z = y, z, x``; a ``"camera0"`` world (camera 0's
    frame: x right, y down, z forward) becomes ``X, Y, Z = x, -y, -z``, upright only as far as
    camera 0 was held level — a warning says so.
* Rig YAML: ``cv2.FileStorage`` with ``num_cameras`` and ``camera_<i>`` maps holding ``name``,
  ``image_size``, ``K``, ``dist``, ``R``, ``rvec``, ``t``.
* Rig TOML (Pose2Sim / aniposelib calibration), as aniposelib's ``CameraGroup.dump`` writes it:
  ``[cam_0]``, ``[cam_1]``, ... (zero-padded, ``[cam_00]``, when there are more than ten cameras,
  because ``CameraGroup.load`` orders the sections by sorting their names) with ``name``,
  ``size``, ``matrix``, ``distortions`` ``[k1, k2, p1, p2]`` (plus k3 when non-zero), ``rotation``
  (Rodrigues vector), ``translation``, ``fisheye = false``; then ``[metadata]`` (with the rig's
  ``units`` and ``world``). Pose2Sim expects metres, so mm rigs' translations are converted
  (``translation_scale``); rigs in arbitrary units are written as they are, with a warning.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import warnings
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from .camera import Camera, Rig
from .errors import InputError
from .formats import Labels
from .io import atomic_path, save_text
from .skeleton import default_joint_names

__all__ = [
    "FORMATS",
    "RIG_FORMATS",
    "export_csv",
    "export_json",
    "export_labels_file",
    "export_poses",
    "export_rig",
    "export_rig_file",
    "export_rig_toml",
    "export_rig_yaml",
    "export_trc",
    "labels_rig",
    "read_rig_toml",
    "read_rig_yaml",
    "read_trc",
    "trc_marker_name",
    "trc_orientation",
]

FORMATS = ("csv", "json", "trc")
RIG_FORMATS = ("opencv-yaml", "toml")


def _joint_names(labels: Labels) -> list[str]:
    """The labels' ``joint_names`` when they fit, else :func:`~epipolarpose.skeleton.default_joint_names`."""
    names = labels.extra.get("joint_names")
    J = labels.poses3d_world.shape[1]
    if names is not None and len(names) == J:
        return [str(n) for n in names]
    return default_joint_names(J)


def _times(labels: Labels, fps: float | None) -> np.ndarray:
    F = labels.poses3d_world.shape[0]
    return np.arange(F) / fps if fps else np.arange(F, dtype=float)


def _masked(labels: Labels) -> np.ndarray:
    X = labels.poses3d_world.astype(np.float64)
    return np.where(labels.valid[..., None] & np.isfinite(X).all(-1, keepdims=True), X, np.nan)


def export_csv(labels: Labels, path: str | os.PathLike, fps: float | None = None) -> None:
    """One row per frame and joint: ``frame,time,joint,x,y,z,valid`` (time in s, or the frame
    number when ``fps`` is unknown; x/y/z empty where invalid)."""
    X, names, t = _masked(labels), _joint_names(labels), _times(labels, fps)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["frame", "time", "joint", "x", "y", "z", "valid"])
    for f in range(X.shape[0]):
        for j, n in enumerate(names):
            xyz = ["" if not np.isfinite(v) else f"{v:.4f}" for v in X[f, j]]
            w.writerow([f, f"{t[f]:.6f}", n, *xyz, int(np.isfinite(X[f, j]).all())])
    save_text(path, buf.getvalue())


def export_json(labels: Labels, path: str | os.PathLike, fps: float | None = None, units: str = "mm") -> None:
    """Per-frame JSON (see the module docstring); invalid joints are ``null``."""
    X, names, t = _masked(labels), _joint_names(labels), _times(labels, fps)
    frames = []
    for f in range(X.shape[0]):
        ok = np.isfinite(X[f]).all(-1)
        joints = {n: (np.round(X[f, j], 4).tolist() if ok[j] else None) for j, n in enumerate(names)}
        frames.append({"frame": f, "time": float(t[f]), "joints": joints, "valid": ok.tolist()})
    doc = {"units": units, "fps": fps, "joint_names": names, "frames": frames}
    save_text(path, json.dumps(doc) + "\n")


def trc_marker_name(name: str) -> str:
    """A plain marker name for OpenSim/Pose2Sim: runs of characters other than letters, digits
    and ``_`` become ``_`` (``Neck/Nose`` -> ``Neck_Nose``)."""
    plain = re.sub(r"[^A-Za-z0-9_]+", "_", str(name)).strip("_")
    return plain or "marker"


def _plain_names(names: list[str]) -> list[str]:
    out: list[str] = []
    for n in names:
        p = trc_marker_name(n)
        while p in out:  # two names that only differ in punctuation
            p += "_"
        out.append(p)
    return out


#: World -> TRC axes (OpenSim's +Y up) for each kind of rig world (see the module docstring).
_Y_UP = {
    "z-up": np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]),  # X, Y, Z = y, z, x
    "camera0": np.diag([1.0, -1.0, -1.0]),  # X, Y, Z = x, -y, -z
}


def trc_orientation(world: str | None) -> tuple[np.ndarray, str | None]:
    """``(M, note)``: the rotation taking the rig's world coordinates to TRC's (+Y up), and what
    the user must be told about it (None when the world is levelled).

    Args:
        world: :attr:`~epipolarpose.camera.Rig.world` — ``"levelled"``, ``"camera0"`` or None.
    """
    if world == "levelled":
        return _Y_UP["z-up"], None
    if world == "camera0":
        return _Y_UP["camera0"], (
            "the rig's world is camera 0's frame, not levelled: the TRC's +Y is camera 0's up "
            "(-y), upright only as far as camera 0 was held level"
        )
    if world is None:
        return _Y_UP[
            "z-up"
        ], "the rig does not say where up is; assuming its world is z up (like the example rigs)"
    return _Y_UP["z-up"], f"unknown rig world {world!r}; assuming z up"


def export_trc(
    labels: Labels,
    path: str | os.PathLike,
    fps: float | None = None,
    units: str = "mm",
    y_up: bool = True,
    world: str | None = "levelled",
) -> None:
    """TRC marker file (OpenSim, Pose2Sim; layout in the module docstring).

    Args:
        labels: the 3D poses.
        path: the ``.trc`` file.
        fps: frame rate (default 30 when unknown; TRC needs one).
        units: units of the poses: ``"mm"`` is written in metres, ``"m"`` as is, anything else as
            is with ``Units`` saying so (never ``m``).
        y_up: rotate the world to OpenSim's +Y up (:func:`trc_orientation`).
        world: the rig's world (:attr:`~epipolarpose.camera.Rig.world`); the default is a z-up world.
    """
    X, names = _masked(labels), _plain_names(_joint_names(labels))
    fps = float(fps) if fps else 30.0
    trc_units = units
    if units == "mm":
        X, trc_units = X / 1000.0, "m"
    if y_up:
        X = X @ trc_orientation(world)[0].T
    F, J = X.shape[:2]
    t = np.arange(F) / fps
    lines = [
        f"PathFileType\t4\t(X/Y/Z)\t{Path(path).name}",
        "DataRate\tCameraRate\tNumFrames\tNumMarkers\tUnits\tOrigDataRate\tOrigDataStartFrame\tOrigNumFrames",
        f"{fps:g}\t{fps:g}\t{F}\t{J}\t{trc_units}\t{fps:g}\t1\t{F}",
        "Frame#\tTime\t" + "\t\t\t".join(names) + "\t\t\t",
        "\t\t" + "\t".join(f"X{j + 1}\tY{j + 1}\tZ{j + 1}" for j in range(J)),
    ]
    flat = X.reshape(F, -1)
    text = np.where(np.isfinite(flat), np.char.mod("%.6f", np.nan_to_num(flat)), "")
    for f in range(F):
        lines.append("\t".join([str(f + 1), f"{t[f]:.6f}", *text[f]]))
    save_text(path, "\n".join(lines) + "\n")


def read_trc(path: str | os.PathLike) -> tuple[list[str], np.ndarray, np.ndarray, dict[str, str]]:
    """Read a TRC file: (marker names, times (F,), markers (F, M, 3) with NaN for empty fields,
    header dict of the ``DataRate ...`` line)."""
    lines = Path(path).read_text().splitlines()
    keys, vals = lines[1].split("\t"), lines[2].split("\t")
    header = dict(zip(keys, vals))
    names = [n for n in lines[3].split("\t")[2:] if n]
    M = len(names)
    rows = [ln.split("\t") for ln in lines[5:] if ln.strip()]
    times = np.array([float(r[1]) for r in rows])
    data = np.array([[float(v) if v else np.nan for v in (r[2:] + [""] * (3 * M))[: 3 * M]] for r in rows])
    return names, times, data.reshape(len(rows), M, 3), header


def export_poses(
    labels: Labels,
    path: str | os.PathLike,
    fmt: str,
    fps: float | None = None,
    units: str = "mm",
    world: str | None = "levelled",
) -> None:
    """Export 3D poses in ``fmt`` (``csv``, ``json`` or ``trc``); ``world`` (the rig's
    :attr:`~epipolarpose.camera.Rig.world`) orients the TRC."""
    if fmt == "csv":
        export_csv(labels, path, fps)
    elif fmt == "json":
        export_json(labels, path, fps, units)
    elif fmt == "trc":
        export_trc(labels, path, fps, units, world=world)
    else:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


def labels_rig(labels: Labels, rig: str | os.PathLike | None = None, *, source: str = "labels") -> Rig | None:
    """The rig of ``labels``: the rig.json ``rig``, else the one stored in the labels
    (``rig_json``, as ``epipolarpose label`` writes), else None. ``source`` names the labels in errors."""
    if rig is not None:
        return Rig.load(rig)
    if "rig_json" in labels.extra:
        return Rig.from_json(str(labels.extra["rig_json"]), source=f"{source}:rig_json")
    return None


def export_labels_file(
    labels_path: str | os.PathLike,
    path: str | os.PathLike,
    fmt: str,
    *,
    fps: float | None = None,
    rig: str | os.PathLike | None = None,
    warn: Callable[[str], None] | None = None,
) -> None:
    """Export ``labels.npz`` in ``fmt`` (``epipolarpose export``).

    Args:
        labels_path: the labels.npz.
        path: the file to write.
        fmt: one of :data:`FORMATS`.
        fps: frame rate (default: the labels' ``fps``, else unknown; TRC then uses 30 and warns).
        rig: rig.json giving the units and world (default: the rig stored in the labels, else a
            user rig in mm).
        warn: receives warnings (TRC: arbitrary units, a world that is not levelled, an unknown
            frame rate); default :func:`warnings.warn`.
    """
    if fmt not in FORMATS:
        raise InputError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    warn = warn or warnings.warn
    labels = Labels.load(labels_path)
    r = labels_rig(labels, rig, source=str(labels_path))
    units = r.units if r is not None else "mm"
    world = r.world if r is not None else None
    if fps is not None and not (np.isfinite(fps) and fps > 0):
        raise InputError(f"--fps must be a positive number of frames per second, got {fps}")
    if fps is None and "fps" in labels.extra:
        fps = float(labels.extra["fps"])
    if fmt == "trc":
        if units not in ("mm", "m"):
            warn(
                f"the rig's units are {units!r}, not metric: the TRC keeps that scale and says "
                f"'Units {units}' (OpenSim needs metres; label with --subject-height for a metric rig)"
            )
        if fps is None:
            warn("the labels do not say their frame rate: TRC written at 30 fps (pass --fps)")
        note = trc_orientation(world)[1]
        if note is not None:
            warn(f"TRC orientation: {note}")
    export_poses(labels, path, fmt, fps=fps, units=units, world=world)


# --- rigs ------------------------------------------------------------------------------------
def export_rig_yaml(rig: Rig, path: str | os.PathLike) -> None:
    """OpenCV FileStorage YAML (``cv2.FileStorage(path, cv2.FILE_STORAGE_READ)`` reads it back)."""
    with atomic_path(path, suffix=".yaml") as tmp:
        fs = cv2.FileStorage(str(tmp), cv2.FILE_STORAGE_WRITE)
        fs.write("units", rig.units)
        fs.write("num_cameras", len(rig))
        for i, c in enumerate(rig):
            fs.startWriteStruct(f"camera_{i}", cv2.FileNode_MAP)
            fs.write("name", c.name)
            fs.write("image_size", np.array(c.image_size, dtype=np.int32).reshape(1, 2))
            fs.write("K", c.K)
            fs.write("dist", c.dist.reshape(1, 5))
            fs.write("R", c.R)
            fs.write("rvec", cv2.Rodrigues(c.R)[0])
            fs.write("t", c.t.reshape(3, 1))
            fs.endWriteStruct()
        fs.release()


def read_rig_yaml(path: str | os.PathLike) -> Rig:
    """Read back :func:`export_rig_yaml`'s file."""
    fs = cv2.FileStorage(str(path), cv2.FILE_STORAGE_READ)
    try:
        n = int(fs.getNode("num_cameras").real())
        cams = []
        for i in range(n):
            node = fs.getNode(f"camera_{i}")
            size = node.getNode("image_size").mat().reshape(-1)
            cams.append(
                Camera(
                    K=node.getNode("K").mat(),
                    R=node.getNode("R").mat(),
                    t=node.getNode("t").mat().reshape(3),
                    dist=node.getNode("dist").mat().reshape(-1),
                    image_size=(int(size[0]), int(size[1])),
                    name=node.getNode("name").string(),
                )
            )
        units = fs.getNode("units").string() or "mm"
    finally:
        fs.release()
    return Rig(cams, units=units)


def _toml_list(a) -> str:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 1:
        return "[ " + ", ".join(repr(float(v)) for v in a) + "]"
    return "[ " + ", ".join(_toml_list(r) for r in a) + "]"


def toml_section_names(num_cameras: int) -> list[str]:
    """``cam_0``, ``cam_1``, ... as aniposelib names them, zero-padded (``cam_00``) beyond ten
    cameras so that sorting the names — what aniposelib's ``CameraGroup.load`` does — keeps the
    rig's order."""
    width = len(str(max(num_cameras - 1, 0)))
    return [f"cam_{i:0{width}d}" for i in range(num_cameras)]


def export_rig_toml(rig: Rig, path: str | os.PathLike, translation_scale: float | None = None) -> None:
    """Pose2Sim / aniposelib calibration TOML (layout in the module docstring).

    ``translation_scale`` multiplies translations (default 0.001 for mm rigs, giving metres as
    Pose2Sim expects, and 1 otherwise).
    """
    if translation_scale is None:
        translation_scale = 1e-3 if rig.units == "mm" else 1.0
    out = []
    for section, c in zip(toml_section_names(len(rig)), rig):
        d = c.dist if c.dist[4] != 0 else c.dist[:4]
        out += [
            f"[{section}]",
            f"name = {json.dumps(c.name)}",
            f"size = {_toml_list(np.asarray(c.image_size, float))}",
            f"matrix = {_toml_list(c.K)}",
            f"distortions = {_toml_list(d)}",
            f"rotation = {_toml_list(cv2.Rodrigues(c.R)[0].reshape(3))}",
            f"translation = {_toml_list(c.t * translation_scale)}",
            "fisheye = false",
            "",
        ]
    units = "m" if rig.units == "mm" and translation_scale == 1e-3 else rig.units
    out += ["[metadata]", "adjusted = false", "error = 0.0", f"units = {json.dumps(units)}"]
    if rig.world is not None:
        out.append(f"world = {json.dumps(rig.world)}")
    save_text(path, "\n".join(out + [""]))


def read_rig_toml(path: str | os.PathLike) -> Rig:
    """Read a calibration TOML the way aniposelib's ``CameraGroup.load`` does: every section but
    ``metadata``, in *sorted* name order, each ``matrix``, ``distortions``, ``rotation``
    (Rodrigues), ``translation``, ``name``, ``size``. Units are the metadata's (default m)."""
    import tomllib

    doc = tomllib.loads(Path(path).read_text())
    cams = []
    for key in sorted(doc):
        if key == "metadata":
            continue
        d = doc[key]
        dist = np.zeros(5)
        dd = np.asarray(d["distortions"], float).reshape(-1)[:5]
        dist[: len(dd)] = dd
        cams.append(
            Camera(
                K=np.asarray(d["matrix"], float),
                R=cv2.Rodrigues(np.asarray(d["rotation"], float))[0],
                t=np.asarray(d["translation"], float),
                dist=dist,
                image_size=tuple(int(v) for v in d["size"]),
                name=str(d["name"]),
            )
        )
    meta = doc.get("metadata", {})
    return Rig(cams, units=str(meta.get("units", "m")))


def export_rig(rig: Rig, path: str | os.PathLike, fmt: str) -> None:
    """Export a rig as ``opencv-yaml`` or ``toml``."""
    if fmt == "opencv-yaml":
        export_rig_yaml(rig, path)
    elif fmt == "toml":
        export_rig_toml(rig, path)
    else:
        raise ValueError(f"unknown rig format {fmt!r}; choose one of {', '.join(RIG_FORMATS)}")


def export_rig_file(
    rig_path: str | os.PathLike,
    path: str | os.PathLike,
    fmt: str,
    *,
    warn: Callable[[str], None] | None = None,
) -> None:
    """Export the rig.json ``rig_path`` in ``fmt`` (one of :data:`RIG_FORMATS`; ``epipolarpose
    export-rig``); ``warn`` hears about a rig in arbitrary units (default :func:`warnings.warn`)."""
    if fmt not in RIG_FORMATS:
        raise InputError(f"--format must be one of {', '.join(RIG_FORMATS)}, got {fmt!r}")
    rig = Rig.load(rig_path)
    if rig.units not in ("mm", "m"):
        (warn or warnings.warn)(
            f"the rig's units are {rig.units!r}, not metric: its translations are written as they "
            "are, but Pose2Sim/aniposelib read them as metres (self-calibrate with --subject-height "
            "for a metric rig)"
        )
    export_rig(rig, path, fmt)
