"""Does the passthrough's fold matter? ``darknet_reorg`` against ``space_to_depth``, same budget.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/passthrough_experiment.py \
        [--seeds 0 1 2] [--folds darknet_reorg space_to_depth] [--steps 960] [--jobs 2] \
        [--out benchmarks/results/passthrough_experiment.json]

Chapter 3 showed that Darknet's ``[reorg]`` (``darknet_reorg``) does not put the 2 x 2
neighbours of a pixel next to each other in channels as the paper's description
(``space_to_depth``) does, and left open whether a network trained from scratch cares.
This script answers it at the book's training budget: for every seed it trains
``small_yolov2`` once with each fold through ``yolo_lessons.train.train`` (chapter 8's live
budget: 960 steps of 16 images, AdamW at the command's lr after its warm-up, a cosine to 0,
the Darknet-exact region loss) and records held-out mAP@0.5 on 500 images every
``--eval-every`` steps.

With one seed, both folds start from the same initial weights (the two models have the
same parameters; only the fold, which has none, differs) and see the same images in the
same order, so the runs of one seed are a paired comparison: any difference comes from
the fold alone, amplified by training. Comparing the fold's difference with the spread
between seeds says whether it is measurable at this budget.

Each run uses ``--threads`` threads (1 by default) and at most ``--jobs`` runs go at once,
each in its own process, drawing its own images (no worker process: two runs already fill
two cores). The results (curves, final mAPs, seconds, the load average) are
written to ``--out`` as JSON after every finished run, so an interrupted experiment keeps
what it has. Chapter 8 loads that file. The seconds depend on the machine and its load;
the mAP of a run depends only on the seed, the thread count and the torch build.

Objects are drawn with the data's own sizes (``data.MIN_SIDE`` to ``data.MAX_SIDE``), not the
training command's larger minimum: the passthrough exists to keep fine detail for small
objects, so the experiment keeps them.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed

from yolo_lessons.data.shapes import MAX_SIDE, MIN_SIDE
from yolo_lessons.train import TrainConfig

DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "passthrough_experiment.json")
FOLD_CHOICES = ("darknet_reorg", "space_to_depth", "none")


def run_one(fold: str, seed: int, options: dict) -> dict:
    """Train one (fold, seed) run in this process and return its curves and figures."""
    import torch

    from yolo_lessons.train import train

    torch.set_num_threads(options["threads"])
    load_before = os.getloadavg()[0]
    history = train(
        steps=options["steps"], seed=seed, threads=options["threads"], eval_every=options["eval_every"],
        eval_images=options["eval_images"], batch_size=options["batch_size"], lr=options["lr"],
        width=options["width"], passthrough=None if fold == "none" else fold, warmup=options["warmup"], workers=0,
        min_side=options["min_side"], max_side=options["max_side"],
        out=None, progress=False, verbose=False,
    )
    last = history.losses[-20:]
    return {
        "fold": fold,
        "seed": seed,
        "eval_steps": history.eval_steps,
        "eval_map": history.eval_map,
        "eval_map11": history.eval_map11,
        "final_map": history.eval_map[-1],
        "final_map11": history.eval_map11[-1],
        "final_loss": sum(last) / len(last),  # loss per image, mean of the last 20 steps
        "losses_every_10": history.losses[::10],
        "train_seconds": history.train_seconds,  # evaluation excluded; inflated by the load
        "load_average_before": load_before,
        "load_average_after": os.getloadavg()[0],
    }


def summary(runs: list[dict], folds: list[str]) -> dict:
    """Per fold: the final mAPs by seed, their mean, median, min and max; per seed: the paired difference."""
    by_fold = {}
    for fold in folds:
        values = [r["final_map"] for r in sorted(runs, key=lambda r: r["seed"]) if r["fold"] == fold]
        if values:
            by_fold[fold] = {
                "final_map": values, "mean": statistics.fmean(values), "median": statistics.median(values),
                "min": min(values), "max": max(values),
            }
    return by_fold


def write(path: str, header: dict, runs: list[dict], folds: list[str]) -> None:
    runs = sorted(runs, key=lambda r: (folds.index(r["fold"]), r["seed"]))
    data = {**header, "runs": runs, "summary": summary(runs, folds)}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    temporary = path + ".tmp"
    with open(temporary, "w") as file:
        json.dump(data, file, indent=1)
        file.write("\n")
    os.replace(temporary, path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--folds", nargs="+", default=["darknet_reorg", "space_to_depth"], choices=FOLD_CHOICES)
    parser.add_argument("--steps", type=int, default=960, help="the training budget of every run")
    parser.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    parser.add_argument("--lr", type=float, default=TrainConfig.lr)
    parser.add_argument("--warmup", type=int, default=TrainConfig.warmup)
    parser.add_argument("--width", type=int, default=8)
    parser.add_argument("--eval-every", type=int, default=120)
    parser.add_argument("--eval-images", type=int, default=500)
    parser.add_argument("--min-side", type=float, default=MIN_SIDE, help="smallest object side, a fraction "
                        "of the image (default: the data's own, as when the committed results were made)")
    parser.add_argument("--max-side", type=float, default=MAX_SIDE, help="largest object side (the data's default)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each run")
    parser.add_argument("--jobs", type=int, default=2, help="runs at once, one process each")
    parser.add_argument("--out", default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read by the workers' OpenMP when they load torch

    import torch

    options = {name: getattr(args, name) for name in (
        "steps", "batch_size", "lr", "warmup", "width", "eval_every", "eval_images", "threads", "min_side",
        "max_side")}
    header = {
        "command": "OMP_WAIT_POLICY=PASSIVE python benchmarks/passthrough_experiment.py " + " ".join(
            argv if argv is not None else sys.argv[1:]),
        "recipe": options,
        "seeds": args.seeds,
        "folds": args.folds,
        "jobs": args.jobs,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "load_average_at_start": os.getloadavg()[0],
        "note": "train_seconds exclude evaluation and are inflated by the machine's load; mAPs are held-out "
                "mAP@0.5 (VOC all-point) on eval_images images of seed 1000",
    }
    print(f"load average {header['load_average_at_start']:.2f} on {os.cpu_count()} CPUs; "
          f"{len(args.seeds)} seed(s) x {len(args.folds)} fold(s), {args.jobs} at once, {args.threads} thread(s) each",
          flush=True)
    started = time.perf_counter()
    runs: list[dict] = []
    jobs = [(fold, seed) for seed in args.seeds for fold in args.folds]
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(run_one, fold, seed, options) for fold, seed in jobs]
        for future in as_completed(futures):
            run = future.result()
            runs.append(run)
            header["wall_seconds"] = time.perf_counter() - started
            write(args.out, header, runs, args.folds)
            print(f"{run['fold']:>15} seed {run['seed']}: final mAP@0.5 {run['final_map']:.4f} "
                  f"(11-point {run['final_map11']:.4f}), {run['train_seconds']:.0f} s of training, "
                  f"load {run['load_average_after']:.1f}", flush=True)
    for fold, row in summary(runs, args.folds).items():
        print(f"{fold:>15}: mean {row['mean']:.4f}, median {row['median']:.4f}, "
              f"min {row['min']:.4f}, max {row['max']:.4f} over {len(row['final_map'])} seed(s)")
    print(f"wall time {time.perf_counter() - started:.0f} s; results in {args.out}")


if __name__ == "__main__":
    main()
