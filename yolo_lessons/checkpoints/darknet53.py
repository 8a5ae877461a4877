"""Checkpoints of chapter 5, "Darknet-53".

* ``check_residual_block``: a residual block built from plain PyTorch layers, compared
  with ``yolo_lessons.ResidualBlock`` after copying the package's weights into it.
* ``check_darknet_counts``: weighted layers and parameters of a Darknet-53-like network
  with any stage depths, compared with networks actually built and counted.
* ``check_stage``: one downsampling stage (stride-2 conv + residual blocks), compared
  with the package's stage layer by layer.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from ..blocks import LEAKY_SLOPE, ConvBlock, ResidualBlock
from ..counting import count_parameters, count_weighted_layers
from ..darknet53 import DARKNET53_STAGES, STEM_CHANNELS
from .common import CheckpointError, build, call, describe_conv_block_mistakes, expect, run

TOLERANCE = 1e-5  # the learner may add in another order; float sums may differ in the last bit


def _randomize(module: nn.Module, seed: int) -> nn.Module:
    """Give every parameter and BatchNorm statistic a random value, so BN is not the identity."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
            if name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)  # variances are positive
            elif tensor.is_floating_point():
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.2)
    return module.eval()


def _layers(module: nn.Module, kind: type) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, kind)]


def _copy_by_layer_kind(source: nn.Module, target: nn.Module) -> None:
    """Copy convs and BatchNorms in definition order, whatever the learner named them."""
    for kind in (nn.Conv2d, nn.BatchNorm2d):
        theirs, ours = _layers(target, kind), _layers(source, kind)
        expect(
            len(theirs) == len(ours),
            f"expected {len(ours)} {kind.__name__} layers (one per conv of the block), found {len(theirs)}",
        )
        for mine, reference in zip(theirs, ours, strict=True):
            mine.load_state_dict(reference.state_dict())


def _describe_tensor(t: Tensor) -> str:
    return f"shape {tuple(t.shape)}, first values {[round(v, 4) for v in t.flatten()[:3].tolist()]}"


# --- Exercise 1: the residual block -------------------------------------------------------------


def check_residual_block(block_class: Callable[[int], nn.Module], channels: int = 64) -> None:
    """Check a residual block ``block_class(channels)`` against ``yolo_lessons.ResidualBlock``.

    Names the known mistakes: no residual addition, an activation after the addition,
    the 1x1 and 3x3 kernels swapped, and the ConvBlock mistakes (BatchNorm missing or
    unused, conv bias before BatchNorm, PyTorch's default LeakyReLU slope).
    """
    block = build(block_class, channels)
    x = torch.randn(1, channels, 8, 8, generator=torch.Generator().manual_seed(0))

    mistakes = describe_conv_block_mistakes(block, x)
    expect(not mistakes, "; ".join(mistakes))
    kernels = [tuple(c.kernel_size) for c in _layers(block, nn.Conv2d)]
    expect(
        kernels != [(3, 3), (1, 1)],
        "the kernel sizes are swapped: the 1x1 conv comes first (it halves the channels), "
        "the 3x3 conv second (it restores them)",
    )
    reference = _randomize(ResidualBlock(channels), seed=1)
    expected_params, got_params = count_parameters(reference), count_parameters(block)
    expect(
        got_params == expected_params,
        f"expected {expected_params:,} parameters for channels={channels} "
        f"(1x1 conv {channels}->{channels // 2}, 3x3 conv {channels // 2}->{channels}, "
        f"each with BatchNorm), got {got_params:,}",
    )
    _copy_by_layer_kind(reference, block)

    got = run(block, x)
    with torch.no_grad():
        expected = reference(x)
        without_skip = reference.expand(reference.reduce(x))
    expect(
        isinstance(got, Tensor) and got.shape == expected.shape,
        f"expected an output of shape {tuple(expected.shape)} (same as the input), "
        f"got {tuple(got.shape) if isinstance(got, Tensor) else type(got).__name__}",
    )
    if torch.allclose(got, without_skip, atol=TOLERANCE):
        raise CheckpointError(
            "missing residual addition: the output equals expand(reduce(x)); "
            "return x + expand(reduce(x)) (the cfg's [shortcut] from=-3)"
        )
    if torch.allclose(got, nn.functional.leaky_relu(expected, LEAKY_SLOPE), atol=TOLERANCE):
        raise CheckpointError(
            "activation after the addition: Darknet's [shortcut] has activation=linear, "
            "so return the plain sum x + expand(reduce(x))"
        )
    expect(
        torch.allclose(got, expected, atol=TOLERANCE),
        f"with the package's weights loaded, expected {_describe_tensor(expected)}; got {_describe_tensor(got)}",
    )
    keys_match = [k for k in block.state_dict()] == [k for k in reference.state_dict()]
    print(f"residual block ({channels} channels): {got_params:,} parameters, kernels {kernels}: ok")
    print("same output as yolo_lessons.ResidualBlock with the same weights: ok")
    print(f"state_dict keys match the package's: {'yes' if keys_match else 'no (fine for this exercise)'}")


# --- Exercise 2: counting a Darknet with any stage depths ---------------------------------------


