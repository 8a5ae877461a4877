"""The book's shapes written to disk as a labelled set in Darknet's layout, for chapter 11 and the tests.

``write_shapes_set(root, train=200, valid=50)`` draws pictures with ``data.shapes.make_image``
(the training ones of ``seed``, the held-out ones of ``seed + 1000``, as the training command
separates them) and writes what a Darknet user would have for their own pictures::

    root/shapes.data              classes = 3, train = ..., valid = ..., names = ..., backup = backup/
    root/shapes.names             circle, square, triangle: one class a line
    root/train.txt, valid.txt     one picture path a line (absolute paths)
    root/images/train/000000.png  the pictures (8-bit PNG)
    root/labels/train/000000.txt  one object a row: class cx cy w h, fractions of the picture

Darknet finds ``labels/train/000000.txt`` from ``images/train/000000.png`` by replacing
``images`` with ``labels`` and the extension with ``.txt`` (``data.datasets.darknet_label_path``).
The list files hold absolute paths, so the set works from any folder. Nothing is overwritten: a
``root`` that exists and is not empty is refused.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .datasets import darknet_label_path
from .shapes import MAX_SIDE, MIN_SIDE, SHAPE_CLASSES, make_image

HELD_OUT_SEED_OFFSET = 1000  # the held-out pictures are drawn from seed + 1000 (train.py: eval_seed 1000)


def write_shapes_set(root: str | os.PathLike, train: int = 200, valid: int = 50, seed: int = 0, size: int = 96,
                     min_side: float = MIN_SIDE, max_side: float = MAX_SIDE) -> Path:  # fmt: skip
    """Write a labelled set of ``train`` + ``valid`` shapes pictures under ``root``; return its ``.data`` file."""
    from PIL import Image

    root = Path(root)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise ValueError(f"expected a new or empty folder for the set, {root} already holds files")
    probe = root.resolve() / "images" / "train" / "000000.png"
    if Path(darknet_label_path(probe)) != probe.parent.parent.parent / "labels" / "train" / "000000.txt":
        raise ValueError(f"Darknet would not find the labels of a set in {root}: its label path for {probe} is "
                         f"{darknet_label_path(probe)} (the first 'images', 'JPEGImages' or 'raw' of the whole "
                         "path becomes 'labels'); choose a folder without those words")  # fmt: skip
    for count, name in ((train, "train"), (valid, "valid")):
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"expected a non-negative whole number of {name} pictures, got {count!r}")
    lists = {}
    for split, count, split_seed in (("train", train, seed), ("valid", valid, seed + HELD_OUT_SEED_OFFSET)):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        paths = []
        for index in range(count):
            image, boxes = make_image(index, split_seed, size, min_side=min_side, max_side=max_side)
            picture = root / "images" / split / f"{index:06d}.png"
            pixels = np.round(image.transpose(1, 2, 0) * 255).astype(np.uint8)  # (S, S, 3) 8-bit
            Image.fromarray(pixels).save(picture)
            rows = "".join(f"{int(c)} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n" for c, cx, cy, w, h in boxes)
            (root / "labels" / split / f"{index:06d}.txt").write_text(rows, encoding="utf-8")
            paths.append(str(picture.resolve()))
        lists[split] = root / f"{split}.txt"
        lists[split].write_text("".join(p + "\n" for p in paths), encoding="utf-8")
    (root / "shapes.names").write_text("".join(n + "\n" for n in SHAPE_CLASSES), encoding="utf-8")
    data = root / "shapes.data"
    data.write_text(
        f"classes = {len(SHAPE_CLASSES)}\n"
        f"train = {lists['train'].resolve()}\n"
        f"valid = {lists['valid'].resolve()}\n"
        f"names = {(root / 'shapes.names').resolve()}\n"
        "backup = backup/\n",
        encoding="utf-8",
    )
    return data
