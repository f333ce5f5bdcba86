"""The trainer hooks of algo.keep_referenced_failure_groups (issue #17: which groups reach the update) and of
algo.failure_group_adv_weight (how much their advantages count)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from srpo.config.base import ConfigError
from srpo.config.train import load_config
from srpo.reward import ScoredBatch
from srpo.run_dir import read_metrics, read_step_arrays
from srpo.trainer import Trainer
from test_determinism import TINY


def _filter(*overrides: str) -> object:
    cfg = load_config(preset="tabletop", overrides=["algo.filter_low=0.1", "algo.filter_high=0.9", *overrides])
    return SimpleNamespace(cfg=cfg)


def test_filter_keeps_referenced_spread_failure_groups_only() -> None:
    # Group 0 mixed; group 1 all-fail, referenced, spread 0.14 (unbiased); group 2 all-fail, referenced, no
    # spread; group 3 all-fail without a reference (distance NaN).
    rewards = np.asarray([1.0, 0.3, 0.1, 0.3, 0.2, 0.2, 0.0, 0.0])
    success = np.asarray([1, 0, 0, 0, 0, 0, 0, 0], dtype=bool)
    groups = np.asarray([0, 0, 1, 1, 2, 2, 3, 3])
    distance = np.asarray([0.0, 1.0, 2.0, 3.0, 2.0, 2.0, np.nan, np.nan])
    metrics: dict[str, float] = {}
    trainer = _filter("algo.keep_referenced_failure_groups=true", "algo.failure_group_min_reward_std=0.05")
    keep = Trainer._failure_group_filter(trainer, rewards, success, groups, distance, metrics)  # type: ignore[arg-type]
    np.testing.assert_array_equal(keep, [True, True, True, True, False, False, False, False])
    assert metrics["rollout/num_failure_groups_kept"] == 1
    # A threshold above group 1's spread drops it too.
    trainer = _filter("algo.keep_referenced_failure_groups=true", "algo.failure_group_min_reward_std=0.2")
    keep = Trainer._failure_group_filter(trainer, rewards, success, groups, distance, {})  # type: ignore[arg-type]
    np.testing.assert_array_equal(keep, [True, True, False, False, False, False, False, False])
    # With filter_low = 0 the official filter already kept every all-failure group: nothing is dropped.
    trainer = _filter("algo.keep_referenced_failure_groups=true", "algo.filter_low=0.0")
    keep = Trainer._failure_group_filter(trainer, rewards, success, groups, distance, {})  # type: ignore[arg-type]
    assert keep.all()


def test_switch_runs_the_loop_and_logs_signal_share(tmp_path: Path) -> None:
    # A random policy fails everywhere: no reference, so no all-failure group qualifies; the step still trains
    # (zero advantages) and logs how many of the groups it rolled out carried signal.
    cfg = load_config(preset="tabletop", overrides=[
        *TINY, f"run_dir={tmp_path / 'run'}", "num_steps=1", "algo.filter_low=0.1", "algo.filter_high=0.9",
        "algo.max_sampling_rounds=2", "algo.keep_referenced_failure_groups=true"])
    with Trainer(cfg, show_progress=False) as trainer:
        trainer.train()
    step = next(m for m in read_metrics(tmp_path / "run") if m["step"] == 1)
    assert step["rollout/num_groups_sampled"] == 4  # 2 prompts, refilled once: nothing passed the filter
    assert step["rollout/num_groups_kept"] == 0
    assert step["rollout/num_failure_groups_kept"] == 0
    assert step["advantage/num_groups_with_signal"] == 0 and step["advantage/share_groups_with_signal"] == 0.0
    assert step["rollout/num_trajectories"] == 16  # both rounds' all-failure groups, as the fallback batch


def test_failure_group_adv_weight_is_validated() -> None:
    with pytest.raises(ConfigError, match=r"algo\.failure_group_adv_weight.*a float in \[0, 1\]"):
        load_config(preset="tabletop", overrides=["algo.failure_group_adv_weight=1.5"])
    with pytest.raises(ConfigError, match=r"algo\.keep_referenced_failure_groups.*failure_group_adv_weight=0"):
        load_config(preset="tabletop", overrides=[
            "algo.keep_referenced_failure_groups=true", "algo.failure_group_adv_weight=0"])


@pytest.mark.parametrize("weight", [0.0, 0.5, 1.0])
def test_failure_group_adv_weight_scales_what_the_update_gets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, weight: float
) -> None:
    # The reward is replaced by known advantages; a random policy fails every episode, so every group is an
    # all-failure group and its advantages reach the update (and the step's arrays) scaled by the weight.
    def reward(self: Trainer, embeddings: object, success: np.ndarray, task_ids: np.ndarray,
               group_ids: np.ndarray, metrics: dict[str, float]) -> ScoredBatch:
        advantages = np.linspace(-1.0, 1.0, len(success))
        return ScoredBatch(success, task_ids, group_ids, np.zeros(len(success)), advantages, None)

    monkeypatch.setattr(Trainer, "reward", reward)
    cfg = load_config(preset="tabletop", overrides=[
        *TINY, f"run_dir={tmp_path / 'run'}", "num_steps=1", "algo.filter_low=0.0",
        f"algo.failure_group_adv_weight={weight}"])
    with Trainer(cfg, show_progress=False) as trainer:
        trainer.train()
    arrays = read_step_arrays(tmp_path / "run")[1]
    assert not arrays["success"].any()
    np.testing.assert_allclose(arrays["advantages"], weight * np.linspace(-1.0, 1.0, len(arrays["success"])))
    step = next(m for m in read_metrics(tmp_path / "run") if m["step"] == 1)
    assert step["advantage/failure_group_abs_share"] == (1.0 if weight > 0 else 0.0)
    assert step["advantage/num_groups_with_signal"] == (2 if weight > 0 else 0)
