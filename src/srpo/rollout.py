"""The rollout engine: turns (policy, episode requests) into `Trajectory` records, fast and fault-tolerant.

Design:
- Persistent env hosts (worker processes, Ray actors, or the driver itself) own the envs. A host constructs an
  env once per task and reuses it across episodes (reset from a numbered initial state); LIBERO needs ~5 s to
  build an env and ~0.2 s to reset one.
- The policy runs batched in the driver: each round it samples one action chunk for every active episode in
  one call, sends each episode its chunk, and the workers execute their chunks in parallel.
- Only what is consumed is rendered: the policy image once per chunk (at the chunk's last step, i.e. the start
  of the next chunk), embedding frames every `embed_stride` env steps plus the first frame after reset and the
  final frame.
- Faults: an env that raises is closed and rebuilt in its worker; a worker that dies or exceeds the step
  timeout is killed and restarted. Every episode that was running on the lost env or worker is re-run from
  the same initial state, so no trajectory is lost or duplicated; the counts go into `EpisodeStats`.

Every trajectory owns its arrays: they are stacked afresh from that episode's own lists (the official code let
the 8 rollouts of a prompt share one frame list).
"""

from __future__ import annotations

import abc
import bisect
import contextlib
import itertools
import multiprocessing as mp
import multiprocessing.connection as mpc
import signal
import time
import traceback
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, runtime_checkable

import numpy as np

from srpo.config.rollout import RolloutConfig
from srpo.envs.base import Env, EnvFactory, Observation, TaskSpec
from srpo.types import ACTION_DIM, EpisodeStats, Trajectory

if TYPE_CHECKING:
    # Only for annotations: worker processes import this module, and they should not pay for loading torch.
    from srpo.policies.base import Policy


class EpisodeRequest(NamedTuple):
    """One episode to roll out.

    Attributes:
        task_id: Task index (TaskSpec.task_id of the engine's factory).
        init_state_id: Fixed initial state to start from.
        group_id: GRPO group the rollout belongs to (copied into the Trajectory).
        rollout_id: Id of the rollout within the batch (copied into the Trajectory; must be unique).
    """

    task_id: int
    init_state_id: int
    group_id: int
    rollout_id: int


def make_group_requests(
    task_ids: Sequence[int], init_state_ids: Sequence[int], group_size: int, first_rollout_id: int = 0
) -> list[EpisodeRequest]:
    """GRPO requests: the prompt (task_ids[g], init_state_ids[g]) repeated `group_size` times as group g.

    Args:
        task_ids: (G,) task of each group.
        init_state_ids: (G,) initial state of each group.
        group_size: Rollouts per group (the official runs use 8).
        first_rollout_id: Rollout ids run consecutively from here.

    Returns:
        G · group_size requests, group-major.
    """
    if len(task_ids) != len(init_state_ids):
        raise ValueError(f"{len(task_ids)} task_ids but {len(init_state_ids)} init_state_ids: give one per group")
    if group_size < 1:
        raise ValueError(f"group_size={group_size} must be >= 1")
    rollout_ids = itertools.count(first_rollout_id)
    return [
        EpisodeRequest(int(task), int(init), group, next(rollout_ids))
        for group, (task, init) in enumerate(zip(task_ids, init_state_ids, strict=True))
        for _ in range(group_size)
    ]


class RolloutError(RuntimeError):
    """An episode kept failing (or workers kept dying) beyond the configured retry limits."""


@runtime_checkable
class RenderableEnv(Protocol):
    """Optional env capability: observe the current state without stepping.

    With it, an episode that succeeds between two strided embedding frames still records its final frame;
    without it, the last recorded frame of such an episode is the last strided one.
    """

    def render(self, render_policy: bool, render_embed: bool) -> Observation:
        """Render the images asked for at the current state."""
        ...


# ---------------------------------------------------------------------------------------------------------
# Messages between the scheduler and the env hosts (plain picklable records, the same for every transport).


@dataclass
class ResetJob:
    """Reset an env of `task_id` (constructing one if the host has none idle) to `init_state_id`."""

    key: int  # unique per episode attempt, so a result can never land on a re-run of its episode
    task_id: int
    init_state_id: int


@dataclass
class ChunkJob:
    """Execute one action chunk on the env of episode attempt `key`, rendering what the scheduler consumes."""

    key: int
    actions: np.ndarray  # (k, 7) float32
    start_step: int  # env steps the episode has executed before this chunk
    max_steps: int
    embed_stride: int


