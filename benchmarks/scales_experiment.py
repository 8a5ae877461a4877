"""One head or three: AP@0.5 for small, medium and large objects, for small_yolov3 with three heads
or its stride-16 head alone (``heads=1``), and for small_yolov2.

Chapter 10's measurement (``ARMS`` below). The models are trained by the training command's own ``train``
(``yolo_lessons.train``, the recipe of chapter 8: AdamW, cosine decay, the loss averaged over
the batch) with the same budget, on the same images: 128 x 128 synthetic shapes whose sides are
drawn log-uniformly from 4 pixels (``--min-side 0.03125``) to 60% of the image, so about a
third of the objects are smaller than 12 pixels. small_yolov2 gets its five k-means anchors in
cells of its stride-16 grid and the region loss; small_yolov3 gets nine k-means anchors in input pixels,
split across its strides 32, 16 and 8 by area (with ``heads=1``, all nine on the stride-16 grid),
and the yolo loss.

Each trained model is scored on the same 500 held-out images (seed 1000) as ``train.evaluate``
scores it (threshold 0.005, per-class NMS at 0.45), then AP@0.5 is computed per size bucket
with ``size_ap.ap_by_size`` (sqrt of the box area in pixels: small < 12, medium 12-32, large
>= 32). One JSON file per (model, seed) goes to ``--out``; ``--summary`` prints the table.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/scales_experiment.py
    python benchmarks/scales_experiment.py --summary

The first trains the three arms on seeds 0, 1 and 2, one run after another, each with one
training thread and one worker process drawing the images (``--threads``, ``--workers``): the
stored results were made that way on the two-core machine, 1440 steps of 16 images (23,040
images, each new) with chapter 8's learning rate and warm-up.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from yolo_lessons.detection.decode import box_corners
from yolo_lessons.detection.inference import decode_model_output
from yolo_lessons.detection.metrics import GroundTruth, mean_average_precision
from yolo_lessons.detection.nms import VALID_THRESHOLD, postprocess
from yolo_lessons.detection.size_ap import SIZE_BUCKETS, ap_by_size
from yolo_lessons.train import ImageCache, TrainConfig, train

RESULTS = Path(__file__).resolve().parent / "results" / "scales_experiment"
IMAGE_SIZE = 128
MIN_SIDE = 4 / IMAGE_SIZE  # 0.03125: objects from 4 pixels
MAX_SIDE = 0.6
_DEFAULTS = TrainConfig()
RECIPE = dict(image_size=IMAGE_SIZE, min_side=MIN_SIDE, max_side=MAX_SIDE, steps=1440, batch_size=16,
              lr=_DEFAULTS.lr, warmup=_DEFAULTS.warmup)  # chapter 8's recipe, at 128 px and for 1440 steps
EVAL_IMAGES, EVAL_SEED = 500, 1000


@torch.no_grad()
def detect(model: torch.nn.Module, images: torch.Tensor, batch_size: int = 100) -> list:
    """Detections of ``model`` (eval mode) as ``train.evaluate`` makes them: corners in fractions."""
    model.eval()
    found = []
    for start in range(0, len(images), batch_size):
        output = model(images[start : start + batch_size])
        found += postprocess(decode_model_output(model, output, images.shape[-1]), thresh=VALID_THRESHOLD)
    return found


def held_out(count: int = EVAL_IMAGES, seed: int = EVAL_SEED) -> tuple[torch.Tensor, list[GroundTruth]]:
    """The held-out images and their ground truths (corners, fractions of the image)."""
    images, boxes, counts = ImageCache(seed, IMAGE_SIZE, keep=False, sides=(MIN_SIDE, MAX_SIDE)).batch(range(count))
    truths = [boxes[i, : counts[i]] for i in range(count)]
    return images, [GroundTruth(box_corners(t[:, 1:5]), t[:, 0].long()) for t in truths]


def score(model: torch.nn.Module, images: torch.Tensor, ground_truths: list[GroundTruth]) -> dict:
    """mAP@0.5 over all objects and AP@0.5 per size bucket, with the ground-truth counts."""
    detections = detect(model, images)
    buckets = ap_by_size(detections, ground_truths, IMAGE_SIZE)
    return {
        "map": mean_average_precision(detections, ground_truths).map,
        "ap": {name: b.ap for name, b in buckets.items()},
        "ground_truths": {name: b.num_ground_truth for name, b in buckets.items()},
    }


# The arms: name -> the training command's options. small_yolov3_one_head is small_yolov3 with its
# stride-16 head alone (nine anchors): the same backbone, neck, loss and recipe, one scale instead of three.
ARMS = {
    "small_yolov2": {"model": "small_yolov2"},
    "small_yolov3": {"model": "small_yolov3"},
    "small_yolov3_one_head": {"model": "small_yolov3", "heads": 1},
}


def run(model: str, seed: int, threads: int, workers: int, steps: int, batch_size: int) -> dict:
    recipe = {**RECIPE, "steps": steps, "batch_size": batch_size}
    history = train(seed=seed, threads=threads, workers=workers, eval_every=0, out=None,
                    progress=False, verbose=False, **ARMS[model], **recipe)
    started = time.perf_counter()
    images, ground_truths = held_out()
    result = score(history.model, images, ground_truths)
    return {
        "model": model, "seed": seed, "recipe": recipe, "threads": threads, "workers": workers,
        "parameters": sum(p.numel() for p in history.model.parameters()),
        "anchors": history.anchors, "final_loss": sum(history.losses[-20:]) / 20,
        "train_seconds": round(history.train_seconds, 1), "eval_seconds": round(time.perf_counter() - started, 1),
        "eval_images": EVAL_IMAGES, "eval_seed": EVAL_SEED, "buckets": SIZE_BUCKETS_JSON,
        "torch": torch.__version__, "machine": platform.machine(), **result,
    }


SIZE_BUCKETS_JSON = {name: [low, None if high == float("inf") else high] for name, (low, high) in SIZE_BUCKETS.items()}


def load_results(folder: Path = RESULTS) -> list[dict]:
    """Every (model, seed) result in ``folder``, sorted by model then seed."""
    runs = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    return sorted(runs, key=lambda r: (r["model"], r["seed"]))


def summary(runs: list[dict]) -> str:
    lines = [f"{'model':<21} {'seeds':<8} " + " ".join(f"{n:>8}" for n in [*SIZE_BUCKETS, "all"])]
    for model in sorted({r["model"] for r in runs}):
        mine = [r for r in runs if r["model"] == model]
        cells = [statistics.mean(r["ap"][n] for r in mine) for n in SIZE_BUCKETS]
        cells.append(statistics.mean(r["map"] for r in mine))
        seeds = ",".join(str(r["seed"]) for r in mine)
        lines.append(f"{model:<21} {seeds:<8} " + " ".join(f"{c:8.3f}" for c in cells))
        for r in mine:
            lines.append(f"  seed {r['seed']}: " + ", ".join(f"{n} {r['ap'][n]:.3f}" for n in SIZE_BUCKETS)
                         + f", all {r['map']:.3f} ({r['train_seconds']:.0f} s of training)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=RECIPE["steps"])
    parser.add_argument("--batch-size", type=int, default=RECIPE["batch_size"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workers", type=int, default=_DEFAULTS.workers)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--summary", action="store_true", help="print the table of the results in --out and stop")
    args = parser.parse_args()
    if not args.summary:
        args.out.mkdir(parents=True, exist_ok=True)
        for seed in args.seeds:
            for model in args.models:
                result = run(model, seed, args.threads, args.workers, args.steps, args.batch_size)
                (args.out / f"{model}_seed{seed}.json").write_text(json.dumps(result, indent=1) + "\n")
                print(f"{model} seed {seed}: " + ", ".join(f"{k} {v:.3f}" for k, v in result["ap"].items())
                      + f", all {result['map']:.3f}; {result['train_seconds']:.0f} s", flush=True)
    print(summary(load_results(args.out)))


if __name__ == "__main__":
    main()
