"""Chapter 9's checkpoints pass correct readers of .weights files and name each known mistake."""

from __future__ import annotations

import copy
import re
import struct

import numpy as np
import pytest
import torch
from torch import nn

from yolo_lessons.checkpoints.common import CheckpointError
from yolo_lessons.checkpoints.weights import (
    _header_bytes,
    check_cfg_order_layers,
    check_load_bn_conv,
    check_read_header,
)
from yolo_lessons.darknet.book_weights import BOOK_ANCHORS, BOOK_WEIGHTS, load_book_model, small_yolov2_layers
from yolo_lessons.darknet.weights import WeightedLayer, load_darknet_weights
from yolo_lessons.models.blocks import ConvBlock
from yolo_lessons.models.small_yolov2 import small_yolov2

# --- Exercise 1: read_header(raw) -> (major, minor, revision, seen, header_bytes) -----------


def header_numpy(raw):
    """The chapter's answer: numpy views, Darknet's condition for an 8-byte seen."""
    major, minor, revision = (int(v) for v in np.frombuffer(raw, dtype="<i4", count=3))
    wide = major * 10 + minor >= 2 and major < 1000 and minor < 1000
    seen_type = np.dtype("<u8" if wide else "<i4")
    seen = int(np.frombuffer(raw, dtype=seen_type, count=1, offset=12)[0])
    return major, minor, revision, seen, 12 + seen_type.itemsize


def header_struct(raw):
    """Another correct answer: the struct module, the test written with max()."""
    major, minor, revision = struct.unpack_from("<3i", raw)
    if major * 10 + minor >= 2 and max(major, minor) < 1000:
        return major, minor, revision, struct.unpack_from("<Q", raw, 12)[0], 20
    return major, minor, revision, struct.unpack_from("<i", raw, 12)[0], 16


def header_transpose_flag(raw):
    """Wrong at exactly 1000: the legacy test written as Darknet's transpose flag (> 1000), not < 1000."""
    major, minor, revision = struct.unpack_from("<3i", raw)
    legacy = major > 1000 or minor > 1000
    if major * 10 + minor >= 2 and not legacy:
        return major, minor, revision, struct.unpack_from("<Q", raw, 12)[0], 20
    return major, minor, revision, struct.unpack_from("<i", raw, 12)[0], 16


def header_always_4_bytes(raw):
    major, minor, revision, seen = struct.unpack_from("<4i", raw)
    return major, minor, revision, seen, 16


def header_always_8_bytes(raw):
    major, minor, revision = struct.unpack_from("<3i", raw)
    return major, minor, revision, struct.unpack_from("<Q", raw, 12)[0], 20


def header_without_legacy_test(raw):
    """Darknet's condition without 'neither above 1000': a 2015 file gets an 8-byte seen."""
    major, minor, revision = struct.unpack_from("<3i", raw)
    if major * 10 + minor >= 2:
        return major, minor, revision, struct.unpack_from("<Q", raw, 12)[0], 20
    return major, minor, revision, struct.unpack_from("<i", raw, 12)[0], 16


def header_big_endian(raw):
    major, minor, revision = struct.unpack_from(">3i", raw)
    return major, minor, revision, struct.unpack_from("<Q", raw, 12)[0], 20


def header_numpy_ints(raw):
    """Right values, but numpy integers instead of Python ints."""
    major, minor, revision = np.frombuffer(raw, dtype="<i4", count=3)
    *_, seen, size = header_numpy(raw)
    return major, minor, revision, np.uint64(seen), size


def header_printing(raw):
    print("reading", len(raw), "bytes")
    return header_numpy(raw)


@pytest.mark.parametrize("fn", [header_numpy, header_struct, header_printing])
def test_read_header_passes_correct_readers(fn, capsys):
    check_read_header(fn)
    assert "8-byte seen" in capsys.readouterr().out


@pytest.mark.parametrize(
    "fn, message",
    [
        (header_always_4_bytes, "seen was read as 4 bytes; it is 8 bytes"),
        (header_always_8_bytes, "with major*10 + minor = 1 < 2 it is 4 bytes"),
        (header_without_legacy_test, "in a 2015 file major or minor is above 1000"),
        (header_transpose_flag, "only when major and minor are both below 1000"),
        (header_big_endian, "big-endian"),
        (header_numpy_ints, "numpy int32: convert it with int(...)"),
    ],
)
def test_read_header_names_the_mistake(fn, message):
    with pytest.raises(CheckpointError, match=re.escape(message)):
        check_read_header(fn)


