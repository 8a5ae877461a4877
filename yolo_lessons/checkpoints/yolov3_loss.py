"""Checks behind chapter 10's checkpoint cells (YOLOv3's loss across three scales).

* ``check_assign_scale(fn)``: the head, anchor and cell a ground truth is trained at
  (pass 2 of Darknet's ``forward_yolo_layer``), against ``yolo_loss.assign_yolo_targets``.
* ``check_objectness_loss(fn)``: the objectness part of one head's loss with the ignore rule,
  value and gradient against ``yolo_loss.yolo_loss``'s "obj" + "noobj" parts.

Each check runs the learner's code on many inputs and compares with the reference; only when
the answer differs does it try the known wrong answers, to name the mistake.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..detection.decode import box_corners, decode_yolov3
from ..detection.metrics import box_iou
from ..losses.yolo_loss import assign_yolo_targets, yolo_loss
from ..models.yolov3 import ANCHOR_MASKS, COCO_ANCHORS
from .common import CheckpointError, call, checkpoint, expect, integer_problem

BOOK_ANCHORS = ((5, 6), (9, 8), (12, 16), (20, 14), (22, 26), (36, 28), (32, 46), (52, 50), (72, 70))  # 128 px
BOOK_GRIDS = ((4, 4), (8, 8), (16, 16))  # strides 32, 16, 8 at 128 px
COCO_GRIDS = ((13, 13), (26, 26), (52, 52))  # at 416 px
WIDE_GRIDS = ((4, 6), (8, 12), (16, 24))  # (rows, columns): a grid wider than tall tells H from W

# --- Exercise 1: which head, anchor and cell ------------------------------------------


def _random_boxes(count: int, image_size: int, low: float, high: float, seed: int) -> list[tuple]:
    """``count`` boxes (cx, cy, w, h), fractions; sides log-uniform in [low, high] pixels."""
    g = torch.Generator().manual_seed(seed)
    side = torch.exp(torch.empty(count).uniform_(float(torch.tensor(low).log()), float(torch.tensor(high).log()),
                                                 generator=g))
    aspect = torch.exp(torch.empty(count).uniform_(-0.7, 0.7, generator=g))
    w, h = (side * aspect.sqrt()).clamp(max=image_size), (side / aspect.sqrt()).clamp(max=image_size)
    centre = torch.rand(count, 2, generator=g)
    return [(float(cx), float(cy), float(bw) / image_size, float(bh) / image_size)
            for (cx, cy), bw, bh in zip(centre.tolist(), w.tolist(), h.tolist(), strict=True)]


def _assign_cases() -> list[tuple]:
    """(box, anchors, masks, image_size, grids): the book's 128-px model and YOLOv3 at 416."""
    book = _random_boxes(60, 128, 3, 90, 0)
    cases = [(b, BOOK_ANCHORS, ANCHOR_MASKS, 128, BOOK_GRIDS) for b in book[:40]]
    # the same nine anchors listed largest first, the masks numbering them so: the head comes from masks
    cases += [(b, BOOK_ANCHORS[::-1], ((0, 1, 2), (3, 4, 5), (6, 7, 8)), 128, BOOK_GRIDS) for b in book[40:]]
    cases += [(b, COCO_ANCHORS, ANCHOR_MASKS, 416, COCO_GRIDS) for b in _random_boxes(40, 416, 8, 400, 1)]
    # on the right and bottom edges: Darknet's column would be W, off the grid; the last cell holds them
    cases += [(b, BOOK_ANCHORS, ANCHOR_MASKS, 128, WIDE_GRIDS) for b in _random_boxes(12, 128, 3, 90, 2)]
    cases += [((1.0, 0.3, 0.05, 0.05), BOOK_ANCHORS, ANCHOR_MASKS, 128, BOOK_GRIDS),
              ((0.5, 1.0, 0.5, 0.45), COCO_ANCHORS, ANCHOR_MASKS, 416, COCO_GRIDS)]
    return cases


def reference_assign(box, anchors, masks, image_size, grids) -> tuple[int, int, int, int]:
    """(head, anchor, row, column) from ``assign_yolo_targets``, as plain ints."""
    truths = torch.tensor([[[0.0, *box]]], dtype=torch.float64)
    a = assign_yolo_targets(truths, [1], torch.tensor(anchors, dtype=torch.float64), masks, image_size, grids)
    return int(a.scale[0]), int(a.anchor[0]), int(a.row[0]), int(a.col[0])


