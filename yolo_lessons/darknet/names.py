"""The 20 PASCAL VOC class names, as Darknet's ``data/voc.names`` lists them (COCO's: ``coco``).

Class ``c`` of a VOC network's output is line ``c`` of that file. Reading a ``.names`` file of
one's own is ``data.datasets.read_names``.
"""

from __future__ import annotations

# Darknet's data/voc.names: the 20 PASCAL VOC classes in alphabetical order, the order of
# yolov2-voc.cfg's and yolov3-voc.cfg's class channels.
VOC_CLASSES: tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
    "tvmonitor",
)  # fmt: skip
