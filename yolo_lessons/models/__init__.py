"""What a network is: the layers, backbones and detectors of the book, and how to count them.

The bottom layer of the package; it imports nothing of ours from outside ``models``.
Building blocks first, then the backbones built of them, then the detectors built on those:

* ``blocks``: ``ConvBlock`` (conv + BatchNorm + leaky ReLU, Darknet's ``[convolutional]``),
  ``ResidualBlock`` (``[shortcut]``), and the passthrough reorders ``space_to_depth`` and
  ``darknet_reorg`` (``[reorg]``);
* backbones: ``darknet19`` (YOLOv2's), ``darknet53`` (YOLOv3's), ``resnet`` (ResNet-50, for the
  YOLOv1 variant on a pretrained trunk);
* detectors: ``yolov1``, ``yolov2``, ``yolov3``, exact to Darknet's cfgs, and the small ones the
  book trains on a laptop CPU, ``small_yolov2`` and ``small_yolov3``, and the tiny ones people
  deploy, ``tiny`` (``yolov2_tiny_voc``, ``yolov2_tiny``, ``yolov3_tiny``);
* ``folding``: ``fold_batchnorm``, every BatchNorm folded into its convolution for inference;
* ``fast``: ``fast``, a copy made ready for CPU inference (eval, folded, no gradients,
  optionally channels-last and ``torch.compile``), outputs equal to the original's;
* ``counting``: parameters, weighted layers, BatchNorm statistics, multiply-adds, and the
  ``torchinfo`` summary the chapters print;
* ``wordtree``: YOLO9000's class hierarchy, ``WordTree`` (``read_tree`` of a Darknet ``.tree``
  file, ``TreeError`` for a bad one), and its grouped softmax ``tree_softmax`` /
  ``tree_log_softmax``; ``region_tree_activations`` is a ``[region]`` head's output with a tree,
  the GPU build's or, as an option, the released CPU build's mis-indexed one.
"""

from .blocks import ConvBlock, DarknetMaxPool, ResidualBlock, check_image_batch, darknet_reorg, space_to_depth
from .counting import (
    count_bn_statistics,
    count_multiply_adds,
    count_parameters,
    count_weighted_layers,
    model_summary,
)
from .darknet19 import DARKNET19_STAGES, Darknet19, darknet19
from .darknet53 import DARKNET53_STAGES, Darknet53, darknet53
from .fast import fast
from .folding import fold_batchnorm
from .resnet import RESNET50_STAGES, Bottleneck, ResNet, load_torchvision_state_dict, resnet50
from .small_yolov2 import SmallYOLOv2, small_yolov2
from .small_yolov3 import SmallYOLOv3, small_yolov3
from .tiny import YOLOv2Tiny, YOLOv3Tiny, yolov2_tiny, yolov2_tiny_voc, yolov3_tiny
from .wordtree import (
    TREE_ERROR_REASONS,
    TreeError,
    WordTree,
    read_tree,
    region_tree_activations,
    tree_log_softmax,
    tree_softmax,
)
from .yolov1 import YOLOV1_STAGES, YOLOv1, YOLOv1ResNet50, yolov1, yolov1_output_length, yolov1_resnet50
from .yolov2 import COCO_ANCHORS_V2, VOC_ANCHORS, YOLOv2, yolov2
from .yolov3 import ANCHOR_MASKS, COCO_ANCHORS, STRIDES, YOLOv3, conv_set, detector, yolov3

__all__ = [
    "ANCHOR_MASKS",
    "COCO_ANCHORS",
    "COCO_ANCHORS_V2",
    "DARKNET19_STAGES",
    "DARKNET53_STAGES",
    "RESNET50_STAGES",
    "STRIDES",
    "TREE_ERROR_REASONS",
    "VOC_ANCHORS",
    "YOLOV1_STAGES",
    "Bottleneck",
    "ConvBlock",
    "Darknet19",
    "Darknet53",
    "DarknetMaxPool",
    "ResNet",
    "ResidualBlock",
    "SmallYOLOv2",
    "SmallYOLOv3",
    "TreeError",
    "WordTree",
    "YOLOv1",
    "YOLOv1ResNet50",
    "YOLOv2",
    "YOLOv2Tiny",
    "YOLOv3",
    "YOLOv3Tiny",
    "check_image_batch",
    "conv_set",
    "count_bn_statistics",
    "count_multiply_adds",
    "count_parameters",
    "count_weighted_layers",
    "darknet19",
    "darknet53",
    "darknet_reorg",
    "detector",
    "fast",
    "fold_batchnorm",
    "load_torchvision_state_dict",
    "model_summary",
    "read_tree",
    "region_tree_activations",
    "resnet50",
    "small_yolov2",
    "small_yolov3",
    "space_to_depth",
    "tree_log_softmax",
    "tree_softmax",
    "yolov1",
    "yolov1_output_length",
    "yolov1_resnet50",
    "yolov2",
    "yolov2_tiny",
    "yolov2_tiny_voc",
    "yolov3",
    "yolov3_tiny",
]
