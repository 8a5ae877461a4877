"""Pascal VOC read directly, and converted to Darknet's label files as ``scripts/voc_label.py`` does.

A VOC tree (``VOCdevkit/VOC2007``, or any folder laid out the same way):

* ``Annotations/<id>.xml``: ``<size>`` (``width``, ``height``) and one ``<object>`` per object:
  ``name``, ``bndbox`` (``xmin``, ``ymin``, ``xmax``, ``ymax``), ``difficult``, ``truncated``;
* ``JPEGImages/<id>.jpg``: the pictures;
* ``ImageSets/Main/<split>.txt``: the ids of a split (``train``, ``val``, ``trainval``, ``test``).

VOC's boxes are in pixels counted from 1, both corners included: a box with ``xmin = 1`` and
``xmax = 10`` covers the first ten columns. ``read_voc`` returns them as written, with the
``difficult`` flag (objects VOC's scoring does not ask a detector to find) and ``truncated``.
A missing ``difficult`` or ``truncated`` reads as 0 (VOC's own scripts would fail on it).

Darknet's rows (``darknet_rows``) follow ``voc_label.py``'s ``convert``: ``x = (xmin + xmax) / 2 - 1``,
``w = xmax - xmin``, divided by the picture's width (the same along y). That is the box from
``xmin - 1`` to ``xmax - 1``: both corners shifted by one to count from 0, so the box ends at the
left edge of its last column, one pixel short of the ``xmax - xmin + 1`` columns it covers.
We write the same numbers so that a set converted here trains as one converted by Darknet's
script, with one exception: a box one pixel wide or high (``xmin == xmax``) would become a side
of 0, which ``data.check`` refuses and Darknet's loader drops (``w < .001``); we leave it out.
``voc_label.py`` also leaves out the objects whose class is not in its list and the
``difficult`` ones; ``voc_to_darknet`` does both by default (``keep_difficult=True`` keeps them).
For evaluation, ``voc_ground_truth`` gives the boxes, classes and difficult flags that
``detection.metrics.GroundTruth`` takes, so that difficult objects are treated as VOC treats them.
"""

from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .datasets import label_file

# The 20 classes of PASCAL VOC, in voc_label.py's (and voc.names') order.
VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
    "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip


@dataclass(frozen=True)
class VocObject:
    """One ``<object>``: its class name, box in VOC pixels (1-based, corners included), and flags."""

    name: str
    box: tuple[float, float, float, float]  # xmin, ymin, xmax, ymax as the file writes them
    difficult: bool = False
    truncated: bool = False


@dataclass(frozen=True)
class VocAnnotation:
    """One annotation file: the picture's id and size in pixels, and its objects."""

    path: Path
    image_id: str
    width: int
    height: int
    objects: tuple[VocObject, ...]


@dataclass
class VocSplit:
    """A split of a VOC tree: its annotations in the split's order, and every malformed file named."""

    root: Path
    split: str
    annotations: list[VocAnnotation]
    problems: list[str] = field(default_factory=list)

    def image_path(self, annotation: VocAnnotation) -> Path:
        """``JPEGImages/<id>.jpg``, where ``voc_label.py`` lists the picture."""
        return self.root / "JPEGImages" / f"{annotation.image_id}.jpg"


def _text(element: ET.Element, tag: str, where: str) -> str:
    child = element.find(tag)
    if child is None or child.text is None or not child.text.strip():
        raise ValueError(f"{where}: expected a <{tag}> with a value")
    return child.text.strip()


def _flag(element: ET.Element, tag: str, where: str) -> bool:
    child = element.find(tag)
    if child is None or child.text is None or not child.text.strip():
        return False  # VOC's own scripts would fail here; an absent flag means 0
    if child.text.strip() not in ("0", "1"):
        raise ValueError(f"{where}: expected <{tag}> 0 or 1, got {child.text.strip()!r}")
    return child.text.strip() == "1"


