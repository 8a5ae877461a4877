"""The YOLOv2 loss (``yolo_lessons.region_loss``) against Darknet's [region] layer."""

from __future__ import annotations

import math
import random

import pytest
import torch

from yolo_lessons.losses.region_loss import PART_NAMES, region_loss
from yolo_lessons.losses.region_port import darknet_region_delta

SEEN_VALUES = (0, 12799, 12800, 50000)  # both sides of Darknet's `if(*(net.seen) < 12800)`


def random_case(seed: int) -> dict:
    """A random batch that always holds, in image 0, two truths on one (cell, anchor) and a
    truth on the image edge; other images have 0..M truths; padding rows hold garbage."""
    rng = random.Random(seed)
    n, a, c = rng.randint(1, 3), rng.randint(1, 5), rng.randint(1, 4)
    h, w = rng.randint(1, 5), rng.randint(1, 5)
    if seed % 3 == 0:
        h, w = (2, 5) if seed % 2 else (4, 3)  # H != W for sure
    m = rng.randint(3, 6)
    anchors = [(rng.uniform(0.3, 3.0), rng.uniform(0.3, 3.0)) for _ in range(a)]
    counts = [3] + [rng.randint(0, m) for _ in range(n - 1)]
    # Garbage padding that must not matter: an out-of-range class 99 with a whole-image box
    # (which would make many predictions "ignored" if it were read), and a row of NaN.
    truths = torch.tensor([99.0, 0.5, 0.5, 1.0, 1.0], dtype=torch.float64).repeat(n, m, 1)
    truths[:, -1] = float("nan")
    for b in range(n):
        for t in range(counts[b]):
            truths[b, t] = torch.tensor(
                [rng.randrange(c), rng.random(), rng.random(), rng.uniform(0.05, 0.9), rng.uniform(0.05, 0.9)]
            )
    # Row 1 of image 0: same cell and same shape (so same anchor) as row 0, another class.
    col, row = min(int(truths[0, 0, 1] * w), w - 1), min(int(truths[0, 0, 2] * h), h - 1)
    truths[0, 1] = truths[0, 0]
    truths[0, 1, 0] = (truths[0, 0, 0] + 1) % c
    truths[0, 1, 1] = (col + rng.random()) / w
    truths[0, 1, 2] = (row + rng.random()) / h
    # Row 2 of image 0: on the right edge, the bottom edge, or the corner.
    truths[0, 2, 1 + seed % 2] = 1.0
    if seed % 4 == 3:
        truths[0, 2, 1:3] = 1.0
    gen = torch.Generator().manual_seed(seed)
    output = 1.5 * torch.randn(n, a * (5 + c), h, w, generator=gen, dtype=torch.float64)
    options = {
        "seen": SEEN_VALUES[seed % 4],
        "rescore": (seed // 4) % 2 == 0,
        "bias_match": (seed // 8) % 2 == 0,
        "thresh": rng.uniform(0.3, 0.7),
        "object_scale": rng.choice([5.0, 2.5]),
        "noobject_scale": rng.choice([1.0, 0.5]),
        "class_scale": rng.choice([1.0, 2.0]),
        "coord_scale": rng.choice([1.0, 3.0]),
    }
    return {"output": output, "truths": truths, "counts": counts, "anchors": anchors, "num_classes": c, **options}


def call(case: dict, **changes):
    kwargs = {**case, **changes}
    return region_loss(kwargs.pop("output"), kwargs.pop("truths"), kwargs.pop("counts"), kwargs.pop("anchors"),
                       kwargs.pop("num_classes"), **kwargs)


PORT_SEEDS = range(24)


@pytest.mark.parametrize("seed", PORT_SEEDS)
def test_delta_equals_an_index_by_index_port_of_darknet_forward_region_layer(seed):
    case = random_case(seed)
    expected = darknet_region_delta(case["output"], case["truths"], case["counts"], case["anchors"],
                                    case["num_classes"], **{k: case[k] for k in (
                                        "seen", "rescore", "bias_match", "thresh", "object_scale",
                                        "noobject_scale", "class_scale", "coord_scale")})
    delta = call(case).delta
    assert delta.shape == case["output"].shape
    torch.testing.assert_close(delta, expected, rtol=0, atol=1e-12)


def test_random_port_cases_cover_every_option_and_the_ignore_rule():
    cases = [random_case(seed) for seed in PORT_SEEDS]
    assert {c["seen"] for c in cases} == set(SEEN_VALUES)
    assert {(c["rescore"], c["bias_match"]) for c in cases} == {(r, b) for r in (True, False) for b in (True, False)}
    assert any(c["output"].shape[2] != c["output"].shape[3] for c in cases)
    assert any(len(c["counts"]) > 1 and 0 in c["counts"][1:] for c in cases)  # an image with no truths
    assert any(len(c["counts"]) > 1 and max(c["counts"][1:]) > 0 for c in cases)  # several images with truths
    # The ignore rule fired somewhere: an objectness delta exactly 0 (sigma is never 0).
    ignored = 0
    for c in cases:
        a = len(c["anchors"])
        obj = call(c).delta.reshape(len(c["counts"]), a, 5 + c["num_classes"], *c["output"].shape[2:])[:, :, 4]
        ignored += int((obj == 0).sum())
    assert ignored > 0


@pytest.mark.parametrize("seed", range(8))
def test_autograd_gradient_of_the_loss_is_minus_delta(seed):
    case = random_case(100 + seed)
    output = case["output"].clone().requires_grad_(True)
    result = call(case, output=output)
    result.loss.backward()
    torch.testing.assert_close(output.grad, -result.delta, rtol=0, atol=1e-10)


@pytest.mark.parametrize("seed", range(4))
def test_parts_are_scalars_that_sum_to_the_loss(seed):
    result = call(random_case(200 + seed))
    assert tuple(result.parts) == PART_NAMES == ("coord", "obj", "noobj", "class", "prior")
    assert all(p.shape == () for p in result.parts.values())
    torch.testing.assert_close(sum(result.parts.values()), result.loss, rtol=1e-12, atol=0)


# A hand case: 2x2 grid, anchors (1, 1) and (2, 2) cells, 2 classes, all raw outputs 0, so
# sigma(t) = 0.5, tw = th = 0, softmax = (0.5, 0.5), and every decoded box is centred in its
# cell with its anchor's size. One truth: class 1, centre (0.625, 0.25), size 0.5 x 0.75.
HAND_ANCHORS = [(1.0, 1.0), (2.0, 2.0)]
HAND_TRUTHS = torch.tensor([[[1.0, 0.625, 0.25, 0.5, 0.75]]], dtype=torch.float64)


def hand_output() -> torch.Tensor:
    return torch.zeros(1, 2 * (5 + 2), 2, 2, dtype=torch.float64)


def hand_loss(**options):
    return region_loss(hand_output(), HAND_TRUTHS, [1], HAND_ANCHORS, 2, **{"seen": 0, **options})


def test_one_truth_on_a_zero_output_gives_the_hand_computed_parts():
    parts = {k: v.item() for k, v in hand_loss().parts.items()}
    # Cell: i = int(0.625*2) = 1, j = int(0.25*2) = 0. Anchor shapes as fractions: 0.5x0.5 and
    # 1x1; centred IoU with 0.5x0.75: 0.25/0.375 = 2/3 and 0.375/1 = 0.375, so anchor 0.
    # Targets: tx = 1.25 - 1 = 0.25, ty = 0.5, tw = ln(0.5*2/1) = 0, th = ln(0.75*2/1) = ln 1.5;
    # weight coord_scale*(2 - 0.5*0.75) = 1.625; coord = 1.625/2 * (0.25**2 + ln(1.5)**2).
    assert parts["coord"] == pytest.approx(0.8125 * (0.0625 + math.log(1.5) ** 2), abs=1e-15)
    assert parts["coord"] == pytest.approx(0.18435784, abs=1e-8)
    # Predicted box (0.75, 0.25, 0.5, 0.5) vs truth: overlap 0.375 x 0.5 = 0.1875, union
    # 0.25 + 0.375 - 0.1875 = 0.4375, IoU 3/7; obj = 5/2 * (3/7 - 1/2)**2 = 2.5/196.
    assert parts["obj"] == pytest.approx(2.5 / 196, abs=1e-15)
    # The 7 other predictions have IoU <= 0.375 with the truth (anchor 1 in the same cell:
    # 0.375/1), none above 0.6: noobj = 7 * 1/2 * 0.5**2 = 0.875.
    assert parts["noobj"] == 0.875
    # Softmax of (0, 0) gives 1/2 to class 1: cross-entropy ln 2.
    assert parts["class"] == pytest.approx(math.log(2), abs=1e-15)
    # seen = 0: the prior targets (0.5, 0.5, 0, 0) are exactly the zero output's values.
    assert parts["prior"] == 0.0


def test_one_truth_on_a_zero_output_gives_the_hand_computed_delta():
    delta = hand_loss().delta.reshape(2, 7, 2, 2)  # (anchor, entry, row j, column i)
    # Responsible: anchor 0, j = 0, i = 1. x: 1.625*(0.25 - 0.5)*0.25 (sigma' = 1/4).
    assert delta[0, 0, 0, 1].item() == -0.1015625
    assert delta[0, 1, 0, 1].item() == 0.0  # y target 0.5 = sigma(0)
    assert delta[0, 2, 0, 1].item() == 0.0  # tw target ln 1 = 0
    assert delta[0, 3, 0, 1].item() == pytest.approx(1.625 * math.log(1.5), abs=1e-15)
    assert delta[0, 4, 0, 1].item() == pytest.approx(5 * (3 / 7 - 0.5) * 0.25, abs=1e-15)
    assert delta[0, 5:, 0, 1].tolist() == [-0.5, 0.5]  # class_scale * (onehot - softmax)
    # Every other prediction: objectness 1 * (0 - 0.5) * 0.25, nothing else.
    others = torch.ones(2, 2, 2, dtype=torch.bool)
    others[0, 0, 1] = False
    assert (delta[:, 4][others] == -0.125).all()
    assert (delta[:, :4][others.unsqueeze(1).expand(2, 4, 2, 2)] == 0).all()
    assert (delta[:, 5:][others.unsqueeze(1).expand(2, 2, 2, 2)] == 0).all()


def test_rescore_off_pushes_objectness_toward_one():
    assert hand_loss(rescore=False).parts["obj"].item() == 0.625  # 5/2 * (1 - 0.5)**2


def test_ignore_rule_needs_an_iou_strictly_above_thresh():
    # Anchor 1 in the truth's cell decodes to (0.75, 0.25, 1, 1): IoU with the truth exactly
    # 0.375 (overlap 0.5 x 0.75 = 0.375, union 1). Every other one is below 0.3.
    assert hand_loss(thresh=0.375).parts["noobj"].item() == 0.875  # 7 * 0.125, not ignored
    assert hand_loss(thresh=0.37).parts["noobj"].item() == 0.75  # 6 * 0.125, one ignored


def test_prior_term_pulls_every_box_toward_its_cell_centre_and_anchor_while_seen_is_small():
    output = hand_output()
    output.reshape(2, 7, 2, 2)[:, 2] = 2.0  # tw = 2 everywhere, target 0
    no_truths = torch.zeros(1, 0, 5, dtype=torch.float64)
    early = region_loss(output, no_truths, [0], HAND_ANCHORS, 2, seen=12799)
    # 8 predictions, each 0.01/2 * 2**2 = 0.02.
    assert early.parts["prior"].item() == pytest.approx(0.16, abs=1e-15)
    assert (early.delta.reshape(2, 7, 2, 2)[:, 2] == -0.02).all()  # 0.01 * (0 - 2)
    assert region_loss(output, no_truths, [0], HAND_ANCHORS, 2, seen=12800).parts["prior"].item() == 0.0
    custom = region_loss(output, no_truths, [0], HAND_ANCHORS, 2, seen=99, prior_images=100, prior_scale=0.1)
    assert custom.parts["prior"].item() == pytest.approx(1.6, abs=1e-14)  # 8 * 0.1/2 * 4


def test_responsible_prediction_gets_the_truth_targets_not_the_prior():
    output = hand_output()
    output.reshape(2, 7, 2, 2)[0, 2, 0, 1] = 1.0  # tw = 1 on the responsible prediction
    result = region_loss(output, HAND_TRUTHS, [1], HAND_ANCHORS, 2, seen=0)
    assert result.delta.reshape(2, 7, 2, 2)[0, 2, 0, 1].item() == -1.625  # 1.625 * (0 - 1), no 0.01
    assert result.parts["prior"].item() == 0.0  # the other 7 sit on their prior targets


def test_equal_shape_iou_picks_the_first_anchor():
    # A 0.5 x 1.0 truth: IoU 0.25/0.5 with anchor 0 (0.5x0.5) and 0.5/1 with anchor 1 (1x1).
    # Darknet keeps the first best (`if (iou > best_iou)`): anchor 0.
    truths = torch.tensor([[[0.0, 0.25, 0.25, 0.5, 1.0]]], dtype=torch.float64)
    delta = region_loss(hand_output(), truths, [1], HAND_ANCHORS, 2, seen=0).delta.reshape(2, 7, 2, 2)
    assert delta[0, 5:, 0, 0].tolist() == [0.5, -0.5]
    assert delta[1, 5:, 0, 0].tolist() == [0.0, 0.0]


def test_bias_match_off_chooses_the_anchor_by_the_predicted_shape():
    # The truth is 1x1 cells. Predicted shapes in its cell: anchor 0 at tw = th = ln 2 is 2x2,
    # anchor 1 at tw = th = ln 0.5 is 1x1: the anchors' own shapes pick 0, the predictions 1.
    output = hand_output()
    view = output.reshape(2, 7, 2, 2)
    view[0, 2:4, 0, 0] = math.log(2.0)
    view[1, 2:4, 0, 0] = math.log(0.5)
    truths = torch.tensor([[[1.0, 0.25, 0.25, 0.5, 0.5]]], dtype=torch.float64)
    for bias_match, chosen in ((True, 0), (False, 1)):
        delta = region_loss(output, truths, [1], HAND_ANCHORS, 2, seen=0, bias_match=bias_match).delta
        class_delta = delta.reshape(2, 7, 2, 2)[:, 5:, 0, 0]
        assert class_delta[chosen].tolist() == [-0.5, 0.5]
        assert class_delta[1 - chosen].tolist() == [0.0, 0.0]


def test_truth_on_the_right_and_bottom_edge_lands_in_the_last_cell():
    # cx = cy = 1.0 on a 3x3 grid: Darknet's i = (int)(1.0*3) = 3 is off the grid; we use 2.
    anchors = [(1.0, 1.0)]
    output = torch.zeros(1, 5 + 1, 3, 3, dtype=torch.float64)
    truths = torch.tensor([[[0.0, 1.0, 1.0, 0.2, 0.2]]], dtype=torch.float64)
    delta = region_loss(output, truths, [1], anchors, 1, seen=50000).delta.reshape(6, 3, 3)
    # Targets x = y = 1.0*3 - 2 = 1 cell: delta (2 - 0.04) * (1 - 0.5) * 0.25 = 0.245.
    assert delta[0, 2, 2].item() == pytest.approx(0.245, abs=1e-15)
    assert delta[1, 2, 2].item() == pytest.approx(0.245, abs=1e-15)
    assert delta[:2].count_nonzero().item() == 2  # nowhere else


def test_a_later_truth_on_the_same_cell_and_anchor_replaces_the_earlier_one():
    first = [0.0, 0.6, 0.2, 0.5, 0.75]  # cell (0, 1), anchor 0
    second = [1.0, 0.9, 0.4, 0.5, 0.75]  # same cell, same shape, another class and centre

    def run(rows):
        # thresh = 1 turns the ignore rule off (no IoU exceeds 1): pass 1 reads every truth,
        # so only there could the earlier truth still show.
        truths = torch.tensor([rows], dtype=torch.float64)
        return region_loss(hand_output(), truths, [len(rows)], HAND_ANCHORS, 2, seen=0, thresh=1.0)

    both, alone = run([first, second]), run([second])
    torch.testing.assert_close(both.delta, alone.delta, rtol=0, atol=0)
    for name in PART_NAMES:
        assert both.parts[name].item() == alone.parts[name].item(), name
    assert not torch.equal(run([second, first]).delta, alone.delta)  # order matters


def test_padding_rows_are_ignored_whatever_they_hold():
    case = random_case(13)  # counts [3, 1] of M = 4 rows: both images padded
    clean = case["truths"].clone()
    for b, count in enumerate(case["counts"]):
        clean[b, count:] = 0.0
    garbage = call(case)  # the case's padding holds class 99, whole-image boxes and NaN
    zeros = call(case, truths=clean)
    torch.testing.assert_close(garbage.delta, zeros.delta, rtol=0, atol=0)
    assert garbage.loss.item() == zeros.loss.item()


def test_loss_is_summed_over_the_batch():
    single = hand_loss()
    pair = region_loss(torch.cat([hand_output()] * 2), torch.cat([HAND_TRUTHS] * 2), [1, 1], HAND_ANCHORS, 2, seen=0)
    assert pair.loss.item() == pytest.approx(2 * single.loss.item(), abs=1e-14)


def test_inputs_are_not_modified():
    case = random_case(11)
    output = case["output"].clone().requires_grad_(True)
    anchors = torch.tensor(case["anchors"], dtype=torch.float64)
    counts = torch.tensor(case["counts"])
    copies = [t.detach().clone() for t in (output, case["truths"], anchors, counts)]
    result = call(case, output=output, anchors=anchors, counts=counts)
    result.loss.backward()
    for before, after in zip(copies, (output, case["truths"], anchors, counts), strict=True):
        torch.testing.assert_close(after.detach(), before, rtol=0, atol=0, equal_nan=True)


def test_float32_output_gives_float32_loss_and_delta_close_to_float64():
    case = random_case(5)
    result64 = call(case)
    result32 = call(case, output=case["output"].float(), truths=case["truths"].float())
    assert result32.loss.dtype == result32.delta.dtype == torch.float32
    torch.testing.assert_close(result32.delta.double(), result64.delta, rtol=0, atol=1e-4)


def error_case(**changes):
    kwargs = {
        "output": hand_output(),
        "truths": HAND_TRUTHS.clone(),
        "counts": [1],
        "anchors": HAND_ANCHORS,
        "num_classes": 2,
        "seen": 0,
        **changes,
    }
    return kwargs


def with_truth(row):
    return torch.tensor([[row]], dtype=torch.float64)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"truths": with_truth([0.0, 1.5, 0.5, 0.2, 0.2])}, r"\[0, 1\], got \[1.5, 0.5, 0.2, 0.2\]"),
        ({"truths": with_truth([0.0, 0.5, -0.1, 0.2, 0.2])}, r"\[0, 1\], got \[0.5, -0.1, 0.2, 0.2\]"),
        ({"truths": with_truth([0.0, 0.5, 0.5, 0.2, 1.2])}, r"\[0, 1\], got \[0.5, 0.5, 0.2, 1.2\]"),
        ({"truths": with_truth([0.0, 0.5, 0.5, 0.0, 0.2])}, r"w and h must be > 0, got w, h = \[0.0, 0.2\]"),
        ({"truths": with_truth([0.0, 0.5, 0.5, 0.2, 0.0])}, r"w and h must be > 0, got w, h = \[0.2, 0.0\]"),
        ({"truths": with_truth([2.0, 0.5, 0.5, 0.2, 0.2])}, r"integers in \[0, 1\], got 2.0"),
        ({"truths": with_truth([-1.0, 0.5, 0.5, 0.2, 0.2])}, r"integers in \[0, 1\], got -1.0"),
        ({"truths": with_truth([0.5, 0.5, 0.5, 0.2, 0.2])}, r"integers in \[0, 1\], got 0.5"),
        ({"num_classes": 3}, r"2 anchors and 3 classes has 2 \* \(5 \+ 3\) = 16 channels, got 14"),
        ({"anchors": [(1.0, 1.0)]}, r"1 anchors and 2 classes has 1 \* \(5 \+ 2\) = 7 channels, got 14"),
        ({"counts": [2]}, r"counts must lie in \[0, M=1\].*got \[2\]"),
        ({"counts": [-1]}, r"counts must lie in \[0, M=1\].*got \[-1\]"),
        ({"counts": [1, 1]}, r"counts must be \(1,\) integers, got shape \(2,\)"),
        ({"counts": [1.0]}, r"counts must be \(1,\) integers, got shape \(1,\) of torch.float32"),
        ({"output": torch.zeros(14, 2, 2)}, r"\(N, A\*\(5\+C\), H, W\) tensor, got \(14, 2, 2\)"),
        ({"truths": torch.zeros(1, 5)}, r"truths must be \(1, M, 5\).*got shape \(1, 5\)"),
        ({"truths": torch.zeros(1, 1, 4)}, r"truths must be \(1, M, 5\).*got shape \(1, 1, 4\)"),
        ({"anchors": [1.0, 1.0]}, r"anchors must be \(A, 2\).*got shape \(2,\)"),
        ({"anchors": [(1.0, 0.0), (2.0, 2.0)]}, r"anchor widths and heights must be > 0"),
        ({"seen": -1}, r"seen must be a non-negative int.*got -1"),
        ({"num_classes": 0}, r"num_classes must be a positive int, got 0"),
    ],
)
def test_bad_arguments_raise_value_errors_naming_what_came(changes, message):
    kwargs = error_case(**changes)
    with pytest.raises(ValueError, match=message):
        region_loss(kwargs.pop("output"), kwargs.pop("truths"), kwargs.pop("counts"), kwargs.pop("anchors"),
                    kwargs.pop("num_classes"), **kwargs)


def test_seen_is_a_required_keyword():
    with pytest.raises(TypeError):
        region_loss(hand_output(), HAND_TRUTHS, [1], HAND_ANCHORS, 2)  # type: ignore[call-arg]