def reference_darknet(blocks: Sequence[int], num_classes: int = 1000) -> nn.Sequential:
    """A Darknet-53-like network with ``blocks[i]`` residual blocks in stage i.

    Stem 3x3 conv (32 channels), then per stage a 3x3 stride-2 conv doubling the channels
    and the residual blocks, then global average pooling and a Linear classifier. Built on
    the ``meta`` device: it has shapes but no memory, so counting it is instant.
    """
    with torch.device("meta"):
        layers: list[nn.Module] = [ConvBlock(3, STEM_CHANNELS, 3)]
        channels = STEM_CHANNELS
        for n in blocks:
            layers.append(ConvBlock(channels, 2 * channels, 3, stride=2))
            channels *= 2
            layers.extend(ResidualBlock(channels) for _ in range(n))
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes)]
        return nn.Sequential(*layers)


def _count_mistakes(blocks: Sequence[int], num_classes: int) -> dict[tuple[str, int], str]:
    """Wrong answers we have seen, keyed by (what, value), with the name of the mistake."""
    net = reference_darknet(blocks, num_classes)
    layers, params = count_weighted_layers(net), count_parameters(net)
    bn_channels = sum(m.num_features for m in _layers(net, nn.BatchNorm2d))
    final = STEM_CHANNELS * 2 ** len(blocks)  # channels reaching the classifier
    candidates = [
        ("layers", layers - 1, "the classifier is missing: the Linear layer counts as a weighted layer"),
        ("layers", layers - sum(blocks), "each residual block has two convs (1x1 then 3x3), not one"),
        ("layers", layers + sum(blocks), "a [shortcut] is an addition, not a weighted layer: don't count it"),
        ("layers", layers - len(blocks), "each stage opens with a stride-2 downsampling conv: count it"),
        ("params", params - final * num_classes - num_classes, "the classifier's parameters are missing"),
        ("params", params - num_classes, "the classifier's bias is missing (the Linear has one)"),
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


def check_darknet_counts(count_function: Callable[..., tuple[int, int]]) -> None:
    """Check ``count_function(blocks, num_classes)`` -> (weighted layers, parameters).

    Each case is compared with a network built from the package's blocks and counted.
    """
    for blocks, num_classes in CASES:
        net = reference_darknet(blocks, num_classes)
        expected = (count_weighted_layers(net), count_parameters(net))
        got = call(count_function, blocks, num_classes)
        expect(
            isinstance(got, tuple) and len(got) == 2 and all(isinstance(v, numbers.Integral) for v in got),
            f"expected a tuple of two integers (weighted layers, parameters), got {got!r}",
        )
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


def check_stage(stage_factory: Callable[[int, int, int], nn.Module]) -> None:
    """Check ``stage_factory(in_channels, channels, blocks)`` against the package's stage."""
    in_channels, channels, blocks = 64, 128, 2  # Darknet-53's second stage
    stage = build(stage_factory, in_channels, channels, blocks)
    x = torch.randn(1, in_channels, 16, 16, generator=torch.Generator().manual_seed(0))
    expect(
        not _layers(stage, nn.MaxPool2d),
        "the stage downsamples with a max-pool: Darknet-53 has none, a 3x3 stride-2 conv halves the size",
    )
    reference = _randomize(_reference_stage(in_channels, channels, blocks), seed=2)
    out = run(stage, x)
    expect(isinstance(out, Tensor), f"expected the stage to return a tensor, got {type(out).__name__}")
    if out.shape[-2:] == x.shape[-2:]:
        raise CheckpointError(
            f"the stage does not downsample: {tuple(x.shape)} -> {tuple(out.shape)}; its first conv needs stride=2"
        )
    expect(
        out.shape == (1, channels, 8, 8),
        f"expected {tuple(x.shape)} -> (1, {channels}, 8, 8), got {tuple(out.shape)}",
    )
    convs, expected_convs = len(_layers(stage, nn.Conv2d)), 1 + 2 * blocks
    expect(
        count_parameters(stage) == count_parameters(reference),
        f"expected {count_parameters(reference):,} parameters (one stride-2 ConvBlock and {blocks} "
        f"residual blocks: {expected_convs} convs), got {count_parameters(stage):,} ({convs} convs)",
    )
    mine = [(k, tuple(v.shape)) for k, v in stage.state_dict().items()]
    ours = [(k, tuple(v.shape)) for k, v in reference.state_dict().items()]
    expect(
        mine == ours,
        "state_dict keys differ from the package's stage: build an nn.Sequential of "
        f"ConvBlock and ResidualBlock; expected keys start {[k for k, _ in ours[:2]]}, "
        f"got {[k for k, _ in mine[:2]]}",
    )
    stage.load_state_dict(reference.state_dict())
    expect(
        torch.equal(run(stage, x), run(reference, x)),
        "same weights as the package's stage, but a different output: check the order of the layers",
    )
    print(f"stage {in_channels}->{channels} with {blocks} blocks: {tuple(x.shape)} -> {tuple(out.shape)}: ok")
    print(f"{count_parameters(stage):,} parameters, state_dict keys and output match the package's: ok")
