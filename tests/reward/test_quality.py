from __future__ import annotations

import math
import re

import numpy as np
import pytest

from srpo.reward.quality import (
    auroc,
    failure_curve_progress,
    js_divergence,
    mmd_rbf,
    monotonicity,
    prefix_lengths,
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


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda bad: spearman_vs_time(bad), r"curve must be 1-D, got shape \(2, 2\)"),
        (lambda bad: monotonicity(bad), r"curve must be 1-D, got shape \(2, 2\)"),
        (lambda bad: mmd_rbf(bad, np.ones(2)), r"x must be 1-D, got shape \(2, 2\)"),
        (lambda bad: mmd_rbf(np.ones(2), bad), r"y must be 1-D, got shape \(2, 2\)"),
        (lambda bad: js_divergence(np.ones(2), bad), r"y must be 1-D, got shape \(2, 2\)"),
        (lambda bad: standardized_mean_difference(bad, np.ones(2)), r"x must be 1-D, got shape \(2, 2\)"),
        (lambda bad: auroc(bad, np.ones(2)), r"positive must be 1-D, got shape \(2, 2\)"),
        (lambda bad: auroc(np.ones(2), bad), r"negative must be 1-D, got shape \(2, 2\)"),
        (lambda bad: spearman(np.ones(4), bad), r"y must be 1-D, got shape \(2, 2\)"),
        (lambda bad: failure_curve_progress(bad, np.ones(4)), r"curve must be 1-D, got shape \(2, 2\)"),
        (lambda bad: failure_curve_progress(np.ones(4), bad), r"stages must be 1-D, got shape \(2, 2\)"),
    ],
)
def test_metrics_refuse_an_argument_that_is_not_1d(call, message):
    with pytest.raises(ValueError, match=message):
        call(np.ones((2, 2)))


def test_a_scalar_is_not_1d_either():
    with pytest.raises(ValueError, match=r"x must be 1-D, got shape \(\)"):
        mmd_rbf(np.float64(0.5), np.ones(2))


@pytest.mark.parametrize("bandwidth", [0.0, -1.5])
def test_mmd_refuses_a_non_positive_bandwidth(bandwidth):
    with pytest.raises(ValueError, match=r"bandwidth must be > 0, got " + re.escape(str(bandwidth))):
        mmd_rbf(np.asarray([0.0]), np.asarray([1.0]), bandwidth=bandwidth)
    # Just above 0 the kernel between 0 and 1 vanishes: MMD² = 1 + 1 − 0.
    assert mmd_rbf(np.asarray([0.0]), np.asarray([1.0]), bandwidth=1e-3) == pytest.approx(math.sqrt(2.0))


@pytest.mark.parametrize("num_bins", [0, -4])
def test_js_refuses_fewer_than_one_bin(num_bins):
    with pytest.raises(ValueError, match=rf"num_bins must be >= 1, got {num_bins}"):
        js_divergence(np.asarray([0.0]), np.asarray([1.0]), num_bins=num_bins)
    # One bin is allowed: every value falls in it, the histograms agree, JS = 0.
    assert js_divergence(np.asarray([0.0]), np.asarray([1.0]), num_bins=1) == pytest.approx(0.0)


@pytest.mark.parametrize(
    ("frame_stages", "message"),
    [
        (np.asarray([], dtype=np.int64), r"frame_stages must be a non-empty 1-D array, got shape \(0,\)"),
        (np.zeros((2, 3), dtype=np.int64), r"frame_stages must be a non-empty 1-D array, got shape \(2, 3\)"),
        (np.int64(2), r"frame_stages must be a non-empty 1-D array, got shape \(\)"),
    ],
)
def test_stage_at_cuts_refuses_empty_or_non_1d_stages(frame_stages, message):
    with pytest.raises(ValueError, match=message):
        stage_at_cuts(frame_stages, np.asarray([1]))
    # A single frame is enough.
    assert stage_at_cuts(np.asarray([2]), np.asarray([1])).tolist() == [2]


@pytest.mark.parametrize(
    ("curve", "stages", "message"),
    [
        ([0.1, 0.2, 0.3], [0, 1], r"got shapes \(3,\) and \(2,\)"),
        ([0.1, 0.2], [0, 1, 1], r"got shapes \(2,\) and \(3,\)"),
    ],
)
def test_failure_curve_progress_refuses_unpaired_curve_and_stages(curve, stages, message):
    with pytest.raises(ValueError, match=r"curve and stages must pair up, " + message):
        failure_curve_progress(np.asarray(curve), np.asarray(stages))


@pytest.mark.parametrize(("num_frames", "num_cuts"), [(0, 3), (5, 0), (-1, 2), (0, 0)])
def test_prefix_lengths_refuses_no_frames_or_no_cuts(num_frames, num_cuts):
    with pytest.raises(ValueError, match=rf"num_cuts >= 1, got {num_frames}, {num_cuts}"):
        prefix_lengths(num_frames, num_cuts)
    # The smallest valid call: one frame, one cut.
    assert prefix_lengths(1, 1).tolist() == [1]
