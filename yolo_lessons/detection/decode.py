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

from ..models.yolov1 import GRID_SIZE, LAYOUTS, NUM_BOXES, NUM_CLASSES, yolov1_output_length


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


# YOLOv1 (Darknet's 2015 [detection] layer): no anchors, no activations on the outputs.


def darknet_to_cell_major(
    output: Tensor, grid_size: int = GRID_SIZE, num_boxes: int = NUM_BOXES, num_classes: int = NUM_CLASSES
) -> Tensor:
    """Reorder Darknet-layout vectors (N, S*S*(B*5+C)) into cell-major ones of the same shape.

    Darknet stores all class probabilities (S*S*C, cell by cell), then all confidences
    (S*S*B), then all boxes (S*S*B*4, each x, y, w, h). Cell-major stores cell by cell
    (row-major over the grid): B boxes as x, y, w, h, confidence, then the C classes.
    """
    n = _check_vector(output, grid_size, num_boxes, num_classes)
    cells = grid_size * grid_size
    probs, confidence, boxes = output.split(
        [cells * num_classes, cells * num_boxes, cells * num_boxes * 4], dim=1
    )
    boxes = boxes.reshape(n, cells, num_boxes, 4)
    confidence = confidence.reshape(n, cells, num_boxes, 1)
    per_box = torch.cat([boxes, confidence], dim=-1).reshape(n, cells, num_boxes * 5)  # x, y, w, h, conf
    return torch.cat([per_box, probs.reshape(n, cells, num_classes)], dim=-1).reshape(n, -1)


def decode_yolov1(
    output: Tensor,
    grid_size: int = GRID_SIZE,
    num_boxes: int = NUM_BOXES,
    num_classes: int = NUM_CLASSES,
    layout: str = "darknet",
    class_per_box: bool = False,
) -> Detections:
    """Decode YOLOv1 outputs into S*S*B boxes per image, ordered (row, column, box).

    ``output``: (N, L) vectors in ``layout`` "darknet" (what ``yolov1()`` returns) or
    "cell_major" (what ``class_per_box=True`` returns, with ``class_per_box=True``), or a
    (N, per-cell channels, S, S) conv map such as ``yolov1_resnet50``'s, which is cell-major.

    As in Darknet's 2015 ``convert_yolo_detections`` (``sqrt=1``, ``softmax=0``), the
    network's numbers are used as they come, with no sigmoid or softmax: for the box in
    cell (row, col), x = (col + tx) / S and y = (row + ty) / S, while tw, th predict the
    square roots of the width and height as fractions of the image, so w = tw**2.
    Without ``class_per_box`` the cell's one class distribution is repeated for its B boxes.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if output.dim() == 4:
        if layout != "cell_major":
            raise ValueError("a (N, channels, S, S) conv map is cell-major: pass layout='cell_major'")
        output = output.permute(0, 2, 3, 1).flatten(1)  # (N, S, S, channels) -> (N, S*S*channels)
    if class_per_box and layout == "darknet":
        raise ValueError(
            "Darknet's layout has one class distribution per cell; class_per_box needs 'cell_major'"
        )
    n = _check_vector(output, grid_size, num_boxes, num_classes, class_per_box)
    cells = grid_size * grid_size
    if class_per_box:
        p = output.reshape(n, cells, num_boxes, 5 + num_classes)
        xywh, confidence, probs = p[..., :4], p[..., 4], p[..., 5:]
    else:
        if layout == "darknet":
            output = darknet_to_cell_major(output, grid_size, num_boxes, num_classes)
        p = output.reshape(n, cells, num_boxes * 5 + num_classes)
        boxes = p[..., : num_boxes * 5].reshape(n, cells, num_boxes, 5)
        xywh, confidence = boxes[..., :4], boxes[..., 4]
        probs = p[..., None, num_boxes * 5 :].expand(n, cells, num_boxes, num_classes)  # one per cell
    index = torch.arange(cells, device=output.device)
    col = (index % grid_size).to(output.dtype).view(1, cells, 1)
    row = (index // grid_size).to(output.dtype).view(1, cells, 1)
    x = (col + xywh[..., 0]) / grid_size
    y = (row + xywh[..., 1]) / grid_size
    boxes = torch.stack([x, y, xywh[..., 2] ** 2, xywh[..., 3] ** 2], dim=-1)  # (N, S*S, B, 4)
    k = cells * num_boxes
    return Detections(boxes.reshape(n, k, 4), confidence.reshape(n, k), probs.reshape(n, k, num_classes))


def _check_vector(
    output: Tensor, grid_size: int, num_boxes: int, num_classes: int, class_per_box: bool = False
) -> int:
    expected = yolov1_output_length(grid_size, num_boxes, num_classes, class_per_box)
    if output.dim() != 2 or output.shape[1] != expected:
        raise ValueError(
            f"expected YOLOv1 output vectors of shape (N, {expected}) for S={grid_size}, B={num_boxes}, "
            f"C={num_classes}{', classes per box' if class_per_box else ''}; got shape {tuple(output.shape)}"
        )
    return output.shape[0]
