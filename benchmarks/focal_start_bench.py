"""Self-calibration without intrinsics from other starting focal lengths (issue #11): is the
default field of view (60° across the longer image side, ``camera.default_intrinsics``) why the
seated caliscope sessions end several degrees off without K? Prints JSON.

For each caliscope session (cached MediaPipe detections, ``footage_bench.py --cache DIR`` makes
them) and each starting field of view: ``label_poses`` with ``K = default_intrinsics(size, fov)``,
no distortion and ``CalibrationOptions(refine_focal=True)`` — the run ``label`` makes without K,
started from that field of view — and the relative rotation errors against the lab rig (max /
mean over the six pairs, degrees, ``footage_bench.pair_errors``) with the focal lengths found.

    python benchmarks/focal_start_bench.py --cache /work/cache/footage
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from epipolarpose.camera import Rig, default_intrinsics  # noqa: E402
from epipolarpose.geometry.calibration import CalibrationOptions  # noqa: E402
from epipolarpose.labelling import LabelOptions, label_poses  # noqa: E402
from footage_bench import FOOTAGE, load_detections, pair_errors, run_header, write_result  # noqa: E402

FOLDERS = ("caliscope_charuco_calibration", "caliscope_post_optimization")
FOVS = (50.0, 60.0, 75.0, 90.0)


def one(folder: str, cache: Path, fov: float) -> dict[str, Any]:
    """The run without K started from ``fov``: errors against the lab rig and the focal lengths."""
    p2, _ = load_detections(FOOTAGE / folder, cache)
    lab = Rig.load(FOOTAGE / folder / "rig.json")
    K = np.stack([default_intrinsics(tuple(int(v) for v in s), fov) for s in p2.image_size])
    q = replace(p2, K=K, dist=np.zeros((len(K), 5)), extra=dict(p2.extra))
    t0 = time.perf_counter()
    res = label_poses(q, options=LabelOptions(calibration=CalibrationOptions(refine_focal=True)))
    return {
        "start_focal_px": float(K[0, 0, 0]),
        "rotation": pair_errors(res.rig, lab)["rotation"],
        "focal_px": [round(float(c.K[0, 0])) for c in res.rig],
        "lab_focal_px": [round(float(c.K[0, 0])) for c in lab],
        "seconds": time.perf_counter() - t0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache", type=Path, required=True, help="footage_bench.py's detection cache")
    ap.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent / "results" / "focal_start.json"
    )
    args = ap.parse_args()
    t0 = time.perf_counter()
    runs = {f: {f"{fov:g}deg": one(f, args.cache, fov) for fov in FOVS} for f in FOLDERS}
    summary = {
        f: {k: [round(v["rotation"]["max"], 2), round(v["rotation"]["mean"], 2)] for k, v in r.items()}
        for f, r in runs.items()
    }
    result = {
        **run_header("focal_start"),
        "summary_max_mean_deg": summary,
        "runs": runs,
        "seconds": time.perf_counter() - t0,
    }
    write_result(result, args.out, shown={k: v for k, v in result.items() if k != "runs"})


if __name__ == "__main__":
    main()
