"""small_yolov2: a scaled-down YOLOv2 with Darknet-19's first five stages, stride 16.

Numbers are counted by hand from SMALL_YOLOV2_STAGES at width 8, 3 classes, 5 anchors
(5 * (5 + 3) = 40 output channels), a 96 x 96 input and a 6 x 6 grid.
"""

from __future__ import annotations

import pytest
import torch

from yolo_lessons import DARKNET19_STAGES, count_multiply_adds, count_parameters, count_weighted_layers
from yolo_lessons.detection.decode import decode_yolov2
from yolo_lessons.models.blocks import ConvBlock
from yolo_lessons.models.small_yolov2 import SMALL_YOLOV2_STAGES, STRIDE, small_yolov2


def test_output_is_anchor_major_on_a_6x6_grid_at_96_pixels():
    model = small_yolov2(num_classes=3).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 96, 96))
    assert out.shape == (2, 40, 6, 6)  # 5 anchors * (5 + 3) channels; 96 / 16 = 6 cells
    assert STRIDE == 16
    detections = decode_yolov2(out, model.anchors)
    assert detections.boxes.shape == (2, 180, 4)  # 5 anchors * 36 cells
    assert detections.class_probs.shape == (2, 180, 3)


def test_other_input_sizes_give_a_grid_of_side_over_16():
    model = small_yolov2().eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 128, 128)).shape == (1, 40, 8, 8)  # 128 / 16
        assert model(torch.rand(1, 3, 32, 48)).shape == (1, 40, 2, 3)


def test_trainable_parameters_at_width_8_counted_by_hand():
    # conv weights + BN gamma/beta per ConvBlock, at width 8:
    # stage 1: 3*8*9 + 16 = 232; stage 2: 8*16*9 + 32 = 1,184
    # stage 3: 4,672 + 544 + 4,672 = 9,888; stage 4: 18,560 + 2,112 + 18,560 = 39,232
    # stage 5: 73,984 + 8,320 + 73,984 = 156,288; two extra 128->128 3x3: 2 * 147,712 = 295,424
    # passthrough 64->8 1x1: 528; fuse (32 + 128)->128 3x3: 184,576; detect 128->40 1x1 + bias: 5,160
    assert count_parameters(small_yolov2(passthrough="darknet_reorg")) == 692_512
    assert count_parameters(small_yolov2(passthrough="space_to_depth")) == 692_512  # a fold has no weights
    # no passthrough: minus its 528 and minus the fuse conv's 32 folded input channels (32*128*9 = 36,864)
    assert count_parameters(small_yolov2(passthrough=None)) == 655_120


def test_multiply_adds_and_weighted_layers_at_96_pixels():
    # output pixels x out channels x in channels x k*k, per conv (hand sums):
    # 1,990,656 + 2,654,208 + 3 * 5,603,328 (stages 3-5) + 10,616,832 (extra) + 73,728 (passthrough)
    # + 6,635,520 (fuse) + 184,320 (detect) = 38,965,248
    model = small_yolov2()
    assert count_multiply_adds(model, (3, 96, 96)) == 38_965_248
    # 1 + 1 + 3 + 3 + 3 backbone convs, 2 extra, passthrough, fuse, detect
    assert count_weighted_layers(model) == 16
    assert count_weighted_layers(small_yolov2(passthrough=None)) == 15


def test_width_32_backbone_is_darknet19_first_five_stages_with_the_fifth_shortened():
    model = small_yolov2(width=32)
    filters = [
        [(b.conv.out_channels, b.conv.kernel_size[0]) for b in stage if isinstance(b, ConvBlock)]
        for stage in model.stages
    ]
    assert filters[:4] == [list(stage) for stage in DARKNET19_STAGES[:4]]  # YOLO9000 Table 6, convs 1-8
    assert filters[4] == list(DARKNET19_STAGES[4][:3])  # convs 9-11 of Table 6; 12-13 left out
    assert len(SMALL_YOLOV2_STAGES) == 5


def test_the_two_folds_share_weights_but_not_outputs():
    reorg = small_yolov2(passthrough="darknet_reorg").eval()
    paper = small_yolov2(passthrough="space_to_depth").eval()
    paper.load_state_dict(reorg.state_dict())  # identical keys and shapes: a fair comparison
    x = torch.rand(2, 3, 96, 96)
    with torch.no_grad():
        assert not torch.equal(reorg(x), paper(x))  # same weights, different channel order after the fold


def test_anchors_are_a_non_persistent_buffer_in_grid_cells():
    anchors = [[1.0, 2.0], [3.0, 1.5]]
    model = small_yolov2(anchors=anchors)
    assert model.anchors.tolist() == anchors
    assert "anchors" not in model.state_dict()  # the training checkpoint stores them separately
    assert model(torch.rand(1, 3, 96, 96)).shape == (1, 16, 6, 6)  # 2 anchors * (5 + 3)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(passthrough="reorg"), "expected passthrough in"),
        (dict(width=6), "expected a width divisible by 4"),  # darknet_reorg folds 4 channels at a time
        (dict(width=0), "positive integer width"),
        (dict(num_classes=0), "positive integer num_classes"),
        (dict(anchors=[1.0, 2.0]), "expected anchors as"),
        (dict(anchors=[[1.0, -2.0]]), "positive anchor"),
    ],
)
def test_bad_options_raise_value_error(options, message):
    with pytest.raises(ValueError, match=message):
        small_yolov2(**options)


def test_width_6_works_with_space_to_depth_or_no_passthrough():
    for passthrough in ("space_to_depth", None):
        assert small_yolov2(width=6, passthrough=passthrough)(torch.rand(2, 3, 32, 32)).shape == (2, 40, 2, 2)


def test_input_side_must_be_a_multiple_of_16():
    with pytest.raises(ValueError, match="multiples of 16"):
        small_yolov2()(torch.rand(1, 3, 40, 40))
