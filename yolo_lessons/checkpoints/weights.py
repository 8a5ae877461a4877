"""Checks behind chapter 9's checkpoint cells (reading Darknet's ``.weights`` files).

* ``check_read_header(fn)``: ``fn(raw)`` reads the header at the start of the bytes ``raw``
  and returns ``(major, minor, revision, seen, header_bytes)``, five Python ints
  (Darknet's ``load_weights_upto``: ``seen`` is 8 bytes when major*10 + minor >= 2 and
  neither is above 1000, else 4).
* ``check_load_bn_conv(fn)``: ``fn(floats, offset, block)`` copies one ``[convolutional]``
  layer with ``batch_normalize=1`` from the float32 array ``floats``, starting at float
  ``offset``, into a ``ConvBlock`` and returns the offset after it (``load_convolutional_weights``:
  beta, gamma, running mean, running variance, then the (out, in, kh, kw) kernel).
* ``check_cfg_order_layers(fn)``: ``fn(model)`` returns the weighted modules of a
  ``small_yolov2`` model (each ``ConvBlock``, then the detector ``nn.Conv2d``) in the order
  of its cfg, the order ``small_yolov2_layers`` lists them: the passthrough conv (cfg layer
  18) after the two extra convs (15, 16).

The first two run the learner's function on files the package writes or the check assembles
with numpy, compare with ``yolo_lessons.darknet.weights`` (``read_darknet_header``,
``save_darknet_weights``), and only then try the known wrong readings to name a mistake. The
third compares the learner's list with ``small_yolov2_layers`` on models of several widths and
folds, then loads the book's file in the learner's order and runs the model.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from ..darknet.book_weights import BOOK_ANCHORS, BOOK_WEIGHTS, BOOK_WIDTH, load_book_model, small_yolov2_layers
from ..darknet.weights import (
    FLOAT,
    INT32,
    UINT64,
    WeightedLayer,
    load_darknet_weights,
    read_darknet_header,
    save_darknet_weights,
    weighted_layer,
)
from ..models.blocks import ConvBlock
from ..models.small_yolov2 import small_yolov2
from .common import CheckpointError, call, checkpoint, expect, integer_problem, randomize

# --- Exercise 1: the header ----------------------------------------------------------------

# (what the file is, (major, minor, revision) or the 2015 float triple, seen). Each seen is
# chosen so that a wrong width shows: above 2**32 where 8 bytes are read, so a 4-byte read loses
# the high half; where 4 bytes are read, the float that follows lands in an 8-byte read's high half.
_HEADER_CASES = (
    ("a current file (0, 2, 0), as pjreddie's Darknet writes", (0, 2, 0), 32_000_000 + 5 * 2**32),
    ("an AlexeyAB file (0, 2, 5)", (0, 2, 5), 2**33 + 6_400),
    ("a version 1.0 header", (1, 0, 0), 2**40 + 1),
    ("a version 0.1 file (major*10 + minor = 1 < 2)", (0, 1, 0), 1_234_567),
    ("a 2015 file (learning rate 0.001, momentum 0.9, decay 0.0005)", (0.001, 0.9, 0.0005), 64_000),
    ("a major of exactly 1000 (8 bytes only when both are below 1000)", (1000, 0, 0), 4_321),
)


def _header_bytes(version: tuple, seen: int) -> bytes:
    """A header followed by three floats of body, assembled with numpy (not by the package)."""
    legacy = isinstance(version[0], float)
    first = np.array(version, dtype=FLOAT if legacy else INT32)
    wide = not legacy and version[0] * 10 + version[1] >= 2 and version[0] < 1000 and version[1] < 1000
    seen_array = np.array([seen], dtype=UINT64 if wide else INT32)
    body = np.array([0.5, -1.25, 3.0], dtype=FLOAT)
    return first.tobytes() + seen_array.tobytes() + body.tobytes()


def _reference_header(raw: bytes) -> tuple[int, int, int, int, int]:
    header = read_darknet_header(io.BytesIO(raw))
    return header.major, header.minor, header.revision, header.seen, header.size


def _header_mistake(raw: bytes, expected: tuple, got: tuple, what: str) -> str | None:
    """Name the known mistake that explains ``got``, when one certainly does."""
    major, minor, revision, seen, size = expected
    big = np.frombuffer(raw[:12], dtype=">i4").tolist()
    if list(got[:3]) == big and big != [major, minor, revision]:
        return f"{what}: the version was read big-endian; Darknet writes little-endian int32 ('<i4', numpy's default)"
    if tuple(got[:3]) != (major, minor, revision):
        return None
    legacy = major > 1000 or minor > 1000
    if size == 20 and got[4] == 16 and got[3] == seen % 2**32:
        return (
            f"{what}: seen was read as 4 bytes; it is 8 bytes (uint64) when major*10 + minor >= 2 "
            f"({major}*10 + {minor} = {major * 10 + minor}) and both are below 1000"
        )
    if size == 16 and got[4] == 20 and got[3] == int(np.frombuffer(raw[12:20], dtype=UINT64)[0]):
        if legacy:
            return (
                f"{what}: seen was read as 8 bytes; in a 2015 file major or minor is above 1000 (they are "
                "floats read as int32), and then seen is a 4-byte int32"
            )
        if major >= 1000 or minor >= 1000:
            return (
                f"{what}: seen was read as 8 bytes; Darknet reads 8 only when major and minor are both "
                f"below 1000 (major < 1000 && minor < 1000), and here one is {max(major, minor)}"
            )
        return f"{what}: seen was read as 8 bytes; with major*10 + minor = {major * 10 + minor} < 2 it is 4 bytes"
    return None


@checkpoint
def check_read_header(fn: Callable) -> None:
    """Check ``fn(raw: bytes) -> (major, minor, revision, seen, header_bytes)`` on six headers."""
    for what, version, seen in _HEADER_CASES:
        raw = _header_bytes(version, seen)
        expected = _reference_header(raw)
        got = call(fn, raw)
        expect(
            isinstance(got, (tuple, list)) and len(got) == 5,
            f"{what}: expected a tuple of five ints (major, minor, revision, seen, header_bytes), got {got!r}",
        )
        got = tuple(got)
        values_match = all(
            not isinstance(g, bool) and isinstance(g, (int, np.integer)) and int(g) == e
            for g, e in zip(got, expected, strict=True)
        )
        if not values_match:
            comparable = all(isinstance(g, (int, np.integer)) for g in got)
            mistake = _header_mistake(raw, expected, tuple(int(g) for g in got), what) if comparable else None
            raise CheckpointError(mistake or f"{what}: expected {expected}, got {got!r}")
        for name, value in zip(("major", "minor", "revision", "seen", "header_bytes"), got, strict=True):
            problem = integer_problem(value)
            if problem and isinstance(value, np.integer):
                problem = f"{value!r} is a numpy {type(value).__name__}: convert it with int(...)"
            expect(not problem, f"{what}: {name} must be a Python int; {problem}")
    print("current headers (0, 2, 0), (0, 2, 5), (1, 0, 0): 8-byte seen, 20 bytes ... ok")
    print("version 0.1, major 1000 and 2015 headers: 4-byte seen, 16 bytes ... ok")
    print("five plain Python ints each time ... ok")


# --- Exercise 2: one BatchNorm conv layer ---------------------------------------------------

# (in_channels, out_channels, kernel_size) of the layers in the check's files.
_LAYER_SHAPES = (
    ((3, 8, 3), (8, 4, 1), (4, 6, 3)),
    ((5, 3, 3), (3, 7, 1)),
)
_NAMES = ("beta", "gamma", "running mean", "running variance", "kernel")


def _targets(block: ConvBlock) -> list[torch.Tensor]:
    """The block's tensors in file order: beta, gamma, mean, variance, kernel."""
    return [block.bn.bias, block.bn.weight, block.bn.running_mean, block.bn.running_var, block.conv.weight]


