"""The SRPO reward as a library for any RL stack: numpy only (no torch, envs or policies).

    from srpo.reward import RewardConfig, srpo_advantages

    scored = srpo_advantages(embeddings, success, task_ids, group_ids, RewardConfig.preset("official"))

`compute_progress_rewards` is the reward alone; `SuccessMemory` keeps earlier successes for tasks without one in
the batch. Reward-quality metrics live in `srpo.reward.quality`; world-model encoders (torch) in
`srpo.reward.encoders`, imported only when asked for.
"""

from srpo.config.reward import RewardConfig
from srpo.reward.advantages import ScoredBatch, srpo_advantages
from srpo.reward.progress import SuccessMemory, compute_progress_rewards, validate_reward_inputs
from srpo.types import RewardDiagnostics, RewardOutput

__all__ = [
    "RewardConfig",
    "RewardDiagnostics",
    "RewardOutput",
    "ScoredBatch",
    "SuccessMemory",
    "compute_progress_rewards",
    "srpo_advantages",
    "validate_reward_inputs",
]
