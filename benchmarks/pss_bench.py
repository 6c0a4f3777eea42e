"""PSS benchmark: fit k = 50 / 100 centroids on 100k poses, score 1M predictions.

Poses are real motion capture from ``../shared/data/mocap`` (the documented train/test split by
clip: centroids are fitted on train clips, scores computed on test clips), tiled to the wanted
counts with random rotations about the vertical axis (every copy is a different pose for PSS,
which is not rotation invariant). Predictions are the ground truth plus 30 mm Gaussian noise.

Compares ``KMeans`` (Lloyd, k-means++, n_init=1) with ``MiniBatchKMeans`` (batch 4096) on time and
inertia (sum of squared distances of the normalised poses to their centroid; lower is better), and
``PSSModel.assign`` with scikit-learn's ``KMeans.predict`` on the same centroids.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/pss_bench.py [--shared ../shared] [--fit-poses 100000]
        [--score-poses 1000000] [--clip-stride 3]

Prints JSON to stdout and writes ``benchmarks/results/pss_bench.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from epipolarpose.io import save_json
from epipolarpose.mocap import list_shared_clips, load_clips
from epipolarpose.pss import KMeansOptions, PSSModel, normalize_poses

REPO = Path(__file__).resolve().parents[1]


def tile_with_rotations(poses: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """(F, J, 3) -> (n, J, 3): random frames, each rotated about z through its root, float32."""
    idx = rng.integers(0, len(poses), n)
    R = Rotation.from_euler("z", rng.uniform(0, 360, (n, 1)), degrees=True).as_matrix()
    out = np.empty((n,) + poses.shape[1:], dtype=np.float32)
    for a in range(0, n, 200_000):
        p = poses[idx[a : a + 200_000]]
        root = p[:, :1]
        out[a : a + 200_000] = np.einsum("nij,nkj->nki", R[a : a + 200_000], p - root) + root
    return out


def inertia(model: PSSModel, poses: np.ndarray) -> float:
    x = normalize_poses(poses)
    a = model.assign(poses)
    return float(((x - model.centroids[a]) ** 2).sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", default=str(REPO.parent / "shared"))
    ap.add_argument("--fit-poses", type=int, default=100_000)
    ap.add_argument("--score-poses", type=int, default=1_000_000)
    ap.add_argument("--clip-stride", type=int, default=3, help="use every n-th clip of each split")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)

    t = time.perf_counter()
    train_clips = list_shared_clips(args.shared, "train")[:: args.clip_stride]
    test_clips = list_shared_clips(args.shared, "test")[:: args.clip_stride]
    train, _, _ = load_clips(train_clips, fps=30)
    test, _, _ = load_clips(test_clips, fps=30)
    load_s = time.perf_counter() - t
    fit_poses = tile_with_rotations(train, args.fit_poses, rng)
    gt = tile_with_rotations(test, args.score_poses, rng)
    pred = gt + rng.normal(scale=30.0, size=gt.shape).astype(np.float32)

    from sklearn.cluster import KMeans

    results: dict = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}",
        "data": {
            "train_clips": len(train_clips),
            "test_clips": len(test_clips),
            "train_frames": len(train),
            "test_frames": len(test),
            "fit_poses": args.fit_poses,
            "score_poses": args.score_poses,
            "load_s": round(load_s, 2),
        },
        "fit": {},
        "score": {},
    }
    for k in (50, 100):
        models = {}
        for name, threshold in (("kmeans", args.fit_poses + 1), ("minibatch", 0)):
            t = time.perf_counter()
            m = PSSModel.fit(fit_poses, k=k, seed=args.seed, kmeans=KMeansOptions(minibatch_above=threshold))
            dt = time.perf_counter() - t
            models[name] = m
            results["fit"][f"k{k}_{name}"] = {
                "seconds": round(dt, 3),
                "poses_per_s": round(args.fit_poses / dt),
                "inertia": round(inertia(m, fit_poses), 2),
            }
        m = models["kmeans"]
        t = time.perf_counter()
        details = m.score_details(pred, gt)
        dt = time.perf_counter() - t
        # reference: scikit-learn's own nearest-centroid search on the same centroids
        km = KMeans(n_clusters=k)
        km.cluster_centers_ = m.centroids
        km._n_threads = 1 if os.environ.get("OMP_NUM_THREADS") == "1" else os.cpu_count()
        km.n_features_in_ = m.centroids.shape[1]
        t = time.perf_counter()
        ref_gt = km.predict(normalize_poses(gt[:200_000]))
        ref_s = (time.perf_counter() - t) * (2 * args.score_poses / 200_000)
        agree = float((ref_gt == m.assign(gt[:200_000])).mean())
        results["score"][f"k{k}"] = {
            "seconds": round(dt, 3),
            "poses_per_s": round(args.score_poses / dt),
            "pss": round(details["pss"], 4),
            "sklearn_predict_seconds_extrapolated": round(ref_s, 3),
            "speedup_vs_sklearn_predict": round(ref_s / dt, 2),
            "assignment_agreement_with_sklearn": agree,
            "pss_with_minibatch_centroids": round(models["minibatch"].score(pred, gt), 4),
        }
        # PSS of the ground truth itself must be 1
        assert m.score(gt[:10_000], gt[:10_000]) == 1.0
    print(json.dumps(results, indent=1))
    save_json(REPO / "benchmarks/results/pss_bench.json", results)


if __name__ == "__main__":
    main()
