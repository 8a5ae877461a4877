"""Checkpoints of the YOLOv1 chapter: output lengths, Darknet's layout, freezing a backbone."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from ..detection.decode import darknet_to_cell_major
from ..models.counting import count_parameters
from ..models.yolov1 import yolov1_output_length, yolov1_resnet50
from .common import CheckpointError, call, checkpoint, expect, integer_problem

# (S, B, C, class_per_box): the paper's network, its per-box variant, the ResNet version's 9x9 grid,
# and two shapes where no two formulas agree by accident.
_LENGTH_CASES = ((7, 2, 20, False), (7, 2, 20, True), (9, 2, 20, False), (4, 3, 2, False), (5, 3, 7, True))


def _length_mistake(s: int, b: int, c: int, per_box: bool, got: int) -> str | None:
    if not per_box and got == s * s * b * (5 + c):
        return (
            "classes counted once per box: YOLOv1 predicts one class distribution per cell, "
            "so a cell holds B*5 + C numbers"
        )
    if per_box and got == s * s * (b * 5 + c):
        return "with class_per_box=True every box carries its own C classes: a cell holds B*(5 + C) numbers"
    per_cell = b * (5 + c) if per_box else b * 5 + c
    if got == s * per_cell:
        return "the grid counted once: an S x S grid has S*S cells"
    if got == s * s * ((b * (4 + c)) if per_box else b * 4 + c):
        return "the confidence is missing: each box is x, y, w, h and a confidence, 5 numbers"
    return None


@checkpoint
def check_output_length(fn: Callable[..., int]) -> None:
    """``fn(grid_size, num_boxes, num_classes, class_per_box)`` must give YOLOv1's output length."""
    for s, b, c, per_box in _LENGTH_CASES:
        got = call(fn, s, b, c, per_box)
        expected = yolov1_output_length(s, b, c, per_box)
        if got == expected and integer_problem(got):
            raise CheckpointError(f"S={s}, B={b}, C={c}, class_per_box={per_box}: {integer_problem(got)}")
        if got != expected:
            known = _length_mistake(s, b, c, per_box, got)
            case = f"S={s}, B={b}, C={c}, class_per_box={per_box}"
            raise CheckpointError(f"{case}: {known}" if known else f"{case}: expected {expected}, got {got}")
    print(f"output lengths: {len(_LENGTH_CASES)} cases ok")
    print("S=7, B=2, C=20: 1470 with classes per cell, 2450 with classes per box")


def _labelled_vectors(s: int, b: int, c: int, n: int = 2) -> Tensor:
    """Darknet-layout vectors whose every value is distinct, so any misplaced value shows."""
    return torch.arange(n * yolov1_output_length(s, b, c), dtype=torch.float32).view(n, -1)


def _wrong_layouts(x: Tensor, s: int, b: int, c: int) -> dict[str, Tensor]:
    """What the known mistakes produce, each as a flat (N, L) vector."""
    n, cells = x.shape[0], s * s
    probs = x[:, : cells * c]
    start = cells * c  # where the confidences begin
    # read as classes, boxes, confidences: what fn sees as "confidences" are the last S*S*B numbers
    swapped = torch.cat([probs, x[:, start + cells * b * 4 :], x[:, start : start + cells * b * 4]], dim=1)
    reference = darknet_to_cell_major(x, s, b, c).view(n, cells, b * 5 + c)
    boxes, classes = reference[..., : b * 5], reference[..., b * 5 :]
    per_box = boxes.reshape(n, cells, b, 5)
    conf_first = torch.cat([per_box[..., 4:], per_box[..., :4]], -1).reshape(n, cells, b * 5)
    return {
        "boxes read before the confidences: after the S*S*C class probabilities Darknet stores "
        "the S*S*B confidences, then the S*S*B*4 box numbers": darknet_to_cell_major(swapped, s, b, c),
        "the classes come first in each cell: here a cell is B x (x, y, w, h, confidence), "
        "then the C classes": torch.cat([classes, boxes], -1).reshape(n, -1),
        "the confidence comes before x, y, w, h: here each box is x, y, w, h, confidence": torch.cat(
            [conf_first, classes], -1
        ).reshape(n, -1),
        "rows and columns swapped: Darknet's cell i is row i // S, column i % S, and cell-major "
        "keeps that row-major order": reference.view(n, s, s, -1).transpose(1, 2).reshape(n, -1),
    }


