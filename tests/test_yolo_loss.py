"""The YOLOv3 loss (``yolo_lessons.yolo_loss``) against Darknet's [yolo] layers."""

from __future__ import annotations

import math
import random

import pytest
import torch
import torch.nn.functional as F
from darknet_yolo_port import darknet_yolo_delta

from yolo_lessons.losses.yolo_loss import (
    IGNORE_THRESH,
    PART_NAMES,
    TRUTH_THRESH,
    VOC_IGNORE_THRESH,
    _bce_with_logits,
    assign_yolo_targets,
    yolo_loss,
)
from yolo_lessons.models.yolov3 import ANCHOR_MASKS, COCO_ANCHORS

LN2 = math.log(2.0)  # BCE of a zero logit, whatever the target: softplus(0) - target * 0


def shape_iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    """IoU of two (w, h) shapes centred on each other."""
    inter = min(a[0], b[0]) * min(a[1], b[1])
    return inter / (a[0] * a[1] + b[0] * b[1] - inter)


def best_anchor(w: float, h: float, anchors, net_h: int, net_w: int) -> int:
    ious = [shape_iou((w, h), (aw / net_w, ah / net_h)) for aw, ah in anchors]
    return ious.index(max(ious))


def random_case(seed: int) -> dict:
    """A random batch of 2 or 3 heads. Image 0 always holds: row 0; row 1 on row 0's
    prediction (same head, cell and anchor) with another class; row 2 on the image edge;
    row 3 on row 0's prediction again with row 0's class. Other images have 0..M truths;
    padding rows hold garbage. Masks split the anchors in a random order."""
    rng = random.Random(seed)
    n, c, m = rng.randint(1, 3), rng.randint(1, 4), rng.randint(4, 6)
    heads = rng.randint(2, 3)
    sizes = [rng.randint(1, 3) for _ in range(heads)]
    order = list(range(sum(sizes)))
    rng.shuffle(order)
    masks = [tuple(order[sum(sizes[:s]) : sum(sizes[: s + 1])]) for s in range(heads)]
    net_h, net_w = 32 * rng.randint(2, 6), 32 * rng.randint(2, 6)
    anchors = [(rng.uniform(4, 0.9 * net_w), rng.uniform(4, 0.9 * net_h)) for _ in order]
    grids = [(rng.randint(1, 5), rng.randint(1, 5)) for _ in range(heads)]
    if seed % 3 == 0:
        grids[0] = (2, 5) if seed % 2 else (4, 3)  # H != W for sure
    counts = [4] + [rng.randint(0, m) for _ in range(n - 1)]
    # Garbage padding that must not matter: an out-of-range class 99 with a whole-image box
    # (which would make many predictions "ignored" if it were read), and a row of NaN.
    truths = torch.tensor([99.0, 0.5, 0.5, 1.0, 1.0], dtype=torch.float64).repeat(n, m, 1)
    truths[:, -1] = float("nan")
    for b in range(n):
        for t in range(counts[b]):
            truths[b, t] = torch.tensor(
                [rng.randrange(c), rng.random(), rng.random(), rng.uniform(0.02, 0.9), rng.uniform(0.02, 0.9)]
            )
    # Rows 1 and 3 of image 0: same shape (so same anchor and head) and cell as row 0.
    anchor = best_anchor(truths[0, 0, 3].item(), truths[0, 0, 4].item(), anchors, net_h, net_w)
    gh, gw = next(grids[s] for s, mask in enumerate(masks) if anchor in mask)
    col, row = int(truths[0, 0, 1] * gw), int(truths[0, 0, 2] * gh)
    for t, cls in ((1, (truths[0, 0, 0] + 1) % c), (3, truths[0, 0, 0])):
        truths[0, t, 0] = cls
        truths[0, t, 1] = (col + rng.random()) / gw
        truths[0, t, 2] = (row + rng.random()) / gh
        truths[0, t, 3:] = truths[0, 0, 3:]
    # Row 2 of image 0: on the right edge, the bottom edge, or the corner.
    truths[0, 2, 1 + seed % 2] = 1.0
    if seed % 4 == 3:
        truths[0, 2, 1:3] = 1.0
    gen = torch.Generator().manual_seed(seed)
    outputs = [
        1.5 * torch.randn(n, len(mask) * (5 + c), gh, gw, generator=gen, dtype=torch.float64)
        for mask, (gh, gw) in zip(masks, grids, strict=True)
    ]
    # On every other head, make slot 0 of row 0's cell there decode to row 0's box: IoU near 1,
    # so the ignore rule (and truth_thresh, when on) fires for a truth that head does not train.
    for s, (mask, (gh, gw)) in enumerate(zip(masks, grids, strict=True)):
        if anchor not in mask:
            cx, cy, tw, th = truths[0, 0, 1:].tolist()
            i, j = int(cx * gw), int(cy * gh)
            fx, fy = (min(max(v, 0.01), 0.99) for v in (cx * gw - i, cy * gh - j))
            outputs[s][0, 0:4, j, i] = torch.tensor([math.log(fx / (1 - fx)), math.log(fy / (1 - fy)),
                                                     math.log(tw * net_w / anchors[mask[0]][0]),
                                                     math.log(th * net_h / anchors[mask[0]][1])])
    options = {
        "ignore_thresh": (IGNORE_THRESH, VOC_IGNORE_THRESH)[seed % 2],
        # Every fourth case turns Darknet's truth_thresh branch on (yolov3.cfg has it off at 1).
        "truth_thresh": TRUTH_THRESH if seed % 4 != 1 else 0.55,
    }
    return {"outputs": outputs, "truths": truths, "counts": counts, "anchors": anchors, "masks": masks,
            "num_classes": c, "image_size": (net_h, net_w), **options}


