"""Reading and writing Darknet's .weights files (yolo_lessons.darknet.weights).

Layout facts come from Darknet's src/parser.c (load_weights_upto, load_convolutional_weights,
load_connected_weights, save_weights_upto); the layer tables and float counts from the
research notes (darknet-ground-truth.md sections 1 and 3); the files in fixtures/darknet/ were
written by the original Darknet (see fixtures/darknet/README.md).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from yolo_lessons.darknet.weights import (
    DarknetHeader,
    WeightedLayer,
    darknet_float_count,
    darknet_layers,
    load_darknet_weights,
    read_darknet_header,
    save_darknet_weights,
)
from yolo_lessons.models.blocks import ConvBlock
from yolo_lessons.models.darknet19 import darknet19
from yolo_lessons.models.darknet53 import darknet53
from yolo_lessons.models.yolov1 import ConvLeaky, YOLOv1, yolov1
from yolo_lessons.models.yolov2 import yolov2
from yolo_lessons.models.yolov3 import yolov3

FIXTURES = Path(__file__).parent / "fixtures" / "darknet"
HEADER_0_2_0 = np.array([0, 2, 0], "<i4").tobytes()  # what pjreddie's save_weights_upto writes


def _model(builder, fill: str = "empty", **kwargs) -> nn.Module:
    """Build on the meta device (no slow init), then allocate: "random" fills every tensor,
    "empty" leaves the floats uninitialised (a load overwrites them) and zeroes the counters."""
    with torch.device("meta"):
        model = builder(**kwargs)
    model = model.to_empty(device="cpu")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if not tensor.is_floating_point():
                tensor.zero_()  # BatchNorm's num_batches_tracked: not in Darknet's files
            elif fill == "random":
                tensor.uniform_(-1, 1, generator=generator)
    return model


def _same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


# ----------------------------------------------------------------------------------------
# The layer order is the cfg's


def _table(network: str) -> list[tuple[int, str, int, int, int, int, bool]]:
    """(index, type, in channels, out channels, kernel, stride, BN) of a cfg's weighted layers."""
    rows = []
    for line in (FIXTURES / "cfg_weighted_layers.tsv").read_text().splitlines()[1:]:
        name, index, kind, detail, c_in, c_out = line.split("\t")
        if name != network:
            continue
        if kind == "connected":  # "50176->4096 leaky"
            inputs, outputs = (int(n) for n in detail.split()[0].split("->"))
            rows.append((int(index), kind, inputs, outputs, 1, 1, False))
        else:  # "1024 3x3/1 p1 BN leaky"
            size, stride = detail.split()[1].split("/")
            rows.append((int(index), kind, int(c_in.split("x")[0]), int(c_out.split("x")[0]),
                         int(size.split("x")[0]), int(stride), " BN " in f" {detail} "))
    return rows


def _ours(model: nn.Module) -> list[tuple[int, str, int, int, int, int, bool]]:
    rows = []
    for layer in darknet_layers(model):
        m = layer.module
        if isinstance(m, nn.Linear):
            rows.append((layer.index, "connected", m.in_features, m.out_features, 1, 1, False))
        else:
            rows.append((layer.index, "convolutional", m.in_channels, m.out_channels,
                         m.kernel_size[0], m.stride[0], layer.bn is not None))
    return rows


CFG_TABLES = [  # builder call -> table (tests/fixtures/darknet/cfg_weighted_layers.tsv)
    (darknet19, {}, "darknet19"),
    (darknet53, {}, "darknet53"),
    (yolov2, {}, "yolov2-voc"),
    (yolov2, {"num_classes": 80}, "yolov2-coco"),
    (yolov3, {}, "yolov3-coco"),
    (yolov3, {"num_classes": 20}, "yolov3-voc"),
    (yolov1, {}, "yolov1-2015"),
]


