"""Class names: Darknet's ``.names`` files, and the VOC list built in (COCO's is in ``coco``).

A ``.names`` file (``data/voc.names``, ``data/coco.names``; the ``names=`` line of a ``.data``
file) holds one class name per line; class ``c`` of the network's output is line ``c``.
Darknet's ``get_labels`` (``src/data.c``) reads every line as it is; we also drop the blank
lines a text editor leaves at the end and refuse a file with none.
"""

from __future__ import annotations

import os

# Darknet's data/voc.names: the 20 PASCAL VOC classes in alphabetical order, the order of
# yolov2-voc.cfg's and yolov3-voc.cfg's class channels.
VOC_CLASSES: tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
    "tvmonitor",
)  # fmt: skip


def read_names(path: str | os.PathLike) -> list[str]:
    """The class names of a ``.names`` file, one a line, surrounding spaces and blank lines dropped."""
    try:
        with open(path, encoding="utf-8") as file:
            names = [line.strip() for line in file]
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"cannot read the names file {path}: {error}") from None
    names = [name for name in names if name]
    if not names:
        raise ValueError(f"the names file {path} holds no class name (one name a line expected)")
    return names
