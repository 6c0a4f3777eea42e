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
2. **Per-joint bias** ``bias`` (J, 3) plus **correlated Gaussian noise** with the full
   ``3J x 3J`` covariance ``cov`` (joint-major, ``x0 y0 z0 x1 ...``). Depth dominance is not
   imposed; it falls out of the fitted covariance (:attr:`ErrorModel.depth_ratio`).
3. **Scale**: errors are stored relative to ``reference_scale`` (the mean RMS root distance of
   the ground-truth poses they were fitted on); a sampled error is multiplied by
   ``scale(clean) / reference_scale`` so a model fitted on 1.7 m people corrupts a 1.4 m
   skeleton proportionally. ``reference_scale=None`` means absolute errors in the poses' units.
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
    ``dz_p`` of each bone is modelled as a two-component mixture: ``dz_p = dz_g + mu + n`` (kept)
    or ``dz_p = -dz_g + mu + n`` (flipped, probability ``r``), ``n ~ N(0, sigma^2)``, with
    ``r, mu, sigma`` per bone fitted by EM. A bone is flipped where the posterior of the flipped
    component exceeds 1/2, i.e. where reflecting the ground-truth depth fits better given the
    noise level. The rate is the EM mixture weight, which, unlike counting sign disagreements,
    is not inflated by depth noise.

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
    keep, flip = dz_p - dz_g, dz_p + dz_g  # residual under each hypothesis (before mu)
    r = np.full(len(LIMB_BONES), 0.05)
    mu = np.zeros(len(LIMB_BONES))
    med = np.nanmedian(np.where(eligible, np.abs(keep), np.nan), 0)
    sigma = np.maximum(np.nan_to_num(1.4826 * med, nan=1.0), 1e-6)
    w = np.zeros_like(keep)
    for _ in range(iterations):
        # log-likelihood ratio flipped : kept
        llr = np.log(np.maximum(r, 1e-12) / np.maximum(1 - r, 1e-12)) - (
            (flip - mu) ** 2 - (keep - mu) ** 2
        ) / (2 * sigma**2)
        w = m / (1 + np.exp(-np.clip(llr, -50, 50)))
        r = np.clip(w.sum(0) / n, 0.0, 1.0)
        mu = ((m - w) * keep + w * flip).sum(0) / n
        var = ((m - w) * (keep - mu) ** 2 + w * (flip - mu) ** 2).sum(0) / n
        sigma = np.sqrt(np.maximum(var, 1e-12))
    r = np.where(eligible.any(0), r, 0.0)
    return eligible & (w > 0.5 * m), eligible, r


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
    """

    bias: np.ndarray
    cov: np.ndarray
    flip_rate: np.ndarray = field(default_factory=lambda: np.zeros(len(LIMB_BONES)))
    reference_scale: float | None = None
    min_depth_fraction: float = 0.25
    kind: str = "fitted"
    info: dict[str, Any] = field(default_factory=dict)

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
        if not (
            np.isfinite(self.bias).all() and np.isfinite(self.cov).all() and np.isfinite(self.flip_rate).all()
        ):
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
            **self.info,
        }

    # --- sampling -------------------------------------------------------------------------
    def sample(self, clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Corrupt clean camera-frame poses (..., J, 3) -> noisy poses (..., J, 3), float64.

        Flips eligible limb bones with ``flip_rate``, then adds ``bias`` and correlated noise,
        scaled by ``scale(clean) / reference_scale`` when ``reference_scale`` is set.
        """
        clean = np.asarray(clean, dtype=np.float64)
        if clean.ndim < 2 or clean.shape[-2:] != (self.num_joints, 3):
            raise InputError(f"error model for {self.num_joints} joints got poses of shape {clean.shape}")
        batch = clean.shape[:-2]
        noisy = clean
        if self.flip_rate.any():
            eligible = limb_flip_eligible(clean, self.min_depth_fraction)
            flips = eligible & (rng.random(batch + (len(LIMB_BONES),)) < self.flip_rate)
            noisy = flip_limbs(clean, flips)
        z = rng.standard_normal(batch + (3 * self.num_joints,))
        err = (z @ self._factor.T).reshape(batch + (self.num_joints, 3)) + self.bias
        if self.reference_scale:
            err = err * (root_relative_scale(clean) / self.reference_scale)[..., None, None]
        return noisy + err

    # --- files ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("bias", "cov", "flip_rate"):
            d[k] = np.asarray(d[k]).tolist()
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
        )


def fit_error_model(
    pred: np.ndarray,
    gt: np.ndarray,
    align_scale: bool = False,
    min_depth_fraction: float = 0.25,
    relative: bool = True,
) -> ErrorModel:
    """Fit an :class:`ErrorModel` to a network's errors.

    Args:
        pred: (N, J, 3) predictions, camera frame (root-relative or not; the root is subtracted).
        gt: (N, J, 3) ground truth in the same frame and units.
        align_scale: first rescale each prediction by the least-squares scale to its ground truth
            (for networks whose output scale is arbitrary).
        min_depth_fraction: eligibility threshold for limb flips (:func:`limb_flip_eligible`).
        relative: store ``reference_scale`` (errors scale with the person's size when sampling).
    Returns:
        The fitted model: limb flip rates per bone (:func:`detect_limb_flips`), then the per-joint
        bias and the full 3J x 3J covariance of ``pred - flip(gt)``, the errors measured against
        the ground truth with the detected flips applied (as :meth:`ErrorModel.sample` adds them). ``info`` holds ``num_poses`` and the raw
        MPJPE (flips included). Poses with a non-finite joint are skipped.
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
    if J == NUM_JOINTS:
        flipped, _, flip_rate = detect_limb_flips(pred, gt, min_depth_fraction)
        # the sampler adds errors to the *flipped* clean pose, so measure them against it
        err = pred - flip_limbs(gt, flipped)
    else:
        flip_rate = np.zeros(len(LIMB_BONES))
        err = pred - gt
    return ErrorModel(
        bias=err.mean(0),
        cov=np.cov(err.reshape(len(err), -1), rowvar=False),
        flip_rate=flip_rate,
        reference_scale=float(root_relative_scale(gt).mean()) if relative else None,
        min_depth_fraction=min_depth_fraction,
        kind="fitted",
        info={"num_poses": int(len(err)), "raw_mpjpe": raw_mpjpe, "aligned_scale": bool(align_scale)},
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
    cameras_per_pose: int = 1
    hidden: int = 1024
    blocks: int = 2
    dropout: float = 0.5
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
