"""Darknet's scores and threshold, and per-class NMS (do_nms_sort): the tensor version equals the loop."""

import pytest
import torch

from yolo_lessons.detection.decode import Detections
from yolo_lessons.detection.nms import (
    NMS_THRESHOLD,
    box_iou,
    darknet_scores,
    nms,
    nms_batch,
    nms_reference,
    postprocess,
)


def test_darknet_scores_multiply_and_zero_what_is_not_above_thresh():
    objectness = torch.tensor([0.9, 0.2, 0.5])
    class_probs = torch.tensor([[0.5, 0.25], [1.0, 0.5], [0.5, 0.5]])
    scores = darknet_scores(objectness, class_probs, thresh=0.25)
    # Row 0: 0.45 and 0.225 (not above 0.25 -> 0). Row 1: objectness 0.2 is not above 0.25, so
    # Darknet drops the box whatever its classes say. Row 2: 0.25 is not *above* 0.25 -> 0.
    expected = torch.tensor([[0.45, 0.0], [0.0, 0.0], [0.0, 0.0]])
    torch.testing.assert_close(scores, expected)


def test_box_iou_of_hand_boxes():
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0], [0.0, 0.0, 2.0, 2.0], [5.0, 5.0, 6.0, 6.0], [2.0, 0.0, 4.0, 2.0]])
    # Overlap 1x1 = 1, union 4 + 4 - 1 = 7; the same box; far apart; touching along an edge.
    torch.testing.assert_close(box_iou(a, b), torch.tensor([[1 / 7, 1.0, 0.0, 0.0]]))


def test_two_empty_boxes_have_iou_zero_not_nan():
    empty = torch.tensor([[1.0, 1.0, 1.0, 1.0]])
    assert box_iou(empty, empty).item() == 0.0


def _boxes(*rows):
    return torch.tensor(rows, dtype=torch.float32)


@pytest.mark.parametrize("implementation", [nms, nms_reference])
def test_a_lower_box_is_suppressed_only_when_iou_is_strictly_above_045(implementation):
    # Box 1 lies inside box 0: IoU = 9 / 20 = 0.45 exactly (9/20 rounds to the same double as 0.45),
    # and "IoU > 0.45" is false, so it stays. Box 2 inside box 0: IoU 18 / 20 = 0.9, suppressed.
    boxes = _boxes([0, 0, 4, 5], [0, 0, 3, 3], [0, 0, 4, 4.5])
    scores = torch.tensor([[0.9], [0.8], [0.7]])
    assert box_iou(boxes[:1].double(), boxes[1:2].double()).item() == 0.45
    out = implementation(boxes, scores)
    assert out.box_index.tolist() == [0, 1]
    assert out.classes.tolist() == [0, 0]
    assert NMS_THRESHOLD == 0.45  # do_nms_sort(..., .45) in examples/detector.c


@pytest.mark.parametrize("implementation", [nms, nms_reference])
def test_a_suppressed_box_suppresses_nothing(implementation):
    # Three boxes in a row: 0 overlaps 1 (IoU 0.6), 1 overlaps 2 (IoU 0.6), 0 and 2 overlap less (IoU 0.25).
    # Greedy NMS: 0 removes 1, and 1, being removed, cannot remove 2.
    boxes = _boxes([0, 0, 2, 2], [0.5, 0, 2.5, 2], [1.0, 0, 3.0, 2])
    scores = torch.tensor([[0.9], [0.8], [0.7]])
    assert implementation(boxes, scores).box_index.tolist() == [0, 2]


@pytest.mark.parametrize("implementation", [nms, nms_reference])
def test_a_box_survives_in_several_classes(implementation):
    boxes = _boxes([0, 0, 2, 2], [0.1, 0, 2.1, 2])  # IoU 1.9*2 / (8 - 3.8) = 0.905: a duplicate
    scores = torch.tensor([[0.9, 0.3], [0.8, 0.6]])
    out = implementation(boxes, scores)
    # Class 0: box 0 ranks first and suppresses box 1. Class 1: box 1 ranks first and suppresses box 0.
    assert list(zip(out.classes.tolist(), out.box_index.tolist(), strict=True)) == [(0, 0), (1, 1)]
    torch.testing.assert_close(out.scores, torch.tensor([0.9, 0.6]))
    far = _boxes([0, 0, 1, 1], [5, 5, 6, 6])
    out = implementation(far, torch.tensor([[0.9, 0.3], [0.0, 0.6]]))
    # No overlaps: box 0 is kept in both its classes; rows ordered by class, then score.
    assert list(zip(out.classes.tolist(), out.box_index.tolist(), strict=True)) == [(0, 0), (1, 1), (1, 0)]


@pytest.mark.parametrize("implementation", [nms, nms_reference])
def test_ties_in_score_go_to_the_lower_box_index(implementation):
    boxes = _boxes([0, 0, 2, 2], [0, 0, 2, 2], [0, 0, 2, 2])  # three identical boxes (IoU 1)
    scores = torch.tensor([[0.5], [0.7], [0.7]])
    # Boxes 1 and 2 tie at 0.7: the lower index, 1, ranks first and suppresses 2 and then 0.
    assert implementation(boxes, scores).box_index.tolist() == [1]


@pytest.mark.parametrize("implementation", [nms, nms_reference])
def test_no_candidates_give_empty_detections(implementation):
    out = implementation(_boxes([0, 0, 1, 1]), torch.zeros(1, 3))
    assert len(out) == 0 and out.boxes.shape == (0, 4) and out.classes.dtype == torch.int64


