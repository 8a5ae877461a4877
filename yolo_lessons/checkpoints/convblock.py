"""Checkpoints of chapter 1, "The convolution block".

* ``check_conv_block(cls)``: a Darknet conv block, conv (no bias) -> BatchNorm -> LeakyReLU(0.1).
* ``check_conv_output_size(fn)``: the output-size formula of a convolution.
* ``check_conv_block_parameters(fn)``: a ConvBlock's parameter count, by hand.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from ..models.blocks import LEAKY_SLOPE, ConvBlock
from .common import (
    CheckpointError,
    build,
    call,
    checkpoint,
    close,
    compare_modules,
    count_parameters,
    describe_conv_block_mistakes,
    expect,
    integer_problem,
    note,
    passed,
    randomize,
)

# (in_channels, out_channels, kernel_size, stride, input side): the cases check_conv_block
# runs. 3x3 stride 1 keeps 32; 3x3 stride 2 halves 32 and takes 15 to 8 (odd side); 1x1
# keeps 16; a 2x2 kernel with Darknet's padding 2 // 2 = 1 takes 7 to 8 (PyTorch's
# padding="same" would keep 7).
_BLOCK_CASES = ((3, 16, 3, 1, 32), (16, 32, 3, 2, 32), (4, 8, 3, 2, 15), (32, 16, 1, 1, 16), (4, 8, 2, 1, 7))


def _block_variants(reference: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """What the known wrong orders and activations compute with the reference's weights (eval mode).

    ``reference`` is a ``ConvBlock``, or an ``nn.Sequential(ConvBlock, MaxPool2d)``."""
    block, pool = (reference, None) if isinstance(reference, ConvBlock) else (reference[0], reference[1])
    conv, bn = block.conv, block.bn
    finish = pool if pool is not None else nn.Identity()
    pre = bn(conv(x))
    variants = {
        "the activation is missing: apply LeakyReLU(0.1) after BatchNorm": pre,
        "the activation is ReLU; Darknet's leaky is LeakyReLU(0.1) (nn.LeakyReLU(0.1))": torch.relu(pre),
        "the activation uses slope 0.01 (PyTorch's LeakyReLU default); Darknet's leaky uses 0.1": F.leaky_relu(
            pre, 0.01
        ),
        "the activation comes before BatchNorm: the order is conv, BatchNorm, LeakyReLU(0.1)": bn(
            F.leaky_relu(conv(x), LEAKY_SLOPE)
        ),
        "ReLU before BatchNorm: the order is conv, BatchNorm, then LeakyReLU(0.1) (not ReLU)": bn(torch.relu(conv(x))),
        "BatchNorm is skipped in forward: call it between the conv and the activation": F.leaky_relu(
            conv(x), LEAKY_SLOPE
        ),
    }
    variants = {message: finish(value) for message, value in variants.items()}
    if pool is not None:
        variants["the max-pool comes before the conv; it goes after the conv, BatchNorm and LeakyReLU"] = block(pool(x))
    return variants


def diagnose_block(module: nn.Module, reference: nn.Module, x: torch.Tensor, problem: str, got, mode: str) -> str:
    """Name the known ConvBlock mistake that explains ``problem``, when one certainly does."""
    if got is not None and mode == "train":
        return (
            problem + " (eval mode agrees; in train mode BatchNorm must normalise with the batch's own "
            "statistics, as nn.BatchNorm2d does)"
        )
    structural = describe_conv_block_mistakes(module, x)
    if structural:
        return "; ".join(structural)
    if got is not None and mode == "eval":
        with torch.no_grad():
            for message, value in _block_variants(reference.eval(), x).items():
                if close(got, value):
                    return message
    return problem


def _shape_hint(k: int, stride: int) -> str:
    return (
        f'Darknet\'s "same" padding is kernel_size // 2 = {k // 2}'
        + (' (padding="same" differs for even kernels)' if k % 2 == 0 else "")
        + (f", and stride={stride} must reach the conv" if stride != 1 else "")
    )


@checkpoint
def check_conv_block(cls: Callable[..., nn.Module]) -> None:
    """Check a ConvBlock class built as ``cls(in_channels, out_channels, kernel_size, stride=1)``:
    with ``yolo_lessons.ConvBlock``'s weights copied in, the same outputs in eval and train mode."""
    generator = torch.Generator().manual_seed(0)
    for number, (in_c, out_c, k, stride, side) in enumerate(_BLOCK_CASES):
        block = build(cls, in_c, out_c, k, stride=stride)
        reference = randomize(ConvBlock(in_c, out_c, k, stride), seed=number)
        x = torch.randn(2, in_c, side, side, generator=generator)
        case = f"ConvBlock({in_c}, {out_c}, {k}, stride={stride}) on input {tuple(x.shape)}"
        found = compare_modules(block, reference, [(x,)], label=f" of {case}")
        if found.problem:
            expected, got = found.expected, found.got
            if expected is not None and isinstance(got, torch.Tensor) and got.shape != expected.shape:
                raise CheckpointError(
                    f"{case}: expected output {tuple(expected.shape)}, got {tuple(got.shape)} "
                    f"({_shape_hint(k, stride)})"
                )
            raise CheckpointError(diagnose_block(block, reference, x, found.problem, got, found.mode))
        expected_params = count_parameters(reference)
        used = found.used_parameters
        expect(
            used == expected_params,
            f"ConvBlock({in_c}, {out_c}, {k}): expected {expected_params:,} parameters "
            f"(conv {out_c}x{in_c}x{k}x{k} without bias + BatchNorm's weight and bias), got {used:,}",
        )
        if count_parameters(block) != used and number == 0:
            note(f"your block also holds {count_parameters(block) - used:,} parameters that forward never uses")
    passed("ConvBlock: the same outputs as yolo_lessons.ConvBlock with the same weights,\n"
           "  eval and train mode ... ok")
    passed("shapes: 3x3 stride 1 keeps 32, stride 2 takes 32 to 16 and 15 to 8,\n"
           "  1x1 keeps 16, 2x2 takes 7 to 8 ... ok")
    print("parameters: ConvBlock(3, 16, 3) has 464 = 16*3*3*3 + 2*16 ... ok")


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


