"""Multi-scale training (``data.multiscale``): Darknet's ``random=1`` schedule as a pure function of (seed, step)."""

from __future__ import annotations

import pytest

from yolo_lessons.data.multiscale import multiscale_size, multiscale_sizes

DARKNET_SIZES = list(range(320, 609, 32))  # (rand() % 10 + 10) * 32: 320, 352, ..., 608


def test_darknets_sizes_are_the_ten_multiples_of_32_from_320_to_608():
    assert multiscale_sizes(320, 608) == DARKNET_SIZES and len(DARKNET_SIZES) == 10


def test_the_size_changes_only_every_10_steps():
    sizes = [multiscale_size(step, 100_000, seed=0) for step in range(2000)]
    assert all(sizes[step] == sizes[step - step % 10] for step in range(2000))  # constant within a period
    assert sum(sizes[k] != sizes[k - 10] for k in range(10, 2000, 10)) > 100  # and redrawn between periods


def test_every_size_is_a_multiple_of_32_in_the_range_and_all_of_them_come():
    drawn = {multiscale_size(10 * period, 100_000, seed=3) for period in range(300)}
    assert drawn == set(DARKNET_SIZES)


def test_the_last_200_steps_train_at_the_largest_size():
    # Darknet: get_current_batch(net) + 200 > max_batches at the period's first step. With 1000 steps the
    # period starting at step 810 is the first that passes (810 + 200 > 1000); the one at 800 does not.
    for seed in range(5):
        assert all(multiscale_size(step, 1000, seed) == 608 for step in range(810, 1000))
        assert multiscale_size(805, 1000, seed) == multiscale_size(805, 100_000, seed)  # drawn as usual
    assert {multiscale_size(805, 1000, seed) for seed in range(20)} != {608}


def test_the_schedule_is_a_pure_function_of_seed_and_step():
    assert [multiscale_size(s, 5000, 7) for s in range(0, 500, 10)] == [multiscale_size(s, 5000, 7)
                                                                       for s in range(0, 500, 10)]  # fmt: skip
    assert [multiscale_size(s, 5000, 7) for s in range(0, 500, 10)] != [multiscale_size(s, 5000, 8)
                                                                       for s in range(0, 500, 10)]  # fmt: skip
    resumed = [multiscale_size(s, 5000, 7) for s in range(250, 500)]  # a run resumed at step 250
    assert resumed == [multiscale_size(s, 5000, 7) for s in range(500)][250:]


def test_the_books_small_models_use_a_smaller_range():
    assert {multiscale_size(10 * p, 10_000, 1, low=64, high=128) for p in range(100)} == {64, 96, 128}
    assert multiscale_size(9_999, 10_000, 1, low=64, high=128, every=5, final=50) == 128


@pytest.mark.parametrize("args, message", [
    (dict(low=100, high=608), "multiples of 32"),
    (dict(low=640, high=608), "low <= high"),
    (dict(low=0, high=608), "low must be a positive whole number"),
    (dict(every=0), "every >= 1"),
])  # fmt: skip
def test_a_bad_range_or_period_is_refused_by_name(args, message):
    with pytest.raises(ValueError, match=message):
        multiscale_size(0, 100, 0, **args)
