"""Checks behind chapter 7's checkpoint cells (YOLOv2's training targets and loss).

* ``check_kmeans_iou(fn)``: k-means over box shapes with the distance 1 - IoU (YOLO9000 §2).
* ``check_assign_target(fn)``: a ground truth's cell, anchor and targets (Darknet's
  ``forward_region_layer``, pass 2).
* ``check_coord_loss(fn)``: the coordinate part of the loss with its ``(2 - w*h)`` weight.

Each check runs the learner's code on several inputs and compares with the reference
(``yolo_lessons.data.anchors`` and the formulas of ``yolo_lessons.region_loss``); only when the
answer differs does it try the known wrong answers, to name the mistake.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np
import torch

from ..data.anchors import box_shape_iou, kmeans_anchors, mean_best_iou
from .common import CheckpointError, call, checkpoint, expect, integer_problem

# --- Exercise 1: k-means with 1 - IoU -------------------------------------------------


def _three_groups() -> np.ndarray:
    """60 shapes in three tight groups around 1x1, 4x2 and 2x6 (grid cells)."""
    rng = np.random.default_rng(0)
    centres = np.array([[1.0, 1.0], [4.0, 2.0], [2.0, 6.0]])
    return np.concatenate([c * rng.uniform(0.95, 1.05, (20, 2)) for c in centres])


def _same_areas() -> np.ndarray:
    """60 shapes of one area (4 cells) in three groups: tall 1x4, wide 4x1 and square 2x2.

    Only widths and heights tell them apart: an "IoU" that compares areas alone sees one group.
    """
    rng = np.random.default_rng(2)
    centres = np.array([[1.0, 4.0], [4.0, 1.0], [2.0, 2.0]])
    return np.concatenate([c * rng.uniform(0.97, 1.03, (20, 2)) for c in centres])


def _many_groups() -> np.ndarray:
    """24 tight groups of shapes for 5 anchors: which groups share an anchor depends on the start."""
    rng = np.random.default_rng(3)
    centres = np.exp(rng.uniform(np.log(0.3), np.log(9.0), (24, 2)))
    return np.concatenate([c * rng.uniform(0.98, 1.02, (6, 2)) for c in centres])


def _mixed_scales() -> np.ndarray:
    """400 shapes whose sides spread over 50x: here 1 - IoU and Euclidean k-means disagree."""
    rng = np.random.default_rng(1)
    side = np.exp(rng.uniform(np.log(0.2), np.log(10.0), 400))
    return np.stack([side * np.exp(rng.uniform(-0.6, 0.6, 400)), side], axis=1)


def _elongated() -> np.ndarray:
    """300 shapes of sides 0.2 to 10 and aspects up to 4.5:1, where a wrong "IoU" picks other clusters."""
    rng = np.random.default_rng(10)
    side = np.exp(rng.uniform(np.log(0.2), np.log(10.0), 300))
    aspect = np.exp(rng.uniform(-1.5, 1.5, 300))
    return np.stack([side * np.sqrt(aspect), side / np.sqrt(aspect)], axis=1)


def _distinct_shapes() -> np.ndarray:
    """10 distinct shapes of distinct areas: with k = 10, k-means from 10 distinct boxes leaves each alone."""
    return np.array([[0.5, 0.7], [1.0, 0.4], [1.2, 1.5], [3.0, 0.8], [0.9, 3.5],
                     [2.5, 2.0], [6.0, 1.1], [1.6, 5.0], [4.0, 4.5], [8.0, 6.0]])


def _as_centroids(got, k: int) -> np.ndarray:
    try:
        array = np.asarray(got.detach() if isinstance(got, torch.Tensor) else got, dtype=np.float64)
    except (TypeError, ValueError):
        raise CheckpointError(f"expected a (k, 2) array of anchor widths and heights, got {got!r}") from None
    expect(array.shape == (k, 2), f"expected a ({k}, 2) array of anchors, got shape {array.shape}")
    expect(bool(np.all(np.isfinite(array)) and np.all(array > 0)), f"expected positive finite anchors, got {array}")
    return array


def _is_fixed_point(wh: np.ndarray, centroids: np.ndarray, distance: str, update=np.mean) -> bool:
    """Does assigning ``wh`` to ``centroids`` and updating each centroid leave them unchanged?"""
    if distance == "iou":
        nearest = (1 - box_shape_iou(wh, centroids)).argmin(axis=1)
    else:
        nearest = ((wh[:, None] - centroids[None]) ** 2).sum(-1).argmin(axis=1)
    for cluster, centre in enumerate(centroids):
        members = wh[nearest == cluster]
        if len(members) and not np.allclose(update(members, axis=0), centre, rtol=1e-4, atol=1e-7):
            return False
    return True


@checkpoint
def check_kmeans_iou(kmeans_iou: Callable) -> None:
    """Check ``kmeans_iou(wh, k, seed=0) -> (k, 2)`` anchors, sorted by area, smallest first."""
    wh = _mixed_scales()
    given = wh.copy()
    got = _as_centroids(call(kmeans_iou, given, 5, seed=0), 5)
    expect(
        given.shape == wh.shape and bool(np.array_equal(given, wh)),
        "kmeans_iou changed the wh it was given (in place, e.g. a shuffle or a sort): work on a copy",
    )
    again = _as_centroids(call(kmeans_iou, wh.copy(), 5, seed=0), 5)
    expect(bool(np.array_equal(got, again)), "the same seed must give the same anchors: seed the initialisation")
    areas = got[:, 0] * got[:, 1]
    if not _is_fixed_point(wh, got, "iou"):
        if _is_fixed_point(wh, got, "euclidean"):
            raise CheckpointError(
                "the anchors are a Euclidean k-means result: measure the distance of a box to a "
                "centroid as 1 - IoU of the two shapes (centred on each other), not the difference of w, h"
            )
        if _is_fixed_point(wh, got, "iou", update=np.median):
            raise CheckpointError("each centroid is the median of its boxes; YOLOv2's k-means takes the mean")
        if _is_fixed_point(wh, got[:, ::-1], "iou"):
            raise CheckpointError("the anchors are (h, w): k-means converged, but return the widths in column 0 "
                                  "and the heights in column 1, as in wh")
        if _columns_sorted_apart(wh, got):
            raise CheckpointError(_COLUMNS_SORTED)
        raise CheckpointError(
            "the anchors are not where k-means with 1 - IoU stops: assigning every box to the anchor "
            "of highest IoU and moving each anchor to the mean (w, h) of its boxes changes them; "
            "repeat the two steps until no box changes cluster"
        )
    expect(
        bool(np.all(np.argsort(areas) == np.arange(5))),
        f"sort the anchors by area, smallest first: got areas {np.round(areas, 3).tolist()}",
    )
    # k-means can stop in a poor local minimum from an unlucky start: any of five seeds may find the groups.
    expected_groups = np.array([[1.0, 1.0], [4.0, 2.0], [2.0, 6.0]])
    tries = [_as_centroids(call(kmeans_iou, _three_groups(), 3, seed=seed), 3) for seed in range(5)]
    _expect_area_order(tries, expected_groups)
    expect(
        any(np.allclose(groups, expected_groups, rtol=0.05) for groups in tries),
        f"on three obvious groups of shapes (about 1x1, 4x2, 2x6) expected those three anchors, "
        f"got {np.round(tries[0], 2).tolist()} with seed 0 (and no better with seeds 1 to 4)",
    )
    starts = {tuple(np.round(_as_centroids(call(kmeans_iou, _many_groups(), 5, seed=s), 5), 6).ravel())
              for s in range(10)}  # fmt: skip
    expect(
        len(starts) > 1,
        "seeds 0 to 9 all gave the same anchors on 24 groups for 5 anchors, where the start decides which "
        "groups share an anchor: draw the initial boxes with a generator seeded by seed",
    )
    same_area = [_as_centroids(call(kmeans_iou, _same_areas(), 3, seed=seed), 3) for seed in range(5)]
    expected_shapes = np.array([[1.0, 4.0], [2.0, 2.0], [4.0, 1.0]])  # all of area 4: order by area is free
    expect(
        any(np.allclose(sorted(map(tuple, g)), sorted(map(tuple, expected_shapes)), rtol=0.05) for g in same_area),
        "on shapes of one area and three aspects (about 1x4, 4x1, 2x2) expected those three anchors, got "
        f"{np.round(same_area[0], 2).tolist()} with seed 0 (and no better with seeds 1 to 4). These shapes "
        "share their area, so only an IoU of widths and heights (the overlap is min(w1, w2) * min(h1, h2)) "
        "separates them, not one of areas alone",
    )
    elongated = _elongated()
    expect(
        _is_fixed_point(elongated, _as_centroids(call(kmeans_iou, elongated.copy(), 5, seed=0), 5), "iou"),
        "on 300 elongated shapes (aspects up to 4.5:1) the anchors are not where k-means with 1 - IoU stops, "
        "though they were on the mixed set: measure the IoU of two centred shapes as overlap / (w1*h1 + w2*h2 - "
        "overlap), with overlap = min(w1, w2) * min(h1, h2); other overlap measures pick other clusters here",
    )
    ours = mean_best_iou(kmeans_anchors(wh, 5, distance="iou"), wh)
    theirs = mean_best_iou(got, wh)
    expect(
        theirs >= ours - 0.03,
        f"mean best IoU {theirs:.3f} on a mixed set, where the package's k-means reaches {ours:.3f}: "
        "start from k distinct boxes of the data set",
    )
    shapes = _distinct_shapes()
    for seed in range(3):
        alone = _as_centroids(call(kmeans_iou, shapes.copy(), len(shapes), seed=seed), len(shapes))
        if np.allclose(alone, shapes, rtol=1e-6):
            continue
        repeated = len(alone) - len(np.unique(np.round(alone, 9), axis=0))
        raise CheckpointError(
            f"on 10 distinct shapes with k = 10 (seed {seed}), every shape is its own anchor: k-means starts from "
            "all ten and no box changes cluster. "
            + (f"Got {repeated} repeated anchor(s): start from k distinct boxes of wh (e.g. "
               "rng.choice(len(wh), k, replace=False))" if repeated else
               f"Expected {shapes.tolist()} (sorted by area), got {np.round(alone, 3).tolist()}")
        )
    print("three obvious groups found, anchors sorted by area ... ok")
    print("converged k-means (1 - IoU, mean update); same seed, same anchors ... ok")


_COLUMNS_SORTED = ("the widths and heights were sorted separately (np.sort(..., axis=0) sorts each column on its "
                   "own, which breaks the (w, h) pairs): sort the rows by area, e.g. centroids[np.argsort(w * h)]")


def _columns_sorted_apart(wh: np.ndarray, got: np.ndarray) -> bool:
    """Are both columns of ``got`` sorted, and does some other pairing of them converge?"""
    if not (np.all(np.diff(got[:, 0]) >= 0) and np.all(np.diff(got[:, 1]) >= 0)):
        return False
    return any(
        _is_fixed_point(wh, np.stack([got[:, 0], got[list(order), 1]], axis=1), "iou")
        for order in itertools.permutations(range(len(got)))
        if list(order) != list(range(len(got)))
    )


def _expect_area_order(tries: list[np.ndarray], expected: np.ndarray) -> None:
    """Name a wrong order when some try holds the expected anchors, only not sorted by area."""
    for got in tries:
        if np.allclose(got, expected, rtol=0.05):
            return
    for got in tries:
        by_area = got[np.argsort(got[:, 0] * got[:, 1])]
        if np.allclose(by_area, expected, rtol=0.05):
            raise CheckpointError(
                "on three obvious groups of shapes (about 1x1, 4x2, 2x6) the anchors are right but not sorted "
                f"by area, smallest first: got {np.round(got, 2).tolist()}"
            )
        pairs_broken = np.sort(expected, axis=0)
        if np.allclose(got, pairs_broken, rtol=0.05) and not np.allclose(pairs_broken, expected, rtol=0.05):
            raise CheckpointError(_COLUMNS_SORTED)


# --- Exercise 2: a ground truth's cell, anchor and targets ----------------------------

_VOC = ((1.3221, 1.73145), (3.19275, 4.00944), (5.05587, 8.09892), (9.47112, 4.84053), (11.2364, 10.0071))
_SMALL = ((0.5, 0.5), (1.0, 2.0), (2.0, 1.0))
# (cx, cy, w, h) fractions of the image, anchors (grid cells), grid side.
ASSIGN_CASES = (
    ((0.5, 0.5, 0.2, 0.3), _VOC, 13),
    ((0.37, 0.81, 0.05, 0.4), _VOC, 13),  # 0.37 * 13 = 4.81: round() would give column 5
    ((0.96, 0.12, 0.6, 0.15), _VOC, 13),  # an overlap over the larger area, not the union, picks anchor 1
    ((0.61, 0.29, 0.17, 0.52), _VOC, 13),  # the nearest anchor in (w, h) is not the best IoU
    ((1.0, 0.5, 0.1, 0.1), _VOC, 13),  # on the right edge: the last column, x target 1
    ((0.3, 1.0, 0.9, 0.25), _VOC, 13),  # on the bottom edge: the last row
    ((0.2, 0.7, 0.3, 0.12), _SMALL, 4),
    ((0.9, 0.05, 0.1, 0.45), _SMALL, 4),
    ((0.25, 0.75, 0.2, 0.3), _SMALL, 4),  # exactly on an interior cell border: column 1, row 3
)


def _reference_assign(box, anchors, grid: int, *, cell=math.floor, clamp=True, match="iou", units=True, tw="ln"):
    """Darknet's pass 2 for one truth; the keywords switch on the known mistakes."""
    cx, cy, w, h = box
    column, row = cell(cx * grid), cell(cy * grid)
    if clamp:
        column, row = min(column, grid - 1), min(row, grid - 1)
    shape = np.array([[w * grid, h * grid]]) if units else np.array([[w, h]])
    if match == "iou":
        anchor = int(box_shape_iou(shape, anchors)[0].argmax())
    else:
        anchor = int(((np.asarray(anchors) - shape) ** 2).sum(1).argmin())
    aw, ah = anchors[anchor]
    ratio_w, ratio_h = (w * grid / aw, h * grid / ah) if tw != "fraction" else (w / aw, h / ah)
    if tw == "inverted":
        ratio_w, ratio_h = 1 / ratio_w, 1 / ratio_h
    log = {"no log": lambda r: r, "log10": math.log10, "log2": math.log2}.get(tw, math.log)
    return row, column, anchor, (cx * grid - column, cy * grid - row, log(ratio_w), log(ratio_h))


