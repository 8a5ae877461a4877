"""Synthetic detection data: coloured shapes on textured backgrounds, with their boxes.

A detector needs images and boxes. Real datasets (VOC, COCO) need downloads, licences,
a parser per annotation format and a GPU to learn from; here every image is drawn on
the fly with numpy, so a chapter can train on a laptop CPU in minutes.

Each image holds 1..``max_objects`` shapes (circle, square, triangle by default: the
class index of a box is the shape's position in ``classes``) of varied size, colour and
aspect, on a background made of a colour gradient, soft blotches, a faint stripe
pattern and pixel noise, so that "find the object" is not a matter of finding the one
non-black pixel. Shapes may run off the border; their boxes are then clipped.

Determinism: image ``index`` of ``seed`` is drawn from ``np.random.default_rng([seed,
index])`` alone, so it is the same on every run and machine, in any order, in any
worker. A held-out set is simply another seed.

Boxes are float32 rows ``(class, cx, cy, w, h)``, all four coordinates fractions of the
image side (Darknet's label format, ``data.c`` ``fill_truth_detection``); the box is the
tight extent of the drawn shape's pixels, clipped to the image.

``draw_shapes`` is ``make_image`` with the colour of each shape as a third output, and an
optional palette to draw the colours from (the class hierarchy of ``shape_tree`` names them);
without a palette its image and boxes are ``make_image``'s, pixel for pixel.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

SHAPE_CLASSES = ("circle", "square", "triangle")

MULTIPLE = 32  # YOLOv2 and YOLOv3 downsample by 32, so an input side must be a multiple of it

# Defaults of the drawing, fractions of the image side unless stated.
MIN_SIDE = 0.12  # smallest box side
MAX_SIDE = 0.6  # largest box side
MAX_ASPECT = 2.0  # width / height lies in [1 / MAX_ASPECT, MAX_ASPECT]
MAX_OVERLAP = 0.3  # a new shape is re-placed if its box overlaps an earlier box by more IoU
MIN_CONTRAST = 0.35  # least RGB distance between a shape's colour and the background under it
PALETTE_JITTER = 0.06  # draw_shapes with a palette: each channel of a palette colour moves by up to this
_PLACEMENT_TRIES = 10


def check_image_size(size: int) -> None:
    """Raise ValueError unless ``size`` is a positive multiple of 32 (the network's stride)."""
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size <= 0 or size % MULTIPLE:
        raise ValueError(f"expected an image size that is a positive multiple of {MULTIPLE}, got {size!r}")


def _check_positive(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"expected a positive integer {name}, got {value!r}")


def _class_names(classes: Sequence[str]) -> tuple[str, ...]:
    if isinstance(classes, str):
        classes = (classes,)
    names = tuple(classes)
    unknown = [c for c in names if c not in SHAPE_CLASSES]
    if unknown or not names:
        raise ValueError(f"expected class names among {SHAPE_CLASSES}, got {names!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"expected distinct class names, got {names!r}")
    return names


def _check_sides(min_side: float, max_side: float, max_aspect: float) -> None:
    if not 0 < min_side <= max_side <= 1:
        raise ValueError(f"expected 0 < min_side <= max_side <= 1 (fractions of the image), got {min_side}, {max_side}")
    if max_aspect < 1:
        raise ValueError(f"expected max_aspect >= 1 (width / height bound), got {max_aspect}")


def _background(rng: np.random.Generator, xs: np.ndarray) -> np.ndarray:
    """(3, S, S) float32 texture: gradient + blotches + stripes; ``xs`` are pixel centres in [0, 1]."""
    x, y = xs[None, :], xs[:, None]  # (1, S) columns, (S, 1) rows
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(angle) * x + np.sin(angle) * y  # (S, S) linear ramp along a random direction
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    start, end = rng.uniform(0.0, 1.0, (2, 3, 1, 1)).astype(np.float32)
    image = start + (end - start) * ramp.astype(np.float32)  # (3, S, S)
    for _ in range(rng.integers(2, 5)):  # soft blotches: separable Gaussians, so two 1-D exps
        cx, cy = rng.uniform(0, 1, 2)
        sigma = rng.uniform(0.08, 0.3)
        weight = np.outer(np.exp(-((xs - cy) ** 2) / (2 * sigma**2)), np.exp(-((xs - cx) ** 2) / (2 * sigma**2)))
        weight = (rng.uniform(0.4, 0.9) * weight).astype(np.float32)
        colour = rng.uniform(0, 1, (3, 1, 1)).astype(np.float32)
        image += (colour - image) * weight
    freq = rng.uniform(4, 16) * 2 * np.pi  # faint stripes in another random direction
    angle = rng.uniform(0, np.pi)
    ax, ay = freq * np.cos(angle) * xs, freq * np.sin(angle) * xs + rng.uniform(0, 2 * np.pi)
    stripes = np.outer(np.cos(ay), np.sin(ax)) + np.outer(np.sin(ay), np.cos(ax))  # sin(ax + ay), separable
    image += (rng.uniform(0.02, 0.08) * stripes).astype(np.float32)
    return image


def _shape_mask(name: str, u: np.ndarray, v: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask of a shape filling the box, from ``u`` (1, w) and ``v`` (h, 1) in [-1, 1]
    across the box (the box's own coordinates)."""
    if name == "circle":  # an ellipse touching the four sides of its box
        return u**2 + v**2 <= 1.0
    if name == "square":  # a rectangle filling its box
        return (np.abs(u) <= 1.0) & (np.abs(v) <= 1.0)
    # triangle: apex at the middle of one side of the box, base along the opposite side
    along, across = (v, u) if rng.random() < 0.5 else (u, v)
    if rng.random() < 0.5:
        along = -along
    return (np.abs(along) <= 1.0) & (np.abs(across) <= (along + 1.0) / 2.0)


def _iou(box: np.ndarray, others: list[np.ndarray]) -> float:
    """Largest IoU of one (x0, y0, x1, y1) box with a list of others (0 if none)."""
    best = 0.0
    for o in others:
        iw = min(box[2], o[2]) - max(box[0], o[0])
        ih = min(box[3], o[3]) - max(box[1], o[1])
        if iw > 0 and ih > 0:
            inter = iw * ih
            union = (box[2] - box[0]) * (box[3] - box[1]) + (o[2] - o[0]) * (o[3] - o[1]) - inter
            best = max(best, inter / union)
    return best


def make_image(
    index: int,
    seed: int = 0,
    size: int = 96,
    *,
    classes: Sequence[str] = SHAPE_CLASSES,
    max_objects: int = 4,
    min_side: float = MIN_SIDE,
    max_side: float = MAX_SIDE,
    max_aspect: float = MAX_ASPECT,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw image ``index`` of ``seed``: (image, boxes).

    image: (3, size, size) float32 RGB in [0, 1].
    boxes: (M, 5) float32 rows (class, cx, cy, w, h), 1 <= M <= max_objects; the class is
    the shape's position in ``classes``; cx, cy, w, h are fractions of the image side,
    with 0 < w, h <= 1 and the centre inside [0, 1] (the box is clipped to the image).
    Box sides are drawn log-uniformly between ``min_side`` and ``max_side`` (fractions of
    the image), with width / height up to ``max_aspect`` either way.
    """
    image, boxes, _ = draw_shapes(
        index, seed, size, classes=classes, max_objects=max_objects, min_side=min_side, max_side=max_side,
        max_aspect=max_aspect,
    )
    return image, boxes


def draw_shapes(
    index: int,
    seed: int = 0,
    size: int = 96,
    *,
    classes: Sequence[str] = SHAPE_CLASSES,
    max_objects: int = 4,
    min_side: float = MIN_SIDE,
    max_side: float = MAX_SIDE,
    max_aspect: float = MAX_ASPECT,
    palette: Sequence[Sequence[float]] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``make_image`` that also says each shape's colour: (image, boxes, colours).

    Without a ``palette`` the image and boxes are exactly ``make_image``'s, and ``colours`` is
    (M,) int64 of -1: every colour is drawn at random from the RGB cube. With a palette, a
    sequence of RGB triples in [0, 1], each shape takes palette entry k (drawn uniformly),
    moved by up to ``PALETTE_JITTER`` per channel, and ``colours[m]`` is that k. A palette
    colour is kept even where it is close to the background beneath (the random colours are
    re-drawn there), so an object now and then stands out less.
    """
    check_image_size(size)
    _check_positive("max_objects", max_objects)
    names = _class_names(classes)
    _check_sides(min_side, max_side, max_aspect)
    if palette is not None:
        palette = np.asarray(palette, dtype=np.float32)
        shaped = palette.ndim == 2 and palette.shape[1] == 3 and len(palette) > 0
        if not shaped or not ((palette >= 0) & (palette <= 1)).all():
            raise ValueError(f"expected a palette of RGB triples in [0, 1], got {palette.tolist()!r}")
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
        raise ValueError(f"expected a non-negative integer index, got {index!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"expected a non-negative integer seed, got {seed!r}")

    rng = np.random.default_rng([int(seed), int(index)])
    xs = (np.arange(size, dtype=np.float32) + 0.5) / size  # pixel centres, fractions of the image
    image = _background(rng, xs)
    least = max(min_side, 2.0 / size)  # at least two pixels a side, or a shape may vanish
    placed: list[np.ndarray] = []  # (x0, y0, x1, y1) in pixels, clipped
    rows: list[list[float]] = []
    colours: list[int] = []  # palette entry of each shape, -1 without a palette
    for _ in range(rng.integers(1, max_objects + 1)):
        label = int(rng.integers(len(names)))
        for _ in range(_PLACEMENT_TRIES):
            side = np.exp(rng.uniform(np.log(least), np.log(max(max_side, least))))
            aspect = np.exp(rng.uniform(-np.log(max_aspect), np.log(max_aspect)))  # width / height
            w = float(np.clip(side * np.sqrt(aspect), least, max(max_side, least))) * size  # pixels
            h = float(np.clip(side / np.sqrt(aspect), least, max(max_side, least))) * size
            cx, cy = rng.uniform(0, size, 2)  # the centre anywhere: shapes may run off the border
            x0, x1 = max(0, int(np.floor(cx - w / 2))), min(size, int(np.ceil(cx + w / 2)))
            y0, y1 = max(0, int(np.floor(cy - h / 2))), min(size, int(np.ceil(cy + h / 2)))
            u = ((np.arange(x0, x1) + 0.5 - cx) / (w / 2))[None, :]  # (1, x1 - x0), -1..1 across
            v = ((np.arange(y0, y1) + 0.5 - cy) / (h / 2))[:, None]  # (y1 - y0, 1)
            mask = _shape_mask(names[label], u, v, rng)
            cols, rws = np.flatnonzero(mask.any(0)), np.flatnonzero(mask.any(1))
            if cols.size == 0 or rws.size == 0:
                continue
            box = np.array([x0 + cols[0], y0 + rws[0], x0 + cols[-1] + 1, y0 + rws[-1] + 1], dtype=np.float64)
            if _iou(box, placed) <= MAX_OVERLAP:
                break
        else:
            continue  # no free place found: fewer objects in this image
        window = image[:, y0:y1, x0:x1]  # a view: writing into it draws on the image
        if palette is not None:
            colour_index = int(rng.integers(len(palette)))
            jitter = rng.uniform(-PALETTE_JITTER, PALETTE_JITTER, 3).astype(np.float32)
            colour = np.clip(palette[colour_index] + jitter, 0.0, 1.0)
        else:
            colour_index = -1
            under = window[:, mask].mean(axis=1)
            colour = rng.uniform(0, 1, 3).astype(np.float32)
            for _ in range(4):  # re-draw a colour too close to the background beneath
                if np.linalg.norm(colour - under) >= MIN_CONTRAST:
                    break
                colour = rng.uniform(0, 1, 3).astype(np.float32)
            else:
                colour = np.where(under > 0.5, 0.0, 1.0).astype(np.float32)  # the opposite corner of the cube
        shade = 1.0 + rng.uniform(-0.15, 0.15) * v  # a little shading across the shape
        painted = np.broadcast_to(colour[:, None, None] * shade.astype(np.float32), window.shape)  # (3, h, w)
        window[:, mask] = painted[:, mask]
        placed.append(box)
        x0b, y0b, x1b, y1b = box / size
        rows.append([label, (x0b + x1b) / 2, (y0b + y1b) / 2, x1b - x0b, y1b - y0b])
        colours.append(colour_index)
    image += rng.standard_normal(image.shape, dtype=np.float32) * np.float32(rng.uniform(0.01, 0.05))
    np.clip(image, 0.0, 1.0, out=image)
    return image, np.asarray(rows, dtype=np.float32).reshape(-1, 5), np.asarray(colours, dtype=np.int64)


class ShapesDataset(Dataset):
    """``length`` synthetic images of ``size`` x ``size``: item i is ``make_image(i, seed, ...)``
    as tensors, image (3, size, size) float32 in [0, 1] and boxes (M, 5) float32."""

    def __init__(
        self,
        length: int,
        size: int = 96,
        seed: int = 0,
        classes: Sequence[str] = SHAPE_CLASSES,
        *,
        max_objects: int = 4,
        min_side: float = MIN_SIDE,
        max_side: float = MAX_SIDE,
        max_aspect: float = MAX_ASPECT,
    ):
        _check_positive("length", length)
        check_image_size(size)
        _check_positive("max_objects", max_objects)
        _check_sides(min_side, max_side, max_aspect)
        self.length, self.size, self.seed = int(length), int(size), int(seed)
        self.classes = _class_names(classes)
        self.options = dict(max_objects=max_objects, min_side=min_side, max_side=max_side, max_aspect=max_aspect)
        make_image(0, self.seed, self.size, classes=self.classes, **self.options)  # a bad seed fails here

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        if not -self.length <= index < self.length:
            raise IndexError(f"index {index} out of range for a dataset of {self.length} images")
        image, boxes = make_image(index % self.length, self.seed, self.size, classes=self.classes, **self.options)
        return torch.from_numpy(image), torch.from_numpy(boxes)


def collate(batch: Sequence[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor, Tensor]:
    """Stack (image, boxes) pairs: images (N, 3, S, S), boxes (N, M, 5) zero-padded to the
    largest count M in the batch, counts (N,) int64 (how many rows of each image are real)."""
    if len(batch) == 0:
        raise ValueError("expected a non-empty batch of (image, boxes) pairs, got an empty one")
    images = torch.stack([torch.as_tensor(image) for image, _ in batch])
    counts = torch.tensor([len(boxes) for _, boxes in batch], dtype=torch.int64)
    padded = torch.zeros(len(batch), max(int(counts.max()), 1), 5, dtype=torch.float32)
    for row, (_, boxes) in enumerate(batch):
        padded[row, : len(boxes)] = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 5)
    return images, padded, counts
