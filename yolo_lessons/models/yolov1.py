"""YOLOv1, where the series started: a grid of cells, each predicting B boxes and one class distribution.

Redmon, Divvala, Girshick & Farhadi, "You Only Look Once: Unified, Real-Time Object
Detection" (CVPR 2016), Figure 3, laid out as Darknet's ``cfg/yolo.cfg`` of November 2015
(commit 6103ecc "ready for push?"): 24 convolutions with bias and no BatchNorm, each
followed by Darknet's leaky ReLU (slope 0.1), four 2x2/2 max-pools, then two fully
connected ("[connected]") layers with dropout between them. Every conv has ``pad=1``,
which in Darknet means "same" padding (``size // 2``).

Also here:

* two options that popular re-implementations add -- BatchNorm after every conv
  (``batch_norm=True``) and classes predicted per box instead of per cell
  (``class_per_box=True``, YOLOv2's output layout);
* ``yolov1_resnet50``: the YOLOv1 output on a frozen ResNet-50 with a small conv head;
* ``decode_yolov1``: reading boxes out of the output vector, in Darknet's layout or the
  cell-major 7x7x30 layout most write-ups draw.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping

from torch import Tensor, nn

from .blocks import LEAKY_SLOPE, ConvBlock, check_image_batch
from .resnet import load_torchvision_state_dict, resnet50

# The paper's Figure 3 / the 2015 yolo.cfg, one tuple per group of layers in the figure:
# (filters, kernel size, stride) per convolution. A 2x2/2 max-pool closes each of the
# first POOLED_STAGES groups.
YOLOV1_STAGES: tuple[tuple[tuple[int, int, int], ...], ...] = (
    ((64, 7, 2),),
    ((192, 3, 1),),
    ((128, 1, 1), (256, 3, 1), (256, 1, 1), (512, 3, 1)),
    ((256, 1, 1), (512, 3, 1)) * 4 + ((512, 1, 1), (1024, 3, 1)),
    ((512, 1, 1), (1024, 3, 1)) * 2 + ((1024, 3, 1), (1024, 3, 2)),
    ((1024, 3, 1), (1024, 3, 1)),
)
POOLED_STAGES = 4
FC_HIDDEN = 4096  # [connected] output=4096 activation=leaky
DROPOUT = 0.5  # [dropout] probability=.5
GRID_SIZE, NUM_BOXES, NUM_CLASSES = 7, 2, 20  # [detection] side=7 num=2 classes=20
STRIDE = 64  # 448 / 7: a stride-2 stem conv, four pools, one stride-2 conv
INPUT_SIZE = GRID_SIZE * STRIDE  # 448; the first Linear fixes it

LAYOUTS = ("darknet", "cell_major")


class ConvLeaky(nn.Module):
    """Darknet's ``[convolutional]`` without ``batch_normalize``: Conv2d with bias, LeakyReLU(0.1)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2)
        self.act = nn.LeakyReLU(LEAKY_SLOPE)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.conv(x))


def yolov1_output_length(
    grid_size: int = GRID_SIZE,
    num_boxes: int = NUM_BOXES,
    num_classes: int = NUM_CLASSES,
    class_per_box: bool = False,
) -> int:
    """Length of the output vector: S*S*(B*5 + C), or S*S*B*(5 + C) with classes per box.

    Both layouts ("darknet" and "cell_major") hold the same numbers, so the same length:
    7*7*(2*5 + 20) = 1,470 for the paper's network.
    """
    per_cell = num_boxes * (5 + num_classes) if class_per_box else num_boxes * 5 + num_classes
    return grid_size * grid_size * per_cell


def _make_stage(
    in_channels: int, convs: tuple[tuple[int, int, int], ...], pool: bool, batch_norm: bool
) -> nn.Sequential:
    layer = ConvBlock if batch_norm else ConvLeaky
    layers: list[nn.Module] = []
    for out_channels, kernel_size, stride in convs:
        layers.append(layer(in_channels, out_channels, kernel_size, stride))
        in_channels = out_channels
    if pool:
        layers.append(nn.MaxPool2d(2, 2))
    return nn.Sequential(*layers)


class YOLOv1(nn.Module):
    """24 convolutions in six groups, then Linear -> leaky -> dropout -> Linear.

    Input (N, 3, 448, 448); output (N, S*S*(B*5 + C)) = (N, 1470) in Darknet's layout
    (see ``decode_yolov1``), or (N, S*S*B*(5 + C)) = (N, 2450) cell-major with
    ``class_per_box=True``. ``batch_norm=True`` replaces every biased conv with a
    bias-free conv + BatchNorm (``ConvBlock``); the fully connected layers keep their bias.
    """

    def __init__(
        self,
        num_classes: int = NUM_CLASSES,
        num_boxes: int = NUM_BOXES,
        grid_size: int = GRID_SIZE,
        batch_norm: bool = False,
        class_per_box: bool = False,
    ):
        super().__init__()
        self.num_classes, self.num_boxes, self.grid_size = num_classes, num_boxes, grid_size
        self.class_per_box = class_per_box
        self.input_size = grid_size * STRIDE
        stages, in_channels = [], 3
        for i, convs in enumerate(YOLOV1_STAGES):
            stages.append(_make_stage(in_channels, convs, pool=i < POOLED_STAGES, batch_norm=batch_norm))
            in_channels = convs[-1][0]
        self.stages = nn.ModuleList(stages)
        self.fc1 = nn.Linear(in_channels * grid_size * grid_size, FC_HIDDEN)  # 7*7*1024 = 50,176 inputs
        self.act = nn.LeakyReLU(LEAKY_SLOPE)
        self.dropout = nn.Dropout(DROPOUT)
        self.fc2 = nn.Linear(
            FC_HIDDEN, yolov1_output_length(grid_size, num_boxes, num_classes, class_per_box)
        )

    def features(self, x: Tensor) -> Tensor:
        """(N, 3, 448, 448) -> (N, 1024, 7, 7), the output of the 24th convolution."""
        check_yolov1_input(x, self.input_size)
        for stage in self.stages:
            x = stage(x)
        return x

    def forward(self, x: Tensor) -> Tensor:
        x = self.features(x).flatten(1)  # (N, 50176), channel-major like Darknet's memory
        x = self.dropout(self.act(self.fc1(x)))  # (N, 4096)
        return self.fc2(x)  # (N, 1470): linear, no activation ([connected] activation=linear)


