"""Point a model at pictures: ``python -m yolo_lessons.detect``, as ``./darknet detector test``.

Examples::

    python -m yolo_lessons.detect photo.jpg                       # the book's shipped model
    python -m yolo_lessons.detect pictures/ "more/*.png" --thresh .3
    python -m yolo_lessons.detect photo.jpg --weights runs/train/checkpoint.pt
    python -m yolo_lessons.detect photo.jpg --weights yolov3.weights --model yolov3
    python -m yolo_lessons.detect photo.jpg --weights mine.weights --model yolov2-voc --names my.names
    python -m yolo_lessons.detect photo.jpg --weights yolov3.onnx    # ONNX Runtime runs the file

Sources are image files, folders (the images directly inside them) and glob patterns. The
weights are the book's trained small YOLOv2 by default, a checkpoint of the training command
(``.pt``), a Darknet ``.weights`` file with ``--model`` naming its network, or an ONNX file
written by ``python -m yolo_lessons.export``, which ONNX Runtime runs (``--engine onnxruntime``,
implied by the ``.onnx`` suffix; the file's metadata says how to decode it). Each picture is
letterboxed into the network input, decoded, thresholded (``--thresh`` .5) and NMS'd at
``--nms`` .45 as Darknet does (``detection.inference.detect``, the function the chapters use),
and the boxes come back in the picture's own pixels.

Output, in ``--out`` (default ``runs/detect``, or ``runs/detect-2``, ``-3``, ... when that one
exists: a new folder each run, never an earlier run's files overwritten; an ``--out`` you name
must be new or empty): each picture with its boxes drawn, and ``detections.json`` with every
box. Darknet's one line a box (``circle: 87%``) is printed for each picture.

Exit status: 0 when every picture was read; 1 when some could not be (each is named, the
others are processed); 2, with one line and nothing written, for a bad option or file.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .darknet.book_weights import BOOK_ANCHORS, BOOK_WIDTH, load_book_model, small_yolov2_layers
from .darknet.coco import COCO_CLASSES
from .darknet.names import VOC_CLASSES
from .darknet.weights import load_darknet_weights
from .data.datasets import read_names
from .data.shapes import SHAPE_CLASSES
from .detection.inference import Found, detect
from .detection.nms import NMS_THRESHOLD, TEST_THRESHOLD
from .models.small_yolov2 import small_yolov2
from .models.yolov2 import yolov2
from .models.yolov3 import yolov3

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
BOOK_IMAGE_SIZE = 96  # the book's model was trained on 96 x 96 images (yolo_lessons/weights/README.md)
DARKNET_SIZE = 416  # width= and height= of yolov2*.cfg and yolov3*.cfg
DEFAULT_OUT = Path("runs") / "detect"
ENGINES = ("torch", "onnxruntime")  # what runs the network: PyTorch, or ONNX Runtime on an exported file


# The networks a Darknet .weights file can be read into: builder, class names, input side.
@dataclass(frozen=True)
class Network:
    build: object
    names: tuple[str, ...]
    size: int
    description: str


NETWORKS: dict[str, Network] = {
    "yolov2-voc": Network(lambda: yolov2(num_classes=20), VOC_CLASSES, DARKNET_SIZE, "yolov2-voc.cfg, 20 VOC classes"),
    "yolov2": Network(lambda: yolov2(num_classes=80), COCO_CLASSES, DARKNET_SIZE, "yolov2.cfg, 80 COCO classes"),
    "yolov3": Network(lambda: yolov3(num_classes=80), COCO_CLASSES, DARKNET_SIZE, "yolov3.cfg, 80 COCO classes"),
    "yolov3-voc": Network(lambda: yolov3(num_classes=20), VOC_CLASSES, DARKNET_SIZE, "yolov3-voc.cfg, 20 VOC"),
    "small_yolov2": Network(
        lambda: small_yolov2(num_classes=len(SHAPE_CLASSES), anchors=BOOK_ANCHORS, width=BOOK_WIDTH),
        SHAPE_CLASSES, BOOK_IMAGE_SIZE, "the book's small YOLOv2 (chapter 9), 3 shapes",
    ),
}  # fmt: skip


class InputError(Exception):
    """A bad option or file, found before any work: one line for the user, exit status 2."""


class CommandParser(argparse.ArgumentParser):
    """argparse, but a bad option is one line (``error: ...``), as every other bad input of the
    commands, instead of the usage text and then the error; ``--help`` shows the usage."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = CommandParser(
        prog="python -m yolo_lessons.detect",
        description="Detect objects in pictures, as ./darknet detector test does.",
        epilog=__doc__[__doc__.index("Examples::") : __doc__.index("Sources are")].replace("::", ":"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("sources", nargs="+", metavar="SOURCE", help="image files, folders or glob patterns")
    parser.add_argument(
        "--weights", default=None,
        help="a training checkpoint (.pt), a Darknet .weights file or an exported .onnx (default: the book's model)",
    )
    parser.add_argument(
        "--model", choices=sorted(NETWORKS), default=None, help="the network a .weights file belongs to"
    )
    parser.add_argument(
        "--engine", choices=ENGINES, default=None,
        help="what runs the network: torch, or onnxruntime for an .onnx file (default: by the --weights suffix)",
    )
    parser.add_argument("--names", default=None, help="a .names file, one class a line (default: the model's own)")
    parser.add_argument(
        "--size", type=int, default=None, help="network input side, a multiple of 32 (default: the model's)"
    )
    parser.add_argument("--thresh", type=float, default=TEST_THRESHOLD, help="score threshold (default .5, as Darknet)")
    parser.add_argument("--nms", type=float, default=NMS_THRESHOLD, help="NMS IoU threshold (default .45, as Darknet)")
    parser.add_argument("--out", default=None, help="output folder, new or empty (default: runs/detect, numbered)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    return parser.parse_args(argv)


def find_images(sources: list[str]) -> list[Path]:
    """Every image the sources name, in the order given (folders and globs sorted), each once."""
    found: list[Path] = []
    for source in sources:
        path = Path(source)
        if path.is_dir():
            matches = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not matches:
                raise InputError(f"expected images ({', '.join(IMAGE_SUFFIXES)}) in the folder {source}, found none")
        elif path.is_file():
            matches = [path]
        elif glob.has_magic(source):
            matches = sorted(Path(p) for p in glob.glob(source, recursive=True) if Path(p).is_file())
            if not matches:
                raise InputError(f"expected the pattern {source} to match image files, it matches none")
        else:
            raise InputError(f"expected an image file, a folder or a glob pattern, got {source} (no such file)")
        found += [p for p in matches if p not in found]
    return found


def load_model(args: argparse.Namespace) -> tuple[nn.Module, tuple[str, ...], int]:
    """The model, its class names and its input side, from --weights and --model."""
    if args.weights is None:
        if args.model not in (None, "small_yolov2"):
            raise InputError(f"--model {args.model} needs --weights: the file of that network's weights")
        return load_book_model(), SHAPE_CLASSES, BOOK_IMAGE_SIZE
    weights = Path(args.weights)
    if not weights.is_file():
        raise InputError(f"expected --weights to be a checkpoint or .weights file, got {weights} (no such file)")
    if weights.suffix == ".weights":
        if args.model is None:
            choices = ", ".join(sorted(NETWORKS))
            raise InputError(f"a .weights file holds no network description: name its network with --model ({choices})")
        network = NETWORKS[args.model]
        model = network.build()
        layers = small_yolov2_layers(model) if args.model == "small_yolov2" else None
        try:
            load_darknet_weights(model, weights, layers=layers)
        except (ValueError, OSError) as error:
            raise InputError(f"{weights} does not fit {args.model} ({network.description}): {error}") from None
        return model.eval(), network.names, network.size
    if args.model is not None:
        raise InputError(f"--model is for Darknet .weights files; {weights} is read as a training checkpoint")
    from .train import load_checkpoint, model_from_checkpoint  # the training command's own format

    try:
        state = load_checkpoint(str(weights))
        model = model_from_checkpoint(str(weights))
    except ValueError as error:  # a torch file of another kind
        raise InputError(str(error)) from None
    except Exception:  # a foreign, truncated or empty file: torch.load raises many kinds
        expected = "expected a yolo_lessons.train checkpoint (.pt) or a Darknet .weights file"
        raise InputError(f"{expected}, got {weights}, which torch.load cannot read") from None
    return model, tuple(state["classes"]), int(state["config"]["image_size"])


def choose_engine(args: argparse.Namespace) -> str:
    """--engine checked against --weights: an .onnx file runs on ONNX Runtime (the suffix implies it)."""
    onnx_file = args.weights is not None and Path(args.weights).suffix == ".onnx"
    engine = args.engine or ("onnxruntime" if onnx_file else "torch")
    if engine == "onnxruntime" and not onnx_file:
        got = args.weights if args.weights is not None else "the book's model"
        raise InputError(f"--engine onnxruntime runs an .onnx file (python -m yolo_lessons.export writes one), "
                         f"got {got}")
    if engine == "torch" and onnx_file:
        raise InputError(f"--engine torch runs a checkpoint or a .weights file, got {args.weights}: an ONNX file")
    if engine == "onnxruntime" and args.model is not None:
        raise InputError(f"--model is for Darknet .weights files; {args.weights} names its network in its metadata")
    if engine == "onnxruntime" and args.device != "cpu":
        raise InputError(f"expected --device cpu with --engine onnxruntime (its CPU build), got {args.device}")
    return engine


def load_onnx_model(args: argparse.Namespace) -> tuple[nn.Module, tuple[str, ...], int]:
    """The exported file under ONNX Runtime, its class names and its input side, from its metadata."""
    weights = Path(args.weights)
    if not weights.is_file():
        raise InputError(f"expected --weights to be an ONNX file, got {weights} (no such file)")
    from .export import OnnxRuntimeModel  # the export command's reader: onnxruntime is imported only here

    try:
        model = OnnxRuntimeModel(weights)
    except (ValueError, ImportError) as error:
        raise InputError(str(error)) from None
    return model, model.class_names, model.input_size


def output_folder(out: str | None, default: Path = DEFAULT_OUT) -> Path:
    """--out if it is new or empty; else ``default`` (runs/detect), or the first free runs/detect-N."""
    if out is not None:
        path = Path(out)
        if path.exists() and not path.is_dir():
            raise InputError(f"expected --out to be a folder, got {path}, which is a file")
        if path.is_dir() and any(path.iterdir()):
            raise InputError(f"expected --out to be a new or empty folder, {path} already holds files")
        return path
    path, number = default, 1
    while path.exists():
        number += 1
        path = default.with_name(f"{default.name}-{number}")
    return path


def check_writable(folder: Path) -> None:
    parent = next((p for p in [folder, *folder.parents] if p.exists()), Path("."))
    if not os.access(parent, os.W_OK):
        raise InputError(f"expected a folder I can write to for --out, {parent} is not writable")


def draw(image, found: Found):
    """The picture with each box, its class name and score (PIL)."""
    from PIL import Image, ImageDraw

    picture = Image.fromarray(image)
    pen = ImageDraw.Draw(picture)
    width = max(1, round(min(picture.size) / 200))
    for (x1, y1, x2, y2), line in zip(found.boxes.tolist(), found.lines(), strict=True):
        pen.rectangle((x1, y1, x2, y2), outline=(255, 220, 0), width=width)
        left, top, right, bottom = pen.textbbox((x1, y1), line)
        lift = bottom - top + 2
        pen.rectangle((left, top - lift, right + 2, bottom - lift), fill=(255, 220, 0))
        pen.text((x1 + 1, y1 - lift), line, fill=(0, 0, 0))
    return picture


def free_name(name: str, taken: set[str]) -> str:
    """``name``, or ``stem-2.png``, ``stem-3.png``, ... when two pictures share a name."""
    stem, suffix = Path(name).stem, Path(name).suffix
    candidate, number = name, 1
    while candidate in taken:
        number += 1
        candidate = f"{stem}-{number}{suffix}"
    taken.add(candidate)
    return candidate


def check_common_options(args: argparse.Namespace) -> None:
    """--thresh, --nms, --size and --device, as the detect and evaluate commands share them."""
    if not 0 <= args.thresh < 1:
        raise InputError(f"expected --thresh in [0, 1), got {args.thresh}")
    if not 0 < args.nms <= 1:
        raise InputError(f"expected --nms in (0, 1], got {args.nms}")
    if args.size is not None and (args.size < 32 or args.size % 32):
        raise InputError(f"expected --size to be a positive multiple of 32 (e.g. 320, 416, 608), got {args.size}")
    if args.device not in ("cpu", "cuda") and not args.device.startswith("cuda:"):
        raise InputError(f"expected --device cpu or cuda, got {args.device}")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("expected a CUDA GPU for --device cuda, but torch sees none (use --device cpu)")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        check_common_options(args)
        images = find_images(args.sources)
        names_file = read_names(args.names) if args.names is not None else None
        out = output_folder(args.out)
        check_writable(out)
        engine = choose_engine(args)
        model, names, size = load_onnx_model(args) if engine == "onnxruntime" else load_model(args)
    except (InputError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    names = tuple(names_file) if names_file is not None else names
    classes = model.num_classes if hasattr(model, "num_classes") else len(names)
    if len(names) < classes:
        print(f"error: expected {classes} class names for this model, the names file has {len(names)}", file=sys.stderr)
        return 2
    size = args.size or size
    model = model.to(args.device)

    from tqdm import tqdm

    from .data.images import read_image

    out.mkdir(parents=True, exist_ok=True)
    results, unreadable, taken = [], [], set()
    bar = tqdm(images, unit="image", disable=len(images) < 2, file=sys.stderr, dynamic_ncols=True)
    for path in bar:
        try:
            image = read_image(path)
        except ValueError as error:
            unreadable.append(path)
            tqdm.write(f"skipped: {error}", file=sys.stderr)
            continue
        found = detect(model, image, size, args.thresh, args.nms, names)
        tqdm.write(f"{path}: {len(found)} {'box' if len(found) == 1 else 'boxes'}", file=sys.stdout)
        for line in found.lines():
            tqdm.write(line, file=sys.stdout)
        picture_name = free_name(Path(path).with_suffix(".png").name, taken)
        draw(image, found).save(out / picture_name)
        height, width = image.shape[:2]
        results.append(
            {"image": str(path), "width": width, "height": height, "annotated": picture_name,
             "detections": found.as_dicts()}
        )  # fmt: skip
    settings = {"weights": args.weights or "book", "model": args.model, "size": size, "thresh": args.thresh,
                "nms": args.nms}  # fmt: skip
    with open(out / "detections.json", "w", encoding="utf-8") as file:
        json.dump({"settings": settings, "images": results}, file, indent=1)
    print(f"{len(results)} of {len(images)} pictures, {sum(len(r['detections']) for r in results)} boxes: {out}")
    if unreadable:
        print(f"could not read {len(unreadable)}: {', '.join(str(p) for p in unreadable)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