POSITIONAL = ("outputs", "truths", "counts", "anchors", "masks", "num_classes", "image_size")


def call(case: dict, **changes):
    kwargs = {**case, **changes}
    args = [kwargs.pop(k) for k in POSITIONAL]
    return yolo_loss(*args, **kwargs)


def port(case: dict) -> list[torch.Tensor]:
    return darknet_yolo_delta(case["outputs"], case["truths"], case["counts"], case["anchors"], case["masks"],
                              case["num_classes"], *case["image_size"], ignore_thresh=case["ignore_thresh"],
                              truth_thresh=case["truth_thresh"])


PORT_SEEDS = range(24)


@pytest.mark.parametrize("seed", PORT_SEEDS)
def test_deltas_equal_an_index_by_index_port_of_darknet_forward_yolo_layer(seed):
    case = random_case(seed)
    deltas = call(case).deltas
    expected = port(case)
    assert len(deltas) == len(expected) == len(case["outputs"])
    for delta, want, output in zip(deltas, expected, case["outputs"], strict=True):
        assert delta.shape == output.shape
        torch.testing.assert_close(delta, want, rtol=0, atol=1e-12)


def obj_deltas(case: dict, deltas) -> list[torch.Tensor]:
    """(N, A, H, W) objectness deltas of each head."""
    c = case["num_classes"]
    return [d.reshape(d.shape[0], -1, 5 + c, *d.shape[2:])[:, :, 4] for d in deltas]


