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

from ..models.blocks import ConvBlock
from ..models.counting import count_multiply_adds
from ..models.darknet19 import DARKNET19_STAGES, darknet19
from .common import (
    CheckpointError,
    build,
    checkpoint,
    compare_modules,
    count_parameters,
    describe_conv_block_mistakes,
    expect,
    layer_kinds,
    note,
    passed,
    pool_positions,
    randomize,
)
from .convblock import diagnose_block

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


# (args, kwargs, input side, output side): stride 2 on an odd side, a 1x1 and a 2x2 kernel
# (Darknet pads 2 // 2 = 1, so 7 -> 8), and the pool on an even and an odd side
# (nn.MaxPool2d(2, 2) floors: 15 -> 7).
_HELPER_CASES = (
    ((3, 16, 3), {}, 32, 32),
    ((3, 16, 3), {"stride": 2}, 15, 8),
    ((3, 16, 1), {}, 32, 32),
    ((4, 8, 2), {}, 7, 8),
    ((3, 16, 3), {"max_pool": True}, 32, 16),
    ((4, 8, 3), {"max_pool": True}, 15, 7),
)


def _reference_block(in_c: int, out_c: int, k: int, stride: int = 1, max_pool: bool = False) -> nn.Module:
    block = ConvBlock(in_c, out_c, k, stride)
    return nn.Sequential(block, nn.MaxPool2d(2, 2)) if max_pool else block


@checkpoint
def check_conv_block_helper(fn: Callable[..., nn.Module]) -> None:
    """Check ``fn(in_channels, out_channels, kernel_size, stride=1, max_pool=False)``: with the
    package's weights copied in, the same outputs as ConvBlock (then MaxPool2d(2, 2)) in eval and train mode."""
    generator = torch.Generator().manual_seed(0)
    for number, (args, kwargs, side, _) in enumerate(_HELPER_CASES):
        block = build(fn, *args, **kwargs)
        reference = randomize(_reference_block(*args, **kwargs), seed=number)
        x = torch.randn(2, args[0], side, side, generator=generator)
        shown = "conv_block(" + ", ".join([*map(str, args), *(f"{k}={v}" for k, v in kwargs.items())]) + ")"
        case = f"{shown} on input {tuple(x.shape)}"
        found = compare_modules(block, reference, [(x,)], label=f" of {case}")
        if not found.problem:
            continue
        expected, got = found.expected, found.got
        if expected is not None and isinstance(got, torch.Tensor) and got.shape != expected.shape:
            kinds = layer_kinds(block)
            hint = ""
            if kwargs.get("max_pool") and "pool" not in kinds:
                hint = "; max_pool=True adds nn.MaxPool2d(2, 2) after the activation"
            elif not kwargs.get("max_pool") and "pool" in kinds:
                hint = "; without max_pool=True there is no pool"
            elif args[2] % 2 == 0 or kwargs.get("stride"):
                hint = f'; "same" padding is kernel_size // 2 = {args[2] // 2} and the stride goes to the conv'
            raise CheckpointError(f"{case}: expected {tuple(expected.shape)}, got {tuple(got.shape)}{hint}")
        raise CheckpointError(f"{shown}: " + diagnose_block(block, reference, x, found.problem, got, found.mode))
    params = compare_modules(build(fn, 3, 16, 3), ConvBlock(3, 16, 3), [(torch.zeros(1, 3, 8, 8),)]).used_parameters
    expect(params == 464, f"conv_block(3, 16, 3): expected 464 parameters (16*3*3*3 + 2*16), got {params:,}")
    passed("the same outputs as ConvBlock (then MaxPool2d(2, 2)) with the same weights,\n"
           "  eval and train mode ... ok")
    passed("stride 2 takes 15 to 8, a 2x2 kernel 7 to 8,\n"
           "  max_pool=True pools after the block (15 -> 7) ... ok")
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


