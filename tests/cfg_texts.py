"""Darknet cfg text for the book's networks, written from the book's own tables.

No Darknet file enters the repository: each function writes, section by section, the cfg that
the matching builder follows (its docstring names the original), so a test can parse it with
``darknet.cfg`` and compare the network with the builder's.
"""

from __future__ import annotations

from yolo_lessons.models.darknet19 import DARKNET19_STAGES
from yolo_lessons.models.darknet53 import DARKNET53_STAGES, STEM_CHANNELS
from yolo_lessons.models.yolov1 import FC_HIDDEN, POOLED_STAGES, YOLOV1_STAGES
from yolo_lessons.models.yolov2 import COCO_ANCHORS_V2, VOC_ANCHORS
from yolo_lessons.models.yolov3 import ANCHOR_MASKS, COCO_ANCHORS


def net(width: int, height: int | None = None) -> str:
    return f"[net]\n# a comment, as cfgs have\nbatch=1\nwidth={width}\nheight={height or width}\nchannels=3\n\n"


def conv(filters: int, size: int, stride: int = 1, bn: bool = True, activation: str = "leaky") -> str:
    norm = "batch_normalize=1\n" if bn else ""
    return f"[convolutional]\n{norm}filters={filters}\nsize={size}\nstride={stride}\npad=1\nactivation={activation}\n\n"


def maxpool(size: int = 2, stride: int = 2) -> str:
    return f"[maxpool]\nsize={size}\nstride={stride}\n\n"


def darknet19_body() -> str:
    """The 18 convs and 5 pools of darknet19.cfg (Table 6): layers 0 to 22."""
    text = ""
    for i, stage in enumerate(DARKNET19_STAGES):
        if i:
            text += maxpool()
        text += "".join(conv(f, k) for f, k in stage)
    return text


def darknet19_cfg(width: int = 224) -> str:
    """darknet19.cfg: the body, a 1x1 conv to 1000 classes (linear), average pool, softmax."""
    return net(width) + darknet19_body() + conv(1000, 1, bn=False, activation="linear") + \
        "[avgpool]\n\n[softmax]\ngroups=1\n\n[cost]\ntype=sse\n"


def yolov2_cfg(num_classes: int = 20, width: int = 416) -> str:
    """yolov2-voc.cfg (20 classes) or yolov2.cfg (80): Darknet-19's body, two 3x3 convs, the passthrough."""
    anchors = VOC_ANCHORS if num_classes == 20 else COCO_ANCHORS_V2
    region = (f"[region]\nanchors = {', '.join(f'{w},{h}' for w, h in anchors)}\nbias_match=1\nclasses={num_classes}\n"
              f"coords=4\nnum={len(anchors)}\nsoftmax=1\n")  # fmt: skip
    return (net(width) + darknet19_body() + conv(1024, 3) + conv(1024, 3)
            + "[route]\nlayers=-9\n\n" + conv(64, 1) + "[reorg]\nstride=2\n\n" + "[route]\nlayers=-1,-4\n\n"
            + conv(1024, 3) + conv(len(anchors) * (5 + num_classes), 1, bn=False, activation="linear") + region)


