"""Checkpoints of chapter 5, "Darknet-53".

* ``check_residual_block``: a residual block built from plain PyTorch layers, compared
  with ``yolo_lessons.ResidualBlock`` after copying the package's weights into it.
* ``check_darknet_counts``: weighted layers and parameters of a Darknet-53-like network
  with any stage depths, compared with networks actually built and counted.
* ``check_stage``: one downsampling stage (stride-2 conv + residual blocks), compared
  with the package's stage layer by layer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from ..models.blocks import LEAKY_SLOPE, ConvBlock, ResidualBlock
from ..models.counting import count_parameters, count_weighted_layers
from ..models.darknet53 import DARKNET53_STAGES, STEM_CHANNELS
from .common import (
    CheckpointError,
    build,
    call,
    checkpoint,
    close,
    compare_modules,
    describe_conv_block_mistakes,
    expect,
    integer_problem,
    note,
    passed,
    randomize,
)


def _layers(module: nn.Module, kind: type) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, kind)]


# --- Exercise 1: the residual block -------------------------------------------------------------


def _residual_variants(reference: ResidualBlock, x: Tensor) -> dict[str, Tensor]:
    """What the known wrong residual blocks compute with the reference's weights (eval mode)."""
    reduce, expand = reference.reduce, reference.expand
    branch = expand(reduce(x))
    return {
        "missing residual addition: the output equals expand(reduce(x)); "
        "return x + expand(reduce(x)) (the cfg's [shortcut] from=-3)": branch,
        "activation after the addition: Darknet's [shortcut] has activation=linear, "
        "so return the plain sum x + expand(reduce(x))": nn.functional.leaky_relu(x + branch, LEAKY_SLOPE),
        "the 3x3 conv's LeakyReLU is missing: both convs are followed by BatchNorm and LeakyReLU(0.1), "
        "then the input is added": x + expand.bn(expand.conv(reduce(x))),
    }


@checkpoint
def check_residual_block(block_class: Callable[[int], nn.Module], channels: int = 64) -> None:
    """Check a residual block ``block_class(channels)`` against ``yolo_lessons.ResidualBlock``:
    the package block's weights are copied in by role (which conv, which BatchNorm: the order
    forward uses them, not names or creation order) and the outputs compared in eval and train mode.

    Then names the known mistakes: no residual addition, an activation after the addition,
    the 1x1 and 3x3 kernels swapped, and the ConvBlock mistakes (BatchNorm missing or
    unused, conv bias before BatchNorm, PyTorch's default LeakyReLU slope).
    """
    block = build(block_class, channels)
    generator = torch.Generator().manual_seed(0)
    inputs = [
        (torch.randn(2, channels, 8, 8, generator=generator),),
        (torch.randn(1, channels, 7, 9, generator=generator),),
    ]
    reference = randomize(ResidualBlock(channels), seed=1)
    found = compare_modules(block, reference, inputs)
    expected_params = sum(p.numel() for p in reference.parameters())
    if found.problem:
        kernels = [tuple(c.kernel_size) for c in _layers(block, nn.Conv2d)]
        expect(
            kernels != [(3, 3), (1, 1)],
            "the kernel sizes are swapped: the 1x1 conv comes first (it halves the channels), "
            "the 3x3 conv second (it restores them)",
        )
        mistakes = describe_conv_block_mistakes(block, inputs[0][0])
        expect(not mistakes, "; ".join(mistakes))
        if found.mode == "eval":
            with torch.no_grad():
                for message, value in _residual_variants(reference, found.x[0]).items():
                    expect(not close(found.got, value), message)
        total = sum(p.numel() for p in block.parameters())
        expect(
            total == expected_params,
            f"expected {expected_params:,} parameters for channels={channels} "
            f"(1x1 conv {channels}->{channels // 2}, 3x3 conv {channels // 2}->{channels}, "
            f"each with BatchNorm), got {total:,}; {found.problem}",
        )
        raise CheckpointError(found.problem)
    expect(
        found.used_parameters == expected_params,
        f"expected {expected_params:,} parameters for channels={channels} "
        f"(1x1 conv {channels}->{channels // 2}, 3x3 conv {channels // 2}->{channels}, "
        f"each with BatchNorm), got {found.used_parameters:,}",
    )
    passed(f"residual block ({channels} channels): {expected_params:,} parameters, a 1x1 then a 3x3 conv: ok")
    passed("same output as yolo_lessons.ResidualBlock with the same weights\n"
           "  (eval and train mode, 8x8 and 7x9): ok")


