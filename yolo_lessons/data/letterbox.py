"""Darknet's letterbox: fit an image into the network input without stretching it, and map boxes back.

``letterbox_image`` (``src/image.c``) scales the image by the largest factor that fits it in
the network's W x H, keeping its aspect ratio, and pastes it in the middle of a W x H canvas
filled with grey 0.5. The side that fits exactly gets the network's size; the other is
rounded down by integer arithmetic (``new_h = im.h * w / im.w`` in C ints), and the offset of
the pasted picture is ``(w - new_w) / 2``, again in ints (``embed_image``).

The detector then predicts boxes as fractions of the network input. ``correct_region_boxes``
(``src/region_layer.c``) and ``correct_yolo_boxes`` (``src/yolo_layer.c``) undo the
letterbox: subtract the padding, divide by the fraction of the input the picture fills,
and multiply by the original image's size. In pixels of the original image,

    x_image = (x_network * net_w - pad_left) * image_w / new_w
    y_image = (y_network * net_h - pad_top) * image_h / new_h

for every corner (or centre), where ``x_network`` is a fraction of the network input, and
widths scale by ``net_w / new_w * image_w`` alone. ``boxes_to_image`` does this and clips
the corners to the image; ``boxes_to_network`` is the inverse, for ground-truth boxes.

One Darknet detail: ``correct_*_boxes`` subtract the padding as a real number,
``(netw - new_w) / 2.``, while ``embed_image`` pasted the picture at the integer
``(w - new_w) / 2``. When the padding is odd the two differ by half a network pixel, and
Darknet's boxes come back shifted by that much. We use the offset the picture really has
(so a box survives the round trip exactly); ``darknet_offset=True`` reproduces Darknet's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

PAD_VALUE = 0.5  # fill_image(boxed, .5) in letterbox_image


@dataclass(frozen=True)
class Letterbox:
    """Where an image went inside the network input (all sizes and offsets in pixels).

    image_w, image_h: the original image. network_w, network_h: the network input.
    new_w, new_h: the resized picture inside it. pad_left, pad_top: its top-left corner.
    """

    image_w: int
    image_h: int
    network_w: int
    network_h: int
    new_w: int
    new_h: int
    pad_left: int
    pad_top: int


def letterbox_geometry(image_w: int, image_h: int, network_w: int, network_h: int) -> Letterbox:
    """The sizes and offsets Darknet's ``letterbox_image`` uses, in integer pixels.

    Darknet compares ``(float)w / im.w < (float)h / im.h``; we compare the exact products
    ``w * im.h < h * im.w``, which only differs when float rounding hides a tie, and at a
    tie both branches give the same sizes.
    """
    sizes = {"image_w": image_w, "image_h": image_h, "network_w": network_w, "network_h": network_h}
    for name, value in sizes.items():
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive whole number of pixels, got {value!r}")
    if network_w * image_h < network_h * image_w:  # the width is the tighter fit
        new_w, new_h = network_w, (image_h * network_w) // image_w
    else:
        new_w, new_h = (image_w * network_h) // image_h, network_h
    new_w, new_h = max(new_w, 1), max(new_h, 1)  # Darknet would make an empty image; we keep one pixel
    return Letterbox(
        image_w, image_h, network_w, network_h, new_w, new_h, (network_w - new_w) // 2, (network_h - new_h) // 2
    )


def letterbox_image(image: Tensor, network_w: int, network_h: int) -> tuple[Tensor, Letterbox]:
    """Resize a (3, h, w) float image in [0, 1] into a (3, network_h, network_w) letterboxed one.

    The resize is bilinear with ``align_corners=True``: output pixel ``c`` samples the input
    at ``c * (w - 1) / (new_w - 1)``, the mapping of Darknet's ``resize_image`` (which
    interpolates along x, then y), so the pixels agree with Darknet's up to float rounding
    (``align_corners=False`` would sample half a pixel differently). One corner case differs:
    resized to a single pixel column or row, torch takes the first input pixel, Darknet the last.
    Returns the network input and the ``Letterbox`` that ``boxes_to_image`` needs.
    """
    if image.dim() != 3 or not image.is_floating_point():
        raise ValueError(
            f"expected a (channels, height, width) float image in [0, 1], got a {image.dtype} of shape "
            f"{tuple(image.shape)} (uint8 or (h, w, 3) images: use network_input)"
        )
    channels, image_h, image_w = image.shape
    box = letterbox_geometry(image_w, image_h, network_w, network_h)
    resized = F.interpolate(image[None], size=(box.new_h, box.new_w), mode="bilinear", align_corners=True)[0]
    canvas = image.new_full((channels, network_h, network_w), PAD_VALUE)
    canvas[:, box.pad_top : box.pad_top + box.new_h, box.pad_left : box.pad_left + box.new_w] = resized
    return canvas, box


def network_input(image, network_w: int, network_h: int) -> tuple[Tensor, Letterbox]:
    """A uint8 (h, w, 3) RGB array or a PIL image -> the (3, network_h, network_w) letterboxed input.

    Divides by 255 (Darknet's ``load_image`` reads pixels as value / 255), then ``letterbox_image``.
    """
    if hasattr(image, "convert"):  # a PIL image
        image = np.asarray(image.convert("RGB"))
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"expected a uint8 (height, width, 3) RGB image, got {array.dtype} of shape {array.shape}")
    tensor = torch.from_numpy(array.copy()).permute(2, 0, 1).float() / 255  # (3, h, w); a PIL array is read-only
    return letterbox_image(tensor, network_w, network_h)


def _check_boxes(boxes: Tensor) -> None:
    if boxes.shape[-1] != 4:
        raise ValueError(f"boxes must be (..., 4) corners x1, y1, x2, y2, got shape {tuple(boxes.shape)}")


def boxes_to_image(boxes: Tensor, box: Letterbox, clip: bool = True, darknet_offset: bool = False) -> Tensor:
    """(..., 4) corners in fractions of the network input -> corners in pixels of the original image.

    ``correct_region_boxes`` / ``correct_yolo_boxes``: ``x_image = (x * net_w - pad_left) *
    image_w / new_w``, and the same along y. ``clip`` keeps the corners inside the image,
    0 <= x <= image_w and 0 <= y <= image_h (Darknet clips when it prints or draws boxes).
    ``darknet_offset`` subtracts Darknet's real-valued padding ``(net_w - new_w) / 2``
    instead of the integer offset the picture was pasted at (see the module docstring).
    """
    _check_boxes(boxes)
    pad_left, pad_top = float(box.pad_left), float(box.pad_top)
    if darknet_offset:
        pad_left, pad_top = (box.network_w - box.new_w) / 2, (box.network_h - box.new_h) / 2
    x = (boxes[..., 0::2] * box.network_w - pad_left) * (box.image_w / box.new_w)  # (..., 2) x1, x2 in pixels
    y = (boxes[..., 1::2] * box.network_h - pad_top) * (box.image_h / box.new_h)  # (..., 2) y1, y2 in pixels
    if clip:
        x, y = x.clamp(0, box.image_w), y.clamp(0, box.image_h)
    return torch.stack([x[..., 0], y[..., 0], x[..., 1], y[..., 1]], dim=-1)


def boxes_to_network(boxes: Tensor, box: Letterbox) -> Tensor:
    """(..., 4) corners in pixels of the original image -> corners in fractions of the network input.

    The inverse of ``boxes_to_image`` (without clipping): where a ground-truth box lands
    in the letterboxed input, ``x = (x_image * new_w / image_w + pad_left) / net_w``.
    """
    _check_boxes(boxes)
    x = (boxes[..., 0::2] * (box.new_w / box.image_w) + box.pad_left) / box.network_w  # (..., 2) fractions
    y = (boxes[..., 1::2] * (box.new_h / box.image_h) + box.pad_top) / box.network_h
    return torch.stack([x[..., 0], y[..., 0], x[..., 1], y[..., 1]], dim=-1)
