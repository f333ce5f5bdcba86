"""Reward-quality metrics of the paper's "progress reward quality" table (SC, Mono, MMD, JS, SMD).

Conventional definitions (docs/reward.md): SC and Mono read one trajectory's progress curve (the reward of
growing prefixes); MMD, JS and SMD compare the reward distributions of successes and failures. Higher is better
for all five.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import jensenshannon
from scipy.stats import spearmanr


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
