"""Group-relative advantages (GRPO) and the dynamic-sampling filter. Pure numpy over per-trajectory scalars."""

from __future__ import annotations

import numpy as np

from srpo.types import Aggregation, StdKind, unknown_aggregation


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


def referenced_failure_group_mask(
    rewards: np.ndarray,
    success: np.ndarray,
    group_ids: np.ndarray,
    has_reference: np.ndarray,
    min_reward_std: float,
    std: StdKind = "unbiased",
) -> np.ndarray:
    """Members of all-failure groups that still carry an SRPO signal: their task has a reference success and
    their shaped rewards spread by at least `min_reward_std`.

    With binary rewards an all-failure group has zero spread and no GRPO signal, so the official filter drops
    it. SRPO's progress reward ranks the failures of such a group when the task has a reference (a success
    elsewhere in the batch or in the memory bank). The spread threshold guards the group z-score
    A_i = (r_i − mean_g) / (std_g + eps): with eps = 1e-6, a group whose rewards differ by round-off would be
    blown up to unit-scale advantages that rank noise.

    Args:
        rewards: (N,) shaped trajectory rewards (e.g. `compute_progress_rewards(...).rewards`).
        success: (N,) bool outcome.
        group_ids: (N,) int group of each trajectory.
        has_reference: (N,) bool, True where the trajectory's task had a reference success when it was
            rewarded (`diagnostics.reference_kind != "none"`).
        min_reward_std: Smallest group reward std (estimator `std`) kept, >= 0.
        std: "unbiased" (ddof = 1, as the official advantage) or "biased" (ddof = 0).

    Returns:
        (N,) bool, True for every member of a kept all-failure group (never for a group holding a success,
        nor for a group of one).
    """
    r = np.asarray(rewards, dtype=np.float64)
    s = np.asarray(success, dtype=bool)
    g = np.asarray(group_ids)
    ref = np.asarray(has_reference, dtype=bool)
    if r.ndim != 1 or not r.shape == s.shape == g.shape == ref.shape:
        raise ValueError(f"rewards {r.shape}, success {s.shape}, group_ids {g.shape} and has_reference "
                         f"{ref.shape} must all be (N,)")
    if not np.isfinite(r).all():
        raise ValueError(f"rewards contain NaN or inf at rows {np.flatnonzero(~np.isfinite(r))[:10].tolist()}")
    if min_reward_std < 0:
        raise ValueError(f"min_reward_std={min_reward_std} must be >= 0")
    if std not in ("unbiased", "biased"):
        raise ValueError(f"std={std!r}: choose 'unbiased' or 'biased'")
    ddof = 1 if std == "unbiased" else 0
    _, inverse, counts = np.unique(g, return_inverse=True, return_counts=True)
    num_success = np.bincount(inverse, weights=s.astype(np.float64))
    # A group is referenced only if every member is (they share a task, so this is all or none in practice).
    num_referenced = np.bincount(inverse, weights=ref.astype(np.float64))
    means = np.bincount(inverse, weights=r) / counts
    sq = np.bincount(inverse, weights=(r - means[inverse]) ** 2)
    stds = np.sqrt(sq / np.maximum(counts - ddof, 1))
    keep_group = (num_success == 0) & (num_referenced == counts) & (counts > 1) & (stds >= min_reward_std)
    return keep_group[inverse]


def weight_failure_groups(
    advantages: np.ndarray, success: np.ndarray, group_ids: np.ndarray, weight: float
) -> np.ndarray:
    """Scale the advantages of all-failure groups by `weight`; groups holding a success keep theirs.

    The group z-score A_i = (r_i − mean_g) / (std_g + eps) gives an all-failure group's shaped rewards
    unit-scale advantages however little they differ, so in a step where most groups fail, the failures' ranking
    by distance to the success centres outweighs the groups that hold a success. weight = 1 leaves the SRPO
    advantages as they are; 0 gives such groups no policy-gradient signal, as binary GRPO does (and as the
    official dynamic-sampling filter, which drops them, does); values between damp them.

    Args:
        advantages: (N,) group advantages.
        success: (N,) bool outcome.
        group_ids: (N,) int group of each trajectory.
        weight: Factor in [0, 1] applied to every member of a group without a success.

    Returns:
        (N,) float64 advantages, a new array.
    """
    a = np.asarray(advantages, dtype=np.float64)
    s = np.asarray(success, dtype=bool)
    g = np.asarray(group_ids)
    if a.ndim != 1 or not a.shape == s.shape == g.shape:
        raise ValueError(f"advantages {a.shape}, success {s.shape} and group_ids {g.shape} must all be (N,)")
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight={weight} must be in [0, 1]")
    return np.where(dynamic_sampling_mask(s, g, 0.0, 0.0), weight * a, a)