_ASSIGN_MISTAKES = (
    ({"cell": round}, "the cell is floor(cx * grid), not round(cx * grid): a centre belongs to the cell it lies in"),
    ({"cell": lambda v: math.ceil(v) - 1}, "the cell is floor(cx * grid): ceil(cx * grid) - 1 moves a centre that "
     "lies exactly on a cell border into the cell before it"),
    ({"clamp": False}, "a centre on the right or bottom edge (cx or cy = 1.0) gives floor(1.0 * grid) = grid, one "
     "past the last cell: clamp it to grid - 1 (Darknet itself would write outside the grid)"),
    ({"match": "euclidean"}, "the anchor is the one of best IoU with the box's shape (both centred), "
     "not the nearest in (w, h)"),
    ({"units": False}, "compare shapes in one unit: anchors are in grid cells, so multiply w and h by the grid "
     "before the IoU"),
    ({"tw": "fraction"}, "ln of the wrong ratio: w is a fraction of the image and the anchor is in grid cells; "
     "tw = ln(w * grid / anchor_w)"),
    ({"tw": "inverted"}, "the ratio is upside down: tw = ln(w * grid / anchor_w), the box over the anchor"),
    ({"tw": "no log"}, "tw and th are logarithms: tw = ln(w * grid / anchor_w), because the box is decoded "
     "as anchor_w * exp(tw)"),
    ({"tw": "log10"}, "tw and th are natural logarithms (math.log), not log10: the box is decoded as "
     "anchor_w * exp(tw)"),
    ({"tw": "log2"}, "tw and th are natural logarithms (math.log), not log2: the box is decoded as "
     "anchor_w * exp(tw)"),
)


