"""Diagnostics shared by the checkpoint checks: each finds one known kind of mistake."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor, nn


class CheckpointError(AssertionError):
    """A checkpoint failed; the message says what was expected and what came."""


def expect(condition: bool, message: str) -> None:
    """Raise ``CheckpointError(message)`` unless ``condition`` holds."""
    if not condition:
        raise CheckpointError(message)


def call(fn: Callable, *args, **kwargs):
    """Call the learner's function, turning a stub's NotImplementedError into a readable failure."""
    try:
        return fn(*args, **kwargs)
    except NotImplementedError as exc:
        raise CheckpointError(f"not implemented yet: {exc}") from None


def build(factory: Callable[..., nn.Module], *args, **kwargs) -> nn.Module:
    """Call the learner's constructor and check that it made an nn.Module."""
    module = call(factory, *args, **kwargs)
    expect(isinstance(module, nn.Module), f"expected an nn.Module, got {type(module).__name__}")
    return module


def run(module: nn.Module, x: Tensor):
    """Run ``module`` on ``x`` in eval mode without gradients, reporting errors readably."""
    module.eval()
    try:
        with torch.no_grad():
            return module(x)
    except NotImplementedError as exc:
        raise CheckpointError(f"not implemented yet: {exc}") from None
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise CheckpointError(f"the forward pass on input {tuple(x.shape)} failed: {first}") from None


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def unused_modules(module: nn.Module, x: Tensor) -> list[str]:
    """Names of leaf modules that hold parameters but never run during ``module(x)``."""
    called: set[str] = set()
    names = {m: name for name, m in module.named_modules()}
    leaves = [m for m in module.modules() if not list(m.children()) and list(m.parameters(recurse=False))]
    handles = [m.register_forward_hook(lambda m, i, o: called.add(names[m])) for m in leaves]
    try:
        run(module, x)
    finally:
        for h in handles:
            h.remove()
    return [names[m] for m in leaves if names[m] not in called]


def convs_with_bias_before_batchnorm(module: nn.Module) -> list[str]:
    """Names of biased convolutions directly followed (in definition order) by a BatchNorm."""
    layers = [(n, m) for n, m in module.named_modules() if not list(m.children())]
    return [
        name
        for (name, layer), (_, following) in zip(layers, layers[1:], strict=False)
        if isinstance(layer, nn.Conv2d) and layer.bias is not None and isinstance(following, nn.BatchNorm2d)
    ]


def leaky_slopes(module: nn.Module) -> set[float]:
    """The negative slopes of every LeakyReLU in ``module``."""
    return {m.negative_slope for m in module.modules() if isinstance(m, nn.LeakyReLU)}


def layer_kinds(module: nn.Module, kinds: Iterable[type] = (nn.Conv2d, nn.MaxPool2d, nn.Linear)) -> list[str]:
    """The sequence of conv / pool / linear layers in definition order, as short names."""
    short = {nn.Conv2d: "conv", nn.MaxPool2d: "pool", nn.Linear: "linear"}
    kinds = tuple(kinds)
    return [short.get(type(m), type(m).__name__) for m in module.modules() if isinstance(m, kinds)]


def pool_positions(module: nn.Module) -> list[int]:
    """After which weighted layer (1-based) each max-pool comes, in definition order."""
    positions, convs = [], 0
    for kind in layer_kinds(module):
        if kind == "pool":
            positions.append(convs)
        else:
            convs += 1
    return positions


def describe_conv_block_mistakes(module: nn.Module, x: Tensor) -> list[str]:
    """Known ConvBlock mistakes found in ``module``: unused or missing BatchNorm, a conv
    bias before BatchNorm, and PyTorch's default LeakyReLU slope instead of Darknet's."""
    found = []
    bns = [n for n, m in module.named_modules() if isinstance(m, nn.BatchNorm2d)]
    unused = unused_modules(module, x)
    unused_bn = [n for n in unused if n in bns]
    if not bns:
        found.append("BatchNorm is missing: every Darknet conv here is followed by BatchNorm2d")
    elif unused_bn:
        found.append(
            f"BatchNorm is built but never used in forward ({', '.join(unused_bn)}): "
            "call it between the conv and the activation"
        )
    biased = convs_with_bias_before_batchnorm(module)
    if biased:
        found.append(
            f"conv bias before BatchNorm ({', '.join(biased)}): BatchNorm subtracts the mean, "
            "so the bias is cancelled; use bias=False"
        )
    slopes = leaky_slopes(module)
    if 0.01 in slopes:
        found.append("LeakyReLU slope is 0.01 (PyTorch's default); Darknet's leaky uses 0.1")
    elif slopes and slopes != {0.1}:
        found.append(f"LeakyReLU slope is {sorted(slopes)}; Darknet's leaky uses 0.1")
    return found
