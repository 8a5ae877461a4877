"""Mean average precision at IoU 0.5, as the PASCAL VOC scoring script computes it.

For each class, the detections of every image are put in one list, sorted by descending
score (a stable sort: ties keep image order, then the order within the image). Walking
down the list, a detection is a true positive when its best-overlapping ground truth of
the same class in the same image has IoU > 0.5 (strictly, as ``voc_eval``'s
``ovmax > ovthresh``) and has not been claimed by a higher-scoring detection; otherwise it
is a false positive (a duplicate, a poor box, a box where there is nothing). A detection
does not fall back to its second-best ground truth. After each detection,

    precision = true positives so far / detections so far
    recall    = true positives so far / ground truths of the class (all images)

Average precision (AP) summarises that curve in one number, two ways:

* all points (VOC2010 and later; the book's default): make precision non-increasing from
  the right, then take the area under the resulting step curve;
* 11 points (the VOC2007 devkit's rule, and presumably that of the YOLO papers' VOC2007
  numbers, which do not say): the mean, over recall thresholds 0, 0.1, ..., 1, of the best
  precision at a recall at least that high.

The mAP is the mean of the per-class APs over the classes that have ground truth; a class
with ground truth and no detections scores 0, a class with detections and no ground truth
is left out. Boxes are corners x1, y1, x2, y2 in any units (the same for detections and
ground truths).

Two rules of the VOC scoring code are options, off by default because the book's boxes are
fractions of the image, not pixels:

* ``difficult`` objects (``GroundTruth.difficult``, VOC's ``<difficult>1</difficult>``) do
  not count as ground truth, and a detection whose best overlap is a difficult object is
  neither a true nor a false positive: it is left out of the curve (``voc_eval`` gives it
  tp = fp = 0, which leaves precision and recall where they were, the same AP);
* ``pixel_inclusive=True``: boxes in pixels, where a box from column 1 to 10 is 10 pixels
  wide, so widths and heights get + 1 in the IoU (``voc_eval``: ``ixmax - ixmin + 1.``; the
  devkit's ``VOCevaldet.m`` too).

And one rule the two scripts disagree on: ``voc_eval.py`` (py-faster-rcnn, whose copy
AlexeyAB's Darknet fork runs from ``scripts/reval_voc.py``) needs IoU > 0.5, the MATLAB devkit's
``VOCevaldet.m`` IoU >= 0.5 (``ovmax>=VOCopts.minoverlap``). ``strict=True``, the default,
is the first; ``strict=False`` the devkit's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .nms import ImageDetections, box_iou

__all__ = [
    "ELEVEN_RECALLS",
    "VOC_SCRIPT_RECALLS",
    "ClassAP",
    "GroundTruth",
    "ImageDetections",
    "MeanAP",
    "ap_11_points",
    "ap_all_points",
    "average_precision",
    "box_iou",
    "match_detections",
    "mean_average_precision",
    "precision_recall",
]

IOU_THRESHOLD = 0.5  # mAP@0.5: voc_eval(..., ovthresh=0.5)
ELEVEN_RECALLS = tuple(k / 10 for k in range(11))  # 0, 0.1, ..., 1 exactly (as doubles)
# VOC's voc_ap(use_07_metric=True) uses np.arange(0., 1.1, 0.1), whose 0.3, 0.6 and 0.7 come out
# as 0.30000000000000004, 0.6000000000000001 and 0.7000000000000001: a recall of exactly 3/5
# does not reach its "0.6". Pass these to ap_11_points to reproduce the script to the digit.
VOC_SCRIPT_RECALLS = tuple(k * 0.1 for k in range(11))


@dataclass
class GroundTruth:
    """The labelled objects of one image. boxes: (G, 4) corners. classes: (G,) int64.

    difficult: (G,) bool, VOC's flag for objects a detector is not asked to find (None: none are).
    """

    boxes: Tensor
    classes: Tensor
    difficult: Tensor | None = None

    def is_difficult(self) -> Tensor:
        if self.difficult is None:
            return torch.zeros(self.classes.shape[0], dtype=torch.bool)
        return self.difficult.bool()


@dataclass
class ClassAP:
    """One class's result. Tensors have one entry per detection of the class, in score order.

    scores: (D,) descending. true_positive: (D,) bool. precision, recall: (D,) float64, the
    curve after each detection (``precision_recall``). ap: all-point AP. ap_11_points: VOC2007's.
    """

    ap: float
    ap_11_points: float
    num_ground_truth: int
    scores: Tensor
    true_positive: Tensor
    precision: Tensor
    recall: Tensor


@dataclass
class MeanAP:
    """mAP over the classes with ground truth (all-point and 11-point), and each class's ``ClassAP``."""

    map: float
    map_11_points: float
    per_class: dict[int, ClassAP]


