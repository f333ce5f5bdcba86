"""The online loop on the built-in tabletop env with a tiny compact policy: learning signal, checkpoints,
resume (bit-identical to an uninterrupted run), kill -9, and the real CLI entry point."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from srpo.config.base import ConfigError
from srpo.config.train import TrainConfig, load_config
from srpo.errors import InputFileError
from srpo.run_dir import CHECKPOINT_PREFIX, list_checkpoints, read_metrics, resume_config
from srpo.trainer import Trainer
from tiny_config import PIXEL_ENCODER, as_sets, tiny_tabletop

SRPO = str(Path(sys.executable).with_name("srpo"))

TINY = tiny_tabletop(
    16,
    *PIXEL_ENCODER,
    "algo.group_size=4",
    "algo.num_prompts_per_step=2",
    "algo.num_minibatches=2",
    "algo.lr=1e-3",
    "num_eval_episodes_per_task=2",
    "eval_every=0",
    "num_videos_per_step=1",
    "tensorboard=false",
)


def tiny_config(run_dir: Path, *extra: str) -> TrainConfig:
    return load_config(preset="tabletop", overrides=[*TINY, f"run_dir={run_dir}", *extra])


def params(policy: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in policy.state_dict().items()}


def test_training_changes_parameters_and_losses_are_finite(tmp_path: Path):
    # Entropy bonus guarantees a gradient even if every group of a random policy fails (zero advantages).
    cfg = tiny_config(tmp_path / "run", "num_steps=2", "algo.entropy_coef=0.01")
    with Trainer(cfg, show_progress=False) as trainer:
        before = params(trainer.policy)
        history = trainer.train()
        after = params(trainer.policy)
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed, "no parameter changed after two training steps"
    for m in history:
        for key in ("loss/policy", "loss/total", "loss/entropy", "grad/norm", "ppo/approx_kl"):
            assert np.isfinite(m[key]), key
        assert m["ppo/rollout_learner_logprob_gap"] < 1e-4  # rollout and learner agree on the log-probs
        for phase in ("rollout", "embed", "reward", "update"):
            assert m[f"time/{phase}_s"] >= 0
    records = read_metrics(cfg.run_dir)
    assert [r["step"] for r in records] == [0, 1, 2]  # step 0 = evaluation of the initial policy
    assert "eval/success_rate" in records[-1]
    assert [p.name for p in list_checkpoints(Path(cfg.run_dir))] == [f"{CHECKPOINT_PREFIX}000001",
                                                                     f"{CHECKPOINT_PREFIX}000002"]
    assert len(list((Path(cfg.run_dir) / "videos").glob("*.mp4"))) == 2


def test_resume_is_identical_to_an_uninterrupted_run(tmp_path: Path):
    straight = tiny_config(tmp_path / "straight", "num_steps=2", "algo.entropy_coef=0.01",
                           "num_eval_episodes_per_task=0", "num_videos_per_step=0")
    with Trainer(straight, show_progress=False) as trainer:
        trainer.train()
        expected = params(trainer.policy)

    split = replace(straight, run_dir=str(tmp_path / "split"), num_steps=1)
    with Trainer(split, show_progress=False) as trainer:
        trainer.train()
    with Trainer(replace(split, num_steps=2), resume=True, show_progress=False) as trainer:
        assert trainer.step == 1
        trainer.train()
        resumed = params(trainer.policy)
    for k in expected:
        torch.testing.assert_close(resumed[k], expected[k], rtol=0, atol=0, msg=k)
    a = read_metrics(straight.run_dir)
    b = read_metrics(split.run_dir)
    assert [r["step"] for r in b] == [1, 2]
    assert a[-1]["loss/policy"] == b[-1]["loss/policy"]


def test_resume_with_a_changed_config_rewrites_config_yaml_and_keeps_the_old_one(tmp_path: Path):
    cfg = tiny_config(tmp_path / "run", "num_steps=1", "num_eval_episodes_per_task=0", "num_videos_per_step=0")
    with Trainer(cfg, show_progress=False) as trainer:
        trainer.train()
    run = Path(cfg.run_dir)
    assert resume_config(run).num_steps == 1
    with Trainer(replace(cfg, num_steps=2), resume=True, show_progress=False) as trainer:
        trainer.train()
    # config.yaml is what the run now is (a plain --resume reads 2, not 1); the steps up to 1 ran with the old one.
    assert resume_config(run).num_steps == 2
    assert load_config(run / "config.step-000001.yaml").num_steps == 1
    # Resuming with the config it already has keeps config.yaml as it is and keeps no copy.
    before = (run / "config.yaml").read_text()
    with Trainer(replace(cfg, num_steps=2), resume=True, show_progress=False) as trainer:
        assert trainer.step == 2
    assert (run / "config.yaml").read_text() == before
    assert sorted(p.name for p in run.glob("config*.yaml")) == ["config.step-000001.yaml", "config.yaml"]
    # Resumed with a length it has passed, the run says how to continue it instead of silently doing nothing.
    with pytest.raises(ConfigError, match=r"is at step 2, past num_steps=1: pass --set num_steps=N with N > 2"):
        Trainer(replace(cfg, num_steps=1), resume=True, show_progress=False)
    assert resume_config(run).num_steps == 2  # and leaves config.yaml as it was
    # Changed twice at one step (no checkpoint in between): the kept file stays the config steps 0-1 ran with.
    with Trainer(replace(cfg, num_steps=3), resume=True, show_progress=False):
        pass
    assert load_config(run / "config.step-000002.yaml").num_steps == 2
    with Trainer(replace(cfg, num_steps=4), resume=True, show_progress=False):
        pass
    assert load_config(run / "config.step-000002.yaml").num_steps == 2
    assert resume_config(run).num_steps == 4


def test_refuses_to_overwrite_and_resume_needs_checkpoint(tmp_path: Path):
    cfg = tiny_config(tmp_path / "run", "num_steps=1", "num_eval_episodes_per_task=0")
    with pytest.raises(InputFileError, match="nothing to resume"):
        Trainer(cfg, resume=True, show_progress=False)
    with Trainer(cfg, show_progress=False) as trainer:
        trainer.train()
    with pytest.raises(InputFileError, match="--resume"):
        Trainer(cfg, show_progress=False)


def test_interrupted_checkpoint_is_ignored(tmp_path: Path):
    cfg = tiny_config(tmp_path / "run", "num_steps=1", "num_eval_episodes_per_task=0")
    with Trainer(cfg, show_progress=False) as trainer:
        trainer.train()
    # A kill during the write of checkpoint 2 leaves only its temporary directory.
    partial = Path(cfg.run_dir) / f".tmp-{CHECKPOINT_PREFIX}000002-999"
    (partial / "policy").mkdir(parents=True)
    (partial / "policy" / "model.safetensors").write_bytes(b"truncated")
    with Trainer(replace(cfg, num_steps=2), resume=True, show_progress=False) as trainer:
        assert trainer.step == 1
        assert not partial.exists()


def test_kl_reference_and_grpo_switch(tmp_path: Path):
    cfg = tiny_config(tmp_path / "kl", "num_steps=1", "algo.kl_coef=0.1", "algo.entropy_coef=0.01",
                      "num_eval_episodes_per_task=0", "algo_name=grpo")
    with Trainer(cfg, show_progress=False) as trainer:
        assert trainer.encoder is None  # GRPO needs no world model
        history = trainer.train()
    assert "loss/kl" in history[0] and np.isfinite(history[0]["loss/kl"])
    assert (Path(cfg.run_dir) / "reference_policy").is_dir()
    # A resume must not rebuild the reference from the resumed (trained) policy: without the saved one, it stops.
    import shutil

    shutil.rmtree(Path(cfg.run_dir) / "reference_policy")
    with pytest.raises(InputFileError, match="reference_policy is missing: the KL reference of this run cannot be"):
        Trainer(replace(cfg, num_steps=2), resume=True, show_progress=False)


def run_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SRPO, *args], capture_output=True, text=True, timeout=timeout)


def cli_overrides(*extra: str) -> list[str]:
    return as_sets([*TINY, *extra])


def test_encoder_construction_does_not_shift_the_sampling_stream(tmp_path: Path):
    """EfficientNet initialises randomly before loading its weights; that must not change which actions the
    first rollout samples, or SRPO (which builds an encoder) and GRPO (which does not) would not be paired runs
    of one seed, and a resumed SRPO run would not continue its saved stream."""
    tokens = {}
    for algo, encoder in (("grpo", "pixel"), ("srpo", "efficientnet")):
        cfg = tiny_config(tmp_path / algo, f"algo_name={algo}", f"encoder.name={encoder}", "encoder.device=cpu",
                          "encoder.dtype=float32")
        with Trainer(cfg, show_progress=False) as trainer:
            trajs, _ = trainer.rollout({})
        tokens[algo] = np.concatenate([t.action_tokens.ravel() for t in trajs])
    np.testing.assert_array_equal(tokens["srpo"], tokens["grpo"])


def test_cli_train_kill_resume_report(tmp_path: Path):
    run_dir = tmp_path / "cli"
    args = ["train", "--preset", "tabletop", "--run-dir", str(run_dir), "--steps", "3",
            *cli_overrides("algo.entropy_coef=0.01", "num_eval_episodes_per_task=1")]
    proc = subprocess.Popen([SRPO, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 300
    while not list_checkpoints(run_dir) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert list_checkpoints(run_dir), "no checkpoint appeared"
    os.kill(proc.pid, signal.SIGKILL)  # mid-run: the next step is in flight
    proc.wait()
    done = checkpoint_steps = [int(p.name[len(CHECKPOINT_PREFIX):]) for p in list_checkpoints(run_dir)]
    assert done and max(checkpoint_steps) < 3

    resumed = run_cli("train", "--resume", str(run_dir), "--report")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "finished 3 steps" in resumed.stdout
    # The before/after line from the step-0 and final evaluations (1 episode × 2 tasks each), with intervals.
    assert re.search(r"held-out greedy success: step 0 \d/2 = [\d.]+ \[95% CI [\d.]+, [\d.]+\] -> step 3 \d/2",
                     resumed.stdout), resumed.stdout
    steps = [r["step"] for r in read_metrics(run_dir)]
    assert steps == sorted(set(steps)) and steps[-3:] == [1, 2, 3]  # nothing lost, nothing duplicated
    assert (run_dir / "report" / "report.html").stat().st_size > 10_000  # PNGs embedded

    ev = run_cli("eval", "--preset", "tabletop", "--checkpoint", str(run_dir / f"{CHECKPOINT_PREFIX}000003" / "policy"),
                 "--episodes", "2", "--videos", "1", "--out", str(tmp_path / "eval"), *cli_overrides())
    assert ev.returncode == 0, ev.stderr
    result = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert set(result["success_rate"]) == {"0", "1"}
    assert "mean" in ev.stdout
    # Per-episode outcomes (2 episodes × 2 tasks) agree with the counts and the per-task rates.
    episodes = result["episodes"]
    assert len(episodes) == result["num_episodes"] == 4
    assert sum(e["success"] for e in episodes) == result["num_successes"]
    for task in (0, 1):
        wins = [e["success"] for e in episodes if e["task_id"] == task]
        assert len(wins) == 2 and sum(wins) / 2 == result["success_rate"][str(task)]
        assert len({e["init_state_id"] for e in episodes if e["task_id"] == task}) == 2
    low, high = result["wilson95"]
    assert low <= result["num_successes"] / 4 <= high


def test_cli_config_errors_are_one_line(tmp_path: Path):
    bad = run_cli("train", "--preset", "tabletop", "--set", "algo.lr=-1", "--run-dir", str(tmp_path / "x"))
    assert bad.returncode == 2
    assert "algo.lr=-1.0 is invalid" in bad.stderr and "Traceback" not in bad.stderr
    unknown = run_cli("train", "--preset", "tabletop", "--set", "algo.learning_rate=1")
    assert unknown.returncode == 2 and "unknown field 'learning_rate'" in unknown.stderr


def test_ppo_step_through_the_openvla_oft_adapter(tmp_path: Path):
    """The trainer's phases work unchanged with the OpenVLA-OFT adapter (a tiny Prismatic-layout Llama)."""
    from srpo.policies.openvla_oft import build_tiny_vla

    policy = build_tiny_vla(image_size=32, hidden=32, num_layers=1)
    cfg = tiny_config(tmp_path / "oft", "num_steps=1", "policy.chunk_size=8", "algo.entropy_coef=0.01",
                      "num_eval_episodes_per_task=0", "num_videos_per_step=0", "algo.kl_coef=0.0")
    with Trainer(cfg, policy=policy, show_progress=False) as trainer:
        before = {k: v.detach().clone() for k, v in policy.model.state_dict().items()}
        metrics = trainer.train_step()
    assert np.isfinite(metrics["loss/total"])
    assert metrics["ppo/rollout_learner_logprob_gap"] < 1e-4
    after = policy.model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_fresh_start_drops_metrics_of_an_attempt_stopped_before_its_first_checkpoint(tmp_path: Path) -> None:
    """`srpo train` stopped before any checkpoint says "run the same command again to start over": the new run's
    metrics must not follow the old attempt's records (a duplicated step-0 evaluation broke curve statistics)."""
    from srpo.build import start_run

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "metrics.jsonl").write_text(json.dumps({"step": 0, "eval/success_rate": 0.5}) + "\n")
    start_run(tiny_config(run_dir), resume=False, policy=None)
    assert read_metrics(run_dir) == []


