"""`srpo record`: roll out a policy with the rollout engine and write the episodes as a LeRobot v3 dataset.

Successes and failures alike, sampled at a temperature, so the dataset has the mixed outcomes offline SRPO
learns from. Episodes are recorded in batches; each batch is appended as its own data/video files, so a killed
recording continues where it stopped when run again with the same arguments (batch b samples under torch seed
(seed, b), so the continued dataset is the one an uninterrupted run writes).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from srpo.build import apply_torch_threads, make_env_factory, make_policy, make_rollout_engine
from srpo.config.train import TrainConfig, config_to_dict
from srpo.errors import SrpoError
from srpo.evaluate import init_state_split
from srpo.lerobot import DatasetEpisode, LeRobotWriter, read_parquet_dir
from srpo.rollout import EpisodeRequest
from srpo.types import Trajectory

RECORD_INFO = "meta/srpo_record.json"


@dataclass
class RecordResult:
    """What a recording wrote: episodes and successes per task (the whole dataset, resumed parts included)."""

    root: Path
    num_episodes: dict[int, int]
    num_successes: dict[int, int]

    def table(self) -> str:
        lines = [f"{'task':>4} {'episodes':>8} {'success':>8}"]
        for t, n in self.num_episodes.items():
            lines.append(f"{t:>4} {n:>8} {self.num_successes[t] / max(n, 1):>8.3f}")
        return "\n".join(lines)


def trajectory_to_episode(traj: Trajectory, chunk_size: int, action_dim: int) -> DatasetEpisode:
    """One decision row per action chunk: the policy's image and state before it, the chunk as executed (padded
    by repeating its last executed action when the episode ended inside it).

    Args:
        traj: A rollout with C chunks, of which the executed tokens are marked in token_mask.
        chunk_size: Actions per chunk K.
        action_dim: Dimensions per action A.

    Returns:
        A DatasetEpisode with actions (C', K, A), C' the chunks with at least one executed action.
    """
    executed = traj.token_mask.reshape(traj.num_chunks, chunk_size, action_dim).all(axis=-1).sum(axis=-1)
    keep = executed > 0
    if int(executed.sum()) != traj.finish_step:
        raise RuntimeError(f"rollout {traj.rollout_id}: token mask covers {int(executed.sum())} actions, the episode "
                           f"executed {traj.finish_step}")
    starts = np.concatenate([[0], np.cumsum(executed)[:-1]])
    chunks = np.empty((int(keep.sum()), chunk_size, action_dim), np.float32)
    for row, c in enumerate(np.flatnonzero(keep)):
        n = int(executed[c])
        part = traj.actions[starts[c]:starts[c] + n]
        chunks[row, :n] = part
        chunks[row, n:] = part[-1]
    return DatasetEpisode(traj.rollout_id, traj.task_id, traj.instruction, traj.policy_images[keep],
                          traj.policy_states[keep].astype(np.float32), chunks, bool(traj.success), executed[keep])


def record_requests(cfg: TrainConfig, specs: list[Any], episodes_per_task: int, split: str) -> list[EpisodeRequest]:
    """Episode i of every task starts from the i-th init state of the split (cycling), tasks interleaved."""
    out: list[EpisodeRequest] = []
    for i in range(episodes_per_task):
        for spec in specs:
            ids = init_state_split(cfg, spec.num_init_states, split)
            out.append(EpisodeRequest(spec.task_id, ids[i % len(ids)], len(out), len(out)))
    return out


def record_dataset(
    cfg: TrainConfig,
    out: str | Path,
    episodes_per_task: int,
    temperature: float,
    split: str = "train",
    batch_episodes: int = 32,
    fps: int = 10,
    policy: Any = None,
    show_progress: bool = True,
) -> RecordResult:
    """Record `episodes_per_task` sampled episodes per task of cfg.env into a LeRobot v3 dataset at `out`.

    Args:
        cfg: Env, rollout and policy settings (policy.checkpoint is the policy recorded).
        out: Dataset folder; an existing recording with the same settings is continued.
        episodes_per_task: Episodes per task.
        temperature: Sampling temperature (> 0; the policy is never greedy here).
        split: Init states to start from: "train" (default) or "eval".
        batch_episodes: Episodes per rollout batch and per appended file.
        fps: Nominal frame rate stored in the dataset.
        policy: An already-built policy (tests); built from cfg.policy otherwise.
        show_progress: A progress bar over batches.
    """
    from tqdm import tqdm

    if episodes_per_task < 1 or batch_episodes < 1:
        raise SrpoError(f"--episodes-per-task ({episodes_per_task}) and --batch-episodes ({batch_episodes}) must "
                        "be >= 1")
    if temperature <= 0:
        raise SrpoError(f"--temperature {temperature} is invalid: set it to a float > 0, e.g. 1.0")
    root = Path(out)
    settings = {"episodes_per_task": episodes_per_task, "temperature": temperature, "split": split,
                "batch_episodes": batch_episodes, "seed": cfg.seed, "policy_checkpoint": cfg.policy.checkpoint}
    info_path = root / RECORD_INFO
    if info_path.exists():
        previous = json.loads(info_path.read_text())["settings"]
        if previous != settings:
            raise SrpoError(f"{root} was recorded with {previous}, not {settings}: continue with the same arguments "
                            "or choose a new folder")
    apply_torch_threads(cfg)  # as training ran: the thread count changes the logits (build.py)
    policy = policy if policy is not None else make_policy(cfg)
    factory = make_env_factory(cfg)
    specs = factory.task_specs()
    requests = record_requests(cfg, specs, episodes_per_task, split)
    writer = LeRobotWriter(root, fps=fps, robot_type=f"srpo-{cfg.env.kind}")
    done = writer.num_episodes
    if done % batch_episodes and done < len(requests):
        raise SrpoError(f"{root} holds {done} episodes, not a multiple of --batch-episodes {batch_episodes}")
    batches = range(done // batch_episodes, -(-len(requests) // batch_episodes))
    with make_rollout_engine(cfg, factory) as engine:
        for b in tqdm(batches, desc="srpo record", unit="batch", disable=not show_progress):
            torch.manual_seed(cfg.seed * 1_000_003 + b)
            trajs, _ = engine.collect(policy, requests[b * batch_episodes:(b + 1) * batch_episodes], temperature)
            trajs = sorted(trajs, key=lambda t: t.rollout_id)
            writer.add([trajectory_to_episode(t, policy.chunk_size, policy.action_dim) for t in trajs])
            info_path.write_text(json.dumps({"settings": settings, "config": config_to_dict(cfg)}, indent=2))
    return summarize_recording(root)


def summarize_recording(root: str | Path) -> RecordResult:
    """Episodes and successes per task of a recorded dataset (reads the episodes table, not the videos)."""
    root = Path(root)
    meta = read_parquet_dir(root, "meta/episodes/chunk-*/file-*.parquet", "episodes metadata")
    data = read_parquet_dir(root, "data/chunk-*/file-*.parquet", "data")
    task_of = dict(zip(data["episode_index"], data["task_index"], strict=True))
    counts: dict[int, int] = {}
    wins: dict[int, int] = {}
    for ep, ok in zip(meta["episode_index"], meta["success"], strict=True):
        t = int(task_of[ep])
        counts[t] = counts.get(t, 0) + 1
        wins[t] = wins.get(t, 0) + int(bool(ok))
    return RecordResult(root, dict(sorted(counts.items())), dict(sorted(wins.items())))
