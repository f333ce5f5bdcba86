"""Reward-quality metrics: the paper's "progress reward quality" table (SC, Mono, MMD, JS, SMD) and metrics
against a privileged progress label (AUROC, Spearman with the stage reached, failure-curve progress).

Conventional definitions (docs/reward.md): SC and Mono read one trajectory's progress curve (the reward of
growing prefixes); MMD, JS and SMD compare the reward distributions of successes and failures. Higher is better
for all five.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from scipy.spatial.distance import jensenshannon
from scipy.stats import spearmanr

from srpo.config.reward import RewardConfig
from srpo.reward.progress import compute_progress_rewards

if TYPE_CHECKING:
    from srpo.reward.labelled import LabelledSet

# SC, Mono (success curves), MMD, JS, SMD, AUROC (success vs failure scores); with stage labels Spearman(failure
# reward, stage) pooled and mean over tasks; with per-frame stages the failure-curve progress metrics.
METRIC_NAMES = (
    "sc", "mono", "mmd", "js", "smd", "auroc", "stage_rho", "stage_rho_task", "fail_curve_rho", "fail_rise",
    "fail_after",
)
JS_BINS = 20


def _as_1d(x: np.ndarray, name: str, min_len: int = 1) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size < min_len:
        raise ValueError(f"{name} needs at least {min_len} values, got {arr.size}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or inf at positions {np.flatnonzero(~np.isfinite(arr))[:10].tolist()}")
    return arr


def spearman_vs_time(curve: np.ndarray) -> float:
    """SC: Spearman rank correlation of a progress curve with time.

    Args:
        curve: (P,) progress values at increasing cut points, P >= 2.

    Returns:
        Correlation in [−1, 1]; 0.0 for a constant curve (no ranking information; scipy would return NaN).
    """
    values = _as_1d(curve, "curve", min_len=2)
    if np.ptp(values) == 0.0:
        return 0.0
    rho = spearmanr(np.arange(values.size), values).statistic
    return float(rho)


def monotonicity(curve: np.ndarray) -> float:
    """Mono: share of consecutive steps where progress does not fall.

    Args:
        curve: (P,) progress values, P >= 2.

    Returns:
        Fraction in [0, 1] of the P − 1 steps with curve[t+1] >= curve[t].
    """
    values = _as_1d(curve, "curve", min_len=2)
    return float(np.mean(np.diff(values) >= 0.0))


def mmd_rbf(x: np.ndarray, y: np.ndarray, bandwidth: float | None = None) -> float:
    """Maximum mean discrepancy between two 1-D samples with an RBF kernel (biased V-statistic, MMD not MMD²).

    k(a, b) = exp(−(a − b)² / (2σ²)); σ defaults to the median heuristic: the median of the pairwise distances
    of the pooled sample (1.0 if that median is 0).

    Args:
        x: (n,) first sample (e.g. success rewards).
        y: (m,) second sample (e.g. failure rewards).
        bandwidth: σ; None for the median heuristic.

    Returns:
        sqrt(max(MMD², 0)).
    """
    a = _as_1d(x, "x")
    b = _as_1d(y, "y")
    if bandwidth is None:
        pooled = np.concatenate([a, b])
        dists = np.abs(pooled[:, None] - pooled[None, :])
        off_diag = dists[~np.eye(pooled.size, dtype=bool)]
        median = float(np.median(off_diag)) if off_diag.size else 0.0
        bandwidth = median if median > 0.0 else 1.0
    if bandwidth <= 0:
        raise ValueError(f"bandwidth must be > 0, got {bandwidth}")
    gamma = 1.0 / (2.0 * bandwidth**2)

    def kernel_mean(p: np.ndarray, q: np.ndarray) -> float:
        return float(np.exp(-gamma * (p[:, None] - q[None, :]) ** 2).mean())

    mmd2 = kernel_mean(a, a) + kernel_mean(b, b) - 2.0 * kernel_mean(a, b)
    return float(np.sqrt(max(mmd2, 0.0)))


def js_divergence(
    x: np.ndarray, y: np.ndarray, num_bins: int = 20, value_range: tuple[float, float] | None = None
) -> float:
    """Jensen–Shannon divergence (base 2, in [0, 1]) between histograms of two samples.

    scipy's `jensenshannon` returns the JS *distance* (the square root); this returns the divergence.

    Args:
        x: (n,) first sample.
        y: (m,) second sample.
        num_bins: Shared histogram bins.
        value_range: Histogram range; defaults to the pooled min/max.

    Returns:
        JS divergence in [0, 1].
    """
    a = _as_1d(x, "x")
    b = _as_1d(y, "y")
    if num_bins < 1:
        raise ValueError(f"num_bins must be >= 1, got {num_bins}")
    if value_range is None:
        lo = float(min(a.min(), b.min()))
        hi = float(max(a.max(), b.max()))
        value_range = (lo, hi if hi > lo else lo + 1.0)
    p, _ = np.histogram(a, bins=num_bins, range=value_range)
    q, _ = np.histogram(b, bins=num_bins, range=value_range)
    distance = jensenshannon(p.astype(np.float64), q.astype(np.float64), base=2.0)
    return float(distance**2)


def standardized_mean_difference(x: np.ndarray, y: np.ndarray) -> float:
    """SMD (Cohen's d): (mean(x) − mean(y)) / pooled standard deviation.

    The pooled std uses the unbiased variances: sqrt(((n−1)·s_x² + (m−1)·s_y²) / (n + m − 2)).

    Args:
        x: (n,) first sample (successes), n >= 2 or m >= 2.
        y: (m,) second sample (failures).

    Returns:
        d; ±inf when the means differ and both samples are constant, 0.0 when neither differs.
    """
    a = _as_1d(x, "x")
    b = _as_1d(y, "y")
    dof = a.size + b.size - 2
    if dof <= 0:
        raise ValueError("standardized_mean_difference needs at least 3 values in total")
    var_a = a.var(ddof=1) if a.size > 1 else 0.0
    var_b = b.var(ddof=1) if b.size > 1 else 0.0
    pooled = np.sqrt(((a.size - 1) * var_a + (b.size - 1) * var_b) / dof)
    diff = a.mean() - b.mean()
    if pooled == 0.0:
        return 0.0 if diff == 0.0 else float(np.copysign(np.inf, diff))
    return float(diff / pooled)


# --- progress-label metrics (a labelled set with the simulator's own progress stage) -----------------------------


def auroc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Area under the ROC curve of scores that should rank positives (successes) above negatives (failures).

    AUROC = P(x > y) + ½ · P(x = y) for x drawn from `positive`, y from `negative` (the Mann–Whitney U statistic
    divided by n · m), computed over all n · m pairs.

    Args:
        positive: (n,) scores of the positives, n >= 1.
        negative: (m,) scores of the negatives, m >= 1.

    Returns:
        AUROC in [0, 1]; 1.0 when every positive scores above every negative, 0.5 for chance.
    """
    a = _as_1d(positive, "positive")
    b = _as_1d(negative, "negative")
    greater = (a[:, None] > b[None, :]).mean()
    ties = (a[:, None] == b[None, :]).mean()
    return float(greater + 0.5 * ties)


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation of two paired samples (average ranks for ties).

    Args:
        x: (n,) first variable (e.g. failure rewards), n >= 2.
        y: (n,) second variable (e.g. the furthest progress stage each failure reached).

    Returns:
        Correlation in [−1, 1]; NaN when `y` is constant (the label carries no order to follow); 0.0 when only
        `x` is constant (a reward that does not distinguish ordered labels earns nothing).
    """
    a = _as_1d(x, "x", min_len=2)
    b = _as_1d(y, "y", min_len=2)
    if a.shape != b.shape:
        raise ValueError(f"x and y must pair up, got shapes {a.shape} and {b.shape}")
    if np.ptp(b) == 0.0:
        return float("nan")
    if np.ptp(a) == 0.0:
        return 0.0
    return float(spearmanr(a, b).statistic)


def stage_at_cuts(frame_stages: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The furthest stage reached within each growing prefix: s_j = max(stage[:L_j]).

    Args:
        frame_stages: (T,) int progress stage of every frame.
        lengths: (C,) prefix lengths in [1, T] (`reward_eval.prefix_lengths`).

    Returns:
        (C,) int64, non-decreasing when `lengths` is.
    """
    stages = np.asarray(frame_stages)
    cuts = np.asarray(lengths, dtype=np.int64)
    if stages.ndim != 1 or stages.size == 0:
        raise ValueError(f"frame_stages must be a non-empty 1-D array, got shape {stages.shape}")
    if cuts.ndim != 1 or cuts.size == 0 or cuts.min() < 1 or cuts.max() > stages.size:
        raise ValueError(f"lengths must be 1-D in [1, {stages.size}], got {cuts.tolist()}")
    return np.maximum.accumulate(stages.astype(np.int64))[cuts - 1]


def failure_curve_progress(curve: np.ndarray, stages: np.ndarray) -> tuple[float, float, float]:
    """Does a failure's progress curve rise while the robot makes progress and flatten once it stops?

    With k* the first cut at which the furthest stage s reaches its final value s_C (progress stops there):

        rho    = Spearman(curve, s) over the C cuts     (NaN if s is constant: no progress to follow)
        rise   = curve[k*] − curve[0]                  (NaN if s is constant; > 0 is good)
        after  = curve[C−1] − curve[k*]                 (NaN if k* = C−1; ≈ 0 is good, > 0 rewards time spent)

    Args:
        curve: (C,) progress scores of the failure's growing prefixes, C >= 2.
        stages: (C,) furthest stage within each prefix (`stage_at_cuts`), non-decreasing.

    Returns:
        (rho, rise, after).
    """
    c = _as_1d(curve, "curve", min_len=2)
    s = _as_1d(stages, "stages", min_len=2)
    if c.shape != s.shape:
        raise ValueError(f"curve and stages must pair up, got shapes {c.shape} and {s.shape}")
    if (np.diff(s) < 0).any():
        raise ValueError(f"stages must be non-decreasing (the furthest stage so far), got {s.tolist()}")
    k_star = int(np.argmax(s == s[-1]))
    progressed = s[-1] > s[0]
    rho = spearman(c, s) if progressed else float("nan")
    rise = float(c[k_star] - c[0]) if progressed else float("nan")
    after = float(c[-1] - c[k_star]) if k_star < c.size - 1 else float("nan")
    return rho, rise, after


# --- evaluating an encoder's prefix embeddings on a labelled set --------------------------------------------


def prefix_lengths(num_frames: int, num_cuts: int) -> np.ndarray:
    """Cut points L_j = ceil(j · T / C), j = 1..C: (C,) int64, non-decreasing, the last equal to T."""
    if num_frames < 1 or num_cuts < 1:
        raise ValueError(f"prefix_lengths needs num_frames >= 1 and num_cuts >= 1, got {num_frames}, {num_cuts}")
    return np.array([max(1, math.ceil(j * num_frames / num_cuts)) for j in range(1, num_cuts + 1)], dtype=np.int64)


def score_against_successes(
    references: np.ndarray, candidates: np.ndarray, config: RewardConfig
) -> np.ndarray:
    """Shaped progress of candidates, treated as failures, against a reference set of successes.

    Args:
        references: (M, D) whole-success embeddings of one task, M >= 1.
        candidates: (n, D) embeddings to score (trajectories or prefixes); normalised among themselves.
        config: Reward configuration (centres, distance, normalisation, sigmoid).

    Returns:
        (n,) progress in (0, sigmoid_scale).
    """
    m, n = references.shape[0], candidates.shape[0]
    embeddings = np.concatenate([references, candidates]).astype(np.float64)
    success = np.concatenate([np.ones(m, dtype=bool), np.zeros(n, dtype=bool)])
    zeros = np.zeros(m + n, dtype=np.int64)
    out = compute_progress_rewards(embeddings, success, zeros, zeros, config)
    return np.asarray(out.diagnostics.progress[m:], dtype=np.float64)


@dataclass
class EncoderReport:
    """Everything reward-eval computes for one encoder.

    Attributes:
        name: Encoder name.
        dim: Embedding width.
        metrics: sc, mono, mmd, js, smd (NaN where undefined).
        rewards: (N,) SRPO reward of each whole trajectory (successes 1.0).
        scores: (N,) shaped progress of each whole trajectory (NaN without a reference success).
        curves: (N, C) progress of the growing prefixes (NaN rows without a reference success).
        embed_seconds: Wall time of embedding all prefixes.
        extra: Further numbers (success/failure curve metrics, counts).
    """

    name: str
    dim: int
    metrics: dict[str, float]
    rewards: np.ndarray
    scores: np.ndarray
    curves: np.ndarray
    embed_seconds: float
    extra: dict[str, float] = field(default_factory=dict)


def _mean_metric(curves: np.ndarray, fn: Callable[[np.ndarray], float]) -> float:
    values = [fn(c) for c in curves if np.isfinite(c).all()]
    return float(np.mean(values)) if values else float("nan")


def _stage_correlations(
    rewards: np.ndarray, stages: np.ndarray, task_ids: np.ndarray, failures: np.ndarray
) -> tuple[float, float, dict[int, float]]:
    """Spearman(reward, furthest stage) over the failures: pooled over tasks (SRPO rewards are normalised per
    task, so they share a scale), the mean over tasks, and each task's (NaN where a task's stages are all equal).
    """
    def rho(mask: np.ndarray) -> float:
        return spearman(rewards[mask], stages[mask]) if mask.sum() >= 2 else float("nan")

    per_task = {int(t): rho(failures & (task_ids == t)) for t in np.unique(task_ids[failures])}
    finite = [v for v in per_task.values() if math.isfinite(v)]
    return rho(failures), float(np.mean(finite)) if finite else float("nan"), per_task


def _failure_curve_metrics(
    curves: np.ndarray, frame_stages: Sequence[np.ndarray], failures: np.ndarray
) -> tuple[float, float, float]:
    """Means over the failures of `failure_curve_progress` (rho, rise, after); each is averaged over the
    failures where it is defined. Curve cut j covers frames[:L_j], as in `embed_prefixes`."""
    values: list[tuple[float, float, float]] = []
    for i in np.flatnonzero(failures):
        lengths = prefix_lengths(frame_stages[i].shape[0], curves.shape[1])
        values.append(failure_curve_progress(curves[i], stage_at_cuts(frame_stages[i], lengths)))
    out = []
    for k in range(3):
        finite = [v[k] for v in values if math.isfinite(v[k])]
        out.append(float(np.mean(finite)) if finite else float("nan"))
    return out[0], out[1], out[2]


def evaluate_embeddings(
    prefix_embeddings: np.ndarray, data: LabelledSet, config: RewardConfig, name: str = "", seconds: float = 0.0
) -> EncoderReport:
    """Rewards, scores, curves and metrics from (N, C, D) prefix embeddings (see the module docstring)."""

    n, num_cuts, dim = prefix_embeddings.shape
    whole = prefix_embeddings[:, -1].astype(np.float64)
    rewards = compute_progress_rewards(whole, data.success, data.task_ids, data.task_ids, config).rewards
    scores = np.full(n, np.nan)
    curves = np.full((n, num_cuts), np.nan)
    for task in np.unique(data.task_ids):
        rows = np.flatnonzero(data.task_ids == task)
        refs = whole[rows[data.success[rows]]]
        if refs.shape[0] == 0:
            continue
        scores[rows] = score_against_successes(refs, whole[rows], config)
        flat = prefix_embeddings[rows].reshape(-1, dim).astype(np.float64)
        curves[rows] = score_against_successes(refs, flat, config).reshape(rows.size, num_cuts)
        if config.centres == "nearest" and refs.shape[0] >= 2:
            # A success is its own nearest centre (distance 0): its score would be the maximum and its curve
            # would end there by construction. Score each success leave-one-out instead (same task rows and
            # normalisation, its own embedding left out of the references).
            for k, at in enumerate(np.flatnonzero(data.success[rows])):  # k-th reference = the task's row `at`
                others = np.delete(refs, k, axis=0)
                scores[rows[at]] = score_against_successes(others, whole[rows], config)[at]
                curves[rows[at]] = score_against_successes(others, flat, config).reshape(rows.size, num_cuts)[at]

    referenced = np.isfinite(scores)
    succ, fail = data.success & referenced, ~data.success & referenced
    metrics = dict.fromkeys(METRIC_NAMES, float("nan"))
    if num_cuts >= 2:
        metrics["sc"] = _mean_metric(curves[succ], spearman_vs_time)
        metrics["mono"] = _mean_metric(curves[succ], monotonicity)
    if succ.any() and fail.any():
        metrics["mmd"] = mmd_rbf(scores[succ], scores[fail])
        metrics["js"] = js_divergence(scores[succ], scores[fail], num_bins=JS_BINS)
        metrics["auroc"] = auroc(scores[succ], scores[fail])
        if succ.sum() + fail.sum() >= 3:
            metrics["smd"] = standardized_mean_difference(scores[succ], scores[fail])
    extra = {
        "sc_failures": _mean_metric(curves[fail], spearman_vs_time) if num_cuts >= 2 else float("nan"),
        "mono_failures": _mean_metric(curves[fail], monotonicity) if num_cuts >= 2 else float("nan"),
        "score_mean_success": float(scores[succ].mean()) if succ.any() else float("nan"),
        "score_mean_failure": float(scores[fail].mean()) if fail.any() else float("nan"),
        "reward_mean_failure": float(rewards[~data.success].mean()) if (~data.success).any() else float("nan"),
        "num_success": float(succ.sum()),
        "num_failure": float(fail.sum()),
        "num_unreferenced": float((~referenced).sum()),
    }
    if data.stages is not None:
        metrics["stage_rho"], metrics["stage_rho_task"], per_task = _stage_correlations(
            rewards, data.stages, data.task_ids, fail
        )
        extra.update({f"stage_rho_task{t}": v for t, v in per_task.items()})
    if data.frame_stages is not None and num_cuts >= 2:
        rho, rise, after = _failure_curve_metrics(curves, data.frame_stages, fail)
        metrics["fail_curve_rho"], metrics["fail_rise"], metrics["fail_after"] = rho, rise, after
    return EncoderReport(name, dim, metrics, rewards, scores, curves, seconds, extra)