def _variant_assign(box, anchors, masks, image_size, grids, *, pixels=True, clamp=True, rounding=False,
                    columns_first=False):
    """The assignment with a known mistake switched on."""
    cx, cy, w, h = box
    best, best_iou = 0, -1.0
    for n, (aw, ah) in enumerate(anchors):
        aw, ah = (aw / image_size, ah / image_size) if pixels else (aw, ah)
        inter = min(w, aw) * min(h, ah)
        iou = inter / (w * h + aw * ah - inter)
        if iou > best_iou:
            best, best_iou = n, iou
    head = next(s for s, mask in enumerate(masks) if best in mask)
    gh, gw = grids[head][::-1] if columns_first else grids[head]
    col, row = (round(cx * gw), round(cy * gh)) if rounding else (int(cx * gw), int(cy * gh))
    if clamp:
        col, row = min(col, gw - 1), min(row, gh - 1)
    return head, best, row, col


_ASSIGN_MISTAKES = (
    ({"pixels": False}, "the anchors are in pixels of the input and the box in fractions of the image: divide "
     "the anchors by image_size before comparing shapes"),
    ({"clamp": False}, "a centre on the right or bottom edge (cx or cy = 1.0) gives column W (or row H), off the "
     "grid: put it in the last cell"),
    ({"rounding": True}, "the cell is the one holding the centre: int(cx * W) rounds down, round() does not"),
    ({"columns_first": True}, "each grid size is (rows, columns), (H, W) as a tensor's shape: the column is "
     "int(cx * W) with W the second number"),
)


def _unpack(got) -> tuple:
    try:
        head, anchor, row, column = got
    except (TypeError, ValueError):
        raise CheckpointError(f"expected a tuple (head, anchor, row, column), got {got!r}") from None
    return head, anchor, row, column


@checkpoint
def check_assign_scale(assign_scale: Callable) -> None:
    """Check ``assign_scale(box, anchors, masks, image_size, grid_sizes) -> (head, anchor, row, column)``."""
    cases = _assign_cases()
    answers = []
    for case in cases:
        got = _unpack(call(assign_scale, *case))
        for name, value in zip(("head", "anchor", "row", "column"), got, strict=True):
            problem = integer_problem(value)
            expect(not problem, f"the {name} must be a plain Python int (wrap it in int(...)): {problem}")
        answers.append(got)
    expected = [reference_assign(*case) for case in cases]
    wrong = [i for i, (g, e) in enumerate(zip(answers, expected, strict=True)) if g != e]
    if wrong:
        for switches, mistake in _ASSIGN_MISTAKES:
            if all(answers[i] == _variant_assign(*cases[i], **switches) for i in wrong):
                raise CheckpointError(mistake)
        if all(answers[i][0] == len(cases[i][2]) - 1 - expected[i][0] for i in wrong):
            raise CheckpointError("heads are numbered in the order of masks: the head is the one whose mask holds "
                                  "the best anchor (here 0 is the stride-32 head, the largest anchors, the last one "
                                  "stride 8)")
        if all(answers[i][1] == cases[i][2][expected[i][0]].index(expected[i][1]) for i in wrong):
            raise CheckpointError("the anchor is its index among all nine anchors (0-8), not its place inside "
                                  "the head's mask")
        if all(answers[i][2:] == expected[i][2:][::-1] for i in wrong):
            raise CheckpointError("row and column are swapped: the row comes from cy, the column from cx")
        i = wrong[0]
        box, _, _, image_size, _ = cases[i]
        raise CheckpointError(
            f"for the box (cx, cy, w, h) = {tuple(round(v, 4) for v in box)} at {image_size} px: expected "
            f"(head, anchor, row, column) = {expected[i]}, got {answers[i]} ({len(wrong)} of {len(cases)} boxes differ)"
        )
    print(f"{len(cases)} boxes at 128 and 416 px: head, anchor of all nine, row and column ... ok")
    print("grids wider than tall: rows from cy and H, columns from cx and W ... ok")
    print("centres on the right and bottom edges land in the last cell ... ok")


