"""Checks behind chapter 8's checkpoint cells (NMS, average precision, one training step).

* ``check_per_class_nms(fn)``: greedy per-class NMS as Darknet's ``do_nms_sort`` runs it,
  compared with ``nms.nms_reference`` on hundreds of random images (ties, duplicate boxes,
  several classes, IoU exactly at the threshold).
* ``check_average_precision(fn)``: one class's VOC all-point AP from detections already
  marked true or false positive, compared with ``metrics.ap_all_points``.
* ``check_train_step(fn)``: forward, loss per image, zero_grad, backward, optimizer step,
  compared with the same step of ``yolo_lessons.train`` from the same state.

Each check first compares behaviour with the reference on many inputs; only when the
answer differs does it try the known wrong answers, and it names one only when the
learner's answers equal that wrong answer on every input where the reference differs.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from ..data.shapes import SHAPE_CLASSES, collate, make_image
from ..detection.metrics import VOC_SCRIPT_RECALLS, ap_11_points, ap_all_points, precision_recall
from ..detection.nms import nms_reference
from ..losses.region_loss import PRIOR_IMAGES, region_loss
from ..models.small_yolov2 import small_yolov2
from .common import CheckpointError, call, expect, integer_problem

# --- Exercise 1: greedy per-class NMS ----------------------------------------------------

Pairs = list[tuple[int, int]]  # (box index, class), sorted


def _iou(a: list[float], b: list[float]) -> float:
    overlap_w = max(min(a[2], b[2]) - max(a[0], b[0]), 0.0)
    overlap_h = max(min(a[3], b[3]) - max(a[1], b[1]), 0.0)
    intersection = overlap_w * overlap_h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - intersection
    return intersection / union if union > 0 else 0.0


def _variant_nms(
    boxes: Tensor, scores: Tensor, threshold: float, *, per_class: bool = True, at_least: bool = False,
    suppressed_suppress: bool = False, ties_reversed: bool = False, zeros_are_candidates: bool = False,
) -> Pairs:
    """Greedy NMS with one known mistake switched on (all off: the reference's answer)."""
    box_list, rows = boxes.double().tolist(), scores.tolist()
    num_boxes, num_classes = scores.shape
    candidates = [
        (i, c) for c in range(num_classes) for i in range(num_boxes) if zeros_are_candidates or rows[i][c] > 0
    ]
    groups = [[p for p in candidates if p[1] == c] for c in range(num_classes)] if per_class else [candidates]
    kept = []
    for group in groups:
        tie = (lambda p: -p[0]) if ties_reversed else (lambda p: p[0])
        group.sort(key=lambda p: (-rows[p[0]][p[1]], tie(p)))
        alive = [True] * len(group)
        for rank, (i, c) in enumerate(group):
            if alive[rank]:
                kept.append((i, c))
            elif not suppressed_suppress:
                continue  # the reference: a suppressed box suppresses nothing
            for later in range(rank + 1, len(group)):
                iou = _iou(box_list[i], box_list[group[later][0]])
                if iou >= threshold if at_least else iou > threshold:
                    alive[later] = False
    return sorted(kept)


def _reference_pairs(boxes: Tensor, scores: Tensor, threshold: float) -> Pairs:
    result = nms_reference(boxes, scores, threshold)
    return sorted(zip(result.box_index.tolist(), result.classes.tolist(), strict=True))


def nms_cases(count: int = 300, seed: int = 0) -> list[tuple[Tensor, Tensor, float]]:
    """(boxes (K, 4) corners, scores (K, C), IoU threshold) of random images for NMS.

    Boxes gather around a few centres so that they overlap; scores are rounded to a few
    levels (ties), some pairs score 0 (not candidates), some boxes are exact copies of
    others, the threshold is 0.45 in most and 0.3 or 0.6 in the others, and the last cases
    have pairs whose IoU is exactly the threshold.
    """
    generator = torch.Generator().manual_seed(seed)
    cases = []
    for n in range(count):
        k = int(torch.randint(0, 25, (), generator=generator))
        c = int(torch.randint(1, 5, (), generator=generator))
        centres = torch.rand(3, 2, generator=generator) * 80
        which = torch.randint(0, 3, (k,), generator=generator)
        centre = centres[which] + torch.randn(k, 2, generator=generator) * 4  # (K, 2) pixels
        size = 10 + torch.rand(k, 2, generator=generator) * 20
        boxes = torch.cat([centre - size / 2, centre + size / 2], dim=1)  # (K, 4) x1, y1, x2, y2
        if k > 3 and n % 4 == 0:
            boxes[1] = boxes[0]  # a duplicate box
        levels = 2 + n % 5  # few distinct scores: ties
        scores = torch.randint(0, levels + 1, (k, c), generator=generator).float() / levels  # 0 = not a candidate
        cases.append((boxes, scores, {1: 0.3, 3: 0.6}.get(n % 5, 0.45)))  # mostly Darknet's 0.45: not a constant
    # IoU exactly 0.5 (a 4 x 2 box inside a 4 x 4 one): decided by > against >=.
    square = torch.tensor([[0.0, 0.0, 4.0, 4.0], [0.0, 0.0, 4.0, 2.0], [10.0, 10.0, 14.0, 14.0],
                           [10.0, 12.0, 14.0, 14.0]])
    cases.append((square, torch.tensor([[0.9, 0.0], [0.8, 0.3], [0.0, 0.6], [0.5, 0.6]]), 0.5))
    cases.append((square[:2], torch.tensor([[0.7], [0.7]]), 0.5))  # a tie at exactly the threshold
    return cases


def _learner_pairs(got, num_boxes: int, num_classes: int) -> Pairs:
    if isinstance(got, Tensor):
        raise CheckpointError(
            "expected a list of (box index, class) pairs of Python ints, got a tensor: build the list "
            "with int(...) or .item()"
        )
    try:
        pairs = [tuple(p) for p in got]
    except TypeError:
        raise CheckpointError(f"expected a list of (box index, class) pairs, got {got!r}") from None
    for pair in pairs:
        expect(len(pair) == 2, f"expected (box index, class) pairs, got {pair!r}")
        for value in pair:
            problem = integer_problem(value)
            expect(not problem, f"box indices and classes must be Python ints: {problem}")
        expect(
            0 <= pair[0] < num_boxes and 0 <= pair[1] < num_classes,
            f"the pair {pair} is not a (box index, class) of {num_boxes} boxes and {num_classes} classes",
        )
    expect(len(set(pairs)) == len(pairs), f"a (box index, class) pair is listed twice: {sorted(pairs)}")
    return sorted(pairs)


_NMS_MISTAKES = (  # (the switch of _variant_nms, the message)
    (dict(per_class=False), "NMS ran across classes: a box of one class suppressed a box of another. "
     "Run it per class (do_nms_sort), so that a box may survive in several classes"),
    (dict(at_least=True), "a box was suppressed at an IoU equal to the threshold: suppress only when "
     "IoU > threshold, strictly"),
    (dict(suppressed_suppress=True), "a box that was already suppressed still suppressed others: only a "
     "box that is kept suppresses the boxes below it"),
    (dict(ties_reversed=True), "among equal scores, rank the lower box index first (a stable sort)"),
    (dict(zeros_are_candidates=True), "a (box, class) pair whose score is 0 is not a candidate: keep only "
     "pairs with a score above 0"),
)


def check_per_class_nms(per_class_nms: Callable) -> None:
    """Check ``per_class_nms(boxes, scores, iou_threshold=0.45) -> [(box index, class), ...]``."""
    cases = nms_cases()
    wrong = []  # (case index, learner's pairs)
    for n, (boxes, scores, threshold) in enumerate(cases):
        got = call(per_class_nms, boxes.clone(), scores.clone(), iou_threshold=threshold)
        pairs = _learner_pairs(got, *scores.shape)
        if pairs != _reference_pairs(boxes, scores, threshold):
            wrong.append((n, pairs))
    if wrong:
        for options, message in _NMS_MISTAKES:
            if all(pairs == _variant_nms(*cases[n], **options) for n, pairs in wrong):
                raise CheckpointError(message)
        n, pairs = wrong[0]
        boxes, scores, threshold = cases[n]
        raise CheckpointError(
            f"{len(wrong)} of {len(cases)} random images differ from the reference. The first has "
            f"{scores.shape[0]} boxes and {scores.shape[1]} class(es), IoU threshold {threshold}: expected "
            f"the (box, class) pairs {_reference_pairs(boxes, scores, threshold)}, got {pairs}"
        )
    print(f"the same (box, class) pairs as the reference on {len(cases)} random images ... ok")
    print("ties, duplicate boxes, several classes, IoU exactly at the threshold ... ok")


# --- Exercise 2: all-point average precision of one class ----------------------------------


def _sorted_flags(scores: Tensor, true_positive: Tensor) -> Tensor:
    order = torch.sort(scores, descending=True, stable=True).indices
    return true_positive[order]


def _ap_reference(scores: Tensor, true_positive: Tensor, num_ground_truth: int) -> float:
    precision, recall = precision_recall(_sorted_flags(scores, true_positive), num_ground_truth)
    return ap_all_points(precision, recall)


def _ap_11(scores: Tensor, true_positive: Tensor, num_ground_truth: int) -> float:
    precision, recall = precision_recall(_sorted_flags(scores, true_positive), num_ground_truth)
    return ap_11_points(precision, recall)


def _ap_11_script(scores: Tensor, true_positive: Tensor, num_ground_truth: int) -> float:
    """11 points as np.arange(0, 1.1, 0.1) makes them (0.30000000000000004, ...), like voc_ap."""
    precision, recall = precision_recall(_sorted_flags(scores, true_positive), num_ground_truth)
    return ap_11_points(precision, recall, VOC_SCRIPT_RECALLS)


def _ap_no_envelope(scores: Tensor, true_positive: Tensor, num_ground_truth: int) -> float:
    precision, recall = precision_recall(_sorted_flags(scores, true_positive), num_ground_truth)
    previous = torch.cat([recall.new_zeros(1), recall[:-1]])
    return float(((recall - previous) * precision).sum())


def _ap_unsorted(scores: Tensor, true_positive: Tensor, num_ground_truth: int) -> float:
    precision, recall = precision_recall(true_positive, num_ground_truth)
    return ap_all_points(precision, recall)


def _ap_ascending(scores: Tensor, true_positive: Tensor, num_ground_truth: int) -> float:
    order = torch.sort(scores, stable=True).indices
    precision, recall = precision_recall(true_positive[order], num_ground_truth)
    return ap_all_points(precision, recall)


def _ap_ties_reversed(scores: Tensor, true_positive: Tensor, num_ground_truth: int) -> float:
    """Descending scores, but equal scores in the opposite order (a sort that is not stable)."""
    order = sorted(range(len(scores)), key=lambda i: (-float(scores[i]), -i))
    precision, recall = precision_recall(true_positive[order], num_ground_truth)
    return ap_all_points(precision, recall)


def _ap_recall_over_detections(scores: Tensor, true_positive: Tensor, num_ground_truth: int) -> float:
    flags = _sorted_flags(scores, true_positive)
    precision, _ = precision_recall(flags, num_ground_truth)
    recall = flags.double().cumsum(0) / max(flags.shape[0], 1)
    return ap_all_points(precision, recall)


ELEVEN_POINT_MESSAGE = "this is VOC2007's 11-point AP; the exercise asks for the all-point area (VOC2010 and later)"
_AP_MISTAKES = (
    (_ap_11, ELEVEN_POINT_MESSAGE),
    (_ap_11_script, ELEVEN_POINT_MESSAGE),
    (_ap_no_envelope, "the precision was not made non-increasing first: replace each precision by the "
     "best precision at that recall or any higher recall, then add up the areas"),
    (_ap_unsorted, "the detections were not sorted: walk them in descending score order"),
    (_ap_ties_reversed, "equal scores came out in the opposite order: keep them in their given order "
     "(a stable sort, e.g. torch.sort(..., stable=True)), as the exercise asks"),
    (_ap_ascending, "the detections were walked in ascending score order: sort by descending score"),
    (_ap_recall_over_detections, "recall divides by the number of ground truths of the class, not by the "
     "number of detections"),
)


def ap_cases() -> list[tuple[Tensor, Tensor, int]]:
    """(scores (D,), true_positive (D,) bool, ground truths) of one class, hand-made and random."""
    def case(scores, flags, num_ground_truth):
        return torch.tensor(scores, dtype=torch.float32), torch.tensor(flags, dtype=torch.bool), num_ground_truth

    cases = [
        case([0.9, 0.8, 0.7], [True, True, True], 3),  # perfect: 1.0
        case([0.9, 0.8, 0.7, 0.6], [True, False, True, False], 2),  # 1 * 1/2 + 2/3 * 1/2
        case([], [], 4),  # no detections: 0.0
        case([0.3, 0.95, 0.6, 0.8], [False, True, True, False], 5),  # out of order, some objects never found
        case([0.9, 0.85, 0.84, 0.5], [True, False, False, True], 2),  # duplicates of one object: false positives
        case([0.2, 0.1], [False, False], 1),  # only false positives: 0.0
        case([0.9, 0.7, 0.7, 0.6], [True, False, True, False], 3),  # a tie between a miss and a hit: order matters
    ]
    generator = torch.Generator().manual_seed(8)
    for _ in range(20):
        d = int(torch.randint(1, 30, (), generator=generator))
        flags = torch.rand(d, generator=generator) < 0.6
        cases.append((torch.rand(d, generator=generator), flags, int(flags.sum()) + int(
            torch.randint(0, 4, (), generator=generator)) or 1))
    return cases


def check_average_precision(average_precision: Callable) -> None:
    """Check ``average_precision(scores, true_positive, num_ground_truth) -> float`` (all-point AP)."""
    cases = ap_cases()
    wrong = []  # (case index, learner's AP)
    for n, (scores, flags, num_ground_truth) in enumerate(cases):
        got = call(average_precision, scores.clone(), flags.clone(), num_ground_truth)
        if isinstance(got, Tensor) or not isinstance(got, (float, int)) or isinstance(got, bool):
            raise CheckpointError(
                f"expected a Python float, got {got!r}" + (" (a tensor: use float(...))" if isinstance(got, Tensor)
                                                          else "")
            )
        expected = _ap_reference(scores, flags, num_ground_truth)
        if not math.isclose(got, expected, rel_tol=1e-6, abs_tol=1e-9):
            wrong.append((n, float(got)))
    if wrong:
        for variant, message in _AP_MISTAKES:
            if all(math.isclose(got, variant(*cases[n]), rel_tol=1e-6, abs_tol=1e-9) for n, got in wrong):
                raise CheckpointError(message)
        n, got = wrong[0]
        scores, flags, num_ground_truth = cases[n]
        raise CheckpointError(
            f"{len(wrong)} of {len(cases)} cases differ. Scores {[round(s, 3) for s in scores.tolist()]}, "
            f"true positives {flags.tolist()}, {num_ground_truth} ground truth(s): expected AP "
            f"{_ap_reference(scores, flags, num_ground_truth):.6f}, got {got:.6f}"
        )
    print(f"the all-point AP of the reference on {len(cases)} cases ... ok")
    print("a perfect class, no detections, duplicates and unsorted scores included ... ok")


# --- Exercise 3: one training step ----------------------------------------------------------

STEP_WIDTH = 4  # a small_yolov2 this narrow steps in milliseconds
STEP_SIZE = 64  # pixels: a 4 x 4 grid
STEP_BATCH = 4


def step_batches(count: int = 3, seed: int = 5) -> list[tuple[Tensor, Tensor, Tensor]]:
    """``count`` batches of ``STEP_BATCH`` synthetic images (images, boxes, counts), as ``collate`` makes them."""
    batches = []
    for b in range(count):
        items = [make_image(b * STEP_BATCH + i, seed, STEP_SIZE) for i in range(STEP_BATCH)]
        batches.append(collate([(torch.from_numpy(x), torch.from_numpy(y)) for x, y in items]))
    return batches


def reference_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, images: Tensor, boxes: Tensor, counts: Tensor, seen: int,
    *, per_image: bool = True, zero_grad: bool = True, ignore_seen: bool = False,
) -> float:
    """One step of ``yolo_lessons.train``: the region loss per image, zero_grad, backward, step.

    The keywords switch on known mistakes (a loss summed over the batch, no zero_grad).
    """
    seen = 0 if ignore_seen else seen
    result = region_loss(model(images), boxes, counts, model.anchors, model.num_classes, seen=seen)
    loss = result.loss / images.shape[0] if per_image else result.loss
    if zero_grad:
        optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return float(loss.detach())


