"""Building blocks shared by every Darknet network in the book.

* ``ConvBlock``: Darknet's ``[convolutional]`` layer with ``batch_normalize=1`` and
  ``activation=leaky`` -- a bias-free convolution, BatchNorm, LeakyReLU(0.1).
* ``ResidualBlock``: the Darknet-53 residual unit (YOLOv3 paper, Table 1).
* ``space_to_depth`` and ``darknet_reorg``: two ways of folding a 2-D neighbourhood
  into channels; only the second one is what Darknet's ``[reorg]`` layer computes.
* ``DarknetMaxPool``: ``[maxpool]`` exactly as Darknet pads it (with -inf, right and bottom),
  the stride-1 pool of the tiny models included.
* ``check_image_batch``: the input check every network runs before its first layer.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

LEAKY_SLOPE = 0.1  # Darknet's "leaky" activation; PyTorch's default slope is 0.01
DOWNSAMPLE = 32  # every network in this package halves the input five times


class ConvBlock(nn.Module):
    """Conv2d (no bias, "same" padding) -> BatchNorm2d -> LeakyReLU(0.1).

    The convolution has no bias because BatchNorm subtracts the batch mean right
    after it, which would cancel any bias; BatchNorm's own shift (``beta``) plays
    that role instead.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2, bias=False
        )
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = nn.LeakyReLU(LEAKY_SLOPE)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.bn(self.conv(x)))


