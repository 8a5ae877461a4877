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


# --- The second learner trial: more right answers, more wrong ones ---------------------


def kmeans_global_seed(wh, k, seed=0):
    """Right, another style: numpy's global generator seeded by seed, a permutation for the start."""
    wh = np.array(wh, dtype=np.float64)
    np.random.seed(seed)
    centroids = wh[np.random.permutation(len(wh))[:k]].copy()
    while True:
        inter = np.minimum(wh[:, None], centroids[None]).prod(-1)
        iou = inter / (wh.prod(1)[:, None] + centroids.prod(1)[None] - inter)
        nearest = iou.argmax(1)
        new = np.array([wh[nearest == c].mean(0) if (nearest == c).any() else centroids[c] for c in range(k)])
        if np.array_equal(new, centroids):  # stop when the centroids stop moving
            break
        centroids = new
    return [tuple(c) for c in centroids[np.argsort(centroids[:, 0] * centroids[:, 1])]]  # a list of pairs


def kmeans_torch64(wh, k, seed=0):
    """Right, torch in float64 with a numpy generator for the start and distances as 1 - IoU."""
    wh = torch.as_tensor(np.asarray(wh), dtype=torch.float64)
    start = np.random.default_rng(seed).choice(len(wh), k, replace=False)
    centroids = wh[torch.as_tensor(start)]
    previous = torch.full((len(wh),), -1)
    for _ in range(1000):
        inter = torch.minimum(wh[:, None], centroids[None]).prod(-1)
        distance = 1 - inter / (wh.prod(1)[:, None] + centroids.prod(1)[None] - inter)
        nearest = distance.argmin(1)
        if torch.equal(nearest, previous):
            break
        previous = nearest
        centroids = torch.stack([wh[nearest == c].mean(0) if (nearest == c).any() else centroids[c]
                                 for c in range(k)])
    return centroids[torch.argsort(centroids[:, 0] * centroids[:, 1])]


def kmeans_wrong(wh, k, seed=0, *, order="area", swap_columns=False, iterations=None, farthest=False,
                 fixed_k=None, replace=False, uniform_start=False, shuffle_in_place=False, integers=False,
                 enclosing=False, over_larger_area=False):
    """The second trial's wrong answers; the keywords make one mistake each."""
    k = fixed_k or k
    data = wh if shuffle_in_place else np.array(wh, dtype=np.float64)
    if integers:
        data = data.astype(int).astype(np.float64).clip(min=1)
    rng = np.random.default_rng(seed)
    if shuffle_in_place:
        rng.shuffle(data)  # shuffles the caller's array
        centroids = data[:k].copy()
    elif uniform_start:
        centroids = rng.uniform(data.min(0), data.max(0), (k, 2))
    else:
        centroids = data[rng.choice(len(data), k, replace=replace)]
    previous = None
    for _ in range(iterations or 1000):
        inter = np.minimum(data[:, None], centroids[None]).prod(-1)
        if enclosing:  # "IoU" as the overlap over the enclosing rectangle
            iou = inter / np.maximum(data[:, None], centroids[None]).prod(-1)
        elif over_larger_area:  # "IoU" as the overlap over the larger of the two areas
            iou = inter / np.maximum(data.prod(1)[:, None], centroids.prod(1)[None])
        else:
            iou = inter / (data.prod(1)[:, None] + centroids.prod(1)[None] - inter)
        nearest = iou.argmin(1) if farthest else iou.argmax(1)
        if previous is not None and np.array_equal(previous, nearest):
            break
        previous = nearest
        centroids = np.array([data[nearest == c].mean(0) if (nearest == c).any() else centroids[c]
                              for c in range(k)])
    if order == "area":
        centroids = centroids[np.argsort(centroids.prod(1))]
    elif order == "descending":
        centroids = centroids[np.argsort(-centroids.prod(1))]
    elif order == "width":
        centroids = centroids[np.argsort(centroids[:, 0])]
    elif order == "columns":
        centroids = np.sort(centroids, axis=0)  # sorts each column on its own
    return centroids[:, ::-1] if swap_columns else centroids


@pytest.mark.parametrize("fn", [kmeans_global_seed, kmeans_torch64], ids=["global seed, list", "torch float64"])
def test_kmeans_checkpoint_passes_more_correct_answers_with_its_usual_output(fn, capsys):
    check_kmeans_iou(fn)
    assert capsys.readouterr().out == ("three obvious groups found, anchors sorted by area ... ok\n"
                                       "converged k-means (1 - IoU, mean update); same seed, same anchors ... ok\n")


