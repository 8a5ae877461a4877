"""Chapter 11's checkpoints: right answers written differently pass, known mistakes are named or shown."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from yolo_lessons.checkpoints.common import WIDTH, CheckpointError
from yolo_lessons.checkpoints.own_data import check_flip_rows, check_label_path, check_place_rows

# --- Exercise 1: the label path ----------------------------------------------------------------


def label_path_loop(image_path):  # the chapter's answer: find_replace, one pair at a time
    for old, new in (("images", "labels"), ("JPEGImages", "labels"), ("raw", "labels"),
                     (".jpg", ".txt"), (".png", ".txt"), (".JPG", ".txt"), (".JPEG", ".txt")):  # fmt: skip
        image_path = image_path.replace(old, new, 1)
    return image_path


def label_path_find(image_path):  # right: find_replace as C writes it, with strstr and a cut
    def find_replace(text, old, new):
        at = text.find(old)
        return text if at < 0 else text[:at] + new + text[at + len(old) :]

    path = image_path
    for old in ("images", "JPEGImages", "raw"):
        path = find_replace(path, old, "labels")
    for old in (".jpg", ".png", ".JPG", ".JPEG"):
        path = find_replace(path, old, ".txt")
    return path


def label_path_regex(image_path):  # right: re.sub with count=1
    path = image_path
    for pattern, new in ((r"images", "labels"), (r"JPEGImages", "labels"), (r"raw", "labels"),
                         (r"\.jpg", ".txt"), (r"\.png", ".txt"), (r"\.JPG", ".txt"), (r"\.JPEG", ".txt")):  # fmt: skip
        path = re.sub(pattern, new, path, count=1)
    return path


@pytest.mark.parametrize("answer", [label_path_loop, label_path_find, label_path_regex])
def test_right_label_paths_pass(answer, capsys):
    check_label_path(answer)
    out = capsys.readouterr().out
    assert "... ok" in out
    assert max(map(len, out.splitlines())) <= WIDTH


def replace_all(image_path):
    for old, new in (("images", "labels"), ("JPEGImages", "labels"), ("raw", "labels"), (".jpg", ".txt"),
                     (".png", ".txt"), (".JPG", ".txt"), (".JPEG", ".txt")):  # fmt: skip
        image_path = image_path.replace(old, new)
    return image_path


def folder_names(image_path):
    parts = image_path.split("/")
    parts = [{"images": "labels", "JPEGImages": "labels", "raw": "labels"}.get(p, p) for p in parts[:-1]] + parts[-1:]
    return _extension("/".join(parts))


def _extension(path):
    for old in (".jpg", ".png", ".JPG", ".JPEG"):
        path = path.replace(old, ".txt", 1)
    return path


def splitext_answer(image_path):
    path = image_path.replace("images", "labels", 1).replace("JPEGImages", "labels", 1).replace("raw", "labels", 1)
    return os.path.splitext(path)[0] + ".txt"


def ignoring_case(image_path):
    path = image_path
    for old, new in (("images", "labels"), ("jpegimages", "labels"), ("raw", "labels"), (".jpg", ".txt"),
                     (".png", ".txt"), (".jpeg", ".txt")):  # fmt: skip
        at = path.lower().find(old)
        if at >= 0:
            path = path[:at] + new + path[at + len(old) :]
    return path


def without_raw(image_path):
    return _extension(image_path.replace("images", "labels", 1).replace("JPEGImages", "labels", 1))


def without_jpegimages(image_path):
    return _extension(image_path.replace("images", "labels", 1).replace("raw", "labels", 1))


def images_only(image_path):
    return _extension(image_path.replace("images", "labels", 1))


def jpg_only(image_path):
    path = image_path.replace("images", "labels", 1).replace("JPEGImages", "labels", 1).replace("raw", "labels", 1)
    return path.replace(".jpg", ".txt", 1).replace(".JPG", ".txt", 1)


def as_path(image_path):
    return Path(label_path_loop(image_path))


def pathlib_answer(image_path):  # with_suffix and parts: wrong in several ways at once, no single name
    path = Path(image_path)
    parts = ["labels" if p == "images" else p for p in path.parts]
    return str(Path(*parts).with_suffix(".txt"))


def last_extension_only(image_path):  # sensible, but not Darknet: 'holiday.jpg.png' -> 'holiday.jpg.txt'
    path = image_path.replace("images", "labels", 1).replace("JPEGImages", "labels", 1).replace("raw", "labels", 1)
    stem, dot, extension = path.rpartition(".")
    return stem + ".txt" if dot and extension in ("jpg", "png", "JPG", "JPEG") else path


@pytest.mark.parametrize(
    "answer, named",
    [
        (replace_all, "replaces the first occurrence only"),
        (folder_names, "not on folder names"),
        (splitext_answer, "only .jpg, .png, .JPG and .JPEG become .txt"),
        (ignoring_case, "case-sensitive"),
        (without_raw, "the first 'raw' into 'labels'"),
        (without_jpegimages, "'JPEGImages' becomes 'labels' too"),
        (images_only, "the first 'JPEGImages' and the first 'raw'"),
        (jpg_only, "the first '.png' becomes '.txt' too"),
        (as_path, "returned a PosixPath" if os.name != "nt" else "returned a WindowsPath"),
        (lambda p: None, "expected a str, got None"),
    ],
)
def test_wrong_label_paths_are_named_or_shown(answer, named):
    with pytest.raises(CheckpointError) as error:
        check_label_path(answer)
    assert named in str(error.value)


def test_a_label_path_stub_says_not_implemented():
    def stub(image_path):
        raise NotImplementedError("replace the first 'images' with 'labels', ...")

    with pytest.raises(CheckpointError, match="not implemented yet"):
        check_label_path(stub)


# --- Exercise 2: the flip ----------------------------------------------------------------------


def flip_numpy(rows):  # the chapter's answer
    out = rows.copy()
    out[:, 1] = 1 - out[:, 1]
    return out


def flip_corners(rows):  # right: as Darknet does it, on the corners
    left, right = rows[:, 1] - rows[:, 3] / 2, rows[:, 1] + rows[:, 3] / 2
    left, right = 1 - right, 1 - left
    return np.column_stack([rows[:, 0], (left + right) / 2, rows[:, 2], right - left, rows[:, 4]])


def flip_lists(rows):  # right: a list of lists
    return [[c, 1 - x, y, w, h] for c, x, y, w, h in rows.tolist()]


def flip_torch(rows):  # right: a tensor
    out = torch.tensor(rows)
    out[:, 1] = 1 - out[:, 1]
    return out


@pytest.mark.parametrize("answer", [flip_numpy, flip_corners, flip_lists, flip_torch])
def test_right_flips_pass(answer, capsys):
    check_flip_rows(answer)
    out = capsys.readouterr().out
    assert "... ok" in out
    assert max(map(len, out.splitlines())) <= WIDTH


def _with(change):
    def answer(rows):
        out = rows.copy()
        change(out)
        return out

    return answer


def in_place(rows):
    rows[:, 1] = 1 - rows[:, 1]
    return rows


@pytest.mark.parametrize(
    "answer, named",
    [
        (_with(lambda r: r.__setitem__((slice(None), 2), 1 - r[:, 2])), "mirrors top to bottom"),
        (lambda rows: rows.copy(), "came back unchanged"),
        (_with(lambda r: r.__setitem__((slice(None), 1), 1 - r[:, 1] - r[:, 3])), "not the left edge"),
        (_with(lambda r: r.__setitem__((slice(None), 1), 1 - r[:, 1] + r[:, 3])), "the width stays"),
        (_with(lambda r: r.__setitem__((slice(None), 1), -r[:, 1])), "mirrored about 0"),
        (lambda rows: np.column_stack([rows[:, 0], 1 - rows[:, 1:]]), "cy, w and h stay"),
        (lambda rows: 1 - rows, "the class, cy, w and h stay"),
        (_with(lambda r: r.__setitem__((slice(None), slice(1, 3)), 1 - r[:, 1:3])), "half round"),
        (lambda rows: flip_numpy(rows)[:, [0, 1, 2, 4, 3]], "keeps each box's width and height"),
        (lambda rows: flip_numpy(rows)[::-1], "keep the rows in their order"),
        (in_place, "its answer is right, but the caller keeps"),
        (lambda rows: flip_numpy(rows)[:, 1:], "got shape (1, 4)"),
        (lambda rows: "flipped", "expected an (M, 5) array"),
    ],
)
def test_wrong_flips_are_named_or_shown(answer, named):
    with pytest.raises(CheckpointError) as error:
        check_flip_rows(answer)
    assert named in str(error.value)


# --- Exercise 3: the jitter's placement ----------------------------------------------------------


def place_numpy(rows, nw, nh, dx, dy, size):  # the chapter's answer
    left = (rows[:, 1] - rows[:, 3] / 2) * nw / size + dx / size
    right = (rows[:, 1] + rows[:, 3] / 2) * nw / size + dx / size
    top = (rows[:, 2] - rows[:, 4] / 2) * nh / size + dy / size
    bottom = (rows[:, 2] + rows[:, 4] / 2) * nh / size + dy / size
    left, right, top, bottom = (np.clip(v, 0, 1) for v in (left, right, top, bottom))
    out = np.stack([rows[:, 0], (left + right) / 2, (top + bottom) / 2, right - left, bottom - top], axis=1)
    return out[(out[:, 3] >= 0.001) & (out[:, 4] >= 0.001)]


def place_loop(rows, nw, nh, dx, dy, size):  # right: one row at a time, in pixels first
    kept = []
    for c, x, y, w, h in rows.tolist():
        x0, x1 = max(0.0, (x - w / 2) * nw + dx), min(float(size), (x + w / 2) * nw + dx)
        y0, y1 = max(0.0, (y - h / 2) * nh + dy), min(float(size), (y + h / 2) * nh + dy)
        x0, x1 = min(x0, float(size)), max(x1, 0.0)
        y0, y1 = min(y0, float(size)), max(y1, 0.0)
        row = [c, (x0 + x1) / 2 / size, (y0 + y1) / 2 / size, (x1 - x0) / size, (y1 - y0) / size]
        if row[3] >= 0.001 and row[4] >= 0.001:
            kept.append(row)
    return kept


def place_torch(rows, nw, nh, dx, dy, size):  # right: tensors, corners clamped with clamp
    r = torch.tensor(rows)
    scale = torch.tensor([nw, nh]) / size
    shift = torch.tensor([dx, dy]) / size
    low = ((r[:, 1:3] - r[:, 3:5] / 2) * scale + shift).clamp(0, 1)
    high = ((r[:, 1:3] + r[:, 3:5] / 2) * scale + shift).clamp(0, 1)
    out = torch.cat([r[:, :1], (low + high) / 2, high - low], dim=1)
    return out[(out[:, 3:5] >= 0.001).all(dim=1)]


@pytest.mark.parametrize("answer", [place_numpy, place_loop, place_torch])
def test_right_placements_pass(answer, capsys):
    check_place_rows(answer)
    out = capsys.readouterr().out
    assert "... ok" in out
    assert max(map(len, out.splitlines())) <= WIDTH


def _placement(scale=lambda nw, nh, s: (nw / s, nh / s), shift=lambda dx, dy, s: (dx / s, dy / s), clip=True,
               drop=True):  # fmt: skip
    def answer(rows, nw, nh, dx, dy, size):
        (sx, sy), (ox, oy) = scale(nw, nh, size), shift(dx, dy, size)
        left, right = (rows[:, 1] - rows[:, 3] / 2) * sx + ox, (rows[:, 1] + rows[:, 3] / 2) * sx + ox
        top, bottom = (rows[:, 2] - rows[:, 4] / 2) * sy + oy, (rows[:, 2] + rows[:, 4] / 2) * sy + oy
        if clip:
            left, right, top, bottom = (np.clip(v, 0, 1) for v in (left, right, top, bottom))
        out = np.stack([rows[:, 0], (left + right) / 2, (top + bottom) / 2, right - left, bottom - top], axis=1)
        return out[(out[:, 3] >= 0.001) & (out[:, 4] >= 0.001)] if drop else out

    return answer


def clip_centres(rows, nw, nh, dx, dy, size):
    out = _placement(clip=False, drop=False)(rows, nw, nh, dx, dy, size)
    out[:, 1:] = np.clip(out[:, 1:], 0, 1)
    return out[(out[:, 3] >= 0.001) & (out[:, 4] >= 0.001)]


def drop_first(rows, nw, nh, dx, dy, size):
    rows = rows[(rows[:, 3] >= 0.001) & (rows[:, 4] >= 0.001)]
    return _placement(drop=False)(rows, nw, nh, dx, dy, size)


def corners(rows, nw, nh, dx, dy, size):
    out = place_numpy(rows, nw, nh, dx, dy, size)
    return np.stack([out[:, 0], out[:, 1] - out[:, 3] / 2, out[:, 2] - out[:, 4] / 2, out[:, 1] + out[:, 3] / 2,
                     out[:, 2] + out[:, 4] / 2], axis=1)  # fmt: skip


def changes_its_input(rows, nw, nh, dx, dy, size):
    rows[:, 1] = rows[:, 1] * nw / size + dx / size
    return place_numpy(rows, size, nh, 0, dy, size)


@pytest.mark.parametrize(
    "answer, named",
    [
        (_placement(clip=False), "clip the corners to [0, 1] before"),
        (clip_centres, "clipping cx, cy, w, h keeps a box"),
        (_placement(drop=False), "drop the boxes whose width or height is below .001"),
        (drop_first, "measured on the canvas, not on the rows as given"),
        (_placement(shift=lambda dx, dy, s: (0, 0)), "add dx / size to every x"),
        (_placement(shift=lambda dx, dy, s: (-dx / s, -dy / s)), "do not subtract them"),
        (_placement(shift=lambda dx, dy, s: (dx, dy)), "divide them by size"),
        (_placement(shift=lambda dx, dy, s: (dy / s, dx / s)), "dx moves x and dy moves y"),
        (_placement(scale=lambda nw, nh, s: (1, 1)), "scale x by nw / size"),
        (_placement(scale=lambda nw, nh, s: (nh / s, nw / s)), "x scales with the width nw"),
        (_placement(scale=lambda nw, nh, s: (s / nw, s / nh)), "not size / nw"),
        (corners, "not the corners"),
        (changes_its_input, "changed the rows it was given"),
    ],
)
def test_wrong_placements_are_named_or_shown(answer, named):
    with pytest.raises(CheckpointError) as error:
        check_place_rows(answer)
    assert named in str(error.value)


@pytest.mark.parametrize(
    "check, answer, message",
    [
        (check_label_path, pathlib_answer,  # wrong in two ways at once (JPEGImages and .jpeg): no single name
         "label_path('VOCdevkit/VOC2007/JPEGImages/000005.jpg'): expected 'VOCdevkit/VOC2007/labels/000005.txt', "
         "got 'VOCdevkit/VOC2007/JPEGImages/000005.txt'"),
        (check_label_path, last_extension_only,  # sensible, but not Darknet's text replacement
         "label_path('holiday.jpg.png'): expected 'holiday.txt.txt', got 'holiday.jpg.txt'"),
        (check_flip_rows, _with(lambda r: r.__setitem__((slice(None), 1), 0.5 - r[:, 1])),
         "flip_rows([[0.  , 0.25, 0.5 , 0.3 , 0.4 ]]): expected [[0.  , 0.75, 0.5 , 0.3 , 0.4 ]], "
         "got [[0.  , 0.25, 0.5 , 0.3 , 0.4 ]]"),
        (check_place_rows, _placement(scale=lambda nw, nh, s: (nw / s, nw / s)),  # y scaled by nw
         "place_rows([[0. , 0.5, 0.5, 0.4, 0.4]], nw=96, nh=60, dx=0, dy=18.3, size=96): expected "
         "[[0.    , 0.5   , 0.5031, 0.4   , 0.25  ]], got [[0.    , 0.5   , 0.6906, 0.4   , 0.4   ]]"),
    ],
)
def test_a_mistake_no_known_one_explains_is_shown_without_a_name(check, answer, message):
    with pytest.raises(CheckpointError) as error:
        check(answer)
    assert str(error.value) == message  # what was expected and what came, and nothing more