@dataclass
class StepResult:
    """What a job produced: the next policy input, the embedding frames it recorded, the outcome so far."""

    key: int
    image: np.ndarray | None  # policy image for the next chunk; None once the episode is done
    state: np.ndarray
    frames: list[np.ndarray]  # embedding frames recorded by this job, in time order
    num_steps: int  # env steps executed by this job (0 for a reset)
    success: bool
    done: bool
    constructed: bool = False  # the reset had to construct a new env
    # (num_steps, 3) end-effector position after each executed step; None if the env reports none at some step.
    eef_pos: np.ndarray | None = None


@dataclass
class JobError:
    """The env raised while running job `key` (the host closed and dropped that env)."""

    key: int
    message: str


Job = ResetJob | ChunkJob
JobResult = StepResult | JobError


def job_budget(job: Job, config: RolloutConfig) -> float:
    """Seconds a host may take to answer `job` before its worker counts as hung."""
    if isinstance(job, ResetJob):
        return config.reset_timeout_s
    return config.step_timeout_s * len(job.actions)


class EnvHost:
    """Owns envs and executes jobs; lives in a worker process, a Ray actor, or the driver (num_workers=0)."""

    def __init__(self, factory: EnvFactory, max_envs: int) -> None:
        self._factory = factory
        self._max_envs = max_envs
        self._idle: list[tuple[int, Env]] = []  # (task_id, env), least recently used first
        self._in_use: dict[int, tuple[int, Env]] = {}
        self._collect_id: int | None = None

    def run_jobs(self, collect_id: int, jobs: Sequence[Job]) -> list[JobResult]:
        """Execute `jobs` in order for collect `collect_id` (a new id first frees envs an aborted collect left)."""
        self.begin(collect_id)
        return [self.run(job) for job in jobs]

    def begin(self, collect_id: int) -> None:
        """Enter collect `collect_id`: on a new id, envs left in use by an aborted collect become idle (every
        episode resets)."""
        if collect_id == self._collect_id:
            return
        self._collect_id = collect_id
        self._idle.extend(self._in_use.values())
        self._in_use.clear()

    def run(self, job: Job) -> JobResult:
        """Execute one job; an env exception becomes a JobError and that env is closed and dropped."""
        try:
            if isinstance(job, ResetJob):
                return self._reset(job)
            return self._chunk(job)
        except Exception:
            self._discard(job.key)
            return JobError(job.key, traceback.format_exc())

    def close(self) -> None:
        for _, env in [*self._idle, *self._in_use.values()]:
            with contextlib.suppress(Exception):  # best effort: a broken env must not block shutdown
                env.close()
        self._idle.clear()
        self._in_use.clear()

    def _reset(self, job: ResetJob) -> StepResult:
        env, constructed = self._take_env(job.task_id)
        self._in_use[job.key] = (job.task_id, env)
        obs = env.reset(job.init_state_id)
        if obs.image is None or obs.embed_frame is None:
            raise RuntimeError(f"task {job.task_id}: reset must render both the policy image and the embed frame")
        return StepResult(job.key, obs.image, obs.state, [obs.embed_frame], 0, False, False, constructed)

    def _chunk(self, job: ChunkJob) -> StepResult:
        task_id, env = self._in_use[job.key]
        frames: list[np.ndarray] = []
        eef: list[np.ndarray] | None = []  # None once a step reports no end-effector position
        step = job.start_step
        num_actions = len(job.actions)
        obs: Observation | None = None
        done = False
        for i in range(num_actions):
            step += 1
            at_horizon = step >= job.max_steps
            obs = env.step(
                job.actions[i],
                render_policy=i == num_actions - 1 and not at_horizon,
                render_embed=step % job.embed_stride == 0 or at_horizon,
            )
            if obs.embed_frame is not None:
                frames.append(obs.embed_frame)
            if eef is not None and obs.eef_pos is None:
                eef = None
            elif eef is not None:
                eef.append(np.asarray(obs.eef_pos, dtype=np.float32))
            if obs.success or at_horizon:
                done = True
                if obs.embed_frame is None and isinstance(env, RenderableEnv):
                    final = env.render(False, True).embed_frame
                    if final is not None:
                        frames.append(final)
                break
        assert obs is not None  # chunks are never empty
        path = np.stack(eef) if eef else None
        if done:
            del self._in_use[job.key]
            self._idle.append((task_id, env))
            return StepResult(job.key, None, obs.state, frames, step - job.start_step, obs.success, True,
                              eef_pos=path)
        if obs.image is None:
            raise RuntimeError(f"task {task_id}: step(render_policy=True) returned no policy image")
        return StepResult(job.key, obs.image, obs.state, frames, step - job.start_step, False, False, eef_pos=path)

    def _take_env(self, task_id: int) -> tuple[Env, bool]:
        for pos in range(len(self._idle) - 1, -1, -1):  # most recently used first
            if self._idle[pos][0] == task_id:
                return self._idle.pop(pos)[1], False
        while self._max_envs and self._idle and len(self._idle) + len(self._in_use) >= self._max_envs:
            self._idle.pop(0)[1].close()
        return self._factory.make(task_id), True

    def _discard(self, key: int) -> None:
        entry = self._in_use.pop(key, None)
        if entry is not None:
            with contextlib.suppress(Exception):  # the env already failed; closing it is best effort
                entry[1].close()


