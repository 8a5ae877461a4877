"""From decoded boxes to final detections: Darknet's scores, threshold and per-class NMS.

Darknet keeps a prediction only when its objectness is above ``thresh``, and scores it in
every class at once: the score of class ``c`` is ``objectness * P(c)``, set to 0 when it is
not above ``thresh`` (``get_region_detections`` in ``src/region_layer.c``,
``get_yolo_detections`` in ``src/yolo_layer.c``). Non-maximum suppression then runs per
class (``do_nms_sort`` in ``src/box.c``): sort the boxes by that class's score, and let
each box that still has a score zero the score of every lower-ranked box that overlaps it
with an IoU strictly greater than ``0.45``. A suppressed box can no longer suppress
others, and a box may survive in several classes.

Two implementations give the same answer:

* ``nms_reference`` is the literal loop a learner writes first, one box pair at a time;
* ``nms`` (one image) and ``nms_batch`` (a batch in one pass) do the same with tensor
  operations, and are the ones to use; ``postprocess`` goes from ``Detections`` to them.

Tie order (Darknet's ``qsort`` is not stable, so it leaves ties in no particular order):
boxes with equal scores in a class rank by their index, lower index first. Both functions
follow that order, so they agree exactly, ties and duplicate boxes included.

Boxes here are corners ``x1, y1, x2, y2`` (``decode.box_corners`` converts the centre form
of ``Detections``); any units will do, as long as x and y use one unit each: IoU does not
change when the x axis or the y axis is stretched or shifted, so fractions of the network
input and pixels of the original image give the same suppressions (up to float rounding).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .decode import Detections, box_corners

NMS_THRESHOLD = 0.45  # do_nms_sort(dets, nboxes, l.classes, .45) in examples/detector.c
TEST_THRESHOLD = 0.5  # `./darknet detector test`: -thresh defaults to .5 (examples/detector.c)
VALID_THRESHOLD = 0.005  # `./darknet detector valid`: thresh = .005, for mAP (examples/detector.c)


@dataclass
class ImageDetections:
    """The detections of one image, one row per (box, class) that survived NMS.

    boxes: (D, 4) x1, y1, x2, y2, in the units of the boxes given to NMS.
    scores: (D,) objectness * class probability. classes: (D,) int64 class index.
    box_index: (D,) int64, which of the image's K candidate boxes each row came from
    (``None`` for detections made by hand, e.g. to feed ``metrics``).
    NMS orders the rows by class, then by descending score (ties: lower box index first).
    """

    boxes: Tensor
    scores: Tensor
    classes: Tensor
    box_index: Tensor | None = None

    def __len__(self) -> int:
        return self.scores.shape[0]


def darknet_scores(objectness: Tensor, class_probs: Tensor, thresh: float) -> Tensor:
    """(..., K, C) class scores ``objectness * P(class)``, with Darknet's threshold applied.

    As ``get_region_detections`` / ``get_yolo_detections``: a box whose objectness is not
    above ``thresh`` scores 0 in every class, and a class score not above ``thresh`` is 0.
    ``objectness`` is (..., K) and ``class_probs`` (..., K, C), both probabilities.
    """
    if class_probs.shape[:-1] != objectness.shape:
        raise ValueError(
            f"objectness (..., K) and class_probs (..., K, C) must agree on (..., K): got "
            f"{tuple(objectness.shape)} and {tuple(class_probs.shape)}"
        )
    scores = objectness.unsqueeze(-1) * class_probs
    keep = (objectness.unsqueeze(-1) > thresh) & (scores > thresh)
    return torch.where(keep, scores, torch.zeros_like(scores))


def paired_iou(boxes_a: Tensor, boxes_b: Tensor) -> Tensor:
    """(...) IoU of corner boxes (..., 4) taken pair by pair (shapes broadcast).

    As Darknet's ``box_iou`` (``src/box.c``): the overlap along an axis is
    ``min(right edges) - max(left edges)``, a negative overlap counts as no intersection,
    and union = area_a + area_b - intersection. Where the union is 0 (two empty boxes) we
    return 0 rather than Darknet's 0/0.
    """
    overlap_w = (torch.minimum(boxes_a[..., 2], boxes_b[..., 2]) - torch.maximum(boxes_a[..., 0], boxes_b[..., 0]))
    overlap_h = (torch.minimum(boxes_a[..., 3], boxes_b[..., 3]) - torch.maximum(boxes_a[..., 1], boxes_b[..., 1]))
    intersection = overlap_w.clamp(min=0) * overlap_h.clamp(min=0)
    area_a = (boxes_a[..., 2] - boxes_a[..., 0]) * (boxes_a[..., 3] - boxes_a[..., 1])
    area_b = (boxes_b[..., 2] - boxes_b[..., 0]) * (boxes_b[..., 3] - boxes_b[..., 1])
    union = area_a + area_b - intersection
    positive = union > 0
    return torch.where(positive, intersection / union.where(positive, 1.0), torch.zeros_like(union))


def box_iou(boxes_a: Tensor, boxes_b: Tensor) -> Tensor:
    """(M, N) IoU of every corner box in (M, 4) ``boxes_a`` with every one in (N, 4) ``boxes_b``."""
    for name, boxes in (("boxes_a", boxes_a), ("boxes_b", boxes_b)):
        if boxes.dim() != 2 or boxes.shape[-1] != 4:
            raise ValueError(f"{name} must be (number of boxes, 4) corners x1, y1, x2, y2, got {tuple(boxes.shape)}")
    return paired_iou(boxes_a[:, None, :], boxes_b[None, :, :])


def _overlap_above(boxes_a: Tensor, boxes_b: Tensor, threshold: float) -> Tensor:
    """(n,) bool: IoU > ``threshold`` for each pair of boxes (n, 4), decided as double precision decides it.

    Float32 boxes are compared in float32, which is several times faster here: each of the
    dozen operations of an IoU rounds by at most 6e-8 of its result, so a float32 IoU is
    within about 2e-6 of the double one (for boxes whose sides are not tiny enough to
    underflow, below ~1e-18). Only the pairs within 1e-5 of the threshold, too close to call
    in float32, are computed again in double. Other dtypes are computed in double.
    """
    if boxes_a.dtype != torch.float32:
        return paired_iou(boxes_a.double(), boxes_b.double()) > threshold
    iou = paired_iou(boxes_a, boxes_b)  # float32
    above = iou > threshold
    close = ((iou - threshold).abs() <= 1e-5).nonzero()[:, 0]
    above[close] = paired_iou(boxes_a[close].double(), boxes_b[close].double()) > threshold
    return above


def _check_nms_inputs(boxes: Tensor, scores: Tensor) -> None:
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must be (K, 4) corners x1, y1, x2, y2, got shape {tuple(boxes.shape)}")
    if scores.dim() != 2 or scores.shape[0] != boxes.shape[0] or scores.shape[1] == 0:
        raise ValueError(
            f"scores must be (K, C), one row per box and C >= 1 classes, for K={boxes.shape[0]} boxes; "
            f"got shape {tuple(scores.shape)}"
        )


def _iou_pair(a: list[float], b: list[float]) -> float:
    """IoU of two corner boxes, in plain Python (the arithmetic of ``box_iou``, in double precision)."""
    overlap_w = max(min(a[2], b[2]) - max(a[0], b[0]), 0.0)
    overlap_h = max(min(a[3], b[3]) - max(a[1], b[1]), 0.0)
    intersection = overlap_w * overlap_h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - intersection
    return intersection / union if union > 0 else 0.0


def nms_reference(boxes: Tensor, scores: Tensor, iou_threshold: float = NMS_THRESHOLD) -> ImageDetections:
    """Greedy per-class NMS of one image, written as the plain loop of Darknet's ``do_nms_sort``.

    ``boxes`` (K, 4) corners; ``scores`` (K, C), 0 where a (box, class) pair is not a
    candidate (what ``darknet_scores`` returns). For each class: rank the candidates by
    score (ties: lower index first), walk down the ranking, and let every box still alive
    suppress each later box whose IoU with it is greater than ``iou_threshold``.
    Darknet also walks over boxes whose score is already 0; setting 0 to 0 changes
    nothing, so this loop skips them. Slow on purpose: ``nms`` must give the same answer.
    """
    _check_nms_inputs(boxes, scores)
    box_list = boxes.double().tolist()
    score_rows = scores.tolist()
    num_classes = scores.shape[1]
    kept = []  # (box index, class, score)
    for c in range(num_classes):
        candidates = [i for i in range(len(box_list)) if score_rows[i][c] > 0]
        candidates.sort(key=lambda i: -score_rows[i][c])  # Python's sort is stable: ties keep index order
        alive = [True] * len(candidates)
        for rank, i in enumerate(candidates):
            if not alive[rank]:
                continue  # a suppressed box suppresses nothing
            kept.append((i, c, score_rows[i][c]))
            for later in range(rank + 1, len(candidates)):
                if alive[later] and _iou_pair(box_list[i], box_list[candidates[later]]) > iou_threshold:
                    alive[later] = False
    index = torch.tensor([i for i, _, _ in kept], dtype=torch.int64)
    return ImageDetections(
        boxes=boxes[index],
        scores=torch.tensor([s for _, _, s in kept], dtype=scores.dtype),
        classes=torch.tensor([c for _, c, _ in kept], dtype=torch.int64),
        box_index=index,
    )


def greedy_keep(num_boxes: int, higher: Tensor, lower: Tensor) -> Tensor:
    """(num_boxes,) bool: which ranked boxes greedy NMS keeps, given who overlaps whom.

    Box ``higher[e]`` ranks above box ``lower[e]`` and would suppress it (same class, IoU
    above the threshold). Greedy NMS keeps a box exactly when no *kept* box above it
    suppresses it. Instead of walking the ranking one box at a time, apply that rule to
    all boxes at once and repeat until nothing changes: each round settles at least one
    more box of every chain of suppressions (usually a few rounds settle everything), and
    where it stops is the greedy answer, since the rule, read top down, has one solution.
    """
    keep = torch.ones(num_boxes, dtype=torch.bool, device=higher.device)
    while True:
        suppressed = torch.zeros_like(keep)
        suppressed[lower[keep.index_select(0, higher)]] = True  # suppressed by a box that is (still) kept
        if torch.equal(~suppressed, keep):
            return keep
        keep = ~suppressed


def _suppressions(boxes: Tensor, classes: Tensor, iou_threshold: float, max_pairs: int) -> tuple[Tensor, Tensor]:
    """Every pair (higher, lower) of ranked candidates of one class with IoU > ``iou_threshold``.

    ``boxes`` (P, 4) and ``classes`` (P,) are sorted by class, then by rank. A candidate is
    paired with each later candidate of its class, ``max_pairs`` pairs at a time at most,
    so memory stays bounded even when one class has thousands of candidates.
    """
    p = classes.shape[0]
    position = torch.arange(p, device=classes.device)
    class_end = torch.bincount(classes).cumsum(0)[classes]  # (P,) one past the last candidate of my class
    num_lower = class_end - position - 1  # (P,) same-class candidates ranked below each one
    pairs_before = num_lower.cumsum(0) - num_lower  # (P,) pairs that earlier candidates start
    # Pair number pairs_before[i] + k joins candidate i with candidate i + 1 + k, so
    # lower = pair number + (i + 1 - pairs_before[i]).
    shift = position + 1 - pairs_before
    columns = boxes.T.contiguous()  # (4, P): gathering and computing along contiguous rows is faster
    higher_parts, lower_parts = [], []
    start = 0
    while start < p:  # candidates start..end-1 and their pairs, about max_pairs at a time
        end = int(torch.searchsorted(pairs_before, pairs_before[start] + max_pairs, right=True))
        end = max(end, start + 1)
        counts = num_lower[start:end]
        num_pairs = int(counts.sum())
        higher = torch.repeat_interleave(position[start:end], counts, output_size=num_pairs)  # (pairs,)
        pair_number = torch.arange(num_pairs, device=classes.device) + pairs_before[start]
        lower = pair_number + torch.repeat_interleave(shift[start:end], counts, output_size=num_pairs)
        boxes_higher = columns.index_select(1, higher).T  # (pairs, 4) view
        boxes_lower = columns.index_select(1, lower).T
        overlapping = _overlap_above(boxes_higher, boxes_lower, iou_threshold).nonzero()[:, 0]
        higher_parts.append(higher.index_select(0, overlapping))
        lower_parts.append(lower.index_select(0, overlapping))
        start = end
    if not higher_parts:
        empty = torch.zeros(0, dtype=torch.int64, device=classes.device)
        return empty, empty
    return torch.cat(higher_parts), torch.cat(lower_parts)


def nms(
    boxes: Tensor, scores: Tensor, iou_threshold: float = NMS_THRESHOLD, max_pairs: int = 2**18
) -> ImageDetections:
    """Greedy per-class NMS of one image (Darknet's ``do_nms_sort``), with tensor operations.

    Same inputs and the same answer as ``nms_reference``: ``boxes`` (K, 4) corners, ``scores``
    (K, C) with 0 for pairs that are not candidates; suppression when IoU > ``iou_threshold``.
    All (box, class) candidates are ranked at once, by class and then by descending score;
    the IoU of every same-class pair is computed in one go (deciding "IoU > threshold" as
    the reference's double-precision Python floats do), and ``greedy_keep`` settles the
    suppressions for all classes together. ``max_pairs`` bounds how many pairs are held in
    memory at a time. ``nms_batch`` does the same for a batch of images in one go.
    """
    _check_nms_inputs(boxes, scores)
    return nms_batch(boxes[None], scores[None], iou_threshold, max_pairs)[0]


def nms_batch(
    boxes: Tensor, scores: Tensor, iou_threshold: float = NMS_THRESHOLD, max_pairs: int = 2**18
) -> list[ImageDetections]:
    """``nms`` of each image of a batch: ``boxes`` (N, K, 4) corners, ``scores`` (N, K, C).

    Each (image, class) is its own group, so one pass serves the whole batch; the answer
    equals ``[nms(boxes[i], scores[i]) for i in range(N)]``.
    """
    if boxes.dim() != 3 or boxes.shape[2] != 4 or scores.dim() != 3 or scores.shape[:2] != boxes.shape[:2]:
        raise ValueError(
            f"expected boxes (N, K, 4) corners and scores (N, K, C), got {tuple(boxes.shape)} and "
            f"{tuple(scores.shape)}"
        )
    num_images, _, num_classes = scores.shape
    if num_classes == 0:
        raise ValueError("scores (N, K, C) need C >= 1 classes, got C = 0")
    image, box_index, classes = (scores > 0).nonzero(as_tuple=True)  # candidates, in (image, box, class) order
    candidate_scores = scores[image, box_index, classes]
    group = image * num_classes + classes  # one group per (image, class)
    # Rank: by score descending, then (stable) by group; ties stay in box-index order.
    order = torch.sort(candidate_scores, descending=True, stable=True).indices
    order = order[torch.sort(group[order], stable=True).indices]
    image, box_index, classes, group = image[order], box_index[order], classes[order], group[order]
    candidate_scores = candidate_scores[order]

    higher, lower = _suppressions(boxes[image, box_index], group, iou_threshold, max_pairs)
    keep = greedy_keep(group.shape[0], higher, lower)
    image, box_index, classes, candidate_scores = image[keep], box_index[keep], classes[keep], candidate_scores[keep]
    per_image = torch.bincount(image, minlength=num_images).tolist()  # rows are in image order
    return [
        ImageDetections(boxes=boxes[i, b], scores=s, classes=c, box_index=b)
        for i, b, s, c in zip(
            range(num_images),
            box_index.split(per_image),
            candidate_scores.split(per_image),
            classes.split(per_image),
            strict=True,
        )
    ]


def postprocess(
    detections: Detections, thresh: float = TEST_THRESHOLD, iou_threshold: float = NMS_THRESHOLD
) -> list[ImageDetections]:
    """Decoded predictions (``decode_yolov2`` / ``decode_yolov3``) to final detections, per image.

    Darknet's order of work: scores with the threshold (``darknet_scores``), then per-class
    NMS (``nms_batch``). Boxes come back as corners x1, y1, x2, y2 in fractions of the network
    input; ``data.letterbox.boxes_to_image`` maps them to the original image's pixels.
    Use ``thresh=VALID_THRESHOLD`` (0.005) for mAP, as ``detector valid`` does.
    """
    scores = darknet_scores(detections.objectness, detections.class_probs, thresh)  # (N, K, C)
    corners = box_corners(detections.boxes)  # (N, K, 4) fractions of the network input
    return nms_batch(corners, scores, iou_threshold)
