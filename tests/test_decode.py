"""Decoding follows Darknet's [region] (YOLOv2) and [yolo] (YOLOv3) layers, checked on hand-made tensors."""

from __future__ import annotations

import math

import pytest
import torch

from yolo_lessons import COCO_ANCHORS, VOC_ANCHORS, box_corners, decode_yolov2, decode_yolov3


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def test_yolov2_zero_output_puts_each_box_at_its_cell_centre_with_its_anchor_size():
    # sigmoid(0) = 0.5 and exp(0) = 1: cell (i, j) of a 13x13 grid, anchor a -> box
    # centred at ((i + 0.5) / 13, (j + 0.5) / 13) of size anchor / 13.
    det = decode_yolov2(torch.zeros(1, 125, 13, 13), VOC_ANCHORS)
    assert det.boxes.shape == (1, 845, 4)  # 5 anchors * 13 * 13
    a, j, i = 3, 2, 7
    k = a * 169 + j * 13 + i  # anchor-major, then row, then column
    expected = [(i + 0.5) / 13, (j + 0.5) / 13, VOC_ANCHORS[a][0] / 13, VOC_ANCHORS[a][1] / 13]
    assert det.boxes[0, k].tolist() == pytest.approx(expected)
    assert det.objectness[0, k].item() == 0.5
    assert det.class_probs[0, k].tolist() == pytest.approx([1 / 20] * 20)  # softmax of equal logits


def test_yolov2_decodes_one_hand_made_prediction():
    raw = torch.zeros(1, 5 * 25, 13, 13)
    view = raw.view(1, 5, 25, 13, 13)  # channels are anchor-major
    a, j, i = 1, 4, 6
    view[0, a, 0:5, j, i] = torch.tensor([logit(0.25), logit(0.75), math.log(2.0), math.log(0.5), logit(0.9)])
    view[0, a, 5 + 14, j, i] = 10.0  # class 14 ("person" in VOC order) dominates
    det = decode_yolov2(raw, VOC_ANCHORS)
    k = a * 169 + j * 13 + i
    # x = (6 + 0.25) / 13, y = (4 + 0.75) / 13, w = 3.19275 * 2 / 13, h = 4.00944 * 0.5 / 13
    assert det.boxes[0, k].tolist() == pytest.approx([6.25 / 13, 4.75 / 13, 6.3855 / 13, 2.00472 / 13])
    assert det.objectness[0, k].item() == pytest.approx(0.9)
    assert det.class_probs[0, k].argmax().item() == 14
    assert det.class_probs[0, k].sum().item() == pytest.approx(1.0)
    assert det.scores[0, k, 14].item() == pytest.approx(0.9 * det.class_probs[0, k, 14].item())


def test_yolov3_three_heads_at_416_give_10647_boxes_with_pixel_anchors_over_the_input_size():
    outputs = [torch.zeros(1, 255, s, s) for s in (13, 26, 52)]
    det = decode_yolov3(outputs, COCO_ANCHORS, ((6, 7, 8), (3, 4, 5), (0, 1, 2)), 416)
    assert det.boxes.shape == (1, 10_647, 4)  # 3 * (13*13 + 26*26 + 52*52)
    assert det.class_probs.shape == (1, 10_647, 80)
    # First box of the first head: anchor 6 (116 x 90 px) at cell (0, 0) of the 13x13 grid.
    assert det.boxes[0, 0].tolist() == pytest.approx([0.5 / 13, 0.5 / 13, 116 / 416, 90 / 416])
    # First box of the stride-8 head: anchor 0 (10 x 13 px) at cell (0, 0) of the 52x52 grid.
    first8 = 3 * (13 * 13 + 26 * 26)
    assert det.boxes[0, first8].tolist() == pytest.approx([0.5 / 52, 0.5 / 52, 10 / 416, 13 / 416])


def test_yolov3_classes_are_independent_sigmoids_not_a_softmax():
    raw = torch.zeros(1, 3 * 85, 13, 13)
    raw.view(1, 3, 85, 13, 13)[0, 0, 5:7, 0, 0] = 10.0  # two classes both confidently present
    det = decode_yolov3([raw], COCO_ANCHORS, ((6, 7, 8),), 416)
    probs = det.class_probs[0, 0]
    assert probs[0].item() > 0.99 and probs[1].item() > 0.99
    assert probs[2].item() == 0.5


def test_yolov3_uses_the_input_size_for_non_square_inputs():
    raw = torch.zeros(1, 255, 10, 13)  # a 320 (high) x 416 (wide) input
    det = decode_yolov3([raw], COCO_ANCHORS, ((6, 7, 8),), (320, 416))
    assert det.boxes[0, 0].tolist() == pytest.approx([0.5 / 13, 0.5 / 10, 116 / 416, 90 / 320])


def test_box_corners_converts_centre_size_to_x1_y1_x2_y2():
    assert box_corners(torch.tensor([0.5, 0.5, 0.2, 0.4])).tolist() == pytest.approx([0.4, 0.3, 0.6, 0.7])


def test_decoding_rejects_a_channel_count_that_does_not_fit_the_anchors():
    with pytest.raises(ValueError, match="5 anchors needs 5 \\* \\(5 \\+ classes\\) channels, got 124"):
        decode_yolov2(torch.zeros(1, 124, 13, 13), VOC_ANCHORS)


def test_decoding_rejects_non_4d_output():
    with pytest.raises(ValueError, match="4-D head output"):
        decode_yolov2(torch.zeros(125, 13, 13), VOC_ANCHORS)


def test_yolov3_decoding_rejects_a_head_count_that_does_not_match_the_masks():
    with pytest.raises(ValueError, match="got 2 head outputs but 3 anchor masks"):
        decode_yolov3([torch.zeros(1, 255, 13, 13)] * 2, COCO_ANCHORS, ((6, 7, 8), (3, 4, 5), (0, 1, 2)), 416)
