"""Policy losses: token-level PPO-clip (clip-higher, dual-clip), KL to a reference policy, entropy bonus, and
advantage-weighted regression weights. Pure torch functions; tensors in, tensors out.

Shapes: B trajectories' chunks (or any batch of sequences), L tokens per sequence.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from srpo.types import Aggregation, KLEstimator, unknown_aggregation


class PPOLossOutput(NamedTuple):
    """Scalar tensors: the loss to minimise, and detached metrics."""

    loss: torch.Tensor
    clip_fraction: torch.Tensor
    approx_kl: torch.Tensor
    ratio_mean: torch.Tensor


def masked_aggregate(
    values: torch.Tensor,
    mask: torch.Tensor,
    mode: Aggregation = "token-mean",
    row_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Aggregate per-token values over the masked tokens.

    Rows are action chunks in the trainer (srpo.update.ChunkBatch): "seq" below means one chunk, not one episode.

    Args:
        values: (B, L) per-token values.
        mask: (B, L) bool or {0, 1}; True for tokens that count.
        mode: "token-mean": mean over all masked tokens of the batch (official); an episode weighs as much as it
            has tokens, so failures that run to the time limit outweigh shorter successes. "seq-mean-token-mean":
            mean over each row's masked tokens, then over rows that have at least one (rows are chunks of equal
            length, so this is nearly token-mean). "traj-mean-token-mean": each token weighted by its row's
            `row_weights` (1 / executed tokens of the row's episode), normalised over the batch: over a batch of
            whole episodes, the mean over episodes of each episode's token-mean, so every episode weighs the same
            whatever its length.
        row_weights: (B,) non-negative weight of each row's tokens; required by "traj-mean-token-mean", ignored
            by the other modes.

    Returns:
        Scalar tensor; 0 when no token is masked in (gradients still flow, with zero value).
    """
    if values.shape != mask.shape:
        raise ValueError(f"values {tuple(values.shape)} and mask {tuple(mask.shape)} must have the same shape")
    m = mask.to(values.dtype)
    if mode == "token-mean":
        return (values * m).sum() / m.sum().clamp(min=1.0)
    if mode == "seq-mean-token-mean":
        per_seq_count = m.sum(dim=-1)
        per_seq = (values * m).sum(dim=-1) / per_seq_count.clamp(min=1.0)
        has_tokens = (per_seq_count > 0).to(values.dtype)
        return (per_seq * has_tokens).sum() / has_tokens.sum().clamp(min=1.0)
    if mode == "traj-mean-token-mean":
        if row_weights is None:
            raise ValueError("aggregation 'traj-mean-token-mean' needs row_weights: (B,) 1 / executed tokens of each "
                             "row's episode (srpo.update.ChunkBatch.row_weights)")
        if row_weights.shape != values.shape[:1]:
            raise ValueError(f"row_weights {tuple(row_weights.shape)} must be (B,) with B={values.shape[0]}")
        w = m * row_weights.to(values.dtype)[:, None]
        total = w.sum()
        return (values * w).sum() / torch.where(total > 0, total, torch.ones_like(total))
    raise unknown_aggregation(mode)


def ppo_clip_loss(
    log_probs: torch.Tensor,
    old_log_probs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_low: float = 0.2,
    clip_high: float = 0.28,
    dual_clip: float | None = None,
    log_ratio_clamp: float = 20.0,
    aggregation: Aggregation = "token-mean",
    row_weights: torch.Tensor | None = None,
) -> PPOLossOutput:
    """Token-level PPO clipped surrogate with clip-higher (DAPO) and optional dual-clip.

    ratio = exp(clamp(logπ − logπ_old, −c, c))                                        [official clamp c = 20]
    L_tok = −min(ratio·A, clip(ratio, 1 − ε_low, 1 + ε_high)·A)                       [PPO eq., clip-higher]
    dual-clip (A < 0 only): L_tok = min(L_tok, −dual_clip·A)                          [Ye et al. 2020]

    Args:
        log_probs: (B, L) current policy log-probs (differentiable).
        old_log_probs: (B, L) behaviour policy log-probs.
        advantages: (B,) per-sequence or (B, L) per-token advantages.
        mask: (B, L) bool, True for executed action tokens.
        clip_low: ε_low (official 0.2).
        clip_high: ε_high (official 0.28).
        dual_clip: c > 1 for dual-clip, None to turn it off (the official 10000 is effectively off).
        log_ratio_clamp: Clamp of the log-ratio before exp.
        aggregation: See masked_aggregate.
        row_weights: (B,) per-row token weights for "traj-mean-token-mean" (see masked_aggregate).

    Returns:
        PPOLossOutput(loss, clip_fraction, approx_kl, ratio_mean); the metrics are over masked tokens.
    """
    if log_probs.shape != old_log_probs.shape or log_probs.shape != mask.shape:
        raise ValueError(
            f"log_probs {tuple(log_probs.shape)}, old_log_probs {tuple(old_log_probs.shape)} and mask "
            f"{tuple(mask.shape)} must have the same (B, L) shape"
        )
    if advantages.dim() == 1:
        if advantages.shape[0] != log_probs.shape[0]:
            raise ValueError(f"advantages {tuple(advantages.shape)} must be (B,) with B={log_probs.shape[0]}")
        advantages = advantages[:, None].expand_as(log_probs)
    elif advantages.shape != log_probs.shape:
        raise ValueError(f"advantages {tuple(advantages.shape)} must be (B,) or (B, L) = {tuple(log_probs.shape)}")
    if clip_low < 0 or clip_high < 0:
        raise ValueError(f"clip ranges must be >= 0, got clip_low={clip_low}, clip_high={clip_high}")
    if dual_clip is not None and dual_clip <= 1.0:
        raise ValueError(f"dual_clip must be > 1 (or None), got {dual_clip}")

    log_ratio = torch.clamp(log_probs - old_log_probs, -log_ratio_clamp, log_ratio_clamp)
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high)
    per_token = torch.maximum(unclipped, clipped)
    if dual_clip is not None:
        per_token = torch.where(advantages < 0, torch.minimum(per_token, -dual_clip * advantages), per_token)
    loss = masked_aggregate(per_token, mask, aggregation, row_weights)

    with torch.no_grad():
        was_clipped = (clipped > unclipped).to(log_probs.dtype)
        clip_fraction = masked_aggregate(was_clipped, mask, "token-mean")
        # k3-style estimate of KL(π_old || π): E[(r − 1) − log r], low variance and >= 0.
        approx_kl = masked_aggregate((ratio - 1.0) - log_ratio, mask, "token-mean")
        ratio_mean = masked_aggregate(ratio, mask, "token-mean")
    return PPOLossOutput(loss, clip_fraction, approx_kl, ratio_mean)


