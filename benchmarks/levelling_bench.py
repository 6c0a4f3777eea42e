"""Which way is up, from the person alone: the body axes a levelled world could use, against
the vertical of motion capture (issue #11, item 5). Prints JSON.

For motion-capture clips of ``../shared/data/mocap`` (CMU and Bandai-Namco BVH, read in place,
Human3.6M joints, world z up), per clip: the angle from vertical of the median direction
(component-wise median of the per-frame unit vectors, as ``world.level_world`` takes it) of
ankles → head, ankles → shoulders, ankles → thorax, hips → shoulders and knees → shoulders
(midpoints of left and right), and the tilt of ``level_world``'s own up axis (whatever method it
picks: the floor plane when the feet cover a floor patch, else ankles → shoulders), alone
(``level_world``: one camera, so no cameras' horizon) and through the Human3.6M S1 rig
(``level_world_h36m_S1``: the cameras' horizon replaces ankles → shoulders). Summaries: median,
90th percentile and max over clips. ``camera_horizon``: ``world.camera_horizon`` of every real rig
in ``../shared`` whose world is levelled (the Human3.6M rigs, the Pose2Sim demo's Qualisys rig,
and the four 3-camera subsets of S9): its angle from the lab's vertical, or its refusal, with the
largest camera roll, the check's residual (each camera against the plane of the others' image
rows) and the fit's angle had the check been skipped. The real-footage counterpart is ``footage_bench.py``
(``levelling_with_lab_rig``: the Pose2Sim demo triangulated through the lab's rig).

    PYTHONPATH=src python benchmarks/levelling_bench.py [--clips N]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from epipolarpose.camera import Camera, Rig  # noqa: E402
from epipolarpose.mocap import load_mocap  # noqa: E402
from epipolarpose.skeleton import H36M_JOINTS  # noqa: E402
from epipolarpose.world import camera_horizon, level_world  # noqa: E402
from footage_bench import run_header, write_result  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
MOCAP = SHARED / "mocap"
LEVELLED_RIGS = [SHARED / "rigs" / f"h36m_{s}.json" for s in ("S1", "S9", "S11")] + [
    SHARED / "footage" / "pose2sim_multiperson" / "rig.json"
]
J = {n: i for i, n in enumerate(H36M_JOINTS)}


def _tilt(v: np.ndarray) -> float:
    """Angle (degrees) from +z of the median direction of the vectors v (F, 3)."""
    v = v[np.isfinite(v).all(-1)]
    v = v / np.linalg.norm(v, axis=-1, keepdims=True)
    m = np.median(v, axis=0)
    return float(np.degrees(np.arccos(np.clip(m[2] / np.linalg.norm(m), -1, 1))))


def axes(X: np.ndarray) -> dict[str, float]:
    """The candidate axes' tilts of one clip's poses X (F, 17, 3), world z up."""

    def mid(a: str, b: str) -> np.ndarray:
        return X[:, [J[a], J[b]]].mean(1)

    ankles, shoulders = mid("RFoot", "LFoot"), mid("RShoulder", "LShoulder")
    return {
        "ankles_to_head": _tilt(X[:, J["Head"]] - ankles),
        "ankles_to_shoulders": _tilt(shoulders - ankles),
        "ankles_to_thorax": _tilt(X[:, J["Thorax"]] - ankles),
        "hips_to_shoulders": _tilt(shoulders - mid("RHip", "LHip")),
        "knees_to_shoulders": _tilt(shoulders - mid("RKnee", "LKnee")),
    }


def _horizon_tilt(horizon: tuple[np.ndarray, float] | None) -> float | None:
    """Angle (degrees) of a ``camera_horizon`` result's up from +z; None when there is none."""
    return None if horizon is None else float(np.degrees(np.arccos(np.clip(horizon[0][2], -1, 1))))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clips", type=int, default=0, help="clips sampled (seeded); 0: all")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "levelling_bench.json")
    args = ap.parse_args()
    files = sorted(MOCAP.glob("*/*.bvh"))
    random.Random(0).shuffle(files)
    if args.clips:
        files = files[: args.clips]
    rig = Rig([Camera(K=np.eye(3), R=np.eye(3), t=np.zeros(3), name="cam0")])  # level_world needs a camera 0
    h36m = Rig.load(LEVELLED_RIGS[0])
    t0 = time.perf_counter()
    horizons = {}
    rigs = {f"{p.parent.name}/{p.name}": Rig.load(p) for p in LEVELLED_RIGS}
    s9 = rigs["rigs/h36m_S9.json"]
    for drop in range(len(s9)):  # three cameras: is the horizon checkable, and how far off is it?
        keep = [c for c in range(len(s9)) if c != drop]
        rigs[f"rigs/h36m_S9.json cameras {keep}"] = Rig([s9.cameras[c] for c in keep])
    for name, lab in rigs.items():
        roll = np.degrees(np.arcsin(np.abs(lab.R[:, 0, 2])))  # camera x axes against the lab's horizontal
        hz = camera_horizon(lab)
        unchecked = camera_horizon(lab, max_residual_deg=90.0)  # the fit whatever the check says
        horizons[name] = {
            "largest_camera_roll_deg": float(roll.max()),
            "outcome": "refused" if hz is None else "horizon",
            "tilt_deg": _horizon_tilt(hz),
            "residual_deg": None if unchecked is None else unchecked[1],
            "tilt_if_unchecked_deg": _horizon_tilt(unchecked),
        }
    per_clip: dict[str, Any] = {}
    for f in files:
        X = load_mocap(f, fps=25).poses
        row = axes(X)
        for key, r in (("level_world", rig), ("level_world_h36m_S1", h36m)):
            lev = level_world(r, X)
            if lev is not None:
                row[key] = float(np.degrees(np.arccos(np.clip(lev.R[2, 2], -1, 1))))
                row[f"{key}_method"] = lev.up
        per_clip[f"{f.parent.name}/{f.name}"] = row
    keys = [k for k in next(iter(per_clip.values())) if not k.endswith("_method")]
    summary = {}
    for k in keys:
        v = np.array([r[k] for r in per_clip.values() if k in r])
        summary[k] = {
            "median": float(np.median(v)),
            "p90": float(np.percentile(v, 90)),
            "max": float(v.max()),
        }
    for key in ("level_world", "level_world_h36m_S1"):
        methods = [r.get(f"{key}_method") for r in per_clip.values()]
        summary[f"{key}_methods"] = {m: methods.count(m) for m in sorted(set(map(str, methods)))}
    result = {
        **run_header("levelling"),
        "clips": len(per_clip),
        "camera_horizon": horizons,
        "summary_deg": summary,
        "per_clip_deg": per_clip,
        "seconds": time.perf_counter() - t0,
    }
    write_result(result, args.out, shown={k: v for k, v in result.items() if k != "per_clip_deg"})


if __name__ == "__main__":
    main()