def test_evaluate_checkpoint_runs_with_the_threads_training_ran_with(tmp_path: Path):
    """`srpo eval` must use cfg.torch_num_threads as training does: 1 and 2 threads give logits ~1e-5 apart, which
    can flip a near-tied greedy action, so an evaluation with torch's default threads need not repeat the in-run one."""
    from srpo.evaluate import evaluate_checkpoint

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        cfg = tiny_config(tmp_path / "run", "torch_num_threads=1")
        evaluate_checkpoint(cfg, None, 1, 0, tmp_path / "eval")
        assert torch.get_num_threads() == 1
        torch.set_num_threads(2)
        evaluate_checkpoint(tiny_config(tmp_path / "run", "torch_num_threads=0"), None, 1, 0, tmp_path / "eval0")
        assert torch.get_num_threads() == 2  # 0 keeps torch's default
    finally:
        torch.set_num_threads(before)


def test_learner_threads_apply_to_embed_reward_and_update_only(tmp_path: Path):
    """torch_learner_threads holds during the embed, reward and update phases; rollout and evaluation run with
    torch_num_threads (a greedy evaluation must repeat the in-run one), and the count is restored after each phase."""
    cfg = tiny_config(tmp_path / "run", "num_steps=2", "torch_num_threads=1", "torch_learner_threads=2",
                      "num_eval_episodes_per_task=1", "num_videos_per_step=0")
    seen: dict[str, list[int]] = {}
    before = torch.get_num_threads()
    try:
        with Trainer(cfg, show_progress=False) as trainer:
            for name in ("embed", "reward", "update", "evaluate"):
                method = getattr(trainer, name)

                def spy(*args, _method=method, _name=name, **kwargs):
                    seen.setdefault(_name, []).append(torch.get_num_threads())
                    return _method(*args, **kwargs)

                setattr(trainer, name, spy)
            collect = trainer.engine.collect

            def spy_collect(*args, **kwargs):
                seen.setdefault("rollout", []).append(torch.get_num_threads())
                return collect(*args, **kwargs)

            trainer.engine.collect = spy_collect  # type: ignore[method-assign]
            trainer.train()
            after_train = torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
    assert seen["embed"] == seen["reward"] == seen["update"] == [2, 2]
    assert set(seen["rollout"]) == {1} and len(seen["rollout"]) >= 2
    assert seen["evaluate"] == [1, 1]  # before step 1 and after the last step
    assert after_train == 1


def test_learner_threads_zero_keeps_the_rollout_count_and_negative_is_refused(tmp_path: Path):
    from srpo.build import learner_threads
    from srpo.config.base import ConfigError

    cfg = tiny_config(tmp_path / "run", "torch_num_threads=1")
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        with learner_threads(cfg):
            assert torch.get_num_threads() == 1
        with learner_threads(replace(cfg, torch_learner_threads=2)):
            assert torch.get_num_threads() == 2
        assert torch.get_num_threads() == 1
        with pytest.raises(RuntimeError), learner_threads(replace(cfg, torch_learner_threads=2)):
            raise RuntimeError("a failing phase")
        assert torch.get_num_threads() == 1  # restored on the way out of a failing phase too
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ConfigError, match="torch_learner_threads"):
        tiny_config(tmp_path / "run", "torch_learner_threads=-1")
