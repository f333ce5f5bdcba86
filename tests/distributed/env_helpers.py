"""Envs and policies for the Ray tests that actors import by module path (tests/ is on the actors' PYTHONPATH)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from srpo.config.env import TabletopConfig
from srpo.config.policy import PolicyConfig
from srpo.envs.base import Observation
from srpo.envs.tabletop import TabletopEnv, TabletopEnvFactory
from srpo.policies.base import PolicyInput
from srpo.policies.compact import CompactVLA


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


class ExitingCompactVLA(CompactVLA):
    """The compact VLA whose learner of rank `exit_rank` ends its own process (os._exit, like a segfault or the
    kernel's OOM killer) at its `exit_at_call`-th log-prob forward, once: `marker` records that it fired, so the
    learners restarted from the same pickled policy run normally."""

    def __init__(self, config: PolicyConfig, exit_rank: int, exit_at_call: int, marker: str) -> None:
        super().__init__(config)
        self.exit_rank = exit_rank
        self.exit_at_call = exit_at_call
        self.marker = marker
        self.num_calls = 0

    def token_log_probs(self, batch: PolicyInput, tokens: torch.Tensor, temperature: float
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        import torch.distributed as dist

        if dist.is_initialized() and dist.get_rank() == self.exit_rank:
            self.num_calls += 1
            if self.num_calls == self.exit_at_call and not os.path.exists(self.marker):
                with open(self.marker, "w"):
                    pass
                os._exit(1)
        return super().token_log_probs(batch, tokens, temperature)


@dataclass(frozen=True)
class ResetLoggingTabletopFactory:
    """The tabletop env, appending one line per episode start to `log_path`: "task_id init_state_id node_id".
    Which episodes ran on which Ray node, and how often each was (re-)started, across processes and nodes."""

    config: TabletopConfig
    log_path: str

    def task_specs(self) -> list[Any]:
        return TabletopEnvFactory(self.config).task_specs()

    def make(self, task_id: int) -> ResetLoggingEnv:
        return ResetLoggingEnv(TabletopEnv(self.config, task_id), task_id, self.log_path)


class ResetLoggingEnv(SlowEnv):
    def __init__(self, env: TabletopEnv, task_id: int, log_path: str) -> None:
        super().__init__(env, step_s=0.0)
        self.task_id = task_id
        self.log_path = log_path

    def reset(self, init_state_id: int) -> Observation:
        import ray

        # One short O_APPEND write per line: lines of concurrent actors do not interleave.
        with open(self.log_path, "a") as f:
            f.write(f"{self.task_id} {init_state_id} {ray.get_runtime_context().get_node_id()}\n")
        return self.env.reset(init_state_id)
