"""Chapter 1's checkpoints pass the reference answers and name each known mistake."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from yolo_lessons import ConvBlock
from yolo_lessons.checkpoints.common import WIDTH, CheckpointError
from yolo_lessons.checkpoints.convblock import (
    check_conv_block,
    check_conv_block_parameters,
    check_conv_output_size,
)


class UnusedBatchNormBlock(nn.Module):
    """The popular write-up's block: BatchNorm built in __init__, skipped in forward."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = nn.LeakyReLU(0.1)

    def forward(self, x):
        return self.act(self.conv(x))


class NoBatchNormBlock(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, bias=False)
        self.act = nn.LeakyReLU(0.1)

    def forward(self, x):
        return self.act(self.conv(x))


class BiasedConvBlock(ConvBlock):
    """A conv bias before BatchNorm (nn.Conv2d's default bias=True)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1):
        super().__init__(in_channels, out_channels, kernel_size, stride)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2)


class DefaultSlopeBlock(ConvBlock):
    """PyTorch's default LeakyReLU slope, 0.01."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1):
        super().__init__(in_channels, out_channels, kernel_size, stride)
        self.act = nn.LeakyReLU()


class FunctionalDefaultSlopeBlock(ConvBlock):
    """Slope 0.01 hidden in a functional call, where no module can be inspected."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1):
        super().__init__(in_channels, out_channels, kernel_size, stride)
        del self.act

    def forward(self, x):
        return nn.functional.leaky_relu(self.bn(self.conv(x)))


class ActivationBeforeBatchNormBlock(ConvBlock):
    def forward(self, x):
        return self.bn(self.act(self.conv(x)))


class FixedPaddingBlock(ConvBlock):
    """padding=1 for every kernel size: a 1x1 conv then grows the map by 2."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1):
        super().__init__(in_channels, out_channels, kernel_size, stride)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding=1, bias=False)


class IgnoresStrideBlock(ConvBlock):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1):
        super().__init__(in_channels, out_channels, kernel_size, 1)


class StubBlock(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1):
        raise NotImplementedError("conv, BatchNorm, LeakyReLU(0.1)")


def test_package_conv_block_passes(capsys):
    check_conv_block(ConvBlock)
    out = capsys.readouterr().out
    assert "ok" in out
    assert max(map(len, out.splitlines())) <= WIDTH


@pytest.mark.parametrize(
    ("wrong", "named"),
    [
        (UnusedBatchNormBlock, "BatchNorm is built but never used in forward (bn)"),
        (NoBatchNormBlock, "BatchNorm is missing"),
        (BiasedConvBlock, "conv bias before BatchNorm (conv)"),
        (DefaultSlopeBlock, "LeakyReLU slope is 0.01"),
        (FunctionalDefaultSlopeBlock, "slope 0.01"),
        (FixedPaddingBlock, "expected output (2, 16, 16, 16), got (2, 16, 18, 18)"),
        (IgnoresStrideBlock, "expected output (2, 32, 16, 16), got (2, 32, 32, 32)"),
        (ActivationBeforeBatchNormBlock, "the activation comes before BatchNorm"),
        (StubBlock, "not implemented yet"),
    ],
)
def test_conv_block_check_names_the_mistake(wrong, named):
    with pytest.raises(CheckpointError) as failure:
        check_conv_block(wrong)
    assert named in str(failure.value)


def conv_output_size(size, kernel_size, stride=1, padding=None):
    if padding is None:
        padding = kernel_size // 2
    return (size + 2 * padding - kernel_size) // stride + 1


def test_output_size_reference_passes(capsys):
    check_conv_output_size(conv_output_size)
    out = capsys.readouterr().out
    assert "ok" in out
    assert max(map(len, out.splitlines())) <= WIDTH