def _boxes(boxes: Tensor) -> Tensor:
    """(N, 4) boxes; an empty ``torch.tensor([])`` counts as (0, 4)."""
    return boxes.reshape(0, 4) if boxes.numel() == 0 else boxes


def _check_inputs(detections: Sequence[ImageDetections], ground_truths: Sequence[GroundTruth]) -> None:
    if len(detections) != len(ground_truths):
        raise ValueError(
            f"need one detections entry and one ground-truth entry per image, got {len(detections)} and "
            f"{len(ground_truths)}"
        )
    for i, (det, gt) in enumerate(zip(detections, ground_truths, strict=True)):
        d = det.scores.shape[0] if det.scores.dim() == 1 else -1
        if _boxes(det.boxes).shape != (d, 4) or det.classes.shape != (d,):
            raise ValueError(
                f"image {i}: detections need boxes (D, 4) corners, scores (D,) and classes (D,), got "
                f"{tuple(det.boxes.shape)}, {tuple(det.scores.shape)} and {tuple(det.classes.shape)}"
            )
        g = gt.classes.shape[0] if gt.classes.dim() == 1 else -1
        if _boxes(gt.boxes).shape != (g, 4):
            raise ValueError(
                f"image {i}: ground truth needs boxes (G, 4) corners and classes (G,), got "
                f"{tuple(gt.boxes.shape)} and {tuple(gt.classes.shape)}"
            )
        if gt.difficult is not None and gt.difficult.shape != (g,):
            shape = tuple(gt.difficult.shape)
            raise ValueError(f"image {i}: difficult needs one flag per ground truth ({g}), got {shape}")


@dataclass
class _Matches:
    """Every detection of every image, with its best same-class ground truth (see ``_best_ground_truth``)."""

    scores: Tensor  # (D,) float64
    classes: Tensor  # (D,) int64
    best_iou: Tensor  # (D,) float64, -1 where the image has no ground truth of the class
    best_gt: Tensor  # (D,) int64, index of that ground truth within its image
    best_difficult: Tensor  # (D,) bool, whether that ground truth is difficult
    image: Tensor  # (D,) int64, which image the detection belongs to
    num_ground_truth: dict[int, int]  # class -> ground truths over all images, difficult ones left out


def pixel_inclusive_iou(boxes_a: Tensor, boxes_b: Tensor) -> Tensor:
    """(A, B) IoU of corner boxes in pixels counted inclusively: a box from x1 to x2 is x2 - x1 + 1 wide."""
    lo = torch.maximum(boxes_a[:, None, :2], boxes_b[None, :, :2])
    hi = torch.minimum(boxes_a[:, None, 2:], boxes_b[None, :, 2:])
    overlap = (hi - lo + 1).clamp(min=0)  # voc_eval: np.maximum(ixmax - ixmin + 1., 0.)
    inter = overlap[..., 0] * overlap[..., 1]
    area_a = (boxes_a[:, 2] - boxes_a[:, 0] + 1) * (boxes_a[:, 3] - boxes_a[:, 1] + 1)
    area_b = (boxes_b[:, 2] - boxes_b[:, 0] + 1) * (boxes_b[:, 3] - boxes_b[:, 1] + 1)
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def _best_ground_truth(
    det: ImageDetections, gt: GroundTruth, pixel_inclusive: bool = False
) -> tuple[Tensor, Tensor]:
    """(D,) IoU of each detection with its best same-class ground truth in the image, and that one's index.

    IoU is -1 (and the index 0) where the image has no ground truth of the detection's class.
    Among equal IoUs the first ground truth wins, as ``np.argmax`` in voc_eval.
    """
    d = det.scores.shape[0]
    if d == 0 or gt.classes.numel() == 0:
        return torch.full((d,), -1.0, dtype=torch.float64), torch.zeros(d, dtype=torch.int64)
    overlap = pixel_inclusive_iou if pixel_inclusive else box_iou
    iou = overlap(_boxes(det.boxes).double(), _boxes(gt.boxes).double())  # (D, G)
    iou[det.classes[:, None] != gt.classes[None, :]] = -1.0  # only the same class counts
    best_iou, best_gt = iou.max(dim=1)  # torch.max returns the first of equal maxima
    return best_iou, best_gt


