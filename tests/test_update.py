"""srpo.update: the single-process update (`local_update`) and its guard against a non-finite loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from srpo.build import make_policy
from srpo.config.train import TrainConfig, load_config
from srpo.policies.base import PolicyInput, TrainablePolicy
from srpo.types import Trajectory
from srpo.update import local_update, make_minibatches, minibatch_step, prepare_batch
from tiny_config import tiny_tabletop

INSTRUCTION = "put the red block in the bowl"


def tiny_setup(num_episodes: int = 4, num_chunks: int = 3) -> tuple[TrainConfig, TrainablePolicy, list[Trajectory]]:
    """A tiny tabletop policy and `num_episodes` trajectories whose tokens it sampled itself."""
    cfg = load_config(preset="tabletop", overrides=tiny_tabletop(8, "algo.ppo_epochs=2", "algo.num_minibatches=2"))
    torch.manual_seed(0)
    policy = make_policy(cfg)
    rng = np.random.default_rng(0)
    size, state_dim = cfg.policy.image_size, cfg.policy.state_dim
    trajs = []
    for i in range(num_episodes):
        images = rng.integers(0, 256, size=(num_chunks, size, size, 3), dtype=np.uint8)
        states = rng.normal(size=(num_chunks, state_dim)).astype(np.float32)
        with torch.no_grad():
            sample = policy.sample(PolicyInput(images, states, [INSTRUCTION] * num_chunks), cfg.algo.temperature)
        steps = num_chunks * policy.chunk_size
        trajs.append(Trajectory(
            task_id=0, instruction=INSTRUCTION, init_state_id=0, group_id=0, rollout_id=i,
            frames=np.zeros((num_chunks + 1, 8, 8, 3), dtype=np.uint8), policy_images=images,
            policy_states=states, action_tokens=sample.tokens, log_probs=sample.log_probs,
            token_mask=np.ones_like(sample.tokens, dtype=bool),
            actions=sample.actions.reshape(steps, -1).astype(np.float32), success=i == 0, finish_step=steps))
    return cfg, policy, trajs


def optimizer_of(policy: TrainablePolicy, cfg: TrainConfig) -> torch.optim.AdamW:
    return torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=cfg.algo.lr,
                             weight_decay=cfg.algo.weight_decay)


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
