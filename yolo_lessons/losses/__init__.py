"""What a network is trained with: the losses of Darknet's ``[region]`` and ``[yolo]`` layers.

May import ``models``; never data, detection, Darknet-file or command code:

* ``region_loss``: YOLOv2's loss, term by term as ``forward_region_layer`` writes its deltas;
* ``yolo_loss``: YOLOv3's, as ``forward_yolo_layer`` does, with its three-scale assignment;
* ``tree_region_loss``: YOLO9000's, the ``[region]`` loss with a WordTree (``tree=``, ``map=``) on
  detection and classification-only images, with options that follow the paper where Darknet does not;
* ``boxes``: the box decoding and Darknet's centre-size IoU that both losses use;
* ``region_port``: ``darknet_region_delta``, a loop-by-loop port of ``forward_region_layer``, slow
  and readable beside the C: the reference ``region_loss`` is tested against (chapter 7 runs it).
"""

from .boxes import centre_size_iou, decode_boxes
from .region_loss import RegionLoss, region_loss
from .tree_region_loss import tree_region_loss
from .yolo_loss import YoloAssignment, YoloLoss, assign_yolo_targets, yolo_loss

__all__ = [
    "RegionLoss",
    "YoloAssignment",
    "YoloLoss",
    "assign_yolo_targets",
    "centre_size_iou",
    "decode_boxes",
    "region_loss",
    "tree_region_loss",
    "yolo_loss",
]
