"""Train the scaled-down YOLOv2 on the book's synthetic shapes: ``python -m yolo_lessons.train``.

What one run does:

1. draws the training images of ``--seed`` (``data.shapes.make_image``) and computes ``--anchors``
   k-means anchors with the 1 - IoU distance (YOLO9000 section 2) from the boxes of the first
   images, in cells of the model's stride-16 grid;
2. builds ``small_yolov2`` (``--width``, ``--passthrough``) seeded by ``--seed``;
3. for ``--steps`` steps: a batch of images, the Darknet-exact ``region_loss`` summed over the
   batch **divided by the batch size**, AdamW, and a learning rate that climbs linearly to
   ``--lr`` over the first ``--warmup`` steps, then falls along a cosine to 0 at the last step;
4. every ``--eval-every`` steps and at the end: mAP@0.5 on ``--eval-images`` held-out images
   (another seed, ``--eval-seed``), scored as ``./darknet detector valid`` does (threshold
   0.005, per-class NMS at IoU 0.45, VOC all-point AP);
5. saves ``OUT/checkpoint.pt`` (the last state, to ``--resume`` from) every ``--save-every``
   steps, at every evaluation, at the end and on Ctrl-C or SIGTERM; ``OUT/best.pt`` whenever
   the held-out mAP is the best so far; and one row a step and one an evaluation in
   ``OUT/results.csv`` as the run goes.

Fail-safe: every option and file is checked before the first step (a bad one gets one line
and exit status 2, and nothing is written); a folder that already holds a run is refused
unless ``--resume`` continues it, and without ``--out`` each run gets a new folder
(``runs/train``, then ``runs/train-2``, ...); a loss that turns NaN or infinite stops the run,
keeps the last good checkpoint and exits 1.

``--model small_yolov3`` trains the scaled-down YOLOv3 (``small_yolov3``) the same way, with
what YOLOv3 needs instead: nine k-means anchors in **input pixels**, split across its three
heads by area (the smallest three to the stride-8 grid), the Darknet-exact ``yolo_loss`` (no
prior-matching phase: a ``[yolo]`` layer has none) and ``decode_yolov3``. ``--min-side`` and
``--max-side`` set the range of object sizes ``data.shapes.make_image`` draws (fractions of the image).

``--data my.data`` trains on your own labelled pictures instead (chapter 11): a Darknet ``.data``
file, a list file or a folder (``data.datasets``). Every picture is checked first, as ``python -m
yolo_lessons.data check`` does, and a set with problems is refused in one line unless
``--skip-bad``; the held-out mAP is measured on its ``valid =`` list (or a seeded
``--valid-fraction``); the pictures are augmented as Darknet's ``load_data_detection`` does
(``--jitter``, ``--hue``, ``--saturation``, ``--exposure``, the flip; ``--no-augment``), and
``--multiscale LOW HIGH`` changes the input size every 10 steps as ``random=1`` does. The
anchors are k-means of the set's boxes. ``--finetune FILE`` starts from a checkpoint or the
book's ``.weights`` with every layer but the detector copied (``--upto N``: Darknet's cutoff),
the detector new for the set's classes.

Two options exist for the book's measurements: ``--optimizer darknet_sgd`` trains with
Darknet's SGD and its burn-in and steps scaled to the run (chapter 8 compares it with the
recipe), and ``--heads 1`` keeps ``small_yolov3``'s stride-16 head alone, with all nine
anchors (chapter 10's one-scale arm).

Why the loss is divided by the batch: Darknet sums the loss over the batch and divides the
*learning rate* by the batch instead (``update_convolutional_layer``: ``learning_rate/batch``).
With SGD the two are the same. Adam divides each gradient by its own running RMS, so scaling
the gradient does nothing and ``lr / batch`` simply makes every step ``batch`` times smaller:
the prototype of this recipe reached 0.02 mAP that way. Averaging the loss keeps the step size
``--lr`` whatever the batch.

Exactness: the images of step ``s`` on rank ``r`` are a pure function of (seed, s, r, world
size) (``image_indices``), never the state of a DataLoader, and the learning rate is a function
of the step, so a run resumed from a checkpoint computes the very same losses as an unbroken
one, and the same seed with the same ``--threads`` gives bit-identical losses.

Several processes: ``torchrun --standalone --nproc_per_node=2 -m yolo_lessons.train ...`` runs
the same code under DistributedDataParallel (gloo on the CPU, NCCL with ``--device cuda``); each
rank draws its own images, gradients are averaged, only rank 0 evaluates, prints and writes.
``--batch-size`` is per process, so N processes train on N times as many images per step.

On a shared or small CPU, start it as ``OMP_WAIT_POLICY=PASSIVE python -m yolo_lessons.train``:
OpenMP threads then sleep instead of spinning while they wait, which avoids steps 5-10x slower
than normal when another program wants the same cores. (OpenMP reads the variable when torch
is loaded, so it must be set before Python starts.) On two cores, ``--threads 1`` is faster
than two threads for this small model: the default ``--workers 1`` draws the next images in a
second process, on the other core.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import math
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn

from .darknet.book_weights import small_yolov2_layers
from .darknet.weights import load_darknet_weights, read_darknet_header
from .data.anchors import kmeans_anchors, mean_best_iou, to_grid_cells
from .data.augment import Augmentation
from .data.check import usable_pictures
from .data.datasets import read_data_file, read_names
from .data.loader import LabelledImages
from .data.multiscale import DARKNET_EVERY, DARKNET_FINAL, multiscale_size
from .data.shapes import MAX_SIDE, MIN_SIDE, SHAPE_CLASSES, check_image_size, collate, make_image
from .detect import CommandParser
from .detection.decode import box_corners
from .detection.inference import decode_model_output
from .detection.metrics import GroundTruth, mean_average_precision
from .detection.nms import VALID_THRESHOLD, postprocess
from .losses.region_loss import PART_NAMES as REGION_PARTS
from .losses.region_loss import region_loss
from .losses.yolo_loss import PART_NAMES as YOLO_PARTS
from .losses.yolo_loss import yolo_loss
from .models.small_yolov2 import PASSTHROUGHS, STRIDE, SmallYOLOv2, small_yolov2
from .models.small_yolov3 import HEAD_CHOICES, SmallYOLOv3, small_yolov3

CHECKPOINT_NAME = "checkpoint.pt"  # the last state of the run: what --resume continues
BEST_NAME = "best.pt"  # the state of the best held-out mAP so far (same format)
RESULTS_NAME = "results.csv"  # one row a step and one an evaluation
DEFAULT_OUT = "runs/train"
EXIT_DIVERGED = 1  # the loss became NaN or infinite
EXIT_TERMINATED = 143  # the shell's code for "ended by SIGTERM" (128 + 15)
CHECKPOINT_FORMAT = 1
ANCHOR_IMAGES = 1000  # k-means runs on the boxes of the first (at most) this many training images
EXIT_INTERRUPTED = 130  # the shell's code for "ended by SIGINT" (128 + 2)
REPEAT_SIGINT_SECONDS = 2.0

# Options that define the run: a resumed run must keep them, or its losses would differ.
RECIPE = (
    "steps", "batch_size", "image_size", "width", "lr", "weight_decay", "seed", "train_images",
    "num_anchors", "passthrough", "prior_images", "model", "min_side", "max_side", "warmup",
    "data", "names", "skip_bad", "valid_fraction", "augment", "jitter", "hue", "saturation", "exposure", "flip",
    "multiscale", "finetune", "upto", "heads", "optimizer",
)
# Darknet's yolov2-voc.cfg trains for max_batches = 80,200 and holds the largest size for the last 200:
# a run of ``steps`` keeps the same share (at least one period of 10 steps).
DARKNET_MAX_BATCHES = 80200
VALID_BATCH = 32  # held-out pictures decoded and scored at a time (--data)
# The models --model trains, with their default number of k-means anchors: small_yolov2's are in
# cells of its stride-16 grid ([region]), small_yolov3's in input pixels, three per head ([yolo]).
MODEL_ANCHORS = {"small_yolov2": 5, "small_yolov3": 9}
OPTIMIZERS = ("adamw", "darknet_sgd")
DARKNET_MOMENTUM = 0.9  # yolov2-voc.cfg's momentum
DARKNET_STEPS = (40000, 60000)  # yolov2-voc.cfg's steps (of max_batches 80,200), each a x 0.1 scale
DARKNET_BURN_IN_POWER = 4  # Darknet's default power of the burn-in (get_current_rate)
RECIPE_MIN_SIDE = 0.25  # the recipe's smallest object side; the data's own default is MIN_SIDE
# Training stores images and weights "channels last" (N, H, W, C in memory; the shapes stay
# N, C, H, W): the CPU's convolution library (oneDNN) prefers that layout, and on the 2-core
# machine a step of small_yolov2 takes about a quarter less time. The values are the same up to
# float rounding; the model is returned in the ordinary layout.
LAYOUT = torch.channels_last
# Settings that do not define the recipe but change the numbers: a resumed run keeps them too
# (threads: a second torch thread sums in another order; device: another arithmetic).
KEPT_ON_RESUME = ("threads", "device")
# Options added after the first checkpoints were written, with the value those runs had.
EARLIER_DEFAULTS = {"warmup": 0}


@dataclass
class TrainConfig:
    """Every option of ``python -m yolo_lessons.train``; the defaults are the book's recipe.

    The recipe: 96 x 96 images whose objects are 0.25 to 0.6 of the image side (before the
    border cuts them), width 8, 5 k-means anchors, AdamW on the loss per image at lr 8e-3
    reached by a 50-step linear warm-up, then a cosine to 0; batch 16 for 1920 steps.
    Measured by ``benchmarks/train_map.py`` (seeds 0, 1, 2; one thread and one worker on a
    quiet 2-core machine): held-out mAP@0.5 0.921 to 0.931 after 880 steps (about 54 s of
    training), 0.960 to 0.963 after 1760 (about 107 s); 1920 steps take about two minutes.
    Batch 32 at lr 4e-3 without a warm-up, the first recipe, reached 0.93 after 720 steps
    (23,040 images, ~110 s). With the data's own default sizes (down to 0.12 of the side) that
    first recipe reached only 0.70 after 480 steps of 32: objects of a few pixels on a stride-16
    grid are what chapter 10's three scales are for.
    """

    steps: int = 1920
    batch_size: int = 16
    image_size: int = 96
    width: int = 8
    lr: float = 8e-3
    warmup: int = 50
    weight_decay: float = 0.01
    # "adamw": the book's recipe. "darknet_sgd": train_detector's update as yolov2-voc.cfg sets it:
    # SGD with momentum 0.9, weight_decay (the cfg's decay, 0.0005) on the convolution weights only,
    # a burn-in of lr * ((step + 1) / warmup) ** 4, and lr x 0.1 at 40,000 / 80,200 and 60,000 / 80,200
    # of the steps (the cfg's steps=40000,60000 scaled to the run).
    optimizer: str = "adamw"
    seed: int = 0
    train_images: int = 0
    num_anchors: int | None = None  # None: the model's own count, MODEL_ANCHORS
    passthrough: str | None = "darknet_reorg"
    prior_images: int = 12800
    model: str = "small_yolov2"
    heads: int = 3  # small_yolov3: three heads (strides 32, 16, 8) or one (stride 16, all nine anchors)
    min_side: float = RECIPE_MIN_SIDE
    max_side: float = MAX_SIDE
    threads: int | None = None
    workers: int = 1
    eval_every: int = 480
    eval_images: int = 500
    eval_seed: int = 1000
    save_every: int = 100
    out: str | None = DEFAULT_OUT
    resume: str | None = None
    stop_after: int | None = None
    device: str = "cpu"
    progress: bool = True
    verbose: bool = True
    # A labelled set on disk instead of the shapes (chapter 11): Darknet's .data file, a list file or a folder.
    data: str | None = None
    names: str | None = None  # a .names file, for a list file or a folder without one
    skip_bad: bool = False  # train on the pictures without problems instead of refusing the set
    valid_fraction: float = 0.1  # held out (seeded) when the set has no valid = list
    augment: bool | None = None  # Darknet's load_data_detection; None: on with --data, off for the shapes
    jitter: float = 0.3  # the cfg's options, as yolov2-voc.cfg and yolov3.cfg set them
    hue: float = 0.1
    saturation: float = 1.5
    exposure: float = 1.5
    flip: bool = True
    multiscale: tuple[int, int] | None = None  # (low, high) px: Darknet's random=1, a new size every 10 steps
    finetune: str | None = None  # a training checkpoint or a small_yolov2 .weights file to start from
    upto: int | None = None  # Darknet's cutoff: load the cfg layers before this one (default: all but the head)

    @property
    def augmenting(self) -> bool:
        return self.data is not None if self.augment is None else self.augment

    def augmentation(self) -> Augmentation | None:
        if not self.augmenting:
            return None
        return Augmentation(self.jitter, self.hue, self.saturation, self.exposure, self.flip)

    def check(self) -> None:
        """Raise ``ValueError`` naming the first option that cannot work."""
        for name in ("steps", "batch_size", "width", "eval_images"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"expected a positive integer {name}, got {value!r}")
        for name in ("train_images", "eval_every", "prior_images", "seed", "eval_seed", "warmup", "save_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"expected a non-negative integer {name}, got {value!r}")
        check_image_size(self.image_size)
        if self.model not in MODEL_ANCHORS:
            raise ValueError(f"expected model in {tuple(MODEL_ANCHORS)}, got {self.model!r}")
        if self.num_anchors is not None and (
            isinstance(self.num_anchors, bool) or not isinstance(self.num_anchors, int) or self.num_anchors < 1
        ):
            raise ValueError(f"expected a positive integer num_anchors, got {self.num_anchors!r}")
        if self.model == "small_yolov3" and self.num_anchors not in (None, MODEL_ANCHORS["small_yolov3"]):
            raise ValueError(f"small_yolov3 has three heads of three anchors: expected 9, got {self.num_anchors}")
        if not 0 < self.min_side <= self.max_side <= 1:
            raise ValueError(
                f"expected 0 < min_side <= max_side <= 1 (fractions of the image), got {self.min_side}, {self.max_side}"
            )
        finite = math.isfinite(self.lr) and math.isfinite(self.weight_decay)
        if not finite or not self.lr > 0 or not self.weight_decay >= 0:
            raise ValueError(
                f"expected a finite lr > 0 and a finite weight_decay >= 0, got {self.lr} and {self.weight_decay}"
            )
        if self.passthrough not in PASSTHROUGHS:
            raise ValueError(f"expected passthrough in {PASSTHROUGHS}, got {self.passthrough!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"expected optimizer in {OPTIMIZERS}, got {self.optimizer!r}")
        if self.heads not in HEAD_CHOICES or isinstance(self.heads, bool):
            raise ValueError(f"expected heads 3 or 1 (small_yolov3's scales), got {self.heads!r}")
        if self.heads != 3 and self.model != "small_yolov3":
            raise ValueError(
                f"expected heads 3 with {self.model} (heads chooses small_yolov3's scales), got {self.heads}"
            )
        if self.eval_seed == self.seed:
            raise ValueError(f"the held-out images need another seed than the training images, both are {self.seed}")
        if self.stop_after is not None and (not isinstance(self.stop_after, int) or self.stop_after < 1):
            raise ValueError(f"expected a positive stop_after (steps), got {self.stop_after!r}")
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 0:
            raise ValueError(f"expected a non-negative integer number of workers, got {self.workers!r}")
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise ValueError(f"expected a positive number of threads, got {self.threads!r}")
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"expected device 'cpu' or 'cuda', got {self.device!r}")
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ValueError("expected a CUDA GPU for device 'cuda', but torch sees none (use --device cpu)")
        self._check_data_options()

    def _check_data_options(self) -> None:
        if self.data is None:
            given = [f"--{name.replace('_', '-')}" for name, value in
                     (("names", self.names), ("skip_bad", self.skip_bad), ("multiscale", self.multiscale))
                     if value]  # fmt: skip
            if self.augment:
                given.append("augmentation")
            if given:
                raise ValueError(f"{' and '.join(given)} work on a labelled set: expected --data too, got none")
        else:
            if not os.path.exists(self.data):
                raise ValueError(f"expected --data to be a .data file, a list file or a folder, got {self.data} "
                                 "(no such file)")  # fmt: skip
            if self.names is not None and not os.path.isfile(self.names):
                raise ValueError(f"expected --names to be a .names file, got {self.names} (no such file)")
            if not 0 < self.valid_fraction < 1:
                raise ValueError(f"expected a valid_fraction between 0 and 1, got {self.valid_fraction!r}")
        if self.augmenting:
            self.augmentation()  # Augmentation checks its own ranges
        if self.multiscale is not None:
            low, high = self.multiscale
            for value in (low, high):
                check_image_size(value)
            if low > high:
                raise ValueError(f"expected --multiscale LOW HIGH with LOW <= HIGH, got {low} {high}")
        if self.finetune is not None:
            if not os.path.isfile(self.finetune):
                raise ValueError(f"expected --finetune to be a checkpoint (.pt) or a .weights file, got "
                                 f"{self.finetune} (no such file)")  # fmt: skip
            if self.finetune.endswith(".weights") and self.model != "small_yolov2":
                raise ValueError(f"a .weights file gives its layers in small_yolov2's cfg order; for {self.model} "
                                 "fine-tune from a training checkpoint (.pt)")  # fmt: skip
        if self.upto is not None:
            if isinstance(self.upto, bool) or not isinstance(self.upto, int) or self.upto < 1:
                raise ValueError(f"expected --upto to be a positive number of cfg layers, got {self.upto!r}")
            if self.finetune is None or self.model != "small_yolov2":
                raise ValueError("--upto counts small_yolov2's cfg layers of a --finetune file: expected both")


@dataclass
class TrainHistory:
    """What ``train`` returns: the curves (plain lists) and the trained model.

    losses: one per step, the loss per image (summed over the batch, divided by it),
        averaged over processes; ``parts[name]`` the same for each term of ``region_loss``.
    eval_steps, eval_map, eval_map11, eval_seconds: one per evaluation, the step, held-out
        mAP@0.5 (VOC all-point and 11-point) and the training seconds so far (evaluation
        time excluded).
    interrupted: stopped by Ctrl-C, SIGTERM (``terminated``) or ``stop_after``, resumable.
    diverged_at: the step whose loss was NaN or infinite (the run stopped there), else None.
    """

    losses: list[float] = field(default_factory=list)
    parts: dict[str, list[float]] = field(default_factory=dict)
    eval_steps: list[int] = field(default_factory=list)
    eval_map: list[float] = field(default_factory=list)
    eval_map11: list[float] = field(default_factory=list)
    eval_seconds: list[float] = field(default_factory=list)
    train_seconds: float = 0.0
    images_seen: int = 0
    interrupted: bool = False
    diverged_at: int | None = None
    terminated: bool = False
    anchors: list[list[float]] = field(default_factory=list)
    checkpoint: str | None = None
    model: SmallYOLOv2 | SmallYOLOv3 | None = None


# ---------------------------------------------------------------------------------------------
# Data: which images a step trains on


def image_indices(step: int, rank: int, world_size: int, batch_size: int, seed: int, train_images: int) -> list[int]:
    """Indices (for ``make_image(index, seed)``) of the images that rank ``rank`` trains on at ``step``.

    Step ``s`` uses the global sample positions ``s * world_size * batch_size + rank * batch_size
    + 0 .. batch_size - 1``. With ``train_images == 0`` the position is the image index, so no
    image is ever seen twice. Otherwise the run cycles over the first ``train_images`` images in
    epochs, each in its own order ``np.random.default_rng([seed, epoch]).permutation``.
    A pure function of its arguments: resuming and several processes need nothing else.
    """
    start = (step * world_size + rank) * batch_size
    positions = range(start, start + batch_size)
    if train_images == 0:
        return list(positions)
    out = []
    for position in positions:
        epoch, offset = divmod(position, train_images)
        out.append(int(_epoch_order(seed, epoch, train_images)[offset]))
    return out


_ORDERS: dict[tuple[int, int, int], np.ndarray] = {}


def _epoch_order(seed: int, epoch: int, train_images: int) -> np.ndarray:
    key = (seed, epoch, train_images)
    if key not in _ORDERS:
        if len(_ORDERS) > 4:
            _ORDERS.clear()
        _ORDERS[key] = np.random.default_rng([seed, epoch]).permutation(train_images)
    return _ORDERS[key]


class ImageCache:
    """``make_image(index, seed, size)`` remembered: a run with ``train_images`` > 0 draws each once."""

    def __init__(self, seed: int, size: int, keep: bool, sides: tuple[float, float] = (MIN_SIDE, MAX_SIDE)):
        self.seed, self.size, self.keep, self.sides = seed, size, keep, sides  # sides: (min, max) fractions
        self.images: dict[int, tuple[Tensor, Tensor]] = {}

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        if index in self.images:
            return self.images[index]
        image, boxes = make_image(index, self.seed, self.size, min_side=self.sides[0], max_side=self.sides[1])
        item = torch.from_numpy(image), torch.from_numpy(boxes)  # (3, S, S) in [0, 1]; (M, 5) fractions
        if self.keep:
            self.images[index] = item
        return item

    def batch(self, indices: Sequence[int]) -> tuple[Tensor, Tensor, Tensor]:
        """(images (N, 3, S, S), boxes (N, M, 5), counts (N,)) as ``data.shapes.collate`` makes them."""
        return collate([self[i] for i in indices])


class ShapesSource:
    """The training pictures of a run on the book's synthetic shapes (``data.shapes.make_image``)."""

    def __init__(self, config: TrainConfig):
        self.config = config
        self.cache = ImageCache(config.seed, config.image_size, keep=config.train_images > 0,
                                sides=(config.min_side, config.max_side))
        self.classes = list(SHAPE_CLASSES)
        self.fingerprint = None  # the shapes are a function of the recipe: nothing else to compare on resume
        self.anchor_images = min(ANCHOR_IMAGES, config.train_images or ANCHOR_IMAGES)

    def step_batch(self, step: int, rank: int, world_size: int) -> tuple[Tensor, Tensor, Tensor]:
        c = self.config
        return self.cache.batch(image_indices(step, rank, world_size, c.batch_size, c.seed, c.train_images))

    def box_sides(self) -> np.ndarray:
        """(B, 2) width and height of the boxes k-means reads, fractions of the image."""
        return np.concatenate([self.cache[i][1][:, 3:5].numpy() for i in range(self.anchor_images)])

    def held_out(self) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        yield held_out_set(self.config)


