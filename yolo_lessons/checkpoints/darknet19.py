"""Checkpoints of chapter 2, "Darknet-19".

* ``check_conv_block_helper(fn)``: ``conv_block(in, out, k, stride=1, max_pool=False)``.
* ``check_course_spec(builder)``: the network a widely used course exercise specifies
  (17 conv layers, max-pools after layers 1, 2, 5, 8 and 11, global average pooling, a
  fully connected classifier), then compared side by side with the paper's Darknet-19.
* ``check_table6_layout(builder)``: Darknet-19 as the YOLOv2 paper's Table 6 lays it out.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..counting import count_multiply_adds
from ..darknet19 import DARKNET19_STAGES
from .common import (
    CheckpointError,
    build,
    count_parameters,
    describe_conv_block_mistakes,
    expect,
    layer_kinds,
    pool_positions,
    run,
)

# Our reading of the course spec, as (filters, kernel size) per conv. The pools after
# conv 1, 2, 5, 8 and 11 cut the convs into stages of 1, 1, 3, 3, 3 and 17 - 11 = 6;
# every stage follows Table 6's rule: a 3x3 conv at the stage's width (doubling after
# each pool), then 1x1 at half width and 3x3 at full width, alternating.
COURSE_SPEC_CONVS: tuple[tuple[int, int], ...] = (
    (32, 3),
    (64, 3),
    (128, 3),
    (64, 1),
    (128, 3),
    (256, 3),
    (128, 1),
    (256, 3),
    (512, 3),
    (256, 1),
    (512, 3),
    (1024, 3),
    (512, 1),
    (1024, 3),
    (512, 1),
    (1024, 3),
    (512, 1),
)
COURSE_SPEC_POOLS = (1, 2, 5, 8, 11)
TABLE6_POOLS = (1, 2, 5, 8, 13)
TABLE6_CONVS = tuple(conv for stage in DARKNET19_STAGES for conv in stage) + ((1000, 1),)
TABLE6_PARAMETERS = 20_842_376  # darknet19() with 1000 classes (tests/test_checkpoints_darknet19.py)
TABLE6_MULTIPLY_ADDS = 2_790_989_824  # at 224x224; x2 = the paper's "5.58 billion operations"


def course_spec_parameters(num_classes: int = 1000) -> int:
    """Parameters of the course network: bias-free convs, BatchNorm's gamma and beta, the FC layer."""
    total, in_channels = 0, 3
    for out_channels, k in COURSE_SPEC_CONVS:
        total += out_channels * in_channels * k * k + 2 * out_channels
        in_channels = out_channels
    return total + in_channels * num_classes + num_classes