def course_network(num_classes: int = 1000) -> nn.Sequential:
    """The course spec built from the package's ConvBlock: the network ``check_course_spec`` compares with."""
    layers: list[nn.Module] = []
    in_channels = 3
    for i, (filters, k) in enumerate(COURSE_SPEC_CONVS, start=1):
        layers.append(ConvBlock(in_channels, filters, k))
        if i in COURSE_SPEC_POOLS:
            layers.append(nn.MaxPool2d(2, 2))
        in_channels = filters
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(in_channels, num_classes))


def _network_inputs() -> list[tuple[torch.Tensor]]:
    """Two sizes, so a Flatten without global pooling cannot pass (32 -> a 1x1 map, 64 -> 2x2);
    a batch of 2 for train mode."""
    generator = torch.Generator().manual_seed(0)
    return [(torch.randn(2, 3, 32, 32, generator=generator),), (torch.randn(1, 3, 64, 64, generator=generator),)]


def _compare_network(model: nn.Module, reference: nn.Module) -> tuple[str, object, int]:
    found = compare_modules(model, reference, _network_inputs())
    return found.problem, found.got, found.used_parameters


_GAP_HINT = (
    "global average pooling (e.g. nn.AdaptiveAvgPool2d(1), then flatten) gives the classifier "
    "the same number of inputs at any image size"
)


def _layout_problem(model: nn.Module, wanted: tuple[tuple[int, int], ...]) -> str:
    for i, (got, want) in enumerate(zip(_conv_layout(model), wanted, strict=False), start=1):
        if got != want:
            return f"conv {i}: expected {want[0]} filters of {want[1]}x{want[1]}, got {got[0]} of {got[1]}x{got[1]}"
    return ""


def _course_structure_problem(model: nn.Module) -> str:
    """The known mistake in the course network's structure, or '' when none is certain."""
    kinds = layer_kinds(model)
    n_convs, n_linear = kinds.count("conv"), kinds.count("linear")
    if n_linear == 0 and n_convs >= 17:
        return (
            f"found {n_convs} conv layers and no nn.Linear: the spec's classifier is a fully connected "
            "layer after global average pooling, not a convolution"
        )
    if n_convs != 17:
        return f"expected 17 convolutional layers, found {n_convs}"
    pools = pool_positions(model)
    if pools != list(COURSE_SPEC_POOLS):
        return str(_misplaced_pools(pools, COURSE_SPEC_POOLS))
    mistakes = describe_conv_block_mistakes(model, torch.zeros(1, 3, 64, 64))
    if mistakes:
        return "; ".join(mistakes)
    return _layout_problem(model, COURSE_SPEC_CONVS)


@checkpoint
def check_course_spec(builder: Callable[..., nn.Module]) -> None:
    """Check ``builder(num_classes)`` against the course spec (``course_network``): with its
    weights copied in, the same logits in eval and train mode; then compare it with Table 6."""
    model = build(builder, num_classes=1000)
    reference = randomize(course_network(1000), seed=0, scale=None)
    problem, got, params = _compare_network(model, reference)
    if problem:
        named = _course_structure_problem(model)
        linears = [m.in_features for m in model.modules() if isinstance(m, nn.Linear)]
        if not named and linears and linears[-1] != 512:
            named = f"the nn.Linear classifier takes {linears[-1]:,} inputs, expected 512: {_GAP_HINT}"
        elif not named and ("failed" in problem or (isinstance(got, torch.Tensor) and got.shape[-1:] != (1000,))):
            named = f"{problem}; {_GAP_HINT}"
        raise CheckpointError(named or problem)
    if not any(isinstance(m, nn.Linear) for m in model.modules()):
        raise CheckpointError(_course_structure_problem(model) or "the spec's classifier is an nn.Linear")
    small = build(builder, num_classes=10)
    small_reference = randomize(course_network(10), seed=1, scale=None)
    problem = compare_modules(small, small_reference, _network_inputs()[:1], train=False).problem
    expect(not problem, f"num_classes=10: {problem}")
    expected = course_spec_parameters(1000)
    expect(params == expected, f"expected {expected:,} parameters, got {params:,}")
    if count_parameters(model) != params:
        note(f"your network also holds {count_parameters(model) - params:,} parameters that forward never uses")
    passed("the same logits as the course network (17 ConvBlocks with the spec's filters)\n"
           "  with the same weights ... ok")
    print(_pool_report(list(COURSE_SPEC_POOLS), COURSE_SPEC_POOLS))
    passed("global average pooling, then nn.Linear: (N, 1000) logits (32x32, 64x64) ... ok")
    print(f"{params:,} parameters ... ok")
    print()
    print(compare_with_table6(reference))


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


