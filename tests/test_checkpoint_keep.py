"""Checkpoint pruning: the newest `keep_last_checkpoints`, plus every `keep_checkpoint_every`-th step."""

from __future__ import annotations

from pathlib import Path

import pytest

from srpo.config.base import ConfigError
from srpo.config.train import TrainConfig, load_config
from srpo.run_dir import checkpoint_step, checkpoints_to_drop, list_checkpoints
from srpo.trainer import Trainer
from tiny_config import PIXEL_ENCODER, tiny_tabletop


def test_checkpoints_to_drop_hand_computed() -> None:
    assert checkpoints_to_drop([1, 2, 3], keep_last=2) == [1]
    assert checkpoints_to_drop([3, 1, 2], keep_last=5) == []
    assert checkpoints_to_drop([1, 2, 3, 4, 5], keep_last=1, keep_every=2) == [1, 3]
    assert checkpoints_to_drop([10, 20, 25, 30, 31], keep_last=2, keep_every=10) == [25]
    assert checkpoints_to_drop([1, 2, 3], keep_last=1, keep_every=0) == [1, 2]


def config(run_dir: Path, *extra: str) -> TrainConfig:
    return load_config(preset="tabletop", overrides=[
        *tiny_tabletop(8, *PIXEL_ENCODER, "algo.group_size=2", "algo.num_prompts_per_step=1",
                       "num_eval_episodes_per_task=0", "num_videos_per_step=0", "tensorboard=false"),
        f"run_dir={run_dir}", "keep_last_checkpoints=1", "keep_checkpoint_every=2", *extra])


def test_a_run_keeps_every_nth_checkpoint_and_resumes_from_the_newest(tmp_path: Path) -> None:
    cfg = config(tmp_path / "run", "num_steps=5")
    with Trainer(cfg, show_progress=False) as trainer:
        trainer.train()
    assert [checkpoint_step(c) for c in list_checkpoints(tmp_path / "run")] == [2, 4, 5]
    with Trainer(config(tmp_path / "run", "num_steps=6"), resume=True, show_progress=False) as trainer:
        assert trainer.step == 5
        trainer.train()
    assert [checkpoint_step(c) for c in list_checkpoints(tmp_path / "run")] == [2, 4, 6]


def test_negative_keep_checkpoint_every_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="keep_checkpoint_every=-1 is invalid"):
        config(tmp_path, "keep_checkpoint_every=-1")