def read_annotation(path: str | os.PathLike) -> VocAnnotation:
    """One VOC annotation file; ValueError naming the file and what was expected where it is malformed."""
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as error:
        raise ValueError(f"{path}: expected well-formed XML ({error})") from None
    except OSError as error:
        raise ValueError(f"{path}: cannot read the annotation file: {error}") from None
    if root.tag != "annotation":
        raise ValueError(f"{path}: expected an <annotation> element at the top, got <{root.tag}>")
    size = root.find("size")
    if size is None:
        raise ValueError(f"{path}: expected a <size> with <width> and <height>")
    sides = {}
    for tag in ("width", "height"):
        text = _text(size, tag, f"{path}, <size>")
        if not text.isdigit() or int(text) < 1:
            raise ValueError(f"{path}: expected <size><{tag}> a positive whole number of pixels, got {text!r}")
        sides[tag] = int(text)
    objects = []
    for number, element in enumerate(root.iter("object"), 1):
        where = f"{path}, object {number}"
        name = _text(element, "name", where)
        bndbox = element.find("bndbox")
        if bndbox is None:
            raise ValueError(f"{where} ({name}): expected a <bndbox> with xmin, ymin, xmax, ymax")
        corners = []
        for tag in ("xmin", "ymin", "xmax", "ymax"):
            text = _text(bndbox, tag, f"{where} ({name}), <bndbox>")
            try:
                value = float(text)
            except ValueError:
                value = math.nan
            if not math.isfinite(value):
                raise ValueError(f"{where} ({name}): expected <{tag}> a number of pixels, got {text!r}")
            corners.append(value)
        xmin, ymin, xmax, ymax = corners
        if not (0 <= xmin <= xmax <= sides["width"] and 0 <= ymin <= ymax <= sides["height"]):
            raise ValueError(f"{where} ({name}): expected 0 <= xmin <= xmax <= width ({sides['width']}) and "
                             f"0 <= ymin <= ymax <= height ({sides['height']}), got {xmin:g}, {ymin:g}, {xmax:g}, "
                             f"{ymax:g}")  # fmt: skip
        objects.append(VocObject(name, (xmin, ymin, xmax, ymax), _flag(element, "difficult", where),
                                 _flag(element, "truncated", where)))  # fmt: skip
    return VocAnnotation(path, path.stem, sides["width"], sides["height"], tuple(objects))


def split_ids(root: str | os.PathLike, split: str) -> list[str]:
    """The ids of ``ImageSets/Main/<split>.txt``: the first word of each line (the class files'
    second column, 1 / 0 / -1, is ignored); ValueError when the file is missing or empty."""
    path = Path(root) / "ImageSets" / "Main" / f"{split}.txt"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"expected the split file {path} (one picture id a line): {error}") from None
    ids = [line.split()[0] for line in lines if line.strip()]
    if not ids:
        raise ValueError(f"the split file {path} names no picture")
    return ids


def read_voc(root: str | os.PathLike, split: str) -> VocSplit:
    """Every annotation of a split, in its order; each malformed or missing file is one entry of
    ``problems`` (file and what was expected), the rest are read. ValueError when the split file
    itself is missing or empty."""
    root = Path(root)
    out = VocSplit(root, split, [])
    for image_id in split_ids(root, split):
        try:
            out.annotations.append(read_annotation(root / "Annotations" / f"{image_id}.xml"))
        except ValueError as error:
            out.problems.append(str(error))
    return out


def darknet_rows(annotation: VocAnnotation, names: Sequence[str], keep_difficult: bool = False) -> np.ndarray:
    """(K, 5) Darknet rows ``class cx cy w h`` (fractions) of the objects whose name is in ``names``,
    with ``voc_label.py``'s arithmetic (the module docstring); difficult ones left out unless kept,
    and boxes one pixel wide or high (a side of 0 after the conversion) left out."""
    index = {name: k for k, name in enumerate(names)}
    dw, dh = 1.0 / annotation.width, 1.0 / annotation.height
    rows = []
    for obj in annotation.objects:
        xmin, ymin, xmax, ymax = obj.box
        if obj.name not in index or (obj.difficult and not keep_difficult) or xmax <= xmin or ymax <= ymin:
            continue
        x, y = (xmin + xmax) / 2.0 - 1, (ymin + ymax) / 2.0 - 1  # convert(): the -1 counts from 0
        w, h = xmax - xmin, ymax - ymin  # not + 1: the box stops at the left edge of its last column
        rows.append((index[obj.name], x * dw, y * dh, w * dw, h * dh))
    return np.array(rows, dtype=np.float64).reshape(-1, 5)


def voc_ground_truth(annotation: VocAnnotation, names: Sequence[str]) -> tuple[Tensor, Tensor, Tensor]:
    """What ``detection.metrics.GroundTruth`` takes for one picture: boxes (G, 4) corners in VOC pixels
    (1-based, inclusive), classes (G,) int64, difficult (G,) bool; objects of other classes left out.

    ``GroundTruth(*voc_ground_truth(a, names))``, scored by ``mean_average_precision(...,
    pixel_inclusive=True)``, counts as VOC's ``voc_eval`` does: difficult objects are not ground
    truth, and a detection that finds one is neither right nor wrong. The detections must be in
    the same pixels (Darknet's ``detector valid`` writes its corners + 1).
    """
    index = {name: k for k, name in enumerate(names)}
    kept = [obj for obj in annotation.objects if obj.name in index]
    boxes = torch.tensor([obj.box for obj in kept], dtype=torch.float64).reshape(-1, 4)
    classes = torch.tensor([index[obj.name] for obj in kept], dtype=torch.int64)
    difficult = torch.tensor([obj.difficult for obj in kept], dtype=torch.bool)
    return boxes, classes, difficult


