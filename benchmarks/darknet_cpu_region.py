"""Can the original Darknet train a ``[region]`` (YOLOv2) model on the CPU? Measured from its own files.

    python benchmarks/darknet_cpu_region.py --darknet /tmp/darknet [--restored /tmp/darknet-restored] \
        [--images 32] [--batches 100] [--batch 8] [--keep DIR] [--out benchmarks/results/darknet_cpu_region.json]

The claim under test: in pjreddie/darknet only the GPU build trains a YOLOv2 model, because
the CPU version of the region layer's backward pass has its body commented out, so no
gradient leaves that last layer and nothing before it learns. Reading the C source says so;
this script shows it from what Darknet itself writes, without any of Darknet's code or cfg
files: it trains the book's ``small_yolov2`` (width 8, 3 classes, 96 x 96, the anchors of the
book's trained weights) with ``darknet detector train`` and compares, float by float, the
``.weights`` file Darknet saves at the end with the initial one this script wrote.

What should change even with no gradient at all, and what should not:

* conv kernels: Darknet's SGD update adds weight decay to the momentum buffer and applies it,
  so every kernel shrinks by one common factor that depends only on the learning rates of
  the batches run, the momentum and the decay. The script computes that factor by running
  the same update with a zero gradient (a scalar recursion) and compares each kernel with
  ``factor * initial``;
* BatchNorm rolling mean and variance: updated in the forward pass of training
  (0.99 * old + 0.01 * batch statistic), gradient or not;
* BatchNorm beta and gamma, the detector conv's bias: they move only through a gradient
  (no decay is applied to them), so without one they keep their exact bits.

Everything is written into a temporary folder (``--keep DIR`` writes it there instead and
keeps it): the cfg (our own text, generated from the package's model, with a ``[net]``
section for training), the initial ``.weights`` (``save_darknet_weights`` of a seeded
``small_yolov2``), ``--images`` of the book's synthetic shape images as PNG with their
Darknet label files, the train list, ``.names`` and ``.data`` files. Before anything runs,
the cfg is checked against the package's model: ``yolo_lessons.darknet.cfg`` builds the cfg,
loads the initial weights into it and must give the model's output.

Building Darknet (Linux, gcc, no GPU, no OpenCV, no OpenMP -- the Makefile's defaults):
clone https://github.com/pjreddie/darknet, add ``-fcommon`` to the ``CFLAGS=`` line of its
Makefile (recent gcc defaults to ``-fno-common`` and the link then fails on variables
defined in a header), run ``make -j1``; the binary is ``./darknet`` in the checkout.

The restored build (``--restored``), the control arm: a second checkout built the same way,
with one function changed, the CPU backward pass of the region layer in
``src/region_layer.c``. Replace its commented-out body by the CPU equivalent of the GPU
backward pass written below it in the same file: for every image of the batch and every
anchor, multiply the layer's delta of the x and y offsets and of the objectness (and of any
extra coordinates beyond four) by the derivative of the logistic function at the layer's
output (Darknet's ``gradient_array`` with ``LOGISTIC``, the CPU twin of what the GPU version
calls), then add the whole delta into the delta of the layer below (``axpy_cpu`` with
factor 1). Nothing else changes. The script records the ``git diff --stat`` of each checkout.

Darknet seeds its data loader with the time, so which images form each batch (and the flips)
differ between runs; the comparisons below do not depend on that. The JSON holds the Darknet
commit, the command lines, the cfg's training numbers, the batches run, Darknet's printed
loss ("avg") at the first and last batch and, for each build and each category of floats,
how many floats there are, how many changed, the largest change, and for the kernels how far
they are from the decay-only prediction.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from yolo_lessons.darknet.book_weights import BOOK_ANCHORS, small_yolov2_layers
from yolo_lessons.darknet.cfg import build_network, parse_cfg
from yolo_lessons.darknet.weights import FLOAT, load_darknet_weights, read_darknet_header, save_darknet_weights
from yolo_lessons.data.shapes import SHAPE_CLASSES
from yolo_lessons.data.shapes_folder import write_shapes_set
from yolo_lessons.models.blocks import ConvBlock, DarknetMaxPool
from yolo_lessons.models.small_yolov2 import SmallYOLOv2, small_yolov2

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "darknet_cpu_region.json"
SIZE, WIDTH = 96, 8
CFG_NAME = "small_yolov2_train"  # Darknet names its saved files after the cfg: <name>_final.weights


# The [net] section's training numbers (our choice: SGD as YOLOv2 trains, a burn-in short enough
# that most of the run is at the full rate, no augmentation so the images are the ones drawn).
def training_options(batch: int, batches: int) -> dict[str, float | int | str]:
    return {
        "batch": batch, "subdivisions": 1, "learning_rate": 0.001, "momentum": 0.9, "decay": 0.0005,
        "burn_in": 10, "power": 4, "max_batches": batches, "policy": "constant",
        "angle": 0, "saturation": 1, "exposure": 1, "hue": 0,
    }  # fmt: skip


# The [region] section (YOLOv2's loss settings; no jitter, no multi-scale resizing).
REGION_OPTIONS = {
    "coords": 4, "softmax": 1, "jitter": 0, "rescore": 1, "object_scale": 5, "noobject_scale": 1,
    "class_scale": 1, "coord_scale": 1, "absolute": 1, "thresh": 0.6, "random": 0, "bias_match": 1,
}  # fmt: skip


# ----------------------------------------------------------------------------------------
# The cfg, written from the package's model


def _conv_section(block: nn.Module) -> list[str]:
    if isinstance(block, ConvBlock):
        conv, bn, activation = block.conv, 1, "leaky"
    elif isinstance(block, nn.Conv2d):
        conv, bn, activation = block, 0, "linear"  # the detector: bias, no BatchNorm, no activation
    else:
        raise TypeError(f"no cfg section for {type(block).__name__}")
    lines = ["[convolutional]"]
    if bn:
        lines.append("batch_normalize=1")
    lines += [f"filters={conv.out_channels}", f"size={conv.kernel_size[0]}", f"stride={conv.stride[0]}", "pad=1",
              f"activation={activation}"]  # fmt: skip
    return lines


def small_yolov2_cfg(model: SmallYOLOv2, net_options: dict) -> str:
    """Our cfg for ``model`` (with its passthrough), layer numbers as in ``book_weights``' docstring."""
    if model.passthrough is None or model.passthrough_fold != "darknet_reorg":
        raise ValueError("the cfg is written for the darknet_reorg passthrough (Darknet's [reorg])")
    sections: list[list[str]] = []
    fine_index = None
    for number, stage in enumerate(model.stages):
        for block in stage:
            if isinstance(block, (nn.MaxPool2d, DarknetMaxPool)):
                sections.append(["[maxpool]", "size=2", "stride=2"])
            else:
                sections.append(_conv_section(block))
        if number == len(model.stages) - 2:
            fine_index = len(sections) - 1  # the stride-8 map the passthrough reads
    for block in model.extra:
        sections.append(_conv_section(block))
    coarse_index = len(sections) - 1
    sections.append(["[route]", f"layers={fine_index - len(sections)}"])
    sections.append(_conv_section(model.passthrough))
    sections.append(["[reorg]", "stride=2"])
    sections.append(["[route]", f"layers=-1,{coarse_index - len(sections)}"])  # folded map first
    sections.append(_conv_section(model.fuse))
    sections.append(_conv_section(model.detect))
    anchors = ",  ".join(f"{w:.6f},{h:.6f}" for w, h in model.anchors.tolist())
    region = ["[region]", f"anchors={anchors}", f"classes={model.num_classes}", f"num={len(model.anchors)}"]
    region += [f"{k}={v}" for k, v in REGION_OPTIONS.items()]
    sections.append(region)
    net = ["[net]", f"width={SIZE}", f"height={SIZE}", "channels=3"] + [f"{k}={v}" for k, v in net_options.items()]
    header = ["# small_yolov2 of yolo_lessons (width 8, 3 classes, 96 x 96), by benchmarks/darknet_cpu_region.py"]
    return "\n".join(header + ["\n".join(s) + "\n" for s in [net] + sections])


