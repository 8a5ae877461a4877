"""Checks behind the checkpoint cells of chapter 3, the passthrough reorder.

Every check feeds the learner's function inputs whose values are all distinct
(``arange``), so each output value tells exactly which input element it came from;
that is how a failure can say "right blocks, wrong channel order" or "pixels from
outside their own block" instead of just "not equal".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from ..models.blocks import darknet_reorg, space_to_depth
from .common import CheckpointError, call, checkpoint, expect, integer_problem, passed

# (N, C, H, W, stride): a single-channel picture, odd channel counts, a non-square map,
# the YOLOv2 passthrough (26 x 26 x 64 at a 416 input) and a stride-3 fold.
SPACE_TO_DEPTH_CASES: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 1, 4, 4, 2),
    (2, 3, 6, 8, 2),
    (1, 64, 26, 26, 2),
    (1, 2, 6, 12, 3),
)
# Channel counts for the permutation exercise. With C == stride**2 a permutation and
# its inverse coincide, so every case here has C != 4 to tell them apart.
PERMUTATION_CASES: tuple[tuple[int, int], ...] = ((1, 2), (3, 2), (64, 2), (5, 3))
# (C, H, W) inputs of darknet_reorg for the source-finding exercise.
REORG_SOURCE_CASES: tuple[tuple[int, int, int], ...] = ((4, 4, 4), (8, 4, 6), (64, 26, 26))


def distinct_input(n: int, c: int, h: int, w: int) -> Tensor:
    """A float tensor whose values 0, 1, 2, ... name their own flat position."""
    return torch.arange(n * c * h * w, dtype=torch.float32).reshape(n, c, h, w)


def _call(function: Callable, *args):
    try:
        return call(function, *args)
    except (RuntimeError, ValueError, IndexError, TypeError, ZeroDivisionError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"calling it with {args_text(args)} failed: {first}") from None


def args_text(args: Sequence) -> str:
    return ", ".join(f"a tensor of shape {tuple(a.shape)}" if isinstance(a, Tensor) else repr(a) for a in args)


def channel_matches(got: Tensor, expected: Tensor) -> list[int | None]:
    """For each channel of ``got``, the channel of ``expected`` equal to it (or None)."""
    flat_expected = expected.transpose(0, 1).reshape(expected.shape[1], -1)
    matches = []
    for channel in got.transpose(0, 1).reshape(got.shape[1], -1):
        same = (flat_expected == channel).all(dim=1).nonzero().flatten().tolist()
        matches.append(same[0] if same else None)
    return matches


def folded_order(c: int, stride: int, order: str) -> list[int]:
    """Where channel (offset, c) lands, listed in space_to_depth's order, for a named order.

    ``"offset-major"`` is space_to_depth's ``(dy*s+dx)*C + c``; ``"channel-major"`` is
    pixel_unshuffle's ``c*s*s + dy*s + dx``; ``"dx-dy"`` swaps dy and dx in the first.
    """
    s = stride
    index = {
        "offset-major": lambda dy, dx, ch: (dy * s + dx) * c + ch,
        "channel-major": lambda dy, dx, ch: ch * s * s + dy * s + dx,
        "dx-dy": lambda dy, dx, ch: (dx * s + dy) * c + ch,
    }[order]
    return [index(dy, dx, ch) for dy in range(s) for dx in range(s) for ch in range(c)]


def outside_own_block(out: Tensor, shape: tuple[int, int, int, int], stride: int) -> tuple[int, int]:
    """How many of ``out``'s values (from a ``distinct_input``) lie outside their own block."""
    _, _, h, w = shape
    source = out.round().long() % (h * w)
    rows, cols = source // w, source % w
    ys = torch.arange(out.shape[2]).view(1, 1, -1, 1)
    xs = torch.arange(out.shape[3]).view(1, 1, 1, -1)
    outside = (rows // stride != ys) | (cols // stride != xs)
    return int(outside.sum()), outside.numel()


def diagnose_space_to_depth(got: Tensor, expected: Tensor, shape, stride: int) -> str:
    """Name what is wrong with a space-to-depth output computed from ``distinct_input(*shape)``."""
    n, c, h, w = shape
    matches = channel_matches(got, expected)
    if None not in matches and sorted(matches) == list(range(expected.shape[1])):
        named = {
            "channel-major": "your channels are in pixel_unshuffle's order c*stride*stride + dy*stride + dx",
            "dx-dy": "dy and dx are transposed (the offset index must be dy*stride + dx, row offset first)",
        }
        for order, text in named.items():
            lands = folded_order(c, stride, order)
            if all(matches[lands[k]] == k for k in range(len(lands))):
                return f"right blocks, wrong channel order: {text}; expected (dy*stride + dx)*C + c"
        shown = ", ".join(map(str, matches[:8])) + (", ..." if len(matches) > 8 else "")
        return (
            "right blocks, wrong channel order: every output channel is one of the expected channels, "
            f"in another order (your channels 0, 1, 2, ... hold expected channels {shown})"
        )
    values = got.round()
    if not torch.equal(values, got) or values.min() < 0 or values.max() >= n * c * h * w:
        return "some output values are not input values: the op must only move numbers, never compute new ones"
    if c % (stride * stride) == 0 and torch.equal(got, darknet_reorg(distinct_input(*shape), stride)):
        return "this is Darknet's reorg (with its reinterpretation); a plain space-to-depth folds each block in place"
    outside, total = outside_own_block(got, shape, stride)
    if outside:
        return (
            f"pixels are mixed across blocks: {outside} of {total} output values come from outside "
            f"their own {stride}x{stride} block (check the order of dimensions in your reshape)"
        )
    return "each output value comes from its own block, but not from the expected channel and offset"


@checkpoint
def check_space_to_depth(function: Callable[..., Tensor]) -> None:
    """Check ``function(x, stride)`` against ``yolo_lessons.space_to_depth`` on several shapes."""
    for n, c, h, w, stride in SPACE_TO_DEPTH_CASES:
        x = distinct_input(n, c, h, w)
        expected = space_to_depth(x, stride)
        got = _call(function, x.clone(), stride)
        expect(isinstance(got, Tensor), f"expected a Tensor, got {type(got).__name__}")
        expect(
            tuple(got.shape) == tuple(expected.shape),
            f"input {(n, c, h, w)} with stride {stride}: expected shape {tuple(expected.shape)}, "
            f"got {tuple(got.shape)}" + (" (is the stride hard-coded to 2?)" if stride != 2 else ""),
        )
        if not torch.equal(got.float(), expected):
            raise CheckpointError(
                f"input {(n, c, h, w)} with stride {stride}: "
                + diagnose_space_to_depth(got.float(), expected, (n, c, h, w), stride)
            )
        print(f"space_to_depth {(n, c, h, w)} stride {stride} -> {tuple(got.shape)}: equal")
    print("ok")


@checkpoint
def check_unshuffle_permutation(function: Callable[..., Sequence[int] | Tensor]) -> None:
    """Check ``function(channels, stride)``: a ``perm`` with pixel_unshuffle(x)[:, perm] == space_to_depth(x)."""
    for c, stride in PERMUTATION_CASES:
        perm = _call(function, c, stride)
        perm = torch.as_tensor(perm).long().flatten()
        size = c * stride * stride
        expect(len(perm) == size, f"channels={c}, stride={stride}: expected {size} indices, got {len(perm)}")
        expect(
            sorted(perm.tolist()) == list(range(size)),
            f"channels={c}, stride={stride}: not a permutation of 0..{size - 1} "
            f"(some index is repeated or out of range): {perm.tolist()[:8]}",
        )
        x = distinct_input(1, c, 2 * stride, 2 * stride)
        unshuffled = torch.nn.functional.pixel_unshuffle(x, stride)
        if not torch.equal(unshuffled[:, perm], space_to_depth(x, stride)):
            if torch.equal(space_to_depth(x, stride)[:, perm], unshuffled):
                raise CheckpointError(
                    f"channels={c}, stride={stride}: this is the inverse permutation: it turns "
                    "space_to_depth's order into pixel_unshuffle's; we need perm[k] = the "
                    "pixel_unshuffle channel that holds space_to_depth's channel k"
                )
            raise CheckpointError(
                f"channels={c}, stride={stride}: pixel_unshuffle(x)[:, perm] differs from space_to_depth(x); "
                f"first indices expected {folded_order(c, stride, 'channel-major')[:8]}, got {perm.tolist()[:8]}"
            )
        print(f"pixel_unshuffle -> space_to_depth, channels={c}, stride={stride}: equal")
    print("ok")


def reorg_sources(c: int, h: int, w: int, stride: int = 2) -> Tensor:
    """(3, s*s*C, H/s, W/s): the input channel, row and column behind each darknet_reorg output."""
    flat = darknet_reorg(torch.arange(c * h * w).reshape(1, c, h, w), stride)[0]
    return torch.stack([flat // (h * w), flat // w % h, flat % w])


def space_to_depth_sources(c: int, h: int, w: int, stride: int = 2, order: str = "offset-major") -> Tensor:
    """Like ``reorg_sources`` for a plain space-to-depth with the named channel order."""
    x = torch.arange(c * h * w).reshape(1, c, h, w)
    flat = space_to_depth(x, stride)[0]
    if order != "offset-major":
        flat = flat[torch.tensor(folded_order(c, stride, order)).argsort()]
    return torch.stack([flat // (h * w), flat // w % h, flat % w])


def reorg_sources_with_inner_order(c: int, h: int, w: int, stride: int, order: str) -> Tensor:
    """Darknet's reinterpretations around a space-to-depth with another channel order."""
    s = stride
    tall = torch.arange(c * h * w).reshape(1, c // (s * s), h * s, w * s)
    folded = space_to_depth(tall, s)
    folded = folded[:, torch.tensor(folded_order(c // (s * s), s, order)).argsort()]
    flat = folded.reshape(c * s * s, h // s, w // s)
    return torch.stack([flat // (h * w), flat // w % h, flat % w])


@checkpoint
def check_darknet_reorg_source(function: Callable[..., tuple[int, int, int]]) -> None:
    """Check ``function(c, y, x, C, H, W)`` names the input (channel, row, col) behind output (c, y, x)."""
    for c, h, w in REORG_SOURCE_CASES:
        expected = reorg_sources(c, h, w)
        answers = []
        for k in range(4 * c):
            for y in range(h // 2):
                for x in range(w // 2):
                    answer = _call(function, k, y, x, c, h, w)
                    expect(
                        isinstance(answer, (tuple, list)) and len(answer) == 3,
                        f"expected a (channel, row, col) tuple, got {answer!r}",
                    )
                    if not all(type(v) is int for v in answer):  # noqa: E721 (exactly int: no bool, float, tensor)
                        bad = next(v for v in answer if type(v) is not int)  # noqa: E721
                        raise CheckpointError(
                            f"output (c, y, x) = {(k, y, x)} of input (C, H, W) = {(c, h, w)}: "
                            f"{integer_problem(bad) or f'{bad!r} is not an int'}"
                        )
                    answers.append(list(answer))
        got = torch.tensor(answers).T.reshape(expected.shape)
        if not torch.equal(got, expected):
            known = {
                "forgot the reinterpretation: this is the source map of a plain space-to-depth, "
                "but Darknet reads the C x H x W buffer as (C/4) x 2H x 2W before folding and "
                "reads the result as 4C x H/2 x W/2": space_to_depth_sources(c, h, w),
                "wrong channel order inside the fold: Darknet's space-to-depth uses "
                "(dy*2 + dx)*C' + c, not c*4 + dy*2 + dx": reorg_sources_with_inner_order(c, h, w, 2, "channel-major"),
                "dy and dx transposed: inside the fold, offset = dy*2 + dx, so the row offset "
                "is offset // 2 and the column offset offset % 2": reorg_sources_with_inner_order(c, h, w, 2, "dx-dy"),
            }
            for message, sources in known.items():
                if torch.equal(got, sources):
                    raise CheckpointError(f"input (C, H, W) = {(c, h, w)}: {message}")
            wrong = (got != expected).any(dim=0).nonzero()[0].tolist()
            k, y, x = wrong
            raise CheckpointError(
                f"input (C, H, W) = {(c, h, w)}: output (c, y, x) = {(k, y, x)} comes from input "
                f"{tuple(expected[:, k, y, x].tolist())}, your function says {tuple(got[:, k, y, x].tolist())}"
            )
        passed(f"darknet_reorg sources for (C, H, W) = {(c, h, w)}: all {expected[0].numel()} outputs right")
    print("ok")
