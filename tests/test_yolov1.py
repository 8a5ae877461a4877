"""YOLOv1 (Redmon et al. 2016, Figure 3; Darknet's cfg/yolo.cfg of November 2015), its
popular variants, the ResNet-50 version and the decoding of both output layouts."""

import pytest
import torch

from yolo_lessons import count_multiply_adds, count_parameters, count_weighted_layers
from yolo_lessons.checkpoints.common import layer_kinds, pool_positions
from yolo_lessons.detection.decode import darknet_to_cell_major, decode_yolov1
from yolo_lessons.models.resnet import resnet50
from yolo_lessons.models.yolov1 import (
    YOLOV1_STAGES,
    yolov1,
    yolov1_output_length,
    yolov1_resnet50,
)


@pytest.fixture(scope="module")
def original():
    torch.manual_seed(0)
    return yolov1().eval()


def test_layer_list_is_the_2015_cfg():
    # cfg/yolo.cfg (2015): 24 [convolutional], [maxpool] after convs 1, 2, 6 and 16, two [connected]
    convs = [c for stage in YOLOV1_STAGES for c in stage]
    assert len(convs) == 24
    assert convs[0] == (64, 7, 2) and convs[21] == (1024, 3, 2)
    assert [f for f, _, _ in convs[6:14]] == [256, 512] * 4
    model = yolov1()
    assert pool_positions(model) == [1, 2, 6, 16]
    assert layer_kinds(model)[-2:] == ["linear", "linear"]
    assert count_weighted_layers(model) == 26


def test_original_yolov1_parameters(original):
    # Hand sums over the 2015 cfg: the 24 convs' weights + biases 60,155,968; fc1 50,176*4,096 + 4,096
    # = 205,524,992; fc2 4,096*1,470 + 1,470 = 6,022,590. Total 271,703,550.
    assert count_parameters(original) == 271_703_550
    assert count_parameters(original.stages) == 60_155_968
    assert count_parameters(original.fc1) == 205_524_992
    assert count_parameters(original.fc2) == 6_022_590


def test_original_yolov1_multiply_adds_at_448(original):
    # 20,285,153,280 multiply-adds (conv + linear) at 448x448 (a hand sum over the cfg's layers)
    assert count_multiply_adds(original, (3, 448, 448)) == 20_285_153_280


def test_original_yolov1_has_biased_convs_and_no_batchnorm(original):
    convs = [m for m in original.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(c.bias is not None for c in convs)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in original.modules())
    assert {m.negative_slope for m in original.modules() if isinstance(m, torch.nn.LeakyReLU)} == {0.1}


def test_output_is_1470_for_448_inputs_and_other_sizes_are_refused(original):
    with torch.inference_mode():
        assert original(torch.zeros(1, 3, 448, 448)).shape == (1, 1470)
    with pytest.raises(ValueError, match="448x448"):
        original(torch.zeros(1, 3, 416, 416))
    with pytest.raises(ValueError, match="4-D"):
        original(torch.zeros(3, 448, 448))


def test_batchnorm_and_class_per_box_give_the_popular_275_731_794():
    # +BatchNorm -bias: each of the 13,184 conv output channels loses a bias (1) and gains
    # BatchNorm's gamma and beta (2): +13,184. Classes per box: fc2 outputs 7*7*2*25 = 2,450
    # instead of 1,470, i.e. 980 more outputs * 4,097 = +4,015,060. 271,703,550 + 13,184 + 4,015,060.
    assert count_parameters(yolov1(batch_norm=True)) == 271_703_550 + 13_184
    assert count_parameters(yolov1(class_per_box=True)) == 271_703_550 + 4_015_060
    both = yolov1(batch_norm=True, class_per_box=True)
    assert count_parameters(both) == 275_731_794
    assert both.fc2.out_features == 2450
    assert not any(m.bias is not None for m in both.modules() if isinstance(m, torch.nn.Conv2d))


def test_output_lengths():
    assert yolov1_output_length() == 1470  # 7*7*(2*5 + 20)
    assert yolov1_output_length(class_per_box=True) == 2450  # 7*7*2*(5 + 20)
    assert yolov1_output_length(9, 2, 20) == 2430  # the ResNet-50 version's 9x9x30 grid


def test_resnet50_version_counts_and_grid():
    # backbone: torchvision's ResNet-50 without fc, 23,508,032; head: 2048*1024 + 2*1024 (BN)
    # + 1024*256 + 2*256 (BN) + 256*30 = 2,369,536 trainable.
    model = yolov1_resnet50()
    trainable = count_parameters(model)
    assert trainable == 2_369_536
    assert count_parameters(model, trainable_only=False) - trainable == 23_508_032
    with torch.inference_mode():
        assert model.eval()(torch.zeros(1, 3, 448, 448)).shape == (1, 30, 9, 9)
    assert count_parameters(yolov1_resnet50(freeze_backbone=False)) == 23_508_032 + 2_369_536