OPTIMIZERS = ("AdamW (the book's recipe)", "SGD with momentum")
# The images seen after each of the three steps: the first two inside Darknet's anchor-matching
# phase (seen < 12,800: the loss pulls every box toward its anchor), the third past it.
STEP_SEEN = (STEP_BATCH, PRIOR_IMAGES - STEP_BATCH, PRIOR_IMAGES)


def _optimizer(kind: int, model: nn.Module) -> torch.optim.Optimizer:
    if kind == 0:
        return torch.optim.AdamW(model.parameters(), lr=4e-3, weight_decay=0.01)  # train.py's optimizer
    return torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)  # here a summed loss changes the step


def _run_steps(step: Callable, kind: int, batches, learner: bool) -> tuple[nn.Module, list]:
    """A fresh seeded model and optimizer ``kind``, stepped by ``step`` on every batch."""
    with torch.random.fork_rng():  # seeded weights without moving the notebook's random state
        torch.manual_seed(3)
        model = small_yolov2(len(SHAPE_CLASSES), width=STEP_WIDTH).train()
    optimizer = _optimizer(kind, model)
    losses = []
    for n, (images, boxes, counts) in enumerate(batches):
        seen = STEP_SEEN[n]
        if learner:
            losses.append(call(step, model, optimizer, images.clone(), boxes.clone(), counts.clone(), seen))
        else:
            losses.append(step(model, optimizer, images, boxes, counts, seen))
    return model, losses


