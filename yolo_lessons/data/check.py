"""Catch bad labels before a run, not an hour into it: ``python -m yolo_lessons.data check my.data``.

``check_dataset`` reads a labelled set in Darknet's format (a ``.data`` file and its list, a list
file, or a folder; ``data.datasets``) the way training will, and lists every problem with its
file and line instead of stopping at the first:

* errors: a label row that is not an integer and four numbers, a class outside the names, a
  centre outside [0, 1] or a side outside (0, 1] (Darknet would clip such a box silently), a
  side of zero or less, the same row twice, a picture that cannot be decoded or is missing from
  its list, a ``.bmp`` or ``.jpeg`` picture that Darknet's label-path rule gives no label file,
  an empty list, a list or names file that does not exist;
* counted, not errors: a picture without a label file (a background picture, no objects, as
  AlexeyAB's Darknet reads it; pjreddie's ``read_boxes`` stops the run with "Couldn't open file")
  and, in a folder, a label file without a picture; but a set where *no* picture has a label file
  is an error (the label-path rule has gone astray, e.g. an ``images`` folder above the set).

The report ends with the objects per class and a one-line verdict.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .datasets import LabelledSet, label_file, label_problems, list_pictures


@dataclass
class DatasetReport:
    """What ``check_dataset`` found: the problems (file and line in each), and the counts."""

    source: str
    names: list[str]
    pictures: int = 0
    errors: list[str] = field(default_factory=list)
    without_labels: list[Path] = field(default_factory=list)
    labels_without_pictures: list[Path] = field(default_factory=list)
    objects: Counter = field(default_factory=Counter)
    unreadable: bool = False  # the source itself could not be listed: nothing else was checked

    @property
    def ok(self) -> bool:
        return not self.errors

    def verdict(self) -> str:
        if self.ok:
            return (f"ok: {self.pictures} pictures, {sum(self.objects.values())} objects, "
                    f"{len(self.without_labels)} pictures without labels")  # fmt: skip
        return f"{len(self.errors)} problems in {self.source}: fix them before training"

    def lines(self) -> list[str]:
        """The report as printed: each error, the counts, then the verdict."""
        out = [f"error: {e}" for e in self.errors]
        if self.without_labels:
            out.append(f"{len(self.without_labels)} picture(s) have no label file, read as background pictures "
                       f"(no objects; pjreddie's Darknet would stop there: read_boxes, \"Couldn't open file\"), "
                       f"e.g. {self.without_labels[0]}")  # fmt: skip
        if self.labels_without_pictures:
            out.append(f"{len(self.labels_without_pictures)} label file(s) have no picture, e.g. "
                       f"{self.labels_without_pictures[0]}")  # fmt: skip
        width = max((len(n) for n in self.names), default=5)
        out += [f"{name:>{width}}: {self.objects.get(c, 0)} objects" for c, name in enumerate(self.names)]
        return [*out, self.verdict()]


def _decodes(path: Path) -> str:
    """'' if ``path`` is a picture PIL can decode, else why not."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.verify()  # reads the whole file's structure without decoding all pixels
        return ""
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        return str(error) or type(error).__name__


def check_picture(picture: Path, num_classes: int) -> tuple[Path | None, np.ndarray, list[str]]:
    """One picture as ``check_dataset`` checks it: (its label file, None when it has none; its usable
    (K, 5) rows; every problem, each naming its file and line). A picture with a problem is one
    that ``--skip-bad`` leaves out."""
    if not picture.is_file():
        return None, np.zeros((0, 5)), [f"{picture}: no such picture"]
    problems = []
    why = _decodes(picture)
    if why:
        problems.append(f"{picture}: cannot be decoded as a picture ({why})")
    try:
        label = label_file(picture)
    except ValueError as error:
        return None, np.zeros((0, 5)), [*problems, str(error)]
    if not label.is_file():
        return None, np.zeros((0, 5)), problems
    rows, label_errors = label_problems(label, num_classes)
    return label, rows, problems + label_errors


def check_dataset(source: str | os.PathLike, names: list[str] | None = None, split: str = "valid") -> DatasetReport:
    """Every problem of a labelled set, as ``DatasetReport`` (see the module docstring)."""
    report, _ = _check(source, names, split)
    return report


def usable_pictures(source: str | os.PathLike, names: list[str] | None = None,
                    split: str = "train") -> tuple[LabelledSet, DatasetReport]:
    """The pictures of a set that have no problem, with their rows, and the whole set's report:
    what ``python -m yolo_lessons.train --data ... --skip-bad`` trains on. A source that cannot be
    listed at all gives an empty set (the report says why)."""
    report, good = _check(source, names, split)
    return LabelledSet([p for p, _ in good], [rows for _, rows in good], report.names), report


def _check(source, names, split) -> tuple[DatasetReport, list[tuple[Path, np.ndarray]]]:
    try:
        pictures, names = list_pictures(source, names, split)
    except ValueError as error:
        return DatasetReport(str(source), list(names or []), errors=[str(error)], unreadable=True), []
    report = DatasetReport(str(source), names, pictures=len(pictures))
    labels_seen, good = set(), []
    for picture in pictures:
        label, rows, problems = check_picture(picture, len(names))
        if problems and not picture.is_file():
            problems = [f"{picture}: no such picture (listed in {source})"]
        report.errors += problems
        if label is not None:
            labels_seen.add(label.resolve())
            report.objects.update(int(c) for c in rows[:, 0])
        elif not problems:
            report.without_labels.append(picture)
        if not problems:
            good.append((picture, rows))
    if Path(source).is_dir():
        for label in sorted(Path(source).rglob("*.txt")):
            if "labels" in label.parts and label.resolve() not in labels_seen:
                report.labels_without_pictures.append(label)
    if pictures and len(report.without_labels) == len(pictures):
        example = pictures[0]
        report.errors.append(
            f"no picture has a label file: Darknet looks for {label_file(example)} for {example} (it replaces "
            "the first 'images', 'JPEGImages' or 'raw' in the whole path by 'labels'; a folder above the "
            "pictures with such a name sends every label path astray)"
        )
        good.clear()
    return report, good
