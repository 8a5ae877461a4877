"""Labelled pictures on disk as batches: does one worker keep up with training, and is indexing quick?

    OMP_WAIT_POLICY=PASSIVE python benchmarks/data_pipeline.py [--quick] [--out benchmarks/results/data_pipeline.json]

The chapter 11 issue's two goals, on the 2-core machine:

(a) the data pipeline (decode, Darknet's augmentation or letterbox, collate; ``data.loader``)
    with **one** DataLoader worker delivers at least **2x** the images per second that a training
    step consumes, at 96 px and at 416 px. The step is train.py's: ``small_yolov2`` at width 8
    (the default), batch 16, ``region_loss``, backward, AdamW, one torch thread (the command's
    advice on two cores: ``--threads 1`` and one worker on the other core), channels-last. At
    416 the *same* model runs at 416 px (18.8x the pixels of 96; a full ``yolov2`` would consume
    far fewer images per second, an easier goal). The pictures, written to a temporary folder,
    are JPEGs of the book's shapes at a camera's 4:3 aspect: 128 x 96 for the 96-px run,
    500 x 375 (VOC's most common size) for the 416-px run. Both pipelines are timed: training
    (``Augmentation()``: jitter .3, hue .1, saturation and exposure 1.5, flip) and held-out
    (``augmentation=None``: the letterbox).
(b) indexing **10,000** labelled pictures (paths and label rows, ``LabelledImages.from_source``
    on a ``.data`` file; tiny PNGs and label files of two rows) takes under **5 s**, and the index
    holds no decoded picture (its pickled size, what a DataLoader worker receives, is printed).

Pipeline and step are measured alternately, ``--repeats`` times, and the medians compared, so a
change of load on the machine hits both. The machine is shared: quote the figures with the load
average printed before and after. ``--quick`` times fewer batches (a minute or two in all).
A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from yolo_lessons.data.augment import Augmentation
from yolo_lessons.data.loader import LabelledImages
from yolo_lessons.data.shapes import make_image
from yolo_lessons.losses.region_loss import region_loss
from yolo_lessons.models.small_yolov2 import small_yolov2

BATCH = 16  # train.py's default batch
GOAL_RATIO = 2.0  # pipeline images/s >= 2 x the images/s a training step consumes
GOAL_INDEX_SECONDS = 5.0
INDEX_PICTURES = 10_000
PICTURE_SIZES = {96: (128, 96), 416: (500, 375)}  # network side -> the (width, height) of the pictures on disk


class Batches(torch.utils.data.Dataset):
    """Item k: batch k of a run, as train.py's StepBatches asks for it (indices, size, draws)."""

    def __init__(self, pictures: LabelledImages, size: int, count: int):
        self.pictures, self.size, self.count = pictures, size, count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, k: int):
        indices = [(k * BATCH + j) % len(self.pictures) for j in range(BATCH)]
        return self.pictures.batch(indices, self.size, range(k * BATCH, (k + 1) * BATCH))


