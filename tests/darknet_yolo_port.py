"""Index-by-index port of Darknet's [yolo] delta, the reference ``yolo_loss`` must equal.

Written from ``forward_yolo_layer`` (``src/yolo_layer.c``), its helpers ``get_yolo_box``,
``delta_yolo_box``, ``delta_yolo_class`` and ``entry_index``, ``int_index`` (``src/utils.c``),
``box_iou`` (``src/box.c``) and ``backward_yolo_layer`` (a plain add of the delta), for the
yolov3.cfg case: no ``map``. One call of ``forward_yolo_layer`` per head, each with its own
flat ``l.output`` and ``l.delta``. Plain Python floats and loops over b, j, i, n and the
truths, in Darknet's memory layout and order, so each line can be read beside the C. Two
changes, both about the truth list:
- the truths of image b are its first ``counts[b]`` rows (Darknet stops at a row with x == 0);
- a truth with x = 1.0 (y = 1.0) goes to the last column (row); Darknet computes
  i = (int)(truth.x * l.w) = l.w, one past the grid, and writes out of range.
"""

from __future__ import annotations

import math

import torch

from yolo_lessons.losses.region_port import box_iou


def logistic(x: float) -> float:
    """activations.h logistic_activate, 1/(1 + exp(-x)); exp overflowing gives 0, as in C."""
    try:
        return 1.0 / (1.0 + math.exp(-x))
    except OverflowError:
        return 0.0


def int_index(a: list[int], val: int) -> int:
    for i, v in enumerate(a):
        if v == val:
            return i
    return -1


def darknet_yolo_delta(
    outputs: list[torch.Tensor],
    truths: torch.Tensor,
    counts: list[int],
    anchors: list[tuple[float, float]],
    masks: list[list[int]],
    classes: int,
    net_h: int,
    net_w: int,
    *,
    ignore_thresh: float = 0.7,
    truth_thresh: float = 1.0,
) -> list[torch.Tensor]:
    """Darknet's delta for each head output (N, len(mask)*(5+C), H, W), as backward adds it."""
    biases = [v for pair in anchors for v in pair]  # l.biases: w0, h0, w1, h1, ... (all l.total)
    return [
        forward_yolo_layer(out, truths.tolist(), counts, biases, list(mask), classes, net_h, net_w,
                           ignore_thresh, truth_thresh)
        for out, mask in zip(outputs, masks, strict=True)
    ]


