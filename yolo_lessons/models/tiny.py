"""The tiny models people deploy on a laptop: YOLOv2-tiny (VOC and COCO) and YOLOv3-tiny.

Written by hand from Darknet's ``yolov2-tiny-voc.cfg``, ``yolov2-tiny.cfg`` and
``yolov3-tiny.cfg``, like the book's other networks (``darknet.cfg`` builds the same from the
cfg text, and the tests check the two agree). All three share a trunk of six 3x3 ConvBlocks of
16 to 512 filters, each followed by a 2x2 max-pool: stride 2 for the first five, **stride 1**
for the sixth, which keeps the 13 x 13 map 13 x 13. Darknet pads that pool with one column and
row of -inf on the right and bottom (``DarknetMaxPool``); a port that pads with zeros changes
the border cells wherever they are negative (chapter 13).

* ``yolov2_tiny_voc()``: trunk, 3x3 conv 1024, 3x3 conv 1024, 1x1 detector to 5 x 25 channels,
  ``[region]`` with its own five anchors; 15,861,773 parameters, 6.971 BFLOPs at 416.
* ``yolov2_tiny()``: the same with a 3x3 conv of 512 before an 80-class detector and YOLOv2's
  COCO anchors; 11,232,057 parameters, 5.406 BFLOPs.
* ``yolov3_tiny()``: trunk, 3x3 conv 1024, then two ``[yolo]`` heads at strides 32 and 16 (the
  second upsampled and routed with the 26 x 26 map of layer 8), six anchors; 8,852,366
  parameters, 5.565 BFLOPs; its ``.weights`` file is 35,434,956 bytes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .blocks import ConvBlock, DarknetMaxPool, check_image_batch
from .yolov2 import COCO_ANCHORS_V2

TRUNK_FILTERS: tuple[int, ...] = (16, 32, 64, 128, 256, 512)  # each: 3x3 ConvBlock, then 2x2 max-pool
LAST_POOL_STRIDE = 1  # the sixth pool: size=2 stride=1
# yolov2-tiny-voc.cfg's [region] anchors, grid cells (its own; yolov2-tiny.cfg uses yolov2.cfg's)
TINY_VOC_ANCHORS: tuple[tuple[float, float], ...] = ((1.08, 1.19), (3.42, 4.41), (6.63, 11.38), (9.42, 5.11),
                                                      (16.62, 10.52))  # fmt: skip
# yolov3-tiny.cfg's six [yolo] anchors (input pixels) and which each head takes: stride 32, then 16
TINY_V3_ANCHORS: tuple[tuple[int, int], ...] = ((10, 14), (23, 27), (37, 58), (81, 82), (135, 169), (344, 319))
TINY_V3_MASKS: tuple[tuple[int, ...], ...] = ((3, 4, 5), (0, 1, 2))
TINY_V3_STRIDES: tuple[int, ...] = (32, 16)


def tiny_trunk() -> nn.Sequential:
    """Layers 0-11 of every tiny cfg: (3x3 ConvBlock, 2x2 max-pool) x 6, the last pool stride 1."""
    layers: list[nn.Module] = []
    in_channels = 3
    for i, filters in enumerate(TRUNK_FILTERS):
        stride = LAST_POOL_STRIDE if i == len(TRUNK_FILTERS) - 1 else 2
        layers += [ConvBlock(in_channels, filters, 3), DarknetMaxPool(2, stride)]
        in_channels = filters
    return nn.Sequential(*layers)


class YOLOv2Tiny(nn.Module):
    """The tiny trunk, a 3x3 conv of 1024, a 3x3 conv of ``head_channels``, the 1x1 detector.

    Output (N, A * (5 + C), H/32, W/32), anchor-major as ``YOLOv2``; decode with ``decode_yolov2``.
    """

    def __init__(self, num_classes: int, anchors: tuple[tuple[float, float], ...], head_channels: int):
        super().__init__()
        self.num_classes = num_classes
        self.register_buffer("anchors", torch.tensor(anchors, dtype=torch.float32), persistent=False)
        self.trunk = tiny_trunk()
        self.extra = ConvBlock(TRUNK_FILTERS[-1], 1024, 3)  # layer 12
        self.head = ConvBlock(1024, head_channels, 3)  # layer 13
        self.detect = nn.Conv2d(head_channels, len(anchors) * (5 + num_classes), 1)  # layer 14

    def forward(self, x: Tensor) -> Tensor:
        check_image_batch(x)
        return self.detect(self.head(self.extra(self.trunk(x))))  # (N, A*(5+C), 13, 13) at 416


class YOLOv3Tiny(nn.Module):
    """The tiny trunk and two ``[yolo]`` heads; returns the raw outputs at strides 32 and 16."""

    def __init__(
        self,
        num_classes: int = 80,
        anchors: tuple[tuple[float, float], ...] = TINY_V3_ANCHORS,
        masks: tuple[tuple[int, ...], ...] = TINY_V3_MASKS,
    ):
        super().__init__()
        self.num_classes, self.masks, self.strides = num_classes, masks, TINY_V3_STRIDES
        self.register_buffer("anchors", torch.tensor(anchors, dtype=torch.float32), persistent=False)
        out = [len(mask) * (5 + num_classes) for mask in masks]
        self.trunk = tiny_trunk()  # layer 8 (the 256-filter conv) feeds the second head
        self.extra = ConvBlock(TRUNK_FILTERS[-1], 1024, 3)  # layer 12
        self.neck32 = ConvBlock(1024, 256, 1)  # layer 13
        self.detect32 = nn.Sequential(ConvBlock(256, 512, 3), nn.Conv2d(512, out[0], 1))  # 14, 15; [yolo] 16
        self.lateral16 = ConvBlock(256, 128, 1)  # layer 18, after [route] -4 (17)
        self.detect16 = nn.Sequential(ConvBlock(128 + 256, 256, 3), nn.Conv2d(256, out[1], 1))  # 21, 22; [yolo] 23

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        check_image_batch(x)
        x = self.trunk[:9](x)  # layers 0-8
        stride16 = x  # (N, 256, 26, 26) at 416: [route] -1, 8 reads it
        p32 = self.neck32(self.extra(self.trunk[9:](x)))  # (N, 256, 13, 13)
        up = F.interpolate(self.lateral16(p32), scale_factor=2, mode="nearest")  # [upsample] 19
        return self.detect32(p32), self.detect16(torch.cat([up, stride16], dim=1))  # [route] 20: upsampled first


def yolov2_tiny_voc(num_classes: int = 20) -> YOLOv2Tiny:
    """``yolov2-tiny-voc.cfg``: 15,861,773 parameters at 20 classes."""
    return YOLOv2Tiny(num_classes, TINY_VOC_ANCHORS, head_channels=1024)


def yolov2_tiny(num_classes: int = 80) -> YOLOv2Tiny:
    """``yolov2-tiny.cfg``: 11,232,057 parameters at 80 classes (COCO anchors of ``yolov2.cfg``)."""
    return YOLOv2Tiny(num_classes, COCO_ANCHORS_V2, head_channels=512)


def yolov3_tiny(num_classes: int = 80) -> YOLOv3Tiny:
    """``yolov3-tiny.cfg``: 8,852,366 parameters at 80 classes, heads at strides 32 and 16."""
    return YOLOv3Tiny(num_classes)