def kl_penalty(log_probs: torch.Tensor, ref_log_probs: torch.Tensor, estimator: KLEstimator = "k3") -> torch.Tensor:
    """Per-token estimate of KL(π_θ || π_ref) from samples of π_θ (the paper's β·D_KL term).

    k1 = logπ − logπ_ref (unbiased, high variance, can be negative).
    k3 = exp(logπ_ref − logπ) − (logπ_ref − logπ) − 1 (unbiased, low variance, >= 0; Schulman 2020).

    Args:
        log_probs: (B, L) current policy log-probs (differentiable).
        ref_log_probs: (B, L) reference policy log-probs (no gradient).
        estimator: "k1" or "k3".

    Returns:
        (B, L) per-token KL estimates.
    """
    if log_probs.shape != ref_log_probs.shape:
        raise ValueError(f"log_probs {tuple(log_probs.shape)} and ref_log_probs {tuple(ref_log_probs.shape)} differ")
    diff = ref_log_probs - log_probs
    if estimator == "k1":
        return -diff
    if estimator == "k3":
        # Clamp as verl does: exp of a large positive difference would overflow in low precision.
        diff = torch.clamp(diff, -20.0, 20.0)
        return torch.exp(diff) - diff - 1.0
    raise ValueError(f"unknown KL estimator {estimator!r}: choose 'k1' or 'k3'")


def entropy_bonus(
    entropy: torch.Tensor,
    mask: torch.Tensor,
    aggregation: Aggregation = "token-mean",
    row_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean entropy over masked tokens (subtract coef · this from the loss to encourage exploration).

    Args:
        entropy: (B, L) per-token entropies.
        mask: (B, L) bool.
        aggregation: See masked_aggregate.
        row_weights: (B,) per-row token weights for "traj-mean-token-mean" (see masked_aggregate).
    """
    return masked_aggregate(entropy, mask, aggregation, row_weights)


def awr_weights(advantages: torch.Tensor, beta: float, max_weight: float = 20.0) -> torch.Tensor:
    """Advantage-weighted regression weights w = min(exp(A / β), max_weight) (Peng et al. 2019).

    Args:
        advantages: (N,) advantages.
        beta: Temperature β > 0.
        max_weight: Clip for the weights (> 0).

    Returns:
        (N,) weights, no gradient.
    """
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    if max_weight <= 0:
        raise ValueError(f"max_weight must be > 0, got {max_weight}")
    with torch.no_grad():
        # Clamp the exponent so exp never overflows before the clip applies.
        exponent = torch.clamp(advantages / beta, max=float(torch.log(torch.tensor(max_weight))))
        return torch.exp(exponent)


def weighted_nll_loss(
    log_probs: torch.Tensor, mask: torch.Tensor, weights: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted behaviour cloning over action tokens, weights normalised over the batch (AWR's update).

    ℓ_i = −(1/|m_i|) Σ_l m_il · logπ(a_il | o_i)            per-sample mean NLL over its masked tokens
    L   = Σ_i w_i · ℓ_i / Σ_i w_i                           weights normalised per batch [AWR, Peng et al. 2019]

    With every w_i = 1 this is plain behaviour cloning (the mean of ℓ_i).

    Args:
        log_probs: (B, L) log-probs of the target tokens (differentiable).
        mask: (B, L) bool, tokens that count.
        weights: (B,) non-negative sample weights (no gradient), at least one > 0.

    Returns:
        The scalar loss and the (B,) per-sample NLL ℓ (detached).
    """
    if log_probs.shape != mask.shape:
        raise ValueError(f"log_probs {tuple(log_probs.shape)} and mask {tuple(mask.shape)} must have the same shape")
    if weights.shape != log_probs.shape[:1]:
        raise ValueError(f"weights {tuple(weights.shape)} must be (B,) with B={log_probs.shape[0]}")
    if (weights < 0).any() or not torch.isfinite(weights).all():
        raise ValueError("weights must be finite and >= 0")
    total = weights.sum()
    if total <= 0:
        raise ValueError("all weights of the batch are 0: sample rows with positive weight")
    m = mask.to(log_probs.dtype)
    per_sample = -(log_probs * m).sum(dim=-1) / m.sum(dim=-1).clamp(min=1.0)
    w = weights.to(log_probs.dtype).detach()
    return (w * per_sample).sum() / total.to(log_probs.dtype), per_sample.detach()