def _worker_main(conn: Connection, factory: EnvFactory, max_envs: int) -> None:
    """Worker process loop: receive (collect_id, jobs), answer one result per job, in order."""
    # Ctrl-C reaches the whole process group; the driver decides how to shut workers down.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    host = EnvHost(factory, max_envs)
    try:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                break  # the driver is gone
            if message is None:
                break
            collect_id, jobs = message
            host.begin(collect_id)
            for job in jobs:
                conn.send(host.run(job))
    finally:
        host.close()


# ---------------------------------------------------------------------------------------------------------
# Worker transports: how the scheduler reaches its env hosts.


@dataclass
class WorkerSlot:
    """The scheduler's view of one env host: which episodes run there and the jobs it owes answers for.

    Attributes:
        index: Position among the engine's workers.
        active: Episode indices running on this worker.
        idle_tasks: Heuristic mirror of the host's idle envs per task (prefer episodes that need no construction).
        queued: Jobs of the coming round, handed to the transport by `WorkerTransport.run_round`.
        outstanding: Jobs sent and not yet answered, in execution order.
        deadline: `time.monotonic()` by which the head of `outstanding` (or the whole call) must have answered.
    """

    index: int
    active: set[int] = field(default_factory=set)
    idle_tasks: Counter[int] = field(default_factory=Counter)
    queued: list[Job] = field(default_factory=list)
    outstanding: deque[Job] = field(default_factory=deque)
    deadline: float = 0.0


ResultHandler = Callable[[WorkerSlot, JobResult], None]
"""Called by a transport with each answer, in the worker's job order."""
FaultHandler = Callable[[WorkerSlot, "int | None", str, str], None]
"""Called by a transport when a worker died or hung: (worker, key of the job to blame or None, reason, counter
name). The scheduler then kills and restarts the worker through the transport and re-runs its episodes."""


class WorkerTransport(abc.ABC):
    """Starts, feeds and stops the env hosts behind a `RolloutEngine`.

    Implementations: `InProcessTransport` (one host in the driver), `ProcessTransport` (worker processes) and
    `srpo.distributed.ray_rollout.RayTransport` (Ray actors). All run the same `EnvHost` and exchange the same
    messages (`Job` → `JobResult`); only where the host lives and how jobs reach it differ.
    """

    num_workers: int
    """How many env hosts the engine schedules over."""

    @abc.abstractmethod
    def start(self, worker: WorkerSlot) -> None:
        """Create (or re-create after `kill`) the worker's host."""

    @abc.abstractmethod
    def kill(self, worker: WorkerSlot) -> None:
        """End the worker's host at once (it may be hung) and forget its unanswered jobs."""

    @abc.abstractmethod
    def run_round(
        self, workers: Sequence[WorkerSlot], collect_id: int, on_result: ResultHandler, on_fault: FaultHandler
    ) -> None:
        """Send every worker its `queued` jobs; return once each was answered (`on_result`) or its worker
        faulted (`on_fault`)."""

    @abc.abstractmethod
    def close(self, workers: Sequence[WorkerSlot]) -> None:
        """Shut every host down, closing its envs. Called once."""

    def pids(self, workers: Sequence[WorkerSlot]) -> list[int]:
        """Process ids of the hosts (empty when they live in the driver)."""
        return []


