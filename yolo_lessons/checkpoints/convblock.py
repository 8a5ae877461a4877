"""Checkpoints of chapter 1, "The convolution block".

* ``check_conv_block(cls)``: a Darknet conv block, conv (no bias) -> BatchNorm -> LeakyReLU(0.1).
* ``check_conv_output_size(fn)``: the output-size formula of a convolution.
* ``check_conv_block_parameters(fn)``: a ConvBlock's parameter count, by hand.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..blocks import ConvBlock
from .common import CheckpointError, build, call, count_parameters, describe_conv_block_mistakes, expect, run

# (in_channels, out_channels, kernel_size, stride, input side) -> output side: the cases
# check_conv_block runs. 3x3 stride 1 keeps 32, 3x3 stride 2 halves it, 1x1 keeps 16.
_BLOCK_CASES = ((3, 16, 3, 1, 32), (16, 32, 3, 2, 32), (32, 16, 1, 1, 16))


def _parts(block: nn.Module) -> tuple[nn.Conv2d, nn.BatchNorm2d]:
    convs = [m for m in block.modules() if isinstance(m, nn.Conv2d)]
    bns = [m for m in block.modules() if isinstance(m, nn.BatchNorm2d)]
    expect(len(convs) == 1, f"expected exactly one nn.Conv2d in the block, found {len(convs)}")
    expect(len(bns) == 1, f"expected exactly one nn.BatchNorm2d in the block, found {len(bns)}")
    return convs[0], bns[0]


def _reference_with(block: nn.Module, in_c: int, out_c: int, k: int, stride: int) -> ConvBlock:
    """The package's ConvBlock carrying the learner's conv and BatchNorm weights."""
    conv, bn = _parts(block)
    reference = ConvBlock(in_c, out_c, k, stride)
    with torch.no_grad():
        reference.conv.weight.copy_(conv.weight)
        reference.bn.load_state_dict(bn.state_dict())
    return reference


def _randomise_batchnorm(block: nn.Module) -> None:
    _, bn = _parts(block)
    expect(bn.affine, "BatchNorm needs its learnable weight (gamma) and bias (beta): keep affine=True")
    expect(bn.track_running_stats, "BatchNorm needs running statistics for eval mode: keep track_running_stats=True")
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.normal_()
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2.0)


def _name_activation_mistake(reference: ConvBlock, x: torch.Tensor, got: torch.Tensor) -> str:
    """Which known wrong activation explains the learner's output, if any."""
    reference.eval()
    pre_activation = reference.bn(reference.conv(x))
    slope_001 = "the activation uses slope 0.01 (PyTorch's LeakyReLU default); Darknet's leaky uses 0.1"
    candidates = {
        slope_001: nn.functional.leaky_relu(pre_activation, 0.01),
        "the activation is ReLU; Darknet's leaky is LeakyReLU(0.1)": torch.relu(pre_activation),
        "the activation is missing: apply LeakyReLU(0.1) after BatchNorm": pre_activation,
    }
    for message, expected in candidates.items():
        if torch.allclose(got, expected, atol=1e-5):
            return message
    return ""


