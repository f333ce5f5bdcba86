"""benchmarks/eval_repeat.py: per-episode agreement of two evaluations of one checkpoint."""

from __future__ import annotations

import pytest

from benchmark_module import load_benchmark

bench = load_benchmark("eval_repeat")


def _eps(rows: list[tuple[int, int, bool, int]]) -> list[dict[str, object]]:
    return [{"task_id": t, "init_state_id": i, "success": s, "num_steps": n} for t, i, s, n in rows]


def test_compare_repeats_counts_agreement_episode_by_episode() -> None:
    first = _eps([(0, 30, True, 120), (0, 31, False, 220), (1, 30, False, 220), (1, 31, True, 150)])
    other = _eps([(0, 30, True, 121), (0, 31, True, 140), (1, 30, False, 220), (1, 31, False, 220)])
    assert bench.compare_repeats(first, other) == {
        "num_episodes": 4, "same_outcome": 2, "same_length": 1, "first_only": 1, "other_only": 1}
    assert bench.compare_repeats(first, first)["same_length"] == 4


def test_compare_repeats_refuses_different_episodes() -> None:
    first = _eps([(0, 30, True, 120), (0, 31, False, 220)])
    with pytest.raises(ValueError, match="different episodes"):
        bench.compare_repeats(first, list(reversed(first)))
