"""Group-relative advantages (GRPO) and the dynamic-sampling filter. Pure numpy over per-trajectory scalars."""

from __future__ import annotations

import numpy as np

from srpo.types import StdKind


def group_advantages(
    rewards: np.ndarray,
    group_ids: np.ndarray,
    eps: float = 1e-6,
    std: StdKind = "unbiased",
    whiten_batch: bool = False,
) -> np.ndarray:
    """GRPO advantages: A_i = (r_i − mean_g) / (std_g + eps) over the rollouts of each group g.

    Official setting: unbiased std, eps = 1e-6, broadcast to every token of the trajectory by the caller.

    Args:
        rewards: (N,) trajectory rewards.
        group_ids: (N,) int group of each trajectory.
        eps: Added to the std (a group with zero spread gets advantage 0 for every member).
        std: "unbiased" (ddof = 1, official) or "biased" (ddof = 0).
        whiten_batch: Afterwards, rescale all advantages of the batch to unit std (mean kept at the
            group-centred value, i.e. not re-centred), as some PPO variants do.

    Returns:
        (N,) float64 advantages. A group of one has no spread to compare with: its advantage is 0 (the unbiased
        std is undefined there; we do not let it become NaN).
    """
    r = np.asarray(rewards, dtype=np.float64)
    g = np.asarray(group_ids)
    if r.ndim != 1 or g.shape != r.shape:
        raise ValueError(f"rewards {r.shape} and group_ids {g.shape} must both be (N,)")
    if not np.isfinite(r).all():
        raise ValueError(f"rewards contain NaN or inf at rows {np.flatnonzero(~np.isfinite(r))[:10].tolist()}")
    if std not in ("unbiased", "biased"):
        raise ValueError(f"std={std!r}: choose 'unbiased' or 'biased'")
    ddof = 1 if std == "unbiased" else 0
    adv = np.zeros_like(r)
    _, inverse, counts = np.unique(g, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=r)
    means = sums / counts
    centred = r - means[inverse]
    sq = np.bincount(inverse, weights=centred**2)
    denom = np.maximum(counts - ddof, 1)
    stds = np.sqrt(sq / denom)
    valid = counts[inverse] > 1
    adv[valid] = centred[valid] / (stds[inverse][valid] + eps)
    if whiten_batch and adv.size > 1:
        batch_std = adv.std()
        if batch_std > eps:
            adv = adv / batch_std
    return adv


def dynamic_sampling_mask(
    success: np.ndarray, group_ids: np.ndarray, low: float = 0.1, high: float = 0.9
) -> np.ndarray:
    """Keep whole groups whose success rate lies in [low, high] (official: 0.1 ≤ rate ≤ 0.9).

    Groups that all succeed or all fail carry no GRPO signal under binary rewards; SRPO's shaped rewards keep
    some signal in all-failure groups, so the trainer lets users widen the window.

    Args:
        success: (N,) bool.
        group_ids: (N,) int.
        low: Minimum group success rate kept.
        high: Maximum group success rate kept.

    Returns:
        (N,) bool mask, True for trajectories of kept groups.
    """
    s = np.asarray(success, dtype=np.float64)
    g = np.asarray(group_ids)
    if s.shape != g.shape or s.ndim != 1:
        raise ValueError(f"success {s.shape} and group_ids {g.shape} must both be (N,)")
    if not 0.0 <= low <= high <= 1.0:
        raise ValueError(f"need 0 <= low <= high <= 1, got low={low}, high={high}")
    _, inverse, counts = np.unique(g, return_inverse=True, return_counts=True)
    rate = np.bincount(inverse, weights=s) / counts
    # A small tolerance so that rates such as 0.1 = 1/10 computed in floating point are not lost at the edge.
    tol = 1e-9
    keep_group = (rate >= low - tol) & (rate <= high + tol)
    return keep_group[inverse]