def check_cfg(cfg_text: str, model: SmallYOLOv2, weights: Path) -> float:
    """Build our cfg with the package's cfg reader, load the weights, compare with the model; return max |diff|."""
    network = build_network(parse_cfg(cfg_text))
    load_darknet_weights(network, weights, layers=network.weighted_layers())
    x = torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours, theirs = model.eval()(x), network.eval()(x)
    if ours.shape != theirs.shape:
        raise SystemExit(f"the cfg's output {tuple(theirs.shape)} is not the model's {tuple(ours.shape)}")
    diff = float((ours - theirs).abs().max())
    if diff > 1e-4:
        raise SystemExit(f"the cfg does not compute the model: max |difference| {diff:g}")
    return diff


# ----------------------------------------------------------------------------------------
# The data, in Darknet's layout


def write_data(root: Path, count: int, seed: int) -> tuple[Path, int]:
    """The shapes set in Darknet's layout under ``root`` (``data.shapes_folder``, no held-out
    pictures); return its .data file and the number of boxes."""
    data = write_shapes_set(root, train=count, valid=0, seed=seed, size=SIZE)
    boxes = sum(len(label.read_text().splitlines()) for label in (root / "labels" / "train").glob("*.txt"))
    return data, boxes


# ----------------------------------------------------------------------------------------
# Comparing two .weights files


