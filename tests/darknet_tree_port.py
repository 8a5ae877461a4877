"""Loop-by-loop ports of Darknet's YOLO9000 code, the references ``models.wordtree``,
``detection.hierarchy`` and ``losses.tree_region_loss`` must equal.

Written from pjreddie/darknet f6afaabc: ``read_tree``, ``get_hierarchy_probability``,
``hierarchy_predictions`` and ``hierarchy_top_prediction`` (``src/tree.c``); the ``softmax_tree``
kernel and ``softmax_device`` (``src/blas_kernels.cu``); ``softmax_cpu`` and ``softmax``
(``src/blas.c``); ``forward_region_layer`` with ``l.softmax_tree`` set (its ``#ifndef GPU``
activations, the ``onlyclass`` branch, ``delta_region_class`` with a hierarchy) and
``forward_region_layer_gpu`` / ``backward_region_layer_gpu`` (``src/region_layer.c``). Plain
Python floats over flat lists in Darknet's memory layout, so each line reads beside the C.

Truths are given as Darknet holds them after ``correct_boxes`` (``src/data.c``): rows (class,
x, y, w, h), a classification-only label being a row whose x = y = w = h = 999999 (what a label
line ``class 0 0 0 0`` becomes). As in ``yolo_lessons.losses.region_port``: image b's truths are its first
``counts[b]`` rows, and a truth on the right or bottom edge goes to the last column or row.
Two flags leave the C, for the paper's variant: ``paper_objectness`` drops line 224
(``l.delta[obj_index] = 0``), ``class_only_noobject=False`` skips line 212's no-object delta.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import torch

from yolo_lessons.losses.region_port import box_iou, logistic

COORDS = 4  # l.coords of yolo9000.cfg's [region]


def read_tree_port(lines: list[str]) -> SimpleNamespace:
    """read_tree (src/tree.c), over lines instead of a file."""
    t = SimpleNamespace(parent=[], child=[], name=[], group=[], group_offset=[], group_size=[])
    last_parent = -1
    group_size = 0
    groups = 0
    n = 0
    for line in lines:
        fields = line.split()
        name, parent = fields[0], int(fields[1])  # sscanf(line, "%s %d", id, &parent)
        t.parent.append(parent)
        t.child.append(-1)
        t.name.append(name)
        if parent != last_parent:
            groups += 1
            t.group_offset.append(n - group_size)  # group_offset[groups - 1]
            t.group_size.append(group_size)
            group_size = 0
            last_parent = parent
        t.group.append(groups)
        if parent >= 0:
            t.child[parent] = groups
        n += 1
        group_size += 1
    groups += 1
    t.group_offset.append(n - group_size)
    t.group_size.append(group_size)
    t.n = n
    t.groups = groups
    t.leaf = [1] * n
    for i in range(n):
        if t.parent[i] >= 0:
            t.leaf[t.parent[i]] = 0
    return t


def softmax_device(x: list, start: int, n: int, temp: float, stride: int, out: list) -> None:
    """softmax_device (blas_kernels.cu): note ``int val``, the largest is found on truncated values."""
    largest = -math.inf
    for i in range(n):
        val = int(x[start + i * stride])  # int val = input[i*stride]; C truncates toward zero
        largest = val if val > largest else largest
    total = 0.0
    for i in range(n):
        e = math.exp(x[start + i * stride] / temp - largest / temp)
        total += e
        out[start + i * stride] = e
    for i in range(n):
        out[start + i * stride] /= total


def softmax_tree_gpu(x: list, offset: int, spatial: int, batch: int, stride: int, temp: float, tree, out: list) -> None:
    """softmax_tree (blas_kernels.cu), one kernel thread at a time; ``offset`` is the pointer's start."""
    for thread in range(spatial * batch * tree.groups):
        s = thread % spatial
        rest = thread // spatial
        g = rest % tree.groups
        b = rest // tree.groups
        goff = tree.group_offset[g] * spatial
        boff = b * stride
        softmax_device(x, offset + goff + boff + s, tree.group_size[g], temp, spatial, out)