@pytest.mark.parametrize(
    ("switches", "message"),
    [
        ({"order": "descending"}, "sort the anchors by area, smallest first"),
        ({"order": "width"}, "not sorted by area, smallest first"),
        ({"order": "columns"}, r"widths and heights were sorted separately"),
        ({"order": None}, "sort the anchors by area, smallest first"),
        ({"swap_columns": True}, r"the anchors are \(h, w\)"),
        ({"iterations": 1}, "not where k-means with 1 - IoU stops"),
        ({"iterations": 3}, "not where k-means with 1 - IoU stops"),
        ({"farthest": True}, "not where k-means with 1 - IoU stops"),
        ({"fixed_k": 5}, r"expected a \(3, 2\) array of anchors"),
        ({"replace": True}, "start from k distinct boxes"),
        ({"uniform_start": True}, "every shape is its own anchor"),
        ({"shuffle_in_place": True}, "changed the wh it was given"),
        ({"integers": True}, "not where k-means with 1 - IoU stops"),
        ({"enclosing": True}, "elongated shapes"),
        ({"over_larger_area": True}, "elongated shapes"),
    ],
    ids=["largest first", "sorted by width", "columns sorted apart", "not sorted", "(h, w) columns",
         "one iteration", "three iterations", "farthest centroid", "k ignored", "start with replacement",
         "uniform random start", "shuffles the input in place", "integer shapes", "overlap over enclosing box",
         "overlap over the larger area"],
)
def test_kmeans_checkpoint_fails_the_second_trials_wrong_answers(switches, message):
    with pytest.raises(CheckpointError, match=message):
        check_kmeans_iou(lambda wh, k, seed=0: kmeans_wrong(wh, k, seed, **switches))


def assign_numpy(box, anchors, grid):
    """Right, vectorised with numpy, the anchors divided by the grid (the IoU does not care about the unit)."""
    cx, cy, w, h = box
    a = np.asarray(anchors, dtype=np.float64) / grid  # fractions of the image, like the box
    inter = np.minimum(a[:, 0], w) * np.minimum(a[:, 1], h)
    best = int(np.argmax(inter / (a[:, 0] * a[:, 1] + w * h - inter)))
    column, row = int(min(cx * grid, grid - 1)), int(min(cy * grid, grid - 1))
    return row, column, best, np.array([cx * grid - column, cy * grid - row, np.log(w / a[best, 0]),
                                        np.log(h / a[best, 1])])


def assign_wrong(box, anchors, grid, *, iou_swapped=False, xy_swapped=False, wh_swapped=False, log=math.log,
                 one_based=False, grid_of=None, edge_nudge=False, centred=False, over_larger=False,
                 placed=False, clamp_to_grid=False, ty_from_cx=False):
    """The second trial's wrong answers; the keywords make one mistake each."""
    grid = grid_of or grid
    cx, cy, w, h = box
    x, y = (min(cx, 0.999), min(cy, 0.999)) if edge_nudge else (cx, cy)
    limit = grid if clamp_to_grid else grid - 1
    column, row = min(math.floor(x * grid), limit), min(math.floor(y * grid), limit)
    gw, gh = w * grid, h * grid
    scores = []
    for aw, ah in anchors:
        if iou_swapped:
            aw, ah = ah, aw
        if placed:  # the anchor centred on its cell, the box where it is
            acx, acy = column + 0.5, row + 0.5
            ox = max(min(cx * grid + gw / 2, acx + aw / 2) - max(cx * grid - gw / 2, acx - aw / 2), 0)
            oy = max(min(cy * grid + gh / 2, acy + ah / 2) - max(cy * grid - gh / 2, acy - ah / 2), 0)
            inter = ox * oy
        else:
            inter = min(aw, gw) * min(ah, gh)
        union = max(aw * ah, gw * gh) if over_larger else aw * ah + gw * gh - inter
        scores.append(inter / union)
    anchor = max(range(len(anchors)), key=lambda n: (scores[n], -n))
    aw, ah = anchors[anchor]
    tx = x * grid - column - (0.5 if centred else 0.0)
    ty = (cx if ty_from_cx else y) * grid - row - (0.5 if centred else 0.0)
    tw, th = log(gw / aw), log(gh / ah)
    if xy_swapped:
        tx, ty = ty, tx
    if wh_swapped:
        tw, th = th, tw
    return row, column, anchor + 1 if one_based else anchor, (tx, ty, tw, th)


def test_assign_checkpoint_passes_a_numpy_answer_with_its_usual_output(capsys):
    check_assign_target(assign_numpy)
    assert capsys.readouterr().out == ("9 ground truths: cell (row, column), anchor and targets ... ok\n"
                                       "centres on the right and bottom edges land in the last cell ... ok\n")


@pytest.mark.parametrize(
    ("switches", "message"),
    [
        ({"iou_swapped": True}, "expected row .* anchor"),
        ({"xy_swapped": True}, "expected row .* targets"),
        ({"wh_swapped": True}, "expected row .* targets"),
        ({"log": math.log10}, "natural logarithm"),
        ({"log": math.log2}, "natural logarithm"),
        ({"one_based": True}, "expected row .* anchor"),
        ({"grid_of": 13}, "expected row"),
        ({"edge_nudge": True}, "expected row .* targets"),
        ({"centred": True}, "expected row .* targets"),
        ({"over_larger": True}, "expected row .* anchor"),
        ({"placed": True}, "expected row .* anchor"),
        ({"clamp_to_grid": True}, "one past the last cell"),
        ({"ty_from_cx": True}, "expected row .* targets"),
    ],
    ids=["anchor w and h swapped in the IoU", "tx and ty swapped", "tw and th swapped", "log10", "log2",
         "anchor counted from 1", "grid fixed at 13", "edge centre nudged to 0.999", "offset from the cell centre",
         "overlap over the larger area", "IoU of the placed boxes", "clamped to grid, not grid - 1",
         "ty computed from cx"],
)
def test_assign_checkpoint_fails_the_second_trials_wrong_answers(switches, message):
    with pytest.raises(CheckpointError, match=message):
        check_assign_target(lambda box, anchors, grid: assign_wrong(box, anchors, grid, **switches))