def _reading(
    floats: np.ndarray, offset: int, block: ConvBlock, order: tuple[int, ...], transposed: bool
) -> list | None:
    """What a reader gets that takes the five arrays in file order ``order`` (indices into
    beta, gamma, mean, var, kernel); ``transposed`` reads the kernel as (in, out, kh, kw)."""
    shapes = [tuple(t.shape) for t in _targets(block)]
    if offset + sum(int(np.prod(s)) for s in shapes) > floats.size:
        return None  # this reading would run off the end of the file
    values: list = [None] * 5
    for index in order:
        count = int(np.prod(shapes[index]))
        array = floats[offset : offset + count]
        offset += count
        if index == 4 and transposed:
            out_c, in_c, kh, kw = shapes[4]
            array = array.reshape(in_c, out_c, kh, kw).transpose(1, 0, 2, 3)
        values[index] = torch.from_numpy(np.array(array, dtype=np.float32).reshape(shapes[index]))
    return values


_ORDER_MISTAKES = (  # (file order as read, transposed kernel, message)
    ((1, 0, 2, 3, 4), False, "gamma and beta are swapped: the file stores beta (bn.bias) first, then gamma "
                             "(bn.weight)"),
    ((0, 1, 3, 2, 4), False, "the running mean and variance are swapped: the mean comes first"),
    ((4, 0, 1, 2, 3), False, "the kernel was read before the BatchNorm values: they come first, the kernel last"),
    ((4, 1, 0, 2, 3), False, "the kernel was read first and gamma before beta: the order is beta, gamma, mean, "
                             "variance, kernel"),
    ((0, 1, 2, 3, 4), True, "the kernel is stored (out, in, kh, kw), the layout of conv.weight; it was read as "
                            "(in, out, kh, kw)"),
)