def forward_yolo_layer(output, truth_rows, counts, biases, mask, classes, net_h, net_w, ignore_thresh, truth_thresh):
    batch, _, lh, lw = output.shape
    ln, total = len(mask), len(biases) // 2  # l.n, l.total
    outputs = lh * lw * ln * (4 + classes + 1)  # l.outputs
    stride = lw * lh
    x = [float(v) for v in output.flatten().tolist()]  # l.output, after activation below
    delta = [0.0] * (batch * outputs)  # memset(l.delta, 0, ...)

    def entry_index(b: int, location: int, entry: int) -> int:
        n, loc = location // (lw * lh), location % (lw * lh)
        return b * outputs + n * lw * lh * (4 + classes + 1) + entry * lw * lh + loc

    def get_yolo_box(n: int, index: int, i: int, j: int) -> tuple:
        return (
            (i + x[index + 0 * stride]) / lw,
            (j + x[index + 1 * stride]) / lh,
            math.exp(x[index + 2 * stride]) * biases[2 * n] / net_w,
            math.exp(x[index + 3 * stride]) * biases[2 * n + 1] / net_h,
        )

    def delta_yolo_box(truth: tuple, n: int, index: int, i: int, j: int, scale: float) -> float:
        pred = get_yolo_box(n, index, i, j)
        iou = box_iou(pred, truth)
        tx = truth[0] * lw - i
        ty = truth[1] * lh - j
        tw = math.log(truth[2] * net_w / biases[2 * n])
        th = math.log(truth[3] * net_h / biases[2 * n + 1])
        delta[index + 0 * stride] = scale * (tx - x[index + 0 * stride])
        delta[index + 1 * stride] = scale * (ty - x[index + 1 * stride])
        delta[index + 2 * stride] = scale * (tw - x[index + 2 * stride])
        delta[index + 3 * stride] = scale * (th - x[index + 3 * stride])
        return iou

    def delta_yolo_class(index: int, cls: int) -> None:
        if delta[index]:  # class 0's delta already written: add this class only
            delta[index + stride * cls] = 1 - x[index + stride * cls]
            return
        for k in range(classes):
            delta[index + stride * k] = (1.0 if k == cls else 0.0) - x[index + stride * k]

    # Activations: logistic on entries 0, 1 (x, y) and 4 .. 4+classes (objectness, classes).
    for b in range(batch):
        for n in range(ln):
            index = entry_index(b, n * lw * lh, 0)
            for k in range(index, index + 2 * lw * lh):
                x[k] = logistic(x[k])
            index = entry_index(b, n * lw * lh, 4)
            for k in range(index, index + (1 + classes) * lw * lh):
                x[k] = logistic(x[k])

    for b in range(batch):
        # net.truth rows of image b; Darknet stores (x, y, w, h, class), we keep (class, x, y, w, h).
        truth_list = [tuple(truth_rows[b][t]) for t in range(counts[b])]
        # Pass 1: every prediction.
        for j in range(lh):
            for i in range(lw):
                for n in range(ln):
                    box_index = entry_index(b, n * lw * lh + j * lw + i, 0)
                    pred = get_yolo_box(mask[n], box_index, i, j)
                    best_iou = 0.0
                    best_t = 0
                    for t, row in enumerate(truth_list):
                        iou = box_iou(pred, row[1:])
                        if iou > best_iou:
                            best_iou = iou
                            best_t = t
                    obj_index = entry_index(b, n * lw * lh + j * lw + i, 4)
                    delta[obj_index] = 0 - x[obj_index]
                    if best_iou > ignore_thresh:
                        delta[obj_index] = 0.0
                    if best_iou > truth_thresh:
                        delta[obj_index] = 1 - x[obj_index]
                        cls = int(truth_list[best_t][0])
                        class_index = entry_index(b, n * lw * lh + j * lw + i, 4 + 1)
                        delta_yolo_class(class_index, cls)
                        truth = truth_list[best_t][1:]
                        delta_yolo_box(truth, mask[n], box_index, i, j, 2 - truth[2] * truth[3])
        # Pass 2: every truth, in order.
        for row in truth_list:
            cls, truth = int(row[0]), row[1:]
            best_iou = 0.0
            best_n = 0
            i = min(int(truth[0] * lw), lw - 1)  # Darknet: no min(), so x = 1.0 gives i = l.w
            j = min(int(truth[1] * lh), lh - 1)
            truth_shift = (0.0, 0.0, truth[2], truth[3])
            for n in range(total):
                pred = (0.0, 0.0, biases[2 * n] / net_w, biases[2 * n + 1] / net_h)
                iou = box_iou(pred, truth_shift)
                if iou > best_iou:
                    best_iou = iou
                    best_n = n
            mask_n = int_index(mask, best_n)
            if mask_n >= 0:
                box_index = entry_index(b, mask_n * lw * lh + j * lw + i, 0)
                delta_yolo_box(truth, best_n, box_index, i, j, 2 - truth[2] * truth[3])
                obj_index = entry_index(b, mask_n * lw * lh + j * lw + i, 4)
                delta[obj_index] = 1 - x[obj_index]
                class_index = entry_index(b, mask_n * lw * lh + j * lw + i, 4 + 1)
                delta_yolo_class(class_index, cls)

    # backward_yolo_layer: axpy_cpu(..., 1, l.delta, 1, net.delta, 1), the delta as it is.
    return torch.tensor(delta, dtype=torch.float64).reshape(output.shape)