def test_read_header_reports_a_stub_and_a_wrong_shape():
    def stub(raw):
        raise NotImplementedError("read three int32, then seen")

    with pytest.raises(CheckpointError, match="not implemented yet: read three int32"):
        check_read_header(stub)
    with pytest.raises(CheckpointError, match="expected a tuple of five ints"):
        check_read_header(lambda raw: header_numpy(raw)[:4])


def test_the_2015_case_is_a_16_byte_header_with_float_rates():
    raw = _header_bytes((0.001, 0.9, 0.0005), 64_000)
    # 0.001f read as int32 is 981668463 (research notes, section 3); 64,000 in the next 4 bytes
    assert header_numpy(raw) == (981668463, 1063675494, 973279855, 64_000, 16)


# --- Exercise 2: load_bn_conv(floats, offset, block) -> next offset ---------------------------

BN_ORDER = ("bn.bias", "bn.weight", "bn.running_mean", "bn.running_var", "conv.weight")


def tensors_of(block, order=BN_ORDER):
    return [block.get_parameter(n) if n != "bn.running_mean" and n != "bn.running_var" else block.get_buffer(n)
            for n in order]


def load_copy(floats, offset, block):
    """The chapter's answer: copy_ each tensor in file order."""
    with torch.no_grad():
        for tensor in tensors_of(block):
            count = tensor.numel()
            tensor.copy_(torch.from_numpy(floats[offset : offset + count]).view(tensor.shape))
            offset += count
    return offset


def load_split(floats, offset, block):
    """Another correct answer: np.split at the cumulative sizes, assigned through .data."""
    n, w = block.bn.num_features, block.conv.weight
    beta, gamma, mean, var, kernel = np.split(floats[offset : offset + 4 * n + w.numel()], [n, 2 * n, 3 * n, 4 * n])
    block.bn.bias.data = torch.tensor(beta)
    block.bn.weight.data = torch.tensor(gamma)
    block.bn.running_mean = torch.tensor(mean)
    block.bn.running_var = torch.tensor(var)
    block.conv.weight.data = torch.tensor(kernel).reshape(w.shape)
    return offset + 4 * n + w.numel()


def make_wrong_order(order, transposed=False):
    def load(floats, offset, block):
        with torch.no_grad():
            for name in order:
                tensor = tensors_of(block, (name,))[0]
                count = tensor.numel()
                values = torch.from_numpy(floats[offset : offset + count].copy())
                if transposed and name == "conv.weight":
                    o, i, kh, kw = tensor.shape
                    values = values.view(i, o, kh, kw).transpose(0, 1)
                tensor.copy_(values.reshape(tensor.shape))
                offset += count
        return offset

    return load


def load_count_only_kernel(floats, offset, block):
    load_copy(floats, offset, block)
    return offset + block.conv.weight.numel()


def load_returns_count(floats, offset, block):
    return load_copy(floats, offset, block) - offset


def load_from_zero(floats, offset, block):
    return offset + load_copy(floats, 0, block)


def load_numpy_offset(floats, offset, block):
    return np.int64(load_copy(floats, offset, block))


@pytest.mark.parametrize("fn", [load_copy, load_split])
def test_load_bn_conv_passes_correct_readers(fn, capsys):
    check_load_bn_conv(fn)
    assert "beta, gamma, mean, variance" in capsys.readouterr().out


@pytest.mark.parametrize(
    "fn, message",
    [
        (make_wrong_order(("bn.weight", "bn.bias", "bn.running_mean", "bn.running_var", "conv.weight")),
         "gamma and beta are swapped"),
        (make_wrong_order(("bn.bias", "bn.weight", "bn.running_var", "bn.running_mean", "conv.weight")),
         "mean and variance are swapped"),
        (make_wrong_order(("conv.weight", "bn.bias", "bn.weight", "bn.running_mean", "bn.running_var")),
         "the kernel was read before the BatchNorm values"),
        (make_wrong_order(BN_ORDER, transposed=True), r"it was read as \(in, out, kh, kw\)"),
        (load_count_only_kernel, "counts only the kernel"),
        (load_returns_count, "not the number of floats read"),
        (load_from_zero, "read from float 0"),
        (load_numpy_offset, "numpy int64: convert it with int"),
    ],
)
def test_load_bn_conv_names_the_mistake(fn, message):
    with pytest.raises(CheckpointError, match=message):
        check_load_bn_conv(fn)