def read_floats(path: Path) -> tuple[np.ndarray, int]:
    header = read_darknet_header(path)
    raw = np.fromfile(path, dtype=np.uint8)
    return raw[header.size :].view(FLOAT).astype(np.float64), header.seen


def categories(model: SmallYOLOv2) -> list[tuple[str, int, int, int]]:
    """(category, cfg layer, start, stop) for every run of floats in the file, in file order."""
    runs, offset = [], 0
    for layer in small_yolov2_layers(model):
        names = ["bn_beta", "bn_gamma", "rolling_mean", "rolling_variance", "conv_weights"] if layer.bn is not None \
            else ["detector_bias", "conv_weights"]  # fmt: skip
        for name, tensor in zip(names, layer.tensors(), strict=True):
            runs.append((name, layer.index, offset, offset + tensor.numel()))
            offset += tensor.numel()
    return runs


def decay_only_factor(options: dict, batches: int) -> float:
    """The factor every kernel is multiplied by when the gradient is zero: Darknet's CPU update
    (momentum buffer += -decay * batch * w; w += rate / batch * buffer; buffer *= momentum),
    with the rate of each batch number 1 ... batches (burn-in: rate * (t / burn_in) ** power)."""
    lr, momentum, decay, batch = options["learning_rate"], options["momentum"], options["decay"], options["batch"]
    burn_in, power = options["burn_in"], options["power"]
    w, v = 1.0, 0.0  # both proportional to the initial kernel
    for t in range(1, batches + 1):
        rate = lr * (t / burn_in) ** power if t < burn_in else lr
        v += -decay * batch * w
        w += rate / batch * v
        v *= momentum
    return w


