"""mAP@0.5 as the VOC scoring script computes it: matching, precision/recall, all-point and 11-point AP."""

import numpy as np
import pytest
import torch

from yolo_lessons.detection.metrics import (
    ELEVEN_RECALLS,
    VOC_SCRIPT_RECALLS,
    GroundTruth,
    ImageDetections,
    ap_11_points,
    ap_all_points,
    average_precision,
    match_detections,
    mean_average_precision,
    precision_recall,
)


def dets(boxes, scores, classes) -> ImageDetections:
    return ImageDetections(
        torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        torch.tensor(scores, dtype=torch.float32),
        torch.tensor(classes, dtype=torch.int64),
    )


def truth(boxes, classes) -> GroundTruth:
    boxes = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    return GroundTruth(boxes, torch.tensor(classes, dtype=torch.int64))


def curve(outcomes: str, num_ground_truth: int):
    """precision, recall for a string of T/F outcomes in score order."""
    return precision_recall(torch.tensor([c == "T" for c in outcomes]), num_ground_truth)


# Hand PR curves, from the research notes' table (training-ground-truth.md, section 4.4), redone by hand here.


def test_case_a_all_point_ap():
    # T F T T F F T with 5 ground truths: precision 1, 1/2, 2/3, 3/4, 3/5, 1/2, 4/7 at recall
    # .2, .2, .4, .6, .6, .6, .8. Best precision at this recall or beyond: 1 up to recall .2,
    # 3/4 up to .6, 4/7 up to .8, 0 after. Area: .2 * 1 + .4 * 3/4 + .2 * 4/7 = 0.614286.
    precision, recall = curve("TFTTFFT", 5)
    torch.testing.assert_close(recall, torch.tensor([0.2, 0.2, 0.4, 0.6, 0.6, 0.6, 0.8], dtype=torch.float64))
    assert ap_all_points(precision, recall) == pytest.approx(0.2 + 0.4 * 3 / 4 + 0.2 * 4 / 7)
    assert round(ap_all_points(precision, recall), 4) == 0.6143  # the research table's VOC all-point value


def test_case_a_eleven_point_ap_with_exact_and_with_the_voc_scripts_thresholds():
    precision, recall = curve("TFTTFFT", 5)
    # Exact thresholds: t = 0, .1, .2 -> 1; t = .3, .4, .5, .6 -> 3/4 (recall .6 reaches t = .6);
    # t = .7, .8 -> 4/7; t = .9, 1 -> 0. (3 + 4 * 3/4 + 2 * 4/7) / 11 = 0.649351.
    assert ap_11_points(precision, recall) == pytest.approx((3 + 4 * 3 / 4 + 2 * 4 / 7) / 11)
    # The script's "0.6" is 0.6000000000000001, which recall 3/5 = 0.6 does not reach, so t = .6
    # gets 4/7 instead of 3/4: (3 + 3 * 3/4 + 3 * 4/7) / 11 = 0.633117, the research table's 0.6331.
    voc = ap_11_points(precision, recall, VOC_SCRIPT_RECALLS)
    assert voc == pytest.approx((3 + 3 * 3 / 4 + 3 * 4 / 7) / 11)
    assert round(voc, 4) == 0.6331


def test_voc_script_recalls_are_numpys_arange():
    assert VOC_SCRIPT_RECALLS == tuple(np.arange(0.0, 1.1, 0.1))  # voc_ap(use_07_metric=True)
    assert VOC_SCRIPT_RECALLS[6] == 0.6000000000000001 and ELEVEN_RECALLS[6] == 0.6


def test_case_b_eleven_points_and_all_points_differ():
    # T T F with 3 ground truths: precision 1, 1, 2/3 at recall 1/3, 2/3, 2/3.
    # All points: recall 0 -> 2/3 at precision 1 = 0.666667.
    # 11 points: t = 0 ... .6 (7 levels) reach precision 1, t = .7 ... 1 reach nothing: 7/11 = 0.636364.
    precision, recall = curve("TTF", 3)
    assert ap_all_points(precision, recall) == pytest.approx(2 / 3)
    assert ap_11_points(precision, recall) == pytest.approx(7 / 11)