def check_yolov1_input(x: Tensor, input_size: int = INPUT_SIZE) -> None:
    """``check_image_batch``, then insist on the one size the fully connected layers accept."""
    check_image_batch(x)
    if tuple(x.shape[-2:]) != (input_size, input_size):
        h, w = x.shape[-2:]
        raise ValueError(
            f"this YOLOv1 needs {input_size}x{input_size} inputs (its first Linear layer expects a "
            f"{input_size // STRIDE}x{input_size // STRIDE}x1024 feature map), got {h}x{w}; "
            "resize the image first"
        )


def yolov1(num_classes: int = NUM_CLASSES, batch_norm: bool = False, class_per_box: bool = False) -> YOLOv1:
    """YOLOv1 as released with the paper (Darknet's 2015 ``yolo.cfg``), S=7, B=2.

    271,703,550 trainable parameters and 20,285,153,280 multiply-adds at 448x448 for 20
    classes. ``batch_norm=True`` and ``class_per_box=True`` together give 275,731,794.
    """
    return YOLOv1(num_classes, NUM_BOXES, GRID_SIZE, batch_norm=batch_norm, class_per_box=class_per_box)


# ----------------------------------------------------------------------------------------
# YOLOv1 on a frozen ResNet-50

RESNET_HEAD_CHANNELS = (1024, 256)  # the two 1x1 convs of the head
RESNET_HEAD_DROPOUT = 0.5
RESNET_GRID_SIZE = 9


class YOLOv1ResNet50(nn.Module):
    """A ResNet-50 backbone (frozen by default) and a small fully convolutional head.

    Head: 1x1 conv 2048->1024, BN, dropout, leaky; 1x1 conv 1024->256, BN, dropout,
    leaky; adaptive average pool to S x S; bias-free 1x1 conv to B*5 + C channels.
    Output (N, B*5 + C, S, S) = (N, 30, 9, 9): every cell's numbers along the channels,
    i.e. cell-major. A frozen backbone also stays in eval mode, so ``model.train()``
    does not let BatchNorm update the statistics that came with its weights.
    """

    def __init__(
        self,
        num_classes: int = NUM_CLASSES,
        num_boxes: int = NUM_BOXES,
        grid_size: int = RESNET_GRID_SIZE,
        freeze_backbone: bool = True,
    ):
        super().__init__()
        self.num_classes, self.num_boxes, self.grid_size = num_classes, num_boxes, grid_size
        self.backbone = resnet50(num_classes=0)
        wide, narrow = RESNET_HEAD_CHANNELS
        self.head = nn.Sequential(
            OrderedDict(
                conv1=nn.Conv2d(self.backbone.out_channels, wide, 1, bias=False),
                bn1=nn.BatchNorm2d(wide),
                drop1=nn.Dropout(RESNET_HEAD_DROPOUT),
                act1=nn.LeakyReLU(LEAKY_SLOPE),
                conv2=nn.Conv2d(wide, narrow, 1, bias=False),
                bn2=nn.BatchNorm2d(narrow),
                drop2=nn.Dropout(RESNET_HEAD_DROPOUT),
                act2=nn.LeakyReLU(LEAKY_SLOPE),
                pool=nn.AdaptiveAvgPool2d(grid_size),
                detect=nn.Conv2d(narrow, num_boxes * 5 + num_classes, 1, bias=False),
            )
        )
        self.backbone_frozen = False
        if freeze_backbone:
            self.freeze_backbone()

    def freeze_backbone(self) -> None:
        """Stop gradients into the backbone and keep its BatchNorm statistics fixed."""
        self.backbone.requires_grad_(False)
        self.backbone.eval()
        self.backbone_frozen = True

    def train(self, mode: bool = True) -> YOLOv1ResNet50:
        super().train(mode)
        if self.backbone_frozen:
            self.backbone.eval()
        return self

    def forward(self, x: Tensor) -> Tensor:
        x = self.backbone.features(x)  # (N, 2048, H/32, W/32): 14x14 at 448
        return self.head(x)  # (N, B*5 + C, S, S)


def yolov1_resnet50(
    num_classes: int = NUM_CLASSES,
    backbone_state_dict: Mapping[str, Tensor] | None = None,
    freeze_backbone: bool = True,
) -> YOLOv1ResNet50:
    """YOLOv1's output (S=9, B=2) on a ResNet-50, the backbone frozen.

    23,508,032 non-trainable backbone parameters and 2,369,536 trainable head
    parameters for 20 classes. ``backbone_state_dict`` may be a torchvision-format
    ResNet-50 state dict (its ``fc.*`` entries are skipped), checked key by key first.
    """
    model = YOLOv1ResNet50(num_classes, NUM_BOXES, RESNET_GRID_SIZE, freeze_backbone=False)
    if backbone_state_dict is not None:
        load_torchvision_state_dict(model.backbone, backbone_state_dict)
    if freeze_backbone:
        model.freeze_backbone()
    return model
