"""Training the refinement unit on motion capture seen through random virtual cameras.

The refiner (:mod:`epipolarpose.models.refiner`) never sees images: its training pairs are
(clean, noisy) root-relative 3D poses in a virtual camera's frame. Clean poses come from motion
capture (world z-up, mm) viewed by random cameras (:class:`VirtualCameras`); noisy poses are the
clean ones corrupted by an :class:`ErrorModel` -- ideally one fitted to the errors of our own 3D
network on a validation split (:func:`fit_error_model`), or plain Gaussian noise
(:meth:`ErrorModel.gaussian`, the ablation).

Error model (all in the camera frame, x right, y down, z depth, root-relative):

1. **Limb flips**: each of the eight limb bones (upper arms, forearms, thighs, shins; see
   :data:`LIMB_BONES`) whose depth extent is significant (``|dz| >= min_depth_fraction`` x bone
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
from scipy.spatial.transform import Rotation

from ..errors import InputError
from ..io import save_json, save_npz
from ..skeleton import NUM_JOINTS, PARENTS, ROOT

#: Limb bones (parent, child) whose depth can flip: R/L upper arm, forearm, thigh, shin.
LIMB_BONES = np.array(
    [(14, 15), (15, 16), (11, 12), (12, 13), (1, 2), (2, 3), (4, 5), (5, 6)], dtype=np.int64
)
LIMB_BONE_NAMES = ("RUpperArm", "RForearm", "LUpperArm", "LForearm", "RThigh", "RShin", "LThigh", "LShin")


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


def root_relative_scale(poses: np.ndarray) -> np.ndarray:
    """RMS distance of the joints from the root: (..., J, 3) -> (...,). Same definition as
    :func:`epipolarpose.models.refiner.pose_scale`."""
    rel = poses - poses[..., ROOT : ROOT + 1, :]
    return np.sqrt(np.mean(np.sum(rel**2, -1), -1))


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
                raise InputError(f"error model gain must have shape ({3 * J}, {3 * J}), got {self.gain.shape}")
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
        return root_relative_scale(clean) / self.reference_scale

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
                for k, v in (("gain", self.gain), ("center", self.center), ("noise_scales", self.noise_scales))
                if v is not None
            },
        )

    @classmethod
    def load(cls, path: str | os.PathLike) -> ErrorModel:
        """Read a file written by :meth:`save`; :class:`InputError` names a missing key."""
        path = Path(path)
        if not path.is_file():
            raise InputError(f"error model {path} does not exist")
        try:
            if path.suffix.lower() == ".json":
                d = json.loads(path.read_text())
            else:
                with np.load(path, allow_pickle=False) as z:
                    d = {k: z[k] for k in z.files}
        except (OSError, ValueError) as e:
            raise InputError(f"cannot read error model {path}: {e}") from None
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
            **{
                k: None if d.get(k) is None else np.asarray(d[k])
                for k in ("gain", "center", "noise_scales")
            },
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
    J = pred.shape[1]
    raw_mpjpe = float(np.linalg.norm(pred - gt, axis=-1).mean())
    size = root_relative_scale(gt)  # of the unflipped poses, as sample() measures it
    if J == NUM_JOINTS:
        flipped, _, flip_rate = detect_limb_flips(pred, gt, min_depth_fraction)
        # the sampler adds errors to the *flipped* clean pose, so measure them against it
        gt = flip_limbs(gt, flipped)
        err = pred - gt
    else:
        flip_rate = np.zeros(len(LIMB_BONES))
        err = pred - gt
    N = len(err)
    ref = float(size.mean()) if relative else None
    k = size / ref if ref else np.ones(N)
    err = err / k[:, None, None]  # errors at the reference scale (sample() multiplies by k)
    flat = err.reshape(N, -1)
    info: dict[str, Any] = {"num_poses": int(N), "raw_mpjpe": raw_mpjpe, "aligned_scale": bool(align_scale)}
    gain = center = None
    if pose_dependent:
        ug = gt / k[:, None, None]
        center = ug.mean(0)
        u = (ug - center).reshape(N, -1)
        mean = flat.mean(0)
        gain, res, lin = fit_linear_errors(flat - mean, u)
        info["linear_ridge"], info["linear_explained"] = lin["ridge"], lin["explained"]
        flat = mean + res  # out-of-fold residuals: the noise the linear term leaves on unseen poses
    bias = flat.mean(0)
    cov = np.cov(flat, rowvar=False)
    noise_scales = None
    if heavy_tails:
        r = flat - bias
        w, V = np.linalg.eigh(0.5 * (cov + cov.T))
        keep = w > 1e-9 * max(w.max(), 1e-300)
        d2 = ((r @ V[:, keep]) ** 2 / w[keep]).sum(1) / max(int(keep.sum()), 1)
        noise_scales = np.sqrt(d2 / max(d2.mean(), 1e-300))
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
        noise_scales=noise_scales,
    )


# --- virtual cameras ------------------------------------------------------------------------


@dataclass
class VirtualCameras:
    """Ranges of the random cameras that view motion capture (angles in degrees, mm, pixels).

    A camera sits at a random azimuth/elevation/distance from the person's root and looks at it;
    it is rolled a little and then turned so the person appears at a random place in an image of
    ``image_size`` pixels with focal length ``focal`` (keeping a body of ``body_radius`` inside
    the image). Off-centre people are seen obliquely, so focal length and distance change the
    root-relative pose in the camera frame, not only its projection.
    """

    azimuth: tuple[float, float] = (-180.0, 180.0)
    elevation: tuple[float, float] = (-10.0, 45.0)
    distance: tuple[float, float] = (2500.0, 7000.0)
    focal: tuple[float, float] = (600.0, 1600.0)
    roll: float = 5.0
    image_size: float = 1000.0
    body_radius: float = 1000.0

    @classmethod
    def matching(cls, poses_camera: np.ndarray, margin_deg: float = 5.0, **overrides: Any) -> VirtualCameras:
        """Cameras like the ones that saw ``poses_camera`` (N, 17, 3), camera frame, mm.

        A refiner learns a pose prior *in the camera frame*, so views it never meets (a camera
        45° above the person, for a rig at head height) spend its capacity and, with a
        pose-dependent error model, corrupt poses far from those the model was fitted on. This
        reads the viewing geometry off example poses (a validation split's ground truth):

        * **elevation**: per pose, how far the camera looks down on the pelvis→thorax axis
          (``-asin`` of its depth component; a person standing upright seen from above tilts
          away). The range is the interquartile range widened by ``margin_deg`` on each side,
          since people also lean by themselves (the mocap supplies that part again).
        * **distance**: the 5th–95th percentile of the root depth, when the poses are absolute
          (a median root depth of at least 500 mm); otherwise the default range is kept.

        Azimuth stays uniform (people turn), focal length and roll keep their defaults.
        ``overrides`` set any field explicitly.
        """
        p = np.asarray(poses_camera, dtype=np.float64)
        if p.ndim != 3 or p.shape[1:] != (NUM_JOINTS, 3):
            raise InputError(f"matching cameras needs poses of shape (N, {NUM_JOINTS}, 3), got {p.shape}")
        p = p[np.isfinite(p).all((1, 2))]
        if len(p) < 10:
            raise InputError(f"matching cameras needs at least 10 finite poses, got {len(p)}")
        axis = p[:, 8] - p[:, ROOT]  # pelvis -> thorax
        axis /= np.maximum(np.linalg.norm(axis, axis=-1, keepdims=True), 1e-9)
        elev = -np.degrees(np.arcsin(np.clip(axis[:, 2], -1.0, 1.0)))
        q1, q3 = np.percentile(elev, [25, 75])
        fields: dict[str, Any] = {"elevation": (float(max(q1 - margin_deg, -89.0)), float(min(q3 + margin_deg, 89.0)))}
        depth = p[:, ROOT, 2]
        if np.median(depth) >= 500.0:
            lo, hi = np.percentile(depth, [5, 95])
            fields["distance"] = (float(max(lo, 500.0)), float(max(hi, lo + 1.0)))
        fields.update(overrides)
        return cls(**fields)

    def rotations(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """(n, 3, 3) world -> camera rotations (OpenCV: x right, y down, z forward), world z-up."""
        az = np.deg2rad(rng.uniform(*self.azimuth, n))
        el = np.deg2rad(rng.uniform(*self.elevation, n))
        dist = rng.uniform(*self.distance, n)
        f = rng.uniform(*self.focal, n)
        # look-at: camera on a sphere around the root, optical axis towards it
        z = -np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], -1)
        x = np.cross(z, np.array([0.0, 0.0, 1.0]))
        x /= np.linalg.norm(x, axis=-1, keepdims=True)
        y = np.cross(z, x)
        R_look = np.stack([x, y, z], -2)
        R_roll = Rotation.from_rotvec(
            np.deg2rad(rng.uniform(-self.roll, self.roll, n))[:, None] * [0, 0, 1]
        ).as_matrix()
        # place the root off-axis (within the image, keeping the body inside)
        half = np.maximum(np.arctan(0.5 * self.image_size / f) - np.arctan(self.body_radius / dist), 0.0)
        xy = np.tan(half)[:, None] * rng.uniform(-1, 1, (n, 2))
        r = np.concatenate([xy, np.ones((n, 1))], -1)
        r /= np.linalg.norm(r, axis=-1, keepdims=True)
        axis = np.stack([-r[:, 1], r[:, 0], np.zeros(n)], -1)  # (0, 0, 1) x r
        sin = np.linalg.norm(axis, axis=-1, keepdims=True)
        rotvec = np.where(sin > 1e-12, axis / np.maximum(sin, 1e-12), 0.0) * np.arctan2(sin, r[:, 2:3])
        R_off = Rotation.from_rotvec(rotvec).as_matrix()
        return R_off @ R_roll @ R_look

    def view(self, poses_world: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """World poses (N, J, 3) -> root-relative camera-frame poses (N, J, 3), one random camera
        per pose (repeat the input for several cameras per pose)."""
        poses_world = np.asarray(poses_world, dtype=np.float64)
        R = self.rotations(len(poses_world), rng)
        rel = poses_world - poses_world[:, ROOT : ROOT + 1]
        return np.einsum("nij,nkj->nki", R, rel)


def make_pairs(
    poses_world: np.ndarray,
    error_model: ErrorModel,
    rng: np.random.Generator,
    cameras_per_pose: int = 1,
    cameras: VirtualCameras | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Training pairs: world poses (N, J, 3) -> (clean, noisy), each (N * cameras_per_pose, J, 3),
    root-relative camera-frame (clean) and corrupted by ``error_model`` (noisy)."""
    cameras = cameras or VirtualCameras()
    clean = cameras.view(np.repeat(np.asarray(poses_world), cameras_per_pose, axis=0), rng)
    return clean, error_model.sample(clean, rng)


# --- training -------------------------------------------------------------------------------


@dataclass
class RefinerTrainConfig:
    """Hyper-parameters of :func:`train_refiner` (defaults: the paper's MLP, a CPU-sized budget)."""

    epochs: int = 20
    batch_size: int = 256
    lr: float = 1e-3
    lr_decay: float = 0.95  #: multiplicative learning-rate decay per epoch
    weight_decay: float = 0.0
    cameras_per_pose: int = 4
    hidden: int = 1024
    blocks: int = 2
    dropout: float = 0.1
    loss: str = "mse"  #: "mse" or "smooth_l1", in the normalized space
    intermediate_weight: float = 1.0
    max_grad_norm: float = 1.0
    seed: int = 0
    device: str = "auto"
    cameras: VirtualCameras = field(default_factory=VirtualCameras)


def refiner_loss(
    model, noisy_n, clean_n, loss: str = "mse", intermediate_weight: float = 1.0
) -> tuple[Any, dict[str, float]]:
    """Loss of a batch in the normalized space: ``final + intermediate_weight * sum(intermediate)``.

    Args:
        model: a :class:`~epipolarpose.models.refiner.Refiner`.
        noisy_n, clean_n: (B, J*3) normalized noisy inputs and clean targets.
    Returns:
        ``(total loss tensor, {"final": float, "intermediate": float})``.
    """
    import torch.nn.functional as F

    fn = {"mse": F.mse_loss, "smooth_l1": F.smooth_l1_loss}.get(loss)
    if fn is None:
        raise InputError(f"unknown refiner loss '{loss}' (use mse or smooth_l1)")
    final, inter = model(noisy_n)
    l_final = fn(final, clean_n)
    l_inter = sum((fn(p, clean_n) for p in inter), start=l_final.new_zeros(()))
    total = l_final + intermediate_weight * l_inter
    return total, {"final": float(l_final.detach()), "intermediate": float(l_inter.detach())}


def _resolve_device(device: str):
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def train_refiner(
    poses_world: np.ndarray,
    error_model: ErrorModel,
    config: RefinerTrainConfig | None = None,
    progress: bool = True,
):
    """Train a refiner on motion capture through random virtual cameras.

    Every epoch draws fresh cameras (``cameras_per_pose`` per mocap pose) and fresh noise, so
    the training set never repeats. Normalization statistics come from the first epoch's clean
    poses and are saved with the model.

    Args:
        poses_world: (N, J, 3) motion-capture poses (world z-up, mm, any root position).
        error_model: the corruption to undo.
        config: hyper-parameters.
        progress: show a tqdm bar on stderr.
    Returns:
        ``(refiner in eval mode, history)`` where history is a list of per-epoch dicts
        (``epoch``, ``loss``, ``final``, ``intermediate``, ``lr``).
    """
    import torch
    from tqdm.auto import tqdm

    from ..models.refiner import Refiner

    config = config or RefinerTrainConfig()
    poses_world = np.asarray(poses_world, dtype=np.float64)
    if poses_world.ndim != 3 or poses_world.shape[-1] != 3 or len(poses_world) == 0:
        raise InputError(f"training poses must be a non-empty (N, J, 3) array, got {poses_world.shape}")
    poses_world = poses_world[np.isfinite(poses_world).all((1, 2))]
    if len(poses_world) == 0:
        raise InputError("every training pose contains NaN")
    J = poses_world.shape[1]
    if J != error_model.num_joints:
        raise InputError(f"error model is for {error_model.num_joints} joints, mocap poses have {J}")
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)
    device = _resolve_device(config.device)
    model = Refiner(J, hidden=config.hidden, blocks=config.blocks, dropout=config.dropout)
    clean, noisy = make_pairs(poses_world, error_model, rng, config.cameras_per_pose, config.cameras)
    model.set_normalization(clean)
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=config.lr_decay)
    history: list[dict[str, float]] = []
    bar = tqdm(range(config.epochs), desc="refiner", unit="epoch", disable=not progress)
    for epoch in bar:
        if epoch > 0:
            clean, noisy = make_pairs(poses_world, error_model, rng, config.cameras_per_pose, config.cameras)
        x_n, y_n = _normalized_pair(model, clean, noisy, device)
        model.train()
        perm = torch.randperm(len(x_n), device=device)
        sums = {"loss": 0.0, "final": 0.0, "intermediate": 0.0}
        n_batches = 0
        for start in range(0, len(perm), config.batch_size):
            sel = perm[start : start + config.batch_size]
            if len(sel) < 2:  # BatchNorm needs two samples
                continue
            total, parts = refiner_loss(model, x_n[sel], y_n[sel], config.loss, config.intermediate_weight)
            opt.zero_grad(set_to_none=True)
            total.backward()
            if config.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            opt.step()
            sums["loss"] += float(total.detach())
            sums["final"] += parts["final"]
            sums["intermediate"] += parts["intermediate"]
            n_batches += 1
        record = {
            "epoch": epoch,
            "lr": opt.param_groups[0]["lr"],
            **{k: v / max(n_batches, 1) for k, v in sums.items()},
        }
        history.append(record)
        bar.set_postfix(loss=f"{record['loss']:.4f}")
        sched.step()
    model.eval()
    return model, history


