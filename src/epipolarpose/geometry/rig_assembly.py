"""Absolute camera poses from pairwise ones: which relative rotations agree (a consensus over
spanning trees of the camera graph), chordal rotation averaging, camera positions from pairwise
directions or from common points, and the gauge (camera 0's frame, unit first baseline)."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np

from .alignment import rotation_angle_deg
from .numeric import project_to_so3, skew

__all__ = [
    "AveragedRotations",
    "average_rotations",
    "consistent_pairs",
    "normalize_gauge",
    "robust_rotation_averaging",
    "translations_from_directions",
    "translations_from_points",
]


def average_rotations(
    C: int, pairs: list[tuple[int, int]], R_rel: np.ndarray, weights: np.ndarray | None = None
) -> np.ndarray:
    """Chordal L2 rotation averaging: rotations ``R_c`` (camera 0 = I) with ``R_j ≈ R_ij R_i``.

    Args:
        C: number of cameras; pairs: list of (i, j); R_rel: (P, 3, 3) with ``x_j = R_ij x_i + t``.
        weights: (P,) pair weights (default 1).
    Returns:
        (C, 3, 3) world(=camera 0) -> camera rotations.
    """
    w = np.ones(len(pairs)) if weights is None else np.asarray(weights, dtype=np.float64)
    Q = np.zeros((3 * C, 3 * C))
    deg = np.zeros(C)
    for (i, j), Rij, wk in zip(pairs, R_rel, w):
        Q[3 * j : 3 * j + 3, 3 * i : 3 * i + 3] += wk * Rij
        Q[3 * i : 3 * i + 3, 3 * j : 3 * j + 3] += wk * Rij.T
        deg[i] += wk
        deg[j] += wk
    for c in range(C):
        Q[3 * c : 3 * c + 3, 3 * c : 3 * c + 3] += deg[c] * np.eye(3)
    _, V = np.linalg.eigh(Q)
    U = V[:, -3:].reshape(C, 3, 3)
    if np.sum(np.linalg.det(U) > 0) < C / 2:
        U = -U
    Rs = project_to_so3(U)
    return Rs @ Rs[0].T


def _tree_rotations(C: int, tree: list[tuple[int, int]], R_rel: list[np.ndarray]) -> np.ndarray | None:
    """Absolute rotations (camera 0 = I) chained along a spanning tree; None if not spanning."""
    Rs: list[np.ndarray | None] = [None] * C
    Rs[0] = np.eye(3)
    todo = list(zip(tree, R_rel))
    while todo:
        rest = []
        for (i, j), Rij in todo:
            if Rs[i] is not None and Rs[j] is None:
                Rs[j] = Rij @ Rs[i]
            elif Rs[j] is not None and Rs[i] is None:
                Rs[i] = Rij.T @ Rs[j]
            elif Rs[i] is None:
                rest.append(((i, j), Rij))
        if len(rest) == len(todo):
            return None
        todo = rest
    return np.stack(Rs) if all(R is not None for R in Rs) else None


def _find(parent: list[int], a: int) -> int:
    """Union-find root with path halving."""
    while parent[a] != a:
        parent[a] = parent[parent[a]]
        a = parent[a]
    return a


def consistent_pairs(
    C: int,
    pairs: list[tuple[int, int]],
    R_rel: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    threshold_deg: float = 3.0,
    max_trees: int = 300,
    seed: int = 0,
) -> np.ndarray:
    """Which relative rotations agree with each other: a consensus over spanning trees.

    Every spanning tree of the camera graph (all of them for small rigs, ``max_trees`` random
    ones otherwise) gives absolute rotations by chaining; the tree whose rotations explain the
    largest weight of pairs within ``threshold_deg`` wins (ties: smaller total residual). One bad
    pair (e.g. a flipped solution of the two-view bas-relief ambiguity) then cannot spoil the rig.

    Returns:
        (P,) bool, the pairs consistent with the winning tree.
    """
    P = len(pairs)
    w = np.ones(P) if weights is None else np.asarray(weights, dtype=np.float64)
    trees: list[tuple[int, ...]] = []
    if P <= 12:
        trees = list(combinations(range(P), C - 1))
    else:
        rng = np.random.default_rng(seed)
        for _ in range(max_trees):
            parent = list(range(C))
            tree = []
            for k in rng.permutation(P):
                a, b = _find(parent, pairs[k][0]), _find(parent, pairs[k][1])
                if a != b:
                    parent[a] = b
                    tree.append(int(k))
            trees.append(tuple(tree))
    best, best_key = None, None
    for tree in trees:
        Rs = _tree_rotations(C, [pairs[k] for k in tree], [R_rel[k] for k in tree])
        if Rs is None:
            continue
        resid = np.array([rotation_angle_deg(Rs[j] @ Rs[i].T, Rr) for (i, j), Rr in zip(pairs, R_rel)])
        ok = resid <= threshold_deg
        key = (float(w[ok].sum()), -float(np.minimum(resid, threshold_deg).sum()))
        if best_key is None or key > best_key:
            best, best_key = ok, key
    if best is None:
        return np.ones(P, bool)
    return best


@dataclass
class AveragedRotations:
    """Result of :func:`robust_rotation_averaging`.

    Attributes:
        R: (C, 3, 3) world (= camera 0) -> camera rotations.
        keep: (P,) bool, the pairs that were averaged.
        residual_deg: (P,) angle between every pair's relative rotation and the averaged one.
    """

    R: np.ndarray
    keep: np.ndarray
    residual_deg: np.ndarray


def robust_rotation_averaging(
    C: int, pairs: list[tuple[int, int]], R_rel: np.ndarray, weights: np.ndarray
) -> AveragedRotations:
    """Rotation averaging that leaves out the pairs that disagree.

    The pairs consistent with a spanning-tree consensus (:func:`consistent_pairs`) are averaged
    (:func:`average_rotations`); pairs whose residual exceeds ``max(3 x median, 2°)`` are dropped and
    the average is redone (at most 3 times, and never so that a camera loses all its pairs).

    Args:
        C: cameras; pairs: P pairs (i, j); R_rel: (P, 3, 3) with ``x_j = R_ij x_i + t``;
        weights: (P,) pair weights.
    """
    keep = consistent_pairs(C, pairs, R_rel, weights)
    for _ in range(3):
        kept = [p for p, k in zip(pairs, keep) if k]
        Rs = average_rotations(C, kept, R_rel[keep], weights[keep])
        resid = np.array([rotation_angle_deg(Rs[j] @ Rs[i].T, Rr) for (i, j), Rr in zip(pairs, R_rel)])
        new_keep = resid <= max(3 * np.median(resid), 2.0)
        covered = all(any(c in p for p, k in zip(pairs, new_keep) if k) for c in range(C))
        if np.array_equal(new_keep, keep) or not covered:
            break
        keep = new_keep
    return AveragedRotations(Rs, keep, resid)


def translations_from_directions(
    Rs: np.ndarray, pairs: list[tuple[int, int]], dirs: np.ndarray, weights: np.ndarray | None = None
) -> np.ndarray:
    """Camera translations (camera 0 at the origin, ``|t_1| = 1``) from pairwise directions.

    With rotations known, ``t_ij = t_j - R_ij t_i`` must be parallel to the measured unit direction
    ``d_ij``: ``[d_ij]x (t_j - R_ij t_i) = 0``, a homogeneous linear system in ``t_1..t_{C-1}``
    solved by SVD; the sign makes the directions agree.

    Args:
        Rs: (C, 3, 3); pairs: P pairs (i, j); dirs: (P, 3) unit ``t_ij``; weights: (P,).
    Returns:
        (C, 3).
    """
    C = len(Rs)
    w = np.ones(len(pairs)) if weights is None else np.asarray(weights, dtype=np.float64)
    rows = []
    for (i, j), d, wk in zip(pairs, dirs, w):
        A = np.zeros((3, 3 * C))
        S = skew(d)
        Rij = Rs[j] @ Rs[i].T
        A[:, 3 * j : 3 * j + 3] += S
        A[:, 3 * i : 3 * i + 3] -= S @ Rij
        rows.append(np.sqrt(wk) * A)
    A = np.concatenate(rows)[:, 3:]  # camera 0 fixed at t = 0
    _, sv, Vt = np.linalg.svd(A)
    t = np.concatenate([np.zeros(3), Vt[-1]]).reshape(C, 3)
    agree = sum(float(d @ (t[j] - (Rs[j] @ Rs[i].T) @ t[i])) for (i, j), d in zip(pairs, dirs))
    if agree < 0:
        t = -t
    n = np.linalg.norm(t[1]) if C > 1 else 1.0
    return t / max(n, 1e-12)


def translations_from_points(Rs: np.ndarray, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Camera translations from known rotations and 2D observations of common points (linear).

    Every observation gives ``[x̃_cp]x (R_c X_p + t_c) = 0`` (x̃ homogeneous, normalized), linear
    in the points and translations together. The points are eliminated (Schur complement of the
    normal equations, 3x3 per point) and the translations are the smallest eigenvector of the
    remaining ``3(C-1)``-square system (camera 0 at the origin), signed so that points lie in
    front of the cameras, scaled to ``|t_1| = 1``. Uses all correspondences of all cameras at once,
    so it needs no pairwise baseline directions.

    Args:
        Rs: (C, 3, 3) rotations; x: (C, N, 2) normalized points (NaN where unobserved);
        w: (C, N) weights (0 = unobserved).
    Returns:
        (C, 3).
    """
    C = len(Rs)
    ok = np.isfinite(x).all(-1) & (w > 0)
    keep = ok.sum(0) >= 2
    x, w, ok = x[:, keep], np.where(ok, w, 0.0)[:, keep], ok[:, keep]
    h = np.concatenate([np.where(ok[..., None], x, 0.0), np.ones(x.shape[:-1] + (1,))], -1)
    S = skew(h) * np.sqrt(w)[..., None, None]  # (C, N, 3, 3): B = [x]x
    A = S @ Rs[:, None]  # (C, N, 3, 3): A = [x]x R_c
    Mpp = np.einsum("cnki,cnkj->nij", A, A)
    Mpt = np.einsum("cnki,cnkj->cnij", A, S)  # AᵀB
    Mtt = np.einsum("cnki,cnkj->cij", S, S)
    Minv = np.linalg.inv(Mpp + 1e-12 * np.eye(3))
    G = np.einsum("nij,dnjk->dnik", Minv, Mpt)  # M_pp⁻¹ M_pt[d]
    Sc = -np.einsum("cnji,dnjk->cdik", Mpt, G)  # (C, C, 3, 3)
    Sc[np.arange(C), np.arange(C)] += Mtt
    Sm = Sc.transpose(0, 2, 1, 3).reshape(3 * C, 3 * C)[3:, 3:]
    _, V = np.linalg.eigh(0.5 * (Sm + Sm.T))
    t = np.concatenate([np.zeros(3), V[:, 0]]).reshape(C, 3)
    X = -np.einsum("dnik,dk->ni", G, t)  # points for this t
    depth = np.einsum("cij,nj->cn", Rs, X) + t[:, 2:3]
    if np.sum(np.sign(depth[:, :][ok]) * 1.0) < 0:
        t = -t
    return t / max(np.linalg.norm(t[1]), 1e-12)


def normalize_gauge(
    R: np.ndarray, t: np.ndarray, X: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, float]:
    """Express a rig (R (C, 3, 3), t (C, 3), points X (N, 3)) in camera 0's frame with ``|t_1| = 1``;
    returns ``R, t, X, scale``."""
    R0, t0 = R[0], t[0]
    Rn = R @ R0.T
    tn = t - np.einsum("cij,j->ci", Rn, t0)
    s = 1.0 / max(np.linalg.norm(tn[1]), 1e-12) if len(R) > 1 else 1.0
    tn = tn * s
    Xn = None if X is None else s * (X @ R0.T + t0)
    return Rn, tn, Xn, s