@checkpoint
def check_darknet_to_cell_major(fn: Callable[..., Tensor]) -> None:
    """``fn(output, S, B, C)`` must reorder (N, L) Darknet-layout vectors into cell-major (N, L)."""
    s, b, c = 3, 2, 4
    x = _labelled_vectors(s, b, c)
    expected = darknet_to_cell_major(x, s, b, c)
    got = call(fn, x.clone(), s, b, c)
    expect(isinstance(got, Tensor), f"expected a Tensor, got {type(got).__name__}")
    if got.shape != expected.shape:
        if got.numel() == expected.numel() and torch.equal(got.reshape(expected.shape), expected):
            raise CheckpointError(
                f"the numbers are in the right order, but return the flat shape {tuple(expected.shape)}, "
                f"not {tuple(got.shape)} (use .reshape(N, -1))"
            )
        raise CheckpointError(f"expected shape {tuple(expected.shape)}, got {tuple(got.shape)}")
    if not torch.equal(got, expected):
        for mistake, wrong in _wrong_layouts(x, s, b, c).items():
            if torch.equal(got, wrong):
                raise CheckpointError(mistake)
        bad = tuple((got != expected).nonzero()[0].tolist())
        raise CheckpointError(
            f"S={s}, B={b}, C={c}: first difference at {bad}: expected {expected[bad].item():.0f} "
            f"(the input's index), got {got[bad].item():.0f}; first cell expected "
            f"{expected[0, : b * 5 + c].long().tolist()}"
        )
    print(f"S={s}, B={b}, C={c}, batch {x.shape[0]}: every value in its cell-major place ok")


def _batchnorm_statistics(module: nn.Module) -> dict[str, Tensor]:
    """Every BatchNorm running mean and variance of ``module``, copied."""
    return {
        f"{name}.{key}": getattr(m, key).clone()
        for name, m in module.named_modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None
        for key in ("running_mean", "running_var")
    }


@checkpoint
def check_freeze_backbone(fn: Callable[[nn.Module], object]) -> None:
    """``fn(model)`` must freeze ``model.backbone`` of a ``yolov1_resnet50(freeze_backbone=False)``:
    no gradient into it, and its BatchNorm statistics fixed even after ``model.train()``."""
    model = yolov1_resnet50(freeze_backbone=False)
    total = count_parameters(model)
    head = count_parameters(model.head)
    backbone_bn = sum(
        p.numel() for m in model.backbone.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters()
    )
    call(fn, model)
    trainable = count_parameters(model)
    if trainable == total:
        raise CheckpointError(
            "nothing was frozen: model.eval() and `model.backbone.requires_grad = False` do not stop "
            "gradients; call requires_grad_(False) on the backbone (or on each of its parameters)"
        )
    if trainable == head + backbone_bn:
        raise CheckpointError(
            f"only the convolution weights were frozen: the backbone's {backbone_bn:,} BatchNorm "
            "weights and biases still train"
        )
    expect(trainable != 0, "the head was frozen too: only model.backbone should stop training")
    expect(
        all(p.requires_grad for p in model.head.parameters()),
        f"part of the head was frozen: {trainable:,} trainable parameters, expected {head:,}",
    )
    expect(trainable == head, f"expected {head:,} trainable parameters (the head), got {trainable:,}")
    _check_frozen_through_train(model)
    print(f"trainable: {trainable:,} (the head) ok")
    print(f"frozen: {total - trainable:,} (the ResNet-50 backbone) ok")
    print("backbone BatchNorm statistics after model.train() and a batch: unchanged ok")


def _check_frozen_through_train(model: nn.Module) -> None:
    """What a training loop does, ``model.train()`` then a batch: the backbone's BatchNorm
    statistics must not move and the backbone must not normalise with the batch's own."""
    before = _batchnorm_statistics(model.backbone)
    layers = [m for m in model.backbone.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    call(model.train)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))  # 2 x 2 features
    with torch.no_grad():
        call(model, x)
    after = _batchnorm_statistics(model.backbone)
    moved = {name.rsplit(".", 1)[0] for name in before if not torch.equal(before[name], after[name])}
    training = sum(m.training for m in layers)
    if moved:
        where = (
            f"after model.train() {training} of the backbone's {len(layers)} BatchNorm layers are back in "
            f"training mode, so one batch changed the running statistics of {len(moved)} of them"
            if training
            else f"one batch after model.train() changed the running statistics of {len(moved)} of the "
            f"backbone's {len(layers)} BatchNorm layers"
        )
        raise CheckpointError(
            f"{where}: fine-tuning would drift them away from the loaded ones. A single eval() does not "
            "last, because model.train() sets every submodule's mode; keep the backbone in eval mode "
            "after every model.train(), as YOLOv1ResNet50.train() does"
        )
    expect(
        training == 0,
        f"after model.train() {training} of the backbone's {len(layers)} BatchNorm layers are in "
        "training mode: their running statistics did not move, but in training mode BatchNorm "
        "normalises with each batch's own statistics instead of the loaded ones",
    )
    expect(
        model.head.training and all(m.training for m in model.head.modules()),
        "after model.train() the head is not in training mode: its dropout and BatchNorm should "
        "train; only the backbone stays in eval mode",
    )
    call(model.eval)
    expect(
        not any(m.training for m in model.modules()),
        "after model.eval() part of the model is still in training mode: eval() must reach the head",
    )
