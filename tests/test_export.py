"""The export command and its ONNX files: equal to PyTorch, any batch and size, decodable by detect."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib import cbook
from PIL import Image

pytest.importorskip("onnxruntime")  # pinned in requirements.txt; `pip install .` alone does not bring it

from yolo_lessons import detect as detect_command  # noqa: E402
from yolo_lessons import export as command  # noqa: E402
from yolo_lessons.darknet.book_weights import BOOK_ANCHORS, BOOK_WEIGHTS, load_book_model  # noqa: E402
from yolo_lessons.darknet.coco import COCO_CLASSES  # noqa: E402
from yolo_lessons.data.shapes import SHAPE_CLASSES, make_image  # noqa: E402
from yolo_lessons.export import OnnxRuntimeModel, default_out, export_onnx, max_relative_difference  # noqa: E402
from yolo_lessons.models.yolov3 import ANCHOR_MASKS, COCO_ANCHORS, yolov3  # noqa: E402

PHOTO = Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))  # 512 x 600, shipped by matplotlib
TOLERANCE = 1e-4  # the bound: ONNX Runtime within 1e-4 relative of PyTorch


def run(capsys, main, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def book_export(tmp_path_factory):
    """The command run once on its default input, the book's model: (exit code, stdout, the file)."""
    folder = tmp_path_factory.mktemp("book")
    path = folder / "book.onnx"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = command.main(["--out", str(path)])
    return code, printed.getvalue().splitlines(), path


@pytest.fixture(scope="module")
def yolov3_file(tmp_path_factory):
    """YOLOv3 (seeded random weights, BatchNorm statistics made non-trivial) exported at 64 x 64."""
    torch.manual_seed(0)
    model = yolov3(num_classes=80).eval()
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):  # else folding would fold identities only
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    path = tmp_path_factory.mktemp("yolov3") / "yolov3.onnx"
    export_onnx(model, path, COCO_CLASSES, 64)
    return model, path


def test_the_command_exports_the_books_model_and_says_ok_only_after_comparing(book_export):
    code, lines, path = book_export
    assert code == 0 and path.is_file()
    compared = [line for line in lines if line.startswith("onnxruntime vs torch on a shapes picture")]
    # the picture at --size (96, the book model's), then two of it one stride (16 px) taller
    assert [line.split(",")[1].split(":")[0] for line in compared] == [" 1 x 3 x 96 x 96", " 2 x 3 x 112 x 96"]
    assert all(float(line.rsplit(" ", 1)[1]) <= TOLERANCE for line in compared)
    assert lines[-1].startswith(f"ok: {path}")
    assert [p.name for p in path.parent.iterdir()] == ["book.onnx"]  # the partial file it was checked in renamed


