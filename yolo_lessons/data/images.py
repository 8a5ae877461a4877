"""Images from the world -> the networks' input: a float batch (1, 3, H, W) in [0, 1].

Darknet's ``load_image`` reads 8-bit pixels as ``value / 255`` and stores the channels
first (``image.c``, then rows, then columns); PyTorch's convolutions want the same
(N, C, H, W) layout. A PIL image and a numpy array come channels last, (H, W, 3), and as
uint8: ``image_batch`` moves the channels first, scales to [0, 1] and adds the batch
dimension, and, with ``letterbox=``, fits the image into the network's square (or
rectangular) input as Darknet's ``letterbox_image`` does (``yolo_lessons.data.letterbox``).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .letterbox import Letterbox, letterbox_image


def image_tensor(image) -> Tensor:
    """A PIL image, or an (H, W, 3) / (H, W) array (uint8 0..255 or float 0..1) -> (3, H, W) float in [0, 1].

    A grey (H, W) image is repeated into three channels; a PIL image is converted to RGB
    first (an alpha channel is dropped). Floats must already be in [0, 1].
    """
    if hasattr(image, "convert"):  # a PIL image
        image = np.asarray(image.convert("RGB"))
    if isinstance(image, Tensor):
        raise ValueError(
            f"image_tensor takes a PIL image or a numpy array; for a tensor of shape {tuple(image.shape)} "
            "use tensor.permute(2, 0, 1).float() / 255 (uint8, channels last) and .unsqueeze(0)"
        )
    array = np.asarray(image)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)  # grey -> RGB
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ValueError(f"expected an (height, width, 3) RGB image, got an array of shape {array.shape}")
    array = array[:, :, :3]  # drop an alpha channel
    if array.dtype == np.uint8:
        pixels = torch.from_numpy(array.copy()).float() / 255  # Darknet's load_image: value / 255
    elif np.issubdtype(array.dtype, np.floating):
        if array.size and (array.min() < 0 or array.max() > 1):
            raise ValueError(
                f"a float image must hold values in [0, 1], got {array.min():.3g}..{array.max():.3g}; "
                "divide 0..255 pixels by 255"
            )
        pixels = torch.from_numpy(array.astype(np.float32))
    else:
        raise ValueError(f"expected uint8 (0..255) or float (0..1) pixels, got dtype {array.dtype}")
    return pixels.permute(2, 0, 1).contiguous()  # (H, W, 3) -> (3, H, W)


def image_batch(image, letterbox: int | tuple[int, int] | None = None) -> Tensor | tuple[Tensor, Letterbox]:
    """A PIL image or an (H, W, 3) array -> the network's input, (1, 3, H, W) float in [0, 1].

    Without ``letterbox`` the image keeps its size (the networks need sides that are
    multiples of 32). With ``letterbox=416`` (or ``(width, height)``) it is resized with its
    aspect ratio kept and padded with grey to that size, as Darknet's ``letterbox_image``
    does; then the result is ``(batch, geometry)``, and ``yolo_lessons.data.letterbox.boxes_to_image``
    maps the detected boxes back onto the original image with the geometry.
    """
    pixels = image_tensor(image)
    if letterbox is None:
        return pixels.unsqueeze(0)
    width, height = (letterbox, letterbox) if isinstance(letterbox, int) else letterbox
    boxed, geometry = letterbox_image(pixels, width, height)
    return boxed.unsqueeze(0), geometry


def read_image(path) -> np.ndarray:
    """An image file (JPEG, PNG, BMP, ...) -> a uint8 (H, W, 3) RGB array, upright.

    The EXIF orientation a camera records is applied (a photo taken sideways is turned as a
    viewer shows it), and greyscale, palette and RGBA images are converted to RGB (an alpha
    channel is dropped, as Darknet's ``load_image`` keeps three channels). A file that is not an
    image raises ``ValueError`` naming it.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            upright = ImageOps.exif_transpose(image)
            return np.asarray(upright.convert("RGB")).copy()
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(f"cannot read {path} as an image: {error}") from None