def check_conv_block(cls: Callable[..., nn.Module]) -> None:
    """Check a ConvBlock class built as ``cls(in_channels, out_channels, kernel_size, stride=1)``."""
    torch.manual_seed(0)
    for in_c, out_c, k, stride, side in _BLOCK_CASES:
        block = build(cls, in_c, out_c, k, stride=stride)
        x = torch.randn(2, in_c, side, side)
        mistakes = describe_conv_block_mistakes(block, x)
        if mistakes:
            raise CheckpointError("; ".join(mistakes))
        _randomise_batchnorm(block)  # fresh statistics would hide a wrong order of the three steps
        y = run(block, x)
        out_side = (side + 2 * (k // 2) - k) // stride + 1
        expected_shape = (2, out_c, out_side, out_side)
        expect(
            tuple(y.shape) == expected_shape,
            f"ConvBlock({in_c}, {out_c}, {k}, stride={stride}) on input {tuple(x.shape)}: expected output "
            f'{expected_shape}, got {tuple(y.shape)} ("same" padding is kernel_size // 2 = {k // 2})',
        )
        expected_params = out_c * in_c * k * k + 2 * out_c
        got_params = count_parameters(block)
        expect(
            got_params == expected_params,
            f"ConvBlock({in_c}, {out_c}, {k}): expected {expected_params:,} parameters "
            f"(conv {out_c}x{in_c}x{k}x{k} without bias + BatchNorm's weight and bias), got {got_params:,}",
        )
        reference = _reference_with(block, in_c, out_c, k, stride)
        reference.eval()
        with torch.no_grad():
            same = torch.allclose(y, reference(x), atol=1e-5)
            if not same:
                mistake = _name_activation_mistake(reference, x, y)
                raise CheckpointError(
                    mistake
                    or "the output differs from conv -> BatchNorm -> LeakyReLU(0.1) with the same weights: "
                    f"expected {reference(x).flatten()[:3].tolist()}, got {y.flatten()[:3].tolist()} "
                    "(first values; is the order conv, BatchNorm, activation?)"
                )
    print("ConvBlock: one bias-free conv, a BatchNorm that runs, LeakyReLU(0.1) ... ok")
    print("output shapes: 3x3 stride 1 keeps 32x32, 3x3 stride 2 gives 16x16, 1x1 keeps 16x16 ... ok")
    print("parameters: ConvBlock(3, 16, 3) has 464 = 16*3*3*3 + 2*16 ... ok")
    print("outputs equal yolo_lessons.ConvBlock with the same weights ... ok")


# (size, kernel_size, stride, padding) -> PyTorch's answer, computed with a real Conv2d.
_SIZE_CASES = (
    (416, 3, 1, 1),
    (416, 3, 2, 1),
    (415, 3, 2, 1),
    (13, 1, 1, 0),
    (224, 7, 2, 3),
    (5, 3, 1, 0),
    (10, 4, 3, 2),
)


def _true_output_size(size: int, kernel_size: int, stride: int, padding: int) -> int:
    conv = nn.Conv2d(1, 1, kernel_size, stride, padding, bias=False)
    with torch.no_grad():
        return conv(torch.zeros(1, 1, size, size)).shape[-1]


# Wrong formulas seen in practice, each with the message that names it.
_SIZE_MISTAKES = (
    (lambda n, k, s, p: (n + 2 * p - k) // s, "the formula needs '+ 1' at the end"),
    (lambda n, k, s, p: (n + p - k) // s + 1, "padding is added on both sides, so count it twice"),
    (lambda n, k, s, p: (n + 2 * p - k) / s + 1, "use floor division // so the answer is a whole number"),
    (lambda n, k, s, p: (n + 2 * p - k + 1) // s, "the '+ 1' comes after the division by the stride"),
)


def check_conv_output_size(fn: Callable[..., int]) -> None:
    """Check ``fn(size, kernel_size, stride=1, padding=None)`` against real ``nn.Conv2d`` outputs."""
    answers = [call(fn, n, k, stride=s, padding=p) for n, k, s, p in _SIZE_CASES]
    for (n, k, s, p), got in zip(_SIZE_CASES, answers, strict=True):
        expected = _true_output_size(n, k, s, p)
        if got == expected and isinstance(got, int) and not isinstance(got, bool):
            continue
        case = f"size={n}, kernel_size={k}, stride={s}, padding={p}"
        for wrong, message in _SIZE_MISTAKES:
            if all(a == wrong(*c) and type(a) is type(wrong(*c)) for c, a in zip(_SIZE_CASES, answers, strict=True)):
                raise CheckpointError(f"{case}: expected {expected}, got {got!r}: {message}")
        raise CheckpointError(f"{case}: expected {expected} (what nn.Conv2d gives), got {got!r}")
    for n, k, s in ((416, 3, 1), (416, 3, 2), (13, 1, 1)):
        got, expected = call(fn, n, k, stride=s), _true_output_size(n, k, s, k // 2)
        expect(
            got == expected,
            f"size={n}, kernel_size={k}, stride={s} with the default padding: expected {expected}, "
            f'got {got!r}; padding=None means "same" padding, kernel_size // 2',
        )
    print(f"{len(_SIZE_CASES)} sizes, kernels, strides and paddings agree with nn.Conv2d ... ok")
    print('default "same" padding: 416 -> 416 (stride 1), 416 -> 208 (stride 2), 13 -> 13 (1x1) ... ok')


def check_conv_block_parameters(fn: Callable[[int, int, int], int]) -> None:
    """Check ``fn(in_channels, out_channels, kernel_size)`` against counted ConvBlocks."""
    report = []
    for in_c, out_c, k in ((3, 32, 3), (128, 64, 1), (512, 1024, 3)):
        expected = count_parameters(ConvBlock(in_c, out_c, k))
        got = call(fn, in_c, out_c, k)
        case = f"ConvBlock({in_c}, {out_c}, {k})"
        if got == expected:
            report.append(f"{case}: {got:,} parameters ... ok")
            continue
        if got == expected + out_c:
            raise CheckpointError(f"{case}: expected {expected:,}, got {got:,}: the conv has no bias (bias=False)")
        if got == expected + 2 * out_c:
            raise CheckpointError(
                f"{case}: expected {expected:,}, got {got:,}: BatchNorm's running mean and variance are "
                "buffers, not parameters"
            )
        if got == expected - 2 * out_c:
            raise CheckpointError(
                f"{case}: expected {expected:,}, got {got:,}: BatchNorm's weight (gamma) and bias (beta) "
                "are parameters too, one each per channel"
            )
        raise CheckpointError(f"{case}: expected {expected:,} parameters, got {got!r}")
    print("\n".join(report))