def test_load_bn_conv_says_what_differs_when_no_known_mistake_explains_it():
    def loads_nothing(floats, offset, block):
        return offset + 4 * block.bn.num_features + block.conv.weight.numel()

    with pytest.raises(CheckpointError, match="the beta differs from the file's"):
        check_load_bn_conv(loads_nothing)


# --- The second learner trial: more right answers, more wrong ones ---------------------


def header_int_from_bytes(raw):
    """Right, with int.from_bytes, seen read as a signed 8-byte int (the same for any seen below 2**63)."""
    major, minor, revision = (int.from_bytes(raw[i:i + 4], "little", signed=True) for i in (0, 4, 8))
    wide = (major * 10 + minor) >= 2 and major < 1000 and minor < 1000
    size = 8 if wide else 4
    return [major, minor, revision, int.from_bytes(raw[12:12 + size], "little", signed=True), 12 + size]


def header_two_halves(raw):
    """Right, every word as an unsigned int32, an 8-byte seen from its two halves."""
    words = [int(v) for v in np.frombuffer(raw[:20], dtype="<u4")]
    major, minor, revision = words[:3]
    if major * 10 + minor >= 2 and not (major >= 1000 or minor >= 1000):
        return major, minor, revision, words[3] + (words[4] << 32), 20
    return major, minor, revision, words[3], 16


def header_wrong(raw, *, rule="darknet", seen_offset=12, size=None, order="usual", revision_fixed=False,
                 seen_float=False):
    """The second trial's wrong answers; the keywords make one mistake each."""
    major, minor, revision = struct.unpack_from("<3i", raw)
    wide = {
        "darknet": major * 10 + minor >= 2 and major < 1000 and minor < 1000,
        "greater than 2": major * 10 + minor > 2 and major < 1000 and minor < 1000,
        "either below 1000": major * 10 + minor >= 2 and (major < 1000 or minor < 1000),
        "minor only": minor >= 2 and major < 1000 and minor < 1000,
        "major only": major >= 1 and major < 1000,
    }[rule]
    if seen_float:
        seen = struct.unpack_from("<d" if wide else "<f", raw, seen_offset)[0]
    else:
        seen = struct.unpack_from("<Q" if wide else "<i", raw, seen_offset)[0]
    header_bytes = size if size is not None else (20 if wide else 16)
    if revision_fixed:
        revision = 0
    if order == "size before seen":
        return major, minor, revision, header_bytes, seen
    return major, minor, revision, seen, header_bytes


@pytest.mark.parametrize("fn", [header_int_from_bytes, header_two_halves], ids=["int.from_bytes", "two uint32 halves"])
def test_read_header_passes_more_correct_readers_with_its_usual_output(fn, capsys):
    check_read_header(fn)
    assert capsys.readouterr().out == (
        "current headers (0, 2, 0), (0, 2, 5), (1, 0, 0): 8-byte seen, 20 bytes ... ok\n"
        "version 0.1, major 1000 and 2015 headers: 4-byte seen, 16 bytes ... ok\n"
        "five plain Python ints each time ... ok\n")


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(rule="greater than 2"), "seen was read as 4 bytes; it is 8 bytes (uint64) when major*10 + minor >= 2 "
                                      "(0*10 + 2 = 2)"),
        (dict(rule="either below 1000"), "only when major and minor are both below 1000"),
        (dict(rule="minor only"), "a version 1.0 header: seen was read as 4 bytes"),
        (dict(rule="major only"), "a current file (0, 2, 0), as pjreddie's Darknet writes: seen was read as 4 bytes"),
        (dict(seen_offset=16), "expected .*, got"),
        (dict(size=20), "expected .*, got"),
        (dict(size=24), "expected .*, got"),
        (dict(order="size before seen"), "expected .*, got"),
        (dict(revision_fixed=True), "an AlexeyAB file .*: expected .*, got"),
        (dict(seen_float=True), "expected .*, got"),
    ],
    ids=["> 2 instead of >= 2", "either below 1000", "minor alone decides", "major alone decides",
         "seen read 4 bytes too far", "always 20 header bytes", "24 header bytes", "size before seen",
         "revision always 0", "seen read as a float"],
)
def test_read_header_fails_the_second_trials_wrong_answers(options, message):
    with pytest.raises(CheckpointError, match=message if ".*" in message else re.escape(message)):
        check_read_header(lambda raw: header_wrong(raw, **options))