def _same(got: list[torch.Tensor], expected: list[torch.Tensor] | None) -> bool:
    if expected is None:
        return False
    pairs = zip(got, expected, strict=True)
    return all(g.shape == e.shape and g.dtype == e.dtype and torch.equal(g, e) for g, e in pairs)


def _layer_mistake(floats, offset, got_tensors, got_offset, expected_tensors, expected_offset, block) -> str | None:
    if _same(got_tensors, expected_tensors):
        if got_offset == expected_offset:
            return None  # right values: any problem is the offset's type
        count = expected_offset - offset
        kernel = block.conv.weight.numel()
        if got_offset == count:
            return f"return the offset after the layer ({expected_offset}), not the number of floats read ({count})"
        if got_offset == offset + kernel:
            return (
                f"the returned offset {got_offset} counts only the kernel: add the 4 x {block.bn.num_features} "
                f"BatchNorm values (expected {expected_offset})"
            )
        return None
    for order, transposed, message in _ORDER_MISTAKES:
        if _same(got_tensors, _reading(floats, offset, block, order, transposed)):
            return message
    if offset and _same(got_tensors, _reading(floats, 0, block, (0, 1, 2, 3, 4), False)):
        return f"the layer was read from float 0; start at the offset given ({offset})"
    if offset and _same(got_tensors, _reading(floats, 4 * offset, block, (0, 1, 2, 3, 4), False)):
        return f"the offset counts floats (4 bytes each), not bytes: the layer starts at floats[{offset}]"
    return None


@checkpoint
def check_load_bn_conv(fn: Callable) -> None:
    """Check ``fn(floats, offset, block) -> next_offset`` layer by layer on two files the package writes."""
    generator = torch.Generator().manual_seed(0)
    for file_number, shapes in enumerate(_LAYER_SHAPES):
        sources = [randomize(ConvBlock(i, o, k), seed=10 * file_number + n) for n, (i, o, k) in enumerate(shapes)]
        layers = [WeightedLayer(n, b.conv, b.bn) for n, b in enumerate(sources)]
        buffer = io.BytesIO()
        save_darknet_weights(torch.nn.ModuleList(sources), buffer, seen=64, layers=layers)
        raw = buffer.getvalue()
        header = read_darknet_header(io.BytesIO(raw))
        floats = np.frombuffer(raw, dtype=FLOAT, offset=header.size).copy()  # (F,) float32
        offset = 0
        for number, (source, (i, o, k)) in enumerate(zip(sources, shapes, strict=True)):
            what = f"file {file_number + 1}, layer {number} (conv {i}->{o} {k}x{k} with BatchNorm) at float {offset}"
            block = ConvBlock(i, o, k)
            with torch.no_grad():  # scramble the block so that values left in place cannot pass
                for tensor in _targets(block):
                    tensor.copy_(torch.rand(tensor.shape, generator=generator) + 5)
            expected = [t.detach().clone() for t in _targets(source)]
            expected_offset = offset + sum(t.numel() for t in expected)
            with torch.no_grad():
                got_offset = call(fn, floats, offset, block)
            got = [t.detach().clone() for t in _targets(block)]
            problem = integer_problem(got_offset)
            if problem and isinstance(got_offset, np.integer):
                problem = f"{got_offset!r} is a numpy {type(got_offset).__name__}: convert it with int(...)"
            values_ok = _same(got, expected)
            if values_ok and not problem and got_offset == expected_offset:
                offset = expected_offset
                continue
            comparable = isinstance(got_offset, (int, np.integer)) and not isinstance(got_offset, bool)
            if comparable:
                mistake = _layer_mistake(floats, offset, got, int(got_offset), expected, expected_offset, block)
                if mistake:
                    raise CheckpointError(f"{what}: {mistake}")
            if not values_ok:
                name, tensor = next((n, g) for n, g, e in zip(_NAMES, got, expected, strict=True)
                                    if not (g.shape == e.shape and g.dtype == e.dtype and torch.equal(g, e)))
                wanted = expected[_NAMES.index(name)]
                expect(
                    tensor.dtype == wanted.dtype,
                    f"{what}: the {name} is now {tensor.dtype}, the block's tensors are {wanted.dtype}: copy the "
                    "values into them (tensor.copy_(...)), which keeps their dtype",
                )
                expect(tensor.shape == wanted.shape,
                       f"{what}: the {name} has shape {tuple(tensor.shape)}, expected {tuple(wanted.shape)}")
                raise CheckpointError(
                    f"{what}: the {name} differs from the file's: expected first values "
                    f"{[round(v, 4) for v in wanted.flatten()[:3].tolist()]}, got "
                    f"{[round(v, 4) for v in tensor.flatten()[:3].tolist()]}"
                )
            expect(not problem, f"{what}: the returned offset must be a Python int; {problem}")
            raise CheckpointError(f"{what}: expected the next offset {expected_offset}, got {got_offset!r}")
        expect(offset == floats.size, f"file {file_number + 1}: {floats.size - offset} floats were left unread")
    print("two files, five BatchNorm conv layers read one after another ... ok")
    print("beta, gamma, mean, variance, then the (out, in, kh, kw) kernel ... ok")
    print("each call returns the offset of the next layer, a Python int ... ok")


