"""Chapter 4's checkpoints pass the reference answers and name every known mistake."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch.nn import functional as F

from yolo_lessons import darknet_reorg, space_to_depth
from yolo_lessons.checkpoints.common import WIDTH, CheckpointError
from yolo_lessons.checkpoints.yolov2 import check_decode_cell, check_output_size, check_yolov2_forward

# --- Exercise 1: the forward pass ---------------------------------------------------


def forward_reference(model, x):
    stride16, stride32 = model.backbone.feature_maps(x)
    fine = darknet_reorg(model.passthrough(stride16), 2)
    return model.detect(model.fuse(torch.cat([fine, model.extra(stride32)], dim=1)))


def forward_coarse_first(model, x):
    stride16, stride32 = model.backbone.feature_maps(x)
    fine = darknet_reorg(model.passthrough(stride16), 2)
    return model.detect(model.fuse(torch.cat([model.extra(stride32), fine], dim=1)))


def forward_passthrough_from_13x13(model, x):
    _, stride32 = model.backbone.feature_maps(x)
    coarse = model.extra(stride32)
    fine = darknet_reorg(model.passthrough(coarse), 2)
    return model.detect(model.fuse(torch.cat([fine, coarse], dim=1)))


def forward_passthrough_after_the_pool(model, x):
    stages = model.backbone.stages
    for stage in stages[:-1]:
        x = stage(x)
    after_pool = stages[-1][0](x)  # the max-pool that opens the last stage: 13x13x512 at 416
    coarse = model.extra(stages[-1][1:](after_pool))
    fine = darknet_reorg(model.passthrough(after_pool), 2)
    return model.detect(model.fuse(torch.cat([fine, coarse], dim=1)))


def forward_missing_reorg(model, x):
    stride16, stride32 = model.backbone.feature_maps(x)
    fine = model.passthrough(stride16)
    return model.detect(model.fuse(torch.cat([fine, model.extra(stride32)], dim=1)))


def forward_space_to_depth(model, x):
    stride16, stride32 = model.backbone.feature_maps(x)
    fine = space_to_depth(model.passthrough(stride16), 2)
    return model.detect(model.fuse(torch.cat([fine, model.extra(stride32)], dim=1)))


def forward_pixel_unshuffle(model, x):
    stride16, stride32 = model.backbone.feature_maps(x)
    fine = F.pixel_unshuffle(model.passthrough(stride16), 2)
    return model.detect(model.fuse(torch.cat([fine, model.extra(stride32)], dim=1)))


def forward_without_extra(model, x):
    stride16, stride32 = model.backbone.feature_maps(x)
    fine = darknet_reorg(model.passthrough(stride16), 2)
    return model.detect(model.fuse(torch.cat([fine, stride32], dim=1)))


def forward_without_passthrough_conv(model, x):
    stride16, stride32 = model.backbone.feature_maps(x)
    fine = darknet_reorg(stride16, 2)  # 2048 channels, the paper-era wiring
    return model.detect(model.fuse(torch.cat([fine, model.extra(stride32)], dim=1)))


def forward_without_detect(model, x):
    stride16, stride32 = model.backbone.feature_maps(x)
    fine = darknet_reorg(model.passthrough(stride16), 2)
    return model.fuse(torch.cat([fine, model.extra(stride32)], dim=1))


def forward_stub(model, x):
    raise NotImplementedError("call model.backbone.feature_maps(x) first")


def test_forward_check_accepts_the_reference_forward(capsys):
    check_yolov2_forward(forward_reference)
    out = capsys.readouterr().out
    assert "ok" in out
    assert max(map(len, out.splitlines())) <= WIDTH


@pytest.mark.parametrize(
    "forward, named",
    [
        (forward_coarse_first, "concatenated in the wrong order"),
        (forward_passthrough_from_13x13, "wired from the wrong feature map"),
        (forward_passthrough_after_the_pool, "after the last max-pool"),
        (forward_missing_reorg, "missing reorg"),
        (forward_space_to_depth, "space_to_depth instead of darknet_reorg"),
        (forward_pixel_unshuffle, "pixel_unshuffle instead of darknet_reorg"),
        (forward_without_extra, "extra 3x3x1024 convs"),
        (forward_without_passthrough_conv, "1x1 passthrough conv"),
        (forward_without_detect, "skip model.detect"),
        (forward_stub, "not implemented yet"),
    ],
)
def test_forward_check_names_the_mistake(forward, named):
    with pytest.raises(CheckpointError, match=named):
        check_yolov2_forward(forward)


# --- Exercise 2: output channels, grid and boxes ------------------------------------


def output_size_reference(num_anchors, num_classes, input_size):
    if input_size % 32:
        raise ValueError("input size must be a multiple of 32")
    grid = input_size // 32
    return num_anchors * (5 + num_classes), grid, grid * grid * num_anchors


def output_size_yolov1_channels(num_anchors, num_classes, input_size):
    c, g, b = output_size_reference(num_anchors, num_classes, input_size)
    return num_anchors * 5 + num_classes, g, b


def output_size_no_objectness(num_anchors, num_classes, input_size):
    c, g, b = output_size_reference(num_anchors, num_classes, input_size)
    return num_anchors * (4 + num_classes), g, b


def output_size_one_box_per_cell(num_anchors, num_classes, input_size):
    c, g, b = output_size_reference(num_anchors, num_classes, input_size)
    return c, g, g * g


def output_size_numbers_as_boxes(num_anchors, num_classes, input_size):
    c, g, b = output_size_reference(num_anchors, num_classes, input_size)
    return c, g, g * g * c


def output_size_stride_16(num_anchors, num_classes, input_size):
    g = input_size // 16
    return num_anchors * (5 + num_classes), g, g * g * num_anchors


def output_size_floors_any_size(num_anchors, num_classes, input_size):
    g = input_size // 32
    return num_anchors * (5 + num_classes), g, g * g * num_anchors


def output_size_stub(num_anchors, num_classes, input_size):
    raise NotImplementedError("every anchor has its own 5 + C numbers")


def test_output_size_check_accepts_the_reference(capsys):
    check_output_size(output_size_reference)
    out = capsys.readouterr().out
    assert out.count("ok") == 2
    assert max(map(len, out.splitlines())) <= WIDTH


@pytest.mark.parametrize(
    "output_size, named",
    [
        (output_size_yolov1_channels, "YOLOv1's B\\*5 \\+ C"),
        (output_size_no_objectness, "forgot the objectness"),
        (output_size_one_box_per_cell, "one box per cell"),
        (output_size_numbers_as_boxes, "counted output numbers as boxes"),
        (output_size_stride_16, "stride 16"),
        (output_size_floors_any_size, "400 is not a multiple of 32"),
        (output_size_stub, "not implemented yet"),
    ],
)
def test_output_size_check_names_the_mistake(output_size, named):
    with pytest.raises(CheckpointError, match=named):
        check_output_size(output_size)


# --- Exercise 3: decoding one cell --------------------------------------------------


def sigmoid(v):
    return 1 / (1 + math.exp(-float(v)))


def decode_reference(t, column, row, anchor, grid):
    return (
        (column + sigmoid(t[0])) / grid,
        (row + sigmoid(t[1])) / grid,
        anchor[0] * math.exp(t[2]) / grid,
        anchor[1] * math.exp(t[3]) / grid,
    )


def decode_exp_sigmoid_swapped(t, column, row, anchor, grid):
    return (
        (column + math.exp(t[0])) / grid,
        (row + math.exp(t[1])) / grid,
        anchor[0] * sigmoid(t[2]) / grid,
        anchor[1] * sigmoid(t[3]) / grid,
    )


def decode_in_grid_cells(t, column, row, anchor, grid):
    return tuple(v * grid for v in decode_reference(t, column, row, anchor, grid))


def decode_without_sigmoid(t, column, row, anchor, grid):
    bx, by, bw, bh = decode_reference(t, column, row, anchor, grid)
    return (column + float(t[0])) / grid, (row + float(t[1])) / grid, bw, bh


def decode_without_exp(t, column, row, anchor, grid):
    bx, by, bw, bh = decode_reference(t, column, row, anchor, grid)
    return bx, by, anchor[0] * float(t[2]) / grid, anchor[1] * float(t[3]) / grid


def decode_without_offset(t, column, row, anchor, grid):
    bx, by, bw, bh = decode_reference(t, column, row, anchor, grid)
    return sigmoid(t[0]) / grid, sigmoid(t[1]) / grid, bw, bh


def decode_column_row_swapped(t, column, row, anchor, grid):
    return decode_reference(t, row, column, anchor, grid)


def decode_stub(t, column, row, anchor, grid):
    raise NotImplementedError("sigmoid for the centre, exp for the size")


def test_decode_check_accepts_the_reference(capsys):
    check_decode_cell(decode_reference)
    out = capsys.readouterr().out
    assert "ok" in out
    assert max(map(len, out.splitlines())) <= WIDTH


def test_decode_check_accepts_torch_operations():
    def decode_with_torch(t, column, row, anchor, grid):
        xy = (torch.tensor([column, row]) + torch.sigmoid(t[:2])) / grid
        wh = torch.tensor(anchor) * torch.exp(t[2:]) / grid
        return (*xy, *wh)

    check_decode_cell(decode_with_torch)


@pytest.mark.parametrize(
    "decode_cell, named",
    [
        (decode_exp_sigmoid_swapped, "exp and sigmoid are swapped"),
        (decode_in_grid_cells, "forgot to divide by the grid size"),
        (decode_without_sigmoid, "no sigmoid on tx"),
        (decode_without_exp, "no exp on tw"),
        (decode_without_offset, "forgot the cell offset"),
        (decode_column_row_swapped, "column and row are swapped"),
        (decode_stub, "not implemented yet"),
    ],
)
def test_decode_check_names_the_mistake(decode_cell, named):
    with pytest.raises(CheckpointError, match=named):
        check_decode_cell(decode_cell)


# --- wrong diagnoses fixed, and right answers that print or warn ---------------------------------


def forward_without_fuse(model, x):
    stride16, stride32 = model.backbone.feature_maps(x)
    fine = darknet_reorg(model.passthrough(stride16), 2)
    return model.detect(torch.cat([fine, model.extra(stride32)], dim=1))


def forward_concat_on_height(model, x):
    stride16, stride32 = model.backbone.feature_maps(x)
    fine = darknet_reorg(model.passthrough(stride16), 2)
    return model.detect(model.fuse(torch.cat([fine, model.extra(stride32)], dim=2)))


def forward_chatty(model, x):
    print("input", tuple(x.shape))
    warnings.warn("a warning the learner's code raised", UserWarning, stacklevel=1)
    return forward_reference(model, x)


@pytest.mark.parametrize(
    ("forward", "named"),
    [
        (forward_without_fuse, "model.fuse was skipped"),
        # (1, 256, 3, 4) and (1, 1024, 3, 4) on dim 2: the channels differ, so torch.cat fails
        (forward_concat_on_height, "torch.cat along dim=2: the maps are (N, C, H, W), so the channels are dim=1"),
    ],
)
def test_forward_check_names_fuse_and_dim_mistakes_not_a_missing_reorg(forward, named):
    with pytest.raises(CheckpointError) as failure:
        check_yolov2_forward(forward)
    assert named in str(failure.value)
    assert "missing reorg" not in str(failure.value)


def test_pixel_unshuffle_message_does_not_claim_darknets_blocks():
    with pytest.raises(CheckpointError) as failure:
        check_yolov2_forward(forward_pixel_unshuffle)
    assert "used pixel_unshuffle instead of darknet_reorg" in str(failure.value)
    assert "same 2x2 blocks" not in str(failure.value)


def test_forward_check_passes_an_answer_that_prints_and_warns(capsys):
    check_yolov2_forward(forward_chatty)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "input (1, 3, 96, 128) -> output (1, 125, 3, 4), matches YOLOv2.forward: ok"
    assert len(lines[0]) <= WIDTH
    assert "|   input (1, 3, 96, 128)" in lines
    assert any(line.startswith("| your code warned") and "UserWarning" in line for line in lines)


def test_output_size_check_wants_ints_not_floats():
    def float_grid(num_anchors, num_classes, input_size):
        if input_size % 32:
            raise ValueError(input_size)
        grid = input_size / 32  # 13.0, equal to 13 but a float
        return num_anchors * (5 + num_classes), grid, int(grid * grid * num_anchors)

    with pytest.raises(CheckpointError, match="the grid: 13.0 is a float"):
        check_output_size(float_grid)
