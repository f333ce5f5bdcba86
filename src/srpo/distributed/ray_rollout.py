"""The rollout engine on Ray: env workers are Ray actors spread over the cluster, the policy stays in the driver.

It is `srpo.rollout.RolloutEngine` with another transport. Scheduling, policy batching, trajectory assembly
and fault bookkeeping are inherited unchanged, and each actor wraps the same `_EnvHost` that a worker process
runs; so for the same number of workers and envs per worker, a fixed seed and a deterministic policy give
the same trajectories as the multiprocess engine, batch for batch. Only the job transport differs: each round
every actor receives its jobs in one call (`_EnvActor.run`) and answers with their results in order.

Faults: an actor that dies (`ray.exceptions.RayActorError`: killed, OOM, its node lost) or misses its deadline
is killed and replaced by a fresh actor (Ray places it on any node with room), and every episode it was
running is re-run from the same initial state. Completed trajectories live in the driver, so a lost node
never loses them. Counts go into `EpisodeStats` exactly as for worker processes.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections import deque
from dataclasses import dataclass, replace
from typing import Any

from srpo.config.distributed import DistributedConfig
from srpo.config.rollout import RolloutConfig
from srpo.distributed.cluster import ActorDemand, check_cluster_resources, ensure_ray, wait_ready
from srpo.envs.base import EnvFactory
from srpo.rollout import RolloutEngine, _EnvHost, _Job, _Result, _Worker

# How long close() lets an actor close its envs (LIBERO renderers) before killing it.
_CLOSE_TIMEOUT_S = 10.0


class _EnvActor:
    """The body of a rollout actor: one `_EnvHost` that constructs envs once per task and reuses them."""

    def __init__(self, factory: EnvFactory, max_envs: int) -> None:
        self._host = _EnvHost(factory, max_envs)
        self._collect_id: int | None = None

    def ready(self) -> tuple[str, int]:
        """(host name, pid) once the actor is placed and constructed."""
        return socket.gethostname(), os.getpid()

    def node_id(self) -> str:
        """The Ray node this actor runs on (hex id, as in `ray.nodes()`)."""
        import ray

        return str(ray.get_runtime_context().get_node_id())

    def run(self, collect_id: int, jobs: list[_Job]) -> list[_Result]:
        """Execute `jobs` in order; envs left in use by an aborted earlier collect become idle first."""
        if collect_id != self._collect_id:
            self._host.begin()
            self._collect_id = collect_id
        return [self._host.run(job) for job in jobs]

    def close(self) -> None:
        self._host.close()


@dataclass
class _RayWorker(_Worker):
    """The driver's view of one rollout actor (the inherited `process`/`conn` stay None)."""

    actor: Any = None  # ray ActorHandle
    call: Any = None  # ObjectRef of the round's `run` call while jobs are outstanding