def test_no_detections_give_ap_zero():
    precision, recall = curve("", 4)
    assert ap_all_points(precision, recall) == 0.0 and ap_11_points(precision, recall) == 0.0


def test_perfect_detections_give_map_one():
    gts = [truth([[0, 0, 10, 10], [20, 20, 30, 40]], [0, 1]), truth([[5, 5, 15, 25]], [1])]
    detections = [dets([[0, 0, 10, 10], [20, 20, 30, 40]], [0.9, 0.8], [0, 1]), dets([[5, 5, 15, 25]], [0.7], [1])]
    result = mean_average_precision(detections, gts)
    assert result.map == 1.0 and result.map_11_points == 1.0
    assert sorted(result.per_class) == [0, 1] and result.per_class[1].num_ground_truth == 2


def test_a_class_without_detections_scores_zero_and_one_without_ground_truth_is_left_out():
    gts = [truth([[0, 0, 10, 10], [20, 20, 30, 40]], [0, 1])]
    # Class 0 found perfectly; class 1 (with ground truth) never detected; class 2 detected but never labelled.
    detections = [dets([[0, 0, 10, 10], [20, 20, 30, 40]], [0.9, 0.95], [0, 2])]
    result = mean_average_precision(detections, gts)
    assert sorted(result.per_class) == [0, 1]  # class 2 has no ground truth: excluded
    assert result.per_class[0].ap == 1.0 and result.per_class[1].ap == 0.0
    assert result.map == 0.5  # (1 + 0) / 2
    with pytest.raises(ValueError, match="class 2 has no ground truth"):
        average_precision(detections, gts, class_id=2)


def test_a_duplicate_detection_is_a_false_positive():
    gts = [truth([[0, 0, 10, 10]], [0]), truth([[0, 0, 10, 10]], [0])]
    # Image 0: the object found twice (0.9, then a shifted duplicate 0.8, IoU 0.82); image 1: found at 0.7.
    detections = [dets([[0, 0, 10, 10], [1, 0, 11, 10]], [0.9, 0.8], [0, 0]), dets([[0, 0, 10, 10]], [0.7], [0])]
    scores, true_positive, num_ground_truth = match_detections(detections, gts, class_id=0)
    assert true_positive.tolist() == [True, False, True] and num_ground_truth == 2
    torch.testing.assert_close(scores, torch.tensor([0.9, 0.8, 0.7], dtype=torch.float64))
    # precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1: area 1/2 * 1 + 1/2 * 2/3 = 5/6 (without the duplicate: 1).
    assert average_precision(detections, gts, 0).ap == pytest.approx(5 / 6)


def test_empty_images_and_false_alarms_on_images_without_objects():
    gts = [truth([[0, 0, 10, 10]], [0]), truth([], []), truth([], []), truth([[50, 50, 60, 60]], [0])]
    detections = [
        dets([[0, 0, 10, 10]], [0.9], [0]),  # found
        dets([], [], []),  # an empty image: nothing there, nothing detected
        dets([[0, 0, 10, 10]], [0.95], [0]),  # a false alarm, ranked first
        dets([], [], []),  # an object nobody found
    ]
    result = average_precision(detections, gts, 0)
    assert result.true_positive.tolist() == [False, True]
    # precision 0, 1/2 at recall 0, 1/2. All points: 1/2 * 1/2 = 0.25.
    # 11 points: t = 0 ... .5 (6 levels) reach precision 1/2: 6 * 0.5 / 11 = 0.272727.
    assert result.ap == pytest.approx(0.25) and result.ap_11_points == pytest.approx(3 / 11)


def test_a_ground_truth_is_claimed_once_and_a_detection_does_not_fall_back_to_another():
    # Two overlapping objects; both detections overlap object 0 best. The second is a false positive
    # (VOC's rule), even though its IoU with object 1 is also above 0.5 (COCO would give it object 1).
    gts = [truth([[0, 0, 10, 10], [0, 0, 10, 12]], [0, 0])]
    detections = [dets([[0, 0, 10, 10], [0, 0, 10, 10.5]], [0.9, 0.8], [0, 0])]
    _, true_positive, _ = match_detections(detections, gts, 0)
    assert true_positive.tolist() == [True, False]


