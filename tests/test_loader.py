"""Training batches from labelled files (``data.loader``): a pure function of the draws, decoded when needed."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from yolo_lessons.data.augment import Augmentation, augment_detection
from yolo_lessons.data.images import image_tensor, read_image
from yolo_lessons.data.letterbox import letterbox_image
from yolo_lessons.data.loader import AUGMENT_STREAM, LabelledImages

# Three pictures of different shapes and their labels; the third has no label file (a background picture).
PICTURES = {"wide.png": ((10, 20), "0 0.5 0.5 0.5 0.5\n1 0.2 0.3 0.2 0.2\n"),
            "tall.jpg": ((24, 12), "1 0.5 0.25 0.4 0.3\n"), "empty.png": ((16, 16), None)}  # fmt: skip


@pytest.fixture
def data_file(tmp_path) -> Path:
    """A .data file with a train list of three pictures in images/, labels in labels/."""
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    rng = np.random.default_rng(0)
    for name, ((height, width), text) in PICTURES.items():
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(tmp_path / "images" / name)
        if text is not None:
            (tmp_path / "labels" / (Path(name).stem + ".txt")).write_text(text)
    (tmp_path / "train.txt").write_text("".join(f"images/{name}\n" for name in PICTURES))
    (tmp_path / "set.names").write_text("circle\nsquare\n")
    (tmp_path / "set.data").write_text("classes = 2\ntrain = train.txt\nvalid = train.txt\nnames = set.names\n")
    return tmp_path / "set.data"


def test_indexing_keeps_paths_and_label_rows(data_file):
    images = LabelledImages.from_source(data_file, augmentation=Augmentation(), seed=3)
    assert len(images) == 3 and images.names == ["circle", "square"]
    assert images.labels(0).tolist() == [[0, 0.5, 0.5, 0.5, 0.5], [1, 0.2, 0.3, 0.2, 0.2]]
    assert images.labels(2).shape == (0, 5)  # no label file: no objects
    assert images.box_sides().tolist() == [[0.5, 0.5], [0.2, 0.2], [0.4, 0.3]]


def test_a_batch_is_collated_at_the_size_asked(data_file):
    images = LabelledImages.from_source(data_file, augmentation=Augmentation())
    for size in (32, 64):  # multi-scale: the size of each batch is the caller's
        pictures, boxes, counts = images.batch([0, 1, 2], size, draws=[10, 11, 12])
        assert pictures.shape == (3, 3, size, size) and pictures.dtype == torch.float32
        assert boxes.shape[0] == 3 and boxes.shape[2] == 5 and counts.tolist()[2] == 0
        assert 0 <= float(pictures.min()) and float(pictures.max()) <= 1


def test_a_batch_is_a_pure_function_of_seed_indices_size_and_draws(data_file):
    first = LabelledImages.from_source(data_file, augmentation=Augmentation(), seed=5)
    again = LabelledImages.from_source(data_file, augmentation=Augmentation(), seed=5)  # e.g. after a resume
    a, b = first.batch([1, 0], 32, [7, 8]), again.batch([1, 0], 32, [7, 8])
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)
    assert not torch.equal(first.batch([1, 0], 32, [7, 9])[0][1], a[0][1])  # another draw, another augmentation
    assert torch.equal(first.batch([1, 0], 32, [7, 9])[0][0], a[0][0])  # the other picture's is untouched
    other_seed = LabelledImages.from_source(data_file, augmentation=Augmentation(), seed=6)
    assert not torch.equal(other_seed.batch([1, 0], 32, [7, 8])[0], a[0])


def test_an_item_is_the_augmentation_with_the_documented_generator(data_file):
    images = LabelledImages.from_source(data_file, augmentation=Augmentation(), seed=5)
    picture, boxes = images.item(0, 32, draw=4)
    rng = np.random.default_rng([5, AUGMENT_STREAM, 4, 0])
    expected, rows = augment_detection(image_tensor(read_image(images.paths[0])).numpy(), images.labels(0), 32,
                                       Augmentation(), rng)  # fmt: skip
    assert torch.equal(picture, torch.from_numpy(expected))
    assert torch.equal(boxes, torch.from_numpy(rows.astype(np.float32)))


def test_without_augmentation_a_picture_is_letterboxed_and_its_boxes_follow(data_file):
    images = LabelledImages.from_source(data_file)  # augmentation=None: validation
    picture, boxes = images.item(0, 16)
    expected, _ = letterbox_image(image_tensor(read_image(images.paths[0])), 16, 16)
    assert torch.equal(picture, expected)
    # 20 x 10 into 16: 16 x 8 at pad_top 4; cy = (.5 * 8 + 4) / 16 = .5, h = .5 * 8 / 16 = .25;
    # the second box: cy = (.3 * 8 + 4) / 16 = .4, h = .2 * 8 / 16 = .1
    np.testing.assert_allclose(boxes.numpy(), [[0, 0.5, 0.5, 0.5, 0.25], [1, 0.2, 0.4, 0.2, 0.1]], rtol=0, atol=1e-7)
    assert torch.equal(images.item(0, 16, draw=99)[0], picture)  # no randomness


def test_no_decoded_picture_is_kept(data_file):
    images = LabelledImages.from_source(data_file, augmentation=Augmentation())
    size_before = len(pickle.dumps(images))  # what a DataLoader worker receives
    for step in range(3):
        images.batch([0, 1, 2], 64, [3 * step, 3 * step + 1, 3 * step + 2])
    assert len(pickle.dumps(images)) == size_before < 2000  # paths and 3 rows, not 3 x 64 x 64 pixels
    assert not any(isinstance(v, (torch.Tensor, list)) and len(v) > 3 for v in vars(images).values())


def test_a_copy_for_validation_shares_the_index(data_file):
    train = LabelledImages.from_source(data_file, augmentation=Augmentation())
    valid = train.with_augmentation(None)
    assert valid.augmentation is None and train.augmentation == Augmentation() and valid.rows is train.rows


def test_a_picture_that_cannot_be_decoded_is_named(data_file):
    images = LabelledImages.from_source(data_file, augmentation=Augmentation())
    Path(images.paths[1]).write_bytes(b"not a picture")
    with pytest.raises(ValueError, match="cannot read .*tall.jpg as an image"):
        images.batch([0, 1], 32, [0, 1])


def test_mismatched_inputs_are_refused(data_file):
    with pytest.raises(ValueError, match="one label array per picture"):
        LabelledImages(["a.png"], [])
    images = LabelledImages.from_source(data_file)
    with pytest.raises(ValueError, match="one draw per picture"):
        images.batch([0, 1], 32, [0])
    with pytest.raises(ValueError, match="positive whole number of pixels"):
        images.item(0, 0)
