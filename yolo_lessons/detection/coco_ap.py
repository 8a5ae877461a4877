"""COCO's detection metrics: AP averaged over IoU 0.50:0.95, AP50, AP75, and AP by object area.

The rules are those of ``pycocotools`` (``cocoeval.py``, ``COCOeval.evaluateImg`` and
``accumulate``), which the tests check this module against to 1e-6. What differs from the
VOC rule of ``metrics``:

* ten IoU thresholds, 0.50, 0.55, ..., 0.95, and a match needs IoU >= the threshold (VOC: > 0.5);
* a detection takes the unclaimed ground truth it overlaps most (among those above the
  threshold), so unlike VOC it *does* fall back to a second-best object when the best one is
  taken; among equal overlaps the later ground truth wins;
* only the 100 best-scoring detections of each image and class count (``maxDets``);
* precision is read at 101 recall levels 0, 0.01, ..., 1 (the precision envelope at the first
  point reaching each level, 0 where none does), and AP is their mean;
* AP by area: objects of area < 32^2 pixels are "small", up to 96^2 "medium", above "large"
  (``areaRng``, in pixels of the original image). A ground truth outside the range is ignored
  (a detection matching it is neither true nor false), and an unmatched detection outside it
  is ignored too. A detection prefers an object in range to an ignored one.

Boxes are corners x1, y1, x2, y2 in **pixels of the original image** (areas need pixels); the
IoU is the plain one (no + 1). Crowd annotations are not modelled (the book's labels have none).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .metrics import GroundTruth
from .nms import ImageDetections

# pycocotools' Params: np.linspace(.5, 0.95, 10) and np.linspace(0, 1, 101), float for float
IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
RECALL_LEVELS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
AREA_RANGES = {"all": (0.0, 1e5**2), "small": (0.0, 32.0**2), "medium": (32.0**2, 96.0**2), "large": (96.0**2, 1e5**2)}
MAX_DETECTIONS = 100


@dataclass
class CocoAP:
    """COCO's numbers (``COCOeval.stats[0:6]``) and what they are made of.

    ap: AP@[.5:.95]; ap50, ap75: at one threshold; ap_small, ap_medium, ap_large: AP@[.5:.95]
    by area (-1 where no class has an object of that size, as pycocotools prints it).
    per_class: class -> AP@[.5:.95] over all areas. precision: (T, R, K, A) array, -1 for a
    class without ground truth, as ``COCOeval.eval["precision"]`` at maxDets 100; classes: the
    K class ids in its order.
    """

    ap: float
    ap50: float
    ap75: float
    ap_small: float
    ap_medium: float
    ap_large: float
    per_class: dict[int, float]
    precision: np.ndarray
    classes: list[int]


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(A, B) IoU of corner boxes (the plain rule, as pycocotools' maskUtils.iou on boxes)."""
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def _match_image(dt_boxes, dt_area, gt_boxes, gt_area, area_range):
    """One image and class in one area range: (T, D) matched and ignored flags, and (G,) ignored."""
    lo, hi = area_range
    gt_ignored = (gt_area < lo) | (gt_area > hi)
    order = np.argsort(gt_ignored, kind="mergesort")  # objects in range first
    gt_boxes, gt_ignored = gt_boxes[order], gt_ignored[order]
    t, d, g = len(IOU_THRESHOLDS), len(dt_boxes), len(gt_boxes)
    matched = np.zeros((t, d), dtype=bool)
    ignored = np.zeros((t, d), dtype=bool)
    taken = np.zeros((t, g), dtype=bool)
    if d and g:
        ious = _iou(dt_boxes, gt_boxes)  # (D, G)
        need = np.minimum(IOU_THRESHOLDS, 1 - 1e-10)[:, None]  # (T, 1)
        for k in range(d):
            free = ~taken & (ious[k][None, :] >= need)  # (T, G) objects this detection may take
            for group in (~gt_ignored, gt_ignored):  # in range first; ignored ones only if none
                candidates = free & group[None, :]
                found = candidates.any(axis=1) & ~matched[:, k]
                if not found.any():
                    continue
                scored = np.where(candidates, ious[k][None, :], -1.0)
                best = g - 1 - np.argmax(scored[:, ::-1], axis=1)  # the last of equal overlaps
                rows = np.flatnonzero(found)
                matched[rows, k] = True
                ignored[rows, k] = gt_ignored[best[rows]]
                taken[rows, best[rows]] = True
    outside = (dt_area < lo) | (dt_area > hi)
    ignored |= ~matched & outside[None, :]
    return matched, ignored, gt_ignored


