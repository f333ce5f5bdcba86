"""The advantage is the only learning signal once the entropy bonus and the KL term are off: these tests fail if
the update zeroes the advantages, flips their sign, or pairs them with the wrong trajectory's tokens.

Every other trainer test turns the entropy bonus on (so that a random policy whose groups all fail still moves),
which hides exactly those bugs: parameters change whatever the advantages are.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from srpo.config.train import TrainConfig, load_config
from srpo.trainer import Trainer
from srpo.types import ACTION_DIM, Trajectory
from srpo.update import ChunkBatch, batched_log_probs
from tiny_config import tiny_tabletop

TINY = tiny_tabletop(
    16,
    "algo_name=grpo",
    "algo.entropy_coef=0.0",  # the point of this file: no signal but the advantages
    "algo.kl_coef=0.0",
    "algo.ppo_epochs=1",
    "algo.num_minibatches=1",  # one optimiser step, so the first-order effect of each advantage dominates
    "algo.lr=1e-4",
    "algo.weight_decay=0.0",  # decay would move the weights without any advantage
    "num_eval_episodes_per_task=0",
    "num_videos_per_step=0",
    "tensorboard=false",
)

CHUNKS_PER_TRAJECTORY = (1, 2, 3)  # unequal, so advantages broadcast to the wrong chunks are caught
ADVANTAGES = np.array([1.0, -1.0, 1.0])


def tiny_config(run_dir: Path) -> TrainConfig:
    return load_config(preset="tabletop", overrides=[*TINY, f"run_dir={run_dir}"])


def constructed_trajectories(trainer: Trainer) -> list[Trajectory]:
    """Three trajectories of 1, 2 and 3 chunks, each chunk at its own random observation and with tokens from a
    band of bins no other chunk uses: raising one chunk's tokens cannot raise another's through a shared token."""
    policy = trainer.policy
    rng = np.random.default_rng(0)
    size = trainer.cfg.policy.image_size
    num_tokens = policy.num_action_tokens
    state_dim = trainer.factory.make(0).reset(0).state.shape[0]
    band = policy.num_bins // sum(CHUNKS_PER_TRAJECTORY)
    trajs, chunk = [], 0
    for i, num_chunks in enumerate(CHUNKS_PER_TRAJECTORY):
        tokens = np.stack([rng.integers(band * (chunk + c), band * (chunk + c + 1), size=num_tokens)
                           for c in range(num_chunks)])
        chunk += num_chunks
        steps = num_chunks * trainer.cfg.policy.chunk_size
        trajs.append(Trajectory(
            task_id=0, instruction=trainer.specs[0].instruction, init_state_id=0, group_id=0, rollout_id=i,
            frames=rng.integers(0, 256, size=(2, size, size, 3), dtype=np.uint8),
            policy_images=rng.integers(0, 256, size=(num_chunks, size, size, 3), dtype=np.uint8),
            policy_states=rng.normal(size=(num_chunks, state_dim)).astype(np.float32),
            action_tokens=tokens.astype(np.int64),
            log_probs=np.zeros((num_chunks, num_tokens), np.float32),
            token_mask=np.ones((num_chunks, num_tokens), bool),
            actions=np.zeros((steps, ACTION_DIM), np.float32),
            success=bool(ADVANTAGES[i] > 0), finish_step=steps,
        ))
    return trajs


def chunk_log_probs(trainer: Trainer, trajs: list[Trajectory]) -> np.ndarray:
    """(M,) summed log-prob of each chunk's executed tokens, in trajectory order."""
    batch = ChunkBatch.from_trajectories(trajs, np.zeros(len(trajs)))
    lp, _ = batched_log_probs(trainer.policy, batch, trainer.cfg.algo.temperature)
    return np.where(batch.mask, lp, 0.0).sum(axis=1)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trainer]:
    torch.manual_seed(0)
    with Trainer(tiny_config(tmp_path_factory.mktemp("signal") / "run"), show_progress=False) as trainer:
        yield trainer