def test_frozen_backbone_stays_in_eval_mode_when_training():
    model = yolov1_resnet50().train()
    assert model.head.training and not model.backbone.training
    assert not any(m.training for m in model.backbone.modules())


def test_resnet50_version_loads_a_torchvision_format_state_dict():
    torch.manual_seed(0)
    source = resnet50()  # with fc, as a torchvision classifier checkpoint has it
    state = {k: (v + 1 if v.is_floating_point() else v) for k, v in source.state_dict().items()}
    model = yolov1_resnet50(backbone_state_dict=state)
    assert torch.equal(model.backbone.layer3[5].bn2.running_var, state["layer3.5.bn2.running_var"])
    assert count_parameters(model) == 2_369_536
    with pytest.raises(ValueError, match="mismatched"):
        yolov1_resnet50(backbone_state_dict={**state, "layer1.0.conv1.weight": torch.zeros(1, 1, 1, 1)})


def _labelled_darknet_vector(S=2, B=2, C=3):
    """A Darknet-layout vector whose values say what they are: 1xx classes, 2xx confidences, 3xx boxes."""
    cells = S * S
    probs = torch.tensor([100.0 + 10 * i + j for i in range(cells) for j in range(C)])
    conf = torch.tensor([200.0 + 10 * i + b for i in range(cells) for b in range(B)])
    boxes = torch.tensor(
        [300.0 + 10 * i + b + k / 10 for i in range(cells) for b in range(B) for k in range(4)]
    )
    return torch.cat([probs, conf, boxes]).unsqueeze(0)


def test_darknet_to_cell_major_puts_each_cells_boxes_then_classes_together():
    cell_major = darknet_to_cell_major(_labelled_darknet_vector(), 2, 2, 3)
    per_cell = cell_major.view(4, 13)  # 2 boxes * (x, y, w, h, conf) + 3 classes
    # cell 1: box 0 = 310.0, 310.1, 310.2, 310.3 then conf 210; box 1 = 311.x then 211; classes 110-112
    expected = [310.0, 310.1, 310.2, 310.3, 210, 311.0, 311.1, 311.2, 311.3, 211, 110, 111, 112]
    assert torch.allclose(per_cell[1], torch.tensor(expected))


def test_decode_darknet_layout_follows_convert_yolo_detections():
    S, B, C = 7, 2, 20
    torch.manual_seed(0)
    out = torch.rand(1, yolov1_output_length(S, B, C))
    det = decode_yolov1(out, S, B, C, layout="darknet")
    assert det.boxes.shape == (1, 98, 4) and det.class_probs.shape == (1, 98, 20)
    # box n of cell i (row i // 7, column i % 7) is detection i*B + n, as in Darknet
    i, n = 23, 1
    box = out[0, S * S * (C + B) + (i * B + n) * 4 :][:4]
    assert torch.allclose(
        det.boxes[0, i * B + n],
        torch.stack([(box[0] + i % 7) / 7, (box[1] + i // 7) / 7, box[2] ** 2, box[3] ** 2]),
    )
    assert det.objectness[0, i * B + n] == out[0, S * S * C + i * B + n]
    assert torch.equal(det.class_probs[0, i * B + n], out[0, i * C : (i + 1) * C])
    same = decode_yolov1(darknet_to_cell_major(out), layout="cell_major")
    assert torch.equal(same.boxes, det.boxes) and torch.equal(same.class_probs, det.class_probs)


def test_decode_conv_map_and_class_per_box():
    torch.manual_seed(0)
    grid = torch.rand(2, 30, 9, 9)  # the ResNet-50 version's output
    det = decode_yolov1(grid, 9, 2, 20, layout="cell_major")
    assert det.boxes.shape == (2, 162, 4)
    assert torch.equal(det.objectness[1, 2 * (9 * 4 + 5) + 1], grid[1, 9, 4, 5])  # box 1's conf is channel 9
    per_box = torch.rand(1, 2450)
    det = decode_yolov1(per_box, layout="cell_major", class_per_box=True)
    assert torch.equal(det.class_probs[0, 3], per_box[0, 3 * 25 + 5 : 4 * 25])


def test_decode_rejects_wrong_lengths_and_layouts():
    with pytest.raises(ValueError, match=r"\(N, 1470\)"):
        decode_yolov1(torch.zeros(1, 2450))
    with pytest.raises(ValueError, match="layout"):
        decode_yolov1(torch.zeros(1, 1470), layout="grid")
    with pytest.raises(ValueError, match="cell_major"):
        decode_yolov1(torch.zeros(1, 2450), layout="darknet", class_per_box=True)
