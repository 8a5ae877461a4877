"""Chapter 13's checkpoints: right answers written differently pass, each known mistake is named."""

from __future__ import annotations

import math

import pytest

from yolo_lessons.checkpoints.cfg import check_maxpool_output_size, check_route_output
from yolo_lessons.checkpoints.common import WIDTH, CheckpointError


def reference_size(side, size, stride, padding=None):
    padding = size - 1 if padding is None else padding
    return (side + padding - size) // stride + 1


def ceil_written(side, size, stride, padding=None):  # right: ceil((w + padding - size + 1) / stride)
    if padding is None:
        padding = size - 1
    return math.ceil((side + padding - size + 1) / stride)


def loop_written(side, size, stride, padding=None):  # right: count the window starts
    padding = size - 1 if padding is None else padding
    return len(range(0, side + padding - size + 1, stride))


@pytest.mark.parametrize("answer", [reference_size, ceil_written, loop_written])
def test_right_max_pool_answers_pass(answer, capsys):
    check_maxpool_output_size(answer)
    out = capsys.readouterr().out
    assert "... ok" in out
    assert max(map(len, out.splitlines())) <= WIDTH


@pytest.mark.parametrize(
    "answer, named",
    [
        (lambda side, size, stride, padding=None: (side - size) // stride + 1, "nn.MaxPool2d without padding"),
        (lambda side, size, stride, padding=None: (side + 2 * (size - 1 if padding is None else padding) - size)
         // stride + 1, "the convolution's formula"),
        (lambda side, size, stride, padding=None: (side + 2 * ((size - 1) // 2)) // stride, "before August 2018"),
        (lambda side, size, stride, padding=None: (side - 1) // stride + 1, "an explicit padding= in the cfg"),
        (lambda side, size, stride, padding=None: (side + (size - 1 if padding is None else padding) - size) / stride
         + 1, "is a float"),
        (lambda side, size, stride, padding=None: side // stride, "side 13, size 2, stride 2"),  # no name fits
    ],
)
def test_wrong_max_pool_answers_are_named_or_shown(answer, named):
    with pytest.raises(CheckpointError) as error:
        check_maxpool_output_size(answer)
    assert named in str(error.value)


def test_a_stub_says_not_implemented():
    def stub(side, size, stride, padding=None):
        raise NotImplementedError("use (side + padding - size) // stride + 1")

    with pytest.raises(CheckpointError, match="not implemented yet"):
        check_maxpool_output_size(stub)


def route_reference(shapes, index, layers):
    sources = [index + int(v) if int(v) < 0 else int(v) for v in layers.split(",")]
    picked = [shapes[i] for i in sources]
    if any(p[1:] != picked[0][1:] for p in picked):
        raise ValueError("different sizes")
    return (sum(p[0] for p in picked), picked[0][1], picked[0][2])


def route_python_negative(shapes, index, layers):  # right: shapes holds exactly the layers before the route
    picked = [shapes[int(v.strip())] for v in layers.split(",")]
    if len({(h, w) for _, h, w in picked}) > 1:
        raise ValueError("routes layers of different sizes")
    return sum(c for c, _, _ in picked), picked[0][1], picked[0][2]


@pytest.mark.parametrize("answer", [route_reference, route_python_negative])
def test_right_route_answers_pass(answer, capsys):
    check_route_output(answer)
    out = capsys.readouterr().out
    assert "... ok" in out
    assert max(map(len, out.splitlines())) <= WIDTH


def route_off_by_one(shapes, index, layers):
    return route_reference(shapes, index - 1, layers)


def route_first_only(shapes, index, layers):
    sources = [index + int(v) if int(v) < 0 else int(v) for v in layers.split(",")]
    return tuple(shapes[sources[0]])


def route_never_refuses(shapes, index, layers):
    sources = [index + int(v) if int(v) < 0 else int(v) for v in layers.split(",")]
    picked = [shapes[i] for i in sources]
    return (sum(p[0] for p in picked), picked[0][1], picked[0][2])


def route_list(shapes, index, layers):
    return list(route_reference(shapes, index, layers))


@pytest.mark.parametrize(
    "answer, named",
    [
        (route_off_by_one, "counts back from the route itself"),
        (route_first_only, "their channels add up"),
        (route_never_refuses, "expected a ValueError, got (80, 8, 8): layers of 8 x 8 and 4 x 4 cannot"),
        (route_list, "expected a tuple (C, H, W)"),
    ],
)
def test_wrong_route_answers_are_named(answer, named):
    with pytest.raises(CheckpointError) as error:
        check_route_output(answer)
    assert named in str(error.value)
