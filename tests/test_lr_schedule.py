"""The learning-rate schedule in the online loop: the rate each step trains at (logged as `ppo/lr`, and what the
optimiser holds), a resume that continues the schedule bit for bit, and the config's checks."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from srpo.config.base import ConfigError
from srpo.config.train import load_config
from srpo.run_dir import read_metrics
from srpo.trainer import Trainer
from tiny_config import PIXEL_ENCODER, tiny_tabletop

# The entropy bonus makes every step take optimiser steps, whatever the advantages.
TINY = tiny_tabletop(
    12, *PIXEL_ENCODER, "algo.group_size=2", "algo.num_prompts_per_step=2", "algo.num_minibatches=2",
    "algo.lr=1e-3", "algo.entropy_coef=0.01", "num_eval_episodes_per_task=0", "num_videos_per_step=0",
    "tensorboard=false", "num_steps=3", "algo.lr_schedule=linear",
)


def test_each_step_trains_at_its_scheduled_rate_and_a_resume_continues_it(tmp_path: Path):
    straight = load_config(preset="tabletop", overrides=[*TINY, f"run_dir={tmp_path / 'straight'}"])
    with Trainer(straight, show_progress=False) as trainer:
        history = trainer.train()
        expected = {k: v.detach().clone() for k, v in trainer.policy.state_dict().items()}
        assert [g["lr"] for g in trainer.optimizer.param_groups] == pytest.approx([1e-3 / 3])
    # linear over 3 steps: 1, 2/3, 1/3 of algo.lr.
    assert [m["ppo/lr"] for m in history] == pytest.approx([1e-3, 2e-3 / 3, 1e-3 / 3])
    assert all(m["ppo/num_updates"] > 0 for m in history)

    # The same run stopped after its first step and resumed: the schedule is a function of the step.
    split = replace(straight, run_dir=str(tmp_path / "split"))
    polls = iter([False, True])  # polled before step 1 and after it: stop (and checkpoint) after step 1
    with Trainer(split, show_progress=False) as trainer:
        assert len(trainer.train(should_stop=lambda: next(polls))) == 1
    with Trainer(split, resume=True, show_progress=False) as trainer:
        assert trainer.step == 1
        trainer.train()
        resumed = trainer.policy.state_dict()
    for k, v in expected.items():
        torch.testing.assert_close(resumed[k], v, rtol=0, atol=0, msg=k)
    assert [r["ppo/lr"] for r in read_metrics(split.run_dir)] == pytest.approx([1e-3, 2e-3 / 3, 1e-3 / 3])


def test_constant_schedule_keeps_algo_lr(tmp_path: Path):
    cfg = load_config(preset="tabletop", overrides=[*TINY, "num_steps=2", "algo.lr_schedule=constant",
                                                    f"run_dir={tmp_path / 'run'}"])
    with Trainer(cfg, show_progress=False) as trainer:
        assert [m["ppo/lr"] for m in trainer.train()] == [1e-3, 1e-3]


@pytest.mark.parametrize(("override", "match"), [
    ("algo.lr_schedule=step", r"algo\.lr_schedule='step' is invalid.*'constant', 'linear', 'cosine'"),
    ("algo.lr_warmup_steps=-1", r"algo\.lr_warmup_steps=-1 is invalid"),
    ("algo.lr_warmup_steps=4", r"algo\.lr_warmup_steps=4 is invalid.*num_steps=3"),
    ("algo.lr_min_ratio=1.5", r"algo\.lr_min_ratio=1\.5 is invalid.*\[0, 1\]"),
])
def test_bad_schedule_settings_name_the_field_and_the_fix(override: str, match: str):
    with pytest.raises(ConfigError, match=match):
        load_config(preset="tabletop", overrides=[*TINY, override])
