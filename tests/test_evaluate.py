"""The evaluate command: the held-out synthetic set by default, Darknet-format labelled pictures, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from yolo_lessons import evaluate as command
from yolo_lessons.darknet.book_weights import load_book_model
from yolo_lessons.data.datasets import darknet_label_path, load_labelled_set, read_labels
from yolo_lessons.data.shapes import SHAPE_CLASSES, make_image
from yolo_lessons.detection.decode import box_corners
from yolo_lessons.detection.inference import detect
from yolo_lessons.detection.metrics import GroundTruth, mean_average_precision
from yolo_lessons.detection.nms import ImageDetections
from yolo_lessons.train import TrainConfig, evaluate, held_out_set, train


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = command.main([*args, "--no-progress"])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_book_model_scores_what_its_readme_says(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(capsys, "--images", "100")
    assert code == 0
    saved = json.loads(Path("runs/evaluate/metrics.json").read_text())
    config = TrainConfig(eval_images=100)
    want, want11 = evaluate(load_book_model(), *held_out_set(config))  # the training command's own score
    assert saved["summary"]["voc_map50"] == pytest.approx(want, abs=1e-12)
    assert saved["summary"]["voc_map50_11"] == pytest.approx(want11, abs=1e-12)
    assert set(saved["per_class"]) == set(SHAPE_CLASSES)
    assert 0 < saved["summary"]["coco_ap"] < saved["summary"]["coco_ap50"] <= 1
    assert f"{'all':>14}" in out and "COCO AP by area" in out
    assert Path("runs/evaluate/pr_curve.png").stat().st_size > 1000


def test_a_checkpoint_is_scored_on_its_own_held_out_set(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    tiny = dict(steps=4, batch_size=4, image_size=64, width=4, threads=1, train_images=8, eval_images=12,
                eval_every=4, progress=False, verbose=False, eval_seed=77)
    history = train(out="run", **tiny)
    code, out, _ = run(capsys, "--weights", "run/checkpoint.pt")
    assert code == 0
    saved = json.loads(Path("runs/evaluate/metrics.json").read_text())
    assert saved["settings"]["pictures"] == 12 and saved["settings"]["size"] == 64
    assert saved["summary"]["voc_map50"] == pytest.approx(history.eval_map[-1], abs=1e-12)


@pytest.fixture
def labelled_folder(tmp_path) -> Path:
    """Six synthetic pictures saved as a user would: images/*.png, labels/*.txt, classes.names."""
    (tmp_path / "set" / "images").mkdir(parents=True)
    (tmp_path / "set" / "labels").mkdir()
    (tmp_path / "set" / "classes.names").write_text("\n".join(SHAPE_CLASSES) + "\n")
    for i in range(6):
        image, boxes = make_image(300 + i, seed=1000, size=128, min_side=0.25)
        picture = (image.transpose(1, 2, 0) * 255).round().astype(np.uint8)
        path = tmp_path / "set" / "images" / f"shape{i}.png"
        Image.fromarray(picture).save(path)
        rows = "\n".join(f"{int(c)} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}" for c, cx, cy, w, h in boxes.tolist())
        Path(darknet_label_path(path)).write_text(rows + "\n")
    return tmp_path / "set"


def test_labelled_pictures_are_scored_as_detect_finds_them(labelled_folder, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(capsys, "--data", str(labelled_folder))
    assert code == 0
    saved = json.loads(Path("runs/evaluate/metrics.json").read_text())
    # the same by hand: detect each picture at the book's size, truths in the picture's pixels
    model, found, truths = load_book_model(), [], []
    labelled = load_labelled_set(labelled_folder)
    for path, rows in zip(labelled.images, labelled.labels, strict=True):
        result = detect(model, path, 96, thresh=0.005)
        found.append(ImageDetections(result.boxes.double(), result.scores, result.classes))
        rows = torch.from_numpy(rows)
        truths.append(GroundTruth(box_corners(rows[:, 1:5]) * 128, rows[:, 0].long()))
    assert saved["summary"]["voc_map50"] == pytest.approx(mean_average_precision(found, truths).map, abs=1e-12)
    assert sum(row["objects"] for row in saved["per_class"].values()) == sum(len(r) for r in labelled.labels)


def test_a_data_file_and_its_list(labelled_folder, tmp_path):
    listed = sorted((labelled_folder / "images").glob("*.png"))
    (tmp_path / "valid.txt").write_text("\n".join(str(p.relative_to(tmp_path)) for p in listed[:4]) + "\n")
    (tmp_path / "my.data").write_text("classes = 3\nvalid = valid.txt\nnames = set/classes.names\n# a comment\n")
    labelled = load_labelled_set(tmp_path / "my.data")
    assert labelled.images == listed[:4]  # found beside the list file (not in the working folder)
    assert labelled.names == list(SHAPE_CLASSES)
    (tmp_path / "wrong.data").write_text("classes = 2\nvalid = valid.txt\nnames = set/classes.names\n")
    with pytest.raises(ValueError, match="classes = 2, its names file has 3 names"):
        load_labelled_set(tmp_path / "wrong.data")


def test_darknet_finds_labels_by_replacing_the_first_occurrence():
    assert darknet_label_path("data/images/cat.jpg") == "data/labels/cat.txt"
    assert darknet_label_path("VOC2007/JPEGImages/000001.jpg") == "VOC2007/labels/000001.txt"
    assert darknet_label_path("myimages/images/a.png") == "mylabels/images/a.txt"  # Darknet's own pitfall
    assert darknet_label_path("shots/a.bmp") == "shots/a.bmp"  # no rule for .bmp: Darknet reads the picture


@pytest.mark.parametrize(
    "row, message",
    [
        ("0 0.5 0.5 0.2", "expected 'class cx cy w h'"),
        ("zero 0.5 0.5 0.2 0.2", "expected 'class cx cy w h'"),
        ("3 0.5 0.5 0.2 0.2", "class 3 is not one of the 3 names"),
        ("1 1.5 0.5 0.2 0.2", "outside [0, 1], fractions of the picture (Darknet would clip the box silently)"),
        ("1 0.5 0.5 0 0.2", "a side of 0: a box needs a width and a height above 0"),
        ("0 0.5 0.5 0.2 0.2", "the same box as line 1"),
    ],
)
def test_a_bad_label_row_is_named_with_its_file_and_line(tmp_path, row, message):
    (tmp_path / "a.txt").write_text(f"0 0.5 0.5 0.2 0.2\n\n{row}\n")
    with pytest.raises(ValueError, match=r"a\.txt, line 3: ") as error:
        read_labels(tmp_path / "a.txt", 3)
    assert message in str(error.value)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data", "nowhere"], "expected a .data file, a list file or a folder of pictures, got nowhere"),
        (["--names", "x.names"], "--names is for --data"),
        (["--images", "0"], "expected --images to be a positive number"),
        (["--model", "yolov9"], "expected --model to be one of"),
        (["--model", "yolov3"], "--model yolov3 needs --weights"),
        (["--thresh", "2"], "expected --thresh in [0, 1)"),
        (["--size", "90"], "multiple of 32"),
    ],
)
def test_bad_input_gets_one_line_exit_2_and_nothing_written(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, *args)
    assert code == 2 and out == "" and len(err.splitlines()) == 1 and message in err, err
    assert not Path("runs").exists()


def test_a_picture_without_a_label_file_has_no_objects(labelled_folder, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    label = Path(darknet_label_path(labelled_folder / "images" / "shape2.png"))
    missing = len(read_labels(label, 3))
    label.unlink()
    total = sum(len(rows) for rows in load_labelled_set(labelled_folder).labels)
    code, _, _ = run(capsys, "--data", str(labelled_folder))
    assert code == 0
    saved = json.loads(Path("runs/evaluate/metrics.json").read_text())
    assert sum(row["objects"] for row in saved["per_class"].values()) == total and missing > 0
