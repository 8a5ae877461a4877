"""Labelled pictures on disk as training batches: decoded when a batch needs them, never all held.

``LabelledImages`` keeps what indexing a set gives (``datasets.load_labelled_set``: the picture
paths and their label rows, all rows in one array) and nothing decoded. ``item(index, size,
draw)`` reads one picture (``images.read_image``: EXIF orientation, RGB), then

* with an ``Augmentation`` (training): Darknet's ``load_data_detection`` (``data.augment``:
  jitter, hue, saturation, exposure, flip, the boxes moved, clipped and dropped), with the
  random numbers of ``numpy.random.default_rng([seed, AUGMENT_STREAM, draw, index])``;
* with ``augmentation=None`` (validation): Darknet's test-time letterbox (``data.letterbox``),
  the boxes mapped into it, no randomness.

``batch(indices, size, draws)`` stacks items as ``data.shapes.collate`` does: images (N, 3, S, S)
float in [0, 1], boxes (N, M, 5) rows class, cx, cy, w, h (fractions of the input) zero-padded,
counts (N,). A batch is a pure function of (seed, indices, size, draws), whoever computes it and
whenever: training passes the indices of a step (``train.image_indices``), the size of the step
(``data.multiscale.multiscale_size``) and, as draws, the samples' global positions in the run
(``(step * world_size + rank) * batch_size + k``), so that a picture seen in two epochs gets two
different augmentations, and a resumed run gets the very same ones.

Two differences from Darknet, both in how pictures are picked and read rather than augmented:
Darknet's ``get_random_paths`` draws every picture of a batch at random, with replacement,
where the indices here are the caller's (training goes through the set in seeded epochs); and
Darknet built without OpenCV reads pictures with stb_image, which ignores a photo's EXIF
orientation (nothings/stb issue 916), where ``read_image`` turns the picture upright first.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from .augment import Augmentation, augment_detection
from .datasets import load_labelled_set
from .images import read_image
from .letterbox import letterbox_image
from .shapes import collate

AUGMENT_STREAM = 0x61756721  # a word of its own in the seed, so no other seeded stream of a run repeats it


class LabelledImages:
    """Pictures (paths) and their (K, 5) label rows class, cx, cy, w, h (fractions), read when needed.

    images: the picture paths; labels: one (K_i, 5) array per picture (K_i may be 0);
    augmentation: Darknet's training augmentation, or None for the test-time letterbox;
    seed: the seed of the augmentation's draws; names: the class names, if known.
    """

    def __init__(self, images: Sequence[str | os.PathLike], labels: Sequence[np.ndarray],
                 augmentation: Augmentation | None = None, seed: int = 0,
                 names: Sequence[str] | None = None):  # fmt: skip
        if len(images) != len(labels):
            raise ValueError(f"expected one label array per picture, got {len(images)} pictures and "
                             f"{len(labels)} label arrays")  # fmt: skip
        self.paths = [os.fspath(path) for path in images]
        rows = [np.asarray(r, dtype=np.float64).reshape(-1, 5) for r in labels]
        self.rows = np.concatenate(rows) if rows else np.zeros((0, 5))  # (sum K_i, 5), every picture's rows
        self.starts = np.concatenate([[0], np.cumsum([len(r) for r in rows], dtype=np.int64)])  # (N + 1,)
        self.augmentation = augmentation
        self.seed = int(seed)
        self.names = list(names) if names is not None else None

    @classmethod
    def from_source(cls, source: str | os.PathLike, names: Sequence[str] | None = None, split: str = "train",
                    augmentation: Augmentation | None = None, seed: int = 0) -> LabelledImages:  # fmt: skip
        """Index a ``.data`` file (its ``split`` list), a list file or a folder (``datasets.load_labelled_set``)."""
        labelled = load_labelled_set(source, list(names) if names is not None else None, split)
        return cls(labelled.images, labelled.labels, augmentation, seed, labelled.names)

    def __len__(self) -> int:
        return len(self.paths)

    def labels(self, index: int) -> np.ndarray:
        """The (K, 5) label rows of picture ``index``, fractions of the picture."""
        return self.rows[self.starts[index] : self.starts[index + 1]]

    def with_augmentation(self, augmentation: Augmentation | None) -> LabelledImages:
        """The same pictures with another augmentation (e.g. None for a letterboxed validation copy)."""
        copy = object.__new__(LabelledImages)
        copy.__dict__.update(self.__dict__)
        copy.augmentation = augmentation
        return copy

    def item(self, index: int, size: int, draw: int = 0) -> tuple[Tensor, Tensor]:
        """Picture ``index`` as a (3, size, size) float tensor in [0, 1] and its (M, 5) float32 rows.

        ``draw`` picks the random numbers (ignored without augmentation); the same (seed, draw,
        index) always gives the same picture. A file that cannot be decoded raises ValueError
        naming it.
        """
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
            raise ValueError(f"expected the input size as a positive whole number of pixels, got {size!r}")
        if not 0 <= index < len(self.paths):
            raise IndexError(f"picture {index} of a set of {len(self.paths)}")
        pixels = read_image(self.paths[index])  # (h, w, 3) uint8, upright RGB
        rows = self.labels(index)
        if self.augmentation is None:
            picture = torch.from_numpy(pixels).permute(2, 0, 1).float() / 255  # (3, h, w), load_image: value / 255
            image, box = letterbox_image(picture, size, size)
            moved = rows.copy()
            moved[:, 1] = (rows[:, 1] * box.new_w + box.pad_left) / box.network_w  # centres into the input
            moved[:, 2] = (rows[:, 2] * box.new_h + box.pad_top) / box.network_h
            moved[:, 3] = rows[:, 3] * box.new_w / box.network_w  # sides scale with the picture
            moved[:, 4] = rows[:, 4] * box.new_h / box.network_h
            return image, torch.from_numpy(moved.astype(np.float32))
        picture = pixels.transpose(2, 0, 1).astype(np.float32) / np.float32(255)  # (3, h, w)
        rng = np.random.default_rng([self.seed, AUGMENT_STREAM, int(draw), int(index)])
        canvas, moved = augment_detection(picture, rows, size, self.augmentation, rng)
        return torch.from_numpy(canvas), torch.from_numpy(moved.astype(np.float32))

    def batch(self, indices: Sequence[int], size: int,
              draws: Sequence[int] | None = None) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
        """Pictures ``indices`` collated (``data.shapes.collate``): images (N, 3, size, size), boxes
        (N, M, 5) zero-padded, counts (N,). ``draws[k]`` is the draw of the k-th picture (training:
        its global sample position); None draws 0 for all (enough for validation)."""
        indices = [int(i) for i in indices]
        draws = [0] * len(indices) if draws is None else [int(d) for d in draws]
        if len(draws) != len(indices):
            raise ValueError(f"expected one draw per picture, got {len(draws)} draws for {len(indices)} pictures")
        return collate([self.item(i, size, d) for i, d in zip(indices, draws, strict=True)])

    def box_sides(self) -> np.ndarray:
        """(B, 2) width and height of every labelled box, fractions of its picture (for k-means anchors)."""
        return self.rows[:, 3:5].copy()
