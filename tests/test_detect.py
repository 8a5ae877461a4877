"""``detection.inference.detect`` (one call, picture -> boxes) and the detect command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib import cbook
from PIL import Image

from yolo_lessons import detect as command
from yolo_lessons.darknet.book_weights import BOOK_WEIGHTS, load_book_model
from yolo_lessons.darknet.names import VOC_CLASSES
from yolo_lessons.data.datasets import read_names
from yolo_lessons.data.images import read_image
from yolo_lessons.data.letterbox import boxes_to_image, network_input
from yolo_lessons.data.shapes import SHAPE_CLASSES, make_image
from yolo_lessons.detection.decode import decode_yolov2, decode_yolov3
from yolo_lessons.detection.inference import decode_model_output, detect
from yolo_lessons.detection.nms import postprocess
from yolo_lessons.models.small_yolov3 import small_yolov3
from yolo_lessons.models.yolov2 import yolov2

PHOTO = Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))  # 512 x 600, shipped by matplotlib


@pytest.fixture(scope="module")
def book_model():
    return load_book_model()


def shapes_picture(index: int = 250, size: int = 96) -> np.ndarray:
    """A held-out synthetic picture as a uint8 (H, W, 3) array, as a user's PNG would read."""
    image, _ = make_image(index, seed=1000, size=size)
    return (image.transpose(1, 2, 0) * 255).round().astype(np.uint8)


def test_detect_is_darknets_test_pipeline_step_by_step(book_model):
    picture = shapes_picture()
    found = detect(book_model, picture, input_size=96, thresh=0.3, class_names=SHAPE_CLASSES)
    # the same by hand: letterbox, forward, decode, threshold + NMS, back to the picture's pixels
    x, box = network_input(picture, 96, 96)
    with torch.no_grad():
        (by_hand,) = postprocess(decode_yolov2(book_model(x[None]), book_model.anchors), thresh=0.3)
    assert len(found) == len(by_hand) >= 1
    assert torch.equal(found.boxes, boxes_to_image(by_hand.boxes, box))
    assert torch.equal(found.scores, by_hand.scores) and torch.equal(found.classes, by_hand.classes)
    assert found.names == [SHAPE_CLASSES[c] for c in by_hand.classes.tolist()]
    percents = [round(s * 100) for s in found.scores.tolist()]
    assert found.lines() == [f"{n}: {p}%" for n, p in zip(found.names, percents, strict=True)]


def test_a_path_a_pil_image_and_an_array_give_the_same_boxes(book_model, tmp_path):
    picture = shapes_picture(251, size=160)
    Image.fromarray(picture).save(tmp_path / "shapes.png")
    results = [
        detect(book_model, source, input_size=96, thresh=0.2)
        for source in (picture, Image.fromarray(picture), tmp_path / "shapes.png", str(tmp_path / "shapes.png"))
    ]
    for other in results[1:]:
        assert torch.equal(other.boxes, results[0].boxes) and torch.equal(other.scores, results[0].scores)
    assert results[0].names == [str(c) for c in results[0].classes.tolist()]  # no names given: indices


def test_boxes_come_back_in_the_pictures_pixels_and_inside_it(book_model):
    found = detect(book_model, PHOTO, input_size=96, thresh=0.3)
    assert found.letterbox.image_w == 512 and found.letterbox.image_h == 600
    assert len(found) > 0  # a shapes model sees "shapes" in a photo: meaningless but boxes
    assert (found.boxes[:, [0, 2]] <= 512).all() and (found.boxes[:, [1, 3]] <= 600).all()
    assert (found.boxes >= 0).all()


def test_detect_leaves_the_model_in_its_mode():
    model = small_yolov3(num_classes=3).train()
    detect(model, shapes_picture(), input_size=96, thresh=0.9)
    assert model.training


def test_decode_model_output_picks_the_decoder_of_the_model():
    v3 = small_yolov3(num_classes=3).eval()
    with torch.no_grad():
        output = v3(torch.zeros(1, 3, 96, 96))
    got = decode_model_output(v3, output, 96)
    want = decode_yolov3(list(output), v3.anchors, v3.masks, 96)
    assert torch.equal(got.boxes, want.boxes)
    with pytest.raises(TypeError, match="expected one of the book's detectors"):
        decode_model_output(torch.nn.Conv2d(3, 3, 1), None, 96)


