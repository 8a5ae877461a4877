"""The small YOLOv2 the book trained, kept as a Darknet ``.weights`` file.

``small_yolov2`` (``small_yolov2.py``) has no cfg file of its own, but it is built exactly
like ``yolov2-voc.cfg`` with fewer layers, so its cfg would read, layer by layer (Darknet
numbers every ``[section]`` after ``[net]`` from 0):

    0 conv  1 maxpool  2 conv  3 maxpool  4-6 conv  7 maxpool  8-10 conv  11 maxpool
    12-14 conv  15, 16 conv (the two extra 3x3s)  17 [route] -7 (back to layer 10)
    18 conv 1x1 (passthrough)  19 [reorg] stride=2  20 [route] -1,-4  21 conv 3x3 (fuse)
    22 conv 1x1 with bias (detector)  23 [region]

``small_yolov2_layers`` lists its weighted layers in that order, for
``load_darknet_weights(model, file, layers=...)`` and ``save_darknet_weights``. As in
``yolov2-voc.cfg`` the passthrough conv comes *after* the two extra convs in the file,
although it reads the map of layer 10, made before them (``SmallYOLOv2.__init__`` registers
its modules in the cfg's order too).

``BOOK_WEIGHTS`` is the file the training command wrote (see ``weights/README.md`` beside it
for the command); the anchors are not in a ``.weights`` file (a cfg's ``[region]`` holds
them), so ``BOOK_ANCHORS`` keeps the ones that run computed.
"""

from __future__ import annotations

from pathlib import Path

from ..data.shapes import SHAPE_CLASSES
from ..models.blocks import ConvBlock
from ..models.small_yolov2 import SmallYOLOv2, small_yolov2
from .weights import WeightedLayer, load_darknet_weights, weighted_layer

BOOK_WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "small_yolov2_shapes.weights"  # yolo_lessons/weights/
BOOK_WIDTH = 8  # --width of the run that made BOOK_WEIGHTS (the command's default)
# The run's 5 k-means anchors (its checkpoint's "anchors", as tools/make_book_weights.py prints them),
# (w, h) in cells of the stride-16 grid; the command prints them rounded: 1.62x1.36, ..., 3.16x2.65.
BOOK_ANCHORS: tuple[tuple[float, float], ...] = (
    (1.6153387402589539, 1.3640267161922601),
    (1.4860008798894428, 2.192460313991264),
    (2.5429753837237334, 1.7195458415712281),
    (2.0882675422257497, 2.9451754489227344),
    (3.162642055445097, 2.646306824277748),
)


def small_yolov2_layers(model: SmallYOLOv2) -> list[WeightedLayer]:
    """The weighted layers of a ``small_yolov2`` in the order of its cfg (module docstring).

    Without a passthrough branch (``passthrough=None``) the cfg would have no route, conv or
    reorg between the extra convs and the fuse conv: layers 17, 18 are then fuse and detector.
    """
    if not isinstance(model, SmallYOLOv2):
        raise ValueError(f"expected a SmallYOLOv2 (small_yolov2()), got {type(model).__name__}")
    layers: list[WeightedLayer] = []
    index = 0
    for stage in model.stages:  # each stage but the first opens with its max-pool
        for block in stage:
            if isinstance(block, ConvBlock):
                layers.append(weighted_layer(index, block))
            index += 1  # a conv or a [maxpool]: one cfg layer each
    for block in model.extra:  # 15, 16
        layers.append(weighted_layer(index, block))
        index += 1
    if model.passthrough is not None:
        index += 1  # 17: [route] back to the stride-8 map
        layers.append(weighted_layer(index, model.passthrough))  # 18
        index += 3  # [reorg] 19, [route] 20
    layers += [weighted_layer(index, model.fuse), weighted_layer(index + 1, model.detect)]
    return layers


def load_book_model(passthrough: str | None = "darknet_reorg", file: str | Path = BOOK_WEIGHTS) -> SmallYOLOv2:
    """The book's trained ``small_yolov2`` read from its ``.weights`` file, in eval mode.

    ``passthrough`` chooses the fold the model applies (the file is the same: a fold has no
    weights); the run that trained the file used ``darknet_reorg``.
    """
    model = small_yolov2(len(SHAPE_CLASSES), BOOK_ANCHORS, BOOK_WIDTH, passthrough)
    load_darknet_weights(model, file, layers=small_yolov2_layers(model))
    return model.eval()