# --- Exercise 3: the weighted layers in cfg order -------------------------------------------

# (width, passthrough, classes) of the models the check asks about; the first is the book's.
_ORDER_CASES = (
    (BOOK_WIDTH, "darknet_reorg", 3),
    (4, "space_to_depth", 20),
    (12, "darknet_reorg", 1),
    (8, None, 3),
    (2, "space_to_depth", 5),
)


def _owner(layer: WeightedLayer, blocks: dict[int, ConvBlock]) -> nn.Module:
    """The module a learner lists for a cfg layer: the ConvBlock around a BatchNorm conv, else the conv."""
    return blocks[id(layer.module)] if layer.bn is not None else layer.module


def _reference_order(model: nn.Module) -> list[tuple[int, nn.Module]]:
    """(cfg layer number, module) for each weighted layer, in cfg order (``small_yolov2_layers``)."""
    blocks = {id(m.conv): m for m in model.modules() if isinstance(m, ConvBlock)}
    return [(layer.index, _owner(layer, blocks)) for layer in small_yolov2_layers(model)]


def _attribute_path(name: str) -> str:
    """``stages.4.1`` -> ``model.stages[4][1]``: how the learner reaches a module."""
    parts = name.split(".") if name else []
    return "model" + "".join(f"[{part}]" if part.isdigit() else f".{part}" for part in parts)


def _item_problem(item, position: int, names: dict[int, str], model: nn.Module) -> str | None:
    """What is wrong with one item of the list, when it is not a weighted layer of the model."""
    what = f"item {position}"
    if isinstance(item, str):
        return f"{what} is the string {item!r}: return the modules themselves (e.g. model.fuse), not their names"
    if isinstance(item, WeightedLayer):
        return f"{what} is a WeightedLayer: return the modules (each ConvBlock, then model.detect), not WeightedLayers"
    if item is None and model.passthrough is None:
        return f"{what} is None: with passthrough=None the model has no passthrough conv, so leave it out"
    if not isinstance(item, nn.Module):
        return f"{what} is {type(item).__name__} {item!r:.40}: expected a module (a ConvBlock or model.detect)"
    if id(item) not in names:
        return f"{what} is a {type(item).__name__} that is not part of the model: return the model's own modules"
    name = names[id(item)]
    if isinstance(item, nn.BatchNorm2d):
        return (
            f"{what} is {_attribute_path(name)}, a BatchNorm2d: list each ConvBlock once; its BatchNorm "
            "belongs to that cfg layer (batch_normalize=1)"
        )
    if isinstance(item, nn.Conv2d) and name.endswith(".conv"):
        return (
            f"{what} is {_attribute_path(name)}, the Conv2d inside a ConvBlock: list the ConvBlock itself "
            f"({_attribute_path(name[: -len('.conv')])}), whose BatchNorm numbers the file also holds"
        )
    return None


