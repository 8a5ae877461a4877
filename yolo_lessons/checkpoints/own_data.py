"""Checks behind the checkpoint cells of chapter 11: a labelled set's files and Darknet's box moves.

* ``check_label_path``: ``label_path(image_path)``, where Darknet looks for a picture's labels
  (``fill_truth_detection``'s ``find_replace`` calls: the first ``images``, ``JPEGImages`` and
  ``raw`` become ``labels``, then the first ``.jpg``, ``.png``, ``.JPG`` or ``.JPEG`` becomes
  ``.txt``), compared with ``data.datasets.darknet_label_path``;
* ``check_flip_rows``: ``flip_rows(rows)``, the label rows ``class cx cy w h`` of a picture
  mirrored left to right as ``load_data_detection``'s flip moves them;
* ``check_place_rows``: ``place_rows(rows, nw, nh, dx, dy, size)``, the rows of a picture placed
  as an ``nw x nh`` rectangle at ``(dx, dy)`` on a ``size x size`` canvas (the jitter's
  placement), compared with ``data.augment.move_boxes``.

Each check runs the learner's function on every case and compares with the reference first;
only when an answer differs does it try the known mistakes, and it names one only when that
mistake gives every answer the learner's function gave.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import torch

from ..data.augment import MIN_SIDE, AugmentDraws, Placement, move_boxes
from ..data.datasets import darknet_label_path
from .common import CheckpointError, call, checkpoint, expect, passed


def _named(outcomes: list, mistakes, model_outcome: Callable) -> str | None:
    """The message of the first mistake that gives every one of ``outcomes``, else None."""
    for mistake, why in mistakes:
        try:
            if all(model_outcome(mistake, n) == got for n, got in enumerate(outcomes)):
                return why
        except Exception:  # a mistake that cannot run on a case explains nothing
            continue
    return None


# --- Exercise 1: the label-path rule ---------------------------------------------------

LABEL_PATH_CASES: tuple[str, ...] = (
    "data/images/cat.jpg",  # -> data/labels/cat.txt
    "shapes/images/train/000000.png",  # the chapter's own set
    "VOCdevkit/VOC2007/JPEGImages/000005.jpg",  # VOC: JPEGImages -> labels
    "photos/raw/IMG_0001.JPG",  # raw -> labels, .JPG -> .txt
    "set/images/scan.JPEG",
    "set/images/scan.jpeg",  # no rule for .jpeg: the name keeps its extension
    "set/images/old.bmp",  # nor for .bmp
    "/home/me/Images/p.png",  # find_replace is case-sensitive: Images stays
    "images/images/a.jpg",  # the first occurrence only: labels/images/a.txt
    "trainimages/c.jpg",  # text, not folder names: trainlabels/c.txt
    "drawings/images/b.png",  # 'raw' inside 'drawings': dlabelsings/labels/b.txt
    "data/JPEGImages/images/x.jpg",  # both rules: data/labels/labels/x.txt
    "holiday.jpg.png",  # .jpg first, then .png: holiday.txt.txt
)

_FOLDERS = (("images", "labels"), ("JPEGImages", "labels"), ("raw", "labels"))
_EXTENSIONS = ((".jpg", ".txt"), (".png", ".txt"), (".JPG", ".txt"), (".JPEG", ".txt"))


def _replace_each(path: str, pairs, count: int = 1) -> str:
    for old, new in pairs:
        path = path.replace(old, new, count)
    return path


def _folder_names(path: str, every: bool = False) -> str:
    """Whole folder names replaced instead of text (the first of each, or ``every`` one)."""
    parts = path.split("/")
    for old, new in _FOLDERS:
        while old in parts[:-1]:
            parts[parts.index(old)] = new
            if not every:
                break
    return _replace_each("/".join(parts), _EXTENSIONS)


def _any_extension(path: str) -> str:
    return os.path.splitext(_replace_each(path, _FOLDERS))[0] + ".txt"


def _ignoring_case(path: str) -> str:
    for old, new in (*_FOLDERS, *_EXTENSIONS):
        at = path.lower().find(old.lower())
        if at >= 0:
            path = path[:at] + new + path[at + len(old) :]
    return path


LABEL_PATH_MISTAKES: tuple[tuple[Callable[[str], str], str], ...] = (
    (lambda p: _replace_each(p, (*_FOLDERS, *_EXTENSIONS), count=-1),
     "Darknet's find_replace replaces the first occurrence only (str.replace(old, new, 1))"),
    *((lambda p, every=every: _folder_names(p, every),
       "find_replace works on the text, not on folder names: 'trainimages' becomes 'trainlabels', and the "
       "'raw' inside 'drawings' is replaced too") for every in (False, True)),
    (_any_extension, "only .jpg, .png, .JPG and .JPEG become .txt: a .jpeg or .bmp picture keeps its "
     "name (Darknet would then read the picture itself as its labels)"),
    (_ignoring_case, "find_replace is case-sensitive: 'Images' is not 'images', and .PNG or .jpeg are "
     "left alone"),
    (lambda p: _replace_each(p, (*_FOLDERS[:2], *_EXTENSIONS)),
     "fill_truth_detection also turns the first 'raw' into 'labels'"),
    (lambda p: _replace_each(p, (_FOLDERS[0], _FOLDERS[2], *_EXTENSIONS)),
     "VOC's 'JPEGImages' becomes 'labels' too"),
    (lambda p: _replace_each(p, (_FOLDERS[0], *_EXTENSIONS)),
     "after 'images', the first 'JPEGImages' and the first 'raw' become 'labels' too"),
    (lambda p: _replace_each(p, (*_FOLDERS, _EXTENSIONS[0], _EXTENSIONS[2])),
     "the first '.png' becomes '.txt' too, and '.JPEG'"),
)  # fmt: skip


@checkpoint
def check_label_path(label_path: Callable) -> None:
    outcomes = []
    for path in LABEL_PATH_CASES:
        got = call(label_path, path)
        if isinstance(got, os.PathLike):
            raise CheckpointError(f"label_path({path!r}) returned a {type(got).__name__}: return the path as a "
                                  "str, as Darknet builds a string")  # fmt: skip
        expect(isinstance(got, str), f"label_path({path!r}): expected a str, got {got!r}")
        outcomes.append(got)
    wrong = [n for n, got in enumerate(outcomes) if got != darknet_label_path(LABEL_PATH_CASES[n])]
    if not wrong:
        passed(f"Darknet's label path, {len(LABEL_PATH_CASES)} pictures (VOC, raw, .jpeg, first occurrence only,\n"
               "  text not folders) ... ok")  # fmt: skip
        return
    case = LABEL_PATH_CASES[wrong[0]]
    shown = f"label_path({case!r}): expected {darknet_label_path(case)!r}, got {outcomes[wrong[0]]!r}"
    why = _named(outcomes, LABEL_PATH_MISTAKES, lambda mistake, k: mistake(LABEL_PATH_CASES[k]))
    raise CheckpointError(f"{shown}: {why}" if why else shown)


# --- Rows in, rows out (exercises 2 and 3) -------------------------------------------------


def _case_rows(seed: int, count: int) -> np.ndarray:
    """``count`` rows class, cx, cy, w, h of boxes inside the picture (fractions)."""
    rng = np.random.default_rng(seed)
    w, h = rng.uniform(0.05, 0.6, count), rng.uniform(0.05, 0.6, count)
    cx, cy = rng.uniform(w / 2, 1 - w / 2), rng.uniform(h / 2, 1 - h / 2)
    return np.stack([rng.integers(0, 3, count).astype(np.float64), cx, cy, w, h], axis=1)


def _as_rows(got, shown: str) -> np.ndarray:
    """The learner's answer as a float64 (M, 5) array, or a failure saying what came."""
    if isinstance(got, torch.Tensor):
        got = got.detach().cpu().numpy()
    try:
        array = np.asarray(got, dtype=np.float64)
    except (TypeError, ValueError):
        raise CheckpointError(f"{shown}: expected an (M, 5) array of rows class cx cy w h, got "
                              f"{type(got).__name__}") from None  # fmt: skip
    if array.ndim == 1 and array.size == 0:
        array = array.reshape(0, 5)
    expect(array.ndim == 2 and array.shape[1] == 5,
           f"{shown}: expected an (M, 5) array of rows class cx cy w h, got shape {array.shape}")
    return array


