"""python -m yolo_lessons.evaluate --data VOC_ROOT: a Pascal VOC tree scored as voc_eval scores it."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image
from test_voc import annotation_xml

from yolo_lessons.data.shapes import SHAPE_CLASSES, make_image
from yolo_lessons.evaluate import main


def shapes_voc_tree(root, count: int = 12, difficult_every: int = 0):
    """The book's held-out shapes as a VOC tree (96 x 96 JPEGs), boxes in VOC's 1-based pixels."""
    for folder in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / folder).mkdir(parents=True)
    ids = []
    for index in range(count):
        image, boxes = make_image(index, 1000, 96, min_side=0.25)
        image_id = f"{index:06d}"
        pixels = np.round(image.transpose(1, 2, 0) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(root / "JPEGImages" / f"{image_id}.jpg", quality=95)
        objects = []
        for k, (c, cx, cy, w, h) in enumerate(boxes):
            x0, y0, x1, y1 = ((cx - w / 2) * 96, (cy - h / 2) * 96, (cx + w / 2) * 96, (cy + h / 2) * 96)
            hard = int(difficult_every and k % difficult_every == 0)
            objects.append((SHAPE_CLASSES[int(c)], round(x0) + 1, round(y0) + 1, round(x1), round(y1), hard, 0))
        (root / "Annotations" / f"{image_id}.xml").write_text(annotation_xml(96, 96, objects))
        ids.append(image_id)
    (root / "ImageSets" / "Main" / "val.txt").write_text("".join(f"{i}\n" for i in ids))
    names = root / "shapes.names"
    names.write_text("".join(f"{n}\n" for n in SHAPE_CLASSES))
    return root, names


def test_a_voc_tree_is_scored_directly_with_the_devkits_conventions(tmp_path, capsys):
    root, names = shapes_voc_tree(tmp_path / "VOC")
    out = tmp_path / "scores"
    assert main(["--data", str(root), "--names", str(names), "--out", str(out), "--no-progress"]) == 0
    record = json.loads((out / "metrics.json").read_text())
    assert record["settings"]["pixel_inclusive"] is True  # VOC's + 1 widths, set for a VOC tree
    assert record["settings"]["pictures"] == 12
    assert record["summary"]["voc_map50"] > 0.5  # the book's model finds most of its own shapes


def test_difficult_objects_are_neither_found_nor_missed(tmp_path, capsys):
    scores = {}
    for every in (0, 2):  # no object difficult; the first and third of each picture difficult
        root, names = shapes_voc_tree(tmp_path / f"VOC{every}", count=6, difficult_every=every)
        out = tmp_path / f"out{every}"
        assert main(["--data", str(root), "--names", str(names), "--out", str(out), "--no-progress"]) == 0
        scores[every] = json.loads((out / "metrics.json").read_text())
    objects = {e: sum(row["objects"] for row in scores[e]["per_class"].values()) for e in scores}
    assert objects[0] == 16 and 0 < objects[2] < 16  # difficult objects are not counted as ground truth
    # the model finds the difficult objects too, and those detections are not false positives:
    assert scores[2]["summary"]["voc_map50"] >= scores[0]["summary"]["voc_map50"] - 1e-9
    root, names = shapes_voc_tree(tmp_path / "all_difficult", count=2, difficult_every=1)
    assert main(["--data", str(root), "--names", str(names), "--out", str(tmp_path / "none")]) == 2
    assert "found none (difficult ones are not scored)" in capsys.readouterr().err


def test_a_malformed_annotation_is_one_line_and_exit_2(tmp_path, capsys):
    root, names = shapes_voc_tree(tmp_path / "VOC", count=2)
    (root / "Annotations" / "000001.xml").write_text("<annotation><size>")
    out = tmp_path / "scores"
    assert main(["--data", str(root), "--names", str(names), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "000001.xml" in err[0]
    assert not out.exists()
