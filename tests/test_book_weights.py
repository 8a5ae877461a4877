"""The book's small YOLOv2 as a Darknet file: its cfg layer order and the committed weights."""

from __future__ import annotations

import io

import pytest
import torch

from yolo_lessons.darknet.book_weights import BOOK_WEIGHTS, load_book_model, small_yolov2_layers
from yolo_lessons.darknet.weights import load_darknet_weights, read_darknet_header, save_darknet_weights
from yolo_lessons.models.small_yolov2 import small_yolov2


def test_layer_numbers_follow_the_cfg_with_the_passthrough_conv_after_the_extra_convs():
    # module docstring: convs 0, 2, 4-6, 8-10, 12-14 (pools 1, 3, 7, 11), extra 15, 16,
    # [route] 17, passthrough conv 18, [reorg] 19, [route] 20, fuse 21, detector 22
    model = small_yolov2(width=4)
    layers = small_yolov2_layers(model)
    assert [layer.index for layer in layers] == [0, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, 15, 16, 18, 21, 22]
    assert layers[13].module is model.passthrough.conv and layers[11].module is model.extra[0].conv
    assert layers[-1].bn is None and layers[-1].module is model.detect
    no_branch = small_yolov2_layers(small_yolov2(width=4, passthrough=None))
    assert [layer.index for layer in no_branch][-4:] == [15, 16, 17, 18]


def test_float_count_covers_every_parameter_and_running_statistic():
    # width 4: 174,980 parameters (the training command's banner) + 2 x 488 BatchNorm statistics
    model = small_yolov2(width=4)
    floats = sum(layer.float_count() for layer in small_yolov2_layers(model))
    statistics = sum(b.numel() for name, b in model.named_buffers() if "running" in name)
    assert floats == sum(p.numel() for p in model.parameters()) + statistics == 174_980 + 976


@pytest.mark.parametrize("passthrough", ["darknet_reorg", "space_to_depth", None])
def test_save_then_load_is_bit_identical(passthrough):
    torch.manual_seed(0)
    model = small_yolov2(width=4, passthrough=passthrough)
    buffer = io.BytesIO()
    save_darknet_weights(model, buffer, seen=7, layers=small_yolov2_layers(model))
    copy = small_yolov2(width=4, passthrough=passthrough)
    load_darknet_weights(copy, io.BytesIO(buffer.getvalue()), layers=small_yolov2_layers(copy))
    for mine, theirs in zip(small_yolov2_layers(model), small_yolov2_layers(copy), strict=True):
        assert all(torch.equal(a, b) for a, b in zip(mine.tensors(), theirs.tensors(), strict=True))


def test_the_committed_weights_load_into_the_book_model_and_fit_exactly():
    header = read_darknet_header(BOOK_WEIGHTS)
    assert (header.major, header.minor, header.revision) == (0, 2, 0)  # save_darknet_weights' header
    model = load_book_model()
    assert not model.training
    floats = sum(layer.float_count() for layer in small_yolov2_layers(model))
    assert BOOK_WEIGHTS.stat().st_size == 20 + 4 * floats
    with torch.no_grad():
        output = model(torch.zeros(1, 3, 96, 96))
    assert output.shape == (1, 5 * (5 + 3), 6, 6)  # 5 anchors x (4 + objectness + 3 classes), 6 x 6 cells


def test_other_objects_are_refused():
    with pytest.raises(ValueError, match="expected a SmallYOLOv2"):
        small_yolov2_layers(torch.nn.Conv2d(3, 4, 1))
