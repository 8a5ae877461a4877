"""Darknet's letterbox (letterbox_image) and the map back to the image (correct_region_boxes)."""

import numpy as np
import pytest
import torch
from PIL import Image

from yolo_lessons.data.letterbox import (
    PAD_VALUE,
    Letterbox,
    boxes_to_image,
    boxes_to_network,
    letterbox_geometry,
    letterbox_image,
    network_input,
)
from yolo_lessons.detection.decode import box_corners


def test_landscape_image_fills_the_width_and_is_padded_above_and_below():
    # 640x480 into 416x416: 416 / 640 < 416 / 480, so new_w = 416, new_h = 480 * 416 // 640 = 312,
    # and the picture starts (416 - 312) // 2 = 52 pixels down.
    assert letterbox_geometry(640, 480, 416, 416) == Letterbox(640, 480, 416, 416, 416, 312, 0, 52)


def test_portrait_image_fills_the_height_and_is_padded_left_and_right():
    # 480x640 into 416x416: new_h = 416, new_w = 480 * 416 // 640 = 312, 52 pixels from the left.
    assert letterbox_geometry(480, 640, 416, 416) == Letterbox(480, 640, 416, 416, 312, 416, 52, 0)


def test_odd_sizes_round_down_like_darknets_integer_arithmetic():
    # 333x517 into 416x416: new_w = 333 * 416 // 517 = 138528 // 517 = 267 (517 * 267 = 138039),
    # pad_left = (416 - 267) // 2 = 149 // 2 = 74: an odd padding of 149 pixels.
    assert letterbox_geometry(333, 517, 416, 416) == Letterbox(333, 517, 416, 416, 267, 416, 74, 0)
    # Non-square network input, 320 wide and 256 high: a square image fills the height.
    assert letterbox_geometry(100, 100, 320, 256) == Letterbox(100, 100, 320, 256, 256, 256, 32, 0)


def test_letterboxed_image_is_grey_around_the_resized_picture():
    image = torch.rand(3, 48, 64)
    boxed, box = letterbox_image(image, 32, 32)
    # 64x48 into 32x32: new 32x24, pad_top 4: rows 0-3 and 28-31 are grey 0.5.
    assert boxed.shape == (3, 32, 32) and (box.new_w, box.new_h, box.pad_top) == (32, 24, 4)
    assert PAD_VALUE == 0.5  # fill_image(boxed, .5) in letterbox_image
    assert torch.all(boxed[:, :4] == 0.5) and torch.all(boxed[:, 28:] == 0.5)
    assert not torch.all(boxed[:, 4:28] == 0.5)


def _darknet_resize_image(image: np.ndarray, new_w: int, new_h: int) -> np.ndarray:
    """A literal port of Darknet's resize_image (src/image.c): bilinear along x, then along y."""
    channels, h, w = image.shape
    part = np.zeros((channels, h, new_w), dtype=np.float32)
    w_scale = np.float32(w - 1) / np.float32(new_w - 1)
    h_scale = np.float32(h - 1) / np.float32(new_h - 1)
    for c in range(new_w):
        if c == new_w - 1 or w == 1:
            part[:, :, c] = image[:, :, w - 1]
        else:
            sx = np.float32(c * w_scale)
            ix = int(sx)
            dx = np.float32(sx - ix)
            part[:, :, c] = (1 - dx) * image[:, :, ix] + dx * image[:, :, ix + 1]
    resized = np.zeros((channels, new_h, new_w), dtype=np.float32)
    for r in range(new_h):
        sy = np.float32(r * h_scale)
        iy = int(sy)
        dy = np.float32(sy - iy)
        resized[:, r] = (1 - dy) * part[:, iy]
        if r != new_h - 1 and h != 1:
            resized[:, r] += dy * part[:, iy + 1]
    return resized


@pytest.mark.parametrize("size", [(17, 11), (11, 17), (13, 13)])
def test_resized_picture_matches_a_port_of_darknets_resize_image(size):
    w, h = size
    image = torch.rand(3, h, w, generator=torch.Generator().manual_seed(w * h))
    boxed, box = letterbox_image(image, 29, 23)  # downscale, upscale, odd sizes
    picture = boxed[:, box.pad_top : box.pad_top + box.new_h, box.pad_left : box.pad_left + box.new_w]
    expected = _darknet_resize_image(image.numpy(), box.new_w, box.new_h)
    np.testing.assert_allclose(picture.numpy(), expected, atol=1e-5)  # float rounding only


SIZES = [(640, 480), (480, 640), (500, 500), (333, 517), (517, 333), (1, 7), (999, 10)]
NETWORKS = [(416, 416), (320, 256), (97, 131)]


@pytest.mark.parametrize("network", NETWORKS)
@pytest.mark.parametrize("size", SIZES)
def test_boxes_survive_the_round_trip_to_the_network_and_back(size, network):
    image_w, image_h = size
    box = letterbox_geometry(image_w, image_h, *network)
    generator = torch.Generator().manual_seed(image_w + image_h)
    corners = torch.rand(20, 2, 2, generator=generator).sort(dim=1).values  # (20, 2 corners, 2 coords)
    boxes = (corners * torch.tensor([image_w, image_h])).flatten(1)[:, [0, 1, 2, 3]]  # x1, y1, x2, y2 pixels
    back = boxes_to_image(boxes_to_network(boxes.double(), box), box)
    torch.testing.assert_close(back, boxes.double(), atol=1e-4, rtol=0)