def compare(initial: Path, final: Path, model: SmallYOLOv2, factor: float) -> dict:
    before, _ = read_floats(initial)
    after, seen = read_floats(final)
    if before.size != after.size:
        raise SystemExit(f"{final} holds {after.size} floats, {initial} {before.size}")
    result: dict[str, dict] = {}
    for name, _, start, stop in categories(model):
        a, b = before[start:stop], after[start:stop]
        entry = result.setdefault(name, {"floats": 0, "changed": 0, "max_abs_change": 0.0, "_a": [], "_b": []})
        entry["floats"] += stop - start
        entry["changed"] += int(np.count_nonzero(a != b))
        entry["max_abs_change"] = max(entry["max_abs_change"], float(np.abs(b - a).max()))
        entry["_a"].append(a)
        entry["_b"].append(b)
    by_layer = []  # the kernels layer by layer: does the change reach the first layers?
    for name, index, start, stop in categories(model):
        if name == "conv_weights":
            a, b = before[start:stop], after[start:stop]
            by_layer.append({"layer": index, "floats": stop - start, "max_abs_change": float(np.abs(b - a).max()),
                             "max_abs_deviation_from_decay_alone": float(np.abs(b - factor * a).max())})  # fmt: skip
    for name, entry in result.items():
        a, b = np.concatenate(entry.pop("_a")), np.concatenate(entry.pop("_b"))
        entry["max_abs_value_before"] = float(np.abs(a).max())
        if name == "conv_weights":
            predicted = factor * a
            entry["decay_only_factor"] = factor
            entry["fitted_factor"] = float(a @ b / (a @ a))  # least squares b ~ k a over all kernels
            entry["max_abs_change_predicted_by_decay_alone"] = float(np.abs(predicted - a).max())
            entry["max_abs_deviation_from_decay_alone"] = float(np.abs(b - predicted).max())
            decay_rms = float(np.sqrt(np.mean((predicted - a) ** 2)))
            entry["relative_rms_deviation_from_decay_alone"] = (
                float(np.sqrt(np.mean((b - predicted) ** 2))) / decay_rms if decay_rms else None
            )
    kernels = result["conv_weights"]
    summary = {
        "bn_beta_gamma_and_detector_bias_bit_identical": all(
            result[k]["changed"] == 0 for k in ("bn_beta", "bn_gamma", "detector_bias")
        ),
        "rolling_statistics_all_changed": all(
            result[k]["changed"] == result[k]["floats"] for k in ("rolling_mean", "rolling_variance")
        ),
        # decay alone: the kernels are factor * initial up to float32 rounding (1 % of the decay's own change)
        "kernels_moved_by_weight_decay_alone": kernels["relative_rms_deviation_from_decay_alone"] is not None
        and kernels["relative_rms_deviation_from_decay_alone"] < 0.01,
    }
    return {"seen": seen, "summary": summary, "categories": result, "kernels_by_layer": by_layer}


# ----------------------------------------------------------------------------------------
# Running Darknet


LOSS_LINE = re.compile(r"^(\d+): (\S+), (\S+) avg, (\S+) rate, (\S+) seconds, (\d+) images", re.M)
SETTINGS_LINE = re.compile(r"^Learning Rate: .*$", re.M)


def checkout_info(darknet: Path) -> dict:
    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(darknet), *args], capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    return {"path": str(darknet), "commit": git("rev-parse", "HEAD"), "subject": git("log", "-1", "--format=%s (%ad)"),
            "diff_stat": git("diff", "--stat").splitlines()}  # fmt: skip


