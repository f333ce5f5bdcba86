"""Online SRPO: rollout groups → dynamic sampling → embed → reward → advantages → PPO-clip update → evaluate →
checkpoint. Each phase is one call, timed into the step's metrics.

    trainer = Trainer(TrainConfig.preset("tabletop"))
    trainer.train()
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from srpo.algo.advantages import (
    advantage_mass,
    dynamic_sampling_mask,
    loss_weighted_advantage_mean,
    referenced_failure_group_mask,
    weight_failure_groups,
)
from srpo.build import (
    learner_threads,
    load_or_make_reference,
    make_env_factory,
    make_external_reference,
    make_reward_encoder,
    make_rollout_engine,
    start_run,
)
from srpo.config.train import TrainConfig
from srpo.evaluate import evaluate_policy, init_state_split
from srpo.policies.base import TrainablePolicy
from srpo.reward import ScoredBatch, SuccessMemory, srpo_advantages
from srpo.reward.encoders.base import VideoEncoder
from srpo.rollout import EpisodeRequest, RolloutEngine, make_group_requests
from srpo.run_dir import (
    PHASES,
    VIDEOS_DIR,
    timed,
    write_checkpoint,
    write_eval_arrays,
    write_step_arrays,
)
from srpo.types import EpisodeStats, Trajectory
from srpo.update import (
    local_update,
    make_minibatches,
    mean_stats,
    ppo_minibatch_loss,
    prepare_batch,
    set_learning_rate,
    step_learning_rate,
)
from srpo.watchdog import PhaseWatchdog

if TYPE_CHECKING:
    from srpo.distributed.learner import RayLearnerGroup

log = logging.getLogger(__name__)


class Trainer:
    """Owns the policy, optimizer, rollout engine, encoder and run directory of one online run.

    Args:
        cfg: The validated config tree.
        resume: Continue from the newest complete checkpoint in cfg.run_dir (the run's own config.yaml wins).
        policy: Optionally an already-built policy (tests, `srpo compare`); built from cfg.policy otherwise.
        show_progress: Progress bars (tqdm) and one summary line per step.
    """

    def __init__(
        self, cfg: TrainConfig, resume: bool = False, policy: TrainablePolicy | None = None,
        show_progress: bool = True,
    ) -> None:
        self.cfg = cfg
        self.run_dir = Path(cfg.run_dir)
        self.show_progress = show_progress
        run = start_run(cfg, resume, policy)
        self.policy: TrainablePolicy = run.policy
        self.optimizer = run.optimizer
        self.metrics_log = run.metrics_log
        self.step = run.step
        self.memory = SuccessMemory(cfg.reward.memory_size) if cfg.reward.memory_size > 0 else None
        if self.memory is not None and run.state is not None and run.state.get("memory"):
            self.memory.load_state_dict({k: np.asarray(v) for k, v in run.state["memory"].items()})
        self.watchdog = PhaseWatchdog({"embed": cfg.watchdog.embed_timeout_s, "update": cfg.watchdog.update_timeout_s},
                                      cfg.watchdog.grace_s)
        self.reference = (load_or_make_reference(cfg, self.policy, self.run_dir, self.step)
                          if cfg.algo.uses_reference else None)
        self.factory = make_env_factory(cfg)
        self.specs = self.factory.task_specs()
        self.engine: RolloutEngine = make_rollout_engine(cfg, self.factory)
        self.encoder: VideoEncoder | None = make_reward_encoder(cfg)
        self.external: dict[int, np.ndarray] | None = None
        if self.encoder is not None and cfg.reward.reference_source == "external":
            train_states = {s.task_id: init_state_split(cfg, s.num_init_states, "train") for s in self.specs}
            self.external = make_external_reference(cfg, self.encoder, self.factory, train_states, self.run_dir)
        self.learners: RayLearnerGroup | None = None
        if cfg.distributed.num_learners > 1:
            from srpo.distributed.learner import RayLearnerGroup

            # Replicas start from the driver's (possibly restored) weights and optimizer state; the driver's copy
            # is refreshed after every update so that it samples the next rollouts with the new policy.
            self.learners = RayLearnerGroup(self.policy, cfg.algo, cfg.distributed)
            self.learners.load_optimizer_state_dict(self.optimizer.state_dict())

    # -- the loop ---------------------------------------------------------------------------------------------

    def train(self, should_stop: Callable[[], bool] | None = None) -> list[dict[str, float]]:
        """Run cfg.num_steps steps (from the current step when resuming). Returns the per-step metrics.

        Args:
            should_stop: Polled after each step (e.g. `srpo.interrupt.StopOnSignal.requested`): when it returns
                True, the step just finished is checkpointed and the loop returns early. A stop that arrives
                between that poll and the next step lets the next step run and be checkpointed, so no finished
                step is ever left without a checkpoint.
        """
        from tqdm import tqdm

        stop_requested = should_stop or (lambda: False)

        history = []
        if self.step == 0 and self.cfg.num_eval_episodes_per_task > 0:
            self.metrics_log.write(0, self.evaluate())
        bar = tqdm(total=self.cfg.num_steps, initial=self.step, desc="srpo train", unit="step",
                   disable=not self.show_progress, dynamic_ncols=True)
        # Step of the newest checkpoint this loop can rely on: a resumed run starts from one; a fresh run has
        # nothing to lose at step 0.
        saved = self.step
        try:
            while self.step < self.cfg.num_steps:
                # A stop requested between steps ends the run here only if the last finished step is checkpointed;
                # otherwise one more step runs and is checkpointed below (a finished step is never lost).
                if stop_requested() and saved == self.step:
                    break
                metrics = self.train_step()
                self.step += 1
                is_last = self.step == self.cfg.num_steps
                if self.cfg.num_eval_episodes_per_task > 0 and (
                    is_last or (self.cfg.eval_every and self.step % self.cfg.eval_every == 0)
                ):
                    with timed(metrics, "evaluate"):
                        metrics.update(self.evaluate())
                stop = stop_requested()  # one reading decides both the checkpoint and the end of the loop
                if is_last or self.step % self.cfg.checkpoint_every == 0 or stop:
                    with timed(metrics, "checkpoint"):
                        self.save_checkpoint()
                    saved = self.step
                self.metrics_log.write(self.step, metrics)
                history.append(metrics)
                bar.update(1)
                if self.show_progress:
                    bar.write(self._summary_line(metrics))
                if stop:
                    break
        finally:
            bar.close()
        return history

    def train_step(self) -> dict[str, float]:
        """One step: rollout → embed → reward (→ advantages) → update, each timed."""
        metrics: dict[str, float] = {}
        with timed(metrics, "rollout"):
            trajs, stats = self.rollout(metrics)
        success = np.asarray([t.success for t in trajs], dtype=bool)
        task_ids = np.asarray([t.task_id for t in trajs], dtype=np.int64)
        group_ids = np.asarray([t.group_id for t in trajs], dtype=np.int64)
        # The env workers wait from here to the next rollout: the learner may use their cores (torch_learner_threads).
        with learner_threads(self.cfg), timed(metrics, "embed"), self.watchdog.watch("embed", self.step + 1):
            embeddings = self.embed(trajs)
        with learner_threads(self.cfg), timed(metrics, "reward"):
            scored = self.reward(embeddings, success, task_ids, group_ids, metrics)
        rewards, advantages, distance = scored.rewards, scored.advantages, scored.distance
        if self.cfg.algo.keep_referenced_failure_groups:  # all-failure groups SRPO can rank
            keep = self._failure_group_filter(rewards, success, group_ids, distance, metrics)
            trajs = [t for t, k in zip(trajs, keep, strict=True) if k]
            # Whole groups are dropped, so the advantages of the kept groups (normalised per group) stand.
            success, task_ids, group_ids, rewards, advantages, distance = (
                a[keep] for a in (success, task_ids, group_ids, rewards, advantages, distance))
        if self.cfg.algo.failure_group_adv_weight != 1.0:
            advantages = weight_failure_groups(advantages, success, group_ids, self.cfg.algo.failure_group_adv_weight)
        # How much of the step's advantage mass the all-failure groups carry (SRPO's failure ranking alone).
        share = advantage_mass(success, advantages, group_ids)["failure_group_abs_share"]
        metrics["advantage/failure_group_abs_share"] = share if np.isfinite(share) else 0.0
        # Groups whose advantages are not all zero: the ones that carry any learning signal this step.
        metrics["advantage/num_groups_with_signal"] = len(np.unique(group_ids[np.abs(advantages) > 0]))
        metrics["advantage/share_groups_with_signal"] = (metrics["advantage/num_groups_with_signal"]
                                                         / max(metrics["rollout/num_groups_sampled"], 1))
        with learner_threads(self.cfg), timed(metrics, "update"), self.watchdog.watch("update", self.step + 1):
            metrics.update(self.update(trajs, advantages))
        metrics.update(_rollout_metrics(trajs, stats, rewards, advantages, success))
        metrics["advantage/loss_weighted_mean"] = loss_weighted_advantage_mean(
            advantages, np.asarray([t.token_mask.sum() for t in trajs]),
            np.asarray([t.token_mask.any(axis=-1).sum() for t in trajs]), self.cfg.algo.aggregation)
        # Outputs are named by the step being trained (self.step + 1; self.step counts completed steps).
        write_step_arrays(self.run_dir, self.step + 1, trajs, rewards, advantages, distance)
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
        if num_groups < algo.num_prompts_per_step and algo.dynamic_sampling:
            log.warning(
                "step %d: dynamic sampling gave up after %d rounds (algo.max_sampling_rounds): %d of %d groups had a "
                "success rate in [algo.filter_low=%g, algo.filter_high=%g]; %s",
                self.step + 1, rounds, num_groups, algo.num_prompts_per_step, algo.filter_low, algo.filter_high,
                "training on the groups kept" if kept or candidates else
                "training on the last round's groups (zero advantages)")
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
    ) -> ScoredBatch:
        """SRPO progress rewards (the binary outcome for GRPO, which has no embeddings) and their group
        advantages, through the same `srpo_advantages` call that `srpo score` makes."""
        algo = self.cfg.algo
        scored = srpo_advantages(embeddings, success, task_ids, group_ids, self.cfg.reward, memory=self.memory,
                                 external=self.external, adv_eps=algo.adv_eps, adv_std=algo.adv_std)
        if scored.output is not None:
            out = scored.output
            fails = ~success
            if fails.any():
                metrics["reward/failure_progress_mean"] = float(out.rewards[fails].mean())
                metrics["reward/failure_progress_max"] = float(out.rewards[fails].max())
                metrics["reward/num_failures_shaped"] = int((out.diagnostics.reference_kind[fails] != "none").sum())
            metrics["reward/num_clusters_mean"] = float(out.diagnostics.num_clusters.mean())
        return scored

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
        """PPO-clip over mini-batches of action chunks (plus KL to the reference and entropy bonus).

        A batch whose advantages are all zero, with the entropy bonus off, takes no optimiser step: it carries no
        policy-gradient signal, and the KL term alone is not a safe step to take. While the policy still equals its
        reference, that term's gradient is float noise (the reference's log-probs are computed in other batch
        shapes), and Adam, with no earlier gradient to scale against, turns noise into full learning-rate steps:
        on the cpu preset at lr 5e-5 with 4 PPO epochs, the run's first step, without a success, moved the policy
        by approx KL 0.014 (after 60 steps of the preset's own training its KL to the SFT policy was 0.036). Its
        loss stats are still computed and logged, and `ppo/skipped_no_signal` is 1."""
        algo = self.cfg.algo
        lr = step_learning_rate(algo, self.step + 1, self.cfg.num_steps)  # self.step + 1: the step being trained
        set_learning_rate(self.optimizer, lr)
        batch, logprob_gap = prepare_batch(self.policy, self.reference, trajs, advantages, algo.temperature)
        minibatches = make_minibatches(len(batch), algo, np.random.default_rng([self.cfg.seed, self.step, 1]))
        if not np.any(np.asarray(advantages) != 0) and algo.entropy_coef == 0:
            with torch.no_grad():  # the first epoch's mini-batches, for the logged losses; nothing is stepped
                stats = [ppo_minibatch_loss(self.policy, batch, idx, algo)[1]
                         for idx in minibatches[:len(minibatches) // algo.ppo_epochs]]
            return {**mean_stats(stats), "ppo/lr": lr, "ppo/num_updates": 0, "ppo/num_chunks": len(batch),
                    "ppo/rollout_learner_logprob_gap": logprob_gap, "ppo/skipped_no_signal": 1.0}
        learner_restarts: int | None = None
        if self.learners is not None:
            # Data-parallel over the learner group: the same mini-batches and steps, gradients all-reduced (or
            # reduce-scattered under FSDP); a lost learner re-forms the group and re-runs the update.
            restarts_before = self.learners.num_restarts
            all_stats = self.learners.update(batch, minibatches, lr)
            learner_restarts = self.learners.num_restarts - restarts_before
            self.policy.load_state_dict(self.learners.state_dict())
            self.optimizer.load_state_dict(self.learners.optimizer_state_dict())
        else:
            all_stats = local_update(self.policy, self.optimizer, batch, minibatches, algo, self.step)
        out = mean_stats(all_stats)
        out["ppo/lr"] = lr
        out["ppo/num_updates"] = len(all_stats)
        out["ppo/num_chunks"] = len(batch)
        out["ppo/rollout_learner_logprob_gap"] = logprob_gap
        out["ppo/skipped_no_signal"] = 0.0
        if learner_restarts is not None:
            out["learner/num_restarts"] = learner_restarts  # group re-formations after a lost learner
        return out

    def evaluate(self) -> dict[str, float]:
        """Greedy success rate per task on held-out init states; the episodes' outcomes go to
        steps/eval_<step>.npz (`write_eval_arrays`)."""
        result = evaluate_policy(self.engine, self.policy, self.specs, self.cfg, self.cfg.num_eval_episodes_per_task)
        write_eval_arrays(self.run_dir, self.step, result.trajectories)
        return result.metrics()

    # -- checkpoints ------------------------------------------------------------------------------------------

    def save_checkpoint(self) -> Path:
        """Write ckpt-<step>/ atomically, then drop all but the newest keep_last ones."""
        state = {
            "step": self.step,
            "optimizer": self.optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(),
            # Tensors, not numpy arrays: the state is read back with torch.load(weights_only=True).
            "memory": ({k: torch.from_numpy(v) for k, v in self.memory.state_dict().items()}
                       if self.memory is not None else None),
        }
        return write_checkpoint(self.run_dir, self.step, self.policy, state, self.cfg.keep_last_checkpoints,
                                self.cfg.keep_checkpoint_every)

    # -- outputs ----------------------------------------------------------------------------------------------

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
            write_labelled_video(self.run_dir / VIDEOS_DIR / f"{name}_r{rewards[i]:.3f}.mp4", t.frames,
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
