"""Chapter 9's checkpoints pass correct readers of .weights files and name each known mistake."""

from __future__ import annotations

import re
import struct

import numpy as np
import pytest
import torch

from yolo_lessons.checkpoints.common import CheckpointError
from yolo_lessons.checkpoints.weights import _header_bytes, check_load_bn_conv, check_read_header

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
    assert "beta, gamma, running mean" in capsys.readouterr().out


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
