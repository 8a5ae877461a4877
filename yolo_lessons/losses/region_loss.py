"""The YOLOv2 loss, exactly as Darknet's ``[region]`` layer computes it.

The YOLO9000 paper (Redmon & Farhadi, 2016) never writes its loss down. Every formula here
is read from Darknet's code: ``forward_region_layer`` and ``backward_region_layer_gpu`` in
``src/region_layer.c``, ``box_iou`` in ``src/box.c``, with the knobs of ``yolov2-voc.cfg``'s
``[region]`` section as defaults (``object_scale=5``, ``noobject_scale=1``, ``class_scale=1``,
``coord_scale=1``, ``thresh=.6``, ``rescore=1``, ``bias_match=1``, ``softmax=1``).

Darknet never computes a loss. It writes a ``delta`` for every output entry,
``scale * (target - activated output)``, and its GPU backward multiplies the x, y and
objectness deltas by the logistic's slope sigma' = sigma * (1 - sigma). (Its CPU backward,
``backward_region_layer``, has had its whole body commented out since commit 60e952ba, so a
CPU-only Darknet passes no gradient out of a ``[region]`` layer.) We therefore use the loss
whose gradient with respect to the raw output is exactly minus that delta:

- x, y, objectness: ``scale / 2 * (target - sigmoid(t))**2`` (a squared error on sigma(t));
- w, h: ``scale / 2 * (target - t)**2`` (a squared error on the raw t, i.e. in log space);
- classes: ``class_scale * cross_entropy(logits, class)``, whose gradient on the logits is
  ``class_scale * (softmax - onehot)``.

Every target is a constant: no gradient flows through them, including the objectness target
IoU(predicted box, ground truth) used when ``rescore`` is on. The loss is summed over the
batch, as Darknet sums its deltas. (Darknet's printed "cost" is the sum of the squared
deltas, a different number.)

Units: the head output is (N, A*(5+C), H, W), anchor-major (anchor ``a`` owns channels
``a*(5+C) ... a*(5+C)+4+C``: tx, ty, tw, th, objectness, C class logits); ground truths are
(class, cx, cy, w, h) as fractions of the image; anchors are (w, h) in grid cells.

Where we differ from Darknet, deliberately:

- A ground truth with cx = 1.0 (or cy = 1.0) lies on the right (bottom) edge. Darknet's
  column ``(int)(truth.x * l.w)`` is then W, one past the grid, and ``entry_index`` lands on
  the first cell of the next row (from the bottom row: the next anchor's first cell, or the
  next image's), another prediction's slot; we put it in the last cell, ``i = W - 1`` (its x
  target is then 1.0). Darknet's own loader never makes such a box: clipped to the image it
  has width 0, and ``fill_truth_detection`` drops boxes under .001 wide.
- Darknet reads at most 30 truths per image and ends the list at the first one whose x is 0;
  we take ``counts`` rows per image, so a truth centred exactly at x = 0 still counts.
- Darknet hard-codes the prior-matching phase (scale .01 while fewer than 12800 images were
  seen; no cfg option changes either); we name those numbers ``prior_scale`` and
  ``prior_images``.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from .boxes import centre_size_iou, decode_boxes

PRIOR_SCALE = 0.01  # forward_region_layer: delta_region_box(..., .01, ...) while seen < 12800
PRIOR_IMAGES = 12800  # forward_region_layer: if(*(net.seen) < 12800)
PART_NAMES = ("coord", "obj", "noobj", "class", "prior")


class RegionLoss(NamedTuple):
    """What ``region_loss`` returns.

    loss: scalar, summed over the batch, differentiable with respect to the head output.
    delta: Darknet's delta in the head output's own shape, equal to minus the gradient of
        ``loss`` with respect to the raw output (what Darknet's GPU backward propagates).
    parts: scalars "coord", "obj", "noobj", "class" and "prior" that sum to ``loss``.
    """

    loss: Tensor
    delta: Tensor
    parts: dict[str, Tensor]


def region_loss(
    output: Tensor,
    truths: Tensor,
    counts: Tensor | Sequence[int],
    anchors: Tensor | Sequence[Sequence[float]],
    num_classes: int,
    *,
    seen: int,
    object_scale: float = 5.0,
    noobject_scale: float = 1.0,
    class_scale: float = 1.0,
    coord_scale: float = 1.0,
    thresh: float = 0.6,
    rescore: bool = True,
    bias_match: bool = True,
    prior_scale: float = PRIOR_SCALE,
    prior_images: int = PRIOR_IMAGES,
) -> RegionLoss:
    """YOLOv2's loss and Darknet's delta for a batch, following ``forward_region_layer``.

    output: (N, A*(5+C), H, W) raw head output (before any sigmoid or softmax).
    truths: (N, M, 5) rows (class, cx, cy, w, h), fractions of the image; only the first
        ``counts[b]`` rows of image b are read, the rest is padding and may hold anything.
    counts: (N,) number of ground truths per image.
    anchors: (A, 2) anchor (w, h) in grid cells, the cfg's ``anchors``.
    num_classes: C, the cfg's ``classes``.
    seen: number of images the network has trained on so far (Darknet's ``net.seen``).

    Pass 1 (every prediction): objectness is pushed toward 0 with ``noobject_scale`` unless
    the decoded box overlaps some ground truth of its image by IoU > ``thresh``; while
    ``seen < prior_images`` every box is also pulled toward its cell's centre and its anchor's
    shape with ``prior_scale``. Pass 2 (every ground truth): the prediction in the cell holding
    the centre, with the anchor of best centred-shape IoU, gets box targets with weight
    ``coord_scale * (2 - w*h)``, objectness toward IoU (``rescore``) or 1 with ``object_scale``,
    and softmax classes with ``class_scale``; this overwrites pass 1 for that prediction, and
    a later ground truth on the same (cell, anchor) overwrites an earlier one.
    """
    anchors, counts, truths = _check_inputs(output, truths, counts, anchors, num_classes, seen)
    n, _, h, w = output.shape
    a, c, m = anchors.shape[0], num_classes, truths.shape[1]
    device = output.device

    # Darknet's activations (top of forward_region_layer): logistic on x, y and objectness,
    # softmax over the classes of each (anchor, cell). Entry k of anchor a is p[:, a, k].
    p = output.reshape(n, a, 5 + c, h, w)
    box = torch.stack(
        [torch.sigmoid(p[:, :, 0]), torch.sigmoid(p[:, :, 1]), p[:, :, 2], p[:, :, 3]], dim=-1
    )  # (N, A, H, W, 4): sigma(tx), sigma(ty) in cells from the cell's corner; tw, th raw
    objectness = torch.sigmoid(p[:, :, 4])  # (N, A, H, W)
    log_probs = torch.log_softmax(p[:, :, 5:], dim=2)  # (N, A, C, H, W)

    with torch.no_grad():  # targets and scales are constants
        pred = decode_boxes(box[..., :2].detach(), box[..., 2:].detach(), anchors, (w, h))  # (N, A, H, W, 4) fractions
        valid = torch.arange(m, device=device) < counts[:, None]  # (N, M) real truth rows

        # Pass 1, over every (b, j, i, n) of forward_region_layer.
        # best_iou: the best IoU of the decoded box with any truth of its image (from 0).
        ious = centre_size_iou(pred.reshape(n, -1, 1, 4), truths[:, None, :, 1:])  # (N, A*H*W, M)
        ious = ious.masked_fill(~valid[:, None, :], 0.0)  # padding rows count for nothing
        # Darknet starts best_iou at 0: a column of zeros also serves images with no truths.
        best_iou = torch.cat([ious.new_zeros(n, a * h * w, 1), ious], dim=2).amax(dim=2)
        ignore = (best_iou > thresh).reshape(n, a, h, w)  # strictly greater, as in Darknet
        # l.delta[obj_index] = noobject_scale * (0 - output), then 0 when best_iou > thresh
        obj_scale = torch.full_like(objectness, noobject_scale).masked_fill(ignore, 0.0)
        obj_target = torch.zeros_like(objectness)
        # if (seen < 12800): delta_region_box toward a truth at the cell centre with the
        # anchor's own size, scale .01: targets sigma(tx) = sigma(ty) = .5 and tw = th = 0.
        box_scale = torch.full_like(objectness, prior_scale if seen < prior_images else 0.0)
        box_target = box.new_tensor([0.5, 0.5, 0.0, 0.0]).expand(n, a, h, w, 4).clone()

        # Pass 2, over each truth t of each image b.
        b_idx, t_idx = valid.nonzero(as_tuple=True)  # (K,) each, in (b, t) order
        cls = truths[b_idx, t_idx, 0].long()  # (K,)
        g = truths[b_idx, t_idx, 1:]  # (K, 4) cx, cy, w, h fractions
        grid = g.new_tensor([w, h])
        # The cell holding the centre: i = (int)(truth.x * l.w), j = (int)(truth.y * l.h).
        # Darknet does not clamp, so cx = 1.0 would give i = W, outside the grid: we clamp.
        col = (g[:, 0] * w).long().clamp(max=w - 1)  # (K,) i, column
        row = (g[:, 1] * h).long().clamp(max=h - 1)  # (K,) j, row
        # best_n: the anchor whose shape has the best IoU with the truth's, both centred at 0;
        # with bias_match the anchor's own shape, without it the current predicted w, h.
        if bias_match:
            shapes = (anchors / grid).expand(len(cls), a, 2)  # (K, A, 2) fractions
        else:
            shapes = pred[b_idx, :, row, col, 2:]  # (K, A, 2) fractions
        centred = torch.cat([torch.zeros_like(shapes), shapes], dim=-1)  # (K, A, 4)
        g_centred = torch.cat([torch.zeros_like(g[:, 2:]), g[:, 2:]], dim=-1)  # (K, 4)
        best_n = centre_size_iou(centred, g_centred[:, None, :]).argmax(dim=1)  # (K,) first best wins

        # A later truth on the same (b, best_n, j, i) overwrites every delta of an earlier one:
        # keep, for each prediction, only its truth of highest row number t.
        flat = ((b_idx * a + best_n) * h + row) * w + col  # (K,) flat prediction index
        last = torch.full((n * a * h * w,), -1, dtype=torch.long, device=device)
        last = last.scatter_reduce(0, flat, t_idx, reduce="amax")  # last truth row per prediction
        keep = last[flat] == t_idx
        b_idx, best_n, row, col, cls, g = (v[keep] for v in (b_idx, best_n, row, col, cls, g))
        at = (b_idx, best_n, row, col)  # the responsible predictions, one per kept truth

        # delta_region_box with scale coord_scale * (2 - truth.w*truth.h): targets
        # tx = truth.x*W - i, ty = truth.y*H - j (cells), tw = ln(truth.w*W / anchor_w), ...
        box_target[at] = torch.stack(
            [
                g[:, 0] * w - col,
                g[:, 1] * h - row,
                torch.log(g[:, 2] * w / anchors[best_n, 0]),
                torch.log(g[:, 3] * h / anchors[best_n, 1]),
            ],
            dim=-1,
        )
        box_scale[at] = coord_scale * (2.0 - g[:, 2] * g[:, 3])
        # Objectness toward IoU(predicted box, truth) with rescore, else toward 1.
        obj_scale[at] = object_scale
        obj_target[at] = centre_size_iou(pred[at], g) if rescore else 1.0
        responsible = torch.zeros_like(objectness, dtype=torch.bool)
        responsible[at] = True
        class_target = torch.zeros_like(objectness, dtype=torch.long)  # read where responsible
        class_target[at] = cls

    # The loss whose negative gradient is Darknet's delta (see the module docstring).
    box_error = box_scale / 2 * ((box_target - box) ** 2).sum(dim=-1)  # (N, A, H, W)
    obj_error = obj_scale / 2 * (obj_target - objectness) ** 2  # (N, A, H, W)
    cross_entropy = -log_probs.gather(2, class_target[:, :, None]).squeeze(2)  # (N, A, H, W)
    zero = box_error.new_zeros(())
    parts = {
        "coord": torch.where(responsible, box_error, zero).sum(),
        "obj": torch.where(responsible, obj_error, zero).sum(),
        "noobj": torch.where(responsible, zero, obj_error).sum(),
        "class": class_scale * torch.where(responsible, cross_entropy, zero).sum(),
        "prior": torch.where(responsible, zero, box_error).sum(),
    }
    loss = parts["coord"] + parts["obj"] + parts["noobj"] + parts["class"] + parts["prior"]

    with torch.no_grad():
        # Darknet's delta = scale * (target - activated output), then backward_region_layer_gpu
        # multiplies x, y and objectness by sigma' = sigma * (1 - sigma).
        sig = box.detach()
        d_box = box_scale[..., None] * (box_target - sig)  # (N, A, H, W, 4)
        d_box[..., :2] *= sig[..., :2] * (1 - sig[..., :2])
        obj = objectness.detach()
        d_obj = obj_scale * (obj_target - obj) * obj * (1 - obj)  # (N, A, H, W)
        # delta_region_class (softmax): class_scale * (onehot - p) at responsible predictions.
        probs = log_probs.detach().exp()  # (N, A, C, H, W)
        onehot = torch.nn.functional.one_hot(class_target, c).permute(0, 1, 4, 2, 3).to(probs)
        d_class = class_scale * (onehot - probs) * responsible[:, :, None]
        delta = torch.cat([d_box.permute(0, 1, 4, 2, 3), d_obj[:, :, None], d_class], dim=2)
    return RegionLoss(loss, delta.reshape(output.shape), parts)


def _check_inputs(
    output: Tensor,
    truths: Tensor,
    counts: Tensor | Sequence[int],
    anchors: Tensor | Sequence[Sequence[float]],
    num_classes: int,
    seen: int,
) -> tuple[Tensor, Tensor, Tensor]:
    """Validate the arguments; return anchors, counts and truths on the output's device and dtype."""
    if not isinstance(output, Tensor) or output.dim() != 4 or not output.is_floating_point():
        got = tuple(output.shape) if isinstance(output, Tensor) else type(output).__name__
        raise ValueError(f"output must be a floating (N, A*(5+C), H, W) tensor, got {got}")
    n, channels, _, _ = output.shape
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    if isinstance(seen, bool) or not isinstance(seen, numbers.Integral) or seen < 0:
        raise ValueError(f"seen must be a non-negative int (images trained on), got {seen!r}")
    anchors = torch.as_tensor(anchors, dtype=output.dtype, device=output.device)
    if anchors.dim() != 2 or anchors.shape[1] != 2 or anchors.shape[0] < 1:
        raise ValueError(f"anchors must be (A, 2) widths and heights in grid cells, got shape {tuple(anchors.shape)}")
    if not bool((anchors > 0).all()):
        raise ValueError(f"anchor widths and heights must be > 0 grid cells, got {anchors.tolist()}")
    a = anchors.shape[0]
    if channels != a * (5 + num_classes):
        raise ValueError(
            f"a head with {a} anchors and {num_classes} classes has {a} * (5 + {num_classes}) = "
            f"{a * (5 + num_classes)} channels, got {channels} (output shape {tuple(output.shape)})"
        )
    truths = torch.as_tensor(truths)
    if truths.dim() != 3 or truths.shape[0] != n or truths.shape[2] != 5:
        raise ValueError(f"truths must be ({n}, M, 5) rows (class, cx, cy, w, h), got shape {tuple(truths.shape)}")
    truths = truths.to(device=output.device, dtype=output.dtype)
    counts = torch.as_tensor(counts, device=output.device)
    if counts.shape != (n,) or counts.is_floating_point() or counts.dtype == torch.bool:
        raise ValueError(f"counts must be ({n},) integers, got shape {tuple(counts.shape)} of {counts.dtype}")
    m = truths.shape[1]
    if bool(((counts < 0) | (counts > m)).any()):
        raise ValueError(f"counts must lie in [0, M={m}] (rows of truths), got {counts.tolist()}")
    counts = counts.long()
    rows = truths[torch.arange(m, device=output.device) < counts[:, None]]  # (K, 5) valid rows
    cls, coords = rows[:, 0], rows[:, 1:]
    bad = ~((coords >= 0) & (coords <= 1)).all(dim=1)
    if bool(bad.any()):
        raise ValueError(f"truth cx, cy, w, h must be fractions of the image in [0, 1], got {coords[bad][0].tolist()}")
    bad = (coords[:, 2] <= 0) | (coords[:, 3] <= 0)
    if bool(bad.any()):
        raise ValueError(f"truth w and h must be > 0, got w, h = {coords[bad][0, 2:].tolist()}")
    bad = (cls != cls.round()) | (cls < 0) | (cls >= num_classes)
    if bool(bad.any()):
        raise ValueError(f"truth classes must be integers in [0, {num_classes - 1}], got {cls[bad][0].item()}")
    return anchors, counts, truths
