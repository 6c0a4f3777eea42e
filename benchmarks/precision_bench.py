"""How well a self-calibrated rig's precision bound (``calibration.precision``,
``geometry/precision.py``) tracks its real error, and what the default limits (warn above 1°,
refuse above 3°) do, on synthetic footage where the truth is known (issue #11). Prints JSON.

Synthetic detections (``synthesize``) of the bundled CMU clip (``mocap.DEFAULT_BVH``, 25 fps) in
the Human3.6M S9 cameras of ``synthetic.default_rig()``, with the default detector noise
(``NoiseModel()``: 4 px, 5 % outliers, 2 % swaps, 5 % missing) and with the detector failure modes
(``derived_offset_mm=60, face_on_back=True``), with and without the intrinsics. Cases:

- ``clips``: the 4 cameras on the walk's first 208 / 50 / 20 / 10 / 3 / 1 frames, a person
  standing still for 200 frames (the first pose repeated) and swaying by ±20 mm;
- ``cameras``: 2- and 3-camera subsets on 208 / 100 / 50 / 30 frames (default noise).

Per case: the mean and max over pairs of the relative rotation error against the truth and of the
bound (``calibrate(..., CalibrationOptions(max_uncertainty_deg=None))``), and what the defaults
would do (``ok`` / ``warn`` / ``refuse``). The real-footage counterpart (bound against the lab
calibrations) is in ``footage_bench.py`` (``ours.*.precision``).

    PYTHONPATH=src python benchmarks/precision_bench.py
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from epipolarpose.camera import Rig  # noqa: E402
from epipolarpose.errors import InputError  # noqa: E402
from epipolarpose.geometry.alignment import pairwise_rotation_errors_deg  # noqa: E402
from epipolarpose.geometry.calibration import CalibrationOptions, calibrate  # noqa: E402
from epipolarpose.geometry.precision import precision_verdict  # noqa: E402
from epipolarpose.mocap import DEFAULT_BVH, load_mocap  # noqa: E402
from epipolarpose.synthetic import NoiseModel, default_rig, synthesize  # noqa: E402
from footage_bench import run_header, write_result  # noqa: E402

NOISE = {
    "default": NoiseModel(),
    "failure_modes": NoiseModel(derived_offset_mm=60.0, face_on_back=True),
}
DEFAULTS = CalibrationOptions()


def one_case(motion: np.ndarray, rig: Rig, noise: NoiseModel, with_k: bool) -> dict[str, Any]:
    """Calibrate without any limit, then say what the default limits would have done."""
    p2, _ = synthesize(motion, rig, noise, seed=0)
    if not with_k:
        p2 = replace(p2, K=None, dist=None)
    t0 = time.perf_counter()
    try:
        est, rep = calibrate(p2, CalibrationOptions(max_uncertainty_deg=None))
    except InputError as e:
        return {"outcome": "error", "error": str(e)}
    err, sd = pairwise_rotation_errors_deg(est, rig), rep.precision.rotation_sd_deg
    warning, error = precision_verdict(
        rep.precision, list(p2.camera_names), DEFAULTS.warn_uncertainty_deg, DEFAULTS.max_uncertainty_deg
    )
    return {
        "error_deg": {"mean": float(err.mean()), "max": float(err.max())},
        "bound_deg": {"mean": float(sd.mean()), "max": float(sd.max())},
        "error_over_bound_mean": float(err.mean() / sd.mean()) if sd.mean() > 0 else None,
        "frames": rep.precision.frames,
        "motion": round(rep.precision.motion, 3),
        "default_limits": "refuse" if error else ("warn" if warning else "ok"),
        "seconds": round(time.perf_counter() - t0, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "precision_bench.json")
    args = ap.parse_args()
    walk = load_mocap(DEFAULT_BVH, fps=25).poses
    rig = default_rig()
    still = np.repeat(walk[:1], 200, 0)
    sway = still + 20.0 * np.sin(np.linspace(0, 6, 200))[:, None, None] * np.array([1.0, 0, 0])
    clips = {f"walk_{n}": walk[:n] for n in (len(walk), 50, 20, 10, 3, 1)}
    clips.update(still_200=still, sway_200=sway)
    t0 = time.perf_counter()
    cases: dict[str, Any] = {}
    for name, motion in clips.items():
        for noise in NOISE:
            for with_k in (True, False):
                key = f"{name} / {noise} / {'K' if with_k else 'no K'}"
                cases[key] = one_case(motion, rig, NOISE[noise], with_k)
                print(key, json.dumps(cases[key]), file=sys.stderr, flush=True)
    subsets: dict[str, Any] = {}
    for cams in ([0, 1], [0, 2], [1, 3], [0, 1, 2]):
        sub = Rig([rig.cameras[c] for c in cams])
        for n in (len(walk), 100, 50, 30):
            for with_k in (True, False):
                key = f"cameras {cams} / walk_{n} / {'K' if with_k else 'no K'}"
                subsets[key] = one_case(walk[:n], sub, NOISE["default"], with_k)
                print(key, json.dumps(subsets[key]), file=sys.stderr, flush=True)
    result = {
        **run_header("precision"),
        "limits": {"warn_deg": DEFAULTS.warn_uncertainty_deg, "refuse_deg": DEFAULTS.max_uncertainty_deg},
        "clips": cases,
        "cameras": subsets,
    }
    result["seconds"] = time.perf_counter() - t0
    write_result(result, args.out)


if __name__ == "__main__":
    main()