def advantage_mass(success: np.ndarray, advantages: np.ndarray, group_ids: np.ndarray) -> dict[str, float]:
    """Where one step's (or several steps', with group ids unique across them) advantage mass goes: how much
    of it the all-failure groups carry, and how much of the positive push lands on failed episodes.

    Under binary GRPO an all-failure group has zero advantages and a failure never gets a positive one, so both
    shares are 0; under SRPO's group z-score an all-failure group's shaped rewards get unit-scale advantages,
    and a failure near a success centre can get a positive one.

    Args:
        success: (N,) bool outcomes.
        advantages: (N,) group advantages as trained on.
        group_ids: (N,) int groups.

    Returns:
        {"num_groups", "num_failure_groups", "abs_total", "abs_failure_groups", "positive_total",
         "positive_on_failures", "failure_group_abs_share", "positive_on_failures_share"}; a share is NaN
        where its total is 0.
    """
    s = np.asarray(success, dtype=bool)
    a = np.asarray(advantages, dtype=np.float64)
    g = np.asarray(group_ids)
    if a.ndim != 1 or not a.shape == s.shape == g.shape:
        raise ValueError(f"success {s.shape}, advantages {a.shape} and group_ids {g.shape} must all be (N,)")
    failed_groups = dynamic_sampling_mask(s, g, 0.0, 0.0)
    abs_total, abs_failed = float(np.abs(a).sum()), float(np.abs(a[failed_groups]).sum())
    positive = a > 0
    positive_total, positive_failures = float(a[positive].sum()), float(a[positive & ~s].sum())
    return {
        "num_groups": len(np.unique(g)), "num_failure_groups": len(np.unique(g[failed_groups])),
        "abs_total": abs_total, "abs_failure_groups": abs_failed,
        "positive_total": positive_total, "positive_on_failures": positive_failures,
        "failure_group_abs_share": abs_failed / abs_total if abs_total > 0 else float("nan"),
        "positive_on_failures_share": positive_failures / positive_total if positive_total > 0 else float("nan"),
    }


def task_baseline_advantages(rewards: np.ndarray, task_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Offline advantages: A_i = r_i − b_task(i), with b the mean reward of the dataset's episodes of that task.

    The per-task mean is the value estimate AWR needs when each episode is one sample and tasks differ in how
    often they succeed: without it, episodes of an easy task would all outweigh those of a hard one.

    Args:
        rewards: (N,) episode rewards.
        task_ids: (N,) int task of each episode.

    Returns:
        (advantages (N,), baselines (N,)) float64.
    """
    r = np.asarray(rewards, dtype=np.float64)
    t = np.asarray(task_ids)
    if r.ndim != 1 or t.shape != r.shape:
        raise ValueError(f"rewards {r.shape} and task_ids {t.shape} must both be (N,)")
    if not np.isfinite(r).all():
        raise ValueError(f"rewards contain NaN or inf at rows {np.flatnonzero(~np.isfinite(r))[:10].tolist()}")
    _, inverse, counts = np.unique(t, return_inverse=True, return_counts=True)
    baseline = (np.bincount(inverse, weights=r) / counts)[inverse]
    return r - baseline, baseline


def loss_weighted_advantage_mean(
    advantages: np.ndarray, token_counts: np.ndarray, row_counts: np.ndarray, aggregation: Aggregation
) -> float:
    """The mean advantage the loss applies, weighting each trajectory as the loss aggregation weighs it.

    At ratio 1 (the first mini-batch of an update over the whole batch) the PPO loss equals −this value. Group
    advantages have zero mean per trajectory, but under "token-mean" a trajectory weighs its number of tokens:
    when failures run to the time limit and successes stop early, the weighted mean is negative, and the update
    as a whole pushes the sampled tokens down, which raises the policy's entropy step after step.
    "traj-mean-token-mean" weighs every trajectory the same and keeps it at the plain mean.

    Args:
        advantages: (N,) per-trajectory advantages.
        token_counts: (N,) executed action tokens of each trajectory.
        row_counts: (N,) chunks with at least one executed token (the rows "seq-mean-token-mean" averages).
        aggregation: algo.aggregation.

    Returns:
        Σ_i w_i A_i / Σ_i w_i with w = token_counts ("token-mean"), row_counts ("seq-mean-token-mean") or
        1 for every trajectory with a token ("traj-mean-token-mean"); 0.0 when no trajectory has a token.
    """
    a = np.asarray(advantages, dtype=np.float64)
    tokens = np.asarray(token_counts, dtype=np.float64)
    rows = np.asarray(row_counts, dtype=np.float64)
    if a.ndim != 1 or tokens.shape != a.shape or rows.shape != a.shape:
        raise ValueError(f"advantages {a.shape}, token_counts {tokens.shape} and row_counts {rows.shape} must all "
                         "be (N,)")
    if (tokens < 0).any() or (rows < 0).any():
        raise ValueError("token_counts and row_counts must be >= 0")
    if aggregation == "token-mean":
        w = tokens
    elif aggregation == "seq-mean-token-mean":
        w = rows
    elif aggregation == "traj-mean-token-mean":
        w = (tokens > 0).astype(np.float64)
    else:
        raise unknown_aggregation(aggregation)
    total = w.sum()
    return float((w * a).sum() / total) if total > 0 else 0.0
