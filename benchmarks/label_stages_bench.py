"""Where the time of ``label_poses`` goes, per stage, before and after (issue 13's profile table).

The inputs are the labels benchmark's (``labels_bench.py``): the held-out shared mocap clips at 50
fps through the Human3.6M S9 rig with the default detector noise, tiled to ``--frames``; they are
made once with this checkout and saved as ``poses2d.npz``. Each version then runs in its own
process (``PYTHONPATH`` = its ``src``), ``--repeats`` times per input; the run with the lowest
total is kept (the machine's noise only ever adds time). Stages are those of
``summary.timings_s``; ``before`` defaults to ``/tmp/before/src`` (``git worktree add /tmp/before
3b764e3``: the code when issue 13 was filed, whose ``label_poses`` lives in ``epipolarpose.labels``).

    python benchmarks/label_stages_bench.py --before-src /tmp/before/src

Prints JSON to stdout and writes ``benchmarks/results/label_stages.json``.
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
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys
from epipolarpose.formats import Poses2D
try:
    from epipolarpose.labelling import label_poses
    run = lambda p: label_poses(p)
except ImportError:  # the code before the architecture issue
    from epipolarpose.labels import label_poses
    run = lambda p: label_poses(p, progress=False)
out = {}
for path in sys.argv[2:]:
    p = Poses2D.load(path)
    runs = []
    for _ in range(int(sys.argv[1])):
        s = run(p).summary
        runs.append(dict(s.timings_s if hasattr(s, "timings_s") else s["timings_s"]))
    out[str(p.num_frames)] = {k: round(v, 3) for k, v in min(runs, key=lambda t: t["total"]).items()}
print(json.dumps(out))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, nargs="+", default=[20_000, 100_000])
    ap.add_argument("--before-src", type=Path, default=Path("/tmp/before/src"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    sys.path.insert(0, str(REPO / "src"))
    sys.path.insert(0, str(REPO / "benchmarks"))
    from epipolarpose.camera import Rig
    from epipolarpose.synthetic import NoiseModel, synthesize
    from labels_bench import SHARED, load_poses

    rig = Rig.load(SHARED / "data/rigs/h36m_S9.json")
    with tempfile.TemporaryDirectory(prefix="label_stages_") as tmp:
        paths = []
        for frames in args.frames:
            poses, _ = load_poses(frames)
            p2, _ = synthesize(poses, rig, NoiseModel(), seed=args.seed)
            paths.append(str(Path(tmp) / f"poses2d_{frames}.npz"))
            p2.save(paths[-1])
        result: dict = {}
        for version, src in (("before", args.before_src), ("after", REPO / "src")):
            env = dict(os.environ, PYTHONPATH=str(src), OMP_NUM_THREADS="1")
            r = subprocess.run(
                [sys.executable, "-c", CHILD, str(args.repeats), *paths],
                env=env,
                capture_output=True,
                text=True,
            )
            if r.returncode != 0:
                raise SystemExit(f"{version} ({src}) failed:\n{r.stderr[-3000:]}")
            result[version] = json.loads(r.stdout.strip().splitlines()[-1])
    out = {
        "benchmark": "label_stages",
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}",
        "command": "python benchmarks/label_stages_bench.py " + " ".join(sys.argv[1:]),
        "before_src": str(args.before_src),
        "repeats": args.repeats,
        "load_1min_after": round(os.getloadavg()[0], 2),
        "stages_s": result,
        "speedup_total": {
            f: round(result["before"][f]["total"] / result["after"][f]["total"], 2) for f in result["after"]
        },
    }
    text = json.dumps(out, indent=1)
    print(text)
    (REPO / "benchmarks" / "results" / "label_stages.json").write_text(text + "\n")


if __name__ == "__main__":
    main()
