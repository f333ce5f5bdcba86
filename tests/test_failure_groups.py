"""The trainer hook of algo.keep_referenced_failure_groups (issue #17): which groups reach the update."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np

from srpo.config.train import load_config
from srpo.run_dir import read_metrics
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
