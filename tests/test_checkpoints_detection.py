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


# --- The second learner trial: more right answers, more wrong ones ---------------------


def nms_darknet_zeroing(boxes, scores, iou_threshold=0.45):
    """Right, Darknet's style: sort each class, zero the scores of a copy as boxes are suppressed."""
    scores = scores.clone()
    kept = set()
    for c in range(scores.shape[1]):
        order = sorted(range(len(boxes)), key=lambda i: (-float(scores[i, c]), i))
        for rank, i in enumerate(order):
            if scores[i, c] <= 0:
                continue
            kept.add((i, c))
            for j in order[rank + 1:]:
                if iou(boxes[i].tolist(), boxes[j].tolist()) > iou_threshold:
                    scores[j, c] = 0
    return kept  # a set of pairs: the order is free


def nms_lists(boxes, scores, iou_threshold=0.45):
    """Right, numpy IoU, pairs as lists, classes walked from the last."""
    b = boxes.double().numpy()
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    kept = []
    for c in reversed(range(scores.shape[1])):
        column = scores[:, c].numpy()
        order = [int(i) for i in np.argsort(-column, kind="stable") if column[i] > 0]
        while order:
            i, *order = order
            kept.append([i, c])
            w = np.clip(np.minimum(b[i, 2], b[order, 2]) - np.maximum(b[i, 0], b[order, 0]), 0, None)
            h = np.clip(np.minimum(b[i, 3], b[order, 3]) - np.maximum(b[i, 1], b[order, 1]), 0, None)
            overlap = w * h / (area[i] + area[order] - w * h)
            order = [j for j, o in zip(order, overlap, strict=True) if not o > iou_threshold]
    return kept


def nms_wrong(boxes, scores, iou_threshold=0.45, *, overlap="iou", ascending=False, first_only=False,
              below=False, xxyy=False, centre_size=False, next_only=False, fixed_threshold=False,
              box_once=False, class_first=False, numpy_ints=False):
    """The second trial's wrong answers; the keywords make one mistake each."""
    threshold = 0.45 if fixed_threshold else iou_threshold
    b = boxes.double().tolist()
    if xxyy:  # read as x1, x2, y1, y2
        b = [[x1, y1, x2, y2] for x1, x2, y1, y2 in b]
    if centre_size:  # read as cx, cy, w, h
        b = [[cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2] for cx, cy, w, h in b]

    def measure(p, q):
        w, h = min(p[2], q[2]) - max(p[0], q[0]), min(p[3], q[3]) - max(p[1], q[1])
        area_p, area_q = (p[2] - p[0]) * (p[3] - p[1]), (q[2] - q[0]) * (q[3] - q[1])
        if overlap == "no clamp":
            return w * h / (area_p + area_q - w * h)
        w, h = max(w, 0.0), max(h, 0.0)
        if overlap == "plus one":
            w, h = max(min(p[2], q[2]) - max(p[0], q[0]) + 1, 0.0), max(min(p[3], q[3]) - max(p[1], q[1]) + 1, 0.0)
            area_p, area_q = (p[2] - p[0] + 1) * (p[3] - p[1] + 1), (q[2] - q[0] + 1) * (q[3] - q[1] + 1)
        union = {"iou": area_p + area_q - w * h, "plus one": area_p + area_q - w * h, "dice": area_p + area_q,
                 "min": min(area_p, area_q)}[overlap]
        return w * h / union

    kept, taken = [], set()
    for c in range(scores.shape[1]):
        ranked = sorted((i for i in range(len(b)) if scores[i, c] > 0 and not (box_once and i in taken)),
                        key=lambda i: (float(scores[i, c]) if ascending else -float(scores[i, c]), i))
        alive = [True] * len(ranked)
        for rank, i in enumerate(ranked):
            if not alive[rank]:
                continue
            kept.append((c, i) if class_first else (np.int64(i), c) if numpy_ints else (i, c))
            taken.add(i)
            if first_only:
                break
            for later in range(rank + 1, min(rank + 2, len(ranked)) if next_only else len(ranked)):
                value = measure(b[i], b[ranked[later]])
                if (value < threshold) if below else (value > threshold):
                    alive[later] = False
    return kept


