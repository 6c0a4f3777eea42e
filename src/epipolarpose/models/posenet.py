"""The single-image pose network: ResNet trunk, deconvolution head, volumetric heatmaps, and
integral regression (soft-argmax), as in EpipolarPose (Kocabas et al., CVPR 2019) and Integral
Human Pose Regression (Sun et al., ECCV 2018).

Coordinate convention (every joint the network outputs)
-------------------------------------------------------
``forward(images)`` returns joints in **normalized volume coordinates**, each in ``[-0.5, 0.5]``:

* ``x`` (right) and ``y`` (down) are positions in the input crop as a fraction of its width and
  height, measured from the crop's centre: heatmap cell ``i`` of ``W`` has centre
  ``(i + 0.5) / W - 0.5``. With OpenCV's pixel convention (pixel ``k`` has its centre at ``k``) a
  crop of ``S`` pixels has ``u = (x + 0.5) * S - 0.5``; the same formula with the original crop's
  size maps back into the original image (the value is resolution-independent).
* ``z`` (away from the camera) is the depth relative to the volume's centre, as a fraction of
  the volume's depth extent: bin ``d`` of ``D`` has centre ``(d + 0.5) / D - 0.5``. The volume
  spans ``config.depth_range`` crop widths in depth, so ``z * depth_range`` is in the same unit
  as ``x`` and ``y`` (crop widths) — see :func:`to_pixels`. Training targets put the root joint
  at ``z = 0`` (root-relative depth), so 3D poses are scale-free: depth in crop pixels, not mm.

In 2D mode (``depth_bins == 1``) ``z`` is identically 0.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import cv2
import numpy as np
import torch
from torch import Tensor, nn

from ..errors import InputError
from .resnet import ARCHITECTURES, ResNet, load_torchvision_weights

#: ImageNet channel statistics (RGB, for images scaled to [0, 1]) that inputs are normalized with.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class PoseNetConfig:
    """Architecture of a :class:`PoseNet` (everything needed to rebuild it from a checkpoint).

    Attributes:
        backbone: "resnet18", "resnet34" or "resnet50".
        input_size: side S of the square RGB input crop, pixels (a multiple of 32).
        num_joints: J, number of joints (17, Human3.6M order).
        depth_bins: D, depth resolution of the volumetric heatmaps; 1 makes a 2D network.
        deconv_layers: number of stride-2 deconvolutions (heatmap side = S / 32 * 2**layers).
        deconv_channels: width of every deconvolution layer.
        deconv_kernel: deconvolution kernel size (2, 3 or 4).
        depth_range: depth extent of the volume in crop widths (``z * depth_range`` is in crop
            widths like ``x``, ``y``). Does not change the weights, only the meaning of ``z``.
    """

    backbone: str = "resnet50"
    input_size: int = 256
    num_joints: int = 17
    depth_bins: int = 64
    deconv_layers: int = 3
    deconv_channels: int = 256
    deconv_kernel: int = 4
    depth_range: float = 1.0

    def __post_init__(self) -> None:
        if self.backbone not in ARCHITECTURES:
            raise InputError(f"unknown backbone {self.backbone!r}; choose one of {', '.join(ARCHITECTURES)}")
        if self.input_size <= 0 or self.input_size % 32:
            raise InputError(f"input_size must be a positive multiple of 32, got {self.input_size}")
        if self.deconv_kernel not in (2, 3, 4):
            raise InputError(f"deconv_kernel must be 2, 3 or 4, got {self.deconv_kernel}")
        for name in ("num_joints", "depth_bins", "deconv_channels"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.deconv_layers < 0:
            raise InputError(f"deconv_layers must be >= 0, got {self.deconv_layers}")
        if not self.depth_range > 0:
            raise InputError(f"depth_range must be > 0, got {self.depth_range}")

    @classmethod
    def paper(cls) -> PoseNetConfig:
        """The paper's GPU network: ResNet-50, 256 px, 3 x 256-channel deconvolutions, 64 depth bins."""
        return cls()

    @classmethod
    def cpu_small(cls) -> PoseNetConfig:
        """A network that trains on a CPU: ResNet-18, 128 px, 3 x 128-channel deconvolutions,
        32 depth bins (32 x 32 heatmaps)."""
        return cls(backbone="resnet18", input_size=128, depth_bins=32, deconv_channels=128)

    @property
    def is_3d(self) -> bool:
        return self.depth_bins > 1

    @property
    def heatmap_size(self) -> int:
        """Side of the heatmaps, cells."""
        return self.input_size // 32 * 2**self.deconv_layers

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "model_config") -> PoseNetConfig:
        """Build from a dict (unknown keys -> :class:`InputError` naming them)."""
        if not isinstance(d, dict):
            raise InputError(f"{source} is not a dict of PoseNetConfig fields")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise InputError(f"{source} has unknown PoseNetConfig fields: {', '.join(unknown)}")
        return cls(**d)

    def diff(self, other: PoseNetConfig) -> str:
        """``"field a vs b, ..."`` for the fields that differ (empty when equal)."""
        return ", ".join(
            f"{f.name} {getattr(self, f.name)!r} vs {getattr(other, f.name)!r}"
            for f in fields(self)
            if getattr(self, f.name) != getattr(other, f.name)
        )