def _same_state(a: nn.Module, b: nn.Module, buffers: bool) -> bool:
    pairs = zip(a.parameters(), b.parameters(), strict=True) if not buffers else zip(
        a.buffers(), b.buffers(), strict=True)
    return all(torch.allclose(x.float(), y.float(), rtol=1e-5, atol=1e-7) for x, y in pairs)


def check_train_step(train_step: Callable) -> None:
    """Check ``train_step(model, optimizer, images, boxes, counts, seen) -> float`` (the loss per image).

    Runs on one thread (restored after): a model this small gains nothing from more, and
    on a busy machine waiting threads make every step many times slower.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _check_train_step(train_step)
    finally:
        torch.set_num_threads(threads)


def _check_train_step(train_step: Callable) -> None:
    batches = step_batches()
    for kind, name in enumerate(OPTIMIZERS):
        model, losses = _run_steps(train_step, kind, batches, learner=True)
        expected_model, expected_losses = _run_steps(reference_step, kind, batches, learner=False)
        for loss in losses:
            if isinstance(loss, Tensor) or not isinstance(loss, (float, int)) or isinstance(loss, bool):
                raise CheckpointError(
                    f"expected the step's loss as a Python float, got {loss!r}"
                    + (": use loss.item() (a tensor would keep the graph alive)" if isinstance(loss, Tensor) else "")
                )
        params_ok = _same_state(model, expected_model, buffers=False)
        buffers_ok = _same_state(model, expected_model, buffers=True)
        losses_ok = all(math.isclose(g, e, rel_tol=1e-5) for g, e in zip(losses, expected_losses, strict=True))
        if params_ok and buffers_ok and losses_ok:
            continue
        if not params_ok:
            for options, message in (
                (dict(zero_grad=False), "the gradients of one step were added to the next: call "
                 "optimizer.zero_grad() (or model.zero_grad()) before loss.backward()"),
                (dict(per_image=False), "the loss was summed over the batch: divide it by the number of "
                 "images, so that the step size does not depend on the batch size"),
                (dict(ignore_seen=True), "the anchor-matching term stays on after 12,800 images: pass seen to "
                 "region_loss, which stops that term once seen reaches prior_images"),
            ):
                variant, _ = _run_steps(lambda *a, o=options: reference_step(*a, **o), kind, batches, learner=False)
                if _same_state(model, variant, buffers=False):
                    raise CheckpointError(message)
            unchanged = _run_steps(lambda *a: 0.0, kind, batches, learner=False)[0]
            if _same_state(model, unchanged, buffers=False):
                raise CheckpointError("the parameters did not change: optimizer.step() was not called or found no "
                                      "gradients; the order is optimizer.zero_grad(), loss.backward(), "
                                      "optimizer.step()")
            raise CheckpointError(
                f"with {name}, the parameters after {len(batches)} steps differ from the reference's, "
                "taken from the same weights on the same images: forward, the region loss divided by the "
                "number of images, zero_grad, backward, step"
            )
        if not buffers_ok:
            raise CheckpointError(
                "the parameters match but BatchNorm's running statistics do not: run the model on the "
                "batch exactly once per step, in training mode"
            )
        if all(math.isclose(g, e * STEP_BATCH, rel_tol=1e-5) for g, e in zip(losses, expected_losses, strict=True)):
            raise CheckpointError("the returned loss is the batch's sum: return the loss per image, the one you "
                                  "stepped with")
        raise CheckpointError(
            f"the parameters match, but the returned losses {[round(x, 4) for x in losses]} are not the "
            f"reference's {[round(x, 4) for x in expected_losses]}: return the loss of this step, per image"
        )
    print(f"the reference's parameters and BatchNorm statistics after {len(batches)} steps ... ok")
    print("with AdamW and with SGD + momentum; the same loss per image returned ... ok")

