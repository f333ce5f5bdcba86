"""Property test of the whole learning-signal path on random batches: SRPO reward → group advantages →
PPO-clip loss and its gradient. Finite everywhere and shapes kept, including the corner cases a real batch
produces: one trajectory, all successes, all failures, duplicate (even identical) embeddings, groups whose
rewards do not vary, extreme embedding scales, rows without any executed token."""

from __future__ import annotations

from dataclasses import dataclass
from typing import get_args

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from srpo.algo.advantages import group_advantages
from srpo.algo.losses import ppo_clip_loss
from srpo.config.reward import RewardConfig
from srpo.reward.progress import compute_progress_rewards
from srpo.types import Aggregation

EMBEDDING_KINDS = ("random", "duplicates", "identical", "huge", "tiny")


@dataclass
class Batch:
    embeddings: np.ndarray  # (N, D)
    success: np.ndarray  # (N,) bool
    task_ids: np.ndarray  # (N,)
    group_ids: np.ndarray  # (N,)
    num_tokens: int  # L
    seed: int


@st.composite
def batches(draw: st.DrawFn) -> Batch:
    group_sizes = draw(st.lists(st.integers(1, 6), min_size=1, max_size=5))
    n = sum(group_sizes)
    group_ids = np.repeat(np.arange(len(group_sizes)), group_sizes)
    num_tasks = draw(st.integers(1, len(group_sizes)))
    task_of_group = np.asarray(draw(st.lists(st.integers(0, num_tasks - 1), min_size=len(group_sizes),
                                             max_size=len(group_sizes))))
    outcome = draw(st.sampled_from(("mixed", "all_success", "all_failure", "constant_per_group")))
    if outcome == "all_success":
        success = np.ones(n, bool)
    elif outcome == "all_failure":
        success = np.zeros(n, bool)
    elif outcome == "constant_per_group":  # every group's rewards have zero variance if they all succeed
        per_group = draw(st.lists(st.booleans(), min_size=len(group_sizes), max_size=len(group_sizes)))
        success = np.asarray(per_group)[group_ids]
    else:
        success = np.asarray(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    dim = draw(st.integers(1, 8))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    kind = draw(st.sampled_from(EMBEDDING_KINDS))
    if kind == "duplicates":
        embeddings = rng.normal(size=(max(1, n // 3), dim))[rng.integers(0, max(1, n // 3), size=n)]
    elif kind == "identical":
        embeddings = np.repeat(rng.normal(size=(1, dim)), n, axis=0)
    else:
        scale = {"random": 1.0, "huge": 1e6, "tiny": 1e-8}[kind]
        embeddings = rng.normal(size=(n, dim)) * scale
    return Batch(embeddings.astype(np.float32), success, task_of_group[group_ids], group_ids,
                 draw(st.integers(1, 16)), seed)


def check(batch: Batch, config: RewardConfig, aggregation: str) -> None:
    n = batch.success.size
    out = compute_progress_rewards(batch.embeddings, batch.success, batch.task_ids, batch.group_ids, config)
    rewards = out.rewards
    assert rewards.shape == (n,) and np.isfinite(rewards).all()
    assert (rewards[batch.success] == config.success_reward).all()
    assert (rewards[~batch.success] < config.success_reward).all()  # a failure never earns a success's reward

    adv = group_advantages(rewards, batch.group_ids)
    assert adv.shape == (n,) and np.isfinite(adv).all()
    for g in np.unique(batch.group_ids):
        rows = batch.group_ids == g
        if np.ptp(rewards[rows]) == 0:  # zero-variance group (or a group of one): no signal, not NaN
            assert (np.abs(adv[rows]) < 1e-6).all()  # exact 0 up to rounding of the group mean
        else:
            assert abs(adv[rows].sum()) < 1e-6 * rows.sum()  # centred per group

    rng = np.random.default_rng(batch.seed)
    log_probs = torch.tensor(-rng.exponential(2.0, size=(n, batch.num_tokens)), requires_grad=True)
    old = log_probs.detach() + torch.tensor(rng.normal(0, 0.5, size=(n, batch.num_tokens)))
    mask = torch.tensor(rng.random((n, batch.num_tokens)) < 0.7)
    row_weights = torch.tensor(rng.random(n))  # used by traj-mean-token-mean only
    ppo = ppo_clip_loss(log_probs, old, torch.as_tensor(adv), mask, aggregation=aggregation,  # type: ignore[arg-type]
                        row_weights=row_weights)
    for value in ppo:
        assert value.shape == () and torch.isfinite(value)
    ppo.loss.backward()
    assert log_probs.grad is not None and log_probs.grad.shape == (n, batch.num_tokens)
    assert torch.isfinite(log_probs.grad).all()
    assert (log_probs.grad[~mask] == 0).all()  # unexecuted tokens get no gradient


@settings(max_examples=2000, deadline=None, derandomize=True)
@given(batch=batches(), preset=st.sampled_from(("official", "paper")), scope=st.sampled_from(("task", "group")),
       centres=st.sampled_from(("nearest", "mean")), aggregation=st.sampled_from(get_args(Aggregation)))
def test_reward_advantage_loss_is_finite_and_keeps_shapes(batch: Batch, preset: str, scope: str, centres: str,
                                                           aggregation: str) -> None:
    """Thousands of batches through the numpy-only centre methods (sub-millisecond each)."""
    check(batch, RewardConfig.preset(preset, reference_scope=scope, centres=centres), aggregation)  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None, derandomize=True)
@given(batch=batches(), preset=st.sampled_from(("official", "paper")), scope=st.sampled_from(("task", "group")))
def test_reward_advantage_loss_with_dbscan_centres(batch: Batch, preset: str, scope: str) -> None:
    """The official DBSCAN centres: fewer cases, as scikit-learn's DBSCAN costs ~10 ms a call."""
    check(batch, RewardConfig.preset(preset, reference_scope=scope), "token-mean")  # type: ignore[arg-type]


def test_single_trajectory_edge_cases() -> None:
    """One trajectory, success or failure: reward defined, advantage 0 (no group to compare with), loss 0."""
    for success in (True, False):
        batch = Batch(np.zeros((1, 3), np.float32), np.array([success]), np.zeros(1, int), np.zeros(1, int), 4, 0)
        check(batch, RewardConfig.preset("official"), "token-mean")
