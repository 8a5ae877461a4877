"""Chapter 12's measures applied to one training step of the book's small YOLOv2: images per second.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/train_step_speed.py [--rounds 15] [--steps 10]

One step as ``yolo_lessons.train`` takes it (forward, ``region_loss`` divided by the batch,
``zero_grad``, ``backward``, AdamW's ``step``) on one fixed batch of 16 images of 96 x 96 drawn
once, so the drawing of images (a worker process in the command) is not timed. Variants:

    contiguous       activations and weights (N, C, H, W), one torch thread
    channels_last    (N, H, W, C), one thread: what ``train.py`` does today (``train.LAYOUT``)
    2 threads        channels_last with torch.set_num_threads(2)
    compile          channels_last, one thread, the model wrapped in torch.compile (TorchInductor;
                     the loss and the optimizer stay eager); its first steps, which compile, are
                     not timed, their seconds are reported

Each variant has its own model and optimizer from the same initial weights. A round runs
``--steps`` steps of every variant in turn (so a change in the machine's load hits all alike);
the figure is the median over ``--rounds`` rounds of images per second. Each variant's losses
after the timed steps are printed beside it: the variants compute the same steps up to the
order of float sums. Writes ``benchmarks/results/train_step_speed.json``. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from yolo_lessons.data.shapes import collate, make_image
from yolo_lessons.losses.region_loss import region_loss
from yolo_lessons.models.small_yolov2 import small_yolov2
from yolo_lessons.train import TrainConfig

OUT = Path(__file__).resolve().parent / "results" / "train_step_speed.json"
ANCHORS = ((1.0, 1.0), (1.5, 2.0), (2.0, 1.5), (2.5, 2.5), (3.0, 3.0))  # grid cells; any shapes do for timing


class Variant:
    """A model, its optimizer and how to call one training step on the batch."""

    def __init__(self, name: str, layout: torch.memory_format, threads: int, compiled: bool, state: dict):
        self.name, self.layout, self.threads = name, layout, threads
        self.model = small_yolov2(3, ANCHORS, 8).to(memory_format=layout)
        self.model.load_state_dict(state)
        self.model.train()
        self.network = torch.compile(self.model) if compiled else self.model
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=TrainConfig.lr,
                                           weight_decay=TrainConfig.weight_decay)
        self.times: list[float] = []
        self.loss = float("nan")

    def step(self, images: torch.Tensor, boxes: torch.Tensor, counts: torch.Tensor) -> float:
        torch.set_num_threads(self.threads)
        output = self.network(images.to(memory_format=self.layout))
        # seen past the prior-matching phase: the steps of most of a run (chapter 7)
        loss = region_loss(output.float(), boxes, counts, self.model.anchors, 3, seen=10**6).loss / len(images)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steps", type=int, default=10, help="steps of each variant per round")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    images, boxes, counts = collate([
        tuple(torch.from_numpy(a) for a in make_image(i, seed=0, size=96, min_side=0.25, max_side=0.6))
        for i in range(TrainConfig.batch_size)
    ])
    torch.manual_seed(0)
    state = small_yolov2(3, ANCHORS, 8).state_dict()
    variants = [
        Variant("contiguous", torch.contiguous_format, 1, False, state),
        Variant("channels_last", torch.channels_last, 1, False, state),
        Variant("2 threads", torch.channels_last, 2, False, state),
        Variant("compile", torch.channels_last, 1, True, state),
    ]
    warmup_seconds = {}
    for variant in variants:  # the first steps: allocations, and for compile the compilation
        started = time.perf_counter()
        for _ in range(3):
            variant.step(images, boxes, counts)
        warmup_seconds[variant.name] = round(time.perf_counter() - started, 1)
    for _ in range(args.rounds):
        for variant in variants:
            started = time.perf_counter()
            for _ in range(args.steps):
                variant.loss = variant.step(images, boxes, counts)
            variant.times.append((time.perf_counter() - started) / args.steps)
    base = statistics.median(variants[1].times)
    rows = []
    print(f"load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after; {os.cpu_count()} CPUs")
    print(f"{'variant':<14} {'ms/step':>8} {'images/s':>9} {'vs train.py':>12} {'loss':>9} {'warm-up s':>10}")
    for variant in variants:
        seconds = statistics.median(variant.times)
        rows.append({"variant": variant.name, "ms_per_step": round(1000 * seconds, 2),
                     "images_per_s": round(len(images) / seconds, 1), "vs_train_py": round(base / seconds, 3),
                     "loss_after": variant.loss, "warmup_seconds": warmup_seconds[variant.name]})
        print(f"{variant.name:<14} {1000 * seconds:8.1f} {len(images) / seconds:9.1f} {base / seconds:12.2f} "
              f"{variant.loss:9.3f} {warmup_seconds[variant.name]:10.1f}")
    record = {"what": __doc__.splitlines()[0], "rounds": args.rounds, "steps_per_round": args.steps,
              "batch": len(images), "image_size": 96, "torch": torch.__version__,
              "machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "load_average_before": load_before,
              "load_average_after": os.getloadavg()[0], "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