class _Rows:
    """An (M, 5) array that ``==`` compares by shape and value, within 1e-6 (for ``_named``)."""

    def __init__(self, array):
        self.array = np.asarray(array, dtype=np.float64).reshape(-1, 5)

    def __eq__(self, other) -> bool:
        other = other.array if isinstance(other, _Rows) else np.asarray(other, dtype=np.float64)
        return self.array.shape == other.shape and bool(np.allclose(self.array, other, rtol=0, atol=1e-6))

    __hash__ = None


def _describe(rows: np.ndarray) -> str:
    return np.array2string(np.asarray(rows), precision=4, suppress_small=True, separator=", ").replace("\n", "")


# --- Exercise 2: the flip ----------------------------------------------------------------

FLIP_CASES: tuple[np.ndarray, ...] = (
    np.array([[0.0, 0.25, 0.5, 0.3, 0.4]]),  # one box left of the middle: cx 0.25 -> 0.75
    np.array([[2.0, 0.1, 0.2, 0.2, 0.1], [1.0, 0.9, 0.6, 0.2, 0.5]]),  # two boxes near the sides
    _case_rows(1, 5),
    np.array([[1.0, 0.5, 0.3, 0.6, 0.2]]),  # a centred box stays where it is
    np.zeros((0, 5)),  # a picture without objects
)


