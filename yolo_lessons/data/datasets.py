"""Labelled pictures in Darknet's own format: ``.data`` files, list files, label files.

Darknet's way (``src/data.c``, ``examples/detector.c``):

* a ``.data`` file of ``key = value`` lines: ``classes``, ``train`` and ``valid`` (list files),
  ``names`` (a ``.names`` file, one class a line), ``backup``;
* a list file: one image path a line;
* beside each image a label file, one object a row, ``class cx cy w h``, the centre and the
  sides as fractions of the picture's width and height. Darknet finds it by text replacement
  on the image's path (``fill_truth_detection``): the first ``images`` becomes ``labels``, then
  the first ``JPEGImages``, then the first ``raw``, and the first ``.jpg``, ``.png``, ``.JPG``
  or ``.JPEG`` becomes ``.txt`` (``find_replace`` replaces one occurrence only). So
  ``data/images/cat.jpg`` is labelled by ``data/labels/cat.txt``. A picture of another
  extension (``.bmp``, ``.jpeg``) keeps its name, and Darknet would read the picture itself as
  its labels; we refuse that by name.

A plain folder works too: every picture below it, labels found by the same rule, names from
``--names`` or the folder's one ``.names`` file. A picture without a label file has no objects
(a background picture). Reading stops at a label file's first problem, with its file and line;
``data.check`` lists every problem of a set at once, before a run.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .images import read_image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
# fill_truth_detection's replacements, in its order, each of the first occurrence only
LABEL_REPLACEMENTS = (
    ("images", "labels"), ("JPEGImages", "labels"), ("raw", "labels"),
    (".jpg", ".txt"), (".png", ".txt"), (".JPG", ".txt"), (".JPEG", ".txt"),
)  # fmt: skip


def darknet_label_path(image_path: str | os.PathLike) -> str:
    """Where Darknet looks for the labels of ``image_path`` (``fill_truth_detection``)."""
    path = os.fspath(image_path)
    for old, new in LABEL_REPLACEMENTS:
        path = path.replace(old, new, 1)
    return path


def read_data_file(path: str | os.PathLike) -> dict[str, str]:
    """A Darknet ``.data`` file as ``{key: value}`` (``read_data_cfg``: ``key = value`` lines, # comments)."""
    options = {}
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"cannot read the .data file {path}: {error}") from None
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if "=" not in line:
            raise ValueError(f"{path}, line {number}: expected key = value, got {line!r}")
        key, value = (part.strip() for part in line.split("=", 1))
        options[key] = value
    return options


def label_problems(path: str | os.PathLike, num_classes: int) -> tuple[np.ndarray, list[str]]:
    """The usable (K, 5) rows ``class, cx, cy, w, h`` of a Darknet label file, and one message per
    problem, each naming the file and line: a row that is not an integer and four numbers, a class
    outside the names, a centre outside [0, 1] or a side outside (0, 1] (Darknet would clip the box
    silently, or keep a box of no size), a row repeated."""
    try:
        with open(path, encoding="utf-8") as file:  # not Path.read_text: indexing 10,000 files is faster
            lines = file.read().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        return np.zeros((0, 5)), [f"{path}: cannot read the label file: {error}"]
    rows, problems, seen = [], [], {}
    for number, line in enumerate(lines, 1):
        fields = line.split()
        if not fields:
            continue
        where = f"{path}, line {number}"
        try:
            if len(fields) != 5:
                raise ValueError
            c, cx, cy, w, h = int(fields[0]), *(float(v) for v in fields[1:])
            if not all(map(math.isfinite, (cx, cy, w, h))):
                raise ValueError
        except ValueError:
            problems.append(f"{where}: expected 'class cx cy w h' (an integer and four numbers), got {line.strip()!r}")
            continue
        if not 0 <= c < num_classes:
            problems.append(f"{where}: class {c} is not one of the {num_classes} names (0 to {num_classes - 1})")
            continue
        if w <= 0 or h <= 0:
            problems.append(f"{where}: a side of {min(w, h):g}: a box needs a width and a height above 0")
            continue
        if not (0 <= cx <= 1 and 0 <= cy <= 1 and w <= 1 and h <= 1):
            problems.append(f"{where}: the centre or a side lies outside [0, 1], fractions of the picture "
                            f"(Darknet would clip the box silently): {line.strip()!r}")  # fmt: skip
            continue
        key = (c, cx, cy, w, h)
        if key in seen:
            problems.append(f"{where}: the same box as line {seen[key]}")
            continue
        seen[key] = number
        rows.append(key)
    return np.array(rows, dtype=np.float64).reshape(-1, 5), problems


def read_labels(path: str | os.PathLike, num_classes: int) -> np.ndarray:
    """The (K, 5) rows of a Darknet label file; ValueError naming the file and line of the first problem."""
    rows, problems = label_problems(path, num_classes)
    if problems:
        raise ValueError(problems[0])
    return rows