def _grid(n: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """Normalized centres of ``n`` cells: ``(i + 0.5) / n - 0.5``."""
    return (torch.arange(n, device=device, dtype=dtype) + 0.5) / n - 0.5


def soft_argmax3d(heatmaps: Tensor) -> tuple[Tensor, Tensor]:
    """Integral regression: softmax over each joint's whole volume and its expected position.

    Args:
        heatmaps: (B, J, D, H, W) logits.
    Returns:
        joints (B, J, 3) expected (x, y, z) in normalized volume coordinates (module docstring),
        and probs2d (B, J, H, W): the probability volume marginalised over depth.
    """
    b, j, d, h, w = heatmaps.shape
    if heatmaps.dtype in (torch.float16, torch.bfloat16):  # mixed precision: softmax in float32
        heatmaps = heatmaps.float()
    probs = torch.softmax(heatmaps.reshape(b, j, -1), dim=-1).reshape(b, j, d, h, w)
    dev, dt = probs.device, probs.dtype
    px = probs.sum(dim=(2, 3))  # (B, J, W)
    py = probs.sum(dim=(2, 4))  # (B, J, H)
    pz = probs.sum(dim=(3, 4))  # (B, J, D)
    joints = torch.stack([px @ _grid(w, dev, dt), py @ _grid(h, dev, dt), pz @ _grid(d, dev, dt)], dim=-1)
    return joints, probs.sum(dim=2)


def soft_argmax2d(heatmaps: Tensor) -> Tensor:
    """2D integral regression: softmax over each (H, W) map and its expected (x, y).

    Args:
        heatmaps: (B, J, H, W) logits.
    Returns:
        (B, J, 2) normalized (x, y) in [-0.5, 0.5].
    """
    return soft_argmax3d(heatmaps.unsqueeze(2))[0][..., :2]


def expectation2d(probs: Tensor) -> Tensor:
    """Expected (x, y) of probability maps (B, J, H, W) (each summing to 1) -> (B, J, 2)."""
    h, w = probs.shape[-2:]
    dev, dt = probs.device, probs.dtype
    return torch.stack([probs.sum(-2) @ _grid(w, dev, dt), probs.sum(-1) @ _grid(h, dev, dt)], -1)


def to_pixels(joints: Tensor | np.ndarray, input_size: float, depth_range: float = 1.0):
    """Normalized volume coordinates -> crop pixels.

    Args:
        joints: (..., J, 2 or 3) normalized (x, y[, z]) as returned by :class:`PoseNet`.
        input_size: side of the crop in pixels (the network's input, or the original crop's).
        depth_range: ``config.depth_range``.
    Returns:
        Same shape: ``u = (x + 0.5) * S - 0.5``, ``v = (y + 0.5) * S - 0.5`` (OpenCV pixel
        centres) and ``z_px = z * depth_range * S`` (depth relative to the volume centre, pixels).
    """
    out = joints * 1.0
    out[..., :2] = (joints[..., :2] + 0.5) * input_size - 0.5
    if joints.shape[-1] > 2:
        out[..., 2] = joints[..., 2] * depth_range * input_size
    return out


def from_pixels(joints: Tensor | np.ndarray, input_size: float, depth_range: float = 1.0):
    """Inverse of :func:`to_pixels` (crop pixels -> normalized volume coordinates)."""
    out = joints * 1.0
    out[..., :2] = (joints[..., :2] + 0.5) / input_size - 0.5
    if joints.shape[-1] > 2:
        out[..., 2] = joints[..., 2] / (depth_range * input_size)
    return out


def _deconv_padding(kernel: int) -> tuple[int, int]:
    return {4: (1, 0), 3: (1, 1), 2: (0, 0)}[kernel]


class PoseNet(nn.Module):
    """ResNet trunk -> stride-2 deconvolutions (BN, ReLU) -> 1x1 conv to J*D volumetric heatmaps.

    ``forward(images)`` takes (B, 3, S, S) RGB crops scaled to [0, 1] and normalized with
    :data:`IMAGENET_MEAN` / :data:`IMAGENET_STD` and returns a dict:

    * ``heatmaps``: (B, J, D, H, W) logits (channel ``j * D + d`` of the last layer is joint j,
      depth bin d);
    * ``joints3d``: (B, J, 3) soft-argmax (x, y, z), normalized volume coordinates (see the module
      docstring; z = 0 for a 2D network);
    * ``joints2d``: (B, J, 2) = ``joints3d[..., :2]``, the 2D pose (depth marginalised);
    * ``probs2d``: (B, J, H, W) the depth-marginalised probability maps (each sums to 1).

    Everything follows the device and dtype of the module (``model.to("cuda")``).
    """

    def __init__(self, config: PoseNetConfig | None = None):
        super().__init__()
        self.config = config = config or PoseNetConfig()
        self.backbone = ResNet(config.backbone, num_classes=None)
        layers: list[nn.Module] = []
        cin = self.backbone.out_channels
        pad, out_pad = _deconv_padding(config.deconv_kernel)
        for _ in range(config.deconv_layers):
            layers += [
                nn.ConvTranspose2d(
                    cin,
                    config.deconv_channels,
                    config.deconv_kernel,
                    stride=2,
                    padding=pad,
                    output_padding=out_pad,
                    bias=False,
                ),
                nn.BatchNorm2d(config.deconv_channels),
                nn.ReLU(inplace=True),
            ]
            cin = config.deconv_channels
        self.deconv_layers = nn.Sequential(*layers)
        self.final_layer = nn.Conv2d(cin, config.num_joints * config.depth_bins, 1)
        for m in self.deconv_layers.modules():
            if isinstance(m, nn.ConvTranspose2d):
                nn.init.normal_(m.weight, std=0.001)
        nn.init.normal_(self.final_layer.weight, std=0.001)
        nn.init.zeros_(self.final_layer.bias)

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        cfg = self.config
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images (B, 3, S, S), got {tuple(images.shape)}")
        x = self.final_layer(self.deconv_layers(self.backbone(images)))
        b, _, h, w = x.shape
        heatmaps = x.reshape(b, cfg.num_joints, cfg.depth_bins, h, w)
        joints3d, probs2d = soft_argmax3d(heatmaps)
        return {"heatmaps": heatmaps, "joints3d": joints3d, "joints2d": joints3d[..., :2], "probs2d": probs2d}

    @classmethod
    def from_2d(
        cls, model2d: PoseNet, depth_bins: int | None = None, depth_range: float | None = None
    ) -> PoseNet:
        """A 3D network initialised from a trained 2D one (as the paper does).

        Trunk and deconvolutions are copied. The 2D final layer has J output channels, the 3D one
        J*D: every 2D filter (and bias) is replicated over the D depth bins of its joint, so the
        initial volume is constant along depth, its depth-marginal equals the 2D network's softmax
        heatmap (same 2D pose) and the initial depth is the volume centre (z = 0).

        Args:
            model2d: a PoseNet (normally with ``depth_bins == 1``).
            depth_bins: D of the new network (default :meth:`PoseNetConfig.paper`'s 64 when the
                source is 2D, else the source's).
            depth_range: ``config.depth_range`` of the new network (default: the source's).
        """
        src = model2d.config
        d = depth_bins or (src.depth_bins if src.is_3d else PoseNetConfig.depth_bins)
        cfg = replace(src, depth_bins=d, depth_range=depth_range or src.depth_range)
        model = cls(cfg).to(next(model2d.parameters()).device)
        model.backbone.load_state_dict(model2d.backbone.state_dict())
        model.deconv_layers.load_state_dict(model2d.deconv_layers.state_dict())
        with torch.no_grad():
            j, c = src.num_joints, model.final_layer.in_channels
            w2 = model2d.final_layer.weight.reshape(j, src.depth_bins, c, 1, 1).mean(1)
            b2 = model2d.final_layer.bias.reshape(j, src.depth_bins).mean(1)
            model.final_layer.weight.copy_(w2.unsqueeze(1).expand(j, d, c, 1, 1).reshape(j * d, c, 1, 1))
            model.final_layer.bias.copy_(b2.unsqueeze(1).expand(j, d).reshape(j * d))
        return model

    def load_imagenet(self, weights: Any) -> None:
        """Load torchvision ImageNet weights (state dict or ``.pth`` path) into the trunk."""
        load_torchvision_weights(self.backbone, weights)


def normalize_images(images: Tensor) -> Tensor:
    """(B, 3, S, S) RGB in [0, 1] -> ImageNet-normalized network input (same device/dtype)."""
    mean = torch.tensor(IMAGENET_MEAN, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    return (images - mean) / std


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, float, np.ndarray]:
    """Pad an image to a centred square (black borders) and resize it to ``size`` x ``size``.

    Args:
        image: (H, W, 3) uint8 image.
        size: the network's input size S.
    Returns:
        (S, S, 3) image, the padded square's side L (original pixels), and the offset (2,) of the
        original image inside the square: original pixel = square pixel - offset.
    """
    h, w = image.shape[:2]
    side = max(h, w)
    top, left = (side - h) // 2, (side - w) // 2
    square = cv2.copyMakeBorder(
        image, top, side - h - top, left, side - w - left, cv2.BORDER_CONSTANT, value=0
    )
    if side != size:
        interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
        square = cv2.resize(square, (size, size), interpolation=interp)
    return square, float(side), np.array([left, top], dtype=np.float64)


@torch.no_grad()
def predict_crops(model: PoseNet, images: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Run the network on person crops of any size (RGB uint8, (H, W, 3) each).

    Each crop is letterboxed to a square and resized to the network's input (:func:`letterbox`).
    Returns a dict of numpy arrays:
        ``poses2d`` (N, J, 2): joints in the original crops' pixels (OpenCV pixel centres);
        ``poses3d`` (N, J, 3): root-relative 3D pose in units of the padded crop's side
        (x right, y down, z away from the camera; multiply by ``crop_size`` for pixels);
        ``joints3d`` (N, J, 3): the raw normalized network output; ``crop_size`` (N,): L.
    """
    cfg = model.config
    device = next(model.parameters()).device
    squares, sides, offsets = zip(*(letterbox(im, cfg.input_size) for im in images))
    batch = torch.from_numpy(np.stack(squares)).to(device).permute(0, 3, 1, 2).float() / 255.0
    out = model(normalize_images(batch))
    j3 = out["joints3d"].float().cpu().numpy().astype(np.float64)
    sides_a, offsets_a = np.asarray(sides), np.stack(offsets)
    poses2d = (j3[..., :2] + 0.5) * sides_a[:, None, None] - 0.5 - offsets_a[:, None, :]
    iso = j3 * np.array([1.0, 1.0, cfg.depth_range])
    poses3d = iso - iso[:, :1]
    return {"poses2d": poses2d, "poses3d": poses3d, "joints3d": j3, "crop_size": sides_a}
