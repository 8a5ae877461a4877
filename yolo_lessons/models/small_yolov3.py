"""A scaled-down YOLOv3 with three heads that trains on a laptop CPU.

Same ideas as ``yolov3.py`` (Redmon & Farhadi, "YOLOv3: An Incremental Improvement", 2018,
section 2.3 "Predictions Across Scales"; Darknet's ``yolov3.cfg``), shrunk for 128 x 128
images of the book's synthetic shapes (``data.shapes``):

* the backbone is Darknet-53's layout (paper, Table 1) at ``width / 32`` of its filters and
  far fewer residual blocks: a 3x3 stem conv of ``width`` filters, then five stages, each a
  3x3 stride-2 ``ConvBlock`` that doubles the channels followed by ``ResidualBlock``\\ s
  (``SMALL_YOLOV3_STAGES``: one residual unit per stage instead of Darknet-53's 1, 2, 8, 8, 4);
* the neck and heads are YOLOv3's, built from the same pieces as ``yolov3.py``
  (``conv_set`` and ``detector``): at stride 32 a conv set and a detector; then a 1x1 conv
  halves the channels, the map is upsampled x2 (``[upsample] stride=2``) and concatenated
  with the backbone's stride-16 map, **the upsampled tensor first** (``[route] -1, 61``),
  and the same again down to stride 8 (``[route] -1, 36``);
* every detector is a 3x3 ``ConvBlock`` and a 1x1 conv with a bias, giving
  ``3 * (5 + C)`` channels anchor-major (decode with ``detection.decode.decode_yolov3``, train with
  ``losses.yolo_loss``).

Anchors: nine (w, h) in **pixels of the network input**, as a ``[yolo]`` layer's
``anchors``, sorted by area; the three smallest go to the finest grid (stride 8), the
middle three to stride 16, the three largest to stride 32: ``masks`` = 6,7,8 / 3,4,5 /
0,1,2 in head order, exactly as ``yolov3.cfg``. The training command uses nine k-means
anchors of its training boxes (``data.anchors.kmeans_anchors`` returns them sorted by area).

At ``width=8`` and 3 classes: 39 weighted layers, 1,176,736 trainable parameters and
66,076,672 multiply-adds per 128 x 128 image (grids 4 x 4, 8 x 8 and 16 x 16). YOLOv3 on
COCO: 75 layers, 61.9 M parameters, 32.9 G multiply-adds at 416 x 416. The single-scale
comparison is ``small_yolov2``: 692,512 parameters and 69,271,552 multiply-adds at 128 x 128.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .blocks import ConvBlock
from .darknet53 import make_stage, stage_outputs
from .yolov3 import ANCHOR_MASKS, STRIDES, conv_set, detector

STEM_MULTIPLE = 1  # the stem conv has width filters (Darknet-53: 32 at width 32)
# Darknet-53's Table 1 shrunk, one row per stage: (channels / width, residual blocks). Each
# stage opens with a 3x3 stride-2 ConvBlock doubling the channels (Darknet-53: 64, 128,
# 256, 512, 1024 channels with 1, 2, 8, 8, 4 blocks).
SMALL_YOLOV3_STAGES: tuple[tuple[int, int], ...] = (
    (2, 1),  # stride 2: 64 x 64 at a 128-pixel input
    (4, 1),  # stride 4: 32 x 32
    (8, 1),  # stride 8: 16 x 16, the finest head's route
    (16, 1),  # stride 16: 8 x 8, the middle head's route
    (32, 1),  # stride 32: 4 x 4, the coarsest head
)
# Each head's conv set has (channels / width) 1x1 filters. YOLOv3's are 512, 256, 128, half of
# the backbone map they read; ours are a quarter (64, 32, 16 at width 8), which keeps the
# multiply-adds close to small_yolov2's at the same input size.
NECK_MULTIPLES: tuple[int, ...] = (8, 4, 2)  # stride 32, 16, 8
MASKS = ANCHOR_MASKS  # ((6, 7, 8), (3, 4, 5), (0, 1, 2)): big anchors on the coarse grid
NUM_ANCHORS = 9
HEAD_CHOICES = (3, 1)  # three heads at strides 32, 16, 8, or the stride-16 one alone with all nine anchors

# Placeholder anchors (pixels of a 128 x 128 input, sorted by area): roughly 5 to 70 pixels,
# the range of ``data.shapes.make_image(size=128, min_side=0.03, max_side=0.6)``. Train with k-means ones.
DEFAULT_ANCHORS: tuple[tuple[float, float], ...] = (
    (5, 6), (9, 8), (12, 16), (20, 14), (22, 26), (36, 28), (32, 46), (52, 50), (72, 70),
)


class SmallYOLOv3(nn.Module):
    """Darknet-53's layout at ``width / 32`` of its filters and YOLOv3's three heads.

    Returns three raw outputs at strides 32, 16, 8 (head order of ``masks``), each
    (N, 3 * (5 + C), H/stride, W/stride), anchor-major like ``YOLOv3``; with ``heads=1``, one
    output at stride 16 of (N, 9 * (5 + C), H/16, W/16).
    ``anchors`` (9, 2) are in pixels of the network input, sorted by area.
    """

    def __init__(
        self,
        num_classes: int,
        anchors: tuple[tuple[float, float], ...] | list | Tensor,
        width: int = 8,
        heads: int = 3,
    ):
        super().__init__()
        anchors = torch.as_tensor(anchors, dtype=torch.float32)
        if anchors.dim() != 2 or anchors.shape != (NUM_ANCHORS, 2):
            raise ValueError(
                f"expected anchors as ({NUM_ANCHORS}, 2) widths and heights in input pixels (three per "
                f"head), got shape {tuple(anchors.shape)}"
            )
        if not bool((anchors > 0).all()):
            raise ValueError(f"expected positive anchor widths and heights, got {anchors.tolist()}")
        areas = anchors[:, 0] * anchors[:, 1]
        if not bool((areas[1:] >= areas[:-1]).all()):
            raise ValueError(
                f"expected anchors sorted by area, smallest first (the masks give the three smallest to "
                f"stride 8), got areas {areas.tolist()}"
            )
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"expected a positive integer num_classes, got {num_classes!r}")
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ValueError(f"expected a positive integer width (filters of the stem conv), got {width!r}")
        if heads not in HEAD_CHOICES or isinstance(heads, bool):
            raise ValueError(f"expected heads 3 (strides 32, 16, 8) or 1 (stride 16 alone), got {heads!r}")
        self.num_classes, self.width, self.heads = num_classes, width, heads
        # One head: the stride-16 detector alone predicts with all nine anchors (the comparison of
        # chapter 10: same backbone, same neck up to stride 16, same loss, one scale instead of three).
        self.masks = MASKS if heads == 3 else (tuple(range(NUM_ANCHORS)),)
        self.strides = STRIDES if heads == 3 else (16,)  # the order of the outputs
        self.register_buffer("anchors", anchors, persistent=False)  # (9, 2) input pixels

        self.stem = ConvBlock(3, STEM_MULTIPLE * width, 3)
        stages, in_channels = [], STEM_MULTIPLE * width
        for multiple, blocks in SMALL_YOLOV3_STAGES:
            stages.append(make_stage(in_channels, multiple * width, blocks))
            in_channels = multiple * width
        self.stages = nn.ModuleList(stages)
        route16, route8 = SMALL_YOLOV3_STAGES[3][0] * width, SMALL_YOLOV3_STAGES[2][0] * width  # 16w, 8w
        n32, n16, n8 = (m * width for m in NECK_MULTIPLES)  # 8w, 4w, 2w
        per_anchor = 5 + num_classes
        self.neck32 = conv_set(in_channels, n32)
        self.lateral16 = ConvBlock(n32, n32 // 2, 1)  # 4w; yolov3.cfg: 256 filters of 512
        self.neck16 = conv_set(n32 // 2 + route16, n16)
        if heads == 1:
            self.detect16 = detector(n16, NUM_ANCHORS * per_anchor)  # 9 * (5 + C)
            return
        self.detect32 = detector(n32, len(MASKS[0]) * per_anchor)  # 3 * (5 + C) each
        self.detect16 = detector(n16, len(MASKS[1]) * per_anchor)
        self.lateral8 = ConvBlock(n16, n16 // 2, 1)  # 2w; yolov3.cfg: 128 filters of 256
        self.neck8 = conv_set(n16 // 2 + route8, n8)
        self.detect8 = detector(n8, len(MASKS[2]) * per_anchor)

    def feature_maps(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The backbone's stride-8 (8w channels), stride-16 (16w) and stride-32 (32w) maps."""
        return stage_outputs(self.stem, self.stages, x)

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        stride8, stride16, stride32 = self.feature_maps(x)
        p32 = self.neck32(stride32)  # (N, 8w, H/32, W/32)
        up = F.interpolate(self.lateral16(p32), scale_factor=2, mode="nearest")  # (N, 4w, H/16, W/16)
        p16 = self.neck16(torch.cat([up, stride16], dim=1))  # upsampled tensor first; (N, 4w, H/16, W/16)
        if self.heads == 1:
            return (self.detect16(p16),)  # (N, 9 * (5 + C), H/16, W/16)
        up = F.interpolate(self.lateral8(p16), scale_factor=2, mode="nearest")  # (N, 2w, H/8, W/8)
        p8 = self.neck8(torch.cat([up, stride8], dim=1))  # (N, 2w, H/8, W/8)
        return self.detect32(p32), self.detect16(p16), self.detect8(p8)


def small_yolov3(
    num_classes: int = 3,
    anchors: tuple[tuple[float, float], ...] | list | Tensor | None = None,
    width: int = 8,
    heads: int = 3,
) -> SmallYOLOv3:
    """A scaled-down YOLOv3 (see the module docstring): heads at strides 32, 16 and 8.

    ``anchors`` (9, 2) in input pixels, sorted by area; by default nine placeholder shapes
    for 128 x 128 inputs (the training command replaces them by k-means anchors).
    1,176,736 trainable parameters at ``width=8`` and 3 classes. ``heads=1`` keeps the
    stride-16 detector alone, predicting with all nine anchors (chapter 10's one-scale arm).
    """
    if anchors is None:
        anchors = DEFAULT_ANCHORS
    return SmallYOLOv3(num_classes, anchors, width, heads)
