"""Offline SRPO: advantage-weighted behaviour cloning on recorded episodes (the paper's real-robot setting).

    load → embed → reward → advantage → weights, once over the dataset; then per step: update → evaluate →
    checkpoint, each timed into the metrics.

- load: a LeRobot v3 folder or LIBERO HDF5 files (`srpo.lerobot`); every row becomes one sample: the image,
  state and instruction the policy saw, and its action chunk tokenised with the policy's own tokenizer.
- embed / reward: each episode's frames through the world-model encoder; per task, the dataset's successes are
  the reference set (self-referential; `reward.reference_source=external` takes them from
  `offline.reference_dataset` instead) and failures get the SRPO progress reward; successes get 1.
  A task with no success has no reference: its failures get `reward.no_reference_reward` (0 by default), so
  with all episodes of the task equal their advantage is 0 and their AWR weight exp(0) = 1, i.e. that task is
  plain behaviour-cloned. The count of such tasks is logged as `dataset/num_tasks_without_success`.
- advantage: A = r − mean reward of the episode's task over the dataset (`task_baseline_advantages`).
- weights, by arm: bc 1; filtered_bc 1 for successes, 0 for failures; awr_binary / awr_srpo
  min(exp(A / β), max_weight) over the binary / SRPO reward (`awr_weights`); every row of an episode carries
  the episode's weight.
- update: mini-batches drawn uniformly from rows with weight > 0; loss Σ w·NLL / Σ w over the batch
  (`weighted_nll_loss`), AdamW at algo.lr (scaled per step by algo.lr_schedule), gradient clip algo.grad_clip.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from srpo.algo.advantages import task_baseline_advantages
from srpo.algo.losses import awr_weights, weighted_nll_loss
from srpo.build import make_env_factory, make_rollout_engine, start_run
from srpo.config.train import TrainConfig
from srpo.errors import SrpoError
from srpo.evaluate import EvalResult, evaluate_policy
from srpo.lerobot import DatasetEpisode, read_dataset
from srpo.policies.base import PolicyInput, TrainablePolicy
from srpo.policies.tokenizer import ActionTokenizer
from srpo.reward.progress import compute_progress_rewards
from srpo.run_dir import (
    STEPS_DIR,
    timed,
    write_checkpoint,
    write_eval_arrays,
)
from srpo.sft import action_chunks
from srpo.update import set_learning_rate, step_learning_rate

log = logging.getLogger(__name__)

OFFLINE_PHASES = ("load", "embed", "reward", "advantage", "update", "evaluate", "checkpoint")


# ---------------------------------------------------------------------------------------------------------------
# Per-episode weights: pure numpy/torch.


def episode_weights(
    arm: str, success: np.ndarray, rewards: np.ndarray, task_ids: np.ndarray, beta: float, max_weight: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per-episode weights of one arm.

    Args:
        arm: "bc", "filtered_bc", "awr_binary" or "awr_srpo".
        success: (N,) bool.
        rewards: (N,) rewards used by "awr_srpo" (SRPO progress; successes 1).
        task_ids: (N,) int.
        beta: AWR temperature β > 0.
        max_weight: Clip of exp(A / β).

    Returns:
        (weights (N,), advantages (N,)) float64; the advantages are 0 for the BC arms.
    """
    s = np.asarray(success, dtype=bool)
    n = s.shape[0]
    if arm == "bc":
        return np.ones(n), np.zeros(n)
    elif arm == "filtered_bc":
        return s.astype(np.float64), np.zeros(n)
    elif arm in ("awr_binary", "awr_srpo"):
        r = s.astype(np.float64) if arm == "awr_binary" else np.asarray(rewards, dtype=np.float64)
        adv, _ = task_baseline_advantages(r, task_ids)
        w = awr_weights(torch.as_tensor(adv), beta, max_weight).numpy().astype(np.float64)
        return w, adv
    else:
        raise SrpoError(f"offline.arm={arm!r} is invalid: choose 'bc', 'filtered_bc', 'awr_binary' or 'awr_srpo'")


# ---------------------------------------------------------------------------------------------------------------
# Samples.


@dataclass
class OfflineSamples:
    """Every row of the dataset as a policy sample: M rows, L = chunk_size · action_dim tokens.

    Attributes:
        images: (M, H, W, 3) uint8.
        states: (M, S) float32.
        instructions: M strings.
        tokens: (M, L) int64 target action tokens.
        episode: (M,) int index into the episode list of each row.
    """

    images: np.ndarray
    states: np.ndarray
    instructions: list[str]
    tokens: np.ndarray
    episode: np.ndarray

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    def policy_input(self, idx: np.ndarray) -> PolicyInput:
        return PolicyInput(self.images[idx], self.states[idx], [self.instructions[i] for i in idx])


