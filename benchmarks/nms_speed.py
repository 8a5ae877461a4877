"""How much faster is the tensor NMS than the plain loop it must equal?

    python benchmarks/nms_speed.py [--images 5] [--seed 0] [--repeats 3]

Builds YOLOv3-sized predictions (416x416 input: 3 * (13*13 + 26*26 + 52*52) = 10,647 boxes,
80 classes) whose scores look like a trained detector's: the boxes decode from random head
outputs through ``decode_yolov3``, most objectness values are tiny, and a few objects each
light up a cluster of jittered boxes with a high objectness and a high probability for their
class (and some for other classes). For two thresholds (0.005, what ``detector valid`` uses
for mAP, and 0.25, a usual one for showing detections) it checks that ``nms`` and
``nms_reference`` give identical detections, then prints the number of (box, class)
candidates, the time of each (the fastest of several runs taken in turns on each image, the
median over images; one thread) and their ratio. A benchmark, not a test: the times depend
on the machine and on what else it is doing; the ratio, measured in one run, is the figure
to read.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from yolo_lessons.detection.decode import Detections, box_corners, decode_yolov3
from yolo_lessons.detection.nms import darknet_scores, nms, nms_reference
from yolo_lessons.models.yolov3 import ANCHOR_MASKS, COCO_ANCHORS

INPUT_SIZE = 416  # pixels
NUM_CLASSES = 80  # COCO


def realistic_predictions(generator: torch.Generator, num_objects: int = 8, boxes_per_object: int = 40) -> Detections:
    """One image's decoded YOLOv3 predictions (1, 10647, ...) with a trained-looking score distribution."""
    heads = [
        torch.randn(1, 3 * (5 + NUM_CLASSES), INPUT_SIZE // stride, INPUT_SIZE // stride, generator=generator) * 0.5
        for stride in (32, 16, 8)
    ]
    decoded = decode_yolov3(heads, COCO_ANCHORS, ANCHOR_MASKS, INPUT_SIZE)
    boxes = decoded.boxes[0]  # (K, 4) centre x, y, w, h as fractions of the input
    k = boxes.shape[0]
    # Background: objectness logits around -7 (sigmoid ~ 0.001), class logits around -5.
    objectness_logits = torch.randn(k, generator=generator) * 1.5 - 7.0
    class_logits = torch.randn(k, NUM_CLASSES, generator=generator) * 1.5 - 5.0
    for _ in range(num_objects):
        centre = torch.rand(2, generator=generator) * 0.8 + 0.1
        size = torch.rand(2, generator=generator) * 0.4 + 0.05
        label = int(torch.randint(NUM_CLASSES, (1,), generator=generator))
        near = (boxes[:, :2] - centre).norm(dim=1).argsort()[:boxes_per_object]  # the cells around the object
        jitter = torch.randn(len(near), 4, generator=generator) * 0.1
        boxes[near, :2] = centre + jitter[:, :2] * size
        boxes[near, 2:] = size * jitter[:, 2:].mul(2).exp()
        objectness_logits[near] = torch.randn(len(near), generator=generator) * 2.0 + 1.0
        class_logits[near] = torch.randn(len(near), NUM_CLASSES, generator=generator) * 2.0 - 7.0
        class_logits[near, label] = torch.randn(len(near), generator=generator) * 1.5 + 2.0
    return Detections(boxes[None], torch.sigmoid(objectness_logits)[None], torch.sigmoid(class_logits)[None])


def best_seconds(fn: Callable[[], object], repeats: int) -> float:
    """The fastest of ``repeats`` runs: on a shared machine, the run least disturbed by others."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5, help="how many synthetic images (default 5)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="runs of nms_reference per image (nms: 4x as many)")
    args = parser.parse_args()
    generator = torch.Generator().manual_seed(args.seed)
    torch.set_num_threads(1)  # a fair race: one thread for both

    images = [realistic_predictions(generator) for _ in range(args.images)]
    print(f"{images[0].boxes.shape[1]:,} boxes x {NUM_CLASSES} classes per image, {args.images} images")
    for thresh in (0.005, 0.25):
        inputs = []
        for d in images:
            scores = darknet_scores(d.objectness[0], d.class_probs[0], thresh)  # (K, C)
            inputs.append((box_corners(d.boxes[0]), scores))
        for corners, scores in inputs:
            fast, slow = nms(corners, scores), nms_reference(corners, scores)
            assert torch.equal(fast.box_index, slow.box_index) and torch.equal(fast.classes, slow.classes)
        candidates = statistics.median(int((s > 0).sum()) for _, s in inputs)
        kept = statistics.median(len(nms(c, s)) for c, s in inputs)
        fast_s, slow_s = [], []
        for c, s in inputs:  # the two take turns on each image, so both meet the same load
            fast_s.append(best_seconds(lambda c=c, s=s: nms(c, s), args.repeats * 4))
            slow_s.append(best_seconds(lambda c=c, s=s: nms_reference(c, s), args.repeats))
        fast, slow = statistics.median(fast_s), statistics.median(slow_s)
        print(
            f"thresh {thresh}: median {candidates:,.0f} (box, class) candidates, {kept:,.0f} kept; "
            f"nms {fast * 1e3:.1f} ms, nms_reference {slow * 1e3:.1f} ms (fastest run, median over images); "
            f"nms is {slow / fast:.0f}x faster, same detections"
        )


if __name__ == "__main__":
    main()
