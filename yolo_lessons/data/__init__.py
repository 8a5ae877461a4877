"""What feeds a network: images and their boxes, shaped the way Darknet shapes them.

May import ``models``; never a loss, detection, Darknet-file or command module (only ``shape_tree``
imports one of ours, ``models.wordtree``):

* ``shapes``: the book's synthetic training set, seeded images of circles, squares and
  triangles with their boxes (``make_image``, ``ShapesDataset``, ``collate``; ``draw_shapes``
  also says each shape's colour, drawn from a palette if given);
* ``shape_tree``: YOLO9000's data in miniature, ``SHAPE_TREE`` (kind -> colour family -> colour),
  detection images labelled by kind and classification-only images labelled at the leaf
  (``make_detection_image``, ``make_classification_image``, ``ShapeTreeDataset``, ``collate_tree``);
* ``letterbox``: Darknet's ``letterbox_image`` (resize keeping the aspect, pad with grey) and
  the box mapping between the original image and the network input;
* ``images``: a picture (a PIL image or an array) as the tensor batch a model takes, and
  ``read_image``, an image file as an upright RGB array;
* ``anchors``: k-means over box shapes with Darknet's 1 - IoU distance, for a model's anchors;
* ``datasets``: labelled pictures in Darknet's format (``.data``, list, ``.names`` and label files);
* ``check``: every problem of a labelled set with its file and line, before a run
  (``python -m yolo_lessons.data check my.data``);
* ``voc``: Pascal VOC's XML read directly (``read_voc``, difficult objects kept,
  ``voc_ground_truth`` for VOC's scoring) and converted to Darknet's files as ``voc_label.py``
  does (``voc_to_darknet``, ``python -m yolo_lessons.data convert``);
* ``augment``: Darknet's training augmentation, ``load_data_detection`` for one picture
  (``Augmentation``: jitter, hue, saturation, exposure, flip; ``augment_detection``), its random
  draws explicit (``draw_augmentation``, ``AugmentDraws``);
* ``multiscale``: Darknet's ``random=1``, a new input size every 10 steps (``multiscale_size``);
* ``loader``: labelled pictures on disk as training batches, a pure function of the seed and
  the draws, decoded only when a batch needs them (``LabelledImages``).
"""

from .anchors import box_shape_iou, kmeans_anchors, mean_best_iou, to_grid_cells
from .augment import Augmentation, AugmentDraws, augment_detection, augment_with_draws, draw_augmentation
from .check import DatasetReport, check_dataset
from .datasets import LabelledSet, darknet_label_path, load_labelled_set, read_labels, read_names
from .images import image_batch, image_tensor, read_image
from .letterbox import Letterbox, boxes_to_image, boxes_to_network, letterbox_image, network_input
from .loader import LabelledImages
from .multiscale import multiscale_size, multiscale_sizes
from .shape_tree import (
    DETECTION_MAP,
    PALETTE,
    SHAPE_TREE,
    ShapeTreeDataset,
    collate_tree,
    is_class_only,
    leaf_node,
    make_classification_image,
    make_detection_image,
)
from .shapes import SHAPE_CLASSES, ShapesDataset, collate, draw_shapes, make_image
from .voc import VOC_CLASSES, VocAnnotation, VocObject, read_annotation, read_voc, voc_ground_truth, voc_to_darknet

__all__ = [
    "DETECTION_MAP",
    "PALETTE",
    "SHAPE_CLASSES",
    "SHAPE_TREE",
    "VOC_CLASSES",
    "Augmentation",
    "AugmentDraws",
    "DatasetReport",
    "LabelledImages",
    "LabelledSet",
    "Letterbox",
    "ShapeTreeDataset",
    "ShapesDataset",
    "VocAnnotation",
    "VocObject",
    "augment_detection",
    "augment_with_draws",
    "box_shape_iou",
    "boxes_to_image",
    "boxes_to_network",
    "check_dataset",
    "collate",
    "collate_tree",
    "darknet_label_path",
    "draw_augmentation",
    "draw_shapes",
    "image_batch",
    "image_tensor",
    "is_class_only",
    "kmeans_anchors",
    "leaf_node",
    "letterbox_image",
    "load_labelled_set",
    "make_classification_image",
    "make_detection_image",
    "make_image",
    "mean_best_iou",
    "multiscale_size",
    "multiscale_sizes",
    "network_input",
    "read_annotation",
    "read_image",
    "read_labels",
    "read_names",
    "read_voc",
    "to_grid_cells",
    "voc_ground_truth",
    "voc_to_darknet",
]