def _same_assignment(got, expected) -> bool:
    return tuple(got[:3]) == tuple(expected[:3]) and all(
        math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-6) for a, b in zip(got[3], expected[3], strict=True)
    )


def _unpack_assignment(got) -> tuple:
    try:
        row, column, anchor, targets = got
        targets = tuple(float(t) for t in targets)
    except (TypeError, ValueError):
        raise CheckpointError(f"expected (row, column, anchor, (tx, ty, tw, th)), got {got!r}") from None
    expect(len(targets) == 4, f"expected four targets (tx, ty, tw, th), got {len(targets)}")
    return row, column, anchor, targets


@checkpoint
def check_assign_target(assign_target: Callable) -> None:
    """Check ``assign_target(box, anchors, grid) -> (row, column, anchor, (tx, ty, tw, th))``."""
    answers = []
    for box, anchors, grid in ASSIGN_CASES:
        row, column, anchor, targets = _unpack_assignment(call(assign_target, box, anchors, grid))
        for name, value in (("row", row), ("column", column), ("anchor", anchor)):
            problem = integer_problem(value)  # exactly int, as promised: not a numpy int, float or tensor
            expect(not problem, f"the {name} must be a plain Python int (wrap it in int(...)): {problem}")
        answers.append((row, column, anchor, targets))
    for (box, anchors, grid), got in zip(ASSIGN_CASES, answers, strict=True):
        expected = _reference_assign(box, anchors, grid)
        if _same_assignment(got, expected):
            continue
        case = f"box (cx, cy, w, h) = {box} on a {grid} x {grid} grid"
        if (got[0], got[1]) == (expected[1], expected[0]) and expected[0] != expected[1]:
            raise CheckpointError(f"row and column are swapped: the row comes from cy, the column from cx ({case})")
        for switches, mistake in _ASSIGN_MISTAKES:
            if _same_assignment(got, _reference_assign(box, anchors, grid, **switches)):
                raise CheckpointError(f"{mistake} ({case})")
        if got[:3] == expected[:3] and math.isclose(got[3][0], box[0] * grid, rel_tol=1e-5):
            raise CheckpointError(f"tx is the offset inside the cell: cx * grid - column ({case})")
        er, ec, ea, et = expected
        raise CheckpointError(
            f"for {case}: expected row {er}, column {ec}, anchor {ea}, targets "
            f"({', '.join(f'{t:.4f}' for t in et)}), got row {got[0]}, column {got[1]}, anchor {got[2]}, "
            f"targets ({', '.join(f'{t:.4f}' for t in got[3])})"
        )
    print(f"{len(ASSIGN_CASES)} ground truths: cell (row, column), anchor and targets ... ok")
    print("centres on the right and bottom edges land in the last cell ... ok")