def load_state_dict_style(floats, offset, block):
    """Right, another style: the five arrays sliced in a loop, handed to load_state_dict."""
    state = block.state_dict()
    for name in ("bn.bias", "bn.weight", "bn.running_mean", "bn.running_var", "conv.weight"):
        count = state[name].numel()
        state[name] = torch.tensor(floats[offset:offset + count].reshape(tuple(state[name].shape)))
        offset += count
    block.load_state_dict(state)
    return int(offset)


def load_wrong(floats, offset, block, *, kernel_layout="out in kh kw", variance="as stored", skip_var=False,
               start=0, float64=False, float_offset=False, fortran=False, offset_in_bytes=False):
    """The second trial's wrong answers; the keywords make one mistake each."""
    position = offset * 4 if offset_in_bytes else offset + start
    with torch.no_grad():
        for name in BN_ORDER:
            if skip_var and name == "bn.running_var":
                continue
            tensor = tensors_of(block, (name,))[0]
            count = tensor.numel()
            values = np.array(floats[position:position + count], dtype=np.float64 if float64 else np.float32)
            position += count
            if name == "conv.weight":
                o, i, kh, kw = tensor.shape
                if kernel_layout == "out in kw kh":
                    values = values.reshape(o, i, kw, kh).transpose(0, 1, 3, 2)
                elif kernel_layout == "out kh kw in":
                    values = values.reshape(o, kh, kw, i).transpose(0, 3, 1, 2)
                elif fortran:
                    values = values.reshape(tuple(tensor.shape), order="F")
            if name == "bn.running_var" and variance == "sqrt":
                values = np.sqrt(values)
            if name == "bn.running_var" and variance == "plus eps":
                values = values + 1e-5
            if float64:  # the block's tensor replaced by a float64 one
                module, attribute = name.split(".")
                holder = getattr(block, module)
                if attribute.startswith("running"):
                    setattr(holder, attribute, torch.from_numpy(values.reshape(tuple(tensor.shape))))
                else:
                    getattr(holder, attribute).data = torch.from_numpy(values.reshape(tuple(tensor.shape)))
            else:
                tensor.copy_(torch.from_numpy(values.reshape(tuple(tensor.shape))))
    result = position - start if not offset_in_bytes else offset + (position - offset * 4)
    return float(result) if float_offset else result


@pytest.mark.parametrize("fn", [load_state_dict_style], ids=["load_state_dict"])
def test_load_bn_conv_passes_another_correct_reader_with_its_usual_output(fn, capsys):
    check_load_bn_conv(fn)
    assert capsys.readouterr().out == (
        "two files, five BatchNorm conv layers read one after another ... ok\n"
        "beta, gamma, mean, variance, then the (out, in, kh, kw) kernel ... ok\n"
        "each call returns the offset of the next layer, a Python int ... ok\n")


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(kernel_layout="out in kw kh"), "the kernel differs from the file's"),
        (dict(kernel_layout="out kh kw in"), "the kernel differs from the file's"),
        (dict(fortran=True), "the kernel differs from the file's"),
        (dict(variance="sqrt"), "the running variance differs from the file's"),
        (dict(variance="plus eps"), "the running variance differs from the file's"),
        (dict(skip_var=True), "the running variance differs from the file's"),
        (dict(start=1), "the beta differs from the file's"),
        (dict(float64=True), "float64.*float32"),
        (dict(float_offset=True), "the returned offset must be a Python int.*float"),
        (dict(offset_in_bytes=True), "the offset counts floats|raised ValueError"),
    ],
    ids=["kernel (out, in, kw, kh)", "kernel channels last", "kernel in Fortran order", "square root of the variance",
         "variance plus eps", "variance skipped", "one float too far", "float64 tensors", "a float offset",
         "offset taken as bytes"],
)
def test_load_bn_conv_fails_the_second_trials_wrong_answers(options, message):
    with pytest.raises(CheckpointError, match=message):
        check_load_bn_conv(lambda floats, offset, block: load_wrong(floats, offset, block, **options))


