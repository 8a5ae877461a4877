"""The original COCO weights on a real photograph: run only where the files are present.

CI has no internet and ships no weights, so these tests skip there (one line each says
why). Where ``YOLO_WEIGHTS`` names ``yolov3.weights``, or ``yolov2.weights`` is in the cache
(``YOLO_CACHE``, as chapter 9's Colab cell leaves it), they run the path chapter 9 shows and
check that the network finds the person in matplotlib's photograph of Grace Hopper: a
mapping bug (a layer in the wrong order, β and γ swapped, the wrong fold) finds nothing there.
"""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib import cbook
from PIL import Image

from yolo_lessons.darknet.coco import COCO_CLASSES
from yolo_lessons.darknet.download import YOLOV2_WEIGHTS, find_weights, find_yolov3_weights
from yolo_lessons.darknet.weights import load_darknet_weights
from yolo_lessons.detection.inference import detect
from yolo_lessons.models.yolov2 import COCO_ANCHORS_V2, yolov2
from yolo_lessons.models.yolov3 import yolov3


def photo() -> np.ndarray:
    return np.asarray(Image.open(cbook.get_sample_data("grace_hopper.jpg")).convert("RGB"))  # (600, 512, 3)


def assert_finds_the_person(found, image: np.ndarray) -> None:
    """A person above Darknet's 0.5 whose box holds the middle of the portrait."""
    height, width = image.shape[:2]
    people = [box for box, name in zip(found.boxes.tolist(), found.names, strict=True) if name == "person"]
    assert people, f"no person above 0.5 in the photograph; found {found.names}"
    assert any(x1 < width / 2 < x2 and y1 < height / 2 < y2 for x1, y1, x2, y2 in people), people


def test_yolov3_with_its_coco_weights_finds_grace_hopper():
    path, message = find_yolov3_weights(progress=False)
    if path is None:
        pytest.skip(message)
    model = yolov3().eval()
    load_darknet_weights(model, path)
    image = photo()
    assert_finds_the_person(detect(model, image, 416, class_names=COCO_CLASSES), image)


def test_yolov2_with_its_coco_weights_and_darknets_fold_finds_grace_hopper():
    path, message = find_weights(YOLOV2_WEIGHTS, progress=False)
    if path is None:
        pytest.skip(message)
    model = yolov2(len(COCO_CLASSES), COCO_ANCHORS_V2).eval()
    load_darknet_weights(model, path)
    image = photo()
    assert_finds_the_person(detect(model, image, 608, class_names=COCO_CLASSES), image)
