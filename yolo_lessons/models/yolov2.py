"""YOLOv2, laid out as Darknet's ``yolov2-voc.cfg`` (and ``yolov2.cfg`` for COCO).

Redmon & Farhadi, "YOLO9000: Better, Faster, Stronger" (CVPR 2017), section 2
("passthrough layer"), on the Darknet-19 backbone.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .blocks import ConvBlock, darknet_reorg
from .darknet19 import Darknet19

# [region] anchors of yolov2-voc.cfg and yolov2.cfg, as (width, height) in grid cells.
VOC_ANCHORS: tuple[tuple[float, float], ...] = (
    (1.3221, 1.73145), (3.19275, 4.00944), (5.05587, 8.09892), (9.47112, 4.84053), (11.2364, 10.0071),
)
COCO_ANCHORS_V2: tuple[tuple[float, float], ...] = (
    (0.57273, 0.677385), (1.87446, 2.06253), (3.33843, 5.47434), (7.88282, 3.52778), (9.77052, 9.16828),
)

HEAD_CHANNELS = 1024
PASSTHROUGH_CHANNELS = 64  # the 1x1 conv of today's cfg; the paper-era network has none
REORG_STRIDE = 2


class YOLOv2(nn.Module):
    """Darknet-19 convs, two extra 3x3 convs, the passthrough branch, and a 1x1 detector.

    Output: (N, A * (5 + classes), H/32, W/32), anchor-major: the channels of anchor
    ``a`` are ``a*(5+C) ... a*(5+C)+4+C`` holding tx, ty, tw, th, objectness, classes.
    ``passthrough_channels=None`` builds the paper-era network, which reorganises the
    512-channel map directly (2048 channels after reorg) instead of reducing it to 64.
    """

    def __init__(
        self,
        num_classes: int = 20,
        anchors: tuple[tuple[float, float], ...] = VOC_ANCHORS,
        passthrough_channels: int | None = PASSTHROUGH_CHANNELS,
    ):
        super().__init__()
        self.num_classes = num_classes
        self.register_buffer("anchors", torch.tensor(anchors, dtype=torch.float32), persistent=False)
        self.backbone = Darknet19(num_classes=0)
        self.extra = nn.Sequential(
            ConvBlock(self.backbone.out_channels, HEAD_CHANNELS, 3),
            ConvBlock(HEAD_CHANNELS, HEAD_CHANNELS, 3),
        )
        fine_channels = 512
        if passthrough_channels is None:
            self.passthrough = nn.Identity()
        else:
            self.passthrough = ConvBlock(fine_channels, passthrough_channels, 1)
            fine_channels = passthrough_channels
        fine_channels *= REORG_STRIDE**2  # 64 -> 256 (or 512 -> 2048)
        self.fuse = ConvBlock(fine_channels + HEAD_CHANNELS, HEAD_CHANNELS, 3)
        self.detect = nn.Conv2d(HEAD_CHANNELS, len(anchors) * (5 + num_classes), 1)

    def forward(self, x: Tensor) -> Tensor:
        stride16, stride32 = self.backbone.feature_maps(x)  # 26x26x512, 13x13x1024 at 416
        coarse = self.extra(stride32)  # 13x13x1024
        fine = darknet_reorg(self.passthrough(stride16), REORG_STRIDE)  # 13x13x256
        x = torch.cat([fine, coarse], dim=1)  # [route] -1,-4: the reorg output comes first
        return self.detect(self.fuse(x))


def yolov2(
    num_classes: int = 20,
    anchors: tuple[tuple[float, float], ...] | None = None,
    passthrough_channels: int | None = PASSTHROUGH_CHANNELS,
) -> YOLOv2:
    """YOLOv2 as in today's ``yolov2-voc.cfg``: 23 weighted layers, output stride 32.

    Default anchors are the VOC ones (grid units) for 20 classes, the COCO ones of
    ``yolov2.cfg`` otherwise. 50,655,389 trainable parameters for 20 classes.
    """
    if anchors is None:
        anchors = VOC_ANCHORS if num_classes == 20 else COCO_ANCHORS_V2
    return YOLOv2(num_classes, anchors, passthrough_channels)
