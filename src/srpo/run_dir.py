"""The run directory of `srpo train`: its file names, the metrics log, atomic checkpoints and the saved config.

    runs/<name>/
        config.yaml            the config the run started with (`resume_config` reads it back)
        metrics.jsonl          one JSON record per step (`MetricsLog`, `read_metrics`); tensorboard/ mirrors it
        ckpt-000010/           policy/ (save_pretrained) + trainer_state.pt (optimizer, RNG, memory bank, step)
        reference_policy/      the frozen KL reference (only with algo.kl_coef > 0 or algo.log_reference_kl)
        steps/step_000010.npz  per-trajectory rewards, advantages, distances of a step (`srpo report`)
        steps/eval_000010.npz  per-episode outcomes of the held-out evaluation after that step (paired comparisons)
        videos/                labelled rollout videos

Everything here is file I/O with no knowledge of how a policy or an env is built.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from srpo.config.train import TrainConfig, config_to_dict, load_config, save_config
from srpo.errors import InputFileError
from srpo.manifest import write_manifest
from srpo.policies.base import TrainablePolicy
from srpo.resume import read_trainer_state as read_trainer_state_file
from srpo.types import Trajectory

log = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "ckpt-"
METRICS_FILE = "metrics.jsonl"
CONFIG_FILE = "config.yaml"
TRAINER_STATE_FILE = "trainer_state.pt"
PROVENANCE_FILE = "provenance.jsonl"
POLICY_DIR = "policy"
REFERENCE_DIR = "reference_policy"
STEPS_DIR = "steps"
VIDEOS_DIR = "videos"
PHASES = ("rollout", "embed", "reward", "update", "evaluate", "checkpoint", "videos")
"""The named phases of a training step; each is timed into the metrics as `time/<phase>_s`."""


# ---------------------------------------------------------------------------------------------------------------
# Metrics.


class MetricsLog:
    """Appends one JSON line per record to metrics.jsonl (flushed and fsynced: a kill -9 loses at most the
    record being written) and mirrors scalars to TensorBoard when available."""

    def __init__(self, run_dir: Path, tensorboard: bool) -> None:
        self.path = run_dir / METRICS_FILE
        self.writer: Any = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(run_dir / "tensorboard"))
            except ImportError:
                log.warning("tensorboard is not installed (pip install 'srpo[logging]'); metrics go to JSONL only")

    def truncate_after(self, step: int) -> None:
        """Drop records of steps after `step` (they belong to a step lost by a crash; it will be re-run)."""
        if not self.path.exists():
            return
        kept = []
        for line in self.path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a kill
            if int(record.get("step", 0)) <= step:
                kept.append(line)
        self.path.write_text("".join(k + "\n" for k in kept))

    def write(self, step: int, metrics: dict[str, float]) -> None:
        """Append `metrics` as the record of `step`."""
        record = {"step": step, **{k: _to_builtin(v) for k, v in metrics.items()}}
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())
        if self.writer is not None:
            for k, v in metrics.items():
                if isinstance(v, int | float) and math.isfinite(float(v)):
                    self.writer.add_scalar(k, float(v), step)
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """Every complete record of a run's metrics.jsonl, in order (a line cut by a kill is skipped)."""
    path = Path(run_dir) / METRICS_FILE
    records = []
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def _to_builtin(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, torch.Tensor):
        return v.item()
    return v


@contextmanager
def timed(metrics: dict[str, float], name: str) -> Iterator[None]:
    """Time the block into `metrics["time/<name>_s"]` (also when it raises)."""
    t0 = time.perf_counter()
    try:
        yield
    finally:
        metrics[f"time/{name}_s"] = time.perf_counter() - t0


