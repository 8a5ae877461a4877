"""What every checkpoint shares: running the learner's code, copying weights by role,
comparing behaviour, and the diagnostics that name one known kind of mistake each.

A check first asks whether the learner's code *does* what the reference does (same
weights, same inputs, same outputs, in eval and in train mode), and only then looks at
the structure to name *which* known mistake explains a difference.

What the learner's own code prints or warns while a check runs is captured and shown
after the report on lines that start with ``NOTE_PREFIX``; the grader strips those lines
before it compares a checkpoint's output with the chapter's, so a ``print`` left in an
answer, or a PyTorch warning, never decides a grade.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import textwrap
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence

import torch
from torch import Tensor, nn

NOTE_PREFIX = "| "  # lines a checkpoint shows but the grader never compares
WIDTH = 78  # the most characters of a printed line that fit the book's column
_notes: list[list[str]] = []  # one list per running check (checks may call checks)


class CheckpointError(AssertionError):
    """A checkpoint failed; the message says what was expected and what came."""


def expect(condition: bool, message: str) -> None:
    """Raise ``CheckpointError(message)`` unless ``condition`` holds."""
    if not condition:
        raise CheckpointError(message)


def passed(text: str) -> None:
    """Print a passed check's report. Each line is printed as written (break a long report
    by hand, continuing on a line indented by two spaces); a line that is still wider than
    ``WIDTH`` (a case with larger numbers) is wrapped at spaces, continuing the same way.
    The report goes out in one write, so a notebook never stores it split into two outputs."""
    lines = [
        textwrap.fill(line, WIDTH, subsequent_indent="  ", break_long_words=False, break_on_hyphens=False)
        if len(line) > WIDTH
        else line
        for line in text.splitlines() or [""]
    ]
    print("\n".join(lines) + "\n", end="")


# --- the learner's code: captured, shown, never compared --------------------------------


def note(text: str) -> None:
    """Show ``text`` after the check's report, on lines the grader does not compare."""
    if _notes:
        _notes[-1].extend(text.splitlines() or [""])
    else:
        print("\n".join(NOTE_PREFIX + line for line in text.splitlines()))


@contextlib.contextmanager
def learner_code() -> Iterator[None]:
    """Run the learner's code with its prints and warnings captured into the check's notes."""
    buffer = io.StringIO()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
                yield
        finally:
            printed = buffer.getvalue().rstrip("\n")
            if printed:
                note("your code printed (shown, not graded):\n" + "\n".join("  " + s for s in printed.splitlines()))
            for w in caught:
                note(f"your code warned (shown, not graded): {w.category.__name__}: {str(w.message).splitlines()[0]}")


def checkpoint(check: Callable) -> Callable:
    """Decorate a public check: what the learner's code printed or warned is shown after
    the report (or before the error), prefixed with ``NOTE_PREFIX``."""

    @functools.wraps(check)
    def wrapper(*args, **kwargs):
        _notes.append([])
        try:
            return check(*args, **kwargs)
        finally:
            lines = _notes.pop()
            if lines:
                print("\n".join(NOTE_PREFIX + line for line in lines))

    return wrapper


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def call(fn: Callable, *args, **kwargs):
    """Call the learner's function: prints captured, a stub's NotImplementedError and any
    other error turned into a readable failure that quotes the error's first line."""
    try:
        with learner_code():
            return fn(*args, **kwargs)
    except NotImplementedError as exc:
        raise CheckpointError(f"not implemented yet: {exc}") from None
    except CheckpointError:
        raise
    except Exception as exc:
        name = getattr(fn, "__name__", "your code")
        shown = ", ".join([*map(_short, args), *(f"{k}={_short(v)}" for k, v in kwargs.items())])
        raise CheckpointError(f"{name}({shown}) raised {_first_line(exc)}") from exc


def _short(value) -> str:
    if isinstance(value, Tensor):
        return f"<tensor {tuple(value.shape)}>"
    if isinstance(value, nn.Module):
        return f"<{type(value).__name__}>"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def build(factory: Callable[..., nn.Module], *args, **kwargs) -> nn.Module:
    """Call the learner's constructor and check that it made an nn.Module."""
    module = call(factory, *args, **kwargs)
    expect(isinstance(module, nn.Module), f"expected an nn.Module, got {type(module).__name__}")
    return module


