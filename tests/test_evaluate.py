"""Binomial intervals of the evaluation and the main job's before/after line."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from srpo.evaluate import (
    Z_95,
    before_after_line,
    clustered_paired_difference,
    difference_interval,
    mcnemar_exact_p,
    paired_success_difference,
    paired_success_slope,
    success_slope,
    wilson_interval,
)


def _wilson_by_quadratic(k: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson bounds as the roots in p of (p − k/n)² = z² p (1 − p) / n."""
    p_hat = k / n
    a = 1 + z * z / n
    b = -(2 * p_hat + z * z / n)
    c = p_hat * p_hat
    roots = np.sort(np.roots([a, b, c]).real)
    return float(roots[0]), float(roots[1])


@pytest.mark.parametrize(("k", "n"), [(10, 40), (1, 20), (37, 40), (5, 8), (20, 40)])
def test_wilson_matches_the_roots_of_its_defining_quadratic(k: int, n: int) -> None:
    np.testing.assert_allclose(wilson_interval(k, n), _wilson_by_quadratic(k, n), atol=1e-9)


def test_wilson_at_the_ends_and_a_published_value() -> None:
    # k = 0: low is 0 and high = z² / (n + z²).
    low, high = wilson_interval(0, 40)
    assert low == 0.0 and high == pytest.approx(Z_95**2 / (40 + Z_95**2))
    assert wilson_interval(40, 40)[1] == 1.0
    # 10 of 40 (0.25): 0.1419 to 0.4019, as tabulated for the Wilson score interval.
    low, high = wilson_interval(10, 40)
    assert low == pytest.approx(0.1419, abs=5e-4) and high == pytest.approx(0.4019, abs=5e-4)


@given(st.integers(1, 500).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_contains_the_estimate_and_stays_in_unit_interval(kn: tuple[int, int]) -> None:
    k, n = kn
    low, high = wilson_interval(k, n)
    assert 0.0 <= low <= k / n <= high <= 1.0
    # Four times the episodes: a narrower interval around the same rate.
    low4, high4 = wilson_interval(4 * k, 4 * n)
    assert high4 - low4 < high - low


def test_wilson_rejects_impossible_counts_and_is_uninformative_without_trials() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError, match="num_successes"):
        wilson_interval(5, 4)
    with pytest.raises(ValueError, match="num_successes"):
        wilson_interval(-1, 3)


def test_difference_interval_is_newcombes_from_the_two_wilson_intervals() -> None:
    low_a, high_a = wilson_interval(10, 40)
    low_b, high_b = wilson_interval(16, 40)
    d = 0.4 - 0.25
    low, high = difference_interval(10, 40, 16, 40)
    assert low == pytest.approx(d - math.sqrt((0.4 - low_b) ** 2 + (high_a - 0.25) ** 2))
    assert high == pytest.approx(d + math.sqrt((high_b - 0.4) ** 2 + (0.25 - low_a) ** 2))
    assert low < 0 < d < high  # +0.15 on 40 episodes each is within the noise


def test_before_after_line_uses_the_first_and_last_evaluation_counts() -> None:
    records = [
        {"step": 0, "eval/success_rate": 0.25, "eval/num_successes": 10.0, "eval/num_episodes": 40.0},
        {"step": 1, "rollout/success_rate": 0.1},
        {"step": 2, "eval/success_rate": 0.3, "eval/num_successes": 12.0, "eval/num_episodes": 40.0},
        {"step": 4, "eval/success_rate": 0.4, "eval/num_successes": 16.0, "eval/num_episodes": 40.0},
    ]
    line = before_after_line(records)
    assert line is not None
    assert "step 0 10/40 = 0.250 [95% CI 0.142, 0.402]" in line
    assert "step 4 16/40 = 0.400" in line and "change +0.150" in line
    assert before_after_line(records[:2]) is None