@pytest.mark.parametrize(("builder", "kwargs", "table"), CFG_TABLES, ids=[t for *_, t in CFG_TABLES])
def test_weighted_layers_follow_the_cfg_layer_table(builder, kwargs, table):
    with torch.device("meta"):
        model = builder(**kwargs)
    assert _ours(model) == _table(table)


def test_yolov2_passthrough_conv_comes_after_the_two_extra_convs():
    # yolov2-voc.cfg: 23, 24 the extra 3x3 convs, 25 [route] -9, 26 the 1x1x64 conv, 29 fuse, 30 detector
    with torch.device("meta"):
        model = yolov2()
    indices = {id(layer.module): layer.index for layer in darknet_layers(model)}
    assert [indices[id(model.extra[0].conv)], indices[id(model.extra[1].conv)]] == [23, 24]
    assert indices[id(model.passthrough.conv)] == 26
    assert [indices[id(model.fuse.conv)], indices[id(model.detect)]] == [29, 30]


def test_paper_era_yolov2_has_no_passthrough_conv_and_shifts_the_last_two_layers():
    # yolo-voc.2.0.cfg (darknet-ground-truth.md 1.3): route -9, reorg, route -1,-3 at 25-27,
    # then the 3x3 conv on 3072 channels at 28 and the 125-filter detector at 29
    with torch.device("meta"):
        model = yolov2(passthrough_channels=None)
    rows = _ours(model)
    assert len(rows) == 22
    assert rows[:20] == _table("yolov2-voc")[:20]  # layers 0-24 as in today's cfg
    assert rows[20:] == [(28, "convolutional", 3072, 1024, 3, 1, True), (29, "convolutional", 1024, 125, 1, 1, False)]


FLOAT_COUNTS = [  # darknet-ground-truth.md section 3, "Expected file sizes" (computed from the cfgs)
    (yolov3, {}, 62_001_757),  # 248,007,048 bytes: the size of the published yolov3.weights
    (yolov2, {}, 50_676_061),  # yolov2-voc.cfg
    (yolov2, {"num_classes": 80}, 50_983_561),  # yolov2.cfg
    (darknet19, {}, 20_856_776),
    (darknet53, {}, 41_645_640),
    (yolov1, {}, 271_703_550),  # the 2015 yolo.cfg (1,086,814,216 bytes with its 16-byte header)
    (yolov2, {"passthrough_channels": None}, 67_158_109),  # 67,137,565 trainable + 20,544 BN mean/var
]


@pytest.mark.parametrize(("builder", "kwargs", "floats"), FLOAT_COUNTS)
def test_float_count_matches_the_size_computed_from_the_cfg(builder, kwargs, floats):
    with torch.device("meta"):
        assert darknet_float_count(builder(**kwargs)) == floats


def test_backbone_only_counts_the_floats_of_darknet_partial_files():
    with torch.device("meta"):
        # darknet53.conv.74: Darknet-53 without its 1000-way conv (41,645,640 - 1,025,000)
        assert darknet_float_count(yolov3(), backbone_only=True) == 40_620_640
        assert darknet_float_count(yolov3(), upto=74) == 40_620_640
        # darknet19_448.conv.23: Darknet-19 without its 1000-way conv (20,856,776 - 1,025,000)
        assert darknet_float_count(yolov2(), backbone_only=True) == 19_831_776


# ----------------------------------------------------------------------------------------
# Round trips


BUILDERS = [  # every network the package builds, as its builders make them
    (darknet19, {}),
    (darknet53, {}),
    (yolov2, {}),
    (yolov2, {"num_classes": 80}),
    (yolov2, {"passthrough_channels": None}),
    (yolov3, {}),
    (yolov3, {"num_classes": 20}),
    (yolov1, {}),
    (yolov1, {"batch_norm": True, "class_per_box": True}),
]