def _random_case(generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A random image: clustered boxes (many overlaps), duplicated boxes, tied and zero scores."""
    k = int(torch.randint(1, 40, (1,), generator=generator))
    c = int(torch.randint(1, 5, (1,), generator=generator))
    centres = torch.rand(3, 2, generator=generator)[torch.randint(3, (k,), generator=generator)]
    centres = centres + torch.rand(k, 2, generator=generator) * 0.2  # a few clusters
    sizes = torch.rand(k, 2, generator=generator) * 0.3 + 0.05
    boxes = torch.cat([centres - sizes / 2, centres + sizes / 2], dim=1)
    duplicates = torch.rand(k, generator=generator) < 0.2
    boxes[duplicates] = boxes[torch.randint(k, (int(duplicates.sum()),), generator=generator)]
    # Scores from a few levels, so ties are common; about a third are 0 (not candidates).
    levels = torch.tensor([0.0, 0.0, 0.3, 0.5, 0.5, 0.7, 0.9])
    scores = levels[torch.randint(len(levels), (k, c), generator=generator)]
    scores = torch.where(torch.rand(k, c, generator=generator) < 0.3, scores, scores + 0.01 * torch.rand(k, c))
    return boxes, scores


@pytest.fixture
def one_thread():
    """Tiny tensors gain nothing from threads, and on a busy 2-core machine threads wait for each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_nms_equals_the_reference_loop_on_1000_random_cases(one_thread):
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    tied = 0
    for _ in range(1000):
        boxes, scores = _random_case(generator)
        fast, slow = nms(boxes, scores), nms_reference(boxes, scores)
        assert torch.equal(fast.box_index, slow.box_index)
        assert torch.equal(fast.classes, slow.classes)
        assert torch.equal(fast.scores, slow.scores)
        assert torch.equal(fast.boxes, slow.boxes)
        positive = scores[scores > 0]
        tied += int(positive.unique().numel() < positive.numel())
    assert tied > 500  # most cases have tied scores, so the tie order is really exercised


def test_nms_with_few_pairs_per_chunk_gives_the_same_answer(one_thread):
    generator = torch.Generator().manual_seed(1)
    for _ in range(20):
        boxes, scores = _random_case(generator)
        assert torch.equal(nms(boxes, scores, max_pairs=7).box_index, nms(boxes, scores).box_index)


def test_nms_on_double_boxes_equals_the_reference_too(one_thread):
    generator = torch.Generator().manual_seed(2)
    for _ in range(100):
        boxes, scores = _random_case(generator)
        fast, slow = nms(boxes.double(), scores), nms_reference(boxes.double(), scores)
        assert torch.equal(fast.box_index, slow.box_index) and torch.equal(fast.classes, slow.classes)


def test_nms_batch_equals_nms_image_by_image(one_thread):
    generator = torch.Generator().manual_seed(3)
    cases = [_random_case(generator) for _ in range(6)]
    k, c = max(b.shape[0] for b, _ in cases), max(s.shape[1] for _, s in cases)
    boxes, scores = torch.zeros(len(cases), k, 4), torch.zeros(len(cases), k, c)  # padded with non-candidates
    for i, (b, s) in enumerate(cases):
        boxes[i, : b.shape[0]], scores[i, : s.shape[0], : s.shape[1]] = b, s
    singles = [nms(boxes[i], scores[i]) for i in range(len(cases))]
    for batch, single in zip(nms_batch(boxes, scores), singles, strict=True):
        assert torch.equal(batch.box_index, single.box_index) and torch.equal(batch.classes, single.classes)
        assert torch.equal(batch.boxes, single.boxes) and torch.equal(batch.scores, single.scores)


def test_no_boxes_at_all_give_empty_detections():
    out = nms(torch.zeros(0, 4), torch.zeros(0, 80))
    assert len(out) == 0 and len(nms_reference(torch.zeros(0, 4), torch.zeros(0, 80))) == 0


def test_postprocess_goes_from_decoded_predictions_to_detections_per_image():
    boxes = torch.tensor([[[0.5, 0.5, 0.2, 0.2], [0.51, 0.5, 0.2, 0.2], [0.2, 0.2, 0.1, 0.1]]])  # centre form
    objectness = torch.tensor([[0.9, 0.8, 0.1]])
    class_probs = torch.tensor([[[1.0, 0.0], [0.9, 0.1], [0.5, 0.5]]])
    (out,) = postprocess(Detections(boxes, objectness, class_probs), thresh=0.5)
    # Box 1 (IoU 0.9 with box 0) is suppressed; box 2's objectness 0.1 is not above 0.5.
    assert out.box_index.tolist() == [0] and out.classes.tolist() == [0]
    torch.testing.assert_close(out.boxes, torch.tensor([[0.4, 0.4, 0.6, 0.6]]))  # corners, fractions
    torch.testing.assert_close(out.scores, torch.tensor([0.9]))


def test_nms_says_what_shapes_it_expected():
    with pytest.raises(ValueError, match=r"boxes must be \(K, 4\)"):
        nms(torch.zeros(3, 5), torch.zeros(3, 2))
    with pytest.raises(ValueError, match=r"scores must be \(K, C\)"):
        nms(torch.zeros(3, 4), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="objectness"):
        darknet_scores(torch.zeros(3), torch.zeros(4, 2), 0.5)