# --- Exercise 3: the coordinate loss with its (2 - w*h) weight -----------------------


def _coord_reference(pred, target, truth_wh, coord_scale: float, *, weight=True, half=True, mean=False,
                     by_column=False, coord_mean=False):
    """The coordinate loss; the keywords switch on the known mistakes (None where one cannot happen)."""
    scale = coord_scale * (2 - truth_wh[:, 0] * truth_wh[:, 1]) if weight else torch.full_like(truth_wh[:, 0], 1.0)
    squared = (target - pred) ** 2  # (K, 4)
    if by_column:  # (K,) weights times (K, 4) errors broadcast along the coordinates: possible only for K = 4
        return 0.5 * (scale[None, :] * squared).sum() if len(pred) == squared.shape[1] else None
    per_box = scale * (squared.mean(dim=1) if coord_mean else squared.sum(dim=1)) * (0.5 if half else 1.0)  # (K,)
    return per_box.mean() if mean else per_box.sum()


_COORD_MISTAKES = (
    ({"weight": False}, "the (2 - w*h) weight is missing: each box's squared errors are multiplied by "
     "coord_scale * (2 - w*h), with w, h the truth's size as fractions of the image"),
    ({"half": False}, "the loss is twice the reference: Darknet's delta is the gradient of HALF the squared "
     "error, so multiply by 1/2"),
    ({"mean": True}, "sum over the boxes, do not average: Darknet sums its deltas over the batch"),
    ({"by_column": True}, "the K weights were spread over the 4 coordinates: a (K,) weight times (K, 4) errors "
     "broadcasts along the columns, so box k's weight lands on coordinate k; give it shape (K, 1) (weight[:, None])"),
)