# --- Exercise 3: cfg_order_layers(model) -> the weighted modules in cfg order ----------------


def order_from_attributes(model):
    """The chapter's answer: the backbone's ConvBlocks, then the head's modules that exist."""
    convs = [block for stage in model.stages for block in stage if isinstance(block, ConvBlock)]
    head = [*model.extra, model.passthrough, model.fuse, model.detect]
    return convs + [block for block in head if block is not None]


def order_by_hand(model):
    """Right, written out layer by layer with the cfg's numbers (stage k > 0 opens with its max-pool)."""
    s = model.stages
    layers = [s[0][0], s[1][1], s[2][1], s[2][2], s[2][3], s[3][1], s[3][2], s[3][3], s[4][1], s[4][2], s[4][3]]
    layers += [model.extra[0], model.extra[1]]  # 15, 16
    if model.passthrough is not None:
        layers.append(model.passthrough)  # 18
    return tuple(layers + [model.fuse, model.detect])  # 21, 22; a tuple is fine


def order_from_modules(model):
    """Right: model.modules() filtered to the ConvBlocks, then the detector (registered in cfg order)."""
    return [m for m in model.modules() if isinstance(m, ConvBlock)] + [model.detect]


def order_sorted_by_cfg_number(model):
    """Right: named_modules() sorted, the backbone by (stage, position), the head by cfg layer."""
    head = {"extra.0": 15, "extra.1": 16, "passthrough": 18, "fuse": 21, "detect": 22}
    keyed = []
    for name, module in model.named_modules():
        if name in head:
            keyed.append(((1, head[name]), module))
        elif isinstance(module, ConvBlock) and name.startswith("stages."):
            _, stage, position = name.split(".")
            keyed.append(((0, int(stage), int(position)), module))
    return [module for _, module in sorted(keyed, key=lambda pair: pair[0])]


def order_printing(model):
    print("listing", type(model).__name__)
    return order_from_attributes(model)


def backbone_of(model):
    return [block for stage in model.stages for block in stage if isinstance(block, ConvBlock)]


