from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from srpo.algo.advantages import (
    advantage_mass,
    dynamic_sampling_mask,
    group_advantages,
    loss_weighted_advantage_mean,
    referenced_failure_group_mask,
    task_baseline_advantages,
    weight_failure_groups,
)


def test_hand_computed_unbiased_and_biased():
    rewards = np.asarray([1.0, 0.0, 0.0, 0.5, 0.25])
    groups = np.asarray([0, 0, 0, 1, 1])
    adv = group_advantages(rewards, groups, eps=0.0)
    # Group 0: mean 1/3, unbiased std sqrt(((2/3)² + 2·(1/3)²)/2) = sqrt(1/3).
    s0 = math.sqrt(1 / 3)
    # Group 1: mean 0.375, unbiased std sqrt(2·0.125²/1) = 0.125·sqrt(2).
    s1 = 0.125 * math.sqrt(2)
    np.testing.assert_allclose(adv, [(2 / 3) / s0, (-1 / 3) / s0, (-1 / 3) / s0, 0.125 / s1, -0.125 / s1])
    biased = group_advantages(rewards, groups, eps=0.0, std="biased")
    b0 = math.sqrt(((2 / 3) ** 2 + 2 * (1 / 3) ** 2) / 3)
    np.testing.assert_allclose(biased[:3], [(2 / 3) / b0, (-1 / 3) / b0, (-1 / 3) / b0])
    np.testing.assert_allclose(biased[3:], [1.0, -1.0])


def test_eps_in_denominator():
    adv = group_advantages(np.asarray([1.0, 0.0]), np.asarray([0, 0]), eps=1e-6)
    s = math.sqrt(0.5)
    np.testing.assert_allclose(adv, [0.5 / (s + 1e-6), -0.5 / (s + 1e-6)], rtol=1e-12)


def test_group_of_one_and_zero_spread_get_zero():
    adv = group_advantages(np.asarray([0.7, 1.0, 1.0, 0.2]), np.asarray([5, 6, 6, 7]))
    np.testing.assert_array_equal(adv, [0.0, 0.0, 0.0, 0.0])


def test_batch_whitening_rescales_to_unit_std():
    rng = np.random.default_rng(0)
    rewards = rng.random(12)
    groups = np.repeat(np.arange(3), 4)
    plain = group_advantages(rewards, groups)
    white = group_advantages(rewards, groups, whiten_batch=True)
    assert white.std() == pytest.approx(1.0)
    np.testing.assert_allclose(white * plain.std(), plain)


def test_bad_inputs():
    with pytest.raises(ValueError, match="must both be"):
        group_advantages(np.zeros(3), np.zeros(2, dtype=int))
    with pytest.raises(ValueError, match="rows \\[1\\]"):
        group_advantages(np.asarray([0.0, np.nan]), np.zeros(2, dtype=int))
    with pytest.raises(ValueError, match="unbiased"):
        group_advantages(np.zeros(2), np.zeros(2, dtype=int), std="sample")  # type: ignore[arg-type]


@settings(max_examples=100, deadline=None)
@given(
    rewards=st.lists(st.floats(-5, 5, allow_nan=False), min_size=1, max_size=40),
    num_groups=st.integers(1, 5),
    seed=st.integers(0, 1000),
)
def test_advantages_sum_to_zero_per_group(rewards, num_groups, seed):
    r = np.asarray(rewards)
    groups = np.random.default_rng(seed).integers(0, num_groups, size=r.size)
    adv = group_advantages(r, groups)
    assert np.isfinite(adv).all()
    for g in np.unique(groups):
        assert abs(adv[groups == g].sum()) < 1e-6 * max(1, (groups == g).sum())


def test_dynamic_sampling_mask_hand_computed():
    success = np.concatenate([[1, 1, 1, 1], [1, 0, 0, 0], [0, 0, 0, 0], [1] + [0] * 9]).astype(bool)
    groups = np.asarray([0] * 4 + [1] * 4 + [2] * 4 + [3] * 10)
    keep = dynamic_sampling_mask(success, groups, low=0.1, high=0.9)
    # Rates: 1.0 (drop), 0.25 (keep), 0.0 (drop), 0.1 (keep: inclusive edge).
    np.testing.assert_array_equal(keep, np.repeat([False, True, False, True], [4, 4, 4, 10]))
    with pytest.raises(ValueError, match="low"):
        dynamic_sampling_mask(success, groups, low=0.9, high=0.1)