def _flipped(rows: np.ndarray) -> np.ndarray:
    """``load_data_detection``'s flip on the rows: left = 1 - right, right = 1 - left, so cx -> 1 - cx."""
    out = np.array(rows, dtype=np.float64)
    out[:, 1] = 1 - out[:, 1]
    return out


def _columns(change: Callable[[np.ndarray], dict]) -> Callable[[np.ndarray], np.ndarray]:
    """A flip that sets the columns ``change(rows)`` gives ({column: values}) and leaves the rest."""

    def model(rows: np.ndarray) -> np.ndarray:
        out = np.array(rows, dtype=np.float64)
        for column, values in change(out.copy()).items():
            out[:, column] = values
        return out

    return model


FLIP_MISTAKES: tuple[tuple[Callable[[np.ndarray], np.ndarray], str], ...] = (
    (_columns(lambda r: {2: 1 - r[:, 2]}),
     "that mirrors top to bottom; Darknet's flip_image mirrors left to right (the columns), so cx "
     "changes and cy stays"),
    (_columns(lambda r: {}), "the rows came back unchanged: a mirrored picture needs cx -> 1 - cx"),
    (_columns(lambda r: {1: 1 - r[:, 1] - r[:, 3]}),
     "the rows hold the centre, not the left edge: a mirrored centre is 1 - cx (Darknet mirrors the "
     "corners, left = 1 - right, and the centre follows)"),
    (_columns(lambda r: {1: 1 - r[:, 1] + r[:, 3]}),
     "the rows hold the centre: a mirrored centre is 1 - cx, and the width stays"),
    (_columns(lambda r: {1: -r[:, 1]}), "mirrored about 0, not about the middle of the picture: cx -> 1 - cx"),
    (_columns(lambda r: {k: 1 - r[:, k] for k in range(1, 5)}),
     "only the centre's x changes: cy, w and h stay as they are"),
    (_columns(lambda r: {k: 1 - r[:, k] for k in range(5)}),
     "only cx changes: the class, cy, w and h stay as they are"),
    (_columns(lambda r: {1: 1 - r[:, 1], 2: 1 - r[:, 2]}),
     "that turns the picture half round (both axes); the flip mirrors left to right only, so cy stays"),
    (lambda r: _flipped(r)[:, [0, 1, 2, 4, 3]],
     "a mirror keeps each box's width and height: the columns are class, cx, cy, w, h"),
    (lambda r: _flipped(r)[::-1],
     "keep the rows in their order: row k of the answer is row k of the input, mirrored"),
)  # fmt: skip


@checkpoint
def check_flip_rows(flip_rows: Callable) -> None:
    outcomes = []
    for rows in FLIP_CASES:
        given = rows.copy()
        got = _as_rows(call(flip_rows, given), f"flip_rows({_describe(rows)})")
        if not np.array_equal(given, rows):
            right = "its answer is right, but " if _Rows(got) == _flipped(rows) else ""
            raise CheckpointError(f"flip_rows changed the rows it was given ({right}the caller keeps the "
                                  "picture's own labels): work on a copy, e.g. rows.copy()")  # fmt: skip
        outcomes.append(got)
    wrong = [n for n, got in enumerate(outcomes) if not _Rows(got) == _flipped(FLIP_CASES[n])]
    if not wrong:
        passed(f"the flip's box transform, {len(FLIP_CASES)} sets of rows (near a side, centred, none) ... ok")
        return
    n = wrong[0]
    shown = (f"flip_rows({_describe(FLIP_CASES[n])}): expected {_describe(_flipped(FLIP_CASES[n]))}, "
             f"got {_describe(outcomes[n])}")  # fmt: skip
    why = _named(outcomes, FLIP_MISTAKES, lambda mistake, k: _Rows(mistake(FLIP_CASES[k].copy())))
    raise CheckpointError(f"{shown}: {why}" if why else shown)