def test_random_port_cases_cover_scales_edges_shared_cells_and_both_thresholds():
    cases = [random_case(seed) for seed in PORT_SEEDS]
    assert {c["ignore_thresh"] for c in cases} == {0.7, 0.5}
    assert any(c["outputs"][0].shape[2] != c["outputs"][0].shape[3] for c in cases)
    assert {len(c["outputs"]) for c in cases} == {2, 3}
    assert any(len(c["counts"]) > 1 and 0 in c["counts"][1:] for c in cases)  # an image with no truths
    ignored_by_another_heads_truth = truth_thresh_fired = spread = multi_hot = 0
    for c in cases:
        grids = [tuple(o.shape[2:]) for o in c["outputs"]]
        where = assign_yolo_targets(c["truths"], c["counts"], c["anchors"], c["masks"], c["image_size"], grids)
        first = where.image == 0
        spread += len(set(where.scale[first].tolist())) > 1  # image 0's truths on several heads
        # Rows 0, 1, 3 of image 0 share a prediction: ranks 0, 1, 2, and only row 3 keeps its box.
        assert where.rank[first][[0, 1, 3]].tolist() == [0, 1, 2]
        assert where.box_kept[first][[0, 1, 3]].tolist() == [False, False, True]
        multi_hot += c["num_classes"] > 1
        result = call(c)
        for s, obj in enumerate(obj_deltas(c, result.deltas)):
            trained_here = set(where.image[where.scale == s].tolist())
            for b in range(len(c["counts"])):
                zero = int((obj[b] == 0).sum())  # ignored: sigma is never exactly 0 here
                ignored_by_another_heads_truth += zero if b not in trained_here else 0
            on_head = where.scale == s
            assigned = set(zip(*(f[on_head].tolist() for f in (where.image, where.slot, where.row, where.col)),
                               strict=True))
            truth_thresh_fired += int((obj > 0).sum()) - len(assigned)  # positives beyond pass 2's
    assert spread > 0 and multi_hot > 0
    assert ignored_by_another_heads_truth > 0  # a head ignores predictions for truths it does not train
    assert truth_thresh_fired > 0  # more positives than assigned truths: the truth_thresh branch


@pytest.mark.parametrize("seed", range(8))
def test_autograd_gradient_of_the_loss_is_minus_delta(seed):
    case = random_case(100 + seed)
    outputs = [o.clone().requires_grad_(True) for o in case["outputs"]]
    result = call(case, outputs=outputs)
    result.loss.backward()
    for output, delta in zip(outputs, result.deltas, strict=True):
        torch.testing.assert_close(output.grad, -delta, rtol=0, atol=1e-10)


@pytest.mark.parametrize("seed", range(4))
def test_parts_are_scalars_that_sum_to_the_loss_over_parts_and_heads(seed):
    result = call(random_case(200 + seed))
    assert tuple(result.parts) == PART_NAMES == ("coord", "obj", "noobj", "class")
    assert all(p.shape == () for p in result.parts.values())
    torch.testing.assert_close(sum(result.parts.values()), result.loss, rtol=1e-12, atol=0)
    for name in PART_NAMES:
        total = sum(p[name] for p in result.scale_parts)
        torch.testing.assert_close(total, result.parts[name], rtol=1e-12, atol=0)


@pytest.mark.parametrize("seed", range(6))
def test_each_truth_is_a_positive_on_exactly_one_head(seed):
    case = random_case(300 + seed)
    case["truth_thresh"] = 1.0
    grids = [tuple(o.shape[2:]) for o in case["outputs"]]
    where = assign_yolo_targets(case["truths"], case["counts"], case["anchors"], case["masks"],
                                case["image_size"], grids)
    predictions = set(zip(*(f.tolist() for f in (where.image, where.scale, where.slot, where.row, where.col)),
                          strict=True))
    # A positive's objectness delta is 1 - sigma > 0; every other one is -sigma < 0 or 0.
    positives = sum(int((obj > 0).sum()) for obj in obj_deltas(case, call(case).deltas))
    assert positives == len(predictions)  # one per truth, fewer only where truths share one


# A hand case: a 64x64 input, two heads. Head 0: 2x2 grid, mask (1,), anchor 1 = 32x32 pixels
# (0.5 x 0.5 of the image). Head 1: 4x4 grid, mask (0,), anchor 0 = 16x16 pixels (0.25 x 0.25).
# 2 classes, all raw outputs 0: sigma = 0.5, tw = th = 0, so every decoded box is centred in
# its cell with its anchor's size. One truth: class 1, centre (0.625, 0.375), size 0.5 x 0.375.
HAND_ANCHORS = [(16.0, 16.0), (32.0, 32.0)]
HAND_MASKS = [(1,), (0,)]
HAND_TRUTHS = torch.tensor([[[1.0, 0.625, 0.375, 0.5, 0.375]]], dtype=torch.float64)


def hand_outputs(classes: int = 2) -> list[torch.Tensor]:
    return [torch.zeros(1, 5 + classes, 2, 2, dtype=torch.float64),
            torch.zeros(1, 5 + classes, 4, 4, dtype=torch.float64)]


