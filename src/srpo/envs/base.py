"""The env interface: what the rollout engine needs from a simulator, and nothing more.

An env instance is bound to one task (LIBERO builds one MuJoCo model per BDDL file, so reusing an env across
episodes of its task is the big saving). Episodes start from a numbered fixed initial state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class TaskSpec:
    """A task the engine can roll out.

    Attributes:
        suite: Env family / benchmark suite name, e.g. "libero_spatial" or "tabletop".
        task_id: Index of the task within the suite.
        instruction: Natural-language instruction given to the policy.
        max_steps: Episode horizon in env steps (after the settle steps).
        num_init_states: Number of fixed initial states available for this task.
    """

    suite: str
    task_id: int
    instruction: str
    max_steps: int
    num_init_states: int


@dataclass
class Observation:
    """What the env returns after reset or step.

    Attributes:
        image: (H, W, 3) uint8 policy camera image, upright; None when the step was asked not to render.
        embed_frame: (H', W', 3) uint8 frame for the world-model embedding (upright third-person view);
            None when not rendered this step.
        state: (S,) float32 proprioception (may be empty).
        success: Whether the task goal holds now.
        wrist_image: (H, W, 3) uint8 wrist-camera image, upright, rendered together with `image` by envs that
            have a wrist camera and have it enabled; None otherwise.
        eef_pos: (3,) float32 end-effector position in the env's world frame (tabletop: gripper x, y, z;
            LIBERO: robosuite's `robot0_eef_pos`), or None for envs that do not report one. The rollout engine
            records it after every step into `Trajectory.eef_pos` (trajectory-diversity metrics).
    """

    image: np.ndarray | None
    embed_frame: np.ndarray | None
    state: np.ndarray
    success: bool
    wrist_image: np.ndarray | None = None
    eef_pos: np.ndarray | None = None


class Env(Protocol):
    """A single-task environment. Implementations: `srpo.envs.tabletop`, `srpo.envs.libero`."""

    spec: TaskSpec

    def reset(self, init_state_id: int) -> Observation:
        """Start an episode from fixed initial state `init_state_id`; renders both images."""
        ...

    def step(self, action: np.ndarray, render_policy: bool, render_embed: bool) -> Observation:
        """Apply one (7,) action in [-1, 1]; render only the images asked for."""
        ...

    def close(self) -> None:
        """Release simulator and render resources."""
        ...


class EnvFactory(Protocol):
    """Builds envs inside rollout worker processes; must be picklable (a dataclass of plain config)."""

    def task_specs(self) -> list[TaskSpec]:
        """All tasks this factory can build, indexed by position == TaskSpec.task_id."""
        ...

    def make(self, task_id: int) -> Env:
        """Construct the env of one task (expensive for LIBERO: do it once per worker and task)."""
        ...
