"""Checks behind chapter 6 (YOLOv3: three scales).

* ``check_stride16_path``: the lateral 1x1 conv, 2x nearest upsample, concatenation
  (upsampled map first, the cfg's ``[route] layers = -1, 61``), ``conv_set`` and
  ``detector`` of the stride-16 head, compared with the package's YOLOv3 pieces.
* ``check_count_candidate_boxes``: how many boxes the three heads propose.
* ``check_decode_one``: one hand-made prediction decoded into a box, as ``[yolo]`` does.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..detection.decode import decode_yolov3
from ..models.blocks import ConvBlock
from ..models.yolov3 import STRIDES, conv_set, detector
from .common import (
    CheckpointError,
    CopyError,
    build,
    call,
    call_order,
    checkpoint,
    copy_weights,
    count_parameters,
    expect,
    integer_problem,
    learner_code,
    passed,
)

PATH_NAMES = ("lateral16", "neck16", "detect16")


# ---------------------------------------------------------------------------------------
# Exercise 1: the stride-16 path
# ---------------------------------------------------------------------------------------


def _reference_path(num_classes: int) -> nn.Module:
    """The package's stride-16 pieces, under the names YOLOv3 gives them."""
    path = nn.Module()
    path.lateral16 = ConvBlock(512, 256, 1)
    path.neck16 = conv_set(256 + 512, 256)
    path.detect16 = detector(256, 3 * (5 + num_classes))
    return path


