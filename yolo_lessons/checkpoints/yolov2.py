"""Checks behind chapter 4's checkpoint cells (the YOLOv2 detector).

* ``check_yolov2_forward``: the learner's forward pass over a ``YOLOv2``'s modules.
* ``check_output_size``: output channels, grid side and box count for a head.
* ``check_decode_cell``: one cell's raw prediction turned into a box.

Each check compares with the package and, when the answer is wrong, with the known
wrong answers built from the same weights or numbers, so it can name the mistake.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode

from ..models.blocks import darknet_reorg, space_to_depth
from ..models.yolov2 import YOLOv2, yolov2
from .common import CheckpointError, call, checkpoint, expect, integer_problem, learner_code, passed

# A small, non-square input keeps the check fast (grid 3 x 4) and catches swapped
# height and width; 3 rows also make a reorg of the stride-32 map fail, as it should.
CHECK_INPUT = (1, 3, 96, 128)


# --- Exercise 1: the forward pass ---------------------------------------------------


_CACHE: dict[str, object] = {}


def _reference_model() -> YOLOv2:
    """A YOLOv2 with fixed random weights and BatchNorm statistics, in eval mode.

    Built once (50 million parameters take a while to initialise) and reset from a saved
    state on every call, so a learner's forward that changes the model cannot leak into
    the next check."""
    if "model" not in _CACHE:
        with torch.random.fork_rng():
            torch.manual_seed(0)
            model = yolov2()
            for m in model.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.running_mean.uniform_(-0.1, 0.1)
                    m.running_var.uniform_(0.5, 1.5)
                    m.bias.data.uniform_(-0.1, 0.1)
        _CACHE["model"], _CACHE["state"] = model, {k: v.clone() for k, v in model.state_dict().items()}
    model = _CACHE["model"]
    model.load_state_dict(_CACHE["state"])
    model.requires_grad_(True)
    return model.eval()


def _check_input() -> Tensor:
    generator = torch.Generator().manual_seed(1)
    return torch.randn(*CHECK_INPUT, generator=generator)


def _forward(model: YOLOv2, x: Tensor, fine_op=darknet_reorg, fine_first=True, use_extra=True) -> Tensor:
    """The reference forward pass, with switches that reproduce the known mistakes."""
    stride16, stride32 = model.backbone.feature_maps(x)
    coarse = model.extra(stride32) if use_extra else stride32
    fine = fine_op(model.passthrough(stride16), 2)
    parts = [fine, coarse] if fine_first else [coarse, fine]
    return model.detect(model.fuse(torch.cat(parts, dim=1)))


# Outputs with the right shape but the wrong values: (how to build it, what went wrong).
FORWARD_MISTAKES: tuple[tuple[dict, str], ...] = (
    (
        {"fine_first": False},
        "concatenated in the wrong order: the cfg's [route] -1,-4 puts the reorganised "
        "passthrough map (256 channels) first and the 13x13x1024 map after it",
    ),
    (
        {"fine_op": space_to_depth},
        "used space_to_depth instead of darknet_reorg: space_to_depth folds each 2x2 block in place, "
        "while Darknet's [reorg] reinterprets the memory around that fold, so half of its outputs come "
        "from other blocks and other channels (chapter 3); the fuse conv's weights expect Darknet's arrangement",
    ),
    (
        {"fine_op": lambda x, s: F.pixel_unshuffle(x, s)},
        "used pixel_unshuffle instead of darknet_reorg: pixel_unshuffle is a plain space-to-depth (each "
        "position keeps its own 2x2 block, channel c*4 + dy*2 + dx), while Darknet's [reorg] mixes rows "
        "and channels (chapter 3); the fuse conv's weights expect Darknet's arrangement",
    ),
    (
        {"use_extra": False},
        "the two extra 3x3x1024 convs (model.extra) were skipped: the 13x13 map goes through them before the concat",
    ),
)


def _shape_hooks(model: YOLOv2) -> tuple[dict[str, tuple[int, ...]], list]:
    """Record the input shape of the passthrough, extra, fuse and detect modules as they run."""
    seen: dict[str, tuple[int, ...]] = {}
    handles = []
    for name in ("passthrough", "extra", "fuse", "detect"):

        def hook(module, inputs, name=name):
            seen.setdefault(name, tuple(inputs[0].shape))

        handles.append(getattr(model, name).register_forward_pre_hook(hook))
    return seen, handles


class _ConcatRecorder(TorchFunctionMode):
    """Records the shapes and ``dim`` of every torch.cat the learner's forward calls."""

    def __init__(self):
        super().__init__()
        self.calls: list[tuple[list[tuple[int, ...]], int]] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in (torch.cat, torch.concat, torch.concatenate):
            tensors = args[0] if args else kwargs.get("tensors", ())
            dim = args[1] if len(args) > 1 else kwargs.get("dim", kwargs.get("axis", 0))
            try:
                self.calls.append(([tuple(t.shape) for t in tensors], int(dim)))
            except (TypeError, AttributeError):
                pass
        return func(*args, **kwargs)