class LabelledSource:
    """The training pictures of a run on a labelled set (``--data``), checked before the first step.

    Every picture of the training and held-out lists is checked as ``python -m yolo_lessons.data
    check`` does; a set with problems is refused (one line naming the first and the command that
    lists them all) unless ``skip_bad``, which leaves the pictures with problems out. A folder or a
    list file, or a ``.data`` file without ``valid =``, gives ``valid_fraction`` of its pictures
    (a seeded draw) to the held-out set. The pictures are read when a batch needs them:
    augmented (``data.augment``, Darknet's ``load_data_detection``) for training, letterboxed
    for the held-out mAP. The batch of a step is a pure function of (seed, step, rank): the
    pictures ``image_indices`` picks over the training set in seeded epochs, each augmented
    with the draws of its global sample position, at the step's ``multiscale`` size.
    """

    def __init__(self, config: TrainConfig):
        self.config = config
        names = read_names(config.names) if config.names is not None else None
        train_set, report = usable_pictures(config.data, names, "train")
        self.report = report
        self.skipped = report.pictures - len(train_set)  # pictures left out by --skip-bad
        self._refuse(report, "training")
        names = report.names
        has_valid = config.data.endswith(".data") and "valid" in read_data_file(config.data)
        if has_valid:
            valid_set, valid_report = usable_pictures(config.data, names, "valid")
            self._refuse(valid_report, "held-out")
            self.skipped += valid_report.pictures - len(valid_set)
            train = list(zip(train_set.images, train_set.labels, strict=True))
            valid = list(zip(valid_set.images, valid_set.labels, strict=True))
        else:
            pairs = list(zip(train_set.images, train_set.labels, strict=True))
            order = np.random.default_rng([config.seed, VALID_SPLIT_STREAM]).permutation(len(pairs))
            cut = max(1, round(config.valid_fraction * len(pairs)))
            valid = [pairs[i] for i in sorted(order[:cut])]
            train = [pairs[i] for i in sorted(order[cut:])]
        if not train:
            raise ValueError(f"expected pictures to train on in {config.data}, found none left after the held-out "
                             "ones")  # fmt: skip
        self.classes = list(names)
        self.train = LabelledImages([p for p, _ in train], [r for _, r in train], config.augmentation(),
                                    config.seed, names)
        self.valid = LabelledImages([p for p, _ in valid], [r for _, r in valid], None, config.seed, names)
        self.fingerprint = _fingerprint(self.train) + "/" + _fingerprint(self.valid)

    def _refuse(self, report, which: str) -> None:
        if report.unreadable or (report.errors and not self.config.skip_bad):
            more = "" if report.unreadable else (
                f"; `python -m yolo_lessons.data check {self.config.data}` lists them all, --skip-bad trains on "
                "the rest"
            )
            count = "" if report.unreadable else f"{len(report.errors)} problem(s) in the {which} pictures, first: "
            raise ValueError(f"{count}{report.errors[0]}{more}")

    def size(self, step: int) -> int:
        c = self.config
        if c.multiscale is None:
            return c.image_size
        final = max(DARKNET_EVERY, round(c.steps * DARKNET_FINAL / DARKNET_MAX_BATCHES))
        return multiscale_size(step, c.steps, c.seed, *c.multiscale, every=DARKNET_EVERY, final=final)

    def step_batch(self, step: int, rank: int, world_size: int) -> tuple[Tensor, Tensor, Tensor]:
        c = self.config
        start = (step * world_size + rank) * c.batch_size  # the global sample positions: the draws
        indices = image_indices(step, rank, world_size, c.batch_size, c.seed, len(self.train))
        return self.train.batch(indices, self.size(step), range(start, start + c.batch_size))

    def box_sides(self) -> np.ndarray:
        return self.train.box_sides()

    def held_out(self) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        count = min(self.config.eval_images, len(self.valid))
        for start in range(0, count, VALID_BATCH):
            yield self.valid.batch(range(start, min(start + VALID_BATCH, count)), self.config.image_size)


