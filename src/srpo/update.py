"""The PPO update of one training step: the batch record, old/reference log-probs, mini-batches, the loss of one
mini-batch and the single-process optimiser step.

`ppo_minibatch_loss` is the one loss both learners minimise: `minibatch_step` here (one process), and the
data-parallel learners of `srpo.distributed.learner`, which weight each shard's loss so that their sum is this
mini-batch loss.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from srpo.algo.losses import entropy_bonus, kl_penalty, masked_aggregate, ppo_clip_loss
from srpo.algo.schedule import lr_factor
from srpo.config.train import AlgoConfig
from srpo.policies.base import PolicyInput, TrainablePolicy
from srpo.types import Trajectory


class TokenScorer(Protocol):
    """What the loss needs of a model: its parameters (for the device) and differentiable token log-probs.

    A `TrainablePolicy`, or the data-parallel learner's FSDP root around one.
    """

    def parameters(self, recurse: bool = True) -> Iterator[torch.nn.Parameter]: ...

    def token_log_probs(
        self, batch: PolicyInput, tokens: torch.Tensor, temperature: float
    ) -> tuple[torch.Tensor, torch.Tensor]: ...


@dataclass
class ChunkBatch:
    """All action chunks of the kept trajectories, flattened: M chunks, L tokens each.

    Attributes:
        images: (M, H, W, 3) uint8.
        states: (M, S) float32.
        instructions: M strings.
        tokens: (M, L) int64.
        mask: (M, L) bool, executed tokens.
        old_log_probs: (M, L) float32 behaviour log-probs (recomputed by the learner, see `prepare_batch`).
        advantages: (M,) float32, the trajectory's advantage broadcast to its chunks.
        ref_log_probs: (M, L) float32 reference-policy log-probs, or None without a KL term.
        row_weights: (M,) float32 1 / executed tokens of each chunk's trajectory (0 for a trajectory without
            any), the token weights of the "traj-mean-token-mean" aggregation; None where the batch was built
            without trajectories (that aggregation then refuses it).
    """

    images: np.ndarray
    states: np.ndarray
    instructions: list[str]
    tokens: np.ndarray
    mask: np.ndarray
    old_log_probs: np.ndarray
    advantages: np.ndarray
    ref_log_probs: np.ndarray | None = None
    row_weights: np.ndarray | None = None

    @classmethod
    def from_trajectories(cls, trajs: Sequence[Trajectory], advantages: np.ndarray) -> ChunkBatch:
        """Flatten N trajectories and their (N,) advantages into chunk rows."""
        counts = [t.num_chunks for t in trajs]
        executed = np.array([int(t.token_mask.sum()) for t in trajs], dtype=np.float64)
        per_traj = np.divide(1.0, executed, out=np.zeros_like(executed), where=executed > 0)
        return cls(
            images=np.concatenate([t.policy_images for t in trajs]),
            states=np.concatenate([t.policy_states for t in trajs]).astype(np.float32),
            instructions=[t.instruction for t in trajs for _ in range(t.num_chunks)],
            tokens=np.concatenate([t.action_tokens for t in trajs]),
            mask=np.concatenate([t.token_mask for t in trajs]),
            old_log_probs=np.concatenate([t.log_probs for t in trajs]).astype(np.float32),
            advantages=np.repeat(advantages.astype(np.float32), counts),
            row_weights=np.repeat(per_traj, counts).astype(np.float32),
        )

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    def policy_input(self, idx: np.ndarray) -> PolicyInput:
        """The policy inputs of rows `idx`."""
        return PolicyInput(self.images[idx], self.states[idx], [self.instructions[i] for i in idx])


def batched_log_probs(
    policy: TrainablePolicy, batch: ChunkBatch, temperature: float, batch_size: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """(M, L) log-probs and entropies of the batch's tokens under `policy`, without gradients."""
    lps, ents = [], []
    with torch.no_grad():
        for start in range(0, len(batch), batch_size):
            idx = np.arange(start, min(start + batch_size, len(batch)))
            lp, ent = policy.token_log_probs(batch.policy_input(idx), torch.as_tensor(batch.tokens[idx]), temperature)
            lps.append(lp.float().cpu().numpy())
            ents.append(ent.float().cpu().numpy())
    return np.concatenate(lps), np.concatenate(ents)


