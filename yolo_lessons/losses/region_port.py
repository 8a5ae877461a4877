"""Index-by-index port of Darknet's [region] delta, the reference ``region_loss`` must equal.

Slow on purpose: the readable reference. ``tests/test_region_loss.py`` checks ``region_loss``
against it on random batches, and chapter 7 runs it beside ``region_loss`` on its own batch
(it lives in the package, not only in the tests, so that the chapter can import it in Colab).

Written from ``forward_region_layer`` (``src/region_layer.c``), its helpers
``get_region_box``, ``delta_region_box``, ``delta_region_class`` and ``entry_index``,
``box_iou`` (``src/box.c``), ``softmax`` (``src/blas.c``) and ``backward_region_layer_gpu``,
for the yolov2-voc.cfg case: coords = 4, softmax = 1, no softmax tree, no background, no map.
Plain Python floats and loops over b, j, i, n and the truths, in Darknet's memory layout and
order, so each line can be read beside the C. Two changes, both about the truth list:
- the truths of image b are its first ``counts[b]`` rows (Darknet stops at a row with x == 0);
- a truth with x = 1.0 (y = 1.0) goes to the last column (row); Darknet computes
  i = (int)(truth.x * l.w) = l.w, one past the grid, which ``entry_index`` turns into the first
  cell of the next row (another prediction's slot). Darknet's loader never makes such a box:
  a centre at 1 needs a width of 0, and ``fill_truth_detection`` drops boxes under .001.
"""

from __future__ import annotations

import math

import torch

COORDS = 4  # l.coords in [region] of yolov2-voc.cfg


def logistic(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))  # activations.h logistic_activate


def overlap(x1: float, w1: float, x2: float, w2: float) -> float:
    left = max(x1 - w1 / 2, x2 - w2 / 2)
    right = min(x1 + w1 / 2, x2 + w2 / 2)
    return right - left


def box_iou(a: tuple, b: tuple) -> float:
    ow = overlap(a[0], a[2], b[0], b[2])
    oh = overlap(a[1], a[3], b[1], b[3])
    inter = 0.0 if (ow < 0 or oh < 0) else ow * oh
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union