VALID_SPLIT_STREAM = 0x76616C69  # a word of its own in the seed of the held-out split


def _fingerprint(pictures: LabelledImages) -> str:
    """A short digest of the pictures' paths and label rows: a resumed run must train on the same set."""
    digest = hashlib.sha1()
    for path in pictures.paths:
        digest.update(path.encode("utf-8", "surrogateescape") + b"\0")
    digest.update(np.ascontiguousarray(pictures.rows, dtype=np.float64).tobytes())
    return f"{len(pictures)}:{digest.hexdigest()[:16]}"


def training_source(config: TrainConfig) -> ShapesSource | LabelledSource:
    """Where the run's pictures come from: the shapes, or the labelled set of ``--data``."""
    return ShapesSource(config) if config.data is None else LabelledSource(config)


class StepBatches(torch.utils.data.Dataset):
    """Item ``k``: the batch that rank ``rank`` trains on at step ``first + k`` (``image_indices``).

    A dataset of whole batches, so that a ``DataLoader`` worker process can draw the next
    batch while the main process trains on this one; the batch of a step stays a pure function
    of the step, whoever draws it.
    """

    def __init__(self, source: ShapesSource | LabelledSource, first: int, steps: int, rank: int, world_size: int):
        self.source, self.first, self.steps, self.rank, self.world_size = source, first, steps, rank, world_size

    def __len__(self) -> int:
        return self.steps - self.first

    def __getitem__(self, k: int) -> tuple[Tensor, Tensor, Tensor]:
        return self.source.step_batch(self.first + k, self.rank, self.world_size)