@pytest.fixture
def trainer(built: Trainer) -> Iterator[Trainer]:
    """The module's trainer, its weights and optimiser state restored after each test."""
    weights = copy.deepcopy(built.policy.state_dict())
    optimizer = copy.deepcopy(built.optimizer.state_dict())
    yield built
    built.policy.load_state_dict(weights)
    built.optimizer.load_state_dict(optimizer)


def test_each_chunk_moves_the_way_its_trajectorys_advantage_says(trainer: Trainer):
    trajs = constructed_trajectories(trainer)
    before = chunk_log_probs(trainer, trajs)
    trainer.update(trajs, ADVANTAGES)
    after = chunk_log_probs(trainer, trajs)
    expected_sign = np.repeat(np.sign(ADVANTAGES), CHUNKS_PER_TRAJECTORY)
    delta = after - before
    assert np.all(np.abs(delta) > 1e-4), f"some chunk's log-prob did not move: {delta}"
    np.testing.assert_array_equal(np.sign(delta), expected_sign,
                                  err_msg=f"log-prob changes {delta} do not follow the advantages' signs")


@pytest.mark.parametrize(("aggregation", "expected"), [
    ("token-mean", 0.0),  # (1·1 + 1·2 − 1·3) / 6 chunks' tokens: the 3-chunk failure cancels both successes
    ("traj-mean-token-mean", 1 / 3),  # (1 + 1 − 1) / 3 trajectories
])
def test_the_loss_weighs_trajectories_as_its_aggregation_says(trainer: Trainer, aggregation: str, expected: float):
    """One mini-batch, one epoch: the update's loss is taken at ratio 1, where it is −(aggregated advantage)."""
    trajs = constructed_trajectories(trainer)
    advantages = np.array([1.0, 1.0, -1.0])
    cfg = trainer.cfg
    trainer.cfg = dataclasses.replace(cfg, algo=dataclasses.replace(cfg.algo, aggregation=aggregation))
    try:
        stats = trainer.update(trajs, advantages)
    finally:
        trainer.cfg = cfg
    assert stats["loss/policy"] == pytest.approx(-expected, abs=1e-6)
    if aggregation == "token-mean":  # policy/entropy is the token-mean entropy under every aggregation
        assert stats["policy/entropy"] == pytest.approx(stats["loss/entropy"])
    else:
        assert stats["policy/entropy"] != pytest.approx(stats["loss/entropy"])


def test_zero_advantages_leave_the_policy_unchanged(trainer: Trainer):
    """The converse: with the entropy bonus and KL off, zero advantages carry no signal at all."""
    trajs = constructed_trajectories(trainer)
    state = {k: v.clone() for k, v in trainer.policy.state_dict().items()}
    trainer.update(trajs, np.zeros(len(trajs)))
    after = trainer.policy.state_dict()
    changed = [k for k in state if not torch.equal(state[k], after[k])]
    assert not changed, f"parameters {changed[:3]} changed without any advantage"


def changed_parameters(trainer: Trainer, trajs: list[Trajectory], advantages: np.ndarray) -> tuple[list[str], dict]:
    """Names of the parameters one update with `advantages` changed, and the update's stats."""
    state = {k: v.clone() for k, v in trainer.policy.state_dict().items()}
    stats = trainer.update(trajs, advantages)
    after = trainer.policy.state_dict()
    return [k for k in state if not torch.equal(state[k], after[k])], stats


@pytest.fixture(scope="module")
def kl_trainer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trainer]:
    """A trainer with the KL term on and several optimiser steps per update, its policy still equal to the
    reference: the start of every run with `algo.kl_coef > 0`."""
    overrides = [o for o in TINY if not o.startswith(("algo.kl_coef", "algo.ppo_epochs", "algo.num_minibatches"))]
    overrides += ["algo.kl_coef=0.05", "algo.ppo_epochs=4", "algo.num_minibatches=2",
                  f"run_dir={tmp_path_factory.mktemp('kl') / 'run'}"]
    torch.manual_seed(0)
    with Trainer(load_config(preset="tabletop", overrides=overrides), show_progress=False) as trainer:
        weights = copy.deepcopy(trainer.policy.state_dict())
        yield trainer
        trainer.policy.load_state_dict(weights)