def _match_all(
    detections: Sequence[ImageDetections], ground_truths: Sequence[GroundTruth], pixel_inclusive: bool = False
) -> _Matches:
    _check_inputs(detections, ground_truths)
    parts = []
    for image, (det, gt) in enumerate(zip(detections, ground_truths, strict=True)):
        best_iou, best_gt = _best_ground_truth(det, gt, pixel_inclusive)
        difficult = gt.is_difficult()[best_gt] if gt.classes.numel() else torch.zeros_like(best_gt, dtype=torch.bool)
        image_index = torch.full((det.scores.shape[0],), image, dtype=torch.int64)
        parts.append((det.scores.double(), det.classes.long(), best_iou, best_gt, difficult, image_index))
    columns = [torch.cat(column) for column in zip(*parts, strict=True)]
    counts: dict[int, int] = {}
    for gt in ground_truths:
        for c, hard in zip(gt.classes.tolist(), gt.is_difficult().tolist(), strict=True):
            if not hard:
                counts[int(c)] = counts.get(int(c), 0) + 1
    return _Matches(*columns, num_ground_truth=counts)


def _match_class(
    matches: _Matches, class_id: int, iou_threshold: float, strict: bool = True
) -> tuple[Tensor, Tensor]:
    """One class's detections in descending score order, and whether each is a true positive.

    Detections whose best overlap is a difficult ground truth are left out of both.
    """
    mine = matches.classes == class_id
    scores = matches.scores[mine]
    order = torch.sort(scores, descending=True, stable=True).indices  # ties: image order, then row order
    best_iou = matches.best_iou[mine][order].tolist()
    image = matches.image[mine][order].tolist()
    best_gt = matches.best_gt[mine][order].tolist()
    difficult = matches.best_difficult[mine][order].tolist()
    true_positive, kept = [], []
    taken = set()  # (image, ground-truth index) pairs already matched
    for k, (iou, image_index, gt_index, hard) in enumerate(zip(best_iou, image, best_gt, difficult, strict=True)):
        overlaps = iou > iou_threshold if strict else iou >= iou_threshold  # voc_eval: ovmax > ovthresh
        if overlaps and hard:
            continue  # "don't care": neither a true nor a false positive
        hit = overlaps and (image_index, gt_index) not in taken
        if hit:
            taken.add((image_index, gt_index))
        true_positive.append(hit)
        kept.append(k)
    return scores[order][kept], torch.tensor(true_positive, dtype=torch.bool)


def match_detections(
    detections: Sequence[ImageDetections],
    ground_truths: Sequence[GroundTruth],
    class_id: int,
    iou_threshold: float = IOU_THRESHOLD,
    pixel_inclusive: bool = False,
    strict: bool = True,
) -> tuple[Tensor, Tensor, int]:
    """Mark one class's detections, over all images, as true or false positives.

    Returns ``scores`` (D,) in descending order, ``true_positive`` (D,) bool in the same
    order, and the number of ground truths of the class. Each ground truth is matched at
    most once, by the highest-scoring detection whose best overlap it is (IoU > threshold).
    """
    matches = _match_all(detections, ground_truths, pixel_inclusive)
    scores, true_positive = _match_class(matches, class_id, iou_threshold, strict)
    return scores, true_positive, matches.num_ground_truth.get(class_id, 0)