def test_the_books_model_runs_the_same_in_onnxruntime_at_any_batch_and_size(book_export):
    _, _, path = book_export
    exported, model = OnnxRuntimeModel(path), load_book_model()
    torch.manual_seed(0)
    for shape in [(1, 3, 96, 96), (3, 3, 64, 128), (2, 3, 160, 48)]:  # multiples of its stride, 16
        x = torch.rand(shape)
        with torch.no_grad():
            want = model(x)
        got = exported(x)
        assert got.shape == want.shape == (shape[0], 40, shape[2] // 16, shape[3] // 16)  # 5 anchors * (5 + 3)
        assert max_relative_difference(got, want) <= TOLERANCE


def test_the_file_carries_what_decoding_needs(book_export, yolov3_file):
    book = OnnxRuntimeModel(book_export[2])
    assert (book.network, book.head_kind, book.masks, book.strides) == ("SmallYOLOv2", "region", None, (16,))
    assert torch.allclose(book.anchors, torch.tensor(BOOK_ANCHORS))  # in grid cells, as the [region] head reads them
    assert (book.num_classes, book.class_names, book.input_size) == (3, SHAPE_CLASSES, 96)
    v3 = OnnxRuntimeModel(yolov3_file[1])
    assert (v3.network, v3.head_kind, v3.masks, v3.strides) == ("YOLOv3", "yolo", ANCHOR_MASKS, (32, 16, 8))
    assert torch.equal(v3.anchors, torch.tensor(COCO_ANCHORS, dtype=torch.float32))  # input pixels, yolov3.cfg
    assert (v3.num_classes, v3.class_names, v3.input_size) == (80, COCO_CLASSES, 64)
    import onnx

    keys = {p.key for p in onnx.load(str(yolov3_file[1]), load_external_data=False).metadata_props}
    assert {"yolo_lessons.head", "yolo_lessons.anchors", "yolo_lessons.masks", "yolo_lessons.class_names"} <= keys


def test_yolov3_runs_the_same_in_onnxruntime_through_one_file_at_two_batches_and_sizes(yolov3_file):
    model, path = yolov3_file
    exported = OnnxRuntimeModel(path, threads=2)
    torch.manual_seed(0)
    for shape in [(1, 3, 64, 64), (2, 3, 96, 128)]:  # the export's size, then another batch and a wide picture
        x = torch.rand(shape)
        with torch.no_grad():
            want = model(x)
        got = exported(x)
        h, w = shape[2] // 32, shape[3] // 32
        assert [tuple(g.shape) for g in got] == [(shape[0], 255, h * k, w * k) for k in (1, 2, 4)]  # 3 * (5 + 80)
        assert max_relative_difference(got, want) <= TOLERANCE
    with pytest.raises(ValueError, match="multiples of 32"):
        exported(torch.rand(1, 3, 64, 80))  # what the PyTorch model refuses, the file refuses too


def shapes_picture(index: int, size: int) -> np.ndarray:
    image, _ = make_image(index, seed=1000, size=size)
    return (image.transpose(1, 2, 0) * 255).round().astype(np.uint8)


def test_detect_with_onnxruntime_finds_the_boxes_of_the_torch_engine(book_export, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Image.fromarray(shapes_picture(251, 128)).save("shapes.png")
    Image.open(PHOTO).save("photo.jpg")
    path = str(book_export[2])
    assert run(capsys, detect_command.main, "shapes.png", "photo.jpg", "--thresh", "0.2", "--out", "torch")[0] == 0
    code, out, _ = run(capsys, detect_command.main, "shapes.png", "photo.jpg", "--thresh", "0.2", "--out", "onnx",
                       "--weights", path)  # fmt: skip  (the .onnx suffix picks ONNX Runtime)
    assert code == 0
    code, again, _ = run(capsys, detect_command.main, "shapes.png", "--thresh", "0.2", "--out", "onnx-2",
                         "--weights", path, "--engine", "onnxruntime")  # fmt: skip
    assert code == 0 and again.splitlines()[0] == out.splitlines()[0]
    by_torch = json.loads(Path("torch/detections.json").read_text())["images"]
    by_onnx = json.loads(Path("onnx/detections.json").read_text())["images"]
    assert [len(i["detections"]) for i in by_torch] == [len(i["detections"]) for i in by_onnx]
    assert sum(len(i["detections"]) for i in by_torch) > 2  # (at .2 the shapes model sees shapes even in the photo)
    for picture_t, picture_o in zip(by_torch, by_onnx, strict=True):
        for a, b in zip(picture_t["detections"], picture_o["detections"], strict=True):
            assert (a["class"], a["name"]) == (b["class"], b["name"])
            assert a["score"] == pytest.approx(b["score"], abs=1e-5)  # the JSON rounds to 6 decimals
            assert a["box"] == pytest.approx(b["box"], abs=0.02)  # pixels, rounded to 2 decimals


def test_the_default_file_is_named_after_the_weights_and_numbered_when_taken(tmp_path):
    assert default_out("small_yolov2", tmp_path) == tmp_path / "small_yolov2.onnx"
    (tmp_path / "small_yolov2.onnx").touch()
    (tmp_path / "small_yolov2-2.onnx").touch()
    assert default_out("small_yolov2", tmp_path) == tmp_path / "small_yolov2-3.onnx"


def test_a_mismatch_is_exit_1_with_the_figures_and_no_file_kept(book_export, tmp_path, monkeypatch, capsys):
    import onnx

    def export_onnx(model, path, class_names, input_size):  # the real export, already made by the fixture
        shutil.copyfile(book_export[2], path)
        return {p.key: p.value for p in onnx.load(str(path)).metadata_props}

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(command, "export_onnx", export_onnx)
    monkeypatch.setattr(command, "max_relative_difference", lambda got, want: 2.5e-4)  # above the 1e-4 bound
    code, out, err = run(capsys, command.main, "--out", "mine.onnx")
    assert code == 1 and "max relative difference 2.5e-04" in out
    assert err == "error: ONNX Runtime differs from PyTorch by 2.5e-04 relative, more than 1e-04: no file written\n"
    assert list(tmp_path.iterdir()) == []  # neither mine.onnx nor the partial file it was written to


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("notes.txt").write_text("not weights")
    Path("taken.onnx").write_bytes(b"a user's file")
    return tmp_path


@pytest.mark.parametrize(
    "args, message",
    [
        (["--weights", "missing.pt"], "expected --weights to be a checkpoint or .weights file, got missing.pt"),
        (["--weights", "notes.txt"], "expected --weights to be a checkpoint (.pt) or a Darknet .weights file, got"),
        (["--weights", "taken.onnx"], "got taken.onnx: an ONNX file already"),
        (["--weights", "BOOK"], "a .weights file holds no network description: name its network with --model"),
        (["--weights", "BOOK", "--model", "yolov3"], "does not fit yolov3 (yolov3.cfg, 80 COCO classes)"),
        (["--model", "yolov3"], "--model yolov3 needs --weights"),
        (["--out", "taken.onnx"], "expected --out to be a new file, taken.onnx already exists"),
        (["--out", "model.pt"], "expected --out to name an .onnx file, got model.pt"),
        (["--size", "100"], "expected --size to be a positive multiple of 32"),
        (["--size", "0"], "expected --size to be a positive multiple of 32"),
        (["--model", "yolov9"], "argument --model: invalid choice: 'yolov9'"),
    ],
)
def test_bad_input_gets_one_line_exit_2_and_nothing_written(folder, capsys, args, message):
    args = [a.replace("BOOK", str(BOOK_WEIGHTS)) for a in args]
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    try:
        code, out, err = run(capsys, command.main, *args)
    except SystemExit as stop:  # argparse's own errors (CommandParser: one line too)
        code, (out, err) = stop.code, capsys.readouterr()
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and message in err
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # taken.onnx untouched, nothing new


@pytest.mark.parametrize(
    "args, message",
    [
        (["--engine", "onnxruntime"], "--engine onnxruntime runs an .onnx file"),
        (["--weights", "MODEL", "--engine", "torch"], "--engine torch runs a checkpoint or a .weights file"),
        (["--weights", "MODEL", "--model", "yolov3"], "--model is for Darknet .weights files"),
        (["--weights", "missing.onnx"], "expected --weights to be an ONNX file, got missing.onnx (no such file)"),
        (["--weights", "notes.onnx"], "expected an ONNX file, got notes.onnx, which ONNX Runtime cannot read"),
        (["--weights", "plain.onnx"], "whose metadata says nothing of how to decode its outputs"),
    ],
)
def test_detects_onnx_engine_refuses_what_it_cannot_run(book_export, folder, capsys, args, message):
    Image.fromarray(shapes_picture(250, 96)).save("a.png")
    Path("notes.onnx").write_text("not a graph")
    import onnx

    graph = onnx.load(str(book_export[2]))
    del graph.metadata_props[:]  # an ONNX file of someone else's: no word on decoding
    onnx.save(graph, "plain.onnx")
    args = [a.replace("MODEL", str(book_export[2])) for a in args]
    code, out, err = run(capsys, detect_command.main, "a.png", *args)
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and message in err
    assert not Path("runs").exists()