@dataclass
class VocConversion:
    """What ``voc_to_darknet`` wrote: the ``.data`` file, the list of each split, the ``.names`` file,
    and the counts of label files and objects written, and of objects left out: difficult, of
    other classes, or one pixel wide or high."""

    data_file: Path
    names_file: Path
    lists: dict[str, Path]
    label_files: int = 0
    objects: int = 0
    difficult_skipped: int = 0
    other_classes_skipped: int = 0
    thin_skipped: int = 0


def voc_to_darknet(voc_root: str | os.PathLike, out_root: str | os.PathLike, names: Sequence[str] | None = None,
                   splits: Sequence[str] = ("train", "val"),
                   keep_difficult: bool = False) -> VocConversion:  # fmt: skip
    """Darknet's files for a VOC tree, as ``voc_label.py`` makes them, refusing to overwrite anything.

    Writes a label file per picture where Darknet looks for it (``datasets.darknet_label_path``:
    ``<voc_root>/labels/<id>.txt``), and in ``out_root`` one list per split (``<split>.txt``,
    the pictures' absolute paths), ``voc.names`` (``names``; default: the names found in the
    splits, sorted) and ``voc.data`` (``train`` = the first split's list, ``valid`` = the last's).
    Everything is checked before anything is written: a missing split file, a malformed
    annotation, a missing picture, or any output file that already exists raises ValueError
    naming it (with how many more problems there are), and then nothing is written.
    """
    voc_root, out_root = Path(voc_root).resolve(), Path(out_root).resolve()
    if not (voc_root / "Annotations").is_dir():
        raise ValueError(f"expected a VOC tree with Annotations/, JPEGImages/ and ImageSets/Main/, got {voc_root}")
    if not splits:
        raise ValueError("expected at least one split (e.g. train val)")
    read = [read_voc(voc_root, split) for split in splits]
    problems = [p for s in read for p in s.problems]
    if names is None:
        names = sorted({obj.name for s in read for a in s.annotations for obj in a.objects})
        if not names:
            problems.append(f"{voc_root}: no object in the splits {', '.join(splits)}, so no class names")
    names = list(names)
    if len(set(names)) != len(names) or not all(n and n == n.strip() and "\n" not in n for n in names):
        problems.append(f"expected distinct class names without surrounding spaces, got {names!r}")
    labels: dict[Path, np.ndarray] = {}
    lists: dict[str, list[str]] = {}
    stats = {"difficult": 0, "other": 0, "thin": 0}
    for split in read:
        lists[split.split] = []
        for annotation in split.annotations:
            image = split.image_path(annotation)
            if not image.is_file():
                problems.append(f"{annotation.path}: expected its picture {image}, no such file")
                continue
            label = label_file(image)
            if voc_root not in label.parents:
                problems.append(f"{image}: Darknet would look for its labels at {label}, outside {voc_root} "
                                "(its path holds 'images' or 'raw' before JPEGImages); move the tree")  # fmt: skip
                continue
            lists[split.split].append(str(image))
            if label not in labels:
                labels[label] = darknet_rows(annotation, names, keep_difficult)
                stats["difficult"] += sum(o.difficult and not keep_difficult and o.name in names
                                          for o in annotation.objects)  # fmt: skip
                stats["other"] += sum(o.name not in names for o in annotation.objects)
                stats["thin"] += sum(o.name in names and (keep_difficult or not o.difficult)
                                     and (o.box[2] <= o.box[0] or o.box[3] <= o.box[1])
                                     for o in annotation.objects)  # fmt: skip
    if out_root.exists() and not out_root.is_dir():
        problems.append(f"{out_root}: expected a folder for the lists, the .names and the .data file, got a file")
    data_file, names_file = out_root / "voc.data", out_root / "voc.names"
    list_files = {split: out_root / f"{split}.txt" for split in lists}
    outputs = [data_file, names_file, *list_files.values(), *labels]
    problems += [f"{path}: already exists; voc_to_darknet never overwrites a file" for path in outputs if path.exists()]
    if problems:
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise ValueError(problems[0] + more)
    for label, rows in labels.items():
        label.parent.mkdir(parents=True, exist_ok=True)
        label.write_text("".join(f"{int(c)} {x!r} {y!r} {w!r} {h!r}\n" for c, x, y, w, h in rows.tolist()))
    out_root.mkdir(parents=True, exist_ok=True)
    for split, path in list_files.items():
        path.write_text("".join(f"{image}\n" for image in lists[split]))
    names_file.write_text("".join(f"{name}\n" for name in names))
    data_file.write_text(f"classes = {len(names)}\ntrain = {list_files[splits[0]]}\nvalid = {list_files[splits[-1]]}\n"
                         f"names = {names_file}\nbackup = {out_root / 'backup'}\n")  # fmt: skip
    return VocConversion(data_file, names_file, list_files, len(labels), int(sum(len(r) for r in labels.values())),
                         stats["difficult"], stats["other"], stats["thin"])  # fmt: skip
