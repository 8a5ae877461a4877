"""Score a model on labelled pictures: ``python -m yolo_lessons.evaluate``, as ``./darknet detector map``.

Examples::

    python -m yolo_lessons.evaluate                                   # the book's model, 500 held-out shapes
    python -m yolo_lessons.evaluate --weights runs/train/checkpoint.pt
    python -m yolo_lessons.evaluate --data my.data --weights mine.weights --model yolov2-voc
    python -m yolo_lessons.evaluate --data pictures/ --names my.names --weights runs/train/best.pt
    python -m yolo_lessons.evaluate --data VOCdevkit/VOC2007 --split test --weights voc.weights --model yolov2-voc

What is scored: by default the synthetic held-out set of the training command (the images the
run's own mAP was computed on: its seed, size and object sizes, read from the checkpoint); or,
with ``--data``, labelled pictures in Darknet's format (a ``.data`` file and its ``valid`` list,
a list file, or a folder; ``data.datasets``), or a Pascal VOC tree read directly (a folder with
``Annotations/``, ``JPEGImages/`` and ``ImageSets/Main/SPLIT.txt``; ``--split``, default ``val``;
``data.voc``), scored as VOC's ``voc_eval`` scores it: difficult objects are neither found nor
missed, boxes in VOC's 1-based pixels with the devkit's + 1 widths (Darknet's ``detector valid``
writes its corners + 1 for this). Every picture goes through ``detect`` with Darknet's
validation threshold .005 and NMS at .45, as ``./darknet detector valid``. (COCO has no
``difficult`` flag: its numbers count every object.)

What is reported, per class and over all of them:

* VOC mAP@0.5, all-point (VOC2010+) and 11-point (VOC2007, the YOLO papers' tables), as
  ``detection.metrics`` computes it (``--pixel-inclusive`` adds VOC's + 1 to pixel widths);
* COCO's AP@[.5:.95], AP50, AP75 and AP by object area (small below 32^2 pixels of the original
  picture, medium to 96^2, large above), as pycocotools computes them (``detection.coco_ap``).

Written to ``--out`` (default ``runs/evaluate``, numbered like the detect command's folders):
``metrics.json`` with every number, and ``pr_curve.png``, each class's precision-recall curve.

Exit status: 0 after a report; 2, with one line and nothing written, for a bad option or file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from .data.datasets import load_labelled_set, read_names
from .detect import CommandParser, InputError, check_common_options, check_writable, load_model, output_folder
from .detection.coco_ap import coco_average_precision
from .detection.decode import box_corners
from .detection.inference import decode_model_output, detect
from .detection.metrics import GroundTruth, MeanAP, mean_average_precision
from .detection.nms import NMS_THRESHOLD, VALID_THRESHOLD, ImageDetections, postprocess

DEFAULT_OUT = Path("runs") / "evaluate"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = CommandParser(
        prog="python -m yolo_lessons.evaluate",
        description="Score a detector: VOC mAP@0.5 (all-point, 11-point) and COCO's AP@[.5:.95] and AP by area.",
        epilog=__doc__[__doc__.index("Examples::") : __doc__.index("What is scored")].replace("::", ":"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--weights", default=None,
                        help="a training checkpoint (.pt) or a Darknet .weights file (default: the book's model)")
    parser.add_argument("--model", default=None, help="the network a .weights file belongs to (as the detect command)")
    parser.add_argument("--data", default=None,
                        help="a .data file, a list file or a folder of labelled pictures (default: synthetic shapes)")
    parser.add_argument(
        "--names", default=None, help="a .names file, one class a line (default: the data's or model's)"
    )
    parser.add_argument("--split", default=None,
                        help="which list: a .data file's key (default valid) or a VOC split (default val)")
    parser.add_argument("--images", type=int, default=None,
                        help="synthetic set only: how many held-out images (default: the run's own, 500 for the book)")
    parser.add_argument(
        "--size", type=int, default=None, help="network input side, a multiple of 32 (default: the model's)"
    )
    parser.add_argument(
        "--thresh", type=float, default=VALID_THRESHOLD, help="score threshold (default .005, as Darknet's valid)"
    )
    parser.add_argument("--nms", type=float, default=NMS_THRESHOLD, help="NMS IoU threshold (default .45)")
    parser.add_argument("--pixel-inclusive", action="store_true",
                        help="VOC's + 1 on pixel widths and heights in the VOC IoU (the devkit's convention)")
    parser.add_argument("--out", default=None, help="output folder, new or empty (default: runs/evaluate, numbered)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    return parser.parse_args(argv)


def synthetic_set(args: argparse.Namespace, size: int):
    """The training command's held-out set for the weights: (pictures as tensors, truths in pixels)."""
    from .train import TrainConfig, held_out_set, load_checkpoint

    config = TrainConfig()
    if args.weights is not None and not str(args.weights).endswith(".weights"):
        saved = load_checkpoint(args.weights)["config"]
        if saved.get("data") is not None:
            raise InputError(f"{args.weights} was trained on {saved['data']}, not the shapes: score it with "
                             f"--data {saved['data']}")  # fmt: skip
        config = TrainConfig(**{k: v for k, v in saved.items() if k in ("image_size", "min_side", "max_side",
                                                                        "eval_seed", "eval_images")})
    if args.images is not None:
        if args.images < 1:
            raise InputError(f"expected --images to be a positive number, got {args.images}")
        config.eval_images = args.images
    if size != config.image_size:
        config.image_size = size
    images, boxes, counts = held_out_set(config)
    truths = [boxes[i, : counts[i]] for i in range(len(images))]
    ground = [GroundTruth(box_corners(t[:, 1:5]) * size, t[:, 0].long()) for t in truths]  # pixels
    return images, ground


