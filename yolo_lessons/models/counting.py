"""Counting what a network costs: parameters, multiply-adds, and a readable summary."""

from __future__ import annotations

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
    the numbers the book compares with the papers.
    """
    from torchinfo import summary
    from torchinfo.enums import Units

    kwargs.setdefault("col_names", ("output_size", "num_params", "mult_adds"))
    kwargs.setdefault("row_settings", ("var_names",))
    stats = summary(model, input_size=(1, *input_size), device="cpu", depth=depth, verbose=0, **kwargs)
    stats.formatting.params_units = Units.NONE
    stats.formatting.macs_units = Units.NONE
    return stats
