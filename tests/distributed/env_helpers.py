"""Envs for the Ray tests that rollout actors import by module path (tests/ is on the actors' PYTHONPATH)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from srpo.config.env import TabletopConfig
from srpo.envs.base import Observation
from srpo.envs.tabletop import TabletopEnv, TabletopEnvFactory


@dataclass(frozen=True)
class SlowTabletopFactory:
    """The tabletop env with a fixed wall-clock cost per step that needs no CPU (a sleep), like waiting on a
    simulator: two actors should then step in parallel even on a machine with no idle core."""

    config: TabletopConfig
    step_s: float

    def task_specs(self) -> list[Any]:
        return TabletopEnvFactory(self.config).task_specs()

    def make(self, task_id: int) -> SlowEnv:
        return SlowEnv(TabletopEnv(self.config, task_id), self.step_s)


class SlowEnv:
    def __init__(self, env: TabletopEnv, step_s: float) -> None:
        self.env = env
        self.spec = env.spec
        self.step_s = step_s

    def reset(self, init_state_id: int) -> Observation:
        return self.env.reset(init_state_id)

    def step(self, action: np.ndarray, render_policy: bool, render_embed: bool) -> Observation:
        time.sleep(self.step_s)
        return self.env.step(action, render_policy, render_embed)

    def render(self, render_policy: bool, render_embed: bool) -> Observation:
        return self.env.render(render_policy, render_embed)

    def close(self) -> None:
        self.env.close()