def coord_loss_mse(pred, target, truth_wh, coord_scale=1.0):
    """Right, with F.mse_loss per element and the weight as a (K, 1) column."""
    weight = (coord_scale * (2 - truth_wh.prod(dim=1)))[:, None]
    return (weight * torch.nn.functional.mse_loss(pred, target, reduction="none")).sum() * 0.5


def coord_loss_einsum(pred, target, truth_wh, coord_scale=1.0):
    """Right, in float32, pred - target the other way round, summed with einsum."""
    error = (pred - target).float()
    weight = coord_scale * (1 + (1 - truth_wh[:, 1] * truth_wh[:, 0])).float()
    return torch.einsum("k,kd->", weight, error * error) / 2


def coord_loss_wrong(pred, target, truth_wh, coord_scale=1.0, *, weight="2 - wh", only_wh=False, power=2,
                     scale_power=1, coord_mean=False, all_mean=False, half_inside=False, keepdim=False,
                     per_box=False, divide_scale=False, mutate=None):
    """The second trial's wrong answers; the keywords make one mistake each."""
    if mutate == "target":
        target -= pred  # writes into the caller's target
        error = target
    elif mutate == "truth_wh":
        truth_wh[:, 0] *= truth_wh[:, 1]
        error = target - pred
    else:
        error = target - pred
    w, h = truth_wh[:, 0], truth_wh[:, 1]
    box_weight = {"2 - wh": 2 - w * h, "2 - w - h": 2 - w - h, "2 - w*w": 2 - w * w,
                  "2 - twth": 2 - target[:, 2] * target[:, 3]}[weight] if mutate != "truth_wh" else 2 - w
    box_weight = box_weight * (1 / coord_scale if divide_scale else coord_scale**scale_power)
    if half_inside:
        squared = (0.5 * error) ** 2
    else:
        squared = 0.5 * (error.abs() ** power)
    if only_wh:  # the weight on tw, th only
        per = squared[:, :2].sum(1) + box_weight * squared[:, 2:].sum(1)
    else:
        per = box_weight * (squared.mean(1) if coord_mean or all_mean else squared.sum(1))
    if per_box:
        return per
    total = per.mean() if all_mean else per.sum()
    return total.reshape(1) if keepdim else total


@pytest.mark.parametrize("fn", [coord_loss_mse, coord_loss_einsum], ids=["mse_loss, (K, 1) weight", "einsum, float32"])
def test_coord_loss_checkpoint_passes_more_correct_answers_with_its_usual_output(fn, capsys):
    check_coord_loss(fn)
    assert capsys.readouterr().out == ("coord loss with the (2 - w*h) weight, summed over the boxes ... ok\n"
                                       "its gradient is minus Darknet's delta ... ok\n")


@pytest.mark.parametrize(
    ("switches", "message"),
    [
        ({"weight": "2 - w - h"}, r"boxes, coord_scale=.*\): expected"),
        ({"weight": "2 - w*w"}, r"boxes, coord_scale=.*\): expected"),
        ({"weight": "2 - twth"}, r"boxes, coord_scale=.*\): expected"),
        ({"only_wh": True}, r"boxes, coord_scale=.*\): expected"),
        ({"power": 1}, r"boxes, coord_scale=.*\): expected"),
        ({"scale_power": 2}, r"boxes, coord_scale=.*\): expected"),
        ({"divide_scale": True}, r"boxes, coord_scale=.*\): expected"),
        ({"coord_mean": True}, "sum the four coordinates"),
        ({"all_mean": True}, "sum the four coordinates and the boxes"),
        ({"half_inside": True}, r"boxes, coord_scale=.*\): expected"),
        ({"keepdim": True}, "expected a scalar tensor"),
        ({"per_box": True}, "expected a scalar tensor"),
        ({"mutate": "target"}, "modified in place"),
        ({"mutate": "truth_wh"}, "modified in place"),
    ],
    ids=["2 - w - h", "2 - w * w", "weight from tw, th", "weight on tw, th only", "absolute error",
         "coord_scale squared", "divided by coord_scale", "mean over the coordinates", "mean over everything",
         "half inside the square", "shape (1,)", "one loss per box", "writes into target", "writes into truth_wh"],
)
def test_coord_loss_checkpoint_fails_the_second_trials_wrong_answers(switches, message):
    with pytest.raises(CheckpointError, match=message):
        check_coord_loss(lambda p, t, wh, coord_scale=1.0: coord_loss_wrong(p, t, wh, coord_scale, **switches))
