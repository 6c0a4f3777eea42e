"""Time-sync benchmark: recover synthetic per-camera frame offsets (±30 frames) from noisy 2D tracks.

Motion capture (CMU 131 and Bandai clips at 30 fps) is observed by the four Human3.6M S9 cameras
with the default detector-like noise (``NoiseModel()``: 4 px Gaussian noise, 5 % outliers, 2 %
left/right swaps, 5 % missing) and random integer offsets in [-30, 30] for cameras 1..3. A trial
succeeds when every offset is recovered exactly. Prints JSON; writes
``benchmarks/results/sync_bench.json``.

    python benchmarks/sync_bench.py [--trials 24] [--frames 240] [--only 4,11,22] [--seed 1] [--clip bow]

``--only`` runs a subset of the trials (same data as in the full run); ``--seed`` draws other
offsets, start frames and noise (trial ``k``'s noise seed is ``1000 * seed + k``); ``--clip`` keeps
the clips whose name contains it. Only the default run writes the results file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from epipolarpose.camera import Rig  # noqa: E402
from epipolarpose.mocap import load_mocap  # noqa: E402
from epipolarpose.sync import SyncOptions, estimate_offsets  # noqa: E402
from epipolarpose.synthetic import NoiseModel, synthesize  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EPIPOLARPOSE_SHARED", ROOT.parent / "shared"))
CLIPS = [
    "cmu/131_01.bvh",
    "cmu/131_02.bvh",
    "bandai1/dataset-1_walk_normal_001.bvh",
    "bandai1/dataset-1_kick_normal_001.bvh",
    "bandai1/dataset-1_bow_normal_001.bvh",
    "bandai1/dataset-1_walk-left_normal_001.bvh",
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=24)
    ap.add_argument("--frames", type=int, default=240, help="frames per trial (30 fps)")
    ap.add_argument("--max-offset", type=int, default=30)
    ap.add_argument("--only", default="", help="comma-separated trial indices; no results file")
    ap.add_argument("--seed", type=int, default=0, help="other random draws; no results file")
    ap.add_argument("--clip", default="", help="only clips whose name contains this; no results file")
    args = ap.parse_args()
    import cv2

    cv2.setNumThreads(1)
    rig = Rig.load(SHARED / "data/rigs/h36m_S9.json")
    rng = np.random.default_rng(args.seed)
    motions = []
    for c in CLIPS:
        p = SHARED / "data/mocap" / c
        if p.exists() and args.clip in c:
            m = load_mocap(p, fps=30)
            if m.num_frames >= args.frames // 2:  # long enough for ±30-frame offsets
                motions.append(m)
    only = {int(k) for k in args.only.split(",") if k.strip()}
    trials = []
    for k in range(args.trials):
        m = motions[k % len(motions)]
        F = min(args.frames, m.num_frames)
        s = int(rng.integers(0, m.num_frames - F + 1))
        offs = (0, *rng.integers(-args.max_offset, args.max_offset + 1, len(rig) - 1).tolist())
        if only and k not in only:
            continue  # the random draws above keep every trial's data as in the full run
        p2d, _ = synthesize(m.poses[s : s + F], rig, NoiseModel(time_offsets=offs), seed=1000 * args.seed + k)
        t = time.perf_counter()
        res = estimate_offsets(p2d, SyncOptions(max_offset=args.max_offset))
        dt = time.perf_counter() - t
        # synthesize: camera c's frame i shows reference time i + offs[c], the same convention
        ok = np.array_equal(res.offsets, np.asarray(offs))
        trials.append(
            dict(
                trial=k,
                clip=m.name,
                frames=F,
                true=list(offs),
                found=res.offsets.tolist(),
                confidence=np.round(res.confidence, 3).tolist(),
                exact=bool(ok),
                seconds=round(dt, 3),
            )
        )
        print(
            f"{k:2d} {m.name:32s} true {offs} found {res.offsets.tolist()} {'ok' if ok else 'FAIL'} {dt:.2f}s",
            file=__import__("sys").stderr,
        )
    per_cam = [t["true"][c] == t["found"][c] for t in trials for c in range(1, len(rig))]
    out = dict(
        benchmark="sync",
        machine=f"{platform.machine()} {os.cpu_count()} cores",
        rig="h36m_S9 (4 cameras)",
        noise="NoiseModel() defaults",
        max_offset=args.max_offset,
        seed=args.seed,
        trials=len(trials),
        exact_rate=float(np.mean([t["exact"] for t in trials])),
        camera_exact_rate=float(np.mean(per_cam)),
        seconds_median=float(np.median([t["seconds"] for t in trials])),
        seconds_max=float(np.max([t["seconds"] for t in trials])),
        min_confidence=float(min(min(t["confidence"][1:]) for t in trials)),
        details=trials,
    )
    if not only and args.seed == 0 and not args.clip:
        (ROOT / "benchmarks/results").mkdir(parents=True, exist_ok=True)
        (ROOT / "benchmarks/results/sync_bench.json").write_text(json.dumps(out, indent=1))
    print(json.dumps({k: v for k, v in out.items() if k != "details"}, indent=1))


if __name__ == "__main__":
    main()
