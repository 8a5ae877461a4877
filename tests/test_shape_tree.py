"""The WordTree over the book's shapes (data.shape_tree) and the palette option of data.shapes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from yolo_lessons.data.shape_tree import (
    DETECTION_MAP,
    LEVELS,
    PALETTE,
    SHAPE_TREE,
    ShapeTreeDataset,
    collate_tree,
    is_class_only,
    leaf_node,
    make_classification_image,
    make_detection_image,
)
from yolo_lessons.data.shapes import SHAPE_CLASSES, draw_shapes, make_image
from yolo_lessons.losses.tree_region_loss import tree_region_loss
from yolo_lessons.models.wordtree import read_tree


def test_shape_tree_has_three_levels_kind_family_colour():
    tree = SHAPE_TREE
    assert (len(tree), tree.num_groups, sum(tree.leaf)) == (27, 10, 18)  # 3 + 6 + 18 nodes
    assert tree.names[:3] == SHAPE_CLASSES and tree.group_size == (3, 2, 2, 2, 3, 3, 3, 3, 3, 3)
    assert [tree.names[i] for i in tree.path(leaf_node("triangle", "blue"))] == [
        "triangle", "cool_triangle", "blue_triangle"
    ]
    assert tree.max_depth == len(LEVELS) - 1
    assert all(tree.leaf[i] == (tree.depth[i] == 2) for i in range(len(tree)))
    assert read_tree(tree.lines()) == tree  # it writes as a Darknet .tree file
    assert DETECTION_MAP == (0, 1, 2)  # the kinds are the roots, in SHAPE_CLASSES order


def test_draw_shapes_without_a_palette_is_make_image_pixel_for_pixel():
    for index in range(4):
        image, boxes = make_image(index, 3)
        drawn, drawn_boxes, colours = draw_shapes(index, 3)
        assert np.array_equal(image, drawn) and np.array_equal(boxes, drawn_boxes)
        assert colours.tolist() == [-1] * len(boxes)


def test_draw_shapes_with_a_palette_paints_the_reported_colour():
    palette = list(PALETTE.values())
    image, boxes, colours = draw_shapes(5, 0, 96, max_objects=1, min_side=0.3, max_side=0.6, palette=palette)
    cx, cy = int(boxes[0, 1] * 96), int(boxes[0, 2] * 96)
    centre = image[:, cy - 1: cy + 2, cx - 1: cx + 2].mean(axis=(1, 2))
    nearest = int(np.argmin(np.linalg.norm(np.asarray(palette) - centre, axis=1)))
    assert nearest == colours[0]


@pytest.mark.parametrize("palette", [[(0.5, 0.5)], [(1.2, 0.0, 0.0)], []])
def test_a_bad_palette_is_refused(palette):
    with pytest.raises(ValueError, match="palette of RGB triples"):
        draw_shapes(0, 0, palette=palette)


def test_detection_images_are_labelled_by_kind_and_know_their_true_leaves():
    image, boxes, leaves = make_detection_image(0, 0)
    again = make_detection_image(0, 0)
    assert np.array_equal(image, again[0]) and np.array_equal(boxes, again[1])
    assert image.shape == (3, 96, 96) and boxes.shape[1] == 5 and leaves.shape == (len(boxes),)
    for kind, leaf in zip(boxes[:, 0].astype(int), leaves, strict=True):
        assert SHAPE_TREE.leaf[leaf] and SHAPE_TREE.path(leaf)[0] == DETECTION_MAP[kind]


def test_classification_images_hold_one_shape_labelled_at_its_leaf_without_a_box():
    seen_leaves = set()
    for index in range(60):
        image, boxes, box = make_classification_image(index, 1)
        assert boxes.shape == (1, 5) and boxes[0, 1:].tolist() == [0.0, 0.0, 0.0, 0.0]  # Darknet's "leaf 0 0 0 0"
        leaf = int(boxes[0, 0])
        assert SHAPE_TREE.leaf[leaf]
        seen_leaves.add(leaf)
        assert box.shape == (4,) and 0 < box[2] <= 1 and 0 < box[3] <= 1
    assert len(seen_leaves) >= 15  # of 18: the leaves are drawn uniformly


def test_the_colour_at_a_classification_shape_s_centre_is_its_leaf_s_colour():
    names, rgb = list(PALETTE), np.asarray(list(PALETTE.values()))
    for index in range(20):
        image, boxes, box = make_classification_image(index, 0)
        cx, cy = int(box[0] * 96), int(box[1] * 96)
        centre = image[:, cy - 1: cy + 2, cx - 1: cx + 2].mean(axis=(1, 2))  # 3x3 pixels
        nearest = names[int(np.argmin(np.linalg.norm(rgb - centre, axis=1)))]
        assert SHAPE_TREE.names[int(boxes[0, 0])].startswith(nearest + "_")


def test_detection_and_classification_images_never_share_a_picture():
    assert not np.array_equal(make_detection_image(0, 0)[0], make_classification_image(0, 0)[0])


def test_items_interleave_evenly_by_the_classification_share():
    assert [is_class_only(i, 0.5) for i in range(4)] == [False, True, False, True]
    assert sum(is_class_only(i, 0.8) for i in range(100)) == 80  # the paper's 4:1
    assert not any(is_class_only(i, 0.0) for i in range(10)) and all(is_class_only(i, 1.0) for i in range(10))


def test_collated_batches_feed_the_tree_loss():
    data = ShapeTreeDataset(6, seed=2, classification_share=0.5)
    images, boxes, counts, class_only = collate_tree([data[i] for i in range(6)])
    assert images.shape == (6, 3, 96, 96) and class_only.tolist() == [False, True] * 3
    assert counts[class_only].tolist() == [1, 1, 1] and boxes.shape[0] == 6
    output = torch.zeros(6, 2 * (5 + len(SHAPE_TREE)), 3, 3)
    result = tree_region_loss(output, boxes, counts, [(1.0, 1.0), (2.0, 2.0)], SHAPE_TREE, seen=0,
                              class_only=class_only, class_map=DETECTION_MAP)
    assert torch.isfinite(result.loss) and result.parts["class"] > 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"length": 0}, "positive integer length"), ({"length": 4, "classification_share": 1.5}, "in \\[0, 1\\]"),
     ({"length": 4, "size": 100}, "multiple of 32")],
)
def test_dataset_arguments_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ShapeTreeDataset(**kwargs)