# ---------------------------------------------------------------------------------------------------------------
# Checkpoints.


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first. Incomplete ones never carry the final name (written to a temp dir)."""
    return sorted(
        p for p in run_dir.glob(f"{CHECKPOINT_PREFIX}*") if p.is_dir() and p.name[len(CHECKPOINT_PREFIX) :].isdigit()
    )


def checkpoint_step(path: Path) -> int:
    """The step a ckpt-<step> directory holds."""
    return int(path.name[len(CHECKPOINT_PREFIX):])


def resumable_checkpoints(run_dir: Path) -> list[Path]:
    """The complete checkpoints, oldest first (for `srpo.resume.newest_intact`); removes temp dirs of
    checkpoints that a kill cut short."""
    ckpts = list_checkpoints(run_dir)
    if not ckpts:
        raise InputFileError(f"nothing to resume in {run_dir}: no complete {CHECKPOINT_PREFIX}* directory")
    for stale in run_dir.glob(".tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    return ckpts


def checkpoints_to_drop(steps: list[int], keep_last: int, keep_every: int = 0) -> list[int]:
    """The steps whose checkpoints pruning deletes: all but the newest `keep_last`, except multiples of
    `keep_every` (0 = no exception).

    Args:
        steps: Steps of the complete checkpoints on disk, in any order.
        keep_last: >= 1 newest checkpoints always kept.
        keep_every: >= 0; checkpoints at steps divisible by it are kept too (a run's history for evaluating
            after the run, `benchmarks/checkpoint_curve.py`).

    Returns:
        The steps to delete, ascending.
    """
    older = sorted(steps)[:-keep_last] if keep_last < len(steps) else []
    return [s for s in older if not (keep_every > 0 and s % keep_every == 0)]


def write_checkpoint(
    run_dir: Path, step: int, policy: TrainablePolicy, trainer_state: dict[str, Any], keep_last: int,
    keep_every: int = 0,
) -> Path:
    """Write ckpt-<step>/ atomically (temp dir + rename), then prune older ones (`checkpoints_to_drop`).

    Args:
        run_dir: The run directory.
        step: Completed steps; names the checkpoint.
        policy: Saved with `save_pretrained` under policy/.
        trainer_state: Everything else a resume needs (optimizer, RNG, memory bank), saved with torch.save.
        keep_last: Newest checkpoints to keep, this one included.
        keep_every: Also keep checkpoints at multiples of this step (0 = none).

    Returns:
        The checkpoint directory.
    """
    final = run_dir / f"{CHECKPOINT_PREFIX}{step:06d}"
    tmp = run_dir / f".tmp-{final.name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    policy.save_pretrained(tmp / POLICY_DIR)
    torch.save(trainer_state, tmp / TRAINER_STATE_FILE)
    write_manifest(tmp)  # sizes + checksums, verified before a resume loads anything
    _fsync_tree(tmp)
    if final.exists():
        shutil.rmtree(final)
    os.rename(tmp, final)
    by_step = {checkpoint_step(c): c for c in list_checkpoints(run_dir)}
    for old in checkpoints_to_drop(list(by_step), keep_last, keep_every):
        shutil.rmtree(by_step[old], ignore_errors=True)
    return final


def read_trainer_state(checkpoint: Path) -> dict[str, Any]:
    """The trainer state saved by `write_checkpoint`, loaded with weights_only=True (no pickled code runs).

    Raises:
        CheckpointCorruptError: The file is missing, damaged or not a trainer state.
    """
    return read_trainer_state_file(checkpoint / TRAINER_STATE_FILE)


def _fsync_tree(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())


# ---------------------------------------------------------------------------------------------------------------
# Config and per-step outputs.


def save_run_config(cfg: TrainConfig, run_dir: Path) -> None:
    """Write the run's config.yaml (read back by `resume_config`)."""
    save_config(cfg, run_dir / CONFIG_FILE)


