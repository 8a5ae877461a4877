"""Chapter 10's checkpoints pass correct answers written several ways and name the known mistakes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from yolo_lessons.checkpoints.common import CheckpointError
from yolo_lessons.checkpoints.yolov3_loss import (
    _obj_cases,
    check_assign_scale,
    check_objectness_loss,
    learner_inputs,
    objectness_formula,
    reference_objectness,
)

# --- Exercise 1: which head, anchor and cell ------------------------------------------


def assign_loop(box, anchors, masks, image_size, grid_sizes, *, pixels=True, clamp=True, rounding=False,
                slot=False, reverse=False, swap=False, per_head=False, columns_first=False):
    """A learner's answer with loops; the keywords make the known mistakes."""
    cx, cy, w, h = box
    best, best_iou = 0, -1.0
    for n, (aw, ah) in enumerate(anchors):
        if pixels:
            aw, ah = aw / image_size, ah / image_size
        inter = min(w, aw) * min(h, ah)
        iou = inter / (w * h + aw * ah - inter)
        if iou > best_iou:
            best, best_iou = n, iou
    head = next(s for s, mask in enumerate(masks) if best in mask)
    if per_head:  # "the best anchor within each head", then the head of the first mask: always head 0
        head = 0
        best = max(masks[0], key=lambda n: min(w, anchors[n][0] / image_size) * min(h, anchors[n][1] / image_size))
    gh, gw = grid_sizes[head][::-1] if columns_first else grid_sizes[head]
    col, row = (round(cx * gw), round(cy * gh)) if rounding else (int(cx * gw), int(cy * gh))
    if clamp:
        col, row = min(col, gw - 1), min(row, gh - 1)
    anchor = masks[head].index(best) if slot else best
    if reverse:
        head = len(masks) - 1 - head
    if swap:
        row, col = col, row
    return head, anchor, row, col


def assign_torch(box, anchors, masks, image_size, grid_sizes):
    """Correct, written with tensors and argmax, converted to plain ints at the end."""
    a = torch.tensor(anchors, dtype=torch.float64) / image_size
    wh = torch.tensor(box[2:], dtype=torch.float64)
    inter = torch.minimum(a, wh).prod(1)
    best = int((inter / (a.prod(1) + wh.prod() - inter)).argmax())
    head = [best in m for m in masks].index(True)
    gh, gw = grid_sizes[head]
    return head, best, min(int(box[1] * gh), gh - 1), min(int(box[0] * gw), gw - 1)


def test_assign_scale_accepts_correct_answers_written_two_ways(capsys):
    check_assign_scale(assign_loop)
    check_assign_scale(assign_torch)
    assert "114 boxes at 128 and 416 px" in capsys.readouterr().out  # 60 + 40 + 12 on wide grids, 2 on the edges


@pytest.mark.parametrize(
    ("switches", "message"),
    [
        ({"pixels": False}, "divide the anchors by image_size"),
        ({"clamp": False}, "last cell"),
        ({"rounding": True}, "rounds down"),
        ({"slot": True}, "index among all nine anchors"),
        ({"reverse": True}, "order of masks"),
        ({"swap": True}, "swapped"),
        ({"per_head": True}, "expected \\(head, anchor, row, column\\)"),
        ({"columns_first": True}, "each grid size is \\(rows, columns\\)"),
    ],
)
def test_assign_scale_names_the_known_mistakes(switches, message):
    with pytest.raises(CheckpointError, match=message):
        check_assign_scale(lambda *args: assign_loop(*args, **switches))


def test_assign_scale_wants_plain_ints():
    with pytest.raises(CheckpointError, match="plain Python int"):
        check_assign_scale(lambda *args: tuple(torch.tensor(v) for v in assign_torch(*args)))


# --- Exercise 2: the objectness loss with the ignore rule -------------------------------


def objectness_loop(obj_logits, pred_boxes, truths, assignment, head, ignore_thresh=0.7):
    """Correct, with a loop over the truths, Darknet's centre-based IoU and torch's BCE."""
    best = torch.zeros_like(obj_logits)
    px, py, pw, ph = pred_boxes.unbind(-1)  # (A, H, W) each
    for tx, ty, tw, th in truths.tolist():
        ox = (px + pw / 2).clamp(max=tx + tw / 2) - (px - pw / 2).clamp(min=tx - tw / 2)
        oy = (py + ph / 2).clamp(max=ty + th / 2) - (py - ph / 2).clamp(min=ty - th / 2)
        inter = ox.clamp(min=0) * oy.clamp(min=0)
        best = torch.maximum(best, inter / (pw * ph + tw * th - inter))
    target = torch.zeros_like(obj_logits)
    weight = (best <= ignore_thresh).to(obj_logits)  # 1 where the no-object term applies
    for s, r, c, k in zip(assignment.slot, assignment.row, assignment.col, assignment.scale, strict=True):
        if int(k) == head:
            target[s, r, c], weight[s, r, c] = 1.0, 1.0
    return F.binary_cross_entropy_with_logits(obj_logits, target, weight=weight, reduction="sum")


