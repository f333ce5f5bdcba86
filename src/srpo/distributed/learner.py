"""A multi-process PPO learner: N replicas of the policy in Ray actors, one torch.distributed group.

Each mini-batch is split into N shards, one per replica. A replica's shard loss is weighted by the shard's
share of the mini-batch (its share of masked tokens for "token-mean", of sequences with tokens for
"seq-mean-token-mean"), so the sum of the weighted shard losses is exactly the mini-batch loss that the
single-process `srpo.update.minibatch_step` minimises, not a mean of per-shard means. Two strategies
(`distributed.learner_strategy`) turn the per-shard gradients into the mini-batch gradient:

"allreduce": every replica holds the whole policy. Gradients are summed with one explicit all-reduce (gloo on
CPU, NCCL on GPU), then every replica clips and steps its own AdamW on the same summed gradient, so the
replicas stay bit-identical (`RayLearnerGroup.param_digests` checks it). An explicit all-reduce rather than
`DistributedDataParallel`: DDP averages gradients (it would need the weights folded into the loss as N · w) and
its bucketing hides which parameters received no gradient, which AdamW treats differently from a zero gradient.

"fsdp" (for policies too big to replicate, the 7B OpenVLA-OFT): FSDP2 `fully_shard` makes each transformer
block (the compact VLA's `nn.TransformerEncoderLayer`s, the Llama decoder layers of OpenVLA-OFT's language
model) one unit and a root unit of everything else, so each replica stores 1/N of the weights, gradients and
AdamW state. FSDP all-gathers a unit's weights for its forward and backward and reduce-scatters its gradients;
the reduction is set to a plain SUM (FSDP would average, and gloo has no AVG), which with the shard weights
gives the mini-batch gradient. `clip_grad_norm_` on the sharded (DTensor) gradients computes the global norm.
Full weights and AdamW state for the driver and checkpoints are gathered with
`torch.distributed.checkpoint.state_dict` (`full_state_dict=True, cpu_offload=True`: rank 0 holds them).

A learner that dies (its process killed, its node lost, or a collective failing because a peer did) poisons
the process group of every survivor, so the group is re-formed whole: all learners are killed and restarted
with a fresh rendezvous, restored to the trainable weights, buffers and AdamW state copied into the driver at
the start of the update, and the update re-runs (at most `distributed.max_learner_restarts` times). The result
is the one the update would have had without the failure.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import logging
import socket
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from srpo.config.distributed import DistributedConfig
from srpo.config.train import AlgoConfig
from srpo.distributed.cluster import ActorDemand, check_cluster_resources, ensure_ray, wait_ready
from srpo.types import unknown_aggregation
from srpo.update import make_optimizer, ppo_minibatch_loss, set_learning_rate

if TYPE_CHECKING:
    from srpo.policies.base import PolicyInput, TrainablePolicy
    from srpo.update import ChunkBatch, TokenScorer

log = logging.getLogger(__name__)

# Metrics of ppo_clip_loss are token-means whatever the loss aggregation (srpo.algo.losses).
_TOKEN_MEAN_STATS = ("ppo/clip_fraction", "ppo/approx_kl", "ppo/ratio_mean", "policy/entropy")
# A collective waits this long for a peer before failing (a dead learner must not hang the run forever).
_COLLECTIVE_TIMEOUT = datetime.timedelta(minutes=10)
# Words in the RuntimeError a survivor's collective raises when a peer died or timed out: gloo's messages carry
# its source path ("third_party/gloo/gloo/transport/tcp/pair.cc: Connection closed by peer"), NCCL's name it.
_COLLECTIVE_FAILURE_MARKERS = ("gloo", "nccl")


class LearnerGroupError(RuntimeError):
    """The learner group lost a learner and could not (or may no longer) re-form itself."""


class LearnerLostError(LearnerGroupError):
    """A learner died, or a collective failed because a peer did; the process group is unusable."""


def loss_stat_keys(has_reference: bool) -> list[str]:
    """Keys of the per-mini-batch loss stats, in a fixed order (all ranks pack them identically)."""
    return ["loss/policy", *_TOKEN_MEAN_STATS, *(["loss/kl"] if has_reference else []), "loss/entropy"]


def shard_weights(
    mask: np.ndarray, shards: Sequence[np.ndarray], aggregation: str, row_weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Each shard's share of a mini-batch, for the loss and for token-mean metrics.

    Args:
        mask: (M, L) bool executed-token mask of the whole batch.
        shards: Row indices of each shard; together the mini-batch.
        aggregation: algo.aggregation (one of srpo.types.Aggregation).
        row_weights: (M,) per-row token weights of the whole batch (ChunkBatch.row_weights); required by
            "traj-mean-token-mean".

    Returns:
        (loss_weights, token_weights), each (num_shards,) float64 summing to 1 (or all 0 for an empty
        mini-batch): with ℓ_i the shard's aggregated loss, Σ_i w_i ℓ_i is the mini-batch's aggregated loss.
    """
    tokens = np.array([mask[s].sum() for s in shards], dtype=np.float64)
    if aggregation == "token-mean":
        counts = tokens
    elif aggregation == "seq-mean-token-mean":
        counts = np.array([(mask[s].sum(axis=-1) > 0).sum() for s in shards], dtype=np.float64)
    elif aggregation == "traj-mean-token-mean":
        if row_weights is None:
            raise ValueError("aggregation 'traj-mean-token-mean' needs the batch's row_weights")
        counts = np.array([(mask[s].sum(axis=-1) * row_weights[s]).sum() for s in shards], dtype=np.float64)
    else:
        raise unknown_aggregation(aggregation)
    total = counts.sum()
    return counts / (total if total > 0 else 1.0), tokens / max(tokens.sum(), 1.0)