# --- Exercise 3: the jitter's placement ----------------------------------------------------

# (rows, nw, nh, dx, dy, size): where the picture goes on the canvas, in canvas pixels
PLACE_CASES: tuple[tuple[np.ndarray, float, float, float, float, int], ...] = (
    (np.array([[0.0, 0.5, 0.5, 0.4, 0.4]]), 96.0, 60.0, 0.0, 18.3, 96),  # wider: grey above and below
    (np.array([[1.0, 0.25, 0.75, 0.3, 0.2], [2.0, 0.7, 0.3, 0.2, 0.4]]), 50.5, 96.0, 20.7, 0.0, 96),  # taller
    (_case_rows(2, 6), 128.0, 90.2, 0.0, 31.4, 128),
    (_case_rows(3, 4), 71.9, 96.0, 11.6, 0.0, 96),
    # a zoom larger than the canvas (Darknet's random scale, commented out since 2018): boxes cut at the
    # edges, the box at the left pushed off entirely (dropped), one cut to a sliver thinner than .001
    # (dropped), and one thinner than .001 in the picture that the zoom makes wide enough (kept)
    (np.array([[0.0, 0.1, 0.5, 0.1, 0.3], [1.0, 0.75, 0.6, 0.5, 0.5], [2.0, 0.2153, 0.8, 0.05, 0.1],
               [0.0, 0.6, 0.3, 0.0008, 0.2]]),
     150.0, 120.0, -36.0, -12.0, 96),
    # a box that shrinks below .001 of the canvas: dropped after the move
    (np.array([[0.0, 0.5, 0.5, 0.3, 0.3], [1.0, 0.2, 0.2, 0.002, 0.3]]), 40.0, 96.0, 28.0, 0.0, 96),
    (np.zeros((0, 5)), 96.0, 70.0, 0.0, 13.0, 96),  # no objects
)  # fmt: skip

_NO_COLOUR_DRAWS = {"aspect_w": 0.5, "aspect_h": 0.5, "place_x": 0.0, "place_y": 0.0, "hue": 0.5, "saturation": 0.0,
                    "saturation_keep": True, "exposure": 0.0, "exposure_keep": True, "flip": False}  # fmt: skip


def _placed(rows: np.ndarray, nw: float, nh: float, dx: float, dy: float, size: int) -> np.ndarray:
    """``data.augment.move_boxes`` with no shuffle and no flip: Darknet's ``fill_truth_detection``."""
    draws = AugmentDraws(**_NO_COLOUR_DRAWS, box_swaps=tuple(range(len(rows))))  # box i swaps with itself
    return move_boxes(rows, Placement(nw, nh, dx, dy), size, size, False, draws)


def _scale(nw, nh, size):
    return nw / size, nh / size


def _offset(dx, dy, size):
    return dx / size, dy / size


def _place_model(scale: Callable = _scale, offset: Callable = _offset, clip: str = "corners",
                 drop: str = "after", corners_out: bool = False) -> Callable:  # fmt: skip
    """The placement computed with one mistake: ``scale(nw, nh, size)`` and ``offset(dx, dy, size)`` give
    (sx, sy) and (ox, oy); ``clip`` 'corners' (right), 'centre' (cx, cy, w, h clipped) or 'none';
    ``drop`` 'after' (right), 'before' (judged on the given rows) or 'none'."""

    def model(rows, nw, nh, dx, dy, size):
        rows = np.asarray(rows, dtype=np.float64).reshape(-1, 5)
        (sx, sy), (ox, oy) = scale(nw, nh, size), offset(dx, dy, size)
        left, right = (rows[:, 1] - rows[:, 3] / 2) * sx + ox, (rows[:, 1] + rows[:, 3] / 2) * sx + ox
        top, bottom = (rows[:, 2] - rows[:, 4] / 2) * sy + oy, (rows[:, 2] + rows[:, 4] / 2) * sy + oy
        if clip == "corners":
            left, right, top, bottom = (np.clip(v, 0, 1) for v in (left, right, top, bottom))
        out = np.stack([rows[:, 0], (left + right) / 2, (top + bottom) / 2, right - left, bottom - top], axis=1)
        if clip == "centre":
            out[:, 1:5] = np.clip(out[:, 1:5], 0, 1)
        keep = np.ones(len(rows), dtype=bool)
        if drop == "after":
            keep = (out[:, 3] >= MIN_SIDE) & (out[:, 4] >= MIN_SIDE)
        elif drop == "before":
            keep = (rows[:, 3] >= MIN_SIDE) & (rows[:, 4] >= MIN_SIDE)
        if corners_out:
            out = np.stack([rows[:, 0], left, top, right, bottom], axis=1)
        return out[keep]

    return model