def test_a_detection_needs_iou_strictly_above_one_half():
    gts = [truth([[0, 0, 4, 5]], [0])]
    # The detection covers half the object: IoU = 10 / 20 = 0.5 exactly, not above 0.5.
    _, true_positive, _ = match_detections([dets([[0, 0, 4, 2.5]], [0.9], [0])], gts, 0)
    assert true_positive.tolist() == [False]
    _, true_positive, _ = match_detections([dets([[0, 0, 4, 2.5]], [0.9], [0])], gts, 0, iou_threshold=0.49)
    assert true_positive.tolist() == [True]


def test_a_detection_of_another_class_does_not_match():
    gts = [truth([[0, 0, 10, 10]], [1])]
    result = mean_average_precision([dets([[0, 0, 10, 10]], [0.9], [0])], gts)
    assert list(result.per_class) == [1] and result.map == 0.0


def test_ties_in_score_keep_image_order():
    gts = [truth([[0, 0, 10, 10]], [0]), truth([[0, 0, 10, 10]], [0])]
    detections = [dets([[30, 30, 40, 40]], [0.5], [0]), dets([[0, 0, 10, 10]], [0.5], [0])]
    _, true_positive, _ = match_detections(detections, gts, 0)
    assert true_positive.tolist() == [False, True]  # image 0's false alarm first


def test_metrics_say_what_they_expected():
    with pytest.raises(ValueError, match="one detections entry and one ground-truth entry per image"):
        mean_average_precision([dets([], [], [])], [])
    with pytest.raises(ValueError, match=r"image 0: detections need boxes \(D, 4\)"):
        mean_average_precision([dets([[0, 0, 1, 1]], [0.5, 0.4], [0, 0])], [truth([], [])])
    with pytest.raises(ValueError, match="no ground truth in any image"):
        mean_average_precision([dets([], [], [])], [truth([], [])])


# Cross-check against an independent implementation: pycocotools' AP at IoU 0.5.


