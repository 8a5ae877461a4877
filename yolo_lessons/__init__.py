"""yolo_lessons: the companion package of the book *YOLO from Scratch*.

Darknet-19, YOLOv2, Darknet-53 and YOLOv3, built to match the original Darknet
configurations layer for layer, plus the helpers the chapters use to count and decode;
then what makes them detect: synthetic training data, k-means anchors, the losses exact
to Darknet's ``[region]`` and ``[yolo]`` layers, NMS, mAP, the letterbox, and Darknet's
``.weights`` files. The training command (``python -m yolo_lessons.train``) is not
imported here, so importing a model never pulls in training code.
"""

from .anchors import box_shape_iou, kmeans_anchors, mean_best_iou, to_grid_cells
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
from .darknet_weights import (
    DarknetHeader,
    WeightedLayer,
    darknet_float_count,
    darknet_layers,
    load_darknet_weights,
    read_darknet_header,
    save_darknet_weights,
)
from .data import SHAPE_CLASSES, ShapesDataset, collate, make_image
from .decode import Detections, box_corners, darknet_to_cell_major, decode_yolov1, decode_yolov2, decode_yolov3
from .images import image_batch, image_tensor
from .letterbox import Letterbox, boxes_to_image, boxes_to_network, letterbox_image, network_input
from .metrics import GroundTruth, mean_average_precision
from .nms import ImageDetections, box_iou, darknet_scores, nms, nms_reference, postprocess
from .region_loss import RegionLoss, region_loss
from .resnet import RESNET50_STAGES, Bottleneck, ResNet, load_torchvision_state_dict, resnet50
from .small_yolov2 import SmallYOLOv2, small_yolov2
from .small_yolov3 import SmallYOLOv3, small_yolov3
from .yolo_loss import YoloAssignment, YoloLoss, assign_yolo_targets, yolo_loss
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
    "SHAPE_CLASSES",
    "STRIDES",
    "VOC_ANCHORS",
    "YOLOV1_STAGES",
    "Bottleneck",
    "ConvBlock",
    "Darknet19",
    "Darknet53",
    "DarknetHeader",
    "Detections",
    "GroundTruth",
    "ImageDetections",
    "Letterbox",
    "RegionLoss",
    "ResNet",
    "ResidualBlock",
    "ShapesDataset",
    "SmallYOLOv2",
    "SmallYOLOv3",
    "WeightedLayer",
    "YOLOv1",
    "YOLOv1ResNet50",
    "YOLOv2",
    "YOLOv3",
    "YoloAssignment",
    "YoloLoss",
    "assign_yolo_targets",
    "box_corners",
    "box_iou",
    "box_shape_iou",
    "boxes_to_image",
    "boxes_to_network",
    "check_image_batch",
    "collate",
    "conv_set",
    "count_bn_statistics",
    "count_multiply_adds",
    "count_parameters",
    "count_weighted_layers",
    "darknet19",
    "darknet53",
    "darknet_float_count",
    "darknet_layers",
    "darknet_reorg",
    "darknet_scores",
    "darknet_to_cell_major",
    "decode_yolov1",
    "decode_yolov2",
    "decode_yolov3",
    "detector",
    "image_batch",
    "image_tensor",
    "kmeans_anchors",
    "letterbox_image",
    "load_darknet_weights",
    "load_torchvision_state_dict",
    "make_image",
    "mean_average_precision",
    "mean_best_iou",
    "model_summary",
    "network_input",
    "nms",
    "nms_reference",
    "postprocess",
    "read_darknet_header",
    "region_loss",
    "resnet50",
    "save_darknet_weights",
    "small_yolov2",
    "small_yolov3",
    "space_to_depth",
    "to_grid_cells",
    "yolo_loss",
    "yolov1",
    "yolov1_output_length",
    "yolov1_resnet50",
    "yolov2",
    "yolov3",
]