def run_darknet(name: str, darknet: Path, root: Path, data: Path, cfg: Path, weights: Path, timeout: float) -> dict:
    binary = darknet / "darknet"
    if not os.access(binary, os.X_OK):
        raise SystemExit(f"{binary}: not an executable; build Darknet first (see the docstring)")
    backup = root / "backup"
    if backup.exists():
        shutil.rmtree(backup)
    backup.mkdir()
    command = [str(binary), "detector", "train", str(data), str(cfg), str(weights)]
    log = root / f"{name}.log"
    load = os.getloadavg()[0]
    start = time.time()
    with open(log, "w") as handle:
        done = subprocess.run(command, cwd=root, stdout=handle, stderr=subprocess.STDOUT, timeout=timeout)
    seconds = time.time() - start
    text = log.read_text(errors="replace")
    final = backup / f"{CFG_NAME}_final.weights"
    if done.returncode != 0 or not final.exists():
        raise SystemExit(f"{name}: darknet exited with {done.returncode}; see {log}:\n{text[-2000:]}")
    kept = root / f"{name}_final.weights"
    shutil.copy(final, kept)
    losses = [(int(m[1]), float(m[2]), float(m[3]), float(m[4])) for m in LOSS_LINE.finditer(text)]
    settings = SETTINGS_LINE.search(text)
    return {
        "command": " ".join(command), "returncode": done.returncode, "seconds": round(seconds, 1),
        "load_average_1min_before": round(load, 2), "saved": [p.name for p in sorted(backup.iterdir())],
        "printed_settings": settings[0] if settings else None, "batches_run": losses[-1][0] if losses else 0,
        "first_batch": dict(zip(("batch", "loss", "avg", "rate"), losses[0], strict=True)) if losses else None,
        "last_batch": dict(zip(("batch", "loss", "avg", "rate"), losses[-1], strict=True)) if losses else None,
        "log": str(log), "final_weights": str(kept),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--darknet", type=Path, required=True, help="a built pjreddie/darknet checkout")
    parser.add_argument("--restored", type=Path, help="a second build with the CPU region backward restored")
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--batches", type=int, default=100, help="max_batches of the cfg")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0, help="seed of the initial weights and of the images")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per Darknet run")
    parser.add_argument("--keep", type=Path, help="write everything into this (new) folder and keep it")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    model = small_yolov2(len(SHAPE_CLASSES), BOOK_ANCHORS, WIDTH, "darknet_reorg")
    options = training_options(args.batch, args.batches)
    cfg_text = small_yolov2_cfg(model, options)

    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=False)
        root, cleanup = args.keep.resolve(), None
    else:
        cleanup = tempfile.TemporaryDirectory(prefix="dn_region_")
        root = Path(cleanup.name)
    try:
        cfg = root / f"{CFG_NAME}.cfg"
        cfg.write_text(cfg_text)
        initial = root / "initial.weights"
        save_darknet_weights(model, initial, layers=small_yolov2_layers(model))
        cfg_diff = check_cfg(cfg_text, model, initial)
        data, boxes = write_data(root / "shapes", args.images, args.seed)
        factor = decay_only_factor(options, args.batches)

        builds = {"darknet": args.darknet} | ({"restored": args.restored} if args.restored else {})
        result = {
            "what": "Does pjreddie/darknet's CPU build train a [region] (YOLOv2) model? The book's small_yolov2 "
            "trained with 'darknet detector train'; the .weights Darknet saved compared float by float "
            "with the initial ones, per category of floats.",
            "date": time.strftime("%Y-%m-%d"),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}",
            "model": {
                "name": "small_yolov2",
                "width": WIDTH,
                "classes": len(SHAPE_CLASSES),
                "input": SIZE,
                "anchors": [list(a) for a in BOOK_ANCHORS],
                "seed": args.seed,
                "floats_in_weights": int(sum(s[3] - s[2] for s in categories(model))),
                "cfg_checked_against_package_max_abs_diff": cfg_diff,
            },  # fmt: skip
            "cfg_net_training_options": options,
            "cfg_region_options": REGION_OPTIONS,
            "data": {
                "images": args.images,
                "boxes": boxes,
                "seed": args.seed,
                "format": "PNG, labels 'class cx cy w h'",
            },  # fmt: skip
            "decay_only_factor": factor,
            "builds": {},
        }
        for name, darknet in builds.items():
            print(f"running {name} ({darknet}) ...", flush=True)
            run = run_darknet(name, darknet.resolve(), root, data, cfg, initial, args.timeout)
            run["checkout"] = checkout_info(darknet)
            run["comparison"] = compare(initial, Path(run["final_weights"]), model, factor)
            if cleanup is not None:
                run.pop("log"), run.pop("final_weights")
            result["builds"][name] = run
            for category, entry in run["comparison"]["categories"].items():
                print(f"  {category:17s} {entry['changed']:7d} of {entry['floats']:7d} changed, "
                      f"max |change| {entry['max_abs_change']:.3g}")  # fmt: skip
        result["darknet_commit"] = result["builds"]["darknet"]["checkout"]["commit"]
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.out}")
    finally:
        if cleanup is not None:
            cleanup.cleanup()


if __name__ == "__main__":
    sys.exit(main())
