"""Turning raw detector outputs into boxes, as Darknet's [region] and [yolo] layers do.

Both layers read the channels anchor-major, ``view(N, A, 5 + C, H, W)``, and for the
prediction of anchor ``a`` in grid cell (column ``i``, row ``j``) compute

    x = (i + sigmoid(tx)) / W          y = (j + sigmoid(ty)) / H
    w = anchor_w * exp(tw) / scale_w   h = anchor_h * exp(th) / scale_h
    objectness = sigmoid(to)

YOLOv2 ([region]) gives anchors in grid cells (scale = grid size) and takes a softmax
over the classes; YOLOv3 ([yolo]) gives anchors in input pixels (scale = input size)
and an independent sigmoid per class. Coordinates come out as fractions of the image.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class Detections:
    """K candidate boxes per image, ordered (anchor, row, column) within each head.

    boxes: (N, K, 4) centre x, centre y, width, height, as fractions of the image.
    objectness: (N, K). class_probs: (N, K, C).
    """

    boxes: Tensor
    objectness: Tensor
    class_probs: Tensor

    @property
    def scores(self) -> Tensor:
        """(N, K, C) objectness times class probability, Darknet's detection score."""
        return self.objectness.unsqueeze(-1) * self.class_probs

    def corners(self) -> Tensor:
        """(N, K, 4) boxes as x1, y1, x2, y2 fractions of the image."""
        return box_corners(self.boxes)


def box_corners(boxes: Tensor) -> Tensor:
    """Convert (..., 4) centre-x, centre-y, width, height boxes to x1, y1, x2, y2."""
    centre, size = boxes[..., :2], boxes[..., 2:]
    return torch.cat([centre - size / 2, centre + size / 2], dim=-1)


def _decode_head(output: Tensor, anchors: Tensor, anchor_scale: Tensor, class_fn) -> Detections:
    if output.dim() != 4:
        raise ValueError(f"expected a 4-D head output (N, A*(5+C), H, W), got shape {tuple(output.shape)}")
    n, channels, h, w = output.shape
    a = anchors.shape[0]
    if channels % a or channels // a < 6:
        raise ValueError(
            f"a head with {a} anchors needs {a} * (5 + classes) channels, got {channels}"
        )
    p = output.view(n, a, channels // a, h, w)  # anchor-major, Darknet's layout
    cols = torch.arange(w, dtype=output.dtype, device=output.device).view(1, 1, 1, w)
    rows = torch.arange(h, dtype=output.dtype, device=output.device).view(1, 1, h, 1)
    grid_wh = torch.tensor([w, h], dtype=output.dtype, device=output.device)
    anchor_wh = (anchors.to(output) / anchor_scale.to(output)).view(1, a, 2, 1, 1)
    x = (cols + torch.sigmoid(p[:, :, 0])) / grid_wh[0]
    y = (rows + torch.sigmoid(p[:, :, 1])) / grid_wh[1]
    wh = anchor_wh * torch.exp(p[:, :, 2:4])  # (N, A, 2, H, W)
    boxes = torch.stack([x, y, wh[:, :, 0], wh[:, :, 1]], dim=-1)  # (N, A, H, W, 4)
    objectness = torch.sigmoid(p[:, :, 4])  # (N, A, H, W)
    classes = class_fn(p[:, :, 5:], dim=2).permute(0, 1, 3, 4, 2)  # (N, A, H, W, C)
    return Detections(boxes.reshape(n, -1, 4), objectness.reshape(n, -1), classes.reshape(n, a * h * w, -1))


def decode_yolov2(output: Tensor, anchors: Tensor | tuple) -> Detections:
    """Decode a YOLOv2 output (N, A*(5+C), H, W); ``anchors`` (A, 2) in grid cells."""
    anchors = torch.as_tensor(anchors, dtype=torch.float32)
    grid = torch.tensor([output.shape[-1], output.shape[-2]]) if output.dim() == 4 else torch.ones(2)
    return _decode_head(output, anchors, grid, torch.softmax)


def decode_yolov3(
    outputs: tuple[Tensor, ...] | list[Tensor],
    anchors: Tensor | tuple,
    masks: tuple[tuple[int, ...], ...],
    input_size: int | tuple[int, int],
) -> Detections:
    """Decode YOLOv3's heads into one set of boxes.

    ``anchors`` (9, 2) in pixels; ``masks`` picks each head's anchors; ``input_size``
    is the network input side (or (height, width)) the pixel anchors are divided by.
    At 416x416 the three heads give 3 * (13*13 + 26*26 + 52*52) = 10,647 boxes.
    """
    if len(outputs) != len(masks):
        raise ValueError(f"got {len(outputs)} head outputs but {len(masks)} anchor masks")
    height, width = (input_size, input_size) if isinstance(input_size, int) else input_size
    anchors = torch.as_tensor(anchors, dtype=torch.float32)
    scale = torch.tensor([width, height], dtype=torch.float32)
    heads = [
        _decode_head(out, anchors[list(mask)], scale, _sigmoid)
        for out, mask in zip(outputs, masks, strict=False)
    ]
    return Detections(
        torch.cat([d.boxes for d in heads], dim=1),
        torch.cat([d.objectness for d in heads], dim=1),
        torch.cat([d.class_probs for d in heads], dim=1),
    )


def _sigmoid(x: Tensor, dim: int) -> Tensor:
    """Independent per-class sigmoids (``dim`` is accepted to match ``torch.softmax``)."""
    return torch.sigmoid(x)
