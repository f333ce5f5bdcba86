"""Reward → advantages in one call: the SRPO pipeline that `srpo train` and `srpo score` (and any other RL stack)
share.

    scored = srpo_advantages(embeddings, success, task_ids, group_ids, RewardConfig.preset("official"))
    scored.rewards      # (N,) progress rewards: 1 for successes, shaped by distance to success centres for failures
    scored.advantages   # (N,) GRPO group-relative advantages of those rewards

Numpy only: no torch, envs or policies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from srpo.algo.advantages import group_advantages
from srpo.config.reward import RewardConfig
from srpo.reward.progress import SuccessMemory, compute_progress_rewards
from srpo.types import RewardOutput, StdKind


@dataclass
class ScoredBatch:
    """Rewards and advantages of a batch, all (N,) in input order.

    Attributes:
        success: (N,) bool outcomes.
        task_ids: (N,) int tasks.
        group_ids: (N,) int GRPO groups.
        rewards: (N,) float64 SRPO progress rewards (or the 0/1 outcome without embeddings).
        advantages: (N,) float64 group-relative advantages of `rewards`.
        output: The progress reward's per-trajectory diagnostics (None for binary rewards).
    """

    success: np.ndarray
    task_ids: np.ndarray
    group_ids: np.ndarray
    rewards: np.ndarray
    advantages: np.ndarray
    output: RewardOutput | None

    @property
    def distance(self) -> np.ndarray:
        """(N,) distance to the nearest success centre (NaN where there is none, and for binary rewards)."""
        if self.output is None:
            return np.full(self.rewards.shape, np.nan)
        return self.output.diagnostics.distance


def srpo_advantages(
    embeddings: np.ndarray | None,
    success: np.ndarray,
    task_ids: np.ndarray,
    group_ids: np.ndarray,
    config: RewardConfig,
    memory: SuccessMemory | None = None,
    external: Mapping[int, np.ndarray] | None = None,
    adv_eps: float = 1e-6,
    adv_std: StdKind = "unbiased",
) -> ScoredBatch:
    """SRPO rewards of a batch and their GRPO group advantages.

    Args:
        embeddings: (N, D) world-model embedding of each trajectory's own frames, or None for binary (GRPO)
            rewards r_i = success_i.
        success: (N,) bool outcomes.
        task_ids: (N,) int task of each trajectory (success centres are per task).
        group_ids: (N,) int GRPO group of each trajectory (advantages are per group).
        config: The progress reward's settings.
        memory: A bank of earlier successes, consulted for tasks without a success in this batch and then
            updated with this batch's successes (None: no bank).
        external: Task id → (M, D) expert embeddings for config.reference_source == "external".
        adv_eps: Added to each group's reward std.
        adv_std: "unbiased" (official) or "biased" group std.

    Returns:
        The batch's rewards, advantages A_i = (r_i − mean_g) / (std_g + eps) and reward diagnostics.
    """
    success = np.asarray(success).astype(bool)
    task_ids = np.asarray(task_ids)
    group_ids = np.asarray(group_ids)
    output: RewardOutput | None = None
    if embeddings is None:
        rewards = success.astype(np.float64)
    else:
        output = compute_progress_rewards(embeddings, success, task_ids, group_ids, config, external=external,
                                          memory=memory.as_mapping() if memory is not None else None)
        if memory is not None:
            memory.update(np.asarray(embeddings), success, task_ids)
        rewards = output.rewards
    advantages = group_advantages(rewards, group_ids, adv_eps, adv_std)
    return ScoredBatch(success, task_ids, group_ids, rewards, advantages, output)