class ResidualBlock(nn.Module):
    """Darknet-53's residual unit: 1x1 conv to half the channels, 3x3 back, add the input."""

    def __init__(self, channels: int):
        super().__init__()
        self.reduce = ConvBlock(channels, channels // 2, 1)
        self.expand = ConvBlock(channels // 2, channels, 3)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.expand(self.reduce(x))  # the cfg's [shortcut] from=-3


def space_to_depth(x: Tensor, stride: int = 2) -> Tensor:
    """Move every ``stride x stride`` block of pixels into channels at one position.

    (N, C, H, W) -> (N, stride**2 * C, H / stride, W / stride). Output channel
    ``(dy * stride + dx) * C + c`` holds input channel ``c`` at offset ``(dy, dx)``
    inside its block: the offsets are the slow index and the input channels the fast
    one. We use that order because it is the one Darknet's ``[reorg]`` applies inside
    its reinterpretation (see ``darknet_reorg``) and the one the popular tutorials'
    ``reorder`` produces. ``torch.nn.functional.pixel_unshuffle`` makes the same
    blocks with the other order (``c * stride**2 + dy * stride + dx``); the two differ
    only by a fixed permutation of channels.
    """
    n, c, h, w = _check_foldable(x, stride)
    blocks = x.view(n, c, h // stride, stride, w // stride, stride)  # (N, C, H/s, dy, W/s, dx)
    blocks = blocks.permute(0, 3, 5, 1, 2, 4)  # (N, dy, dx, C, H/s, W/s)
    return blocks.reshape(n, stride * stride * c, h // stride, w // stride)


def darknet_reorg(x: Tensor, stride: int = 2) -> Tensor:
    """Darknet's ``[reorg]`` layer, bit for bit, as ``yolov2-voc.cfg`` uses it.

    Darknet never looks at the C x H x W shape of its input: it reads the same memory
    as a (C / s**2) x (s*H) x (s*W) image, applies ``space_to_depth`` to that image
    (which gives C x H x W again) and then reads the result as (s**2 * C) x (H/s) x (W/s).
    The two reinterpretations mix rows and channels, so half of the outputs come from
    pixels outside their own 2 x 2 block. Original YOLOv2 weights were trained with
    exactly this op; for a network trained from scratch any fixed rearrangement works.
    """
    n, c, h, w = _check_foldable(x, stride)
    if c % (stride * stride):
        raise ValueError(
            f"darknet_reorg needs channels divisible by stride**2 = {stride * stride}, got {c}"
        )
    as_tall_image = x.reshape(n, c // (stride * stride), h * stride, w * stride)
    folded = space_to_depth(as_tall_image, stride)  # (N, C, H, W) again, reordered
    return folded.reshape(n, c * stride * stride, h // stride, w // stride)


def _check_foldable(x: Tensor, stride: int) -> tuple[int, int, int, int]:
    if x.dim() != 4:
        raise ValueError(f"expected a 4-D tensor (N, C, H, W), got shape {tuple(x.shape)}")
    n, c, h, w = x.shape
    if h % stride or w % stride:
        raise ValueError(f"height and width must be multiples of stride={stride}, got {h}x{w}")
    return n, c, h, w


def check_image_batch(x: Tensor, channels: int = 3, multiple: int = DOWNSAMPLE) -> None:
    """Raise ``ValueError`` unless ``x`` is a float (N, channels, H, W) batch with H, W multiples of ``multiple``.

    Images as they come from the world (a PIL image, a numpy (H, W, 3) array, a uint8 tensor,
    channels last) get a message that says how to turn them into a batch:
    ``yolo_lessons.data.images.image_batch`` does all of it.
    """
    helper = "yolo_lessons.image_batch(image) makes the batch"
    if not isinstance(x, Tensor):
        kind = type(x).__name__
        if hasattr(x, "convert") and hasattr(x, "size"):  # a PIL image
            raise ValueError(
                f"expected a torch.Tensor of shape (N, {channels}, H, W), got a PIL image ({kind}): {helper}, "
                "or torch.from_numpy(numpy.asarray(image)).permute(2, 0, 1).float().div(255).unsqueeze(0)"
            )
        shape = getattr(x, "shape", None)
        if shape is not None and hasattr(x, "dtype"):  # a numpy array
            raise ValueError(
                f"expected a torch.Tensor of shape (N, {channels}, H, W), got a {kind} of shape {tuple(shape)} "
                f"and dtype {x.dtype}: {helper}, or torch.from_numpy(array).permute(2, 0, 1).float() / 255, "
                "then .unsqueeze(0)"
            )
        raise ValueError(f"expected a torch.Tensor of shape (N, {channels}, H, W), got {kind}")
    scale = " / 255" if not x.is_floating_point() else ""
    if x.dim() == 3 and x.shape[0] != channels and x.shape[-1] == channels:
        raise ValueError(
            f"expected a 4-D batch (N, {channels}, H, W), got 3-D shape {tuple(x.shape)}, which looks like "
            f"(H, W, C) with the channels last: use x.permute(2, 0, 1){'.float()' + scale if scale else ''}"
            ".unsqueeze(0)"
        )
    if x.dim() != 4:
        raise ValueError(
            f"expected a 4-D batch (N, {channels}, H, W), got {x.dim()}-D shape {tuple(x.shape)}"
            + ("; add a batch dimension with x.unsqueeze(0)" if x.dim() == 3 else "")
        )
    if x.shape[1] != channels:
        if x.shape[-1] == channels:
            raise ValueError(
                f"expected {channels} input channels, got {x.shape[1]} (shape {tuple(x.shape)}, which looks like "
                f"(N, H, W, C) with the channels last): use x.permute(0, 3, 1, 2)"
            )
        raise ValueError(f"expected {channels} input channels, got {x.shape[1]} (shape {tuple(x.shape)})")
    if not x.is_floating_point():
        raise ValueError(
            f"expected a float batch with values in [0, 1], got dtype {x.dtype}: use x.float() / 255 "
            "(pixel values 0..255 become 0..1)"
        )
    h, w = x.shape[-2:]
    if h % multiple or w % multiple:
        raise ValueError(
            f"height and width must be multiples of {multiple} (e.g. 320, 416, 608), got {h}x{w}"
            + (" (yolo_lessons.image_batch(image, letterbox=416) resizes and pads)" if multiple == 32 else "")
        )


class DarknetMaxPool(nn.Module):
    """Darknet's ``[maxpool]``: ``size`` x ``size`` windows every ``stride``, padded with -inf.

    ``src/maxpool_layer.c``: the output side is ``(w + padding - size) / stride + 1`` (C integer
    division) with ``padding = size - 1`` unless the cfg says otherwise (``parse_maxpool``), and
    the windows start ``padding / 2`` pixels before the image, so out-of-image positions never
    win (they count as ``-FLT_MAX``). For ``size=2 stride=2`` on an even side this is
    ``nn.MaxPool2d(2, 2)``. For the tiny models' ``size=2 stride=1`` it keeps a 13 x 13 map
    13 x 13 with one extra column and row of -inf on the right and bottom; a port that pads with
    zeros instead changes every border cell whose values are all negative.
    """

    def __init__(self, size: int = 2, stride: int = 2, padding: int | None = None):
        super().__init__()
        self.size, self.stride = size, stride
        self.padding = size - 1 if padding is None else padding

    def output_size(self, side: int) -> int:
        return (side + self.padding - self.size) // self.stride + 1

    def forward(self, x: Tensor) -> Tensor:
        _, _, h, w = x.shape
        before = self.padding // 2  # w_offset = -l.pad / 2
        out_h, out_w = self.output_size(h), self.output_size(w)
        after_h = (out_h - 1) * self.stride + self.size - h - before  # what the last window reaches past the edge
        after_w = (out_w - 1) * self.stride + self.size - w - before
        if before or after_h > 0 or after_w > 0:
            x = F.pad(x, (before, max(after_w, 0), before, max(after_h, 0)), value=float("-inf"))
        return F.max_pool2d(x, self.size, self.stride)[..., :out_h, :out_w]

    def extra_repr(self) -> str:
        return f"size={self.size}, stride={self.stride}, padding={self.padding}"