def _diagnose_failure(seen: dict[str, tuple[int, ...]], concats, grid: tuple[int, int], error: str) -> str:
    """Name the known mistake behind a forward pass that raised, from the shapes seen; when
    none is certain, say what failed and quote the error's first line."""
    fine_grid = (2 * grid[0], 2 * grid[1])
    if "passthrough" in seen and seen["passthrough"][2:] == grid:
        channels = seen["passthrough"][1]
        where = (
            "the map after the last max-pool (13x13x512 at 416)"
            if channels == 512
            else f"a {channels}-channel map at the coarse 13x13 resolution"
        )
        return (
            f"passthrough branch wired from the wrong feature map: it got {where}; it must take "
            "the 26x26x512 map, the first output of model.backbone.feature_maps(x), taken "
            "before the last max-pool"
        )
    if "extra" in seen and seen["extra"][2:] == fine_grid:
        return (
            "the feature maps are swapped: model.extra got the 26x26x512 map; it takes the "
            "13x13x1024 map (the second output of feature_maps)"
        )
    for shapes, dim in concats:
        if dim not in (1, -3) and len(shapes) == 2 and all(len(s) == 4 for s in shapes):
            return (
                f"torch.cat along dim={dim}: the maps are (N, C, H, W), so the channels are dim=1 "
                f"(you concatenated {shapes[0]} and {shapes[1]})"
            )
        if dim in (1, -3) and any(len(s) == 4 and s[1] == 64 and s[2:] == fine_grid for s in shapes):
            return (
                "missing reorg: the passthrough output is 26x26x64 and must become 13x13x256 "
                "with darknet_reorg(..., 2) before it can be concatenated with the 13x13 map "
                f"(you concatenated {' and '.join(map(str, shapes))})"
            )
    if "fuse" in seen and seen["fuse"][1] == 2048 + 1024:
        return (
            "the 1x1 passthrough conv (model.passthrough) was skipped: the fuse conv expects "
            "256 + 1024 = 1280 channels, got 2048 + 1024 = 3072"
        )
    if "fuse" not in seen and "detect" in seen and seen["detect"][1] == 256 + 1024:
        return (
            "model.fuse was skipped: the 1280-channel concatenation goes through the 3x3x1024 fuse "
            "ConvBlock before model.detect"
        )
    return f"the forward pass on input {CHECK_INPUT} failed: {error}"