class InProcessTransport(WorkerTransport):
    """One `EnvHost` in the driver (rollout.num_workers = 0): jobs run synchronously, nothing can hang apart."""

    def __init__(self, factory: EnvFactory, config: RolloutConfig) -> None:
        self.num_workers = 1
        self._factory = factory
        self._config = config
        self.host: EnvHost | None = None

    def start(self, worker: WorkerSlot) -> None:
        self.host = EnvHost(self._factory, self._config.max_envs_per_worker)

    def kill(self, worker: WorkerSlot) -> None:
        worker.outstanding.clear()

    def run_round(
        self, workers: Sequence[WorkerSlot], collect_id: int, on_result: ResultHandler, on_fault: FaultHandler
    ) -> None:
        assert self.host is not None
        for worker in workers:
            jobs, worker.queued = worker.queued, []
            self.host.begin(collect_id)
            for job in jobs:
                on_result(worker, self.host.run(job))

    def close(self, workers: Sequence[WorkerSlot]) -> None:
        if self.host is not None:
            self.host.close()


class ProcessTransport(WorkerTransport):
    """One worker process per slot, each running an `EnvHost`; jobs and results travel over a pipe.

    Results stream back one per job, so each job has its own deadline (`job_budget`); a worker whose process
    died or whose head job overran is reported to the scheduler as a fault.
    """

    def __init__(self, factory: EnvFactory, config: RolloutConfig) -> None:
        self.num_workers = config.num_workers
        self._factory = factory
        self._config = config
        self._context: Any = mp.get_context(config.start_method)
        self._processes: dict[int, Any] = {}  # multiprocessing Process (context-specific type)
        self._conns: dict[int, Connection] = {}

    def start(self, worker: WorkerSlot) -> None:
        parent, child = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=_worker_main,
            args=(child, self._factory, self._config.max_envs_per_worker),
            name=f"srpo-rollout-{worker.index}",
            daemon=True,
        )
        process.start()
        child.close()
        self._processes[worker.index], self._conns[worker.index] = process, parent

    def kill(self, worker: WorkerSlot) -> None:
        worker.outstanding.clear()
        process = self._processes.get(worker.index)
        if process is not None and process.is_alive():
            process.kill()
            process.join(timeout=5.0)
        conn = self._conns.pop(worker.index, None)
        if conn is not None:
            conn.close()

    def run_round(
        self, workers: Sequence[WorkerSlot], collect_id: int, on_result: ResultHandler, on_fault: FaultHandler
    ) -> None:
        for worker in workers:
            jobs, worker.queued = worker.queued, []
            if not jobs:
                continue
            worker.outstanding = deque(jobs)
            worker.deadline = time.monotonic() + job_budget(jobs[0], self._config)
            try:
                self._conns[worker.index].send((collect_id, jobs))
            except (OSError, ValueError, KeyError):
                on_fault(worker, None, "its pipe broke (the process died)", "rollout/num_worker_crashes")
        while True:
            busy = [w for w in workers if w.outstanding]
            if not busy:
                return
            timeout = max(0.0, min(w.deadline for w in busy) - time.monotonic())
            waitables: list[Any] = ([self._conns[w.index] for w in busy]
                                    + [self._processes[w.index].sentinel for w in busy])
            mpc.wait(waitables, timeout=timeout)
            for worker in busy:
                self._drain(worker, on_result, on_fault)

    def _drain(self, worker: WorkerSlot, on_result: ResultHandler, on_fault: FaultHandler) -> None:
        """Take every available result of `worker`; detect its death or a missed deadline."""
        conn = self._conns[worker.index]
        while worker.outstanding:
            try:
                if not conn.poll():
                    break
                result = conn.recv()
            except (EOFError, OSError):
                break  # died mid-message; handled below as a crash
            job = worker.outstanding.popleft()
            if result.key != job.key:
                raise RuntimeError(f"worker {worker.index} answered job {result.key}, expected {job.key}")
            if worker.outstanding:
                worker.deadline = time.monotonic() + job_budget(worker.outstanding[0], self._config)
            on_result(worker, result)
        if not worker.outstanding:
            return
        process = self._processes[worker.index]
        head = worker.outstanding[0]
        if not process.is_alive():
            on_fault(worker, head.key, f"its process died (exit code {process.exitcode})",
                     "rollout/num_worker_crashes")
        elif time.monotonic() > worker.deadline:
            what = "reset" if isinstance(head, ResetJob) else f"{len(head.actions)}-step chunk"
            on_fault(worker, head.key,
                     f"it exceeded the timeout of a {what} ({job_budget(head, self._config):.1f} s)",
                     "rollout/num_worker_timeouts")

    def close(self, workers: Sequence[WorkerSlot]) -> None:
        for worker in workers:
            conn = self._conns.get(worker.index)
            try:
                if conn is not None:
                    conn.send(None)
            except (OSError, ValueError):
                pass
            process = self._processes.get(worker.index)
            if process is not None:
                process.join(timeout=5.0)
            self.kill(worker)

    def pids(self, workers: Sequence[WorkerSlot]) -> list[int]:
        return [int(self._processes[w.index].pid) for w in workers if w.index in self._processes]


