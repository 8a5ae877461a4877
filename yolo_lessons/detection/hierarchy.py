"""Naming a detection with a WordTree: absolute probabilities, and the descent from the root.

A YOLO9000 head (``models.wordtree``) predicts, for every box, the conditional probability of
each node given its parent. Two functions of Darknet's ``src/tree.c`` turn that into a name:

* ``hierarchy_predictions``: the absolute probability of every node, the product of the
  conditional ones along its path, P(terrier) = P(terrier | hunting dog) * P(hunting dog | dog)
  * ... (one pass, ``p[j] *= p[parent[j]]``, parents first). This is the paper's rule.
* ``hierarchy_top_prediction``: start at the roots (group 0), take the most probable node of the
  group, and go down into its children while the running probability stays above a threshold
  (``./darknet detector test ... -hier .5``, the default of ``examples/detector.c``).

Where Darknet departs from the paper: ``get_region_detections`` (``src/region_layer.c``) calls
``hierarchy_top_prediction`` on the *absolute* probabilities, and the descent multiplies them
again: its running product after k steps is P(n1) * P(n2) * ... * P(nk), not P(nk). The
threshold is therefore met higher up the tree than the paper's "taking the highest confidence
path at every split until we reach some threshold" implies. ``hierarchy_top_prediction`` does
what Darknet does by default; ``paper_rule=True`` thresholds the node's own absolute probability.

``decode_yolo9000`` decodes a ``[region]`` head with a tree into ``Detections`` whose class
probabilities are those absolute probabilities (the scores ``objectness * P(node)`` are what
Darknet thresholds when it evaluates on mapped classes, ``-map``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..models.wordtree import WordTree, tree_softmax
from .decode import Detections, _decode_head


def _check(probs: Tensor, tree: WordTree, dim: int) -> Tensor:
    if not isinstance(tree, WordTree):
        raise TypeError(f"expected a WordTree, got {type(tree).__name__}")
    if not isinstance(probs, Tensor) or not probs.is_floating_point():
        raise ValueError(f"expected a floating tensor of probabilities, got {type(probs).__name__}")
    x = probs.movedim(dim, -1)
    if x.shape[-1] != len(tree):
        raise ValueError(
            f"a tree of {len(tree)} nodes needs {len(tree)} probabilities along dim {dim}, got {x.shape[-1]}"
        )
    return x


def hierarchy_predictions(probs: Tensor, tree: WordTree, dim: int = -1, *, only_leaves: bool = False) -> Tensor:
    """Absolute probabilities from conditional ones (``tree_softmax``), along ``dim``.

    Node j becomes P(j | parent) * P(parent), computed level by level in the order and with the
    rounding of ``hierarchy_predictions`` in ``src/tree.c``. ``only_leaves`` zeroes every
    internal node, as Darknet's classifier does before its top-k.
    """
    x = _check(probs, tree, dim).clone()  # (..., C)
    parent = torch.tensor(tree.parent, device=x.device)
    depth = torch.tensor(tree.depth, device=x.device)
    for level in range(1, tree.max_depth + 1):
        nodes = (depth == level).nonzero().squeeze(1)
        x[..., nodes] = x[..., nodes] * x[..., parent[nodes]]  # parents are final already
    if only_leaves:
        x = x * torch.tensor(tree.leaf, device=x.device, dtype=x.dtype)
    return x.movedim(-1, dim)


def hierarchy_top_prediction(
    probs: Tensor, tree: WordTree, dim: int = -1, *, thresh: float = 0.5, paper_rule: bool = False
) -> Tensor:
    """The node each box is named after, by descent from the roots; (...) long, ``dim`` removed.

    ``probs``: absolute probabilities (``hierarchy_predictions``), as Darknet passes them.
    At each group take the node of largest probability (the first one if tied, and node 0 if
    none is above 0 -- NaN never wins -- as tree.c's ``max = 0, max_i = 0`` start does). Darknet keeps a running product
    ``p`` from 1; while ``p * max > thresh`` it sets ``p = p * max`` and goes down into that
    node's children, returning the node when it is a leaf. When the test fails it returns the
    group's best node if still in group 0, else the node it came from (the group's parent).

    ``paper_rule=True`` compares the node's own probability, ``max > thresh``, instead of the
    running product: the same descent with a single product (equivalently, Darknet's code fed
    the conditional probabilities instead of the absolute ones).
    """
    if not 0.0 <= thresh <= 1.0:
        raise ValueError(f"expected a threshold in [0, 1] (a probability), got {thresh!r}")
    x = _check(probs, tree, dim)  # (..., C)
    shape, c = x.shape[:-1], x.shape[-1]
    x = x.reshape(-1, c)  # (B, C)
    device = x.device
    node_group = torch.tensor(tree.group, device=device)
    child = torch.tensor(tree.child, device=device)
    parent = torch.tensor(tree.parent, device=device)
    offset = torch.tensor(tree.group_offset, device=device)
    b = x.shape[0]
    group = torch.zeros(b, dtype=torch.long, device=device)
    running = x.new_ones(b)
    answer = torch.full((b,), -1, dtype=torch.long, device=device)
    active = torch.ones(b, dtype=torch.bool, device=device)
    for _ in range(tree.max_depth + 1):  # one group per level at most
        in_group = node_group[None, :] == group[:, None]  # (B, C)
        # tree.c's `if(val > max)` from max = 0: only positive entries (never NaN) can win.
        values = torch.where(in_group & (x > 0), x, x.new_zeros(()))
        best, best_i = values.max(dim=1)  # the first largest; none above 0 -> node 0 (max_i = 0)
        best_i = torch.where(best > 0, best_i, torch.zeros_like(best_i))
        score = best if paper_rule else running * best
        down = score > thresh
        # Going down: a leaf is the answer; otherwise continue in its children's group.
        leaf_reached = active & down & (child[best_i] < 0)
        answer = torch.where(leaf_reached, best_i, answer)
        # Stopping: the group's best in group 0, else the parent of the current group.
        stop = active & ~down
        answer = torch.where(stop & (group == 0), best_i, answer)
        answer = torch.where(stop & (group != 0), parent[offset[group]], answer)
        running = torch.where(active & down, running * best, running)
        active = active & down & (child[best_i] >= 0)
        group = torch.where(active, child[best_i], group)
        if not bool(active.any()):
            break
    return answer.reshape(shape)


def decode_yolo9000(output: Tensor, anchors: Tensor | tuple, tree: WordTree) -> Detections:
    """Decode a ``[region]`` head with a tree, (N, A*(5+C), H, W) with C = len(tree).

    Boxes and objectness as ``decode_yolov2``; ``class_probs`` (N, K, C) are the absolute
    probabilities of every node (``tree_softmax``, then ``hierarchy_predictions``), so
    ``Detections.scores`` is objectness * P(node). Name each box with
    ``hierarchy_top_prediction(detections.class_probs, tree)``.
    """
    if not isinstance(tree, WordTree):
        raise TypeError(f"expected a WordTree, got {type(tree).__name__}")
    anchors = torch.as_tensor(anchors, dtype=torch.float32)
    if output.dim() == 4 and output.shape[1] != anchors.shape[0] * (5 + len(tree)):
        raise ValueError(
            f"a head with {anchors.shape[0]} anchors and a {len(tree)}-node tree has "
            f"{anchors.shape[0] * (5 + len(tree))} channels, got {output.shape[1]}"
        )
    grid = torch.tensor([output.shape[-1], output.shape[-2]]) if output.dim() == 4 else torch.ones(2)

    def absolute(logits: Tensor, dim: int) -> Tensor:
        return hierarchy_predictions(tree_softmax(logits, tree, dim), tree, dim)

    return _decode_head(output, anchors, grid, absolute)