def episode_chunks(ep: DatasetEpisode, chunk_size: int) -> np.ndarray:
    """(T, chunk_size, A) target chunk of every row: a chunk row's own chunk (cut to chunk_size), or for per-step
    rows actions t .. t + chunk_size − 1 padded by repeating the last (as `srpo sft` does)."""
    if ep.actions.ndim == 2:
        return action_chunks(ep.actions, chunk_size)
    k = ep.actions.shape[1]
    if k < chunk_size:
        raise SrpoError(f"episode {ep.episode_index} stores chunks of {k} actions per row but the policy decodes "
                        f"{chunk_size}: set policy.chunk_size <= {k} or record with the policy's chunk size")
    return ep.actions[:, :chunk_size]


def build_samples(episodes: Sequence[DatasetEpisode], tokenizer: ActionTokenizer, chunk_size: int,
                  image_size: int | None = None) -> OfflineSamples:
    """Turn episodes into samples with tokenised chunks; images resized (nearest) to image_size when they differ."""
    images, states, instructions, tokens, owner = [], [], [], [], []
    for i, ep in enumerate(episodes):
        chunks = episode_chunks(ep, chunk_size)
        if chunks.shape[-1] != tokenizer.action_dim:
            raise SrpoError(f"episode {ep.episode_index}: actions have {chunks.shape[-1]} dimensions but the policy "
                            f"decodes {tokenizer.action_dim}")
        images.append(_resize(ep.images, image_size))
        states.append(ep.states.astype(np.float32))
        instructions += [ep.instruction] * ep.num_rows
        tokens.append(tokenizer.encode_chunk(chunks))
        owner.append(np.full(ep.num_rows, i))
    if not tokens:
        raise SrpoError("the dataset holds no episodes")
    state_dims = {s.shape[1] for s in states}
    if len(state_dims) > 1:
        raise SrpoError(f"episodes disagree in state size {sorted(state_dims)}")
    return OfflineSamples(np.concatenate(images), np.concatenate(states), instructions, np.concatenate(tokens),
                          np.concatenate(owner))


