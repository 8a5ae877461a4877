"""Write the book's trained small YOLOv2 as a Darknet .weights file (for authors).

    OMP_WAIT_POLICY=PASSIVE python -m yolo_lessons.train --seed 0 --threads 1 --out runs/book
    python tools/make_book_weights.py runs/book/checkpoint.pt yolo_lessons/weights/small_yolov2_shapes.weights

Reads the checkpoint the training command wrote (``train.model_from_checkpoint``), writes its
weights in cfg order (``book_weights.small_yolov2_layers``) with ``save_darknet_weights``, with
``seen`` = the images the run trained on, and prints what ``book_weights`` must record: the
width and the k-means anchors (a .weights file has no room for them).
"""

from __future__ import annotations

import sys

import torch

from yolo_lessons.darknet.book_weights import small_yolov2_layers
from yolo_lessons.darknet.weights import load_darknet_weights, save_darknet_weights
from yolo_lessons.train import load_checkpoint, model_from_checkpoint


def main(checkpoint: str, out: str) -> None:
    state = load_checkpoint(checkpoint)
    model = model_from_checkpoint(checkpoint)
    size = save_darknet_weights(model, out, seen=int(state["seen"]), layers=small_yolov2_layers(model))
    copy = model_from_checkpoint(checkpoint)
    for tensor in copy.state_dict().values():
        tensor.zero_()
    load_darknet_weights(copy, out, layers=small_yolov2_layers(copy))
    pairs = zip(small_yolov2_layers(model), small_yolov2_layers(copy), strict=True)
    same = all(
        torch.equal(a, b) for mine, theirs in pairs for a, b in zip(mine.tensors(), theirs.tensors(), strict=True)
    )
    config = state["config"]
    print(f"{out}: {size:,} bytes, seen {state['seen']:,}, step {state['step']}, round trip identical: {same}")
    print(f"width {config['width']}, passthrough {config['passthrough']}, seed {config['seed']}")
    print("anchors:", tuple(tuple(a) for a in state["anchors"]))
    history = state["history"]
    for step, value in zip(history["eval_steps"], history["eval_map"], strict=True):
        print(f"step {step}: held-out mAP@0.5 {value:.4f}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2])