def check_conv_block_helper(fn: Callable[..., nn.Module]) -> None:
    """Check ``fn(in_channels, out_channels, kernel_size, stride=1, max_pool=False)``."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    block = build(fn, 3, 16, 3)
    mistakes = describe_conv_block_mistakes(block, x)
    if mistakes:
        raise CheckpointError("; ".join(mistakes))
    cases = (
        ((3, 16, 3), {}, (2, 16, 32, 32), ["conv"]),
        ((3, 16, 3), {"stride": 2}, (2, 16, 16, 16), ["conv"]),
        ((3, 16, 1), {}, (2, 16, 32, 32), ["conv"]),
        ((3, 16, 3), {"max_pool": True}, (2, 16, 16, 16), ["conv", "pool"]),
    )
    for args, kwargs, shape, kinds in cases:
        block = build(fn, *args, **kwargs)
        call = "conv_block(" + ", ".join([*map(str, args), *(f"{k}={v}" for k, v in kwargs.items())]) + ")"
        got_kinds = layer_kinds(block)
        if got_kinds == ["pool", "conv"]:
            raise CheckpointError(f"{call}: the max-pool comes after the conv, BatchNorm and LeakyReLU, not before")
        expect(got_kinds == kinds, f"{call}: expected the layers {kinds}, got {got_kinds}")
        y = run(block, x)
        expect(tuple(y.shape) == shape, f"{call} on input {tuple(x.shape)}: expected {shape}, got {tuple(y.shape)}")
    params = count_parameters(build(fn, 3, 16, 3))
    expect(params == 464, f"conv_block(3, 16, 3): expected 464 parameters (16*3*3*3 + 2*16), got {params:,}")
    print("conv -> BatchNorm -> LeakyReLU(0.1), no conv bias ... ok")
    print("stride 1 keeps 32x32, stride 2 gives 16x16, max_pool=True pools after the block ... ok")
    print("conv_block(3, 16, 3) has 464 parameters ... ok")


def _misplaced_pools(got: list[int], wanted: tuple[int, ...], source: str = "spec") -> CheckpointError:
    """The error for misplaced pools: a first line that says which, then one line per pool."""
    first = (
        f"a max-pool is in the wrong place: yours follow convs {', '.join(map(str, got)) or 'none'}, "
        f"the {source} puts them after convs {', '.join(map(str, wanted))}"
    )
    return CheckpointError(first + "\n" + _pool_report(got, wanted, source))


def _pool_report(got: list[int], wanted: tuple[int, ...], source: str = "spec") -> str:
    lines = []
    for i in range(max(len(got), len(wanted))):
        g = f"conv {got[i]}" if i < len(got) else "nothing (missing)"
        w = f"conv {wanted[i]}" if i < len(wanted) else "no pool (extra)"
        mark = "ok" if i < len(got) and i < len(wanted) and got[i] == wanted[i] else "WRONG"
        lines.append(f"pool {i + 1} follows {g}, {source}: after {w} ... {mark}")
    return "\n".join(lines)


def _conv_layout(model: nn.Module) -> list[tuple[int, int]]:
    return [(m.out_channels, m.kernel_size[0]) for m in model.modules() if isinstance(m, nn.Conv2d)]


def check_course_spec(builder: Callable[..., nn.Module]) -> None:
    """Check ``builder(num_classes)`` against the course spec, then compare it with Table 6."""
    torch.manual_seed(0)
    model = build(builder, num_classes=1000)
    kinds = layer_kinds(model)
    n_convs, n_linear = kinds.count("conv"), kinds.count("linear")
    if n_linear == 0 and n_convs >= 17:
        raise CheckpointError(
            f"found {n_convs} conv layers and no nn.Linear: the spec's classifier is a fully connected "
            "layer after global average pooling, not a convolution"
        )
    expect(n_convs == 17, f"expected 17 convolutional layers, found {n_convs}")
    expect(n_linear == 1 and kinds[-1] == "linear", f"expected one nn.Linear at the end, found layers {kinds}")
    pools = pool_positions(model)
    if pools != list(COURSE_SPEC_POOLS):
        raise _misplaced_pools(pools, COURSE_SPEC_POOLS)
    x = torch.randn(1, 3, 64, 64)
    mistakes = describe_conv_block_mistakes(model, x)
    if mistakes:
        raise CheckpointError("; ".join(mistakes))
    layout = _conv_layout(model)
    for i, (got, want) in enumerate(zip(layout, COURSE_SPEC_CONVS, strict=True), start=1):
        expect(
            got == want,
            f"conv {i}: expected {want[0]} filters of {want[1]}x{want[1]}, got {got[0]} of {got[1]}x{got[1]}",
        )
    gap_hint = (
        "global average pooling (e.g. nn.AdaptiveAvgPool2d(1), then flatten) gives the FC layer "
        "512 inputs at any image size"
    )
    for side in (64, 96):
        try:
            y = run(model, torch.randn(1, 3, side, side))
        except CheckpointError as exc:
            raise CheckpointError(f"{exc}; {gap_hint}") from None
        expect(
            tuple(y.shape) == (1, 1000),
            f"input (1, 3, {side}, {side}): expected logits (1, 1000), got {tuple(y.shape)}; {gap_hint}",
        )
    small = build(builder, num_classes=10)
    y = run(small, x)
    expect(tuple(y.shape) == (1, 10), f"num_classes=10: expected logits (1, 10), got {tuple(y.shape)}")
    params, expected = count_parameters(model), course_spec_parameters(1000)
    expect(params == expected, f"expected {expected:,} parameters, got {params:,}")
    print("17 ConvBlocks (bias-free conv, BatchNorm, LeakyReLU(0.1)) with the spec's filters ... ok")
    print(_pool_report(pools, COURSE_SPEC_POOLS))
    print("global average pooling, then nn.Linear: (1, 1000) logits at 64x64 and 96x96 ... ok")
    print(f"{params:,} parameters ... ok")
    print()
    print(compare_with_table6(model))


def compare_with_table6(model: nn.Module) -> str:
    """A side-by-side table of ``model`` and the paper's Darknet-19 (1000 classes, 224x224).

    The paper's column comes from Table 6 (``TABLE6_*`` above, pinned by the tests against
    ``yolo_lessons.darknet19()``), so only ``model`` is built and run here.
    """
    kinds = layer_kinds(model)
    rows = [
        ("", "this network", "Darknet-19 (Table 6)"),
        ("conv layers", str(kinds.count("conv")), str(len(TABLE6_CONVS))),
        ("fully connected layers", str(kinds.count("linear")), "0"),
        ("weighted layers", str(kinds.count("conv") + kinds.count("linear")), str(len(TABLE6_CONVS))),
        ("max-pools after conv", ", ".join(map(str, pool_positions(model))), ", ".join(map(str, TABLE6_POOLS))),
        ("parameters", f"{count_parameters(model):,}", f"{TABLE6_PARAMETERS:,}"),
        (
            "multiply-adds at 224",
            f"{count_multiply_adds(model, (3, 224, 224)):,}",
            f"{TABLE6_MULTIPLY_ADDS:,}",
        ),
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join(f"{row[0]:<{widths[0]}}  {row[1]:>{widths[1]}}  {row[2]:>{widths[2]}}".rstrip() for row in rows)


def check_table6_layout(builder: Callable[..., nn.Module]) -> None:
    """Check ``builder(num_classes)`` against Darknet-19 as Table 6 of the YOLOv2 paper lays it out."""
    torch.manual_seed(0)
    model = build(builder, num_classes=1000)
    kinds = layer_kinds(model)
    if "linear" in kinds:
        raise CheckpointError(
            "found an nn.Linear: Table 6's classifier is conv 19, a 1x1 conv with 1000 filters, "
            "followed by global average pooling (no fully connected layer)"
        )
    n_convs = kinds.count("conv")
    expect(n_convs == 19, f"expected 19 convolutional layers (18 ConvBlocks + the 1x1 classifier), found {n_convs}")
    pools = pool_positions(model)
    if pools != list(TABLE6_POOLS):
        raise _misplaced_pools(pools, TABLE6_POOLS, "Table 6")
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    expect(
        n_bn == 18,
        f"found {n_bn} BatchNorm layers, expected 18: conv 19 (the classifier) is a plain 1x1 conv with a "
        "bias, no BatchNorm and no activation, because its outputs are the class scores",
    )
    expect(
        convs[-1].bias is not None,
        "conv 19 (the classifier) needs a bias: no BatchNorm follows it, so nothing else shifts its outputs",
    )
    x = torch.randn(1, 3, 64, 64)
    mistakes = describe_conv_block_mistakes(model, x)
    if mistakes:
        raise CheckpointError("; ".join(mistakes))
    for i, (got, want) in enumerate(zip(_conv_layout(model), TABLE6_CONVS, strict=True), start=1):
        expect(
            got == want,
            f"conv {i}: expected {want[0]} filters of {want[1]}x{want[1]}, got {got[0]} of {got[1]}x{got[1]}",
        )
    for side in (64, 96):
        y = run(model, torch.randn(1, 3, side, side))
        expect(
            tuple(y.shape) == (1, 1000),
            f"input (1, 3, {side}, {side}): expected logits (1, 1000), got {tuple(y.shape)}; "
            "average the classifier's output over all positions (global average pooling)",
        )
    params = count_parameters(model)
    expect(params == TABLE6_PARAMETERS, f"expected {TABLE6_PARAMETERS:,} parameters, got {params:,}")
    macs = count_multiply_adds(model, (3, 224, 224))
    expect(macs == TABLE6_MULTIPLY_ADDS, f"expected {TABLE6_MULTIPLY_ADDS:,} multiply-adds at 224, got {macs:,}")
    print("19 convs: 18 ConvBlocks with Table 6's filters, then a 1x1 classifier conv with bias ... ok")
    print(_pool_report(pools, TABLE6_POOLS, "Table 6"))
    print(f"{params:,} parameters, {macs:,} multiply-adds at 224x224 ... ok")
