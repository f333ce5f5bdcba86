"""Hand-computed cases, edge cases and invariants of the SRPO progress reward."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from srpo.algo.advantages import group_advantages
from srpo.config import ConfigError, RewardConfig
from srpo.reward.progress import SuccessMemory, compute_centres, compute_progress_rewards, standard_scale

OFFICIAL = RewardConfig.preset("official")
PAPER = RewardConfig.preset("paper")


def _batch(points: list[list[float]], success: list[bool], tasks: list[int] | None = None, groups=None):
    n = len(points)
    return (
        np.asarray(points, dtype=np.float64),
        np.asarray(success, dtype=bool),
        np.asarray(tasks if tasks is not None else [0] * n, dtype=np.int64),
        np.asarray(groups if groups is not None else [0] * n, dtype=np.int64),
    )


def sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


# Two identical successes at 0 (one DBSCAN cluster, centre 0) and failures at distances 1, 2, 3.
LINE = _batch([[0.0], [0.0], [1.0], [2.0], [3.0]], [True, True, False, False, False])


def test_official_preset_hand_computed():
    out = compute_progress_rewards(*LINE, OFFICIAL)
    # min–max over failures: 0, 0.5, 1 → 0.6·sigmoid(10·(0.5 − d)).
    expected = [1.0, 1.0, 0.6 * sigmoid(5.0), 0.6 * sigmoid(0.0), 0.6 * sigmoid(-5.0)]
    np.testing.assert_allclose(out.rewards, expected, rtol=1e-12)
    np.testing.assert_allclose(out.diagnostics.distance, [0, 0, 1, 2, 3], atol=1e-12)
    np.testing.assert_allclose(out.diagnostics.normalized_distance[2:], [0.0, 0.5, 1.0])
    assert out.diagnostics.num_clusters.tolist() == [1] * 5
    assert list(out.diagnostics.reference_kind) == ["batch"] * 5


def test_paper_preset_hand_computed():
    out = compute_progress_rewards(*LINE, PAPER)
    # Squared distances 1, 4, 9: mean 14/3, population std sqrt(98)/3 → z = −11, −2, 13 over sqrt(98).
    # Reward 0.8 · sigmoid(−z).
    r98 = math.sqrt(98.0)
    expected = [1.0, 1.0, 0.8 * sigmoid(11 / r98), 0.8 * sigmoid(2 / r98), 0.8 * sigmoid(-13 / r98)]
    np.testing.assert_allclose(out.rewards, expected, rtol=1e-12)
    np.testing.assert_allclose(out.diagnostics.distance[2:], [1.0, 4.0, 9.0], atol=1e-12)


def test_dbscan_two_clusters_nearest_centre():
    successes = [[0.0, 0.0], [0.0, 0.1], [10.0, 10.0], [10.0, 10.1]]
    centres = compute_centres(np.asarray(successes), OFFICIAL)
    order = np.argsort(centres.points[:, 0])
    np.testing.assert_allclose(centres.points[order], [[0.0, 0.05], [10.0, 10.05]])
    batch = _batch([*successes, [1.0, 0.0], [10.0, 12.05]], [True] * 4 + [False] * 2)
    out = compute_progress_rewards(*batch, OFFICIAL)
    np.testing.assert_allclose(out.diagnostics.distance[4:], [math.hypot(1.0, 0.05), 2.0])
    assert out.diagnostics.num_clusters[0] == 2
    # The failure nearer its centre gets the higher reward.
    assert out.rewards[4] > out.rewards[5]


def test_standard_scale_matches_scikit_learn():
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(3)
    x = rng.normal(size=(7, 5)) * [1.0, 1e3, 1e-3, 0.0, 1.0]
    x[:, 4] = 2.5  # a constant feature keeps scale 1
    np.testing.assert_allclose(standard_scale(x), StandardScaler().fit_transform(x), rtol=1e-12, atol=1e-12)


def test_all_successes_noise_fall_back_to_mean():
    successes = np.asarray([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    # Standardised, the three points are ≥ 1.7 apart, beyond eps = 0.5: every point is noise.
    centres = compute_centres(successes, OFFICIAL)
    np.testing.assert_allclose(centres.points, [[10 / 3, 10 / 3]])


def test_one_success_is_its_own_centre():
    out = compute_progress_rewards(*_batch([[2.0], [5.0], [3.0]], [True, False, False]), OFFICIAL)
    np.testing.assert_allclose(out.diagnostics.distance, [0.0, 3.0, 1.0])
    assert out.rewards[2] > out.rewards[1]


def test_centre_alternatives_nearest_and_mean():
    batch = _batch([[0.0], [4.0], [3.5], [2.0]], [True, True, False, False])
    nearest = compute_progress_rewards(*batch, RewardConfig.preset("official", centres="nearest"))
    np.testing.assert_allclose(nearest.diagnostics.distance[2:], [0.5, 2.0])
    mean = compute_progress_rewards(*batch, RewardConfig.preset("official", centres="mean"))
    np.testing.assert_allclose(mean.diagnostics.distance[2:], [1.5, 0.0])


def test_no_success_leaves_failures_at_zero():
    out = compute_progress_rewards(*_batch([[0.0], [1.0]], [False, False]), OFFICIAL)
    np.testing.assert_array_equal(out.rewards, [0.0, 0.0])
    assert list(out.diagnostics.reference_kind) == ["none", "none"]
    assert np.isnan(out.diagnostics.distance).all()


def test_no_failure_all_successes_score_one():
    out = compute_progress_rewards(*_batch([[0.0], [1.0]], [True, True]), PAPER)
    np.testing.assert_array_equal(out.rewards, [1.0, 1.0])


def test_one_failure_gets_neutral_value():
    batch = _batch([[0.0], [7.0]], [True, False])
    assert compute_progress_rewards(*batch, OFFICIAL).rewards[1] == pytest.approx(0.3)  # minmax → 0.5
    assert compute_progress_rewards(*batch, PAPER).rewards[1] == pytest.approx(0.4)  # z → 0, 0.8·½


def test_equidistant_failures_share_neutral_value():
    batch = _batch([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]], [True, False, False, False])
    out = compute_progress_rewards(*batch, OFFICIAL)
    np.testing.assert_allclose(out.rewards[1:], [0.3, 0.3, 0.3])


def test_duplicate_embeddings_get_equal_rewards():
    batch = _batch([[0.0], [0.0], [2.0], [2.0], [5.0]], [True, True, False, False, False])
    out = compute_progress_rewards(*batch, OFFICIAL)
    assert out.rewards[2] == out.rewards[3]
    assert out.rewards[2] > out.rewards[4]


def test_tasks_are_scored_separately():
    # Task 1's failure is far in absolute terms but the nearest of its own task; task 0 has no success.
    batch = _batch([[0.0], [100.0], [0.0], [1.0], [9.0]], [False, True, True, False, False], tasks=[0, 1, 1, 1, 1])
    out = compute_progress_rewards(*batch, OFFICIAL)
    assert out.rewards[0] == 0.0
    # Task 1: successes 100 and 0 are standardised far apart → noise → centre 50; failures at 1 and 9.
    np.testing.assert_allclose(out.diagnostics.distance[3:], [49.0, 41.0])
    assert out.rewards[4] > out.rewards[3]


def test_group_scope_uses_only_the_group():
    points = [[0.0], [1.0], [10.0], [11.0]]
    batch = _batch(points, [True, False, True, False], groups=[0, 0, 1, 1])
    by_task = compute_progress_rewards(*batch, OFFICIAL)
    by_group = compute_progress_rewards(*batch, RewardConfig.preset("official", reference_scope="group"))
    np.testing.assert_allclose(by_group.diagnostics.distance, [0.0, 1.0, 0.0, 1.0])
    # Per task, both successes form the reference: centre 5 (noise fallback) for both failures.
    np.testing.assert_allclose(by_task.diagnostics.distance[[1, 3]], [4.0, 6.0])


def test_external_reference():
    cfg = RewardConfig.preset("official", reference_source="external")
    batch = _batch([[1.0], [3.0], [0.0]], [False, False, True])
    out = compute_progress_rewards(*batch, cfg, external={0: np.asarray([[10.0], [10.0]])})
    np.testing.assert_allclose(out.diagnostics.distance, [9.0, 7.0, 10.0])
    assert list(out.diagnostics.reference_kind) == ["external"] * 3
    with pytest.raises(ValueError, match="external"):
        compute_progress_rewards(*batch, cfg)
    with pytest.raises(ValueError, match="task 0"):
        compute_progress_rewards(*batch, cfg, external={1: np.zeros((1, 1))})


def test_memory_bank_used_only_when_batch_has_no_success():
    memory = SuccessMemory(max_per_task=2)
    memory.update(np.asarray([[0.0], [1.0], [2.0]]), np.asarray([True, True, True]), np.asarray([0, 0, 0]))
    np.testing.assert_array_equal(memory.as_mapping()[0], [[1.0], [2.0]])  # FIFO bound keeps the newest two
    batch = _batch([[3.0], [6.0]], [False, False])
    off = compute_progress_rewards(*batch, OFFICIAL, memory=memory.as_mapping())
    assert off.rewards.tolist() == [0.0, 0.0]  # memory_size = 0: bank ignored (official behaviour)
    on_cfg = RewardConfig.preset("official", memory_size=2)
    on = compute_progress_rewards(*batch, on_cfg, memory=memory.as_mapping())
    np.testing.assert_allclose(on.diagnostics.distance, [1.5, 4.5])  # centre = cluster mean 1.5
    assert list(on.diagnostics.reference_kind) == ["memory", "memory"]
    assert on.rewards[0] > on.rewards[1] > 0.0
    # With a success in the batch the batch wins.
    own = compute_progress_rewards(*_batch([[3.0], [6.0]], [True, False]), on_cfg, memory=memory.as_mapping())
    assert list(own.diagnostics.reference_kind) == ["batch", "batch"]
    restored = SuccessMemory(max_per_task=2)
    restored.load_state_dict(memory.state_dict())
    np.testing.assert_array_equal(restored.as_mapping()[0], memory.as_mapping()[0])


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"embeddings": np.zeros((0, 4))}, "empty batch"),
        ({"embeddings": np.zeros((3, 0))}, "zero-dimensional"),
        ({"embeddings": np.zeros(3)}, "2-D"),
        ({"success": np.ones(2, dtype=bool)}, r"success has shape \(2,\)"),
        ({"task_ids": np.zeros(4, dtype=np.int64)}, r"task_ids has shape \(4,\)"),
        ({"group_ids": np.zeros((3, 1), dtype=np.int64)}, "group_ids has shape"),
        ({"task_ids": np.zeros(3)}, "task_ids must be integers"),
        ({"success": np.asarray([0, 2, 1])}, r"rows \[1\]"),
    ],
)
def test_bad_input_raises_naming_the_problem(kwargs, pattern):
    args = {
        "embeddings": np.zeros((3, 4)),
        "success": np.asarray([True, False, False]),
        "task_ids": np.zeros(3, dtype=np.int64),
        "group_ids": np.zeros(3, dtype=np.int64),
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=pattern):
        compute_progress_rewards(config=OFFICIAL, **args)


def test_non_numeric_embeddings_are_refused():
    with pytest.raises(ValueError, match="embeddings must be numeric, got dtype <U1"):
        compute_progress_rewards(np.full((2, 3), "a"), np.zeros(2, bool), np.zeros(2, np.int64),
                                 np.zeros(2, np.int64), OFFICIAL)


@pytest.mark.parametrize("source", ["external", "memory"])
@pytest.mark.parametrize(
    ("reference", "pattern"),
    [(np.zeros((2, 2)), r"has shape \(2, 2\); expected \(M, 1\)"), (np.zeros(2), r"has shape \(2,\)"),
     (np.asarray([[0.0], [np.nan]]), "contains NaN or inf")],
)
def test_malformed_reference_sets_are_refused(source, reference, pattern):
    # A reference from outside the batch (an external set or the memory bank) must match the batch's D and be
    # finite, or every failure of the task would get a distance to garbage.
    batch = _batch([[1.0], [3.0]], [False, False])
    if source == "external":
        cfg = RewardConfig.preset("official", reference_source="external")
        kwargs = {"external": {0: reference}}
        where = "external reference of task 0"
    else:
        cfg = RewardConfig.preset("official", memory_size=2)
        kwargs = {"memory": {0: reference}}
        where = "memory bank of task 0"
    with pytest.raises(ValueError, match=f"{where} {pattern}"):
        compute_progress_rewards(*batch, cfg, **kwargs)


def test_centres_need_a_success_and_a_known_method():
    with pytest.raises(ValueError, match="at least one success"):
        compute_centres(np.zeros((0, 2)), OFFICIAL)
    with pytest.raises(ValueError, match="max_per_task must be > 0, got 0"):
        SuccessMemory(max_per_task=0)


@pytest.mark.parametrize(("field", "value", "pattern"),
                         [("centres", "kmeans", "unknown centres method 'kmeans'"),
                          ("normalization", "l2", "unknown normalization 'l2'")])
def test_unvalidated_config_value_still_fails_loudly(field, value, pattern):
    # RewardConfig refuses these values; a config object changed after validation must not fall through to a
    # default branch either.
    cfg = RewardConfig.preset("official")
    object.__setattr__(cfg, field, value)
    batch = _batch([[0.0], [1.0], [3.0]], [True, False, False])
    with pytest.raises(ValueError, match=pattern):
        compute_progress_rewards(*batch, cfg)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_embeddings_name_rows(bad):
    emb = np.zeros((5, 3))
    emb[1, 2] = bad
    emb[4, 0] = bad
    with pytest.raises(ValueError, match=r"2 row\(s\): 1, 4"):
        compute_progress_rewards(emb, np.zeros(5, bool), np.zeros(5, np.int64), np.zeros(5, np.int64), OFFICIAL)


@pytest.mark.parametrize(
    ("field", "value"),
    [("dbscan_eps", 0.0), ("alpha", 1.5), ("normalization", "l2"), ("sigmoid_scale", 2.0), ("memory_size", -1)],
)
def test_config_errors_name_field(field, value):
    with pytest.raises(ConfigError, match=f"reward.{field}"):
        RewardConfig(**{field: value})


# ----------------------------------------------------------------------------------------------------------
# Invariants.

@st.composite
def reward_batches(draw):
    num_tasks = draw(st.integers(1, 3))
    dim = draw(st.integers(1, 4))
    n = draw(st.integers(2, 24))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(n, dim)) * draw(st.sampled_from([0.1, 1.0, 10.0]))
    if draw(st.booleans()):
        emb = np.round(emb, 1)  # encourage duplicates and ties
    success = rng.random(n) < draw(st.floats(0.0, 1.0))
    tasks = rng.integers(0, num_tasks, size=n)
    groups = tasks * 10 + rng.integers(0, 2, size=n)
    return emb, success, tasks.astype(np.int64), groups.astype(np.int64)


CONFIGS = [
    OFFICIAL,
    PAPER,
    RewardConfig.preset("official", centres="nearest"),
    RewardConfig.preset("paper", reference_scope="group"),
]


@settings(max_examples=60, deadline=None)
@given(batch=reward_batches(), cfg_index=st.integers(0, len(CONFIGS) - 1))
def test_success_outscores_failures_and_reward_falls_with_distance(batch, cfg_index):
    cfg = CONFIGS[cfg_index]
    emb, success, tasks, groups = batch
    out = compute_progress_rewards(emb, success, tasks, groups, cfg)
    keys = tasks if cfg.reference_scope == "task" else groups
    assert np.isfinite(out.rewards).all()
    for key in np.unique(keys):
        rows = keys == key
        fails = rows & ~success
        if (rows & success).any() and fails.any():
            assert out.rewards[rows & success].min() >= out.rewards[fails].max()
        d = out.diagnostics.distance[fails]
        r = out.rewards[fails]
        order = np.argsort(d, kind="stable")
        # Within a reference set, a failure's reward never increases with its distance.
        assert (np.diff(r[order]) <= 1e-12).all() or np.isnan(d).all()


@settings(max_examples=60, deadline=None)
@given(batch=reward_batches())
def test_alpha_zero_equals_binary_grpo(batch):
    emb, success, tasks, groups = batch
    out = compute_progress_rewards(emb, success, tasks, groups, RewardConfig.preset("paper", alpha=0.0))
    binary = success.astype(np.float64)
    np.testing.assert_array_equal(out.rewards, binary)
    np.testing.assert_array_equal(group_advantages(out.rewards, groups), group_advantages(binary, groups))


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    num_fail=st.integers(2, 7),
    cfg_index=st.integers(0, len(CONFIGS) - 1),
)
def test_shaped_advantages_differ_from_binary_when_failures_differ(seed, num_fail, cfg_index):
    """The official code's shared frame list made every failure of a group identical, so SRPO collapsed to
    binary GRPO. With distinct per-rollout embeddings, failures at different distances must change the
    advantages."""
    rng = np.random.default_rng(seed)
    num_succ = 8 - num_fail
    succ = rng.normal(size=(num_succ, 3)) * 0.01
    # Failures at clearly different distances along one direction.
    dists = np.sort(rng.uniform(1.0, 10.0, size=num_fail))
    dists[-1] = dists[0] + 5.0
    fail = np.zeros((num_fail, 3))
    fail[:, 0] = dists
    emb = np.concatenate([succ, fail])
    success = np.asarray([True] * num_succ + [False] * num_fail)
    groups = np.zeros(8, dtype=np.int64)
    out = compute_progress_rewards(emb, success, groups, groups, CONFIGS[cfg_index])
    shaped = group_advantages(out.rewards, groups)
    binary = group_advantages(success.astype(float), groups)
    assert np.abs(shaped - binary).max() > 1e-2
    # Among failures, the nearest gets the largest advantage.
    assert shaped[num_succ] > shaped[-1]


def test_success_whitening_by_hand():
    from srpo.reward.progress import success_whitening

    # std per dimension [1, 2, 0]; median 1 floors the constant third dimension at 1.
    shift, scale = success_whitening(np.array([[0.0, 0.0, 5.0], [2.0, 4.0, 5.0]]))
    np.testing.assert_allclose(shift, [1.0, 2.0, 5.0])
    np.testing.assert_allclose(scale, [1.0, 2.0, 1.0])
    # One success: no spread at all, so only the shift applies.
    shift, scale = success_whitening(np.array([[3.0, 4.0]]))
    np.testing.assert_allclose(shift, [3.0, 4.0]) and np.testing.assert_allclose(scale, [1.0, 1.0])
    with pytest.raises(ValueError, match="M >= 1"):
        success_whitening(np.zeros((0, 2)))


def test_whitening_measures_distance_in_units_of_the_successes_spread():
    # Successes spread along y (std 2) and barely along x (std 0.1; floored at the median 1.05). Failure A sits
    # 3 along y, failure B 2 along x from the mean success (0, 0). Raw distance: B nearer (2 < 3). Whitened:
    # A at 3 / 2 = 1.5, B at 2 / 1.05 = 1.90, so A is nearer and gets the higher reward.
    successes = np.array([[0.1, 2.0], [-0.1, -2.0], [0.1, -2.0], [-0.1, 2.0]])
    failures = np.array([[0.0, 3.0], [2.0, 0.0]])
    emb = np.concatenate([successes, failures])
    success = np.array([True] * 4 + [False] * 2)
    zeros = np.zeros(6, dtype=np.int64)
    raw = compute_progress_rewards(emb, success, zeros, zeros, RewardConfig(centres="mean"))
    white = compute_progress_rewards(emb, success, zeros, zeros, RewardConfig(centres="mean", whiten=True))
    assert raw.rewards[5] > raw.rewards[4]
    assert white.rewards[4] > white.rewards[5]
    np.testing.assert_allclose(raw.diagnostics.distance[4:], [3.0, 2.0])
    np.testing.assert_allclose(white.diagnostics.distance[4:], [1.5, 2.0 / 1.05])
    np.testing.assert_array_equal(white.rewards[:4], 1.0)
