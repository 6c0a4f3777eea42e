"""Sync on real footage: variants of the rig check that were tried and not kept, and whether the
rig check's objective can find the true offsets at all (issue #11). Prints JSON.

Data: the cached MediaPipe detections of ``footage_bench.py --cache DIR`` (run it first) for the two
caliscope sessions; the same shifted-camera draws as ``footage_bench.py --sync-draws 6`` and the
synchronized recording; with and without the lab intrinsics. What ``label --sync auto`` runs
(``labelling.synchronize``) with the rig check's scoring replaced by:

- ``kept``: the library as it is (triangulation error of the mapped joints, median, ``sync.rig_errors``);
- ``native``: the same on the native landmarks (the ones calibration uses);
- ``pnp``: every shift of a camera scored after re-fitting that camera's pose to the others'
  triangulation (``cv2.solvePnPRansac`` + ``solvePnPRefineLM``, native landmarks), so that a pose
  fitted at a wrong offset cannot favour that offset; the zero check as kept;
- ``pnp_zero``: ``pnp`` with its zero check scored the same way.

Per variant: the error found - true of every camera and draw, their sum of absolute values, the
worst, and whether the synchronized recordings give zeros.

``objective`` (post_optimization, the 57-frame session): the rig check's rounds
(``sync._rig_rounds``, self-calibration) started from zero, from the 2D tracks' offsets and from
the TRUE offsets, with their final mean error: where the run started at the truth ends with a higher
error than another start (or drifts away from the truth), no search over that objective recovers
the truth.

    PYTHONPATH=src python benchmarks/sync_variants.py --cache /work/cache/footage
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

import cv2  # noqa: E402
import numpy as np  # noqa: E402

import epipolarpose.labelling as labelling  # noqa: E402
import epipolarpose.sync as S  # noqa: E402
from epipolarpose.camera import Rig  # noqa: E402
from epipolarpose.formats import Poses2D  # noqa: E402
from epipolarpose.geometry.calibration import calibrate, calibration_detections  # noqa: E402
from epipolarpose.geometry.observations import apply_intrinsics  # noqa: E402
from epipolarpose.labelling import LabelOptions, synchronize  # noqa: E402
from footage_bench import FOOTAGE, run_header, shift_cameras, sync_draws, write_result  # noqa: E402

SESSIONS = ("caliscope_charuco_calibration", "caliscope_post_optimization")


def pnp_errors(
    rig: Rig, poses2d: Poses2D, camera: int, shifts: np.ndarray, min_points: int = 50
) -> np.ndarray:
    """Like ``sync.rig_errors`` (median pixels, (S,)), but the camera's pose is re-fitted (PnP) to the
    others' triangulation at every shift."""
    xn, w, Rt, focal, X = S.others_triangulation(rig, poses2d, camera)
    T = w.shape[1]
    rv0 = cv2.Rodrigues(Rt[camera, :, :3])[0]
    out = np.full(len(shifts), np.nan)
    for n, d in enumerate(shifts):
        t = np.arange(max(0, -d), min(T, T - d))
        P, x = X[t + d].reshape(-1, 3), xn[camera, t].reshape(-1, 2)
        ok = np.isfinite(P).all(-1) & np.isfinite(x).all(-1) & (w[camera, t].reshape(-1) > 0)
        if ok.sum() < min_points:
            continue
        P, x = P[ok], x[ok]
        found, rv, tv, inl = cv2.solvePnPRansac(
            P, x, np.eye(3), None, rv0.copy(), Rt[camera, :, 3].reshape(3, 1).copy(), useExtrinsicGuess=True,
            iterationsCount=200, reprojectionError=10 / focal[camera], flags=cv2.SOLVEPNP_ITERATIVE,
        )  # fmt: skip
        if not found or inl is None:
            continue
        rv, tv = cv2.solvePnPRefineLM(P[inl[:, 0]], x[inl[:, 0]], np.eye(3), None, rv, tv)
        proj = cv2.projectPoints(P, rv, tv, np.eye(3), None)[0][:, 0]
        out[n] = float(np.median(np.linalg.norm(proj - x, axis=-1) * focal[camera]))
    return out


KEPT_RIG_ERRORS = S.rig_errors
KEPT_CHECK = labelling.check_with_rig