@checkpoint
def check_yolov2_forward(forward: Callable[[YOLOv2, Tensor], Tensor]) -> None:
    """Check ``forward(model, x)`` against ``YOLOv2.forward`` on the same weights."""
    model = _reference_model()
    x = _check_input()
    if "expected" not in _CACHE:
        with torch.no_grad():
            _CACHE["expected"] = model(x)
    expected = _CACHE["expected"]
    grid = tuple(expected.shape[2:])
    seen, handles = _shape_hooks(model)
    recorder = _ConcatRecorder()
    try:
        with torch.no_grad(), learner_code(), recorder:
            out = forward(model, x)
    except NotImplementedError as exc:
        raise CheckpointError(f"not implemented yet: {exc}") from None
    except Exception as exc:
        first = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        raise CheckpointError(_diagnose_failure(seen, recorder.calls, grid, first)) from exc
    finally:
        for h in handles:
            h.remove()
    expect(isinstance(out, Tensor), f"expected a Tensor, got {type(out).__name__}")
    expect(
        out.shape == expected.shape,
        f"expected an output of shape {tuple(expected.shape)} for input {CHECK_INPUT}, got "
        f"{tuple(out.shape)}"
        + (
            " (did you skip model.detect?)"
            if out.shape[1:2] == (1024,)
            else " (did you skip model.fuse? model.detect expects its 1024 channels)"
            if "fuse" not in seen
            else ""
        ),
    )
    if not torch.allclose(out, expected, rtol=1e-4, atol=1e-5):
        model = _reference_model()  # the learner's forward may have changed it
        variants = _CACHE.setdefault("variants", {})
        with torch.no_grad():
            for number, (switches, mistake) in enumerate(FORWARD_MISTAKES):
                if number not in variants:  # the same weights and input every time: compute once
                    variants[number] = _forward(model, x, **switches)
                if torch.allclose(out, variants[number], rtol=1e-4, atol=1e-5):
                    raise CheckpointError(mistake)
        worst = (out - expected).abs().max().item()
        raise CheckpointError(
            f"the output has the right shape {tuple(out.shape)} but differs from YOLOv2's "
            f"(largest difference {worst:.3g}); compare your steps with the chapter's forward"
        )
    passed(f"input {CHECK_INPUT} -> output {tuple(out.shape)}, matches YOLOv2.forward: ok")


# --- Exercise 2: output channels, grid and boxes ------------------------------------

# (anchors, classes, input size) -> (channels, grid side, boxes), by hand: A * (5 + C),
# size / 32, grid**2 * A. The first two rows are yolov2-voc.cfg and yolov2.cfg at 416.
SIZE_CASES: tuple[tuple[tuple[int, int, int], tuple[int, int, int]], ...] = (
    ((5, 20, 416), (125, 13, 845)),
    ((5, 80, 416), (425, 13, 845)),
    ((5, 20, 608), (125, 19, 1805)),
    ((3, 1, 320), (18, 10, 300)),
    ((9, 7, 544), (108, 17, 2601)),
)