def transformer_blocks(module: nn.Module) -> list[nn.Module]:
    """The FSDP units below the root: each `nn.TransformerEncoderLayer` (compact VLA) and each `*DecoderLayer`
    (transformers' Llama, the language model of OpenVLA-OFT), outermost first."""
    return [m for m in module.modules()
            if isinstance(m, nn.TransformerEncoderLayer) or type(m).__name__.endswith("DecoderLayer")]


def is_collective_failure(err: BaseException) -> bool:
    """Whether `err`, raised inside a learner, means its process group broke (a peer died or timed out)."""
    if isinstance(err, torch.distributed.DistError):
        return True
    return isinstance(err, RuntimeError) and any(m in str(err).lower() for m in _COLLECTIVE_FAILURE_MARKERS)


def _full(t: torch.Tensor) -> torch.Tensor:
    """The whole tensor of an FSDP-sharded DTensor (a collective: every rank must call it), else `t`."""
    from torch.distributed.tensor import DTensor

    return t.full_tensor() if isinstance(t, DTensor) else t


class _FSDPRoot(nn.Module):
    """The root FSDP unit around a policy: its `forward` is the policy's `token_log_probs`.

    FSDP2 gathers a unit's weights in the unit's forward pre-hook, but the policies compute log-probs in methods
    other than `forward` (and OpenVLA-OFT embeds the prompt before calling its language model), so the weights
    outside the transformer blocks would never be gathered without a root whose forward runs the whole policy.
    """

    def __init__(self, policy: TrainablePolicy) -> None:
        super().__init__()
        self.policy = policy

    def forward(
        self, batch: PolicyInput, tokens: torch.Tensor, temperature: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.policy.token_log_probs(batch, tokens, temperature)

    def token_log_probs(
        self, batch: PolicyInput, tokens: torch.Tensor, temperature: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """What `ppo_minibatch_loss` calls: the policy's log-probs through FSDP's hooks."""
        out: tuple[torch.Tensor, torch.Tensor] = self(batch, tokens, temperature)
        return out


class _LearnerActor:
    """One replica: the policy (whole, or its FSDP shard), its AdamW, and membership of the process group."""

    def __init__(self, policy: TrainablePolicy, algo: AlgoConfig, rank: int, world_size: int, device: str,
                 strategy: str = "allreduce") -> None:
        if strategy not in ("allreduce", "fsdp"):
            raise ValueError(f"unknown learner strategy {strategy!r}: choose 'allreduce' or 'fsdp'")
        self.rank = rank
        self.world_size = world_size
        self.algo = algo
        self.strategy = strategy
        self.module = policy.to(torch.device(device))
        # Trainable parameter names in parameters() order: the order of the driver's AdamW param list, which
        # index-keyed optimizer state dicts refer to.
        self.names = [n for n, p in self.module.named_parameters() if p.requires_grad]
        if not self.names:
            raise ValueError("the policy has no trainable parameters (is everything frozen?)")
        self.model: TokenScorer = self.module  # what the loss runs: the policy, or the FSDP root around it
        self._build_optimizer()

    def _build_optimizer(self) -> None:
        self.params = [p for p in self.module.parameters() if p.requires_grad]
        self.optimizer = make_optimizer(self.params, self.algo)

    def ready(self) -> tuple[str, int]:
        """(host name, pid) once the actor is placed and constructed."""
        import os

        return socket.gethostname(), os.getpid()

    def rendezvous(self) -> str:
        """tcp:// address for the group, on this (rank 0) actor's node, at a port free right now."""
        import ray

        with socket.socket() as s:
            s.bind(("", 0))
            port = s.getsockname()[1]
        return f"tcp://{ray.util.get_node_ip_address()}:{port}"

    def init_group(self, init_method: str, backend: str) -> None:
        """Join the process group; under FSDP, then shard the replica (sharding needs the group)."""
        import torch.distributed as dist

        dist.init_process_group(backend, init_method=init_method, rank=self.rank, world_size=self.world_size,
                                timeout=_COLLECTIVE_TIMEOUT)
        if self.strategy == "fsdp":
            self._shard()

    def _shard(self) -> None:
        from torch.distributed.fsdp import FSDPModule, fully_shard

        # Blocks first, then the root: the root unit takes the weights no block claimed (embeddings, vision,
        # projector, head), gathered for the whole forward.
        for block in transformer_blocks(self.module):
            fully_shard(block)
        root = _FSDPRoot(self.module)
        fully_shard(root)
        for unit in root.modules():
            if isinstance(unit, FSDPModule):
                # Sum the ranks' gradients instead of FSDP's mean: each rank's loss already carries its shard's
                # weight, so the sum is the mini-batch gradient. A plain SUM also because gloo has neither AVG
                # nor the PREMUL_SUM that a divide factor would otherwise use.
                unit.set_force_sum_reduction_for_comms(True)
                unit.set_gradient_divide_factor(1.0)
        self.model = root
        self._build_optimizer()  # fully_shard replaced every parameter with its DTensor shard

    def update(self, batch: ChunkBatch, minibatches: list[np.ndarray], lr: float | None = None
               ) -> list[dict[str, float]]:
        """One optimiser step per mini-batch (row indices into `batch`) at learning rate `lr` (None: the one the
        optimiser has); stats of each, equal on all ranks."""
        if lr is not None:
            set_learning_rate(self.optimizer, lr)
        self.module.train(True)
        try:
            return [self._step(batch, idx) for idx in minibatches]
        finally:
            self.module.train(False)

    def _step(self, batch: ChunkBatch, idx: np.ndarray) -> dict[str, float]:
        import torch.distributed as dist

        algo = self.algo
        shards = np.array_split(np.asarray(idx), self.world_size)
        loss_w, token_w = shard_weights(batch.mask, shards, algo.aggregation, batch.row_weights)
        mine = shards[self.rank]
        keys = loss_stat_keys(batch.ref_log_probs is not None)
        self.optimizer.zero_grad(set_to_none=True)
        local = np.zeros(len(keys) + 1, dtype=np.float64)  # weighted stats, then the weighted total loss
        fsdp = self.strategy == "fsdp"
        if len(mine) > 0 or fsdp:
            # Under FSDP every rank runs forward and backward (the weight gathers are collectives); a rank with
            # an empty shard runs one row at weight 0 and contributes zero gradients.
            rows = mine if len(mine) > 0 else np.asarray(idx)[:1]
            loss, stats = ppo_minibatch_loss(self.model, batch, rows, algo)
            (loss * float(loss_w[self.rank])).backward()
            if len(mine) > 0:
                for k, key in enumerate(keys):
                    local[k] = stats[key] * (token_w[self.rank] if key in _TOKEN_MEAN_STATS else loss_w[self.rank])
                local[-1] = loss.item() * loss_w[self.rank]
        device = self.params[0].device
        if fsdp:
            # FSDP reduce-scattered the gradients during backward; only the stats remain to be summed.
            meta = torch.as_tensor(local, device=device)
            dist.all_reduce(meta, op=dist.ReduceOp.SUM)
            meta_np = meta.cpu().numpy()
        else:
            # One flat buffer: fewer collectives, and every rank packs the same parameters in the same order. A
            # parameter no rank produced a gradient for keeps grad None, as in a single-process step (AdamW skips
            # it; a zero gradient would still decay its weights and move its moments).
            flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
                              for p in self.params])
            meta = torch.as_tensor(np.concatenate([local, [float(p.grad is not None) for p in self.params]]),
                                   device=device)
            dist.all_reduce(flat, op=dist.ReduceOp.SUM)
            dist.all_reduce(meta, op=dist.ReduceOp.SUM)
            meta_np = meta.cpu().numpy()
            offset = 0
            for p, has_grad in zip(self.params, meta_np[len(keys) + 1:], strict=True):
                n = p.numel()
                p.grad = flat[offset:offset + n].view_as(p).clone() if has_grad > 0 else None
                offset += n
        total = float(meta_np[len(keys)])
        if not np.isfinite(total):
            # Raised on every rank alike (they all see the reduced value), so no rank is left in a collective.
            raise FloatingPointError(f"non-finite loss {total}; stopping before it corrupts the weights "
                                     "(lower algo.lr or check the inputs)")
        # Over DTensor gradients the norm is the global one (FSDP2's clip_grad_norm_ reduces over the shards).
        grad_norm = _full(torch.nn.utils.clip_grad_norm_(self.params, algo.grad_clip))
        self.optimizer.step()
        out = {key: float(meta_np[k]) for k, key in enumerate(keys)}
        out["loss/total"] = total
        out["grad/norm"] = float(grad_norm)
        return out

    # -- state (under FSDP every method below is a collective: the group calls it on all ranks at once) --------

    def state_dict(self) -> dict[str, Any]:
        """Full weights on the CPU (under FSDP: on rank 0; the other ranks return {})."""
        if self.strategy == "fsdp":
            from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

            return get_model_state_dict(self.module,
                                        options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        return {k: v.detach().cpu() for k, v in self.module.state_dict().items()}

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> None:
        """Set the weights from a full state dict (each FSDP rank keeps its shard of it)."""
        if self.strategy == "fsdp":
            from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

            set_model_state_dict(self.module, state, options=StateDictOptions(full_state_dict=True, strict=strict))
        else:
            self.module.load_state_dict(state, strict=strict)

    def optimizer_state_dict(self) -> dict[str, Any]:
        """AdamW state as `torch.optim.Optimizer.state_dict()` of the driver's optimizer writes it (keyed by the
        index in the trainable parameter list); under FSDP the full state on rank 0 ({} on the other ranks)."""
        if self.strategy != "fsdp" or not self.optimizer.state:
            # An optimizer that has not stepped has no per-parameter state to gather; torch's DCP helpers would
            # create it with one zero step (AdamW's step count 1), which is not a fresh AdamW's state.
            return dict(self.optimizer.state_dict())
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        by_name: Any = get_optimizer_state_dict(self.module, self.optimizer,
                                           options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        if not by_name:
            return {}
        index = {name: i for i, name in enumerate(self.names)}
        return {"state": {index[name]: value for name, value in by_name["state"].items()},
                "param_groups": [{**g, "params": [index[name] for name in g["params"]]}
                                 for g in by_name["param_groups"]]}

    def load_optimizer_state_dict(self, state: dict[str, Any]) -> None:
        """Restore AdamW from an index-keyed state dict (the driver's, or `optimizer_state_dict`'s)."""
        if self.strategy != "fsdp" or not state["state"]:
            # Index-keyed states map onto this optimizer's params by position; for a fresh state (no steps yet)
            # this also avoids the DCP helpers' zero step (see optimizer_state_dict).
            self.optimizer.load_state_dict(state)
            return
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        by_name: Any = {"state": {self.names[i]: value for i, value in state["state"].items()},
                   "param_groups": [{**g, "params": [self.names[i] for i in g["params"]]}
                                    for g in state["param_groups"]]}
        set_optimizer_state_dict(self.module, self.optimizer, by_name,
                                 options=StateDictOptions(full_state_dict=True))

    def snapshot(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """What an update changes, on the CPU: trainable weights and buffers (frozen weights come back from the
        policy a restarted learner is built from), and the AdamW state. Under FSDP only rank 0's is complete."""
        params = dict(self.module.named_parameters())
        weights = {name: _full(params[name]).detach().cpu().clone() for name in self.names}
        persistent = set(self.module.state_dict())
        weights.update({name: b.detach().cpu().clone() for name, b in self.module.named_buffers()
                        if name in persistent})
        return (weights if self.rank == 0 else {}), self.optimizer_state_dict()

    def restore(self, snapshot: tuple[dict[str, torch.Tensor], dict[str, Any]]) -> None:
        """Load a `snapshot` (taken by rank 0 of an earlier group) into this fresh replica."""
        weights, optimizer = snapshot
        self.load_state_dict(weights, strict=False)
        self.load_optimizer_state_dict(optimizer)

    def param_digest(self) -> str:
        """SHA-256 of every (full) parameter's bytes: equal digests mean bit-identical replicas."""
        h = hashlib.sha256()
        for p in self.module.parameters():
            h.update(_full(p).detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()

    def shutdown(self) -> None:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


class RayLearnerGroup:
    """N policy replicas in Ray actors forming one torch.distributed group for the PPO update.

    Usage:
        group = RayLearnerGroup(policy, cfg.algo, DistributedConfig(backend="ray", num_learners=2))
        stats = group.update(batch, minibatches)       # one optimiser step per mini-batch
        policy.load_state_dict(group.state_dict())     # the driver's copy samples the next rollouts

    Args:
        policy: The policy to replicate (shipped once through the object store; each actor gets a copy, and
            restarted actors are built from it again).
        algo: Learning rate, clipping, aggregation (as for the single-process update).
        distributed: num_learners, learner_strategy, max_learner_restarts, learner_num_cpus, learner_num_gpus
            (> 0: NCCL on the actor's GPU).

    Raises:
        ClusterResourceError: The cluster cannot host the learners (names the resource and fields).
    """

    def __init__(self, policy: TrainablePolicy, algo: AlgoConfig, distributed: DistributedConfig) -> None:
        ray = ensure_ray(distributed)
        self._ray = ray
        self.algo = algo
        self.distributed = distributed
        n = distributed.num_learners
        resources = {"CPU": distributed.learner_num_cpus, "GPU": distributed.learner_num_gpus}
        check_cluster_resources([ActorDemand(
            "learners", n, resources,
            "distributed.num_learners, distributed.learner_num_cpus or distributed.learner_num_gpus")], ray)
        self.on_gpu = distributed.learner_num_gpus > 0
        self.backend = "nccl" if self.on_gpu else "gloo"
        self.strategy = distributed.learner_strategy
        # max_restarts=0: Ray restarting one learner alone would not help, the whole group must be re-formed.
        self._actor_class = ray.remote(_LearnerActor).options(
            num_cpus=distributed.learner_num_cpus, num_gpus=distributed.learner_num_gpus, max_restarts=0
        )
        self._policy_ref = ray.put(policy)
        self._loaded_state_ref: Any = None  # weights set by load_state_dict, re-applied to restarted learners
        self.num_restarts = 0  # group re-formations over the group's life
        self.actors: list[Any] = []
        try:
            self._start()
        except BaseException:
            self.close()
            raise

    def _start(self) -> None:
        """Create the actors and form the group (a fresh rendezvous port each time)."""
        ray, dist = self._ray, self.distributed
        n = dist.num_learners
        # Ray sets CUDA_VISIBLE_DEVICES per actor, so each GPU learner sees its own device as cuda:0.
        self.actors = [self._actor_class.remote(self._policy_ref, self.algo, rank, n,
                                                "cuda" if self.on_gpu else "cpu", self.strategy)
                       for rank in range(n)]
        wait_ready([a.ready.remote() for a in self.actors], dist.actor_start_timeout_s,
                   f"{n} learners × {dist.learner_num_cpus:g} CPU, {dist.learner_num_gpus:g} GPU", ray)
        init_method = ray.get(self.actors[0].rendezvous.remote())
        self._call_all("init_group", init_method, self.backend)
        if self._loaded_state_ref is not None:
            self._call_all("load_state_dict", self._loaded_state_ref)

    def _call_all(self, method: str, *args: Any) -> list[Any]:
        """Call `method` on every learner; their results in rank order.

        Raises:
            LearnerLostError: A learner died, or its collective failed because a peer did. Raised at the first
                such answer: the survivors may be blocked in a collective until its timeout, so waiting for all
                answers (as `ray.get` of the list would) could take `_COLLECTIVE_TIMEOUT`.
        """
        ray = self._ray
        refs = [getattr(a, method).remote(*args) for a in self.actors]
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            try:
                ray.get(ready)
            except Exception as err:
                if self._is_lost(err):
                    raise LearnerLostError(f"a learner was lost during {method} ({type(err).__name__}: "
                                           f"{str(err).splitlines()[0] if str(err) else ''})") from err
                raise
        return list(ray.get(refs))

    def _is_lost(self, err: BaseException) -> bool:
        exceptions = self._ray.exceptions
        # Killed or crashed (RayActorError), taken by Ray's memory monitor (OutOfMemoryError), or gone with its
        # node (NodeDiedError, ObjectLostError).
        if isinstance(err, exceptions.RayActorError | exceptions.OutOfMemoryError | exceptions.NodeDiedError
                      | exceptions.ObjectLostError):
            return True
        cause = getattr(err, "cause", None) if isinstance(err, exceptions.RayTaskError) else None
        return cause is not None and is_collective_failure(cause)

    def _from_rank0(self, method: str) -> Any:
        # Under FSDP the gathers are collectives, so every rank takes part and rank 0 returns the result.
        if self.strategy == "fsdp":
            return self._call_all(method)[0]
        return self._ray.get(getattr(self.actors[0], method).remote())

    def _kill_actors(self) -> None:
        for actor in self.actors:
            with contextlib.suppress(Exception):  # already dead
                self._ray.kill(actor, no_restart=True)
        self.actors = []

    def restart(self, snapshot: tuple[dict[str, torch.Tensor], dict[str, Any]] | None = None) -> None:
        """Re-form the group: kill every learner, start fresh ones from the policy (and weights loaded since),
        then load `snapshot` (weights, AdamW state) into all of them."""
        self._kill_actors()
        self._start()
        if snapshot is not None:
            ref = self._ray.put(snapshot)
            self._call_all("restore", ref)
        self.num_restarts += 1

    def update(self, batch: ChunkBatch, minibatches: Sequence[np.ndarray], lr: float | None = None
               ) -> list[dict[str, float]]:
        """One synchronous optimiser step per mini-batch on every replica; survives lost learners.

        Args:
            batch: The step's chunks (old log-probs already recomputed, as in `Trainer.update`).
            minibatches: Row indices of each mini-batch, in the order they are stepped.
            lr: The step's learning rate (`srpo.update.step_learning_rate`), set on every replica's optimiser
                first; None keeps the rate they have.

        Returns:
            Per mini-batch: the stats `srpo.update.minibatch_step` reports, over the whole mini-batch.

        Raises:
            LearnerGroupError: Learners were lost more than `distributed.max_learner_restarts` times.
        """
        batch_ref = self._ray.put(batch)  # shipped once, read by every replica from the object store
        idx = [np.asarray(m, dtype=np.int64) for m in minibatches]
        max_restarts = self.distributed.max_learner_restarts
        # Copied into the driver before the first step: a dead learner's process group, and on a lost node its
        # objects, are gone, and the survivors may have stepped already.
        snapshot = self._from_rank0("snapshot") if max_restarts > 0 else None
        failure: LearnerLostError | None = None
        for attempt in range(max_restarts + 1):
            try:
                if attempt > 0:
                    self.restart(snapshot)
                return list(self._call_all("update", batch_ref, idx, lr)[0])
            except LearnerLostError as err:
                failure = err
                log.warning("learner group: %s; restarting all %d learners and re-running the update "
                            "(%d of distributed.max_learner_restarts=%d)", err, len(self.actors),
                            attempt + 1, max_restarts)
        raise LearnerGroupError(f"the update lost learners {max_restarts + 1} times "
                                f"(distributed.max_learner_restarts={max_restarts}): {failure}") from failure

    def state_dict(self) -> dict[str, Any]:
        """The full weights on the CPU (rank 0's; all ranks hold the same, or under FSDP their shards of it)."""
        return dict(self._from_rank0("state_dict"))

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Set every replica's weights (e.g. after resuming from a checkpoint)."""
        ref = self._ray.put(state)
        self._call_all("load_state_dict", ref)
        self._loaded_state_ref = ref

    def optimizer_state_dict(self) -> dict[str, Any]:
        """The AdamW state in the driver optimizer's format (all ranks take identical steps), for checkpoints."""
        return dict(self._from_rank0("optimizer_state_dict"))

    def load_optimizer_state_dict(self, state: dict[str, Any]) -> None:
        """Restore every replica's AdamW state (resuming a run)."""
        self._call_all("load_optimizer_state_dict", self._ray.put(state))

    def param_digests(self) -> list[str]:
        """One SHA-256 of the (full) parameters per replica; all equal while the replicas are in sync."""
        return self._call_all("param_digest")

    def worker_pids(self) -> list[int]:
        """Process ids of the learners, in rank order."""
        return [pid for _, pid in self._call_all("ready")]

    def close(self) -> None:
        """Leave the process group and end the actors."""
        with contextlib.suppress(Exception):  # a dead learner cannot leave the group; killing it is enough
            self._ray.get([a.shutdown.remote() for a in self.actors], timeout=30)
        self._kill_actors()
