"""Darknet's training augmentation (``data.augment``) equals its literal port, and moves boxes as the C does."""

from __future__ import annotations

import numpy as np
import pytest
from darknet_augment_port import Rand, image_from_array, load_data_detection_one, truth_rows

from yolo_lessons.data.augment import (
    CANVAS_GREY,
    Augmentation,
    AugmentDraws,
    augment_detection,
    augment_with_draws,
    distort_image,
    draw_augmentation,
    hsv_to_rgb,
    place_image,
    rgb_to_hsv,
)

# Four boxes of a 13 x 9 picture: one inside, one on the left and bottom edges, one past the right
# edge (clipped), one 0.0005 wide (dropped: fill_truth_detection's w < .001).
BOXES = np.array([[0, 0.5, 0.5, 0.4, 0.4], [1, 0.05, 0.9, 0.1, 0.2], [2, 0.99, 0.5, 0.3, 0.3],
                  [1, 0.3, 0.3, 0.0005, 0.2]])  # fmt: skip
NEUTRAL = dict(hue=0.5, saturation=0.0, saturation_keep=True, exposure=0.0, exposure_keep=True)  # no colour change


def picture(seed: int = 0) -> np.ndarray:
    """A (3, 9, 13) float32 picture in [0, 1] with a grey pixel (no hue) and a black one."""
    image = np.random.default_rng(seed).random((3, 9, 13)).astype(np.float32)
    image[:, 2, 3] = 0.4
    image[:, 5, 7] = 0.0
    return image


def port(image: np.ndarray, boxes: np.ndarray, size: int, options: Augmentation, draws: AugmentDraws):
    """The literal port with the same draws: the (3, size, size) canvas and its (M, 5) rows class, x, y, w, h."""
    max_boxes = options.max_boxes or 90
    canvas, truth = load_data_detection_one(Rand(draws.in_darknet_order()), image_from_array(image),
                                            [tuple(r) for r in boxes], size, size, max_boxes, options.jitter,
                                            options.hue, options.saturation, options.exposure)  # fmt: skip
    rows = np.array([(c, x, y, w, h) for c, x, y, w, h in truth_rows(truth)], dtype=np.float64).reshape(-1, 5)
    return np.array(canvas.data).reshape(3, size, size), rows


@pytest.mark.parametrize("options", [
    Augmentation(jitter=0, hue=0, saturation=1, exposure=1),  # placement and flip only
    Augmentation(jitter=0.3, hue=0.1, saturation=1.5, exposure=1.5),  # yolov2-voc.cfg
    Augmentation(jitter=0.3, hue=0.1, saturation=1.5, exposure=1.5, max_boxes=2),  # the cap before the drop
])  # fmt: skip
@pytest.mark.parametrize("seed", range(4))
def test_augmentation_equals_the_literal_port_of_load_data_detection(options, seed):
    image = picture(seed)
    draws = draw_augmentation(np.random.default_rng(seed), len(BOXES))
    canvas, boxes = augment_with_draws(image, BOXES, 16, options, draws)
    expected_canvas, expected_boxes = port(image, BOXES, 16, options, draws)
    assert canvas.shape == (3, 16, 16) and canvas.dtype == np.float32
    np.testing.assert_allclose(canvas, expected_canvas, rtol=0, atol=1e-6)  # float32 against the port's doubles
    np.testing.assert_array_equal(boxes, expected_boxes)  # the same double arithmetic, to the last bit
    assert len(boxes) < len(BOXES)  # the 0.0005-wide box is always dropped (and the cap of 2 drops more)


