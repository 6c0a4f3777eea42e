"""Intrinsics from a board the cameras filmed, on real footage: how close to the lab's, and what
they do for the self-calibrated rig (``epipolarpose intrinsics``). Prints JSON.

For both caliscope sessions of ``../shared/data/footage`` (4 webcams, the same cameras in both; a
ChArUco board of 4 x 5 squares, DICT_4X4_1000, white on black, held and turned by the seated man
in part of the clip): :func:`epipolarpose.intrinsics.calibrate_intrinsics` on the session's own
videos, for every model (``radial``: the default, ``full``: OpenCV's default model, ``pinhole``),
and per camera the focal length's error against the lab's (caliscope's own intrinsic
calibration: 33-39 board views per camera), the principal point's distance from the lab's, the
fit's RMS and standard deviations. Then ``label_poses`` (what ``label --intrinsics K.json``
runs, on the benchmark's cached MediaPipe detections) with: no intrinsics (the default 60° field
of view, refined), the board's intrinsics from the same session, the board's intrinsics from the
OTHER session (the realistic use: a board filmed once, at another time), and the lab's; each
rig's relative rotation errors against the lab rig (mean and max over the 6 pairs, degrees) and
the ratios of the board's mean to the lab intrinsics' and to none.

    python benchmarks/intrinsics_bench.py [--cache /work/cache/footage]
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

from epipolarpose.camera import Camera, Rig  # noqa: E402
from epipolarpose.errors import InputError  # noqa: E402
from epipolarpose.geometry.observations import apply_intrinsics  # noqa: E402
from epipolarpose.intrinsics import MODELS, Board, IntrinsicsOptions, calibrate_intrinsics  # noqa: E402
from epipolarpose.labelling import LabelOptions, label_poses  # noqa: E402
from footage_bench import FOOTAGE, load_detections, pair_errors, run_header, write_result  # noqa: E402

FOLDERS = ("caliscope_charuco_calibration", "caliscope_post_optimization")
BOARD = Board(kind="charuco", squares=(4, 5), marker_ratio=0.75, dictionary="DICT_4X4_1000")


def _rig(report: Any) -> Rig:
    return Rig([Camera(K=c.K, dist=c.dist, image_size=c.image_size, name=c.name) for c in report.cameras])


def _label(p2: Any, lab: Rig, intrinsics: Rig | None) -> dict[str, Any]:
    q = apply_intrinsics(p2, intrinsics) if intrinsics is not None else replace(p2, K=None, dist=None)
    t0 = time.perf_counter()
    try:
        res = label_poses(q, options=LabelOptions())
    except InputError as e:
        return {"outcome": "refused", "error": str(e)}
    e = pair_errors(res.rig, lab)["rotation"]
    return {
        "outcome": "rig",
        "rotation_mean_deg": e["mean"],
        "rotation_max_deg": e["max"],
        "seconds": time.perf_counter() - t0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache", type=Path, default=None, help="footage_bench's detection cache")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "intrinsics_bench.json")
    args = ap.parse_args()
    t0 = time.perf_counter()
    fits: dict[str, dict[str, Any]] = {}
    out: dict[str, Any] = {}
    for folder in FOLDERS:
        f = FOOTAGE / folder
        lab = Rig.load(f / "rig.json")
        videos = sorted(f.glob("cam_*.mp4"))
        fits[folder] = {}
        rows: dict[str, Any] = {}
        for model in MODELS:
            t1 = time.perf_counter()
            rep = calibrate_intrinsics(videos, IntrinsicsOptions(board=BOARD, model=model), progress=False)
            sec = time.perf_counter() - t1
            fits[folder][model] = rep
            cams = []
            for c, lc in zip(rep.cameras, lab.cameras):
                cams.append(
                    {
                        **c.as_dict(),
                        "focal_error_pct": 100 * (c.K[0, 0] / lc.K[0, 0] - 1),
                        "principal_point_error_px": float(np.linalg.norm(c.K[:2, 2] - lc.K[:2, 2])),
                        "lab_focal_px": float(lc.K[0, 0]),
                        "lab_principal_px": lc.K[:2, 2].tolist(),
                        "lab_dist": lc.dist.tolist(),
                    }
                )
            rows[model] = {
                "seconds": sec,
                "cameras": cams,
                "focal_error_pct_abs_mean": float(np.mean([abs(c["focal_error_pct"]) for c in cams])),
                "principal_point_error_px_mean": float(
                    np.mean([c["principal_point_error_px"] for c in cams])
                ),
            }
        out[folder] = {"fits": rows}
    for folder in FOLDERS:
        f = FOOTAGE / folder
        lab = Rig.load(f / "rig.json")
        p2, _ = load_detections(f, args.cache)
        other = next(o for o in FOLDERS if o != folder)
        rigs: dict[str, Any] = {"none": _label(p2, lab, None), "lab": _label(p2, lab, lab)}
        for model in MODELS:
            rigs[f"board_{model}_same_session"] = _label(p2, lab, _rig(fits[folder][model]))
            rigs[f"board_{model}_other_session"] = _label(p2, lab, _rig(fits[other][model]))
        ratios = {}
        for k, v in rigs.items():
            if k.startswith("board") and v["outcome"] == "rig":
                ratios[k] = {
                    "over_lab_intrinsics": v["rotation_mean_deg"] / rigs["lab"]["rotation_mean_deg"],
                    "over_no_intrinsics": v["rotation_mean_deg"] / rigs["none"]["rotation_mean_deg"],
                }
        out[folder]["label"] = rigs
        out[folder]["ratios_of_mean_rotation_error"] = ratios
    result = {
        **run_header("intrinsics"),
        "board": {
            "squares": list(BOARD.squares),
            "dictionary": BOARD.dictionary,
            "marker_ratio": BOARD.marker_ratio,
        },
        "folders": out,
        "seconds": time.perf_counter() - t0,
    }
    shown = {k: v for k, v in result.items() if k != "folders"} | {
        "summary": {
            fo: {
                "fits": {
                    m: {k: r[k] for k in ("focal_error_pct_abs_mean", "principal_point_error_px_mean")}
                    for m, r in v["fits"].items()
                },
                "label": {
                    k: (round(r["rotation_mean_deg"], 2), round(r["rotation_max_deg"], 2))
                    if r["outcome"] == "rig"
                    else r["outcome"]
                    for k, r in v["label"].items()
                },
            }
            for fo, v in out.items()
        }
    }
    result["summary"] = shown["summary"]
    write_result(result, args.out, shown=shown)


if __name__ == "__main__":
    main()