def darknet53_body() -> str:
    """Darknet-53's stem and five stages (Table 1): layers 0 to 74 of yolov3.cfg."""
    text = conv(STEM_CHANNELS, 3)
    for channels, blocks in DARKNET53_STAGES:
        text += conv(channels, 3, stride=2)
        for _ in range(blocks):
            text += conv(channels // 2, 1) + conv(channels, 3) + "[shortcut]\nfrom=-3\nactivation=linear\n\n"
    return text


def darknet53_cfg(width: int = 256) -> str:
    """darknet53.cfg: the body, average pool, a 1x1 conv to 1000 classes (linear), softmax."""
    return net(width) + darknet53_body() + "[avgpool]\n\n" + conv(1000, 1, bn=False, activation="linear") + \
        "[softmax]\ngroups=1\n"


def yolo(mask, num_classes: int) -> str:
    anchors = ",  ".join(f"{w},{h}" for w, h in COCO_ANCHORS)
    return (f"[yolo]\nmask = {','.join(map(str, mask))}\nanchors = {anchors}\nclasses={num_classes}\n"
            f"num={len(COCO_ANCHORS)}\njitter=.3\nignore_thresh = .7\ntruth_thresh = 1\nrandom=1\n\n")


def yolov3_cfg(num_classes: int = 80, width: int = 416) -> str:
    """yolov3.cfg: Darknet-53's body, then per scale five convs, a 3x3, the 1x1 detector and [yolo]."""
    out = 3 * (5 + num_classes)
    text = net(width) + darknet53_body()
    for scale, (channels, route) in enumerate(((512, None), (256, 61), (128, 36))):
        if route is not None:
            text += "[route]\nlayers = -4\n\n" + conv(channels, 1) + "[upsample]\nstride=2\n\n"
            text += f"[route]\nlayers = -1, {route}\n\n"
        text += "".join(conv(channels, 1) + conv(2 * channels, 3) for _ in range(2)) + conv(channels, 1)
        text += conv(2 * channels, 3) + conv(out, 1, bn=False, activation="linear") + yolo(ANCHOR_MASKS[scale],
                                                                                         num_classes)
    return text


def yolov1_cfg() -> str:
    """The 2015 yolo.cfg: 24 biased leaky convs, four pools, [connected] 4096, dropout, 1470, [detection]."""
    text = net(448)
    for i, stage in enumerate(YOLOV1_STAGES):
        text += "".join(conv(f, k, s, bn=False) for f, k, s in stage)
        if i < POOLED_STAGES:
            text += maxpool()
    text += f"[connected]\noutput={FC_HIDDEN}\nactivation=leaky\n\n[dropout]\nprobability=.5\n\n"
    text += "[connected]\noutput=1470\nactivation=linear\n\n"
    return text + "[detection]\nclasses=20\ncoords=4\nrescore=1\nside=7\nnum=2\nsoftmax=0\nsqrt=1\n"


def tiny_trunk_cfg() -> str:
    """Layers 0-11 of the tiny cfgs: six 3x3 convs, each followed by a 2x2 pool (the last stride 1)."""
    text = ""
    for i, filters in enumerate((16, 32, 64, 128, 256, 512)):
        text += conv(filters, 3) + maxpool(2, 1 if i == 5 else 2)
    return text


def yolov2_tiny_cfg(voc: bool = True) -> str:
    """yolov2-tiny-voc.cfg (20 classes, its own anchors) or yolov2-tiny.cfg (80, yolov2.cfg's anchors)."""
    from yolo_lessons.models.tiny import TINY_VOC_ANCHORS

    anchors, classes, head = (TINY_VOC_ANCHORS, 20, 1024) if voc else (COCO_ANCHORS_V2, 80, 512)
    region = (f"[region]\nanchors = {', '.join(f'{w},{h}' for w, h in anchors)}\nclasses={classes}\ncoords=4\n"
              f"num=5\nsoftmax=1\n")  # fmt: skip
    return (net(416) + tiny_trunk_cfg() + conv(1024, 3) + conv(head, 3)
            + conv(5 * (5 + classes), 1, bn=False, activation="linear") + region)


def yolov3_tiny_cfg() -> str:
    """yolov3-tiny.cfg: the trunk, conv 1024, then heads at strides 32 and 16 (route -1, 8)."""
    from yolo_lessons.models.tiny import TINY_V3_ANCHORS

    anchors = ",  ".join(f"{w},{h}" for w, h in TINY_V3_ANCHORS)

    def head(mask):
        return f"[yolo]\nmask = {mask}\nanchors = {anchors}\nclasses=80\nnum=6\n\n"

    return (net(416) + tiny_trunk_cfg() + conv(1024, 3) + conv(256, 1) + conv(512, 3)
            + conv(255, 1, bn=False, activation="linear") + head("3,4,5")
            + "[route]\nlayers = -4\n\n" + conv(128, 1) + "[upsample]\nstride=2\n\n" + "[route]\nlayers = -1, 8\n\n"
            + conv(256, 3) + conv(255, 1, bn=False, activation="linear") + head("0,1,2"))