PLACE_MISTAKES: tuple[tuple[Callable, str], ...] = (
    (_place_model(clip="none"),
     "clip the corners to [0, 1] before recomputing the centre and sides: a box that the placement "
     "pushes past the canvas keeps only its part inside (correct_boxes' constrain)"),
    (_place_model(clip="centre"),
     "clip the corners (left, right, top, bottom), then recompute the centre and sides; clipping cx, "
     "cy, w, h keeps a box that is partly off the canvas at its full size"),
    (_place_model(drop="none"),
     "drop the boxes whose width or height is below .001 after the move and the clip "
     "(fill_truth_detection; a box pushed off the canvas has a side of 0)"),
    (_place_model(drop="before"),
     "drop the boxes thinner than .001 after the move and the clip, measured on the canvas, not on the "
     "rows as given"),
    (_place_model(offset=lambda dx, dy, size: (0.0, 0.0)),
     "the picture was placed at (dx, dy): add dx / size to every x and dy / size to every y"),
    (_place_model(offset=lambda dx, dy, size: (-dx / size, -dy / size)),
     "the picture moved right by dx and down by dy: add dx / size and dy / size, do not subtract them"),
    (_place_model(offset=lambda dx, dy, size: (dx, dy)),
     "dx and dy are canvas pixels: divide them by size to get fractions of the canvas"),
    (_place_model(offset=lambda dx, dy, size: (dy / size, dx / size)),
     "dx moves x and dy moves y (the two are swapped)"),
    (_place_model(scale=lambda nw, nh, size: (1.0, 1.0)),
     "the picture became nw x nh pixels of a size x size canvas: scale x by nw / size and y by nh / size"),
    (_place_model(scale=lambda nw, nh, size: (nh / size, nw / size)),
     "x scales with the width nw and y with the height nh (the two are swapped)"),
    (_place_model(scale=lambda nw, nh, size: (size / nw, size / nh)),
     "the scale is nw / size (the share of the canvas the picture takes), not size / nw"),
    (_place_model(corners_out=True),
     "return rows class, cx, cy, w, h (the centre and sides recomputed from the clipped corners), not the "
     "corners"),
)  # fmt: skip


def _place_shown(case) -> str:
    rows, nw, nh, dx, dy, size = case
    return f"place_rows({_describe(rows)}, nw={nw:g}, nh={nh:g}, dx={dx:g}, dy={dy:g}, size={size})"


@checkpoint
def check_place_rows(place_rows: Callable) -> None:
    outcomes = []
    for case in PLACE_CASES:
        rows, *placement = case
        given = rows.copy()
        got = _as_rows(call(place_rows, given, *placement), _place_shown(case))
        expect(np.array_equal(given, rows), "place_rows changed the rows it was given (the caller keeps the "
               "picture's own labels): work on new arrays")  # fmt: skip
        outcomes.append(got)
    expected = [_placed(*case) for case in PLACE_CASES]
    wrong = [n for n, (got, want) in enumerate(zip(outcomes, expected, strict=True)) if not _Rows(got) == want]
    if not wrong:
        passed(f"the jitter's placement of the boxes, {len(PLACE_CASES)} placements (wider, taller,\n"
               "  a zoom cut at the edges, slivers dropped) ... ok")  # fmt: skip
        return
    n = wrong[0]
    shown = f"{_place_shown(PLACE_CASES[n])}: expected {_describe(expected[n])}, got {_describe(outcomes[n])}"
    why = _named(outcomes, PLACE_MISTAKES, lambda mistake, k: _Rows(mistake(*PLACE_CASES[k])))
    raise CheckpointError(f"{shown}: {why}" if why else shown)
