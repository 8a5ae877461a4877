"""The 80 COCO class names, in the order of YOLOv3's output channels.

Darknet's ``data/coco.names`` lists the 80 object categories of COCO 2014 (Lin et al.,
"Microsoft COCO: Common Objects in Context", ECCV 2014) one per line; class ``c`` of a
``yolov3.cfg`` detection is line ``c`` of that file. COCO numbers its categories 1..90 with
gaps (ids of categories dropped before release); YOLO numbers the 80 used ones 0..79 in
the same order, so ``COCO_CLASSES[0]`` is "person" and ``COCO_CLASSES[79]`` "toothbrush".
"""

from __future__ import annotations

COCO_CLASSES: tuple[str, ...] = (
    # people and vehicles (0-8)
    "person", "bicycle", "car", "motorbike", "aeroplane", "bus", "train", "truck", "boat",
    # outdoor things (9-13)
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench",
    # animals (14-23)
    "bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe",
    # accessories (24-28)
    "backpack", "umbrella", "handbag", "tie", "suitcase",
    # sports (29-38)
    "frisbee", "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove",
    "skateboard", "surfboard", "tennis racket",
    # kitchen (39-45)
    "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl",
    # food (46-55)
    "banana", "apple", "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake",
    # furniture (56-61)
    "chair", "sofa", "pottedplant", "bed", "diningtable", "toilet",
    # electronics (62-67)
    "tvmonitor", "laptop", "mouse", "remote", "keyboard", "cell phone",
    # appliances (68-72)
    "microwave", "oven", "toaster", "sink", "refrigerator",
    # indoor things (73-79)
    "book", "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
)