def step_batches(dataset: StepBatches, workers: int) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
    """The batches of ``dataset`` in order: drawn here (``workers == 0``) or by worker processes.

    Drawing a batch of 16 images takes about a fifth of a step on one core, and the model's
    small convolutions gain little from a second thread; one worker drawing ahead on the other
    core hides it. Workers ignore Ctrl-C and SIGTERM: the training loop stops on them and saves.
    """
    if workers == 0:
        return (dataset[k] for k in range(len(dataset)))
    loader = torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=workers,
                                         worker_init_fn=_ignore_stop_signals, prefetch_factor=2)
    return iter(loader)


def _ignore_stop_signals(worker_id: int) -> None:
    """Workers leave Ctrl-C and SIGTERM to the training loop, which stops them after saving."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def box_shapes(cache: ImageCache, count: int, grid_size: int) -> np.ndarray:
    """(B, 2) width and height of every box of images 0 .. count - 1, in cells of a ``grid_size`` grid."""
    return to_grid_cells(np.concatenate([cache[i][1][:, 3:5].numpy() for i in range(count)]), grid_size)


def anchors_from_images(
    cache: ImageCache, count: int, num_anchors: int, grid_size: int, seed: int
) -> list[list[float]]:
    """k-means (1 - IoU) anchors from the boxes of images 0 .. count - 1, in grid cells, by area."""
    return _anchor_list(box_shapes(cache, count, grid_size), num_anchors, seed)


def _anchor_list(shapes: np.ndarray, num_anchors: int, seed: int) -> list[list[float]]:
    return [[float(w), float(h)] for w, h in kmeans_anchors(shapes, num_anchors, seed=seed)]


# ---------------------------------------------------------------------------------------------
# The models


def build_model(
    name: str, num_classes: int, anchors: list[list[float]], width: int, passthrough: str | None, heads: int = 3
) -> SmallYOLOv2 | SmallYOLOv3:
    """``small_yolov2`` (anchors in grid cells) or ``small_yolov3`` (anchors in input pixels, by area)."""
    if name == "small_yolov3":
        return small_yolov3(num_classes, anchors, width, heads)
    return small_yolov2(num_classes, anchors, width, passthrough)


def output_convs(model: SmallYOLOv2 | SmallYOLOv3) -> list[nn.Conv2d]:
    """The 1x1 convolutions that give ``A * (5 + C)`` channels: the head a new set of classes replaces."""
    if isinstance(model, SmallYOLOv3):
        return [getattr(model, f"detect{stride}")[-1] for stride in model.strides]
    return [model.detect]


def finetune_from(model: SmallYOLOv2 | SmallYOLOv3, path: str, upto: int | None = None) -> str:
    """Copy a trained model's layers into ``model``, all but its output convolutions, and say what was copied.

    ``path`` is a training checkpoint of the same kind and width, or (``small_yolov2``) a Darknet
    ``.weights`` file in its cfg order (``darknet.book_weights``), such as the book's own. ``upto``
    is Darknet's cutoff (``load_weights_upto``, ``./darknet partial``): only the cfg layers before
    it; by default every layer but the detector, which is left as initialised for the new classes
    (``filters = A * (5 + C)``). The copied tensors are the source's exactly.
    """
    heads = {id(p) for conv in output_convs(model) for p in conv.parameters()}
    if isinstance(model, SmallYOLOv2):
        detector = small_yolov2_layers(model)[-1].index  # the detector is the last cfg layer with weights
        if upto is not None and upto > detector:
            raise ValueError(f"--upto {upto} would copy the detector (cfg layer {detector}), which the new classes "
                             f"replace: expected at most {detector}")  # fmt: skip
    if path.endswith(".weights"):
        layers = small_yolov2_layers(model)
        cut = upto if upto is not None else detector
        # Darknet's load_weights_upto reads the layers before the cutoff and leaves the rest of the file
        # unread; load_darknet_weights wants exactly the floats it loads, so it gets that first part.
        try:
            header = read_darknet_header(path)
            wanted = sum(layer.float_count() for layer in layers if layer.index < cut)
            # Reading only a part, the size check alone cannot catch a file of another width: what is left
            # after the copied layers must be this model's remaining layers and a detector of some filters.
            rest = (os.path.getsize(path) - header.size) // 4 - wanted
            middle = sum(layer.float_count() for layer in layers if cut <= layer.index < detector)
            per_filter = model.detect.in_channels + 1  # a 1x1 filter and its bias
            if rest - middle <= 0 or (rest - middle) % per_filter:
                raise ValueError(f"it does not hold small_yolov2 width {model.width}'s layers (after cfg layer "
                                 f"{cut - 1} come {rest:,} floats, which no detector of this width fits): a "
                                 "file of another width or network")  # fmt: skip
            with open(path, "rb") as file:
                head = file.read(header.size + 4 * wanted)
            load_darknet_weights(model, io.BytesIO(head), layers=layers, upto=cut)
        except ValueError as error:
            raise ValueError(f"--finetune {path}: {error}") from None
        return f"fine-tuning from {path}: cfg layers 0 to {cut - 1} copied, the detector new"
    saved = load_checkpoint(path)
    config = saved["config"]
    kind = config.get("model", "small_yolov2")
    if kind != type(model).__name__.replace("SmallYOLOv", "small_yolov") or config["width"] != model.width:
        raise ValueError(f"--finetune needs a run of the same model and width: {path} is {kind} width "
                         f"{config['width']}, this run trains {type(model).__name__} width {model.width}")  # fmt: skip
    trained = build_model(kind, len(saved["classes"]), saved["anchors"], config["width"], config.get("passthrough"),
                          config.get("heads", 3))
    if isinstance(model, SmallYOLOv3) and trained.heads != model.heads:
        raise ValueError(f"--finetune needs as many heads: {path} has {trained.heads}, this run {model.heads}")
    trained.load_state_dict(saved["model"])
    if isinstance(model, SmallYOLOv2):
        if trained.passthrough_fold != model.passthrough_fold:
            raise ValueError(f"--finetune needs the same passthrough: {path} has {trained.passthrough_fold}, "
                             f"this run {model.passthrough_fold}")  # fmt: skip
        pairs = list(zip(small_yolov2_layers(trained), small_yolov2_layers(model), strict=True))
        cut = upto if upto is not None else pairs[-1][1].index
        with torch.no_grad():
            for source, target in pairs:
                if target.index < cut:
                    for a, b in zip(source.tensors(), target.tensors(), strict=True):
                        b.copy_(a)
        return f"fine-tuning from {path}: cfg layers 0 to {cut - 1} copied, the detector new"
    target_state = model.state_dict()
    head_names = {name for name, p in model.named_parameters() if id(p) in heads}
    with torch.no_grad():
        for name, tensor in trained.state_dict().items():
            if name not in head_names:
                target_state[name].copy_(tensor)
    return f"fine-tuning from {path}: every layer copied but the detectors' output convolutions"


def model_loss(model: nn.Module, output, boxes: Tensor, counts: Tensor, num_classes: int, image_size: int,
               seen: int, prior_images: int):
    """The Darknet-exact loss of the model's kind: ``yolo_loss`` for three heads, ``region_loss`` for one."""
    if isinstance(model, SmallYOLOv3):
        return yolo_loss([o.float() for o in output], boxes, counts, model.anchors, model.masks, num_classes,
                         image_size)
    return region_loss(output.float(), boxes, counts, model.anchors, num_classes, seen=seen,
                       prior_images=prior_images)


