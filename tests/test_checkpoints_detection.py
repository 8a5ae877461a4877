"""Chapter 8's checkpoints pass correct answers written several ways and name the known mistakes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from yolo_lessons.checkpoints.common import CheckpointError
from yolo_lessons.checkpoints.detection import (
    ap_cases,
    check_average_precision,
    check_per_class_nms,
    check_train_step,
    nms_cases,
)
from yolo_lessons.losses.region_loss import region_loss

# --- Exercise 1: greedy per-class NMS ------------------------------------------------------


def iou(a, b):
    w = max(min(a[2], b[2]) - max(a[0], b[0]), 0.0)
    h = max(min(a[3], b[3]) - max(a[1], b[1]), 0.0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union if union > 0 else 0.0


def nms_loop(boxes, scores, iou_threshold=0.45, per_class=True, compare=lambda x, t: x > t,
             ties_reversed=False, zeros=False, suppressed_suppress=False):
    """A learner's loop; the keywords make the known mistakes."""
    boxes, scores = boxes.tolist(), scores.tolist()
    classes = range(len(scores[0])) if scores else range(0)
    candidates = [(i, c) for c in classes for i in range(len(boxes)) if zeros or scores[i][c] > 0]
    groups = [[p for p in candidates if p[1] == c] for c in classes] if per_class else [candidates]
    kept = []
    for group in groups:
        group.sort(key=lambda p: (-scores[p[0]][p[1]], -p[0] if ties_reversed else p[0]))
        removed = set()
        for rank, (i, c) in enumerate(group):
            if rank in removed and not suppressed_suppress:
                continue
            if rank not in removed:
                kept.append((i, c))
            for later in range(rank + 1, len(group)):
                if compare(iou(boxes[i], boxes[group[later][0]]), iou_threshold):
                    removed.add(later)
    return kept


def nms_torch(boxes, scores, iou_threshold=0.45):
    """Per class with a float64 IoU matrix and a keep mask; pairs listed class by class, newest first."""
    boxes = boxes.double()
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    lt = torch.maximum(boxes[:, None, :2], boxes[None, :, :2])
    rb = torch.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    union = area[:, None] + area[None, :] - inter
    matrix = torch.where(union > 0, inter / union.clamp(min=1e-300), torch.zeros_like(union))
    kept = []
    for c in range(scores.shape[1]):
        idx = (scores[:, c] > 0).nonzero()[:, 0]
        order = idx[torch.sort(scores[idx, c], descending=True, stable=True).indices]
        alive = torch.ones(len(order), dtype=torch.bool)
        for r in range(len(order)):
            if alive[r]:
                kept.append((int(order[r]), c))
                alive[r + 1:] &= ~(matrix[order[r], order[r + 1:]] > iou_threshold)
    return kept[::-1]


@pytest.mark.parametrize("answer", [nms_loop, nms_torch], ids=["python loop", "torch per class"])
def test_nms_check_passes_correct_answers(answer, capsys):
    check_per_class_nms(answer)
    assert "ok" in capsys.readouterr().out


def test_nms_cases_hold_ties_duplicates_and_the_exact_threshold():
    cases = nms_cases()
    assert len(cases) == 302  # 300 random images + 2 hand-made ones at IoU exactly 0.5
    assert any(len(s) and len(s.flatten().unique()) < s.numel() for _, s, _ in cases)  # ties
    assert any(len(b) > 3 and torch.equal(b[0], b[1]) for b, _, _ in cases)  # a duplicated box


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(per_class=False), "across classes"),
        (dict(compare=lambda x, t: x >= t), "IoU > threshold, strictly"),
        (dict(suppressed_suppress=True), "already suppressed"),
        (dict(ties_reversed=True), "lower box index first"),
        (dict(zeros=True), "score is 0 is not a candidate"),
    ],
    ids=["across classes", ">= instead of >", "suppressed boxes suppress", "ties reversed", "zeros kept"],
)
def test_nms_check_names_known_mistakes(options, message):
    with pytest.raises(CheckpointError, match=message):
        check_per_class_nms(lambda b, s, iou_threshold=0.45: nms_loop(b, s, iou_threshold, **options))


