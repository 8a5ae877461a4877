"""A scaled-down YOLOv2 that trains on a laptop CPU in about a minute.

Same ideas as ``yolov2.py`` (Redmon & Farhadi, "YOLO9000: Better, Faster, Stronger",
CVPR 2017, section 2; Darknet's ``yolov2-voc.cfg``), shrunk for 96 x 96 images of the
book's synthetic shapes (``data.shapes``):

* the backbone is the first five stages of Darknet-19 (paper, Table 6): the same
  3x3 / 1x1 / 3x3 pattern and 2x2 max-pools, with every filter count divided by
  ``32 / width`` (``width=32`` gives Darknet-19's own 32, 64, 128, 256, 512); the fifth
  stage keeps only the first three of its five convs (the head adds two more 3x3s);
* it stops after four pools, so the **output stride is 16, not 32**: a 96 x 96 image
  gives a 6 x 6 grid (stride 32 would leave 3 x 3 cells for up to four objects);
* two extra 3x3 convs (``yolov2-voc.cfg``'s two 1024-filter convs, here ``16 * width``);
* the passthrough: the map one pool before the end (stride 8, 12 x 12 at 96 px) goes
  through a 1x1 conv (``yolov2-voc.cfg``'s 64 filters for 512 channels, here ``width``
  for ``8 * width``), is folded 2 x 2 into channels and concatenated in front of the
  coarse map (the cfg's ``[route] -1,-4``); the fold is selectable, ``darknet_reorg``
  (what Darknet computes) or ``space_to_depth`` (what the paper describes), or the
  branch is left out (``passthrough=None``);
* a 3x3 conv on the concatenation and a 1x1 detector conv with a bias, no BatchNorm,
  no activation, giving ``A * (5 + C)`` channels anchor-major, exactly the layout of
  ``YOLOv2`` (decode it with ``decode_yolov2``, train it with ``region_loss``).

At ``width=8``, 3 classes and 5 anchors: 16 weighted layers, 692,512 trainable parameters
and 38,965,248 multiply-adds per 96 x 96 image (YOLOv2-VOC: 23 layers, 50.7 M and 14.7 G
at 416 x 416).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .blocks import ConvBlock, check_image_batch, darknet_reorg, space_to_depth

# Darknet-19's first five stages (YOLO9000 Table 6, the fifth cut to three convs), one row per
# conv, (filters / width, kernel size). A 2x2/2 max-pool sits between consecutive stages.
SMALL_YOLOV2_STAGES: tuple[tuple[tuple[int, int], ...], ...] = (
    ((1, 3),),  # 96 x 96 at a 96-pixel input
    ((2, 3),),  # 48 x 48
    ((4, 3), (2, 1), (4, 3)),  # 24 x 24
    ((8, 3), (4, 1), (8, 3)),  # 12 x 12: the passthrough's "fine" map, stride 8
    ((16, 3), (8, 1), (16, 3)),  # 6 x 6: stride 16, the output grid
)
EXTRA_CONVS = 2  # yolov2-voc.cfg's two 3x3 convs after the backbone, 16 * width filters each
PASSTHROUGH_FILTERS = 1  # the 1x1 conv before the fold: width filters (the cfg: 64 of 512, 1/8)
STRIDE = 16  # input pixels per output grid cell: four 2x2 max-pools
FOLD_STRIDE = 2  # the passthrough folds 2 x 2 neighbourhoods, as [reorg] stride=2
PASSTHROUGHS = ("darknet_reorg", "space_to_depth", None)
FOLDS = {"darknet_reorg": darknet_reorg, "space_to_depth": space_to_depth}


def _make_stage(in_channels: int, convs: tuple[tuple[int, int], ...], width: int, pool: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.MaxPool2d(2, 2)] if pool else []
    for multiple, kernel_size in convs:
        layers.append(ConvBlock(in_channels, multiple * width, kernel_size))
        in_channels = multiple * width
    return nn.Sequential(*layers)


class SmallYOLOv2(nn.Module):
    """Darknet-19's first five stages at ``width`` / 32 of its filters, YOLOv2's head, stride 16.

    Output: (N, A * (5 + classes), H/16, W/16), anchor-major like ``YOLOv2``: the channels of
    anchor ``a`` are ``a*(5+C) ... a*(5+C)+4+C`` holding tx, ty, tw, th, objectness, classes.
    ``anchors`` (A, 2) are in grid cells of that stride-16 grid (one cell = 16 input pixels).
    """

    def __init__(
        self,
        num_classes: int,
        anchors: tuple[tuple[float, float], ...] | list | Tensor,
        width: int = 8,
        passthrough: str | None = "darknet_reorg",
    ):
        super().__init__()
        anchors = torch.as_tensor(anchors, dtype=torch.float32)
        if anchors.dim() != 2 or anchors.shape[1] != 2 or anchors.shape[0] == 0:
            raise ValueError(f"expected anchors as (A, 2) widths and heights in grid cells, got {tuple(anchors.shape)}")
        if not bool((anchors > 0).all()):
            raise ValueError(f"expected positive anchor widths and heights, got {anchors.tolist()}")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"expected a positive integer num_classes, got {num_classes!r}")
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ValueError(f"expected a positive integer width (filters of the first conv), got {width!r}")
        if passthrough not in PASSTHROUGHS:
            raise ValueError(f"expected passthrough in {PASSTHROUGHS}, got {passthrough!r}")
        if passthrough == "darknet_reorg" and (PASSTHROUGH_FILTERS * width) % FOLD_STRIDE**2:
            raise ValueError(
                f"darknet_reorg folds channels in groups of {FOLD_STRIDE**2}: expected a width divisible by "
                f"{FOLD_STRIDE**2}, got {width}"
            )
        self.num_classes, self.width, self.passthrough_fold = num_classes, width, passthrough
        self.register_buffer("anchors", anchors, persistent=False)  # (A, 2) grid cells

        stages, in_channels = [], 3
        for i, convs in enumerate(SMALL_YOLOV2_STAGES):
            stages.append(_make_stage(in_channels, convs, width, pool=i > 0))
            in_channels = convs[-1][0] * width
        self.stages = nn.ModuleList(stages)
        fine_channels = SMALL_YOLOV2_STAGES[-2][-1][0] * width  # 8 * width at stride 8
        head_channels = in_channels  # 16 * width: the head keeps the backbone's last width, as the cfg's 1024
        self.extra = nn.Sequential(
            ConvBlock(in_channels, head_channels, 3),
            *(ConvBlock(head_channels, head_channels, 3) for _ in range(EXTRA_CONVS - 1)),
        )
        if passthrough is None:
            self.passthrough, folded_channels = None, 0
        else:
            self.passthrough = ConvBlock(fine_channels, PASSTHROUGH_FILTERS * width, 1)
            folded_channels = PASSTHROUGH_FILTERS * width * FOLD_STRIDE**2  # 8 -> 32 at width 8
        self.fuse = ConvBlock(folded_channels + head_channels, head_channels, 3)
        self.detect = nn.Conv2d(head_channels, len(anchors) * (5 + num_classes), 1)

    def forward(self, x: Tensor) -> Tensor:
        check_image_batch(x, multiple=STRIDE)
        for stage in self.stages[:-1]:
            x = stage(x)
        fine = x  # (N, 8w, H/8, W/8): 12 x 12 at 96 px
        coarse = self.extra(self.stages[-1](fine))  # (N, 16w, H/16, W/16): 6 x 6
        if self.passthrough is not None:
            folded = FOLDS[self.passthrough_fold](self.passthrough(fine), FOLD_STRIDE)  # (N, 4w, H/16, W/16)
            coarse = torch.cat([folded, coarse], dim=1)  # [route] -1,-4: the folded map comes first
        return self.detect(self.fuse(coarse))  # (N, A*(5+C), H/16, W/16)


def small_yolov2(
    num_classes: int = 3,
    anchors: tuple[tuple[float, float], ...] | list | Tensor | None = None,
    width: int = 8,
    passthrough: str | None = "darknet_reorg",
) -> SmallYOLOv2:
    """A scaled-down YOLOv2 (see the module docstring): stride 16, so 6 x 6 cells at 96 x 96.

    ``anchors`` (A, 2) in cells of the stride-16 grid; by default five placeholder shapes
    (the training command replaces them by k-means anchors of its training boxes).
    ``passthrough``: ``"darknet_reorg"`` (Darknet's ``[reorg]``), ``"space_to_depth"`` (the
    paper's fold) or ``None`` (no passthrough branch; the 3x3 ``fuse`` conv then reads the
    coarse map alone, so every variant has the same depth).
    """
    if anchors is None:
        anchors = DEFAULT_ANCHORS
    return SmallYOLOv2(num_classes, anchors, width, passthrough)


# Placeholder anchors in cells of a 6 x 6 grid (16 px): 1 to 3.5 cells, i.e. 1/6 to 0.6 of
# a 96-pixel image, the range of the shapes ``data.shapes`` draws. Train with k-means ones.
DEFAULT_ANCHORS: tuple[tuple[float, float], ...] = ((1.0, 1.0), (1.5, 2.5), (2.5, 1.5), (2.5, 2.5), (3.5, 3.5))
