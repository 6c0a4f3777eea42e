"""Errors of a 3D pose estimator, used to corrupt clean poses into the refiner's training inputs.

The refiner learns to undo an :class:`ErrorModel` -- ideally one fitted to the errors of our own 3D
network on a validation split (:func:`fit_error_model`), or plain Gaussian noise
(:meth:`ErrorModel.gaussian`, the ablation).

Error model (all in the camera frame, x right, y down, z depth, root-relative):

1. **Limb flips**: each of the eight limb bones (upper arms, forearms, thighs, shins; see
   :data:`~epipolarpose.skeleton.LIMB_BONES`) whose depth extent is significant (``|dz| >= min_depth_fraction`` x bone
   length) has its depth reflected about its parent joint with probability ``flip_rate[bone]``
   (the whole sub-chain moves along) -- the classic monocular depth ambiguity.
2. **Pose-dependent error** (optional) ``gain @ (clean - center)``: a linear function of the clean
   pose's deviation from the mean pose ``center`` (J, 3). A network that regresses towards the
   mean pose (shrunk depths, half-bent limbs) makes errors that are anti-correlated with the
   pose itself; independent noise cannot describe that, a ``gain`` of ``-(1 - lambda) I`` can.
   Fitted by cross-validated ridge regression.
3. **Per-joint bias** ``bias`` (J, 3) plus **correlated noise** with the full ``3J x 3J``
   covariance ``cov`` (joint-major, ``x0 y0 z0 x1 ...``), optionally multiplied per pose by a
   scale drawn from ``noise_scales`` (the empirical Mahalanobis scales of the fitted residuals,
   mean square 1: heavy tails, a few very bad poses among many good ones). Depth dominance is not
   imposed; it falls out of the fitted covariance (:attr:`ErrorModel.depth_ratio`).
4. **Scale**: errors are stored relative to ``reference_scale`` (the mean RMS root distance of
   the ground-truth poses they were fitted on); a sampled error is multiplied by
   ``scale(clean) / reference_scale`` so a model fitted on 1.7 m people corrupts a 1.4 m
   skeleton proportionally (the pose-dependent term sees the clean pose brought to the reference
   scale). ``reference_scale=None`` means absolute errors in the poses' units.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..formats import open_npz
from ..io import save_json, save_npz
from ..skeleton import LIMB_BONE_NAMES, LIMB_BONES, NUM_JOINTS, ROOT
from .flips import detect_limb_flips, flip_limbs, limb_flip_eligible
from .scale import pose_scale

__all__ = ["ErrorModel", "fit_error_model", "fit_linear_errors"]


@dataclass
class ErrorModel:
    """Errors of a 3D pose estimator in the camera frame (see the module docstring).

    Attributes:
        bias: (J, 3) mean error per joint (after undoing limb flips).
        cov: (3J, 3J) covariance of the errors, joint-major.
        flip_rate: (8,) probability that an eligible limb bone (:data:`LIMB_BONES`) is flipped.
        reference_scale: RMS root distance of the poses the model was fitted on (None: absolute).
        min_depth_fraction: eligibility threshold for limb flips.
        kind: "fitted" or "gaussian".
        info: fitting summary (number of poses, raw MPJPE, ...).
        gain: (3J, 3J) pose-dependent error ``gain @ (clean - center)`` (flattened joint-major), or
            None for none.
        center: (J, 3) the mean root-relative pose that ``gain`` acts around (needed with ``gain``).
        noise_scales: (K,) per-pose noise multipliers to draw from (mean square 1), or None for
            plain Gaussian noise.
    """

    bias: np.ndarray
    cov: np.ndarray
    flip_rate: np.ndarray = field(default_factory=lambda: np.zeros(len(LIMB_BONES)))
    reference_scale: float | None = None
    min_depth_fraction: float = 0.25
    kind: str = "fitted"
    info: dict[str, Any] = field(default_factory=dict)
    gain: np.ndarray | None = None
    center: np.ndarray | None = None
    noise_scales: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.bias = np.asarray(self.bias, dtype=np.float64)
        J = self.bias.shape[0]
        if self.bias.shape != (J, 3):
            raise InputError(f"error model bias must have shape (J, 3), got {self.bias.shape}")
        self.cov = np.asarray(self.cov, dtype=np.float64)
        if self.cov.shape != (3 * J, 3 * J):
            raise InputError(f"error model cov must have shape ({3 * J}, {3 * J}), got {self.cov.shape}")
        self.flip_rate = np.asarray(self.flip_rate, dtype=np.float64).reshape(-1)
        if self.flip_rate.shape != (len(LIMB_BONES),):
            raise InputError(
                f"error model flip_rate must have {len(LIMB_BONES)} entries, got {self.flip_rate.size}"
            )
        if self.flip_rate.any() and J != NUM_JOINTS:
            raise InputError("limb flips need the 17-joint Human3.6M skeleton")
        if self.gain is not None:
            self.gain = np.asarray(self.gain, dtype=np.float64)
            if self.gain.shape != (3 * J, 3 * J):
                raise InputError(
                    f"error model gain must have shape ({3 * J}, {3 * J}), got {self.gain.shape}"
                )
            if self.center is None:
                raise InputError("error model has a gain but no center pose")
        if self.center is not None:
            self.center = np.asarray(self.center, dtype=np.float64)
            if self.center.shape != (J, 3):
                raise InputError(f"error model center must have shape ({J}, 3), got {self.center.shape}")
        if self.noise_scales is not None:
            self.noise_scales = np.asarray(self.noise_scales, dtype=np.float64).reshape(-1)
            if self.noise_scales.size == 0 or (self.noise_scales < 0).any():
                raise InputError("error model noise_scales must be a non-empty array of values >= 0")
        arrays = [self.bias, self.cov, self.flip_rate] + [
            a for a in (self.gain, self.center, self.noise_scales) if a is not None
        ]
        if not all(np.isfinite(a).all() for a in arrays):
            raise InputError("error model contains non-finite values")
        w, V = np.linalg.eigh(0.5 * (self.cov + self.cov.T))
        self._factor = V * np.sqrt(np.clip(w, 0.0, None))  # cov = F Fᵀ

    @property
    def num_joints(self) -> int:
        return self.bias.shape[0]

    @classmethod
    def gaussian(
        cls, sigma: float, num_joints: int = NUM_JOINTS, reference_scale: float | None = None
    ) -> ErrorModel:
        """Plain isotropic Gaussian noise of standard deviation ``sigma`` per coordinate on every
        joint but the root; no bias, no flips (the ablation of the fitted model)."""
        if not sigma >= 0:
            raise InputError(f"Gaussian sigma must be >= 0, got {sigma}")
        var = np.full((num_joints, 3), float(sigma) ** 2)
        var[ROOT] = 0.0
        return cls(
            bias=np.zeros((num_joints, 3)),
            cov=np.diag(var.reshape(-1)),
            reference_scale=reference_scale,
            kind="gaussian",
            info={"sigma": float(sigma)},
        )

    # --- derived quantities ---------------------------------------------------------------
    def axis_std(self) -> np.ndarray:
        """(3,) RMS over joints of the per-axis error standard deviation (x, y, z)."""
        var = np.diag(self.cov).reshape(-1, 3)
        return np.sqrt(var.mean(0))

    @property
    def depth_ratio(self) -> float:
        """Depth dominance: z error std / mean of the x and y error stds."""
        s = self.axis_std()
        return float(s[2] / max(0.5 * (s[0] + s[1]), 1e-12))

    def describe(self) -> str:
        """One line for the user: kind, depth ratio, mean flip rate, and the pose-dependent and
        heavy-tailed parts when present."""
        text = f"{self.kind}, depth ratio {self.depth_ratio:.2f}, mean flip rate {self.flip_rate.mean():.3f}"
        if self.gain is not None:
            explained = 100 * self.info.get("linear_explained", 0.0)
            text += f", pose-dependent part {explained:.0f}% of the error variance"
        if self.noise_scales is not None:
            text += f", per-pose noise scale spread {self.noise_scales.std():.2f}"
        return text

    def summary(self) -> dict[str, Any]:
        """JSON-ready description (magnitudes in the units of the fitted poses)."""
        return {
            "kind": self.kind,
            "num_joints": self.num_joints,
            "reference_scale": self.reference_scale,
            "mean_bias_norm": float(np.linalg.norm(self.bias, axis=-1).mean()),
            "axis_std_xyz": self.axis_std().round(3).tolist(),
            "depth_ratio": round(self.depth_ratio, 3),
            "flip_rate": dict(zip(LIMB_BONE_NAMES, self.flip_rate.round(4).tolist())),
            "mean_flip_rate": float(self.flip_rate.mean()),
            "pose_dependent": self.gain is not None,
            "heavy_tailed": self.noise_scales is not None,
            **self.info,
        }

    def expected_error(self, clean: np.ndarray) -> np.ndarray:
        """The model's mean error for clean camera-frame poses (..., J, 3), ignoring flips and
        noise: ``bias + gain @ (clean - center)``, scaled like :meth:`sample`. Comparing it with a
        network's actual errors on another split shows how well the model transfers."""
        clean = self._check_poses(clean)
        return self._mean_error(clean, self._size_factor(clean))

    def _check_poses(self, poses: np.ndarray) -> np.ndarray:
        poses = np.asarray(poses, dtype=np.float64)
        if poses.ndim < 2 or poses.shape[-2:] != (self.num_joints, 3):
            raise InputError(f"error model for {self.num_joints} joints got poses of shape {poses.shape}")
        return poses

    def _size_factor(self, clean: np.ndarray) -> np.ndarray:
        """(...,) ``scale(clean) / reference_scale`` (ones for an absolute model)."""
        if not self.reference_scale:
            return np.ones(clean.shape[:-2])
        return pose_scale(clean) / self.reference_scale

    def _mean_error(self, poses: np.ndarray, k: np.ndarray) -> np.ndarray:
        """``(bias + gain @ (poses / k - center)) * k`` for poses (..., J, 3) and size factors k."""
        batch, J = poses.shape[:-2], self.num_joints
        err = np.broadcast_to(self.bias, batch + (J, 3)).copy()
        if self.gain is not None:
            rel = poses - poses[..., ROOT : ROOT + 1, :]
            u = rel / np.maximum(k, 1e-12)[..., None, None] - self.center
            err += (u.reshape(batch + (3 * J,)) @ self.gain.T).reshape(batch + (J, 3))
        return err * k[..., None, None]

    # --- sampling -------------------------------------------------------------------------
    def sample(self, clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Corrupt clean camera-frame poses (..., J, 3) -> noisy poses (..., J, 3), float64.

        Flips eligible limb bones with ``flip_rate``, then adds the pose-dependent error
        ``gain @ (clean - center)``, ``bias`` and correlated noise (times a per-pose scale drawn from
        ``noise_scales``), all scaled by ``scale(clean) / reference_scale`` when
        ``reference_scale`` is set.
        """
        clean = self._check_poses(clean)
        batch = clean.shape[:-2]
        noisy = clean
        if self.flip_rate.any():
            eligible = limb_flip_eligible(clean, self.min_depth_fraction)
            flips = eligible & (rng.random(batch + (len(LIMB_BONES),)) < self.flip_rate)
            noisy = flip_limbs(clean, flips)
        k = self._size_factor(clean)
        z = rng.standard_normal(batch + (3 * self.num_joints,))
        if self.noise_scales is not None:
            z = z * rng.choice(self.noise_scales, size=batch)[..., None]
        noise = (z @ self._factor.T).reshape(batch + (self.num_joints, 3)) * k[..., None, None]
        # the network shrinks the pose it believes in: the flipped one
        return noisy + noise + self._mean_error(noisy, k)

    # --- files ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("bias", "cov", "flip_rate", "gain", "center", "noise_scales"):
            d[k] = None if d[k] is None else np.asarray(d[k]).tolist()
        return d

    def save(self, path: str | os.PathLike) -> None:
        """Write ``.json`` (when the name ends so) or ``.npz`` atomically."""
        path = Path(path)
        if path.suffix.lower() == ".json":
            save_json(path, self.to_dict())
            return
        save_npz(
            path,
            bias=self.bias,
            cov=self.cov,
            flip_rate=self.flip_rate,
            reference_scale=np.float64(np.nan if self.reference_scale is None else self.reference_scale),
            min_depth_fraction=np.float64(self.min_depth_fraction),
            kind=np.str_(self.kind),
            info_json=np.str_(json.dumps(self.info)),
            **{
                k: v
                for k, v in (
                    ("gain", self.gain),
                    ("center", self.center),
                    ("noise_scales", self.noise_scales),
                )
                if v is not None
            },
        )

    @classmethod
    def load(cls, path: str | os.PathLike) -> ErrorModel:
        """Read a file written by :meth:`save`; :class:`InputError` names a missing key."""
        path = Path(path)
        if not path.is_file():
            raise InputError(f"error model {path} does not exist")
        if path.suffix.lower() == ".json":
            try:
                d = json.loads(path.read_text())
            except (OSError, ValueError) as e:
                raise InputError(f"cannot read error model {path}: {e}") from None
        else:
            d = open_npz(path)
        for key in ("bias", "cov"):
            if key not in d:
                raise InputError(f"error model {path} lacks the key '{key}'")
        ref = d.get("reference_scale")
        ref = None if ref is None or not np.isfinite(float(ref)) else float(ref)
        info = d.get("info", json.loads(str(d["info_json"])) if "info_json" in d else {})
        return cls(
            bias=np.asarray(d["bias"]),
            cov=np.asarray(d["cov"]),
            flip_rate=np.asarray(d.get("flip_rate", np.zeros(len(LIMB_BONES)))),
            reference_scale=ref,
            min_depth_fraction=float(d.get("min_depth_fraction", 0.25)),
            kind=str(d.get("kind", "fitted")),
            info=info,
            **{k: None if d.get(k) is None else np.asarray(d[k]) for k in ("gain", "center", "noise_scales")},
        )


def fit_linear_errors(
    err: np.ndarray, u: np.ndarray, ridges: Sequence[float] = (1e-3, 1e-2, 0.1, 1.0, 10.0), folds: int = 5
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Cross-validated ridge regression of errors on the centred clean pose: ``err ≈ u @ G.T``.

    Args:
        err: (N, D) errors (centred: their mean is the bias, fitted separately).
        u: (N, D) clean poses minus their mean, the same flattening.
        ridges: candidate penalties, relative to the mean eigenvalue of ``uᵀu / N``.
        folds: contiguous folds (neighbouring frames are alike, so folds are blocks, not random).
    Returns:
        ``(G (D, D), residuals (N, D), info)``. ``residuals`` are *out-of-fold*: each block's
        errors minus the prediction of the ``G`` fitted without that block, at the chosen penalty.
        They measure how well the linear term predicts the errors of poses it has not seen, so the
        noise fitted to them is not the optimistic in-sample remainder. info holds the chosen
        ``ridge`` and ``explained`` (1 - residual variance / error variance, out of fold). ``G``
        is zero (and the residuals are ``err``) when no penalty explains anything out of fold.
    """
    N, D = err.shape
    scale = max(float(np.trace(u.T @ u)) / (N * D), 1e-12)
    bounds = np.linspace(0, N, folds + 1).round().astype(int)
    total = float(np.sum((err - err.mean(0)) ** 2))

    def solve(uu: np.ndarray, ee: np.ndarray, lam: float) -> np.ndarray:
        return np.linalg.solve(uu.T @ uu + lam * scale * len(uu) * np.eye(D), uu.T @ ee).T

    best: tuple[float, float | None, np.ndarray] = (0.0, None, err)
    for lam in ridges:
        res = np.empty_like(err)
        for a, b in zip(bounds[:-1], bounds[1:]):
            tr = np.r_[0:a, b:N]
            res[a:b] = err[a:b] - u[a:b] @ solve(u[tr], err[tr], lam).T
        explained = 1.0 - float(np.sum((res - res.mean(0)) ** 2)) / max(total, 1e-12)
        if explained > best[0]:
            best = (explained, lam, res)
    if best[1] is None:
        return np.zeros((D, D)), err.copy(), {"ridge": None, "explained": 0.0}
    return solve(u, err, best[1]), best[2], {"ridge": best[1], "explained": round(best[0], 4)}


def fit_error_model(
    pred: np.ndarray,
    gt: np.ndarray,
    *,
    align_scale: bool = False,
    min_depth_fraction: float = 0.25,
    relative: bool = True,
    pose_dependent: bool = True,
    heavy_tails: bool = True,
) -> ErrorModel:
    """Fit an :class:`ErrorModel` to a network's errors.

    Args:
        pred: (N, J, 3) predictions, camera frame (root-relative or not; the root is subtracted).
        gt: (N, J, 3) ground truth in the same frame and units.
        align_scale: first rescale each prediction by the least-squares scale to its ground truth
            (for networks whose output scale is arbitrary).
        min_depth_fraction: eligibility threshold for limb flips (:func:`limb_flip_eligible`).
        relative: store ``reference_scale`` (errors scale with the person's size when sampling).
        pose_dependent: fit the linear term ``gain @ (clean - center)`` (:func:`fit_linear_errors`,
            ridge chosen on held-out contiguous folds; the pose is brought to the reference scale).
        heavy_tails: keep the per-pose Mahalanobis scales of the residuals as ``noise_scales``.
    Returns:
        The fitted model: limb flip rates per bone (:func:`detect_limb_flips`); the errors
        ``pred - flip(gt)`` measured against the ground truth with the detected flips applied (as
        :meth:`ErrorModel.sample` adds them); their linear dependence on the pose; then the
        per-joint bias and the full 3J x 3J covariance of what is left. ``info`` holds
        ``num_poses``, the raw MPJPE (flips included) and the linear fit's ``ridge`` and
        ``explained`` variance. With the pose-dependent term, "what is left" is the out-of-fold
        residual (:func:`fit_linear_errors`): its covariance is what the linear term cannot
        predict on poses it was not fitted on, which is what the refiner will meet. Pass the
        validation poses in recording order (clip after clip): the folds are contiguous blocks.
        Poses with a non-finite joint are skipped.
    """
    pred, gt = _error_pairs(pred, gt, align_scale)
    N, J = pred.shape[:2]
    raw_mpjpe = float(np.linalg.norm(pred - gt, axis=-1).mean())
    size = pose_scale(gt)  # of the unflipped poses, as sample() measures it
    if J == NUM_JOINTS:
        flipped, _, flip_rate = detect_limb_flips(pred, gt, min_depth_fraction)
        # the sampler adds errors to the *flipped* clean pose, so measure them against it
        gt = flip_limbs(gt, flipped)
    else:
        flip_rate = np.zeros(len(LIMB_BONES))
    ref = float(size.mean()) if relative else None
    k = (size / ref if ref else np.ones(N))[:, None, None]
    flat = ((pred - gt) / k).reshape(N, -1)  # errors at the reference scale (sample() multiplies by k)
    info: dict[str, Any] = {"num_poses": int(N), "raw_mpjpe": raw_mpjpe, "aligned_scale": bool(align_scale)}
    gain = center = None
    if pose_dependent:
        center = (gt / k).mean(0)
        u = (gt / k - center).reshape(N, -1)
        mean = flat.mean(0)
        gain, res, lin = fit_linear_errors(flat - mean, u)
        info["linear_ridge"], info["linear_explained"] = lin["ridge"], lin["explained"]
        flat = mean + res  # out-of-fold residuals: the noise the linear term leaves on unseen poses
    bias = flat.mean(0)
    cov = np.cov(flat, rowvar=False)
    return ErrorModel(
        bias=bias.reshape(-1, 3),
        cov=cov,
        flip_rate=flip_rate,
        reference_scale=ref,
        min_depth_fraction=min_depth_fraction,
        kind="fitted",
        info=info,
        gain=gain,
        center=center,
        noise_scales=_noise_scales(flat - bias, cov) if heavy_tails else None,
    )


def _error_pairs(pred: np.ndarray, gt: np.ndarray, align_scale: bool) -> tuple[np.ndarray, np.ndarray]:
    """Root-relative (N, J, 3) float64 predictions and ground truth, poses with a non-finite joint
    dropped, predictions rescaled to their ground truth with ``align_scale``."""
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape or pred.ndim != 3 or pred.shape[-1] != 3:
        raise InputError(f"predictions {pred.shape} and ground truth {gt.shape} must both be (N, J, 3)")
    pred = pred - pred[:, ROOT : ROOT + 1]
    gt = gt - gt[:, ROOT : ROOT + 1]
    ok = np.isfinite(pred).all((1, 2)) & np.isfinite(gt).all((1, 2))
    pred, gt = pred[ok], gt[ok]
    if len(pred) < 2:
        raise InputError(
            f"need at least 2 finite (prediction, ground truth) pairs to fit errors, got {len(pred)}"
        )
    if align_scale:
        k = np.sum(pred * gt, (1, 2)) / np.maximum(np.sum(pred * pred, (1, 2)), 1e-12)
        pred = pred * k[:, None, None]
    return pred, gt


def _noise_scales(residuals: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """Per-pose noise scales (N,): the RMS Mahalanobis length of each residual (N, D) under
    ``cov`` (D, D), per retained dimension, normalized to a mean square of 1."""
    w, V = np.linalg.eigh(0.5 * (cov + cov.T))
    keep = w > 1e-9 * max(w.max(), 1e-300)
    d2 = ((residuals @ V[:, keep]) ** 2 / w[keep]).sum(1) / max(int(keep.sum()), 1)
    return np.sqrt(d2 / max(d2.mean(), 1e-300))