@pytest.mark.parametrize(
    ("wrong", "named"),
    [
        # 416 with a 3x3, stride 1, padding 1: (416 + 2 - 3) // 1 = 415, one short of 416
        (
            lambda s, k, stride=1, padding=None: (s + 2 * (k // 2 if padding is None else padding) - k) // stride,
            "needs '+ 1'",
        ),
        # (416 + 1 - 3) // 1 + 1 = 415: padding added on one side only
        (
            lambda s, k, stride=1, padding=None: (s + (k // 2 if padding is None else padding) - k) // stride + 1,
            "padding is added on both sides",
        ),
        # true division gives 416.0, a float
        (
            lambda s, k, stride=1, padding=None: (s + 2 * (k // 2 if padding is None else padding) - k) / stride + 1,
            "use floor division",
        ),
        # (415 + 2 - 3 + 1) // 2 = 207, but nn.Conv2d gives (415 + 2 - 3) // 2 + 1 = 208
        (
            lambda s, k, stride=1, padding=None: (s + 2 * (k // 2 if padding is None else padding) - k + 1) // stride,
            "the '+ 1' comes after the division",
        ),
        # padding=None taken as 0: 416 -> 414 with a 3x3 conv
        (
            lambda s, k, stride=1, padding=None: (s + 2 * (padding or 0) - k) // stride + 1,
            '"same" padding, kernel_size // 2',
        ),
        # the trial's shortcuts for the default padding: right at 416 and 13, wrong at 415 / 2 and 2x2
        (
            lambda s, k, stride=1, padding=None: s // stride if padding is None else conv_output_size(s, k, stride,
                                                                                                   padding),
            "size // stride is right only for odd kernels",
        ),
        (
            lambda s, k, stride=1, padding=None: -(-s // stride) if padding is None else conv_output_size(
                s, k, stride, padding),
            "ceil(size / stride) is right only for odd kernels",
        ),
    ],
)
def test_output_size_check_names_the_mistake(wrong, named):
    with pytest.raises(CheckpointError) as failure:
        check_conv_output_size(wrong)
    assert named in str(failure.value)


def test_parameter_count_reference_passes(capsys):
    check_conv_block_parameters(lambda i, o, k: o * i * k * k + 2 * o)
    # ConvBlock(3, 32, 3): 32*3*3*3 weights + 32 gammas + 32 betas = 928
    out = capsys.readouterr().out
    assert "ConvBlock(3, 32, 3): 928 parameters ... ok" in out
    assert max(map(len, out.splitlines())) <= WIDTH


@pytest.mark.parametrize(
    ("wrong", "named"),
    [
        (lambda i, o, k: o * i * k * k + o + 2 * o, "the conv has no bias"),
        (lambda i, o, k: o * i * k * k + 4 * o, "running mean and variance are buffers"),
        (lambda i, o, k: o * i * k * k, "weight (gamma) and bias (beta) are parameters too"),
        (lambda i, o, k: i * k * k, "expected 928 parameters, got 27"),
    ],
)
def test_parameter_count_check_names_the_mistake(wrong, named):
    with pytest.raises(CheckpointError) as failure:
        check_conv_block_parameters(wrong)
    assert named in str(failure.value)


# --- behaviour, not structure: more wrong answers, and right answers written differently ---


class NoActivationBlock(ConvBlock):
    def forward(self, x):
        return self.bn(self.conv(x))


class ReluBlock(ConvBlock):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1):
        super().__init__(in_channels, out_channels, kernel_size, stride)
        self.act = nn.ReLU()


class SamePaddingStringBlock(ConvBlock):
    """PyTorch's padding="same" (stride 1 only): equal to kernel_size // 2 for odd kernels only."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1):
        super().__init__(in_channels, out_channels, kernel_size, stride)
        if stride == 1:
            self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding="same", bias=False)


class EpsilonBlock(ConvBlock):
    """BatchNorm with eps=1e-1: the right layers, visibly different outputs."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1):
        super().__init__(in_channels, out_channels, kernel_size, stride)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.1)


class EvalOnlyBatchNormBlock(ConvBlock):
    """Always normalises with the running statistics, even in train mode."""

    def forward(self, x):
        bn = self.bn
        x = nn.functional.batch_norm(self.conv(x), bn.running_mean, bn.running_var, bn.weight, bn.bias, False)
        return self.act(x)


@pytest.mark.parametrize(
    ("wrong", "named"),
    [
        (NoActivationBlock, "the activation is missing"),
        (ReluBlock, "the activation is ReLU"),
        # 2x2 kernel on 7x7: Darknet pads 2 // 2 = 1 each side, (7 + 2 - 2) // 1 + 1 = 8; "same" keeps 7
        (SamePaddingStringBlock, "expected output (2, 8, 8, 8), got (2, 8, 7, 7)"),
        (EpsilonBlock, "the output differs from the reference's with the same weights"),
        (EvalOnlyBatchNormBlock, "in train mode BatchNorm must normalise with the batch's own statistics"),
    ],
)
def test_conv_block_check_fails_behaviour_mistakes(wrong, named):
    with pytest.raises(CheckpointError) as failure:
        check_conv_block(wrong)
    assert named in str(failure.value)


class ReorderedBlock(nn.Module):
    """Right answer: the activation and BatchNorm created before the conv, other names."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1):
        super().__init__()
        self.leaky = nn.LeakyReLU(0.1)
        self.norm = nn.BatchNorm2d(out_channels)
        self.convolution = nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, bias=False)

    def forward(self, x):
        return self.leaky(self.norm(self.convolution(x)))


class ChattyBlock(ConvBlock):
    """Right answer that prints and triggers a PyTorch warning on every call."""

    def forward(self, x):
        print("debug", tuple(x.shape))
        _ = torch.tensor(x)  # UserWarning: copy construct from a tensor
        return super().forward(x)


class LeftoverBlock(ConvBlock):
    """Right answer that keeps an unused module from an earlier attempt."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1):
        super().__init__(in_channels, out_channels, kernel_size, stride)
        self.old_conv = nn.Conv2d(in_channels, out_channels, kernel_size)


class FunctionalBlock(nn.Module):
    """Right answer with functional calls and a Sequential."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1):
        super().__init__()
        conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, bias=False)
        self.layers = nn.Sequential(conv, nn.BatchNorm2d(out_channels))

    def forward(self, x):
        return nn.functional.leaky_relu(self.layers(x), negative_slope=0.1)


@pytest.mark.parametrize("right", [ReorderedBlock, ChattyBlock, LeftoverBlock, FunctionalBlock])
def test_conv_block_check_passes_right_answers_written_differently(right, capsys):
    check_conv_block(right)
    out = capsys.readouterr().out
    assert "ConvBlock: the same outputs as yolo_lessons.ConvBlock" in out


def test_conv_block_check_shows_prints_and_warnings_on_note_lines(capsys):
    check_conv_block(ChattyBlock)
    lines = capsys.readouterr().out.splitlines()
    report = [line for line in lines if not line.startswith("| ")]
    notes = [line for line in lines if line.startswith("| ")]
    assert report[0].startswith("ConvBlock: the same outputs") and len(report) == 5
    assert max(map(len, report)) <= WIDTH
    assert "|   debug (2, 3, 32, 32)" in notes
    assert any("UserWarning" in line for line in notes)


def test_parameter_count_check_wants_an_int_not_a_float():
    with pytest.raises(CheckpointError, match="is a float"):
        check_conv_block_parameters(lambda i, o, k: float(o * i * k * k + 2 * o))
