"""The synthetic shapes data: deterministic per (seed, index), valid boxes, padded batches, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from yolo_lessons.data.shapes import SHAPE_CLASSES, ShapesDataset, collate, make_image


def test_shape_classes_are_circle_square_triangle_in_index_order():
    assert SHAPE_CLASSES == ("circle", "square", "triangle")


def test_the_same_image_index_and_seed_give_identical_pixels_and_boxes():
    image_a, boxes_a = make_image(7, seed=3)
    make_image(8, seed=3)  # drawing another image in between changes nothing
    image_b, boxes_b = make_image(7, seed=3)
    assert np.array_equal(image_a, image_b)
    assert np.array_equal(boxes_a, boxes_b)


def test_image_zero_of_seed_zero_is_pinned_across_machines():
    # Recorded from make_image(0, seed=0) at 96x96: three objects (class, cx, cy, w, h).
    # The boxes are whole pixels over 96, so they are exact in float32 on every machine.
    _, boxes = make_image(0, seed=0)
    expected = np.array(
        [[2, 65 / 192, 75 / 192, 21 / 96, 17 / 96], [1, 17 / 192, 65 / 192, 17 / 96, 13 / 96],
         [2, 17 / 192, 112 / 192, 17 / 96, 26 / 96]],
        dtype=np.float32,
    )
    np.testing.assert_allclose(boxes, expected, atol=1e-7)


def test_different_seeds_and_indices_give_different_images():
    base, _ = make_image(0, seed=0)
    assert not np.array_equal(base, make_image(0, seed=1)[0])
    assert not np.array_equal(base, make_image(1, seed=0)[0])


def test_a_held_out_set_is_another_seed_and_shares_no_image_with_training():
    train = ShapesDataset(20, seed=0)
    held_out = ShapesDataset(20, seed=1)
    train_images = [train[i][0] for i in range(20)]
    for i in range(20):
        assert not any(torch.equal(held_out[i][0], image) for image in train_images)


@pytest.mark.parametrize("size", [32, 96, 160])
def test_images_are_float32_rgb_in_0_1_and_boxes_are_valid_fractions(size):
    for index in range(30):
        image, boxes = make_image(index, seed=5, size=size)
        assert image.shape == (3, size, size) and image.dtype == np.float32
        assert image.min() >= 0.0 and image.max() <= 1.0
        assert boxes.dtype == np.float32 and boxes.ndim == 2 and boxes.shape[1] == 5
        assert 1 <= len(boxes) <= 4
        labels, cx, cy, w, h = boxes.T
        assert set(labels.tolist()) <= {0.0, 1.0, 2.0}
        assert np.all(w > 0) and np.all(h > 0) and np.all(w <= 1) and np.all(h <= 1)
        # clipped to the image: the box's edges lie inside [0, 1], so its centre does too
        assert np.all(cx - w / 2 >= -1e-6) and np.all(cx + w / 2 <= 1 + 1e-6)
        assert np.all(cy - h / 2 >= -1e-6) and np.all(cy + h / 2 <= 1 + 1e-6)


def test_over_many_images_every_class_every_count_and_border_boxes_appear():
    rows = [make_image(i, seed=0)[1] for i in range(300)]
    assert {len(r) for r in rows} == {1, 2, 3, 4}
    boxes = np.concatenate(rows)
    assert set(boxes[:, 0].astype(int).tolist()) == {0, 1, 2}
    touches = (boxes[:, 1] - boxes[:, 3] / 2 <= 1e-6) | (boxes[:, 1] + boxes[:, 3] / 2 >= 1 - 1e-6)
    assert touches.sum() > 10  # shapes run off the left or right border often


def test_object_sizes_follow_min_side_and_max_side():
    boxes = np.concatenate([make_image(i, min_side=0.04, max_side=0.08)[1] for i in range(50)])
    # a box is at most max_side (plus one rounding pixel of 96); clipping may only shrink it
    assert boxes[:, 3:].max() <= 0.08 + 1 / 96 + 1e-6
    assert np.median(boxes[:, 3:]) < 0.08


def test_max_objects_bounds_the_count_and_a_class_subset_renumbers_labels():
    for index in range(20):
        _, boxes = make_image(index, max_objects=1, classes=("triangle", "circle"))
        assert len(boxes) == 1 and boxes[0, 0] in (0.0, 1.0)  # 0 = triangle, 1 = circle


def test_dataset_items_are_the_make_image_arrays_as_tensors():
    dataset = ShapesDataset(5, size=64, seed=2)
    image, boxes = dataset[3]
    expected_image, expected_boxes = make_image(3, seed=2, size=64)
    assert len(dataset) == 5
    assert torch.equal(image, torch.from_numpy(expected_image))
    assert torch.equal(boxes, torch.from_numpy(expected_boxes))
    assert torch.equal(dataset[-1][0], dataset[4][0])
    with pytest.raises(IndexError):
        dataset[5]


def test_collate_stacks_images_and_zero_pads_boxes_to_the_largest_count():
    dataset = ShapesDataset(16, seed=0)
    images, boxes, counts = collate([dataset[i] for i in range(16)])
    assert images.shape == (16, 3, 96, 96) and images.dtype == torch.float32
    assert counts.dtype == torch.int64 and counts.shape == (16,)
    assert boxes.shape == (16, int(counts.max()), 5) and boxes.dtype == torch.float32
    for row in range(16):
        n = int(counts[row])
        assert torch.equal(boxes[row, :n], dataset[row][1])
        assert torch.all(boxes[row, n:] == 0)


def test_a_dataloader_with_collate_gives_the_same_batches_twice():
    loader = DataLoader(ShapesDataset(8, seed=4), batch_size=4, collate_fn=collate)
    first, second = list(loader), list(loader)
    for (i1, b1, c1), (i2, b2, c2) in zip(first, second, strict=True):
        assert torch.equal(i1, i2) and torch.equal(b1, b2) and torch.equal(c1, c2)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"length": 10, "size": 100}, "positive multiple of 32, got 100"),
        ({"length": 10, "size": 0}, "positive multiple of 32, got 0"),
        ({"length": 0}, "positive integer length, got 0"),
        ({"length": 10, "max_objects": 0}, "positive integer max_objects, got 0"),
        ({"length": 10, "classes": ("circle", "star")}, "class names among"),
        ({"length": 10, "min_side": 0.5, "max_side": 0.2}, "min_side <= max_side"),
        ({"length": 10, "seed": -1}, "non-negative integer seed, got -1"),
    ],
)
def test_bad_arguments_raise_value_errors_that_say_what_was_expected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ShapesDataset(**kwargs)


def test_make_image_rejects_a_size_that_is_not_a_multiple_of_32():
    with pytest.raises(ValueError, match="expected an image size that is a positive multiple of 32, got 95"):
        make_image(0, size=95)


def test_collate_rejects_an_empty_batch():
    with pytest.raises(ValueError, match="non-empty batch"):
        collate([])
