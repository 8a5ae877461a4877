"""Building blocks: ConvBlock, the residual block, and the two passthrough rearrangements."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from yolo_lessons import ConvBlock, ResidualBlock, darknet_reorg, space_to_depth


def darknet_reorg_port(x: torch.Tensor, stride: int) -> torch.Tensor:
    """Index-by-index port of Darknet's [reorg] as yolov2-voc.cfg runs it (written from its description).

    Darknet walks an output buffer laid out as C x H x W (the input's own shape) and, for each
    position (k, j, i), reads the input buffer as a (C/s^2) x (sH) x (sW) image at channel
    k % (C/s^2), row j*s + (k // (C/s^2)) // s, column i*s + (k // (C/s^2)) % s. The filled
    buffer is then read as (s^2 C) x (H/s) x (W/s).
    """
    n, c, h, w = x.shape
    small_c = c // (stride * stride)
    flat_in = x.reshape(n, -1)
    flat_out = torch.empty_like(flat_in)
    for k in range(c):
        c2, offset = k % small_c, k // small_c
        for j in range(h):
            for i in range(w):
                h2, w2 = j * stride + offset // stride, i * stride + offset % stride
                src = w2 + w * stride * (h2 + h * stride * c2)
                flat_out[:, i + w * (j + h * k)] = flat_in[:, src]
    return flat_out.reshape(n, c * stride * stride, h // stride, w // stride)


def test_conv_block_is_a_bias_free_conv_then_batchnorm_then_leaky_relu_0_1():
    block = ConvBlock(3, 16, 3)
    assert [type(m) for m in block.children()] == [nn.Conv2d, nn.BatchNorm2d, nn.LeakyReLU]
    assert block.conv.bias is None
    assert block.conv.padding == (1, 1)  # kernel_size // 2
    assert block.act.negative_slope == 0.1  # Darknet's leaky, not PyTorch's default 0.01


def test_conv_block_forward_applies_all_three_layers_in_order():
    torch.manual_seed(0)
    block = ConvBlock(3, 8, 3).eval()
    block.bn.running_mean.uniform_(-1, 1)
    block.bn.running_var.uniform_(0.5, 2)
    x = torch.randn(2, 3, 10, 10)
    expected = F.leaky_relu(block.bn(block.conv(x)), 0.1)
    assert torch.equal(block(x), expected)


@pytest.mark.parametrize(
    ("kernel_size", "stride", "side", "out_side"), [(3, 1, 13, 13), (1, 1, 13, 13), (3, 2, 52, 26)]
)
def test_conv_block_uses_same_padding(kernel_size, stride, side, out_side):
    assert ConvBlock(4, 6, kernel_size, stride)(torch.zeros(1, 4, side, side)).shape == (1, 6, out_side, out_side)


def test_conv_block_parameter_count_is_weights_plus_batchnorm_scale_and_shift():
    # 3*3*32*64 weights + 64 gammas + 64 betas; no bias.
    assert sum(p.numel() for p in ConvBlock(32, 64, 3).parameters()) == 3 * 3 * 32 * 64 + 2 * 64


def test_residual_block_halves_then_restores_channels_and_adds_its_input():
    block = ResidualBlock(64).eval()
    assert block.reduce.conv.weight.shape == (32, 64, 1, 1)
    assert block.expand.conv.weight.shape == (64, 32, 3, 3)
    # With the last BatchNorm's scale and shift at zero the branch outputs leaky(0) = 0,
    # so the block must return its input exactly: that is the residual addition.
    nn.init.zeros_(block.expand.bn.weight)
    nn.init.zeros_(block.expand.bn.bias)
    x = torch.randn(1, 64, 8, 8)
    assert torch.equal(block(x), x)


def test_space_to_depth_puts_offset_dy_dx_of_channel_c_at_channel_dy_s_plus_dx_times_c_plus_c():
    c, s = 3, 2
    x = torch.arange(1 * c * 4 * 6, dtype=torch.float32).reshape(1, c, 4, 6)
    y = space_to_depth(x, s)
    assert y.shape == (1, 12, 2, 3)
    for dy in range(s):
        for dx in range(s):
            for ch in range(c):
                assert torch.equal(y[0, (dy * s + dx) * c + ch], x[0, ch, dy::s, dx::s])


@pytest.mark.parametrize(("shape", "stride"), [((2, 3, 4, 6), 2), ((1, 64, 26, 26), 2), ((1, 5, 9, 6), 3)])
def test_space_to_depth_is_a_channel_permutation_of_pixel_unshuffle(shape, stride):
    x = torch.randn(shape)
    c = shape[1]
    # pixel_unshuffle's channel c*s^2 + dy*s + dx holds what our channel (dy*s + dx)*C + c holds.
    perm = [(o // c) + (o % c) * stride * stride for o in range(c * stride * stride)]
    assert torch.equal(space_to_depth(x, stride), F.pixel_unshuffle(x, stride)[:, perm])


@pytest.mark.parametrize("shape", [(1, 4, 2, 2), (2, 8, 4, 6), (1, 64, 26, 26), (1, 12, 6, 4)])
def test_darknet_reorg_equals_an_index_by_index_port_of_darknet(shape):
    x = torch.randn(shape)
    assert torch.equal(darknet_reorg(x, 2), darknet_reorg_port(x, 2))


def test_darknet_reorg_with_stride_3_equals_the_port():
    x = torch.randn(1, 18, 6, 3)
    assert torch.equal(darknet_reorg(x, 3), darknet_reorg_port(x, 3))


def test_darknet_reorg_turns_26x26x64_into_13x13x256_as_in_yolov2_voc_cfg():
    assert darknet_reorg(torch.zeros(1, 64, 26, 26)).shape == (1, 256, 13, 13)


def test_darknet_reorg_is_not_a_channel_permutation_of_space_to_depth():
    # Label every input pixel with its own index and ask, for each output value, whether its
    # source row lies in the 2x2 block under its output position. For space_to_depth all do;
    # for Darknet's reorg exactly half do not (the reinterpretation mixes rows with channels).
    c, h, w = 64, 26, 26
    x = torch.arange(c * h * w, dtype=torch.float64).reshape(1, c, h, w)
    for rearrange, expected_outside in ((space_to_depth, 0.0), (darknet_reorg, 0.5)):
        source = rearrange(x).long().flatten()
        src_row = (source // w) % h
        out_row = torch.arange(h // 2).view(1, 1, h // 2, 1).expand(1, 4 * c, h // 2, w // 2).flatten()
        outside = (src_row // 2 != out_row).double().mean().item()
        assert outside == expected_outside, rearrange.__name__


@pytest.mark.parametrize("fn", [space_to_depth, darknet_reorg])
def test_rearrangements_reject_sides_not_divisible_by_the_stride(fn):
    with pytest.raises(ValueError, match="multiples of stride=2, got 5x4"):
        fn(torch.zeros(1, 4, 5, 4))


def test_darknet_reorg_rejects_channels_not_divisible_by_stride_squared():
    with pytest.raises(ValueError, match="divisible by stride\\*\\*2 = 4, got 6"):
        darknet_reorg(torch.zeros(1, 6, 4, 4))


@pytest.mark.parametrize("fn", [space_to_depth, darknet_reorg])
def test_rearrangements_reject_non_4d_input(fn):
    with pytest.raises(ValueError, match="4-D tensor"):
        fn(torch.zeros(4, 4, 4))
