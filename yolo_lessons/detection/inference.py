"""One call from a picture to its boxes, as ``./darknet detector test`` goes.

Darknet's ``test_detector`` (``examples/detector.c``) loads the image, letterboxes it into the
network input (``letterbox_image``), runs the network, decodes every prediction
(``get_network_boxes`` with ``-thresh``, .5 by default), keeps per class the boxes that
survive NMS at IoU .45 (``do_nms_sort``), and maps them back to the picture's pixels
(``correct_region_boxes`` / ``correct_yolo_boxes``). ``detect`` does exactly that with the
book's pieces -- ``data.letterbox.network_input``, ``decode_model_output``,
``nms.postprocess``, ``data.letterbox.boxes_to_image`` -- for any of the book's detectors:
YOLOv2 and its small version (one ``[region]`` head, anchors in grid cells), YOLOv3 and its
small version (three ``[yolo]`` heads, anchors in input pixels).

The training command, the detect command and the chapters all call it, so a box drawn in a
chapter is the box the command writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from ..data.images import read_image
from ..data.letterbox import Letterbox, boxes_to_image, network_input
from ..models.small_yolov2 import SmallYOLOv2
from ..models.small_yolov3 import SmallYOLOv3
from ..models.tiny import YOLOv2Tiny, YOLOv3Tiny
from ..models.yolov2 import YOLOv2
from ..models.yolov3 import YOLOv3
from .decode import Detections, decode_yolov2, decode_yolov3
from .nms import NMS_THRESHOLD, TEST_THRESHOLD, postprocess

ONE_HEAD = (YOLOv2, SmallYOLOv2, YOLOv2Tiny)  # a [region] layer: softmax classes, anchors in grid cells
YOLO_HEADS = (YOLOv3, SmallYOLOv3, YOLOv3Tiny)  # [yolo] layers: sigmoid classes, anchors in input pixels


@dataclass
class Found:
    """The detections of one picture, in **pixels of that picture**.

    boxes: (D, 4) corners x1, y1, x2, y2, clipped to the picture. scores: (D,) objectness *
    class probability. classes: (D,) int64. names: the class name of each row (``class_names``
    given to ``detect``, else the index as text). letterbox: where the picture went inside the
    network input. Rows are ordered by class, then by descending score, as NMS leaves them.
    """

    boxes: Tensor
    scores: Tensor
    classes: Tensor
    names: list[str]
    letterbox: Letterbox

    def __len__(self) -> int:
        return self.scores.shape[0]

    def lines(self) -> list[str]:
        """Darknet's print of a detection, one line a box: ``circle: 87%`` (``draw_detections``)."""
        return [f"{name}: {score * 100:.0f}%" for name, score in zip(self.names, self.scores.tolist(), strict=True)]

    def as_dicts(self) -> list[dict]:
        """Plain rows for a JSON file: class index, name, score, box in pixels (x1, y1, x2, y2)."""
        return [
            {"class": c, "name": name, "score": round(s, 6), "box": [round(v, 2) for v in box]}
            for c, name, s, box in zip(
                self.classes.tolist(), self.names, self.scores.tolist(), self.boxes.tolist(), strict=True
            )
        ]


def decode_model_output(model: nn.Module, output, input_size: int) -> Detections:
    """Boxes of a forward pass of any of the book's detectors, on the CPU.

    ``decode_yolov2`` with the model's anchors for one ``[region]`` head, ``decode_yolov3`` with
    its anchors and masks for ``[yolo]`` heads (three, or YOLOv3-tiny's two); boxes are
    centre-size fractions of the (square) network input. A model run by another engine (an
    exported file, ``yolo_lessons.export.OnnxRuntimeModel``) names its head in ``head_kind``.
    """
    head = getattr(model, "head_kind", None)  # "yolo" or "region"
    if isinstance(model, YOLO_HEADS) or head == "yolo":
        return decode_yolov3([o.float().cpu() for o in output], model.anchors.cpu(), model.masks, input_size)
    if isinstance(model, ONE_HEAD) or head == "region":
        return decode_yolov2(output.float().cpu(), model.anchors.cpu())
    raise TypeError(
        "expected one of the book's detectors (" + ", ".join(c.__name__ for c in ONE_HEAD + YOLO_HEADS)
        + f"), got {type(model).__name__}"
    )


def as_picture(image):
    """A path, a PIL image or a uint8 (H, W, 3) array -> what ``network_input`` takes."""
    if isinstance(image, (str, Path)):
        return read_image(image)
    return image


@torch.no_grad()
def detect(
    model: nn.Module,
    image,
    input_size: int = 416,
    thresh: float = TEST_THRESHOLD,
    iou_threshold: float = NMS_THRESHOLD,
    class_names: Sequence[str] | None = None,
) -> Found:
    """The boxes ``model`` finds in ``image`` (a path, a PIL image or a uint8 (H, W, 3) array).

    As ``./darknet detector test``: letterbox into ``input_size`` x ``input_size`` (a multiple
    of 32), decode, keep (box, class) pairs scoring above ``thresh`` (.5), per-class NMS at
    ``iou_threshold`` (.45), boxes mapped back to the picture's pixels. The model runs in eval
    mode and is put back in the mode it was in.
    """
    if not 0 <= thresh < 1:
        raise ValueError(f"expected thresh in [0, 1), got {thresh}")
    if not 0 < iou_threshold <= 1:
        raise ValueError(f"expected iou_threshold in (0, 1], got {iou_threshold}")
    x, box = network_input(as_picture(image), input_size, input_size)  # (3, S, S), where the picture went
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters(), torch.empty(0)).device  # (the CPU for an engine without parameters)
        output = model(x[None].to(device))
    finally:
        model.train(was_training)
    (found,) = postprocess(decode_model_output(model, output, input_size), thresh=thresh, iou_threshold=iou_threshold)
    classes = found.classes
    if class_names is not None and len(classes) and int(classes.max()) >= len(class_names):
        raise ValueError(f"class {int(classes.max())} has no name: {len(class_names)} class names given")
    names = [class_names[c] if class_names is not None else str(c) for c in classes.tolist()]
    return Found(boxes_to_image(found.boxes, box), found.scores, classes, names, box)
