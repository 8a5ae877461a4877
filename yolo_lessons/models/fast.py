"""A model made ready for fast CPU inference, each step proved not to change its outputs.

``fast(model)`` returns a new model of the same class (so ``detection.inference.detect`` and
the decoders still know its head), the original left untouched, after these steps:

1. ``eval()``: BatchNorm uses its running statistics instead of the batch's, so one image gives
   the same output alone or in a batch. Without it, inference is simply wrong, not slow.
2. ``fold_batchnorm`` (``models.folding``): each BatchNorm becomes part of the convolution
   before it, ``w' = w * s``, ``b' = beta - mean * s``. One pass over every feature map less
   (one a ConvBlock): outputs equal within float rounding (1e-5 relative).
3. ``requires_grad_(False)``: no parameter asks for a gradient, so autograd records nothing
   even outside ``torch.inference_mode()``; under it (what ``benchmarks/inference_speed.py``
   measures) this changes nothing, which is the point: the model is fast wherever it is called.
4. channels-last (``channels_last``, on by default): weights and activations stored (N, H, W, C),
   a layout oneDNN's convolutions work in without reordering each input and output into their
   blocked one; the input is converted on the way in and the outputs given back in the usual
   (N, C, H, W) layout (``.contiguous()``), since the decoders ``view`` them. In interleaved runs
   on the book's 2-core machine (``benchmarks/inference_speed.py``) it was faster on all three
   models the benchmark measures, most on the book's small one; pass ``channels_last=False``
   where your own measurement says otherwise.
5. ``torch.compile`` (``compile=True``): TorchInductor traces ``forward`` and generates C++ for
   the CPU; with ``freezing`` the weights become constants, which lets it reorder them into
   oneDNN's own blocked layout once instead of at every call and fuse each convolution with
   the LeakyReLU after it (``mkldnn._convolution_pointwise``). The first call compiles (tens
   of seconds on 2 cores, and again for a new input shape); later calls are the fast ones.
   The copy keeps its class: its ``forward`` is replaced by the compiled one.

   Freezing is decided when Dynamo traces, from the *global* ``torch._inductor.config.freezing``
   and only with gradients off: passed as ``torch.compile(options={"freezing": True})`` it
   reaches Inductor too late and the weights stay inputs, re-packed at every call (torch 2.13;
   ``tests/test_fast.py`` checks it happens). So the compiled forward runs every call under
   ``config.patch(freezing=...)`` and ``torch.no_grad()``, which turns it on for the traces
   this model makes and for nothing else in the process. ``cpp_wrapper`` (on by default) has
   Inductor write the code that calls the kernels in C++ too, instead of Python: about 100 calls
   a YOLOv3 forward, 4-5 % of its time in three interleaved runs on the book's 2-core machine
   (a few seconds more at the first call).

What ``fast`` does not do: the thread count (``torch.set_num_threads``) is the process's, not
the model's, so it is left to the caller; the benchmark shows what two threads buy over one.
"""

from __future__ import annotations

import torch
from torch import nn

from .folding import fold_batchnorm

# Whether fast() stores activations channels-last unless told: faster on the book's small model,
# Darknet-53 @256 and YOLOv3 @416 in benchmarks/inference_speed.py's interleaved runs (2-core machine).
CHANNELS_LAST_DEFAULT = True


def _to_channels_last(module: nn.Module, args: tuple) -> tuple:
    """Forward pre-hook: the input batch, channels-last."""
    return tuple(a.contiguous(memory_format=torch.channels_last) if _is_image_batch(a) else a for a in args)


def _to_contiguous(module: nn.Module, args: tuple, output):
    """Forward hook: the outputs back in the usual (N, C, H, W) layout the decoders ``view``."""
    if isinstance(output, torch.Tensor):
        return output.contiguous()
    if isinstance(output, (tuple, list)):
        return type(output)(o.contiguous() if isinstance(o, torch.Tensor) else o for o in output)
    return output


def _is_image_batch(x) -> bool:
    return isinstance(x, torch.Tensor) and x.dim() == 4 and x.is_floating_point()


def fast(
    model: nn.Module,
    *,
    channels_last: bool | None = None,
    compile: bool = False,
    freezing: bool = True,
    cpp_wrapper: bool = True,
) -> nn.Module:
    """A copy of ``model`` ready for CPU inference: eval mode, BatchNorm folded, no gradients;
    channels-last if ``channels_last`` (default ``CHANNELS_LAST_DEFAULT``); compiled with
    TorchInductor if ``compile`` (``freezing``: weights as constants, pre-packed once;
    ``cpp_wrapper``: the kernel calls in C++ rather than Python).

    The outputs equal ``model.eval()``'s within float rounding (tests: 1e-5 relative); ``model``
    itself is left as it was. The copy is for inference only: folding used the running
    statistics, so training it would train a different function. Call it under
    ``torch.inference_mode()`` for the last few percent.
    """
    quick = fold_batchnorm(model)  # a deep copy, in eval mode
    quick.requires_grad_(False)
    if channels_last if channels_last is not None else CHANNELS_LAST_DEFAULT:
        quick.to(memory_format=torch.channels_last)
        quick.register_forward_pre_hook(_to_channels_last)
        quick.register_forward_hook(_to_contiguous)
    if compile:
        compiled = torch.compile(quick.forward, backend="inductor")
        quick.forward = _under_inductor_config(compiled, freezing=freezing, cpp_wrapper=cpp_wrapper)
    return quick


def _under_inductor_config(compiled, **settings):
    """``compiled`` called with these Inductor settings (read when it traces) and without gradients."""
    import torch._inductor.config as inductor_config

    def forward(*args, **kwargs):
        with torch.no_grad(), inductor_config.patch(**settings):
            return compiled(*args, **kwargs)

    return forward
