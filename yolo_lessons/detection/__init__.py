"""What turns a network's output into boxes, and how good those boxes are.

May import ``models``, ``data`` and ``losses``; never a command, a checkpoint or plotting:

* ``decode``: raw head outputs of YOLOv1, YOLOv2 and YOLOv3 as boxes, objectness and class
  probabilities, as Darknet's ``get_*_detections`` compute them;
* ``nms``: Darknet's scores and thresholds, IoU of corner boxes, per-class non-maximum
  suppression (a literal loop kept beside the fast one), and ``postprocess`` from decoded
  predictions to each image's detections;
* ``metrics``: VOC mean average precision, all-point and 11-point, as the devkit computes it
  (difficult objects and its pixel rule as options);
* ``coco_ap``: COCO's AP@[.5:.95], AP50, AP75 and AP by area, as pycocotools computes them;
* ``size_ap``: average precision by object size, in the book's own size buckets;
* ``hierarchy``: naming a box with a WordTree, as YOLO9000 does: ``hierarchy_predictions``
  (absolute probabilities), ``hierarchy_top_prediction`` (Darknet's descent, and the paper's
  rule as an option) and ``decode_yolo9000``;
* ``inference``: ``detect``, one call from a picture to its boxes in the picture's pixels, as
  ``./darknet detector test`` goes (the detect command and the chapters use it).
"""

from .coco_ap import CocoAP, coco_average_precision
from .decode import (
    Detections,
    box_corners,
    darknet_to_cell_major,
    decode_yolov1,
    decode_yolov2,
    decode_yolov3,
)
from .hierarchy import decode_yolo9000, hierarchy_predictions, hierarchy_top_prediction
from .inference import Found, decode_model_output, detect
from .metrics import GroundTruth, mean_average_precision
from .nms import ImageDetections, box_iou, darknet_scores, nms, nms_reference, postprocess
from .size_ap import SIZE_BUCKETS, ap_by_size

__all__ = [
    "SIZE_BUCKETS",
    "CocoAP",
    "Detections",
    "Found",
    "GroundTruth",
    "ImageDetections",
    "ap_by_size",
    "box_corners",
    "box_iou",
    "coco_average_precision",
    "darknet_scores",
    "darknet_to_cell_major",
    "decode_yolov1",
    "decode_yolov2",
    "decode_yolov3",
    "decode_model_output",
    "decode_yolo9000",
    "detect",
    "hierarchy_predictions",
    "hierarchy_top_prediction",
    "mean_average_precision",
    "nms",
    "nms_reference",
    "postprocess",
]
