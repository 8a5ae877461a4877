"""The YOLOv3 loss, exactly as Darknet's ``[yolo]`` layers compute it.

The YOLOv3 paper (Redmon & Farhadi, 2018, section 2.1) describes the loss in words; the
numbers here are read from Darknet's code: ``forward_yolo_layer``, ``delta_yolo_box``,
``delta_yolo_class``, ``get_yolo_box`` and ``backward_yolo_layer`` in ``src/yolo_layer.c``,
``box_iou`` in ``src/box.c`` and ``parse_yolo`` in ``src/parser.c``, with the values of
``yolov3.cfg``'s three ``[yolo]`` sections as defaults (``ignore_thresh=.7``,
``truth_thresh=1``; ``yolov3-voc.cfg`` has ``ignore_thresh=.5``). A ``[yolo]`` layer has no
``object_scale``, ``noobject_scale``, ``coord_scale`` or ``class_scale``: no lambdas at all.

Each head is trained by its own ``[yolo]`` layer, in two passes per image:

1. Every prediction of the head: objectness toward 0, unless its decoded box overlaps some
   ground truth of the image (whichever scale that truth belongs to) by IoU > ``ignore_thresh``,
   in which case it gets no objectness loss at all. (If the IoU exceeded ``truth_thresh`` the
   prediction would also be trained as a positive for that truth; at 1 this never happens.)
2. Every ground truth: its anchor is the best of **all** the anchors (nine in yolov3.cfg) by
   the IoU of the two shapes centred on each other, anchor sizes divided by the network's
   input size. Only the head whose ``mask`` holds that anchor trains it, in the cell holding
   the truth's centre: one positive per ground truth in the whole network. The positive gets
   box targets weighted by ``2 - w*h``, objectness toward 1 and per-class targets.

Darknet never computes a loss. It writes a ``delta`` for every output entry and its backward
(CPU and GPU) adds that delta to the gradient as it is, with no sigmoid slope. So:

- x, y: delta ``(2 - w*h) * (target - sigmoid(t))``, the negative gradient of
  ``(2 - w*h) * BCE(sigmoid(t), target)``, binary cross-entropy on the logit with a soft
  target in [0, 1]. (Its minimum is the target's entropy, not 0; only its gradient matters.)
- w, h: delta ``(2 - w*h) * (target - t)``, the negative gradient of
  ``(2 - w*h) / 2 * (target - t)**2``, a squared error on the raw t, in log space.
- objectness and each class: delta ``target - sigmoid(t)``, the negative gradient of
  ``BCE(sigmoid(t), target)``. Classes are independent sigmoids, not a softmax (paper 2.2).

The paper calls the loss a "sum of squared error" with gradient ``target - prediction``;
the code's x, y gradient is that of a logistic (cross-entropy) loss. We use the loss whose
gradient with respect to each raw output is exactly minus Darknet's delta. It is summed over
the batch and the heads, as Darknet sums its deltas (Darknet's printed "cost" is the sum of
the squared deltas, a different number). Every target is a constant.

Classes of two truths on one prediction, from ``delta_yolo_class``: the first truth writes
the whole one-hot delta ``onehot - p``; a later truth on the same (cell, anchor) finds the
class-0 delta non-zero and only sets its own class's delta to ``1 - p``, so the class target
becomes multi-hot, while its box targets overwrite the earlier truth's. (The test is on the
value of the class-0 delta: if p of class 0 is exactly its target, 0 or 1 after float
saturation, the delta is 0 and the later truth writes a fresh one-hot. We reproduce that too.)

``assign_yolo_targets`` returns pass 2's choice for every truth (head, anchor, cell, and
whether a later truth shares its prediction), the same one ``yolo_loss`` trains with.

Units: each head output is (N, A*(5+C), H, W), anchor-major as in ``detection.decode.decode_yolov3``
(slot ``a`` owns channels ``a*(5+C) ... a*(5+C)+4+C``: tx, ty, tw, th, objectness, C class
logits), slot ``a`` of head ``s`` uses anchor ``masks[s][a]``; ground truths are
(class, cx, cy, w, h) as fractions of the image; anchors are (w, h) in input pixels.

Where we differ from Darknet, deliberately (as in ``region_loss``):

- A truth with cx = 1.0 (or cy = 1.0) lies on the right (bottom) edge. Darknet's column
  ``(int)(truth.x * l.w)`` is then ``l.w``, and ``entry_index`` lands on the first cell of
  the next row (from the bottom row: another anchor's cell (0, 0), or the next image); we put
  the truth in the last cell, ``i = W - 1`` (its x target is then 1.0).
- Darknet reads at most ``max`` = 90 truths per image and ends the list at the first whose
  x is 0; we take ``counts`` rows per image, so a truth centred exactly at x = 0 still counts.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .boxes import centre_size_iou, decode_boxes

IGNORE_THRESH = 0.7  # yolov3.cfg, every [yolo] section: ignore_thresh = .7
VOC_IGNORE_THRESH = 0.5  # yolov3-voc.cfg: ignore_thresh = .5 (also parse_yolo's default)
TRUTH_THRESH = 1.0  # yolov3.cfg: truth_thresh = 1 (an IoU never exceeds 1: inactive)
PART_NAMES = ("coord", "obj", "noobj", "class")


class YoloLoss(NamedTuple):
    """What ``yolo_loss`` returns.

    loss: scalar, summed over the batch and the heads, differentiable w.r.t. every head output.
    deltas: Darknet's delta for each head, in that head's shape, equal to minus the gradient
        of ``loss`` with respect to the head's raw output.
    parts: scalars "coord", "obj", "noobj" and "class", summed over the heads, that sum to ``loss``.
    scale_parts: the same four scalars for each head separately, in the order of ``outputs``.
    """

    loss: Tensor
    deltas: tuple[Tensor, ...]
    parts: dict[str, Tensor]
    scale_parts: tuple[dict[str, Tensor], ...]


class YoloAssignment(NamedTuple):
    """Where pass 2 of ``forward_yolo_layer`` trains each ground truth.

    One entry per real truth (the first ``counts[b]`` rows of each image), in (image, row)
    order, all (K,) tensors:

    image, truth: b and the row t of ``truths``.
    anchor: best_n, the index among all the anchors of the best centred-shape IoU.
    shape_iou: that IoU.
    scale: the head (index into ``masks``) whose mask holds the anchor.
    slot: the anchor's place in that mask (Darknet's ``mask_n``), the head's channel group.
    row, col: j and i, the cell of that head holding the truth's centre.
    rank: how many earlier truths of the image landed on the same (head, slot, row, col).
    box_kept: False when a later truth on the same prediction overwrites this one's box
        targets (its class stays in the multi-hot class target).
    """

    image: Tensor
    truth: Tensor
    anchor: Tensor
    shape_iou: Tensor
    scale: Tensor
    slot: Tensor
    row: Tensor
    col: Tensor
    rank: Tensor
    box_kept: Tensor


def assign_yolo_targets(
    truths: Tensor,
    counts: Tensor | Sequence[int],
    anchors: Tensor | Sequence[Sequence[float]],
    masks: Sequence[Sequence[int]],
    image_size: int | tuple[int, int],
    grid_sizes: Sequence[tuple[int, int]],
) -> YoloAssignment:
    """The head, anchor and cell each ground truth is trained at (pass 2 of ``forward_yolo_layer``).

    truths: (N, M, 5) rows (class, cx, cy, w, h), fractions of the image; counts: (N,).
    anchors: (T, 2) anchor (w, h) in input pixels; masks: each head's anchor indices.
    image_size: the network input, ``(height, width)`` in pixels, or one int for a square.
    grid_sizes: each head's ``(H, W)`` in grid cells, in the order of ``masks``.
    """
    (net_h, net_w), grids = _check_size(image_size), _check_grids(grid_sizes, masks)
    anchors, masks = _check_anchors(anchors, masks)
    truths = torch.as_tensor(truths)
    n = truths.shape[0] if truths.dim() > 0 else 0  # the batch size, read from the truths
    dtype = truths.dtype if truths.is_floating_point() else torch.get_default_dtype()
    counts, truths = _check_truths(truths, counts, n, None, truths.device, dtype)
    return _assign(truths, counts, anchors.to(truths), masks, (net_h, net_w), grids)


def yolo_loss(
    outputs: Sequence[Tensor],
    truths: Tensor,
    counts: Tensor | Sequence[int],
    anchors: Tensor | Sequence[Sequence[float]],
    masks: Sequence[Sequence[int]],
    num_classes: int,
    image_size: int | tuple[int, int],
    *,
    ignore_thresh: float = IGNORE_THRESH,
    truth_thresh: float = TRUTH_THRESH,
) -> YoloLoss:
    """YOLOv3's loss and Darknet's deltas for a batch, following ``forward_yolo_layer``.

    outputs: one raw head output (N, len(mask)*(5+C), H_s, W_s) per head, before any sigmoid,
        in the order of ``masks`` (yolov3.cfg: stride 32, 16, 8 with masks 6,7,8 / 3,4,5 / 0,1,2).
    truths: (N, M, 5) rows (class, cx, cy, w, h), fractions of the image; only the first
        ``counts[b]`` rows of image b are read, the rest is padding and may hold anything.
    counts: (N,) number of ground truths per image.
    anchors: (T, 2) anchor (w, h) in input pixels, the cfg's ``anchors``; T = ``num``.
    masks: each head's anchor indices, the cfg's ``mask``; together they hold 0..T-1 once each.
    num_classes: C, the cfg's ``classes``.
    image_size: the network input ``(height, width)`` in pixels (Darknet's net.h, net.w), or
        one int for a square input; anchors are divided by it.
    ignore_thresh, truth_thresh: the cfg's knobs of the same names (see the module docstring).
    """
    outputs = _check_outputs(outputs)
    (net_h, net_w) = _check_size(image_size)
    anchors, masks = _check_anchors(anchors, masks)
    _check_heads(outputs, masks, num_classes)
    for name, value in (("ignore_thresh", ignore_thresh), ("truth_thresh", truth_thresh)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value <= 1:
            raise ValueError(f"{name} must be a number in [0, 1] (an IoU), got {value!r}")
    first = outputs[0]
    counts, truths = _check_truths(truths, counts, first.shape[0], num_classes, first.device, first.dtype)
    anchors = anchors.to(first)
    grids = [(out.shape[2], out.shape[3]) for out in outputs]
    assignment = _assign(truths, counts, anchors, masks, (net_h, net_w), grids)

    deltas, scale_parts = [], []
    for s, (output, mask) in enumerate(zip(outputs, masks, strict=True)):
        on_scale = assignment.scale == s
        here = YoloAssignment(*(field[on_scale] for field in assignment))
        delta, parts = _yolo_layer(output, truths, counts, anchors, mask, num_classes, (net_h, net_w), here,
                                   ignore_thresh, truth_thresh)
        deltas.append(delta)
        scale_parts.append(parts)
    parts = {name: sum(p[name] for p in scale_parts) for name in PART_NAMES}
    loss = parts["coord"] + parts["obj"] + parts["noobj"] + parts["class"]
    return YoloLoss(loss, tuple(deltas), parts, tuple(scale_parts))


def _yolo_layer(
    output: Tensor,
    truths: Tensor,
    counts: Tensor,
    anchors: Tensor,
    mask: tuple[int, ...],
    num_classes: int,
    image_size: tuple[int, int],
    assignment: YoloAssignment,
    ignore_thresh: float,
    truth_thresh: float,
) -> tuple[Tensor, dict[str, Tensor]]:
    """One ``[yolo]`` layer: its delta (in ``output``'s shape) and its four loss parts."""
    n, _, h, w = output.shape
    a, c, m = len(mask), num_classes, truths.shape[1]
    net_h, net_w = image_size
    device = output.device
    layer_anchors = anchors[list(mask)]  # (A, 2) pixels: l.biases[2*l.mask[n]], ...

    # Darknet's activations (top of forward_yolo_layer): logistic on x, y, objectness and every
    # class; w, h stay raw. z[..., k] is entry k of (image, slot, row, column).
    z = output.reshape(n, a, 5 + c, h, w).permute(0, 1, 3, 4, 2)  # (N, A, H, W, 5+C) logits
    z_xy, z_wh, z_obj, z_class = z[..., 0:2], z[..., 2:4], z[..., 4], z[..., 5:]

    with torch.no_grad():  # targets are constants
        p_xy, p_obj, p_class = torch.sigmoid(z_xy), torch.sigmoid(z_obj), torch.sigmoid(z_class)
        pred = decode_boxes(p_xy, z_wh.detach(), layer_anchors, (net_w, net_h))  # (N, A, H, W, 4) fractions
        valid = torch.arange(m, device=device) < counts[:, None]  # (N, M) real truth rows

        # Pass 1, over every (b, j, i, n): best_iou of the decoded box with any truth of the
        # image (all of them, whichever head trains them).
        ious = centre_size_iou(pred.reshape(n, -1, 1, 4), truths[:, None, :, 1:])  # (N, A*H*W, M)
        ious = ious.masked_fill(~valid[:, None, :], 0.0)  # padding rows count for nothing
        # Darknet starts best_iou at 0 (an IoU is never below): 0 also serves images with no truths.
        best_iou = ious.amax(dim=2).reshape(n, a, h, w) if m else ious.new_zeros(n, a, h, w)
        # l.delta[obj_index] = 0 - output; = 0 when best_iou > ignore_thresh;
        # = 1 - output (and box and class targets from truth best_t) when best_iou > truth_thresh.
        ignored = best_iou > ignore_thresh  # strictly greater, as in Darknet
        positive = best_iou > truth_thresh  # never with truth_thresh = 1
        box_target = torch.zeros_like(pred)  # (N, A, H, W, 4): x, y in cells, tw, th in log space
        box_scale = torch.zeros_like(best_iou)  # (N, A, H, W): 2 - w*h
        class_target = torch.zeros_like(p_class)  # (N, A, H, W, C), multi-hot
        if bool(positive.any()):
            at = positive.nonzero(as_tuple=True)  # (b, slot, row, col) of each such prediction
            best_t = ious.argmax(dim=2).reshape(n, a, h, w)  # the first best truth (`iou > best_iou`)
            g = truths[at[0], best_t[at]]  # (P, 5) class, cx, cy, w, h
            box_target[at] = _box_targets(g[:, 1:], at[3], at[2], layer_anchors[at[1]], (h, w), (net_h, net_w))
            box_scale[at] = 2.0 - g[:, 3] * g[:, 4]
            class_target[at] = F.one_hot(g[:, 0].long(), c).to(class_target)  # delta_yolo_class, fresh cell

        # Pass 2, over each truth t whose best anchor is in this mask. Truths that land on the
        # same prediction are applied in waves, the r-th truth of every prediction in wave r, so
        # that each wave writes distinct predictions and the waves keep Darknet's order over t.
        for r in range(int(assignment.rank.max()) + 1 if len(assignment.rank) else 0):
            wave = assignment.rank == r
            b_idx, t_idx = assignment.image[wave], assignment.truth[wave]
            at = (b_idx, assignment.slot[wave], assignment.row[wave], assignment.col[wave])
            g = truths[b_idx, t_idx]  # (K, 5) class, cx, cy, w, h
            # delta_yolo_box with scale 2 - truth.w*truth.h, anchor best_n: the later truth wins.
            box_target[at] = _box_targets(g[:, 1:], at[3], at[2], anchors[assignment.anchor[wave]], (h, w),
                                          (net_h, net_w))
            box_scale[at] = 2.0 - g[:, 3] * g[:, 4]
            # delta_yolo_class: `if (delta[index])`, the class-0 delta already non-zero, only the
            # truth's own class is set (to 1 - p); otherwise the whole one-hot delta is written.
            already = positive[at] & (class_target[at][:, 0] != p_class[at][:, 0])
            rows = torch.where(already[:, None], class_target[at], torch.zeros_like(class_target[at]))
            rows[torch.arange(len(rows), device=device), g[:, 0].long()] = 1.0
            class_target[at] = rows
            positive[at] = True  # l.delta[obj_index] = 1 - output

    # The loss whose negative gradient is Darknet's delta (see the module docstring).
    zero = z_obj.new_zeros(())
    xy_error = _bce_with_logits(z_xy, box_target[..., :2]).sum(dim=-1)  # (N, A, H, W)
    wh_error = ((box_target[..., 2:] - z_wh) ** 2).sum(dim=-1) / 2  # (N, A, H, W)
    obj_error = _bce_with_logits(z_obj, positive.to(z_obj))  # target 1 or 0
    class_error = _bce_with_logits(z_class, class_target).sum(dim=-1)  # (N, A, H, W)
    parts = {
        "coord": torch.where(positive, box_scale * (xy_error + wh_error), zero).sum(),
        "obj": torch.where(positive, obj_error, zero).sum(),
        "noobj": torch.where(positive | ignored, zero, obj_error).sum(),
        "class": torch.where(positive, class_error, zero).sum(),
    }

    with torch.no_grad():
        # Darknet's delta, target - activated output (w, h: target - raw t), added as it is
        # by backward_yolo_layer (axpy_cpu), no sigmoid slope.
        keep = positive[..., None]
        d_xy = torch.where(keep, box_scale[..., None] * (box_target[..., :2] - p_xy), zero)
        d_wh = torch.where(keep, box_scale[..., None] * (box_target[..., 2:] - z_wh), zero)
        d_obj = torch.where(positive, 1 - p_obj, torch.where(ignored, zero, -p_obj))
        d_class = torch.where(keep, class_target - p_class, zero)
        delta = torch.cat([d_xy, d_wh, d_obj[..., None], d_class], dim=-1)  # (N, A, H, W, 5+C)
    return delta.permute(0, 1, 4, 2, 3).reshape(output.shape), parts


def _bce_with_logits(logits: Tensor, target: Tensor) -> Tensor:
    """Binary cross-entropy of sigmoid(logits) against target, elementwise; gradient sigmoid - target.

    -[y log s + (1 - y) log(1 - s)] with s = sigmoid(z) equals softplus(z) - y*z, the value
    ``F.binary_cross_entropy_with_logits(z, y, reduction="none")`` gives, in one cheap kernel.
    Softplus switches to z itself above ``threshold``; at 40, where sigmoid(z) is 1.0 in
    float64, the gradient stays exactly sigmoid(z) - y.
    """
    return F.softplus(logits, threshold=40.0) - target * logits


def _assign(
    truths: Tensor,
    counts: Tensor,
    anchors: Tensor,
    masks: tuple[tuple[int, ...], ...],
    image_size: tuple[int, int],
    grids: Sequence[tuple[int, int]],
) -> YoloAssignment:
    """Pass 2's choice of head, anchor and cell for every real truth, vectorised over truths."""
    net_h, net_w = image_size
    device = truths.device
    valid = torch.arange(truths.shape[1], device=device) < counts[:, None]  # (N, M)
    b_idx, t_idx = valid.nonzero(as_tuple=True)  # (K,) each, in (b, t) order
    g = truths[b_idx, t_idx, 1:]  # (K, 4) cx, cy, w, h fractions
    # best_n: box_iou of the truth's shape and each anchor's (l.biases / net.w, net.h), both
    # centred at 0, over all l.total anchors; the first best wins (`if (iou > best_iou)`).
    shapes = anchors / anchors.new_tensor([net_w, net_h])  # (T, 2) fractions
    centred = torch.cat([torch.zeros_like(shapes), shapes], dim=-1)  # (T, 4)
    g_centred = torch.cat([torch.zeros_like(g[:, 2:]), g[:, 2:]], dim=-1)  # (K, 4)
    shape_iou, best_n = centre_size_iou(centred[None], g_centred[:, None]).max(dim=1)  # (K,) each
    # mask_n = int_index(l.mask, best_n, l.n): which head, and where in its mask.
    scale_of = torch.empty(len(anchors), dtype=torch.long, device=device)
    slot_of = torch.empty(len(anchors), dtype=torch.long, device=device)
    for s, mask in enumerate(masks):
        scale_of[list(mask)] = s
        slot_of[list(mask)] = torch.arange(len(mask), device=device)
    scale, slot = scale_of[best_n], slot_of[best_n]
    # The cell holding the centre on that head: i = (int)(truth.x * l.w), j = (int)(truth.y * l.h).
    # Darknet does not clamp, so cx = 1.0 would give i = l.w, off the grid: we clamp.
    grid = torch.tensor(grids, dtype=torch.long, device=device)  # (S, 2) H, W per head
    grid_h, grid_w = grid[scale, 0], grid[scale, 1]
    col = torch.minimum((g[:, 0] * grid_w).long(), grid_w - 1)  # (K,) i, column in cells
    row = torch.minimum((g[:, 1] * grid_h).long(), grid_h - 1)  # (K,) j, row in cells
    # Truths on the same prediction (image, head, slot, row, col): rank them in order of t.
    big_h, big_w = int(grid[:, 0].max()) if len(grid) else 1, int(grid[:, 1].max()) if len(grid) else 1
    key = (((b_idx * len(masks) + scale) * len(anchors) + slot) * big_h + row) * big_w + col  # (K,)
    sorted_key, order = torch.sort(key, stable=True)
    first = torch.searchsorted(sorted_key, sorted_key)  # position of each key's first entry
    rank = torch.empty_like(key)
    rank[order] = torch.arange(len(key), device=device) - first
    last = torch.ones_like(key, dtype=torch.bool)
    last[order[:-1]] = sorted_key[1:] != sorted_key[:-1]  # no later truth with the same key
    return YoloAssignment(b_idx, t_idx, best_n, shape_iou, scale, slot, row, col, rank, last)


def _box_targets(
    g: Tensor, col: Tensor, row: Tensor, anchor: Tensor, grid: tuple[int, int], image_size: tuple[int, int]
) -> Tensor:
    """delta_yolo_box's targets: (K, 4) tx, ty in cells from the cell's corner, tw, th in log space.

    g: (K, 4) cx, cy, w, h fractions; col, row: (K,) the cell; anchor: (K, 2) pixels.
    """
    (h, w), (net_h, net_w) = grid, image_size
    return torch.stack(
        [
            g[:, 0] * w - col,  # tx = truth.x*lw - i
            g[:, 1] * h - row,  # ty = truth.y*lh - j
            torch.log(g[:, 2] * net_w / anchor[:, 0]),  # tw = log(truth.w*w / biases[2*n])
            torch.log(g[:, 3] * net_h / anchor[:, 1]),  # th = log(truth.h*h / biases[2*n+1])
        ],
        dim=-1,
    )


def _check_outputs(outputs: Sequence[Tensor]) -> list[Tensor]:
    if isinstance(outputs, Tensor) or not isinstance(outputs, Sequence) or len(outputs) == 0:
        raise ValueError(
            f"outputs must be a list or tuple of head outputs (N, A*(5+C), H, W), got {type(outputs).__name__}"
        )
    for s, out in enumerate(outputs):
        if not isinstance(out, Tensor) or out.dim() != 4 or not out.is_floating_point():
            got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise ValueError(f"outputs[{s}] must be a floating (N, A*(5+C), H, W) tensor, got {got}")
    first = outputs[0]
    for s, out in enumerate(outputs[1:], start=1):
        if out.shape[0] != first.shape[0] or out.dtype != first.dtype or out.device != first.device:
            raise ValueError(
                f"every head output must share the batch size, dtype and device of outputs[0] "
                f"({first.shape[0]}, {first.dtype}, {first.device}), outputs[{s}] has "
                f"({out.shape[0]}, {out.dtype}, {out.device})"
            )
    return list(outputs)


def _check_size(image_size: int | tuple[int, int]) -> tuple[int, int]:
    size = (image_size, image_size) if isinstance(image_size, numbers.Integral) else image_size
    ok = isinstance(size, Sequence) and len(size) == 2
    ok = ok and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v > 0 for v in size)
    if not ok:
        raise ValueError(f"image_size must be the network input (height, width) in pixels, got {image_size!r}")
    return int(size[0]), int(size[1])


def _check_anchors(
    anchors: Tensor | Sequence[Sequence[float]], masks: Sequence[Sequence[int]]
) -> tuple[Tensor, tuple[tuple[int, ...], ...]]:
    anchors = torch.as_tensor(anchors, dtype=torch.float64)
    if anchors.dim() != 2 or anchors.shape[1] != 2 or anchors.shape[0] < 1:
        raise ValueError(f"anchors must be (T, 2) widths and heights in pixels, got shape {tuple(anchors.shape)}")
    if not bool((anchors > 0).all()):
        raise ValueError(f"anchor widths and heights must be > 0 pixels, got {anchors.tolist()}")
    try:
        masks = tuple(tuple(int(i) for i in mask) for mask in masks)
    except (TypeError, ValueError):
        raise ValueError(f"masks must be sequences of anchor indices, one per head, got {masks!r}") from None
    held = sorted(i for mask in masks for i in mask)
    if held != list(range(len(anchors))) or any(len(mask) == 0 for mask in masks):
        raise ValueError(
            f"masks must hold every anchor index 0..{len(anchors) - 1} exactly once (one head per anchor), "
            f"got {masks}"
        )
    return anchors, masks


def _check_grids(grid_sizes: Sequence[tuple[int, int]], masks: Sequence[Sequence[int]]) -> list[tuple[int, int]]:
    grids = [tuple(g) for g in grid_sizes]
    if len(grids) != len(masks) or not all(
        len(g) == 2 and all(isinstance(v, numbers.Integral) and v > 0 for v in g) for g in grids
    ):
        raise ValueError(f"grid_sizes must be one (H, W) in grid cells per mask ({len(masks)}), got {grid_sizes!r}")
    return [(int(g[0]), int(g[1])) for g in grids]


def _check_heads(outputs: list[Tensor], masks: tuple[tuple[int, ...], ...], num_classes: int) -> None:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    if len(outputs) != len(masks):
        raise ValueError(f"got {len(outputs)} head outputs but {len(masks)} anchor masks (one per head)")
    for s, (out, mask) in enumerate(zip(outputs, masks, strict=True)):
        a = len(mask)
        if out.shape[1] != a * (5 + num_classes):
            raise ValueError(
                f"head {s} has mask {mask}: {a} anchors and {num_classes} classes make {a} * (5 + {num_classes}) = "
                f"{a * (5 + num_classes)} channels, got {out.shape[1]} (output shape {tuple(out.shape)})"
            )


def _check_truths(
    truths: Tensor,
    counts: Tensor | Sequence[int],
    n: int,
    num_classes: int | None,
    device: torch.device,
    dtype: torch.dtype,
) -> tuple[Tensor, Tensor]:
    """Validate truths and counts; return counts (long) and truths on ``device`` in ``dtype``."""
    truths = torch.as_tensor(truths)
    if truths.dim() != 3 or truths.shape[0] != n or truths.shape[2] != 5:
        raise ValueError(f"truths must be ({n}, M, 5) rows (class, cx, cy, w, h), got shape {tuple(truths.shape)}")
    truths = truths.to(device=device, dtype=dtype)
    counts = torch.as_tensor(counts, device=device)
    if counts.shape != (n,) or counts.is_floating_point() or counts.dtype == torch.bool:
        raise ValueError(f"counts must be ({n},) integers, got shape {tuple(counts.shape)} of {counts.dtype}")
    m = truths.shape[1]
    if bool(((counts < 0) | (counts > m)).any()):
        raise ValueError(f"counts must lie in [0, M={m}] (rows of truths), got {counts.tolist()}")
    counts = counts.long()
    rows = truths[torch.arange(m, device=device) < counts[:, None]]  # (K, 5) real rows
    cls, coords = rows[:, 0], rows[:, 1:]
    bad = ~((coords >= 0) & (coords <= 1)).all(dim=1)
    if bool(bad.any()):
        raise ValueError(f"truth cx, cy, w, h must be fractions of the image in [0, 1], got {coords[bad][0].tolist()}")
    bad = (coords[:, 2] <= 0) | (coords[:, 3] <= 0)
    if bool(bad.any()):
        raise ValueError(f"truth w and h must be > 0, got w, h = {coords[bad][0, 2:].tolist()}")
    top = num_classes if num_classes is not None else float("inf")
    bad = (cls != cls.round()) | (cls < 0) | (cls >= top)
    if bool(bad.any()):
        limit = f"[0, {num_classes - 1}]" if num_classes is not None else "[0, inf)"
        raise ValueError(f"truth classes must be integers in {limit}, got {cls[bad][0].item()}")
    return counts, truths
