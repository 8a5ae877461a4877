"""Multi-scale training as Darknet's ``random=1``: a new input size every 10 batches.

``train_detector`` (``examples/detector.c``) runs, at the top of every iteration (one weight
update)::

    if (l.random && count++ % 10 == 0) {
        int dim = (rand() % 10 + 10) * 32;                      // 320, 352, ..., 608
        if (get_current_batch(net) + 200 > net->max_batches) dim = 608;
        ... resize the network and the loader to dim x dim ...
    }

so the size changes at iterations 0, 10, 20, ..., drawn uniformly among the ten multiples of
32 from 320 to 608, and a period that starts within 200 iterations of the end
(``batch + 200 > max_batches``) takes the largest, 608. YOLO9000's section 2 says the same in
words ("every 10 batches ... {320, 352, ..., 608}"); the last-200 rule came later (2017).

``multiscale_size`` is that schedule for any range: the multiples of ``multiple`` from ``low``
to ``high`` (Darknet: 320 and 608; for the book's 96-pixel models e.g. 64 to 128), a period of
``every`` steps, and the largest size for a period that starts within ``final`` steps of the
end. Darknet draws from the process's ``rand()``, so its sizes differ from run to run and a
restart continues with others; here the size of a step is a pure function of (seed, step),
the draw of its period from ``numpy.random.default_rng([seed, MULTISCALE_STREAM, period])``,
so a resumed run trains at the very sizes an unbroken one would. (Darknet also counts its
periods from the moment the program starts, not from step 0: a restarted Darknet run shifts
them.)
"""

from __future__ import annotations

import numpy as np

MULTISCALE_STREAM = 0x6D756C74  # a word of its own in the seed, apart from the run's other seeded streams
DARKNET_LOW, DARKNET_HIGH = 320, 608  # (rand() % 10 + 10) * 32
DARKNET_EVERY = 10  # count++ % 10 == 0
DARKNET_FINAL = 200  # get_current_batch(net) + 200 > net->max_batches: the largest size


def multiscale_sizes(low: int, high: int, multiple: int = 32) -> list[int]:
    """The sizes the schedule draws from: ``low, low + multiple, ..., high``."""
    for name, value in (("low", low), ("high", high), ("multiple", multiple)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive whole number of pixels, got {value!r}")
    if low % multiple or high % multiple or low > high:
        raise ValueError(f"expected low <= high, both multiples of {multiple}, got low={low}, high={high}")
    return list(range(low, high + 1, multiple))


def multiscale_size(step: int, steps: int, seed: int, low: int = DARKNET_LOW, high: int = DARKNET_HIGH,
                    every: int = DARKNET_EVERY, final: int = DARKNET_FINAL, multiple: int = 32) -> int:  # fmt: skip
    """The input size of ``step`` (0-based) of a ``steps``-step run (the module docstring).

    The period of ``step`` starts at ``start = step - step % every``; when ``start + final >
    steps`` the size is ``high``, else one of ``multiscale_sizes(low, high, multiple)`` drawn
    uniformly for that period.
    """
    sizes = multiscale_sizes(low, high, multiple)
    if every < 1 or final < 0 or step < 0 or steps < 1:
        raise ValueError(f"expected step >= 0, steps >= 1, every >= 1 and final >= 0, got step={step}, "
                         f"steps={steps}, every={every}, final={final}")  # fmt: skip
    start = step - step % every
    if start + final > steps:
        return high
    period = start // every
    return sizes[int(np.random.default_rng([seed, MULTISCALE_STREAM, period]).integers(len(sizes)))]