def softmax(x: list, start: int, n: int, temp: float, stride: int, out: list) -> None:
    """softmax (blas.c); reads ``x`` and writes ``out`` at the same positions."""
    total = 0.0
    largest = -3.4028234663852886e38  # -FLT_MAX
    for i in range(n):
        if x[start + i * stride] > largest:
            largest = x[start + i * stride]
    for i in range(n):
        try:
            e = math.exp(x[start + i * stride] / temp - largest / temp)
        except ZeroDivisionError:  # C's float division by 0: x/0 - largest/0 is NaN or -inf
            e = _divide_by_zero_exp(x[start + i * stride], largest)
        total += e
        out[start + i * stride] = e
    for i in range(n):
        out[start + i * stride] = out[start + i * stride] / total if total == total else math.nan


def _divide_by_zero_exp(value: float, largest: float) -> float:
    """exp(value/0 - largest/0) in IEEE arithmetic."""

    def over_zero(v: float) -> float:
        return math.nan if v == 0 else math.copysign(math.inf, v)

    diff = over_zero(value) - over_zero(largest)
    return math.nan if diff != diff else math.exp(diff)


def softmax_cpu(x: list, start: int, n: int, batch: int, batch_offset: int, groups: int, group_offset: int,
                stride: int, temp: float, out: list) -> None:
    """softmax_cpu (blas.c)."""
    for b in range(batch):
        for g in range(groups):
            softmax(x, start + b * batch_offset + g * group_offset, n, temp, stride, out)


