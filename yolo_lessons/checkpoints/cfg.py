"""Checks behind the checkpoint cells of chapter 13: Darknet's max-pool size and a route's shape.

* ``check_maxpool_output_size``: ``maxpool_output_size(side, size, stride, padding=None)`` as
  ``make_maxpool_layer`` computes it, on the tiny models' pools, odd sides, the SPP pools and
  explicit paddings; the known wrong formulas are named only when one explains every answer.
* ``check_route_output``: ``route_output(shapes, index, layers)``, the (C, H, W) a ``[route]``
  layer gives, as ``parse_route`` computes it, including refusing layers of different sizes.
"""

from __future__ import annotations

from collections.abc import Callable

from .common import CheckpointError, call, checkpoint, expect, integer_problem, passed

# (side, size, stride, padding): None means "left out of the cfg" (Darknet: size - 1)
MAXPOOL_CASES: tuple[tuple[int, int, int, int | None], ...] = (
    (416, 2, 2, None),  # yolov3-tiny's first pool: 208
    (13, 2, 1, None),  # the stride-1 pool: 13 stays 13
    (13, 2, 2, None),  # an odd side rounds up: 7
    (135, 2, 2, None),  # darkflow #250's case: 68 (67 under Darknet's pre-2018 rule)
    (19, 5, 1, None),  # yolov3-spp's pools keep the side
    (19, 9, 1, None),
    (7, 3, 2, None),
    (26, 2, 2, 0),  # explicit padding=0
    (13, 2, 1, 0),  # ... which shrinks the stride-1 pool to 12
    (10, 3, 1, 4),
)


def darknet_maxpool_side(side: int, size: int, stride: int, padding: int | None = None) -> int:
    """make_maxpool_layer: (w + padding - size) / stride + 1, padding = size - 1 by default."""
    padding = size - 1 if padding is None else padding
    return (side + padding - size) // stride + 1