def test_detect_rejects_bad_thresholds_and_too_few_names(book_model):
    with pytest.raises(ValueError, match="thresh in"):
        detect(book_model, shapes_picture(), input_size=96, thresh=1.5)
    with pytest.raises(ValueError, match="iou_threshold"):
        detect(book_model, shapes_picture(), input_size=96, iou_threshold=0)
    with pytest.raises(ValueError, match="has no name"):
        detect(book_model, shapes_picture(), input_size=96, thresh=0.01, class_names=["circle"])


# --- reading pictures and names ---------------------------------------------------------------


def test_read_image_turns_every_kind_of_file_into_upright_rgb(tmp_path):
    rgb = np.zeros((4, 6, 3), np.uint8)
    rgb[0, 0] = (255, 0, 0)  # a red top-left pixel
    Image.fromarray(rgb).convert("L").save(tmp_path / "grey.png")
    Image.fromarray(rgb).convert("RGBA").save(tmp_path / "alpha.png")
    Image.fromarray(rgb).convert("P").save(tmp_path / "palette.bmp")
    for name in ("grey.png", "alpha.png", "palette.bmp"):
        array = read_image(tmp_path / name)
        assert array.dtype == np.uint8 and array.shape == (4, 6, 3), name
    # EXIF orientation 6 (the camera was turned): a viewer rotates 90 degrees clockwise
    photo = np.zeros((8, 12, 3), np.uint8)
    photo[:4, :4] = (255, 0, 0)  # a red block at the top left
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(photo).save(tmp_path / "turned.jpg", exif=exif, quality=100, subsampling=0)
    turned = read_image(tmp_path / "turned.jpg")
    assert turned.shape == (12, 8, 3)  # width and height swapped
    assert turned[1, -2, 0] > 200 and turned[1, -2, 1] < 60  # the red block is now at the top right
    assert turned[1, 1, 0] < 60


def test_read_image_names_a_file_that_is_not_an_image(tmp_path):
    (tmp_path / "notes.jpg").write_text("not a picture")
    with pytest.raises(ValueError, match=r"cannot read .*notes.jpg as an image"):
        read_image(tmp_path / "notes.jpg")


def test_read_names_reads_one_name_a_line(tmp_path):
    (tmp_path / "my.names").write_text("cat\n dog \n\n")
    assert read_names(tmp_path / "my.names") == ["cat", "dog"]
    (tmp_path / "empty.names").write_text("\n\n")
    with pytest.raises(ValueError, match="holds no class name"):
        read_names(tmp_path / "empty.names")
    assert len(VOC_CLASSES) == 20 and VOC_CLASSES[14] == "person"  # Darknet's data/voc.names


# --- the command --------------------------------------------------------------------------------