# -- referenced all-failure groups (issue #17) ---------------------------------------------------------------------

def test_referenced_failure_groups_hand_computed():
    from srpo.algo.advantages import referenced_failure_group_mask

    # Group 0: mixed (a success) -> never marked. Group 1: all fail, rewards 0.1 / 0.3, unbiased std
    # sqrt(2 · 0.1² / 1) = 0.1414. Group 2: all fail, rewards 0.2 / 0.2 + 2e-5 (a near-zero spread).
    # Group 3: all fail with a large spread, but its task has no reference.
    rewards = np.asarray([1.0, 0.4, 0.1, 0.3, 0.2, 0.2 + 2e-5, 0.0, 0.5])
    success = np.asarray([True, False, False, False, False, False, False, False])
    groups = np.asarray([0, 0, 1, 1, 2, 2, 3, 3])
    has_ref = np.asarray([True, True, True, True, True, True, False, False])
    mask = referenced_failure_group_mask(rewards, success, groups, has_ref, min_reward_std=0.1)
    np.testing.assert_array_equal(mask, [False, False, True, True, False, False, False, False])
    # The threshold sits exactly at group 1's spread: 0.1414 passes 0.14 and fails 0.15.
    assert referenced_failure_group_mask(rewards, success, groups, has_ref, 0.14)[2]
    assert not referenced_failure_group_mask(rewards, success, groups, has_ref, 0.15)[2]
    # Biased std of group 1 is 0.1 (0.0999… in floats): kept at 0.099, dropped at 0.11 (the unbiased 0.1414
    # would keep it).
    assert referenced_failure_group_mask(rewards, success, groups, has_ref, 0.099, std="biased")[2]
    assert not referenced_failure_group_mask(rewards, success, groups, has_ref, 0.11, std="biased")[2]
    # Threshold 0 keeps the near-zero group 2 as well, and the z-score blows its 2e-5 spread up to ±0.66.
    zero = referenced_failure_group_mask(rewards, success, groups, has_ref, 0.0)
    np.testing.assert_array_equal(zero, [False, False, True, True, True, True, False, False])
    adv = group_advantages(rewards[4:6], groups[4:6])
    # Unbiased std 1.414e-5: A = ±1e-5 / (1.414e-5 + 1e-6) = ±0.660.
    np.testing.assert_allclose(adv, [-1e-5 / (2**0.5 * 1e-5 + 1e-6), 1e-5 / (2**0.5 * 1e-5 + 1e-6)], rtol=1e-4)


def test_referenced_failure_groups_edge_cases():
    from srpo.algo.advantages import referenced_failure_group_mask

    # A group of one has no spread to rank; bad shapes and a negative threshold are errors.
    one = referenced_failure_group_mask(np.asarray([0.3]), np.asarray([False]), np.asarray([0]), np.asarray([True]),
                                        0.0)
    assert not one.any()
    with pytest.raises(ValueError, match="must all be"):
        referenced_failure_group_mask(np.zeros(2), np.zeros(3, bool), np.zeros(2), np.ones(2, bool), 0.1)
    with pytest.raises(ValueError, match="min_reward_std"):
        referenced_failure_group_mask(np.zeros(2), np.zeros(2, bool), np.zeros(2), np.ones(2, bool), -1.0)
    with pytest.raises(ValueError, match="NaN"):
        referenced_failure_group_mask(np.asarray([np.nan, 0.0]), np.zeros(2, bool), np.zeros(2), np.ones(2, bool), 0.1)


def test_loss_weighted_advantage_mean_by_aggregation():
    # A success of 100 tokens in 2 chunks and a failure of 300 tokens in 6 chunks, A = +1 and −1; a third
    # trajectory executed nothing (weight 0 under every mode).
    adv, tokens, rows = np.array([1.0, -1.0, 5.0]), np.array([100, 300, 0]), np.array([2, 6, 0])
    assert loss_weighted_advantage_mean(adv, tokens, rows, "token-mean") == pytest.approx((100 - 300) / 400)
    assert loss_weighted_advantage_mean(adv, tokens, rows, "seq-mean-token-mean") == pytest.approx((2 - 6) / 8)
    assert loss_weighted_advantage_mean(adv, tokens, rows, "traj-mean-token-mean") == pytest.approx(0.0)
    assert loss_weighted_advantage_mean(adv, np.zeros(3), np.zeros(3), "token-mean") == 0.0
    with pytest.raises(ValueError, match="must all be"):
        loss_weighted_advantage_mean(adv, tokens[:2], rows, "token-mean")
    with pytest.raises(ValueError, match=">= 0"):
        loss_weighted_advantage_mean(adv, -tokens, rows, "token-mean")
    with pytest.raises(ValueError, match="unknown aggregation"):
        loss_weighted_advantage_mean(adv, tokens, rows, "sum")  # type: ignore[arg-type]


