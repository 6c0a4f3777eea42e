"""Sync when cameras see the person in part of the clip only: ``SyncOptions.min_shared_motion``
(two views compared only at offsets where at least that share of one camera's motion falls on
joints the other camera sees) against no such rule (0). Prints JSON (issue #11).

- ``real_tracks``: the 2D tracks alone (``estimate_offsets`` on the calibration landmarks, what the
  first stage of ``label --sync auto`` runs) on the cached MediaPipe detections of the two caliscope
  sessions (``footage_bench.py --cache DIR`` makes them), synchronized and the 6 shifted draws of
  ``footage_bench.py --sync-draws 6``, with and without the lab intrinsics. The whole of
  ``label --sync auto`` (with the rig check) on the same recordings is in ``footage_bench.py``.
- ``synthetic``: what ``label --sync auto`` runs (``labelling.synchronize``: tracks, then the rig
  check with self-calibration) on CMU 131_01 seen by the 4 Human3.6M S9 cameras
  (``NoiseModel()`` noise), with views blanked the way the 57-frame session's are:
  ``post_like`` (57 frames; camera 0 blind in frames 0-12, camera 1 in 26-52, camera 2 from 40)
  and ``partial`` (60 frames; camera 0 blind in 0-15, camera 1 in 27-54, camera 2 from 40).

Per case: found - true for every camera; per setting: the sum of |error| and the worst.

    python benchmarks/sync_partial_bench.py --cache /work/cache/footage
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from epipolarpose.camera import Rig  # noqa: E402
from epipolarpose.formats import Poses2D  # noqa: E402
from epipolarpose.geometry.calibration import calibration_detections  # noqa: E402
from epipolarpose.geometry.observations import apply_intrinsics  # noqa: E402
from epipolarpose.labelling import LabelOptions, synchronize  # noqa: E402
from epipolarpose.mocap import load_mocap  # noqa: E402
from epipolarpose.sync import SyncOptions, estimate_offsets  # noqa: E402
from epipolarpose.synthetic import NoiseModel, synthesize  # noqa: E402
from footage_bench import FOOTAGE, SHARED, run_header, shift_cameras, sync_draws, write_result  # noqa: E402

SETTINGS = (0.0, SyncOptions().min_shared_motion)
SESSIONS = ("caliscope_charuco_calibration", "caliscope_post_optimization")
# (frames, [(camera, first blind frame, end)]) per pattern
PATTERNS = {
    "post_like": (57, [(0, 0, 13), (1, 26, 53), (2, 40, None)]),
    "partial": (60, [(0, 0, 16), (1, 27, 55), (2, 40, None)]),
}


def _tally(errors: list[list[int]]) -> dict[str, int]:
    e = np.abs(np.asarray(errors))
    return {"sum_abs_error": int(e.sum()), "worst": int(e.max()), "exact": int((e.sum(1) == 0).sum())}


def real_tracks(cache: Path) -> dict:
    out: dict = {}
    draws = [[0, 0, 0, 0], *sync_draws(4, 6, 0)]
    for name in SESSIONS:
        lab = Rig.load(FOOTAGE / name / "rig.json")
        p2 = Poses2D.load(cache / name / "poses2d_static.npz")
        for with_k in (True, False):
            q0 = apply_intrinsics(p2, lab) if with_k else replace(p2, K=None, dist=None, extra=dict(p2.extra))
            case = {}
            for m in SETTINGS:
                errs = []
                for o in draws:
                    q = calibration_detections(shift_cameras(q0, np.array(o)))
                    errs.append((estimate_offsets(q, SyncOptions(min_shared_motion=m)).offsets - o).tolist())
                case[str(m)] = {"errors": errs, **_tally(errs)}
            out[f"{name} {'with' if with_k else 'without'} K"] = {"true": draws, **case}
            print(
                f"[real] {name} K={with_k}: "
                + ", ".join(f"{m}: {case[str(m)]['sum_abs_error']}" for m in SETTINGS),
                file=sys.stderr,
            )
    return out


def synthetic() -> dict:
    rig = Rig.load(SHARED / "data/rigs/h36m_S9.json")
    walk = load_mocap(SHARED / "data/mocap/cmu/131_01.bvh", fps=30).poses
    out: dict = {}
    for pattern, (frames, blind) in PATTERNS.items():
        cases, errs = [], {str(m): [] for m in SETTINGS}
        starts = range(0, len(walk) - frames, 40) if pattern == "post_like" else (0, 100, 200)
        for start in starts:
            for offs in ((0, 0, 0, 0), (0, 2, -3, 1), (0, 3, -2, 0), (0, -4, 0, 2)):
                for seed in (1, 2):
                    p2d, _ = synthesize(
                        walk[start : start + frames], rig, NoiseModel(time_offsets=offs), seed=seed
                    )
                    scores = p2d.scores.copy()
                    for c, a, b in blind:
                        scores[c, a:b] = 0
                    q = replace(p2d, scores=scores)
                    row = {"start": start, "true": list(offs), "seed": seed}
                    for m in SETTINGS:
                        res = synchronize(q, options=LabelOptions(sync=SyncOptions(min_shared_motion=m)))
                        e = (res.offsets - np.asarray(offs)).tolist()
                        row[str(m)] = e
                        errs[str(m)].append(e)
                    cases.append(row)
        out[pattern] = {"cases": cases, **{m: _tally(e) for m, e in errs.items()}}
        print(
            f"[synthetic] {pattern}: " + ", ".join(f"{m}: {out[pattern][m]}" for m in errs), file=sys.stderr
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache", type=Path, required=True, help="footage_bench.py's detections cache")
    ap.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent / "results" / "sync_partial.json"
    )
    args = ap.parse_args()
    import cv2

    cv2.setNumThreads(1)
    t0 = time.perf_counter()
    result = {
        **run_header("sync_partial"),
        "settings": {"min_shared_motion": list(SETTINGS), "sync": "SyncOptions() otherwise"},
        "real_tracks": real_tracks(args.cache),
        "synthetic": synthetic(),
    }
    result["seconds"] = time.perf_counter() - t0
    shown = {
        "real_tracks": {
            k: {m: v[m]["sum_abs_error"] for m in map(str, SETTINGS)}
            for k, v in result["real_tracks"].items()
        },
        "synthetic": {k: {m: v[m] for m in map(str, SETTINGS)} for k, v in result["synthetic"].items()},
    }
    write_result(result, args.out, shown)


if __name__ == "__main__":
    main()
