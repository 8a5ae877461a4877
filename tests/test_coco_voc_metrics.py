"""COCO's metrics against pycocotools, and VOC's difficult objects and pixel rule against the devkit.

Both references score overlapping objects, ties, duplicates and objects of every size, so the
rules where VOC and COCO differ (fall-back to a second object, >= against >, + 1 pixel) are
all exercised.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from voc_devkit_port import devkit_class_ap

from yolo_lessons.detection.coco_ap import IOU_THRESHOLDS, coco_average_precision
from yolo_lessons.detection.metrics import GroundTruth, mean_average_precision
from yolo_lessons.detection.nms import ImageDetections


def random_scenes(seed: int, num_images: int = 10, num_classes: int = 3, difficult: float = 0.0):
    """Integer pixel boxes of every size on 640 x 480 images, some overlapping, with detections
    near them (good, poor, duplicated, wrong class), false alarms, and scores with ties."""
    g = np.random.default_rng(seed)
    detections, ground_truths = [], []
    for _ in range(num_images):
        n = int(g.integers(0, 7))
        side = g.choice([12, 25, 40, 70, 120, 200], size=(n, 2)) * g.uniform(0.7, 1.3, size=(n, 2))
        corner = g.uniform(0, 400, size=(n, 2))
        gt = np.round(np.concatenate([corner, corner + side], axis=1))
        if n > 1 and g.random() < 0.5:  # a second object overlapping the first
            gt[1] = gt[0] + np.round(g.normal(0, 6, size=4))
            gt[1, 2:] = np.maximum(gt[1, 2:], gt[1, :2] + 4)
        classes = g.integers(0, num_classes, size=n)
        hard = g.random(n) < difficult
        near = np.repeat(gt, 2, axis=0)[g.random(2 * n) < 0.6]
        near_classes = np.repeat(classes, 2)[: len(near)] if len(near) else np.zeros(0, int)
        near = np.round(near + g.normal(0, 5, size=near.shape))
        near[:, 2:] = np.maximum(near[:, 2:], near[:, :2] + 2)
        alarms = np.round(g.uniform(0, 500, size=(int(g.integers(0, 3)), 2)))
        boxes = np.concatenate([near, np.concatenate([alarms, alarms + 30], axis=1)])
        box_classes = np.concatenate([near_classes, g.integers(0, num_classes, size=len(alarms))])
        scores = np.round(g.random(len(boxes)), 1)  # one decimal: many ties
        detections.append(ImageDetections(torch.tensor(boxes), torch.tensor(scores), torch.tensor(box_classes)))
        ground_truths.append(GroundTruth(torch.tensor(gt), torch.tensor(classes), torch.tensor(hard)))
    return detections, ground_truths


def pycocotools_stats(detections, ground_truths, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    pytest.importorskip("pycocotools", reason="pycocotools is a test-only dependency for this cross-check")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    def xywh(box):
        x1, y1, x2, y2 = box
        return [x1, y1, x2 - x1, y2 - y1]

    annotations, results = [], []
    for i, (det, gt) in enumerate(zip(detections, ground_truths, strict=True)):
        for box, c in zip(gt.boxes.tolist(), gt.classes.tolist(), strict=True):
            b = xywh(box)
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1, "category_id": c + 1, "bbox": b,
                                "area": b[2] * b[3], "iscrowd": 0})
        for box, s, c in zip(det.boxes.tolist(), det.scores.tolist(), det.classes.tolist(), strict=True):
            results.append({"image_id": i + 1, "category_id": c + 1, "bbox": xywh(box), "score": s})
    coco = COCO()
    coco.dataset = {"images": [{"id": i + 1} for i in range(len(ground_truths))], "annotations": annotations,
                    "categories": [{"id": c + 1} for c in range(num_classes)]}
    coco.createIndex()
    evaluation = COCOeval(coco, coco.loadRes(results), "bbox")
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    return evaluation.stats[:6], evaluation.eval["precision"][..., 2]  # maxDets 100


@pytest.mark.parametrize("seed", range(6))
def test_coco_metrics_equal_pycocotools(seed, capsys):
    detections, ground_truths = random_scenes(seed)
    ground_truths = [GroundTruth(g.boxes, g.classes) for g in ground_truths]  # COCO has no difficult flag
    stats, precision = pycocotools_stats(detections, ground_truths, 3)
    capsys.readouterr()  # pycocotools prints its progress and table
    ours = coco_average_precision(detections, ground_truths)
    got = [ours.ap, ours.ap50, ours.ap75, ours.ap_small, ours.ap_medium, ours.ap_large]
    np.testing.assert_allclose(got, stats, atol=1e-6)
    present = [k for k in range(3) if k in ours.classes]
    np.testing.assert_allclose(ours.precision[..., [ours.classes.index(k) for k in present], :],
                               precision[:, :, present, :], atol=1e-12)


def test_coco_falls_back_to_a_second_object_where_voc_does_not():
    # two objects, the second a copy of the first shifted by 1 pixel; two detections on the first
    gt = GroundTruth(torch.tensor([[0.0, 0, 100, 100], [1.0, 0, 101, 100]]), torch.tensor([0, 0]))
    det = ImageDetections(torch.tensor([[0.0, 0, 100, 100], [0.0, 0, 100, 100]]), torch.tensor([0.9, 0.8]),
                          torch.tensor([0, 0]))
    assert coco_average_precision([det], [gt]).ap50 == pytest.approx(1.0)  # the second takes object 2
    assert mean_average_precision([det], [gt]).map == pytest.approx(0.5)  # VOC: a duplicate, 1 of 2 found


def test_coco_keeps_the_100_best_detections_of_an_image():
    boxes = torch.tensor([[0.0, 0, 50, 50]]).repeat(101, 1)
    boxes[:100] += 200  # 100 high-scoring false alarms, then the one true box
    scores = torch.linspace(1, 0.5, 101, dtype=torch.float64)
    det = ImageDetections(boxes, scores, torch.zeros(101, dtype=torch.long))
    gt = GroundTruth(torch.tensor([[0.0, 0, 50, 50]]), torch.tensor([0]))
    assert coco_average_precision([det], [gt]).ap == 0.0
    assert coco_average_precision([det], [gt], max_detections=101).ap > 0


def test_iou_thresholds_are_pycocotools_floats():
    assert IOU_THRESHOLDS.tolist() == np.linspace(0.5, 0.95, 10).tolist() and len(IOU_THRESHOLDS) == 10


# --- VOC: difficult objects, + 1 pixel, > against >= --------------------------------------------


def as_lists(detections, ground_truths):
    dets = [list(zip(d.scores.tolist(), d.classes.tolist(), d.boxes.tolist(), strict=True)) for d in detections]
    gts = [list(zip(g.classes.tolist(), g.boxes.tolist(), g.is_difficult().tolist(), strict=True))
           for g in ground_truths]
    return dets, gts


@pytest.mark.parametrize("seed", range(8))
def test_voc_ap_with_difficult_objects_equals_the_devkit(seed):
    detections, ground_truths = random_scenes(100 + seed, num_images=12, difficult=0.25)
    dets, gts = as_lists(detections, ground_truths)
    ours = mean_average_precision(detections, ground_truths, pixel_inclusive=True, strict=False)
    for c in range(3):
        want_all = devkit_class_ap(dets, gts, c)
        want_11 = devkit_class_ap(dets, gts, c, eleven_points=True)
        if want_all is None:  # no object of the class that is not difficult
            assert c not in ours.per_class
            continue
        assert ours.per_class[c].ap == pytest.approx(want_all, abs=1e-12)
        assert ours.per_class[c].ap_11_points == pytest.approx(want_11, abs=1e-12)


def test_a_detection_on_a_difficult_object_is_neither_true_nor_false():
    gt = GroundTruth(torch.tensor([[0.0, 0, 10, 10], [50.0, 50, 60, 60]]), torch.tensor([0, 0]),
                     torch.tensor([False, True]))
    found_hard = ImageDetections(torch.tensor([[50.0, 50, 60, 60], [0.0, 0, 10, 10]]), torch.tensor([0.9, 0.8]),
                                 torch.tensor([0, 0]))
    result = mean_average_precision([found_hard], [gt])
    assert result.per_class[0].num_ground_truth == 1  # the difficult one is not counted
    assert result.per_class[0].true_positive.tolist() == [True]  # the difficult hit is left out
    assert result.map == 1.0


def test_the_pixel_rule_and_the_threshold_rule():
    # boxes 0..9 and 5..14 (pixels, inclusive): 5 x 10 overlap of two 10 x 10 boxes -> IoU 50/150
    # plain corners: overlap 4 x 9 = 36, areas 81 -> 36 / 126
    gt = GroundTruth(torch.tensor([[0.0, 0, 9, 9]]), torch.tensor([0]))
    det = ImageDetections(torch.tensor([[0.0, 0, 19, 9]]), torch.tensor([0.9]), torch.tensor([0]))
    # inclusive: det is 20 x 10 = 200, gt 100, overlap 100: IoU exactly 0.5
    assert mean_average_precision([det], [gt], pixel_inclusive=True, strict=False).map == 1.0  # devkit: >=
    assert mean_average_precision([det], [gt], pixel_inclusive=True).map == 0.0  # voc_eval.py: >
    assert mean_average_precision([det], [gt], strict=False).map == 0.0  # plain: 81 / 171 < 0.5


def test_coco_tie_and_area_rules_on_hand_made_scenes_equal_pycocotools(capsys):
    # 1: detection A sits exactly between two objects (equal IoU 9/11): pycocotools gives it the
    #    later one, which leaves detection B only the first (IoU 8/12), so AP drops above 0.667.
    # 2: a detection overlaps a small object (area 30 x 30 < 32^2) slightly better than a medium
    #    one: in the "medium" range the small object is ignored and the medium one is preferred.
    scenes = [
        (ImageDetections(torch.tensor([[1.0, 0, 11, 10], [2.0, 0, 12, 10]]), torch.tensor([0.9, 0.8]),
                         torch.tensor([0, 0])),
         GroundTruth(torch.tensor([[0.0, 0, 10, 10], [2.0, 0, 12, 10]]), torch.tensor([0, 0]))),
        (ImageDetections(torch.tensor([[0.0, 0, 31, 31]]), torch.tensor([0.7]), torch.tensor([1])),
         GroundTruth(torch.tensor([[0.0, 0, 30, 30], [0.0, 0, 34, 34]]), torch.tensor([1, 1]))),
    ]
    detections, ground_truths = zip(*scenes, strict=True)
    stats, precision = pycocotools_stats(detections, ground_truths, 2)
    capsys.readouterr()
    ours = coco_average_precision(detections, ground_truths)
    got = [ours.ap, ours.ap50, ours.ap75, ours.ap_small, ours.ap_medium, ours.ap_large]
    np.testing.assert_allclose(got, stats, atol=1e-12)
    np.testing.assert_allclose(ours.precision, precision, atol=1e-12)
