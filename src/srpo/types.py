"""Typed records passed between components, and key constants.

Everything that crosses a component boundary (env → rollout → reward → trainer) is one of these records;
no loose dicts. Arrays are numpy on the CPU: the rollout produces them in worker processes, the reward reads
them without torch, and the trainer moves what it needs to the device.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

import numpy as np

# Layout of one action (the LIBERO / OpenVLA convention): 3 translation deltas, 3 rotation deltas, gripper.
ACTION_DIM = 7
GRIPPER_DIM = 6
# OpenVLA* decodes a chunk of 8 actions in one parallel pass: 7 × 8 = 56 action tokens.
DEFAULT_CHUNK_SIZE = 8
DEFAULT_NUM_BINS = 256

# Choices shared by the config tree and the maths that implements them (one definition each).
Aggregation = Literal["token-mean", "seq-mean-token-mean", "traj-mean-token-mean"]
"""How token losses become one scalar: mean over all executed tokens, mean over rows (chunks) of per-row token
means, or mean over trajectories of per-trajectory token means (srpo.algo.losses.masked_aggregate)."""


def unknown_aggregation(mode: object) -> ValueError:
    """The error every implementation of `Aggregation` raises for a mode it does not know (one wording)."""
    return ValueError(f"unknown aggregation {mode!r}: choose one of {', '.join(map(repr, get_args(Aggregation)))}")


KLEstimator = Literal["k1", "k3"]
"""Per-token KL estimator against the reference policy (Schulman's k1 or k3)."""
LRSchedule = Literal["constant", "linear", "cosine"]
"""Learning rate over the run's training steps (srpo.algo.schedule.lr_factor)."""
StdKind = Literal["unbiased", "biased"]
"""Group reward std of the GRPO advantage: ddof 1 (official) or 0."""
DTypeName = Literal["float32", "bfloat16", "float16"]
"""Names of the floating-point dtypes a policy or encoder may run in."""


@dataclass
class Trajectory:
    """One rollout episode: everything the reward and the trainer need, owned by this rollout alone.

    A rollout's frames belong to that rollout alone (the official code let the 8 rollouts of a prompt share one
    frame list, which made every failure of a group score the same; see docs/reward.md).

    Shapes (C = number of action chunks the policy produced, L = chunk_size · action_dim tokens per chunk,
    T = number of executed env steps, F = number of recorded embedding frames):

    Attributes:
        task_id: Index of the task in its suite / env family.
        instruction: The task's language instruction, as given to the policy.
        init_state_id: Which fixed initial state of the task the episode started from.
        group_id: GRPO group: rollouts of the same (task, init state) prompt in one batch share it.
        rollout_id: Unique id of this rollout within the batch.
        frames: (F, H, W, 3) uint8 frames recorded for the world-model embedding, upright.
        policy_images: (C, h, w, 3) uint8 image the policy saw at the start of each chunk.
        policy_states: (C, S) float32 proprioception the policy saw at the start of each chunk (S may be 0).
        action_tokens: (C, L) int64 sampled action-bin tokens.
        log_probs: (C, L) float32 log-probabilities of those tokens under the behaviour policy (at the
            sampling temperature).
        token_mask: (C, L) bool, True for tokens of actions that were executed (an episode that ends in the
            middle of a chunk does not execute the rest of it; those tokens are not trained on).
        actions: (T, 7) float32 continuous actions actually sent to the env.
        success: Whether the env reported task success.
        finish_step: Number of env steps executed (== T).
        suite: Name of the suite / env family the task comes from.
        num_restarts: How often this episode was re-run after a worker fault.
        eef_pos: (T, 3) float32 end-effector position after each executed env step (row t follows action t),
            from the env's `Observation.eef_pos`; (0, 3) when the env does not report one, and for records made
            before this field existed (constructors that omit it get the empty array, so they keep working; the
            diversity metrics refuse such records with a message instead of guessing a path).
    """

    task_id: int
    instruction: str
    init_state_id: int
    group_id: int
    rollout_id: int
    frames: np.ndarray
    policy_images: np.ndarray
    policy_states: np.ndarray
    action_tokens: np.ndarray
    log_probs: np.ndarray
    token_mask: np.ndarray
    actions: np.ndarray
    success: bool
    finish_step: int
    suite: str = ""
    num_restarts: int = 0
    eef_pos: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), dtype=np.float32))

    def __post_init__(self) -> None:
        num_chunks = self.action_tokens.shape[0]
        for name in ("policy_images", "policy_states", "log_probs", "token_mask"):
            arr = getattr(self, name)
            if arr.shape[0] != num_chunks:
                raise ValueError(
                    f"Trajectory {self.rollout_id}: {name} has {arr.shape[0]} chunks but action_tokens has "
                    f"{num_chunks}; every per-chunk array must have one row per chunk"
                )
        if self.log_probs.shape != self.action_tokens.shape or self.token_mask.shape != self.action_tokens.shape:
            raise ValueError(
                f"Trajectory {self.rollout_id}: log_probs {self.log_probs.shape} and token_mask "
                f"{self.token_mask.shape} must match action_tokens {self.action_tokens.shape}"
            )
        if self.frames.ndim != 4 or (self.frames.shape[0] > 0 and self.frames.shape[-1] != 3):
            raise ValueError(f"Trajectory {self.rollout_id}: frames must be (F, H, W, 3), got {self.frames.shape}")
        if self.actions.shape[0] != self.finish_step:
            raise ValueError(
                f"Trajectory {self.rollout_id}: {self.actions.shape[0]} actions recorded but finish_step is "
                f"{self.finish_step}"
            )
        if self.eef_pos.ndim != 2 or self.eef_pos.shape[1] != 3 or self.eef_pos.shape[0] not in (0, self.finish_step):
            raise ValueError(
                f"Trajectory {self.rollout_id}: eef_pos must be (finish_step={self.finish_step}, 3) or (0, 3) when "
                f"not recorded, got {self.eef_pos.shape}"
            )

    @property
    def num_chunks(self) -> int:
        return int(self.action_tokens.shape[0])


