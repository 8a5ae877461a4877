"""YOLOv3, laid out as Darknet's ``yolov3.cfg``.

Redmon & Farhadi, "YOLOv3: An Incremental Improvement" (2018), section 2.3
("Predictions Across Scales"), on the Darknet-53 backbone.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .blocks import ConvBlock
from .darknet53 import Darknet53

# The nine [yolo] anchors of yolov3.cfg, (width, height) in pixels of the network input, whatever
# its size: the same nine numbers serve at 320, 416 or 608 (the decoding divides by the input size).
COCO_ANCHORS: tuple[tuple[int, int], ...] = (
    (10, 13), (16, 30), (33, 23), (30, 61), (62, 45), (59, 119), (116, 90), (156, 198), (373, 326),
)
# Which anchors each head uses, in head order: stride 32, 16, 8 (big objects first).
ANCHOR_MASKS: tuple[tuple[int, ...], ...] = ((6, 7, 8), (3, 4, 5), (0, 1, 2))
STRIDES: tuple[int, ...] = (32, 16, 8)


def conv_set(in_channels: int, channels: int) -> nn.Sequential:
    """The five alternating 1x1 / 3x3 ConvBlocks that open each YOLOv3 scale."""
    wide = 2 * channels
    return nn.Sequential(
        ConvBlock(in_channels, channels, 1),
        ConvBlock(channels, wide, 3),
        ConvBlock(wide, channels, 1),
        ConvBlock(channels, wide, 3),
        ConvBlock(wide, channels, 1),
    )


def detector(channels: int, out_channels: int) -> nn.Sequential:
    """A 3x3 ConvBlock, then the 1x1 conv (with bias, linear) that feeds a [yolo] layer."""
    return nn.Sequential(ConvBlock(channels, 2 * channels, 3), nn.Conv2d(2 * channels, out_channels, 1))


class YOLOv3(nn.Module):
    """Darknet-53 and three detection scales; returns outputs at strides 32, 16, 8."""

    def __init__(
        self,
        num_classes: int = 80,
        anchors: tuple[tuple[float, float], ...] = COCO_ANCHORS,
        masks: tuple[tuple[int, ...], ...] = ANCHOR_MASKS,
    ):
        super().__init__()
        self.num_classes = num_classes
        self.register_buffer("anchors", torch.tensor(anchors, dtype=torch.float32), persistent=False)
        self.masks = masks
        out = [len(mask) * (5 + num_classes) for mask in masks]
        self.backbone = Darknet53(num_classes=0)
        self.neck32 = conv_set(1024, 512)
        self.detect32 = detector(512, out[0])
        self.lateral16 = ConvBlock(512, 256, 1)
        self.neck16 = conv_set(256 + 512, 256)
        self.detect16 = detector(256, out[1])
        self.lateral8 = ConvBlock(256, 128, 1)
        self.neck8 = conv_set(128 + 256, 128)
        self.detect8 = detector(128, out[2])

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        stride8, stride16, stride32 = self.backbone.feature_maps(x)
        p32 = self.neck32(stride32)  # 13x13x512 at 416
        up = F.interpolate(self.lateral16(p32), scale_factor=2, mode="nearest")  # 26x26x256
        p16 = self.neck16(torch.cat([up, stride16], dim=1))  # upsampled tensor first
        up = F.interpolate(self.lateral8(p16), scale_factor=2, mode="nearest")  # 52x52x128
        p8 = self.neck8(torch.cat([up, stride8], dim=1))
        return self.detect32(p32), self.detect16(p16), self.detect8(p8)


def yolov3(
    num_classes: int = 80,
    anchors: tuple[tuple[float, float], ...] = COCO_ANCHORS,
    masks: tuple[tuple[int, ...], ...] = ANCHOR_MASKS,
) -> YOLOv3:
    """YOLOv3 as in ``yolov3.cfg``: 75 weighted layers, heads at strides 32, 16 and 8.

    61,949,149 trainable parameters for 80 classes; 32,932,037,632 multiply-adds at 416.
    """
    return YOLOv3(num_classes, anchors, masks)
