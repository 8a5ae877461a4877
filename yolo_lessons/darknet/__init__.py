"""What reads and writes Darknet's own files, and fetches the large ones.

May import ``models``, ``data`` and ``losses``; never a command, a checkpoint or plotting:

* ``weights``: Darknet's ``.weights`` format, read into the book's networks layer by layer in
  cfg order, and written back;
* ``book_weights``: the small YOLOv2 the book trained, shipped as a ``.weights`` file
  (``yolo_lessons/weights/``), and the layer order that reads it;
* ``coco``: the 80 class names of Darknet's ``coco.names``, in YOLOv3's output order;
* ``names``: the 20 VOC class names of Darknet's ``voc.names``;
* ``cfg``: Darknet's ``.cfg`` files read as Darknet reads them, and the network they describe
  built (``build_network``), for the layer types of the book's networks and the tiny ones;
* ``download``: the original ``yolov3.weights`` (and ``yolov3-tiny.weights``), fetched only where
  allowed, cached and checked by size and MD5; and the experiment results the book commits, read
  from the checkout or the repository.
"""

from .book_weights import BOOK_ANCHORS, BOOK_WEIGHTS, load_book_model
from .cfg import CfgError, CfgNetwork, build_network, parse_cfg
from .coco import COCO_CLASSES
from .download import YOLOV3_TINY_WEIGHTS, find_weights, find_yolov3_weights, stored_json
from .names import VOC_CLASSES
from .weights import (
    DarknetHeader,
    WeightedLayer,
    darknet_float_count,
    darknet_layers,
    load_darknet_weights,
    read_darknet_header,
    save_darknet_weights,
)

__all__ = [
    "BOOK_ANCHORS",
    "BOOK_WEIGHTS",
    "COCO_CLASSES",
    "CfgError",
    "CfgNetwork",
    "VOC_CLASSES",
    "DarknetHeader",
    "WeightedLayer",
    "build_network",
    "darknet_float_count",
    "darknet_layers",
    "YOLOV3_TINY_WEIGHTS",
    "find_weights",
    "find_yolov3_weights",
    "load_book_model",
    "load_darknet_weights",
    "parse_cfg",
    "read_darknet_header",
    "save_darknet_weights",
    "stored_json",
]
