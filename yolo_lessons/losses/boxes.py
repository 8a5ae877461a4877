"""The box arithmetic both losses share: decoding predictions into boxes, and Darknet's IoU.

Darknet's ``[region]`` (YOLOv2) and ``[yolo]`` (YOLOv3) layers decode a prediction the same
way -- ``get_region_box`` in ``src/region_layer.c`` and ``get_yolo_box`` in
``src/yolo_layer.c``:

    x = (col + sigma(tx)) / W      y = (row + sigma(ty)) / H
    w = exp(tw) * anchor_w / units_w      h = exp(th) * anchor_h / units_h

and both compare boxes with ``box_iou`` of ``src/box.c``, on centre-and-size boxes. The only
difference between the layers is the unit of the anchors: grid cells in ``[region]`` (the
grid's W, H are the whole image), input pixels in ``[yolo]`` (the network's w, h are).

Both work on centre-size boxes as fractions of the image. ``detection.nms.box_iou`` is
the same IoU for corner boxes (x1, y1, x2, y2), the form detections are kept in.
"""

from __future__ import annotations

import torch
from torch import Tensor


def decode_boxes(xy: Tensor, twh: Tensor, anchors: Tensor, anchor_units: tuple[int, int]) -> Tensor:
    """Boxes as get_region_box and get_yolo_box make them, (N, A, H, W, 4) cx, cy, w, h fractions.

    xy: sigma(tx), sigma(ty) and twh: raw tw, th, each (N, A, H, W, 2); anchors (A, 2) in the
    units of which ``anchor_units`` = (width, height) is the whole image: grid cells for
    YOLOv2's [region] (the grid's W, H), input pixels for YOLOv3's [yolo] (the net's w, h).
    """
    _, a, h, w, _ = xy.shape
    units_w, units_h = anchor_units
    cols = torch.arange(w, device=xy.device, dtype=xy.dtype).view(1, 1, 1, w)
    rows = torch.arange(h, device=xy.device, dtype=xy.dtype).view(1, 1, h, 1)
    anchor_w, anchor_h = anchors[:, 0].view(1, a, 1, 1), anchors[:, 1].view(1, a, 1, 1)
    return torch.stack(
        [
            (cols + xy[..., 0]) / w,
            (rows + xy[..., 1]) / h,
            torch.exp(twh[..., 0]) * anchor_w / units_w,
            torch.exp(twh[..., 1]) * anchor_h / units_h,
        ],
        dim=-1,
    )


def centre_size_iou(a: Tensor, b: Tensor) -> Tensor:
    """Darknet's box_iou (src/box.c) on broadcast (..., 4) cx, cy, w, h boxes (any one unit)."""

    def overlap(centre_a: Tensor, size_a: Tensor, centre_b: Tensor, size_b: Tensor) -> Tensor:
        left = torch.maximum(centre_a - size_a / 2, centre_b - size_b / 2)
        right = torch.minimum(centre_a + size_a / 2, centre_b + size_b / 2)
        return right - left

    ow = overlap(a[..., 0], a[..., 2], b[..., 0], b[..., 2])
    oh = overlap(a[..., 1], a[..., 3], b[..., 1], b[..., 3])
    inter = torch.where((ow < 0) | (oh < 0), torch.zeros_like(ow), ow * oh)  # box.c: 0 if either is < 0
    union = a[..., 2] * a[..., 3] + b[..., 2] * b[..., 3] - inter
    return inter / union
