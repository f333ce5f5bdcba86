"""Trajectory-diversity metrics of end-effector paths (pure numpy, no torch).

The SRPO paper reports that its policies explore more varied trajectories than GRPO's. These functions
measure that on the end-effector paths of rollouts (`Trajectory.eef_pos`, (T, 3) per episode). Every metric is
computed over the K sampled paths of *one* initial state, then averaged over the initial states, so that the
spread of the layouts themselves (which is the same for every policy) does not count as behavioural diversity:

- workspace coverage: the fraction of the cells of a fixed G × G × G grid over the env's workspace box that at
  least one of the K paths visits;
- spread at fixed time fractions f: the root-mean-square distance of the K positions at step round(f · (T − 1))
  to their centroid (paths of different lengths are compared at the same fraction of their own duration);
- mean pairwise distance: each path resampled by linear interpolation to N points evenly spaced in normalised
  time, the distance between two paths the mean of their N point-to-point distances, averaged over the
  K (K − 1) / 2 pairs.

Runs of several seeds are summarised by the mean over runs and a percentile bootstrap 95 % interval of that mean.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import numpy as np

DEFAULT_TIME_FRACTIONS: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)
"""Fractions of an episode's duration at which `spread_at_fractions` compares positions."""


def _check_path(path: np.ndarray) -> np.ndarray:
    p = np.asarray(path, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 3 or p.shape[0] < 1:
        raise ValueError(f"an end-effector path must be (T >= 1, 3), got {p.shape}")
    return p


def resample_path(path: np.ndarray, num_points: int) -> np.ndarray:
    """Linear interpolation of a path at `num_points` times evenly spaced over its normalised duration.

    Point j lies at normalised time s_j = j / (num_points − 1) ∈ [0, 1], i.e. at fractional step s_j · (T − 1)
    of the original path, interpolated linearly between the two neighbouring steps.

    Args:
        path: (T, 3) positions, T >= 1 (a single position is repeated).
        num_points: N >= 2.

    Returns:
        (N, 3) float64 positions; the first and last equal the path's first and last.
    """
    p = _check_path(path)
    if num_points < 2:
        raise ValueError(f"num_points={num_points} must be >= 2")
    if len(p) == 1:
        return np.repeat(p, num_points, axis=0)
    src = np.linspace(0.0, 1.0, len(p))
    dst = np.linspace(0.0, 1.0, num_points)
    return np.stack([np.interp(dst, src, p[:, d]) for d in range(3)], axis=1)


def occupied_cells(
    paths: Sequence[np.ndarray], low: np.ndarray, high: np.ndarray, num_cells: int
) -> set[tuple[int, ...]]:
    """Cells of a G × G × G grid over the box [low, high] visited by any of the paths.

    Cell index along axis d: floor((x_d − low_d) / (high_d − low_d) · G), clipped to [0, G − 1] (a position on
    the upper face, or outside the box, counts in the nearest boundary cell).

    Args:
        paths: Each (T_i, 3).
        low: (3,) lower corner of the workspace box.
        high: (3,) upper corner, high > low on every axis.
        num_cells: G >= 1 cells per axis.

    Returns:
        The set of visited (i, j, k) cell indices.
    """
    lo, hi = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
    if lo.shape != (3,) or hi.shape != (3,) or not np.all(hi > lo):
        raise ValueError(f"workspace bounds must be two (3,) corners with high > low, got {lo} and {hi}")
    if num_cells < 1:
        raise ValueError(f"num_cells={num_cells} must be >= 1")
    cells: set[tuple[int, ...]] = set()
    for path in paths:
        p = _check_path(path)
        idx = np.clip(np.floor((p - lo) / (hi - lo) * num_cells), 0, num_cells - 1).astype(np.int64)
        cells.update(map(tuple, idx.tolist()))
    return cells


def workspace_coverage(paths: Sequence[np.ndarray], low: np.ndarray, high: np.ndarray, num_cells: int) -> float:
    """Fraction of the G³ cells of the workspace grid visited by the paths (see `occupied_cells`).

    Returns:
        |visited cells| / G³ in [0, 1].
    """
    return len(occupied_cells(paths, low, high, num_cells)) / float(num_cells**3)


def positions_at_fractions(path: np.ndarray, fractions: Sequence[float]) -> np.ndarray:
    """Positions of a path at fractions of its duration: step round(f · (T − 1)) for each f.

    Args:
        path: (T, 3).
        fractions: (M,) values in [0, 1].

    Returns:
        (M, 3) positions.
    """
    p = _check_path(path)
    f = np.asarray(fractions, dtype=np.float64)
    if f.ndim != 1 or np.any(f < 0) or np.any(f > 1):
        raise ValueError(f"time fractions must be a 1-D sequence in [0, 1], got {fractions}")
    return p[np.rint(f * (len(p) - 1)).astype(np.int64)]


def spread_at_fractions(paths: Sequence[np.ndarray], fractions: Sequence[float]) -> np.ndarray:
    """RMS distance of the paths' positions to their centroid at each time fraction.

    With x_k the position of path k at fraction f and x̄ = mean_k x_k:  spread(f) = √(mean_k ‖x_k − x̄‖²).

    Args:
        paths: K >= 1 paths, each (T_k, 3).
        fractions: (M,) values in [0, 1].

    Returns:
        (M,) spreads (0 for a single path).
    """
    if len(paths) < 1:
        raise ValueError("spread_at_fractions needs at least one path")
    pos = np.stack([positions_at_fractions(p, fractions) for p in paths])  # (K, M, 3)
    centred = pos - pos.mean(axis=0, keepdims=True)
    return np.sqrt((centred**2).sum(axis=2).mean(axis=0))


def mean_pairwise_distance(paths: Sequence[np.ndarray], num_points: int) -> float:
    """Mean distance between two paths, over all pairs; each path resampled to `num_points` (`resample_path`).

    d(a, b) = mean_j ‖a_j − b_j‖ over the N resampled points;  result = mean over the K (K − 1) / 2 pairs.

    Args:
        paths: K >= 2 paths, each (T_k, 3).
        num_points: N >= 2.

    Returns:
        The mean pairwise distance (world units).
    """
    if len(paths) < 2:
        raise ValueError(f"mean_pairwise_distance needs at least two paths, got {len(paths)}")
    res = [resample_path(p, num_points) for p in paths]
    dists = [float(np.linalg.norm(a - b, axis=1).mean()) for a, b in itertools.combinations(res, 2)]
    return float(np.mean(dists))


def bootstrap_ci(values: Sequence[float] | np.ndarray, num_resamples: int = 10_000, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `values` (e.g. one metric per seed).

    Draws `num_resamples` samples of len(values) with replacement, takes each one's mean, and returns the
    (1 − level)/2 and (1 + level)/2 quantiles of those means. With one value the interval is that value.

    Args:
        values: (R,) R >= 1 finite values.
        num_resamples: B >= 1 bootstrap samples.
        seed: Seed of the resampling (the interval is deterministic given it).
        level: Coverage in (0, 1).

    Returns:
        (low, high) with low <= mean(values) <= high up to resampling noise.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or len(v) < 1 or not np.all(np.isfinite(v)):
        raise ValueError(f"bootstrap_ci needs a non-empty 1-D array of finite values, got {values}")
    if not 0 < level < 1 or num_resamples < 1:
        raise ValueError(f"level={level} must lie in (0, 1) and num_resamples={num_resamples} be >= 1")
    if len(v) == 1:
        return float(v[0]), float(v[0])
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), size=(num_resamples, len(v)))].mean(axis=1)
    return float(np.quantile(means, (1 - level) / 2)), float(np.quantile(means, (1 + level) / 2))


