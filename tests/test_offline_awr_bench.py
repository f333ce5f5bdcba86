"""benchmarks/offline_awr.py: the LIBERO configuration and the paired comparison of arms."""

from __future__ import annotations

import argparse
from pathlib import Path
from types import SimpleNamespace

import pytest

from benchmark_module import load_benchmark

bench = load_benchmark("offline_awr")


def _args(**kw: object) -> argparse.Namespace:
    base = dict(env="libero", init=None, tasks=2, train_states=10, eval_states=40, cache=100, render_quality=None)
    base.update(kw)
    return argparse.Namespace(**base)


def test_libero_config_is_the_main_jobs_env_on_disjoint_init_states() -> None:
    cfg = bench.base_config(_args(), ["seed=3"])
    assert cfg.env.kind == "libero"
    assert cfg.env.libero.task_ids == (0, 1)
    assert cfg.env.libero.num_train_init_states == 10 and cfg.env.libero.num_eval_init_states == 40
    assert cfg.seed == 3 and cfg.num_videos_per_step == 0
    # The cpu preset's policy and world-model encoder are kept, so that `srpo record --preset cpu` recordings
    # made with the same arguments are continued, and awr_srpo embeds like the main job.
    assert cfg.policy.checkpoint == bench.load_config(preset="cpu").policy.checkpoint
    assert cfg.encoder.name == "efficientnet" and cfg.encoder.num_frames == 16
    assert cfg.env.libero.render_quality == bench.load_config(preset="cpu").env.libero.render_quality


def test_libero_render_quality_can_be_the_one_a_recorded_run_used() -> None:
    # The recorded LIBERO result ran the previous start under the preset's former `fast` frames.
    assert bench.base_config(_args(render_quality="fast"), []).env.libero.render_quality == "fast"


def test_libero_start_policy_is_the_presets_checkpoint_or_init(tmp_path: Path) -> None:
    preset_ckpt = bench.load_config(preset="cpu").policy.checkpoint
    assert bench.make_initial_policy(tmp_path, _args()) == Path(preset_ckpt)
    assert bench.make_initial_policy(tmp_path, _args(init="some/ckpt")) == Path("some/ckpt")
    assert not any(tmp_path.iterdir())  # no SFT ran


def test_tabletop_config_is_unchanged() -> None:
    cfg = bench.base_config(_args(env="tabletop"), [])
    assert cfg.env.kind == "tabletop" and cfg.env.tabletop.num_tasks == 2
    assert cfg.env.tabletop.num_init_states == 50


def test_eval_summary_keys_outcomes_by_task_and_init_state() -> None:
    trajs = [SimpleNamespace(task_id=0, init_state_id=40, success=True),
             SimpleNamespace(task_id=0, init_state_id=41, success=False),
             SimpleNamespace(task_id=1, init_state_id=40, success=False),
             SimpleNamespace(task_id=1, init_state_id=41, success=False)]
    s = bench.eval_summary(trajs)
    assert s["num_successes"] == 1 and s["num_episodes"] == 4 and s["success"] == 0.25
    assert s["per_task"] == {"0": 0.5, "1": 0.0}
    assert s["outcomes"] == {"0/40": 1, "0/41": 0, "1/40": 0, "1/41": 0}


def test_paired_difference_hand_computed() -> None:
    start = [{"eval": {"outcomes": {"0/1": 1, "0/2": 0, "1/1": 0, "1/2": 0}}}]
    arm = [{"seed": 0, "eval": {"outcomes": {"0/1": 0, "0/2": 1, "1/1": 1, "1/2": 0}}},
           {"seed": 1, "eval": {"outcomes": {"0/1": 1, "0/2": 0, "1/1": 0, "1/2": 0}}}]
    d = bench.paired_difference(start, arm)
    # seed 0: −1, +1, +1, 0; seed 1: 0, 0, 0, 0 → mean 1/8; 2 won, 1 lost.
    assert d["num_pairs"] == 8 and d["difference"] == pytest.approx(0.125)
    assert d["b_only"] == 2 and d["a_only"] == 1
    lo, hi = d["ci95"]
    assert -1 <= lo <= 0.125 <= hi <= 1
    # Arms are paired seed by seed.
    other = [{"seed": 1, "eval": {"outcomes": {"0/1": 0, "0/2": 0, "1/1": 0, "1/2": 0}}}]
    d2 = bench.paired_difference(other, arm)
    assert d2["num_pairs"] == 4 and d2["difference"] == pytest.approx(0.25) and d2["a_only"] == 0


def test_paired_difference_without_common_episodes_is_an_error() -> None:
    a = [{"seed": 0, "eval": {"outcomes": {"0/1": 1}}}]
    b = [{"seed": 1, "eval": {"outcomes": {"0/1": 1}}}]
    with pytest.raises(ValueError, match="share no"):
        bench.paired_difference(a, b)