@pytest.mark.parametrize(("builder", "kwargs"), BUILDERS)
def test_the_file_holds_every_parameter_and_batchnorm_statistic_exactly_once(builder, kwargs):
    # With this, save and load (one loop over the same list) round-trip every builder; the
    # bit-for-bit test below runs that loop on real numbers for two of them.
    with torch.device("meta"):
        model = builder(**kwargs)
    in_file = [id(t) for layer in darknet_layers(model) for t in layer.tensors()]
    expected = [t for name, t in model.state_dict(keep_vars=True).items() if not name.endswith("num_batches_tracked")]
    assert len(in_file) == len(set(in_file)) == len(expected)
    assert set(in_file) == {id(t) for t in expected}


@pytest.mark.parametrize(("builder", "kwargs"), [(darknet19, {}), (yolov3, {})])
def test_save_then_load_is_bit_identical(builder, kwargs, tmp_path):
    original = _model(builder, "random", **kwargs)
    path = tmp_path / "model.weights"
    written = save_darknet_weights(original, path, seen=123)
    assert written == path.stat().st_size == 20 + 4 * darknet_float_count(original)
    copy = _model(builder, **kwargs)
    header = load_darknet_weights(copy, path)
    assert header == DarknetHeader(0, 2, 0, 123)
    assert _same_state(copy.state_dict(), original.state_dict())


def test_darknet53_conv74_loads_into_yolov3_backbone_only(tmp_path):
    classifier = _model(darknet53, "random")
    path = tmp_path / "darknet53.conv.74"
    save_darknet_weights(classifier, path, upto=74)  # like `darknet partial darknet53.cfg ... 74`
    detector = _model(yolov3, "random")  # filled: uninitialised memory may hold NaN, which equals nothing
    head_before = detector.detect8[1].weight.clone()
    load_darknet_weights(detector, path, backbone_only=True)
    backbone = {k: v for k, v in classifier.state_dict().items() if not k.startswith("classifier.")}
    assert _same_state(detector.backbone.state_dict(), backbone)
    assert torch.equal(detector.detect8[1].weight, head_before)  # not in the file: left as it was


# ----------------------------------------------------------------------------------------
# Files assembled by hand from the documented layout (not through the writer)


def _tiny() -> tuple[nn.Sequential, list[WeightedLayer]]:
    """The fixture's cfg: conv 3->4 3x3 BN leaky, max-pool 2/2, conv 4->6 1x1 bias leaky, connected 96->5."""
    model = nn.Sequential(ConvBlock(3, 4, 3), nn.MaxPool2d(2, 2), ConvLeaky(4, 6, 1), nn.Flatten(), nn.Linear(96, 5))
    layers = [WeightedLayer(0, model[0].conv, model[0].bn), WeightedLayer(2, model[2].conv), WeightedLayer(3, model[4])]
    return model, layers


def test_hand_assembled_file_loads_each_array_into_its_tensor():
    # Every array holds different numbers: 0.x beta, 1.x gamma, ... so a swap cannot pass.
    beta, gamma, mean, var = (np.arange(4) / 8 + k for k in (0, 1, 2, 3))
    kernel0 = np.arange(4 * 3 * 3 * 3).reshape(4, 3, 3, 3) / 128 + 10  # (out, in, kh, kw)
    bias2, kernel2 = np.arange(6) + 20, np.arange(6 * 4).reshape(6, 4, 1, 1) + 30
    bias3, weight3 = np.arange(5) + 60, np.arange(5 * 96).reshape(5, 96) / 4 - 70  # (outputs, inputs)
    arrays = [beta, gamma, mean, var, kernel0, bias2, kernel2, bias3, weight3]
    data = HEADER_0_2_0 + np.array([4096], "<u8").tobytes()
    data += b"".join(np.asarray(a, "<f4").tobytes() for a in arrays)
    model, layers = _tiny()
    header = load_darknet_weights(model, io.BytesIO(data), layers=layers)
    assert (header.major, header.minor, header.revision, header.seen, header.size) == (0, 2, 0, 4096, 20)
    expected = [model[0].bn.bias, model[0].bn.weight, model[0].bn.running_mean, model[0].bn.running_var,
                model[0].conv.weight, model[2].conv.bias, model[2].conv.weight, model[4].bias, model[4].weight]
    for tensor, array in zip(expected, arrays, strict=True):
        assert torch.equal(tensor, torch.tensor(array, dtype=torch.float32))