# ---------------------------------------------------------------------------------------------
# Evaluation


@torch.no_grad()
def evaluate(
    model: nn.Module, images: Tensor, boxes: Tensor, counts: Tensor, batch_size: int = 100
) -> tuple[float, float]:
    """Held-out mAP@0.5 (VOC all-point, VOC2007 11-point) of ``model`` on a collated set.

    Scored as ``./darknet detector valid`` then ``reval_voc``: every (box, class) with score
    above 0.005, per-class NMS at IoU 0.45, then AP per class over all images. The model is
    put in eval mode (BatchNorm's running statistics) and back in its former mode after.
    """
    chunks = ((images[i : i + batch_size], boxes[i : i + batch_size], counts[i : i + batch_size])
              for i in range(0, len(images), batch_size))  # fmt: skip
    return evaluate_batches(model, chunks)


@torch.no_grad()
def evaluate_batches(model: nn.Module, batches) -> tuple[float, float]:
    """``evaluate`` on held-out batches (images, boxes, counts) given one at a time: a labelled set's
    pictures are decoded batch by batch, never all held at once."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    detections, ground_truths = [], []
    try:
        for images, boxes, counts in batches:
            output = model(images.to(device))
            detections += postprocess(decode_model_output(model, output, images.shape[-1]), thresh=VALID_THRESHOLD)
            truths = [boxes[i, : counts[i]] for i in range(len(images))]  # (M_i, 5) class, cx, cy, w, h fractions
            ground_truths += [GroundTruth(box_corners(t[:, 1:5]), t[:, 0].long()) for t in truths]  # corners
    finally:
        model.train(was_training)
    result = mean_average_precision(detections, ground_truths)
    return result.map, result.map_11_points


def held_out_set(config: TrainConfig) -> tuple[Tensor, Tensor, Tensor]:
    """The ``eval_images`` held-out images of ``eval_seed``, collated."""
    cache = ImageCache(config.eval_seed, config.image_size, keep=False, sides=(config.min_side, config.max_side))
    return cache.batch(range(config.eval_images))


# ---------------------------------------------------------------------------------------------
# The learning rate and the checkpoint


def learning_rate(step: int, steps: int, lr: float, warmup: int = 0) -> float:
    """The learning rate of step ``step`` (0-based) of ``steps``.

    The first ``warmup`` steps climb linearly, ``lr / warmup``, ``2 lr / warmup``, ... up to
    ``lr``; the rest follow a cosine from ``lr`` down to 0 at step ``steps`` (SGDR without
    restarts). The warm-up is what let the book's recipe double the first recipe's rate:
    lr 8e-3 after 50 warm-up steps learned faster than 4e-3 without any (``TrainConfig``).
    """
    if step < warmup:
        return lr * (step + 1) / warmup
    done = (step - warmup) / max(steps - warmup, 1)
    return 0.5 * lr * (1.0 + math.cos(math.pi * done))


def darknet_learning_rate(step: int, steps: int, lr: float, burn_in: int = 0) -> float:
    """The learning rate of step ``step`` (0-based) of ``steps`` by Darknet's ``policy=steps``.

    ``get_current_rate`` in ``src/network.c`` with yolov2-voc.cfg's numbers: during the burn-in
    ``lr * (batch / burn_in) ** 4`` (batch counted from 1, as Darknet counts after the update);
    then ``lr``, times 0.1 from 40,000 / 80,200 of the run and 0.01 from 60,000 / 80,200.
    """
    if step < burn_in:
        return lr * ((step + 1) / burn_in) ** DARKNET_BURN_IN_POWER
    scale = 1.0
    for boundary in DARKNET_STEPS:
        if step >= round(steps * boundary / DARKNET_MAX_BATCHES):
            scale *= 0.1
    return lr * scale


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW on every parameter, or Darknet's SGD: momentum, and the decay on convolution weights only.

    Darknet's ``update_convolutional_layer`` adds ``decay`` times the weights to their gradient
    (an L2 term, as ``torch.optim.SGD``'s ``weight_decay``) but not to the biases or the
    BatchNorm scales; dividing the learning rate by the batch as Darknet does equals our loss per image.
    """
    if config.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    decayed = [m.weight for m in model.modules() if isinstance(m, nn.Conv2d)]
    chosen = {id(p) for p in decayed}
    others = [p for p in model.parameters() if id(p) not in chosen]
    groups = [{"params": decayed, "weight_decay": config.weight_decay}, {"params": others, "weight_decay": 0.0}]
    return torch.optim.SGD(groups, lr=config.lr, momentum=DARKNET_MOMENTUM)


def save_checkpoint(path: str, state: dict) -> None:
    """Write ``state`` with ``torch.save`` to a temporary file beside ``path``, then rename it.

    ``os.replace`` is atomic on one file system, so ``path`` always holds either the previous
    checkpoint or the new one, never half a file, even if the process dies while writing.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".checkpoint-", suffix=".tmp", dir=folder)
    try:
        os.chmod(temporary, 0o644)  # mkstemp makes it private (0600); a checkpoint is an ordinary file
        with os.fdopen(handle, "wb") as file:
            torch.save(state, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


CHECKPOINT_KEYS = ("model", "optimizer", "step", "world_size", "rng", "config", "anchors", "classes", "history")


def load_checkpoint(path: str | os.PathLike) -> dict:
    """A checkpoint written by ``train``, loaded with ``weights_only=True`` (tensors and plain data only).

    Anything else -- no file, a folder, an empty, truncated or foreign file, a Darknet
    ``.weights`` file -- raises ``ValueError`` with one line saying what came.
    """
    path = os.fspath(path)
    expected = "expected a checkpoint written by yolo_lessons.train"
    if os.path.isdir(path):
        raise ValueError(f"{expected}, got the folder {path} (a run keeps it in {os.path.join(path, CHECKPOINT_NAME)})")
    if not os.path.isfile(path):
        raise ValueError(f"{expected}, got {path}: no such file")
    if os.path.getsize(path) == 0:
        raise ValueError(f"{expected}, got {path}: the file is empty")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many kinds for a file it cannot read
        kind = "a Darknet .weights file holds weights, not a run" if path.endswith(".weights") else (
            f"torch.load cannot read it ({type(error).__name__}): a truncated copy or another kind of file"
        )
        raise ValueError(f"{expected}, got {path}: {kind}") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{expected} (format {CHECKPOINT_FORMAT}), got {path}: a torch file of another kind")
    missing = [key for key in CHECKPOINT_KEYS if key not in state]
    if missing:
        raise ValueError(f"{expected}, got {path}: it lacks {', '.join(missing)}")
    return state


def check_output_folder(out: str, resuming: bool) -> None:
    """Before any work: ``out`` must be a folder we can write in, and hold no other run.

    Writing is tried, not guessed from permission bits (root ignores them; a read-only mount
    does not): a temporary file is made and removed in the folder, or in its nearest existing
    parent when it does not exist yet. Nothing is left behind.
    """
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"expected out to be a folder, {out} is a file")
    existing = os.path.abspath(out)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ValueError(f"expected a folder I can write to for out, cannot write in {existing}: {reason}") from None
    held = [name for name in (CHECKPOINT_NAME, BEST_NAME, RESULTS_NAME) if os.path.exists(os.path.join(out, name))]
    if held and not resuming:
        raise ValueError(
            f"{out} already holds a run ({', '.join(held)}): continue it with --resume, or give another --out"
        )


def free_run_folder(base: str = DEFAULT_OUT) -> str:
    """``base`` if it holds nothing yet, else the first of ``base-2``, ``base-3``, ... that does not exist."""
    if not os.path.exists(base) or (os.path.isdir(base) and not os.listdir(base)):
        return base
    number = 2
    while os.path.exists(f"{base}-{number}"):
        number += 1
    return f"{base}-{number}"


def model_from_checkpoint(path: str) -> SmallYOLOv2 | SmallYOLOv3:
    """The trained ``small_yolov2`` (or ``small_yolov3``) of a checkpoint, in eval mode, with its anchors."""
    state = load_checkpoint(path)
    config = state["config"]
    model = build_model(config.get("model", "small_yolov2"), len(state["classes"]), state["anchors"],
                        config["width"], config["passthrough"], config.get("heads", 3))
    model.load_state_dict(state["model"])
    return model.eval()


def model_part_names(model: str) -> tuple[str, ...]:
    """The terms of the model's loss, in the order ``history.parts`` and ``results.csv`` keep them."""
    return YOLO_PARTS if model == "small_yolov3" else REGION_PARTS