def _randomise(module: nn.Module, seed: int) -> None:
    """Give every parameter and BatchNorm statistic a seeded random value, so that a
    wrong wiring cannot hide behind BatchNorm's identity-like initial state."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if not tensor.is_floating_point():
                continue
            if name.endswith("running_var"):
                tensor.copy_(0.5 + torch.rand(tensor.shape, generator=generator))
            else:
                tensor.copy_(0.2 * torch.randn(tensor.shape, generator=generator))


def _path_forward(
    path: nn.Module,
    p32: Tensor,
    stride16: Tensor,
    *,
    backbone_first: bool = False,
    mode: str | None = "nearest",
    align_corners: bool | None = None,
) -> tuple[Tensor, Tensor]:
    """The stride-16 path, with switches that reproduce the known mistakes."""
    lateral = path.lateral16(p32)
    if mode is not None:
        lateral = F.interpolate(lateral, scale_factor=2, mode=mode, align_corners=align_corners)
    parts = [stride16, lateral] if backbone_first else [lateral, stride16]
    p16 = path.neck16(torch.cat(parts, dim=1))
    return p16, path.detect16(p16)


KNOWN_PATH_MISTAKES = (
    (
        dict(backbone_first=True),
        "concatenation in the wrong order: the backbone's stride-16 map came first; the cfg's "
        "[route] layers = -1, 61 puts the upsampled tensor (-1) first, then layer 61",
    ),
    (
        dict(mode="bilinear", align_corners=False),
        "wrong upsampling mode: bilinear; YOLOv3's [upsample] repeats each value (mode='nearest')",
    ),
    (
        dict(mode="bilinear", align_corners=True),
        "wrong upsampling mode: bilinear (align_corners=True); YOLOv3's [upsample] repeats each value (mode='nearest')",
    ),
    (
        dict(mode="bicubic", align_corners=False),
        "wrong upsampling mode: bicubic; YOLOv3's [upsample] repeats each value (mode='nearest')",
    ),
    (
        dict(backbone_first=True, mode="bilinear", align_corners=False),
        "concatenation in the wrong order (backbone map first) and wrong upsampling mode (bilinear instead of nearest)",
    ),
)


def _load_into(learner: nn.Module, reference: nn.Module, p32: Tensor, stride16: Tensor) -> str:
    """Copy the reference weights into the learner's module by role: which conv or BatchNorm
    it is, in the order the forward passes call them (names and creation order do not matter;
    a module that is never called is left alone). Returns how it was done."""
    with torch.no_grad():
        reference_order = call_order(reference, lambda: _path_forward(reference, p32, stride16))
    try:
        learner_order = call_order(learner, lambda: _run_path(learner, p32, stride16))
    except CheckpointError:
        learner_order = []
    try:
        copy_weights(reference, learner, reference_order, learner_order)
    except CopyError as exc:
        raise CheckpointError(
            f"the weights of lateral16, neck16 and detect16 do not fit your module: {exc}"
        ) from None
    return "by role"


def _run_path(module: nn.Module, p32: Tensor, stride16: Tensor):
    module.eval()
    try:
        with torch.no_grad(), learner_code():
            return module(p32, stride16)
    except NotImplementedError as exc:
        raise CheckpointError(f"not implemented yet: {exc}") from None
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        if "Sizes of tensors must match" in first:
            raise CheckpointError(
                f"missing upsample: the lateral map is {tuple(p32.shape[-2:])} but the backbone's "
                f"stride-16 map is {tuple(stride16.shape[-2:])}; upsample 2x (nearest) before the "
                f"concatenation (torch said: {first})"
            ) from None
        raise CheckpointError(
            f"the forward pass on p32 {tuple(p32.shape)} and stride16 {tuple(stride16.shape)} failed: {first}"
        ) from None


def _used_parameters(module: nn.Module) -> int:
    """Parameters of the submodules the forward pass calls (all of them if it fails): a
    leftover module that is never called does not count."""
    generator = torch.Generator().manual_seed(16)
    p32, stride16 = torch.randn(1, 512, 2, 2, generator=generator), torch.randn(1, 512, 4, 4, generator=generator)
    try:
        used = call_order(module, lambda: _run_path(module, p32, stride16))
    except CheckpointError:
        return count_parameters(module)
    return sum(p.numel() for m in used for p in m.parameters(recurse=False))


def _as_pair(result) -> tuple[Tensor, Tensor]:
    expect(
        isinstance(result, (tuple, list)) and len(result) == 2 and all(isinstance(t, Tensor) for t in result),
        f"forward should return (p16, output16), two tensors; got {type(result).__name__}",
    )
    return result[0], result[1]


@checkpoint
def check_stride16_path(path_class: Callable[..., nn.Module]) -> None:
    """Check a module ``path_class(num_classes)`` whose ``forward(p32, stride16)`` returns
    ``(p16, output16)``: the neck output that feeds the stride-8 path and the head output."""
    for classes in (80, 20):
        module = build(path_class, classes)
        reference = _reference_path(classes)
        transposed = [n for n, m in module.named_modules() if isinstance(m, nn.ConvTranspose2d)]
        expect(
            not transposed,
            f"learned upsampling ({', '.join(transposed)} is a ConvTranspose2d): YOLOv3's [upsample] "
            "has no weights, it repeats each value 2x2 (F.interpolate, mode='nearest')",
        )
        expected, got = count_parameters(reference), _used_parameters(module)
        expect(
            not (classes == 20 and got == count_parameters(_reference_path(80))),
            "with num_classes=20 the module still has the 80-class parameter count: the detector's "
            "output channels must be 3 * (5 + num_classes), not a fixed 255",
        )
        expect(
            got == expected,
            f"with num_classes={classes}: expected {expected:,} parameters "
            f"(lateral16 {count_parameters(reference.lateral16):,}, neck16 {count_parameters(reference.neck16):,}, "
            f"detect16 {count_parameters(reference.detect16):,}), got {got:,}",
        )
    print(
        f"parameters: {count_parameters(_reference_path(80)):,} for 80 classes, "
        f"{count_parameters(_reference_path(20)):,} for 20: ok"
    )

    reference = _reference_path(80)
    _randomise(reference, seed=6)
    reference.eval()
    module = build(path_class, 80)
    generator = torch.Generator().manual_seed(16)
    p32 = torch.randn(1, 512, 4, 4, generator=generator)  # the neck32 output (13x13 at 416)
    stride16 = torch.randn(1, 512, 8, 8, generator=generator)  # the backbone's stride-16 map
    how = _load_into(module, reference, p32, stride16)
    p16, out16 = _as_pair(_run_path(module, p32, stride16))
    with torch.no_grad():
        want_p16, want_out16 = _path_forward(reference, p32, stride16)
    expect(
        tuple(p16.shape) == tuple(want_p16.shape) and tuple(out16.shape) == tuple(want_out16.shape),
        f"expected p16 {tuple(want_p16.shape)} and output16 {tuple(want_out16.shape)}, "
        f"got {tuple(p16.shape)} and {tuple(out16.shape)}",
    )
    if not (torch.allclose(p16, want_p16, atol=1e-4) and torch.allclose(out16, want_out16, atol=1e-4)):
        with torch.no_grad():
            for switches, message in KNOWN_PATH_MISTAKES:
                wrong_p16, wrong_out16 = _path_forward(reference, p32, stride16, **switches)
                if torch.allclose(p16, wrong_p16, atol=1e-4) and torch.allclose(out16, wrong_out16, atol=1e-4):
                    raise CheckpointError(message)
        worst = (out16 - want_out16).abs().max().item()
        raise CheckpointError(
            f"same weights (loaded {how}), different outputs: output16 differs by up to {worst:.3g}; "
            f"expected output16[0, :3, 0, 0] = {[round(v, 4) for v in want_out16[0, :3, 0, 0].tolist()]}, "
            f"got {[round(v, 4) for v in out16[0, :3, 0, 0].tolist()]}"
        )
    passed(f"p16 {tuple(p16.shape)} and output16 {tuple(out16.shape)} equal the package's\n"
           f"  (weights loaded {how}): ok")


# ---------------------------------------------------------------------------------------
# Exercise 2: how many candidate boxes
# ---------------------------------------------------------------------------------------

BOX_COUNT_CASES = ((416, 3), (320, 3), (608, 3), (416, 1), (256, 2))


def expected_box_count(input_size: int, anchors_per_scale: int = 3) -> int:
    """Count what ``decode_yolov3`` returns for all-zero head outputs of this size."""
    outputs = [torch.zeros(1, anchors_per_scale * 6, input_size // s, input_size // s) for s in STRIDES]
    masks = tuple(tuple(range(anchors_per_scale)) for _ in STRIDES)
    anchors = torch.ones(anchors_per_scale, 2)
    return decode_yolov3(outputs, anchors, masks, input_size).boxes.shape[1]


@checkpoint
def check_count_candidate_boxes(count: Callable[[int, int], int]) -> None:
    """Check ``count(input_size, anchors_per_scale)`` against the boxes decode_yolov3 returns."""
    for size, anchors in BOX_COUNT_CASES:
        got = call(count, size, anchors)
        expected = expected_box_count(size, anchors)
        if got == expected:
            expect(not integer_problem(got), f"input_size={size}, anchors_per_scale={anchors}: {integer_problem(got)}")
            continue
        cells = sum((size // s) ** 2 for s in STRIDES)
        known = (
            (cells, "counted grid cells, not boxes: every cell of every head predicts one box per anchor"),
            (
                anchors * (size // 32) ** 2,
                "counted only the stride-32 head; the stride-16 and stride-8 heads predict boxes too",
            ),
            (anchors * (size // 8) ** 2, "counted only the stride-8 head; add the stride-32 and stride-16 heads"),
            (3 * cells, "ignored anchors_per_scale (used 3 whatever the argument)"),
            (
                3 * anchors * cells,
                "multiplied by the anchors twice (or used all nine anchors at every "
                "scale): each head has only anchors_per_scale anchors per cell",
            ),
        )
        named = next((f"{message}: " for value, message in known if got == value), "")
        raise CheckpointError(
            f"{named}for input_size={size}, anchors_per_scale={anchors} expected {expected:,} "
            f"candidate boxes, got {got!r}"
        )
    cases = ", ".join(f"{s} -> {expected_box_count(s, a):,}" for s, a in BOX_COUNT_CASES if a == 3)
    passed(f"{len(BOX_COUNT_CASES)} input sizes and anchor counts match decode_yolov3\n"
           f"  ({cases}): ok")


# ---------------------------------------------------------------------------------------
# Exercise 3: decode one prediction
# ---------------------------------------------------------------------------------------

# (prediction tx, ty, tw, th, to, class logits...), column, row, anchor (pixels), grid, input
DECODE_CASES = (
    ((0.5, -1.0, 0.3, -0.2, 1.2, 2.0, -1.0, 0.5), 4, 7, (116.0, 90.0), 13, 416),
    ((-0.4, 0.8, -0.5, 0.6, -0.3, -0.5, 1.5, 0.0), 30, 11, (10.0, 13.0), 52, 416),
)


def _decode_variant(
    prediction: Tensor, column: int, row: int, anchor, grid: int, size: int, mistake: str
) -> tuple[Tensor, Tensor, Tensor]:
    t = prediction
    sx, sy = torch.sigmoid(t[0]), torch.sigmoid(t[1])
    if mistake == "no sigmoid":
        sx, sy = t[0], t[1]
    if mistake == "row and column swapped":
        column, row = row, column
    x, y = (column + sx) / grid, (row + sy) / grid
    if mistake == "cell units":
        x, y = column + sx, row + sy
    scale = grid if mistake == "anchors over grid" else size
    growth = t[2:4] if mistake == "no exp" else torch.exp(t[2:4])
    wh = torch.tensor(anchor) / scale * growth
    classes = torch.softmax(t[5:], 0) if mistake == "softmax" else torch.sigmoid(t[5:])
    return torch.stack([x, y, wh[0], wh[1]]), torch.sigmoid(t[4]), classes


KNOWN_DECODE_MISTAKES = (
    (
        "anchors over grid",
        "anchors divided by the grid size instead of the input size: YOLOv3's anchors "
        "are in pixels, so w = anchor_w * exp(tw) / input_size (YOLOv2's were in grid cells)",
    ),
    (
        "softmax",
        "softmax over the classes instead of a sigmoid per class: YOLOv3's classes are "
        "independent (multi-label), so the probabilities need not sum to 1",
    ),
    (
        "no sigmoid",
        "missing sigmoid on tx/ty: the centre is (column + sigmoid(tx)) / grid, which keeps it inside its own cell",
    ),
    (
        "cell units",
        "the centre is in grid cells: divide (column + sigmoid(tx)) by the grid size to get a fraction of the image",
    ),
    ("row and column swapped", "row and column swapped: x comes from the column, y from the row"),
    ("no exp", "missing exp on tw/th: w = anchor_w * exp(tw) / input_size"),
)


def _expected_decode(prediction: Tensor, column: int, row: int, anchor, grid: int, size: int):
    output = torch.zeros(1, prediction.numel(), grid, grid)
    output[0, :, row, column] = prediction
    found = decode_yolov3((output,), torch.tensor([anchor]), ((0,),), size)
    k = row * grid + column  # one anchor: boxes are ordered row, then column
    return found.boxes[0, k], found.objectness[0, k], found.class_probs[0, k]


def _close(a: tuple[Tensor, ...], b: tuple[Tensor, ...]) -> bool:
    return all(x.shape == y.shape and torch.allclose(x, y, atol=1e-5) for x, y in zip(a, b, strict=True))


@checkpoint
def check_decode_one(decode: Callable) -> None:
    """Check ``decode(prediction, column, row, anchor, grid_size, input_size)`` returning
    ``(box, objectness, class_probs)``: box (4,) = centre x, centre y, width, height as
    fractions of the image, objectness a scalar, class_probs (C,)."""
    for values, column, row, anchor, grid, size in DECODE_CASES:
        prediction = torch.tensor(values)
        result = call(decode, prediction.clone(), column, row, anchor, grid, size)
        expect(
            isinstance(result, (tuple, list)) and len(result) == 3,
            f"expected (box, objectness, class_probs), got {type(result).__name__}",
        )
        got = tuple(torch.as_tensor(r, dtype=torch.float32).reshape(-1) for r in result)
        want = tuple(t.reshape(-1) for t in _expected_decode(prediction, column, row, anchor, grid, size))
        if _close(got, want):
            continue
        for mistake, message in KNOWN_DECODE_MISTAKES:
            wrong = _decode_variant(prediction, column, row, anchor, grid, size, mistake)
            if _close(got, tuple(t.reshape(-1) for t in wrong)):
                raise CheckpointError(message)
        where = f"cell (column {column}, row {row}) of a {grid}x{grid} grid, anchor {anchor}, input {size}"
        parts = ("box", "objectness", "class_probs")
        wrong_parts = [
            p
            for p, g, w in zip(parts, got, want, strict=True)
            if not (g.shape == w.shape and torch.allclose(g, w, atol=1e-5))
        ]
        raise CheckpointError(
            f"at {where}: {', '.join(wrong_parts)} differ; expected box {[round(v, 4) for v in want[0].tolist()]}, "
            f"objectness {round(want[1].item(), 4)}, class_probs {[round(v, 4) for v in want[2].tolist()]}; got "
            f"box {[round(v, 4) for v in got[0].tolist()]}, objectness {[round(v, 4) for v in got[1].tolist()]}, "
            f"class_probs {[round(v, 4) for v in got[2].tolist()]}"
        )
    passed(
        f"{len(DECODE_CASES)} hand-made predictions (13x13 and 52x52 heads at 416) decode like\n"
        "  decode_yolov3 (box, objectness, class probabilities): ok"
    )