def use(variant: str) -> None:
    """Switch the rig check's scoring (module attributes; restored by ``use("kept")``)."""
    S.rig_errors = KEPT_RIG_ERRORS
    labelling.check_with_rig = KEPT_CHECK
    if variant == "native":
        labelling.check_with_rig = lambda p, r, cal, o: KEPT_CHECK(calibration_detections(p), r, cal, o)
    elif variant in ("pnp", "pnp_zero"):
        native = lambda p, r, cal, o: KEPT_CHECK(calibration_detections(p), r, cal, o)  # noqa: E731
        labelling.check_with_rig = native
        pnp = lambda rig, p, c, shifts, *a, **k: pnp_errors(rig, p, c, shifts)  # noqa: E731
        if variant == "pnp_zero":
            S.rig_errors = pnp
        else:  # the rounds only: the zero check (two shifts) stays as kept
            S.rig_errors = lambda rig, p, c, shifts, *a, **k: (
                KEPT_RIG_ERRORS(rig, p, c, shifts) if len(shifts) == 2 else pnp_errors(rig, p, c, shifts)
            )


def load(folder: str, cache: Path, with_k: bool) -> Poses2D:
    p2 = Poses2D.load(cache / folder / "poses2d_static.npz")
    lab = Rig.load(FOOTAGE / folder / "rig.json")
    return apply_intrinsics(p2, lab) if with_k else replace(p2, K=None, dist=None, extra=dict(p2.extra))


def shifted(q: Poses2D, o: list[int]) -> tuple[Poses2D, S.SyncOptions]:
    """The detections with cameras shifted by ``o`` and the sync options ``footage_bench`` uses."""
    s = shift_cameras(q, np.array(o))
    return s, S.SyncOptions(max_offset=min(S.SyncOptions().max_offset, s.num_frames - 3))


def variants(cache: Path, draws: list[list[int]]) -> dict:
    out: dict = {}
    for variant in ("kept", "native", "pnp", "pnp_zero"):
        use(variant)
        t0 = time.perf_counter()
        rows, total, worst, zeros = {}, {}, 0, []
        for folder in SESSIONS:
            for with_k in (True, False):
                q = load(folder, cache, with_k)
                errs = []
                for o in [[0, 0, 0, 0], *draws]:
                    s, opts = shifted(q, o)
                    found = synchronize(s, options=LabelOptions(sync=opts)).offsets
                    errs.append((found - np.array(o))[1:].tolist())
                key = f"{folder.split('_')[1]} {'with' if with_k else 'without'} K"
                rows[key] = errs
                total[key] = int(np.abs(errs).sum())
                worst = max(worst, int(np.abs(errs).max()))
                zeros.append(not any(errs[0]))
        out[variant] = {
            "errors_found_minus_true": rows,
            "sum_abs": total,
            "worst": worst,
            "synchronized_zero": f"{sum(zeros)}/{len(zeros)}",
            "seconds": time.perf_counter() - t0,
        }
        print(f"[{variant}] {total} worst {worst} zeros {sum(zeros)}/{len(zeros)}", file=sys.stderr)
    use("kept")
    return out


def objective(cache: Path, draws: list[list[int]]) -> dict:
    folder = "caliscope_post_optimization"
    out: dict = {}
    for with_k in (True, False):
        q = load(folder, cache, with_k)
        rows = []
        for o in [[0, 0, 0, 0], *draws]:
            s, opts = shifted(q, o)
            tracks = S.estimate_offsets(calibration_detections(s), opts)
            opts = replace(opts, max_offset=int(tracks.candidates[-1]))
            memo: dict = {}

            def calibrated(x: Poses2D, memo: dict = memo) -> Rig:
                key = hash(x.keypoints.tobytes())
                if key not in memo:
                    memo[key] = calibrate(x, LabelOptions().calibration)[0]
                return memo[key]

            row: dict = {"true": o}
            for name, start in (
                ("zero", np.zeros(4, int)),
                ("tracks", tracks.offsets),
                ("truth", np.array(o)),
            ):
                found, _, err = S._rig_rounds(s, start, calibrated, opts)
                row[name] = {"error_found_minus_true": (found - np.array(o))[1:].tolist(), "mean_px": err}
            others = min(row["zero"]["mean_px"], row["tracks"]["mean_px"])
            row["truth_start_lower"] = bool(row["truth"]["mean_px"] < others)
            row["truth_start_stays"] = not any(row["truth"]["error_found_minus_true"])
            rows.append(row)
        out[f"{'with' if with_k else 'without'} K"] = rows
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache", type=Path, required=True, help="footage_bench.py's detections cache")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "sync_variants.json")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    draws = sync_draws(4, 6, 0)
    t0 = time.perf_counter()
    result = {
        **run_header("sync_variants"),
        "draws": draws,
        "variants": variants(args.cache, draws),
        "objective": objective(args.cache, draws),
    }
    result["seconds"] = time.perf_counter() - t0
    write_result(result, args.out)


if __name__ == "__main__":
    main()
