"""YOLO9000's loss: Darknet's ``[region]`` layer with ``tree=``, on detection and classification images.

The same two passes as ``region_loss`` (read that first: units, the delta, the loss whose
gradient is minus the delta), with three changes that ``forward_region_layer``
(``src/region_layer.c``, pjreddie/darknet f6afaabc) makes when the layer has a tree:

1. The class logits go through one softmax per group of the ``WordTree`` (``tree_softmax``,
   the GPU build's ``softmax_tree``), and ``delta_region_class`` with a hierarchy walks from the
   label up to its root: in the group of every node on that path, the node gets the target 1 and
   its siblings 0. Groups below the label get nothing, so a "dog" label never trains the dog
   breeds (the paper: "we only backpropagate loss at or above the corresponding level of the
   label"). The loss is ``class_scale`` times the cross-entropy of each of those softmaxes, which
   sums to -log P(label) (the absolute probability along the path). Two labels on one
   (cell, anchor): each group keeps the target of the later label whose path runs through it,
   the other groups of the earlier label keep theirs (Darknet overwrites group by group).
2. A detection label's class is first mapped to a node, ``class = l.map[class]`` (the cfg's
   ``map=``, e.g. ``data/coco9k.map``): ``class_map[k]`` is the node of detection class k.
   Without a map the detection classes are node indices.
3. Classification-only images (the ``onlyclass`` branch). Darknet marks one with a label line
   ``class 0 0 0 0``, which ``correct_boxes`` (``src/data.c``) turns into a box at 999999, and
   the layer tests ``truth.x > 100000 && truth.y > 100000``. Here the image's flag
   ``class_only[b]`` says so, and its first row's class is the label, a node index never mapped
   (as in Darknet, where ``l.map`` is applied to detection labels only); the rows' coordinates
   are not read. For such an image Darknet

   - pushes every prediction's objectness toward 0 with ``noobject_scale`` (no ignore rule, no
     prior term, no box loss);
   - finds the prediction with the largest objectness * P(label) (``get_hierarchy_probability``,
     the product along the path; the first one if tied) and gives its classes the tree delta;
   - computes for that prediction the objectness target .3 (``object_scale * (.3 - sigma)`` when
     sigma < .3, else 0) and then overwrites it with 0 on the next line (``l.delta[obj_index] = 0``,
     line 224): the best box gets no objectness gradient at all.

Where Darknet's code departs from the paper ("When it sees a classification image we only
backpropagate classification loss. [...] We also assume that the predicted box overlaps what would
be the ground truth label by at least .3 IOU and we backpropagate objectness loss based on this
assumption"), two options follow the paper instead:

- ``paper_objectness=True`` keeps the .3 target of the best prediction (line 224 removed);
- ``class_only_noobject=False`` leaves the other predictions of a classification image alone,
  where Darknet pushes all of them toward no object (the paper names no such term).

Defaults are yolo9000.cfg's ``[region]`` knobs (those of ``region_loss``). The same deliberate
differences from Darknet as ``region_loss`` (a truth on the right or bottom edge goes to the last
cell; ``counts`` rows per image rather than "up to the first row with x = 0").
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import torch
from torch import Tensor

from ..models.wordtree import WordTree, tree_log_softmax
from .boxes import centre_size_iou, decode_boxes
from .region_loss import PRIOR_IMAGES, PRIOR_SCALE, RegionLoss

CLASS_ONLY_OBJECTNESS = 0.3  # the paper's ".3 IOU" assumption, forward_region_layer line 222


def tree_region_loss(
    output: Tensor,
    truths: Tensor,
    counts: Tensor | Sequence[int],
    anchors: Tensor | Sequence[Sequence[float]],
    tree: WordTree,
    *,
    seen: int,
    class_only: Tensor | Sequence[bool] | None = None,
    class_map: Tensor | Sequence[int] | None = None,
    object_scale: float = 5.0,
    noobject_scale: float = 1.0,
    class_scale: float = 1.0,
    coord_scale: float = 1.0,
    thresh: float = 0.6,
    rescore: bool = True,
    bias_match: bool = True,
    prior_scale: float = PRIOR_SCALE,
    prior_images: int = PRIOR_IMAGES,
    paper_objectness: bool = False,
    class_only_noobject: bool = True,
) -> RegionLoss:
    """YOLO9000's loss and Darknet's delta for a batch, following ``forward_region_layer`` with a tree.

    output: (N, A*(5+C), H, W) raw head output, C = len(tree).
    truths: (N, M, 5) rows (class, cx, cy, w, h), fractions of the image; the first
        ``counts[b]`` rows of image b are read. A detection row's class is a detection class
        (an index into ``class_map``) or, without a map, a node of ``tree``.
    counts: (N,) ground truths per image (at least 1 for a classification-only image).
    anchors: (A, 2) anchor (w, h) in grid cells.
    tree: the ``WordTree`` of the cfg's ``tree=``.
    seen: images trained on so far (Darknet's ``net.seen``).
    class_only: (N,) bool, True for a classification-only image: its first row's class is a
        node of ``tree``, its coordinates are not read. None: every image is a detection image.
    class_map: (K,) the node of each detection class (the cfg's ``map=``); None: no map.

    Returns ``RegionLoss``: loss, delta (Darknet's, in the output's shape) and parts "coord",
    "obj", "noobj", "class", "prior". The best prediction of a classification-only image counts
    as responsible: its .3 objectness term (``paper_objectness``) is in "obj", its classes in
    "class"; the no-object terms of its other predictions are in "noobj".
    """
    anchors, counts, truths, class_only, class_map = _check_inputs(
        output, truths, counts, anchors, tree, seen, class_only, class_map
    )
    n, _, h, w = output.shape
    a, c, m = anchors.shape[0], len(tree), truths.shape[1]
    device = output.device

    # Activations: logistic on x, y, objectness; the tree's grouped softmax on the classes.
    p = output.reshape(n, a, 5 + c, h, w)
    box = torch.stack(
        [torch.sigmoid(p[:, :, 0]), torch.sigmoid(p[:, :, 1]), p[:, :, 2], p[:, :, 3]], dim=-1
    )  # (N, A, H, W, 4): sigma(tx), sigma(ty) in cells from the cell's corner; tw, th raw
    objectness = torch.sigmoid(p[:, :, 4])  # (N, A, H, W)
    log_probs = tree_log_softmax(p[:, :, 5:], tree, dim=2)  # (N, A, C, H, W) log P(node | parent)
    log_probs_flat = log_probs.permute(0, 1, 3, 4, 2).reshape(n * a * h * w, c)  # (P, C), P = N*A*H*W

    with torch.no_grad():  # targets and scales are constants
        pred = decode_boxes(box[..., :2].detach(), box[..., 2:].detach(), anchors, (w, h))  # (N, A, H, W, 4)
        detection = ~class_only  # (N,)
        valid = (torch.arange(m, device=device) < counts[:, None]) & detection[:, None]  # (N, M) detection truths
        paths = tree.path_table(device)  # (C, D) node, parent, ..., root, padded with -1
        node_group = torch.tensor(tree.group, device=device)  # (C,)

        # Pass 1, detection images: as region_loss (noobject unless best IoU > thresh; prior).
        ious = centre_size_iou(pred.reshape(n, -1, 1, 4), truths[:, None, :, 1:])  # (N, A*H*W, M)
        ious = ious.masked_fill(~valid[:, None, :], 0.0)
        best_iou = torch.cat([ious.new_zeros(n, a * h * w, 1), ious], dim=2).amax(dim=2)
        ignore = (best_iou > thresh).reshape(n, a, h, w)
        obj_scale = torch.full_like(objectness, noobject_scale).masked_fill(ignore, 0.0)
        obj_target = torch.zeros_like(objectness)
        box_scale = torch.full_like(objectness, prior_scale if seen < prior_images else 0.0)
        box_target = box.new_tensor([0.5, 0.5, 0.0, 0.0]).expand(n, a, h, w, 4).clone()
        # Classification-only images skip pass 1: noobject everywhere (or nothing), no prior.
        box_scale[class_only] = 0.0
        obj_scale[class_only] = noobject_scale if class_only_noobject else 0.0

        # Pass 2, each truth of each detection image, as region_loss.
        b_idx, t_idx = valid.nonzero(as_tuple=True)  # (K,) each, in (b, t) order
        cls = truths[b_idx, t_idx, 0].long()  # (K,) detection classes
        node = class_map[cls] if class_map is not None else cls  # (K,) if (l.map) class = l.map[class]
        g = truths[b_idx, t_idx, 1:]  # (K, 4) cx, cy, w, h fractions
        grid = g.new_tensor([w, h])
        col = (g[:, 0] * w).long().clamp(max=w - 1)  # (K,) i = (int)(truth.x * l.w), clamped
        row = (g[:, 1] * h).long().clamp(max=h - 1)  # (K,) j
        if bias_match:
            shapes = (anchors / grid).expand(len(cls), a, 2)  # (K, A, 2) fractions
        else:
            shapes = pred[b_idx, :, row, col, 2:]  # (K, A, 2)
        centred = torch.cat([torch.zeros_like(shapes), shapes], dim=-1)
        g_centred = torch.cat([torch.zeros_like(g[:, 2:]), g[:, 2:]], dim=-1)
        best_n = centre_size_iou(centred, g_centred[:, None, :]).argmax(dim=1)  # (K,) first best wins
        flat = ((b_idx * a + best_n) * h + row) * w + col  # (K,) the prediction of each truth

        # Box and objectness: a later truth on the same prediction overwrites an earlier one.
        last = torch.full((n * a * h * w,), -1, dtype=torch.long, device=device)
        last = last.scatter_reduce(0, flat, t_idx, reduce="amax")
        keep = last[flat] == t_idx
        at = (b_idx[keep], best_n[keep], row[keep], col[keep])
        gk = g[keep]
        box_target[at] = torch.stack(
            [
                gk[:, 0] * w - col[keep],
                gk[:, 1] * h - row[keep],
                torch.log(gk[:, 2] * w / anchors[best_n[keep], 0]),
                torch.log(gk[:, 3] * h / anchors[best_n[keep], 1]),
            ],
            dim=-1,
        )
        box_scale[at] = coord_scale * (2.0 - gk[:, 2] * gk[:, 3])
        obj_scale[at] = object_scale
        obj_target[at] = centre_size_iou(pred[at], gk) if rescore else 1.0
        responsible = torch.zeros_like(objectness, dtype=torch.bool)
        responsible[at] = True

        # Classification-only images: the prediction of largest objectness * P(label), the
        # product taken from the label up to the root as get_hierarchy_probability does.
        only = class_only.nonzero().squeeze(1)  # (B,)
        label = truths[only, 0, 0].long()  # (B,) nodes, never mapped
        probs = log_probs.detach()[only].exp().permute(0, 1, 3, 4, 2).reshape(len(only), a * h * w, c)
        along = paths[label]  # (B, D)
        picked = probs.gather(2, along.clamp(min=0)[:, None, :].expand(-1, a * h * w, -1))  # (B, A*H*W, D)
        product = torch.ones_like(picked[..., 0])
        for d in range(along.shape[1]):  # p = p * x[c], c = parent[c], ...
            product = torch.where(along[:, None, d] >= 0, product * picked[..., d], product)
        best = (objectness.detach()[only].reshape(len(only), a * h * w) * product).argmax(dim=1)  # (B,) first best
        best_flat = only * (a * h * w) + best  # (B,) flat prediction index
        best_at = (only, best // (h * w), best // w % h, best % w)
        responsible[best_at] = True
        if paper_objectness:  # lines 222-223: toward .3 while below it, nothing above
            below = objectness.detach()[best_at] < CLASS_ONLY_OBJECTNESS
            obj_scale[best_at] = torch.where(below, object_scale, 0.0).to(obj_scale)
            obj_target[best_at] = CLASS_ONLY_OBJECTNESS
        else:  # line 224: l.delta[obj_index] = 0
            obj_scale[best_at] = 0.0

        # The tree's class targets, one (prediction, group, node) triple per node on each path.
        # Detection truths: every truth, kept or not; a later truth overwrites a group, not all.
        det_nodes = paths[node]  # (K, D)
        on_path = det_nodes >= 0
        det_pred = flat[:, None].expand_as(det_nodes)[on_path]
        det_t = t_idx[:, None].expand_as(det_nodes)[on_path]
        det_node = det_nodes[on_path]
        key = det_pred * tree.num_groups + node_group[det_node]
        unique_keys, which = torch.unique(key, return_inverse=True)
        last_t = torch.full((len(unique_keys),), -1, dtype=torch.long, device=device)
        last_t = last_t.scatter_reduce(0, which, det_t, reduce="amax")
        latest = det_t == last_t[which]
        only_nodes = paths[label]  # (B, D)
        on_path = only_nodes >= 0
        triple_pred = torch.cat([det_pred[latest], best_flat[:, None].expand_as(only_nodes)[on_path]])
        triple_node = torch.cat([det_node[latest], only_nodes[on_path]])
        targeted, r = torch.unique(triple_pred, return_inverse=True)  # (R,) predictions with class targets
        trained_group = torch.zeros(len(targeted), tree.num_groups, dtype=torch.bool, device=device)
        trained_group[r, node_group[triple_node]] = True
        trained = trained_group[:, node_group]  # (R, C) every member of a trained group
        onehot = torch.zeros(len(targeted), c, dtype=output.dtype, device=device)
        onehot[r, triple_node] = 1.0  # target 1 at the node on the path, 0 at its siblings

    # The loss whose negative gradient is Darknet's delta (see region_loss).
    box_error = box_scale / 2 * ((box_target - box) ** 2).sum(dim=-1)  # (N, A, H, W)
    obj_error = obj_scale / 2 * (obj_target - objectness) ** 2  # (N, A, H, W)
    zero = box_error.new_zeros(())
    parts = {
        "coord": torch.where(responsible, box_error, zero).sum(),
        "obj": torch.where(responsible, obj_error, zero).sum(),
        "noobj": torch.where(responsible, zero, obj_error).sum(),
        # cross-entropy of each trained group's softmax: -log P(target node | parent)
        "class": -class_scale * (onehot * log_probs_flat[targeted]).sum(),
        "prior": torch.where(responsible, zero, box_error).sum(),
    }
    loss = parts["coord"] + parts["obj"] + parts["noobj"] + parts["class"] + parts["prior"]

    with torch.no_grad():
        sig = box.detach()
        d_box = box_scale[..., None] * (box_target - sig)  # (N, A, H, W, 4)
        d_box[..., :2] *= sig[..., :2] * (1 - sig[..., :2])
        obj = objectness.detach()
        d_obj = obj_scale * (obj_target - obj) * obj * (1 - obj)  # (N, A, H, W)
        # delta_region_class with a hierarchy: class_scale * (target - p) in every trained group.
        d_class = torch.zeros_like(log_probs_flat)  # (P, C)
        d_class[targeted] = class_scale * (onehot - log_probs_flat[targeted].detach().exp()) * trained
        d_class = d_class.reshape(n, a, h, w, c).permute(0, 1, 4, 2, 3)  # (N, A, C, H, W)
        delta = torch.cat([d_box.permute(0, 1, 4, 2, 3), d_obj[:, :, None], d_class], dim=2)
    return RegionLoss(loss, delta.reshape(output.shape), parts)


def _check_inputs(
    output: Tensor,
    truths: Tensor,
    counts: Tensor | Sequence[int],
    anchors: Tensor | Sequence[Sequence[float]],
    tree: WordTree,
    seen: int,
    class_only: Tensor | Sequence[bool] | None,
    class_map: Tensor | Sequence[int] | None,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor | None]:
    """Validate the arguments; return anchors, counts, truths, class_only, class_map on the output's device."""
    if not isinstance(output, Tensor) or output.dim() != 4 or not output.is_floating_point():
        got = tuple(output.shape) if isinstance(output, Tensor) else type(output).__name__
        raise ValueError(f"output must be a floating (N, A*(5+C), H, W) tensor, got {got}")
    if not isinstance(tree, WordTree):
        raise ValueError(f"tree must be a WordTree (models.wordtree.read_tree), got {type(tree).__name__}")
    n, channels, _, _ = output.shape
    c = len(tree)
    if isinstance(seen, bool) or not isinstance(seen, numbers.Integral) or seen < 0:
        raise ValueError(f"seen must be a non-negative int (images trained on), got {seen!r}")
    device = output.device
    anchors = torch.as_tensor(anchors, dtype=output.dtype, device=device)
    if anchors.dim() != 2 or anchors.shape[1] != 2 or anchors.shape[0] < 1:
        raise ValueError(f"anchors must be (A, 2) widths and heights in grid cells, got shape {tuple(anchors.shape)}")
    if not bool((anchors > 0).all()):
        raise ValueError(f"anchor widths and heights must be > 0 grid cells, got {anchors.tolist()}")
    a = anchors.shape[0]
    if channels != a * (5 + c):
        raise ValueError(
            f"a head with {a} anchors and a {c}-node tree has {a} * (5 + {c}) = {a * (5 + c)} channels, "
            f"got {channels} (output shape {tuple(output.shape)})"
        )
    truths = torch.as_tensor(truths)
    if truths.dim() != 3 or truths.shape[0] != n or truths.shape[2] != 5:
        raise ValueError(f"truths must be ({n}, M, 5) rows (class, cx, cy, w, h), got shape {tuple(truths.shape)}")
    truths = truths.to(device=device, dtype=output.dtype)
    counts = torch.as_tensor(counts, device=device)
    if counts.shape != (n,) or counts.is_floating_point() or counts.dtype == torch.bool:
        raise ValueError(f"counts must be ({n},) integers, got shape {tuple(counts.shape)} of {counts.dtype}")
    m = truths.shape[1]
    if bool(((counts < 0) | (counts > m)).any()):
        raise ValueError(f"counts must lie in [0, M={m}] (rows of truths), got {counts.tolist()}")
    counts = counts.long()
    if class_only is None:
        class_only = torch.zeros(n, dtype=torch.bool, device=device)
    else:
        class_only = torch.as_tensor(class_only, device=device)
        if class_only.shape != (n,) or class_only.dtype != torch.bool:
            raise ValueError(
                f"class_only must be ({n},) bools, got shape {tuple(class_only.shape)} of {class_only.dtype}"
            )
    if bool((class_only & (counts < 1)).any()):
        bad = int((class_only & (counts < 1)).nonzero()[0])
        raise ValueError(f"a classification-only image needs its label in row 0, but image {bad} has counts 0")
    if class_map is not None:
        class_map = torch.as_tensor(class_map, device=device)
        if class_map.dim() != 1 or len(class_map) < 1 or class_map.is_floating_point() or class_map.dtype == torch.bool:
            raise ValueError(f"class_map must be a 1-D sequence of node indices, got {class_map.tolist()!r}")
        if bool(((class_map < 0) | (class_map >= c)).any()):
            raise ValueError(f"class_map entries must be nodes of the tree, in [0, {c - 1}], got {class_map.tolist()}")
        class_map = class_map.long()
    num_detection = len(class_map) if class_map is not None else c
    detection_rows = truths[(torch.arange(m, device=device) < counts[:, None]) & ~class_only[:, None]]  # (K, 5)
    cls, coords = detection_rows[:, 0], detection_rows[:, 1:]
    bad = ~((coords >= 0) & (coords <= 1)).all(dim=1)
    if bool(bad.any()):
        raise ValueError(f"truth cx, cy, w, h must be fractions of the image in [0, 1], got {coords[bad][0].tolist()}")
    bad = (coords[:, 2] <= 0) | (coords[:, 3] <= 0)
    if bool(bad.any()):
        raise ValueError(f"truth w and h must be > 0, got w, h = {coords[bad][0, 2:].tolist()}")
    bad = (cls != cls.round()) | (cls < 0) | (cls >= num_detection)
    if bool(bad.any()):
        what = f"detection classes (rows of class_map) in [0, {num_detection - 1}]" if class_map is not None else (
            f"tree nodes in [0, {c - 1}]"
        )
        raise ValueError(f"truth classes must be {what}, got {cls[bad][0].item()}")
    labels = truths[class_only, 0, 0]
    bad = (labels != labels.round()) | (labels < 0) | (labels >= c)
    if bool(bad.any()):
        raise ValueError(
            f"a classification-only label must be a tree node in [0, {c - 1}], got {labels[bad][0].item()}"
        )
    return anchors, counts, truths, class_only, class_map
