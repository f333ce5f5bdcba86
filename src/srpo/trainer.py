"""Online SRPO: rollout groups → dynamic sampling → embed → reward → advantages → PPO-clip update → evaluate →
checkpoint. Each phase is one call, timed into the step's metrics.

    trainer = Trainer(TrainConfig.preset("tabletop"))
    trainer.train()
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from srpo.algo.advantages import dynamic_sampling_mask, group_advantages, referenced_failure_group_mask
from srpo.algo.losses import entropy_bonus, kl_penalty, masked_aggregate, ppo_clip_loss
from srpo.config.train import AlgoConfig, TrainConfig, load_config, save_config
from srpo.envs.base import EnvFactory
from srpo.evaluate import evaluate_policy, init_state_split
from srpo.policies.base import PolicyInput
from srpo.provenance import provenance
from srpo.reward.encoders import make_encoder
from srpo.reward.encoders.base import VideoEncoder
from srpo.reward.progress import SuccessMemory, compute_progress_rewards
from srpo.rollout import EpisodeRequest, RolloutEngine, make_group_requests
from srpo.types import EpisodeStats, Trajectory

log = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "ckpt-"
METRICS_FILE = "metrics.jsonl"
CONFIG_FILE = "config.yaml"
TRAINER_STATE_FILE = "trainer_state.pt"
PROVENANCE_FILE = "provenance.jsonl"
REFERENCE_DIR = "reference_policy"
PHASES = ("rollout", "embed", "reward", "advantage", "update", "evaluate", "checkpoint", "videos")


# ---------------------------------------------------------------------------------------------------------------
# Construction of the parts from config.


def make_env_factory(cfg: TrainConfig) -> EnvFactory:
    """The env factory named by cfg.env.kind."""
    if cfg.env.kind == "tabletop":
        from srpo.envs.tabletop import TabletopEnvFactory

        return TabletopEnvFactory(cfg.env.tabletop)
    elif cfg.env.kind == "libero":
        from srpo.envs.libero import LiberoEnvFactory

        return LiberoEnvFactory(cfg.env.libero)
    else:
        raise ValueError(f"unknown env.kind {cfg.env.kind!r}: choose 'tabletop' or 'libero'")


def make_policy(cfg: TrainConfig) -> Any:
    """The policy named by cfg.policy.kind, from its checkpoint when one is given."""
    if cfg.policy.kind == "compact":
        from srpo.policies.compact import CompactVLA

        if cfg.policy.checkpoint:
            path = Path(cfg.policy.checkpoint)
            if not path.exists():
                raise FileNotFoundError(
                    f"policy.checkpoint={cfg.policy.checkpoint!r} does not exist: run `srpo sft` to make one "
                    "(see README), or set policy.checkpoint=null to start from a randomly initialised policy"
                )
            return CompactVLA.from_pretrained(path, device=cfg.policy.device)
        return CompactVLA(cfg.policy)
    elif cfg.policy.kind == "openvla_oft":
        from srpo.policies.openvla_oft import OpenVLAOFTPolicy

        return OpenVLAOFTPolicy.from_config(cfg.policy)
    else:
        raise ValueError(f"unknown policy.kind {cfg.policy.kind!r}: choose 'compact' or 'openvla_oft'")


def load_policy_checkpoint(cfg: TrainConfig, path: Path) -> Any:
    """A policy saved by `save_pretrained` (checkpoints, the KL reference)."""
    if cfg.policy.kind == "compact":
        from srpo.policies.compact import CompactVLA

        return CompactVLA.from_pretrained(path, device=cfg.policy.device)
    elif cfg.policy.kind == "openvla_oft":
        from srpo.policies.openvla_oft import OpenVLAOFTPolicy

        dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[cfg.policy.dtype]
        return OpenVLAOFTPolicy.from_pretrained(path, cfg.policy.unnorm_key, cfg.policy.device, dtype)
    else:
        raise ValueError(f"unknown policy.kind {cfg.policy.kind!r}: choose 'compact' or 'openvla_oft'")


# ---------------------------------------------------------------------------------------------------------------
# The batch record the update phase trains on.


@dataclass
class ChunkBatch:
    """All action chunks of the kept trajectories, flattened: M chunks, L tokens each.

    Attributes:
        images: (M, H, W, 3) uint8.
        states: (M, S) float32.
        instructions: M strings.
        tokens: (M, L) int64.
        mask: (M, L) bool, executed tokens.
        old_log_probs: (M, L) float32 behaviour log-probs (recomputed by the learner, see `old_log_probs`).
        advantages: (M,) float32, the trajectory's advantage broadcast to its chunks.
        ref_log_probs: (M, L) float32 reference-policy log-probs, or None without a KL term.
    """

    images: np.ndarray
    states: np.ndarray
    instructions: list[str]
    tokens: np.ndarray
    mask: np.ndarray
    old_log_probs: np.ndarray
    advantages: np.ndarray
    ref_log_probs: np.ndarray | None = None

    @classmethod
    def from_trajectories(cls, trajs: Sequence[Trajectory], advantages: np.ndarray) -> ChunkBatch:
        counts = [t.num_chunks for t in trajs]
        return cls(
            images=np.concatenate([t.policy_images for t in trajs]),
            states=np.concatenate([t.policy_states for t in trajs]).astype(np.float32),
            instructions=[t.instruction for t in trajs for _ in range(t.num_chunks)],
            tokens=np.concatenate([t.action_tokens for t in trajs]),
            mask=np.concatenate([t.token_mask for t in trajs]),
            old_log_probs=np.concatenate([t.log_probs for t in trajs]).astype(np.float32),
            advantages=np.repeat(advantages.astype(np.float32), counts),
        )

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    def policy_input(self, idx: np.ndarray) -> PolicyInput:
        return PolicyInput(self.images[idx], self.states[idx], [self.instructions[i] for i in idx])


def batched_log_probs(
    policy: Any, batch: ChunkBatch, temperature: float, batch_size: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """(M, L) log-probs and entropies of the batch's tokens under `policy`, without gradients."""
    lps, ents = [], []
    with torch.no_grad():
        for start in range(0, len(batch), batch_size):
            idx = np.arange(start, min(start + batch_size, len(batch)))
            lp, ent = policy.token_log_probs(batch.policy_input(idx), torch.as_tensor(batch.tokens[idx]), temperature)
            lps.append(lp.float().cpu().numpy())
            ents.append(ent.float().cpu().numpy())
    return np.concatenate(lps), np.concatenate(ents)