# --- Exercise 2: counting a Darknet with any stage depths ---------------------------------------


def reference_darknet(blocks: Sequence[int], num_classes: int = 1000) -> nn.Sequential:
    """A Darknet-53-like network with ``blocks[i]`` residual blocks in stage i.

    Stem 3x3 conv (32 channels), then per stage a 3x3 stride-2 conv doubling the channels
    and the residual blocks, then global average pooling and the classifier: a 1x1 conv with
    a bias on the pooled map, as ``darknet53.cfg`` and ``yolo_lessons.darknet53()`` have it
    (the same weighted layer and parameters as a Linear). Built on the ``meta`` device: it
    has shapes but no memory, so counting it is instant.
    """
    with torch.device("meta"):
        layers: list[nn.Module] = [ConvBlock(3, STEM_CHANNELS, 3)]
        channels = STEM_CHANNELS
        for n in blocks:
            layers.append(ConvBlock(channels, 2 * channels, 3, stride=2))
            channels *= 2
            layers.extend(ResidualBlock(channels) for _ in range(n))
        layers += [nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, num_classes, 1), nn.Flatten()]
        return nn.Sequential(*layers)


def _count_mistakes(blocks: Sequence[int], num_classes: int) -> dict[tuple[str, int], str]:
    """Wrong answers we have seen, keyed by (what, value), with the name of the mistake."""
    net = reference_darknet(blocks, num_classes)
    layers, params = count_weighted_layers(net), count_parameters(net)
    bn_channels = sum(m.num_features for m in _layers(net, nn.BatchNorm2d))
    final = STEM_CHANNELS * 2 ** len(blocks)  # channels reaching the classifier
    candidates = [
        ("layers", layers - 1, "the classifier is missing: it is a weighted layer (a Linear or a 1x1 conv)"),
        ("layers", layers - sum(blocks), "each residual block has two convs (1x1 then 3x3), not one"),
        ("layers", layers + sum(blocks), "a [shortcut] is an addition, not a weighted layer: don't count it"),
        ("layers", layers - len(blocks), "each stage opens with a stride-2 downsampling conv: count it"),
        ("params", params - final * num_classes - num_classes, "the classifier's parameters are missing"),
        ("params", params - num_classes, "the classifier's bias is missing (it has one: no BatchNorm follows it)"),
        ("params", params - 2 * bn_channels, "BatchNorm's gamma and beta (2 per channel) are missing"),
        ("params", params + 2 * bn_channels, "BN running mean and variance are buffers, not parameters"),
        ("params", params + bn_channels, "a conv followed by BatchNorm has no bias (bias=False)"),
    ]
    known: dict[tuple[str, int], str] = {}
    for what, value, mistake in candidates:
        known.setdefault((what, value), mistake)  # if two mistakes give one number, name the first
    return known


CASES: tuple[tuple[tuple[int, ...], int], ...] = (
    (tuple(n for _, n in DARKNET53_STAGES), 1000),  # Darknet-53 itself: 53 layers, 41,609,928
    ((1, 1, 1, 1, 1), 1000),
    ((2, 2, 2, 2), 10),
    ((1, 2, 8, 8, 4), 80),
)


