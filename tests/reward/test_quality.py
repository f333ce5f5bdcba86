from __future__ import annotations

import math

import numpy as np
import pytest

from srpo.reward.quality import (
    auroc,
    failure_curve_progress,
    js_divergence,
    mmd_rbf,
    monotonicity,
    spearman,
    spearman_vs_time,
    stage_at_cuts,
    standardized_mean_difference,
)


def test_spearman_hand_computed():
    assert spearman_vs_time(np.asarray([0.1, 0.2, 0.3, 0.9])) == pytest.approx(1.0)
    assert spearman_vs_time(np.asarray([3.0, 2.0, 1.0])) == pytest.approx(-1.0)
    # Ranks of [1, 3, 2] vs [1, 2, 3]: d² = 0 + 1 + 1 → ρ = 1 − 6·2/(3·8) = 0.5.
    assert spearman_vs_time(np.asarray([1.0, 3.0, 2.0])) == pytest.approx(0.5)
    assert spearman_vs_time(np.asarray([0.5, 0.5, 0.5])) == 0.0
    with pytest.raises(ValueError, match="at least 2"):
        spearman_vs_time(np.asarray([1.0]))


def test_monotonicity_hand_computed():
    assert monotonicity(np.asarray([0.0, 0.1, 0.1, 0.05, 0.2])) == pytest.approx(3 / 4)
    with pytest.raises(ValueError, match="NaN"):
        monotonicity(np.asarray([0.0, np.nan]))


def test_mmd_hand_computed_and_properties():
    x = np.asarray([0.0])
    y = np.asarray([1.0])
    # σ = 1: MMD² = 1 + 1 − 2·exp(−1/2).
    assert mmd_rbf(x, y, bandwidth=1.0) == pytest.approx(math.sqrt(2 - 2 * math.exp(-0.5)))
    # Median heuristic on pooled {0, 1}: off-diagonal distances all 1 → σ = 1.
    assert mmd_rbf(x, y) == pytest.approx(mmd_rbf(x, y, bandwidth=1.0))
    same = np.asarray([0.1, 0.5, 0.9])
    assert mmd_rbf(same, same) == pytest.approx(0.0, abs=1e-7)
    far = mmd_rbf(np.asarray([1.0, 1.0]), np.asarray([0.0, 0.1]))
    near = mmd_rbf(np.asarray([0.2, 0.1]), np.asarray([0.0, 0.1]))
    assert far > near


def test_js_is_divergence_not_distance():
    # Disjoint histograms: JS divergence (base 2) = 1.
    assert js_divergence(np.asarray([0.0, 0.0]), np.asarray([1.0, 1.0]), num_bins=2) == pytest.approx(1.0)
    # P = (1, 0), Q = (½, ½): M = (¾, ¼); JS = ½·KL(P‖M) + ½·KL(Q‖M) in bits.
    kl_pm = math.log2(1 / 0.75)
    kl_qm = 0.5 * math.log2(0.5 / 0.75) + 0.5 * math.log2(0.5 / 0.25)
    expected = 0.5 * kl_pm + 0.5 * kl_qm
    got = js_divergence(np.asarray([0.0, 0.0]), np.asarray([0.0, 1.0]), num_bins=2, value_range=(0.0, 1.0))
    assert got == pytest.approx(expected)
    assert got != pytest.approx(math.sqrt(expected))


def test_smd_hand_computed():
    x = np.asarray([1.0, 1.0, 0.9, 1.1])
    y = np.asarray([0.2, 0.4])
    var_x = np.var(x, ddof=1)
    var_y = np.var(y, ddof=1)
    pooled = math.sqrt((3 * var_x + 1 * var_y) / 4)
    assert standardized_mean_difference(x, y) == pytest.approx((1.0 - 0.3) / pooled)
    assert standardized_mean_difference(np.ones(3), np.zeros(3)) == math.inf
    assert standardized_mean_difference(np.ones(3), np.ones(3)) == 0.0
    with pytest.raises(ValueError, match="at least 3"):
        standardized_mean_difference(np.ones(1), np.ones(1))


def test_auroc_hand_computed():
    # Pairs (pos, neg): 0.9>0.5, 0.9>0.1, 0.5=0.5 (tie, ½), 0.5>0.1 → 3.5 / 4.
    assert auroc(np.asarray([0.9, 0.5]), np.asarray([0.5, 0.1])) == pytest.approx(0.875)
    assert auroc(np.asarray([2.0, 3.0]), np.asarray([0.0, 1.0])) == 1.0
    assert auroc(np.asarray([0.0]), np.asarray([1.0, 2.0])) == 0.0
    assert auroc(np.asarray([1.0, 1.0]), np.asarray([1.0])) == 0.5


def test_spearman_of_two_variables():
    # Ranks of x [1, 3, 2, 4] against stages [0, 1, 1, 2] (ranks 1, 2.5, 2.5, 4): Pearson of the ranks.
    x, y = np.asarray([0.1, 0.5, 0.3, 0.9]), np.asarray([0, 1, 1, 2])
    rx, ry = np.asarray([1, 3, 2, 4.0]), np.asarray([1, 2.5, 2.5, 4])
    expected = np.corrcoef(rx, ry)[0, 1]
    assert spearman(x, y) == pytest.approx(expected)
    assert expected == pytest.approx(4.5 / np.sqrt(5 * 4.5))
    assert math.isnan(spearman(x, np.asarray([2, 2, 2, 2])))  # no order in the label
    assert spearman(np.asarray([1.0, 1.0, 1.0, 1.0]), y) == 0.0  # a flat reward earns nothing
    with pytest.raises(ValueError, match="pair up"):
        spearman(x, y[:3])


def test_stage_at_cuts_is_the_running_maximum():
    stages = np.asarray([0, 1, 0, 2, 1, 1])
    assert stage_at_cuts(stages, np.asarray([1, 3, 4, 6])).tolist() == [0, 1, 2, 2]
    with pytest.raises(ValueError, match="lengths"):
        stage_at_cuts(stages, np.asarray([0, 6]))


def test_failure_curve_progress_hand_computed():
    # Progress reaches its final stage 2 at cut k* = 2; the curve rises 0.1 → 0.4 by then and 0.4 → 0.45 after.
    curve = np.asarray([0.1, 0.2, 0.4, 0.42, 0.45])
    stages = np.asarray([0, 1, 2, 2, 2])
    rho, rise, after = failure_curve_progress(curve, stages)
    # Ranks: curve 1..5; stages 1, 2, 4, 4, 4 → Pearson of the ranks.
    assert rho == pytest.approx(np.corrcoef([1, 2, 3, 4, 5], [1, 2, 4, 4, 4])[0, 1])
    assert rise == pytest.approx(0.3)
    assert after == pytest.approx(0.05)
    # No progress at all: rho and rise undefined, after = last − first.
    rho, rise, after = failure_curve_progress(np.asarray([0.3, 0.2, 0.1]), np.asarray([1, 1, 1]))
    assert math.isnan(rho) and math.isnan(rise) and after == pytest.approx(-0.2)
    # Progress until the last cut: nothing after it.
    assert math.isnan(failure_curve_progress(np.asarray([0.1, 0.2]), np.asarray([0, 1]))[2])
    with pytest.raises(ValueError, match="non-decreasing"):
        failure_curve_progress(np.asarray([0.1, 0.2]), np.asarray([1, 0]))