def ppo_minibatch_loss(
    policy: Any, batch: ChunkBatch, idx: np.ndarray, algo: AlgoConfig
) -> tuple[torch.Tensor, dict[str, float]]:
    """The PPO-clip (+ KL, − entropy bonus) loss of rows `idx` of `batch`: one mini-batch of the update, shared by
    `Trainer._minibatch_update` and the data-parallel learners (`srpo.distributed.learner`).

    Args:
        policy: Has `parameters()` and `token_log_probs(batch, tokens, temperature)`.
        batch: The step's chunks with old (and optionally reference) log-probs.
        idx: (m,) row indices, m >= 1.
        algo: Clip, KL and entropy settings.

    Returns:
        The scalar loss (differentiable) and its stats: loss/policy, ppo/clip_fraction, ppo/approx_kl,
        ppo/ratio_mean, loss/entropy, and loss/kl with a reference.
    """
    device = next(policy.parameters()).device
    tokens = torch.as_tensor(batch.tokens[idx], device=device)
    mask = torch.as_tensor(batch.mask[idx], device=device)
    old = torch.as_tensor(batch.old_log_probs[idx], device=device)
    adv = torch.as_tensor(batch.advantages[idx], device=device)
    log_probs, entropy = policy.token_log_probs(batch.policy_input(idx), tokens, algo.temperature)
    log_probs = log_probs.float()
    ppo = ppo_clip_loss(log_probs, old, adv, mask, algo.clip_low, algo.clip_high, algo.dual_clip,
                        aggregation=algo.aggregation)
    loss = ppo.loss
    stats = {"loss/policy": ppo.loss.item(), "ppo/clip_fraction": ppo.clip_fraction.item(),
             "ppo/approx_kl": ppo.approx_kl.item(), "ppo/ratio_mean": ppo.ratio_mean.item()}
    if batch.ref_log_probs is not None:
        ref = torch.as_tensor(batch.ref_log_probs[idx], device=device)
        kl = masked_aggregate(kl_penalty(log_probs, ref, algo.kl_estimator), mask, algo.aggregation)
        loss = loss + algo.kl_coef * kl
        stats["loss/kl"] = kl.item()
    ent = entropy_bonus(entropy.float(), mask, algo.aggregation)
    stats["loss/entropy"] = ent.item()
    if algo.entropy_coef > 0:
        loss = loss - algo.entropy_coef * ent
    return loss, stats