def write_pictures(folder: Path, count: int, width: int, height: int) -> Path:
    """``count`` JPEGs of shapes (width x height) with their label files and a .data file; returns the .data."""
    (folder / "images").mkdir(parents=True)
    (folder / "labels").mkdir()
    lines = []
    for index in range(count):
        side = -(-max(width, height) // 32) * 32  # make_image draws sides that are multiples of 32
        image, boxes = make_image(index, seed=0, size=side)  # (3, S, S) in [0, 1], (M, 5) fractions
        pixels = Image.fromarray((image.transpose(1, 2, 0) * 255).round().astype(np.uint8)).resize((width, height))
        path = folder / "images" / f"{index:05d}.jpg"
        pixels.save(path, quality=90)
        rows = "".join(f"{int(c)} {x:.6f} {y:.6f} {w:.6f} {h:.6f}\n" for c, x, y, w, h in boxes.tolist())
        (folder / "labels" / f"{index:05d}.txt").write_text(rows)  # the resize keeps the fractions
        lines.append(str(path))
    (folder / "train.txt").write_text("\n".join(lines) + "\n")
    (folder / "shapes.names").write_text("circle\nsquare\ntriangle\n")
    (folder / "shapes.data").write_text("classes = 3\ntrain = train.txt\nvalid = train.txt\nnames = shapes.names\n")
    return folder / "shapes.data"


def pipeline_images_per_second(pictures: LabelledImages, size: int, batches: int) -> float:
    """Images per second out of one DataLoader worker, timed from the first batch (worker start-up excluded)."""
    loader = torch.utils.data.DataLoader(Batches(pictures, size, batches + 1), batch_size=None, num_workers=1,
                                         prefetch_factor=2)  # fmt: skip
    iterator = iter(loader)
    next(iterator)
    start = time.perf_counter()
    for _ in iterator:
        pass
    return batches * BATCH / (time.perf_counter() - start)


def step_images_per_second(size: int, steps: int) -> float:
    """Images per second that train.py's step consumes (one thread; the batch drawn beforehand)."""
    torch.manual_seed(0)
    model = small_yolov2(3, width=8).to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    images = torch.rand(BATCH, 3, size, size).to(memory_format=torch.channels_last)
    boxes = torch.tensor([[[0, 0.5, 0.5, 0.3, 0.3], [1, 0.25, 0.3, 0.2, 0.25]]]).repeat(BATCH, 1, 1)
    counts = torch.full((BATCH,), 2)

    def step(seen: int) -> None:
        loss = region_loss(model(images).float(), boxes, counts, model.anchors, 3, seen=seen).loss / BATCH
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step(BATCH)  # warm-up: oneDNN picks its kernels
    times = []
    for k in range(steps):
        start = time.perf_counter()
        step((k + 2) * BATCH)
        times.append(time.perf_counter() - start)
    return BATCH / statistics.median(times)


def index_seconds(folder: Path) -> tuple[float, int]:
    """Seconds to index INDEX_PICTURES tiny labelled PNGs, and the index's pickled size in bytes."""
    (folder / "images").mkdir(parents=True)
    (folder / "labels").mkdir()
    png = folder / "tiny.png"
    Image.fromarray(np.full((8, 8, 3), 128, np.uint8)).save(png)
    data = png.read_bytes()
    lines = []
    for index in range(INDEX_PICTURES):
        path = folder / "images" / f"{index:05d}.png"
        path.write_bytes(data)
        (folder / "labels" / f"{index:05d}.txt").write_text("0 0.5 0.5 0.2 0.2\n1 0.3 0.3 0.1 0.1\n")
        lines.append(str(path))
    (folder / "train.txt").write_text("\n".join(lines) + "\n")
    (folder / "two.names").write_text("a\nb\n")
    (folder / "set.data").write_text("classes = 2\ntrain = train.txt\nnames = two.names\n")
    start = time.perf_counter()
    index = LabelledImages.from_source(folder / "set.data", split="train", augmentation=Augmentation())
    seconds = time.perf_counter() - start
    assert len(index) == INDEX_PICTURES and len(index.rows) == 2 * INDEX_PICTURES
    return seconds, len(pickle.dumps(index))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer batches and repeats (a minute or two)")
    parser.add_argument("--repeats", type=int, default=None, help="alternations of pipeline and step (default 3, "
                        "quick 2)")  # fmt: skip
    parser.add_argument("--out", help="also write the figures to this JSON file")
    args = parser.parse_args()
    repeats = args.repeats or (2 if args.quick else 3)
    torch.set_num_threads(1)
    load_before = os.getloadavg()[0]
    print(f"load average before: {load_before:.2f} on {os.cpu_count()} CPUs; "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}")
    started = time.perf_counter()
    record = {"command": " ".join(["python", *sys.argv]), "torch": torch.__version__,
              "python": platform.python_version(), "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
              "load_average_at_start": load_before, "goals": {"ratio": GOAL_RATIO, "index_seconds": GOAL_INDEX_SECONDS},
              "pipeline": {}}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="data_pipeline-") as temporary:
        for size, (width, height) in PICTURE_SIZES.items():
            batches = (8 if size == 416 else 30) if args.quick else (20 if size == 416 else 80)
            steps = (3 if size == 416 else 15) if args.quick else (6 if size == 416 else 40)
            data = write_pictures(Path(temporary) / f"pictures{size}", batches * BATCH, width, height)
            train = LabelledImages.from_source(data, split="train", augmentation=Augmentation())
            valid = train.with_augmentation(None)
            measured = {"train": [], "valid": [], "step": []}
            for _ in range(repeats):
                measured["train"].append(pipeline_images_per_second(train, size, batches))
                measured["valid"].append(pipeline_images_per_second(valid, size, batches))
                measured["step"].append(step_images_per_second(size, steps))
            medians = {key: statistics.median(values) for key, values in measured.items()}
            ratio_train, ratio_valid = medians["train"] / medians["step"], medians["valid"] / medians["step"]
            print(f"{size} px ({width} x {height} JPEGs): pipeline {medians['train']:.0f} images/s augmented, "
                  f"{medians['valid']:.0f} letterboxed; a training step consumes {medians['step']:.1f} images/s; "
                  f"ratio {ratio_train:.2f} (augmented), {ratio_valid:.2f} (letterboxed); goal >= {GOAL_RATIO:g}")
            record["pipeline"][str(size)] = {
                "pictures": f"{width}x{height} JPEG", "batches": batches, "steps": steps, "images_per_s": measured,
                "medians": medians, "ratio_augmented": ratio_train, "ratio_letterboxed": ratio_valid,
            }  # fmt: skip
        seconds, pickled = index_seconds(Path(temporary) / "index")
    print(f"indexing {INDEX_PICTURES} labelled pictures: {seconds:.2f} s (goal < {GOAL_INDEX_SECONDS:g} s); "
          f"the index pickles to {pickled / 1e6:.2f} MB, no pixels")
    record["index"] = {"pictures": INDEX_PICTURES, "seconds": seconds, "pickled_bytes": pickled}
    record["load_average_at_end"] = os.getloadavg()[0]
    record["wall_seconds"] = round(time.perf_counter() - started, 1)
    print(f"load average after: {record['load_average_at_end']:.2f}; {record['wall_seconds']:.0f} s in all")
    if args.out:
        with open(args.out, "w", encoding="utf-8") as file:
            json.dump(record, file, indent=1)


if __name__ == "__main__":
    main()
