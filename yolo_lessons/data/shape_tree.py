"""YOLO9000's data in miniature: a WordTree over the book's shapes, coarse boxes and fine labels.

YOLO9000 trains on COCO (boxes, labels at a coarse level: "dog") and ImageNet (no boxes, fine
labels: "Norfolk terrier") at once, the two joined by one class tree. Here:

* ``SHAPE_TREE``: 27 nodes in three levels, kind -> colour family -> colour:
  ``circle``, ``square``, ``triangle`` (the roots, group 0); under each a ``warm_`` and a
  ``cool_`` node (``warm_circle``, ...); under ``warm_*`` the colours red, orange, yellow and
  under ``cool_*`` green, blue, purple (``red_circle``, ...), the 18 leaves. Ten groups: the
  roots, three pairs of families, six triples of colours.
* ``make_detection_image``: the "COCO" images, 1..``max_objects`` shapes in ``PALETTE`` colours
  with boxes labelled by kind only (``SHAPE_CLASSES`` positions; ``DETECTION_MAP`` maps them to
  the tree, as the cfg's ``map=data/coco9k.map`` does), plus each object's true leaf, for
  measuring only -- never a training label.
* ``make_classification_image``: the "ImageNet" images, one larger shape labelled at its leaf,
  written as Darknet writes a label without a box, ``leaf 0 0 0 0`` (plus the true box, for
  measuring only).
* ``ShapeTreeDataset`` mixes the two and ``collate_tree`` batches them with the flag
  ``class_only`` that ``losses.tree_region_loss`` reads.

Everything is a pure function of (index, seed): detection image i of a seed is ``draw_shapes``
image 2i of that seed, classification image i is image 2i + 1, so the two never share a picture.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..models.wordtree import WordTree
from .shapes import SHAPE_CLASSES, check_image_size, collate, draw_shapes

PALETTE = {  # name: RGB in [0, 1], far apart so that each stays recognisable after jitter and shading
    "red": (0.85, 0.12, 0.10),
    "orange": (0.96, 0.55, 0.08),
    "yellow": (0.95, 0.88, 0.12),
    "green": (0.12, 0.66, 0.18),
    "blue": (0.12, 0.30, 0.90),
    "purple": (0.55, 0.16, 0.76),
}
COLOUR_FAMILIES = {"warm": ("red", "orange", "yellow"), "cool": ("green", "blue", "purple")}
LEVELS = ("kind", "family", "colour")  # the name of each depth of SHAPE_TREE
CLASSIFICATION_SIDES = (0.3, 0.7)  # a classification image's one shape is large, as ImageNet's objects are


def _shape_tree_mapping() -> dict[str, str | None]:
    mapping: dict[str, str | None] = {kind: None for kind in SHAPE_CLASSES}
    for kind in SHAPE_CLASSES:
        for family in COLOUR_FAMILIES:
            mapping[f"{family}_{kind}"] = kind
    for kind in SHAPE_CLASSES:
        for family, colours in COLOUR_FAMILIES.items():
            for colour in colours:
                mapping[f"{colour}_{kind}"] = f"{family}_{kind}"
    return mapping


SHAPE_TREE = WordTree.from_mapping(_shape_tree_mapping())
DETECTION_MAP = tuple(SHAPE_TREE.index(kind) for kind in SHAPE_CLASSES)  # the node of each detection class
_PALETTE_RGB = tuple(PALETTE.values())
_PALETTE_NAMES = tuple(PALETTE)


def leaf_node(kind: str, colour: str) -> int:
    """The node of a shape of ``kind`` (a ``SHAPE_CLASSES`` name) in ``colour`` (a ``PALETTE`` name)."""
    if kind not in SHAPE_CLASSES or colour not in PALETTE:
        raise ValueError(f"expected a kind among {SHAPE_CLASSES} and a colour among {tuple(PALETTE)}, "
                         f"got {kind!r}, {colour!r}")
    return SHAPE_TREE.index(f"{colour}_{kind}")


def _check_positive(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"expected a positive integer {name}, got {value!r}")


def _check_index_seed(index: int, seed: int) -> None:
    for name, value in (("index", index), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"expected a non-negative integer {name}, got {value!r}")


def _leaves(boxes: np.ndarray, colours: np.ndarray) -> np.ndarray:
    kinds = boxes[:, 0].astype(np.int64)
    return np.array([leaf_node(SHAPE_CLASSES[k], _PALETTE_NAMES[c]) for k, c in zip(kinds, colours, strict=True)],
                    dtype=np.int64)


def make_detection_image(
    index: int, seed: int = 0, size: int = 96, *, max_objects: int = 4
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Detection image ``index`` of ``seed``: (image, boxes, leaves).

    image: (3, size, size) float32 in [0, 1]. boxes: (M, 5) float32 rows (kind, cx, cy, w, h),
    the kind a ``SHAPE_CLASSES`` position (a detection class: the tree node is
    ``DETECTION_MAP[kind]``), coordinates fractions of the image. leaves: (M,) int64, the node of
    each object's true colour and kind in ``SHAPE_TREE``, to measure a model by level; a
    detection label never says it.
    """
    _check_index_seed(index, seed)
    image, boxes, colours = draw_shapes(2 * int(index), seed, size, max_objects=max_objects, palette=_PALETTE_RGB)
    return image, boxes, _leaves(boxes, colours)


