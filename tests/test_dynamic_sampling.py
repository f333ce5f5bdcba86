"""Dynamic sampling's refill loop: more rounds of rollouts until num_prompts_per_step groups pass the success
filter, and a logged give-up after max_sampling_rounds. Outcomes are scripted per episode (a tabletop env whose
success flag comes from a list) so each round's groups are known in advance."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np
import pytest

from srpo.config.train import load_config
from srpo.envs.base import Observation, TaskSpec
from srpo.envs.tabletop import TabletopEnv, TabletopEnvFactory
from srpo.rollout import RolloutEngine
from srpo.trainer import Trainer

GROUP_SIZE = 4
NUM_PROMPTS = 2
FAIL = [False] * GROUP_SIZE
MIXED = [True, False] * (GROUP_SIZE // 2)  # success rate 0.5: passes the [0.1, 0.9] filter


class ScriptedOutcomeEnv:
    """A real tabletop env whose success is the next scripted outcome, drawn at reset: a success ends the
    episode on its first step, a failure runs to the horizon."""

    def __init__(self, inner: TabletopEnv, outcomes: Iterator[bool]) -> None:
        self.inner, self.outcomes = inner, outcomes
        self.spec: TaskSpec = inner.spec
        self.success = False

    def reset(self, init_state_id: int) -> Observation:
        self.success = next(self.outcomes)
        return self.inner.reset(init_state_id)

    def step(self, action: np.ndarray, render_policy: bool, render_embed: bool) -> Observation:
        return replace(self.inner.step(action, render_policy, render_embed), success=self.success)

    def render(self, render_policy: bool, render_embed: bool) -> Observation:
        return replace(self.inner.render(render_policy, render_embed), success=self.success)

    def close(self) -> None:
        self.inner.close()


@dataclass
class ScriptedOutcomeFactory:
    inner: TabletopEnvFactory
    outcomes: Iterator[bool]

    def task_specs(self) -> list[TaskSpec]:
        return self.inner.task_specs()

    def make(self, task_id: int) -> ScriptedOutcomeEnv:
        return ScriptedOutcomeEnv(self.inner.make(task_id), self.outcomes)


@pytest.fixture(scope="module")
def trainer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trainer]:
    cfg = load_config(preset="tabletop", overrides=[
        "algo_name=grpo", "env.tabletop.num_tasks=2", "env.tabletop.max_steps=8", "env.tabletop.image_size=32",
        "policy.image_size=32", "policy.d_model=32", "policy.num_layers=1", "policy.num_heads=2",
        "policy.ff_dim=64", "policy.chunk_size=4", f"algo.group_size={GROUP_SIZE}",
        f"algo.num_prompts_per_step={NUM_PROMPTS}", "algo.dynamic_sampling=true", "algo.filter_low=0.1",
        "algo.filter_high=0.9", "algo.max_sampling_rounds=3", "num_eval_episodes_per_task=0", "tensorboard=false",
        f"run_dir={tmp_path_factory.mktemp('dyn') / 'run'}",
    ])
    with Trainer(cfg, show_progress=False) as built:
        yield built


def rollout_with(trainer: Trainer, outcomes: list[bool]) -> tuple[list, dict[str, float]]:
    script = iter(outcomes)
    trainer.engine.close()
    trainer.engine = RolloutEngine(ScriptedOutcomeFactory(TabletopEnvFactory(trainer.cfg.env.tabletop), script),
                                   trainer.cfg.rollout)
    metrics: dict[str, float] = {}
    trajs, stats = trainer.rollout(metrics)
    assert next(script, None) is None, "the loop ran fewer episodes than scripted"
    assert stats.num_episodes == len(outcomes)
    return trajs, metrics


def group_rates(trajs: list) -> list[float]:
    groups: dict[int, list[bool]] = {}
    for t in trajs:
        groups.setdefault(t.group_id, []).append(t.success)
    return [float(np.mean(v)) for v in groups.values()]


def test_refills_until_the_batch_is_full(trainer: Trainer, caplog: pytest.LogCaptureFixture):
    # Round 1: one all-fail group (dropped) + one mixed group; round 2 asks for one more group: mixed.
    with caplog.at_level(logging.WARNING, logger="srpo.trainer"):
        trajs, metrics = rollout_with(trainer, FAIL + MIXED + MIXED)
    assert metrics["rollout/num_sampling_rounds"] == 2
    assert metrics["rollout/num_groups_kept"] == NUM_PROMPTS
    assert metrics["rollout/num_episodes_total"] == 3 * GROUP_SIZE
    assert len(trajs) == NUM_PROMPTS * GROUP_SIZE
    assert group_rates(trajs) == [0.5, 0.5]
    assert len({t.group_id for t in trajs}) == NUM_PROMPTS  # group ids stay unique across rounds
    assert len({t.rollout_id for t in trajs}) == len(trajs)
    assert "gave up" not in caplog.text


def test_gives_up_after_max_rounds_keeping_what_passed(trainer: Trainer, caplog: pytest.LogCaptureFixture):
    # Round 1 keeps one group; rounds 2 and 3 (one group each) fail entirely.
    with caplog.at_level(logging.WARNING, logger="srpo.trainer"):
        trajs, metrics = rollout_with(trainer, MIXED + FAIL + FAIL + FAIL)
    assert metrics["rollout/num_sampling_rounds"] == 3
    assert metrics["rollout/num_groups_kept"] == 1
    assert group_rates(trajs) == [0.5]
    assert ("dynamic sampling gave up after 3 rounds (algo.max_sampling_rounds): 1 of 2 groups had a success rate "
            "in [algo.filter_low=0.1, algo.filter_high=0.9]; training on the groups kept") in caplog.text


def test_gives_up_with_nothing_kept_and_trains_on_the_last_round(trainer: Trainer,
                                                                 caplog: pytest.LogCaptureFixture):
    with caplog.at_level(logging.WARNING, logger="srpo.trainer"):
        trajs, metrics = rollout_with(trainer, FAIL * 2 * 3)
    assert metrics["rollout/num_sampling_rounds"] == 3
    assert len(trajs) == NUM_PROMPTS * GROUP_SIZE and not any(t.success for t in trajs)
    assert all(t.group_id >= 30_000 for t in trajs)  # round 3 (group ids are offset by 10_000 per round)
    assert "0 of 2 groups" in caplog.text and "training on the last round's groups (zero advantages)" in caplog.text