def hand_loss(outputs=None, truths=HAND_TRUTHS, classes: int = 2, **options):
    outputs = hand_outputs(classes) if outputs is None else outputs
    return yolo_loss(outputs, truths, [truths.shape[1]], HAND_ANCHORS, HAND_MASKS, classes, (64, 64), **options)


def test_hand_truth_goes_to_the_anchor_of_best_shape_iou_on_its_head():
    where = assign_yolo_targets(HAND_TRUTHS, [1], HAND_ANCHORS, HAND_MASKS, 64, [(2, 2), (4, 4)])
    # Shape IoU with anchor 0 (0.25 x 0.25): 0.0625 / (0.1875 + 0.0625 - 0.0625) = 1/3; with
    # anchor 1 (0.5 x 0.5): 0.1875 / 0.25 = 0.75. Anchor 1 is head 0's; its cell on the 2x2
    # grid: i = int(0.625*2) = 1, j = int(0.375*2) = 0.
    assert where.anchor.tolist() == [1] and where.scale.tolist() == [0] and where.slot.tolist() == [0]
    assert (where.row.tolist(), where.col.tolist()) == ([0], [1])
    assert where.shape_iou.tolist() == [0.75]
    assert where.rank.tolist() == [0] and where.box_kept.tolist() == [True]


def test_one_truth_on_a_zero_output_gives_the_hand_computed_delta():
    d0, d1 = (d.reshape(5 + 2, *d.shape[2:]) for d in hand_loss().deltas)  # (entry, row, col)
    # Targets: tx = 1.25 - 1 = 0.25, ty = 0.75 - 0 = 0.75 cells, tw = ln(0.5*64/32) = 0,
    # th = ln(0.375*64/32) = ln 0.75; weight 2 - 0.5*0.375 = 1.8125. No sigmoid slope.
    assert d0[:, 0, 1].tolist()[:3] == [1.8125 * (0.25 - 0.5), 1.8125 * (0.75 - 0.5), 0.0]
    assert d0[3, 0, 1].item() == pytest.approx(1.8125 * math.log(0.75), abs=1e-15)
    assert d0[4:, 0, 1].tolist() == [0.5, -0.5, 0.5]  # objectness 1 - 0.5; classes onehot - 0.5
    # Every other prediction of both heads: objectness 0 - 0.5, nothing else (none ignored:
    # the best other IoU is 0.366 on head 0 and 1/3 on head 1, below 0.7).
    others = torch.ones(2, 2, dtype=torch.bool)
    others[0, 1] = False
    assert (d0[4][others] == -0.5).all() and (d1[4] == -0.5).all()
    assert (d0[:4, others] == 0).all() and (d0[5:, others] == 0).all()
    assert (d1[:4] == 0).all() and (d1[5:] == 0).all()


def test_one_truth_on_a_zero_output_gives_the_hand_computed_parts():
    parts = {k: v.item() for k, v in hand_loss().parts.items()}
    # BCE of a zero logit is ln 2 for any target: coord = 1.8125 * (2 ln 2 + ln(0.75)**2 / 2).
    assert parts["coord"] == pytest.approx(1.8125 * (2 * LN2 + math.log(0.75) ** 2 / 2), abs=1e-14)
    assert parts["coord"] == pytest.approx(2.58766066, abs=1e-8)
    assert parts["obj"] == pytest.approx(LN2, abs=1e-15)
    assert parts["class"] == pytest.approx(2 * LN2, abs=1e-15)  # two independent sigmoids
    assert parts["noobj"] == pytest.approx(19 * LN2, abs=1e-13)  # 4 + 16 predictions, 1 positive