def test_mcnemar_exact_p_hand_computed() -> None:
    assert mcnemar_exact_p(0, 5) == pytest.approx(2 / 32)  # 2 · P[X <= 0], X ~ Bin(5, 1/2)
    assert mcnemar_exact_p(1, 9) == pytest.approx(2 * 11 / 1024)  # 2 · (1 + 10) / 2^10
    assert mcnemar_exact_p(3, 2) == 1.0  # 2 · 16/32, capped at 1
    assert mcnemar_exact_p(0, 0) == 1.0
    with pytest.raises(ValueError, match=">= 0"):
        mcnemar_exact_p(-1, 2)


def test_clustered_paired_difference_hand_computed() -> None:
    # Cluster A: b wins twice (sum +2 over 2 pairs); cluster B: a wins once (sum -1 over 1). Pooled (2 - 1) / 3.
    # A resample of 2 clusters is AA (+1, prob 1/4), BB (-1, 1/4) or AB / BA (+1/3, 1/2): 2.5 % and 97.5 %
    # quantiles are -1 and +1.
    d = clustered_paired_difference([(0, 1), (0, 1), (1, 0)], ["A", "A", "B"], num_resamples=4000)
    assert d["difference"] == pytest.approx(1 / 3) and d["num_pairs"] == 3 and d["num_clusters"] == 2
    assert d["b_only"] == 2 and d["a_only"] == 1
    assert d["ci95"] == [-1.0, 1.0]


def test_clustered_paired_difference_is_the_pair_bootstrap_for_singleton_clusters() -> None:
    rng = np.random.default_rng(3)
    pairs = [(int(a), int(b)) for a, b in rng.integers(0, 2, size=(40, 2))]
    clustered = clustered_paired_difference(pairs, list(range(40)), num_resamples=2000, seed=5)
    plain = paired_success_difference(pairs, num_resamples=2000, seed=5)
    assert clustered["difference"] == pytest.approx(plain["difference"])
    assert clustered["ci95"] == pytest.approx(plain["ci95"])


def test_clustered_paired_difference_widens_for_repeated_states() -> None:
    # 10 states evaluated 6 times each, every state's outcome the same at every evaluation: 10 independent
    # differences, not 60. The pair bootstrap's interval is ~sqrt(6) too narrow; the cluster one is not.
    per_state = [(0, 1), (0, 1), (0, 1), (1, 0), (0, 0), (1, 1), (0, 1), (1, 0), (0, 0), (0, 1)]
    pairs = per_state * 6
    states = list(range(10)) * 6
    clustered = clustered_paired_difference(pairs, states, num_resamples=4000)
    plain = paired_success_difference(pairs, num_resamples=4000)
    width = clustered["ci95"][1] - clustered["ci95"][0]
    assert width > 2.0 * (plain["ci95"][1] - plain["ci95"][0])
    alone = paired_success_difference(per_state, num_resamples=4000)  # the 10 states once each
    assert width == pytest.approx(alone["ci95"][1] - alone["ci95"][0], abs=0.1)


def test_clustered_paired_difference_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="one cluster label per pair"):
        clustered_paired_difference([(0, 1)], ["A", "B"])
    with pytest.raises(ValueError, match="at least one pair"):
        clustered_paired_difference([], [])
    with pytest.raises(ValueError, match="num_resamples"):
        clustered_paired_difference([(0, 1)], ["A"], num_resamples=0)


def test_paired_success_difference_hand_computed() -> None:
    # Pairs (a, b): b wins two a lost, loses one a won, one tie at 1 and one at 0 -> mean (2 - 1) / 5.
    d = paired_success_difference([(0, 1), (False, True), (1, 0), (1, 1), (0, 0)])
    assert d["num_pairs"] == 5 and d["difference"] == pytest.approx(0.2)
    assert d["b_only"] == 2 and d["a_only"] == 1 and d["mcnemar_p"] == pytest.approx(mcnemar_exact_p(1, 2))
    low, high = d["ci95"]
    assert -1 <= low <= 0.2 <= high <= 1
    with pytest.raises(ValueError, match="at least one pair"):
        paired_success_difference([])


