"""Chapter 12's checkpoints: right answers written differently pass, each known mistake is named."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from yolo_lessons.checkpoints.common import WIDTH, CheckpointError
from yolo_lessons.checkpoints.fast import check_conv_multiply_adds, check_fold_conv_bn, reference_multiply_adds
from yolo_lessons.models.folding import folded_conv


def fold_by_formula(conv, bn):  # right: w' = w * s, b' = beta + (b - mean) * s
    s = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, bias=True)
    b = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    with torch.no_grad():
        fused.weight.copy_(conv.weight * s.view(-1, 1, 1, 1))
        fused.bias.copy_(bn.bias - bn.running_mean * s + b * s)
    return fused


def fold_on_a_copy(conv, bn):  # right: a deep copy edited in place, rsqrt, einsum
    fused = copy.deepcopy(conv)
    s = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
    with torch.no_grad():
        fused.weight.copy_(torch.einsum("oihw,o->oihw", conv.weight, s))
        shift = (conv.bias if conv.bias is not None else 0) - bn.running_mean
        fused.bias = nn.Parameter(bn.bias + shift * s)
    return fused


@pytest.mark.parametrize("answer", [fold_by_formula, fold_on_a_copy, folded_conv])  # folded_conv: the package's
def test_right_folds_pass(answer, capsys):
    check_fold_conv_bn(answer)
    out = capsys.readouterr().out
    assert "... ok" in out
    assert max(map(len, out.splitlines())) <= WIDTH


def fold_with(weight_scale, bias_rule, *, bias=True):
    """A fold whose weight is conv.weight * weight_scale(bn) along the output axis and whose bias is bias_rule."""

    def fold(conv, bn):
        fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, bias=bias)
        b = conv.bias.detach() if conv.bias is not None else torch.zeros(conv.out_channels)
        with torch.no_grad():
            fused.weight.copy_(conv.weight * weight_scale(bn).view(-1, 1, 1, 1))
            if bias:
                fused.bias.copy_(bias_rule(bn, b))
        return fused

    return fold


def s(bn):
    return bn.weight / torch.sqrt(bn.running_var + bn.eps)


def mutating(conv, bn):  # folds into the conv it was given and returns it
    scale = s(bn)
    with torch.no_grad():
        b = conv.bias if conv.bias is not None else torch.zeros(conv.out_channels)
        conv.weight.mul_(scale.view(-1, 1, 1, 1))
        conv.bias = nn.Parameter(bn.bias + (b - bn.running_mean) * scale)
    return conv


def wrong_axis(conv, bn):  # scales the input channels
    fused = fold_by_formula(conv, bn)
    with torch.no_grad():
        fused.weight.copy_(conv.weight * s(bn).view(1, -1, 1, 1))
    return fused


def sequential(conv, bn):  # not a single conv
    return nn.Sequential(conv, bn)


@pytest.mark.parametrize(
    "answer, named",
    [
        (fold_with(lambda bn: bn.weight / torch.sqrt(bn.running_var),
                   lambda bn, b: bn.bias + (b - bn.running_mean) * bn.weight / torch.sqrt(bn.running_var)),
         "eps was left out"),
        (fold_with(lambda bn: bn.weight / (bn.running_var + bn.eps),
                   lambda bn, b: bn.bias + (b - bn.running_mean) * bn.weight / (bn.running_var + bn.eps)),
         "not by the variance"),
        (fold_with(s, lambda bn, b: (b - bn.running_mean) * s(bn)), "lost beta"),
        (fold_with(s, lambda bn, b: bn.bias + b - bn.running_mean), "so it is scaled too"),
        (fold_with(s, lambda bn, b: (bn.bias + b - bn.running_mean) * s(bn)), "so it is not scaled"),
        (fold_with(s, lambda bn, b: bn.bias - bn.running_mean * s(bn)), "own bias was dropped"),
        (fold_with(s, None, bias=False), "has no bias"),
        (mutating, "changed the conv or the BatchNorm"),
        (wrong_axis, "along the input channels"),
        (sequential, "expected an nn.Conv2d, got Sequential"),
        (fold_with(lambda bn: bn.weight, lambda bn, b: bn.bias - bn.running_mean), "differs from bn(conv(x))"),
    ],  # fmt: skip
)
def test_wrong_folds_are_named_or_shown(answer, named):
    with pytest.raises(CheckpointError) as error:
        check_fold_conv_bn(answer)
    assert named in str(error.value)


def test_a_fold_stub_says_not_implemented():
    def stub(conv, bn):
        raise NotImplementedError("w' = w * gamma / sqrt(var + eps)")

    with pytest.raises(CheckpointError, match="not implemented yet"):
        check_fold_conv_bn(stub)


def test_the_reference_count_of_darknet53s_first_layer():
    # 32 filters x 3 inputs x 3 x 3 at 416 x 416 outputs = 149,520,384 (Darknet prints 0.299 BFLOPs, twice it)
    assert reference_multiply_adds((3, 32, 3, 1, 1, 1, 416, 416)) == 149_520_384


def out_side(side, conv, axis):
    k, stride, pad = conv.kernel_size[axis], conv.stride[axis], conv.padding[axis]
    return (side + 2 * pad - k) // stride + 1


def macs_by_formula(conv, height, width):  # right
    per_output = conv.weight[0].numel()  # in/groups * k * k
    return conv.out_channels * per_output * out_side(height, conv, 0) * out_side(width, conv, 1)


def macs_by_running_it(conv, height, width):  # right: the output's shape from a forward pass
    with torch.no_grad():
        y = conv(torch.zeros(1, conv.in_channels, height, width))
    return y.numel() * conv.weight.shape[1] * conv.kernel_size[0] * conv.kernel_size[1]


@pytest.mark.parametrize("answer", [macs_by_formula, macs_by_running_it])
def test_right_multiply_add_counts_pass(answer, capsys):
    check_conv_multiply_adds(answer)
    out = capsys.readouterr().out
    assert "... ok" in out
    assert max(map(len, out.splitlines())) <= WIDTH


def k2(conv):
    return conv.kernel_size[0] * conv.kernel_size[1]


@pytest.mark.parametrize(
    "answer, named",
    [
        (lambda conv, h, w: conv.out_channels * conv.weight.shape[1] * k2(conv) * h * w, "per *output* position"),
        (lambda conv, h, w: 2 * macs_by_formula(conv, h, w), "the FLOPs"),
        (lambda conv, h, w: conv.out_channels * conv.in_channels * k2(conv) * out_side(h, conv, 0)
         * out_side(w, conv, 1), "in_channels / groups"),
        (lambda conv, h, w: macs_by_formula(conv, h, w) + conv.out_channels * out_side(h, conv, 0)
         * out_side(w, conv, 1), "the bias adds one addition"),
        (lambda conv, h, w: macs_by_formula(conv, h, w) // conv.kernel_size[0], "not k"),
        (lambda conv, h, w: float(macs_by_formula(conv, h, w)), "float"),
        (lambda conv, h, w: conv.weight.numel() * h * w // conv.stride[0], "expected 797,442,048"),  # no name fits
    ],  # fmt: skip
)
def test_wrong_multiply_add_counts_are_named_or_shown(answer, named):
    with pytest.raises(CheckpointError) as error:
        check_conv_multiply_adds(answer)
    assert named in str(error.value)
