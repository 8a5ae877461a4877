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
from .decode import Detections, box_corners, darknet_to_cell_major, decode_yolov1, decode_yolov2, decode_yolov3
from .resnet import RESNET50_STAGES, Bottleneck, ResNet, load_torchvision_state_dict, resnet50
from .yolov1 import (
    YOLOV1_STAGES,
    YOLOv1,
    YOLOv1ResNet50,
    yolov1,
    yolov1_output_length,
    yolov1_resnet50,
)
from .yolov2 import COCO_ANCHORS_V2, VOC_ANCHORS, YOLOv2, yolov2
from .yolov3 import ANCHOR_MASKS, COCO_ANCHORS, STRIDES, YOLOv3, conv_set, detector, yolov3

__version__ = "0.1.0"

__all__ = [
    "ANCHOR_MASKS",
    "COCO_ANCHORS",
    "COCO_ANCHORS_V2",
    "DARKNET19_STAGES",
    "DARKNET53_STAGES",
    "RESNET50_STAGES",
    "STRIDES",
    "VOC_ANCHORS",
    "YOLOV1_STAGES",
    "Bottleneck",
    "ConvBlock",
    "Darknet19",
    "Darknet53",
    "Detections",
    "ResNet",
    "ResidualBlock",
    "YOLOv1",
    "YOLOv1ResNet50",
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
    "darknet_to_cell_major",
    "decode_yolov1",
    "decode_yolov2",
    "decode_yolov3",
    "detector",
    "load_torchvision_state_dict",
    "model_summary",
    "resnet50",
    "space_to_depth",
    "yolov1",
    "yolov1_output_length",
    "yolov1_resnet50",
    "yolov2",
    "yolov3",
]
