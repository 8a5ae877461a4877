"""Chapter 3's checkpoints: right answers pass, each known mistake fails with its name."""

from __future__ import annotations

import pytest
import torch
from torch.nn.functional import pixel_unshuffle

from yolo_lessons import darknet_reorg, space_to_depth
from yolo_lessons.checkpoints.common import WIDTH, CheckpointError
from yolo_lessons.checkpoints.passthrough import (
    check_darknet_reorg_source,
    check_space_to_depth,
    check_unshuffle_permutation,
)

# --- reference answers -------------------------------------------------------------


def reference_space_to_depth(x, stride=2):
    n, c, h, w = x.shape
    blocks = x.reshape(n, c, h // stride, stride, w // stride, stride)  # (N, C, Y, dy, X, dx)
    return blocks.permute(0, 3, 5, 1, 2, 4).reshape(n, stride * stride * c, h // stride, w // stride)


def reference_permutation(channels, stride=2):
    # space_to_depth's channel (dy*s + dx)*C + c is pixel_unshuffle's channel c*s*s + dy*s + dx
    return torch.arange(channels * stride * stride).reshape(channels, stride * stride).T.flatten()


def reference_reorg_source(c, y, x, C, H, W, stride=2):
    s = stride
    flat = (c * (H // s) + y) * (W // s) + x  # the output, read as the C x H x W folded picture
    k, j, i = flat // (H * W), flat // W % H, flat % W
    offset, c_tall = divmod(k, C // (s * s))
    flat = (c_tall * s * H + j * s + offset // s) * s * W + i * s + offset % s  # the (C/s^2) x sH x sW picture
    return flat // (H * W), flat // W % H, flat % W


# (darknet_reorg itself is pinned against an index-by-index port of Darknet in test_blocks.py.)


# --- exercise 1: space_to_depth ----------------------------------------------------


def test_reference_space_to_depth_passes(capsys):
    check_space_to_depth(reference_space_to_depth)
    out = capsys.readouterr().out
    assert out.strip().endswith("ok")
    assert max(map(len, out.splitlines())) <= WIDTH


def test_the_package_space_to_depth_passes():
    check_space_to_depth(space_to_depth)


def test_not_implemented_space_to_depth_says_so():
    def stub(x, stride=2):
        raise NotImplementedError("reshape, permute, reshape")

    with pytest.raises(CheckpointError, match="not implemented yet: reshape, permute"):
        check_space_to_depth(stub)


def test_pixel_unshuffle_order_is_named_right_blocks_wrong_channel_order():
    with pytest.raises(CheckpointError, match="right blocks, wrong channel order.*pixel_unshuffle"):
        check_space_to_depth(pixel_unshuffle)


def test_transposed_dy_dx_is_named():
    def transposed(x, stride=2):
        n, c, h, w = x.shape
        blocks = x.reshape(n, c, h // stride, stride, w // stride, stride)
        return blocks.permute(0, 5, 3, 1, 2, 4).reshape(n, stride * stride * c, h // stride, w // stride)

    with pytest.raises(CheckpointError, match="right blocks, wrong channel order.*dy and dx are transposed"):
        check_space_to_depth(transposed)


def test_an_unnamed_channel_order_is_still_right_blocks_wrong_channel_order():
    def reversed_channels(x, stride=2):
        return reference_space_to_depth(x, stride).flip(1)

    with pytest.raises(CheckpointError, match="right blocks, wrong channel order: every output channel"):
        check_space_to_depth(reversed_channels)


def test_a_reshape_that_mixes_blocks_reports_how_many_values_left_their_block():
    def straight_reshape(x, stride=2):  # no permute: reads memory in the wrong order
        n, c, h, w = x.shape
        return x.reshape(n, stride * stride * c, h // stride, w // stride)

    with pytest.raises(CheckpointError, match=r"mixed across blocks: \d+ of 16 output values"):
        check_space_to_depth(straight_reshape)


def test_darknet_reorg_where_space_to_depth_is_expected_is_named():
    def reorg_when_possible(x, stride=2):
        if x.shape[1] % (stride * stride):
            return reference_space_to_depth(x, stride)
        return darknet_reorg(x, stride)

    with pytest.raises(CheckpointError, match="this is Darknet's reorg"):
        check_space_to_depth(reorg_when_possible)


def test_a_hard_coded_stride_reports_the_shapes():
    def stride_two_only(x, stride=2):
        return reference_space_to_depth(x, 2)

    with pytest.raises(CheckpointError, match=r"expected shape \(1, 18, 2, 4\), got .*hard-coded"):
        check_space_to_depth(stride_two_only)


# --- exercise 2: the permutation between pixel_unshuffle and space_to_depth ---------


def test_reference_permutation_passes(capsys):
    check_unshuffle_permutation(reference_permutation)
    out = capsys.readouterr().out
    assert "ok" in out
    assert max(map(len, out.splitlines())) <= WIDTH


def test_the_inverse_permutation_is_named():
    def inverse(channels, stride=2):
        return reference_permutation(channels, stride).argsort()

    with pytest.raises(CheckpointError, match="inverse permutation"):
        check_unshuffle_permutation(inverse)


def test_a_repeated_index_is_not_a_permutation():
    def repeated(channels, stride=2):
        return [0] * (channels * stride * stride)

    with pytest.raises(CheckpointError, match="not a permutation"):
        check_unshuffle_permutation(repeated)


def test_a_wrong_length_reports_both_lengths():
    def short(channels, stride=2):
        return list(range(channels))

    with pytest.raises(CheckpointError, match="expected 4 indices, got 1"):
        check_unshuffle_permutation(short)


# --- exercise 3: where darknet_reorg's outputs come from ----------------------------


def test_reference_reorg_source_passes(capsys):
    check_darknet_reorg_source(reference_reorg_source)
    out = capsys.readouterr().out
    assert "all 43264 outputs right" in out  # 256 * 13 * 13
    assert max(map(len, out.splitlines())) <= WIDTH


def test_forgetting_the_reinterpretation_is_named():
    def plain_fold(c, y, x, C, H, W, stride=2):
        offset, channel = divmod(c, C)
        return channel, y * 2 + offset // 2, x * 2 + offset % 2

    with pytest.raises(CheckpointError, match="forgot the reinterpretation"):
        check_darknet_reorg_source(plain_fold)


def reorg_source_with(c, y, x, C, H, W, inner):
    flat = (c * (H // 2) + y) * (W // 2) + x
    k, j, i = flat // (H * W), flat // W % H, flat % W
    c_tall, dy, dx = inner(k, C // 4)
    flat = (c_tall * 2 * H + j * 2 + dy) * 2 * W + i * 2 + dx
    return flat // (H * W), flat // W % H, flat % W


def test_channel_major_order_inside_the_fold_is_named_wrong_channel_order():
    def channel_major(c, y, x, C, H, W):
        return reorg_source_with(c, y, x, C, H, W, lambda k, ct: (k // 4, k % 4 // 2, k % 2))

    with pytest.raises(CheckpointError, match=r"\(8, 4, 6\): wrong channel order"):
        check_darknet_reorg_source(channel_major)


def test_transposed_dy_dx_inside_the_fold_is_named():
    def transposed(c, y, x, C, H, W):
        return reorg_source_with(c, y, x, C, H, W, lambda k, ct: (k % ct, k // ct % 2, k // ct // 2))

    with pytest.raises(CheckpointError, match="dy and dx transposed"):
        check_darknet_reorg_source(transposed)


def test_an_unknown_mistake_reports_the_first_wrong_output():
    def off_by_one(c, y, x, C, H, W):
        channel, row, col = reference_reorg_source(c, y, x, C, H, W)
        return channel, row, (col + 1) % W

    with pytest.raises(CheckpointError, match=r"output \(c, y, x\) = \(0, 0, 0\) comes from input \(0, 0, 0\)"):
        check_darknet_reorg_source(off_by_one)


def test_a_non_tuple_answer_is_reported():
    with pytest.raises(CheckpointError, match="expected a \\(channel, row, col\\) tuple"):
        check_darknet_reorg_source(lambda c, y, x, C, H, W: 0)


def test_reorg_source_check_wants_ints_not_equal_floats():
    def float_source(c, y, x, C, H, W):
        return tuple(float(v) for v in reference_reorg_source(c, y, x, C, H, W))

    with pytest.raises(CheckpointError, match=r"output \(c, y, x\) = \(0, 0, 0\) .*: 0.0 is a float"):
        check_darknet_reorg_source(float_source)


def test_space_to_depth_check_passes_an_answer_that_prints(capsys):
    def chatty(x, stride=2):
        print("folding", tuple(x.shape))
        return reference_space_to_depth(x, stride)

    check_space_to_depth(chatty)
    lines = capsys.readouterr().out.splitlines()
    assert [line for line in lines if not line.startswith("| ")][-1] == "ok"
    assert "|   folding (1, 1, 4, 4)" in lines