def _size_mistakes(a: int, c: int, size: int) -> list[tuple[tuple[int, int, int], str]]:
    g = size // 32
    return [
        (
            (a * 5 + c, g, g * g * a),
            "used YOLOv1's B*5 + C channels: YOLOv2 predicts classes for every anchor, so it needs B*(5 + C)",
        ),
        (
            (a * (4 + c), g, g * g * a),
            "forgot the objectness score: each anchor predicts x, y, w, h, objectness and the classes, 5 + C numbers",
        ),
        (
            (a * (5 + c), g, g * g),
            "counted one box per cell: every cell predicts one box per anchor, grid * grid * anchors",
        ),
        (
            (a * (5 + c), g, g * g * a * (5 + c)),
            "counted output numbers as boxes: a box is 5 + C numbers, so boxes = grid * grid * anchors",
        ),
        (
            (a * (5 + c), size // 16, (size // 16) ** 2 * a),
            "used stride 16: YOLOv2's output is downsampled 32 times (five 2x2 max-pools)",
        ),
    ]


@checkpoint
def check_output_size(output_size: Callable[[int, int, int], tuple[int, int, int]]) -> None:
    """Check ``output_size(num_anchors, num_classes, input_size) -> (channels, grid, boxes)``."""
    for (a, c, size), expected in SIZE_CASES:
        got = call(output_size, a, c, size)
        expect(
            isinstance(got, (tuple, list)) and len(got) == 3,
            f"expected a tuple (channels, grid, boxes), got {got!r}",
        )
        for what, value in zip(("channels", "grid", "boxes"), got, strict=True):
            problem = integer_problem(value)
            expect(not problem, f"anchors={a}, classes={c}, input {size}: the {what}: {problem}")
        got = tuple(got)
        if got != expected:
            for wrong, mistake in _size_mistakes(a, c, size):
                if got == wrong:
                    raise CheckpointError(f"{mistake} (anchors={a}, classes={c}, input {size})")
            raise CheckpointError(
                f"for anchors={a}, classes={c}, input {size}: expected (channels, grid, boxes) = {expected}, got {got}"
            )
    try:
        with learner_code():
            got = output_size(5, 20, 400)
    except ValueError:
        pass
    else:
        raise CheckpointError(f"input 400 is not a multiple of 32 and should raise ValueError, but returned {got!r}")
    print(f"{len(SIZE_CASES)} heads (anchors, classes, input size): ok")
    print("input 400 raises ValueError: ok")


# --- Exercise 3: decoding one cell --------------------------------------------------

# (raw tx, ty, tw, th, column, row, anchor index, grid side): a few hand-picked cells,
# with column != row and tx != ty so that swapped coordinates show.
DECODE_CASES: tuple[tuple[tuple[float, float, float, float], int, int, int, int], ...] = (
    ((0.0, 0.0, 0.0, 0.0), 6, 6, 0, 13),
    ((1.2, -0.7, 0.3, -0.4), 2, 9, 2, 13),
    ((-2.0, 0.5, -1.0, 0.8), 12, 0, 4, 13),
    ((0.4, 1.5, 0.6, -0.2), 3, 17, 1, 19),
)
VOC = ((1.3221, 1.73145), (3.19275, 4.00944), (5.05587, 8.09892), (9.47112, 4.84053), (11.2364, 10.0071))


def _decode(t, col, row, anchor, grid, *, xy=torch.sigmoid, wh=torch.exp, divide=True, offset=True):
    """Reference decoding of one cell, with switches for the known mistakes."""
    g = grid if divide else 1
    cx, cy = (col, row) if offset else (0, 0)
    return (
        (cx + xy(t[0]).item()) / g,
        (cy + xy(t[1]).item()) / g,
        anchor[0] * wh(t[2]).item() / g,
        anchor[1] * wh(t[3]).item() / g,
    )


DECODE_MISTAKES: tuple[tuple[dict, str], ...] = (
    (
        {"xy": torch.exp, "wh": torch.sigmoid},
        "exp and sigmoid are swapped: the offset inside the cell "
        "is sigmoid(tx) (between 0 and 1), the size is anchor * exp(tw)",
    ),
    (
        {"divide": False},
        "forgot to divide by the grid size: these are grid-cell units; divide by 13 "
        "(the grid side) to get fractions of the image",
    ),
    ({"xy": lambda t: t}, "no sigmoid on tx, ty: without it the centre can leave its cell"),
    ({"wh": lambda t: t}, "no exp on tw, th: the size is anchor * exp(tw), which stays positive"),
    ({"offset": False}, "forgot the cell offset: bx = (column + sigmoid(tx)) / grid"),
)


def _close(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return all(math.isclose(u, v, rel_tol=1e-5, abs_tol=1e-6) for u, v in zip(a, b, strict=True))


@checkpoint
def check_decode_cell(decode_cell: Callable) -> None:
    """Check ``decode_cell(t, column, row, anchor, grid) -> (bx, by, bw, bh)``."""
    for values, col, row, a, grid in DECODE_CASES:
        t = torch.tensor(values)
        expected = _decode(t, col, row, VOC[a], grid)
        got = call(decode_cell, t.clone(), col, row, VOC[a], grid)
        try:
            got = tuple(float(v) for v in got)
        except (TypeError, ValueError):
            raise CheckpointError(f"expected four numbers (bx, by, bw, bh), got {got!r}") from None
        expect(len(got) == 4, f"expected four numbers (bx, by, bw, bh), got {len(got)}")
        if _close(got, expected):
            continue
        case = f"(t={values}, column {col}, row {row}, anchor {VOC[a]}, grid {grid})"
        if _close(got, (expected[1], expected[0], expected[2], expected[3])):
            raise CheckpointError(f"bx and by are swapped: x goes with the column, y with the row {case}")
        if _close(got, _decode(t, row, col, VOC[a], grid)):
            raise CheckpointError(f"column and row are swapped: bx = (column + sigmoid(tx)) / grid {case}")
        for switches, mistake in DECODE_MISTAKES:
            if _close(got, _decode(t, col, row, VOC[a], grid, **switches)):
                raise CheckpointError(f"{mistake} {case}")
        shown = ", ".join(f"{v:.4f}" for v in got)
        want = ", ".join(f"{v:.4f}" for v in expected)
        raise CheckpointError(f"for {case}: expected (bx, by, bw, bh) = ({want}), got ({shown})")
    print(f"{len(DECODE_CASES)} cells decoded (bx, by, bw, bh): ok")
