"""yolo_lessons.data.images turns PIL images and numpy arrays into the networks' input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from yolo_lessons import darknet19
from yolo_lessons.data.images import image_batch, image_tensor


def test_a_uint8_hwc_array_becomes_a_float_nchw_batch_over_255():
    array = np.zeros((64, 96, 3), dtype=np.uint8)
    array[1, 2] = (255, 51, 0)  # pixel at row 1, column 2
    batch = image_batch(array)
    assert batch.shape == (1, 3, 64, 96) and batch.dtype == torch.float32
    # Darknet's load_image: value / 255, so 255 -> 1.0 and 51 -> 0.2
    assert batch[0, :, 1, 2].tolist() == pytest.approx([1.0, 0.2, 0.0])


def test_a_pil_image_and_its_array_give_the_same_batch():
    array = np.arange(32 * 32 * 3, dtype=np.uint8).reshape(32, 32, 3)
    assert torch.equal(image_batch(Image.fromarray(array)), image_batch(array))


def test_float_arrays_in_0_1_are_kept_and_grey_images_get_three_channels():
    grey = np.full((32, 64), 0.5, dtype=np.float64)
    assert image_tensor(grey).shape == (3, 32, 64) and image_tensor(grey).unique().tolist() == [0.5]


def test_float_pixels_outside_0_1_are_refused():
    with pytest.raises(ValueError, match=r"values in \[0, 1\], got 255..255; divide 0..255 pixels by 255"):
        image_tensor(np.full((4, 4, 3), 255.0))


def test_the_batch_runs_through_a_network():
    logits = darknet19(num_classes=10).eval()(image_batch(np.zeros((64, 64, 3), dtype=np.uint8)))
    assert logits.shape == (1, 10)


def test_letterbox_fits_a_wide_image_into_the_square_input():
    batch, geometry = image_batch(np.zeros((240, 480, 3), dtype=np.uint8), letterbox=416)
    # 480 x 240 scaled by 416 / 480 -> 416 x 208, padded with 104 rows above and below
    assert batch.shape == (1, 3, 416, 416)
    assert (geometry.new_w, geometry.new_h) == (416, 208)