# ---------------------------------------------------------------------------------------------------------
# The scheduler.


class SentChunk(NamedTuple):
    """An action chunk sent to an episode's host and not yet answered: what the policy saw and chose."""

    image: np.ndarray  # (H, W, 3) uint8 policy image
    state: np.ndarray  # (S,) proprioception
    tokens: np.ndarray  # (L,) int64 action tokens
    log_probs: np.ndarray  # (L,) float32 their log-probs at the sampling temperature
    actions: np.ndarray  # (chunk_size, 7) float32 decoded actions


@dataclass
class _Episode:
    """Scheduler-side state of one request while it runs."""

    index: int
    request: EpisodeRequest
    spec: TaskSpec
    key: int = -1
    worker: int = -1
    num_restarts: int = 0
    num_faults: int = 0
    last_error: str = ""
    image: np.ndarray | None = None  # policy input for the next chunk
    state: np.ndarray | None = None
    chunk: SentChunk | None = None
    frames: list[np.ndarray] = field(default_factory=list)
    policy_images: list[np.ndarray] = field(default_factory=list)
    policy_states: list[np.ndarray] = field(default_factory=list)
    tokens: list[np.ndarray] = field(default_factory=list)
    log_probs: list[np.ndarray] = field(default_factory=list)
    masks: list[np.ndarray] = field(default_factory=list)
    actions: list[np.ndarray] = field(default_factory=list)
    eef_pos: list[np.ndarray] = field(default_factory=list)
    eef_complete: bool = True  # every executed step so far reported an end-effector position
    num_steps: int = 0

    def clear(self) -> None:
        """Forget everything of the current attempt (before a re-run)."""
        self.key = self.worker = -1
        self.image = self.state = None
        self.chunk = None
        for buffer in (self.frames, self.policy_images, self.policy_states, self.tokens, self.log_probs,
                       self.masks, self.actions, self.eef_pos):
            buffer.clear()
        self.eef_complete = True
        self.num_steps = 0


@dataclass
class Collection:
    """The state of one `RolloutEngine.collect` call: its episodes, their results and counts.

    Attributes:
        collect_id: Distinguishes this call's jobs from an aborted earlier one's (hosts free stale envs).
        episodes: One scheduler record per request, in request order.
        pending: Episode indices awaiting a (re-)start, kept sorted.
        out: Finished trajectories by episode index (None while running).
        stats: The counts returned with the batch.
        counts: Counts and seconds for stats.extra.
        num_worker_restarts: Worker restarts so far in this call (bounded by rollout.max_worker_restarts).
        on_episode: Called with each trajectory as it finishes (progress bars), in finishing order.
    """

    collect_id: int
    episodes: list[_Episode]
    pending: list[int]
    out: list[Trajectory | None]
    stats: EpisodeStats
    counts: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    num_worker_restarts: int = 0
    on_episode: Callable[[Trajectory], None] | None = None


