"""Ship a model as an ONNX file: ``python -m yolo_lessons.export``, checked against PyTorch first.

Examples::

    python -m yolo_lessons.export                                   # the book's model -> small_yolov2.onnx
    python -m yolo_lessons.export --weights runs/train/checkpoint.pt --out shapes.onnx
    python -m yolo_lessons.export --weights yolov3.weights --model yolov3
    python -m yolo_lessons.detect photo.jpg --weights yolov3.onnx   # then run it with ONNX Runtime

The weights are read as the detect command reads them: the book's trained small YOLOv2 by
default, a checkpoint of the training command (``.pt``), or a Darknet ``.weights`` file with
``--model`` naming its network. The model's BatchNorms are folded into its convolutions first
(``models.folding``: a smaller graph, the same function), then ``torch.onnx.export`` (its
``torch.export``-based exporter, which writes the graph with ``onnxscript``) writes one file
whose batch, height and width are dynamic: any batch, any height and width that are multiples
of the model's largest stride (32; 16 for the book's small model). The graph ends where the
PyTorch model's ``forward`` ends, at the raw head outputs; decoding and NMS stay in Python.

What decoding needs is kept in the file's metadata (``metadata_props``, keys ``yolo_lessons.*``:
the head -- ``region`` for YOLOv2's softmax head with anchors in grid cells, ``yolo`` for
YOLOv3's sigmoid heads with anchors in input pixels --, the anchors, the masks, the strides, the
class names, the input size and the network's class), so that
``python -m yolo_lessons.detect photo.jpg --weights model.onnx`` needs nothing else
(``OnnxRuntimeModel`` reads it).

Before it says ok, the command runs ONNX Runtime on a test picture -- matplotlib's
``grace_hopper.jpg``, or a synthetic shapes picture for a model of the book's shapes --
letterboxed as detect does, at ``--size`` and again as a batch of two at another height, and
compares with the PyTorch model (unfolded): it prints the max relative difference, max |onnx -
torch| / max |torch| over each output, and fails above 1e-4.

Output: ``--out`` (default ``<name>.onnx`` in the current folder, named after the
weights: ``small_yolov2`` for the book's model, the stem of ``--weights`` otherwise; or
``<name>-2.onnx``, ``-3``, ... when that one exists). An existing file is never overwritten.

Exit status: 0 when ONNX Runtime agrees with PyTorch; 1 when it does not (the figures are
printed and no file is kept) or the export fails; 2, with one line and nothing written, for a
bad option or file.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from .data.letterbox import network_input
from .data.shapes import SHAPE_CLASSES, make_image
from .detect import NETWORKS, CommandParser, InputError, check_writable, load_model
from .detection.inference import ONE_HEAD, YOLO_HEADS
from .models.blocks import check_image_batch
from .models.folding import fold_batchnorm

TOLERANCE = 1e-4  # max relative difference of ONNX Runtime from PyTorch before the command says ok
METADATA = "yolo_lessons."  # the prefix of our keys in the ONNX file's metadata_props
FORMAT = "1"  # yolo_lessons.format: bumped if the keys below change meaning
REQUIRED = ("onnx", "onnxscript", "onnxruntime")  # torch.onnx.export's dynamo exporter needs the first two
INSTALL = "pip install -r requirements.txt, or pip install 'yolo-lessons[export]'"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = CommandParser(
        prog="python -m yolo_lessons.export",
        description="Export a detector to ONNX and check it against PyTorch with ONNX Runtime.",
        epilog=__doc__[__doc__.index("Examples::") : __doc__.index("The weights are")].replace("::", ":"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--weights", default=None,
        help="a training checkpoint (.pt) or a Darknet .weights file (default: the book's model)",
    )
    parser.add_argument(
        "--model", choices=sorted(NETWORKS), default=None, help="the network a .weights file belongs to"
    )
    parser.add_argument(
        "--size", type=int, default=None,
        help="the input side detect uses by default and the check runs at (default: the model's)",
    )
    parser.add_argument("--out", default=None, help="the ONNX file to write, new (default: <name>.onnx, numbered)")
    return parser.parse_args(argv)


# --- inputs ---------------------------------------------------------------------------------------


def default_out(name: str, folder: Path = Path(".")) -> Path:
    """``name.onnx`` in ``folder``, or the first free ``name-2.onnx``, ``name-3.onnx``, ..."""
    path, number = folder / f"{name}.onnx", 1
    while path.exists():
        number += 1
        path = folder / f"{name}-{number}.onnx"
    return path


def output_file(out: str | None, name: str) -> Path:
    """--out if it is a new .onnx file in a folder I can write to; else the default for ``name``."""
    if out is None:
        path = default_out(name)
    else:
        path = Path(out)
        if path.suffix != ".onnx":
            raise InputError(f"expected --out to name an .onnx file, got {out}")
        if path.exists():
            raise InputError(f"expected --out to be a new file, {path} already exists (I never overwrite one)")
    check_writable(path.parent)
    return path


def check_weights(args: argparse.Namespace) -> None:
    """What load_model does not refuse itself: a file that is already ONNX, or of no known kind."""
    if args.weights is None:
        return
    weights = Path(args.weights)
    if weights.suffix == ".onnx":
        raise InputError(f"expected a checkpoint (.pt) or a Darknet .weights file, got {weights}: an ONNX file already")
    if weights.is_file() and weights.suffix not in (".pt", ".pth", ".weights"):
        raise InputError(f"expected --weights to be a checkpoint (.pt) or a Darknet .weights file, got {weights}")


def check_size(size: int | None, multiple: int = 32) -> None:
    if size is not None and (size < multiple or size % multiple):
        raise InputError(f"expected --size to be a positive multiple of {multiple} (e.g. 320, 416, 608), got {size}")


def check_packages(names: Sequence[str] = REQUIRED) -> None:
    missing = [name for name in names if importlib.util.find_spec(name) is None]
    if missing:
        raise InputError(f"exporting needs the packages {', '.join(names)}; missing {', '.join(missing)}: {INSTALL}")


def check_picture(class_names: Sequence[str]) -> tuple[np.ndarray, str]:
    """A uint8 (H, W, 3) picture to compare the engines on, and what it is."""
    if tuple(class_names) == SHAPE_CLASSES:
        image, _ = make_image(250, seed=1000, size=128)  # a held-out synthetic picture of the book's shapes
        return (image.transpose(1, 2, 0) * 255).round().astype(np.uint8), "a shapes picture"
    from matplotlib import cbook

    with cbook.get_sample_data("grace_hopper.jpg") as file:  # 600 x 512, shipped by matplotlib
        from PIL import Image

        return np.asarray(Image.open(file).convert("RGB")), "grace_hopper.jpg"


# --- the file -------------------------------------------------------------------------------------


def head_of(model: nn.Module) -> str:
    """``region`` (one softmax head, anchors in grid cells) or ``yolo`` (sigmoid heads, anchors in pixels)."""
    if isinstance(model, YOLO_HEADS):
        return "yolo"
    if isinstance(model, ONE_HEAD):
        return "region"
    raise InputError(
        "expected one of the book's detectors (" + ", ".join(c.__name__ for c in ONE_HEAD + YOLO_HEADS)
        + f"), got {type(model).__name__}"
    )


def as_outputs(output) -> tuple[Tensor, ...]:
    return tuple(output) if isinstance(output, (tuple, list)) else (output,)


def decoding_metadata(model: nn.Module, class_names: Sequence[str], input_size: int, strides: Sequence[int]) -> dict:
    """What ``OnnxRuntimeModel`` needs to decode the file's outputs, as ONNX metadata strings."""
    head = head_of(model)
    values = {
        "format": FORMAT,
        "network": type(model).__name__,
        "head": head,
        "anchors": model.anchors.tolist(),  # (A, 2) w, h: grid cells for "region", input pixels for "yolo"
        "anchor_units": "grid cells" if head == "region" else "input pixels",
        "masks": [list(m) for m in model.masks] if head == "yolo" else None,  # each output's anchors
        "strides": list(strides),  # input pixels per grid cell of each output
        "num_classes": model.num_classes,
        "class_names": list(class_names),
        "input_size": input_size,  # the side detect letterboxes into by default
        "multiple": max(strides),  # height and width must be multiples of it
    }
    return {METADATA + key: value if isinstance(value, str) else json.dumps(value) for key, value in values.items()}


