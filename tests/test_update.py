"""srpo.update: the single-process update (`local_update`) and its guard against a non-finite loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmark_module import load_benchmark
from srpo.build import make_policy
from srpo.config.train import TrainConfig, load_config
from srpo.policies.base import TrainablePolicy
from srpo.types import Trajectory
from srpo.update import local_update, make_minibatches, make_optimizer, minibatch_step, prepare_batch
from tiny_config import tiny_tabletop

# LIBERO-shaped synthetic trajectories whose tokens the policy sampled itself (the learner_threads benchmark's).
synthetic_batch = load_benchmark("learner_threads").synthetic_batch


def tiny_setup(num_episodes: int = 4, num_chunks: int = 3) -> tuple[TrainConfig, TrainablePolicy, list[Trajectory]]:
    """A tiny tabletop policy and `num_episodes` trajectories whose tokens it sampled itself."""
    cfg = load_config(preset="tabletop", overrides=tiny_tabletop(8, "algo.ppo_epochs=2", "algo.num_minibatches=2"))
    torch.manual_seed(0)
    policy = make_policy(cfg)
    return cfg, policy, synthetic_batch(policy, cfg, num_episodes, num_chunks, seed=0)


def optimizer_of(policy: TrainablePolicy, cfg: TrainConfig) -> torch.optim.AdamW:
    return make_optimizer([p for p in policy.parameters() if p.requires_grad], cfg.algo)


def test_local_update_steps_every_minibatch_like_minibatch_step_and_ends_in_eval_mode() -> None:
    cfg, policy, trajs = tiny_setup()
    advantages = np.array([1.5, -0.5, -0.5, -0.5], dtype=np.float32)
    batch, _ = prepare_batch(policy, None, trajs, advantages, cfg.algo.temperature)
    minibatches = make_minibatches(len(batch), cfg.algo, np.random.default_rng(0))
    assert len(minibatches) == cfg.algo.ppo_epochs * cfg.algo.num_minibatches
    twin = make_policy(cfg)
    twin.load_state_dict(policy.state_dict())
    start = {k: v.clone() for k, v in policy.state_dict().items()}

    stats = local_update(policy, optimizer_of(policy, cfg), batch, minibatches, cfg.algo, step=3)
    # The same steps by hand, in training mode, from the same weights.
    twin.train(True)
    twin_optimizer = optimizer_of(twin, cfg)
    want = [minibatch_step(twin, twin_optimizer, batch, idx, cfg.algo, 3) for idx in minibatches]
    assert [s["loss/total"] for s in stats] == pytest.approx([s["loss/total"] for s in want])
    assert not policy.training
    state = policy.state_dict()
    assert any(not torch.equal(state[k], start[k]) for k in state)
    for k, v in twin.state_dict().items():
        torch.testing.assert_close(state[k], v)


def test_non_finite_loss_raises_before_any_weight_changes_and_restores_eval_mode() -> None:
    cfg, policy, trajs = tiny_setup()
    advantages = np.full(4, np.nan, dtype=np.float32)  # a corrupted batch: the first mini-batch meets it
    batch, _ = prepare_batch(policy, None, trajs, advantages, cfg.algo.temperature)
    minibatches = make_minibatches(len(batch), cfg.algo, np.random.default_rng(0))
    start = {k: v.clone() for k, v in policy.state_dict().items()}
    with pytest.raises(FloatingPointError, match="non-finite loss nan at step 7"):
        local_update(policy, optimizer_of(policy, cfg), batch, minibatches, cfg.algo, step=7)
    assert not policy.training
    for k, v in policy.state_dict().items():
        assert torch.equal(v, start[k]), k