def run(module: nn.Module, *inputs: Tensor, train: bool = False):
    """Run ``module`` on ``inputs`` (eval mode unless ``train``) without gradients, reporting errors readably."""
    module.train(train)
    try:
        with torch.no_grad(), learner_code():
            return module(*inputs)
    except NotImplementedError as exc:
        raise CheckpointError(f"not implemented yet: {exc}") from None
    except CheckpointError:
        raise
    except Exception as exc:
        shapes = " and ".join(str(tuple(x.shape)) for x in inputs)
        raise CheckpointError(f"the forward pass on input {shapes} failed: {_first_line(exc)}") from exc


def is_integer(value) -> bool:
    """True for a Python ``int`` (not a bool, not a float that happens to be whole, not a tensor)."""
    return isinstance(value, int) and not isinstance(value, bool)


def integer_problem(value) -> str:
    """Why ``value`` is not the plain ``int`` that was asked for ('' when it is)."""
    if is_integer(value):
        return ""
    if isinstance(value, float):
        return f"{value!r} is a float: use integer division // (or int()) so the answer is an int"
    if isinstance(value, Tensor):
        return f"{value!r} is a tensor: return a Python int (e.g. with .item() or int())"
    return f"{value!r} is a {type(value).__name__}, not an int"


# --- copying weights by role -------------------------------------------------------------


def holders(module: nn.Module) -> list[nn.Module]:
    """Submodules (``module`` included) that hold parameters or buffers of their own, in definition order."""
    return [
        m
        for m in module.modules()
        if list(m.parameters(recurse=False)) or list(m.buffers(recurse=False))
    ]


def role(m: nn.Module) -> tuple:
    """What a weighted module *does*, for matching: a 1x1 stride-1 conv and a Linear are the
    same affine map of the channels ("dense"); a bias never decides a role."""
    if isinstance(m, nn.Linear) or (
        isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) and m.stride == (1, 1) and m.groups == 1
    ):
        return ("dense", tuple(m.weight.shape[:2]))
    if isinstance(m, nn.Conv2d):
        return ("conv", tuple(m.weight.shape))
    if isinstance(m, nn.modules.batchnorm._BatchNorm):
        return ("batchnorm", m.num_features)
    own = [*m.named_parameters(recurse=False), *m.named_buffers(recurse=False)]
    return (type(m).__name__, tuple((k, tuple(v.shape)) for k, v in own))


def describe_role(r: tuple) -> str:
    kind, shape = r[0], r[1]
    if kind == "dense":
        return f"a {shape[1]}->{shape[0]} Linear or 1x1 conv"
    if kind == "conv":
        return f"a {shape[2]}x{shape[3]} conv {shape[1]}->{shape[0]}"
    if kind == "batchnorm":
        return f"a BatchNorm2d({shape})"
    return f"a {kind}"


def call_order(module: nn.Module, forward: Callable[[], object]) -> list[nn.Module]:
    """The weight-holding submodules of ``module`` in the order ``forward()`` first calls them."""
    order: list[nn.Module] = []

    def hook(m, _inputs):
        if not any(m is o for o in order):
            order.append(m)

    handles = [m.register_forward_pre_hook(hook) for m in holders(module)]
    try:
        forward()
    finally:
        for h in handles:
            h.remove()
    return order


class CopyError(Exception):
    """The reference's weights cannot be placed in the learner's module; the message says why."""


def copy_weights(reference: nn.Module, learner: nn.Module, reference_order, learner_order) -> None:
    """Copy every weight and BatchNorm statistic of ``reference`` into ``learner``, module by
    module, matched by role (kind and shape) in the order the forward passes use them.

    Modules the learner builds but never calls come last, so an unused leftover is
    harmless; names and creation order never matter. A Linear receives a 1x1 conv's
    weights (and the other way round) reshaped. Raises ``CopyError`` when a role of the
    reference has no counterpart.
    """
    used = list(learner_order)
    theirs = used + [m for m in holders(learner) if not any(m is u for u in used)]
    pools: dict[tuple, list[nn.Module]] = {}
    for m in theirs:
        pools.setdefault(role(m), []).append(m)
    wanted: dict[tuple, int] = {}
    for m in reference_order:
        wanted[role(m)] = wanted.get(role(m), 0) + 1
    for r, n in wanted.items():
        if len(pools.get(r, [])) < n:
            raise CopyError(f"expected {n} x {describe_role(r)}, found {len(pools.get(r, []))}")
    taken: dict[tuple, int] = {}
    with torch.no_grad():
        for source in reference_order:
            r = role(source)
            target = pools[r][taken.get(r, 0)]
            taken[r] = taken.get(r, 0) + 1
            mine = dict(target.named_parameters(recurse=False)) | dict(target.named_buffers(recurse=False))
            for name, tensor in [*source.named_parameters(recurse=False), *source.named_buffers(recurse=False)]:
                if name in mine and mine[name] is not None and tensor is not None:
                    if mine[name].numel() == tensor.numel():
                        mine[name].copy_(tensor.reshape(mine[name].shape))