# (size, kernel_size, stride) with padding left to its default, kernel_size // 2: odd sides at stride 2 and
# even kernels are where "size // stride" and "ceil(size / stride)" stop being right.
_DEFAULT_CASES = ((416, 3, 1), (416, 3, 2), (13, 1, 1), (415, 3, 2), (416, 2, 2), (13, 4, 1))
_DEFAULT_SHORTCUTS = (
    (lambda n, k, s: n // s, "size // stride is right only for odd kernels on even sides: with padding "
     "kernel_size // 2 the formula gives (size + 2 * padding - kernel_size) // stride + 1"),
    (lambda n, k, s: -(-n // s), "ceil(size / stride) is right only for odd kernels: an even kernel with "
     "padding kernel_size // 2 adds one; use (size + 2 * padding - kernel_size) // stride + 1"),
)


@checkpoint
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
    defaults = [(n, k, s, call(fn, n, k, stride=s)) for n, k, s in _DEFAULT_CASES]
    for n, k, s, got in defaults:
        expect(not integer_problem(got), f"size={n}, kernel_size={k}, stride={s}: {integer_problem(got)}")
    wrong = [(n, k, s, got) for n, k, s, got in defaults if got != _true_output_size(n, k, s, k // 2)]
    if wrong:
        n, k, s, got = wrong[0]
        case = (f"size={n}, kernel_size={k}, stride={s} with the default padding: expected "
                f"{_true_output_size(n, k, s, k // 2)}, got {got!r}")  # fmt: skip
        for shortcut, message in _DEFAULT_SHORTCUTS:
            if all(a == shortcut(n_, k_, s_) for n_, k_, s_, a in defaults):
                raise CheckpointError(f"{case}: {message}")
        raise CheckpointError(f'{case}; padding=None means "same" padding, kernel_size // 2')
    print(f"{len(_SIZE_CASES)} sizes, kernels, strides and paddings agree with nn.Conv2d ... ok")
    passed('default "same" padding: 416 -> 416, 416 -> 208 at stride 2,\n'
           '  odd sides, even kernels ... ok')


@checkpoint
def check_conv_block_parameters(fn: Callable[[int, int, int], int]) -> None:
    """Check ``fn(in_channels, out_channels, kernel_size)`` against counted ConvBlocks."""
    report = []
    for in_c, out_c, k in ((3, 32, 3), (128, 64, 1), (512, 1024, 3)):
        expected = count_parameters(ConvBlock(in_c, out_c, k))
        got = call(fn, in_c, out_c, k)
        case = f"ConvBlock({in_c}, {out_c}, {k})"
        if got == expected and integer_problem(got):
            raise CheckpointError(f"{case}: the count is right but {integer_problem(got)}")
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