def run_synthetic(model, images, size: int, thresh: float, iou: float, progress: bool) -> list[ImageDetections]:
    """Detections of the held-out tensors (already the network's size), boxes in pixels."""
    from tqdm import tqdm

    found = []
    batch = 50
    with torch.no_grad():
        for start in tqdm(range(0, len(images), batch), unit="batch", disable=not progress, file=sys.stderr):
            output = model(images[start : start + batch].to(next(model.parameters()).device))
            for d in postprocess(decode_model_output(model, output, size), thresh=thresh, iou_threshold=iou):
                found.append(ImageDetections(d.boxes * size, d.scores, d.classes))
    return found


def run_labelled(model, labelled, size: int, thresh: float, iou: float, progress: bool):
    """Detections and ground truths of labelled pictures, in each picture's pixels."""
    from tqdm import tqdm

    found, ground = [], []
    for index in tqdm(range(len(labelled)), unit="image", disable=not progress, file=sys.stderr):
        picture = labelled.picture(index)
        height, width = picture.shape[:2]
        result = detect(model, picture, size, thresh, iou)
        found.append(ImageDetections(result.boxes.double(), result.scores, result.classes))
        rows = torch.from_numpy(labelled.labels[index])
        corners = box_corners(rows[:, 1:5]) * torch.tensor([width, height, width, height], dtype=torch.float64)
        ground.append(GroundTruth(corners, rows[:, 0].long()))
    return found, ground


def is_voc_tree(data: str | None) -> bool:
    """A Pascal VOC tree (Annotations/ beside JPEGImages/), read directly, not a Darknet-format set."""
    return data is not None and (Path(data) / "Annotations").is_dir() and (Path(data) / "JPEGImages").is_dir()


def run_voc(model, split, names, size: int, thresh: float, iou: float, progress: bool):
    """Detections (corners + 1: VOC's 1-based pixels, as ``detector valid`` writes them) and the
    ground truths with their difficult flags, for every picture of a VOC split."""
    from tqdm import tqdm

    from .data.images import read_image
    from .data.voc import voc_ground_truth

    found, ground = [], []
    for annotation in tqdm(split.annotations, unit="image", disable=not progress, file=sys.stderr):
        result = detect(model, read_image(split.image_path(annotation)), size, thresh, iou)
        found.append(ImageDetections(result.boxes.double() + 1, result.scores, result.classes))
        ground.append(GroundTruth(*voc_ground_truth(annotation, names)))
    return found, ground


def report(names, voc: MeanAP, coco, ground) -> tuple[str, dict]:
    """The printed table and the JSON record."""
    objects = {}  # the objects scored: VOC's difficult ones are not (voc_eval's npos)
    for g in ground:
        for c in g.classes[~g.is_difficult()].tolist():
            objects[c] = objects.get(c, 0) + 1
    lines = [f"{'class':>14} {'objects':>8} {'AP50':>7} {'AP50-11':>8} {'AP':>7}"]
    per_class = {}
    for c in sorted(set(voc.per_class) | set(coco.per_class)):
        name = names[c] if c < len(names) else str(c)
        row = {"objects": objects.get(c, 0), "voc_ap50": voc.per_class[c].ap if c in voc.per_class else None,
               "voc_ap50_11": voc.per_class[c].ap_11_points if c in voc.per_class else None,
               "coco_ap": coco.per_class.get(c)}  # fmt: skip
        per_class[name] = row
        cells = [f"{v:7.4f}" if v is not None and v >= 0 else f"{'-':>7}"
                 for v in (row["voc_ap50"], row["voc_ap50_11"], row["coco_ap"])]  # fmt: skip
        lines.append(f"{name:>14} {row['objects']:>8} {cells[0]} {cells[1]:>8} {cells[2]}")
    lines.append(f"{'all':>14} {sum(objects.values()):>8} {voc.map:7.4f} {voc.map_11_points:>8.4f} {coco.ap:7.4f}")
    summary = {
        "voc_map50": voc.map, "voc_map50_11": voc.map_11_points, "coco_ap": coco.ap, "coco_ap50": coco.ap50,
        "coco_ap75": coco.ap75, "coco_ap_small": coco.ap_small, "coco_ap_medium": coco.ap_medium,
        "coco_ap_large": coco.ap_large,
    }  # fmt: skip
    lines.append("VOC mAP@0.5 {voc_map50:.4f} (11-point {voc_map50_11:.4f}); COCO AP@[.5:.95] {coco_ap:.4f}, "
                 "AP50 {coco_ap50:.4f}, AP75 {coco_ap75:.4f}".format(**summary))  # fmt: skip
    sizes = ", ".join(f"{k} {summary['coco_ap_' + k]:.4f}" if summary["coco_ap_" + k] >= 0 else f"{k} -"
                      for k in ("small", "medium", "large"))  # fmt: skip
    lines.append(f"COCO AP by area (pixels of the picture: small < 32^2 <= medium < 96^2 <= large): {sizes}")
    return "\n".join(lines), {"summary": summary, "per_class": per_class}