def darknet_region_delta(
    output: torch.Tensor,
    truths: torch.Tensor,
    counts: list[int],
    anchors: list[tuple[float, float]],
    classes: int,
    *,
    seen: int,
    object_scale: float = 5.0,
    noobject_scale: float = 1.0,
    class_scale: float = 1.0,
    coord_scale: float = 1.0,
    thresh: float = 0.6,
    rescore: bool = True,
    bias_match: bool = True,
) -> torch.Tensor:
    """Darknet's delta for ``output`` (N, A*(5+C), H, W), after the GPU backward's sigma'."""
    batch, _, lh, lw = output.shape
    ln = len(anchors)
    biases = [v for pair in anchors for v in pair]  # l.biases: w0, h0, w1, h1, ...
    outputs = lh * lw * ln * (COORDS + classes + 1)  # l.outputs
    stride = lw * lh
    x = [float(v) for v in output.flatten().tolist()]  # l.output, after activation below
    delta = [0.0] * (batch * outputs)  # memset(l.delta, 0, ...)
    truth_rows = truths.tolist()

    def entry_index(b: int, location: int, entry: int) -> int:
        n, loc = location // (lw * lh), location % (lw * lh)
        return b * outputs + n * lw * lh * (COORDS + classes + 1) + entry * lw * lh + loc

    def get_region_box(n: int, index: int, i: int, j: int) -> tuple:
        return (
            (i + x[index + 0 * stride]) / lw,
            (j + x[index + 1 * stride]) / lh,
            math.exp(x[index + 2 * stride]) * biases[2 * n] / lw,
            math.exp(x[index + 3 * stride]) * biases[2 * n + 1] / lh,
        )

    def delta_region_box(truth: tuple, n: int, index: int, i: int, j: int, scale: float) -> float:
        pred = get_region_box(n, index, i, j)
        iou = box_iou(pred, truth)
        tx = truth[0] * lw - i
        ty = truth[1] * lh - j
        tw = math.log(truth[2] * lw / biases[2 * n])
        th = math.log(truth[3] * lh / biases[2 * n + 1])
        delta[index + 0 * stride] = scale * (tx - x[index + 0 * stride])
        delta[index + 1 * stride] = scale * (ty - x[index + 1 * stride])
        delta[index + 2 * stride] = scale * (tw - x[index + 2 * stride])
        delta[index + 3 * stride] = scale * (th - x[index + 3 * stride])
        return iou

    def delta_region_class(index: int, cls: int) -> None:
        # softmax classes: tag = !l.softmax = 0, so the whole one-hot delta is (re)written.
        for k in range(classes):
            delta[index + stride * k] = class_scale * ((1.0 if k == cls else 0.0) - x[index + stride * k])

    # Activations: logistic on entries 0, 1 (x, y) and 4 (objectness) of every anchor.
    for b in range(batch):
        for n in range(ln):
            index = entry_index(b, n * lw * lh, 0)
            for k in range(index, index + 2 * lw * lh):
                x[k] = logistic(x[k])
            index = entry_index(b, n * lw * lh, COORDS)
            for k in range(index, index + lw * lh):
                x[k] = logistic(x[k])
    # softmax_cpu over the classes of each (b, n, cell): stride w*h between classes.
    for b in range(batch):
        for n in range(ln):
            for loc in range(lw * lh):
                index = entry_index(b, n * lw * lh + loc, COORDS + 1)
                values = [x[index + k * stride] for k in range(classes)]
                largest = max(values)
                exps = [math.exp(v - largest) for v in values]
                total = sum(exps)
                for k in range(classes):
                    x[index + k * stride] = exps[k] / total

    for b in range(batch):
        truth_list = [tuple(truth_rows[b][t]) for t in range(counts[b])]  # (class, x, y, w, h)
        # Pass 1: every prediction.
        for j in range(lh):
            for i in range(lw):
                for n in range(ln):
                    box_index = entry_index(b, n * lw * lh + j * lw + i, 0)
                    pred = get_region_box(n, box_index, i, j)
                    best_iou = 0.0
                    for row in truth_list:
                        iou = box_iou(pred, row[1:])
                        if iou > best_iou:
                            best_iou = iou
                    obj_index = entry_index(b, n * lw * lh + j * lw + i, COORDS)
                    delta[obj_index] = noobject_scale * (0 - x[obj_index])
                    if best_iou > thresh:
                        delta[obj_index] = 0.0
                    if seen < 12800:
                        truth = ((i + 0.5) / lw, (j + 0.5) / lh, biases[2 * n] / lw, biases[2 * n + 1] / lh)
                        delta_region_box(truth, n, box_index, i, j, 0.01)
        # Pass 2: every truth, in order.
        for row in truth_list:
            cls, truth = int(row[0]), row[1:]
            best_iou = 0.0
            best_n = 0
            i = min(int(truth[0] * lw), lw - 1)  # Darknet: no min(), so x = 1.0 gives i = l.w
            j = min(int(truth[1] * lh), lh - 1)
            truth_shift = (0.0, 0.0, truth[2], truth[3])
            for n in range(ln):
                box_index = entry_index(b, n * lw * lh + j * lw + i, 0)
                pred = get_region_box(n, box_index, i, j)
                if bias_match:
                    pred = (pred[0], pred[1], biases[2 * n] / lw, biases[2 * n + 1] / lh)
                pred = (0.0, 0.0, pred[2], pred[3])
                iou = box_iou(pred, truth_shift)
                if iou > best_iou:
                    best_iou = iou
                    best_n = n
            box_index = entry_index(b, best_n * lw * lh + j * lw + i, 0)
            iou = delta_region_box(truth, best_n, box_index, i, j, coord_scale * (2 - truth[2] * truth[3]))
            obj_index = entry_index(b, best_n * lw * lh + j * lw + i, COORDS)
            delta[obj_index] = object_scale * (1 - x[obj_index])
            if rescore:
                delta[obj_index] = object_scale * (iou - x[obj_index])
            class_index = entry_index(b, best_n * lw * lh + j * lw + i, COORDS + 1)
            delta_region_class(class_index, cls)

    # backward_region_layer_gpu: gradient_array(LOGISTIC) on entries 0, 1 and 4,
    # i.e. delta *= y * (1 - y) with y the activated output.
    for b in range(batch):
        for n in range(ln):
            index = entry_index(b, n * lw * lh, 0)
            for k in range(index, index + 2 * lw * lh):
                delta[k] *= (1 - x[k]) * x[k]
            index = entry_index(b, n * lw * lh, COORDS)
            for k in range(index, index + lw * lh):
                delta[k] *= (1 - x[k]) * x[k]
    return torch.tensor(delta, dtype=torch.float64).reshape(output.shape)
