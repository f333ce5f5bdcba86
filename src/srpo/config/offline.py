"""Settings of offline SRPO (`srpo offline`): advantage-weighted behaviour cloning on a recorded dataset.

The policy, encoder, reward, env (for evaluation only) and run settings come from the rest of the config tree;
this section names the dataset and the weighting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from srpo.config.base import require, require_choice

OfflineArm = Literal["bc", "filtered_bc", "awr_binary", "awr_srpo"]
OFFLINE_ARMS = ("bc", "filtered_bc", "awr_binary", "awr_srpo")


@dataclass(frozen=True)
class OfflineConfig:
    """Offline advantage-weighted regression (AWR) over recorded episodes (paper: the real-robot result)."""

    dataset: str = ""
    """LeRobot v3 dataset folder, a LIBERO/robomimic HDF5 file, or a folder of HDF5 files (one task each)."""
    arm: OfflineArm = "awr_srpo"
    """Per-episode weights: "bc" (every episode weight 1), "filtered_bc" (successes 1, failures 0),
    "awr_binary" (AWR over the 0/1 outcome), "awr_srpo" (AWR over the SRPO progress reward: successes 1,
    failures scored by their world-model distance to the task's successes in the dataset)."""
    beta: float = 0.5
    """AWR temperature β in w = exp(A / β): smaller trusts the advantages more."""
    max_weight: float = 20.0
    """Clip of the AWR weights before the per-batch normalisation (Peng et al. 2019 use 20)."""
    batch_size: int = 64
    """Rows (policy decisions or steps) per optimiser step."""
    image_key: str | None = None
    """LeRobot camera feature given to the policy and the world model; None: the first observation.images.*."""
    state_key: str = "observation.state"
    """LeRobot proprioception feature (absent: the policy gets no state)."""
    action_key: str = "action"
    """LeRobot action feature: one action per row, or one chunk per row (as `srpo record` writes)."""
    success_key: str | None = None
    """Per-episode success: an episodes-table field or a data column read at the episode's last row. None tries
    `success`, then `next.success`, then `next.done`."""
    reference_dataset: str = ""
    """With reward.reference_source=external: a dataset of expert episodes whose successes are the reference
    set of each task (matched by instruction) instead of the dataset's own successes."""
    max_episodes: int | None = None
    """Read only the first this many episodes (None: all)."""

    def __post_init__(self) -> None:
        require_choice(self.arm, "offline.arm", OFFLINE_ARMS)
        require(self.beta > 0, "offline.beta", self.beta, "a float > 0, e.g. 0.5")
        require(self.max_weight > 0, "offline.max_weight", self.max_weight, "a float > 0, e.g. 20")
        require(self.batch_size >= 1, "offline.batch_size", self.batch_size, "an int >= 1, e.g. 64")
        require(self.max_episodes is None or self.max_episodes >= 1, "offline.max_episodes", self.max_episodes,
                "None or an int >= 1")
