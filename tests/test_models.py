"""The builders match the original Darknet cfgs: the issue's table of exact numbers.

Sources of the numbers: parameters, BN statistics and weighted layers are counted from
darknet19.cfg, yolov2-voc.cfg / yolov2.cfg, darknet53.cfg and yolov3.cfg layer by layer;
multiply-adds are conv + linear, one image. The papers quote operations at 2 per multiply-add:
Darknet-19 "5.58 billion" (YOLOv2 paper, Table 6), Darknet-53 "18.7 billion" (YOLOv3 paper,
Table 2; we get 18.57).
"""

from __future__ import annotations

import pytest
import torch

from yolo_lessons import (
    count_bn_statistics,
    count_multiply_adds,
    count_parameters,
    count_weighted_layers,
    darknet19,
    darknet53,
    darknet_reorg,
    model_summary,
    yolov2,
    yolov3,
)

# builder, input side, trainable params, BN running mean+var, weighted layers, multiply-adds, output shapes
TABLE = {
    "darknet19": (darknet19, 224, 20_842_376, 14_400, 19, 2_790_989_824, [(1, 1000)]),
    "yolov2-voc": (lambda: yolov2(num_classes=20), 416, 50_655_389, 20_672, 23, 14_680_167_424, [(1, 125, 13, 13)]),
    "yolov2-coco": (lambda: yolov2(num_classes=80), 608, 50_962_889, 20_672, 23, 31_469_126_656, [(1, 425, 19, 19)]),
    "darknet53": (darknet53, 256, 41_609_928, 35_712, 53, 9_285_115_904, [(1, 1000)]),
    "yolov3-coco": (
        lambda: yolov3(num_classes=80), 416, 61_949_149, 52_608, 75, 32_932_037_632,
        [(1, 255, 13, 13), (1, 255, 26, 26), (1, 255, 52, 52)],
    ),
    "yolov3-voc": (
        lambda: yolov3(num_classes=20), 416, 61_626_049, 52_608, 75, 32_713_987_072,
        [(1, 75, 13, 13), (1, 75, 26, 26), (1, 75, 52, 52)],
    ),
}


@pytest.fixture(scope="module", params=list(TABLE), ids=list(TABLE))
def row(request):
    build, side, *numbers = TABLE[request.param]
    return build(), side, *numbers


def output_shapes(model, side):
    with torch.inference_mode():
        out = model.eval()(torch.zeros(1, 3, side, side))
    return [tuple(t.shape) for t in (out if isinstance(out, tuple) else (out,))]


def test_trainable_parameters(row):
    model, _, params, *_ = row
    assert count_parameters(model) == params


def test_batchnorm_running_statistics(row):
    model, _, _, bn_stats, *_ = row
    assert count_bn_statistics(model) == bn_stats


def test_weighted_layers(row):
    model, _, _, _, layers, *_ = row
    assert count_weighted_layers(model) == layers


def test_multiply_adds(row):
    model, side, *_, macs, _ = row
    assert count_multiply_adds(model, (3, side, side)) == macs


def test_output_shapes(row):
    model, side, *_, shapes = row
    assert output_shapes(model, side) == shapes


def test_darknet19_reproduces_the_papers_5_58_billion_operations():
    assert round(2 * 2_790_989_824 / 1e9, 2) == 5.58  # the table's MACs, 2 ops each


def test_torchinfo_total_is_our_count_plus_batchnorm_and_bias_terms_printed_without_units():
    model = darknet19()
    stats = model_summary(model, (3, 224, 224), depth=1)
    # torchinfo also counts one op per BatchNorm scale/shift (14,400 of them) and the
    # classifier's bias added at each of its 7x7 positions (1000 * 49): 63,400 more.
    assert stats.total_mult_adds == 2_790_989_824 + 14_400 + 1000 * 7 * 7
    text = str(stats)
    assert "Total mult-adds: 2,791,053,224" in text
    assert "Trainable params: 20,842,376" in text
    assert "Units." not in text