def test_nms_check_reports_an_unknown_mistake_with_the_expected_pairs():
    with pytest.raises(CheckpointError, match=r"random images differ from the reference.*expected"):
        check_per_class_nms(lambda b, s, iou_threshold=0.45: nms_loop(b, s, 0.3))


def test_nms_check_wants_python_int_pairs():
    def tensors(boxes, scores, iou_threshold=0.45):
        return [(torch.tensor(i), c) for i, c in nms_loop(boxes, scores, iou_threshold)]

    with pytest.raises(CheckpointError, match="Python ints.*tensor"):
        check_per_class_nms(tensors)
    with pytest.raises(CheckpointError, match="a tensor"):
        check_per_class_nms(lambda b, s, iou_threshold=0.45: torch.zeros(0, 2))


def test_nms_check_says_a_stub_is_not_implemented():
    def stub(boxes, scores, iou_threshold=0.45):
        raise NotImplementedError("sort each class by score")

    with pytest.raises(CheckpointError, match="not implemented yet: sort each class"):
        check_per_class_nms(stub)


def test_nms_check_ignores_what_the_answer_prints(capsys):
    def chatty(boxes, scores, iou_threshold=0.45):
        print("kept", len(boxes))
        return nms_loop(boxes, scores, iou_threshold)

    check_per_class_nms(chatty)
    assert "shown, not graded" in capsys.readouterr().out


# --- Exercise 2: all-point AP ----------------------------------------------------------------


def ap_numpy(scores, true_positive, num_ground_truth):
    """VOC's voc_ap written with numpy: envelope from the right, sum where recall changes."""
    order = np.argsort(-scores.numpy(), kind="stable")
    hits = true_positive.numpy()[order].astype(float)
    tp = np.cumsum(hits)
    recall = np.concatenate([[0.0], tp / num_ground_truth, [1.0]])
    precision = np.concatenate([[0.0], tp / np.arange(1, len(hits) + 1), [0.0]])
    for i in range(len(precision) - 2, -1, -1):
        precision[i] = max(precision[i], precision[i + 1])
    change = np.nonzero(recall[1:] != recall[:-1])[0]
    return float(np.sum((recall[change + 1] - recall[change]) * precision[change + 1]))


def ap_walk(scores, true_positive, num_ground_truth):
    """The same area added up from the best precision at each new recall, in plain Python."""
    pairs = sorted(zip(scores.tolist(), true_positive.tolist(), strict=True), key=lambda p: -p[0])
    points, hits = [], 0
    for n, (_, hit) in enumerate(pairs, start=1):
        hits += hit
        points.append((hits / num_ground_truth, hits / n))
    area, previous = 0.0, 0.0
    for recall, _ in points:
        if recall > previous:
            area += (recall - previous) * max(p for r, p in points if r >= recall)
            previous = recall
    return area


def ap_eleven(scores, true_positive, num_ground_truth):
    order = np.argsort(-scores.numpy(), kind="stable")
    tp = np.cumsum(true_positive.numpy()[order])
    recall, precision = tp / num_ground_truth, tp / np.arange(1, len(tp) + 1)
    return float(np.mean([precision[recall >= t].max() if (recall >= t).any() else 0.0
                          for t in np.linspace(0, 1, 11)]))


def ap_no_envelope(scores, true_positive, num_ground_truth):
    order = np.argsort(-scores.numpy(), kind="stable")
    tp = np.cumsum(true_positive.numpy()[order])
    recall, precision = tp / num_ground_truth, tp / np.arange(1, len(tp) + 1)
    return float(np.sum(np.diff(np.concatenate([[0.0], recall])) * precision))


def ap_ties_reversed(scores, true_positive, num_ground_truth):
    """Descending, but ties last-first: what reversing an ascending stable sort gives."""
    order = np.argsort(scores.numpy(), kind="stable")[::-1].copy()
    return ap_numpy(-torch.arange(len(scores), dtype=torch.float32), true_positive[order], num_ground_truth)


def ap_unsorted(scores, true_positive, num_ground_truth):
    return ap_numpy(-torch.arange(len(scores), dtype=torch.float32), true_positive, num_ground_truth)