def precision_recall(true_positive: Tensor, num_ground_truth: int) -> tuple[Tensor, Tensor]:
    """(D,) float64 precision and recall after each of the D detections, in score order."""
    if num_ground_truth <= 0:
        raise ValueError(f"recall needs at least one ground truth, got num_ground_truth={num_ground_truth}")
    hits = true_positive.to(torch.float64).cumsum(0)  # true positives so far
    seen = torch.arange(1, true_positive.shape[0] + 1, dtype=torch.float64)  # detections so far
    return hits / seen, hits / num_ground_truth


def ap_all_points(precision: Tensor, recall: Tensor) -> float:
    """Area under the precision-recall curve, VOC2010+ style (voc_ap with use_07_metric=False).

    Add the end points (recall 0, precision 0) and (recall 1, precision 0), replace each
    precision by the best precision at that recall or a higher one (so the curve never
    rises), and add up width x height of the steps where recall grows.
    """
    recall = torch.cat([recall.new_zeros(1), recall.double(), recall.new_ones(1)])
    precision = torch.cat([precision.new_zeros(1), precision.double(), precision.new_zeros(1)])
    envelope = precision.flip(0).cummax(0).values.flip(0)  # best precision at this recall or beyond
    steps = recall[1:] != recall[:-1]
    return float(((recall[1:] - recall[:-1])[steps] * envelope[1:][steps]).sum())


def ap_11_points(precision: Tensor, recall: Tensor, recall_levels: Sequence[float] = ELEVEN_RECALLS) -> float:
    """VOC2007's 11-point AP: the mean over recall levels t of the best precision at recall >= t (0 if none).

    ``recall_levels=VOC_SCRIPT_RECALLS`` reproduces the script's float thresholds exactly.
    """
    total = 0.0
    for level in recall_levels:
        reached = recall >= level
        total += float(precision[reached].max()) if reached.any() else 0.0
    return total / len(recall_levels)


def _class_ap(scores: Tensor, true_positive: Tensor, num_ground_truth: int) -> ClassAP:
    precision, recall = precision_recall(true_positive, num_ground_truth)
    return ClassAP(
        ap=ap_all_points(precision, recall),
        ap_11_points=ap_11_points(precision, recall),
        num_ground_truth=num_ground_truth,
        scores=scores,
        true_positive=true_positive,
        precision=precision,
        recall=recall,
    )


def average_precision(
    detections: Sequence[ImageDetections],
    ground_truths: Sequence[GroundTruth],
    class_id: int,
    iou_threshold: float = IOU_THRESHOLD,
    pixel_inclusive: bool = False,
    strict: bool = True,
) -> ClassAP:
    """AP of one class: ``match_detections``, then ``precision_recall``, then both AP rules."""
    scores, true_positive, num_ground_truth = match_detections(
        detections, ground_truths, class_id, iou_threshold, pixel_inclusive, strict
    )
    if num_ground_truth == 0:
        raise ValueError(f"class {class_id} has no ground truth in these images, so its AP is undefined")
    return _class_ap(scores, true_positive, num_ground_truth)


def mean_average_precision(
    detections: Sequence[ImageDetections],
    ground_truths: Sequence[GroundTruth],
    iou_threshold: float = IOU_THRESHOLD,
    pixel_inclusive: bool = False,
    strict: bool = True,
) -> MeanAP:
    """mAP@0.5 over the classes that have ground truth in ``ground_truths`` (one entry per image).

    ``detections[i]`` and ``ground_truths[i]`` describe image i, boxes as corners in the
    same units. With no ground truth at all, the mAP is undefined and a ValueError says so.
    ``pixel_inclusive`` and ``strict``: the module docstring.
    """
    matches = _match_all(detections, ground_truths, pixel_inclusive)
    if not matches.num_ground_truth:
        raise ValueError("no ground truth in any image: mAP is undefined")
    per_class = {
        c: _class_ap(*_match_class(matches, c, iou_threshold, strict), matches.num_ground_truth[c])
        for c in sorted(matches.num_ground_truth)
    }
    return MeanAP(
        map=sum(r.ap for r in per_class.values()) / len(per_class),
        map_11_points=sum(r.ap_11_points for r in per_class.values()) / len(per_class),
        per_class=per_class,
    )