def prepare_batch(
    policy: TrainablePolicy,
    reference: TrainablePolicy | None,
    trajs: Sequence[Trajectory],
    advantages: np.ndarray,
    temperature: float,
) -> tuple[ChunkBatch, float]:
    """The update's batch with old log-probs recomputed by the learner (and reference log-probs for the KL term).

    The recomputed old log-probs equal the rollout's up to numerics for a deterministic policy; their largest gap
    over executed tokens is returned as a check that rollout and learner agree.

    Args:
        policy: The policy about to be updated (left in eval mode).
        reference: The frozen KL reference, or None without a KL term.
        trajs: The N kept trajectories.
        advantages: (N,) advantages.
        temperature: The sampling temperature the log-probs are taken at.

    Returns:
        The batch, and max |recomputed − rollout| old log-prob over executed tokens (0 without any).
    """
    batch = ChunkBatch.from_trajectories(trajs, advantages)
    policy.train(False)
    old_lp, _ = batched_log_probs(policy, batch, temperature)
    gap = float(np.abs(old_lp - batch.old_log_probs)[batch.mask].max()) if batch.mask.any() else 0.0
    batch.old_log_probs = old_lp
    if reference is not None:
        batch.ref_log_probs, _ = batched_log_probs(reference, batch, temperature)
    return batch, gap


def make_minibatches(num_rows: int, algo: AlgoConfig, rng: np.random.Generator) -> list[np.ndarray]:
    """Row indices of every mini-batch of the update: algo.ppo_epochs shuffles, each split into
    min(algo.num_minibatches, num_rows) near-equal parts."""
    return [
        idx
        for _ in range(algo.ppo_epochs)
        for idx in np.array_split(rng.permutation(num_rows), min(algo.num_minibatches, num_rows))
    ]


def ppo_minibatch_loss(
    policy: TokenScorer, batch: ChunkBatch, idx: np.ndarray, algo: AlgoConfig
) -> tuple[torch.Tensor, dict[str, float]]:
    """The PPO-clip (+ KL, − entropy bonus) loss of rows `idx` of `batch`: one mini-batch of the update, shared by
    `minibatch_step` and the data-parallel learners (`srpo.distributed.learner`).

    Args:
        policy: The policy being trained (or the learners' FSDP root around it, which has the same
            `token_log_probs` and `parameters`).
        batch: The step's chunks with old (and optionally reference) log-probs.
        idx: (m,) row indices, m >= 1.
        algo: Clip, KL and entropy settings.

    Returns:
        The scalar loss (differentiable) and its stats: loss/policy, ppo/clip_fraction, ppo/approx_kl,
        ppo/ratio_mean, loss/entropy (aggregated as the loss), policy/entropy (token-mean), and loss/kl with a
        reference.
    """
    device = next(policy.parameters()).device
    tokens = torch.as_tensor(batch.tokens[idx], device=device)
    mask = torch.as_tensor(batch.mask[idx], device=device)
    old = torch.as_tensor(batch.old_log_probs[idx], device=device)
    adv = torch.as_tensor(batch.advantages[idx], device=device)
    log_probs, entropy = policy.token_log_probs(batch.policy_input(idx), tokens, algo.temperature)
    log_probs = log_probs.float()
    row_w = None if batch.row_weights is None else torch.as_tensor(batch.row_weights[idx], device=device)
    ppo = ppo_clip_loss(log_probs, old, adv, mask, algo.clip_low, algo.clip_high, algo.dual_clip,
                        aggregation=algo.aggregation, row_weights=row_w)
    loss = ppo.loss
    stats = {"loss/policy": ppo.loss.item(), "ppo/clip_fraction": ppo.clip_fraction.item(),
             "ppo/approx_kl": ppo.approx_kl.item(), "ppo/ratio_mean": ppo.ratio_mean.item()}
    if batch.ref_log_probs is not None:
        ref = torch.as_tensor(batch.ref_log_probs[idx], device=device)
        # Without the KL term (algo.log_reference_kl) the KL is measured, not trained on.
        trained = log_probs if algo.kl_coef > 0 else log_probs.detach()
        kl = masked_aggregate(kl_penalty(trained, ref, algo.kl_estimator), mask, algo.aggregation, row_w)
        if algo.kl_coef > 0:
            loss = loss + algo.kl_coef * kl
        stats["loss/kl"] = kl.item()
    ent = entropy_bonus(entropy.float(), mask, algo.aggregation, row_w)
    stats["loss/entropy"] = ent.item()
    # The same entropy weighted per token whatever the aggregation, so runs with different aggregations compare.
    stats["policy/entropy"] = masked_aggregate(entropy.detach().float(), mask, "token-mean").item()
    if algo.entropy_coef > 0:
        loss = loss - algo.entropy_coef * ent
    return loss, stats


