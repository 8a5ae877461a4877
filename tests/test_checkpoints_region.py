"""Chapter 7's checkpoints pass correct answers written several ways and name the known mistakes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from yolo_lessons.checkpoints.common import NOTE_PREFIX, CheckpointError
from yolo_lessons.checkpoints.region import check_assign_target, check_coord_loss, check_kmeans_iou

# --- Exercise 1: k-means with 1 - IoU -------------------------------------------------


def kmeans_loop(wh, k, seed=0, distance="iou", update=np.mean, sort=True, fixed_seed=False):
    """A learner's k-means written with loops; the keywords make the known mistakes."""
    wh = np.asarray(wh, dtype=np.float64)
    centroids = wh[np.random.default_rng(0 if fixed_seed else seed).choice(len(wh), k, replace=False)]
    previous = None
    for _ in range(500):
        if distance == "iou":
            inter = np.minimum(wh[:, None], centroids[None]).prod(-1)  # (N, k) centred overlap
            union = wh[:, None].prod(-1) + centroids[None].prod(-1) - inter
            nearest = (1 - inter / union).argmin(1)
        elif distance == "area ratio":  # the trial's "IoU": smaller area over larger, blind to the aspect
            areas, c_areas = wh.prod(-1)[:, None], centroids.prod(-1)[None]
            nearest = (1 - np.minimum(areas, c_areas) / np.maximum(areas, c_areas)).argmin(1)
        else:
            nearest = ((wh[:, None] - centroids[None]) ** 2).sum(-1).argmin(1)
        if previous is not None and np.array_equal(previous, nearest):
            break
        previous = nearest
        centroids = np.array([update(wh[nearest == c], axis=0) if (nearest == c).any() else centroids[c]
                              for c in range(k)])
    if sort:
        centroids = centroids[np.argsort(centroids.prod(1))]
    return centroids


def kmeans_torch(wh, k, seed=0):
    """The same algorithm in torch, returning a float32 tensor."""
    wh = torch.as_tensor(wh, dtype=torch.float32)
    gen = torch.Generator().manual_seed(seed)
    centroids = wh[torch.randperm(len(wh), generator=gen)[:k]].clone()
    assign = None
    while True:
        inter = torch.minimum(wh[:, None], centroids[None]).prod(-1)
        iou = inter / (wh.prod(1)[:, None] + centroids.prod(1)[None] - inter)
        new = iou.argmax(1)
        if assign is not None and torch.equal(new, assign):
            break
        assign = new
        for c in range(k):
            if (assign == c).any():
                centroids[c] = wh[assign == c].mean(0)
    return centroids[centroids.prod(1).argsort()]


def unseeded_kmeans():
    """A k-means that ignores its seed: each call starts from a different draw."""
    calls = iter(range(100))
    return lambda wh, k, seed=0: kmeans_loop(wh, k, next(calls))


@pytest.mark.parametrize("fn", [kmeans_loop, kmeans_torch])
def test_kmeans_checkpoint_passes_correct_answers_in_numpy_and_torch(fn, capsys):
    check_kmeans_iou(fn)
    assert "ok" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (lambda wh, k, seed=0: kmeans_loop(wh, k, seed, distance="euclidean"), "Euclidean k-means"),
        (lambda wh, k, seed=0: kmeans_loop(wh, k, seed, update=np.median), "median"),
        (lambda wh, k, seed=0: kmeans_loop(wh, k, seed, sort=False), "sort the anchors by area"),
        (lambda wh, k, seed=0: np.asarray(wh)[:k], "not where k-means with 1 - IoU stops"),
        (unseeded_kmeans(), "same seed"),
        (lambda wh, k, seed=0: kmeans_loop(wh, k, seed, distance="area ratio"), "not one of areas alone"),
        (lambda wh, k, seed=0: kmeans_loop(wh, k, seed, fixed_seed=True), "seeded by seed"),
    ],
)
def test_kmeans_checkpoint_names_the_known_mistakes(fn, message):
    with pytest.raises(CheckpointError, match=message):
        check_kmeans_iou(fn)


def test_kmeans_checkpoint_reports_a_stub_as_not_implemented():
    def stub(wh, k, seed=0):
        raise NotImplementedError("use 1 - IoU")

    with pytest.raises(CheckpointError, match="not implemented yet: use 1 - IoU"):
        check_kmeans_iou(stub)


# --- Exercise 2: a ground truth's cell, anchor and targets ----------------------------


def assign(box, anchors, grid, *, cell=math.floor, clamp=True, euclid=False, fraction_iou=False, tw="ln",
           swap=False, offset=True, as_float=False, numpy_anchor=False):
    """A learner's assignment; the keywords make the known mistakes."""
    cx, cy, w, h = box
    column, row = cell(cx * grid), cell(cy * grid)
    if clamp:
        column, row = min(column, grid - 1), min(row, grid - 1)
    gw, gh = (w, h) if fraction_iou else (w * grid, h * grid)
    if euclid:
        scores = [-((aw - gw) ** 2 + (ah - gh) ** 2) for aw, ah in anchors]
    else:
        scores = [min(aw, gw) * min(ah, gh) / (aw * ah + gw * gh - min(aw, gw) * min(ah, gh)) for aw, ah in anchors]
    anchor = max(range(len(anchors)), key=lambda n: (scores[n], -n))
    aw, ah = anchors[anchor]
    ratios = {"ln": (w * grid / aw, h * grid / ah), "fraction": (w / aw, h / ah), "inverted": (aw / (w * grid),
                                                                                             ah / (h * grid))}
    if numpy_anchor:  # np.argmax answers with a numpy integer, not the plain int the exercise asks for
        anchor = np.argmax(scores)
    tw_, th_ = ratios["ln"] if tw == "no log" else (math.log(r) for r in ratios[tw])
    tx = cx * grid - column if offset else cx * grid
    targets = (tx, cy * grid - row, tw_, th_)
    if swap:
        row, column = column, row
    if as_float:
        row, column = float(row), float(column)
    return row, column, anchor, targets