class RolloutEngine:
    """Rolls out batches of episodes with a batched policy and persistent env hosts.

    The engine is the scheduler: it assigns episodes to workers, samples one action chunk per ready episode in
    one policy call per round, turns answers into trajectories and re-runs the episodes of faulted workers. A
    `WorkerTransport` moves the jobs: worker processes by default, one in-process host with
    rollout.num_workers = 0, Ray actors with `srpo.distributed.ray_rollout.RayRolloutEngine`.

    Usage:
        with RolloutEngine(TabletopEnvFactory(), RolloutConfig(num_workers=2)) as engine:
            trajectories, stats = engine.collect(policy, make_group_requests([0, 1], [3, 7], 8), 1.0)
    """

    def __init__(
        self, env_factory: EnvFactory, config: RolloutConfig | None = None, transport: WorkerTransport | None = None
    ) -> None:
        self.factory = env_factory
        self.config = config or RolloutConfig()
        self.specs = env_factory.task_specs()
        self._keys = itertools.count()
        self._collect_ids = itertools.count(1)
        self._closed = False
        self._collection: Collection | None = None  # the collect call in progress
        if transport is None:
            transport = (InProcessTransport(env_factory, self.config) if self.config.num_workers == 0
                         else ProcessTransport(env_factory, self.config))
        self.transport = transport
        self._workers = [WorkerSlot(i) for i in range(transport.num_workers)]
        for worker in self._workers:
            transport.start(worker)

    def __enter__(self) -> RolloutEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def worker_pids(self) -> list[int]:
        """Process ids of the env hosts (empty when they live in the driver)."""
        return self.transport.pids(self._workers)

    def collect(
        self,
        policy: Policy,
        requests: Sequence[EpisodeRequest],
        temperature: float,
        greedy: bool = False,
        on_episode: Callable[[Trajectory], None] | None = None,
    ) -> tuple[list[Trajectory], EpisodeStats]:
        """Roll out every request to success or horizon.

        Args:
            policy: Sampled once per round for all episodes awaiting an action chunk.
            requests: Episodes to run; see `make_group_requests`.
            temperature: Sampling temperature passed to the policy.
            greedy: Take the arg-max bins (evaluation).
            on_episode: Called with each trajectory once it has finished, in finishing order (e.g. a progress
                bar's update); an episode re-run after a fault is reported once, when its re-run finishes.

        Returns:
            The trajectories in request order, and the batch's counts. `stats.extra` holds
            rollout/success_rate, rollout/num_policy_calls, rollout/num_env_constructions,
            rollout/num_env_errors, rollout/num_worker_timeouts, rollout/num_worker_crashes,
            rollout/num_discarded_env_steps, time/rollout_policy_s and time/rollout_env_s.

        Raises:
            RolloutError: an episode faulted more than `max_episode_retries` times, or workers were restarted
                more than `max_worker_restarts` times in this call.
        """
        if self._closed:
            raise RuntimeError("RolloutEngine.collect called after close()")
        if policy.action_dim != ACTION_DIM:
            raise ValueError(f"policy.action_dim={policy.action_dim}, but envs take {ACTION_DIM}-D actions")
        self._validate(requests)
        stride = self.config.embed_stride or policy.chunk_size
        episodes = [_Episode(i, r, self.specs[r.task_id]) for i, r in enumerate(requests)]
        col = Collection(next(self._collect_ids), episodes, list(range(len(episodes))), [None] * len(episodes),
                         EpisodeStats(num_episodes=len(requests)), on_episode=on_episode)
        self._collection = col
        try:
            while col.pending or any(w.active for w in self._workers):
                self._assign(col)
                running = sorted(i for w in self._workers for i in w.active)
                ready = [episodes[i] for i in running if episodes[i].image is not None and episodes[i].chunk is None]
                if ready:
                    self._sample_chunks(col, policy, ready, temperature, greedy, stride)
                start = time.perf_counter()
                self.transport.run_round(self._workers, col.collect_id, self._handle, self._fault)
                col.counts["time/rollout_env_s"] += time.perf_counter() - start
        except BaseException:
            self._abort()
            raise
        finally:
            self._collection = None  # drop the batch's frames
        trajectories = [t for t in col.out if t is not None]
        assert len(trajectories) == len(requests)
        stats = col.stats
        stats.num_env_steps = sum(t.finish_step for t in trajectories)
        stats.extra = {
            "rollout/success_rate": float(np.mean([t.success for t in trajectories])) if trajectories else 0.0,
            **{k: float(col.counts[k]) for k in (
                "rollout/num_policy_calls", "rollout/num_env_constructions", "rollout/num_env_errors",
                "rollout/num_worker_timeouts", "rollout/num_worker_crashes", "rollout/num_discarded_env_steps",
                "time/rollout_policy_s", "time/rollout_env_s")},
        }
        return trajectories, stats

    def close(self) -> None:
        """Shut the env hosts down and close every env. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.transport.close(self._workers)

    def _sample_chunks(
        self, col: Collection, policy: Policy, ready: list[_Episode], temperature: float, greedy: bool, stride: int
    ) -> None:
        """One batched policy call for every episode awaiting a chunk; queue each chunk on its worker."""
        # Imported here, not at module level: worker processes import this module and should not load torch.
        from srpo.policies.base import PolicyInput

        batch = PolicyInput(
            images=np.stack([ep.image for ep in ready]),  # type: ignore[misc]
            states=np.stack([ep.state for ep in ready]),  # type: ignore[misc]
            instructions=[ep.spec.instruction for ep in ready],
        )
        start = time.perf_counter()
        sample = policy.sample(batch, temperature, greedy)
        col.counts["time/rollout_policy_s"] += time.perf_counter() - start
        col.counts["rollout/num_policy_calls"] += 1
        actions_shape = (len(ready), policy.chunk_size, ACTION_DIM)
        tokens_shape = (len(ready), policy.chunk_size * ACTION_DIM)
        if sample.actions.shape != actions_shape or not sample.tokens.shape == sample.log_probs.shape == tokens_shape:
            raise ValueError(
                f"policy.sample returned actions {sample.actions.shape}, tokens {sample.tokens.shape} and "
                f"log_probs {sample.log_probs.shape}; expected {actions_shape}, {tokens_shape} and {tokens_shape}"
            )
        for j, ep in enumerate(ready):
            assert ep.image is not None and ep.state is not None
            actions = np.asarray(sample.actions[j], dtype=np.float32)
            ep.chunk = SentChunk(ep.image, ep.state, sample.tokens[j], sample.log_probs[j], actions)
            self._workers[ep.worker].queued.append(
                ChunkJob(ep.key, actions, ep.num_steps, ep.spec.max_steps, stride)
            )

    # -- scheduling ----------------------------------------------------------------------------------------

    def _validate(self, requests: Sequence[EpisodeRequest]) -> None:
        seen: set[int] = set()
        for r in requests:
            if not 0 <= r.task_id < len(self.specs):
                raise ValueError(f"request {r}: task_id outside [0, {len(self.specs)})")
            if not 0 <= r.init_state_id < self.specs[r.task_id].num_init_states:
                raise ValueError(
                    f"request {r}: init_state_id outside [0, {self.specs[r.task_id].num_init_states})"
                )
            if r.rollout_id in seen:
                raise ValueError(f"request {r}: rollout_id {r.rollout_id} is not unique in the batch")
            seen.add(r.rollout_id)

    def _assign(self, col: Collection) -> None:
        """Give pending episodes to workers with free capacity, one per worker per pass (load balance),
        preferring an episode whose task already has an idle env on that worker (no construction)."""
        capacity = self.config.num_envs_per_worker
        progress = True
        while col.pending and progress:
            progress = False
            for worker in self._workers:
                if not col.pending:
                    break
                if len(worker.active) >= capacity:
                    continue
                pick = next((i for i in col.pending if worker.idle_tasks[col.episodes[i].request.task_id] > 0),
                            col.pending[0])
                col.pending.remove(pick)
                ep = col.episodes[pick]
                task_id = ep.request.task_id
                if worker.idle_tasks[task_id] > 0:
                    worker.idle_tasks[task_id] -= 1
                ep.key = next(self._keys)
                ep.worker = worker.index
                worker.active.add(pick)
                worker.queued.append(ResetJob(ep.key, task_id, ep.request.init_state_id))
                progress = True

    def _handle(self, worker: WorkerSlot, result: JobResult) -> None:
        """Take one answer of `worker` (the transport's `on_result`)."""
        col = self._collection
        assert col is not None
        ep = next((col.episodes[i] for i in worker.active if col.episodes[i].key == result.key), None)
        if ep is None:
            return  # the episode was already re-queued (its worker faulted); a stale answer
        if isinstance(result, JobError):
            col.counts["rollout/num_env_errors"] += 1
            worker.active.discard(ep.index)
            self._requeue(col, ep, culprit=True, reason=f"its env raised:\n{result.message}")
            return
        if result.constructed:
            col.counts["rollout/num_env_constructions"] += 1
        ep.frames.extend(result.frames)
        if ep.chunk is not None:
            sent, ep.chunk = ep.chunk, None
            mask = np.zeros(sent.tokens.shape, dtype=bool)
            mask[: result.num_steps * ACTION_DIM] = True  # tokens are step-major
            ep.policy_images.append(sent.image)
            ep.policy_states.append(sent.state)
            ep.tokens.append(sent.tokens)
            ep.log_probs.append(sent.log_probs)
            ep.masks.append(mask)
            ep.actions.append(sent.actions[: result.num_steps])
            if result.eef_pos is None or len(result.eef_pos) != result.num_steps:
                ep.eef_complete = False
            else:
                ep.eef_pos.append(result.eef_pos)
            ep.num_steps += result.num_steps
        ep.image, ep.state = result.image, result.state
        if result.done:
            worker.active.discard(ep.index)
            worker.idle_tasks[ep.request.task_id] += 1
            traj = col.out[ep.index] = self._trajectory(ep, result.success)
            if col.on_episode is not None:
                col.on_episode(traj)

    def _trajectory(self, ep: _Episode, success: bool) -> Trajectory:
        r = ep.request
        # np.stack / np.concatenate copy: the trajectory owns its arrays, shared with no other rollout.
        return Trajectory(
            task_id=r.task_id,
            instruction=ep.spec.instruction,
            init_state_id=r.init_state_id,
            group_id=r.group_id,
            rollout_id=r.rollout_id,
            frames=np.stack(ep.frames),
            policy_images=np.stack(ep.policy_images),
            policy_states=np.stack(ep.policy_states).astype(np.float32),
            action_tokens=np.stack(ep.tokens).astype(np.int64),
            log_probs=np.stack(ep.log_probs).astype(np.float32),
            token_mask=np.stack(ep.masks),
            actions=np.concatenate(ep.actions).astype(np.float32),
            success=bool(success),
            finish_step=ep.num_steps,
            suite=ep.spec.suite,
            num_restarts=ep.num_restarts,
            # A partial path would misalign with the actions: an env that skips a step reports none at all.
            eef_pos=(np.concatenate(ep.eef_pos).astype(np.float32) if ep.eef_complete and ep.eef_pos
                     else np.zeros((0, 3), dtype=np.float32)),
        )

    # -- faults --------------------------------------------------------------------------------------------

    def _requeue(self, col: Collection, ep: _Episode, culprit: bool, reason: str) -> None:
        """Re-run `ep` from its initial state; only faults it caused count against max_episode_retries."""
        r = ep.request
        col.stats.num_episode_retries += 1
        col.counts["rollout/num_discarded_env_steps"] += ep.num_steps
        ep.num_restarts += 1
        if culprit:
            ep.num_faults += 1
            ep.last_error = reason
            if ep.num_faults > self.config.max_episode_retries:
                raise RolloutError(
                    f"episode task_id={r.task_id} init_state_id={r.init_state_id} rollout_id={r.rollout_id} "
                    f"faulted {ep.num_faults} times (rollout.max_episode_retries="
                    f"{self.config.max_episode_retries}); last fault: {reason}"
                )
        ep.clear()
        bisect.insort(col.pending, ep.index)

    def _fault(self, worker: WorkerSlot, culprit: int | None, reason: str, counter: str) -> None:
        """Kill and restart `worker` (the transport's `on_fault`); re-run every episode it was running."""
        col = self._collection
        assert col is not None
        col.counts[counter] += 1
        col.num_worker_restarts += 1
        col.stats.num_worker_restarts += 1
        self.transport.kill(worker)
        lost = sorted(worker.active)
        worker.active.clear()
        worker.outstanding.clear()
        worker.idle_tasks.clear()
        if col.num_worker_restarts > self.config.max_worker_restarts:
            raise RolloutError(
                f"worker {worker.index} faulted ({reason}); {col.num_worker_restarts} worker restarts in one "
                f"collect exceed rollout.max_worker_restarts={self.config.max_worker_restarts}"
            )
        self.transport.start(worker)
        for i in lost:
            ep = col.episodes[i]
            self._requeue(col, ep, culprit=ep.key == culprit, reason=f"worker {worker.index}: {reason}")

    def _abort(self) -> None:
        """After an exception in collect: workers with unanswered jobs would answer into the next collect, so
        replace them."""
        for worker in self._workers:
            worker.queued.clear()
            worker.active.clear()
            if worker.outstanding:
                self.transport.kill(worker)
                worker.idle_tasks.clear()
                if not self._closed:
                    self.transport.start(worker)
