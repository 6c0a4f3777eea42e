"""ResNet-18/34/50 with torchvision's parameter names.

The modules are named exactly as in ``torchvision.models.resnet`` (``conv1``, ``bn1``,
``layer1`` .. ``layer4`` made of blocks with ``conv1/bn1/conv2/bn2[/conv3/bn3]`` and
``downsample.0`` (1x1 conv) / ``downsample.1`` (BN), and ``fc``), so an ImageNet state dict saved
from torchvision loads with ``load_state_dict`` — or, for the pose trunk which has no classifier,
with :func:`load_torchvision_weights`, which drops ``fc.*``. torchvision itself is not needed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from ..errors import InputError


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def _conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (ResNet-18/34)."""

    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = _conv3x3(cin, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (strided, torchvision "v1.5") -> 1x1 with a residual connection (ResNet-50)."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = _conv1x1(cin, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = _conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


#: name -> (block type, blocks per stage)
ARCHITECTURES: dict[str, tuple[type[nn.Module], tuple[int, int, int, int]]] = {
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet34": (BasicBlock, (3, 4, 6, 3)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
}


class ResNet(nn.Module):
    """ResNet trunk (stride 32) with an optional ImageNet classifier.

    ``forward(x (B, 3, S, S)) -> (B, out_channels, S/32, S/32)`` feature map, or ``(B, num_classes)``
    logits when ``num_classes`` is set (then ``avgpool`` + ``fc`` exist, as in torchvision).
    """

    def __init__(self, name: str = "resnet50", num_classes: int | None = None):
        super().__init__()
        if name not in ARCHITECTURES:
            raise InputError(f"unknown backbone {name!r}; choose one of {', '.join(ARCHITECTURES)}")
        block, layers = ARCHITECTURES[name]
        self.name = name
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.out_channels = 512 * block.expansion
        self.num_classes = num_classes
        if num_classes is not None:
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(self.out_channels, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(self, block: type[nn.Module], planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                _conv1x1(self.inplanes, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        if self.num_classes is None:
            return x
        return self.fc(torch.flatten(self.avgpool(x), 1))


def state_dict_mismatch(own: Mapping[str, Tensor], given: Mapping[str, Tensor]) -> str:
    """Why ``given`` cannot load strictly into a module whose state dict is ``own`` ("" if it can):
    the first wrong shape, then the counts of missing and unexpected entries, ``; ``-joined."""
    missing = sorted(set(own) - set(given))
    unexpected = sorted(set(given) - set(own))
    wrong = sorted(k for k in set(own) & set(given) if tuple(own[k].shape) != tuple(given[k].shape))
    what = []
    if wrong:
        k = wrong[0]
        what.append(f"{k} has shape {tuple(given[k].shape)}, the config needs {tuple(own[k].shape)}")
        if len(wrong) > 1:
            what.append(f"{len(wrong) - 1} more with other shapes")
    if missing:
        what.append(f"{len(missing)} weights missing (e.g. {missing[0]})")
    if unexpected:
        what.append(f"{len(unexpected)} unexpected weights (e.g. {unexpected[0]})")
    return "; ".join(what)


def load_torchvision_weights(backbone: ResNet, weights: Mapping[str, Tensor] | str | os.PathLike) -> None:
    """Load a torchvision ResNet state dict (or a ``.pth`` file holding one) into ``backbone``.

    ``fc.*`` entries are dropped when the backbone has no classifier; every other entry must
    match by name and shape (strict), otherwise :class:`InputError` says which ones do not.
    """
    source = str(weights) if not isinstance(weights, Mapping) else "state dict"
    if not isinstance(weights, Mapping):
        try:
            weights = torch.load(weights, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError) as e:
            raise InputError(f"cannot read ResNet weights {source}: {e}") from e
        if isinstance(weights, Mapping) and "state_dict" in weights:
            weights = weights["state_dict"]
    sd = dict(weights)
    if backbone.num_classes is None:
        sd = {k: v for k, v in sd.items() if not k.startswith("fc.")}
    problems = state_dict_mismatch(backbone.state_dict(), sd)
    if problems:
        raise InputError(f"{source} is not a torchvision {backbone.name} state dict: {problems}")
    backbone.load_state_dict(sd, strict=True)