def objectness_vectorised(obj_logits, pred_boxes, truths, assignment, head, ignore_thresh=0.7):
    """Correct, vectorised, with any switches passed to the formula of the checkpoint module."""
    return objectness_formula(obj_logits, pred_boxes, truths, assignment, head, ignore_thresh)


def test_the_formula_equals_yolo_loss_obj_plus_noobj_on_every_case():
    for outputs, truths, anchors, grids, image_size, thresh in _obj_cases():
        for head in range(3):
            inputs = learner_inputs(outputs, truths, anchors, grids, image_size, head)
            expected, _ = reference_objectness(outputs, truths, anchors, grids, image_size, thresh, head)
            assert torch.allclose(objectness_formula(*inputs, head, thresh), expected, rtol=1e-10)


def test_the_cases_exercise_every_mistake():
    # each known mistake changes the value on at least one head of one case, or naming it could not work
    switches = [{"strict": False}, {"all_truths": False}, {"positive_wins": False},
                {"positives_also_negative": True}, {"mean": True}, {"squared": True}, {"per_truth": True}]
    for switch in switches:
        differs = False
        for outputs, truths, anchors, grids, image_size, thresh in _obj_cases():
            for head in range(3):
                inputs = learner_inputs(outputs, truths, anchors, grids, image_size, head)
                right = objectness_formula(*inputs, head, thresh)
                differs |= not torch.allclose(objectness_formula(*inputs, head, thresh, **switch), right)
        assert differs, switch


def test_objectness_accepts_correct_answers_written_two_ways(capsys):
    check_objectness_loss(objectness_vectorised)
    check_objectness_loss(objectness_loop)
    assert "an IoU of exactly ignore_thresh is not ignored ... ok" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("switches", "message"),
    [
        ({"strict": False}, "strictly greater"),
        ({"all_truths": False}, "also those that another head trains"),
        ({"positive_wins": False}, "pass 2 overwrites"),
        ({"positives_also_negative": True}, "only the term toward 1"),
        ({"mean": True}, "do not average"),
        ({"squared": True}, "not a squared error"),
        ({"per_truth": True}, "train it once"),
    ],
)
def test_objectness_names_the_known_mistakes(switches, message):
    def wrong(*args):
        return objectness_formula(*args, **switches)

    with pytest.raises(CheckpointError, match=message):
        check_objectness_loss(wrong)


def objectness_per_truth_loop(obj_logits, pred_boxes, truths, assignment, head, ignore_thresh=0.7):
    """The trial's answer: the no-object terms right, then one term toward 1 per assigned truth."""
    base = objectness_loop(obj_logits, pred_boxes, truths, assignment, head, ignore_thresh)
    here = [(int(s), int(r), int(c)) for s, r, c, k in
            zip(assignment.slot, assignment.row, assignment.col, assignment.scale, strict=True) if int(k) == head]
    extra = sum(F.softplus(-obj_logits[cell]) for cell in here[len(set(here)):]) if len(set(here)) < len(here) else 0
    return base + extra


def test_a_prediction_shared_by_two_truths_counted_twice_is_named():
    with pytest.raises(CheckpointError, match="train it once"):
        check_objectness_loss(objectness_per_truth_loop)


def test_objectness_unknown_mistake_says_expected_and_got():
    with pytest.raises(CheckpointError, match="expected .*, got"):
        check_objectness_loss(lambda *args: 1.01 * objectness_formula(*args))


def test_objectness_detached_result_is_refused():
    with pytest.raises(CheckpointError, match="differentiable"):
        check_objectness_loss(lambda *args: objectness_formula(*args).detach())


# --- The second learner trial: more right answers, more wrong ones ---------------------


def assign_pixels(box, anchors, masks, image_size, grid_sizes):
    """Right, another unit: the box in pixels compared with the anchors in pixels, math.floor, a clamped centre."""
    import math

    cx, cy = min(box[0], 1 - 1e-9), min(box[1], 1 - 1e-9)
    w, h = box[2] * image_size, box[3] * image_size
    ious = [min(w, aw) * min(h, ah) / (w * h + aw * ah - min(w, aw) * min(h, ah)) for aw, ah in anchors]
    best = ious.index(max(ious))
    head = [n for n, mask in enumerate(masks) if best in list(mask)][0]
    rows, columns = grid_sizes[head]
    return head, best, math.floor(cy * rows), math.floor(cx * columns)