class RayRolloutEngine(RolloutEngine):
    """`RolloutEngine` whose env workers are Ray actors; same `collect(policy, requests, temperature, greedy)`.

    Usage:
        ray.init(address="auto")  # or let it start a local cluster from `distributed`
        with RayRolloutEngine(TabletopEnvFactory(), RolloutConfig(num_envs_per_worker=8),
                              DistributedConfig(backend="ray", num_rollout_workers=16)) as engine:
            trajectories, stats = engine.collect(policy, make_group_requests([0, 1], [3, 7], 8), 1.0)

    Args:
        env_factory: Picklable factory; each actor constructs its envs from it.
        config: Rollout settings (render stride, timeouts, retry limits). Its num_workers and
            num_envs_per_worker apply unless `distributed` overrides them.
        distributed: Cluster address and per-actor resources; its num_rollout_workers (default:
            rollout.num_workers, at least 1) and num_envs_per_worker (default: rollout's) size the engine.

    Raises:
        ClusterResourceError: The cluster cannot host the actors (names the missing resource and fields).
        ImportError: Ray is not installed.
    """

    def __init__(
        self,
        env_factory: EnvFactory,
        config: RolloutConfig | None = None,
        distributed: DistributedConfig | None = None,
    ) -> None:
        dist = distributed or DistributedConfig(backend="ray")
        rollout = config or RolloutConfig()
        num_workers = dist.num_rollout_workers or max(1, rollout.num_workers)
        num_envs = dist.num_envs_per_worker or rollout.num_envs_per_worker
        effective = replace(rollout, num_workers=num_workers, num_envs_per_worker=num_envs)
        ray = ensure_ray(dist)
        check_cluster_resources([ActorDemand("rollout workers", num_workers, {"CPU": dist.cpus_per_worker},
                                             "distributed.num_rollout_workers or distributed.cpus_per_worker")], ray)
        # The base constructor with num_workers=0 sets up the driver-side bookkeeping and one in-process host
        # that constructs no env until used; the actors replace it below.
        super().__init__(env_factory, replace(effective, num_workers=0))
        self.config = effective
        self.distributed = dist
        self._ray = ray
        # max_restarts=0: a dead actor is replaced by this engine, which also re-runs its episodes; Ray
        # restarting it behind our back would let stale calls land on a fresh host. SPREAD: one actor per node
        # first, so a lost node takes as few workers as possible.
        self._actor_class = ray.remote(_EnvActor).options(
            num_cpus=dist.cpus_per_worker, max_restarts=0, max_concurrency=1, scheduling_strategy="SPREAD"
        )
        self._ray_workers = [_RayWorker(i) for i in range(num_workers)]
        self._workers = list(self._ray_workers)
        for worker in self._ray_workers:
            self._start_process(worker)
        try:
            self._placement = wait_ready([w.actor.ready.remote() for w in self._ray_workers],
                                         dist.actor_start_timeout_s,
                                         f"{num_workers} rollout workers × {dist.cpus_per_worker:g} CPU", ray)
        except BaseException:
            self.close()
            raise

    def actors(self) -> list[Any]:
        """The current Ray actor handles, one per worker (replaced ones drop out)."""
        return [w.actor for w in self._ray_workers]

    def placement(self) -> list[tuple[str, int]]:
        """(host name, pid) of every current actor."""
        return list(self._ray.get([w.actor.ready.remote() for w in self._ray_workers]))

    def node_ids(self) -> list[str]:
        """The Ray node of every current actor (several hosts' nodes may share a host name)."""
        return list(self._ray.get([w.actor.node_id.remote() for w in self._ray_workers]))

    def worker_pids(self) -> list[int]:
        """Process ids of the actors (on their nodes)."""
        return [pid for _, pid in self.placement()]

    def close(self) -> None:
        """Close every actor's envs, then end the actors. Idempotent; leaves the Ray cluster running."""
        if self._closed:
            return
        self._closed = True
        closing = [w.actor.close.remote() for w in self._ray_workers if w.actor is not None]
        with contextlib.suppress(Exception):  # best effort: a dead actor has no envs left to close
            self._ray.wait(closing, num_returns=len(closing), timeout=_CLOSE_TIMEOUT_S)
        for worker in self._ray_workers:
            self._kill(worker)

    # -- transport (the hooks of RolloutEngine that touch a worker process) -------------------------------

    def _run_round(self) -> None:
        """Send every actor its queued jobs in one call, then take results until all answered or faulted."""
        for worker in self._ray_workers:
            jobs, worker.queued = worker.queued, []
            if not jobs:
                continue
            worker.outstanding = deque(jobs)
            # The actor runs its jobs back to back, so the call may take as long as their budgets together.
            worker.deadline = time.monotonic() + sum(self._budget(job) for job in jobs)
            worker.call = worker.actor.run.remote(self._collect_id, jobs)
        while True:
            busy = [w for w in self._ray_workers if w.outstanding]
            if not busy:
                return
            timeout = max(0.0, min(w.deadline for w in busy) - time.monotonic())
            self._ray.wait([w.call for w in busy], num_returns=1, timeout=timeout)
            ready, _ = self._ray.wait([w.call for w in busy], num_returns=len(busy), timeout=0)
            done = set(ready)
            for worker in busy:
                if worker.call in done:
                    self._drain(worker)
                elif time.monotonic() > worker.deadline:
                    self._fault(worker, self._culprit(worker),
                                f"its actor exceeded the timeout of {len(worker.outstanding)} jobs",
                                "rollout/num_worker_timeouts")

    def _drain(self, worker: _Worker) -> None:
        """Take the results of `worker`'s finished call; a dead actor is replaced and its episodes re-run."""
        assert isinstance(worker, _RayWorker)
        exceptions = self._ray.exceptions
        # The actor is gone: it died or was killed (RayActorError), Ray's memory monitor killed it
        # (OutOfMemoryError), or its node died and took the answer with it (NodeDiedError, ObjectLostError).
        lost = (exceptions.RayActorError, exceptions.OutOfMemoryError, exceptions.NodeDiedError,
                exceptions.ObjectLostError)
        try:
            results = self._ray.get(worker.call)
        except lost as err:
            self._fault(worker, self._culprit(worker), f"its Ray actor was lost ({type(err).__name__})",
                        "rollout/num_worker_crashes")
            return
        jobs = list(worker.outstanding)
        worker.outstanding.clear()
        worker.call = None
        if len(results) != len(jobs) or any(r.key != j.key for r, j in zip(results, jobs, strict=False)):
            raise RuntimeError(f"rollout actor {worker.index} answered jobs {[r.key for r in results]}, "
                               f"expected {[j.key for j in jobs]}")
        for result in results:
            self._handle(worker, result)

    @staticmethod
    def _culprit(worker: _Worker) -> int | None:
        # One call carries all of an actor's jobs of the round, so when it dies we only know which episode
        # killed it if there was one job; otherwise no episode is blamed (all are re-run without counting
        # against max_episode_retries, and max_worker_restarts bounds a crash loop).
        return worker.outstanding[0].key if len(worker.outstanding) == 1 else None

    def _abort(self) -> None:
        """After an exception in collect: an actor with a call in flight is replaced, so its answer cannot land
        in the next collect."""
        for worker in self._ray_workers:
            worker.queued.clear()
            worker.active.clear()
            if worker.outstanding:
                worker.outstanding.clear()
                self._kill(worker)
                worker.idle_tasks.clear()
                if not self._closed:
                    self._start_process(worker)

    def _start_process(self, worker: _Worker) -> None:
        """Create the worker's actor (placement is asynchronous: its first call waits for it, within the
        reset timeout)."""
        assert isinstance(worker, _RayWorker)
        worker.actor = self._actor_class.remote(self.factory, self.config.max_envs_per_worker)
        worker.call = None

    def _kill(self, worker: _Worker) -> None:  # type: ignore[override]
        assert isinstance(worker, _RayWorker)
        if worker.actor is not None:
            with contextlib.suppress(Exception):  # already dead
                self._ray.kill(worker.actor, no_restart=True)
        worker.actor = None
        worker.call = None