def _normalized_pair(model, clean: np.ndarray, noisy: np.ndarray, device):
    """(clean, noisy) camera-frame poses -> normalized (input, target) tensors on ``device``.

    Both are divided by the *noisy* pose's scale (what :meth:`Refiner.refine` can compute)."""
    import torch

    noisy_t = torch.as_tensor(noisy, dtype=torch.float64)
    clean_t = torch.as_tensor(clean, dtype=torch.float64)
    scaled, s = model.to_normalized_input(noisy_t)
    target = (clean_t - clean_t[:, ROOT : ROOT + 1]) / s
    x_n = model.normalize(scaled.float().to(device))
    y_n = model.normalize(target.float().to(device))
    return x_n, y_n


# --- motion capture -------------------------------------------------------------------------


def expand_bvh_paths(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """Files and folders (searched recursively for ``*.bvh``) -> sorted BVH file list."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(p.rglob("*.bvh"))
            if not found:
                raise InputError(f"no .bvh files under {p}")
            out += found
        elif p.is_file():
            out.append(p)
        else:
            raise InputError(f"motion capture path {p} does not exist")
    if not out:
        raise InputError("no motion capture given")
    return out


def load_mocap_poses(
    paths: Sequence[str | os.PathLike], fps: float | None = 10.0
) -> tuple[np.ndarray, np.ndarray]:
    """Load BVH files/folders (:func:`expand_bvh_paths`) with :func:`epipolarpose.mocap.load_clips`.

    Returns:
        ``(poses (N, 17, 3) mm world z-up, clip name per pose (N,))``. ``fps`` resamples every clip
        (consecutive mocap frames are nearly identical; 10 fps keeps the variety, not the bulk).
    """
    from ..mocap import load_clips

    poses, clip, _ = load_clips(expand_bvh_paths(paths), fps=fps)
    return poses, clip


def read_poses3d(
    path: str | os.PathLike, key: str = "poses3d", num_joints: int | None = None
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Read ``key`` (N, J, 3) from an npz (dtype kept) and every array of the file.

    Raises :class:`InputError` naming the file and key for a missing key, a wrong shape, or a joint
    count different from ``num_joints``. NaN joints are allowed (the refiner passes such poses
    through unchanged).
    """
    from ..formats import _check_shape, _open_npz, _require

    arrays = _open_npz(path)
    poses = _require(arrays, key, str(path))
    _check_shape(poses, (None, num_joints, 3), key, str(path))
    if not np.issubdtype(poses.dtype, np.floating):
        raise InputError(f"{path}: key {key!r} must hold floats, got {poses.dtype}")
    return poses, arrays


def read_camera_poses(path: str | os.PathLike, num_joints: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Camera-frame 3D poses for fitting an error model, from any of the project's files.

    Accepts, in this order of preference:

    * ``poses3d`` (N, J, 3): poses already flattened (``refine apply`` input and output);
    * ``poses3d_camera`` (C, F, J, 3): ``epipolarpose predict --clips`` predictions;
    * ``poses3d_world`` (F, J, 3) with ``rig_json``: a ``gt.npz`` (``synth`` or ``predict
      --clips``), taken into every camera's frame.

    Returns:
        ``(poses (N, J, 3) float64, clip (N,) str or None)``, camera-major (camera 0's frames
        first) for the last two layouts, so a prediction file and its ground truth line up.
    """
    from ..formats import _check_shape, _open_npz

    arrays = _open_npz(path)
    src = str(path)
    J = num_joints
    if "poses3d" in arrays:
        poses = arrays["poses3d"]
        _check_shape(poses, (None, J, 3), "poses3d", src)
        clip = arrays.get("clip")
        clip = np.asarray(clip).astype(str) if clip is not None and clip.shape == poses.shape[:1] else None
    elif "poses3d_camera" in arrays:
        cam = arrays["poses3d_camera"]
        _check_shape(cam, (None, None, J, 3), "poses3d_camera", src)
        poses, clip = cam.reshape(-1, *cam.shape[2:]), None
    elif "poses3d_world" in arrays and "rig_json" in arrays:
        from ..camera import Rig

        world = arrays["poses3d_world"]
        _check_shape(world, (None, J, 3), "poses3d_world", src)
        rig = Rig.from_json(str(arrays["rig_json"]), source=f"{src}:rig_json")
        cam = rig.world_to_camera(world)  # (C, F, J, 3)
        poses = cam.reshape(-1, *cam.shape[2:])
        clip = arrays.get("clip")
        clip = np.tile(np.asarray(clip).astype(str), len(rig)) if clip is not None and len(clip) == len(world) else None
    else:
        raise InputError(
            f"{src}: needs poses3d (N, J, 3), poses3d_camera (C, F, J, 3) or poses3d_world with rig_json "
            f"(found: {', '.join(sorted(arrays)) or 'none'})"
        )
    if not np.issubdtype(poses.dtype, np.floating):
        raise InputError(f"{src}: the 3D poses must be floats, got {poses.dtype}")
    return np.asarray(poses, dtype=np.float64), clip