def coco_average_precision(
    detections: Sequence[ImageDetections],
    ground_truths: Sequence[GroundTruth],
    max_detections: int = MAX_DETECTIONS,
) -> CocoAP:
    """COCO's AP@[.5:.95], AP50, AP75 and AP by area over the images (one entry each, pixels)."""
    if len(detections) != len(ground_truths):
        raise ValueError(f"need one detections and one ground-truth entry per image, got {len(detections)} "
                         f"and {len(ground_truths)}")  # fmt: skip
    classes = sorted({int(c) for gt in ground_truths for c in gt.classes.tolist()}
                     | {int(c) for det in detections for c in det.classes.tolist()})  # fmt: skip
    areas = list(AREA_RANGES.values())
    precision = -np.ones((len(IOU_THRESHOLDS), len(RECALL_LEVELS), len(classes), len(areas)))
    for k, class_id in enumerate(classes):
        per_area = [([], [], [], 0) for _ in areas]  # scores, matched, ignored, objects in range
        for det, gt in zip(detections, ground_truths, strict=True):
            mine = det.classes == class_id
            scores = det.scores[mine].double().numpy()
            boxes = det.boxes.reshape(-1, 4)[mine].double().numpy()
            order = np.argsort(-scores, kind="mergesort")[:max_detections]
            scores, boxes = scores[order], boxes[order]
            gt_boxes = gt.boxes.reshape(-1, 4)[gt.classes == class_id].double().numpy()
            if not len(scores) and not len(gt_boxes):
                continue
            dt_area = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
            gt_area = np.prod(gt_boxes[:, 2:] - gt_boxes[:, :2], axis=1)
            for a, area_range in enumerate(areas):
                matched, ignored, gt_ignored = _match_image(boxes, dt_area, gt_boxes, gt_area, area_range)
                s, m, i, n = per_area[a]
                per_area[a] = (s + [scores], m + [matched], i + [ignored], n + int((~gt_ignored).sum()))
        for a, (scores, matched, ignored, objects) in enumerate(per_area):
            if objects == 0:
                continue
            scores = np.concatenate(scores) if scores else np.zeros(0)
            order = np.argsort(-scores, kind="mergesort")
            matched = np.concatenate(matched, axis=1)[:, order] if matched else np.zeros((len(IOU_THRESHOLDS), 0), bool)
            ignored = np.concatenate(ignored, axis=1)[:, order] if ignored else np.zeros_like(matched)
            true_pos = np.cumsum(matched & ~ignored, axis=1, dtype=float)
            false_pos = np.cumsum(~matched & ~ignored, axis=1, dtype=float)
            for t in range(len(IOU_THRESHOLDS)):
                recall = true_pos[t] / objects
                prec = true_pos[t] / (true_pos[t] + false_pos[t] + np.spacing(1))
                prec = np.maximum.accumulate(prec[::-1])[::-1]  # the envelope: best precision from here on
                at = np.searchsorted(recall, RECALL_LEVELS, side="left")
                q = np.zeros(len(RECALL_LEVELS))
                reached = at < len(prec)
                q[reached] = prec[at[reached]]
                # pycocotools stops filling at the first level it cannot reach; the levels are
                # increasing, so the reached ones come first and the rest stay 0
                precision[t, :, k, a] = q

    def mean(values: np.ndarray) -> float:
        values = values[values > -1]
        return float(values.mean()) if values.size else -1.0

    t50, t75 = (int(np.flatnonzero(IOU_THRESHOLDS == v)[0]) for v in (0.5, 0.75))
    return CocoAP(
        ap=mean(precision[..., 0]),
        ap50=mean(precision[t50, :, :, 0]),
        ap75=mean(precision[t75, :, :, 0]),
        ap_small=mean(precision[..., 1]),
        ap_medium=mean(precision[..., 2]),
        ap_large=mean(precision[..., 3]),
        per_class={c: mean(precision[:, :, k, 0]) for k, c in enumerate(classes)},
        precision=precision,
        classes=classes,
    )
