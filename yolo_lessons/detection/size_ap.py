"""AP@0.5 for small, medium and large objects: ``metrics.mean_average_precision`` restricted by size.

COCO reports AP for three area ranges (``cocoeval.py``'s ``areaRng``: small below 32^2 pixels,
medium up to 96^2, large above, on photographs some 640 pixels wide). It does not simply drop
the other objects, which would turn every correct detection of a dropped object into a false
positive. Its rule, which we follow:

* a ground truth outside the range is *ignored*: it does not count toward recall, and a
  detection that matches it is neither a true nor a false positive, it is left out;
* a detection that matches nothing counts as a false positive only if its own size is in the
  range (a false alarm of the wrong size belongs to another bucket).

The matching itself is the book's VOC rule (``metrics``): per class, detections of all images
in descending score order (stable), each compared with its best-overlapping ground truth of the
class in its image (all of them, in range or not; the first of equal IoUs), a hit when IoU > 0.5,
each ground truth claimed at most once, no fallback to a second-best. (COCO instead lets a
detection fall back to an unclaimed in-range ground truth; with our few, rarely overlapping
objects the two rarely differ.) With the range [0, inf) nothing is ignored and the result equals
``metrics.mean_average_precision`` exactly (tested).

Size is ``sqrt(w * h)`` of a box in **input pixels**: boxes come as corners in fractions of the
image (what ``nms.postprocess`` returns) and are multiplied by ``image_size``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .metrics import IOU_THRESHOLD, GroundTruth, ImageDetections, ap_all_points, box_iou, precision_recall

# The book's buckets for 128 x 128 images, sqrt(area) in pixels: below 12 pixels a box spans
# under 1.5 cells of a stride-8 grid and under one cell of a stride-16 grid; 32 pixels and more
# is a quarter of the image. (COCO's 32 and 96 are 5% and 15% of a 640-pixel photograph.)
SIZE_BUCKETS: dict[str, tuple[float, float]] = {
    "small": (0.0, 12.0),
    "medium": (12.0, 32.0),
    "large": (32.0, math.inf),
}


@dataclass
class SizeAP:
    """AP@0.5 (VOC all-point) within one size range.

    ap: mean over the classes with ground truth in the range (nan if there is none).
    per_class: each such class's AP. num_ground_truth: ground truths in the range, all classes.
    """

    ap: float
    per_class: dict[int, float]
    num_ground_truth: int


def box_size_pixels(corners: Tensor, image_size: int) -> Tensor:
    """(K,) sqrt(w * h) in pixels of (K, 4) corners x1, y1, x2, y2 given as fractions of the image."""
    corners = corners.reshape(-1, 4).double()
    w = (corners[:, 2] - corners[:, 0]).clamp(min=0)
    h = (corners[:, 3] - corners[:, 1]).clamp(min=0)
    return torch.sqrt(w * h) * image_size


def size_average_precision(
    detections: Sequence[ImageDetections],
    ground_truths: Sequence[GroundTruth],
    size_range: tuple[float, float],
    image_size: int,
    iou_threshold: float = IOU_THRESHOLD,
) -> SizeAP:
    """AP@0.5 of the objects whose size lies in ``size_range`` = [low, high) pixels (module docstring).

    detections, ground_truths: one entry per image, boxes as corners in fractions of the image
    (``nms.postprocess`` and ``metrics.GroundTruth``); image_size: the input side in pixels.
    """
    low, high = size_range
    if not 0 <= low < high:
        raise ValueError(f"size_range must be (low, high) pixels with 0 <= low < high, got {size_range!r}")
    if len(detections) != len(ground_truths):
        raise ValueError(
            f"need one detections entry and one ground-truth entry per image, got {len(detections)} and "
            f"{len(ground_truths)}"
        )
    rows = []  # one (score, class, image, best ground truth, best IoU, detection in range) per detection
    in_range_gt: list[Tensor] = []  # per image, (G,) bool
    counts: dict[int, int] = {}
    for image, (det, gt) in enumerate(zip(detections, ground_truths, strict=True)):
        gt_boxes = gt.boxes.reshape(-1, 4).double()
        gt_size = box_size_pixels(gt_boxes, image_size)
        inside = (gt_size >= low) & (gt_size < high)
        in_range_gt.append(inside)
        for c in gt.classes[inside].tolist():
            counts[int(c)] = counts.get(int(c), 0) + 1
        det_boxes = det.boxes.reshape(-1, 4).double()
        det_inside = ((box_size_pixels(det_boxes, image_size) >= low)
                      & (box_size_pixels(det_boxes, image_size) < high))
        if det_boxes.shape[0] and gt_boxes.shape[0]:
            iou = box_iou(det_boxes, gt_boxes)  # (D, G)
            iou[det.classes[:, None] != gt.classes[None, :]] = -1.0  # only the same class counts
            best_iou, best_gt = iou.max(dim=1)  # the first of equal maxima, as voc_eval's argmax
        else:
            best_iou = torch.full((det_boxes.shape[0],), -1.0, dtype=torch.float64)
            best_gt = torch.zeros(det_boxes.shape[0], dtype=torch.int64)
        for d in range(det_boxes.shape[0]):
            rows.append((float(det.scores[d]), int(det.classes[d]), image, int(best_gt[d]), float(best_iou[d]),
                         bool(det_inside[d])))

    per_class = {}
    for c in sorted(counts):
        mine = [r for r in rows if r[1] == c]
        mine.sort(key=lambda r: -r[0])  # stable: ties keep image order, then row order
        taken, true_positive = set(), []
        for _, _, image, gt_index, iou, det_inside in mine:
            if iou > iou_threshold:
                if not bool(in_range_gt[image][gt_index]):
                    continue  # matches an ignored ground truth: left out
                true_positive.append((image, gt_index) not in taken)
                taken.add((image, gt_index))
            elif det_inside:
                true_positive.append(False)  # a false alarm of this size
        precision, recall = precision_recall(torch.tensor(true_positive, dtype=torch.bool), counts[c])
        per_class[c] = ap_all_points(precision, recall)
    ap = sum(per_class.values()) / len(per_class) if per_class else math.nan
    return SizeAP(ap, per_class, sum(counts.values()))


def ap_by_size(
    detections: Sequence[ImageDetections],
    ground_truths: Sequence[GroundTruth],
    image_size: int,
    buckets: dict[str, tuple[float, float]] | None = None,
) -> dict[str, SizeAP]:
    """``size_average_precision`` for each bucket (``SIZE_BUCKETS`` by default), by name."""
    buckets = SIZE_BUCKETS if buckets is None else buckets
    return {name: size_average_precision(detections, ground_truths, rng, image_size) for name, rng in buckets.items()}