def test_zero_advantages_take_no_step_with_the_kl_term_on(kl_trainer: Trainer):
    """With the KL term on and the policy equal to its reference, the KL gradient is float noise that Adam would
    scale to full learning-rate steps; a batch without advantage signal must not move the policy."""
    assert kl_trainer.reference is not None
    trajs = constructed_trajectories(kl_trainer)
    changed, stats = changed_parameters(kl_trainer, trajs, np.zeros(len(trajs)))
    assert not changed, f"parameters {changed[:3]} changed without any advantage"
    assert stats["ppo/skipped_no_signal"] == 1.0 and stats["ppo/num_updates"] == 0
    assert stats["loss/kl"] == pytest.approx(0.0, abs=1e-6)  # still logged, and ~0 at the reference
    # The same batch with advantages does step, every mini-batch of every epoch, and says so.
    changed, stats = changed_parameters(kl_trainer, trajs, ADVANTAGES)
    assert changed and stats["ppo/skipped_no_signal"] == 0.0 and stats["ppo/num_updates"] == 8


def test_zero_advantages_still_step_on_the_entropy_bonus(trainer: Trainer):
    """The entropy bonus is a signal of its own: with it on, an all-zero batch still takes its steps."""
    trajs = constructed_trajectories(trainer)
    algo = trainer.cfg.algo
    trainer.cfg = dataclasses.replace(trainer.cfg, algo=dataclasses.replace(algo, entropy_coef=0.01))
    try:
        changed, stats = changed_parameters(trainer, trajs, np.zeros(len(trajs)))
    finally:
        trainer.cfg = dataclasses.replace(trainer.cfg, algo=algo)
    assert changed and stats["ppo/skipped_no_signal"] == 0.0


def test_reference_kl_is_logged_without_training_on_it(tmp_path: Path):
    """`algo.log_reference_kl` with `kl_coef = 0` builds the reference and logs loss/kl, and the update is the
    same, weight for weight, as without it: the KL is measured, not trained on."""
    def two_updates(run_dir: Path, *extra: str) -> tuple[dict[str, torch.Tensor], list[dict]]:
        torch.manual_seed(0)
        cfg = load_config(preset="tabletop", overrides=[*TINY, f"run_dir={run_dir}", *extra])
        with Trainer(cfg, show_progress=False) as trainer:
            start = copy.deepcopy(trainer.policy.state_dict())
            trajs = constructed_trajectories(trainer)
            # The second update starts one step away from the reference, so its KL has something to measure.
            stats = [trainer.update(trajs, ADVANTAGES), trainer.update(trajs, ADVANTAGES)]
            assert (trainer.reference is not None) == bool(extra)
            if trainer.reference is not None:  # frozen at the start
                ref = trainer.reference.state_dict()
                assert all(torch.equal(v, ref[k]) for k, v in start.items())
            return {k: v.clone() for k, v in trainer.policy.state_dict().items()}, stats

    plain, plain_stats = two_updates(tmp_path / "plain")
    logged, logged_stats = two_updates(tmp_path / "logged", "algo.log_reference_kl=true")
    assert (tmp_path / "logged" / "reference_policy").is_dir()
    assert not (tmp_path / "plain" / "reference_policy").exists()
    assert "loss/kl" not in plain_stats[0]
    assert logged_stats[0]["loss/kl"] == pytest.approx(0.0, abs=1e-6)  # at the reference
    assert logged_stats[1]["loss/kl"] > 1e-6
    assert all(torch.equal(plain[k], logged[k]) for k in plain), "logging the KL changed the update"
    assert plain_stats[1]["loss/policy"] == logged_stats[1]["loss/policy"]