def _order_mistake(got: list[nn.Module], expected: list[nn.Module], model: nn.Module) -> str | None:
    """Name the known wrong order that ``got`` is, when it is exactly one of them."""
    if got == expected[::-1]:
        return "the list is reversed: the cfg starts with layer 0, the first conv, and ends with the detector"
    if model.passthrough is None:
        return None
    without = [m for m in expected if m is not model.passthrough]
    backbone = [m for stage in model.stages for m in stage if isinstance(m, ConvBlock)]
    at_head = backbone + [model.passthrough] + without[len(backbone):]
    if got == at_head:
        return (
            "the passthrough conv (cfg layer 18) comes before the two extra convs (15, 16): the cfg has it "
            "after them, where [route] -7 (layer 17) goes back to the stride-8 map of layer 10"
        )
    at_branch = [m for stage in model.stages[:-1] for m in stage if isinstance(m, ConvBlock)]
    at_branch = at_branch + [model.passthrough] + without[len(at_branch):]
    if got == at_branch:
        return (
            "the passthrough conv is listed where its input is made, after layer 10: Darknet runs the cfg "
            "top to bottom, and the branch comes after the extra convs (15, 16), at layer 18, once "
            "[route] -7 has gone back to layer 10's map"
        )
    return None


def _as_layers(modules: list[nn.Module], reference: list[tuple[int, nn.Module]]) -> list[WeightedLayer]:
    """The learner's modules as the WeightedLayers ``load_darknet_weights`` takes."""
    return [weighted_layer(index, m) for (index, _), m in zip(reference, modules, strict=True)]


@checkpoint
def check_cfg_order_layers(fn: Callable) -> None:
    """Check ``fn(model) -> [modules]`` against ``small_yolov2_layers`` on five small YOLOv2s,
    then load the book's file in the learner's order and compare the outputs."""
    for width, passthrough, classes in _ORDER_CASES:
        what = f"small_yolov2(width={width}, passthrough={passthrough!r})"
        model = small_yolov2(classes, BOOK_ANCHORS, width, passthrough)
        reference = _reference_order(model)
        expected = [m for _, m in reference]
        got = call(fn, model)
        expect(
            isinstance(got, (list, tuple, nn.ModuleList)),
            f"{what}: expected a list of modules, got {type(got).__name__}",
        )
        got = list(got)
        names = {id(m): n for n, m in model.named_modules()}
        for position, item in enumerate(got):
            problem = _item_problem(item, position, names, model)
            expect(problem is None, f"{what}: {problem}")
        seen: dict[int, int] = {}
        for position, item in enumerate(got):
            expect(
                id(item) not in seen,
                f"{what}: {_attribute_path(names[id(item)])} is listed twice (items {seen.get(id(item))} and "
                f"{position}): each cfg layer once",
            )
            seen[id(item)] = position
        wanted = {id(m) for m in expected}
        missing = [f"{_attribute_path(names[id(m)])} (cfg layer {i})" for i, m in reference if id(m) not in seen]
        extra = [_attribute_path(names[id(m)]) for m in got if id(m) not in wanted]
        expect(
            not missing and not extra,
            f"{what}: expected {len(expected)} weighted layers, got {len(got)}"
            + (f"; missing {', '.join(missing)}" if missing else "")
            + (f"; not a weighted cfg layer: {', '.join(extra)}" if extra else ""),
        )
        if any(g is not e for g, e in zip(got, expected, strict=True)):
            mistake = _order_mistake(got, expected, model)
            expect(mistake is None, f"{what}: {mistake}")
            position, (index, wanted_module) = next(
                (p, r) for p, (r, g) in enumerate(zip(reference, got, strict=True)) if g is not r[1]
            )
            raise CheckpointError(
                f"{what}: item {position} should be cfg layer {index}, {_attribute_path(names[id(wanted_module)])}; "
                f"got {_attribute_path(names[id(got[position])])}"
            )
    print("5 models: 2 to 12 wide, both folds and none ... ok")

    # The claim of the exercise: the book's file, read in this order, is the trained model.
    model = small_yolov2(3, BOOK_ANCHORS, BOOK_WIDTH, "darknet_reorg")
    modules = list(call(fn, model))
    load_darknet_weights(model, BOOK_WEIGHTS, layers=_as_layers(modules, _reference_order(model)))
    images = torch.rand(2, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        same = torch.equal(model.eval()(images), load_book_model()(images))
    expect(same, "the book's file loaded in your order gives other outputs than the trained model")
    print("the book's file read in your order: the trained model's outputs ... ok")