def plot_curves(path: Path, names, voc: MeanAP) -> None:
    import matplotlib

    matplotlib.use("Agg")  # a file, no window
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    for c, result in sorted(voc.per_class.items()):
        name = names[c] if c < len(names) else str(c)
        ax.plot(result.recall.numpy(), result.precision.numpy(), label=f"{name} (AP50 {result.ap:.3f})")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_title(f"precision-recall at IoU 0.5, mAP {voc.map:.4f}")
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        check_common_options(args)
        if args.model is not None:
            from .detect import NETWORKS

            if args.model not in NETWORKS:
                raise InputError(f"expected --model to be one of {', '.join(sorted(NETWORKS))}, got {args.model}")
        if args.data is None and args.names is not None:
            raise InputError("--names is for --data: the synthetic set has its own three classes")
        names_given = read_names(args.names) if args.names is not None else None
        out = output_folder(args.out, DEFAULT_OUT)
        check_writable(out)
        model, names, size = load_model(args)
        size = args.size or size
        voc_tree = is_voc_tree(args.data)
        if args.data is not None and args.images is not None:
            raise InputError("--images is for the synthetic set; a --data set is scored whole")
        if args.data is None and args.split is not None:
            raise InputError("--split chooses a list of --data; the synthetic set has none")
        if voc_tree:
            from .data.voc import VOC_CLASSES, read_voc

            split = read_voc(args.data, args.split or "val")
            if split.problems:
                raise InputError(f"{len(split.problems)} problem(s) in the VOC annotations of {args.data}, "
                                 f"first: {split.problems[0]}")  # fmt: skip
            missing = [a for a in split.annotations if not split.image_path(a).is_file()]
            if missing:
                raise InputError(f"{len(missing)} picture(s) of the split are missing, e.g. "
                                 f"{split.image_path(missing[0])}")  # fmt: skip
            names = names_given or list(VOC_CLASSES)
            scored = sum(not o.difficult for a in split.annotations for o in a.objects if o.name in names)
            if not scored:
                raise InputError(f"expected objects to score in the {split.split} split of {args.data}, found none "
                                 "(difficult ones are not scored)")  # fmt: skip
            if hasattr(model, "num_classes") and model.num_classes != len(names):
                raise InputError(f"the model has {model.num_classes} classes, VOC's names {len(names)} "
                                 "(give --names for another list)")  # fmt: skip
        elif args.data is not None:
            labelled = load_labelled_set(args.data, names_given, args.split or "valid")
            names = labelled.names
            if not any(len(rows) for rows in labelled.labels):
                raise InputError(f"expected labelled objects to score in {args.data}, found none")
            if hasattr(model, "num_classes") and model.num_classes != len(names):
                raise InputError(f"the model has {model.num_classes} classes, the data's names file {len(names)}")
        else:
            images, ground = synthetic_set(args, size)
    except (InputError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    model = model.to(args.device).eval()
    if voc_tree:
        found, ground = run_voc(model, split, names, size, args.thresh, args.nms, args.progress)
        args.pixel_inclusive = True  # VOC's devkit: widths in whole pixels, + 1
    elif args.data is not None:
        found, ground = run_labelled(model, labelled, size, args.thresh, args.nms, args.progress)
    else:
        found = run_synthetic(model, images, size, args.thresh, args.nms, args.progress)
    voc = mean_average_precision(found, ground, pixel_inclusive=args.pixel_inclusive)
    coco = coco_average_precision(found, ground)
    table, record = report(names, voc, coco, ground)
    print(f"{len(found)} pictures, {args.data or 'synthetic held-out shapes'}, input {size} x {size}")
    print(table)
    out.mkdir(parents=True, exist_ok=True)
    settings = {"weights": args.weights or "book", "model": args.model, "data": args.data, "size": size,
                "thresh": args.thresh, "nms": args.nms, "pixel_inclusive": args.pixel_inclusive,
                "pictures": len(found)}  # fmt: skip
    with open(out / "metrics.json", "w", encoding="utf-8") as file:
        json.dump({"settings": settings, **record}, file, indent=1)
    plot_curves(out / "pr_curve.png", names, voc)
    print(f"written: {out / 'metrics.json'}, {out / 'pr_curve.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