@pytest.mark.parametrize("flip", [False, True])
def test_equal_to_the_port_with_and_without_the_flip(flip):
    image = picture(7)
    options = Augmentation(jitter=0.3, hue=0.1, saturation=1.5, exposure=1.5)
    draws = AugmentDraws(0.9, 0.2, 0.3, 0.6, 0.8, 0.7, True, 0.4, False, flip, (2, 0, 3, 1))
    canvas, boxes = augment_with_draws(image, BOXES, 16, options, draws)
    expected_canvas, expected_boxes = port(image, BOXES, 16, options, draws)
    np.testing.assert_allclose(canvas, expected_canvas, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(boxes, expected_boxes)
    # box_swaps (2, 0, 3, 1), i swapping with box_swaps[i] in turn, put the boxes in the order 1 0 3 2; 3 is dropped
    assert boxes[:, 0].tolist() == [1.0, 0.0, 2.0]


def test_flip_false_keeps_the_coin_drawn_but_unused():
    image, options = picture(1), Augmentation(flip=False)
    draws = draw_augmentation(np.random.default_rng(3), len(BOXES))
    flipped = AugmentDraws(**{**draws.__dict__, "flip": True})
    unflipped = AugmentDraws(**{**draws.__dict__, "flip": False})
    a, boxes_a = augment_with_draws(image, BOXES, 16, options, flipped)
    b, boxes_b = augment_with_draws(image, BOXES, 16, Augmentation(), unflipped)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(boxes_a, boxes_b)


def test_one_seed_gives_one_result_and_another_seed_another():
    image, options = picture(2), Augmentation()
    a = augment_detection(image, BOXES, 16, options, np.random.default_rng(11))
    b = augment_detection(image, BOXES, 16, options, np.random.default_rng(11))
    c = augment_detection(image, BOXES, 16, options, np.random.default_rng(12))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_draws_follow_darknets_order():
    draws = draw_augmentation(np.random.default_rng(5), 3)
    stream = np.random.default_rng(5)
    uniform = stream.random(6)  # aspect_w, aspect_h, place_x, place_y, hue, saturation
    assert [draws.aspect_w, draws.aspect_h, draws.place_x, draws.place_y, draws.hue, draws.saturation] == list(uniform)
    assert draws.saturation_keep == bool(stream.integers(2)) and draws.exposure == stream.random()
    assert [draws.exposure_keep, draws.flip] == [bool(b) for b in stream.integers(2, size=2)]
    assert list(draws.box_swaps) == list(stream.integers(3, size=3))


def neutral_draws(**changes) -> AugmentDraws:
    """Draws that keep the colours (hue U(-h, h) at u = .5 is 0; U(1, s) at u = 0 is 1) and no flip."""
    values = dict(aspect_w=0.5, aspect_h=0.5, place_x=0.0, place_y=0.0, flip=False, box_swaps=(0,), **NEUTRAL)
    return AugmentDraws(**{**values, **changes})


def test_a_wide_picture_is_placed_at_full_width_and_its_box_follows():
    # 20 x 10 into 16 x 16, jitter 0: new_ar = 2, nw = 16, nh = 8; place_y = .5 gives dy = .5 * (16 - 8) = 4.
    image = np.full((3, 10, 20), 0.25, np.float32)
    box = np.array([[0, 0.25, 0.5, 0.5, 0.5]])
    options = Augmentation(jitter=0, hue=0, saturation=1, exposure=1)
    canvas, boxes = augment_with_draws(image, box, 16, options, neutral_draws(place_y=0.5))
    # left = .25 - .25 = 0, right = .5; top = .25 * 8/16 + 4/16 = .375, bottom = .75 * 8/16 + 4/16 = .625
    np.testing.assert_allclose(boxes, [[0, 0.25, 0.5, 0.5, 0.25]], rtol=0, atol=1e-15)
    assert (canvas[:, :4] == CANVAS_GREY).all() and (canvas[:, 12:] == CANVAS_GREY).all()  # grey above and below
    np.testing.assert_allclose(canvas[:, 4:12], 0.25, rtol=0, atol=1e-7)  # the picture in rows 4..11
    _, flipped = augment_with_draws(image, box, 16, options, neutral_draws(place_y=0.5, flip=True))
    np.testing.assert_allclose(flipped, [[0, 0.75, 0.5, 0.5, 0.25]], rtol=0, atol=1e-15)  # left = 1 - .5, right = 1


def test_jitter_changes_the_aspect_and_the_box_with_it():
    # 16 x 16 picture, jitter .25: dw = dh = 4; aspect_w u = .75 adds .75 * 8 - 4 = 2, aspect_h u = .5 adds 0,
    # so new_ar = 18 / 16 = 1.125: nw = 16, nh = 16 / 1.125 = 14.22 (placed at dy = 0).
    image = np.full((3, 16, 16), 0.5, np.float32)
    box = np.array([[1, 0.5, 0.5, 0.5, 0.5]])
    _, boxes = augment_with_draws(image, box, 16, Augmentation(jitter=0.25, hue=0, saturation=1, exposure=1),
                                  neutral_draws(aspect_w=0.75))  # fmt: skip
    # top = .25 * nh / 16 = .25 / 1.125, bottom = .75 / 1.125: cy = .5 / 1.125, h = .5 / 1.125
    np.testing.assert_allclose(boxes, [[1, 0.5, 0.5 / 1.125, 0.5, 0.5 / 1.125]], rtol=0, atol=1e-15)


def test_a_box_past_the_edge_is_clipped_silently_and_a_sliver_is_dropped():
    # 20 x 10 into 16, jitter 0, dy = 0: the first box's right at 1.2 is cut to 1; the second, .0016 wide,
    # keeps .0008 inside (1 - .9992) and goes below fill_truth_detection's .001.
    image = np.zeros((3, 10, 20), np.float32)
    boxes = np.array([[0, 1.0, 0.6, 0.4, 0.4], [1, 1.0, 0.5, 0.0016, 0.2]])
    _, moved = augment_with_draws(image, boxes, 16, Augmentation(jitter=0, hue=0, saturation=1, exposure=1),
                                  neutral_draws(box_swaps=(0, 1)))  # fmt: skip
    # left = .8, right = 1: cx .9, w .2; top = .4 * .5 = .2, bottom = .8 * .5 = .4: cy .3, h .2
    np.testing.assert_allclose(moved, [[0, 0.9, 0.3, 0.2, 0.2]], rtol=0, atol=1e-12)


def test_a_box_centred_at_the_origin_is_dropped_where_darknet_writes_999999():
    image = picture(0)
    boxes = np.array([[0, 0.0, 0.0, 0.2, 0.2], [1, 0.5, 0.5, 0.2, 0.2]])
    options = Augmentation(jitter=0, hue=0, saturation=1, exposure=1)
    draws = neutral_draws(box_swaps=(0, 1))
    _, ours = augment_with_draws(image, boxes, 16, options, draws)
    _, darknet = port(image, boxes, 16, options, draws)
    assert darknet[0].tolist() == [0, 999999, 999999, 999999, 999999]  # correct_boxes' empty-slot marker
    np.testing.assert_array_equal(ours, darknet[1:])


def test_place_image_samples_from_the_left_edge_and_fades_past_the_last_column():
    # One row of two pixels, 0.2 and 0.8, placed 4 wide: x / 4 * 2 = 0, .5, 1, 1.5; the last reads
    # halfway between 0.8 and the 0 that get_pixel_extend returns beyond the picture.
    image = np.array([0.2, 0.8], np.float32).reshape(1, 1, 2).repeat(3, axis=0)
    canvas = np.full((3, 1, 6), CANVAS_GREY, np.float32)
    place_image(image, 4, 1, 1, 0, canvas)
    np.testing.assert_allclose(canvas[0, 0], [0.5, 0.2, 0.5, 0.8, 0.4, 0.5], rtol=0, atol=1e-7)


def test_the_hue_wraps_once_around_the_circle():
    red = np.array([1.0, 0.0, 0.0], np.float32).reshape(3, 1, 1)
    # hue 0 - .1 wraps to .9: sector 5 (6 * .9 = 5.4): r = v, g = p = 0, b = q = 1 - .4 = .6
    np.testing.assert_allclose(distort_image(red, -0.1, 1, 1).ravel(), [1, 0, 0.6], rtol=0, atol=1e-6)
    np.testing.assert_allclose(distort_image(red, 0.5, 1, 1).ravel(), [0, 1, 1], rtol=0, atol=1e-6)  # cyan


def test_a_hue_of_exactly_one_falls_in_darknets_last_branch_magenta():
    hsv = np.array([1.0, 1.0, 1.0], np.float32).reshape(3, 1, 1)  # the same colour as hue 0, red
    assert hsv_to_rgb(hsv).ravel().tolist() == [1.0, 0.0, 1.0]  # index 6: r = v, g = p, b = q = v


def test_the_hsv_round_trip_returns_the_colours():
    image = picture(4)
    np.testing.assert_allclose(hsv_to_rgb(rgb_to_hsv(image)), image, rtol=0, atol=1e-6)


def test_exposure_also_changes_the_grey_padding():
    # rand_scale(1.5) with u = .4 and keep: U(1, 1.5) = 1.2; the 0.5 canvas becomes 0.6
    image = np.full((3, 10, 20), 0.25, np.float32)
    options = Augmentation(jitter=0, hue=0, saturation=1, exposure=1.5)
    canvas, _ = augment_with_draws(image, BOXES[:1], 16, options, neutral_draws(exposure=0.4, place_y=0.5))
    np.testing.assert_allclose(canvas[:, :4], 0.6, rtol=0, atol=1e-6)  # the padding above the picture
    np.testing.assert_allclose(canvas[:, 4:12], 0.3, rtol=0, atol=1e-6)  # the picture too: .25 * 1.2


@pytest.mark.parametrize("options, message", [
    (dict(jitter=1.0), "jitter must be a fraction in [0, 1)"),
    (dict(hue=0.7), "hue must be a fraction of the hue circle"),
    (dict(saturation=0), "saturation must be a factor above 0"),
    (dict(max_boxes=0), "max_boxes must be a positive whole number"),
])  # fmt: skip
def test_bad_options_are_refused_by_name(options, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        Augmentation(**options)


def test_a_channels_last_uint8_picture_is_refused_with_the_conversion_to_use():
    with pytest.raises(ValueError, match="expected a \\(3, height, width\\) float image"):
        augment_detection(np.zeros((9, 13, 3), np.uint8), BOXES, 16, Augmentation(), np.random.default_rng(0))