# ---------------------------------------------------------------------------------------------------------------
# Run-directory helpers: atomic checkpoints, metrics log.


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first. Incomplete ones never carry the final name (written to a temp dir)."""
    return sorted(
        p for p in run_dir.glob(f"{CHECKPOINT_PREFIX}*") if p.is_dir() and p.name[len(CHECKPOINT_PREFIX) :].isdigit()
    )


def checkpoint_step(path: Path) -> int:
    return int(path.name[len(CHECKPOINT_PREFIX):])


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
    t0 = time.perf_counter()
    try:
        yield
    finally:
        metrics[f"time/{name}_s"] = time.perf_counter() - t0


# ---------------------------------------------------------------------------------------------------------------
# The trainer.


class Trainer:
    """Owns the policy, optimizer, rollout engine, encoder and run directory of one online run.

    Args:
        cfg: The validated config tree.
        resume: Continue from the newest complete checkpoint in cfg.run_dir (the run's own config.yaml wins).
        policy: Optionally an already-built policy (tests, `srpo compare`); built from cfg.policy otherwise.
        show_progress: Progress bars (tqdm) and one summary line per step.
    """

    def __init__(
        self, cfg: TrainConfig, resume: bool = False, policy: Any = None, show_progress: bool = True
    ) -> None:
        self.cfg = cfg
        self.run_dir = Path(cfg.run_dir)
        self.show_progress = show_progress
        if not resume and list_checkpoints(self.run_dir):
            raise FileExistsError(
                f"{self.run_dir} already holds checkpoints: pass --resume {self.run_dir} to continue that run, or "
                "choose another run_dir"
            )
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if cfg.torch_num_threads > 0:
            torch.set_num_threads(cfg.torch_num_threads)
        torch.manual_seed(cfg.seed)
        latest = self._latest_checkpoint() if resume else None
        if latest is not None:
            policy = load_policy_checkpoint(cfg, latest / "policy")
        self.policy = policy if policy is not None else make_policy(cfg)
        params = [p for p in self.policy.parameters() if p.requires_grad]
        if not params:
            raise ValueError("the policy has no trainable parameters (is everything frozen?)")
        self.optimizer = torch.optim.AdamW(params, lr=cfg.algo.lr, weight_decay=cfg.algo.weight_decay)
        self.memory = SuccessMemory(cfg.reward.memory_size) if cfg.reward.memory_size > 0 else None
        self.step = 0
        self.metrics_log = MetricsLog(self.run_dir, cfg.tensorboard)
        if latest is not None:
            self._restore_state(latest)
        else:
            save_config(cfg, self.run_dir / CONFIG_FILE)
        # One line per start or resume: the commit and command behind this run's results.
        with open(self.run_dir / PROVENANCE_FILE, "a") as f:
            f.write(json.dumps({"step": self.step, **provenance()}) + "\n")
        self.reference = self._load_or_make_reference() if cfg.algo.kl_coef > 0 else None
        self.factory = make_env_factory(cfg)
        self.specs = self.factory.task_specs()
        self.encoder: VideoEncoder | None = None
        if cfg.distributed.backend == "ray":
            # Imported here: Ray is an optional extra.
            from srpo.distributed.cluster import check_cluster_resources, ensure_ray, run_demands
            from srpo.distributed.encoder import RayEncoder
            from srpo.distributed.ray_rollout import RayRolloutEngine

            num_rollout_workers = cfg.distributed.num_rollout_workers or max(1, cfg.rollout.num_workers)
            check_cluster_resources(run_demands(cfg.distributed, num_rollout_workers, cfg.algo_name == "srpo"),
                                    ensure_ray(cfg.distributed))
            self.engine: RolloutEngine = RayRolloutEngine(self.factory, cfg.rollout, cfg.distributed)
            if cfg.algo_name == "srpo":
                with torch.random.fork_rng():  # see below
                    self.encoder = RayEncoder(cfg.encoder, cfg.distributed)
        else:
            self.engine = RolloutEngine(self.factory, cfg.rollout)
            if cfg.algo_name == "srpo":
                # Building an encoder may draw from torch's global RNG (EfficientNet and V-JEPA 2 initialise
                # randomly before loading weights), which rollout sampling also uses: forked, SRPO and GRPO runs
                # of one seed sample the same first batch whatever the encoder, and a resumed run continues the
                # stream its checkpoint saved.
                with torch.random.fork_rng():
                    self.encoder = make_encoder(cfg.encoder)
        self.learners: Any = None
        if cfg.distributed.num_learners > 1:
            from srpo.distributed.learner import RayLearnerGroup

            # Replicas start from the driver's (possibly restored) weights and optimizer state; the driver's copy
            # is refreshed after every update so that it samples the next rollouts with the new policy.
            self.learners = RayLearnerGroup(self.policy, cfg.algo, cfg.distributed)
            self.learners.load_optimizer_state_dict(self.optimizer.state_dict())

    # -- the loop ---------------------------------------------------------------------------------------------

    def train(self) -> list[dict[str, float]]:
        """Run cfg.num_steps steps (from the current step when resuming). Returns the per-step metrics."""
        from tqdm import tqdm

        history = []
        if self.step == 0 and self.cfg.num_eval_episodes_per_task > 0:
            self.metrics_log.write(0, self.evaluate())
        bar = tqdm(total=self.cfg.num_steps, initial=self.step, desc="srpo train", unit="step",
                   disable=not self.show_progress, dynamic_ncols=True)
        try:
            while self.step < self.cfg.num_steps:
                metrics = self.train_step()
                self.step += 1
                is_last = self.step == self.cfg.num_steps
                if self.cfg.num_eval_episodes_per_task > 0 and (
                    is_last or (self.cfg.eval_every and self.step % self.cfg.eval_every == 0)
                ):
                    with timed(metrics, "evaluate"):
                        metrics.update(self.evaluate())
                if is_last or self.step % self.cfg.checkpoint_every == 0:
                    with timed(metrics, "checkpoint"):
                        self.save_checkpoint()
                self.metrics_log.write(self.step, metrics)
                history.append(metrics)
                bar.update(1)
                if self.show_progress:
                    bar.write(self._summary_line(metrics))
        finally:
            bar.close()
        return history

    def train_step(self) -> dict[str, float]:
        """One step: rollout → embed → reward → advantage → update, each timed."""
        metrics: dict[str, float] = {}
        with timed(metrics, "rollout"):
            trajs, stats = self.rollout(metrics)
        success = np.asarray([t.success for t in trajs], dtype=bool)
        task_ids = np.asarray([t.task_id for t in trajs], dtype=np.int64)
        group_ids = np.asarray([t.group_id for t in trajs], dtype=np.int64)
        with timed(metrics, "embed"):
            embeddings = self.embed(trajs)
        with timed(metrics, "reward"):
            rewards, distance = self.reward(embeddings, success, task_ids, group_ids, metrics)
        if self.cfg.algo.keep_referenced_failure_groups:  # issue #17: all-failure groups SRPO can rank
            keep = self._failure_group_filter(rewards, success, group_ids, distance, metrics)
            trajs = [t for t, k in zip(trajs, keep, strict=True) if k]
            success, task_ids, group_ids, rewards, distance = (a[keep] for a in (success, task_ids, group_ids,
                                                                                  rewards, distance))
        with timed(metrics, "advantage"):
            advantages = group_advantages(rewards, group_ids, self.cfg.algo.adv_eps, self.cfg.algo.adv_std)
        # Groups whose advantages are not all zero: the ones that carry any learning signal this step.
        metrics["advantage/num_groups_with_signal"] = len(np.unique(group_ids[np.abs(advantages) > 0]))
        metrics["advantage/share_groups_with_signal"] = (metrics["advantage/num_groups_with_signal"]
                                                         / max(metrics["rollout/num_groups_sampled"], 1))
        with timed(metrics, "update"):
            metrics.update(self.update(trajs, advantages))
        metrics.update(_rollout_metrics(trajs, stats, rewards, advantages, success))
        # Outputs are named by the step being trained (self.step + 1; self.step counts completed steps).
        self._save_step_arrays(self.step + 1, trajs, rewards, advantages, distance)
        with timed(metrics, "videos"):
            self._save_videos(self.step + 1, trajs, rewards)
        return metrics

    # -- phases -----------------------------------------------------------------------------------------------

    def rollout(self, metrics: dict[str, float]) -> tuple[list[Trajectory], EpisodeStats]:
        """Roll out groups of train prompts; with dynamic sampling keep groups whose success rate lies in
        [filter_low, filter_high] and refill until num_prompts_per_step groups or max_sampling_rounds."""
        algo = self.cfg.algo
        rng = np.random.default_rng([self.cfg.seed, self.step])  # a function of (seed, step): resumable
        kept: list[Trajectory] = []
        candidates: list[Trajectory] = []  # all-failure groups for keep_referenced_failure_groups
        total = EpisodeStats()
        num_groups = 0
        num_groups_sampled = 0
        rounds = 0
        while num_groups < algo.num_prompts_per_step and rounds < algo.max_sampling_rounds:
            rounds += 1
            need = algo.num_prompts_per_step - num_groups
            tasks = rng.integers(0, len(self.specs), size=need)
            inits = [int(rng.choice(init_state_split(self.cfg, self.specs[t].num_init_states, "train")))
                     for t in tasks]
            requests = make_group_requests(tasks.tolist(), inits, algo.group_size)
            # Group ids unique across refill rounds.
            requests = [EpisodeRequest(r.task_id, r.init_state_id, r.group_id + num_groups + 10_000 * rounds,
                                       r.rollout_id + len(kept) + 10_000 * rounds) for r in requests]
            trajs, stats = self.engine.collect(self.policy, requests, algo.temperature, greedy=False)
            _accumulate(total, stats)
            num_groups_sampled += len({t.group_id for t in trajs})
            if algo.dynamic_sampling:
                keep = dynamic_sampling_mask(np.asarray([t.success for t in trajs]),
                                             np.asarray([t.group_id for t in trajs]), algo.filter_low, algo.filter_high)
                if algo.keep_referenced_failure_groups:
                    # Judged after the reward phase; they do not count towards the batch, so the refill is the
                    # official one.
                    failed = dynamic_sampling_mask(np.asarray([t.success for t in trajs]),
                                                   np.asarray([t.group_id for t in trajs]), 0.0, 0.0)
                    candidates.extend(t for t, f, k in zip(trajs, failed, keep, strict=True) if f and not k)
            else:
                keep = np.ones(len(trajs), dtype=bool)
            new = [t for t, k in zip(trajs, keep, strict=True) if k]
            kept.extend(new)
            num_groups += len({t.group_id for t in new})
        if not kept and not candidates:
            # Nothing passed the filter in any round: train on the last round rather than skip the step (the
            # group advantages of all-equal groups are 0, so such a batch changes nothing but is logged).
            kept = trajs
        metrics["rollout/num_groups_kept"] = len({t.group_id for t in kept})
        kept.extend(candidates)
        metrics["rollout/num_sampling_rounds"] = rounds
        metrics["rollout/num_groups_sampled"] = num_groups_sampled
        metrics["rollout/num_episodes_total"] = total.num_episodes
        return kept, total

    def embed(self, trajs: Sequence[Trajectory]) -> np.ndarray | None:
        """(N, D) world-model embeddings of each rollout's own frames (None for GRPO, which needs none)."""
        if self.encoder is None:
            return None
        return np.asarray(self.encoder.encode([t.frames for t in trajs]), dtype=np.float32)

    def reward(
        self,
        embeddings: np.ndarray | None,
        success: np.ndarray,
        task_ids: np.ndarray,
        group_ids: np.ndarray,
        metrics: dict[str, float],
    ) -> tuple[np.ndarray, np.ndarray]:
        """SRPO progress rewards, or the binary outcome for GRPO; with each trajectory's distance to its nearest
        success centre (NaN where there is none, and for GRPO)."""
        if embeddings is None:
            return success.astype(np.float64), np.full(success.shape, np.nan)
        out = compute_progress_rewards(
            embeddings, success, task_ids, group_ids, self.cfg.reward,
            memory=self.memory.as_mapping() if self.memory is not None else None,
        )
        if self.memory is not None:
            self.memory.update(embeddings, success, task_ids)
        fails = ~success
        if fails.any():
            metrics["reward/failure_progress_mean"] = float(out.rewards[fails].mean())
            metrics["reward/failure_progress_max"] = float(out.rewards[fails].max())
            metrics["reward/num_failures_shaped"] = int((out.diagnostics.reference_kind[fails] != "none").sum())
        metrics["reward/num_clusters_mean"] = float(out.diagnostics.num_clusters.mean())
        return out.rewards, out.diagnostics.distance

    def _failure_group_filter(
        self, rewards: np.ndarray, success: np.ndarray, group_ids: np.ndarray, distance: np.ndarray,
        metrics: dict[str, float],
    ) -> np.ndarray:
        """(N,) bool: drop the all-failure groups that `algo.keep_referenced_failure_groups` does not keep (no
        reference for their task, or shaped rewards spread below the threshold); every other group stays."""
        algo = self.cfg.algo
        all_failed = dynamic_sampling_mask(success, group_ids, 0.0, 0.0)
        referenced = referenced_failure_group_mask(rewards, success, group_ids, np.isfinite(distance),
                                                   algo.failure_group_min_reward_std, algo.adv_std)
        keep = ~all_failed | referenced
        if not algo.dynamic_sampling or algo.filter_low == 0.0:
            keep = np.ones_like(keep)  # the filter kept all-failure groups already: nothing to judge
        if not keep.any():
            keep = np.ones_like(keep)  # as in `rollout`: train on a batch with zero advantages rather than none
        metrics["rollout/num_failure_groups_kept"] = len(np.unique(group_ids[referenced & keep]))
        return keep

    def update(self, trajs: Sequence[Trajectory], advantages: np.ndarray) -> dict[str, float]:
        """PPO-clip over mini-batches of action chunks (plus KL to the reference and entropy bonus)."""
        algo = self.cfg.algo
        batch = ChunkBatch.from_trajectories(trajs, advantages)
        self.policy.train(False)
        # Old log-probs recomputed by the learner: equal to the rollout's up to numerics for a deterministic
        # policy; their gap is logged as a check that rollout and learner agree.
        old_lp, _ = batched_log_probs(self.policy, batch, algo.temperature)
        mismatch = float(np.abs(old_lp - batch.old_log_probs)[batch.mask].max()) if batch.mask.any() else 0.0
        batch.old_log_probs = old_lp
        if self.reference is not None:
            batch.ref_log_probs, _ = batched_log_probs(self.reference, batch, algo.temperature)
        self.policy.train(True)
        gen = np.random.default_rng([self.cfg.seed, self.step, 1])
        minibatches = [
            idx
            for _ in range(algo.ppo_epochs)
            for idx in np.array_split(gen.permutation(len(batch)), min(algo.num_minibatches, len(batch)))
        ]
        learner_restarts: int | None = None
        if self.learners is not None:
            from srpo.distributed.learner import policy_module

            # Data-parallel over the learner group: the same mini-batches and steps, gradients all-reduced (or
            # reduce-scattered under FSDP); a lost learner re-forms the group and re-runs the update.
            restarts_before = self.learners.num_restarts
            all_stats = self.learners.update(batch, minibatches)
            learner_restarts = self.learners.num_restarts - restarts_before
            policy_module(self.policy).load_state_dict(self.learners.state_dict())
            self.optimizer.load_state_dict(self.learners.optimizer_state_dict())
            clear_caches = getattr(self.policy, "clear_caches", None)
            if clear_caches is not None:
                clear_caches()
        else:
            all_stats = [self._minibatch_update(batch, idx) for idx in minibatches]
        sums: dict[str, float] = {}
        for stats in all_stats:
            for k, v in stats.items():
                sums[k] = sums.get(k, 0.0) + v
        num_updates = len(all_stats)
        self.policy.train(False)
        out = {k: v / max(num_updates, 1) for k, v in sums.items()}
        out["ppo/num_updates"] = num_updates
        out["ppo/num_chunks"] = len(batch)
        out["ppo/rollout_learner_logprob_gap"] = mismatch
        if learner_restarts is not None:
            out["learner/num_restarts"] = learner_restarts  # group re-formations after a lost learner
        return out

    def _minibatch_update(self, batch: ChunkBatch, idx: np.ndarray) -> dict[str, float]:
        algo = self.cfg.algo
        loss, stats = ppo_minibatch_loss(self.policy, batch, idx, algo)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss {loss.item()} at step {self.step}; stopping before it "
                                     "corrupts the weights (lower algo.lr or check the inputs)")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        grad_norm = torch.nn.utils.clip_grad_norm_(params, algo.grad_clip)
        self.optimizer.step()
        stats["loss/total"] = loss.item()
        stats["grad/norm"] = float(grad_norm)
        return stats

    def evaluate(self) -> dict[str, float]:
        """Greedy success rate per task on held-out init states."""
        return evaluate_policy(self.engine, self.policy, self.specs, self.cfg, self.cfg.num_eval_episodes_per_task
                               ).metrics()

    # -- checkpoints ------------------------------------------------------------------------------------------

    def save_checkpoint(self) -> Path:
        """Write ckpt-<step>/ atomically (temp dir + rename), then drop all but the newest keep_last ones."""
        final = self.run_dir / f"{CHECKPOINT_PREFIX}{self.step:06d}"
        tmp = self.run_dir / f".tmp-{final.name}-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        self.policy.save_pretrained(tmp / "policy")
        state = {
            "step": self.step,
            "optimizer": self.optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "memory": self.memory.state_dict() if self.memory is not None else None,
        }
        torch.save(state, tmp / TRAINER_STATE_FILE)
        _fsync_tree(tmp)
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)
        for old in list_checkpoints(self.run_dir)[: -self.cfg.keep_last_checkpoints]:
            shutil.rmtree(old, ignore_errors=True)
        return final

    def _latest_checkpoint(self) -> Path:
        ckpts = list_checkpoints(self.run_dir)
        if not ckpts:
            raise FileNotFoundError(f"nothing to resume in {self.run_dir}: no complete {CHECKPOINT_PREFIX}* directory")
        for stale in self.run_dir.glob(".tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)  # a checkpoint cut short by a kill
        return ckpts[-1]

    def _restore_state(self, latest: Path) -> None:
        state = torch.load(latest / TRAINER_STATE_FILE, weights_only=False)
        self.optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        if self.memory is not None and state.get("memory"):
            self.memory.load_state_dict(state["memory"])
        self.step = int(state["step"])
        self.metrics_log.truncate_after(self.step)
        log.info("resumed %s at step %d", self.run_dir, self.step)

    def _load_or_make_reference(self) -> Any:
        """The frozen KL reference: the policy the run started from, kept in the run dir so a resume finds it."""
        path = self.run_dir / REFERENCE_DIR
        if not path.exists():
            if self.step > 0:
                raise FileNotFoundError(f"{path} is missing: the KL reference of this run cannot be recovered")
            self.policy.save_pretrained(path)
        ref = load_policy_checkpoint(self.cfg, path)
        ref.requires_grad_(False)
        ref.train(False)
        return ref

    # -- outputs ----------------------------------------------------------------------------------------------

    def _save_step_arrays(
        self,
        step: int,
        trajs: Sequence[Trajectory],
        rewards: np.ndarray,
        advantages: np.ndarray,
        distance: np.ndarray,
    ) -> None:
        """Per-trajectory rewards of the step (for `srpo report`): small .npz under steps/."""
        out = self.run_dir / "steps"
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

    def _save_videos(self, step: int, trajs: Sequence[Trajectory], rewards: np.ndarray) -> None:
        n = self.cfg.num_videos_per_step
        if n == 0:
            return
        from srpo.video import write_labelled_video

        # Show both outcomes when the batch has both: first successes, then failures, alternating.
        succ = [i for i, t in enumerate(trajs) if t.success]
        fail = [i for i, t in enumerate(trajs) if not t.success]
        chosen = [x for pair in zip(succ, fail, strict=False) for x in pair] + succ[len(fail):] + fail[len(succ):]
        for i in chosen[:n]:
            t = trajs[i]
            name = f"step{step:06d}_task{t.task_id}_rollout{t.rollout_id}_{'success' if t.success else 'failure'}"
            write_labelled_video(self.run_dir / "videos" / f"{name}_r{rewards[i]:.3f}.mp4", t.frames,
                                 f"task {t.task_id} {'SUCCESS' if t.success else 'failure'} reward {rewards[i]:.3f}",
                                 float(rewards[i]), t.success)

    def _summary_line(self, m: dict[str, float]) -> str:
        parts = [f"step {self.step:4d}", f"success {m.get('rollout/success_rate', float('nan')):.3f}",
                 f"reward {m.get('reward/mean', float('nan')):.3f}", f"loss {m.get('loss/policy', float('nan')):+.4f}",
                 f"kl {m.get('ppo/approx_kl', float('nan')):.4f}"]
        if "eval/success_rate" in m:
            parts.append(f"eval {m['eval/success_rate']:.3f}")
        # Only the loop's own phases: the engine's time/rollout_policy_s and time/rollout_env_s lie inside rollout.
        parts.append(f"time {sum(m.get(f'time/{p}_s', 0.0) for p in PHASES):.1f}s")
        return " | ".join(parts)

    def close(self) -> None:
        self.engine.close()
        if self.learners is not None:
            self.learners.close()
        close_encoder = getattr(self.encoder, "close", None)  # a RayEncoder ends its actor
        if close_encoder is not None:
            close_encoder()
        self.metrics_log.close()

    def __enter__(self) -> Trainer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _accumulate(total: EpisodeStats, stats: EpisodeStats) -> None:
    total.num_episodes += stats.num_episodes
    total.num_env_steps += stats.num_env_steps
    total.num_worker_restarts += stats.num_worker_restarts
    total.num_episode_retries += stats.num_episode_retries
    for k, v in stats.extra.items():
        # Counts and times add up over refill rounds; rates do not (the step's rate is computed from its
        # kept trajectories instead).
        if not k.endswith("_rate"):
            total.extra[k] = total.extra.get(k, 0.0) + v


def _rollout_metrics(
    trajs: Sequence[Trajectory], stats: EpisodeStats, rewards: np.ndarray, advantages: np.ndarray, success: np.ndarray
) -> dict[str, float]:
    return {
        "rollout/success_rate": float(success.mean()),
        "rollout/num_trajectories": len(trajs),
        "rollout/episode_length_mean": float(np.mean([t.finish_step for t in trajs])),
        "rollout/num_env_steps": stats.num_env_steps,
        "rollout/num_worker_restarts": stats.num_worker_restarts,
        "rollout/num_episode_retries": stats.num_episode_retries,
        **{k: float(v) for k, v in stats.extra.items()},
        "reward/mean": float(rewards.mean()),
        "advantage/abs_mean": float(np.abs(advantages).mean()),
    }


def _fsync_tree(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())


def resume_config(run_dir: str | Path, overrides: list[str] | None = None) -> TrainConfig:
    """The config a run was started with (its config.yaml), with optional overrides (e.g. more num_steps)."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: {run_dir} is not an srpo run directory")
    return load_config(path, overrides=[*(overrides or []), f"run_dir={run_dir}"])