def make_classification_image(index: int, seed: int = 0, size: int = 96) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Classification image ``index`` of ``seed``: (image, boxes, box).

    One shape, its sides between ``CLASSIFICATION_SIDES`` of the image. boxes: (1, 5) float32,
    the row (leaf, 0, 0, 0, 0) -- Darknet's label line for an image without a box -- with the
    leaf a node of ``SHAPE_TREE``. box: (4,) float32 cx, cy, w, h of the drawn shape, to measure
    only; training never reads it.
    """
    _check_index_seed(index, seed)
    low, high = CLASSIFICATION_SIDES
    image, boxes, colours = draw_shapes(
        2 * int(index) + 1, seed, size, max_objects=1, min_side=low, max_side=high, palette=_PALETTE_RGB
    )
    if len(boxes) != 1:  # cannot happen: one large shape always finds a place
        raise RuntimeError(f"classification image {index} of seed {seed} holds {len(boxes)} shapes, expected 1")
    label = np.zeros((1, 5), dtype=np.float32)
    label[0, 0] = _leaves(boxes, colours)[0]
    return image, label, boxes[0, 1:].copy()


def is_class_only(index: int, classification_share: float) -> bool:
    """Whether item ``index`` of a ``ShapeTreeDataset`` is a classification image: the items are
    interleaved evenly, ``floor((index + 1) * share) > floor(index * share)``."""
    return int(np.floor((index + 1) * classification_share)) > int(np.floor(index * classification_share))


class ShapeTreeDataset(Dataset):
    """``length`` images mixing both kinds: item i is (image, boxes, class_only).

    A share ``classification_share`` of the items (evenly interleaved, ``is_class_only``) is
    ``make_classification_image(i, seed, size)``, the others ``make_detection_image(i, seed,
    size)``; image (3, size, size) float32, boxes (M, 5) float32, class_only a bool. The paper's
    mix is 4 classification images to 1 detection image (share 0.8).
    """

    def __init__(
        self, length: int, size: int = 96, seed: int = 0, *, classification_share: float = 0.5, max_objects: int = 4
    ):
        _check_positive("length", length)
        check_image_size(size)
        _check_positive("max_objects", max_objects)
        if isinstance(classification_share, bool) or not isinstance(classification_share, (int, float)) or not (
            0.0 <= classification_share <= 1.0
        ):
            raise ValueError(f"expected a classification_share in [0, 1], got {classification_share!r}")
        _check_index_seed(0, seed)
        self.length, self.size, self.seed = int(length), int(size), int(seed)
        self.classification_share = float(classification_share)
        self.max_objects = int(max_objects)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, bool]:
        if not -self.length <= index < self.length:
            raise IndexError(f"index {index} out of range for a dataset of {self.length} images")
        index %= self.length
        if is_class_only(index, self.classification_share):
            image, boxes, _ = make_classification_image(index, self.seed, self.size)
            return torch.from_numpy(image), torch.from_numpy(boxes), True
        image, boxes, _ = make_detection_image(index, self.seed, self.size, max_objects=self.max_objects)
        return torch.from_numpy(image), torch.from_numpy(boxes), False


def collate_tree(batch: Sequence[tuple[Tensor, Tensor, bool]]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Batch ``ShapeTreeDataset`` items: images (N, 3, S, S), boxes (N, M, 5) zero-padded and
    counts (N,) int64 as ``shapes.collate``, and class_only (N,) bool."""
    if len(batch) == 0:
        raise ValueError("expected a non-empty batch of (image, boxes, class_only) items, got an empty one")
    images, boxes, counts = collate([(image, boxes) for image, boxes, _ in batch])
    class_only = torch.tensor([bool(flag) for _, _, flag in batch], dtype=torch.bool)
    return images, boxes, counts, class_only
