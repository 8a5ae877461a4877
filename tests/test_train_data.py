"""python -m yolo_lessons.train --data: a labelled set on disk instead of the shapes (issue 20).

The sets are the book's shapes written in Darknet's layout (``data.shapes_folder``), small
enough that a run of a few steps takes a second or two.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from yolo_lessons.darknet.book_weights import BOOK_WEIGHTS, load_book_model, small_yolov2_layers
from yolo_lessons.data.multiscale import multiscale_size
from yolo_lessons.data.shapes_folder import write_shapes_set
from yolo_lessons.models.small_yolov2 import small_yolov2
from yolo_lessons.train import (
    LabelledSource,
    StepBatches,
    TrainConfig,
    finetune_from,
    main,
    train,
)

QUICK = dict(steps=6, batch_size=4, image_size=64, width=4, eval_every=0, workers=0, threads=1, progress=False,
             verbose=False)  # fmt: skip


@pytest.fixture(scope="module")
def shapes_set(tmp_path_factory):
    """16 training and 4 held-out shapes pictures at 64 px, as Darknet lays a set out."""
    return write_shapes_set(tmp_path_factory.mktemp("set") / "shapes", train=16, valid=4, size=64)


def copy_set(data, tmp_path):
    """A copy of the set whose lists point at the copy's pictures."""
    root = tmp_path / "copy"
    shutil.copytree(data.parent, root)
    for name in ("train.txt", "valid.txt", "shapes.data"):
        path = root / name
        path.write_text(path.read_text().replace(str(data.parent.resolve()), str(root.resolve())))
    return root / "shapes.data"


def test_a_labelled_set_resumed_from_a_checkpoint_computes_the_same_losses(shapes_set, tmp_path):
    # augmentation, multi-scale and epochs over 16 pictures all depend on (seed, step) alone
    options = dict(QUICK, data=str(shapes_set), multiscale=(32, 96), save_every=0)
    whole = train(**options, out=str(tmp_path / "whole"))
    train(**options, out=str(tmp_path / "broken"), stop_after=3)
    resumed = train(**{**options, "out": str(tmp_path / "broken")}, resume="auto")
    assert len(whole.losses) == 6
    assert resumed.losses == whole.losses
    assert all(np.isfinite(whole.losses))


def test_each_step_trains_at_the_multiscale_size_of_its_step(shapes_set):
    config = TrainConfig(**{**QUICK, "steps": 40}, data=str(shapes_set), multiscale=(32, 96))
    source = LabelledSource(config)
    sizes = [StepBatches(source, 0, 40, 0, 1)[k][0].shape[-1] for k in (0, 10, 20, 39)]
    # the last period holds the largest size (Darknet: the last 200 of 80,200 batches, at least one period)
    expected = [multiscale_size(s, 40, 0, 32, 96, every=10, final=10) for s in (0, 10, 20, 39)]
    assert sizes == expected and sizes[-1] == 96
    assert all(size in (32, 64, 96) for size in sizes)


def test_a_set_with_a_bad_label_is_refused_in_one_line_naming_it_unless_skip_bad(shapes_set, tmp_path, capsys):
    data = copy_set(shapes_set, tmp_path)
    bad = data.parent / "labels" / "train" / "000003.txt"
    bad.write_text(bad.read_text() + "7 0.5 0.5 0.2 0.2\n")  # class 7 of 3 names
    argv = ["--data", str(data), "--steps", "2", "--batch-size", "4", "--image-size", "64", "--width", "4",
            "--eval-every", "0", "--workers", "0", "--no-progress"]  # fmt: skip
    out = tmp_path / "run"
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "000003.txt, line" in err[0] and "class 7" in err[0]
    assert "python -m yolo_lessons.data check" in err[0] and "--skip-bad" in err[0]
    assert not out.exists()  # refused before anything was written
    assert main([*argv, "--out", str(out), "--skip-bad"]) == 0
    assert "1 picture(s) with problems skipped" in capsys.readouterr().out


def test_data_options_without_data_are_refused(capsys):
    assert main(["--multiscale", "64", "128", "--out", "unused"]) == 2
    assert "expected --data too" in capsys.readouterr().err
    with pytest.raises(ValueError, match="multiple of 32"):
        TrainConfig(data=".", multiscale=(64, 100)).check()


def test_a_plain_folder_is_split_by_a_seeded_fraction(shapes_set, tmp_path):
    folder = tmp_path / "folder"
    shutil.copytree(shapes_set.parent / "images", folder / "images")
    shutil.copytree(shapes_set.parent / "labels", folder / "labels")
    shutil.copy(shapes_set.parent / "shapes.names", folder)
    config = TrainConfig(**QUICK, data=str(folder), valid_fraction=0.25)
    first, again = LabelledSource(config), LabelledSource(config)
    assert (len(first.train), len(first.valid)) == (15, 5)  # 20 pictures, a quarter held out
    assert first.valid.paths == again.valid.paths  # seeded
    assert not set(first.train.paths) & set(first.valid.paths)


def test_finetuning_from_the_books_weights_copies_every_layer_but_the_detector_exactly():
    book = load_book_model()
    torch.manual_seed(0)
    model = small_yolov2(num_classes=5, anchors=[(1.0, 1.0), (2.0, 2.0)], width=8)  # new classes, new anchors
    head_before = model.detect.weight.detach().clone()
    finetune_from(model, str(BOOK_WEIGHTS))
    pairs = list(zip(small_yolov2_layers(book), small_yolov2_layers(model), strict=True))
    for source, target in pairs[:-1]:
        for a, b in zip(source.tensors(), target.tensors(), strict=True):
            assert torch.equal(a, b), f"layer {target.index}"
    assert torch.equal(model.detect.weight, head_before)  # the detector keeps its initial values
    assert model.detect.out_channels == 2 * (5 + 5)  # filters = A * (5 + C)


def test_finetuning_with_a_cutoff_copies_only_the_layers_before_it():
    torch.manual_seed(0)
    model = small_yolov2(num_classes=3, anchors=[(1.0, 1.0)], width=8)
    fuse_before = model.fuse.conv.weight.detach().clone()
    finetune_from(model, str(BOOK_WEIGHTS), upto=17)  # the stages and the two extra convs (cfg 0..16)
    assert torch.equal(model.extra[-1].conv.weight, load_book_model().extra[-1].conv.weight)
    assert torch.equal(model.fuse.conv.weight, fuse_before)
    with pytest.raises(ValueError, match="detector"):
        finetune_from(model, str(BOOK_WEIGHTS), upto=23)


def test_finetuning_refuses_a_weights_file_of_another_width():
    narrow = small_yolov2(num_classes=3, anchors=[(1.0, 1.0)], width=4)  # the book's file is width 8
    before = narrow.stages[0][0].conv.weight.detach().clone()
    with pytest.raises(ValueError, match="does not hold small_yolov2 width 4"):
        finetune_from(narrow, str(BOOK_WEIGHTS))
    assert torch.equal(narrow.stages[0][0].conv.weight, before)  # nothing copied


def test_a_finetuned_run_trains_the_new_head(shapes_set):
    history = train(**{**QUICK, "width": 8, "steps": 3}, data=str(shapes_set), finetune=str(BOOK_WEIGHTS), out=None)
    assert all(np.isfinite(history.losses))
    book = load_book_model()
    model = history.model
    assert not torch.equal(model.detect.weight, torch.zeros_like(model.detect.weight))
    changed = (model.stages[0][0].conv.weight - book.stages[0][0].conv.weight).abs().max()
    assert 0 < changed < 0.1  # the backbone started from the book's weights and moved a little
