"""A multi-process PPO learner: N replicas of the policy in Ray actors, one torch.distributed group.

Each mini-batch is split into N shards, one per replica. A replica's shard loss is weighted by the shard's
share of the mini-batch (its share of masked tokens for "token-mean", of sequences with tokens for
"seq-mean-token-mean"), so the sum of the weighted shard losses is exactly the mini-batch loss that the
single-process `Trainer._minibatch_update` minimises, not a mean of per-shard means. Gradients are summed with
one explicit all-reduce (gloo on CPU, NCCL on GPU), then every replica clips and steps its own AdamW on the same
summed gradient, so the replicas stay bit-identical (`RayLearnerGroup.param_digests` checks it).

An explicit all-reduce rather than `DistributedDataParallel`: DDP averages gradients (it would need the weights
folded into the loss as N · w) and its bucketing hides which parameters received no gradient, which AdamW
treats differently from a zero gradient.

FSDP (for the 7B OpenVLA-OFT adapter): the shape of this module does not change. In `_LearnerActor.__init__`
the replica would be wrapped in `torch.distributed.fsdp.fully_shard` (per transformer block, LoRA adapter
parameters trainable, base weights frozen and sharded) after `init_group`, the flat all-reduce below replaced
by FSDP's own reduce-scatter in `backward()`, the optimizer built over the sharded parameters, and
`state_dict` gathered with `get_model_state_dict(..., full_state_dict=True, cpu_offload=True)` on rank 0. That
needs GPUs and the 7B checkpoint; it is not implemented here.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import socket
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from srpo.config.distributed import DistributedConfig
from srpo.config.train import AlgoConfig
from srpo.distributed.cluster import ActorDemand, check_cluster_resources, ensure_ray, wait_ready

if TYPE_CHECKING:

    from srpo.trainer import ChunkBatch

# Metrics of ppo_clip_loss are token-means whatever the loss aggregation (srpo.algo.losses).
_TOKEN_MEAN_STATS = ("ppo/clip_fraction", "ppo/approx_kl", "ppo/ratio_mean")
# A collective waits this long for a peer before failing (a dead learner must not hang the run forever).
_COLLECTIVE_TIMEOUT = datetime.timedelta(minutes=10)


def loss_stat_keys(has_reference: bool) -> list[str]:
    """Keys of the per-mini-batch loss stats, in a fixed order (all ranks pack them identically)."""
    return ["loss/policy", *_TOKEN_MEAN_STATS, *(["loss/kl"] if has_reference else []), "loss/entropy"]


def shard_weights(mask: np.ndarray, shards: Sequence[np.ndarray], aggregation: str) -> tuple[np.ndarray, np.ndarray]:
    """Each shard's share of a mini-batch, for the loss and for token-mean metrics.

    Args:
        mask: (M, L) bool executed-token mask of the whole batch.
        shards: Row indices of each shard; together the mini-batch.
        aggregation: algo.aggregation ("token-mean" or "seq-mean-token-mean").

    Returns:
        (loss_weights, token_weights), each (num_shards,) float64 summing to 1 (or all 0 for an empty
        mini-batch): with ℓ_i the shard's aggregated loss, Σ_i w_i ℓ_i is the mini-batch's aggregated loss.
    """
    tokens = np.array([mask[s].sum() for s in shards], dtype=np.float64)
    if aggregation == "token-mean":
        counts = tokens
    elif aggregation == "seq-mean-token-mean":
        counts = np.array([(mask[s].sum(axis=-1) > 0).sum() for s in shards], dtype=np.float64)
    else:
        raise ValueError(f"unknown aggregation {aggregation!r}: choose 'token-mean' or 'seq-mean-token-mean'")
    return counts / max(counts.sum(), 1.0), tokens / max(tokens.sum(), 1.0)


class _LearnerActor:
    """One replica: the policy, its AdamW, and membership of the process group."""

    def __init__(self, policy: Any, algo: AlgoConfig, rank: int, world_size: int, device: str) -> None:
        import torch

        self.rank = rank
        self.world_size = world_size
        self.algo = algo
        self.policy = policy.to(torch.device(device))
        self.params = [p for p in self.policy.parameters() if p.requires_grad]
        if not self.params:
            raise ValueError("the policy has no trainable parameters (is everything frozen?)")
        self.optimizer = torch.optim.AdamW(self.params, lr=algo.lr, weight_decay=algo.weight_decay)

    def ready(self) -> tuple[str, int]:
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
        import torch.distributed as dist

        dist.init_process_group(backend, init_method=init_method, rank=self.rank, world_size=self.world_size,
                                timeout=_COLLECTIVE_TIMEOUT)

    def update(self, batch: ChunkBatch, minibatches: list[np.ndarray]) -> list[dict[str, float]]:
        """One optimiser step per mini-batch (row indices into `batch`); stats of each, equal on all ranks."""
        self.policy.train(True)
        try:
            return [self._step(batch, idx) for idx in minibatches]
        finally:
            self.policy.train(False)

    def _step(self, batch: ChunkBatch, idx: np.ndarray) -> dict[str, float]:
        import torch
        import torch.distributed as dist

        algo = self.algo
        shards = np.array_split(np.asarray(idx), self.world_size)
        loss_w, token_w = shard_weights(batch.mask, shards, algo.aggregation)
        mine = shards[self.rank]
        keys = loss_stat_keys(batch.ref_log_probs is not None)
        self.optimizer.zero_grad(set_to_none=True)
        local = np.zeros(len(keys) + 1, dtype=np.float64)  # weighted stats, then the weighted total loss
        if len(mine) > 0:
            from srpo.trainer import ppo_minibatch_loss

            loss, stats = ppo_minibatch_loss(self.policy, batch, mine, algo)
            (loss * float(loss_w[self.rank])).backward()
            for k, key in enumerate(keys):
                local[k] = stats[key] * (token_w[self.rank] if key in _TOKEN_MEAN_STATS else loss_w[self.rank])
            local[-1] = loss.item() * loss_w[self.rank]
        device = self.params[0].device
        # One flat buffer: fewer collectives, and every rank packs the same parameters in the same order. A
        # parameter no rank produced a gradient for keeps grad None, as in a single-process step (AdamW skips
        # it; a zero gradient would still decay its weights and move its moments).
        flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in self.params])
        meta = torch.as_tensor(np.concatenate([local, [float(p.grad is not None) for p in self.params]]),
                               device=device)
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        dist.all_reduce(meta, op=dist.ReduceOp.SUM)
        meta_np = meta.cpu().numpy()
        total = float(meta_np[len(keys)])
        if not np.isfinite(total):
            # Raised on every rank alike (they all see the reduced value), so no rank is left in a collective.
            raise FloatingPointError(f"non-finite loss {total}; stopping before it corrupts the weights "
                                     "(lower algo.lr or check the inputs)")
        offset = 0
        for p, has_grad in zip(self.params, meta_np[len(keys) + 1:], strict=True):
            n = p.numel()
            p.grad = flat[offset:offset + n].view_as(p).clone() if has_grad > 0 else None
            offset += n
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, algo.grad_clip)
        self.optimizer.step()
        out = {key: float(meta_np[k]) for k, key in enumerate(keys)}
        out["loss/total"] = total
        out["grad/norm"] = float(grad_norm)
        return out

    def state_dict(self) -> dict[str, Any]:
        return {k: v.detach().cpu() for k, v in self.policy.state_dict().items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state)

    def optimizer_state_dict(self) -> dict[str, Any]:
        return dict(self.optimizer.state_dict())

    def load_optimizer_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state)

    def param_digest(self) -> str:
        """SHA-256 of every parameter's bytes: equal digests mean bit-identical replicas."""
        h = hashlib.sha256()
        for p in self.policy.parameters():
            h.update(p.detach().cpu().contiguous().numpy().tobytes())
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
        policy: The policy to replicate (shipped once through the object store; each actor gets a copy).
        algo: Learning rate, clipping, aggregation (as for the single-process update).
        distributed: num_learners, learner_num_cpus, learner_num_gpus (> 0: NCCL on the actor's GPU).

    Raises:
        ClusterResourceError: The cluster cannot host the learners (names the resource and fields).
    """

    def __init__(self, policy: Any, algo: AlgoConfig, distributed: DistributedConfig) -> None:
        ray = ensure_ray(distributed)
        self._ray = ray
        n = distributed.num_learners
        resources = {"CPU": distributed.learner_num_cpus, "GPU": distributed.learner_num_gpus}
        check_cluster_resources([ActorDemand(
            "learners", n, resources,
            "distributed.num_learners, distributed.learner_num_cpus or distributed.learner_num_gpus")], ray)
        on_gpu = distributed.learner_num_gpus > 0
        self.backend = "nccl" if on_gpu else "gloo"
        actor_class = ray.remote(_LearnerActor).options(
            num_cpus=distributed.learner_num_cpus, num_gpus=distributed.learner_num_gpus, max_restarts=0
        )
        policy_ref = ray.put(policy)
        # Ray sets CUDA_VISIBLE_DEVICES per actor, so each GPU learner sees its own device as cuda:0.
        self.actors = [actor_class.remote(policy_ref, algo, rank, n, "cuda" if on_gpu else "cpu")
                       for rank in range(n)]
        try:
            wait_ready([a.ready.remote() for a in self.actors], distributed.actor_start_timeout_s,
                       f"{n} learners × {distributed.learner_num_cpus:g} CPU, {distributed.learner_num_gpus:g} GPU",
                       ray)
            init_method = ray.get(self.actors[0].rendezvous.remote())
            ray.get([a.init_group.remote(init_method, self.backend) for a in self.actors])
        except BaseException:
            self.close()
            raise

    def update(self, batch: ChunkBatch, minibatches: Sequence[np.ndarray]) -> list[dict[str, float]]:
        """One synchronous optimiser step per mini-batch on every replica.

        Args:
            batch: The step's chunks (old log-probs already recomputed, as in `Trainer.update`).
            minibatches: Row indices of each mini-batch, in the order they are stepped.

        Returns:
            Per mini-batch: the stats `Trainer._minibatch_update` reports, over the whole mini-batch.
        """
        batch_ref = self._ray.put(batch)  # shipped once, read by every replica from the object store
        idx = [np.asarray(m, dtype=np.int64) for m in minibatches]
        results = self._ray.get([a.update.remote(batch_ref, idx) for a in self.actors])
        return list(results[0])

    def state_dict(self) -> dict[str, Any]:
        """Rank 0's weights on the CPU (all ranks hold the same)."""
        return dict(self._ray.get(self.actors[0].state_dict.remote()))

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Set every replica's weights (e.g. after resuming from a checkpoint)."""
        ref = self._ray.put(state)
        self._ray.get([a.load_state_dict.remote(ref) for a in self.actors])

    def optimizer_state_dict(self) -> dict[str, Any]:
        """Rank 0's AdamW state (all ranks take identical steps, so they hold the same), for checkpoints."""
        return dict(self._ray.get(self.actors[0].optimizer_state_dict.remote()))

    def load_optimizer_state_dict(self, state: dict[str, Any]) -> None:
        """Restore every replica's AdamW state (resuming a run)."""
        ref = self._ray.put(state)
        self._ray.get([a.load_optimizer_state_dict.remote(ref) for a in self.actors])

    def param_digests(self) -> list[str]:
        """One SHA-256 of the parameters per replica; all equal while the replicas are in sync."""
        return list(self._ray.get([a.param_digest.remote() for a in self.actors]))

    def close(self) -> None:
        """Leave the process group and end the actors."""
        with contextlib.suppress(Exception):  # a dead learner cannot leave the group; killing it is enough
            self._ray.get([a.shutdown.remote() for a in self.actors], timeout=30)
        for actor in self.actors:
            with contextlib.suppress(Exception):
                self._ray.kill(actor, no_restart=True)
        self.actors = []