# --- Exercise 2: the objectness loss with the ignore rule -------------------------------


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.softplus(logits) - target * logits


def objectness_formula(
    obj_logits, pred_boxes, truths, assignment, head, ignore_thresh, *,
    strict=True, all_truths=True, positive_wins=True, positives_also_negative=False, mean=False, squared=False,
    per_truth=False,
):
    """One head's "obj" + "noobj", written out; the keywords switch on the known mistakes."""
    here = assignment.scale == head
    positive = torch.zeros_like(obj_logits, dtype=torch.bool)
    positive[assignment.slot[here], assignment.row[here], assignment.col[here]] = True
    used = truths if all_truths else truths[assignment.truth[here]]
    if len(used):
        iou = box_iou(box_corners(pred_boxes.reshape(-1, 4)), box_corners(used)).amax(dim=1).reshape(positive.shape)
    else:
        iou = torch.zeros_like(obj_logits)
    ignored = iou > ignore_thresh if strict else iou >= ignore_thresh
    if squared:
        p = torch.sigmoid(obj_logits)
        to_one, to_zero = (1 - p) ** 2 / 2, p**2 / 2
    else:
        to_one, to_zero = _bce(obj_logits, 1.0), _bce(obj_logits, 0.0)
    trained_one = positive & ~ignored if not positive_wins else positive
    trained_zero = ~ignored & (~positive | positives_also_negative)
    total = torch.where(trained_one, to_one, 0.0).sum() + torch.where(trained_zero, to_zero, 0.0).sum()
    if per_truth:  # a prediction that two truths share counted once per truth
        slots, rows, cols = assignment.slot[here], assignment.row[here], assignment.col[here]
        cells = list(zip(slots.tolist(), rows.tolist(), cols.tolist(), strict=True))
        for cell in set(cells):
            total = total + (cells.count(cell) - 1) * to_one[cell]
    return total / obj_logits.numel() if mean else total


_OBJ_MISTAKES = (
    ({"strict": False}, "a prediction is ignored when its IoU is strictly greater than ignore_thresh (Darknet's "
     "`best_iou > l.ignore_thresh`), not greater or equal"),
    ({"all_truths": False}, "the ignore rule compares each prediction with every ground truth of the image, "
     "also those that another head trains"),
    ({"positive_wins": False}, "a positive is trained toward 1 even when its box overlaps a truth above "
     "ignore_thresh (pass 2 overwrites pass 1's ignore): only non-positives are ignored"),
    ({"positives_also_negative": True}, "a positive gets only the term toward 1, not the no-object term as well"),
    ({"mean": True}, "sum the loss over the predictions, do not average: Darknet sums its deltas"),
    ({"squared": True}, "YOLOv3's objectness is binary cross-entropy on the logit (gradient sigmoid - target), "
     "not a squared error as in YOLOv2"),
    ({"per_truth": True}, "two truths assigned to one prediction train it once (the later one overwrites the "
     "earlier, as Darknet writes its delta), not once per truth"),
)


def _obj_case(seed: int, ignore_thresh: float, anchors=BOOK_ANCHORS, grids=BOOK_GRIDS, image_size: int = 128):
    """Raw outputs of three heads for one image whose predictions near each truth copy it roughly."""
    g = torch.Generator().manual_seed(seed)
    c = 3
    count = int(torch.randint(1, 6, (1,), generator=g))
    side = torch.exp(torch.empty(count, 2).uniform_(-3.3, -0.6, generator=g))  # 4 % to 55 % of the image
    truths = torch.cat([torch.randint(0, c, (count, 1), generator=g).double(),
                        torch.rand(count, 2, generator=g, dtype=torch.float64), side.double()], dim=1)
    outputs = []
    for (h, w), mask in zip(grids, ANCHOR_MASKS, strict=True):
        out = 0.5 * torch.randn(1, len(mask), 5 + c, h, w, generator=g, dtype=torch.float64)
        for _, cx, cy, bw, bh in truths.tolist():
            col, row = min(int(cx * w), w - 1), min(int(cy * h), h - 1)
            for slot, n in enumerate(mask):  # every anchor of that cell predicts the truth, with noise
                aw, ah = anchors[n]
                noise = 0.3 * torch.randn(4, generator=g, dtype=torch.float64)
                offset = torch.tensor([cx * w - col, cy * h - row]).clamp(0.05, 0.95)
                out[0, slot, 0:2, row, col] = torch.logit(offset.double()) + noise[:2]
                out[0, slot, 2, row, col] = torch.log(torch.tensor(bw * image_size / aw)) + noise[2]
                out[0, slot, 3, row, col] = torch.log(torch.tensor(bh * image_size / ah)) + noise[3]
        outputs.append(out.reshape(1, -1, h, w))
    return outputs, truths, anchors, grids, image_size, ignore_thresh


