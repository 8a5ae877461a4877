"""Counting what a network costs: parameters, multiply-adds, and a readable summary."""

from __future__ import annotations

import functools

import torch
from torch import nn


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of parameters (BatchNorm running statistics are buffers, not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_bn_statistics(model: nn.Module) -> int:
    """Number of BatchNorm running-mean and running-variance entries."""
    return sum(
        m.running_mean.numel() + m.running_var.numel()
        for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None
    )


def count_weighted_layers(model: nn.Module) -> int:
    """Number of convolution and fully connected layers (the layers papers count)."""
    return sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in model.modules())


def count_multiply_adds(model: nn.Module, input_size: tuple[int, ...]) -> int:
    """Multiply-adds of every Conv2d and Linear for one forward pass of one image.

    A k x k conv producing an (out, H, W) map does out*H*W * (in/groups)*k*k of them;
    a Linear does in*out. Papers that quote "operations" count 2 per multiply-add.
    """
    total = 0

    def hook(module: nn.Module, inputs, output) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            per_output = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
            total += output[0].numel() * per_output
        else:
            total += module.in_features * module.out_features * (output[0].numel() // module.out_features)

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    modes = {m: m.training for m in model.modules()}  # restored one by one: a frozen part stays in eval
    try:
        model.eval()
        with torch.inference_mode():
            model(torch.zeros(1, *input_size))
    finally:
        for module, training in modes.items():
            module.training = training
        for h in handles:
            h.remove()
    return total


def model_summary(model: nn.Module, input_size: tuple[int, ...], depth: int = 2, **kwargs):
    """torchinfo's summary for one image on the CPU, with exact counts instead of units.

    torchinfo 1.8.0 labels its totals with an enum that newer Pythons print as
    ``Units.GIGABYTES``; asking for no units prints the exact integers, which are also
    the numbers the book compares with the papers. The table is printed with each column
    as wide as its widest entry (torchinfo gives every column 25 characters and the names
    at least 40, about 120 in all, wider than the book's column and a notebook's cell).
    """
    from torchinfo import summary
    from torchinfo.enums import Units

    kwargs.setdefault("col_names", ("output_size", "num_params", "mult_adds"))
    kwargs.setdefault("row_settings", ("var_names",))
    stats = summary(model, input_size=(1, *input_size), device="cpu", depth=depth, verbose=0, **kwargs)
    stats.formatting.params_units = Units.NONE
    stats.formatting.macs_units = Units.NONE
    stats.__class__ = _compact_summary_class()
    return stats


def _compact_table(text: str, name_width: int, col_width: int, columns: int) -> str:
    """torchinfo's fixed-width table re-spaced: each column as wide as its widest entry, plus 2."""
    lines = text.split("\n")
    dividers = [i for i, line in enumerate(lines) if line and set(line) == {"="}]
    if len(dividers) < 3:
        return text
    starts = [0] + [name_width + 1 + (col_width + 1) * k for k in range(columns)]
    ends = [*starts[1:], None]
    cells = {
        i: [lines[i][a:b].rstrip() for a, b in zip(starts, ends, strict=True)]
        for i in range(dividers[0] + 1, dividers[2])
        if i not in dividers
    }
    widths = [max(len(row[k]) for row in cells.values()) for k in range(len(starts))]
    for i, row in cells.items():
        lines[i] = "".join(f"{cell:<{w + 2}}" for cell, w in zip(row, widths, strict=True)).rstrip()
    total = sum(widths) + 2 * (len(widths) - 1)
    return "\n".join("=" * total if i in dividers else line for i, line in enumerate(lines))


@functools.cache
def _compact_summary_class():
    from torchinfo.model_statistics import ModelStatistics

    class CompactSummary(ModelStatistics):
        """torchinfo's ``ModelStatistics``, printed with columns no wider than their entries."""

        def __repr__(self) -> str:
            f = self.formatting
            return _compact_table(super().__repr__(), f.layer_name_width, f.col_width, len(tuple(f.col_names)))

    return CompactSummary