def assign_scale_wrong(box, anchors, masks, image_size, grid_sizes, *, head_rule="masks", iou_swapped=False,
                       stride_units=False, clamp_limit=1, box_hw=False, over_larger=False, fixed_strides=False,
                       numpy_ints=False):
    """The second trial's wrong answers; the keywords make one mistake each."""
    cx, cy, w, h = box
    if box_hw:
        w, h = h, w
    scores = []
    for aw, ah in anchors:
        if iou_swapped:
            aw, ah = ah, aw
        scale = image_size / grid_sizes[0][1] if stride_units else image_size  # anchors in cells of head 0
        aw, ah = aw / scale, ah / scale
        inter = min(w, aw) * min(h, ah)
        scores.append(inter / (max(w * h, aw * ah) if over_larger else w * h + aw * ah - inter))
    best = int(np.argmax(scores))
    if head_rule == "masks":
        head = next(s for s, mask in enumerate(masks) if best in mask)
    elif head_rule == "2 - best // 3":  # YOLOv3's masks hard-coded
        head = 2 - best // 3
    else:  # "best // 3": the smallest anchors on head 0
        head = best // 3
    rows, columns = grid_sizes[head]
    if fixed_strides:
        rows = columns = image_size // (32, 16, 8)[head]
    row = min(int(cy * rows), rows - clamp_limit)
    column = min(int(cx * columns), columns - clamp_limit)
    if numpy_ints:
        return head, np.int64(best), row, column
    return head, best, row, column


def test_assign_scale_passes_another_correct_answer_with_its_usual_output(capsys):
    check_assign_scale(assign_pixels)
    assert capsys.readouterr().out == (
        "114 boxes at 128 and 416 px: head, anchor of all nine, row and column ... ok\n"
        "grids wider than tall: rows from cy and H, columns from cx and W ... ok\n"
        "centres on the right and bottom edges land in the last cell ... ok\n")


@pytest.mark.parametrize(
    ("switches", "message"),
    [
        ({"head_rule": "2 - best // 3"}, "order of masks|use masks"),
        ({"head_rule": "best // 3"}, "order of masks"),
        ({"iou_swapped": True}, r"expected \(head, anchor, row, column\)"),
        ({"stride_units": True}, r"expected \(head, anchor, row, column\)"),
        ({"clamp_limit": 0}, "last cell"),
        ({"box_hw": True}, r"expected \(head, anchor, row, column\)"),
        ({"over_larger": True}, r"expected \(head, anchor, row, column\)"),
        ({"fixed_strides": True}, r"expected \(head, anchor, row, column\)"),
        ({"numpy_ints": True}, "plain Python int"),
    ],
    ids=["YOLOv3's masks hard-coded", "smallest anchors on head 0", "anchor w and h swapped", "anchors in cells",
         "clamped to W, not W - 1", "box read (w, h) as (h, w)", "overlap over the larger area",
         "grids from fixed strides", "numpy anchor index"],
)
def test_assign_scale_fails_the_second_trials_wrong_answers(switches, message):
    with pytest.raises(CheckpointError, match=message):
        check_assign_scale(lambda *args: assign_scale_wrong(*args, **switches))


def _best_iou(pred_boxes, truths, *, corners_given=False, union="iou", reduce="max"):
    """Each prediction's IoU with the truths (A, H, W), the boxes (cx, cy, w, h) unless corners_given."""
    p = pred_boxes.reshape(-1, 4)
    pc = p if corners_given else torch.cat([p[:, :2] - p[:, 2:] / 2, p[:, :2] + p[:, 2:] / 2], 1)
    tc = torch.cat([truths[:, :2] - truths[:, 2:] / 2, truths[:, :2] + truths[:, 2:] / 2], 1)
    inter = (torch.minimum(pc[:, None, 2:], tc[None, :, 2:]) - torch.maximum(pc[:, None, :2], tc[None, :, :2]))
    inter = inter.clamp(min=0).prod(-1)
    pa, ta = (pc[:, 2:] - pc[:, :2]).prod(-1)[:, None], truths[:, 2:].prod(-1)[None]
    iou = inter / (pa + ta if union == "sum" else pa + ta - inter)
    best = iou.amax(1) if reduce == "max" else iou.mean(1)
    return best.reshape(pred_boxes.shape[:-1])


