"""Darknet-53, the YOLOv3 backbone.

Redmon & Farhadi, "YOLOv3: An Incremental Improvement" (2018), Table 1, and Darknet's
``darknet53.cfg`` (whose first 52 convolutions are also the first 52 of ``yolov3.cfg``).
"""

from __future__ import annotations

from torch import Tensor, nn

from .blocks import ConvBlock, ResidualBlock, check_image_batch

STEM_CHANNELS = 32
# Table 1, one row per stage: (channels, residual blocks). Each stage opens with a
# 3x3 stride-2 ConvBlock that doubles the channels and halves the resolution.
DARKNET53_STAGES: tuple[tuple[int, int], ...] = ((64, 1), (128, 2), (256, 8), (512, 8), (1024, 4))


def make_stage(in_channels: int, channels: int, blocks: int) -> nn.Sequential:
    """One row of Table 1: a 3x3 stride-2 ConvBlock to ``channels``, then ``blocks`` residual units."""
    return nn.Sequential(
        ConvBlock(in_channels, channels, 3, stride=2),
        *[ResidualBlock(channels) for _ in range(blocks)],
    )



def stage_outputs(stem: nn.Module, stages: nn.ModuleList, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The stem, then the five stages; returns the outputs of the last three (strides 8, 16, 32).

    These are the maps YOLOv3 routes to its heads (``[route] -1, 36`` and ``-1, 61`` read the
    stride-8 and stride-16 ones). Shared by ``Darknet53`` and the small YOLOv3's backbone.
    """
    check_image_batch(x)
    x = stem(x)
    for stage in stages[:3]:
        x = stage(x)
    stride8 = x  # (N, 256, H/8, W/8) in Darknet-53
    stride16 = stages[3](stride8)  # (N, 512, H/16, W/16)
    return stride8, stride16, stages[4](stride16)  # ..., (N, 1024, H/32, W/32)

class Darknet53(nn.Module):
    """A 3x3 stem conv, five downsampling stages, then average pool and a classifier.

    The classifier is what ``darknet53.cfg`` has: a plain 1x1 convolution (with bias, no
    BatchNorm) applied to the 1x1x1024 pooled map -- the 53rd convolutional layer that
    gives the network its name. Table 1 of the paper draws it as "Connected"; on a 1x1
    map the two are the same computation with the same parameters, and keeping it a
    conv lets Darknet's own classifier weights load without a reshape.
    ``num_classes=0`` builds the backbone alone (no classifier), as YOLOv3 uses it.
    """

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self.stem = ConvBlock(3, STEM_CHANNELS, 3)
        stages, in_channels = [], STEM_CHANNELS
        for channels, blocks in DARKNET53_STAGES:
            stages.append(make_stage(in_channels, channels, blocks))
            in_channels = channels
        self.stages = nn.ModuleList(stages)
        self.out_channels = in_channels  # 1024
        self.classifier = nn.Conv2d(in_channels, num_classes, 1) if num_classes else None

    def feature_maps(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Return the stride-8 (256 ch), stride-16 (512 ch) and stride-32 (1024 ch) maps."""
        return stage_outputs(self.stem, self.stages, x)

    def forward(self, x: Tensor) -> Tensor:
        if self.classifier is None:
            raise RuntimeError("this Darknet53 was built with num_classes=0; call feature_maps()")
        *_, x = self.feature_maps(x)
        x = x.mean(dim=(2, 3), keepdim=True)  # global average pool: (N, 1024, 1, 1)
        return self.classifier(x).flatten(1)  # the 1x1 conv, then (N, classes)


def darknet53(num_classes: int = 1000) -> Darknet53:
    """Darknet-53 as in the YOLOv3 paper's Table 1 and ``darknet53.cfg`` (52 ConvBlocks + a 1x1 conv classifier).

    41,609,928 trainable parameters for 1000 classes; 9,285,115,904 multiply-adds at
    256x256 (18.57 billion operations; the paper prints 18.7).
    """
    return Darknet53(num_classes)