def _resize(images: np.ndarray, size: int | None) -> np.ndarray:
    if size is None or images.shape[1:3] == (size, size):
        return images
    h, w = images.shape[1:3]
    rows = (np.arange(size) * h // size).clip(0, h - 1)
    cols = (np.arange(size) * w // size).clip(0, w - 1)
    return np.ascontiguousarray(images[:, rows][:, :, cols])


# ---------------------------------------------------------------------------------------------------------------
# The run.


class OfflineTrainer:
    """Owns the policy, optimizer, dataset samples and run directory of one offline run.

    Args:
        cfg: The validated config tree (its `offline` section names the dataset and the arm).
        resume: Continue from the newest complete checkpoint in cfg.run_dir.
        policy: Optionally an already-built policy; built from cfg.policy otherwise.
        show_progress: Progress bar and one summary line per evaluation.
        evaluate_start: Evaluate the starting policy before the first step (when evaluation is on).
    """

    def __init__(self, cfg: TrainConfig, resume: bool = False, policy: Any = None, show_progress: bool = True,
                 evaluate_start: bool = True) -> None:
        if not cfg.offline.dataset:
            raise SrpoError("offline.dataset is empty: pass --dataset DIR (a LeRobot v3 folder or LIBERO HDF5 files)")
        self.cfg = cfg
        self.run_dir = Path(cfg.run_dir)
        self.show_progress = show_progress
        self.evaluate_start = evaluate_start
        run = start_run(cfg, resume, policy)
        self.policy: TrainablePolicy = run.policy
        self.optimizer = run.optimizer
        self.metrics_log = run.metrics_log
        self.step = run.step
        self.engine: Any = None
        self.specs: list[Any] = []
        if cfg.num_eval_episodes_per_task > 0:
            factory = make_env_factory(cfg)
            self.specs = factory.task_specs()
            self.engine = make_rollout_engine(cfg, factory)
        self.episodes: list[DatasetEpisode] = []
        self.samples: OfflineSamples | None = None
        self.row_weights = np.zeros(0)
        self.prepare_metrics: dict[str, float] = {}
        self.last_eval: EvalResult | None = None

    # -- the loop ---------------------------------------------------------------------------------------------

    def train(self) -> list[dict[str, float]]:
        """Prepare the weighted dataset, then run cfg.num_steps optimiser steps. Returns the per-step metrics."""
        from tqdm import tqdm

        prep = self.prepare()
        if self.step == 0:
            if self.cfg.num_eval_episodes_per_task > 0 and self.evaluate_start:
                with timed(prep, "evaluate"):
                    prep.update(self.evaluate())
            self.metrics_log.write(0, prep)
        history = []
        bar = tqdm(total=self.cfg.num_steps, initial=self.step, desc=f"srpo offline ({self.cfg.offline.arm})",
                   unit="step", disable=not self.show_progress, dynamic_ncols=True)
        try:
            while self.step < self.cfg.num_steps:
                metrics: dict[str, float] = {}
                with timed(metrics, "update"):
                    metrics.update(self.update())
                self.step += 1
                is_last = self.step == self.cfg.num_steps
                if self.cfg.num_eval_episodes_per_task > 0 and (
                    is_last or (self.cfg.eval_every and self.step % self.cfg.eval_every == 0)
                ):
                    with timed(metrics, "evaluate"):
                        metrics.update(self.evaluate())
                    if self.show_progress:
                        bar.write(f"step {self.step:5d} | loss {metrics['loss/policy']:.4f} | eval "
                                  f"{metrics['eval/success_rate']:.3f}")
                if is_last or self.step % self.cfg.checkpoint_every == 0:
                    with timed(metrics, "checkpoint"):
                        self.save_checkpoint()
                self.metrics_log.write(self.step, metrics)
                history.append(metrics)
                bar.update(1)
        finally:
            bar.close()
        return history

    def prepare(self) -> dict[str, float]:
        """load → embed → reward → advantage → weights; returns their metrics (written as step 0)."""
        metrics: dict[str, float] = {}
        off = self.cfg.offline
        with timed(metrics, "load"):
            self.episodes = read_dataset(off.dataset, off.image_key, off.state_key, off.action_key, off.success_key,
                                         off.max_episodes)
            self.samples = build_samples(self.episodes, self.policy.tokenizer, self.policy.chunk_size,
                                         self.policy.input_image_size)
        success = np.asarray([e.success for e in self.episodes], dtype=bool)
        task_ids = np.asarray([e.task_index for e in self.episodes], dtype=np.int64)
        rewards, distance = success.astype(np.float64), np.full(success.shape, np.nan)
        if off.arm == "awr_srpo":
            with timed(metrics, "embed"):
                embeddings = self.embed([e.images for e in self.episodes])
            with timed(metrics, "reward"):
                rewards, distance = self.reward(embeddings, success, task_ids, metrics)
        with timed(metrics, "advantage"):
            weights, advantages = episode_weights(off.arm, success, rewards, task_ids, off.beta, off.max_weight)
        if not (weights > 0).any():
            raise SrpoError(f"offline.arm={off.arm!r} leaves no episode with positive weight (filtered_bc on a "
                            "dataset without successes?): choose another arm or dataset")
        self.row_weights = weights[self.samples.episode]
        tasks_with_success = set(task_ids[success].tolist())
        metrics.update({
            "dataset/num_episodes": len(self.episodes),
            "dataset/num_rows": len(self.samples),
            "dataset/num_tasks": len(set(task_ids.tolist())),
            "dataset/success_rate": float(success.mean()),
            "dataset/num_tasks_without_success": len(set(task_ids.tolist()) - tasks_with_success),
            "reward/mean": float(rewards.mean()),
            "advantage/abs_mean": float(np.abs(advantages).mean()),
            "weights/mean": float(weights.mean()),
            "weights/max": float(weights.max()),
            "weights/success_mean": float(weights[success].mean()) if success.any() else float("nan"),
            "weights/failure_mean": float(weights[~success].mean()) if (~success).any() else float("nan"),
            "weights/effective_sample_fraction": float(weights.sum() ** 2 / (weights**2).sum() / weights.size),
        })
        self._save_episode_arrays(rewards, advantages, weights, success, task_ids, distance)
        self.prepare_metrics = dict(metrics)
        return metrics

    def embed(self, videos: Sequence[np.ndarray]) -> np.ndarray:
        """(N, D) world-model embeddings of each episode's frames (built under a forked RNG, as `srpo train`)."""
        from srpo.reward.encoders import make_encoder

        with torch.random.fork_rng():
            encoder = make_encoder(self.cfg.encoder)
        out = [np.asarray(encoder.encode(list(videos[i:i + 16])), dtype=np.float32) for i in range(0, len(videos), 16)]
        close = getattr(encoder, "close", None)
        if close is not None:
            close()
        return np.concatenate(out)

    def reward(
        self, embeddings: np.ndarray, success: np.ndarray, task_ids: np.ndarray, metrics: dict[str, float]
    ) -> tuple[np.ndarray, np.ndarray]:
        """SRPO rewards over the dataset, the reference set per task (group ids = task ids)."""
        external = None
        if self.cfg.reward.reference_source == "external":
            external = self._external_reference(task_ids)
        out = compute_progress_rewards(embeddings, success, task_ids, task_ids, self.cfg.reward, external=external)
        fails = ~success
        if fails.any():
            metrics["reward/failure_progress_mean"] = float(out.rewards[fails].mean())
            metrics["reward/failure_progress_max"] = float(out.rewards[fails].max())
            metrics["reward/num_failures_shaped"] = int((out.diagnostics.reference_kind[fails] != "none").sum())
        return out.rewards, out.diagnostics.distance

    def _external_reference(self, task_ids: np.ndarray) -> dict[int, np.ndarray]:
        """Successes of offline.reference_dataset, matched to this dataset's tasks by instruction."""
        off = self.cfg.offline
        if not off.reference_dataset:
            raise SrpoError("reward.reference_source='external' needs offline.reference_dataset (expert episodes)")
        ref = [e for e in read_dataset(off.reference_dataset, off.image_key, off.state_key, off.action_key,
                                       off.success_key) if e.success]
        task_of = {e.instruction: e.task_index for e in self.episodes}
        emb = self.embed([e.images for e in ref])
        out: dict[int, list[np.ndarray]] = {}
        for e, h in zip(ref, emb, strict=True):
            if e.instruction in task_of:
                out.setdefault(task_of[e.instruction], []).append(h)
        missing = sorted(set(task_ids.tolist()) - set(out))
        if missing:
            raise SrpoError(f"offline.reference_dataset has no successful episode for task(s) {missing}")
        return {k: np.stack(v) for k, v in out.items()}

    def update(self) -> dict[str, float]:
        """One optimiser step of weighted behaviour cloning on a mini-batch of rows with positive weight."""
        assert self.samples is not None, "prepare() first"
        gen = np.random.default_rng([self.cfg.seed, self.step])  # a function of (seed, step): resumable
        pool = np.flatnonzero(self.row_weights > 0)
        idx = gen.choice(pool, size=min(self.cfg.offline.batch_size, pool.size), replace=False)
        device = next(iter(self.policy.parameters())).device
        tokens = torch.as_tensor(self.samples.tokens[idx], device=device)
        weights = torch.as_tensor(self.row_weights[idx], dtype=torch.float32, device=device)
        self.policy.train(True)
        log_probs, _ = self.policy.token_log_probs(self.samples.policy_input(idx), tokens, 1.0)
        log_probs = log_probs.float()
        mask = torch.ones_like(tokens, dtype=torch.bool)
        loss, nll = weighted_nll_loss(log_probs, mask, weights)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss {loss.item()} at step {self.step}; lower algo.lr")
        lr = step_learning_rate(self.cfg.algo, self.step + 1, self.cfg.num_steps)  # the step being trained
        set_learning_rate(self.optimizer, lr)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        grad_norm = torch.nn.utils.clip_grad_norm_(params, self.cfg.algo.grad_clip)
        self.optimizer.step()
        self.policy.train(False)
        return {"loss/policy": loss.item(), "loss/nll_unweighted": float(nll.mean()), "grad/norm": float(grad_norm),
                "weights/batch_mean": float(weights.mean()), "optim/lr": lr}

    def evaluate(self) -> dict[str, float]:
        """Greedy success per task on the env's held-out init states; the episodes' outcomes go to
        steps/eval_<step>.npz (`write_eval_arrays`)."""
        self.last_eval = evaluate_policy(self.engine, self.policy, self.specs, self.cfg,
                                         self.cfg.num_eval_episodes_per_task)
        write_eval_arrays(self.run_dir, self.step, self.last_eval.trajectories)
        return self.last_eval.metrics()

    # -- outputs ----------------------------------------------------------------------------------------------

    def save_checkpoint(self) -> Path:
        """Write ckpt-<step>/ atomically; keep the newest keep_last_checkpoints."""
        state = {"step": self.step, "optimizer": self.optimizer.state_dict(), "torch_rng": torch.get_rng_state()}
        return write_checkpoint(self.run_dir, self.step, self.policy, state, self.cfg.keep_last_checkpoints,
                                self.cfg.keep_checkpoint_every)

    def _save_episode_arrays(self, rewards: np.ndarray, advantages: np.ndarray, weights: np.ndarray,
                             success: np.ndarray, task_ids: np.ndarray, distance: np.ndarray) -> None:
        """Per-episode rewards for `srpo report` (steps/step_000000.npz, the layout `srpo train` writes)."""
        out = self.run_dir / STEPS_DIR
        out.mkdir(exist_ok=True)
        np.savez(out / "step_000000.npz", rewards=rewards, advantages=advantages, weights=weights, success=success,
                 task_ids=task_ids, group_ids=task_ids,
                 finish_step=np.asarray([e.num_rows for e in self.episodes]), distance=distance)

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()
        self.metrics_log.close()

    def __enter__(self) -> OfflineTrainer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