@pytest.mark.parametrize("answer", [nms_darknet_zeroing, nms_lists], ids=["zeroing a copy, a set", "numpy, lists"])
def test_nms_check_passes_more_correct_answers_with_its_usual_output(answer, capsys):
    check_per_class_nms(answer)
    assert capsys.readouterr().out == (
        "the same (box, class) pairs as the reference on 302 random images ... ok\n"
        "ties, duplicate boxes, several classes, IoU exactly at the threshold ... ok\n")


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(overlap="dice"), "random images differ"),
        (dict(overlap="plus one"), "random images differ"),
        (dict(overlap="min"), "random images differ"),
        (dict(overlap="no clamp"), "random images differ"),
        (dict(ascending=True), "random images differ"),
        (dict(first_only=True), "random images differ"),
        (dict(below=True), "random images differ"),
        (dict(xxyy=True), "random images differ|raised ZeroDivisionError"),
        (dict(centre_size=True), "random images differ"),
        (dict(next_only=True), "random images differ"),
        (dict(fixed_threshold=True), "random images differ"),
        (dict(box_once=True), "random images differ"),
        (dict(class_first=True), r"is not a \(box index, class\)|random images differ"),
        (dict(numpy_ints=True), "Python ints.*numpy|Python ints.*int64"),
    ],
    ids=["overlap over the sum of areas", "pixel +1 areas", "overlap over the smaller area", "overlap not clamped",
         "ascending scores", "one box per class", "suppresses below the threshold", "boxes read x1 x2 y1 y2",
         "boxes read as centre and size", "only the next box suppressed", "threshold fixed at 0.45",
         "a box kept in one class only", "(class, box) pairs", "numpy int indices"],
)
def test_nms_check_fails_the_second_trials_wrong_answers(options, message):
    with pytest.raises(CheckpointError, match=message):
        check_per_class_nms(lambda b, s, iou_threshold=0.45: nms_wrong(b, s, iou_threshold, **options))


def ap_torch_envelope(scores, true_positive, num_ground_truth):
    """Right, torch: the envelope with a flipped cummax, the area as a sum over the hits."""
    if len(scores) == 0:
        return 0
    order = torch.sort(scores, descending=True, stable=True).indices
    hits = true_positive[order].double()
    tp = hits.cumsum(0)
    precision = tp / torch.arange(1, len(tp) + 1)
    envelope = precision.flip(0).cummax(0).values.flip(0)
    return float((envelope * hits).sum() / num_ground_truth)  # each hit adds 1/G of recall


def ap_numpy_float(scores, true_positive, num_ground_truth):
    """Right, returns a numpy float64 (a float subclass), the steps read where recall grows."""
    order = np.argsort(-scores.numpy(), kind="mergesort")
    tp = np.cumsum(true_positive.numpy()[order])
    precision = tp / np.arange(1, len(tp) + 1)
    recall = tp / num_ground_truth
    steps = np.diff(np.concatenate([[0.0], recall]))
    best = np.array([precision[k:].max() for k in range(len(precision))])
    return np.float64((steps * best).sum())


def ap_wrong(scores, true_positive, num_ground_truth, *, swap_pr=False, envelope="right", area="steps",
             percent=False, gt_minus_one=False, previous_stuck=False, final_only=False, empty="zero",
             recall_over_detections=False):
    """The second trial's wrong answers; the keywords make one mistake each."""
    if len(scores) == 0:
        if empty == "nan":
            return float("nan")
        return 0.0
    order = torch.sort(scores, descending=True, stable=True).indices
    tp = true_positive[order].double().cumsum(0)
    count = torch.arange(1, len(tp) + 1, dtype=torch.float64)
    precision = tp / count
    recall = tp / (len(tp) if recall_over_detections else num_ground_truth - (1 if gt_minus_one else 0) or 1)
    if swap_pr:
        precision, recall = recall, precision
    if final_only:
        return float(precision[-1] * recall[-1])
    if envelope == "left":
        precision = precision.cummax(0).values
    elif envelope == "none":
        pass
    elif envelope == "excluding":
        precision = torch.cat([precision[1:].flip(0).cummax(0).values.flip(0), precision.new_zeros(1)])
    else:
        precision = precision.flip(0).cummax(0).values.flip(0)
    if area == "trapezoid":
        value = float(torch.trapezoid(torch.cat([precision[:1], precision]), torch.cat([recall.new_zeros(1), recall])))
    else:
        total, previous = 0.0, 0.0
        for r, p in zip(recall.tolist(), precision.tolist(), strict=True):
            if r > previous:
                total += (r - (0.0 if previous_stuck else previous)) * p
                previous = r
        value = total
    return 100 * value if percent else value


def ap_trapezoid_on_envelope(scores, true_positive, num_ground_truth):
    """Right, though it looks wrong: on the envelope, trapezoids give the steps' area (the envelope only
    drops after a false positive, where recall does not move)."""
    return ap_wrong(scores, true_positive, num_ground_truth, area="trapezoid")


@pytest.mark.parametrize("answer", [ap_torch_envelope, ap_numpy_float, ap_trapezoid_on_envelope],
                         ids=["torch cummax", "numpy float64", "trapezoids on the envelope"])