@dataclass
class Demo:
    """One demonstration episode (from an HDF5 file or a scripted controller).

    Attributes:
        images: (T, H, W, 3) uint8 policy camera images, upright, one per step before the action.
        states: (T, S) float32 proprioception (S may be 0).
        actions: (T, 7) float32 env actions in [-1, 1].
        instruction: Task language.
        task_id: Task index within its suite.
        suite: Suite / env family name.
        success: Whether the demonstration reached the goal.
    """

    images: np.ndarray
    states: np.ndarray
    actions: np.ndarray
    instruction: str
    task_id: int
    suite: str
    success: bool = True

    def __post_init__(self) -> None:
        t = self.actions.shape[0]
        if self.images.shape[0] != t or self.states.shape[0] != t:
            raise ValueError(
                f"Demo of task {self.task_id}: images {self.images.shape[0]}, states {self.states.shape[0]} and "
                f"actions {t} must have one row per step"
            )


@dataclass
class RewardDiagnostics:
    """Per-trajectory diagnostics of the progress reward. All arrays have shape (N,), in input order.

    Attributes:
        distance: Distance of the embedding to the nearest reference centre (NaN where no reference exists).
        normalized_distance: Distance after normalisation over the task's failures (NaN for successes and where
            no reference exists).
        progress: Shaped progress value in [0, scale] before the α mix (1 for successes).
        cluster_id: Index of the nearest centre within its reference set (−1 where none).
        num_clusters: Number of centres in the trajectory's reference set (0 where none).
        reference_kind: Per trajectory: "batch", "memory", "external" or "none".
    """

    distance: np.ndarray
    normalized_distance: np.ndarray
    progress: np.ndarray
    cluster_id: np.ndarray
    num_clusters: np.ndarray
    reference_kind: np.ndarray


@dataclass
class RewardOutput:
    """Rewards for a batch of trajectories (N,) plus diagnostics."""

    rewards: np.ndarray
    diagnostics: RewardDiagnostics


@dataclass
class EpisodeStats:
    """Counts the rollout engine reports with a batch."""

    num_episodes: int = 0
    num_env_steps: int = 0
    num_worker_restarts: int = 0
    num_episode_retries: int = 0
    extra: dict[str, float] = field(default_factory=dict)
