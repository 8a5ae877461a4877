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
``--names`` or the folder's one ``.names`` file. The checks a full dataset needs before a
training run (duplicates, boxes outside the picture, images without labels ...) are the
own-data chapter's; here a label file must simply be readable as Darknet would read it, and
a row that Darknet could not use is named with its file and line.
"""

from __future__ import annotations

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


def read_labels(path: str | os.PathLike, num_classes: int) -> np.ndarray:
    """The (K, 5) rows ``class, cx, cy, w, h`` of a Darknet label file (fractions of the picture).

    Raises ValueError naming the file and line of a row without five numbers, a class outside
    0 .. num_classes - 1, a centre outside [0, 1] or a side not in (0, 1].
    """
    rows = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"cannot read the label file {path}: {error}") from None
    for number, line in enumerate(lines, 1):
        fields = line.split()
        if not fields:
            continue
        where = f"{path}, line {number}"
        try:
            if len(fields) != 5:
                raise ValueError
            c, cx, cy, w, h = int(fields[0]), *(float(v) for v in fields[1:])
        except ValueError:
            expected = "expected 'class cx cy w h' (an integer and four numbers)"
            raise ValueError(f"{where}: {expected}, got {line!r}") from None
        if not 0 <= c < num_classes:
            raise ValueError(f"{where}: class {c} is not one of the {num_classes} names (0 to {num_classes - 1})")
        if not (0 <= cx <= 1 and 0 <= cy <= 1 and 0 < w <= 1 and 0 < h <= 1):
            raise ValueError(f"{where}: expected a centre in [0, 1] and sides in (0, 1] (fractions), got {line!r}")
        rows.append((c, cx, cy, w, h))
    return np.array(rows, dtype=np.float64).reshape(-1, 5)


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
        if not candidate.exists() and not candidate.is_absolute() and (path.parent / candidate).exists():
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


def load_labelled_set(source: str | os.PathLike, names: list[str] | None = None, split: str = "valid") -> LabelledSet:
    """Pictures and labels from a ``.data`` file (its ``split`` list and its ``names``), a list
    file (one picture a line), or a folder (every picture below it); ``names`` overrides."""
    source = Path(source)
    if source.is_dir():
        images = sorted(p for p in source.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not images:
            raise ValueError(f"expected pictures ({', '.join(IMAGE_SUFFIXES)}) below the folder {source}, found none")
        if names is None:
            found = sorted(source.glob("*.names"))
            if len(found) != 1:
                raise ValueError(f"expected one .names file in {source} (found {len(found)}), or give the names")
            names = read_names(found[0])
    elif source.suffix == ".data":
        options = read_data_file(source)
        if split not in options:
            raise ValueError(f"the .data file {source} has no {split} = line (a list of pictures)")
        listed = Path(options[split])
        if not listed.exists() and (source.parent / listed).exists():
            listed = source.parent / listed
        images = _list_file(listed)
        if names is None:
            if "names" not in options:
                raise ValueError(f"the .data file {source} has no names = line, and no names were given")
            names_file = Path(options["names"])
            if not names_file.exists() and (source.parent / names_file).exists():
                names_file = source.parent / names_file
            names = read_names(names_file)
        if "classes" in options and options["classes"].strip().isdigit() and int(options["classes"]) != len(names):
            raise ValueError(f"{source} says classes = {options['classes']}, its names file has {len(names)} names")
    elif source.is_file():
        images = _list_file(source)
        if names is None:
            raise ValueError(f"a list file holds no class names: give a .names file with {source}")
    else:
        raise ValueError(f"expected a .data file, a list file or a folder of pictures, got {source} (no such file)")
    labels = []
    for image in images:
        if not image.is_file():
            raise ValueError(f"{image}: no such picture (listed in {source})")
        label = Path(darknet_label_path(image))
        if label == image:
            raise ValueError(f"{image}: Darknet finds no label file for a {image.suffix} picture (only .jpg, .png, "
                             ".JPG, .JPEG become .txt); rename it")  # fmt: skip
        if not label.is_file():
            raise ValueError(f"{image}: its label file {label} does not exist (Darknet's rule: images -> labels, "
                             "extension -> .txt)")  # fmt: skip
        labels.append(read_labels(label, len(names)))
    return LabelledSet(images, labels, list(names))
