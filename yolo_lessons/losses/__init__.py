"""What a network is trained with: the losses of Darknet's ``[region]`` and ``[yolo]`` layers.

May import ``models``; never data, detection, Darknet-file or command code:

* ``region_loss``: YOLOv2's loss, term by term as ``forward_region_layer`` writes its deltas;
* ``yolo_loss``: YOLOv3's, as ``forward_yolo_layer`` does, with its three-scale assignment;
* ``boxes``: the box decoding and Darknet's centre-size IoU that both losses use.
"""

from .boxes import centre_size_iou, decode_boxes
from .region_loss import RegionLoss, region_loss
from .yolo_loss import YoloAssignment, YoloLoss, assign_yolo_targets, yolo_loss

__all__ = [
    "RegionLoss",
    "YoloAssignment",
    "YoloLoss",
    "assign_yolo_targets",
    "centre_size_iou",
    "decode_boxes",
    "region_loss",
    "yolo_loss",
]
