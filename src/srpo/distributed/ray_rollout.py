"""The rollout engine on Ray: env hosts are Ray actors spread over the cluster, the policy stays in the driver.

`RayRolloutEngine` is `srpo.rollout.RolloutEngine` with `RayTransport`, the Ray implementation of the public
`WorkerTransport` interface. Scheduling, policy batching, trajectory assembly and fault bookkeeping are the
engine's, and each actor wraps the same `EnvHost` that a worker process runs; so for the same number of workers
and envs per worker, a fixed seed and a deterministic policy give the same trajectories as the multiprocess
engine, batch for batch. Only the job transport differs: each round every actor receives its jobs in one call
(`EnvHost.run_jobs`) and answers with their results in order.

Faults: an actor that dies (`ray.exceptions.RayActorError`: killed, OOM, its node lost) or misses its deadline
is reported to the scheduler, which kills it and starts a fresh actor (Ray places it on any node with room) and
re-runs every episode it was running from the same initial state. Completed trajectories live in the driver, so
a lost node never loses them. Counts go into `EpisodeStats` exactly as for worker processes.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from srpo.config.distributed import DistributedConfig
from srpo.config.rollout import RolloutConfig
from srpo.distributed.cluster import ActorDemand, check_cluster_resources, ensure_ray, wait_ready
from srpo.envs.base import EnvFactory
from srpo.rollout import (
    EnvHost,
    FaultHandler,
    Job,
    JobResult,
    ResultHandler,
    RolloutEngine,
    WorkerSlot,
    WorkerTransport,
    job_budget,
)

# How long close() lets an actor close its envs (LIBERO renderers) before killing it.
_CLOSE_TIMEOUT_S = 10.0


class _EnvActor(EnvHost):
    """The body of a rollout actor: an `EnvHost` (envs constructed once per task and reused) that can say where
    it runs."""

    def ready(self) -> tuple[str, int]:
        """(host name, pid) once the actor is placed and constructed."""
        return socket.gethostname(), os.getpid()

    def node_id(self) -> str:
        """The Ray node this actor runs on (hex id, as in `ray.nodes()`)."""
        import ray

        return str(ray.get_runtime_context().get_node_id())


class RayTransport(WorkerTransport):
    """One Ray actor per worker slot; a round is one `run_jobs` call per actor, answered with all its results.

    Args:
        env_factory: Picklable factory; each actor constructs its envs from it.
        config: Rollout settings (timeouts, envs per host); config.num_workers actors.
        distributed: Per-actor CPUs.
        ray: The initialised `ray` module.
    """

    def __init__(self, env_factory: EnvFactory, config: RolloutConfig, distributed: DistributedConfig,
                 ray: Any) -> None:
        self.num_workers = config.num_workers
        self._factory = env_factory
        self._config = config
        self._ray = ray
        # max_restarts=0: a dead actor is replaced by the engine, which also re-runs its episodes; Ray
        # restarting it behind our back would let stale calls land on a fresh host. SPREAD: one actor per node
        # first, so a lost node takes as few workers as possible.
        self._actor_class = ray.remote(_EnvActor).options(
            num_cpus=distributed.cpus_per_worker, max_restarts=0, max_concurrency=1, scheduling_strategy="SPREAD"
        )
        self.actors: dict[int, Any] = {}  # slot index → ActorHandle
        self._calls: dict[int, Any] = {}  # slot index → ObjectRef of the round's run_jobs call in flight

    def start(self, worker: WorkerSlot) -> None:
        """Create the worker's actor (placement is asynchronous: its first call waits for it, within the
        reset timeout)."""
        self.actors[worker.index] = self._actor_class.remote(self._factory, self._config.max_envs_per_worker)
        self._calls.pop(worker.index, None)

    def kill(self, worker: WorkerSlot) -> None:
        worker.outstanding.clear()
        actor = self.actors.pop(worker.index, None)
        if actor is not None:
            with contextlib.suppress(Exception):  # already dead
                self._ray.kill(actor, no_restart=True)
        self._calls.pop(worker.index, None)

    def run_round(
        self, workers: Sequence[WorkerSlot], collect_id: int, on_result: ResultHandler, on_fault: FaultHandler
    ) -> None:
        """Send every actor its queued jobs in one call, then take results until all answered or faulted."""
        for worker in workers:
            jobs, worker.queued = worker.queued, []
            if not jobs:
                continue
            worker.outstanding = deque(jobs)
            # The actor runs its jobs back to back, so the call may take as long as their budgets together.
            worker.deadline = time.monotonic() + sum(job_budget(job, self._config) for job in jobs)
            self._calls[worker.index] = self.actors[worker.index].run_jobs.remote(collect_id, jobs)
        while True:
            busy = [w for w in workers if w.outstanding]
            if not busy:
                return
            timeout = max(0.0, min(w.deadline for w in busy) - time.monotonic())
            calls = [self._calls[w.index] for w in busy]
            self._ray.wait(calls, num_returns=1, timeout=timeout)
            ready, _ = self._ray.wait(calls, num_returns=len(busy), timeout=0)
            done = set(ready)
            for worker in busy:
                if self._calls[worker.index] in done:
                    self._drain(worker, on_result, on_fault)
                elif time.monotonic() > worker.deadline:
                    on_fault(worker, self._culprit(worker),
                             f"its actor exceeded the timeout of {len(worker.outstanding)} jobs",
                             "rollout/num_worker_timeouts")

    def _drain(self, worker: WorkerSlot, on_result: ResultHandler, on_fault: FaultHandler) -> None:
        """Take the results of `worker`'s finished call; a lost actor is reported as a fault."""
        exceptions = self._ray.exceptions
        # The actor is gone: it died or was killed (RayActorError), Ray's memory monitor killed it
        # (OutOfMemoryError), or its node died and took the answer with it (NodeDiedError, ObjectLostError).
        lost = (exceptions.RayActorError, exceptions.OutOfMemoryError, exceptions.NodeDiedError,
                exceptions.ObjectLostError)
        try:
            results: list[JobResult] = self._ray.get(self._calls[worker.index])
        except lost as err:
            on_fault(worker, self._culprit(worker), f"its Ray actor was lost ({type(err).__name__})",
                     "rollout/num_worker_crashes")
            return
        jobs: list[Job] = list(worker.outstanding)
        worker.outstanding.clear()
        self._calls.pop(worker.index, None)
        if len(results) != len(jobs) or any(r.key != j.key for r, j in zip(results, jobs, strict=False)):
            raise RuntimeError(f"rollout actor {worker.index} answered jobs {[r.key for r in results]}, "
                               f"expected {[j.key for j in jobs]}")
        for result in results:
            on_result(worker, result)

    @staticmethod
    def _culprit(worker: WorkerSlot) -> int | None:
        # One call carries all of an actor's jobs of the round, so when it dies we only know which episode
        # killed it if there was one job; otherwise no episode is blamed (all are re-run without counting
        # against max_episode_retries, and max_worker_restarts bounds a crash loop).
        return worker.outstanding[0].key if len(worker.outstanding) == 1 else None

    def close(self, workers: Sequence[WorkerSlot]) -> None:
        """Close every actor's envs, then end the actors; leaves the Ray cluster running."""
        closing = [actor.close.remote() for actor in self.actors.values()]
        with contextlib.suppress(Exception):  # best effort: a dead actor has no envs left to close
            self._ray.wait(closing, num_returns=len(closing), timeout=_CLOSE_TIMEOUT_S)
        for worker in workers:
            self.kill(worker)

    def placement(self, workers: Sequence[WorkerSlot]) -> list[tuple[str, int]]:
        """(host name, pid) of every current actor."""
        return list(self._ray.get([self.actors[w.index].ready.remote() for w in workers]))

    def pids(self, workers: Sequence[WorkerSlot]) -> list[int]:
        return [pid for _, pid in self.placement(workers)]


class RayRolloutEngine(RolloutEngine):
    """`RolloutEngine` whose env hosts are Ray actors (`RayTransport`); same `collect(policy, requests,
    temperature, greedy)`.

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
        self.distributed = dist
        self._ray = ray
        self.ray_transport = RayTransport(env_factory, effective, dist, ray)
        super().__init__(env_factory, effective, transport=self.ray_transport)
        try:
            self._placement = wait_ready([a.ready.remote() for a in self.actors()], dist.actor_start_timeout_s,
                                         f"{num_workers} rollout workers × {dist.cpus_per_worker:g} CPU", ray)
        except BaseException:
            self.close()
            raise

    def actors(self) -> list[Any]:
        """The current Ray actor handles, one per worker (replaced ones drop out)."""
        return [self.ray_transport.actors[w.index] for w in self._workers]

    def placement(self) -> list[tuple[str, int]]:
        """(host name, pid) of every current actor."""
        return self.ray_transport.placement(self._workers)

    def node_ids(self) -> list[str]:
        """The Ray node of every current actor (several hosts' nodes may share a host name)."""
        return list(self._ray.get([a.node_id.remote() for a in self.actors()]))
