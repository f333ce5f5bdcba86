"""The self-referential progress reward: pure functions over trajectory embeddings.

For every reference set (the successes of one task in the batch, by default):
  1. centres C  = StandardScaler + DBSCAN over the successes, centre = mean of each cluster's raw members
                  (noise ignored; the mean of all successes when no cluster forms)       [paper §3.1, official]
  2. d_i        = min_c ||h_i − c||  (or squared)                                         [paper eq. for d_i]
  3. d_norm_i   = normalise d over the reference set's failures (min–max or z-score)
  4. progress_i = scale · sigmoid(k · (offset − d_norm_i))   nearer ⇒ higher              [paper φ, negated]
  5. reward_i   = success_reward for a success, α · progress_i for a failure

This module knows no model, env or policy: embeddings and labels in, rewards out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from sklearn.cluster import DBSCAN

from srpo.config.reward import RewardConfig
from srpo.types import RewardDiagnostics, RewardOutput

REFERENCE_BATCH = "batch"
REFERENCE_MEMORY = "memory"
REFERENCE_EXTERNAL = "external"
REFERENCE_NONE = "none"


def validate_reward_inputs(
    embeddings: np.ndarray, success: np.ndarray, task_ids: np.ndarray, group_ids: np.ndarray
) -> None:
    """Raise ValueError naming the offending shapes or rows; never drop or fill anything.

    Args:
        embeddings: (N, D) float.
        success: (N,) bool-like.
        task_ids: (N,) int.
        group_ids: (N,) int.
    """
    if embeddings.ndim != 2:
        raise ValueError(f"embeddings must be 2-D (N, D), got shape {embeddings.shape}")
    n, d = embeddings.shape
    if n == 0:
        raise ValueError("empty batch: embeddings has 0 rows; pass at least one trajectory")
    if d == 0:
        raise ValueError(f"embeddings are zero-dimensional (shape {embeddings.shape}); D must be >= 1")
    for name, arr in (("success", success), ("task_ids", task_ids), ("group_ids", group_ids)):
        if arr.shape != (n,):
            raise ValueError(f"{name} has shape {arr.shape} but embeddings has {n} rows; expected ({n},)")
    if not np.issubdtype(embeddings.dtype, np.number):
        raise ValueError(f"embeddings must be numeric, got dtype {embeddings.dtype}")
    finite = np.isfinite(embeddings).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        shown = ", ".join(map(str, bad[:10])) + (" ..." if bad.size > 10 else "")
        raise ValueError(f"embeddings contain NaN or inf in {bad.size} row(s): {shown}")
    if success.dtype != bool and not np.isin(success, (0, 1)).all():
        bad = np.flatnonzero(~np.isin(success, (0, 1)))
        raise ValueError(f"success must be boolean (0/1); rows {bad[:10].tolist()} are not")
    # DBSCAN's eps is in standardised units and the group-of-one handling in advantages keys on group ids,
    # so ids must be integers, not floats that could alias.
    for name, arr in (("task_ids", task_ids), ("group_ids", group_ids)):
        if not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"{name} must be integers, got dtype {arr.dtype}")


@dataclass
class Centres:
    """Representative success centres of one reference set: (K, D) raw-space centres."""

    points: np.ndarray


def standard_scale(x: np.ndarray) -> np.ndarray:
    """scikit-learn's StandardScaler().fit_transform(x), without its per-call validation overhead.

    Population std; a feature whose std is below 10·float eps keeps scale 1 (sklearn's _handle_zeros_in_scale).
    tests/reward/test_progress.py checks equality with StandardScaler.

    Args:
        x: (M, D) float64.

    Returns:
        (M, D) standardised copy.
    """
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 10 * np.finfo(scale.dtype).eps] = 1.0
    return (x - mean) / scale


def success_whitening(successes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shift and scale that standardise embeddings with the statistics of a reference set (`reward.whiten`).

    Args:
        successes: (M, D) reference success embeddings, M >= 1.

    Returns:
        shift (D,) = the successes' mean; scale (D,) = their std (ddof 0) per dimension, floored at the median
        std over dimensions (1.0 when that median is 0, e.g. a single success: then only the shift applies).
        Whitened x = (x − shift) / scale.
    """
    x = np.asarray(successes, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"successes must be (M, D) with M >= 1, got {x.shape}")
    shift = x.mean(axis=0)
    std = x.std(axis=0)
    floor = float(np.median(std)) or 1.0
    return shift, np.maximum(std, floor)


def compute_centres(successes: np.ndarray, config: RewardConfig) -> Centres:
    """Centres of a reference set.

    Args:
        successes: (M, D) raw embeddings of the reference successes, M >= 1.
        config: Reward configuration (centres method, DBSCAN eps/min_samples).

    Returns:
        Centres with (K, D) points, K >= 1.
    """
    if successes.shape[0] == 0:
        raise ValueError("compute_centres needs at least one success")
    if config.centres == "nearest":
        return Centres(points=successes.astype(np.float64, copy=True))
    if config.centres == "mean":
        return Centres(points=successes.mean(axis=0, keepdims=True, dtype=np.float64))
    if config.centres != "dbscan":
        raise ValueError(f"unknown centres method {config.centres!r}: choose 'dbscan', 'nearest' or 'mean'")
    if successes.shape[0] < config.dbscan_min_samples:
        # DBSCAN cannot form a cluster: every point would be noise, so the fallback applies directly.
        return Centres(points=successes.mean(axis=0, keepdims=True, dtype=np.float64))
    x = successes.astype(np.float64, copy=False)
    scaled = standard_scale(x)
    # DBSCAN on the precomputed Euclidean distance matrix: the same clustering as metric="euclidean", but for
    # the few dozen successes of a task an (M, M) Gram matrix beats scikit-learn's neighbour search ~10×.
    sq = (scaled * scaled).sum(axis=1)
    pairwise = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2.0 * scaled @ scaled.T, 0.0))
    np.fill_diagonal(pairwise, 0.0)
    labels = DBSCAN(
        eps=config.dbscan_eps, min_samples=config.dbscan_min_samples, metric="precomputed"
    ).fit_predict(pairwise)
    cluster_labels = np.unique(labels[labels >= 0])
    if cluster_labels.size == 0:
        # All successes are noise: the official fallback is the mean of all successes.
        return Centres(points=x.mean(axis=0, keepdims=True))
    return Centres(points=np.stack([x[labels == k].mean(axis=0) for k in cluster_labels]))