def test_ignore_rule_counts_truths_trained_on_another_head_and_needs_iou_above_thresh():
    # Head 1's box at row 1, column 2 is (0.625, 0.375, 0.25, 0.25), inside the truth: IoU
    # 0.0625 / 0.1875 = 1/3, exactly. The truth is trained on head 0, yet head 1 ignores it.
    def head1_obj(thresh):
        return hand_loss(ignore_thresh=thresh).deltas[1].reshape(7, 4, 4)[4]

    assert (head1_obj(1 / 3) == -0.5).all()  # IoU 1/3 is not > 1/3
    ignored = head1_obj(0.33)
    assert ignored[1, 2].item() == 0.0
    assert int((ignored == -0.5).sum()) == 15
    assert hand_loss(ignore_thresh=0.33).parts["noobj"].item() == pytest.approx(18 * LN2, abs=1e-13)


def test_truth_thresh_makes_a_well_overlapping_prediction_a_second_positive():
    # truth_thresh = 0.3 (< 1/3): head 1's box at row 1, column 2 is trained on the truth too,
    # with targets from its own cell: tx = 0.625*4 - 2 = 0.5, ty = 0.375*4 - 1 = 0.5,
    # tw = ln(0.5*64/16) = ln 2, th = ln(0.375*64/16) = ln 1.5, weight 1.8125.
    d1 = hand_loss(truth_thresh=0.3).deltas[1].reshape(7, 4, 4)
    assert d1[:2, 1, 2].tolist() == [0.0, 0.0]
    assert d1[2, 1, 2].item() == pytest.approx(1.8125 * math.log(2.0), abs=1e-15)
    assert d1[3, 1, 2].item() == pytest.approx(1.8125 * math.log(1.5), abs=1e-15)
    assert d1[4:, 1, 2].tolist() == [0.5, -0.5, 0.5]
    assert hand_loss(truth_thresh=0.34).deltas[1].reshape(7, 4, 4)[4, 1, 2].item() == -0.5  # 1/3 < 0.34


def two_truths(first_class: float, second_class: float) -> torch.Tensor:
    # Both on head 0's prediction at row 0, column 1 (same shape, so same anchor).
    return torch.tensor([[[first_class, 0.625, 0.375, 0.5, 0.375],
                          [second_class, 0.9, 0.1, 0.5, 0.375]]], dtype=torch.float64)


def test_a_second_truth_on_the_same_prediction_adds_its_class_and_replaces_the_box():
    d0 = hand_loss(truths=two_truths(0.0, 2.0), classes=3).deltas[0].reshape(8, 2, 2)
    assert d0[5:, 0, 1].tolist() == [0.5, -0.5, 0.5]  # multi-hot: classes 0 and 2 toward 1
    # The box is the second truth's: tx = 0.9*2 - 1 = 0.8, ty = 0.1*2 = 0.2 cells.
    assert d0[:2, 0, 1].tolist() == pytest.approx([1.8125 * 0.3, 1.8125 * -0.3], abs=1e-15)
    alone = hand_loss(truths=two_truths(0.0, 2.0)[:, 1:], classes=3).deltas[0].reshape(8, 2, 2)
    torch.testing.assert_close(d0[:5], alone[:5], rtol=0, atol=0)
    same = hand_loss(truths=two_truths(1.0, 1.0), classes=3).deltas[0].reshape(8, 2, 2)
    assert same[5:, 0, 1].tolist() == [-0.5, 0.5, -0.5]  # the same class twice: one-hot


