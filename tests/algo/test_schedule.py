"""Learning-rate schedules against hand-computed factors."""

from __future__ import annotations

import math

import pytest

from srpo.algo.schedule import lr_factor


def factors(num_steps: int, schedule: str, warmup: int = 0, min_ratio: float = 0.0) -> list[float]:
    return [lr_factor(s, num_steps, schedule, warmup, min_ratio) for s in range(1, num_steps + 1)]  # type: ignore[arg-type]


def test_constant_is_one_every_step():
    assert factors(5, "constant") == [1.0] * 5


def test_linear_by_hand():
    # D = 4 decay steps, p = 0, 1/4, 2/4, 3/4: 1, 0.75, 0.5, 0.25 (the last step never takes 0).
    assert factors(4, "linear") == pytest.approx([1.0, 0.75, 0.5, 0.25])
    # m = 0.2: 0.2 + 0.8 (1 - p) = 1, 0.8, 0.6, 0.4.
    assert factors(4, "linear", min_ratio=0.2) == pytest.approx([1.0, 0.8, 0.6, 0.4])


def test_cosine_by_hand():
    # p = 0, 1/4, 1/2, 3/4: (1 + cos(pi p)) / 2 = 1, (2 + sqrt 2) / 4, 1/2, (2 - sqrt 2) / 4.
    s2 = math.sqrt(2)
    assert factors(4, "cosine") == pytest.approx([1.0, (2 + s2) / 4, 0.5, (2 - s2) / 4])
    # m = 0.5 halves the swing: 0.5 + 0.5 * shape.
    assert factors(4, "cosine", min_ratio=0.5) == pytest.approx([1.0, 0.5 + (2 + s2) / 8, 0.75, 0.5 + (2 - s2) / 8])


def test_warmup_then_decay_by_hand():
    # W = 2: 1/2, 1; then D = 3 linear decay steps: 1, 2/3, 1/3.
    assert factors(5, "linear", warmup=2) == pytest.approx([0.5, 1.0, 1.0, 2 / 3, 1 / 3])
    # Warm-up applies to "constant" too.
    assert factors(4, "constant", warmup=2) == pytest.approx([0.5, 1.0, 1.0, 1.0])
    # A warm-up over the whole run: 1/3, 2/3, 1; past the end it holds the full rate.
    assert factors(3, "cosine", warmup=3) == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert lr_factor(4, 3, "cosine", 3) == 1.0


def test_one_step_run_takes_the_full_rate_and_steps_past_the_end_hold():
    for schedule in ("constant", "linear", "cosine"):
        assert lr_factor(1, 1, schedule) == 1.0  # type: ignore[arg-type]
    assert lr_factor(9, 4, "linear") == pytest.approx(0.25)  # holds the last step's progress


@pytest.mark.parametrize(("args", "match"), [
    ((0, 4, "linear"), r"step and num_steps must be >= 1"),
    ((1, 0, "linear"), r"step and num_steps must be >= 1"),
    ((1, 4, "linear", 5), r"warmup_steps must be in \[0, num_steps=4\]"),
    ((1, 4, "linear", -1), r"warmup_steps must be in"),
    ((1, 4, "linear", 0, 1.5), r"min_ratio must be in \[0, 1\]"),
    ((1, 4, "step"), r"unknown lr schedule 'step'"),
])
def test_bad_arguments_are_refused(args, match):
    with pytest.raises(ValueError, match=match):
        lr_factor(*args)