class ResultsLog:
    """``OUT/results.csv``, written as the run goes: one row a step, one an evaluation.

    Columns: ``step``, ``kind`` (``train`` or ``eval``), ``loss`` and each of its parts (per
    image, as ``TrainHistory``), ``lr``, ``images_per_s``; an ``eval`` row has ``map50`` and
    ``map50_11`` (held-out mAP@0.5, all-point and 11-point) instead. A resumed run keeps the rows
    of the steps its checkpoint holds and drops those after it, which it computes again.
    """

    def __init__(self, path: str, parts: Sequence[str], first_step: int, history: TrainHistory):
        self.path = path
        self.columns = ["step", "kind", "loss", *parts, "lr", "images_per_s", "map50", "map50_11"]
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        rows: list[dict] = []
        if first_step and os.path.exists(path):
            with open(path, newline="", encoding="utf-8") as file:
                rows = [row for row in csv.DictReader(file) if int(row["step"]) <= first_step]
        elif first_step:  # resumed from a checkpoint elsewhere: the curves it carries
            for index, loss in enumerate(history.losses):
                parts_now = {name: f"{history.parts[name][index]:.6g}" for name in parts if name in history.parts}
                rows.append({"step": index + 1, "kind": "train", "loss": f"{loss:.6g}", **parts_now})
            for step, value, value11 in zip(history.eval_steps, history.eval_map, history.eval_map11, strict=True):
                rows.append({"step": step, "kind": "eval", "map50": f"{value:.6g}", "map50_11": f"{value11:.6g}"})
        with open(path, "w", newline="", encoding="utf-8") as file:
            writer = csv.DictWriter(file, self.columns)
            writer.writeheader()
            writer.writerows(rows)

    def _write(self, row: dict) -> None:
        with open(self.path, "a", newline="", encoding="utf-8") as file:
            csv.DictWriter(file, self.columns).writerow(row)

    def step(self, step: int, values: Sequence[float], lr: float, images_per_s: float) -> None:
        """``values``: the loss, then its parts, per image."""
        numbers = dict(zip(self.columns[2 : 2 + len(values)], (f"{v:.6g}" for v in values), strict=True))
        speed = f"{images_per_s:.1f}"
        self._write({"step": step, "kind": "train", **numbers, "lr": f"{lr:.6g}", "images_per_s": speed})

    def evaluation(self, step: int, map_all: float, map_11: float) -> None:
        self._write({"step": step, "kind": "eval", "map50": f"{map_all:.6g}", "map50_11": f"{map_11:.6g}"})


# ---------------------------------------------------------------------------------------------
# Processes


@dataclass
class _Processes:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    started_here: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0


