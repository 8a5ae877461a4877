"""The tiny models by hand: Darknet's counts, their .weights layout, equal to their cfg-built twins."""

from __future__ import annotations

import pytest
import torch
from cfg_texts import yolov2_tiny_cfg, yolov3_tiny_cfg
from test_cfg import assert_same_network

from yolo_lessons.darknet.cfg import build_network, darknet_bflops
from yolo_lessons.darknet.weights import darknet_float_count, darknet_layers, save_darknet_weights
from yolo_lessons.detection.inference import detect
from yolo_lessons.models.blocks import DarknetMaxPool
from yolo_lessons.models.counting import count_multiply_adds, count_parameters
from yolo_lessons.models.tiny import yolov2_tiny, yolov2_tiny_voc, yolov3_tiny


@pytest.mark.parametrize(
    "builder, parameters, bflops",
    [  # Darknet's layer table at 416 x 416 prints the BFLOPs; the parameters are the cfgs' weights
        (yolov2_tiny_voc, 15_861_773, 6.971),
        (yolov2_tiny, 11_232_057, 5.406),
        (yolov3_tiny, 8_852_366, 5.565),
    ],
)
def test_counts_as_darknet_prints_them(builder, parameters, bflops):
    model = builder()
    assert count_parameters(model) == parameters
    assert round(2 * count_multiply_adds(model, (3, 416, 416)) / 1e9, 3) == bflops


def test_yolov3_tiny_weights_file_is_the_size_of_the_released_one(tmp_path):
    model = yolov3_tiny()
    save_darknet_weights(model, tmp_path / "tiny.weights")
    assert (tmp_path / "tiny.weights").stat().st_size == 35_434_956  # yolov3-tiny.weights, pjreddie.com
    assert darknet_float_count(model) == (35_434_956 - 20) // 4
    assert [layer.index for layer in darknet_layers(model)] == [0, 2, 4, 6, 8, 10, 12, 13, 14, 15, 18, 21, 22]


@pytest.mark.parametrize("voc", [True, False])
def test_yolov2_tiny_equals_its_cfg(tmp_path, voc):
    assert_same_network(yolov2_tiny_voc() if voc else yolov2_tiny(), yolov2_tiny_cfg(voc), tmp_path, 96)
    assert round(darknet_bflops(build_network(yolov2_tiny_cfg(voc))), 3) == (6.971 if voc else 5.406)


def test_yolov3_tiny_equals_its_cfg(tmp_path):
    assert_same_network(yolov3_tiny(), yolov3_tiny_cfg(), tmp_path, 128)
    net = build_network(yolov3_tiny_cfg())
    assert net.infos[11].shape == (512, 13, 13)  # the stride-1 pool keeps 13 x 13
    assert net.infos[20].sources == (19, 8) and net.heads == [16, 23]


def test_zero_padding_the_stride_1_pool_changes_yolov3_tinys_output():
    torch.manual_seed(0)
    model = yolov3_tiny().eval()
    x = torch.rand(1, 3, 416, 416)
    with torch.no_grad():
        darknet = model(x)
        model.trunk[11] = ZeroPaddedPool()  # what popular ports write: pad with zeros
        port = model(x)
    changed = (darknet[0] - port[0]).abs().amax(dim=1)[0] > 1e-6  # (13, 13) cells of the stride-32 head
    assert 0 < int(changed.sum()) < 13 * 13  # some cells move, the map is not simply shifted


class ZeroPaddedPool(torch.nn.Module):
    def forward(self, x):
        return torch.nn.functional.max_pool2d(torch.nn.functional.pad(x, (0, 1, 0, 1), value=0.0), 2, 1)


def test_the_tiny_models_detect_through_the_one_call_api():
    torch.manual_seed(0)
    picture = (torch.rand(200, 300, 3) * 255).to(torch.uint8).numpy()
    for model in (yolov2_tiny_voc(), yolov3_tiny()):
        found = detect(model, picture, input_size=160, thresh=0.0)
        assert found.boxes.shape[1] == 4 and len(found) > 0


def test_the_pool_keeps_the_map_and_never_picks_the_padding():
    x = -torch.rand(1, 1, 13, 13) - 1  # every value negative
    out = DarknetMaxPool(2, 1)(x)
    assert out.shape == (1, 1, 13, 13) and bool((out < 0).all())