def _coord_cases() -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]]:
    generator = torch.Generator().manual_seed(7)
    cases = []
    for count, coord_scale in ((1, 1.0), (4, 1.0), (3, 1.0), (6, 2.5)):  # 4 boxes: a (K,) weight broadcasts
        xy = torch.rand(count, 2, generator=generator, dtype=torch.float64)  # sigmoid(tx), sigmoid(ty)
        twh = torch.randn(count, 2, generator=generator, dtype=torch.float64)  # raw tw, th
        pred = torch.cat([xy, twh], dim=1)
        target = torch.cat(
            [torch.rand(count, 2, generator=generator, dtype=torch.float64),
             torch.randn(count, 2, generator=generator, dtype=torch.float64)], dim=1
        )
        truth_wh = torch.rand(count, 2, generator=generator, dtype=torch.float64) * 0.9 + 0.05
        cases.append((pred, target, truth_wh, coord_scale))
    return cases


def _averaged(coord_loss: Callable, got, pred, target, truth_wh, coord_scale: float) -> str:
    """Name a mean over the coordinates (and over the boxes), tried again on 6 boxes where the two differ."""
    if not torch.allclose(got.detach().double(), _coord_reference(pred, target, truth_wh, coord_scale,
                                                                  coord_mean=True), rtol=1e-5, atol=1e-8):
        return ""
    pred, target, truth_wh, coord_scale = _coord_cases()[-1]  # 6 boxes
    again = call(coord_loss, pred.clone(), target.clone(), truth_wh.clone(), coord_scale=coord_scale)
    if not isinstance(again, torch.Tensor) or again.dim() != 0:
        return ""
    for box_mean, message in ((True, _ALL_MEAN), (False, _COORD_MEAN)):
        wrong = _coord_reference(pred, target, truth_wh, coord_scale, coord_mean=True, mean=box_mean)
        if torch.allclose(again.detach().double(), wrong, rtol=1e-5, atol=1e-8):
            return message
    return ""