def update_run_config(cfg: TrainConfig, run_dir: Path, step: int) -> Path | None:
    """On resume: make config.yaml the config the run continues with, keeping the one it ran with so far.

    A run resumed with overrides (`--set num_steps=40` to extend it) would otherwise keep a config.yaml that no
    longer describes it, and a later plain `--resume` would read the old values back. When `cfg` differs from
    config.yaml, the old file is kept as `config.step-<step>.yaml` (the config of steps up to `step`) and
    config.yaml is rewritten; provenance.jsonl records the command of each start. A second change at the same
    step (resumed again before any new checkpoint) keeps the first kept file: the steps up to `step` ran with it.

    Returns:
        The path the previous config was kept at, or None when nothing changed.
    """
    path = run_dir / CONFIG_FILE
    if path.exists() and yaml.safe_load(path.read_text()) == config_to_dict(cfg):
        return None
    kept = None
    if path.exists():
        kept = run_dir / f"config.step-{step:06d}.yaml"
        if not kept.exists():
            os.replace(path, kept)
        log.info("the run continues with a changed config: %s is rewritten; the config of its steps up to %d is %s",
                 path, step, kept)
    save_config(cfg, path)
    return kept


def resume_config(run_dir: str | Path, overrides: list[str] | None = None) -> TrainConfig:
    """The config a run was started with (its config.yaml), with optional overrides (e.g. more num_steps)."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.exists():
        raise InputFileError(f"{path} not found: {run_dir} is not an srpo run directory")
    return load_config(path, overrides=[*(overrides or []), f"run_dir={run_dir}"])


def write_step_arrays(
    run_dir: Path,
    step: int,
    trajs: Sequence[Trajectory],
    rewards: np.ndarray,
    advantages: np.ndarray,
    distance: np.ndarray,
) -> None:
    """Per-trajectory rewards of a step (for `srpo report`): a small .npz under steps/.

    Args:
        run_dir: The run directory.
        step: The step the arrays belong to.
        trajs: The N trajectories trained on.
        rewards: (N,) rewards.
        advantages: (N,) advantages.
        distance: (N,) distance to the nearest success centre (NaN where there is none).
    """
    out = run_dir / STEPS_DIR
    out.mkdir(exist_ok=True)
    np.savez(
        out / f"step_{step:06d}.npz",
        rewards=rewards,
        advantages=advantages,
        success=np.asarray([t.success for t in trajs]),
        task_ids=np.asarray([t.task_id for t in trajs]),
        group_ids=np.asarray([t.group_id for t in trajs]),
        finish_step=np.asarray([t.finish_step for t in trajs]),
        distance=distance,
    )


def write_eval_arrays(run_dir: Path, step: int, trajs: Sequence[Trajectory]) -> None:
    """Per-episode outcomes of the held-out evaluation after `step` (step 0: before training), so that two runs
    evaluated on the same init states can be compared episode by episode (McNemar, paired bootstrap) rather than
    by their counts alone: steps/eval_<step>.npz with task_ids, init_state_ids, success, finish_step, all (N,) in
    run order. A re-evaluation of the step (a resumed run) overwrites it.
    """
    out = run_dir / STEPS_DIR
    out.mkdir(exist_ok=True)
    np.savez(
        out / f"eval_{step:06d}.npz",
        task_ids=np.asarray([t.task_id for t in trajs], dtype=np.int64),
        init_state_ids=np.asarray([t.init_state_id for t in trajs], dtype=np.int64),
        success=np.asarray([bool(t.success) for t in trajs], dtype=bool),
        finish_step=np.asarray([t.finish_step for t in trajs], dtype=np.int64),
    )


def _read_npz_by_step(run_dir: Path, prefix: str) -> dict[int, dict[str, np.ndarray]]:
    """The arrays of every steps/<prefix>_<step>.npz, keyed by step; names whose step is not a number are skipped."""
    out = {}
    for path in sorted((run_dir / STEPS_DIR).glob(f"{prefix}_*.npz")):
        step = path.stem[len(prefix) + 1 :]
        if not step.isdigit():
            continue
        with np.load(path) as data:
            out[int(step)] = {k: data[k] for k in data.files}
    return out


def read_eval_arrays(run_dir: Path) -> dict[int, dict[str, np.ndarray]]:
    """Every evaluation's arrays written by `write_eval_arrays`, keyed by step (empty for runs made before them)."""
    return _read_npz_by_step(run_dir, "eval")


def read_step_arrays(run_dir: Path) -> dict[int, dict[str, np.ndarray]]:
    """Every step's arrays written by `write_step_arrays`, keyed by step."""
    return _read_npz_by_step(run_dir, "step")