def _random_images(generator: torch.Generator, num_images: int = 12, num_classes: int = 3):
    """Ground truths that never overlap (one per cell of a 4x4 grid of 100-pixel cells) and
    detections near them (good, poor, duplicated) plus false alarms, with distinct scores.

    With non-overlapping ground truths a detection has IoU > 0.5 with at most one of them,
    so VOC's matching (no fall-back) and COCO's (fall back to another unmatched one) agree.
    """
    detections, ground_truths = [], []
    for _ in range(num_images):
        cells = torch.randperm(16, generator=generator)[: int(torch.randint(0, 6, (1,), generator=generator))]
        corner = torch.stack([cells % 4, cells // 4], dim=1).double() * 100 + 5
        size = torch.rand(len(cells), 2, generator=generator, dtype=torch.float64) * 60 + 20
        gt_boxes = torch.cat([corner, corner + size], dim=1)
        gt_classes = torch.randint(num_classes, (len(cells),), generator=generator)
        picked = torch.randint(0, 2, (len(cells) * 2,), generator=generator).bool()  # some found twice
        near = gt_boxes.repeat(2, 1)[picked]
        near = near + torch.randn(near.shape, generator=generator, dtype=torch.float64) * 6  # IoU from ~0.3 to 1
        near_classes = gt_classes.repeat(2)[picked]
        wrong = torch.rand(len(near_classes), generator=generator) < 0.15
        near_classes[wrong] = torch.randint(num_classes, (int(wrong.sum()),), generator=generator)
        alarms = torch.rand(int(torch.randint(0, 3, (1,), generator=generator)), 2, generator=generator) * 350
        alarm_boxes = torch.cat([alarms, alarms + 30], dim=1).double()
        boxes = torch.cat([near, alarm_boxes])
        classes = torch.cat([near_classes, torch.randint(num_classes, (len(alarms),), generator=generator)])
        scores = torch.rand(len(boxes), generator=generator, dtype=torch.float64)
        detections.append(ImageDetections(boxes, scores, classes))
        ground_truths.append(GroundTruth(gt_boxes, gt_classes))
    return detections, ground_truths


def _coco_ap50_per_class(detections, ground_truths, num_classes: int) -> np.ndarray:
    """pycocotools' 101-point precision at IoU 0.5, every area, for each class: (num_classes, 101)."""
    pytest.importorskip("pycocotools", reason="pycocotools is a test-only dependency for this cross-check")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    def xywh(box):
        x1, y1, x2, y2 = box
        return [x1, y1, x2 - x1, y2 - y1]

    images = [{"id": i + 1} for i in range(len(ground_truths))]
    annotations, results = [], []
    for i, (det, gt) in enumerate(zip(detections, ground_truths, strict=True)):
        for box, c in zip(gt.boxes.tolist(), gt.classes.tolist(), strict=True):
            w, h = xywh(box)[2:]
            annotations.append(
                {"id": len(annotations) + 1, "image_id": i + 1, "category_id": c + 1, "bbox": xywh(box),
                 "area": w * h, "iscrowd": 0}
            )
        for box, score, c in zip(det.boxes.tolist(), det.scores.tolist(), det.classes.tolist(), strict=True):
            results.append({"image_id": i + 1, "category_id": c + 1, "bbox": xywh(box), "score": score})
    coco = COCO()
    coco.dataset = {"images": images, "annotations": annotations,
                    "categories": [{"id": c + 1} for c in range(num_classes)]}
    coco.createIndex()
    evaluation = COCOeval(coco, coco.loadRes(results), "bbox")
    evaluation.params.iouThrs = np.array([0.5])
    evaluation.params.maxDets = [1000]  # no cap on detections per image
    evaluation.evaluate()
    evaluation.accumulate()
    return evaluation.eval["precision"][0, :, :, 0, 0].T  # (classes, 101): IoU 0.5, area "all"


def _ap_101_points(precision: torch.Tensor, recall: torch.Tensor) -> np.ndarray:
    """COCO's rule written out on our curve: best precision at recall >= t, t = 0, 0.01, ..., 1."""
    envelope = np.maximum.accumulate(precision.numpy()[::-1])[::-1]
    at = np.searchsorted(recall.numpy(), np.linspace(0.0, 1.0, 101), side="left")
    return np.array([envelope[i] if i < len(envelope) else 0.0 for i in at])


def test_coco_rule_on_case_a_gives_the_research_tables_value():
    # 101 levels: t <= .2 (21 levels) -> 1, .2 < t <= .6 (40) -> 3/4, .6 < t <= .8 (20) -> 4/7,
    # t > .8 (20) -> 0: (21 + 30 + 80/7) / 101 = 0.618105 (COCO, research table: 0.6181).
    precision, recall = curve("TFTTFFT", 5)
    coco = _ap_101_points(precision, recall).mean()
    assert coco == pytest.approx((21 + 40 * 3 / 4 + 20 * 4 / 7) / 101)
    assert round(coco, 4) == 0.6181


def test_precision_and_recall_equal_pycocotools_on_random_images(capsys):
    generator = torch.Generator().manual_seed(0)
    num_classes = 3
    for _ in range(5):
        detections, ground_truths = _random_images(generator, num_classes=num_classes)
        coco = _coco_ap50_per_class(detections, ground_truths, num_classes)
        ours = mean_average_precision(detections, ground_truths)
        for c in range(num_classes):
            if c not in ours.per_class:
                assert np.all(coco[c] == -1)  # COCO leaves classes without ground truth out too
                continue
            result = ours.per_class[c]
            # Same curve: COCO's 101-point reading of it is reproduced exactly.
            np.testing.assert_allclose(_ap_101_points(result.precision, result.recall), coco[c], atol=1e-12)
            # Different rule: all points vs 101 points. For a non-increasing precision envelope the
            # 101-point mean and the area differ by at most about 1/100 + 1/101 (two Riemann sums).
            assert abs(result.ap - coco[c].mean()) <= 0.02
    capsys.readouterr()  # pycocotools prints its progress