def test_a_painted_rectangle_lands_where_boxes_to_network_puts_it():
    # A 100x50 image with a white rectangle over pixels x 20-39, y 10-19, i.e. corners (20, 10, 40, 20).
    image = torch.zeros(3, 50, 100)
    image[:, 10:20, 20:40] = 1.0
    boxed, box = letterbox_image(image, 200, 200)  # new 200x100, 50 pixels of grey above
    x1, y1, x2, y2 = (boxes_to_network(torch.tensor([20.0, 10, 40, 20]), box) * 200).tolist()
    assert (x1, y1, x2, y2) == (40.0, 70.0, 80.0, 90.0)  # (20 * 2 + 0, 10 * 2 + 50, ...) pixels
    bright = (boxed[0] > 0.75).nonzero()
    rows, cols = bright[:, 0], bright[:, 1]
    # Bilinear sampling blurs the edges by about a pixel.
    assert abs(cols.min().item() - x1) <= 1 and abs(cols.max().item() + 1 - x2) <= 1
    assert abs(rows.min().item() - y1) <= 1 and abs(rows.max().item() + 1 - y2) <= 1


def _correct_region_boxes(xywh: np.ndarray, w: int, h: int, netw: int, neth: int) -> np.ndarray:
    """A literal port of correct_region_boxes (src/region_layer.c) with relative=0, on centre-form boxes."""
    if netw / w < neth / h:
        new_w, new_h = netw, (h * netw) // w
    else:
        new_w, new_h = (w * neth) // h, neth
    x = (xywh[:, 0] - (netw - new_w) / 2.0 / netw) / (new_w / netw)
    y = (xywh[:, 1] - (neth - new_h) / 2.0 / neth) / (new_h / neth)
    bw = xywh[:, 2] * netw / new_w
    bh = xywh[:, 3] * neth / new_h
    return np.stack([x * w, y * h, bw * w, bh * h], axis=1)


@pytest.mark.parametrize("size", [(333, 517), (640, 480)])
def test_darknet_offset_reproduces_correct_region_boxes(size):
    xywh = torch.tensor([[0.5, 0.5, 0.2, 0.3], [0.3, 0.6, 0.1, 0.05]], dtype=torch.float64)
    box = letterbox_geometry(*size, 416, 416)
    ours = boxes_to_image(box_corners(xywh), box, clip=False, darknet_offset=True)
    expected = box_corners(torch.from_numpy(_correct_region_boxes(xywh.numpy(), *size, 416, 416)))
    torch.testing.assert_close(ours, expected)


def test_darknets_offset_shifts_boxes_by_half_a_network_pixel_when_the_padding_is_odd():
    box = letterbox_geometry(333, 517, 416, 416)  # padding 149 pixels: picture at 74, Darknet subtracts 74.5
    boxes = torch.tensor([[0.4, 0.4, 0.6, 0.6]], dtype=torch.float64)
    shift = boxes_to_image(boxes, box, darknet_offset=True) - boxes_to_image(boxes, box)
    # 0.5 network pixels * 333 / 267 image pixels per network pixel = 0.6236 image pixels, along x only.
    dx = -0.5 * 333 / 267
    torch.testing.assert_close(shift, torch.tensor([[dx, 0.0, dx, 0.0]], dtype=torch.float64))


def test_boxes_reaching_into_the_padding_are_clipped_to_the_image():
    box = letterbox_geometry(640, 480, 416, 416)  # grey bands: rows 0-51 and 364-415
    whole_input = torch.tensor([0.0, 0.0, 1.0, 1.0])
    torch.testing.assert_close(boxes_to_image(whole_input, box), torch.tensor([0.0, 0.0, 640.0, 480.0]))
    # Without clipping: y from (0 - 52) * 480 / 312 = -80 to (416 - 52) * 480 / 312 = 560.
    torch.testing.assert_close(boxes_to_image(whole_input, box, clip=False), torch.tensor([0.0, -80.0, 640.0, 560.0]))


def test_network_input_takes_uint8_arrays_and_pil_images():
    array = np.random.default_rng(0).integers(0, 256, size=(30, 40, 3), dtype=np.uint8)
    from_array, box = network_input(array, 32, 32)
    from_pil, _ = network_input(Image.fromarray(array), 32, 32)
    expected, _ = letterbox_image(torch.from_numpy(array).permute(2, 0, 1).float() / 255, 32, 32)
    assert from_array.shape == (3, 32, 32) and box.new_h == 24  # 40x30 -> 32x24
    torch.testing.assert_close(from_array, expected)
    torch.testing.assert_close(from_pil, expected)


def test_letterbox_says_what_it_expected():
    with pytest.raises(ValueError, match="float image"):
        letterbox_image(torch.zeros(3, 4, 4, dtype=torch.uint8), 8, 8)
    with pytest.raises(ValueError, match="uint8"):
        network_input(np.zeros((4, 4, 3), dtype=np.float32), 8, 8)
    with pytest.raises(ValueError, match="network_w must be a positive whole number"):
        letterbox_geometry(10, 10, 0, 8)
    with pytest.raises(ValueError, match=r"\(\.\.\., 4\)"):
        boxes_to_image(torch.zeros(2, 3), letterbox_geometry(10, 10, 8, 8))