def randomize(module: nn.Module, seed: int, scale: float | None = 0.2) -> nn.Module:
    """Seeded random values for every parameter and BatchNorm statistic, so BatchNorm is not
    the identity and a wrong wiring cannot hide. ``scale=None`` keeps the weights' own init
    (deep networks) and only moves BatchNorm's statistics, gamma and beta a little."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=generator))
                m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=generator))
                m.running_mean.copy_(0.2 * torch.randn(m.running_mean.shape, generator=generator))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=generator))
            elif scale is not None:
                for p in m.parameters(recurse=False):
                    p.copy_(scale * torch.randn(p.shape, generator=generator))
    return module.eval()


def close(got, expected: Tensor, tolerance: float = 1e-4) -> bool:
    """Same shape and values equal up to float rounding (relative to the expected values' size)."""
    if not isinstance(got, Tensor) or tuple(got.shape) != tuple(expected.shape):
        return False
    if not got.is_floating_point():
        got = got.float()
    scale = 1.0 + expected.abs().max().item() if expected.numel() else 1.0
    return bool(((got - expected).abs() <= tolerance * scale).all())


def describe_tensor(t) -> str:
    if not isinstance(t, Tensor):
        return f"a {type(t).__name__}"
    values = [round(v, 4) for v in t.detach().flatten()[:3].float().tolist()]
    return f"shape {tuple(t.shape)}, first values {values}"


def difference(got, expected: Tensor, what: str) -> str:
    """'<what>: expected ..., got ...' for a mismatch that no known mistake explains."""
    if not isinstance(got, Tensor):
        return f"{what}: expected a tensor of shape {tuple(expected.shape)}, got a {type(got).__name__}"
    if tuple(got.shape) != tuple(expected.shape):
        return f"{what}: expected an output of shape {tuple(expected.shape)}, got {tuple(got.shape)}"
    worst = (got.float() - expected).abs().max().item()
    return (
        f"{what}: the output differs from the reference's with the same weights (largest difference "
        f"{worst:.3g}): expected {describe_tensor(expected)}, got {describe_tensor(got)}"
    )


@dataclasses.dataclass
class Comparison:
    """What ``compare_modules`` found: ``problem`` is '' when every output matched."""

    problem: str = ""
    expected: Tensor | None = None  # the reference's output where they first differ
    got: object = None  # the learner's output there
    x: tuple[Tensor, ...] | None = None  # the input there
    mode: str = ""  # "eval" or "train"
    used: list[nn.Module] = dataclasses.field(default_factory=list)  # learner's weighted modules, in call order

    @property
    def used_parameters(self) -> int:
        """Parameters of the modules the learner's forward calls (a leftover module does not count)."""
        return sum(p.numel() for m in self.used for p in m.parameters(recurse=False))


def compare_modules(
    learner: nn.Module,
    reference: nn.Module,
    inputs: Sequence[tuple[Tensor, ...]],
    train: bool = True,
    label: str = "",
) -> Comparison:
    """Copy the reference's weights into ``learner`` by role and run both on every input in
    eval mode, then (``train``) on the first input in train mode, where BatchNorm uses the
    batch's statistics. ``reference`` must hold its final weights; it is left as it came.
    """
    first = inputs[0]
    reference.eval()
    with torch.no_grad():
        reference_order = call_order(reference, lambda: reference(*first))
    try:
        learner_order = call_order(learner, lambda: run(learner, *first))
    except CheckpointError:
        learner_order = []  # the forward pass fails: match in definition order, then report the failure
    try:
        copy_weights(reference, learner, reference_order, learner_order)
    except CopyError as exc:
        return Comparison(f"the reference's weights do not fit your module{label}: {exc}", used=learner_order)
    state = {k: v.clone() for k, v in reference.state_dict().items()}
    runs = [(x, "eval") for x in inputs] + ([(first, "train")] if train else [])
    try:
        for x, mode in runs:
            got = run(learner, *x, train=mode == "train")
            reference.train(mode == "train")
            with torch.no_grad():
                expected = reference(*x)
            if not close(got, expected):
                what = f"{mode} mode, input {_shapes(x)}{label}"
                return Comparison(difference(got, expected, what), expected, got, x, mode, learner_order)
    finally:
        reference.load_state_dict(state)  # undo the running statistics the train-mode run moved
        reference.eval()
        learner.eval()
    return Comparison(used=learner_order)


def _shapes(x: tuple[Tensor, ...]) -> str:
    return " and ".join(str(tuple(t.shape)) for t in x)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def count_used_parameters(module: nn.Module, x: Tensor) -> int:
    """Parameters of the submodules that ``module(x)`` calls (a leftover module does not count)."""
    order = call_order(module, lambda: run(module, x))
    return sum(p.numel() for m in order for p in m.parameters(recurse=False))


# --- structural diagnostics: each names one known mistake ---------------------------------


def unused_modules(module: nn.Module, x: Tensor) -> list[str]:
    """Names of leaf modules that hold parameters but never run during ``module(x)``."""
    called: set[str] = set()
    names = {m: name for name, m in module.named_modules()}
    leaves = [m for m in module.modules() if not list(m.children()) and list(m.parameters(recurse=False))]
    handles = [m.register_forward_hook(lambda m, i, o: called.add(names[m])) for m in leaves]
    try:
        run(module, x)
    finally:
        for h in handles:
            h.remove()
    return [names[m] for m in leaves if names[m] not in called]


def convs_with_bias_before_batchnorm(module: nn.Module) -> list[str]:
    """Names of biased convolutions directly followed (in definition order) by a BatchNorm."""
    layers = [(n, m) for n, m in module.named_modules() if not list(m.children())]
    return [
        name
        for (name, layer), (_, following) in zip(layers, layers[1:], strict=False)
        if isinstance(layer, nn.Conv2d) and layer.bias is not None and isinstance(following, nn.BatchNorm2d)
    ]


def leaky_slopes(module: nn.Module) -> set[float]:
    """The negative slopes of every LeakyReLU in ``module``."""
    return {m.negative_slope for m in module.modules() if isinstance(m, nn.LeakyReLU)}


def layer_kinds(module: nn.Module, kinds: Iterable[type] = (nn.Conv2d, nn.MaxPool2d, nn.Linear)) -> list[str]:
    """The sequence of conv / pool / linear layers in definition order, as short names."""
    short = {nn.Conv2d: "conv", nn.MaxPool2d: "pool", nn.Linear: "linear"}
    kinds = tuple(kinds)
    return [short.get(type(m), type(m).__name__) for m in module.modules() if isinstance(m, kinds)]


def pool_positions(module: nn.Module) -> list[int]:
    """After which weighted layer (1-based) each max-pool comes, in definition order."""
    positions, convs = [], 0
    for kind in layer_kinds(module):
        if kind == "pool":
            positions.append(convs)
        else:
            convs += 1
    return positions


def describe_conv_block_mistakes(module: nn.Module, x: Tensor) -> list[str]:
    """Known ConvBlock mistakes found in ``module``'s structure: unused or missing BatchNorm, a
    conv bias before BatchNorm, a LeakyReLU slope other than Darknet's 0.1. Certain facts only;
    call it to explain a difference in behaviour, not to decide one."""
    found = []
    bns = [n for n, m in module.named_modules() if isinstance(m, nn.BatchNorm2d)]
    try:
        unused = unused_modules(module, x)
    except CheckpointError:
        unused = []
    unused_bn = [n for n in unused if n in bns]
    # Convs that run and need a BatchNorm after them (a biased conv is a classifier, or the bias mistake).
    bias_free = [
        n for n, m in module.named_modules() if isinstance(m, nn.Conv2d) and m.bias is None and n not in unused
    ]
    if not bns:
        found.append("BatchNorm is missing: every Darknet conv here is followed by BatchNorm2d")
    elif unused_bn and len(bns) - len(unused_bn) < len(bias_free):  # a leftover beside enough used ones is harmless
        found.append(
            f"BatchNorm is built but never used in forward ({', '.join(unused_bn)}): "
            "call it between the conv and the activation"
        )
    biased = convs_with_bias_before_batchnorm(module)
    if biased:
        found.append(
            f"conv bias before BatchNorm ({', '.join(biased)}): BatchNorm subtracts the mean, "
            "so the bias is cancelled; use bias=False"
        )
    slopes = leaky_slopes(module)
    if 0.01 in slopes:
        found.append("LeakyReLU slope is 0.01 (PyTorch's default); Darknet's leaky uses 0.1")
    elif slopes and slopes != {0.1}:
        found.append(f"LeakyReLU slope is {sorted(slopes)}; Darknet's leaky uses 0.1")
    return found
