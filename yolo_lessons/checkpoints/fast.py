"""Checks behind the checkpoint cells of chapter 12: a BatchNorm folded by hand, a layer's cost.

* ``check_fold_conv_bn``: ``fold_conv_bn(conv, bn)``, one biased ``nn.Conv2d`` that computes
  ``bn(conv(x))`` of an eval-mode BatchNorm, on convolutions with and without a bias, a
  stride, an unusual ``eps``; the inputs must be left as they were. A known mistake (eps
  forgotten, var for its square root, beta dropped, the bias left unscaled, the scale along
  the input channels, the convolution's own bias lost) is named only when it explains every
  case's weights and bias.
* ``check_conv_multiply_adds``: ``conv_multiply_adds(conv, height, width)``, the multiply-adds
  one ``nn.Conv2d`` spends on one (C, height, width) image, an int; the known wrong counts
  (the input's size for the output's, FLOPs, groups ignored, the bias counted, a k x k
  kernel counted as k) are named only when one explains every answer.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import Tensor, nn

from .common import CheckpointError, call, checkpoint, expect, integer_problem, passed

# --- fold one Conv2d + BatchNorm2d --------------------------------------------------------

# (in, out, kernel, stride, padding, conv bias, bn eps): the first has in == out, so a scale
# along the wrong axis still runs there and can be told apart from the right one
FOLD_CASES: tuple[tuple[int, int, int, int, int, bool, float], ...] = (
    (6, 6, 3, 1, 1, False, 1e-5),  # a ConvBlock: no bias before the BatchNorm
    (4, 8, 3, 2, 1, False, 0.1),  # a downsampling block; a large eps, so forgetting it shows
    (5, 3, 1, 1, 0, True, 1e-3),  # a 1 x 1 conv that has its own bias
)
FOLD_TOLERANCE = 1e-5  # max |got - want| / max |want|, what fold_batchnorm promises


def _fold_case(index: int) -> tuple[nn.Conv2d, nn.BatchNorm2d, Tensor]:
    """A convolution, an eval-mode BatchNorm with random statistics, and an input: seeded."""
    cin, cout, k, stride, pad, bias, eps = FOLD_CASES[index]
    generator = torch.Generator().manual_seed(1200 + index)
    conv = nn.Conv2d(cin, cout, k, stride, pad, bias=bias)
    bn = nn.BatchNorm2d(cout, eps=eps)
    with torch.no_grad():
        conv.weight.copy_(0.3 * torch.randn(conv.weight.shape, generator=generator))
        if bias:
            conv.bias.copy_(0.5 * torch.randn(cout, generator=generator))
        bn.weight.copy_(0.5 + torch.rand(cout, generator=generator))
        bn.bias.copy_(torch.randn(cout, generator=generator))
        bn.running_mean.copy_(0.5 * torch.randn(cout, generator=generator))
        bn.running_var.copy_(0.05 + 2 * torch.rand(cout, generator=generator))  # small ones make eps matter
    x = torch.randn(2, cin, 9, 9, generator=generator)
    return conv.eval(), bn.eval(), x


def _scale(bn: nn.BatchNorm2d, *, eps: bool = True, sqrt: bool = True) -> Tensor:
    var = bn.running_var + (bn.eps if eps else 0.0)
    return bn.weight / (torch.sqrt(var) if sqrt else var)


def _conv_bias(conv: nn.Conv2d) -> Tensor:
    return conv.bias if conv.bias is not None else torch.zeros(conv.out_channels)


def _right(conv, bn):
    s = _scale(bn)
    return conv.weight * s[:, None, None, None], bn.bias + (_conv_bias(conv) - bn.running_mean) * s


# The folds a learner may write instead: (weight, bias) of each, or None where it cannot run.
FOLD_MISTAKES: dict[str, tuple[Callable, str]] = {
    "no_eps": (
        lambda conv, bn: (conv.weight * _scale(bn, eps=False)[:, None, None, None],
                          bn.bias + (_conv_bias(conv) - bn.running_mean) * _scale(bn, eps=False)),
        "the scale is gamma / sqrt(var + eps): eps was left out (it matters where a channel's "
        "variance is small)",
    ),  # fmt: skip
    "var": (
        lambda conv, bn: (conv.weight * _scale(bn, sqrt=False)[:, None, None, None],
                          bn.bias + (_conv_bias(conv) - bn.running_mean) * _scale(bn, sqrt=False)),
        "BatchNorm divides by the standard deviation, sqrt(var + eps), not by the variance",
    ),  # fmt: skip
    "no_beta": (
        lambda conv, bn: (_right(conv, bn)[0], (_conv_bias(conv) - bn.running_mean) * _scale(bn)),
        "the folded bias lost beta (bn.bias): b' = beta + (b - mean) * gamma / sqrt(var + eps)",
    ),
    "bias_unscaled": (
        lambda conv, bn: (_right(conv, bn)[0], bn.bias + _conv_bias(conv) - bn.running_mean),
        "the mean is subtracted before the scale, so it is scaled too: b' = beta + (b - mean) * "
        "gamma / sqrt(var + eps)",
    ),
    "bias_whole_scaled": (
        lambda conv, bn: (_right(conv, bn)[0], (bn.bias + _conv_bias(conv) - bn.running_mean) * _scale(bn)),
        "beta is added after the scale, so it is not scaled: b' = beta + (b - mean) * gamma / sqrt(var + eps)",
    ),
    "wrong_axis": (
        lambda conv, bn: (conv.weight * _scale(bn)[None, :, None, None], _right(conv, bn)[1])
        if conv.in_channels == conv.out_channels else None,
        "the scale belongs to the output channels, the weight's first axis (w * s[:, None, None, None]); "
        "it was applied along the input channels",
    ),
    "conv_bias_lost": (
        lambda conv, bn: (_right(conv, bn)[0], bn.bias - bn.running_mean * _scale(bn)),
        "the convolution's own bias was dropped: with one, b' = beta + (b - mean) * gamma / sqrt(var + eps)",
    ),
}


def _name_fold_mistake(wrong: list, answers: list, cause: Exception | None = None) -> None:
    """Raise the known mistake that explains every answer so far, if one does."""
    for _name, (mistake, why) in FOLD_MISTAKES.items():
        if _explains(mistake, answers):
            raise CheckpointError(f"{wrong[0][0]}: {why}") from cause


def _state(*modules: nn.Module) -> list[Tensor]:
    return [t.detach().clone() for m in modules for t in m.state_dict().values()]


def _same(a: Tensor, b: Tensor) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a, b, rtol=1e-4, atol=1e-6))


def _relative(got: Tensor, want: Tensor) -> float:
    return float((got - want).abs().max() / want.abs().max().clamp_min(1e-12))


def _explains(mistake: Callable, answers: list) -> bool:
    for index, (weight, bias) in enumerate(answers):
        conv, bn, _ = _fold_case(index)
        with torch.no_grad():
            predicted = mistake(conv, bn)
        if predicted is None or not (_same(weight, predicted[0]) and _same(bias, predicted[1])):
            return False
    return True


@checkpoint
def check_fold_conv_bn(fold_conv_bn: Callable) -> None:
    answers, wrong = [], []
    for index, case in enumerate(FOLD_CASES):
        conv, bn, x = _fold_case(index)
        before = _state(conv, bn)
        with torch.no_grad():
            want = bn(conv(x))
        try:
            fused = call(fold_conv_bn, conv, bn)
        except CheckpointError as error:
            if wrong:  # wrong before it crashed: a mistake that explains those answers is still named
                _name_fold_mistake(wrong, answers, cause=error)
            raise
        shown = f"conv {case[0]}->{case[1]}, {case[2]}x{case[2]}, stride {case[3]}" + (", with bias" if case[5] else "")
        expect(all(torch.equal(a, b) for a, b in zip(before, _state(conv, bn), strict=True)),
               f"{shown}: fold_conv_bn changed the conv or the BatchNorm it was given; build a new "
               "nn.Conv2d (or work on a copy) and leave the inputs as they were")  # fmt: skip
        expect(isinstance(fused, nn.Conv2d), f"{shown}: expected an nn.Conv2d, got {type(fused).__name__}")
        expect(fused.bias is not None, f"{shown}: the folded conv has no bias, but the BatchNorm's shift "
               "beta - mean * gamma / sqrt(var + eps) must live somewhere: build it with bias=True")  # fmt: skip
        expect((fused.stride, fused.padding, fused.kernel_size) == (conv.stride, conv.padding, conv.kernel_size),
               f"{shown}: the folded conv must keep the kernel, stride and padding: expected "
               f"{conv.kernel_size}, {conv.stride}, {conv.padding}, got {fused.kernel_size}, {fused.stride}, "
               f"{fused.padding}")  # fmt: skip
        expect(tuple(fused.weight.shape) == tuple(conv.weight.shape),
               f"{shown}: expected a weight of shape {tuple(conv.weight.shape)}, got {tuple(fused.weight.shape)}")
        answers.append((fused.weight.detach().float().clone(), fused.bias.detach().float().clone()))
        with torch.no_grad():
            got = fused.eval()(x)
        if _relative(got, want) > FOLD_TOLERANCE:
            wrong.append((shown, _relative(got, want)))
    if wrong:
        _name_fold_mistake(wrong, answers)
        shown, worst = wrong[0]
        raise CheckpointError(f"{shown}: the folded conv's output differs from bn(conv(x)) by {worst:.2g} of its "
                              f"largest value (expected at most {FOLD_TOLERANCE:g})")  # fmt: skip
    passed(f"one Conv2d + BatchNorm2d folded, {len(FOLD_CASES)} cases (with and without a conv bias,\n"
           f"  stride 2, eps 0.1): equal to bn(conv(x)) within {FOLD_TOLERANCE:g},\n"
           "  inputs untouched ... ok")  # fmt: skip


# --- the multiply-adds of one convolution ---------------------------------------------------

# (in, out, kernel, stride, padding, groups, input height, input width)
MAC_CASES: tuple[tuple[int, int, int, int, int, int, int, int], ...] = (
    (3, 32, 3, 1, 1, 1, 416, 416),  # Darknet-53's first layer: 149,520,384
    (32, 64, 3, 2, 1, 1, 416, 416),  # its first downsample: the output is 208 x 208
    (64, 32, 1, 1, 0, 1, 13, 20),  # a 1 x 1 conv on a wide picture
    (16, 32, 3, 1, 1, 4, 10, 10),  # grouped: each output channel sees 16 / 4 inputs
    (8, 8, 3, 2, 1, 8, 15, 15),  # depthwise, odd side
)


def _conv(case) -> nn.Conv2d:
    cin, cout, k, stride, pad, groups, _, _ = case
    return nn.Conv2d(cin, cout, k, stride, pad, groups=groups, bias=True)


def _output_side(side: int, k: int, stride: int, pad: int) -> int:
    return (side + 2 * pad - k) // stride + 1


def reference_multiply_adds(case) -> int:
    cin, cout, k, stride, pad, groups, h, w = case
    return cout * (cin // groups) * k * k * _output_side(h, k, stride, pad) * _output_side(w, k, stride, pad)


MAC_MISTAKES: dict[str, tuple[Callable, str]] = {
    "input_size": (
        lambda cin, cout, k, stride, pad, groups, h, w: cout * (cin // groups) * k * k * h * w,
        "the multiply-adds are counted once per *output* position: with stride 2 the output is half "
        "the input's height and width",
    ),
    "flops": (
        lambda cin, cout, k, stride, pad, groups, h, w: 2 * reference_multiply_adds((cin, cout, k, stride, pad,
                                                                                      groups, h, w)),
        "that is twice the answer: the FLOPs (a multiply and an add each); a multiply-add counts once",
    ),  # fmt: skip
    "groups": (
        lambda cin, cout, k, stride, pad, groups, h, w: cout * cin * k * k * _output_side(h, k, stride, pad)
        * _output_side(w, k, stride, pad),
        "with groups, each output channel sees in_channels / groups inputs (conv.weight's second axis)",
    ),
    "bias": (
        lambda cin, cout, k, stride, pad, groups, h, w: (cout * (cin // groups) * k * k + cout)
        * _output_side(h, k, stride, pad) * _output_side(w, k, stride, pad),
        "the bias adds one addition per output, not a multiply-add; the usual count leaves it out",
    ),
    "kernel_once": (
        lambda cin, cout, k, stride, pad, groups, h, w: cout * (cin // groups) * k
        * _output_side(h, k, stride, pad) * _output_side(w, k, stride, pad),
        "a k x k kernel has k * k weights per input channel, not k",
    ),
}


@checkpoint
def check_conv_multiply_adds(conv_multiply_adds: Callable) -> None:
    answers = []
    for case in MAC_CASES:
        conv = _conv(case)
        kept = copy.deepcopy(conv.state_dict())
        got = call(conv_multiply_adds, conv, case[6], case[7])
        expect(all(torch.equal(a, b) for a, b in zip(kept.values(), conv.state_dict().values(), strict=True)),
               "conv_multiply_adds changed the convolution it was given")  # fmt: skip
        problem = integer_problem(got)
        shown = f"conv_multiply_adds({_describe(conv)}, {case[6]}, {case[7]})"
        expect(not problem, f"{shown}: {problem}")
        answers.append(int(got))
    wanted = [reference_multiply_adds(case) for case in MAC_CASES]
    wrong = [n for n, (got, want) in enumerate(zip(answers, wanted, strict=True)) if got != want]
    if wrong:
        n = wrong[0]
        shown = (f"conv_multiply_adds({_describe(_conv(MAC_CASES[n]))}, {MAC_CASES[n][6]}, {MAC_CASES[n][7]}): "
                 f"expected {wanted[n]:,}, got {answers[n]:,}")  # fmt: skip
        for _name, (mistake, why) in MAC_MISTAKES.items():
            if all(mistake(*case) == got for case, got in zip(MAC_CASES, answers, strict=True)):
                raise CheckpointError(f"{shown}: {why}")
        raise CheckpointError(shown)
    passed(f"multiply-adds of one conv, {len(MAC_CASES)} cases (stride 2, 1 x 1, groups, odd sides) ... ok")


def _describe(conv: nn.Conv2d) -> str:
    groups = f", groups={conv.groups}" if conv.groups > 1 else ""
    return (f"Conv2d({conv.in_channels}, {conv.out_channels}, {conv.kernel_size[0]}, stride={conv.stride[0]}, "
            f"padding={conv.padding[0]}{groups})")  # fmt: skip