def test_each_yolov2_module_receives_its_cfg_layer_from_a_file_built_from_the_table(tmp_path):
    # Fill every float of cfg layer k with the number k, sized from the cfg table alone.
    path = tmp_path / "yolov2-voc.weights"
    with open(path, "wb") as file:
        file.write(HEADER_0_2_0 + np.array([0], "<u8").tobytes())
        for index, _, c_in, c_out, size, _, bn in _table("yolov2-voc"):
            file.write(np.full(c_out * (4 if bn else 1) + c_out * c_in * size * size, index, "<f4").tobytes())
    model = _model(yolov2)
    load_darknet_weights(model, path)
    assert torch.all(model.backbone.stages[5][5].bn.running_var == 22)  # darknet19's last conv: layer 22
    assert torch.all(model.extra[1].conv.weight == 24)
    assert torch.all(model.passthrough.bn.bias == 26)  # loaded after the extra convs, as in the cfg
    assert torch.all(model.fuse.conv.weight == 29)
    assert torch.all(model.detect.bias == 30)


def _legacy_header(seen: int = 64) -> bytes:
    """A 2015 header: learning rate, momentum, decay as float32, then an int32 seen."""
    return np.array([0.0005, 0.9, 0.0005], "<f4").tobytes() + np.array([seen], "<i4").tobytes()


def test_2015_file_has_a_16_byte_header_and_transposed_connected_weights():
    weight = np.arange(5 * 96, dtype=np.float32).reshape(5, 96)  # (outputs, inputs) as nn.Linear holds it
    model, layers = _tiny()
    conv_floats = 4 * 4 + 4 * 27 + 6 + 6 * 4
    data = _legacy_header() + np.zeros(conv_floats + 5, "<f4").tobytes() + weight.T.astype("<f4").tobytes()
    header = load_darknet_weights(model, io.BytesIO(data), layers=layers)
    assert (header.legacy, header.transposed, header.size, header.seen) == (True, True, 16, 64)
    assert header.major == 973279855  # 0.0005f read as int32 (darknet-ground-truth.md section 3)
    assert torch.equal(model[4].weight, torch.from_numpy(weight))


