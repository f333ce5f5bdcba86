"""Offline SRPO: the weights by hand, a short run on a small tabletop-recorded dataset (parameters change, losses
finite, checkpoints, resume), a task without success, the OpenVLA-OFT adapter, and the CLI entry points."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from srpo.algo.advantages import task_baseline_advantages
from srpo.algo.losses import weighted_nll_loss
from srpo.cli import main
from srpo.config.env import TabletopConfig
from srpo.config.train import TrainConfig, load_config
from srpo.envs.tabletop import TabletopEnvFactory, record_tabletop_demos
from srpo.errors import SrpoError
from srpo.lerobot import DatasetEpisode, write_lerobot_dataset
from srpo.offline import OfflineTrainer, build_samples, episode_weights
from srpo.policies.tokenizer import ActionTokenizer
from srpo.run_dir import list_checkpoints, read_eval_arrays, read_metrics
from tiny_config import PIXEL_ENCODER, as_sets, tiny_tabletop

TINY = tiny_tabletop(
    12,
    *PIXEL_ENCODER,
    "policy.state_dim=4",
    "algo.lr=1e-3",
    "offline.batch_size=16",
    "num_eval_episodes_per_task=1",
    "eval_every=0",
    "tensorboard=false",
)


def tiny_config(run_dir: Path, dataset: Path, *extra: str) -> TrainConfig:
    return load_config(preset="tabletop", overrides=[*TINY, f"run_dir={run_dir}", f"offline.dataset={dataset}",
                                                     *extra])


def chunk_rows(images: np.ndarray, states: np.ndarray, actions: np.ndarray, k: int) -> tuple[np.ndarray, ...]:
    """Per-step demo arrays → one row per chunk of k steps (the layout `srpo record` writes)."""
    starts = np.arange(0, actions.shape[0], k)
    idx = np.minimum(starts[:, None] + np.arange(k)[None], actions.shape[0] - 1)
    return images[starts], states[starts], actions[idx]


@pytest.fixture(scope="module")
def tabletop_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small mixed-outcome dataset from the tabletop env: scripted episodes (successes) and the same episodes
    cut before the goal (failures, with partial progress), 3 + 3 per task, stored as chunk rows."""
    factory = TabletopEnvFactory(TabletopConfig(num_tasks=2, image_size=32, embed_image_size=32, max_steps=40))
    demos = record_tabletop_demos(factory, [0, 1], 3, seed=0, noise_std=0.02)
    episodes = []
    for d in demos:
        for cut, ok in ((d.actions.shape[0], d.success), (d.actions.shape[0] // 2, False)):
            images, states, actions = chunk_rows(d.images[:cut], d.states[:cut], d.actions[:cut], 4)
            episodes.append(DatasetEpisode(len(episodes), d.task_id, d.instruction, images, states, actions, ok))
    assert any(e.success for e in episodes) and not all(e.success for e in episodes)
    return write_lerobot_dataset(tmp_path_factory.mktemp("offline") / "ds", episodes)


# -- maths by hand --------------------------------------------------------------------------------------------


def test_task_baseline_advantages_by_hand() -> None:
    adv, base = task_baseline_advantages(np.array([1.0, 0.0, 0.5, 1.0, 1.0]), np.array([0, 0, 0, 1, 1]))
    np.testing.assert_allclose(base, [0.5, 0.5, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(adv, [0.5, -0.5, 0.0, 0.0, 0.0])


def test_episode_weights_by_hand() -> None:
    success = np.array([True, False, False, True, True])
    tasks = np.array([0, 0, 0, 1, 1])
    shaped = np.array([1.0, 0.4, 0.1, 1.0, 1.0])
    w, _ = episode_weights("bc", success, shaped, tasks, 0.5, 20.0)
    np.testing.assert_array_equal(w, np.ones(5))
    w, _ = episode_weights("filtered_bc", success, shaped, tasks, 0.5, 20.0)
    np.testing.assert_array_equal(w, [1, 0, 0, 1, 1])
    w, adv = episode_weights("awr_binary", success, shaped, tasks, 0.5, 20.0)
    np.testing.assert_allclose(adv, [2 / 3, -1 / 3, -1 / 3, 0, 0])
    np.testing.assert_allclose(w, [math.exp(4 / 3), math.exp(-2 / 3), math.exp(-2 / 3), 1, 1])
    w, adv = episode_weights("awr_srpo", success, shaped, tasks, 0.5, 3.0)
    mean = (1.0 + 0.4 + 0.1) / 3
    np.testing.assert_allclose(adv[:3], [1 - mean, 0.4 - mean, 0.1 - mean])
    # exp((1 − 0.5) / 0.5) = e > 3 is clipped at max_weight; the nearer failure outweighs the farther one.
    np.testing.assert_allclose(w[:3], [min(math.exp((1 - mean) / 0.5), 3.0), math.exp((0.4 - mean) / 0.5),
                                       math.exp((0.1 - mean) / 0.5)])
    assert w[1] > w[2]
    with pytest.raises(SrpoError, match=r"offline\.arm"):
        episode_weights("awr", success, shaped, tasks, 0.5, 3.0)


def test_weighted_nll_by_hand_and_batch_normalisation() -> None:
    log_probs = torch.log(torch.tensor([[0.5, 0.25], [0.1, 0.1], [0.9, 0.9]]))
    mask = torch.tensor([[True, True], [True, False], [True, True]])
    weights = torch.tensor([2.0, 1.0, 0.0])
    loss, nll = weighted_nll_loss(log_probs, mask, weights)
    expected_nll = [-(math.log(0.5) + math.log(0.25)) / 2, -math.log(0.1), -math.log(0.9)]
    np.testing.assert_allclose(nll.numpy(), expected_nll, rtol=1e-6)
    assert loss.item() == pytest.approx((2 * expected_nll[0] + expected_nll[1]) / 3, rel=1e-6)
    scaled, _ = weighted_nll_loss(log_probs, mask, weights * 7.0)  # normalised per batch: scale-free
    assert scaled.item() == pytest.approx(loss.item(), rel=1e-6)
    with pytest.raises(ValueError, match="all weights of the batch are 0"):
        weighted_nll_loss(log_probs, mask, torch.zeros(3))


# -- runs ------------------------------------------------------------------------------------------------------


def params(policy: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in policy.state_dict().items()}


def test_offline_run_changes_parameters(tabletop_dataset: Path, tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path / "run", tabletop_dataset, "num_steps=3", "offline.arm=awr_srpo")
    with OfflineTrainer(cfg, show_progress=False) as trainer:
        before = params(trainer.policy)
        history = trainer.train()
        after = params(trainer.policy)
        prep = trainer.prepare_metrics
    assert [k for k in before if not torch.equal(before[k], after[k])], "no parameter changed"
    assert all(np.isfinite(m["loss/policy"]) and np.isfinite(m["grad/norm"]) for m in history)
    assert prep["dataset/num_episodes"] == 12 and prep["dataset/num_tasks_without_success"] == 0
    # Failures were scored against their task's successes: some failures get a positive shaped reward, and
    # successes weigh more than failures on average.
    steps = np.load(tmp_path / "run" / "steps" / "step_000000.npz")
    fails = ~steps["success"]
    assert (steps["rewards"][~fails] == 1.0).all()
    assert (steps["rewards"][fails] >= 0).all() and (steps["rewards"][fails] < 1).all()
    assert prep["weights/success_mean"] > prep["weights/failure_mean"]
    metrics = read_metrics(tmp_path / "run")
    assert metrics[0]["step"] == 0 and "eval/success_rate" in metrics[0] and "eval/success_rate" in metrics[-1]
    assert len(list_checkpoints(tmp_path / "run")) >= 1
    # Every evaluation's episodes are saved beside the counts, and agree with them.
    evals = read_eval_arrays(tmp_path / "run")
    eval_records = {r["step"]: r for r in metrics if "eval/num_successes" in r}
    assert sorted(evals) == sorted(eval_records) and 0 in evals
    for step, arrays in evals.items():
        assert int(arrays["success"].sum()) == eval_records[step]["eval/num_successes"]
        assert arrays["success"].shape == arrays["init_state_ids"].shape == (eval_records[step]["eval/num_episodes"],)


def test_resume_continues_from_the_checkpoint(tabletop_dataset: Path, tmp_path: Path) -> None:
    args = ("offline.arm=bc", "num_eval_episodes_per_task=0")
    straight = tiny_config(tmp_path / "a", tabletop_dataset, "num_steps=2", *args)
    with OfflineTrainer(straight, show_progress=False) as t:
        t.train()
        want = params(t.policy)
    first = tiny_config(tmp_path / "b", tabletop_dataset, "num_steps=1", *args)
    with OfflineTrainer(first, show_progress=False) as t:
        t.train()
    with OfflineTrainer(tiny_config(tmp_path / "b", tabletop_dataset, "num_steps=2", *args), resume=True,
                        show_progress=False) as t:
        assert t.step == 1
        t.train()
        got = params(t.policy)
    for k in want:
        torch.testing.assert_close(got[k], want[k])


def test_offline_steps_follow_the_lr_schedule(tabletop_dataset: Path, tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path / "run", tabletop_dataset, "num_steps=4", "offline.arm=bc",
                      "num_eval_episodes_per_task=0", "algo.lr=1e-3", "algo.lr_schedule=linear",
                      "algo.lr_warmup_steps=1")
    with OfflineTrainer(cfg, show_progress=False) as trainer:
        history = trainer.train()
        assert [g["lr"] for g in trainer.optimizer.param_groups] == pytest.approx([1e-3 / 3])
    # Warm-up step 1 at the full rate (1/W, W = 1), then linear over 3 steps: 1, 2/3, 1/3.
    assert [m["optim/lr"] for m in history] == pytest.approx([1e-3, 1e-3, 2e-3 / 3, 1e-3 / 3])


def test_task_without_success(tabletop_dataset: Path, tmp_path: Path) -> None:
    """Task 1 keeps only its failures: they have no reference, get reward 0 and advantage 0, so AWR weighs them
    exp(0) = 1 (plain behaviour cloning of that task); the count is logged."""
    from srpo.lerobot import read_dataset

    eps = [e for e in read_dataset(tabletop_dataset) if e.task_index == 0 or not e.success]
    ds = write_lerobot_dataset(tmp_path / "ds", eps)
    cfg = tiny_config(tmp_path / "run", ds, "num_steps=1", "offline.arm=awr_srpo", "num_eval_episodes_per_task=0")
    with OfflineTrainer(cfg, show_progress=False) as trainer:
        trainer.train()
        prep = trainer.prepare_metrics
    steps = np.load(tmp_path / "run" / "steps" / "step_000000.npz")
    task1 = steps["task_ids"] == 1
    assert prep["dataset/num_tasks_without_success"] == 1
    np.testing.assert_array_equal(steps["rewards"][task1], 0.0)
    np.testing.assert_array_equal(steps["weights"][task1], 1.0)
    cfg = tiny_config(tmp_path / "run2", ds, "num_steps=1", "offline.arm=filtered_bc", "num_eval_episodes_per_task=0")
    with OfflineTrainer(cfg, show_progress=False) as trainer:
        trainer.prepare()
        assert trainer.row_weights[trainer.samples.episode == 3].sum() == 0  # failures of task 1: excluded


def _episode(index: int, actions: np.ndarray, state_dim: int = 4) -> DatasetEpisode:
    t = actions.shape[0]
    return DatasetEpisode(index, 0, "pick", np.zeros((t, 8, 8, 3), np.uint8), np.zeros((t, state_dim), np.float32),
                          actions.astype(np.float32), True)


def test_build_samples_refuses_episodes_the_policy_cannot_learn_from() -> None:
    tok = ActionTokenizer.identity()
    with pytest.raises(SrpoError, match=r"episode 3 stores chunks of 2 actions per row but the policy decodes 4: "
                                        r"set policy\.chunk_size <= 2"):
        build_samples([_episode(3, np.zeros((5, 2, 7)))], tok, chunk_size=4)
    with pytest.raises(SrpoError, match="episode 1: actions have 6 dimensions but the policy decodes 7"):
        build_samples([_episode(1, np.zeros((5, 6)))], tok, chunk_size=4)
    with pytest.raises(SrpoError, match="the dataset holds no episodes"):
        build_samples([], tok, chunk_size=4)
    with pytest.raises(SrpoError, match=r"episodes disagree in state size \[3, 4\]"):
        build_samples([_episode(0, np.zeros((5, 7))), _episode(1, np.zeros((5, 7)), state_dim=3)], tok, chunk_size=4)
    # Longer stored chunks are cut to the policy's: 8 stored, 4 decoded.
    assert build_samples([_episode(0, np.zeros((5, 8, 7)))], tok, chunk_size=4).tokens.shape == (5, 28)


def test_offline_run_needs_a_dataset_and_a_complete_external_reference(tabletop_dataset: Path, tmp_path: Path) -> None:
    from srpo.lerobot import read_dataset

    no_dataset = load_config(preset="tabletop", overrides=[*TINY, f"run_dir={tmp_path / 'run0'}"])
    with pytest.raises(SrpoError, match=r"offline\.dataset is empty: pass --dataset DIR"):
        OfflineTrainer(no_dataset, show_progress=False)
    external = ("offline.arm=awr_srpo", "reward.reference_source=external", "num_eval_episodes_per_task=0")
    cfg = tiny_config(tmp_path / "run1", tabletop_dataset, *external)
    with OfflineTrainer(cfg, show_progress=False) as trainer, pytest.raises(
            SrpoError, match=r"reference_source='external' needs offline\.reference_dataset"):
        trainer.prepare()
    # A reference set with successes of task 0 only cannot reference task 1's episodes.
    ref = write_lerobot_dataset(tmp_path / "ref", [e for e in read_dataset(tabletop_dataset) if e.task_index == 0])
    cfg = tiny_config(tmp_path / "run2", tabletop_dataset, *external, f"offline.reference_dataset={ref}")
    with OfflineTrainer(cfg, show_progress=False) as trainer, pytest.raises(
            SrpoError, match=r"offline\.reference_dataset has no successful episode for task\(s\) \[1\]"):
        trainer.prepare()


def test_non_finite_loss_stops_before_the_weights_change(tabletop_dataset: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tiny_config(tmp_path / "run", tabletop_dataset, "offline.arm=bc", "num_eval_episodes_per_task=0")
    with OfflineTrainer(cfg, show_progress=False) as trainer:
        trainer.prepare()
        before = {k: v.clone() for k, v in trainer.policy.state_dict().items()}
        real = trainer.policy.token_log_probs

        def nan_log_probs(*args, **kwargs):
            log_probs, entropy = real(*args, **kwargs)
            return log_probs * float("nan"), entropy

        monkeypatch.setattr(trainer.policy, "token_log_probs", nan_log_probs)
        with pytest.raises(FloatingPointError, match=r"non-finite loss nan at step 0; lower algo\.lr"):
            trainer.update()
        for k, v in trainer.policy.state_dict().items():
            torch.testing.assert_close(v, before[k])


def test_openvla_oft_adapter_trains_offline(tabletop_dataset: Path, tmp_path: Path) -> None:
    from srpo.policies.openvla_oft import build_tiny_vla

    policy = build_tiny_vla()
    policy.chunk_size = 4  # the dataset's chunk rows hold 4 actions
    cfg = tiny_config(tmp_path / "run", tabletop_dataset, "num_steps=2", "offline.arm=awr_binary",
                      "num_eval_episodes_per_task=0")
    with OfflineTrainer(cfg, policy=policy, show_progress=False) as trainer:
        before = params(trainer.policy.model)
        trainer.prepare()
        # The tiny adapter has no checkpoint directory to save from, so the updates are called directly.
        history = [trainer.update() for _ in range(2)]
        after = params(trainer.policy.model)
    assert [k for k in before if not torch.equal(before[k], after[k])]
    assert all(np.isfinite(m["loss/policy"]) for m in history)


def test_cli_record_then_offline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    common = ["--preset", "tabletop", *as_sets(TINY)]
    assert main(["record", *common, "--out", str(tmp_path / "ds"), "--episodes-per-task", "2",
                 "--batch-episodes", "4"]) == 0
    assert "LeRobot v3 dataset" in capsys.readouterr().out
    # A random policy never succeeds: filtered BC has nothing to train on and says so on one line.
    assert main(["offline", *common, "--dataset", str(tmp_path / "ds"), "--arm", "filtered_bc", "--out",
                 str(tmp_path / "f"), "--steps", "1"]) == 2
    assert "no episode with positive weight" in capsys.readouterr().err
    assert main(["offline", *common, "--dataset", str(tmp_path / "ds"), "--arm", "bc", "--out", str(tmp_path / "r"),
                 "--steps", "1", "--report"]) == 0
    assert (tmp_path / "r" / "report" / "report.html").exists()
    assert main(["offline", *common, "--dataset", str(tmp_path / "missing"), "--out", str(tmp_path / "m")]) == 2
    assert "does not exist" in capsys.readouterr().err
    # A new run into a folder that already holds checkpoints: one line pointing at --resume, nothing overwritten.
    assert main(["offline", *common, "--dataset", str(tmp_path / "ds"), "--arm", "bc", "--out", str(tmp_path / "r"),
                 "--steps", "1"]) == 2
    assert f"pass --resume {tmp_path / 'r'}" in capsys.readouterr().err
    assert main(["offline", "--resume", str(tmp_path / "r"), "--steps", "2"]) == 0  # continues with its config
    assert main(["offline", "--resume", str(tmp_path / "r"), "--arm", "awr_srpo"]) == 2
    assert "--arm cannot be combined with --resume" in capsys.readouterr().err