@checkpoint
def check_darknet_counts(count_function: Callable[..., tuple[int, int]]) -> None:
    """Check ``count_function(blocks, num_classes)`` -> (weighted layers, parameters).

    Each case is compared with a network built from the package's blocks and counted.
    """
    for blocks, num_classes in CASES:
        net = reference_darknet(blocks, num_classes)
        expected = (count_weighted_layers(net), count_parameters(net))
        got = call(count_function, blocks, num_classes)
        expect(
            isinstance(got, (tuple, list)) and len(got) == 2,
            f"expected a tuple of two integers (weighted layers, parameters), got {got!r}",
        )
        for what, value in zip(("weighted layers", "parameters"), got, strict=True):
            expect(not integer_problem(value), f"blocks={blocks}: the {what}: {integer_problem(value)}")
        known = _count_mistakes(blocks, num_classes)
        for what, value, right in (("layers", got[0], expected[0]), ("params", got[1], expected[1])):
            if value != right:
                hint = known.get((what, value))
                case = f"blocks={blocks}, num_classes={num_classes}"
                raise CheckpointError(
                    f"{case}: {hint}" if hint else f"{case}: expected {what} = {right:,}, got {value:,}"
                )
        print(f"blocks={blocks}, classes={num_classes}: {expected[0]} layers, {expected[1]:,} parameters: ok")


# --- Exercise 3: one stage ----------------------------------------------------------------------


def _reference_stage(in_channels: int, channels: int, blocks: int) -> nn.Sequential:
    return nn.Sequential(
        ConvBlock(in_channels, channels, 3, stride=2), *[ResidualBlock(channels) for _ in range(blocks)]
    )


@checkpoint
def check_stage(stage_factory: Callable[[int, int, int], nn.Module]) -> None:
    """Check ``stage_factory(in_channels, channels, blocks)`` against the package's stage: its
    weights copied in by role, the same outputs in eval and train mode, on an even and an odd side."""
    in_channels, channels, blocks = 64, 128, 2  # Darknet-53's second stage
    stage = build(stage_factory, in_channels, channels, blocks)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, in_channels, 16, 16, generator=generator)
    odd = torch.randn(1, in_channels, 15, 15, generator=generator)  # stride 2 with padding 1: 15 -> 8
    reference = randomize(_reference_stage(in_channels, channels, blocks), seed=2)
    found = compare_modules(stage, reference, [(x,), (odd,)])
    if found.problem:
        expect(
            not _layers(stage, nn.MaxPool2d),
            "the stage downsamples with a max-pool: Darknet-53 has none, a 3x3 stride-2 conv halves the size",
        )
        out = found.got
        if isinstance(out, Tensor) and found.x is not None and out.shape[-2:] == found.x[0].shape[-2:]:
            raise CheckpointError(
                f"the stage does not downsample: {tuple(found.x[0].shape)} -> {tuple(out.shape)}; "
                "its first conv needs stride=2"
            )
        convs, expected_convs = len(_layers(stage, nn.Conv2d)), 1 + 2 * blocks
        if convs != expected_convs:
            raise CheckpointError(
                f"expected {expected_convs} convs (one stride-2 ConvBlock and {blocks} residual blocks of two), "
                f"found {convs}: {found.problem}"
            )
        mistakes = describe_conv_block_mistakes(stage, x)
        expect(not mistakes, "; ".join(mistakes))
        raise CheckpointError(found.problem)
    params = sum(p.numel() for p in reference.parameters())
    expect(found.used_parameters == params, f"expected {params:,} parameters, got {found.used_parameters:,}")
    if not isinstance(stage, nn.Sequential):
        note("the exercise asks for an nn.Sequential; yours behaves the same, which is what is graded")
    passed(f"stage {in_channels}->{channels}, {blocks} blocks: (2, 64, 16, 16) -> (2, 128, 8, 8), 15x15 -> 8x8: ok")
    passed(f"{params:,} parameters, the same output as the package's stage\n"
           "  with the same weights (eval and train): ok")