def _exact_threshold_case():
    """A prediction whose box overlaps a truth (of another anchor) by an IoU of exactly 0.5."""
    anchors = ((4, 4), (6, 6), (8, 8), (12, 12), (16, 16), (24, 24), (32, 32), (64, 32), (64, 64))
    g = torch.Generator().manual_seed(99)
    outputs = [0.5 * torch.randn(1, 24, h, w, generator=g, dtype=torch.float64) for h, w in BOOK_GRIDS]
    # head 0, slot 2 (anchor 64 x 64), cell (1, 1): tx = ty = tw = th = 0 decode to cx = cy = 0.375,
    # w = h = 0.5; the truth 0.5 x 0.25 at the same centre overlaps it by 0.125 / 0.25 = 0.5 exactly
    out = outputs[0].reshape(1, 3, 8, 4, 4)
    out[0, 2, 0:4, 1, 1] = 0.0
    truths = torch.tensor([[1, 0.375, 0.375, 0.5, 0.25]], dtype=torch.float64)
    return outputs, truths, anchors, BOOK_GRIDS, 128, 0.5


def _shared_prediction_case():
    """Two truths of nearly the same box in one cell: both pick the same anchor of the same head."""
    outputs, _, anchors, grids, image_size, thresh = _obj_case(7, 0.7)
    truths = torch.tensor([[0, 0.30, 0.30, 0.20, 0.22], [2, 0.31, 0.31, 0.21, 0.21]], dtype=torch.float64)
    return outputs, truths, anchors, grids, image_size, thresh


def _obj_cases() -> list[tuple]:
    cases = [_exact_threshold_case(), _shared_prediction_case()]
    cases += [_obj_case(seed, thresh) for seed, thresh in zip(range(12), (0.7, 0.5) * 6, strict=True)]
    cases += [_obj_case(100 + seed, 0.7, COCO_ANCHORS, COCO_GRIDS, 416) for seed in range(2)]
    return cases


def learner_inputs(outputs, truths, anchors, grids, image_size, head: int):
    """What the learner's function receives for one head: logits, decoded boxes, truths, assignment."""
    mask = ANCHOR_MASKS[head]
    h, w = grids[head]
    out = outputs[head].reshape(len(mask), -1, h, w)  # (A, 5 + C, H, W)
    obj_logits = out[:, 4].detach().clone()  # (A, H, W)
    with torch.no_grad():
        boxes = decode_yolov3([outputs[head].detach()], torch.tensor(anchors), (mask,), image_size).boxes
    pred_boxes = boxes.reshape(len(mask), h, w, 4).double()  # (A, H, W, 4) cx, cy, w, h fractions
    assignment = assign_yolo_targets(truths[None], [len(truths)], torch.tensor(anchors, dtype=torch.float64),
                                     ANCHOR_MASKS, image_size, grids)
    return obj_logits, pred_boxes, truths[:, 1:].clone(), assignment


def reference_objectness(outputs, truths, anchors, grids, image_size, ignore_thresh, head: int):
    """("obj" + "noobj" of ``head``, its gradient w.r.t. the head's objectness logits (A, H, W))."""
    leaves = [o.detach().clone().requires_grad_(True) for o in outputs]
    result = yolo_loss(leaves, truths[None], [len(truths)], torch.tensor(anchors, dtype=torch.float64),
                       ANCHOR_MASKS, 3, image_size, ignore_thresh=ignore_thresh)
    value = result.scale_parts[head]["obj"] + result.scale_parts[head]["noobj"]
    (grad,) = torch.autograd.grad(value, leaves[head])
    h, w = grids[head]
    return value.detach(), grad.reshape(len(ANCHOR_MASKS[head]), -1, h, w)[:, 4]