def _table6_structure_problem(model: nn.Module) -> str:
    """The known mistake in a Table 6 network's structure, or '' when none is certain."""
    kinds = layer_kinds(model)
    if "linear" in kinds:
        return (
            "found an nn.Linear: Table 6's classifier is conv 19, a 1x1 conv with 1000 filters, "
            "followed by global average pooling (no fully connected layer)"
        )
    n_convs = kinds.count("conv")
    if n_convs != 19:
        return f"expected 19 convolutional layers (18 ConvBlocks + the 1x1 classifier), found {n_convs}"
    pools = pool_positions(model)
    if pools != list(TABLE6_POOLS):
        return str(_misplaced_pools(pools, TABLE6_POOLS, "Table 6"))
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    if n_bn != 18:
        return (
            f"found {n_bn} BatchNorm layers, expected 18: conv 19 (the classifier) is a plain 1x1 conv with a "
            "bias, no BatchNorm and no activation, because its outputs are the class scores"
        )
    if convs[-1].bias is None:
        return "conv 19 (the classifier) needs a bias: no BatchNorm follows it, so nothing else shifts its outputs"
    mistakes = describe_conv_block_mistakes(model, torch.zeros(1, 3, 64, 64))
    if mistakes:
        return "; ".join(mistakes)
    return _layout_problem(model, TABLE6_CONVS)


@checkpoint
def check_table6_layout(builder: Callable[..., nn.Module]) -> None:
    """Check ``builder(num_classes)`` against Darknet-19 as Table 6 of the YOLOv2 paper lays it out:
    with ``yolo_lessons.darknet19()``'s weights copied in, the same logits in eval and train mode."""
    model = build(builder, num_classes=1000)
    reference = randomize(darknet19(1000), seed=0, scale=None)
    problem, got, params = _compare_network(model, reference)
    if problem:
        named = _table6_structure_problem(model)
        if not named and ("failed" in problem or (isinstance(got, torch.Tensor) and got.shape[-1:] != (1000,))):
            named = f"{problem}; average the classifier's output over all positions (global average pooling)"
        raise CheckpointError(named or problem)
    if any(isinstance(m, nn.Linear) for m in model.modules()):
        raise CheckpointError(_table6_structure_problem(model))
    expect(params == TABLE6_PARAMETERS, f"expected {TABLE6_PARAMETERS:,} parameters, got {params:,}")
    macs = count_multiply_adds(model, (3, 224, 224))
    expect(
        macs == TABLE6_MULTIPLY_ADDS,
        f"expected {TABLE6_MULTIPLY_ADDS:,} multiply-adds at 224, got {macs:,}"
        + ("; Table 6's classifier conv runs on the 7x7 map, then averages" if macs < TABLE6_MULTIPLY_ADDS else ""),
    )
    passed("the same logits as yolo_lessons.darknet19() with the same weights,\n"
           "  eval and train mode ... ok")
    print(_pool_report(list(TABLE6_POOLS), TABLE6_POOLS, "Table 6"))
    print(f"{params:,} parameters, {macs:,} multiply-adds at 224x224 ... ok")