@pytest.mark.parametrize("answer", [ap_numpy, ap_walk], ids=["numpy voc_ap", "python walk"])
def test_ap_check_passes_correct_answers(answer, capsys):
    check_average_precision(answer)
    assert "ok" in capsys.readouterr().out


def test_ap_cases_start_with_hand_computed_values():
    cases = ap_cases()
    assert ap_numpy(*cases[0]) == 1.0  # every detection a hit, every object found
    assert ap_numpy(*cases[1]) == pytest.approx(0.5 + 2 / 3 * 0.5)  # recall 1/2 at precision 1, 1 at 2/3
    assert ap_numpy(*cases[2]) == 0.0  # no detections
    assert ap_numpy(*cases[5]) == 0.0  # only false positives


@pytest.mark.parametrize(
    "answer, message",
    [
        (ap_eleven, "11-point"),
        (ap_no_envelope, "non-increasing"),
        (ap_unsorted, "not sorted"),
        (lambda s, t, g: ap_numpy(-s, t, g), "ascending"),
        (ap_ties_reversed, "equal scores came out in the opposite order"),
    ],
    ids=["11-point", "no envelope", "unsorted", "ascending", "ties reversed"],
)
def test_ap_check_names_known_mistakes(answer, message):
    with pytest.raises(CheckpointError, match=message):
        check_average_precision(answer)


def test_ap_check_wants_a_python_float():
    with pytest.raises(CheckpointError, match="Python float.*tensor"):
        check_average_precision(lambda s, t, g: torch.tensor(ap_numpy(s, t, g)))


def test_ap_check_reports_an_unknown_mistake_with_numbers():
    with pytest.raises(CheckpointError, match="expected AP"):
        check_average_precision(lambda s, t, g: 0.5 * ap_numpy(s, t, g))


# --- Exercise 3: one training step --------------------------------------------------------------


def step_book(model, optimizer, images, boxes, counts, seen):
    result = region_loss(model(images), boxes, counts, model.anchors, model.num_classes, seen=seen)
    loss = result.loss / len(images)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def step_other_order(model, optimizer, images, boxes, counts, seen):
    """zero_grad first, through the model with set_to_none, the loss as a mean over the batch."""
    model.zero_grad(set_to_none=True)
    model.train()
    out = model(images)
    loss = region_loss(out, boxes, counts, model.anchors, model.num_classes, seen=seen).loss
    (loss / images.shape[0]).backward()
    optimizer.step()
    return float(loss) / images.shape[0]


def step_with(zero_grad=True, per_image=True, forwards=1, returned="per image"):
    def step(model, optimizer, images, boxes, counts, seen):
        for _ in range(forwards - 1):
            model(images)  # an extra forward pass "to look at the output"
        result = region_loss(model(images), boxes, counts, model.anchors, model.num_classes, seen=seen)
        loss = result.loss / len(images) if per_image else result.loss
        if zero_grad:
            optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if returned == "tensor":
            return loss
        return result.loss.item() if returned == "sum" else loss.item()

    return step


@pytest.mark.parametrize("answer", [step_book, step_other_order], ids=["book", "other order"])
def test_step_check_passes_correct_answers(answer, capsys):
    check_train_step(answer)
    assert "ok" in capsys.readouterr().out


@pytest.mark.parametrize(
    "answer, message",
    [
        (step_with(zero_grad=False), "zero_grad"),
        (step_with(per_image=False), "summed over the batch"),
        (step_with(forwards=2), "running statistics"),
        (step_with(returned="sum"), "returned loss is the batch's sum"),
        (step_with(returned="tensor"), "Python float.*loss.item"),
        (lambda m, o, i, b, c, s: 0.0, "did not change"),
        (lambda m, o, i, b, c, s: step_book(m, o, i, b, c, 0), "stays on after 12,800 images"),
    ],
    ids=["no zero_grad", "summed loss", "two forwards", "returns the sum", "returns a tensor", "no step",
         "ignores seen"],
)
def test_step_check_names_known_mistakes(answer, message):
    with pytest.raises(CheckpointError, match=message):
        check_train_step(answer)


def test_step_check_leaves_the_global_random_state_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    check_train_step(step_book)
    assert torch.equal(torch.rand(3), expected)