def _same_mistake_everywhere(objectness_loss: Callable, switches: dict, learner_values: dict) -> bool:
    """Does the learner's loss equal the mistake's on every head of every case where the mistake changes the
    value? (One head alone can be explained by several mistakes: a wrong IoU that ignores nothing, say.)"""
    for number, (outputs, truths, anchors, grids, image_size, thresh) in enumerate(_obj_cases()):
        for head in range(len(grids)):
            inputs = learner_inputs(outputs, truths, anchors, grids, image_size, head)
            wrong = objectness_formula(*inputs, head, thresh, **switches)
            if torch.allclose(wrong, objectness_formula(*inputs, head, thresh), rtol=1e-6, atol=1e-9):
                continue
            if (number, head) not in learner_values:
                obj_logits, pred_boxes, truth_boxes, assignment = inputs
                try:
                    with torch.no_grad():
                        value = call(objectness_loss, obj_logits.clone(), pred_boxes.clone(), truth_boxes.clone(),
                                     assignment, head, thresh)
                except CheckpointError:
                    value = None
                learner_values[number, head] = value
            value = learner_values[number, head]
            if not (isinstance(value, torch.Tensor) and value.dim() == 0
                    and torch.allclose(value.detach().double(), wrong, rtol=1e-6, atol=1e-9)):
                return False
    return True


@checkpoint
def check_objectness_loss(objectness_loss: Callable) -> None:
    """Check ``objectness_loss(obj_logits, pred_boxes, truths, assignment, head, ignore_thresh) -> scalar``."""
    checked = 0
    for case in _obj_cases():
        outputs, truths, anchors, grids, image_size, thresh = case
        for head in range(len(grids)):
            obj_logits, pred_boxes, truth_boxes, assignment = learner_inputs(outputs, truths, anchors, grids,
                                                                             image_size, head)
            leaf = obj_logits.clone().requires_grad_(True)
            given = (pred_boxes.clone(), truth_boxes.clone())
            got = call(objectness_loss, leaf, *given, assignment, head, thresh)
            for name, before, after in (("pred_boxes", pred_boxes, given[0]), ("truths", truth_boxes, given[1]),
                                        ("obj_logits", obj_logits, leaf.detach())):
                expect(torch.equal(before, after), f"objectness_loss changed {name} in place: compute the loss "
                       "without writing into its inputs (make new tensors, e.g. for the corners)")
            expect(isinstance(got, torch.Tensor) and got.dim() == 0, f"expected a scalar tensor, got {got!r}")
            expected, expected_grad = reference_objectness(outputs, truths, anchors, grids, image_size, thresh, head)
            where = f"(head {head}, {len(truths)} truth(s), ignore_thresh={thresh})"
            if not torch.allclose(got.detach().double(), expected, rtol=1e-6, atol=1e-9):
                learner_values: dict = {}
                for switches, mistake in _OBJ_MISTAKES:
                    wrong = objectness_formula(obj_logits, pred_boxes, truth_boxes, assignment, head, thresh,
                                               **switches)
                    if torch.allclose(got.detach().double(), wrong, rtol=1e-6, atol=1e-9) and _same_mistake_everywhere(
                            objectness_loss, switches, learner_values):
                        raise CheckpointError(f"{mistake} {where}")
                raise CheckpointError(f"{where}: expected {expected.item():.6f}, got {got.item():.6f}")
            expect(got.requires_grad, f"the loss must stay differentiable with respect to obj_logits {where}")
            (grad,) = torch.autograd.grad(got, leaf)
            expect(torch.allclose(grad.double(), expected_grad, rtol=1e-6, atol=1e-9),
                   f"the gradient with respect to obj_logits differs from yolo_loss's {where}")
            checked += 1
    print(f"{checked} heads of {len(_obj_cases())} images: value equals yolo_loss's obj + noobj ... ok")
    print("gradient equals yolo_loss's: sigmoid - target wherever it trains ... ok")
    print("an IoU of exactly ignore_thresh is not ignored ... ok")