@dataclass
class LabelledSet:
    """Pictures with their objects: ``images`` paths, ``labels`` (K, 5) per picture, class ``names``."""

    images: list[Path]
    labels: list[np.ndarray]
    names: list[str]

    def __len__(self) -> int:
        return len(self.images)

    def picture(self, index: int) -> np.ndarray:
        return read_image(self.images[index])


def _list_file(path: Path) -> list[Path]:
    """A list file's pictures: each line as Darknet reads it (from the working folder), else
    relative to the list file's own folder."""
    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"cannot read the list file {path}: {error}") from None
    images = []
    for line in filter(None, lines):
        candidate = Path(line)
        if not os.path.exists(line) and not candidate.is_absolute() and (path.parent / candidate).exists():
            candidate = path.parent / candidate
        images.append(candidate)
    if not images:
        raise ValueError(f"the list file {path} names no picture")
    return images


def read_names(path: str | os.PathLike) -> list[str]:
    """The class names of a ``.names`` file, one a line, surrounding spaces and blank lines dropped.

    Darknet's ``get_labels`` reads every line as it is; we also drop the blank lines a text
    editor leaves at the end, and refuse a file with no name at all.
    """
    try:
        with open(path, encoding="utf-8") as file:
            names = [line.strip() for line in file]
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"cannot read the names file {path}: {error}") from None
    names = [name for name in names if name]
    if not names:
        raise ValueError(f"the names file {path} holds no class name (one name a line expected)")
    return names


def list_pictures(source: str | os.PathLike, names: list[str] | None = None,
                  split: str = "valid") -> tuple[list[Path], list[str]]:
    """The pictures and class names of a ``.data`` file (its ``split`` list and its ``names``), a
    list file (one picture a line) or a folder (every picture below it); ``names`` overrides."""
    source = Path(source)
    if not source.exists():
        raise ValueError(f"expected a .data file, a list file or a folder of pictures, got {source} (no such file)")
    if source.is_dir():
        images = sorted(p for p in source.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not images:
            raise ValueError(f"expected pictures ({', '.join(IMAGE_SUFFIXES)}) below the folder {source}, found none")
        if names is None:
            found = sorted(source.glob("*.names"))
            if len(found) != 1:
                raise ValueError(f"expected one .names file in {source} (found {len(found)}), or give the names")
            names = read_names(found[0])
        return images, list(names)
    if source.suffix == ".data":
        options = read_data_file(source)
        if split not in options:
            raise ValueError(f"the .data file {source} has no {split} = line (a list of pictures)")
        listed = _beside(source, options[split])
        if not listed.is_file():
            raise ValueError(f"{source}: its {split} list {options[split]} does not exist")
        images = _list_file(listed)
        if names is None:
            if "names" not in options:
                raise ValueError(f"the .data file {source} has no names = line, and no names were given")
            names = read_names(_beside(source, options["names"]))
        if "classes" in options and options["classes"].strip().isdigit() and int(options["classes"]) != len(names):
            raise ValueError(f"{source} says classes = {options['classes']}, its names file has {len(names)} names")
        return images, list(names)
    if source.is_file():
        if names is None:
            raise ValueError(f"a list file holds no class names: give a .names file with {source}")
        return _list_file(source), list(names)
    raise ValueError(f"expected a .data file, a list file or a folder of pictures, got {source} (no such file)")


def _beside(source: Path, named: str) -> Path:
    """A path a .data file names: as given (Darknet: from the working folder), else beside the file."""
    path = Path(named)
    if not path.exists() and (source.parent / path).exists():
        return source.parent / path
    return path


def label_file(image: Path) -> Path:
    """Darknet's label file for ``image``; ValueError when Darknet's rule finds none (a .bmp)."""
    return Path(_label_path(image))


def _label_path(image: str | os.PathLike) -> str:
    """``label_file`` as a string (a Path costs more than the rest of indexing a picture)."""
    label = darknet_label_path(image)
    if os.path.splitext(os.path.basename(label))[1] != ".txt":  # Darknet would read the picture's name as text
        suffix = os.path.splitext(os.fspath(image))[1]
        raise ValueError(f"{image}: Darknet finds no label file for a {suffix} picture (only .jpg, .png, "
                         ".JPG, .JPEG become .txt); rename it")  # fmt: skip
    return label


def load_labelled_set(source: str | os.PathLike, names: list[str] | None = None, split: str = "valid") -> LabelledSet:
    """Pictures and labels from a ``.data`` file, a list file or a folder (``list_pictures``).

    A picture without a label file has no objects (a background picture); a label file with a
    problem raises ValueError naming its file and line (``check_dataset`` lists them all).
    """
    images, names = list_pictures(source, names, split)
    labels = []
    for image in images:  # os.path rather than Path methods: about 1.5x faster on 10,000 pictures
        if not os.path.isfile(image):
            raise ValueError(f"{image}: no such picture (listed in {source})")
        label = _label_path(image)
        labels.append(read_labels(label, len(names)) if os.path.isfile(label) else np.zeros((0, 5)))
    return LabelledSet(images, labels, names)