def _start_processes(device: str) -> _Processes:
    """Join torchrun's process group when launched by it (its ``WORLD_SIZE`` > 1 in the environment)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return _Processes()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    started = not dist.is_initialized()
    if started:
        if device == "cuda":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend="nccl" if device == "cuda" else "gloo")
    return _Processes(dist.get_rank(), dist.get_world_size(), local_rank, started)


class _StopOnSigint:
    """While active, Ctrl-C (SIGINT) or SIGTERM only asks the loop to stop after the current step.

    SIGTERM is what ``kill``, ``timeout``, ``docker stop`` and a cluster's preemption send; it is
    treated as Ctrl-C is (a resumable checkpoint, then exit), and ``terminated`` remembers it.

    Another Ctrl-C more than ``REPEAT_SIGINT_SECONDS`` later interrupts at once; sooner ones
    are the same request (torchrun passes the terminal's SIGINT on to processes that got it
    already). Only the main thread may install signal handlers; elsewhere this does nothing.
    """

    def __init__(self):
        self.requested = False
        self.terminated = False
        self._previous: dict = {}
        self._first = 0.0

    def __enter__(self) -> _StopOnSigint:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        now = time.monotonic()
        self.terminated = self.terminated or signum == signal.SIGTERM
        if not self.requested:
            self.requested, self._first = True, now
        elif now - self._first > REPEAT_SIGINT_SECONDS:
            raise KeyboardInterrupt

    def __exit__(self, *exc) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)


# ---------------------------------------------------------------------------------------------
# Training


def train(config: TrainConfig | None = None, **options) -> TrainHistory:
    """Train ``small_yolov2`` as the command does and return its ``TrainHistory``.

    ``train(TrainConfig(steps=400, out=None, progress=False, verbose=False))`` or simply
    ``train(steps=400, out=None)``: options as in ``TrainConfig``. ``out=None`` writes no file.
    A Ctrl-C (or a notebook's interrupt) stops after the current step, saves a checkpoint when
    ``out`` is set, and returns the history so far with ``interrupted=True``.
    """
    config = TrainConfig(**{**asdict(config or TrainConfig()), **options})
    resumed = None
    if config.resume is not None:
        if config.resume == "auto" and config.out is None:
            raise ValueError("resume='auto' reads OUT/checkpoint.pt: it needs out, the folder of the checkpoint")
        path = os.path.join(config.out, CHECKPOINT_NAME) if config.resume == "auto" else config.resume
        resumed = load_checkpoint(path)
        config = _merge_resumed(config, resumed["config"], explicit=set(options))
    config.check()
    if config.out is not None:
        check_output_folder(config.out, resuming=resumed is not None)
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    processes = _start_processes(config.device)
    try:
        return _train(config, processes, resumed)
    finally:
        if processes.started_here:
            dist.destroy_process_group()


def _merge_resumed(config: TrainConfig, saved: dict, explicit: set[str]) -> TrainConfig:
    """The saved recipe, checked against the options the caller set explicitly."""
    merged, defaults = asdict(config), asdict(TrainConfig())
    for name in (*RECIPE, *KEPT_ON_RESUME):
        was = saved.get(name, EARLIER_DEFAULTS.get(name, defaults[name]))  # a checkpoint older than the option
        if name in explicit and merged[name] != was:
            raise ValueError(
                f"--resume continues the saved run exactly: {name} was {was!r} there, got {merged[name]!r}"
            )
        merged[name] = was
    return TrainConfig(**merged)


def _train(config: TrainConfig, processes: _Processes, resumed: dict | None) -> TrainHistory:
    rank, world_size, talk = processes.rank, processes.world_size, processes.main and config.verbose
    device = torch.device(f"cuda:{processes.local_rank}" if config.device == "cuda" else "cpu")
    grid_size = config.image_size // STRIDE  # 6 cells at 96 px
    source = training_source(config)
    v3 = config.model == "small_yolov3"
    anchor_unit = config.image_size if v3 else grid_size  # x fractions: input pixels ([yolo]) or grid cells
    num_classes = len(source.classes)

    shapes = to_grid_cells(source.box_sides(), anchor_unit)  # (B, 2) grid cells, or pixels for small_yolov3
    if len(shapes) < 1:
        raise ValueError(f"expected labelled boxes to compute anchors from, found none in {config.data}")
    num_anchors = config.num_anchors or MODEL_ANCHORS[config.model]
    anchors = _anchor_list(shapes, num_anchors, config.seed) if resumed is None else resumed["anchors"]
    torch.manual_seed(config.seed)  # the initial weights
    model = build_model(config.model, num_classes, anchors, config.width, config.passthrough, config.heads)
    started_from = None
    if config.finetune is not None and resumed is None:
        started_from = finetune_from(model, config.finetune, config.upto)
    model = model.to(device, memory_format=LAYOUT)  # see LAYOUT
    optimizer = make_optimizer(model, config)
    schedule = learning_rate if config.optimizer == "adamw" else darknet_learning_rate
    history = TrainHistory(anchors=anchors, model=model)
    step = 0
    if resumed is not None:
        if resumed.get("data_fingerprint") != source.fingerprint:
            raise ValueError(f"--resume continues the saved run exactly, but the pictures or labels of {config.data} "
                             "changed since it was saved")  # fmt: skip
        if resumed["world_size"] != world_size:  # the images of a step depend on it (image_indices)
            raise ValueError(
                f"--resume needs as many processes as the saved run: it had {resumed['world_size']}, got {world_size}"
            )
        model.load_state_dict(resumed["model"])
        optimizer.load_state_dict(resumed["optimizer"])
        step = resumed["step"]
        torch.set_rng_state(resumed["rng"]["torch"])
        _restore_history(history, resumed["history"])
    network = model
    if world_size > 1:
        device_ids = None if device.index is None else [device.index]
        network = nn.parallel.DistributedDataParallel(model, device_ids=device_ids)

    evaluating = processes.main and config.eval_every > 0
    held_out = list(source.held_out()) if evaluating and config.data is None else None  # the shapes: kept
    writes = config.out is not None and processes.main
    checkpoint_path = os.path.join(config.out, CHECKPOINT_NAME) if config.out is not None else None
    results = ResultsLog(os.path.join(config.out, RESULTS_NAME), model_part_names(config.model), step,
                         history) if writes else None
    if talk:
        grids = [config.image_size // s for s in model.strides] if v3 else [grid_size]
        print(
            f"{config.model} width {config.width}, {config.image_size}x{config.image_size} px, "
            f"{', '.join(f'{g}x{g}' for g in grids)} grid, {sum(p.numel() for p in model.parameters()):,} parameters; "
            f"{world_size} process(es) x {config.batch_size} images per step, {torch.get_num_threads()} thread(s)"
        )
        fit = mean_best_iou(anchors, shapes)
        boxes_of = (f"{len(source.train)} training pictures" if config.data is not None
                    else f"{source.anchor_images} training images")  # fmt: skip
        print(
            f"k-means anchors (w x h, {'input pixels' if v3 else 'grid cells'}): "
            + ", ".join(f"{w:.2f}x{h:.2f}" for w, h in anchors)
            + f"; mean best IoU {fit:.3f} over the boxes of {boxes_of}"
        )
        if config.data is not None:
            print(f"{config.data}: {len(source.train)} training and {len(source.valid)} held-out pictures, "
                  f"{num_classes} classes"
                  + (f"; {source.skipped} picture(s) with problems skipped (--skip-bad)" if source.skipped else "")
                  + ("; augmented as Darknet does" if config.augmenting else "; not augmented")
                  + (f"; sizes {config.multiscale[0]} to {config.multiscale[1]} px" if config.multiscale else ""))
        if started_from is not None:
            print(started_from)
        if resumed is not None:
            saved_at = checkpoint_path if config.resume == "auto" else config.resume
            print(f"resumed from step {step} of {config.steps} ({saved_at})")

    def save(path: str | None = checkpoint_path) -> None:
        if path is None or not processes.main:
            return
        save_checkpoint(path, {
            "format": CHECKPOINT_FORMAT,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "step": step,
            "seen": step * world_size * config.batch_size,
            "world_size": world_size,
            "rng": {"torch": torch.get_rng_state()},
            "config": asdict(config),
            "anchors": anchors,
            "classes": list(source.classes),
            "data_fingerprint": source.fingerprint,
            "history": _history_lists(history),
        })
        if path == checkpoint_path:
            history.checkpoint = checkpoint_path

    def run_eval() -> None:
        if not evaluating:
            return
        map_all, map_11 = evaluate_batches(model, held_out if held_out is not None else source.held_out())
        best = map_all > max(history.eval_map, default=-1.0)
        history.eval_steps.append(step)
        history.eval_map.append(map_all)
        history.eval_map11.append(map_11)
        history.eval_seconds.append(history.train_seconds)
        if results is not None:
            results.evaluation(step, map_all, map_11)
        if best and config.out is not None:
            save(os.path.join(config.out, BEST_NAME))
        if talk:
            _say(bar, f"step {step}: held-out mAP@0.5 {map_all:.4f} (11-point {map_11:.4f}), "
                      f"{history.train_seconds:.1f} s of training")

    bar = _progress_bar(config, step) if processes.main and config.progress else None
    batches = step_batches(StepBatches(source, step, config.steps, rank, world_size), config.workers)
    model.train()
    with _StopOnSigint() as stop:
        while step < config.steps:
            started = time.perf_counter()
            images, boxes, counts = next(batches)
            for group in optimizer.param_groups:
                group["lr"] = schedule(step, config.steps, config.lr, config.warmup)
            output = network(images.to(device, memory_format=LAYOUT))  # (N, A*(5+C), H/16, W/16) or 3 heads
            result = model_loss(
                model, output, boxes.to(device), counts.to(device), num_classes, images.shape[-1],
                seen=(step + 1) * world_size * config.batch_size,  # train_network_datum adds the batch first
                prior_images=config.prior_images,
            )
            loss = result.loss / config.batch_size  # the mean per image: see the module docstring
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            # One all-reduce carries the loss, its parts and "someone pressed Ctrl-C".
            report = torch.stack([result.loss.detach(), *(p.detach() for p in result.parts.values())]).float()
            report = torch.cat([report / config.batch_size, torch.tensor([float(stop.requested)], device=device)])
            if world_size > 1:
                dist.all_reduce(report)
                report[:-1] /= world_size
            values = report.cpu().tolist()
            history.losses.append(values[0])
            for name, value in zip(result.parts, values[1:-1], strict=True):
                history.parts.setdefault(name, []).append(value)
            history.train_seconds += time.perf_counter() - started
            history.images_seen = step * world_size * config.batch_size
            speed = world_size * config.batch_size / (time.perf_counter() - started)  # images per second
            if results is not None:
                results.step(step, values[:-1], optimizer.param_groups[0]["lr"], speed)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{values[0]:.3f}", img_s=f"{speed:.0f}")
            if not math.isfinite(values[0]):  # every rank sees the same all-reduced loss
                history.diverged_at = step
                break
            if values[-1] > 0 or (config.stop_after is not None and step >= config.stop_after):
                history.interrupted = True
                history.terminated = stop.terminated
                break
            evaluate_now = config.eval_every and (step % config.eval_every == 0 or step == config.steps)
            if evaluate_now:
                run_eval()
            if evaluate_now or (config.save_every and step % config.save_every == 0):
                save()
    del batches  # stops the workers
    if bar is not None:
        bar.close()
    if history.diverged_at is None and (history.interrupted or not config.eval_every):
        save()  # a diverged run keeps its last good checkpoint: nothing after it is written
    if talk:
        _report(history, config, world_size)
    history.model = model.to(memory_format=torch.contiguous_format).eval()
    return history


def _progress_bar(config: TrainConfig, step: int):
    from tqdm import tqdm

    return tqdm(total=config.steps, initial=step, unit="step", dynamic_ncols=True, file=sys.stderr)


def _say(bar, text: str) -> None:
    if bar is not None:
        bar.write(text)
    else:
        print(text, flush=True)


_SAVED_HISTORY = ("losses", "parts", "eval_steps", "eval_map", "eval_map11", "eval_seconds", "train_seconds",
                  "images_seen")


def _history_lists(history: TrainHistory) -> dict:
    """The curves of ``history`` as plain lists and numbers (what ``weights_only`` loading accepts)."""
    return {name: getattr(history, name) for name in _SAVED_HISTORY}


def _restore_history(history: TrainHistory, saved: dict) -> None:
    for name, value in saved.items():
        setattr(history, name, value)


def _report(history: TrainHistory, config: TrainConfig, world_size: int) -> None:
    steps = len(history.losses)
    if history.diverged_at is not None:
        kept = (f"the last good checkpoint is kept in {history.checkpoint}" if history.checkpoint
                else f"no checkpoint was written before it (--save-every {config.save_every})")
        print(f"stopped: the loss became {history.losses[-1]} at step {history.diverged_at} of {config.steps}; "
              f"{kept}; try a lower --lr (it was {config.lr})", file=sys.stderr, flush=True)
        return
    last = history.losses[-20:]
    how = "stopped as asked (--stop-after)" if history.interrupted and config.stop_after == steps else (
        "terminated (SIGTERM)" if history.terminated else "interrupted" if history.interrupted else "finished")
    lines = [
        how + f" after {steps} of {config.steps} steps",
        f"images seen: {history.images_seen:,} ({world_size} process(es) x {config.batch_size} per step)",
        f"training time: {history.train_seconds:.1f} s "
        f"({history.images_seen / max(history.train_seconds, 1e-9):.0f} images/s, evaluation excluded)",
        f"loss per image, mean of the last {len(last)} steps: {sum(last) / max(len(last), 1):.4f}",
    ]
    for step, value, value11 in zip(history.eval_steps, history.eval_map, history.eval_map11, strict=True):
        lines.append(f"  step {step:>6}: held-out mAP@0.5 {value:.4f} (11-point {value11:.4f})")
    if history.checkpoint:
        lines.append(f"checkpoint: {history.checkpoint}")
    if history.interrupted:
        lines.append("resume with the same command and --resume")
    print("\n".join(lines), flush=True)


# ---------------------------------------------------------------------------------------------
# The command


def build_parser() -> argparse.ArgumentParser:
    defaults = TrainConfig()
    parser = CommandParser(
        prog="python -m yolo_lessons.train",
        description=(
            "Train the book's scaled-down YOLOv2 (small_yolov2, Darknet-exact region loss) or YOLOv3 "
            "(--model small_yolov3, Darknet-exact yolo loss) on synthetic shapes, and report held-out "
            "mAP@0.5. Run it with "
            "OMP_WAIT_POLICY=PASSIVE on a shared CPU; under torchrun it trains on every process."
        ),
        argument_default=argparse.SUPPRESS,  # only options given on the command line reach train()
    )
    add = parser.add_argument
    add("--steps", type=int, help=f"optimizer steps; the cosine schedule ends at the last (default {defaults.steps})")
    add("--batch-size", type=int, help=f"images per step on each process (default {defaults.batch_size})")
    add("--image-size", type=int, help=f"image side in pixels, a multiple of 32 (default {defaults.image_size})")
    add("--width", type=int, help=f"filters of the first conv; every layer scales with it (default {defaults.width})")
    add("--lr", type=float, help=f"AdamW's peak learning rate, decayed by a cosine to 0 (default {defaults.lr})")
    add("--warmup", type=int, help="steps over which the learning rate climbs linearly to --lr before the cosine "
        f"(default {defaults.warmup}; 0: none)")
    add("--weight-decay", type=float, help=f"AdamW's decoupled weight decay, or darknet_sgd's decay of the "
        f"convolution weights (yolov2-voc.cfg: 0.0005) (default {defaults.weight_decay})")
    add("--optimizer", choices=list(OPTIMIZERS), help="adamw with --warmup and a cosine, or Darknet's SGD: momentum "
        "0.9, a burn-in of --warmup steps, lr x 0.1 at about 50%% and 75%% of the steps (default adamw)")
    add("--seed", type=int, help=f"seed of the training images, initial weights, k-means (default {defaults.seed})")
    add("--train-images", type=int, help="cycle over this many training images in seeded epochs; "
        f"0 draws a new image for every sample (default {defaults.train_images})")
    add("--model", choices=list(MODEL_ANCHORS), help="the scaled-down YOLOv2 (one head, region loss) or YOLOv3 "
        f"(three heads, yolo loss) (default {defaults.model})")
    add("--anchors", dest="num_anchors", type=int, metavar="K",
        help="number of k-means anchors (default 5 for small_yolov2; small_yolov3 takes exactly 9)")
    add("--min-side", type=float, help="smallest object side drawn, a fraction of the image "
        f"(default {RECIPE_MIN_SIDE}; the data generator's own default is {MIN_SIDE})")
    add("--max-side", type=float, help=f"largest object side drawn, a fraction of the image (default {MAX_SIDE})")
    add("--heads", type=int, choices=list(HEAD_CHOICES), help="small_yolov3: three heads at strides 32, 16, 8, "
        f"or the stride-16 head alone with all nine anchors (default {defaults.heads})")
    add("--passthrough", choices=["darknet_reorg", "space_to_depth", "none"],
        help=f"small_yolov2: how the passthrough folds its 2x2 blocks, or none (default {defaults.passthrough})")
    add("--prior-images", type=int, help="small_yolov2: the loss pulls every box toward its anchor until this "
        "many images "
        f"were seen, Darknet's prior-matching phase (default {defaults.prior_images}, as Darknet)")
    add("--threads", type=int, help="torch.set_num_threads for each process; same seed and threads give "
        "bit-identical losses (default: torch's choice)")
    add("--workers", type=int, help="processes that draw the next batches while the model trains; 0: draw them "
        f"in the training process (default {defaults.workers})")
    add("--eval-every", type=int, help="held-out mAP@0.5 and a checkpoint every this many steps and at the end; "
        f"0: neither, a checkpoint only at the end (default {defaults.eval_every})")
    add("--eval-images", type=int, help=f"held-out images for mAP (default {defaults.eval_images})")
    add("--eval-seed", type=int, help=f"seed of the held-out images, not --seed (default {defaults.eval_seed})")
    add("--out", help=f"folder of the run: {CHECKPOINT_NAME}, {BEST_NAME}, {RESULTS_NAME}; one that holds a run is "
        f"refused unless --resume (default {DEFAULT_OUT}, or {DEFAULT_OUT}-2, -3, ... if taken)")
    add("--save-every", type=int, metavar="N", help=f"write {CHECKPOINT_NAME} every N steps, evaluations aside; "
        f"0: only at evaluations and the end (default {defaults.save_every})")
    add("--resume", nargs="?", const="auto", metavar="CHECKPOINT",
        help=f"continue a run from CHECKPOINT (default OUT/{CHECKPOINT_NAME}) with its saved recipe; "
        "the losses continue exactly as if it had never stopped (--threads and --device are restored too)")
    add("--stop-after", type=int, metavar="STEP", help="stop once STEP steps are done, saving a checkpoint to "
        "--resume from (exit status 0); the schedule still ends at --steps")
    add("--device", choices=["cpu", "cuda"], help=f"cuda: on GPUs, NCCL under torchrun (default {defaults.device})")
    add("--no-progress", dest="progress", action="store_false", help="no progress bar (the report is still printed)")
    own = parser.add_argument_group(
        "your own labelled pictures (chapter 11)",
        "Train on a labelled set in Darknet's format instead of the shapes: its pictures are checked first "
        "(python -m yolo_lessons.data check), augmented as Darknet's load_data_detection does, and scored on "
        "its valid = list (or a seeded --valid-fraction of it).",
    )
    add = own.add_argument
    add("--data", help="a .data file (classes, train, valid, names), a list file of pictures or a folder")
    add("--names", help="a .names file, one class a line (for a list file, or a folder without one)")
    add("--skip-bad", action="store_true", help="train on the pictures without problems instead of refusing the set")
    add("--valid-fraction", type=float, help="pictures held out when the set has no valid = list (default "
        f"{defaults.valid_fraction})")
    add("--no-augment", dest="augment", action="store_false", help="no augmentation (default: on with --data)")
    add("--jitter", type=float, help="aspect change and placement, a fraction of each side "
        f"(default {defaults.jitter})")
    add("--hue", type=float, help=f"largest hue shift, a fraction of the turn (default {defaults.hue})")
    add("--saturation", type=float, help=f"largest saturation factor or its inverse (default {defaults.saturation})")
    add("--exposure", type=float, help=f"largest brightness factor or its inverse (default {defaults.exposure})")
    add("--no-flip", dest="flip", action="store_false", help="no random horizontal flip (default: half the pictures)")
    add("--multiscale", type=int, nargs=2, metavar=("LOW", "HIGH"), help="Darknet's random=1: every 10 steps a "
        "new input size, a multiple of 32 from LOW to HIGH, the largest for the last steps (e.g. 64 128)")
    add("--finetune", metavar="FILE", help="start from a training checkpoint (.pt) or a small_yolov2 .weights file "
        "(the book's own: yolo_lessons/weights/small_yolov2_shapes.weights), every layer but the detector")
    add("--upto", type=int, metavar="N", help="with --finetune FILE.weights or .pt of small_yolov2: copy only cfg "
        "layers 0 to N-1 (Darknet's cutoff)")
    return parser


def parse_args(argv: Sequence[str] | None = None) -> dict:
    """The options given on the command line, as ``TrainConfig`` field names and values."""
    options = vars(build_parser().parse_args(argv))
    if options.get("passthrough") == "none":
        options["passthrough"] = None
    if options.get("multiscale") is not None:
        options["multiscale"] = tuple(options["multiscale"])
    known = {f.name for f in fields(TrainConfig)}
    return {name: value for name, value in options.items() if name in known}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command: 0 when it finished (or stopped at ``--stop-after``), 130 when Ctrl-C and 143
    when SIGTERM stopped it (after saving a checkpoint), 1 when the loss became NaN or infinite,
    2 for a bad option or file (nothing written)."""
    options = parse_args(argv)
    if "out" not in options and "resume" not in options:
        options["out"] = free_run_folder(DEFAULT_OUT)  # a new folder for each new run
    try:
        history = train(**options)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if history.diverged_at is not None:
        return EXIT_DIVERGED
    if history.terminated:
        return EXIT_TERMINATED
    planned = history.interrupted and options.get("stop_after") == len(history.losses)
    return EXIT_INTERRUPTED if history.interrupted and not planned else 0


if __name__ == "__main__":
    sys.exit(main())
