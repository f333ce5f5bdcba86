"""`srpo score`: the SRPO reward and group advantages for a batch of embeddings from any RL stack.

Input: an .npz with `embeddings` (N, D), `success` (N,), `task_ids` (N,), `group_ids` (N,).
Output: one CSV row per trajectory in input order (reward, advantage, distance, normalised distance, cluster).
"""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

import numpy as np

from srpo.algo.advantages import group_advantages
from srpo.config.reward import RewardConfig
from srpo.errors import InputFileError
from srpo.reward.advantages import ScoredBatch, srpo_advantages
from srpo.reward.progress import validate_reward_inputs

REQUIRED_KEYS = ("embeddings", "success", "task_ids", "group_ids")
CSV_COLUMNS = (
    "index", "task_id", "group_id", "success", "reward", "advantage", "distance", "normalized_distance",
    "cluster_id", "num_clusters", "reference",
)


class BatchFileError(InputFileError, ValueError):
    """A batch file that is missing, unreadable, lacks a key, or holds arrays the reward rejects."""


def load_batch(path: str | Path) -> dict[str, np.ndarray]:
    """Read and validate the four arrays of a batch file; errors name the file, the missing key or bad rows.

    Raises:
        BatchFileError: Missing file, not an .npz (or truncated), missing keys, or invalid arrays.
    """
    path = Path(path)
    if not path.exists():
        raise BatchFileError(f"batch file {path} does not exist")
    if path.is_dir() or not zipfile.is_zipfile(path):  # also a bare .npy array: np.load would give no names
        raise BatchFileError(f"{path} is not a readable .npz file: not a zip archive of arrays (write one with "
                             "numpy.savez(path, embeddings=..., success=..., task_ids=..., group_ids=...))")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in REQUIRED_KEYS if k not in data.files]
            if missing:
                raise BatchFileError(
                    f"{path} lacks {', '.join(missing)}; an .npz needs {', '.join(REQUIRED_KEYS)} (found "
                    f"{', '.join(data.files) or 'nothing'})"
                )
            arrays = {k: np.asarray(data[k]) for k in REQUIRED_KEYS}
    except BatchFileError:
        raise
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as err:
        raise BatchFileError(f"{path} is not a readable .npz file: {err}") from err
    try:
        validate_reward_inputs(arrays["embeddings"], arrays["success"], arrays["task_ids"], arrays["group_ids"])
    except ValueError as err:
        raise BatchFileError(f"{path}: {err}") from err
    return arrays


def score_batch(arrays: dict[str, np.ndarray], config: RewardConfig, binary: bool = False) -> ScoredBatch:
    """Rewards (SRPO, or 0/1 when `binary`) and GRPO advantages of a validated batch (`srpo_advantages`)."""
    embeddings = None if binary else arrays["embeddings"]
    return srpo_advantages(embeddings, arrays["success"], arrays["task_ids"], arrays["group_ids"], config)


def to_csv(scored: ScoredBatch) -> str:
    """One row per trajectory, in input order, with the columns in CSV_COLUMNS."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    diag = scored.output.diagnostics if scored.output is not None else None
    for i in range(scored.rewards.size):
        writer.writerow([
            i,
            int(scored.task_ids[i]),
            int(scored.group_ids[i]),
            int(scored.success[i]),
            f"{scored.rewards[i]:.9g}",
            f"{scored.advantages[i]:.9g}",
            "" if diag is None or np.isnan(diag.distance[i]) else f"{diag.distance[i]:.9g}",
            "" if diag is None or np.isnan(diag.normalized_distance[i]) else f"{diag.normalized_distance[i]:.9g}",
            -1 if diag is None else int(diag.cluster_id[i]),
            0 if diag is None else int(diag.num_clusters[i]),
            "binary" if diag is None else str(diag.reference_kind[i]),
        ])
    return buf.getvalue()


def summary_table(scored: ScoredBatch) -> str:
    """A per-task table: trajectories, success rate, failure reward mean/min/max, clusters, and how far the
    advantages move from binary GRPO's (max |A − A_binary|; 0 means the shaping changed nothing)."""
    binary_adv = group_advantages(scored.success.astype(np.float64), scored.group_ids)
    lines = [
        f"{'task':>5} {'n':>5} {'success':>8} {'fail_r_mean':>12} {'fail_r_min':>11} {'fail_r_max':>11} "
        f"{'clusters':>8} {'max|A-A_bin|':>13}"
    ]
    for task in np.unique(scored.task_ids):
        rows = scored.task_ids == task
        fails = rows & ~scored.success
        fr = scored.rewards[fails]
        clusters = (
            int(scored.output.diagnostics.num_clusters[rows].max()) if scored.output is not None else 0
        )
        stats = f"{fr.mean():12.4f} {fr.min():11.4f} {fr.max():11.4f}" if fr.size else f"{'-':>12} {'-':>11} {'-':>11}"
        lines.append(
            f"{int(task):>5} {int(rows.sum()):>5} {scored.success[rows].mean():>8.3f} {stats} "
            f"{clusters:>8} {np.abs(scored.advantages[rows] - binary_adv[rows]).max():>13.4f}"
        )
    lines.append(
        f"{'all':>5} {scored.rewards.size:>5} {scored.success.mean():>8.3f}  reward mean {scored.rewards.mean():.4f}"
    )
    return "\n".join(lines)


def make_synthetic_batch(
    num_tasks: int = 10,
    num_groups_per_task: int = 6,
    group_size: int = 8,
    dim: int = 1408,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """A batch shaped like the official one, with embeddings that carry progress.

    Each task has a start embedding and a goal embedding; a rollout's embedding lies at its progress p along the
    path from start to goal plus noise. Successes sit at p ≈ 1 in two modes (two ways of solving the task);
    failures at a random p < 0.9. Used by the README's demo and the reward benchmark; not a substitute for
    real encoder embeddings (see `srpo reward-eval`).

    Returns:
        The four arrays of a batch file plus `progress` (N,), the ground-truth progress of each rollout.
    """
    rng = np.random.default_rng(seed)
    n = num_tasks * num_groups_per_task * group_size
    task_ids = np.repeat(np.arange(num_tasks), num_groups_per_task * group_size)
    group_ids = np.repeat(np.arange(num_tasks * num_groups_per_task), group_size)
    starts = rng.normal(size=(num_tasks, dim))
    goals = starts + rng.normal(size=(num_tasks, dim)) * 2.0
    mode_offset = rng.normal(size=(num_tasks, 2, dim)) * 0.3
    skill = rng.uniform(0.2, 0.8, size=num_tasks * num_groups_per_task)[group_ids]
    success = rng.random(n) < skill
    progress = np.where(success, 1.0, rng.uniform(0.0, 0.9, size=n))
    t = task_ids
    emb = starts[t] + progress[:, None] * (goals[t] - starts[t]) + rng.normal(size=(n, dim)) * 0.05
    mode = rng.integers(0, 2, size=n)
    emb[success] += mode_offset[t[success], mode[success]]
    return {
        "embeddings": emb.astype(np.float32),
        "success": success,
        "task_ids": task_ids.astype(np.int64),
        "group_ids": group_ids.astype(np.int64),
        "progress": progress,
    }