def order_wrong(model, mistake):
    """The wrong answers; ``mistake`` names one each."""
    right = order_from_attributes(model)
    backbone = backbone_of(model)
    head = right[len(backbone):]
    if mistake == "passthrough first in the head":
        head = [m for m in head if m is not model.passthrough]
        return backbone + ([model.passthrough] if model.passthrough is not None else []) + head
    if mistake == "passthrough after layer 10":
        early = [b for stage in model.stages[:-1] for b in stage if isinstance(b, ConvBlock)]
        rest = [m for m in right[len(early):] if m is not model.passthrough]
        return early + ([model.passthrough] if model.passthrough is not None else []) + rest
    if mistake == "passthrough at the end":
        return [m for m in right if m is not model.passthrough] + (
            [model.passthrough] if model.passthrough is not None else [])
    if mistake == "detector missing":
        return right[:-1]
    if mistake == "BatchNorms included":
        return [m for block in right for m in ([block, block.bn] if isinstance(block, ConvBlock) else [block])]
    if mistake == "an extra conv twice":
        return [model.extra[0] if m is model.extra[1] else m for m in right]
    if mistake == "reversed":
        return right[::-1]
    if mistake == "extra convs swapped":
        return [{id(model.extra[0]): model.extra[1], id(model.extra[1]): model.extra[0]}.get(id(m), m) for m in right]
    if mistake == "names":
        names = {id(m): n for n, m in model.named_modules()}
        return [names[id(m)] for m in right]
    if mistake == "bare convs":
        return [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if mistake == "max-pools too":
        return [m for stage in model.stages for m in stage] + head
    if mistake == "passthrough even when None":
        return backbone + [*model.extra, model.passthrough, model.fuse, model.detect]
    if mistake == "weighted layers":
        return small_yolov2_layers(model)
    if mistake == "a generator":
        return (m for m in right)
    if mistake == "copies":
        return [copy.deepcopy(m) for m in right]
    if mistake == "detector first":
        return [model.detect] + right[:-1]
    if mistake == "fuse before the extra convs":
        return backbone + [model.fuse] + [m for m in head if m is not model.fuse]
    if mistake == "no fuse without passthrough":
        return right if model.passthrough is not None else [m for m in right if m is not model.fuse]
    raise AssertionError(mistake)


@pytest.mark.parametrize(
    "fn", [order_from_attributes, order_by_hand, order_from_modules, order_sorted_by_cfg_number, order_printing],
    ids=["attributes, filtered", "by hand, a tuple", "model.modules() filtered", "named_modules sorted", "printing"],
)
def test_cfg_order_layers_passes_right_answers_written_differently(fn, capsys):
    check_cfg_order_layers(fn)
    out = capsys.readouterr().out.splitlines()
    assert out[:2] == [
        "5 models: 2 to 12 wide, both folds and none ... ok",
        "the book's file read in your order: the trained model's outputs ... ok",
    ]


@pytest.mark.parametrize(
    "mistake, message",
    [
        ("passthrough first in the head", "the passthrough conv (cfg layer 18) comes before the two extra convs"),
        ("passthrough after layer 10", "listed where its input is made, after layer 10"),
        ("passthrough at the end", "item 13 should be cfg layer 18, model.passthrough; got model.fuse"),
        ("detector missing", "expected 16 weighted layers, got 15; missing model.detect (cfg layer 22)"),
        ("BatchNorms included", "item 1 is model.stages[0][0].bn, a BatchNorm2d"),
        ("an extra conv twice", "model.extra[0] is listed twice (items 11 and 12)"),
        ("reversed", "the list is reversed"),
        ("extra convs swapped", "item 11 should be cfg layer 15, model.extra[0]; got model.extra[1]"),
        ("names", "item 0 is the string 'stages.0.0': return the modules themselves"),
        ("bare convs", "item 0 is model.stages[0][0].conv, the Conv2d inside a ConvBlock"),
        ("max-pools too", "not a weighted cfg layer: model.stages[1][0], model.stages[2][0]"),
        ("passthrough even when None", "passthrough=None): item 13 is None"),
        ("weighted layers", "item 0 is a WeightedLayer"),
        ("a generator", "expected a list of modules, got generator"),
        ("copies", "item 0 is a ConvBlock that is not part of the model"),
        ("detector first", "item 0 should be cfg layer 0, model.stages[0][0]; got model.detect"),
        ("fuse before the extra convs", "item 11 should be cfg layer 15, model.extra[0]; got model.fuse"),
        ("no fuse without passthrough", "passthrough=None): expected 15 weighted layers, got 14; "
                                        "missing model.fuse (cfg layer 17)"),
    ],
)
def test_cfg_order_layers_fails_each_wrong_answer(mistake, message):
    with pytest.raises(CheckpointError, match=re.escape(message)):
        check_cfg_order_layers(lambda model: order_wrong(model, mistake))


def test_cfg_order_layers_names_the_passthrough_mistake_only_for_that_exact_order():
    # passthrough at the end and extra convs swapped both move layers 15, 16, 18, yet neither is
    # "the passthrough before the extra convs": their messages must not say so
    for mistake in ("passthrough at the end", "extra convs swapped", "detector first"):
        with pytest.raises(CheckpointError) as caught:
            check_cfg_order_layers(lambda model, m=mistake: order_wrong(model, m))
        assert "before the two extra convs" not in str(caught.value)
        assert "where its input is made" not in str(caught.value)


def test_cfg_order_layers_reports_a_stub():
    def stub(model):
        raise NotImplementedError("list the ConvBlocks in cfg order, then model.detect")

    with pytest.raises(CheckpointError, match="not implemented yet: list the ConvBlocks"):
        check_cfg_order_layers(stub)


def test_the_book_file_loads_silently_in_the_wrong_order_and_gives_another_model():
    # The chapter's claim: the same total of floats, no shapes in the file, so nothing complains
    model = small_yolov2(3, BOOK_ANCHORS, 8, "darknet_reorg")
    wrong = order_wrong(model, "passthrough first in the head")
    right_numbers = [layer.index for layer in small_yolov2_layers(model)]
    layers = [WeightedLayer(i, m.conv, m.bn) if isinstance(m, ConvBlock) else WeightedLayer(i, m)
              for i, m in zip(right_numbers, wrong, strict=True)]
    load_darknet_weights(model, BOOK_WEIGHTS, layers=layers)  # no error
    images = torch.rand(2, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert not torch.allclose(model.eval()(images), load_book_model()(images))