def nearest_centre_distance(
    embeddings: np.ndarray, centres: Centres, squared: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Distance of each embedding to its nearest centre.

    Args:
        embeddings: (n, D) raw embeddings.
        centres: (K, D) centres.
        squared: Return squared Euclidean distance instead of Euclidean.

    Returns:
        distances (n,) float64 and index of the nearest centre (n,) int64.
    """
    x = embeddings.astype(np.float64, copy=False)
    c = centres.points
    if x.shape[0] * c.shape[0] * x.shape[1] <= 8_000_000:
        # Direct differences: exact, and for a few centres faster than a BLAS call (no thread wake-up).
        diff = x[:, None, :] - c[None, :, :]
        sq = np.einsum("nkd,nkd->nk", diff, diff)
    else:
        # ||x − c||² = ||x||² − 2 x·c + ||c||², clipped at 0 against round-off; bounded memory for many centres.
        sq = (x * x).sum(axis=1)[:, None] - 2.0 * x @ c.T + (c * c).sum(axis=1)[None, :]
        np.maximum(sq, 0.0, out=sq)
    idx = sq.argmin(axis=1)
    d_sq = sq[np.arange(sq.shape[0]), idx]
    return (d_sq if squared else np.sqrt(d_sq)), idx.astype(np.int64)


def normalize_distances(distances: np.ndarray, config: RewardConfig) -> np.ndarray:
    """Normalise the failures' distances of one reference set.

    Args:
        distances: (n,) distances of the failures, n >= 1.
        config: `normalization` ("minmax" → [0, 1], "zscore" → population z-score) and `degenerate_spread`.

    Returns:
        (n,) normalised distances. When the spread (max − min, or std) is below `degenerate_spread` — one
        failure, or all equidistant — every failure gets the neutral value (minmax 0.5, zscore 0).
    """
    if config.normalization == "minmax":
        lo, hi = distances.min(), distances.max()
        if hi - lo < config.degenerate_spread:
            return np.full_like(distances, 0.5, dtype=np.float64)
        return (distances - lo) / (hi - lo)
    if config.normalization == "zscore":
        std = distances.std()
        if std < config.degenerate_spread:
            return np.zeros_like(distances, dtype=np.float64)
        return (distances - distances.mean()) / std
    raise ValueError(f"unknown normalization {config.normalization!r}: choose 'minmax' or 'zscore'")


def progress_from_normalized(d_norm: np.ndarray, config: RewardConfig) -> np.ndarray:
    """scale · sigmoid(k · (offset − d_norm)): decreasing in distance, in (0, scale). Shape preserved."""
    z = config.sigmoid_steepness * (config.sigmoid_offset - d_norm)
    # Numerically stable logistic.
    out = np.empty_like(z, dtype=np.float64)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    ez = np.exp(z[~pos])
    out[~pos] = ez / (1.0 + ez)
    return config.sigmoid_scale * out


def compute_progress_rewards(
    embeddings: np.ndarray,
    success: np.ndarray,
    task_ids: np.ndarray,
    group_ids: np.ndarray,
    config: RewardConfig,
    external: Mapping[int, np.ndarray] | None = None,
    memory: Mapping[int, np.ndarray] | None = None,
) -> RewardOutput:
    """SRPO rewards for a batch of trajectories.

    Args:
        embeddings: (N, D) one world-model embedding per trajectory.
        success: (N,) bool, True where the env reported success.
        task_ids: (N,) int task of each trajectory.
        group_ids: (N,) int GRPO group of each trajectory.
        config: Reward configuration (see RewardConfig and docs/reward.md).
        external: Task id → (M, D) expert embeddings; required when config.reference_source == "external".
        memory: Task id → (M, D) successes of earlier batches (see SuccessMemory); consulted only for a
            reference set without any success of its own, and only when config.memory_size > 0.

    Returns:
        RewardOutput with rewards (N,) float64 in input order and per-trajectory diagnostics.

    Raises:
        ValueError: on an empty batch, mismatched lengths, zero-dimensional or non-finite embeddings (naming
            the rows), or a missing external reference set.
    """
    embeddings = np.asarray(embeddings)
    success = np.asarray(success)
    task_ids = np.asarray(task_ids)
    group_ids = np.asarray(group_ids)
    validate_reward_inputs(embeddings, success, task_ids, group_ids)
    success = success.astype(bool)
    embeddings = embeddings.astype(np.float64, copy=False)  # once, not per reference set
    n, dim = embeddings.shape
    if config.reference_source == "external" and external is None:
        raise ValueError("reward.reference_source='external' needs external expert embeddings per task")

    rewards = np.where(success, config.success_reward, config.no_reference_reward).astype(np.float64)
    distance = np.full(n, np.nan)
    d_norm = np.full(n, np.nan)
    progress = np.where(success, 1.0, 0.0)
    cluster_id = np.full(n, -1, dtype=np.int64)
    num_clusters = np.zeros(n, dtype=np.int64)
    reference_kind = np.full(n, REFERENCE_NONE, dtype=object)

    keys = task_ids if config.reference_scope == "task" else group_ids
    for key in np.unique(keys):
        rows = np.flatnonzero(keys == key)
        fail_rows = rows[~success[rows]]
        task = int(task_ids[rows[0]])
        reference, kind = _reference_set(embeddings, rows, success, task, dim, config, external, memory)
        if reference is None:
            continue
        points = embeddings[rows]
        if config.whiten:
            shift, scale = success_whitening(reference)
            reference, points = (reference - shift) / scale, (points - shift) / scale
        centres = compute_centres(reference, config)
        reference_kind[rows] = kind
        num_clusters[rows] = centres.points.shape[0]
        dist, idx = nearest_centre_distance(points, centres, squared=config.distance == "squared")
        distance[rows] = dist
        cluster_id[rows] = idx
        if fail_rows.size == 0:
            continue
        fail_dist = distance[fail_rows]
        d_norm[fail_rows] = normalize_distances(fail_dist, config)
        progress[fail_rows] = progress_from_normalized(d_norm[fail_rows], config)
        # α mixes progress with the failure's binary outcome (0).
        rewards[fail_rows] = config.alpha * progress[fail_rows] + (1.0 - config.alpha) * 0.0

    return RewardOutput(
        rewards=rewards,
        diagnostics=RewardDiagnostics(
            distance=distance,
            normalized_distance=d_norm,
            progress=progress,
            cluster_id=cluster_id,
            num_clusters=num_clusters,
            reference_kind=reference_kind,
        ),
    )


def _reference_set(
    embeddings: np.ndarray,
    rows: np.ndarray,
    success: np.ndarray,
    task: int,
    dim: int,
    config: RewardConfig,
    external: Mapping[int, np.ndarray] | None,
    memory: Mapping[int, np.ndarray] | None,
) -> tuple[np.ndarray | None, str]:
    """The (M, D) reference successes of one reference set and where they came from (None if there are none)."""
    if config.reference_source == "external":
        assert external is not None
        ref = external.get(task)
        if ref is None or len(ref) == 0:
            raise ValueError(f"no external reference embeddings for task {task}; pass at least one per task")
        ref = np.asarray(ref)
        _check_reference(ref, dim, f"external reference of task {task}")
        return ref, REFERENCE_EXTERNAL
    own = embeddings[rows[success[rows]]]
    if own.shape[0] > 0:
        return own, REFERENCE_BATCH
    if config.memory_size > 0 and memory is not None:
        ref = memory.get(task)
        if ref is not None and len(ref) > 0:
            ref = np.asarray(ref)
            _check_reference(ref, dim, f"memory bank of task {task}")
            return ref, REFERENCE_MEMORY
    return None, REFERENCE_NONE


def _check_reference(ref: np.ndarray, dim: int, what: str) -> None:
    if ref.ndim != 2 or ref.shape[1] != dim:
        raise ValueError(f"{what} has shape {ref.shape}; expected (M, {dim})")
    if not np.isfinite(ref).all():
        raise ValueError(f"{what} contains NaN or inf")


class SuccessMemory:
    """A bounded memory bank of earlier successes per task (FIFO), for tasks without a success in the batch.

    Off by default (RewardConfig.memory_size = 0). The paper notes SRPO needs at least one success per task to
    shape rewards (cold start); the bank lets a task keep its reference after a batch without a success.
    """

    def __init__(self, max_per_task: int) -> None:
        if max_per_task <= 0:
            raise ValueError(f"max_per_task must be > 0, got {max_per_task}")
        self.max_per_task = max_per_task
        self._bank: dict[int, np.ndarray] = {}

    def update(self, embeddings: np.ndarray, success: np.ndarray, task_ids: np.ndarray) -> None:
        """Append this batch's successes (N, D) per task, dropping the oldest beyond the bound."""
        success = np.asarray(success, dtype=bool)
        for task in np.unique(task_ids[success]):
            new = embeddings[success & (task_ids == task)].astype(np.float32)
            old = self._bank.get(int(task))
            merged = new if old is None else np.concatenate([old, new])
            self._bank[int(task)] = merged[-self.max_per_task :]

    def as_mapping(self) -> dict[int, np.ndarray]:
        """Task id → (M, D) stored successes."""
        return dict(self._bank)

    def state_dict(self) -> dict[str, np.ndarray]:
        """Arrays keyed "task_<id>", for checkpoints."""
        return {f"task_{k}": v for k, v in self._bank.items()}

    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
        self._bank = {int(k.removeprefix("task_")): np.asarray(v) for k, v in state.items()}
