"""Joining a Ray cluster and checking that it can host what the config asks for, before any actor is placed.

A Ray actor whose resources no node has stays pending forever without an error, so every role checks the
cluster first and names what is missing, which config field asks for it, and how to fix it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from srpo.config.distributed import DistributedConfig
from srpo.errors import SrpoError

log = logging.getLogger(__name__)

RAY_INSTALL_HELP = "Ray is not installed: pip install 'srpo[distributed]' (or set distributed.backend=none)"


class ClusterResourceError(SrpoError, ValueError):
    """The Ray cluster lacks resources a role of the run asks for (the message names them and the fields).

    An SrpoError, like ConfigError: the fix is a config value (or a bigger cluster), and `srpo` prints it as one
    line instead of a traceback."""


def import_ray() -> Any:
    """The `ray` module, or an ImportError that says how to install it."""
    try:
        import ray
    except ImportError as err:
        raise ImportError(RAY_INSTALL_HELP) from err
    return ray


def ensure_ray(config: DistributedConfig) -> Any:
    """Initialise Ray from `config` unless the process already is connected; returns the `ray` module.

    address None starts a private local cluster ("local": never joins another user's `ray start` cluster by
    accident); anything else is passed to `ray.init(address=...)`.
    """
    ray = import_ray()
    if ray.is_initialized():
        return ray
    if config.address is None:
        ray.init(address="local", num_cpus=config.local_num_cpus, include_dashboard=False, log_to_driver=False)
    else:
        ray.init(address=config.address, log_to_driver=False)
    return ray


@dataclass(frozen=True)
class ActorDemand:
    """`count` actors of one role, each asking for `resources` (e.g. {"CPU": 1.0, "GPU": 0.5}).

    Attributes:
        role: What the actors do, for messages ("rollout workers").
        count: Number of actors.
        resources: Resources one actor reserves.
        fields: Config fields that set these numbers, for the fix in the message.
    """

    role: str
    count: int
    resources: dict[str, float]
    fields: str


def check_cluster_resources(demands: Sequence[ActorDemand], ray: Any = None) -> None:
    """Raise ClusterResourceError unless the cluster can place every demanded actor now.

    Checks, per resource: each actor fits on at least one alive node (an actor never spans nodes), and the sum of
    all demands fits in the cluster's total. A sum beyond what is free right now (other actors hold part of the
    total) only logs a warning; `wait_ready` then bounds the wait.

    Args:
        demands: The actors about to be created.
        ray: The initialised `ray` module (imported when None).
    """
    ray = ray or import_ray()
    total: dict[str, float] = {k: float(v) for k, v in ray.cluster_resources().items()}
    available: dict[str, float] = {k: float(v) for k, v in ray.available_resources().items()}
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive", False)]
    problems: list[str] = []
    needed: dict[str, float] = {}
    for d in demands:
        for name, amount in d.resources.items():
            if amount <= 0:
                continue
            needed[name] = needed.get(name, 0.0) + d.count * amount
            biggest = max((float(n.get(name, 0.0)) for n in nodes), default=0.0)
            if d.count > 0 and amount > biggest + 1e-9:
                problems.append(
                    f"one of the {d.role} needs {amount:g} {name}, but the largest node has {biggest:g} {name} "
                    f"(set {d.fields} lower, or add a node with more {name})"
                )
    breakdown = "; ".join(
        f"{d.count} {d.role} × {', '.join(f'{v:g} {k}' for k, v in d.resources.items() if v > 0)}"
        for d in demands if d.count > 0
    )
    fields = ", ".join(d.fields for d in demands if d.count > 0)
    for name, amount in needed.items():
        have = total.get(name, 0.0)
        free = available.get(name, 0.0)
        if amount > have + 1e-9:
            problems.append(
                f"the run needs {amount:g} {name} in all ({breakdown}) but the cluster has {have:g} {name}: "
                f"lower {fields}, or add nodes (ray start --address HEAD:6379)"
            )
        elif amount > free + 1e-9:
            # Not an error: other jobs may finish (or an autoscaler add nodes); wait_ready bounds the wait.
            log.warning("the run needs %g %s (%s) but only %g of the cluster's %g %s are free now; its actors wait "
                        "for them (at most distributed.actor_start_timeout_s)", amount, name, breakdown, free, have,
                        name)
    if problems:
        raise ClusterResourceError("the Ray cluster lacks resources:\n  - " + "\n  - ".join(problems))


def run_demands(config: DistributedConfig, num_rollout_workers: int, with_encoder: bool) -> list[ActorDemand]:
    """Every actor a training run places at once: rollout workers, the encoder actor (when used), learners.

    Roles are created one after another, and each checks its own demand; checking the sum first makes a run whose
    roles fit one by one but not together fail at once, not after `actor_start_timeout_s`.

    Args:
        config: Per-role resources.
        num_rollout_workers: Rollout actors (distributed.num_rollout_workers, or rollout.num_workers, at least 1).
        with_encoder: The run embeds trajectories (SRPO, not GRPO).
    """
    demands = [ActorDemand("rollout workers", num_rollout_workers, {"CPU": config.cpus_per_worker},
                           "distributed.num_rollout_workers or distributed.cpus_per_worker")]
    if with_encoder and config.encoder_placement == "actor":
        demands.append(ActorDemand("encoder actors", 1,
                                   {"CPU": config.encoder_num_cpus, "GPU": config.encoder_num_gpus},
                                   "distributed.encoder_num_gpus or distributed.encoder_num_cpus"))
    if config.num_learners > 1:
        demands.append(ActorDemand("learners", config.num_learners,
                                   {"CPU": config.learner_num_cpus, "GPU": config.learner_num_gpus},
                                   "distributed.num_learners, distributed.learner_num_cpus or "
                                   "distributed.learner_num_gpus"))
    return demands


def wait_ready(refs: Sequence[Any], timeout_s: float, what: str, ray: Any = None) -> list[Any]:
    """ray.get the actors' `ready` calls, failing after `timeout_s` with a message instead of hanging.

    Args:
        refs: One ObjectRef per actor, from a cheap method such as `ready.remote()`.
        timeout_s: Longest wait for placement and start-up (distributed.actor_start_timeout_s).
        what: The actors, for the message ("2 rollout workers × 1 CPU").
        ray: The initialised `ray` module.

    Returns:
        The values of `refs`.
    """
    ray = ray or import_ray()
    start = time.monotonic()
    _, pending = ray.wait(list(refs), num_returns=len(refs), timeout=timeout_s)
    if pending:
        raise ClusterResourceError(
            f"{len(pending)} of {what} did not start within {time.monotonic() - start:.0f} s "
            f"(distributed.actor_start_timeout_s={timeout_s:g}); the cluster has {ray.available_resources()} "
            "free: check `ray status` for pending demands"
        )
    return list(ray.get(list(refs)))
