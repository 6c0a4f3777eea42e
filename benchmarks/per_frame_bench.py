"""``label --mode per-frame`` before and after batching (issue 13), in one run.

The code before is the package source at ``--before`` (a git revision, default the commit this
work started from), unpacked with ``git archive`` into a temporary folder; the code after is this
checkout's ``src``. Each is run in its own process on the same data (the labels_bench setting: the
Human3.6M S9 rig, the held-out shared mocap clips at 50 fps, default detector noise, seed 0,
``--frames`` frames spread over the 20k-frame set), alternately, ``--repeats`` times each, and
times ``label_poses(mode="per-frame")`` end to end and ``per_frame_reconstruct`` alone. The
labels of the two are compared (``frames_differing``: frames whose valid joints or labels differ
by more than 1e-3 of the labels' extent; the test ``tests/test_per_frame_fast.py`` pins equality
on a small case) and both are scored (N-MPJPE, P-MPJPE, coverage, as in labels_bench).

Batching changes the linear triangulation's numerical scaling (one scale per batch instead of one
per frame), so the cheirality check can decide differently where it is ill-conditioned (points near
infinity under a wrong RANSAC F): measured on 2000 frames, 3 of 6000 (pair, frame) poses and 2
frames' labels differed.

    python benchmarks/per_frame_bench.py                  # 2000 frames, 2 repeats
    python benchmarks/per_frame_bench.py --frames 5000 --repeats 3 --before <rev>

Prints JSON and writes ``benchmarks/results/per_frame_bench.json``. On a shared machine take
the best of the repeats (printed as ``best``) and run it again on a quiet one.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
BEFORE = "508813d"  # main before issue 13's per-frame work


def worker(frames: int, out: Path) -> None:
    """Time the per-frame mode of whatever ``epipolarpose`` is importable; write timings + labels."""
    import numpy as np

    sys.path.insert(0, str(REPO / "benchmarks"))
    from epipolarpose.camera import Rig
    from epipolarpose.geometry.per_frame import per_frame_reconstruct
    from epipolarpose.labelling import LabelOptions, label_poses
    from epipolarpose.synthetic import NoiseModel, synthesize
    from labels_bench import SHARED, load_poses, score, subset

    rig = Rig.load(SHARED / "data/rigs/h36m_S9.json")
    poses, _ = load_poses(20000)
    p2, gt = synthesize(poses, rig, NoiseModel(), seed=0)
    idx = np.linspace(0, len(poses) - 1, frames).round().astype(np.int64)
    p2 = subset(p2, idx)
    gt_cam0 = rig.world_to_camera(gt.poses3d_world[idx].astype(np.float64))[0]
    t0 = time.perf_counter()
    res = label_poses(p2, options=LabelOptions(mode="per-frame"), progress=False)
    label_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    per_frame_reconstruct(p2)
    reconstruct_s = time.perf_counter() - t0
    poses_cam0 = res.labels.poses3d_camera[0]
    np.savez(out, poses=poses_cam0, valid=res.labels.valid)
    import epipolarpose

    print(
        json.dumps(
            {
                "source": str(Path(epipolarpose.__file__).parents[1]),
                "label_s": label_s,
                "label_frames_per_s": frames / label_s,
                "per_frame_reconstruct_s": reconstruct_s,
                "per_frame_reconstruct_frames_per_s": frames / reconstruct_s,
                **score(poses_cam0.astype(np.float64), gt_cam0, res.labels.valid),
            }
        )
    )


def run(src: Path, frames: int, out: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(src))
    cmd = [sys.executable, __file__, "--worker", "--frames", str(frames), "--out", str(out)]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--before", default=BEFORE, help="git revision of the code before")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.frames, args.out)
        return

    import numpy as np

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        archive = subprocess.run(
            ["git", "archive", args.before, "src"], cwd=REPO, capture_output=True, check=True
        )
        subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive.stdout, check=True)
        srcs = {"before": tmp / "src", "after": REPO / "src"}
        runs: dict[str, list[dict]] = {"before": [], "after": []}
        for i in range(args.repeats):
            for name, src in srcs.items():
                runs[name].append(run(src, args.frames, tmp / f"{name}.npz"))
                print(f"{name} #{i}: {runs[name][-1]['label_frames_per_s']:.1f} frames/s", file=sys.stderr)
        a, b = np.load(tmp / "before.npz"), np.load(tmp / "after.npz")
        same_valid = bool(np.array_equal(a["valid"], b["valid"]))
        both = a["valid"] & b["valid"]
        diff = np.where(both[..., None], np.abs(a["poses"].astype(np.float64) - b["poses"]), 0.0)
        differ = (a["valid"] != b["valid"]).any(-1) | (
            diff.max((1, 2)) > 1e-3 * np.nanmax(np.abs(a["poses"]))
        )

    def best(name: str, key: str) -> float:
        return max(r[key] for r in runs[name])

    result = {
        "benchmark": "per_frame",
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}",
        "command": "python " + " ".join(sys.argv),
        "frames": args.frames,
        "before": args.before,
        "runs": runs,
        "best": {
            name: {
                "label_frames_per_s": best(name, "label_frames_per_s"),
                "per_frame_reconstruct_frames_per_s": best(name, "per_frame_reconstruct_frames_per_s"),
            }
            for name in runs
        },
        "labels_same_valid": same_valid,
        "labels_max_abs_difference": float(diff.max()),
        "frames_differing": np.flatnonzero(differ).tolist(),
        "accuracy": {
            name: {k: runs[name][0][k] for k in ("N-MPJPE_mm", "P-MPJPE_mm", "coverage")} for name in runs
        },
    }
    result["speedup"] = {
        key: result["best"]["after"][key] / result["best"]["before"][key]
        for key in ("label_frames_per_s", "per_frame_reconstruct_frames_per_s")
    }
    print(json.dumps(result, indent=1))
    out = REPO / "benchmarks" / "results" / "per_frame_bench.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
