"""What feeds a network: images and their boxes, shaped the way Darknet shapes them.

May import ``models``; never a loss, detection, Darknet-file or command module (today it needs none
of ours at all):

* ``shapes``: the book's synthetic training set, seeded images of circles, squares and
  triangles with their boxes (``make_image``, ``ShapesDataset``, ``collate``);
* ``letterbox``: Darknet's ``letterbox_image`` (resize keeping the aspect, pad with grey) and
  the box mapping between the original image and the network input;
* ``images``: a picture (a PIL image or an array) as the tensor batch a model takes, and
  ``read_image``, an image file as an upright RGB array;
* ``anchors``: k-means over box shapes with Darknet's 1 - IoU distance, for a model's anchors;
* ``datasets``: labelled pictures in Darknet's format (``.data``, list, ``.names`` and label files);
* ``check``: every problem of a labelled set with its file and line, before a run
  (``python -m yolo_lessons.data check my.data``).
"""

from .anchors import box_shape_iou, kmeans_anchors, mean_best_iou, to_grid_cells
from .check import DatasetReport, check_dataset
from .datasets import LabelledSet, darknet_label_path, load_labelled_set, read_labels, read_names
from .images import image_batch, image_tensor, read_image
from .letterbox import Letterbox, boxes_to_image, boxes_to_network, letterbox_image, network_input
from .shapes import SHAPE_CLASSES, ShapesDataset, collate, make_image

__all__ = [
    "SHAPE_CLASSES",
    "DatasetReport",
    "LabelledSet",
    "Letterbox",
    "ShapesDataset",
    "box_shape_iou",
    "boxes_to_image",
    "boxes_to_network",
    "check_dataset",
    "collate",
    "darknet_label_path",
    "image_batch",
    "image_tensor",
    "kmeans_anchors",
    "letterbox_image",
    "load_labelled_set",
    "make_image",
    "mean_best_iou",
    "network_input",
    "read_image",
    "read_labels",
    "read_names",
    "to_grid_cells",
]
