"""Chapter 6's checkpoints: reference answers pass, each known mistake is named."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from yolo_lessons import ConvBlock, conv_set, detector
from yolo_lessons.checkpoints.common import WIDTH, CheckpointError
from yolo_lessons.checkpoints.yolov3 import (
    check_count_candidate_boxes,
    check_decode_one,
    check_stride16_path,
    expected_box_count,
)

# ---------------------------------------------------------------------------------------
# Exercise 1: the stride-16 path
# ---------------------------------------------------------------------------------------


class Stride16Path(nn.Module):
    """The reference answer; the switches reproduce the known mistakes."""

    backbone_first = False
    mode: str | None = "nearest"

    def __init__(self, num_classes: int = 80):
        super().__init__()
        self.lateral16 = ConvBlock(512, 256, 1)
        self.neck16 = conv_set(256 + 512, 256)
        self.detect16 = detector(256, 3 * (5 + num_classes))

    def forward(self, p32, stride16):
        up = self.lateral16(p32)
        if self.mode is not None:
            up = F.interpolate(up, scale_factor=2, mode=self.mode)
        parts = [stride16, up] if self.backbone_first else [up, stride16]
        p16 = self.neck16(torch.cat(parts, dim=1))
        return p16, self.detect16(p16)


class BackboneFirst(Stride16Path):
    backbone_first = True


class Bilinear(Stride16Path):
    mode = "bilinear"


class NoUpsample(Stride16Path):
    mode = None


class RenamedPath(Stride16Path):
    """Other attribute names, same order of weights: loaded by position."""

    def __init__(self, num_classes: int = 80):
        nn.Module.__init__(self)
        self.reduce = ConvBlock(512, 256, 1)
        self.convs = conv_set(256 + 512, 256)
        self.head = detector(256, 3 * (5 + num_classes))

    def forward(self, p32, stride16):
        up = F.interpolate(self.reduce(p32), scale_factor=2, mode="nearest")
        p16 = self.convs(torch.cat([up, stride16], dim=1))
        return p16, self.head(p16)


class LearnedUpsample(Stride16Path):
    def __init__(self, num_classes: int = 80):
        super().__init__(num_classes)
        self.up = nn.ConvTranspose2d(256, 256, 2, stride=2)


class WrongNeckWidth(Stride16Path):
    def __init__(self, num_classes: int = 80):
        super().__init__(num_classes)
        self.neck16 = conv_set(256 + 512, 128)
        self.detect16 = detector(128, 3 * (5 + num_classes))


class FixedChannels(Stride16Path):
    def __init__(self, num_classes: int = 80):
        super().__init__(80)


class NotDone(nn.Module):
    def __init__(self, num_classes: int = 80):
        raise NotImplementedError("lateral 1x1, upsample, concatenate, conv_set, detector")


def test_reference_stride16_path_passes(capsys):
    check_stride16_path(Stride16Path)
    out = capsys.readouterr().out
    # 4,264,703 = lateral16 + neck16 + detect16 of yolov3() (its model_summary, depth 1)
    assert "4,264,703 for 80 classes" in out and "loaded by role" in out


def test_stride16_path_with_other_names_is_loaded_by_position(capsys):
    check_stride16_path(RenamedPath)
    out = capsys.readouterr().out
    assert "loaded by role" in out
    assert max(map(len, out.splitlines())) <= WIDTH


def test_backbone_map_first_is_named_as_wrong_concatenation_order():
    with pytest.raises(CheckpointError, match="concatenation in the wrong order"):
        check_stride16_path(BackboneFirst)


def test_bilinear_upsampling_is_named_as_wrong_upsampling_mode():
    with pytest.raises(CheckpointError, match="wrong upsampling mode: bilinear"):
        check_stride16_path(Bilinear)


def test_missing_upsample_is_named():
    with pytest.raises(CheckpointError, match="missing upsample"):
        check_stride16_path(NoUpsample)


def test_transposed_convolution_is_named_as_learned_upsampling():
    with pytest.raises(CheckpointError, match="learned upsampling"):
        check_stride16_path(LearnedUpsample)


def test_wrong_widths_report_expected_and_actual_parameter_counts():
    with pytest.raises(CheckpointError, match=r"expected 4,264,703 parameters .* got "):
        check_stride16_path(WrongNeckWidth)


def test_detector_ignoring_num_classes_is_named():
    with pytest.raises(CheckpointError, match="not a fixed 255"):
        check_stride16_path(FixedChannels)


def test_stride16_stub_says_not_implemented_yet():
    with pytest.raises(CheckpointError, match="not implemented yet"):
        check_stride16_path(NotDone)


# ---------------------------------------------------------------------------------------
# Exercise 2: candidate boxes
# ---------------------------------------------------------------------------------------


def count_boxes(input_size: int, anchors_per_scale: int = 3) -> int:
    return sum(anchors_per_scale * (input_size // s) ** 2 for s in (32, 16, 8))


def test_expected_box_counts_are_the_published_ones():
    # 3 * (13*13 + 26*26 + 52*52) = 10,647 at 416 (the YOLOv3 paper's "10,647 boxes" arithmetic)
    assert expected_box_count(416) == 10_647
    assert expected_box_count(320) == 3 * (10 * 10 + 20 * 20 + 40 * 40) == 6_300
    assert expected_box_count(608) == 3 * (19 * 19 + 38 * 38 + 76 * 76) == 22_743


def test_reference_box_count_passes(capsys):
    check_count_candidate_boxes(count_boxes)
    out = capsys.readouterr().out
    assert "416 -> 10,647" in out
    assert max(map(len, out.splitlines())) <= WIDTH


@pytest.mark.parametrize(
    ("wrong", "named"),
    [
        (lambda size, a=3: sum((size // s) ** 2 for s in (32, 16, 8)), "counted grid cells, not boxes"),
        (lambda size, a=3: a * (size // 32) ** 2, "counted only the stride-32 head"),
        (lambda size, a=3: 3 * sum((size // s) ** 2 for s in (32, 16, 8)), "ignored anchors_per_scale"),
        (lambda size, a=3: 9 * a * sum((size // s) ** 2 for s in (32, 16, 8)) // 3, "multiplied by the anchors twice"),
    ],
    ids=["cells only", "one scale", "hard-coded anchors", "nine anchors per scale"],
)
def test_known_box_count_mistakes_are_named(wrong, named):
    with pytest.raises(CheckpointError, match=named):
        check_count_candidate_boxes(wrong)


def test_box_count_stub_says_not_implemented_yet():
    def stub(input_size, anchors_per_scale=3):
        raise NotImplementedError("three heads, anchors_per_scale boxes per cell")

    with pytest.raises(CheckpointError, match="not implemented yet"):
        check_count_candidate_boxes(stub)


# ---------------------------------------------------------------------------------------
# Exercise 3: decode one prediction
# ---------------------------------------------------------------------------------------


def make_decode(anchor_scale="input", classes="sigmoid", centre="sigmoid"):
    def decode(prediction, column, row, anchor, grid_size, input_size):
        t = prediction
        offset = torch.sigmoid(t[:2]) if centre == "sigmoid" else t[:2]
        x = (column + offset[0]) / grid_size
        y = (row + offset[1]) / grid_size
        scale = input_size if anchor_scale == "input" else grid_size
        w = anchor[0] * torch.exp(t[2]) / scale
        h = anchor[1] * torch.exp(t[3]) / scale
        probs = torch.sigmoid(t[5:]) if classes == "sigmoid" else torch.softmax(t[5:], dim=0)
        return torch.stack([x, y, w, h]), torch.sigmoid(t[4]), probs

    return decode


def test_reference_decode_passes(capsys):
    check_decode_one(make_decode())
    out = capsys.readouterr().out
    assert "ok" in out
    assert max(map(len, out.splitlines())) <= WIDTH


def test_anchors_over_grid_are_named():
    with pytest.raises(CheckpointError, match="anchors divided by the grid size instead of the input size"):
        check_decode_one(make_decode(anchor_scale="grid"))


def test_softmax_classes_are_named():
    with pytest.raises(CheckpointError, match="softmax over the classes instead of a sigmoid"):
        check_decode_one(make_decode(classes="softmax"))


def test_missing_centre_sigmoid_is_named():
    with pytest.raises(CheckpointError, match="missing sigmoid on tx/ty"):
        check_decode_one(make_decode(centre="raw"))


def test_unknown_decode_mistake_shows_expected_and_actual_values():
    def off_by_half(prediction, column, row, anchor, grid_size, input_size):
        box, objectness, probs = make_decode()(prediction, column, row, anchor, grid_size, input_size)
        return box + torch.tensor([0.5, 0, 0, 0]), objectness, probs

    with pytest.raises(CheckpointError, match=r"box differ; expected box \["):
        check_decode_one(off_by_half)


def test_decode_stub_says_not_implemented_yet():
    def stub(prediction, column, row, anchor, grid_size, input_size):
        raise NotImplementedError("sigmoid offsets, exp sizes over the input size")

    with pytest.raises(CheckpointError, match="not implemented yet"):
        check_decode_one(stub)


# --- weights by role, not by creation order or names; prints shown, not compared ----------------


class ReorderedPath(nn.Module):
    """Right answer: the head created first, other names, a leftover module, a print."""

    def __init__(self, num_classes: int = 80):
        super().__init__()
        self.head = detector(256, 3 * (5 + num_classes))
        self.old_idea = nn.Conv2d(512, 512, 3)
        self.neck = conv_set(256 + 512, 256)
        self.squeeze = ConvBlock(512, 256, 1)

    def forward(self, p32, stride16):
        print("p32", tuple(p32.shape))
        up = F.interpolate(self.squeeze(p32), scale_factor=2)
        p16 = self.neck(torch.cat([up, stride16], 1))
        return p16, self.head(p16)


def test_stride16_path_created_in_another_order_with_a_leftover_passes(capsys):
    check_stride16_path(ReorderedPath)
    lines = capsys.readouterr().out.splitlines()
    assert lines[1:3] == [
        "p16 (1, 256, 8, 8) and output16 (1, 255, 8, 8) equal the package's",
        "  (weights loaded by role): ok",
    ]
    assert "|   p32 (1, 512, 4, 4)" in lines


def test_box_count_check_wants_an_int():
    with pytest.raises(CheckpointError, match="is a float"):
        check_count_candidate_boxes(lambda size, anchors=3: float(count_boxes(size, anchors)))
