"""What helps a small labelled set: augmentation, multi-scale training, fine-tuning (chapter 11).

    OMP_WAIT_POLICY=PASSIVE python benchmarks/own_data_experiment.py \
        [--seeds 0 1 2] [--arms augmented not_augmented multiscale finetuned] [--steps 960] \
        [--train 200] [--valid 300] [--jobs 1] [--out benchmarks/results/own_data_experiment.json]

A reader who brings their own pictures rarely has the 30,720 fresh ones of chapter 8's run:
a few hundred is typical. This script measures what Darknet's tools do for such a set. For
each seed ``s`` it writes the book's shapes to disk as a labelled set in Darknet's layout
(``data.shapes_folder.write_shapes_set``: ``--train`` training and ``--valid`` held-out pictures
of 96 x 96, objects 0.25 to 0.6 of the side as in chapter 8's recipe, the pictures of seed
``s + 100`` and ``s + 1100``, so none is among the pictures the book's weights were trained on)
and trains ``small_yolov2`` (width 8) on it with ``yolo_lessons.train.train(data=...)``, the
training command's own function, once per arm:

* ``augmented``: Darknet's ``load_data_detection`` (jitter .3, hue .1, saturation and exposure
  1.5, the flip), the default with ``--data``;
* ``not_augmented``: the same run with ``augment=False`` (every picture letterboxed as it is);
* ``multiscale``: augmented, and ``multiscale=(64, 128)``: Darknet's ``random=1``, a new input
  size every 10 steps, 128 for the last period;
* ``finetuned``: augmented, starting from the book's ``.weights`` (``darknet.book_weights``)
  with every layer but the detector copied (``finetune=``), the detector new.

Every run has the same budget (``--steps`` steps of 16 pictures, chapter 8's AdamW, warm-up and
cosine schedule) and is scored by the command's held-out mAP@0.5 (VOC all-point, threshold
0.005, NMS 0.45) on the set's ``valid`` list every ``--eval-every`` steps, at 96 px; the final
model is also scored at 64 and 128 px (``eval_at_sizes``), where multi-scale training should
show. The runs of one seed share the set, the initial weights of the layers they do not copy
and the order of the pictures, so the arms of a seed are a paired comparison; the spread
between seeds says how large a difference must be to mean anything.

Each run uses ``--threads`` threads (1) and one worker process that draws the pictures; at most
``--jobs`` runs go at once. The results are written to ``--out`` as JSON after every finished
run, so an interrupted experiment keeps what it has; chapter 11 loads that file. The seconds
depend on the machine and its load; a run's mAP depends only on the seed, the thread count
and the torch build.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from yolo_lessons.darknet.book_weights import BOOK_WEIGHTS
from yolo_lessons.data.shapes import MAX_SIDE
from yolo_lessons.train import RECIPE_MIN_SIDE, TrainConfig

DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "own_data_experiment.json")
SET_SEED_OFFSET = 100  # the set of seed s holds the pictures of seed s + 100 (the book's weights saw seed 0's)
IMAGE_SIZE = 96
EVAL_SIZES = (64, 96, 128)
MULTISCALE = (64, 128)
ARMS = {
    "augmented": {},
    "not_augmented": {"augment": False},
    "multiscale": {"multiscale": MULTISCALE},
    "finetuned": {"finetune": str(BOOK_WEIGHTS)},
}


def run_one(arm: str, seed: int, data: str, options: dict) -> dict:
    """Train one (arm, seed) run in this process and return its curves and figures."""
    import torch

    from yolo_lessons.data.loader import LabelledImages
    from yolo_lessons.train import VALID_BATCH, evaluate_batches, train

    torch.set_num_threads(options["threads"])
    load_before = os.getloadavg()[0]
    history = train(
        data=data, steps=options["steps"], seed=seed, threads=options["threads"], workers=options["workers"],
        eval_every=options["eval_every"], eval_images=options["valid"], batch_size=options["batch_size"],
        lr=options["lr"], warmup=options["warmup"], width=options["width"], image_size=IMAGE_SIZE,
        out=None, progress=False, verbose=False, **ARMS[arm],
    )
    held_out = LabelledImages.from_source(data, split="valid")
    at_sizes = {}
    for size in EVAL_SIZES:
        batches = (held_out.batch(range(start, min(start + VALID_BATCH, len(held_out))), size)
                   for start in range(0, len(held_out), VALID_BATCH))  # fmt: skip
        at_sizes[str(size)] = evaluate_batches(history.model, batches)[0]
    last = history.losses[-20:]
    return {
        "arm": arm,
        "seed": seed,
        "eval_steps": history.eval_steps,
        "eval_map": history.eval_map,
        "eval_map11": history.eval_map11,
        "final_map": history.eval_map[-1],
        "final_map11": history.eval_map11[-1],
        "eval_at_sizes": at_sizes,  # final model, held-out mAP@0.5 at each input size
        "final_loss": sum(last) / len(last),  # loss per image, mean of the last 20 steps
        "losses_every_10": history.losses[::10],
        "anchors": history.anchors,
        "train_seconds": history.train_seconds,  # evaluation excluded; inflated by the load
        "load_average_before": load_before,
        "load_average_after": os.getloadavg()[0],
    }


def summary(runs: list[dict], arms: list[str]) -> dict:
    """Per arm: the final mAPs by seed, their mean, min and max, and the paired difference from
    ``augmented`` of the same seed."""
    base = {r["seed"]: r["final_map"] for r in runs if r["arm"] == "augmented"}
    out = {}
    for arm in arms:
        mine = sorted((r for r in runs if r["arm"] == arm), key=lambda r: r["seed"])
        if not mine:
            continue
        values = [r["final_map"] for r in mine]
        row = {"seeds": [r["seed"] for r in mine], "final_map": values, "mean": statistics.fmean(values),
               "min": min(values), "max": max(values)}  # fmt: skip
        if arm != "augmented":
            row["minus_augmented"] = [r["final_map"] - base[r["seed"]] for r in mine if r["seed"] in base]
        out[arm] = row
    return out


def write(path: str, header: dict, runs: list[dict], arms: list[str]) -> None:
    runs = sorted(runs, key=lambda r: (arms.index(r["arm"]), r["seed"]))
    data = {**header, "runs": runs, "summary": summary(runs, arms)}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    temporary = path + ".tmp"
    with open(temporary, "w") as file:
        json.dump(data, file, indent=1)
        file.write("\n")
    os.replace(temporary, path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--steps", type=int, default=960, help="the training budget of every run")
    parser.add_argument("--train", type=int, default=200, help="training pictures in the set")
    parser.add_argument("--valid", type=int, default=300, help="held-out pictures in the set (all scored)")
    parser.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    parser.add_argument("--lr", type=float, default=TrainConfig.lr)
    parser.add_argument("--warmup", type=int, default=TrainConfig.warmup)
    parser.add_argument("--width", type=int, default=8, help="8: the width of the book's weights")
    parser.add_argument("--eval-every", type=int, default=240)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each run")
    parser.add_argument("--workers", type=int, default=1, help="processes that draw each run's pictures")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once, one process each")
    parser.add_argument("--out", default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read by the workers' OpenMP when they load torch

    import torch

    from yolo_lessons.data.shapes_folder import write_shapes_set

    options = {name: getattr(args, name) for name in (
        "steps", "train", "valid", "batch_size", "lr", "warmup", "width", "eval_every", "threads", "workers")}
    header = {
        "command": "OMP_WAIT_POLICY=PASSIVE python benchmarks/own_data_experiment.py " + " ".join(
            argv if argv is not None else sys.argv[1:]),
        "recipe": {**options, "image_size": IMAGE_SIZE, "min_side": RECIPE_MIN_SIDE, "max_side": MAX_SIDE,
                   "set_seed": f"seed + {SET_SEED_OFFSET}", "multiscale": list(MULTISCALE),
                   "eval_sizes": list(EVAL_SIZES), "finetune": "yolo_lessons/weights/small_yolov2_shapes.weights"},
        "seeds": args.seeds,
        "arms": args.arms,
        "jobs": args.jobs,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "load_average_at_start": os.getloadavg()[0],
        "note": "train_seconds exclude evaluation and are inflated by the machine's load (the machine was shared "
                "with other work); mAPs are held-out mAP@0.5 (VOC all-point) on the set's valid pictures at 96 px "
                "unless eval_at_sizes says otherwise",
    }  # fmt: skip
    print(f"load average {header['load_average_at_start']:.2f} on {os.cpu_count()} CPUs; "
          f"{len(args.seeds)} seed(s) x {len(args.arms)} arm(s), {args.jobs} at once", flush=True)
    started = time.perf_counter()
    runs: list[dict] = []
    with tempfile.TemporaryDirectory() as folder:
        sets = {seed: str(write_shapes_set(Path(folder) / f"set{seed}", train=args.train, valid=args.valid,
                                           seed=seed + SET_SEED_OFFSET, size=IMAGE_SIZE, min_side=RECIPE_MIN_SIDE,
                                           max_side=MAX_SIDE))
                for seed in args.seeds}  # fmt: skip
        jobs = [(arm, seed) for seed in args.seeds for arm in args.arms]  # a whole seed first
        with ProcessPoolExecutor(max_workers=args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(run_one, arm, seed, sets[seed], options) for arm, seed in jobs]
            for future in as_completed(futures):
                run = future.result()
                runs.append(run)
                header["wall_seconds"] = time.perf_counter() - started
                write(args.out, header, runs, args.arms)
                sizes = ", ".join(f"{s} px {v:.3f}" for s, v in run["eval_at_sizes"].items())
                print(f"{run['arm']:>14} seed {run['seed']}: final mAP@0.5 {run['final_map']:.4f} ({sizes}), "
                      f"{run['train_seconds']:.0f} s of training, load {run['load_average_after']:.1f}",
                      flush=True)  # fmt: skip
    for arm, row in summary(runs, args.arms).items():
        print(f"{arm:>14}: mean {row['mean']:.4f}, min {row['min']:.4f}, max {row['max']:.4f} over "
              f"{len(row['final_map'])} seed(s)")
    print(f"wall time {time.perf_counter() - started:.0f} s; results in {args.out}")


if __name__ == "__main__":
    main()