def objectness_probabilities(obj_logits, pred_boxes, truths, assignment, head, ignore_thresh=0.7):
    """Right, another style: BCE on the sigmoid's probabilities, positives by a mask built in a loop."""
    best = _best_iou(pred_boxes, truths)
    target = torch.zeros_like(obj_logits)
    for k in (assignment.scale == head).nonzero()[:, 0].tolist():
        target[assignment.slot[k], assignment.row[k], assignment.col[k]] = 1
    trained = (target == 1) | ~(best > ignore_thresh)
    p = torch.sigmoid(obj_logits)
    return F.binary_cross_entropy(p[trained], target[trained], reduction="sum")


def objectness_wrong(obj_logits, pred_boxes, truths, assignment, head, ignore_thresh=0.7, *, sign=1,
                     any_head=False, row_col_swapped=False, anchor_not_slot=False, fixed_thresh=False,
                     union="iou", corners_given=False, corners_in_place=False, inverted=False, reduce="max",
                     no_sigmoid=False, float32=False):
    """The second trial's wrong answers; the keywords make one mistake each."""
    if corners_in_place:  # turns the caller's boxes into corners, then computes right
        pred_boxes[..., :2] -= pred_boxes[..., 2:] / 2
        pred_boxes[..., 2:] += pred_boxes[..., :2]
        corners_given = True
    threshold = 0.7 if fixed_thresh else ignore_thresh
    best = _best_iou(pred_boxes, truths, corners_given=corners_given, union=union, reduce=reduce)
    here = torch.ones_like(assignment.scale, dtype=torch.bool) if any_head else assignment.scale == head
    slot = (assignment.anchor if anchor_not_slot else assignment.slot)[here]
    row, col = assignment.row[here], assignment.col[here]
    if row_col_swapped:
        row, col = col, row
    positive = torch.zeros_like(obj_logits, dtype=torch.bool)
    a, h, w = positive.shape
    keep = (slot < a) & (row < h) & (col < w)
    positive[slot[keep], row[keep], col[keep]] = True
    ignored = best < threshold if inverted else best > threshold
    weight = (positive | ~ignored).to(obj_logits)
    logits = obj_logits.float() if float32 else obj_logits
    if no_sigmoid:
        loss = -(positive * torch.log(logits.clamp(min=1e-12)) + ~positive * torch.log((1 - logits).clamp(min=1e-12)))
        return sign * (weight * loss).sum()
    loss = F.binary_cross_entropy_with_logits(logits, positive.to(logits), weight=weight.to(logits), reduction="sum")
    return sign * loss


@pytest.mark.parametrize("fn", [objectness_probabilities, lambda *args: objectness_wrong(*args, float32=True)],
                         ids=["BCE on probabilities", "computed in float32 (no dtype is promised)"])
def test_objectness_passes_more_correct_answers_with_its_usual_output(fn, capsys):
    check_objectness_loss(fn)
    assert capsys.readouterr().out == (
        "48 heads of 16 images: value equals yolo_loss's obj + noobj ... ok\n"
        "gradient equals yolo_loss's: sigmoid - target wherever it trains ... ok\n"
        "an IoU of exactly ignore_thresh is not ignored ... ok\n")


@pytest.mark.parametrize(
    ("switches", "message"),
    [
        ({"sign": -1}, "expected .*, got"),
        ({"any_head": True}, "expected .*, got"),
        ({"row_col_swapped": True}, "expected .*, got"),
        ({"anchor_not_slot": True}, "expected .*, got"),
        ({"fixed_thresh": True}, "expected .*, got"),
        ({"union": "sum"}, "expected .*, got"),
        ({"corners_given": True}, "expected .*, got"),
        ({"corners_in_place": True}, "changed pred_boxes in place"),
        ({"inverted": True}, "expected .*, got"),
        ({"reduce": "mean"}, "expected .*, got"),
        ({"no_sigmoid": True}, "expected .*, got"),
    ],
    ids=["sign flipped", "positives of every head", "row and column swapped", "anchor index for the slot",
         "ignore_thresh fixed at 0.7", "overlap over the sum of areas", "boxes read as corners",
         "boxes made corners in place", "ignores below the threshold", "mean IoU over the truths",
         "BCE without the sigmoid"],
)
def test_objectness_fails_the_second_trials_wrong_answers(switches, message):
    def wrong(*args):
        return objectness_wrong(*args, **switches)

    with pytest.raises(CheckpointError, match=message):
        check_objectness_loss(wrong)
