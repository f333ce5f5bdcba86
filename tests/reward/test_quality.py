from __future__ import annotations

import math

import numpy as np
import pytest

from srpo.reward.quality import (
    js_divergence,
    mmd_rbf,
    monotonicity,
    spearman_vs_time,
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
