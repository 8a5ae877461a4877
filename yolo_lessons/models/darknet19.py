"""Darknet-19, the YOLOv2 classifier and backbone.

Redmon & Farhadi, "YOLO9000: Better, Faster, Stronger" (CVPR 2017), Table 6, and
Darknet's ``darknet19.cfg``.
"""

from __future__ import annotations

from torch import Tensor, nn

from .blocks import ConvBlock, check_image_batch

# Table 6, one row per conv: (filters, kernel size). Each tuple is a stage; a 2x2/2
# max-pool sits between consecutive stages (after conv 1, 2, 5, 8 and 13).
DARKNET19_STAGES: tuple[tuple[tuple[int, int], ...], ...] = (
    ((32, 3),),
    ((64, 3),),
    ((128, 3), (64, 1), (128, 3)),
    ((256, 3), (128, 1), (256, 3)),
    ((512, 3), (256, 1), (512, 3), (256, 1), (512, 3)),
    ((1024, 3), (512, 1), (1024, 3), (512, 1), (1024, 3)),
)


def _make_stage(in_channels: int, convs: tuple[tuple[int, int], ...], pool: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.MaxPool2d(2, 2)] if pool else []
    for out_channels, kernel_size in convs:
        layers.append(ConvBlock(in_channels, out_channels, kernel_size))
        in_channels = out_channels
    return nn.Sequential(*layers)


class Darknet19(nn.Module):
    """18 ConvBlocks in six stages, then a 1x1 classifier conv and global average pooling.

    ``num_classes=0`` builds the backbone alone (no classifier), as YOLOv2 uses it.
    """

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        stages, in_channels = [], 3
        for i, convs in enumerate(DARKNET19_STAGES):
            stages.append(_make_stage(in_channels, convs, pool=i > 0))
            in_channels = convs[-1][0]
        self.stages = nn.ModuleList(stages)
        self.out_channels = in_channels  # 1024
        self.classifier = nn.Conv2d(in_channels, num_classes, 1) if num_classes else None

    def feature_maps(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Return the stride-16 (N, 512, H/16, W/16) and stride-32 (N, 1024, H/32, W/32) maps."""
        check_image_batch(x)
        for stage in self.stages[:-1]:
            x = stage(x)
        stride16 = x  # conv 13's output, before the last pool: 26x26x512 at 416
        return stride16, self.stages[-1](stride16)

    def forward(self, x: Tensor) -> Tensor:
        if self.classifier is None:
            raise RuntimeError("this Darknet19 was built with num_classes=0; call feature_maps()")
        _, x = self.feature_maps(x)
        x = self.classifier(x)  # (N, classes, H/32, W/32): conv 19, no BN, no activation
        return x.mean(dim=(2, 3))  # global average pool -> (N, classes) logits


def darknet19(num_classes: int = 1000) -> Darknet19:
    """Darknet-19 as in the YOLOv2 paper's Table 6 (19 weighted layers, 5 max-pools).

    20,842,376 trainable parameters for 1000 classes; 2,790,989,824 multiply-adds at
    224x224, which is the paper's "5.58 billion operations" counting 2 per multiply-add.
    """
    return Darknet19(num_classes)
