"""BatchNorm folded into the convolution before it: the same function with one layer less.

In eval mode a BatchNorm is an affine map per channel with frozen numbers,

    bn(z) = gamma * (z - mean) / sqrt(var + eps) + beta,

and the convolution before it is linear, ``z = w * x + b`` (``b = 0`` for the book's bias-free
ConvBlocks). Their composition is one convolution with

    w' = w * s,   b' = beta + (b - mean) * s,   s = gamma / sqrt(var + eps)  (per output channel),

which is what ``fold_batchnorm`` writes. Darknet does the same before it runs a network on
some back-ends (``fuse_conv_batchnorm`` in AlexeyAB's fork); in PyTorch it removes a pass over
every feature map. The result equals the original in eval mode up to float rounding (tests:
1e-5 relative on every builder); in training mode it does not, since BatchNorm would then use
the batch's statistics, so a folded model is for inference only.

The pairs it folds: a module's ``conv`` and ``bn`` (``ConvBlock``, the cfg networks' layers),
``convN`` and ``bnN`` (ResNet's bottlenecks and stem), and a ``Conv2d`` directly followed by a
``BatchNorm2d`` in an ``nn.Sequential`` (ResNet's downsample). Nothing else changes: the module
tree, names and outputs stay as they were, BatchNorms become ``nn.Identity``.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def folded_conv(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A biased ``nn.Conv2d`` equal to ``bn(conv(x))`` in eval mode."""
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                      conv.dilation, conv.groups, bias=True, padding_mode=conv.padding_mode)  # fmt: skip
    with torch.no_grad():
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # (out,)
        fused.weight.copy_(conv.weight * scale[:, None, None, None])
        bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        fused.bias.copy_(bn.bias + (bias - bn.running_mean) * scale)
    return fused.to(conv.weight.device)


def _pairs(module: nn.Module) -> list[tuple[str, str]]:
    """Names of (conv, bn) children of ``module`` that run one after the other."""
    children = dict(module.named_children())
    found = []
    for name, child in children.items():
        if not isinstance(child, nn.Conv2d):
            continue
        partner = "bn" if name == "conv" else "bn" + name[4:] if name.startswith("conv") else None
        if partner and isinstance(children.get(partner), nn.BatchNorm2d):
            found.append((name, partner))
    if isinstance(module, nn.Sequential):
        names = list(children)
        for a, b in zip(names, names[1:], strict=False):
            if isinstance(children[a], nn.Conv2d) and isinstance(children[b], nn.BatchNorm2d) and (a, b) not in found:
                found.append((a, b))  # (a stem named conv1, bn1 inside a Sequential is found once)
    return found


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in eval mode with every BatchNorm folded into its convolution.

    ``model`` itself is left untouched. The copy's BatchNorms are ``nn.Identity``; its
    convolutions carry the folded weights and a bias.
    """
    folded = copy.deepcopy(model).eval()
    for module in list(folded.modules()):
        for conv_name, bn_name in _pairs(module):
            conv, bn = getattr(module, conv_name), getattr(module, bn_name)
            if bn.running_var is None or not bn.affine:
                raise ValueError(f"{type(module).__name__}.{bn_name}: a BatchNorm without running statistics "
                                 "or affine parameters cannot be folded")  # fmt: skip
            setattr(module, conv_name, folded_conv(conv, bn))
            setattr(module, bn_name, nn.Identity())
    return folded


def count_batchnorms(model: nn.Module) -> int:
    return sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