def path_diversity(
    paths_by_state: Mapping[int, Sequence[np.ndarray]],
    low: np.ndarray,
    high: np.ndarray,
    num_cells: int,
    fractions: Sequence[float] = DEFAULT_TIME_FRACTIONS,
    num_points: int = 50,
) -> dict[str, float]:
    """The diversity metrics of one run: each computed over the paths of one initial state, then averaged.

    Args:
        paths_by_state: Initial-state key → its K >= 2 paths, each (T, 3).
        low: (3,) lower corner of the workspace box.
        high: (3,) upper corner.
        num_cells: G cells per axis of the coverage grid.
        fractions: Time fractions of the spread.
        num_points: Resampled points per path of the pairwise distance.

    Returns:
        `diversity/coverage`, `diversity/pairwise_distance`, and `diversity/spread_f<f>` per fraction (f in
        percent, e.g. `diversity/spread_f50`), each a mean over initial states.
    """
    if not paths_by_state:
        raise ValueError("path_diversity needs paths of at least one initial state")
    coverage, pairwise, spreads = [], [], []
    for key, paths in paths_by_state.items():
        if len(paths) < 2:
            raise ValueError(f"initial state {key}: {len(paths)} path(s); diversity needs at least 2 per state")
        coverage.append(workspace_coverage(paths, low, high, num_cells))
        pairwise.append(mean_pairwise_distance(paths, num_points))
        spreads.append(spread_at_fractions(paths, fractions))
    out = {"diversity/coverage": float(np.mean(coverage)), "diversity/pairwise_distance": float(np.mean(pairwise))}
    for f, s in zip(fractions, np.mean(spreads, axis=0), strict=True):
        out[f"diversity/spread_f{round(100 * f)}"] = float(s)
    return out


def bootstrap_difference_ci(
    values_a: Sequence[float] | np.ndarray,
    values_b: Sequence[float] | np.ndarray,
    num_resamples: int = 10_000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of mean(a) − mean(b), resampling the two groups independently.

    Args:
        values_a: (R_a,) R_a >= 1 finite values (e.g. SRPO seeds).
        values_b: (R_b,) R_b >= 1 finite values (e.g. GRPO seeds).
        num_resamples: B >= 1 bootstrap samples.
        seed: Seed of the resampling.
        level: Coverage in (0, 1).

    Returns:
        (low, high); a point when both groups hold one value.
    """
    a, b = np.asarray(values_a, dtype=np.float64), np.asarray(values_b, dtype=np.float64)
    for v in (a, b):
        if v.ndim != 1 or len(v) < 1 or not np.all(np.isfinite(v)):
            raise ValueError(f"bootstrap_difference_ci needs non-empty 1-D finite arrays, got {values_a}, {values_b}")
    if not 0 < level < 1 or num_resamples < 1:
        raise ValueError(f"level={level} must lie in (0, 1) and num_resamples={num_resamples} be >= 1")
    rng = np.random.default_rng(seed)
    diffs = (a[rng.integers(0, len(a), size=(num_resamples, len(a)))].mean(axis=1)
             - b[rng.integers(0, len(b), size=(num_resamples, len(b)))].mean(axis=1))
    return float(np.quantile(diffs, (1 - level) / 2)), float(np.quantile(diffs, (1 + level) / 2))
