"""Small linear-algebra helpers shared by the geometry modules (a leaf: imports only numpy)."""

from __future__ import annotations

import numpy as np

__all__ = ["project_to_so3", "rotvec_to_matrix", "skew"]


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


def rotvec_to_matrix(v: np.ndarray) -> np.ndarray:
    """Rotation matrices of rotation vectors (Rodrigues): (..., 3) -> (..., 3, 3)."""
    v = np.asarray(v, dtype=np.float64)
    theta = np.linalg.norm(v, axis=-1)[..., None, None]
    K = skew(v)
    small = theta < 1e-8
    th = np.where(small, 1.0, theta)
    a = np.where(small, 1.0 - theta**2 / 6, np.sin(th) / th)
    b = np.where(small, 0.5 - theta**2 / 24, (1 - np.cos(th)) / th**2)
    return np.eye(3) + a * K + b * (K @ K)
