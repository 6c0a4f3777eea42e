"""Wall-clock seconds and peak memory of ``epipolarpose synth``, ``label``, ``report`` and ``evaluate``
at 100k frames, before and after (issue 13: ``label`` under 10 s and 1.5 GB end to end, the other
three "several times faster").

Each command runs as a real process (start-up included), once per code version and repeat,
alternating versions so that a change in the machine's load hits both alike:

* ``before``: the package at ``--before-src`` (default ``../main/src``, the main checkout; or a
  ``git worktree``/``git stash`` copy of the old code);
* ``after``: this checkout's ``src``.

Inputs: ``synth`` concatenates BVH clips from ``../shared/data/mocap`` (bandai1, bandai2) until
``--frames`` frames at 50 fps; ``label`` (this checkout, not timed) makes the labels that
``report`` and ``evaluate`` read. ``report`` gets ``--poses2d``; ``evaluate`` fits its PSS
centroids in-sample (no ``--centroids``), as a newcomer runs it.

The load average before and after every run is recorded: the figures are only comparable when the
machine was otherwise idle (``quiet`` in the output says whether the 1-minute load average stayed
below 0.75 per core; these commands use one or two cores themselves).

    python benchmarks/cli_speed_bench.py                    # 100k frames, 1 repeat
    python benchmarks/cli_speed_bench.py --frames 20000 --repeats 3

Prints JSON to stdout and writes ``benchmarks/results/cli_speed_<frames>.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EPIPOLARPOSE_SHARED", REPO.parent / "shared"))


def clips_for(frames: int, fps: float = 50.0) -> list[Path]:
    """Enough BVH clips (in a fixed order) for ``frames`` frames at ``fps``."""
    sys.path.insert(0, str(REPO / "src"))
    from epipolarpose.mocap import read_bvh

    out, total = [], 0
    for folder in ("bandai1", "bandai2", "cmu"):
        for p in sorted((SHARED / "data/mocap" / folder).glob("*.bvh")):
            bvh = read_bvh(p)
            total += int((bvh.num_frames - 1) / bvh.fps * fps) + 1
            out.append(p)
            if total >= frames:
                return out
    return out


def run(src: Path, args: list[str], cwd: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(src), OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    load0 = os.getloadavg()[0]
    t = time.perf_counter()
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "epipolarpose", *args],
            cwd=cwd,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        _, status, usage = os.wait4(proc.pid, 0)  # this process's own peak memory
        dt = time.perf_counter() - t
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            raise SystemExit(f"{' '.join(args)} failed with {src}:\n{err.read()[-3000:]}")
    return {
        "seconds": round(dt, 2),
        "max_rss_GB": round(usage.ru_maxrss / 1e6, 3),
        "load_before": round(load0, 2),
        "load_after": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--before-src", type=Path, default=REPO.parent / "main" / "src")
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    args = ap.parse_args()
    after_src = REPO / "src"
    work = args.work or Path(tempfile.mkdtemp(prefix="cli_speed_"))
    work.mkdir(parents=True, exist_ok=True)
    clips = clips_for(args.frames)
    bvh = sum((["--bvh", str(p)] for p in clips), [])
    cores = os.cpu_count() or 1
    # the inputs of report/evaluate, made once with this checkout
    base = work / "data"
    run(after_src, ["synth", *bvh, "--frames", str(args.frames), "-o", str(base), "--quiet"], work)
    run(after_src, ["label", str(base / "poses2d.npz"), "-o", str(base / "labels.npz"), "-q"], work)
    commands = {
        "synth": lambda tag: ["synth", *bvh, "--frames", str(args.frames), "-o", str(work / f"s_{tag}")],
        "label": lambda tag: ["label", str(base / "poses2d.npz"), "-o", str(work / f"l_{tag}.npz")],
        "report": lambda tag: [
            "report",
            str(base / "labels.npz"),
            "--poses2d",
            str(base / "poses2d.npz"),
            "-o",
            str(work / f"r_{tag}"),
        ],
        "evaluate": lambda tag: ["evaluate", str(base / "labels.npz"), str(base / "gt.npz")],
    }
    results: dict[str, dict] = {}
    for name, make in commands.items():
        runs: dict[str, list] = {"before": [], "after": []}
        for rep in range(args.repeats):
            for version, src in (("before", args.before_src), ("after", after_src)):
                runs[version].append(run(src, make(f"{version}{rep}"), work))
                for p in work.glob(f"[sr]_{version}{rep}"):
                    shutil.rmtree(p, ignore_errors=True)
                (work / f"l_{version}{rep}.npz").unlink(missing_ok=True)
        best = {v: min(r["seconds"] for r in rs) for v, rs in runs.items()}
        results[name] = {
            "before_s": best["before"],
            "after_s": best["after"],
            "before_max_rss_GB": max(r["max_rss_GB"] for r in runs["before"]),
            "after_max_rss_GB": max(r["max_rss_GB"] for r in runs["after"]),
            "speedup": round(best["before"] / best["after"], 2),
            "runs": runs,
        }
    loads = [
        r[k]
        for res in results.values()
        for rs in res["runs"].values()
        for r in rs
        for k in ("load_before", "load_after")
    ]
    out = {
        "benchmark": "cli_speed",
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.processor() or platform.machine()}, {cores} cores",
        "frames": args.frames,
        "clips": len(clips),
        "before_src": str(args.before_src),
        "after_src": str(after_src),
        "max_load_1min": max(loads),
        "quiet": max(loads) < 0.75 * cores,
        "commands": results,
    }
    text = json.dumps(out, indent=1)
    print(text)
    res_dir = REPO / "benchmarks" / "results"
    res_dir.mkdir(exist_ok=True)
    (res_dir / f"cli_speed_{args.frames}.json").write_text(text + "\n")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