def minibatch_step(
    policy: TrainablePolicy,
    optimizer: torch.optim.Optimizer,
    batch: ChunkBatch,
    idx: np.ndarray,
    algo: AlgoConfig,
    step: int,
) -> dict[str, float]:
    """One single-process optimiser step on rows `idx`: loss, backward, gradient clipping, AdamW step.

    Args:
        policy: The policy, in training mode.
        optimizer: Its optimiser (its param groups are the parameters clipped).
        batch: The step's chunks.
        idx: (m,) row indices of the mini-batch.
        algo: Loss settings and algo.grad_clip.
        step: The training step (named in the error of a non-finite loss).

    Returns:
        The loss stats of `ppo_minibatch_loss` plus loss/total and grad/norm (before clipping).

    Raises:
        FloatingPointError: The loss is not finite (raised before any weight changes).
    """
    loss, stats = ppo_minibatch_loss(policy, batch, idx, algo)
    if not torch.isfinite(loss):
        raise FloatingPointError(f"non-finite loss {loss.item()} at step {step}; stopping before it "
                                 "corrupts the weights (lower algo.lr or check the inputs)")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    params = [p for g in optimizer.param_groups for p in g["params"]]
    grad_norm = torch.nn.utils.clip_grad_norm_(params, algo.grad_clip)
    optimizer.step()
    stats["loss/total"] = loss.item()
    stats["grad/norm"] = float(grad_norm)
    return stats


def make_optimizer(params: Sequence[torch.nn.Parameter], algo: AlgoConfig) -> torch.optim.AdamW:
    """The RL update's optimiser: AdamW over `params` (the trainable ones) at algo.lr and algo.weight_decay."""
    return torch.optim.AdamW(params, lr=algo.lr, weight_decay=algo.weight_decay)


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every param group of `optimizer` to learning rate `lr` (the schedule's rate for the coming step)."""
    for group in optimizer.param_groups:
        group["lr"] = lr


def step_learning_rate(algo: AlgoConfig, step: int, num_steps: int) -> float:
    """The learning rate of training step `step` (1-based) of `num_steps`: algo.lr scaled by its schedule."""
    return algo.lr * lr_factor(step, num_steps, algo.lr_schedule, algo.lr_warmup_steps, algo.lr_min_ratio)


def local_update(
    policy: TrainablePolicy,
    optimizer: torch.optim.Optimizer,
    batch: ChunkBatch,
    minibatches: Sequence[np.ndarray],
    algo: AlgoConfig,
    step: int,
) -> list[dict[str, float]]:
    """The single-process update: one `minibatch_step` per mini-batch in order, with the policy in training mode
    throughout and back in eval mode after (also when a step raises).

    Args:
        policy: The policy (updated in place).
        optimizer: Its optimiser.
        batch: The step's chunks (`prepare_batch`).
        minibatches: Row indices of every mini-batch (`make_minibatches`).
        algo: Loss settings.
        step: The training step (named in the error of a non-finite loss).

    Returns:
        Each mini-batch's stats (`minibatch_step`), in order.
    """
    policy.train(True)
    try:
        return [minibatch_step(policy, optimizer, batch, idx, algo, step) for idx in minibatches]
    finally:
        policy.train(False)


def mean_stats(all_stats: Sequence[dict[str, float]]) -> dict[str, float]:
    """Each stat summed over the mini-batches and divided by their number (all report the same keys)."""
    sums: dict[str, float] = {}
    for stats in all_stats:
        for k, v in stats.items():
            sums[k] = sums.get(k, 0.0) + v
    return {k: v / max(len(all_stats), 1) for k, v in sums.items()}
