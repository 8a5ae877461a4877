"""ResNet-50, written out so that a YOLOv1 variant can stand on it (no torchvision needed).

He, Zhang, Ren & Sun, "Deep Residual Learning for Image Recognition" (CVPR 2016), Table 1
(the "50-layer" column). Module names follow torchvision's ``models/resnet.py``
(``conv1``, ``bn1``, ``layer1.0.conv1``, ``layer1.0.downsample.0`` ...), so a
torchvision-format state dict loads by name with ``load_torchvision_state_dict``.
Like torchvision (ResNet "v1.5"), a downsampling block puts its stride on the 3x3 conv;
the paper puts it on the first 1x1. Parameter counts are the same either way.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from .blocks import check_image_batch

STEM_CHANNELS = 64
EXPANSION = 4  # a bottleneck's output has 4x the channels of its 3x3 conv
# Table 1, "50-layer": (bottleneck blocks, width of the 3x3 conv) per stage, conv2_x ... conv5_x.
RESNET50_STAGES: tuple[tuple[int, int], ...] = ((3, 64), (4, 128), (6, 256), (3, 512))


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution without bias (BatchNorm follows)."""
    return nn.Conv2d(in_channels, out_channels, 1, stride, bias=False)


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding 1, without bias (BatchNorm follows)."""
    return nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=False)


class Bottleneck(nn.Module):
    """1x1 reduce -> 3x3 -> 1x1 expand (x4), each with BatchNorm, plus the shortcut.

    The shortcut is the identity, or a strided 1x1 conv + BatchNorm (``downsample``) when
    the block changes the resolution or the channel count.
    """

    def __init__(self, in_channels: int, width: int, stride: int = 1):
        super().__init__()
        out_channels = width * EXPANSION
        self.conv1 = conv1x1(in_channels, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, out_channels)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                conv1x1(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))  # strided here when the block downsamples
        x = self.bn3(self.conv3(x))
        return self.relu(x + shortcut)


def _make_layer(in_channels: int, blocks: int, width: int, stride: int) -> nn.Sequential:
    layers = [Bottleneck(in_channels, width, stride)]
    layers += [Bottleneck(width * EXPANSION, width) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class ResNet(nn.Module):
    """7x7/2 stem, 3x3/2 max-pool, four bottleneck stages (strides 1, 2, 2, 2), pool, classifier.

    ``num_classes=0`` builds the backbone alone (no ``fc``); ``features`` returns the
    stride-32 map, (N, 2048, H/32, W/32).
    """

    def __init__(self, stages: tuple[tuple[int, int], ...] = RESNET50_STAGES, num_classes: int = 1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, STEM_CHANNELS, 7, 2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(STEM_CHANNELS)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, padding=1)
        in_channels = STEM_CHANNELS
        for i, (blocks, width) in enumerate(stages, start=1):
            # layer1 ... layer4, the names torchvision uses
            setattr(self, f"layer{i}", _make_layer(in_channels, blocks, width, stride=1 if i == 1 else 2))
            in_channels = width * EXPANSION
        self.num_stages = len(stages)
        self.out_channels = in_channels  # 2048 for ResNet-50
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_channels, num_classes) if num_classes else None

    def features(self, x: Tensor) -> Tensor:
        """(N, 3, H, W) -> (N, 2048, H/32, W/32)."""
        check_image_batch(x)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # (N, 64, H/4, W/4)
        for i in range(1, self.num_stages + 1):
            x = getattr(self, f"layer{i}")(x)
        return x

    def forward(self, x: Tensor) -> Tensor:
        if self.fc is None:
            raise RuntimeError("this ResNet was built with num_classes=0; call features()")
        x = self.avgpool(self.features(x)).flatten(1)  # (N, 2048)
        return self.fc(x)


def resnet50(num_classes: int = 1000) -> ResNet:
    """ResNet-50 (He et al. 2016, Table 1): 3-4-6-3 bottleneck blocks.

    25,557,032 parameters with the 1000-class ``fc``; 23,508,032 without it
    (``num_classes=0``), the backbone the YOLOv1-ResNet variant freezes.
    """
    return ResNet(RESNET50_STAGES, num_classes)


def load_torchvision_state_dict(model: ResNet, state_dict: Mapping[str, Tensor]) -> None:
    """Copy a torchvision-format ResNet state dict into ``model``, key by key.

    Every key and shape is checked before anything is copied: on any missing,
    unexpected or mismatched key a ``ValueError`` names them and ``model`` is left
    unchanged. A headless model (``num_classes=0``) skips the ``fc.*`` entries of a
    classifier's state dict, since it has nowhere to put them.
    """
    own = model.state_dict()
    incoming = dict(state_dict)
    if model.fc is None:
        incoming = {k: v for k, v in incoming.items() if not k.startswith("fc.")}
    missing = sorted(own.keys() - incoming.keys())
    unexpected = sorted(incoming.keys() - own.keys())
    mismatched = sorted(
        f"{k}: expected {tuple(own[k].shape)}, got {tuple(incoming[k].shape)}"
        for k in own.keys() & incoming.keys()
        if tuple(own[k].shape) != tuple(incoming[k].shape)
    )
    problems = []
    for what, keys in (("missing", missing), ("unexpected", unexpected), ("mismatched", mismatched)):
        if keys:
            shown = ", ".join(keys[:8]) + (f" (+{len(keys) - 8} more)" if len(keys) > 8 else "")
            problems.append(f"{len(keys)} {what} key(s): {shown}")
    if problems:
        raise ValueError("cannot load this state dict into the ResNet: " + "; ".join(problems))
    with torch.no_grad():
        for key, tensor in own.items():
            tensor.copy_(incoming[key])
