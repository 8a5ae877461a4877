"""Pascal VOC (``data.voc``): read as written, difficult kept, malformed files named, converted as voc_label.py does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from yolo_lessons.data.__main__ import main
from yolo_lessons.data.check import check_dataset
from yolo_lessons.data.datasets import load_labelled_set
from yolo_lessons.data.voc import darknet_rows, read_annotation, read_voc, voc_ground_truth, voc_to_darknet
from yolo_lessons.detection.metrics import GroundTruth, mean_average_precision
from yolo_lessons.detection.nms import ImageDetections


def annotation_xml(width: int, height: int, objects: list[tuple]) -> str:
    """A VOC annotation; each object (name, xmin, ymin, xmax, ymax, difficult, truncated)."""
    parts = [f"<annotation><folder>VOC</folder><size><width>{width}</width><height>{height}</height>"
             "<depth>3</depth></size>"]  # fmt: skip
    for name, xmin, ymin, xmax, ymax, difficult, truncated in objects:
        parts.append(f"<object><name>{name}</name><pose>Unspecified</pose><truncated>{truncated}</truncated>"
                     f"<difficult>{difficult}</difficult><bndbox><xmin>{xmin}</xmin><ymin>{ymin}</ymin>"
                     f"<xmax>{xmax}</xmax><ymax>{ymax}</ymax></bndbox></object>")  # fmt: skip
    return "".join(parts) + "</annotation>\n"


def write_voc(root: Path, annotations: dict[str, str], splits: dict[str, list[str]]) -> Path:
    """A VOC tree: Annotations/<id>.xml, JPEGImages/<id>.jpg (20 x 10 grey) and ImageSets/Main/<split>.txt."""
    for folder in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / folder).mkdir(parents=True)
    for image_id, text in annotations.items():
        (root / "Annotations" / f"{image_id}.xml").write_text(text)
        Image.fromarray(np.full((10, 20, 3), 128, np.uint8)).save(root / "JPEGImages" / f"{image_id}.jpg")
    for split, ids in splits.items():
        (root / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    return root


@pytest.fixture
def voc(tmp_path) -> Path:
    return write_voc(tmp_path / "VOC2007", {
        "000001": annotation_xml(20, 10, [("cat", 1, 1, 10, 10, 0, 0), ("dog", 11, 3, 20, 8, 1, 0)]),
        "000002": annotation_xml(20, 10, [("dog", 5, 2, 15, 9, 0, 1), ("bird", 2, 2, 6, 6, 0, 0)]),
        "000003": annotation_xml(20, 10, [("cat", 3, 3, 3, 7, 0, 0)]),  # one column wide
    }, {"train": ["000001", "000002"], "val": ["000003"]})  # fmt: skip


def test_an_annotation_is_read_as_written_with_its_flags(voc):
    annotation = read_annotation(voc / "Annotations" / "000001.xml")
    assert (annotation.image_id, annotation.width, annotation.height) == ("000001", 20, 10)
    cat, dog = annotation.objects
    assert (cat.name, cat.box, cat.difficult, cat.truncated) == ("cat", (1, 1, 10, 10), False, False)
    assert (dog.name, dog.box, dog.difficult) == ("dog", (11, 3, 20, 8), True)  # difficult kept
    assert read_annotation(voc / "Annotations" / "000002.xml").objects[0].truncated


def test_a_split_is_read_in_its_order(voc):
    split = read_voc(voc, "train")
    assert [a.image_id for a in split.annotations] == ["000001", "000002"] and split.problems == []
    assert split.image_path(split.annotations[0]) == voc / "JPEGImages" / "000001.jpg"


@pytest.mark.parametrize("text, expected", [
    ("<annotation><size><width>20", "expected well-formed XML"),
    ("<picture/>", "expected an <annotation> element at the top, got <picture>"),
    ("<annotation><size><width>20</width></size></annotation>", "expected a <height> with a value"),
    (annotation_xml(0, 10, []), "expected <size><width> a positive whole number of pixels, got '0'"),
    (annotation_xml(20, 10, [("cat", 1, 1, "ten", 5, 0, 0)]), "object 1 (cat): expected <xmax> a number of pixels"),
    (annotation_xml(20, 10, [("cat", 1, 1, 30, 5, 0, 0)]), "object 1 (cat): expected 0 <= xmin <= xmax <= width (20)"),
    (annotation_xml(20, 10, [("cat", 1, 1, 5, 5, "yes", 0)]), "object 1: expected <difficult> 0 or 1, got 'yes'"),
])  # fmt: skip
def test_a_malformed_annotation_is_named_with_its_file_and_what_was_expected(tmp_path, text, expected):
    root = write_voc(tmp_path / "voc", {"good": annotation_xml(20, 10, []), "bad": text}, {"train": ["good", "bad"]})
    split = read_voc(root, "train")
    assert [a.image_id for a in split.annotations] == ["good"]
    assert len(split.problems) == 1 and split.problems[0].startswith(str(root / "Annotations" / "bad.xml"))
    assert expected in split.problems[0]


def test_a_missing_annotation_and_a_missing_split_are_named(tmp_path):
    root = write_voc(tmp_path / "voc", {}, {"train": ["lost"]})
    assert "lost.xml: cannot read the annotation file" in read_voc(root, "train").problems[0]
    with pytest.raises(ValueError, match="expected the split file .*val.txt"):
        read_voc(root, "val")


def test_darknet_rows_do_what_voc_label_py_does(voc):
    annotation = read_annotation(voc / "Annotations" / "000001.xml")
    rows = darknet_rows(annotation, ["cat", "dog"])
    # voc_label.py convert((20, 10), (1, 10, 1, 10)): x = (1 + 10) / 2 - 1 = 4.5, w = 10 - 1 = 9;
    # divided by 20 and 10: .225, .45; y = 4.5 / 10 = .45, h = .9. The difficult dog is left out.
    np.testing.assert_allclose(rows, [[0, 0.225, 0.45, 0.45, 0.9]], rtol=0, atol=1e-15)
    with_difficult = darknet_rows(annotation, ["cat", "dog"], keep_difficult=True)
    # dog (11, 3, 20, 8): x = 15.5 - 1 = 14.5 -> .725, y = 5.5 - 1 = 4.5 -> .45, w = 9 -> .45, h = 5 -> .5
    np.testing.assert_allclose(with_difficult[1], [1, 0.725, 0.45, 0.45, 0.5], rtol=0, atol=1e-15)
    assert darknet_rows(annotation, ["dog"]).shape == (0, 5)  # cat is not a class: left out, as voc_label.py does


def test_the_conversion_reads_back_through_darknets_format(voc, tmp_path):
    out = tmp_path / "darknet"
    done = voc_to_darknet(voc, out, ["bird", "cat", "dog"])
    assert (done.label_files, done.objects, done.difficult_skipped, done.thin_skipped) == (3, 3, 1, 1)
    assert (voc / "labels" / "000001.txt").is_file()  # where Darknet looks: JPEGImages -> labels
    assert (out / "voc.names").read_text() == "bird\ncat\ndog\n"
    train = load_labelled_set(out / "voc.data", split="train")
    assert train.images == [voc.resolve() / "JPEGImages" / f"{i}.jpg" for i in ("000001", "000002")]
    assert train.names == ["bird", "cat", "dog"]
    for image_id, rows in zip(("000001", "000002"), train.labels, strict=True):
        expected = darknet_rows(read_annotation(voc / "Annotations" / f"{image_id}.xml"), train.names)
        np.testing.assert_array_equal(rows, expected)  # written with repr: every digit survives
    valid = load_labelled_set(out / "voc.data")  # valid = val: 000003, whose only box is one column wide
    assert [len(rows) for rows in valid.labels] == [0]
    assert check_dataset(out / "voc.data", split="train").ok


def test_the_conversion_never_overwrites_a_file_and_writes_nothing_when_refusing(voc, tmp_path):
    out = tmp_path / "darknet"
    voc_to_darknet(voc, out, ["bird", "cat", "dog"])
    before = {p: p.read_bytes() for p in [*out.iterdir(), *(voc / "labels").iterdir()]}
    with pytest.raises(ValueError, match="already exists; voc_to_darknet never overwrites a file"):
        voc_to_darknet(voc, out, ["cat"])
    assert {p: p.read_bytes() for p in [*out.iterdir(), *(voc / "labels").iterdir()]} == before


def test_a_malformed_annotation_stops_the_conversion_before_anything_is_written(voc, tmp_path):
    (voc / "Annotations" / "000002.xml").write_text("<annotation>")
    with pytest.raises(ValueError, match="000002.xml: expected well-formed XML"):
        voc_to_darknet(voc, tmp_path / "darknet")
    assert not (tmp_path / "darknet").exists() and not (voc / "labels").exists()


def test_difficult_objects_count_as_voc_counts_them(voc):
    annotation = read_annotation(voc / "Annotations" / "000001.xml")
    boxes, classes, difficult = voc_ground_truth(annotation, ["cat", "dog"])
    assert boxes.tolist() == [[1, 1, 10, 10], [11, 3, 20, 8]] and classes.tolist() == [0, 1]
    assert difficult.tolist() == [False, True]
    # One detection on each object: the cat's scores AP 1; the dog's is neither right nor wrong, and the
    # class dog, with no ground truth that counts, is left out of the mAP.
    found = ImageDetections(boxes.float(), torch.tensor([0.9, 0.8]), torch.tensor([0, 1]))
    result = mean_average_precision([found], [GroundTruth(boxes, classes, difficult)], pixel_inclusive=True)
    assert result.map == 1.0 and sorted(result.per_class) == [0]


def test_the_convert_command_writes_the_files_and_refuses_bad_input_in_one_line(voc, tmp_path, capsys):
    assert main(["convert", str(voc), str(tmp_path / "out"), "--splits", "train"]) == 0
    assert "wrote 2 label files" in capsys.readouterr().out
    assert (tmp_path / "out" / "train.txt").is_file()
    assert main(["convert", str(tmp_path / "nowhere"), str(tmp_path / "out2")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: expected a VOC tree with Annotations/") and err.count("\n") == 1
    assert main(["convert", str(voc), str(tmp_path / "out"), "--splits", "train"]) == 2  # the files exist now
    assert "already exists" in capsys.readouterr().err