@pytest.fixture
def pictures(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "pictures"
    folder.mkdir()
    Image.fromarray(shapes_picture(250)).save(folder / "a.png")
    Image.fromarray(shapes_picture(251, size=128)).save(folder / "b.jpg", quality=95)
    return folder


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = command.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_the_command_writes_pictures_and_json_and_prints_darknets_lines(pictures, capsys, book_model):
    code, out, _ = run(capsys, str(pictures), "--thresh", "0.3")
    assert code == 0
    written = Path("runs/detect")
    assert sorted(p.name for p in written.iterdir()) == ["a.png", "b.png", "detections.json"]
    saved = json.loads((written / "detections.json").read_text())
    assert saved["settings"] == {"weights": "book", "model": None, "size": 96, "thresh": 0.3, "nms": 0.45}
    first = saved["images"][0]
    assert (first["image"], first["width"], first["height"]) == (str(pictures / "a.png"), 96, 96)
    found = detect(book_model, pictures / "a.png", input_size=96, thresh=0.3, class_names=SHAPE_CLASSES)
    assert first["detections"] == found.as_dicts()
    assert out.splitlines()[: 1 + len(found)] == [f"{pictures / 'a.png'}: {len(found)} boxes", *found.lines()]
    assert Image.open(written / "a.png").size == (96, 96)


def test_each_run_gets_a_new_folder_and_a_named_one_must_be_new_or_empty(pictures, capsys):
    assert run(capsys, str(pictures / "a.png"))[0] == 0
    first = tree(Path("runs/detect"))
    assert run(capsys, str(pictures / "a.png"))[0] == 0
    assert Path("runs/detect-2/detections.json").is_file()
    assert tree(Path("runs/detect")) == first  # the earlier run untouched
    code, out, err = run(capsys, str(pictures / "a.png"), "--out", "runs/detect")
    assert code == 2 and err == "error: expected --out to be a new or empty folder, runs/detect already holds files\n"
    assert tree(Path("runs/detect")) == first
    Path("empty").mkdir()
    assert run(capsys, str(pictures / "a.png"), "--out", "empty")[0] == 0


def test_an_unreadable_picture_is_named_and_the_others_are_processed(pictures, capsys):
    (pictures / "broken.png").write_bytes(b"\x89PNG but not really")
    code, out, err = run(capsys, str(pictures))
    assert code == 1
    assert "skipped: cannot read" in err and "broken.png" in err.splitlines()[-1]
    saved = json.loads(Path("runs/detect/detections.json").read_text())
    assert [Path(i["image"]).name for i in saved["images"]] == ["a.png", "b.jpg"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["nowhere.png"], "expected an image file, a folder or a glob pattern, got nowhere.png (no such file)"),
        (["*.gif"], "expected the pattern *.gif to match image files, it matches none"),
        (["PICTURES", "--model", "yolov3"], "--model yolov3 needs --weights: the file of that network's weights"),
        (["PICTURES", "--weights", "BOOK"], "a .weights file holds no network description: name its network with"),
        (["PICTURES", "--weights", "BOOK", "--model", "yolov3"], "does not fit yolov3 (yolov3.cfg, 80 COCO classes)"),
        (["PICTURES", "--weights", "PICTURES/a.png"], "expected a checkpoint written by yolo_lessons.train"),
        (["PICTURES", "--names", "missing.names"], "cannot read the names file missing.names"),
        (["PICTURES", "--size", "100"], "expected --size to be a positive multiple of 32"),
        (["PICTURES", "--thresh", "1"], "expected --thresh in [0, 1), got 1.0"),
        (["PICTURES", "--device", "cuda"] if not torch.cuda.is_available() else ["PICTURES", "--nms", "0"],
         "cuda" if not torch.cuda.is_available() else "--nms"),
    ],
)
def test_bad_input_gets_one_line_exit_2_and_nothing_written(pictures, capsys, args, message):
    args = [a.replace("PICTURES", str(pictures)).replace("BOOK", str(BOOK_WEIGHTS)) for a in args]
    code, out, err = run(capsys, *args)
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and message in err
    assert not Path("runs").exists()


def test_too_few_names_for_the_model_is_refused(pictures, capsys):
    Path("two.names").write_text("circle\nsquare\n")
    code, _, err = run(capsys, str(pictures), "--names", "two.names")
    assert code == 2 and err == "error: expected 3 class names for this model, the names file has 2\n"
    assert not Path("runs").exists()


def test_a_darknet_weights_file_with_its_network(pictures, capsys, tmp_path):
    from yolo_lessons.darknet.weights import save_darknet_weights

    torch.manual_seed(0)
    model = yolov2(num_classes=20).eval()
    save_darknet_weights(model, tmp_path / "voc.weights")
    code, out, _ = run(capsys, str(pictures / "a.png"), "--weights", str(tmp_path / "voc.weights"),
                       "--model", "yolov2-voc", "--size", "320", "--thresh", "0.0001")
    assert code == 0
    saved = json.loads(Path("runs/detect/detections.json").read_text())
    assert saved["settings"]["size"] == 320
    assert {d["name"] for d in saved["images"][0]["detections"]} <= set(VOC_CLASSES)


def test_help_shows_examples(capsys):
    with pytest.raises(SystemExit) as stop:
        command.main(["--help"])
    assert stop.value.code == 0
    text = capsys.readouterr().out
    assert "python -m yolo_lessons.detect photo.jpg --weights yolov3.weights --model yolov3" in text