def test_paired_success_slope_hand_computed() -> None:
    # Steps 0 and 1; state A fails then succeeds, state B fails twice: rates 0 -> 0.5, slope 0.5 per step.
    # A resample of 2 states is AA (slope 1, prob 1/4), BB (0, 1/4) or AB / BA (0.5, 1/2): quantiles 0 and 1.
    est = paired_success_slope([0, 1], np.array([[0, 0], [1, 0]]), ["A", "B"], num_resamples=4000)
    assert est.slope == pytest.approx(0.5) and est.num_points == 2
    assert (est.low, est.high) == (0.0, 1.0)


def test_paired_success_slope_pools_the_columns_of_a_cluster() -> None:
    # Steps 0, 10, 20; cluster A has two columns (rates 0, 0.5, 1), cluster B one (always 1). Pooled rates
    # 1/3, 2/3, 1: slope 1/30 per step. Every resample's slope lies between B-only (0) and A-only (1/20).
    outcomes = np.array([[0, 0, 1], [1, 0, 1], [1, 1, 1]], dtype=bool)
    est = paired_success_slope([0, 10, 20], outcomes, ["A", "A", "B"], num_resamples=2000)
    assert est.slope == pytest.approx(1 / 30)
    assert est.low == pytest.approx(0.0) and est.high == pytest.approx(1 / 20)


def test_paired_success_slope_is_narrower_than_the_binomial_one_when_states_repeat() -> None:
    # 40 states, each keeps its outcome across 5 evaluations except that one more state succeeds at each later
    # evaluation (10 -> 14 of 40). A resample misses all 4 rising states with probability (36/40)^40 = 1.5 %, so
    # the paired interval excludes 0; the independent-binomial one sees 5 noisy rates and does not.
    base = np.zeros(40, dtype=bool)
    base[:10] = True
    rows = []
    for i in range(5):
        row = base.copy()
        row[10:10 + i] = True
        rows.append(row)
    steps = [0, 10, 20, 30, 40]
    paired = paired_success_slope(steps, np.stack(rows), list(range(40)), num_resamples=4000)
    binomial = success_slope(steps, [int(r.sum()) for r in rows], [40] * 5)
    assert paired.slope == pytest.approx(binomial.slope) == pytest.approx(1 / 40 / 10)
    assert paired.low > 0 > binomial.low
    assert paired.high - paired.low < 0.5 * (binomial.high - binomial.low)


def test_paired_success_slope_of_unchanging_outcomes_is_exactly_zero() -> None:
    rng = np.random.default_rng(0)
    row = rng.integers(0, 2, size=40)
    est = paired_success_slope([0, 5, 10], np.stack([row, row, row]), list(range(40)), num_resamples=500)
    assert (est.slope, est.low, est.high) == pytest.approx((0.0, 0.0, 0.0), abs=1e-12)


def test_paired_success_slope_rejects_bad_input() -> None:
    ok = np.array([[0, 1], [1, 1]])
    with pytest.raises(ValueError, match=r"\(m, N\)"):
        paired_success_slope([0, 1, 2], ok, ["A", "B"])
    with pytest.raises(ValueError, match=r"\(m, N\)"):
        paired_success_slope([0, 1], np.zeros((2, 0)), [])
    with pytest.raises(ValueError, match="one cluster label per column"):
        paired_success_slope([0, 1], ok, ["A"])
    with pytest.raises(ValueError, match="bool or 0/1"):
        paired_success_slope([0, 1], np.array([[0, 2], [1, 1]]), ["A", "B"])
    with pytest.raises(ValueError, match="num_resamples"):
        paired_success_slope([0, 1], ok, ["A", "B"], num_resamples=0)
    with pytest.raises(ValueError, match="two or more different steps"):
        paired_success_slope([3, 3], ok, ["A", "B"])