def test_bad_inputs_of_the_masks_and_the_offline_baseline() -> None:
    with pytest.raises(ValueError, match=r"success \(3,\) and group_ids \(2,\) must both be \(N,\)"):
        dynamic_sampling_mask(np.zeros(3, dtype=bool), np.zeros(2, dtype=int))
    with pytest.raises(ValueError, match="choose 'unbiased' or 'biased'"):
        referenced_failure_group_mask(np.zeros(2), np.zeros(2, dtype=bool), np.zeros(2, dtype=int),
                                      np.ones(2, dtype=bool), 0.0, std="sample")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"rewards \(3,\) and task_ids \(2,\) must both be \(N,\)"):
        task_baseline_advantages(np.zeros(3), np.zeros(2, dtype=int))
    with pytest.raises(ValueError, match=r"NaN or inf at rows \[2\]"):
        task_baseline_advantages(np.array([0.0, 1.0, np.inf]), np.zeros(3, dtype=int))


def test_weight_failure_groups_hand_computed() -> None:
    # Group 0 holds a success and keeps its advantages; groups 1 and 2 failed everywhere and are scaled.
    adv = np.asarray([1.2, -0.4, -0.8, 0.7, -0.7, 0.3, -0.3])
    success = np.asarray([1, 0, 0, 0, 0, 0, 0], dtype=bool)
    groups = np.asarray([5, 5, 5, 9, 9, 2, 2])
    np.testing.assert_allclose(weight_failure_groups(adv, success, groups, 0.25),
                               [1.2, -0.4, -0.8, 0.175, -0.175, 0.075, -0.075])
    np.testing.assert_array_equal(weight_failure_groups(adv, success, groups, 0.0), [1.2, -0.4, -0.8, 0, 0, 0, 0])
    out = weight_failure_groups(adv, success, groups, 1.0)
    np.testing.assert_array_equal(out, adv)
    assert out is not adv  # a new array: the caller's advantages are not written to
    with pytest.raises(ValueError, match=r"weight=1\.5 must be in \[0, 1\]"):
        weight_failure_groups(adv, success, groups, 1.5)
    with pytest.raises(ValueError, match=r"must all be \(N,\)"):
        weight_failure_groups(adv, success[:3], groups, 0.5)


def test_advantage_mass_hand_computed() -> None:
    # Group 1 holds a success: +1.2 on it, +0.3 on a failure near it, -1.5 on the other failure. Group 2 failed
    # everywhere: +0.8 / -0.8 from its shaped rewards. |A| = 1.2 + 0.3 + 1.5 + 0.8 + 0.8 = 4.6, 1.6 of it in
    # group 2; positive A = 1.2 + 0.3 + 0.8 = 2.3, 1.1 of it on failures.
    mass = advantage_mass(np.array([True, False, False, False, False]),
                          np.array([1.2, 0.3, -1.5, 0.8, -0.8]), np.array([1, 1, 1, 2, 2]))
    assert (mass["num_groups"], mass["num_failure_groups"]) == (2, 1)
    assert mass["failure_group_abs_share"] == pytest.approx(1.6 / 4.6)
    assert mass["positive_on_failures_share"] == pytest.approx(1.1 / 2.3)
    # Binary GRPO: the all-failure group's advantages are 0, a failure's never positive: both shares 0.
    grpo = advantage_mass(np.array([True, False, False, False]), np.array([1.0, -1.0, 0.0, 0.0]),
                          np.array([1, 1, 2, 2]))
    assert grpo["failure_group_abs_share"] == 0.0 and grpo["positive_on_failures_share"] == 0.0
    # No advantage at all: the shares are undefined, not 0.
    none = advantage_mass(np.array([False, False]), np.zeros(2), np.array([3, 3]))
    assert np.isnan(none["failure_group_abs_share"]) and np.isnan(none["positive_on_failures_share"])
    with pytest.raises(ValueError, match=r"must all be \(N,\)"):
        advantage_mass(np.array([True, False]), np.zeros(3), np.array([1, 1]))