@contextlib.contextmanager
def quiet():
    """The exporter's progress lines, warnings and log messages kept off the user's terminal."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def write_onnx(
    model: nn.Module,
    path: str | os.PathLike,
    example: Tensor,
    multiple: int,
    output_names: Sequence[str],
    metadata: dict[str, str] | None = None,
) -> None:
    """``model`` as it is (fold it first) written to ``path`` by torch's dynamo exporter.

    The input ``images`` (N, 3, H, W) has a dynamic batch and a dynamic height and width, each a
    multiple of ``multiple``; ``example`` is the batch traced (batch 2 or more: torch.export
    would fix a 1 as a constant). ``metadata`` goes into the file's ``metadata_props``.
    """
    batch, rows, columns = torch.export.Dim("batch", min=1), torch.export.Dim("h", min=1), torch.export.Dim("w", min=1)
    with quiet():
        program = torch.onnx.export(
            model, (example,), input_names=["images"], output_names=list(output_names), dynamo=True,
            dynamic_shapes={"x": {0: batch, 2: multiple * rows, 3: multiple * columns}},
        )  # fmt: skip
        program.model.metadata_props.update(metadata or {})
        program.model.doc_string = f"{type(model).__name__} exported by python -m yolo_lessons.export"
        program.save(os.fspath(path))


def export_onnx(
    model: nn.Module, path: str | os.PathLike, class_names: Sequence[str], input_size: int
) -> dict[str, str]:
    """Write the detector ``model``, BatchNorm folded, to ``path`` as ONNX with its decoding metadata.

    The input is ``images`` (N, 3, H, W), any batch, H and W any multiples of the model's largest
    stride; the outputs are the model's raw head outputs (``output``, or ``stride32``,
    ``stride16``, ... for YOLOv3's heads). Returns the metadata it stored in the file.
    """
    folded = fold_batchnorm(model)  # a copy in eval mode; the caller's model is untouched
    example = torch.zeros(2, 3, input_size, input_size)
    with torch.no_grad():
        outputs = as_outputs(folded(example))
    strides = [input_size // o.shape[-1] for o in outputs]  # (32, 16, 8) for YOLOv3
    metadata = decoding_metadata(model, class_names, input_size, strides)
    names = ["output"] if len(outputs) == 1 else [f"stride{s}" for s in strides]
    write_onnx(folded, path, example, max(strides), names, metadata)
    return metadata


class OnnxRuntimeModel(nn.Module):
    """An ONNX file of ``export_onnx`` run by ONNX Runtime, looking to ``detect`` like its model.

    ``forward`` takes the (N, 3, H, W) float batch the PyTorch model takes and returns what it
    returns (one tensor for a ``region`` head, a tuple for ``yolo`` heads); ``head_kind``,
    ``anchors``, ``masks`` and ``num_classes`` are what ``detection.inference.decode_model_output``
    reads, and ``class_names``, ``input_size`` what the detect command uses by default. All of
    it comes from the file's metadata; a file without ours is refused with ``ValueError``.
    ``threads``: ONNX Runtime's intra-op threads (default: its own choice, one per core).
    """

    def __init__(self, path: str | os.PathLike, threads: int | None = None):
        super().__init__()
        try:
            import onnxruntime
        except ImportError:
            raise ImportError(f"running an ONNX file needs the onnxruntime package: {INSTALL}") from None
        options = onnxruntime.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        try:
            self.session = onnxruntime.InferenceSession(os.fspath(path), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own kinds for a file it cannot read
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ValueError(f"expected an ONNX file, got {path}, which ONNX Runtime cannot read: {first}") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        if meta.get(METADATA + "format") != FORMAT:
            raise ValueError(f"expected an ONNX file written by python -m yolo_lessons.export, got {path}, "
                             "whose metadata says nothing of how to decode its outputs")  # fmt: skip

        def value(key: str):
            return json.loads(meta[METADATA + key])

        self.path = Path(path)
        self.network = meta[METADATA + "network"]
        self.head_kind = meta[METADATA + "head"]
        self.register_buffer("anchors", torch.tensor(value("anchors"), dtype=torch.float32), persistent=False)
        masks = value("masks")
        self.masks = tuple(tuple(m) for m in masks) if masks is not None else None
        self.strides = tuple(value("strides"))
        self.multiple = int(value("multiple"))
        self.num_classes = int(value("num_classes"))
        self.class_names = tuple(value("class_names"))
        self.input_size = int(value("input_size"))
        self.input_name = self.session.get_inputs()[0].name

    def forward(self, x: Tensor):
        check_image_batch(x, multiple=self.multiple)
        arrays = self.session.run(None, {self.input_name: x.detach().float().cpu().numpy()})
        outputs = tuple(torch.from_numpy(a) for a in arrays)
        return outputs[0] if self.head_kind == "region" else outputs

    def extra_repr(self) -> str:
        return f"{self.path.name}: {self.network}, {self.num_classes} classes, ONNX Runtime"


def max_relative_difference(got, want) -> float:
    """max |got - want| / max |want| over each output pair, the worst of them."""
    worst = 0.0
    for g, w in zip(as_outputs(got), as_outputs(want), strict=True):
        g, w = g.detach().float(), w.detach().float()
        worst = max(worst, float((g - w).abs().max() / w.abs().max().clamp_min(1e-12)))
    return worst


def comparison_batches(picture: np.ndarray, size: int, multiple: int) -> list[Tensor]:
    """The picture letterboxed at size x size; and a batch of two (it and its mirror) one stride taller."""
    square, _ = network_input(picture, size, size)
    tall, _ = network_input(picture, size, size + multiple)
    return [square[None], torch.stack([tall, tall.flip(-1)])]


# --- the command ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        check_size(args.size)
        check_weights(args)
        name = Path(args.weights).stem if args.weights is not None else "small_yolov2"
        out = output_file(args.out, name)
        check_packages()
        model, names, size = load_model(args)
        head_of(model)
    except (InputError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    size = args.size or size
    model = model.eval()
    picture, what = check_picture(names)
    print(f"exporting {type(model).__name__} ({len(names)} classes) with its BatchNorms folded ...", flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(suffix=".onnx.partial", dir=out.parent)  # renamed only once checked
    os.close(handle)
    try:
        try:
            metadata = export_onnx(model, partial, names, size)
        except Exception as error:  # the exporter can fail in many ways on a graph it cannot express
            print(f"error: torch.onnx.export failed: {type(error).__name__}: {str(error).splitlines()[0]}",
                  file=sys.stderr)  # fmt: skip
            return 1
        multiple = int(metadata[METADATA + "multiple"])
        exported = OnnxRuntimeModel(partial)
        worst = 0.0
        for batch in comparison_batches(picture, size, multiple):
            with torch.inference_mode():
                difference = max_relative_difference(exported(batch), model(batch))
            shape = " x ".join(str(n) for n in batch.shape)
            print(f"onnxruntime vs torch on {what}, {shape}: max relative difference {difference:.1e}")
            worst = max(worst, difference)
        if worst > TOLERANCE:
            print(f"error: ONNX Runtime differs from PyTorch by {worst:.1e} relative, more than {TOLERANCE:.0e}: "
                  "no file written", file=sys.stderr)  # fmt: skip
            return 1
        if out.exists():  # (made while we exported)
            print(f"error: {out} appeared while exporting; the export is not written over it", file=sys.stderr)
            return 1
        os.replace(partial, out)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    umask = os.umask(0)
    os.umask(umask)
    out.chmod(0o666 & ~umask)  # (mkstemp made it private to me)
    outputs = ", ".join(o.name for o in exported.session.get_outputs())
    anchors = f"{len(exported.anchors)} anchors in {metadata[METADATA + 'anchor_units']}"
    print(f"input images (N, 3, {multiple}*h, {multiple}*w) -> {outputs}; in its metadata: the {exported.head_kind} "
          f"head, {anchors}, {exported.num_classes} class names, input size {size}")
    print(f"ok: {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
