"""Small linear-algebra helpers shared by the geometry modules (a leaf: imports only numpy)."""

from __future__ import annotations

import numpy as np

__all__ = ["project_to_so3", "skew"]


def skew(v: np.ndarray) -> np.ndarray:
    """Cross-product matrices ``[v]x``: (..., 3) -> (..., 3, 3)."""
    v = np.asarray(v, dtype=np.float64)
    z = np.zeros(v.shape[:-1])
    return np.stack(
        [
            np.stack([z, -v[..., 2], v[..., 1]], -1),
            np.stack([v[..., 2], z, -v[..., 0]], -1),
            np.stack([-v[..., 1], v[..., 0], z], -1),
        ],
        -2,
    )


def project_to_so3(M: np.ndarray) -> np.ndarray:
    """Nearest rotations (Frobenius) of (..., 3, 3) matrices."""
    U, _, Vt = np.linalg.svd(M)
    d = np.sign(np.linalg.det(U @ Vt))
    return U @ (np.concatenate([np.ones(d.shape + (2,)), d[..., None]], -1)[..., :, None] * Vt)
