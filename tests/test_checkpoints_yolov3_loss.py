"""Chapter 10's checkpoints pass correct answers written several ways and name the known mistakes."""

from __future__ import annotations

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