def test_a_saturated_class_zero_probability_makes_the_second_truth_start_a_fresh_one_hot():
    # With logit 50, sigma = 1.0 exactly in float64: the first truth (class 0) writes the
    # class-0 delta 1 - 1 = 0, so delta_yolo_class's `if (delta[index])` sees a fresh cell and
    # the second truth (class 2) writes the whole one-hot: class 0 toward 0, delta 0 - 1.
    outputs = hand_outputs(3)
    outputs[0][0, 5, 0, 1] = 50.0
    truths = two_truths(0.0, 2.0)
    delta = hand_loss(outputs, truths, classes=3).deltas
    assert delta[0].reshape(8, 2, 2)[5:, 0, 1].tolist() == [-1.0, -0.5, 0.5]
    expected = darknet_yolo_delta(outputs, truths, [2], HAND_ANCHORS, HAND_MASKS, 3, 64, 64)
    for got, want in zip(delta, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    outputs[0][0, 5, 0, 1] = 5.0  # not saturated: multi-hot, class 0 toward 1
    assert hand_loss(outputs, truths, classes=3).deltas[0].reshape(8, 2, 2)[5, 0, 1].item() > 0


def test_equal_shape_iou_picks_the_first_anchor_whichever_head_holds_it():
    # A 0.5 x 0.25 truth: IoU 0.0625/0.125 = 0.5 with anchor 0 and 0.125/0.25 = 0.5 with
    # anchor 1. Darknet keeps the first best (`if (iou > best_iou)`): anchor 0, on head 1.
    truths = torch.tensor([[[0.0, 0.3, 0.3, 0.5, 0.25]]], dtype=torch.float64)
    where = assign_yolo_targets(truths, [1], HAND_ANCHORS, HAND_MASKS, 64, [(2, 2), (4, 4)])
    assert where.anchor.tolist() == [0] and where.scale.tolist() == [1]
    assert where.shape_iou.tolist() == [0.5]


def test_coco_anchors_send_small_boxes_to_the_fine_head_and_large_ones_to_the_coarse_head():
    # yolov3.cfg at 416x416: heads of 13, 26, 52 cells with masks 6,7,8 / 3,4,5 / 0,1,2.
    truths = torch.tensor([[[0.0, 0.5, 0.5, 10 / 416, 13 / 416],  # exactly anchor 0 (10x13 px)
                            [0.0, 0.5, 0.5, 62 / 416, 45 / 416],  # exactly anchor 4 (62x45 px)
                            [0.0, 0.99, 0.2, 0.9, 0.8]]], dtype=torch.float64)  # nearest 373x326: 8
    where = assign_yolo_targets(truths, [3], COCO_ANCHORS, ANCHOR_MASKS, 416, [(13, 13), (26, 26), (52, 52)])
    assert where.anchor.tolist() == [0, 4, 8]
    assert where.scale.tolist() == [2, 1, 0]  # the 52-, 26- and 13-cell heads
    assert where.slot.tolist() == [0, 1, 2]  # places in (0, 1, 2), (3, 4, 5), (6, 7, 8)
    assert where.col.tolist() == [26, 13, 12]  # int(0.5*52), int(0.5*26), int(0.99*13)
    assert where.row.tolist() == [26, 13, 2]  # int(0.2*13) = 2
    assert where.shape_iou[:2].tolist() == [1.0, 1.0]


def test_truth_on_the_right_and_bottom_edge_lands_in_the_last_cell():
    # cx = cy = 1.0 on head 1's 4x4 grid: Darknet's i = (int)(1.0*4) = 4 is off the grid and
    # entry_index would land on another anchor's or image's memory; we use the last cell, 3.
    truths = torch.tensor([[[0.0, 1.0, 1.0, 0.25, 0.25]]], dtype=torch.float64)  # anchor 0
    delta = hand_loss(truths=truths).deltas[1].reshape(7, 4, 4)
    # Targets x = y = 1.0*4 - 3 = 1 cell: delta (2 - 0.0625) * (1 - 0.5) = 0.96875.
    assert delta[:2, 3, 3].tolist() == [0.96875, 0.96875]
    assert delta[:2].count_nonzero().item() == 2  # nowhere else
    where = assign_yolo_targets(truths, [1], HAND_ANCHORS, HAND_MASKS, 64, [(2, 2), (4, 4)])
    assert (where.row.tolist(), where.col.tolist()) == ([3], [3])


def test_bce_term_equals_torch_binary_cross_entropy_with_logits_and_its_gradient_is_sigmoid_minus_target():
    logits = torch.linspace(-60, 60, 241, dtype=torch.float64).repeat(3).requires_grad_(True)
    target = torch.tensor([0.0, 0.3, 1.0], dtype=torch.float64).repeat_interleave(241)
    ours = _bce_with_logits(logits, target)
    torch.testing.assert_close(ours, F.binary_cross_entropy_with_logits(logits, target, reduction="none"),
                               rtol=1e-12, atol=1e-12)
    ours.sum().backward()
    torch.testing.assert_close(logits.grad, torch.sigmoid(logits.detach()) - target, rtol=0, atol=1e-15)


def test_padding_rows_are_ignored_whatever_they_hold():
    case = random_case(13)
    clean = case["truths"].clone()
    for b, count in enumerate(case["counts"]):
        clean[b, count:] = 0.0
    garbage = call(case)  # the case's padding holds class 99, whole-image boxes and NaN
    zeros = call(case, truths=clean)
    for a, b in zip(garbage.deltas, zeros.deltas, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert garbage.loss.item() == zeros.loss.item()


def test_loss_is_summed_over_the_batch():
    single = hand_loss()
    pair = yolo_loss([torch.cat([o] * 2) for o in hand_outputs()], torch.cat([HAND_TRUTHS] * 2), [1, 1],
                     HAND_ANCHORS, HAND_MASKS, 2, 64)
    assert pair.loss.item() == pytest.approx(2 * single.loss.item(), abs=1e-13)


def test_non_square_input_divides_anchor_widths_by_net_width_and_heights_by_net_height():
    # A 64-high, 128-wide input: anchor 1 (32x32 px) is 0.25 x 0.5 of the image, anchor 0 is
    # 0.125 x 0.25. A 0.25 x 0.5 truth matches anchor 1 exactly; tw = ln(0.25*128/32) = 0.
    truths = torch.tensor([[[0.0, 0.6, 0.4, 0.25, 0.5]]], dtype=torch.float64)
    where = assign_yolo_targets(truths, [1], HAND_ANCHORS, HAND_MASKS, (64, 128), [(2, 2), (4, 4)])
    assert where.anchor.tolist() == [1] and where.shape_iou.tolist() == [1.0]
    result = yolo_loss(hand_outputs(), truths, [1], HAND_ANCHORS, HAND_MASKS, 2, (64, 128))
    assert result.deltas[0].reshape(7, 2, 2)[2:4, 0, 1].tolist() == [0.0, 0.0]


def test_inputs_are_not_modified():
    case = random_case(11)
    outputs = [o.clone().requires_grad_(True) for o in case["outputs"]]
    anchors = torch.tensor(case["anchors"], dtype=torch.float64)
    counts = torch.tensor(case["counts"])
    before = [t.detach().clone() for t in (*outputs, case["truths"], anchors, counts)]
    result = call(case, outputs=outputs, anchors=anchors, counts=counts)
    result.loss.backward()
    for old, new in zip(before, (*outputs, case["truths"], anchors, counts), strict=True):
        torch.testing.assert_close(new.detach(), old, rtol=0, atol=0, equal_nan=True)


def test_float32_outputs_give_float32_loss_and_deltas_close_to_float64():
    case = random_case(5)
    result64 = call(case)
    result32 = call(case, outputs=[o.float() for o in case["outputs"]], truths=case["truths"].float())
    assert result32.loss.dtype == torch.float32
    for d32, d64 in zip(result32.deltas, result64.deltas, strict=True):
        assert d32.dtype == torch.float32
        torch.testing.assert_close(d32.double(), d64, rtol=0, atol=1e-4)


def error_case(**changes):
    return {"outputs": hand_outputs(), "truths": HAND_TRUTHS.clone(), "counts": [1], "anchors": HAND_ANCHORS,
            "masks": HAND_MASKS, "num_classes": 2, "image_size": 64, **changes}


def with_truth(row):
    return torch.tensor([[row]], dtype=torch.float64)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"truths": with_truth([0.0, 1.5, 0.5, 0.2, 0.2])}, r"\[0, 1\], got \[1.5, 0.5, 0.2, 0.2\]"),
        ({"truths": with_truth([0.0, 0.5, 0.5, 0.0, 0.2])}, r"w and h must be > 0, got w, h = \[0.0, 0.2\]"),
        ({"truths": with_truth([2.0, 0.5, 0.5, 0.2, 0.2])}, r"integers in \[0, 1\], got 2.0"),
        ({"truths": with_truth([0.5, 0.5, 0.5, 0.2, 0.2])}, r"integers in \[0, 1\], got 0.5"),
        ({"num_classes": 3}, r"head 0 has mask \(1,\): 1 anchors and 3 classes make 1 \* \(5 \+ 3\) = 8 channels, "
                             r"got 7"),
        ({"masks": [(0, 1), ()]}, r"every anchor index 0..1 exactly once"),
        ({"masks": [(1,), (1,)]}, r"every anchor index 0..1 exactly once.*got \(\(1,\), \(1,\)\)"),
        ({"masks": [(1,), (2,)]}, r"every anchor index 0..1 exactly once"),
        ({"masks": [(0, 1)]}, r"got 2 head outputs but 1 anchor masks"),
        ({"masks": [1, 0]}, r"masks must be sequences of anchor indices"),
        ({"outputs": hand_outputs()[:1]}, r"got 1 head outputs but 2 anchor masks"),
        ({"outputs": hand_outputs()[0]}, r"outputs must be a list or tuple of head outputs"),
        ({"outputs": [hand_outputs()[0], torch.zeros(7, 4, 4)]}, r"outputs\[1\] must be a floating .*got \(7, 4, 4\)"),
        ({"outputs": [hand_outputs()[0], torch.zeros(2, 7, 4, 4, dtype=torch.float64)]},
         r"share the batch size, dtype and device of outputs\[0\] \(1, torch.float64, cpu\), outputs\[1\] has \(2,"),
        ({"outputs": [hand_outputs()[0], torch.zeros(1, 7, 4, 4)]}, r"outputs\[1\] has \(1, torch.float32, cpu\)"),
        ({"anchors": [(16.0, 16.0)]}, r"every anchor index 0..0 exactly once"),
        ({"anchors": [(16.0, 0.0), (32.0, 32.0)]}, r"anchor widths and heights must be > 0 pixels"),
        ({"anchors": [16.0, 32.0]}, r"anchors must be \(T, 2\).*got shape \(2,\)"),
        ({"image_size": (64,)}, r"image_size must be the network input \(height, width\) in pixels, got \(64,\)"),
        ({"image_size": 0}, r"image_size must be .* got 0"),
        ({"image_size": 64.0}, r"image_size must be .* got 64.0"),
        ({"counts": [2]}, r"counts must lie in \[0, M=1\].*got \[2\]"),
        ({"counts": [1.0]}, r"counts must be \(1,\) integers, got shape \(1,\) of torch.float32"),
        ({"truths": torch.zeros(1, 1, 4)}, r"truths must be \(1, M, 5\).*got shape \(1, 1, 4\)"),
        ({"num_classes": 0}, r"num_classes must be a positive int, got 0"),
        ({"ignore_thresh": 1.5}, r"ignore_thresh must be a number in \[0, 1\] \(an IoU\), got 1.5"),
        ({"truth_thresh": -0.1}, r"truth_thresh must be a number in \[0, 1\] \(an IoU\), got -0.1"),
        ({"ignore_thresh": True}, r"ignore_thresh must be a number in \[0, 1\] \(an IoU\), got True"),
    ],
)
def test_bad_arguments_raise_value_errors_naming_what_came(changes, message):
    kwargs = error_case(**changes)
    with pytest.raises(ValueError, match=message):
        args = [kwargs.pop(k) for k in POSITIONAL]
        yolo_loss(*args, **kwargs)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"grid_sizes": [(2, 2)]}, r"grid_sizes must be one \(H, W\) in grid cells per mask \(2\)"),
        ({"grid_sizes": [(2, 2), (0, 4)]}, r"grid_sizes must be one \(H, W\)"),
        ({"masks": [(0,), (0,)]}, r"every anchor index 0..1 exactly once"),
        ({"truths": with_truth([-1.0, 0.5, 0.5, 0.2, 0.2])}, r"integers in \[0, inf\), got -1.0"),
    ],
)
def test_assign_yolo_targets_rejects_bad_arguments(changes, message):
    kwargs = {"truths": HAND_TRUTHS, "counts": [1], "anchors": HAND_ANCHORS, "masks": HAND_MASKS,
              "image_size": 64, "grid_sizes": [(2, 2), (4, 4)], **changes}
    with pytest.raises(ValueError, match=message):
        assign_yolo_targets(**kwargs)