def region_tree_forward(output: torch.Tensor, tree, num_anchors: int, *, gpu: bool = True,
                        temperature: float = 1.0) -> list:
    """l.output of a [region] layer with a tree, as the GPU build (forward_region_layer_gpu) or the
    CPU build (forward_region_layer's #ifndef GPU block, temperature = l.temperature) leaves it."""
    batch, _, lh, lw = output.shape
    ln, classes = num_anchors, tree.n
    outputs = lh * lw * ln * (COORDS + classes + 1)
    inputs = outputs
    net_input = [float(v) for v in output.flatten().tolist()]
    x = list(net_input)  # memcpy / copy_gpu into l.output

    def entry_index(b: int, location: int, entry: int) -> int:
        n, loc = location // (lw * lh), location % (lw * lh)
        return b * outputs + n * lw * lh * (COORDS + classes + 1) + entry * lw * lh + loc

    for b in range(batch):
        for n in range(ln):
            index = entry_index(b, n * lw * lh, 0)
            for k in range(index, index + 2 * lw * lh):
                x[k] = logistic(x[k])
            index = entry_index(b, n * lw * lh, COORDS)
            for k in range(index, index + lw * lh):
                x[k] = logistic(x[k])
    if gpu:
        index = entry_index(0, 0, COORDS + 1)
        softmax_tree_gpu(net_input, index, lw * lh, batch * ln, inputs // ln, 1.0, tree, x)
    else:
        count = COORDS + 1
        for i in range(tree.groups):
            group_size = tree.group_size[i]
            softmax_cpu(net_input, count, group_size, batch, inputs, ln * lw * lh, 1, ln * lw * lh, temperature, x)
            count += group_size
    return x


def get_hierarchy_probability(x: list, start: int, tree, c: int, stride: int) -> float:
    p = 1.0
    while c >= 0:
        p = p * x[start + c * stride]
        c = tree.parent[c]
    return p


def hierarchy_predictions(predictions: list, start: int, n: int, tree, only_leaves: bool, stride: int) -> None:
    """hierarchy_predictions (tree.c), in place."""
    for j in range(n):
        parent = tree.parent[j]
        if parent >= 0:
            predictions[start + j * stride] *= predictions[start + parent * stride]
    if only_leaves:
        for j in range(n):
            if not tree.leaf[j]:
                predictions[start + j * stride] = 0.0


def hierarchy_top_prediction(predictions: list, start: int, tree, thresh: float, stride: int) -> int:
    """hierarchy_top_prediction (tree.c)."""
    p = 1.0
    group = 0
    while True:
        best = 0.0
        max_i = 0
        for i in range(tree.group_size[group]):
            index = i + tree.group_offset[group]
            val = predictions[start + (i + tree.group_offset[group]) * stride]
            if val > best:
                max_i = index
                best = val
        if p * best > thresh:
            p = p * best
            group = tree.child[max_i]
            if tree.child[max_i] < 0:
                return max_i
        elif group == 0:
            return max_i
        else:
            return tree.parent[tree.group_offset[group]]


def delta_region_class_tree(output: list, delta: list, index: int, cls: int, tree, scale: float, stride: int) -> None:
    """delta_region_class (region_layer.c) with hier set."""
    while cls >= 0:
        g = tree.group[cls]
        offset = tree.group_offset[g]
        for i in range(tree.group_size[g]):
            delta[index + stride * (offset + i)] = scale * (0 - output[index + stride * (offset + i)])
        delta[index + stride * cls] = scale * (1 - output[index + stride * cls])
        cls = tree.parent[cls]


def darknet_tree_region_delta(
    output: torch.Tensor,
    truths: torch.Tensor,
    counts: list[int],
    anchors: list[tuple[float, float]],
    tree,
    *,
    seen: int,
    class_map: list[int] | None = None,
    object_scale: float = 5.0,
    noobject_scale: float = 1.0,
    class_scale: float = 1.0,
    coord_scale: float = 1.0,
    thresh: float = 0.6,
    rescore: bool = True,
    bias_match: bool = True,
    paper_objectness: bool = False,
    class_only_noobject: bool = True,
) -> torch.Tensor:
    """Darknet's delta for ``output`` (N, A*(5+C), H, W) on a GPU build, after the backward's sigma'."""
    batch, _, lh, lw = output.shape
    ln, classes = len(anchors), tree.n
    biases = [v for pair in anchors for v in pair]
    outputs = lh * lw * ln * (COORDS + classes + 1)
    stride = lw * lh
    x = region_tree_forward(output, tree, ln, gpu=True)
    delta = [0.0] * (batch * outputs)
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
        delta[index + 0 * stride] = scale * ((truth[0] * lw - i) - x[index + 0 * stride])
        delta[index + 1 * stride] = scale * ((truth[1] * lh - j) - x[index + 1 * stride])
        delta[index + 2 * stride] = scale * (math.log(truth[2] * lw / biases[2 * n]) - x[index + 2 * stride])
        delta[index + 3 * stride] = scale * (math.log(truth[3] * lh / biases[2 * n + 1]) - x[index + 3 * stride])
        return iou

    for b in range(batch):
        truth_list = [tuple(truth_rows[b][t]) for t in range(counts[b])]  # (class, x, y, w, h)
        # if(l.softmax_tree): the onlyclass branch.
        onlyclass = False
        for row in truth_list:
            cls, truth = int(row[0]), row[1:]
            maxp = 0.0
            maxi = 0
            if truth[0] > 100000 and truth[1] > 100000:
                for n in range(ln * lw * lh):
                    class_index = entry_index(b, n, COORDS + 1)
                    obj_index = entry_index(b, n, COORDS)
                    scale = x[obj_index]
                    if class_only_noobject:
                        delta[obj_index] = noobject_scale * (0 - x[obj_index])
                    p = scale * get_hierarchy_probability(x, class_index, tree, cls, lw * lh)
                    if p > maxp:
                        maxp = p
                        maxi = n
                class_index = entry_index(b, maxi, COORDS + 1)
                obj_index = entry_index(b, maxi, COORDS)
                delta_region_class_tree(x, delta, class_index, cls, tree, class_scale, lw * lh)
                if x[obj_index] < 0.3:
                    delta[obj_index] = object_scale * (0.3 - x[obj_index])
                else:
                    delta[obj_index] = 0.0
                if not paper_objectness:
                    delta[obj_index] = 0.0  # line 224
                onlyclass = True
                break
        if onlyclass:
            continue
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
        for row in truth_list:
            truth = row[1:]
            best_iou = 0.0
            best_n = 0
            i = min(int(truth[0] * lw), lw - 1)
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
            cls = int(row[0])
            if class_map is not None:
                cls = class_map[cls]  # if (l.map) class = l.map[class]
            class_index = entry_index(b, best_n * lw * lh + j * lw + i, COORDS + 1)
            delta_region_class_tree(x, delta, class_index, cls, tree, class_scale, lw * lh)

    # backward_region_layer_gpu: delta *= y * (1 - y) on x, y and objectness.
    for b in range(batch):
        for n in range(ln):
            index = entry_index(b, n * lw * lh, 0)
            for k in range(index, index + 2 * lw * lh):
                delta[k] *= (1 - x[k]) * x[k]
            index = entry_index(b, n * lw * lh, COORDS)
            for k in range(index, index + lw * lh):
                delta[k] *= (1 - x[k]) * x[k]
    return torch.tensor(delta, dtype=torch.float64).reshape(output.shape)