def test_yolov1_flattens_its_feature_map_as_darknet_reads_its_connected_input():
    # Darknet's [connected] reads input i = (c * H + y) * W + x of the (C, H, W) buffer.
    with torch.device("meta"):
        model = YOLOv1(grid_size=2)  # 128x128 input, 1024x2x2 features, fc1 4096 -> 4096
    # A cheap stand-in for the 24 convs with the same output shape; forward() is what is tested.
    model.stages = nn.ModuleList([nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Conv2d(3, 1024, 1))])
    model = model.to_empty(device="cpu").eval()
    nn.init.normal_(model.stages[0][1].weight)
    seen = {}
    model.fc1.register_forward_hook(lambda module, args, out: seen.update(x=args[0]))
    x = torch.randn(1, 3, 128, 128, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        model(x)
        features = model.features(x)[0]  # (1024, 2, 2)
    for c, y, xx in [(0, 0, 1), (5, 1, 0), (1023, 1, 1)]:
        assert seen["x"][0, (c * 2 + y) * 2 + xx] == features[c, y, xx]


# ----------------------------------------------------------------------------------------
# Files written by the original Darknet (fixtures/darknet/README.md)


def test_darknet_written_file_loads_and_our_writer_reproduces_it_byte_for_byte(tmp_path):
    model, layers = _tiny()
    header = load_darknet_weights(model, FIXTURES / "darknet_init.weights", layers=layers)
    assert header == DarknetHeader(0, 2, 0, 0)
    assert torch.all(model[0].bn.weight == 1) and torch.all(model[0].bn.bias == 0)  # make_convolutional_layer
    save_darknet_weights(model, tmp_path / "ours.weights", layers=layers)
    assert (tmp_path / "ours.weights").read_bytes() == (FIXTURES / "darknet_init.weights").read_bytes()


def test_darknet_converted_2015_file_loads_to_the_same_model_and_same_output():
    old, old_layers = _tiny()
    load_darknet_weights(old, FIXTURES / "legacy_2015.weights", layers=old_layers)
    new, new_layers = _tiny()
    assert read_darknet_header(FIXTURES / "darknet_converted.weights") == DarknetHeader(0, 2, 0, 0)
    load_darknet_weights(new, FIXTURES / "darknet_converted.weights", layers=new_layers)
    assert _same_state(old.state_dict(), new.state_dict())
    # Darknet's own forward pass of the same weights on x[i] = (i * 37 % 101) / 50 - 1, (C, H, W) order
    x = torch.tensor([(i * 37 % 101) / 50 - 1 for i in range(3 * 8 * 8)]).view(1, 3, 8, 8)
    darknet_out = torch.from_numpy(np.fromfile(FIXTURES / "darknet_output.f32", "<f4"))
    with torch.no_grad():
        ours = new.eval()(x)[0]
    # Darknet's CPU BatchNorm divides by sqrt(var) + 1e-6, PyTorch by sqrt(var + 1e-5)
    torch.testing.assert_close(ours, darknet_out, rtol=1e-4, atol=1e-4)


def test_our_writer_turns_a_2015_file_into_darknets_own_conversion(tmp_path):
    model, layers = _tiny()
    load_darknet_weights(model, FIXTURES / "legacy_2015.weights", layers=layers)
    save_darknet_weights(model, tmp_path / "ours.weights", layers=layers)
    assert (tmp_path / "ours.weights").read_bytes() == (FIXTURES / "darknet_converted.weights").read_bytes()


# ----------------------------------------------------------------------------------------
# Everything is checked before anything is copied


def _tiny_file() -> bytes:
    return (FIXTURES / "darknet_converted.weights").read_bytes()  # 20 + 4 * 639 bytes


def _load_fails(data: bytes, match: str, **kwargs) -> None:
    model, layers = _tiny()
    before = _snapshot(model)
    with pytest.raises(ValueError, match=match):
        load_darknet_weights(model, io.BytesIO(data), layers=layers, **kwargs)
    assert _same_state(model.state_dict(), before)


def test_a_renamed_jpeg_is_not_a_weights_file():
    jpeg = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01" + bytes(2600)
    _load_fails(jpeg, r"not a Darknet \.weights file.*JPEG image")


def test_an_html_error_page_is_not_a_weights_file():
    _load_fails(b"<!DOCTYPE html><html><body>404 Not Found</body></html>" + bytes(2600), r"HTML")


def test_a_file_shorter_than_a_header_is_rejected():
    _load_fails(HEADER_0_2_0[:10], r"only 10 bytes")


def test_a_truncated_download_names_the_layer_that_ran_out():
    # 100 floats short: the connected layer (485 floats) starts at float 154 and finds 385
    _load_fails(_tiny_file()[:-400], r"ran out in layer 3 \(connected 96->5\): it needs 485 floats .* only 385")


def test_a_truncated_float_is_rejected():
    _load_fails(_tiny_file()[:-3], r"not a whole number of float32 values \(1 bytes too many\)")


def test_trailing_bytes_are_reported_as_left_over():
    _load_fails(_tiny_file() + bytes(8), r"2 floats \(8 bytes\) left over after layer 3")


def test_upto_loads_only_the_first_layers_and_nothing_silently():
    file = _tiny_file()
    _load_fails(file, r"left over after layer 2", upto=3)  # the whole file but only layers 0-2 asked for
    model, layers = _tiny()
    connected_before = model[4].weight.clone()
    first_two = file[: 20 + 4 * (124 + 30)]  # like `darknet partial tiny.cfg ... 3`
    load_darknet_weights(model, io.BytesIO(first_two), layers=layers, upto=3)
    assert torch.equal(model[4].weight, connected_before)  # layer 3 is not in the file: untouched
    assert model[2].conv.bias.tolist() == np.frombuffer(file, "<f4", 6, 20 + 4 * 124).tolist()


def test_a_file_for_another_network_names_the_layer_where_they_part():
    # A darknet19.weights (20,856,776 floats) given to yolov2(): Darknet-19's layers 0-22 fit,
    # then layer 23 needs 4 * 1024 + 1024 * 1024 * 9 = 9,441,280 floats and finds only the
    # classifier's 1,025,000. (The model is never touched: the sizes are checked first.)
    file = io.BytesIO(HEADER_0_2_0 + bytes(8) + bytes(4 * 20_856_776))
    with torch.device("meta"):
        detector = yolov2()
    with pytest.raises(ValueError, match=r"ran out in layer 23 \(conv 1024->1024 3x3/1, BN\).*only 1,025,000"):
        load_darknet_weights(detector, file)


def test_a_file_for_a_similar_small_network_leaves_the_model_unchanged():
    wider = nn.Sequential(ConvBlock(3, 8, 3), nn.MaxPool2d(2, 2), ConvLeaky(8, 6, 1), nn.Flatten(), nn.Linear(96, 5))
    layers = [WeightedLayer(0, wider[0].conv, wider[0].bn), WeightedLayer(2, wider[2].conv), WeightedLayer(3, wider[4])]
    before = _snapshot(wider)
    with pytest.raises(ValueError, match=r"ran out in layer 3 \(connected 96->5\)"):
        load_darknet_weights(wider, FIXTURES / "darknet_init.weights", layers=layers)
    assert _same_state(wider.state_dict(), before)


def test_bad_arguments_say_what_was_expected():
    model, layers = _tiny()
    with pytest.raises(ValueError, match="either upto= or backbone_only"):
        load_darknet_weights(model, io.BytesIO(_tiny_file()), layers=layers, upto=3, backbone_only=True)
    with pytest.raises(ValueError, match="no Darknet layer order known for Sequential"):
        save_darknet_weights(model, io.BytesIO())
    with pytest.raises(ValueError, match="upto must be a positive int"):
        save_darknet_weights(model, io.BytesIO(), layers=layers, upto=0)
    with pytest.raises(ValueError, match="seen must be an int"):
        save_darknet_weights(model, io.BytesIO(), layers=layers, seen=-1)


def test_the_2015_fixture_is_what_its_readme_recipe_writes():
    header = np.array([0.0005, 0.9, 0.0005], "<f4").tobytes() + np.array([64], "<i4").tobytes()
    k = np.arange(1, 640)
    values = np.where(k % 2 == 1, k, -k) / 64
    values[12:16] = np.abs(values[12:16])  # running variances: positive
    assert header + values.astype("<f4").tobytes() == (FIXTURES / "legacy_2015.weights").read_bytes()


@pytest.mark.parametrize(
    ("version", "seen_dtype", "header_bytes"),
    [((0, 2, 0), "<u8", 20), ((0, 2, 5), "<u8", 20), ((0, 1, 0), "<i4", 16),  # pjreddie, AlexeyAB, version 0.1
     ((1000, 0, 0), "<i4", 16)],  # load_weights_upto: 8 bytes only when major < 1000 && minor < 1000
)
def test_seen_is_8_bytes_from_version_0_2_and_4_bytes_before(version, seen_dtype, header_bytes):
    body = _tiny_file()[20:]
    data = np.array(version, "<i4").tobytes() + np.array([640], seen_dtype).tobytes() + body
    model, layers = _tiny()
    header = load_darknet_weights(model, io.BytesIO(data), layers=layers)
    assert (header.size, header.seen, header.transposed) == (header_bytes, 640, False)
