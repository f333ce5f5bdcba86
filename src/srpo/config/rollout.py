"""Configuration of the rollout engine (`srpo.rollout`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from srpo.config.base import require, require_choice

StartMethod = Literal["spawn", "forkserver", "fork"]


@dataclass(frozen=True)
class RolloutConfig:
    """How episodes are spread over worker processes, what is rendered, and how faults are handled."""

    num_workers: int = 0
    """Worker processes that own and step the envs. 0 steps every env in the driver process (no parallelism,
    no step timeout; handy for tests and debugging)."""
    num_envs_per_worker: int = 8
    """Episodes a worker (or the driver, when num_workers=0) runs concurrently, each on its own env. The
    policy batch holds up to max(1, num_workers) · num_envs_per_worker episodes."""
    max_envs_per_worker: int = 0
    """Most envs a worker keeps constructed (over all tasks); beyond it the least recently used idle env is
    closed. 0 keeps every env (fine for the tabletop env; a LIBERO env holds a MuJoCo model and renderer)."""
    embed_stride: int | None = None
    """Record an embedding frame every this many env steps (plus the first frame after reset and the final
    frame). 1 reproduces the official per-step setting; None means once per action chunk (the policy's
    chunk_size), the cheap default on a CPU."""
    step_timeout_s: float = 30.0
    """A worker that takes longer than this per env step of a chunk is killed and restarted, and its
    episodes are re-run (only with num_workers >= 1: the driver cannot pre-empt itself)."""
    reset_timeout_s: float = 300.0
    """Time allowed for a reset, including constructing the task's env the first time (LIBERO: ~5 s)."""
    max_episode_retries: int = 3
    """How often one episode may fault (its env raised, its worker died or hung while running it) before
    `collect` gives up with an error. Episodes merely sharing a faulty worker are re-run without counting."""
    max_worker_restarts: int = 20
    """Most worker restarts within one `collect` call before giving up (guards against a crash loop)."""
    start_method: StartMethod = "spawn"
    """multiprocessing start method of the workers. "spawn" is safe with torch and MuJoCo/EGL in the driver;
    "fork" starts faster but inherits the driver's threads and GL contexts."""

    def __post_init__(self) -> None:
        require(self.num_workers >= 0, "rollout.num_workers", self.num_workers,
                "0 (in-process) or a positive number of worker processes")
        require(self.num_envs_per_worker >= 1, "rollout.num_envs_per_worker", self.num_envs_per_worker,
                "an int >= 1, e.g. 8")
        require(self.max_envs_per_worker == 0 or self.max_envs_per_worker >= self.num_envs_per_worker,
                "rollout.max_envs_per_worker", self.max_envs_per_worker,
                f"0 (unlimited) or an int >= rollout.num_envs_per_worker={self.num_envs_per_worker}")
        require(self.embed_stride is None or self.embed_stride >= 1, "rollout.embed_stride", self.embed_stride,
                "None (once per action chunk) or an int >= 1 (1 = every step, as in the official code)")
        require(self.step_timeout_s > 0, "rollout.step_timeout_s", self.step_timeout_s,
                "a float > 0, e.g. 30.0")
        require(self.reset_timeout_s > 0, "rollout.reset_timeout_s", self.reset_timeout_s,
                "a float > 0, e.g. 300.0")
        require(self.max_episode_retries >= 0, "rollout.max_episode_retries", self.max_episode_retries,
                "an int >= 0, e.g. 3")
        require(self.max_worker_restarts >= 0, "rollout.max_worker_restarts", self.max_worker_restarts,
                "an int >= 0, e.g. 20")
        require_choice(self.start_method, "rollout.start_method", get_args(StartMethod))
