"""Pose Structure Score (PSS, Kocabas et al., CVPR 2019, Sec. 3.4).

MPJPE averages joint distances and cannot tell a pose that is slightly off everywhere from one with
a limb bent the wrong way. PSS asks instead whether a prediction has the same *structure* as its
ground truth:

1. every pose is normalised: root-centred (joint 0) and scaled to unit ℓ2 norm over all its
   coordinates (:func:`normalize_poses`, exactly as in the paper);
2. k-means (k = 50 and 100 in the paper) on the normalised ground-truth poses of a training set
   gives ``k`` centroids, the "pose structures" (:meth:`PSSModel.fit`);
3. ``PSS@k`` is the fraction of predictions whose nearest centroid equals that of their ground
   truth (:meth:`PSSModel.score`).

NaN handling: a ground-truth pose with any NaN joint cannot be assigned and is left out of the
score; a *prediction* with any NaN joint (a joint that was not estimated) counts as a miss, since
its structure is unknown. :meth:`PSSModel.score_details` reports both counts.

k-means: :meth:`PSSModel.fit` uses scikit-learn's ``KMeans`` (Lloyd, k-means++ init) up to
``minibatch_above`` poses (default 200 000) and ``MiniBatchKMeans`` beyond; see
``BENCHMARKS.md`` for the timings and inertia that motivate this choice.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError
from .formats import open_npz
from .io import save_npz
from .parallel import thread_map
from .skeleton import ROOT, default_joint_names

NORMALIZATION = "root-centred (joint 0), unit l2 norm over all joints (Kocabas et al. 2019)"
_FILE_KIND = "epipolarpose-pss-centroids"


def normalize_poses(poses: np.ndarray, root: int = ROOT) -> np.ndarray:
    """Root-centre poses and scale each to unit ℓ2 norm over all its coordinates.

    Args:
        poses: (..., J, 3) poses in any units.
        root: index of the root joint.
    Returns:
        (..., J*3) float64 normalised, flattened poses; NaN rows stay NaN, all-zero poses stay 0.
    """
    poses = np.asarray(poses, dtype=np.float64)
    x = poses - poses[..., root : root + 1, :]
    flat = x.reshape(x.shape[:-2] + (-1,))
    n = np.linalg.norm(flat, axis=-1, keepdims=True)
    return flat / np.where(n == 0, 1.0, n)  # a NaN norm makes the whole row NaN


@dataclass(frozen=True)
class KMeansOptions:
    """How :meth:`PSSModel.fit` runs k-means.

    Attributes:
        n_init: restarts (best inertia kept).
        max_iter: maximum iterations.
        minibatch_above: use ``MiniBatchKMeans`` when more than this many poses are given.
    """

    n_init: int = 1
    max_iter: int = 300
    minibatch_above: int = 200_000


@dataclass
class PSSModel:
    """Pose-structure centroids for PSS@k.

    Attributes:
        centroids: (k, J*3) normalised pose centroids (see :func:`normalize_poses`).
        joint_names: the J joint names of the poses the centroids were fitted on (default:
            Human3.6M-17 names for 51 columns, ``joint0..`` otherwise).
        normalization: description of the normalisation (recorded in saved files).
        n_train: number of poses the centroids were fitted on (0 if unknown).
    """

    centroids: np.ndarray
    joint_names: list[str] | None = None
    normalization: str = NORMALIZATION
    n_train: int = 0

    def __post_init__(self) -> None:
        self.centroids = np.asarray(self.centroids, dtype=np.float64)
        if self.joint_names is None and self.centroids.ndim == 2 and self.centroids.shape[1] % 3 == 0:
            self.joint_names = default_joint_names(self.centroids.shape[1] // 3)
        if (
            self.joint_names is None
            or self.centroids.ndim != 2
            or self.centroids.shape[1] != 3 * len(self.joint_names)
        ):
            raise InputError(
                f"PSS centroids have shape {self.centroids.shape}, expected (k, 3 * J) for the "
                f"{len(self.joint_names or [])} joint names given"
            )
        self.joint_names = [str(n) for n in self.joint_names]
        self._half_sq = 0.5 * (self.centroids**2).sum(-1)

    @property
    def k(self) -> int:
        """Number of centroids."""
        return int(self.centroids.shape[0])

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    # --- fitting ------------------------------------------------------------------------------
    @classmethod
    def fit(
        cls,
        poses: np.ndarray,
        *,
        k: int = 50,
        seed: int = 0,
        joint_names: list[str] | None = None,
        kmeans: KMeansOptions = KMeansOptions(),
    ) -> PSSModel:
        """k-means on normalised ground-truth poses.

        Args:
            poses: (N, J, 3) ground-truth poses (any units; poses with NaN are skipped).
            k: number of clusters.
            seed: random seed (results are reproducible for a given seed).
            joint_names: the J joint names (default Human3.6M-17 names / ``joint0..``).
            kmeans: restarts, iterations and the switch to mini-batches.
        """
        from sklearn.cluster import KMeans, MiniBatchKMeans

        poses = np.asarray(poses, dtype=np.float64)
        if poses.ndim != 3 or poses.shape[-1] != 3:
            raise InputError(f"PSS fit: poses must be (N, J, 3), got {poses.shape}")
        ok = np.isfinite(poses).all((-1, -2))
        x = normalize_poses(poses[ok])
        n_unique = len(np.unique(x.round(6), axis=0)) if len(x) <= 4 * k else len(x)
        if n_unique < k:
            raise InputError(
                f"PSS fit: need at least k={k} distinct finite poses, got {n_unique} "
                f"({int((~ok).sum())} poses with NaN skipped)"
            )
        n_init, max_iter = kmeans.n_init, kmeans.max_iter
        if len(x) > kmeans.minibatch_above:
            km = MiniBatchKMeans(
                n_clusters=k, random_state=seed, n_init=n_init, max_iter=max_iter, batch_size=4096
            )
        else:
            km = KMeans(n_clusters=k, random_state=seed, n_init=n_init, max_iter=max_iter)
        km.fit(x)
        names = joint_names if joint_names is not None else default_joint_names(poses.shape[1])
        return cls(km.cluster_centers_, joint_names=list(names), n_train=len(x))

    # --- assignment and scoring ---------------------------------------------------------------
    def _check_joints(self, poses: np.ndarray, what: str) -> None:
        if poses.ndim < 2 or poses.shape[-2:] != (self.num_joints, 3):
            raise InputError(
                f"PSS: {what} has shape {poses.shape}, expected (..., {self.num_joints}, 3) "
                f"for these centroids"
            )

    def assign(self, poses: np.ndarray, chunk: int = 8192) -> np.ndarray:
        """Nearest centroid of every pose.

        Args:
            poses: (..., J, 3) poses (any units; normalised here).
            chunk: poses per matrix product (bounds memory; ~8k keeps it in cache).
        Returns:
            (...,) int64 centroid index; -1 for poses with any NaN joint.
        """
        poses = np.asarray(poses)
        self._check_joints(poses, "poses")
        batch = poses.shape[:-2]
        flat = poses.reshape(-1, self.num_joints, 3)
        out = np.full(flat.shape[0], -1, dtype=np.int64)
        ct = self.centroids.T

        def one(a: int) -> None:  # chunks on threads (numpy releases the GIL)
            p = flat[a : a + chunk].astype(np.float64)
            y = (p - p[:, ROOT : ROOT + 1]).reshape(len(p), -1)
            n = np.sqrt(np.einsum("ij,ij->i", y, y))
            ok = np.isfinite(n)
            n = np.where(n > 0, n, 1.0)[ok]
            # argmin |x - c|² = argmax (x·c - |c|²/2) with x = y / |y|
            sim = (y[ok] @ ct) / n[:, None] - self._half_sq
            out[a : a + chunk][ok] = sim.argmax(-1)

        thread_map(one, range(0, flat.shape[0], chunk))
        return out.reshape(batch)

    def score_details(self, pred: np.ndarray, gt: np.ndarray) -> dict[str, float | int]:
        """PSS@k with counts: ``{"pss", "k", "n_scored", "n_gt_nan", "n_pred_nan"}``.

        Args:
            pred: (..., J, 3) predictions.
            gt: (..., J, 3) ground truth, same shape.
        """
        pred, gt = np.asarray(pred), np.asarray(gt)
        if pred.shape != gt.shape:
            raise InputError(f"PSS: prediction shape {pred.shape} != ground-truth shape {gt.shape}")
        a_gt = self.assign(gt).reshape(-1)
        a_pred = self.assign(pred).reshape(-1)
        scored = a_gt >= 0
        n = int(scored.sum())
        pss = float((a_pred[scored] == a_gt[scored]).mean()) if n else float("nan")
        return {
            "pss": pss,
            "k": self.k,
            "n_scored": n,
            "n_gt_nan": int((~scored).sum()),
            "n_pred_nan": int((scored & (a_pred < 0)).sum()),
        }

    def score(self, pred: np.ndarray, gt: np.ndarray) -> float:
        """PSS@k: fraction of predictions (..., J, 3) whose nearest centroid equals their ground
        truth's (..., J, 3). NaN handling: see the module docstring. NaN if no GT pose is finite."""
        return float(self.score_details(pred, gt)["pss"])

    # --- files -------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Write ``.npz`` (atomic) with ``centroids``, ``k``, ``joint_names``, ``normalization``."""
        save_npz(
            path,
            kind=np.array(_FILE_KIND),
            centroids=self.centroids.astype(np.float64),
            k=np.int64(self.k),
            joint_names=np.array(self.joint_names),
            normalization=np.array(self.normalization),
            n_train=np.int64(self.n_train),
        )

    @classmethod
    def load(cls, path: str | os.PathLike) -> PSSModel:
        """Read and validate a file written by :meth:`save`."""
        path = Path(path)
        d = open_npz(path)
        for key in ("centroids", "k", "joint_names", "normalization"):
            if key not in d:
                raise InputError(f"{path}: not a PSS centroid file (missing key {key!r})")
        c = d["centroids"]
        names = [str(n) for n in d["joint_names"]]
        if c.ndim != 2 or c.shape[0] != int(d["k"]) or c.shape[1] != 3 * len(names):
            raise InputError(
                f"{path}: 'centroids' has shape {c.shape}, expected (k={int(d['k'])}, {3 * len(names)})"
            )
        if not np.isfinite(c).all():
            raise InputError(f"{path}: 'centroids' contains NaN or inf")
        if str(d["normalization"]) != NORMALIZATION:
            raise InputError(
                f"{path}: centroids use normalization {str(d['normalization'])!r}, "
                f"this version expects {NORMALIZATION!r}"
            )
        return cls(c, joint_names=names, n_train=int(d.get("n_train", 0)))