_COORD_MEAN = ("the loss is a quarter of the reference: sum the four coordinates of each box (the sum over d), "
               "do not average them")
_ALL_MEAN = ("the loss is averaged over all K x 4 errors (a mean, as F.mse_loss's default reduction): sum the four "
             "coordinates and the boxes")


@checkpoint
def check_coord_loss(coord_loss: Callable) -> None:
    """Check ``coord_loss(pred, target, truth_wh, coord_scale=1.0) -> scalar tensor``."""
    for pred, target, truth_wh, coord_scale in _coord_cases():
        leaf = pred.clone().requires_grad_(True)
        before = (leaf.detach().clone(), target.clone(), truth_wh.clone())
        got = call(coord_loss, leaf, target, truth_wh, coord_scale=coord_scale)
        expect(isinstance(got, torch.Tensor) and got.dim() == 0, f"expected a scalar tensor, got {got!r}")
        expect(
            all(torch.equal(a, b) for a, b in zip(before, (leaf.detach(), target, truth_wh), strict=True)),
            "the inputs were modified in place: compute the loss without writing into them",
        )
        expected = _coord_reference(pred, target, truth_wh, coord_scale)
        case = f"({len(pred)} boxes, coord_scale={coord_scale})"
        if not torch.allclose(got.detach().double(), expected, rtol=1e-5, atol=1e-8):
            for switches, mistake in _COORD_MISTAKES:
                wrong = _coord_reference(pred, target, truth_wh, coord_scale, **switches)
                if wrong is not None and torch.allclose(got.detach().double(), wrong, rtol=1e-5, atol=1e-8):
                    raise CheckpointError(f"{mistake} {case}")
            if coord_scale != 1 and torch.allclose(got.detach().double(), expected / coord_scale, rtol=1e-5):
                raise CheckpointError(f"coord_scale is not applied: multiply the weight by it {case}")
            averaged = _averaged(coord_loss, got, pred, target, truth_wh, coord_scale)
            if averaged:
                raise CheckpointError(f"{averaged} {case}")
            raise CheckpointError(f"{case}: expected {expected.item():.6f}, got {got.item():.6f}")
        expect(got.requires_grad, f"the loss must stay differentiable with respect to pred {case}")
        (grad,) = torch.autograd.grad(got, leaf)
        expected_grad = -coord_scale * (2 - truth_wh.prod(1, keepdim=True)) * (target - pred)  # minus the delta
        expect(
            torch.allclose(grad.double(), expected_grad, rtol=1e-5, atol=1e-8),
            f"the gradient with respect to pred is not minus Darknet's delta {case}",
        )
    print("coord loss with the (2 - w*h) weight, summed over the boxes ... ok")
    print("its gradient is minus Darknet's delta ... ok")