def test_ap_check_passes_more_correct_answers_with_its_usual_output(answer, capsys):
    check_average_precision(answer)
    assert capsys.readouterr().out == (
        "the all-point AP of the reference on 27 cases ... ok\n"
        "a perfect class, no detections, duplicates and unsorted scores included ... ok\n")


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(recall_over_detections=True), "divides by the number of ground truths"),
        (dict(swap_pr=True), "cases differ.*expected AP"),
        (dict(envelope="left"), "cases differ.*expected AP"),
        (dict(envelope="excluding"), "cases differ.*expected AP"),
        (dict(envelope="none", area="trapezoid"), "cases differ.*expected AP"),
        (dict(percent=True), "cases differ.*expected AP"),
        (dict(gt_minus_one=True), "cases differ.*expected AP"),
        (dict(previous_stuck=True), "cases differ.*expected AP"),
        (dict(final_only=True), "cases differ.*expected AP"),
        (dict(empty="nan"), "cases differ.*expected AP"),
    ],
    ids=["recall over the detections", "precision and recall swapped", "envelope from the left",
         "envelope without the point itself", "trapezoids without the envelope", "a percentage",
         "one ground truth fewer",
         "every step from recall 0", "final precision times recall", "nan with no detections"],
)
def test_ap_check_fails_the_second_trials_wrong_answers(options, message):
    with pytest.raises(CheckpointError, match=message):
        check_average_precision(lambda s, t, g: ap_wrong(s, t, g, **options))


def test_ap_check_fails_an_answer_that_fails_on_no_detections():
    def max_of_empty(scores, true_positive, num_ground_truth):
        order = torch.sort(scores, descending=True, stable=True).indices
        tp = true_positive[order].double().cumsum(0)
        precision = tp / torch.arange(1, len(tp) + 1)
        return float(precision.max() * tp[-1] / num_ground_truth)  # max() of no detections raises

    with pytest.raises(CheckpointError, match="raised"):
        check_average_precision(max_of_empty)


def step_retain_graph(model, optimizer, images, boxes, counts, seen):
    """Right, another order: the loss read before backward, zero_grad without set_to_none, retain_graph."""
    optimizer.zero_grad(set_to_none=False)
    loss = region_loss(model(images), boxes, counts, model.anchors, model.num_classes, seen=seen).loss
    per_image = loss.div(images.size(0))
    value = per_image.detach().item()
    per_image.backward(retain_graph=True)
    optimizer.step()
    return value


def step_wrong(model, optimizer, images, boxes, counts, seen, *, zero_after_backward=False, step_first=False,
               eval_mode=False, per_object=False, seen_plus_batch=False, second_forward_after=False,
               clip=False, two_steps=False, no_grad_forward=False, scaled_images=False):
    """The second trial's wrong answers; the keywords make one mistake each."""
    if eval_mode:
        model.eval()
    if scaled_images:
        images = images * 255
    if no_grad_forward:
        with torch.no_grad():
            output = model(images)
    else:
        output = model(images)
    result = region_loss(output, boxes, counts, model.anchors, model.num_classes,
                         seen=seen + len(images) if seen_plus_batch else seen)
    loss = result.loss / (counts.sum() if per_object else len(images))
    if step_first:
        optimizer.step()
    optimizer.zero_grad()
    loss.backward()
    if zero_after_backward:
        optimizer.zero_grad()
    if clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    if two_steps:
        optimizer.step()
    if second_forward_after:  # "the loss after the step"
        return float(region_loss(model(images), boxes, counts, model.anchors, model.num_classes,
                                 seen=seen).loss / len(images))
    return loss.item()


def test_step_check_passes_another_correct_answer_with_its_usual_output(capsys):
    check_train_step(step_retain_graph)
    assert capsys.readouterr().out == (
        "the reference's parameters and BatchNorm statistics after 3 steps ... ok\n"
        "with AdamW and with SGD + momentum; the same loss per image returned ... ok\n")


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(zero_after_backward=True), "did not change.*the order is optimizer.zero_grad"),
        (dict(step_first=True), "parameters after 3 steps differ|raised RuntimeError"),
        (dict(eval_mode=True), "parameters after 3 steps differ|running statistics"),
        (dict(per_object=True), "parameters after 3 steps differ"),
        (dict(seen_plus_batch=True), "parameters after 3 steps differ"),
        (dict(second_forward_after=True), "running statistics"),
        (dict(clip=True), "parameters after 3 steps differ"),
        (dict(two_steps=True), "parameters after 3 steps differ"),
        (dict(no_grad_forward=True), "raised RuntimeError"),
        (dict(scaled_images=True), "parameters after 3 steps differ"),
    ],
    ids=["zero_grad between backward and step", "step before backward", "eval mode", "divided by the objects",
         "seen counted one batch ahead", "the loss after the step", "gradients clipped", "two steps",
         "forward under no_grad", "images scaled to 0-255"],
)
def test_step_check_fails_the_second_trials_wrong_answers(options, message):
    with pytest.raises(CheckpointError, match=message):
        check_train_step(lambda *args: step_wrong(*args, **options))