# Formulas a learner may write instead, each with the reason it is wrong.
MAXPOOL_MISTAKES: dict[str, tuple[Callable, str]] = {
    "pytorch": (
        lambda side, size, stride, padding: (side - size) // stride + 1,
        "that is nn.MaxPool2d without padding; Darknet pads size - 1 (parse_maxpool's default) "
        "before it divides",
    ),
    "conv": (
        lambda side, size, stride, padding: (side + 2 * (size - 1 if padding is None else padding) - size) // stride
        + 1,
        "that is the convolution's formula with padding on both sides; Darknet's maxpool padding "
        "is the total, w + padding - size",
    ),
    "old": (
        lambda side, size, stride, padding: (side + 2 * ((size - 1) // 2)) // stride,
        "that is Darknet's rule before August 2018 (out = (w + 2 pad) / stride); today's is "
        "(w + padding - size) / stride + 1",
    ),
    "ignores_padding": (
        lambda side, size, stride, padding: (side + size - 1 - size) // stride + 1,
        "right for the default, but an explicit padding= in the cfg replaces size - 1",
    ),
}


def _explains(mistake: Callable, answers: dict) -> bool:
    return all(mistake(*case) == got for case, got in answers.items())


@checkpoint
def check_maxpool_output_size(maxpool_output_size: Callable) -> None:
    answers = {}
    for side, size, stride, padding in MAXPOOL_CASES:
        args = (side, size, stride) if padding is None else (side, size, stride, padding)
        got = call(maxpool_output_size, *args)
        problem = integer_problem(got)
        expect(not problem, f"maxpool_output_size{args}: {problem}")
        answers[(side, size, stride, padding)] = got
    wrong = {case: got for case, got in answers.items() if got != darknet_maxpool_side(*case)}
    if wrong:
        for _name, (mistake, why) in MAXPOOL_MISTAKES.items():
            if _explains(mistake, answers):
                raise CheckpointError(f"{why} (e.g. side {_first(wrong)[0]}: expected "
                                      f"{darknet_maxpool_side(*_first(wrong))}, got {wrong[_first(wrong)]})")
        case = _first(wrong)
        shown = "default padding" if case[3] is None else f"padding={case[3]}"
        raise CheckpointError(
            f"side {case[0]}, size {case[1]}, stride {case[2]}, {shown}: expected "
            f"{darknet_maxpool_side(*case)}, got {wrong[case]}"
        )
    passed(f"Darknet's max-pool output size, {len(MAXPOOL_CASES)} cases\n"
           "  (stride 1 and 2, odd sides, paddings) ... ok")  # fmt: skip


def _first(cases: dict):
    return next(iter(cases))


# (shapes of the layers before the route, the route's own index, layers=, the answer or None: refuse)
ROUTE_CASES: tuple[tuple[list[tuple[int, int, int]], int, str, tuple[int, int, int] | None], ...] = (
    ([(16, 8, 8), (32, 4, 4), (64, 4, 4)], 3, "-1", (64, 4, 4)),
    ([(16, 8, 8), (32, 4, 4), (64, 4, 4)], 3, "-2", (32, 4, 4)),
    ([(16, 8, 8), (32, 4, 4), (64, 4, 4)], 3, "-1,-2", (96, 4, 4)),
    ([(16, 8, 8), (32, 4, 4), (64, 4, 4), (8, 4, 4)], 4, "1, -1", (40, 4, 4)),  # absolute, then relative
    ([(16, 8, 8), (32, 4, 4), (64, 4, 4)], 3, "0", (16, 8, 8)),
    ([(16, 8, 8), (32, 4, 4), (64, 4, 4)], 3, "0,-1", None),  # 8 x 8 beside 4 x 4: refused
)


def _sources(index: int, layers: str) -> list[int]:
    """parse_route: each number of layers=, a negative one counted back from the route's index."""
    return [index + int(v) if int(v) < 0 else int(v) for v in layers.split(",")]


def _route(shapes, index, layers):
    sources = _sources(index, layers)
    picked = [shapes[i] for i in sources]
    if any(p[1:] != picked[0][1:] for p in picked):
        return None
    return (sum(p[0] for p in picked), *picked[0][1:])


REFUSED = "a ValueError"


def _outcome(route: Callable, shapes, index: int, layers: str):
    """What a route function gives for one case: its (C, H, W), or REFUSED for a ValueError."""
    try:
        got = call(route, [tuple(s) for s in shapes], index, layers)
    except CheckpointError as error:
        if "ValueError" in str(error):
            return REFUSED
        raise  # a stub or another error: shown as it is
    shown = f"route_output({shapes}, {index}, {layers!r})"
    expect(isinstance(got, tuple) and len(got) == 3, f"{shown}: expected a tuple (C, H, W), got {got!r}")
    for value in got:
        problem = integer_problem(value)
        expect(not problem, f"{shown}: {problem}")
    return got


def _model_outcome(shapes, index: int, layers: str, shift: int = 0, first_only: bool = False):
    """What a known mistake gives: counting from index - 1 (shift=-1), or only the first layer."""
    sources = _sources(index + shift, layers)
    if any(not 0 <= i < len(shapes) for i in sources):
        return None  # the mistake would crash here: it cannot explain a clean answer
    if first_only:
        return tuple(shapes[sources[0]])
    picked = [shapes[i] for i in sources]
    if any(p[1:] != picked[0][1:] for p in picked):
        return REFUSED
    return (sum(p[0] for p in picked), *picked[0][1:])


@checkpoint
def check_route_output(route_output: Callable) -> None:
    outcomes = [_outcome(route_output, shapes, index, layers) for shapes, index, layers, _ in ROUTE_CASES]
    wanted = [REFUSED if want is None else want for *_, want in ROUTE_CASES]
    wrong = [n for n, (got, want) in enumerate(zip(outcomes, wanted, strict=True)) if got != want]
    if not wrong:
        print(f"[route] output shapes, {len(ROUTE_CASES)} cases (relative, absolute, mixed sizes) ... ok")
        return
    shapes, index, layers, _ = ROUTE_CASES[wrong[0]]
    shown = f"route_output({shapes}, {index}, {layers!r}): expected {wanted[wrong[0]]}, got {outcomes[wrong[0]]}"
    # a mistake is named only when it explains every answer
    if outcomes == [_model_outcome(s, i, lay, shift=-1) for s, i, lay, _ in ROUTE_CASES]:
        raise CheckpointError(f"{shown}: a negative number counts back from the route itself (layer {index}), "
                              "not from the layer before it")
    if outcomes == [_model_outcome(s, i, lay, first_only=True) for s, i, lay, _ in ROUTE_CASES]:
        raise CheckpointError(f"{shown}: the route concatenates every layer it names, so their channels add up")
    if wanted[wrong[0]] == REFUSED:
        raise CheckpointError(f"{shown}: layers of 8 x 8 and 4 x 4 cannot be concatenated")
    raise CheckpointError(shown)
