"""size_ap: AP@0.5 restricted to a size range, COCO's ignore rule on the book's VOC matching."""

from __future__ import annotations

import math

import pytest
import torch

from yolo_lessons.detection.metrics import GroundTruth, ImageDetections, mean_average_precision
from yolo_lessons.detection.size_ap import SIZE_BUCKETS, ap_by_size, box_size_pixels, size_average_precision


def _det(boxes, scores, classes) -> ImageDetections:
    boxes = torch.tensor(boxes, dtype=torch.float64).reshape(-1, 4)
    return ImageDetections(boxes=boxes, scores=torch.tensor(scores, dtype=torch.float64),
                           classes=torch.tensor(classes, dtype=torch.int64),
                           box_index=torch.arange(len(scores)))


def _gt(boxes, classes) -> GroundTruth:
    return GroundTruth(torch.tensor(boxes, dtype=torch.float64).reshape(-1, 4), torch.tensor(classes))


def _random_case(seed: int, images: int = 6):
    g = torch.Generator().manual_seed(seed)
    dets, gts = [], []
    for _ in range(images):
        k = int(torch.randint(0, 4, (1,), generator=g))
        centre, side = torch.rand(k, 2, generator=g), 0.02 + 0.5 * torch.rand(k, 1, generator=g)
        gt_boxes = torch.cat([centre - side / 2, centre + side / 2], 1)
        gt_classes = torch.randint(0, 2, (k,), generator=g)
        gts.append(GroundTruth(gt_boxes.double(), gt_classes))
        # detections: jittered copies of the truths plus a few boxes anywhere
        jitter = gt_boxes + 0.03 * torch.randn(k, 4, generator=g)
        extra = torch.rand(2, 2, generator=g)
        extra = torch.cat([extra, extra + 0.1 + 0.3 * torch.rand(2, 2, generator=g)], 1)
        boxes = torch.cat([jitter, extra]).double()
        classes = torch.cat([gt_classes, torch.randint(0, 2, (2,), generator=g)])
        dets.append(ImageDetections(boxes, torch.rand(k + 2, generator=g).double(), classes, torch.arange(k + 2)))
    return dets, gts


@pytest.mark.parametrize("seed", range(20))
def test_the_whole_range_equals_the_books_map(seed):
    dets, gts = _random_case(seed)
    if sum(len(g.classes) for g in gts) == 0:
        pytest.skip("no ground truth drawn")
    whole = size_average_precision(dets, gts, (0.0, math.inf), 128)
    assert whole.ap == pytest.approx(mean_average_precision(dets, gts).map, abs=1e-12)


def test_sizes_are_square_roots_of_areas_in_pixels():
    # a 0.25 x 0.0625 box on a 128-pixel image: 32 x 8 pixels, sqrt(256) = 16
    assert box_size_pixels(torch.tensor([[0.0, 0.0, 0.25, 0.0625]]), 128).tolist() == [16.0]


def test_a_found_large_object_is_left_out_of_the_small_bucket_not_a_false_positive():
    # one small truth (8 px) found with score .9; one large truth (64 px) found with score .95
    gts = [_gt([[0.0, 0.0, 8 / 128, 8 / 128], [0.5, 0.5, 1.0, 1.0]], [0, 0])]
    dets = [_det([[0.0, 0.0, 8 / 128, 8 / 128], [0.5, 0.5, 1.0, 1.0]], [0.9, 0.95], [0, 0])]
    buckets = ap_by_size(dets, gts, 128)
    assert buckets["small"].ap == 1.0 and buckets["small"].num_ground_truth == 1
    assert buckets["large"].ap == 1.0 and buckets["large"].num_ground_truth == 1
    assert math.isnan(buckets["medium"].ap) and buckets["medium"].num_ground_truth == 0


def test_an_unmatched_detection_is_a_false_positive_only_in_its_own_size_bucket():
    # the small truth is found at score .5; a large false alarm (no truth there) scores .9
    gts = [_gt([[0.0, 0.0, 8 / 128, 8 / 128]], [0])]
    dets = [_det([[0.0, 0.0, 8 / 128, 8 / 128], [0.4, 0.4, 0.9, 0.9]], [0.5, 0.9], [0, 0])]
    assert size_average_precision(dets, gts, SIZE_BUCKETS["small"], 128).ap == 1.0
    # without the ignore rule: precision 1/2 at recall 1, AP 0.5
    assert size_average_precision(dets, gts, (0.0, math.inf), 128).ap == 0.5


def test_a_duplicate_on_an_in_range_truth_is_a_false_positive():
    gts = [_gt([[0.0, 0.0, 8 / 128, 8 / 128]], [1])]
    dets = [_det([[0.0, 0.0, 8 / 128, 8 / 128]] * 2, [0.9, 0.8], [1, 1])]
    result = size_average_precision(dets, gts, SIZE_BUCKETS["small"], 128)
    assert result.per_class == {1: 1.0}  # the duplicate comes after full recall: AP unchanged
    dets = [_det([[0.0, 0.0, 8 / 128, 8 / 128]] * 2, [0.8, 0.9], [1, 1])]
    assert size_average_precision(dets, gts, SIZE_BUCKETS["small"], 128).ap == 1.0  # same boxes, same AP


def test_a_bad_range_is_refused():
    with pytest.raises(ValueError, match="0 <= low < high"):
        size_average_precision([], [], (12.0, 4.0), 128)