def assign_torch(box, anchors, grid):
    """A correct answer written with torch tensors for the maths."""
    b, a = torch.tensor(box, dtype=torch.float64), torch.tensor(anchors, dtype=torch.float64)
    cell = torch.clamp((b[:2] * grid).floor().long(), max=grid - 1)
    shape = b[2:] * grid
    inter = torch.minimum(a, shape).prod(1)
    best = int((inter / (a.prod(1) + shape.prod() - inter)).argmax())
    targets = torch.cat([b[:2] * grid - cell, torch.log(shape / a[best])])
    return int(cell[1]), int(cell[0]), best, targets


@pytest.mark.parametrize("fn", [assign, assign_torch])
def test_assign_checkpoint_passes_correct_answers(fn, capsys):
    check_assign_target(fn)
    assert "last cell ... ok" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("switches", "message"),
    [
        ({"clamp": False}, "one past the last cell"),  # floor(1.0 * 13) = 13
        ({"cell": round}, r"floor\(cx \* grid\), not round"),
        ({"euclid": True}, "not the nearest in"),
        ({"fraction_iou": True}, "multiply w and h by the grid"),
        ({"tw": "fraction"}, "ln of the wrong ratio"),
        ({"tw": "inverted"}, "upside down"),
        ({"swap": True}, "row and column are swapped"),
        ({"offset": False}, "offset inside the cell"),
        ({"as_float": True}, "the row must be a plain Python int"),
        ({"numpy_anchor": True}, "the anchor must be a plain Python int .* int64"),
        ({"tw": "no log"}, "tw and th are logarithms"),
        ({"cell": lambda v: math.ceil(v) - 1}, "lies exactly on a cell border"),
    ],
)
def test_assign_checkpoint_names_the_known_mistakes(switches, message):
    with pytest.raises(CheckpointError, match=message):
        check_assign_target(lambda box, anchors, grid: assign(box, anchors, grid, **switches))


# --- Exercise 3: the coordinate loss --------------------------------------------------


def coord_loss(pred, target, truth_wh, coord_scale=1.0):
    weight = coord_scale * (2 - truth_wh[:, 0] * truth_wh[:, 1])  # (K,)
    return (weight * ((target - pred) ** 2).sum(1)).sum() / 2


def coord_loss_loop(pred, target, truth_wh, coord_scale=1.0):
    total = pred.new_zeros(())
    for k in range(len(pred)):
        w, h = truth_wh[k]
        for d in range(4):
            total = total + 0.5 * coord_scale * (2 - w * h) * (target[k, d] - pred[k, d]) ** 2
    return total


def coord_loss_column_weights(pred, target, truth_wh, coord_scale=1.0):
    """The (K,) weight multiplied straight into the (K, 4) errors: it broadcasts along the coordinates."""
    weight = coord_scale * (2 - truth_wh[:, 0] * truth_wh[:, 1])  # (K,)
    return 0.5 * (weight * (target - pred) ** 2).sum()  # right for K = 1, wrong for K = 4, an error otherwise


@pytest.mark.parametrize("fn", [coord_loss, coord_loss_loop])
def test_coord_loss_checkpoint_passes_correct_answers(fn, capsys):
    check_coord_loss(fn)
    assert "minus Darknet's delta" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (lambda p, t, wh, coord_scale=1.0: coord_scale * (((t - p) ** 2).sum()) / 2, r"\(2 - w\*h\) weight is missing"),
        (lambda p, t, wh, coord_scale=1.0: 2 * coord_loss(p, t, wh, coord_scale), "HALF the squared error"),
        (lambda p, t, wh, coord_scale=1.0: coord_loss(p, t, wh, coord_scale) / len(p), "do not average"),
        (coord_loss_column_weights, "spread over the 4 coordinates"),
        (lambda p, t, wh, coord_scale=1.0: coord_loss(p, t, wh, 1.0), "coord_scale is not applied"),
        (lambda p, t, wh, coord_scale=1.0: coord_loss(p.detach(), t, wh, coord_scale), "differentiable"),
        (lambda p, t, wh, coord_scale=1.0: float(coord_loss(p, t, wh, coord_scale)), "scalar tensor"),
        (lambda p, t, wh, coord_scale=1.0: coord_loss(p, t, wh.mul_(1), coord_scale) * 1.0001, "expected"),
    ],
)
def test_coord_loss_checkpoint_names_the_known_mistakes(fn, message):
    with pytest.raises(CheckpointError, match=message):
        check_coord_loss(fn)


# --- What the learner's code prints is shown after the report, never graded ------------


@pytest.mark.parametrize(
    ("check", "answer"),
    [
        (check_kmeans_iou, kmeans_loop),
        (check_assign_target, assign),
        (check_coord_loss, coord_loss),
    ],
)
def test_a_print_in_a_correct_answer_is_shown_after_the_report_and_passes(check, answer, capsys):
    def chatty(*args, **kwargs):
        print("debugging")
        return answer(*args, **kwargs)

    check(chatty)
    lines = capsys.readouterr().out.splitlines()
    report = [line for line in lines if not line.startswith(NOTE_PREFIX)]
    assert report[-1].endswith("... ok")
    assert lines.index(report[-1]) < lines.index(NOTE_PREFIX + "  debugging")  # notes come after the report
