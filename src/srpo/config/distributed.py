"""Configuration of the optional Ray backend (`srpo.distributed`): where rollouts, the encoder and the learner run.

The single-machine path (`backend="none"`) stays the default; nothing here is read unless `backend="ray"`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from srpo.config.base import require, require_choice

DistributedBackend = Literal["none", "ray"]
EncoderPlacement = Literal["actor", "driver"]
LearnerStrategy = Literal["allreduce", "fsdp"]

BACKENDS: tuple[str, ...] = ("none", "ray")
ENCODER_PLACEMENTS: tuple[str, ...] = ("actor", "driver")
LEARNER_STRATEGIES: tuple[str, ...] = ("allreduce", "fsdp")


@dataclass(frozen=True)
class DistributedConfig:
    """Which engine spreads the run over machines, and the resources each role asks the cluster for."""

    backend: DistributedBackend = "none"
    """"none": the single-machine path (rollout worker processes, encoder and learner in the driver).
    "ray": rollout workers are Ray actors spread over the cluster's CPUs, the encoder runs in its own Ray actor
    (or in the driver, see `encoder_placement`); needs `pip install 'srpo[distributed]'`."""
    address: str | None = None
    """Ray cluster to join. None starts a private local cluster on this machine (sized by `local_num_cpus`);
    "auto" joins the cluster started on this machine with `ray start --head`; "HOST:6379" joins that head
    node; "ray://HOST:10001" connects through Ray Client. Ignored when Ray is already initialised."""
    local_num_cpus: int | None = None
    """CPUs of the private local cluster started when `address` is None (None: all of this machine's)."""
    num_rollout_workers: int | None = None
    """Rollout actors, each owning `num_envs_per_worker` envs. None takes rollout.num_workers (at least 1), so
    a single-machine config keeps its batching (and, for a fixed seed, its results)."""
    num_envs_per_worker: int | None = None
    """Episodes each rollout actor runs concurrently. None takes rollout.num_envs_per_worker."""
    cpus_per_worker: float = 1.0
    """CPUs each rollout actor reserves (Ray `num_cpus`); fractions pack several actors on one core."""
    encoder_placement: EncoderPlacement = "actor"
    """"actor": the world-model encoder runs in its own Ray actor (on a GPU node when `encoder_num_gpus` > 0).
    "driver": it is built in the driver process, next to the policy (no transfer of frames)."""
    encoder_num_gpus: float = 0.0
    """GPUs the encoder actor reserves; 0 runs it on `encoder_num_cpus` CPUs. Fractions share a GPU."""
    encoder_num_cpus: float = 1.0
    """CPUs the encoder actor reserves."""
    num_learners: int = 1
    """Learner replicas of the PPO update (a torch.distributed group launched as Ray actors). 1 updates in
    the driver, as on one machine."""
    learner_num_gpus: float = 0.0
    """GPUs each learner actor reserves; > 0 selects the NCCL backend, 0 gloo on CPU."""
    learner_num_cpus: float = 1.0
    """CPUs each learner actor reserves."""
    learner_strategy: LearnerStrategy = "allreduce"
    """How the learner replicas share the update. "allreduce": every replica holds the whole policy and the
    gradients are summed with one explicit all-reduce. "fsdp": each transformer block (and then the rest) is
    sharded over the replicas with FSDP2 `fully_shard`, gradients are reduce-scattered, and each replica holds
    1/num_learners of the weights and AdamW state (for policies too big to replicate, e.g. the 7B OpenVLA-OFT).
    Needs num_learners > 1."""
    max_learner_restarts: int = 2
    """Times one update may re-form the learner group after a learner dies (its process killed, its node lost,
    a collective failing): all learners are restarted, restored to the weights and AdamW state they had before
    the update, and the update re-runs, giving the result it would have had without the failure. 0 fails the
    update at once (and skips the per-update copy of the trainable weights and AdamW state this needs)."""
    actor_start_timeout_s: float = 120.0
    """Longest wait for actors to be placed and started before failing with the resources they asked for
    (a pending actor otherwise waits forever for resources the cluster may never have)."""

    def __post_init__(self) -> None:
        require_choice(self.backend, "distributed.backend", BACKENDS)
        require_choice(self.encoder_placement, "distributed.encoder_placement", ENCODER_PLACEMENTS)
        require(self.address is None or bool(self.address.strip()), "distributed.address", self.address,
                "null (a private local cluster), 'auto' or 'HOST:PORT' of a Ray head node")
        require(self.local_num_cpus is None or self.local_num_cpus >= 1, "distributed.local_num_cpus",
                self.local_num_cpus, "null (all CPUs) or an int >= 1")
        require(self.num_rollout_workers is None or self.num_rollout_workers >= 1, "distributed.num_rollout_workers",
                self.num_rollout_workers, "null (rollout.num_workers) or an int >= 1")
        require(self.num_envs_per_worker is None or self.num_envs_per_worker >= 1, "distributed.num_envs_per_worker",
                self.num_envs_per_worker, "null (rollout.num_envs_per_worker) or an int >= 1")
        require(self.cpus_per_worker > 0, "distributed.cpus_per_worker", self.cpus_per_worker,
                "a float > 0, e.g. 1.0 (or 0.5 to pack two actors per core)")
        require(self.encoder_num_gpus >= 0, "distributed.encoder_num_gpus", self.encoder_num_gpus,
                "0 (CPU) or a float > 0, e.g. 1.0")
        require(self.encoder_num_cpus > 0, "distributed.encoder_num_cpus", self.encoder_num_cpus,
                "a float > 0, e.g. 1.0")
        require(self.num_learners >= 1, "distributed.num_learners", self.num_learners, "an int >= 1")
        require(self.learner_num_gpus >= 0, "distributed.learner_num_gpus", self.learner_num_gpus,
                "0 (CPU, gloo) or a float > 0 (NCCL), e.g. 1.0")
        require(self.learner_num_cpus > 0, "distributed.learner_num_cpus", self.learner_num_cpus,
                "a float > 0, e.g. 1.0")
        require_choice(self.learner_strategy, "distributed.learner_strategy", LEARNER_STRATEGIES)
        require(self.learner_strategy != "fsdp" or self.num_learners > 1, "distributed.learner_strategy",
                self.learner_strategy, "'allreduce', or set distributed.num_learners > 1 to shard over learners")
        require(self.max_learner_restarts >= 0, "distributed.max_learner_restarts", self.max_learner_restarts,
                "an int >= 0, e.g. 2 (0: a dead learner fails the update)")
        require(self.backend == "ray" or self.num_learners == 1, "distributed.num_learners", self.num_learners,
                "1, or set distributed.backend=ray to run several learners")
        require(self.actor_start_timeout_s > 0, "distributed.actor_start_timeout_s", self.actor_start_timeout_s,
                "a float > 0, e.g. 120.0")