def test_paper_era_yolov2_has_no_1x1_passthrough_conv_and_67_137_565_parameters():
    # YOLO9000 paper, section 2: the 26x26x512 map is reorganised straight to 13x13x2048.
    # The 1x1x64 conv entered yolov2-voc.cfg in March 2017.
    model = yolov2(num_classes=20, passthrough_channels=None)
    assert count_parameters(model) == 67_137_565
    assert count_weighted_layers(model) == 22
    assert model.fuse.conv.in_channels == 2048 + 1024


@pytest.mark.parametrize(("side", "grid"), [(320, 10), (352, 11), (608, 19)])
def test_yolov2_accepts_any_multiple_of_32(side, grid):
    assert count_multiply_adds(yolov2(), (3, side, side)) > 0
    assert output_shapes(yolov2(), side) == [(1, 125, grid, grid)]


def test_yolov2_concatenates_the_reorg_output_first():
    model = yolov2().eval()
    seen = {}
    model.fuse.register_forward_hook(lambda m, i, o: seen.update(fuse_input=i[0]))
    model.passthrough.register_forward_hook(lambda m, i, o: seen.update(passthrough=o))
    with torch.inference_mode():
        model(torch.randn(1, 3, 64, 64))
    assert torch.equal(seen["fuse_input"][:, :256], darknet_reorg(seen["passthrough"]))


def test_yolov2_passthrough_reads_the_26x26x512_map_before_the_last_pool():
    model = yolov2()
    assert model.passthrough.conv.in_channels == 512
    assert model.passthrough.conv.weight.shape == (64, 512, 1, 1)


def test_yolov3_concatenates_the_upsampled_tensor_first():
    model = yolov3().eval()
    seen = {}
    model.neck16[0].register_forward_hook(lambda m, i, o: seen.update(neck16=i[0]))
    model.lateral16.register_forward_hook(lambda m, i, o: seen.update(lateral16=o))
    with torch.inference_mode():
        model(torch.randn(1, 3, 64, 64))
    upsampled = seen["lateral16"].repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    assert torch.equal(seen["neck16"][:, :256], upsampled)


def test_yolov3_heads_use_anchor_masks_678_345_012():
    model = yolov3()
    assert model.masks == ((6, 7, 8), (3, 4, 5), (0, 1, 2))
    assert model.anchors[8].tolist() == [373, 326] and model.anchors[0].tolist() == [10, 13]


def test_darknet_feature_maps_have_the_strides_the_detectors_use():
    x = torch.zeros(1, 3, 64, 64)
    with torch.inference_mode():
        s16, s32 = darknet19(num_classes=0).eval().feature_maps(x)
        s8, s16b, s32b = darknet53(num_classes=0).eval().feature_maps(x)
    assert [t.shape for t in (s16, s32)] == [(1, 512, 4, 4), (1, 1024, 2, 2)]
    assert [t.shape for t in (s8, s16b, s32b)] == [(1, 256, 8, 8), (1, 512, 4, 4), (1, 1024, 2, 2)]


def test_counting_leaves_every_submodule_in_the_mode_it_was_in():
    model = darknet19()
    model.stages[0].eval()  # one part in eval (as a frozen backbone would be), the rest in train
    count_multiply_adds(model, (3, 64, 64))
    assert model.training and not model.stages[0].training and model.stages[1].training


def test_the_summary_table_fits_a_notebook_column_and_keeps_every_entry():
    # torchinfo pads every column to 25 characters and the names to 40 (120 in all for three
    # columns); ours keeps each column as wide as its widest entry, so yolov2's table is 72.
    stats = model_summary(yolov2(), (3, 416, 416), depth=2)
    lines = str(stats).splitlines()
    assert max(map(len, lines)) == 72
    assert lines[1].split() == ["Layer", "(type", "(var_name))", "Output", "Shape", "Param", "#", "Mult-Adds"]
    row = next(line for line in lines if "(detect)" in line)
    assert row.split()[-2:] == ["128,125", "21,653,125"]
    assert "Total mult-adds: 14,680,209,221" in lines
    assert set(lines[0]) == {"="} and len(lines[0]) == 72
