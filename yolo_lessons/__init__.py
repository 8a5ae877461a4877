"""yolo_lessons: the companion package of the book *YOLO from Scratch*.

Darknet-19, YOLOv2, Darknet-53 and YOLOv3, built to match the original Darknet
configurations layer for layer, plus the helpers the chapters use to count and decode.
"""

from .blocks import ConvBlock, ResidualBlock, check_image_batch, darknet_reorg, space_to_depth
from .counting import (
    count_bn_statistics,
    count_multiply_adds,
    count_parameters,
    count_weighted_layers,
    model_summary,
)
from .darknet19 import DARKNET19_STAGES, Darknet19, darknet19
from .darknet53 import DARKNET53_STAGES, Darknet53, darknet53
from .decode import Detections, box_corners, decode_yolov2, decode_yolov3
from .yolov2 import COCO_ANCHORS_V2, VOC_ANCHORS, YOLOv2, yolov2
from .yolov3 import ANCHOR_MASKS, COCO_ANCHORS, STRIDES, YOLOv3, conv_set, detector, yolov3

__version__ = "0.1.0"

__all__ = [
    "ANCHOR_MASKS",
    "COCO_ANCHORS",
    "COCO_ANCHORS_V2",
    "DARKNET19_STAGES",
    "DARKNET53_STAGES",
    "STRIDES",
    "VOC_ANCHORS",
    "ConvBlock",
    "Darknet19",
    "Darknet53",
    "Detections",
    "ResidualBlock",
    "YOLOv2",
    "YOLOv3",
    "box_corners",
    "check_image_batch",
    "conv_set",
    "count_bn_statistics",
    "count_multiply_adds",
    "count_parameters",
    "count_weighted_layers",
    "darknet19",
    "darknet53",
    "darknet_reorg",
    "decode_yolov2",
    "decode_yolov3",
    "detector",
    "model_summary",
    "space_to_depth",
    "yolov2",
    "yolov3",
]
