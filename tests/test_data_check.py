"""``python -m yolo_lessons.data check``: every bad-label kind named with its file and line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from yolo_lessons.data.__main__ import main
from yolo_lessons.data.check import check_dataset
from yolo_lessons.data.datasets import darknet_label_path


def write_set(root: Path, rows: dict[str, str]) -> Path:
    """A folder images/ + labels/ + classes.names; ``rows`` maps a picture name to its label text."""
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    (root / "classes.names").write_text("circle\nsquare\ntriangle\n")
    for name, text in rows.items():
        picture = root / "images" / name
        Image.fromarray(np.full((8, 8, 3), 128, np.uint8)).save(picture)
        if text is not None:
            Path(darknet_label_path(picture)).write_text(text)
    return root


def test_a_clean_set_is_ok_with_counts_per_class(tmp_path):
    root = write_set(tmp_path / "set", {"a.png": "0 0.5 0.5 0.2 0.2\n1 0.2 0.2 0.1 0.1\n", "b.jpg": "1 0.5 0.5 1 1\n",
                                        "c.png": None})  # fmt: skip
    report = check_dataset(root)
    assert report.ok and report.pictures == 3 and dict(report.objects) == {0: 1, 1: 2}
    assert report.without_labels == [root / "images" / "c.png"]  # allowed, counted
    assert report.lines()[-4:] == ["  circle: 1 objects", "  square: 2 objects", "triangle: 0 objects",
                                   "ok: 3 pictures, 3 objects, 1 pictures without labels"]  # fmt: skip


def test_every_kind_of_bad_label_is_named_with_its_file_and_line(tmp_path):
    root = write_set(tmp_path / "set", {
        "text.png": "0 0.5 0.5 0.2 0.2\ncircle 0.5 0.5 0.2 0.2\n",
        "four.png": "0 0.5 0.5 0.2\n",
        "class.png": "\n3 0.5 0.5 0.2 0.2\n",
        "outside.png": "1 1.2 0.5 0.2 0.2\n",
        "side.png": "1 0.5 0.5 -0.1 0.2\n",
        "twice.png": "2 0.5 0.5 0.2 0.2\n2 0.5 0.5 0.2 0.2\n",
        "nan.png": "2 nan 0.5 0.2 0.2\n",
    })  # fmt: skip
    (root / "images" / "broken.png").write_bytes(b"\x89PNG not really")
    Path(darknet_label_path(root / "images" / "broken.png")).write_text("0 0.5 0.5 0.1 0.1\n")
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(root / "images" / "bitmap.bmp")
    (root / "labels" / "orphan.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    report = check_dataset(root)
    labels = root / "labels"
    expected = [
        f"{labels / 'text.txt'}, line 2: expected 'class cx cy w h'",
        f"{labels / 'four.txt'}, line 1: expected 'class cx cy w h'",
        f"{labels / 'class.txt'}, line 2: class 3 is not one of the 3 names",
        f"{labels / 'outside.txt'}, line 1: the centre or a side lies outside [0, 1]",
        f"{labels / 'side.txt'}, line 1: a side of -0.1",
        f"{labels / 'twice.txt'}, line 2: the same box as line 1",
        f"{labels / 'nan.txt'}, line 1: expected 'class cx cy w h'",
        f"{root / 'images' / 'broken.png'}: cannot be decoded",
        f"{root / 'images' / 'bitmap.bmp'}: Darknet finds no label file for a .bmp picture",
    ]
    for start in expected:
        assert sum(e.startswith(start) for e in report.errors) == 1, start
    assert len(report.errors) == len(expected)
    assert "Darknet would clip the box silently" in next(e for e in report.errors if "outside" in e)
    assert report.labels_without_pictures == [labels / "orphan.txt"]
    assert not report.ok and report.verdict() == f"9 problems in {root}: fix them before training"


@pytest.mark.parametrize(
    "write, message",
    [
        (lambda d: (d / "x.data").write_text("names=classes.names\nvalid=missing.txt\n"),
         "its valid list missing.txt does not exist"),
        (lambda d: ((d / "empty.txt").write_text("\n"), (d / "x.data").write_text("valid=empty.txt\nnames=n\n")),
         "names no picture"),
        (lambda d: ((d / "list.txt").write_text("a.png\n"), (d / "x.data").write_text("valid=list.txt\n")),
         "has no names = line"),
    ],
)
def test_a_data_file_with_a_missing_or_empty_list(tmp_path, write, message):
    write(tmp_path)
    report = check_dataset(tmp_path / "x.data")
    assert not report.ok and message in report.errors[0]


def test_the_command_prints_the_report_and_exits_1_on_errors(tmp_path, capsys):
    root = write_set(tmp_path / "set", {"a.png": "0 0.5 0.5 0.2 0.2\n", "b.png": "5 0.5 0.5 0.2 0.2\n"})
    assert main(["check", str(root)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("error: ") and "line 1: class 5" in out[0]
    assert out[-1] == f"1 problems in {root}: fix them before training"
    Path(darknet_label_path(root / "images" / "b.png")).write_text("2 0.5 0.5 0.2 0.2\n")
    assert main(["check", str(root)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "ok: 2 pictures, 2 objects, 0 pictures without labels"
    assert main(["check", str(root), "--names", str(tmp_path / "none.names")]) == 2
    assert capsys.readouterr().err.startswith("error: cannot read the names file")


def test_a_source_that_cannot_be_read_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["check", str(tmp_path / "missing.data")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.splitlines() == [f"error: expected a .data file, a list file or a folder of pictures, "
                                              f"got {tmp_path / 'missing.data'} (no such file)"]
