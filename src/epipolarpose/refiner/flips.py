"""Limb flips: the monocular depth ambiguity of limb bones, applied and detected.

A limb bone (:data:`~epipolarpose.skeleton.LIMB_BONES`) is *flipped* when its depth extent is
reflected about its parent joint (the whole sub-chain moves along). Poses are camera-frame
(x right, y down, z depth), (..., 17, 3), any units.
"""

from __future__ import annotations

import numpy as np

from ..skeleton import LIMB_BONES, PARENTS

__all__ = ["detect_limb_flips", "flip_limbs", "limb_flip_eligible", "subtree_matrix"]


def subtree_matrix(parents: np.ndarray = PARENTS) -> np.ndarray:
    """(J, J) bool: ``m[c, j]`` is True if joint ``j`` is ``c`` or one of its descendants."""
    J = len(parents)
    m = np.eye(J, dtype=bool)
    for j in range(J):
        p = parents[j]
        while p >= 0:
            m[p, j] = True
            p = parents[p]
    return m


_SUBTREE = subtree_matrix()


def flip_limbs(poses: np.ndarray, flips: np.ndarray) -> np.ndarray:
    """Reflect the depth (z) of chosen limb bones about their parent joints.

    Args:
        poses: (..., 17, 3) camera-frame poses.
        flips: (..., 8) bool, one flag per bone of :data:`LIMB_BONES`.
    Returns:
        (..., 17, 3) poses; the flipped bone's child and its descendants move by ``-2 dz`` in z,
        so every other bone vector is unchanged.
    """
    dz = poses[..., LIMB_BONES[:, 1], 2] - poses[..., LIMB_BONES[:, 0], 2]  # (..., 8)
    shift = np.where(flips, -2.0 * dz, 0.0) @ _SUBTREE[LIMB_BONES[:, 1]].astype(np.float64)  # (..., J)
    out = np.array(poses, dtype=np.float64, copy=True)
    out[..., 2] += shift
    return out


def limb_flip_eligible(poses: np.ndarray, min_depth_fraction: float = 0.25) -> np.ndarray:
    """(..., 17, 3) -> (..., 8) bool: limb bones whose depth extent is at least
    ``min_depth_fraction`` of their length (flips of the others are indistinguishable from noise)."""
    d = poses[..., LIMB_BONES[:, 1], :] - poses[..., LIMB_BONES[:, 0], :]
    return np.abs(d[..., 2]) >= min_depth_fraction * np.linalg.norm(d, axis=-1)


def detect_limb_flips(
    pred: np.ndarray, gt: np.ndarray, min_depth_fraction: float = 0.25, iterations: int = 100
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Limb bones of ``pred`` whose depth is reflected with respect to ``gt``, and the flip rates.

    Among bones eligible in ``gt`` (:func:`limb_flip_eligible`), the predicted depth extent
    ``dz_p`` of each bone is modelled as a two-component mixture: ``dz_p = a dz_g + mu + n``
    (kept) or ``dz_p = -a dz_g + mu + n`` (flipped, probability ``r``), ``n ~ N(0, sigma^2)``,
    with ``r, a, mu, sigma`` per bone fitted by EM. The slope ``a`` absorbs depth shrinkage: a
    network that predicts depths at 40 % of their true extent has ``a = 0.4``; with ``a`` fixed at
    1 such shrunk bones sit between the two hypotheses and EM splits them arbitrarily. A bone is
    flipped where the posterior of the flipped component exceeds 1/2, i.e. where reflecting the
    ground-truth depth fits better given the noise level. The rate is the EM mixture weight,
    which, unlike counting sign disagreements, is not inflated by depth noise. Bones whose slope
    stays below 0.1 carry too little depth to tell a flip from noise and get rate 0.

    Args:
        pred, gt: (N, 17, 3) camera-frame poses.
    Returns:
        ``(flipped (N, 8) bool, eligible (N, 8) bool, flip_rate (8,))``.
    """
    eligible = limb_flip_eligible(gt, min_depth_fraction)
    dz_p = pred[..., LIMB_BONES[:, 1], 2] - pred[..., LIMB_BONES[:, 0], 2]
    dz_g = gt[..., LIMB_BONES[:, 1], 2] - gt[..., LIMB_BONES[:, 0], 2]
    m = eligible.astype(np.float64)
    n = np.maximum(m.sum(0), 1.0)
    dz_g = np.where(eligible, dz_g, 0.0)
    dz_p = np.where(eligible, dz_p, 0.0)
    # start from the least-squares slope through the origin (flips only lower it)
    a = np.clip((dz_p * dz_g).sum(0) / np.maximum((dz_g**2).sum(0), 1e-12), 0.1, 2.0)
    r = np.full(len(LIMB_BONES), 0.05)
    mu = np.zeros(len(LIMB_BONES))
    med = np.nanmedian(np.where(eligible, np.abs(dz_p - a * dz_g), np.nan), 0)
    sigma = np.maximum(np.nan_to_num(1.4826 * med, nan=1.0), 1e-6)
    w = np.zeros_like(dz_p)
    keep, flip = dz_p - a * dz_g, dz_p + a * dz_g  # residual under each hypothesis (before mu)
    for _ in range(iterations):
        # log-likelihood ratio flipped : kept
        llr = np.log(np.maximum(r, 1e-12) / np.maximum(1 - r, 1e-12)) - (
            (flip - mu) ** 2 - (keep - mu) ** 2
        ) / (2 * sigma**2)
        w = m / (1 + np.exp(-np.clip(llr, -50, 50)))
        r = np.clip(w.sum(0) / n, 0.0, 1.0)
        # weighted least squares for (a, mu): dz_p = a * sign * dz_g + mu, sign = +1 / -1
        x = (m - 2 * w) * dz_g  # sum over the two components of weight * sign * dz_g
        sxx, sx = (m * dz_g**2).sum(0), x.sum(0)
        sxy, sy = (x * dz_p).sum(0), (m * dz_p).sum(0)
        det = sxx * n - sx**2
        a = np.where(det > 1e-12, (sxy * n - sx * sy) / np.maximum(det, 1e-12), a)
        a = np.clip(a, 0.0, 2.0)
        mu = (sy - a * sx) / n
        keep, flip = dz_p - a * dz_g, dz_p + a * dz_g
        var = ((m - w) * (keep - mu) ** 2 + w * (flip - mu) ** 2).sum(0) / n
        sigma = np.sqrt(np.maximum(var, 1e-12))
    identifiable = eligible.any(0) & (a >= 0.1)
    r = np.where(identifiable, r, 0.0)
    return eligible & identifiable & (w > 0.5 * m), eligible, r
