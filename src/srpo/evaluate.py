"""Evaluation on held-out initial states: per-task success (`srpo eval`, and the trainer's evaluate phase).

Greedy (arg-max action bins) by default; `srpo eval --sample-temperature T` samples at T instead, the policy the
trainer rolls out, from the torch RNG seeded by the config's `seed`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from srpo.build import apply_torch_threads, make_env_factory, make_policy
from srpo.config.train import TrainConfig
from srpo.envs.base import TaskSpec
from srpo.errors import SrpoError
from srpo.policies.base import Policy
from srpo.rollout import EpisodeRequest, RolloutEngine
from srpo.types import Trajectory

# z of a two-sided 95 % normal interval.
Z_95 = 1.959963984540054


def wilson_interval(num_successes: int, num_trials: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of a binomial success rate (95 % by default).

    With p̂ = k / n:  centre = (p̂ + z²/2n) / (1 + z²/n),  half-width = z / (1 + z²/n) · √(p̂(1 − p̂)/n + z²/4n²).
    Unlike p̂ ± z·√(p̂(1 − p̂)/n) it stays inside [0, 1] and does not collapse to a point at 0 or n successes.

    Args:
        num_successes: k, successes among the trials, 0 <= k <= n.
        num_trials: n >= 0; n = 0 (nothing measured, e.g. a perturbation dimension with no runnable task) gives
            the uninformative (0, 1).
        z: Normal quantile of the interval (1.96 for 95 %).

    Returns:
        (low, high), 0 <= low <= k/n <= high <= 1.
    """
    if num_trials < 0 or not 0 <= num_successes <= num_trials:
        raise ValueError(f"need 0 <= num_successes <= num_trials, got {num_successes} of {num_trials}")
    if num_trials == 0:
        return 0.0, 1.0
    n, p = float(num_trials), num_successes / num_trials
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # At k = 0 (k = n) the bound is exactly 0 (1) in real arithmetic; do not let rounding move it.
    low = 0.0 if num_successes == 0 else max(0.0, centre - half)
    high = 1.0 if num_successes == num_trials else min(1.0, centre + half)
    # And keep p̂ inside for k strictly between (rounding can otherwise cross it by an ulp near the ends).
    return min(low, p), max(high, p)


def difference_interval(
    successes_a: int, trials_a: int, successes_b: int, trials_b: int, z: float = Z_95
) -> tuple[float, float]:
    """Newcombe's hybrid score interval of p_b − p_a from the two Wilson intervals (independent samples).

    With (l_a, u_a), (l_b, u_b) the Wilson intervals and d = p̂_b − p̂_a:
    low = d − √((p̂_b − l_b)² + (u_a − p̂_a)²),  high = d + √((u_b − p̂_b)² + (p̂_a − l_a)²).

    Returns:
        (low, high) in [−1, 1].
    """
    low_a, high_a = wilson_interval(successes_a, trials_a, z)
    low_b, high_b = wilson_interval(successes_b, trials_b, z)
    p_a, p_b = successes_a / trials_a, successes_b / trials_b
    d = p_b - p_a
    return (max(-1.0, d - math.hypot(p_b - low_b, high_a - p_a)),
            min(1.0, d + math.hypot(high_b - p_b, p_a - low_a)))


def mcnemar_exact_p(a_only: int, b_only: int) -> float:
    """Two-sided exact McNemar p-value: the discordant pairs against Binomial(a_only + b_only, 1/2).

    Args:
        a_only: Pairs where only the first condition succeeded.
        b_only: Pairs where only the second did.

    Returns:
        min(1, 2 · P[X <= min(a_only, b_only)]), X ~ Binomial(a_only + b_only, 1/2); 1.0 without discordant pairs.
    """
    if a_only < 0 or b_only < 0:
        raise ValueError(f"counts must be >= 0, got {a_only} and {b_only}")
    n = a_only + b_only
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(a_only, b_only) + 1)) / 2**n
    return min(1.0, 2 * tail)


def paired_success_difference(pairs: Sequence[tuple[bool | int, bool | int]], num_resamples: int = 10_000,
                              seed: int = 0) -> dict[str, Any]:
    """Success of b minus success of a over N paired episodes (the same task and init state under both).

    Args:
        pairs: (N,) of (a succeeded, b succeeded), N >= 1.
        num_resamples: Bootstrap resamples of the pairs.
        seed: Seed of the resampling.

    Returns:
        {"difference": mean of the N differences b − a, "ci95": percentile bootstrap interval over the pairs,
        "num_pairs": N, "b_only": pairs only b won, "a_only": pairs only a won, "mcnemar_p": exact McNemar}.
    """
    from srpo.diversity import bootstrap_ci

    if not pairs:
        raise ValueError("paired_success_difference needs at least one pair of episodes")
    diffs = np.asarray([int(b) - int(a) for a, b in pairs], dtype=np.float64)
    b_only, a_only = int((diffs > 0).sum()), int((diffs < 0).sum())
    low, high = bootstrap_ci(diffs, num_resamples=num_resamples, seed=seed)
    return {"difference": float(diffs.mean()), "ci95": [low, high], "num_pairs": len(diffs),
            "b_only": b_only, "a_only": a_only, "mcnemar_p": mcnemar_exact_p(a_only, b_only)}


def _cluster_resampled_means(values: np.ndarray, clusters: Sequence[Any], num_resamples: int,
                             seed: int) -> tuple[np.ndarray, int]:
    """Cluster bootstrap of row means: resample the C clusters with replacement and pool each row over the drawn
    clusters' columns, Σ_c S_ic / Σ_c n_c (S_ic the sum of row i over cluster c's columns, n_c its columns).

    Args:
        values: (m, N) rows of per-column values; column j belongs to cluster clusters[j].
        clusters: (N,) hashable cluster label of each column.
        num_resamples: R, bootstrap resamples.
        seed: Seed of the resampling.

    Returns:
        ((m, R) pooled means of each row per resample, C).
    """
    labels = {label: i for i, label in enumerate(dict.fromkeys(clusters))}
    index = np.asarray([labels[label] for label in clusters])
    sums = np.stack([np.bincount(index, weights=row, minlength=len(labels)) for row in values])  # (m, C)
    counts = np.bincount(index, minlength=len(labels)).astype(np.float64)  # (C,)
    draws = np.random.default_rng(seed).integers(0, len(labels), size=(num_resamples, len(labels)))
    return sums[:, draws].sum(axis=2) / counts[draws].sum(axis=1), len(labels)


def clustered_paired_difference(pairs: Sequence[tuple[bool | int, bool | int]], clusters: Sequence[Any],
                                num_resamples: int = 10_000, seed: int = 0) -> dict[str, Any]:
    """Success of b minus success of a over N paired episodes that come in correlated clusters (the same held-out
    init state played at every evaluation of a run), with a cluster bootstrap interval.

    Pooling a run's evaluations repeats each (task, init state) once per evaluation, and an easy state stays easy:
    the N pairs are not independent draws, and a bootstrap over pairs would give too narrow an interval. This one
    resamples the C clusters with replacement and takes the pooled difference of each resample,
    Σ_c S_c / Σ_c n_c (S_c the summed differences b − a of cluster c, n_c its pairs), then the percentile interval.
    No McNemar p here: it assumes independent pairs (use `paired_success_difference` within one evaluation).

    Args:
        pairs: (N,) of (a succeeded, b succeeded), N >= 1.
        clusters: (N,) hashable label of each pair's cluster, e.g. (task_id, init_state_id).
        num_resamples: Bootstrap resamples of the clusters.
        seed: Seed of the resampling.

    Returns:
        {"difference": mean of the N differences, "ci95": cluster bootstrap interval, "num_pairs": N,
        "num_clusters": C, "b_only": pairs only b won, "a_only": pairs only a won}.
    """
    if not pairs or len(pairs) != len(clusters):
        raise ValueError(f"clustered_paired_difference needs one cluster label per pair and at least one pair, got "
                         f"{len(pairs)} pairs and {len(clusters)} labels")
    if num_resamples < 1:
        raise ValueError(f"num_resamples={num_resamples} must be >= 1")
    diffs = np.asarray([int(b) - int(a) for a, b in pairs], dtype=np.float64)
    pooled, num_clusters = _cluster_resampled_means(diffs[None], clusters, num_resamples, seed)
    return {"difference": float(diffs.mean()),
            "ci95": [float(np.quantile(pooled[0], 0.025)), float(np.quantile(pooled[0], 0.975))],
            "num_pairs": len(diffs), "num_clusters": num_clusters,
            "b_only": int((diffs > 0).sum()), "a_only": int((diffs < 0).sum())}


@dataclass(frozen=True)
class SlopeEstimate:
    """Least-squares trend of an evaluation curve: success per training step, with a 95 % interval."""

    slope: float
    low: float
    high: float
    num_points: int

    def text(self, per: int = 100) -> str:
        """E.g. "+0.120 [+0.040, +0.200] per 100 steps (6 evaluations)"."""
        return (f"{per * self.slope:+.3f} [{per * self.low:+.3f}, {per * self.high:+.3f}] per {per} steps "
                f"({self.num_points} evaluations)")


def success_slope(steps: Sequence[int], successes: Sequence[int], trials: Sequence[int],
                  z: float = Z_95) -> SlopeEstimate:
    """Ordinary least-squares slope of evaluation success rates against training step, and its interval.

    With rates p̂_i = k_i / n_i at steps s_i (i = 1..m), the slope is b = Σ c_i p̂_i with
    c_i = (s_i − s̄) / Σ_j (s_j − s̄)². The evaluations are independent binomial samples, so
    Var(b) = Σ c_i² p_i (1 − p_i) / n_i exactly, whether or not the curve is linear; p_i is estimated by the
    add-one rate p̃_i = (k_i + 1) / (n_i + 2), so that a curve of zeros still gets an interval of nonzero width.
    The interval is b ± z √Var(b): the trend of the expected success over the run, not a model of its shape.

    Args:
        steps: (m,) training steps of the evaluations, at least two distinct.
        successes: (m,) k_i, successes per evaluation.
        trials: (m,) n_i >= 1, episodes per evaluation.
        z: Normal quantile (1.96 for 95 %).

    Returns:
        SlopeEstimate with slope, low, high in success per step.
    """
    s = np.asarray(steps, dtype=np.float64)
    k = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    if not (s.ndim == 1 and s.shape == k.shape == n.shape):
        raise ValueError(f"steps, successes and trials must be 1-D of one length, got {s.shape}, {k.shape}, {n.shape}")
    if np.any(n < 1) or np.any(k < 0) or np.any(k > n):
        raise ValueError("every evaluation needs trials >= 1 and 0 <= successes <= trials")
    centred = s - s.mean()
    sxx = float((centred ** 2).sum())
    if sxx == 0.0:
        raise ValueError(f"a slope needs evaluations at two or more different steps, got steps {list(steps)}")
    c = centred / sxx
    slope = float(c @ (k / n))
    p_tilde = (k + 1) / (n + 2)
    half = z * math.sqrt(float((c ** 2 * p_tilde * (1 - p_tilde) / n).sum()))
    return SlopeEstimate(slope, slope - half, slope + half, len(s))


def paired_success_slope(steps: Sequence[int], outcomes: np.ndarray, clusters: Sequence[Any],
                         num_resamples: int = 10_000, seed: int = 0) -> SlopeEstimate:
    """Least-squares slope of evaluation success against training step when every evaluation plays the same
    episodes (the same task and held-out init state in each column), with a cluster bootstrap interval.

    `success_slope` treats the m evaluations as independent binomial samples. A run evaluated on one fixed set of
    held-out states is not: an easy state stays easy, so the evaluations' rates are positively correlated, and
    with Σ c_i = 0 that correlation cancels from the slope, b = Σ c_i p̂_i with c_i = (s_i − s̄) / Σ_j (s_j − s̄)².
    This interval keeps the pairing: it resamples the C clusters (init states) with replacement, takes each
    evaluation's pooled rate over the resampled columns, Σ_c S_ic / Σ_c n_c (S_ic the successes of cluster c at
    evaluation i, n_c its columns), the slope of those rates, and the percentile interval of the slopes. It is the
    trend over this run's evaluations on the population of states the clusters were drawn from; like
    `success_slope`, it says nothing about other seeds.

    Args:
        steps: (m,) training steps of the evaluations, at least two distinct.
        outcomes: (m, N) success (bool or 0/1) of column j's episode at evaluation i; column j is one episode slot,
            the same task and init state at every evaluation.
        clusters: (N,) hashable label of each column's cluster, e.g. (task_id, init_state_id).
        num_resamples: Bootstrap resamples of the clusters (>= 1).
        seed: Seed of the resampling.

    Returns:
        SlopeEstimate with slope, low, high in success per step.
    """
    s = np.asarray(steps, dtype=np.float64)
    y = np.asarray(outcomes, dtype=np.float64)
    if s.ndim != 1 or y.ndim != 2 or y.shape[0] != s.shape[0] or y.shape[1] == 0:
        raise ValueError(f"outcomes must be (m, N) with N >= 1 and one row per step, got steps {s.shape} and "
                         f"outcomes {y.shape}")
    if len(clusters) != y.shape[1]:
        raise ValueError(f"one cluster label per column: {y.shape[1]} columns, {len(clusters)} labels")
    if np.any((y != 0) & (y != 1)):
        raise ValueError("outcomes must be successes: bool or 0/1")
    if num_resamples < 1:
        raise ValueError(f"num_resamples={num_resamples} must be >= 1")
    centred = s - s.mean()
    sxx = float((centred ** 2).sum())
    if sxx == 0.0:
        raise ValueError(f"a slope needs evaluations at two or more different steps, got steps {list(steps)}")
    c = centred / sxx
    rates, _ = _cluster_resampled_means(y, clusters, num_resamples, seed)  # (m, num_resamples)
    slopes = c @ rates
    return SlopeEstimate(float(c @ y.mean(axis=1)), float(np.quantile(slopes, 0.025)),
                         float(np.quantile(slopes, 0.975)), len(s))


def before_after_line(records: Sequence[dict[str, Any]]) -> str | None:
    """The main job's summary: held-out greedy success before and after training, with 95 % intervals.

    Args:
        records: Metric records of a run (`metrics.jsonl`), each with "step"; evaluations carry
            eval/num_successes and eval/num_episodes (pooled over tasks).

    Returns:
        One line, or None when the run has fewer than two evaluations with counts.
    """
    evals = [r for r in records if "eval/num_episodes" in r and r["eval/num_episodes"] > 0]
    if len(evals) < 2:
        return None
    first, last = evals[0], evals[-1]
    k0, n0 = int(first["eval/num_successes"]), int(first["eval/num_episodes"])
    k1, n1 = int(last["eval/num_successes"]), int(last["eval/num_episodes"])
    lo0, hi0 = wilson_interval(k0, n0)
    lo1, hi1 = wilson_interval(k1, n1)
    dlo, dhi = difference_interval(k0, n0, k1, n1)
    return (f"held-out greedy success: step {first['step']} {k0}/{n0} = {k0 / n0:.3f} [95% CI {lo0:.3f}, {hi0:.3f}]"
            f" -> step {last['step']} {k1}/{n1} = {k1 / n1:.3f} [{lo1:.3f}, {hi1:.3f}]; "
            f"change {k1 / n1 - k0 / n0:+.3f} [{dlo:+.3f}, {dhi:+.3f}] (Wilson / Newcombe intervals)")


def init_state_split(cfg: TrainConfig, num_init_states: int, split: str) -> list[int]:
    """Initial-state ids of the train or eval split; disjoint unless the user opted in (LIBERO's
    `train_on_eval_states`)."""
    if split not in ("train", "eval"):
        raise ValueError(f"split={split!r}: choose 'train' or 'eval'")
    if cfg.env.kind == "libero":
        return list(cfg.env.libero.init_state_ids(split, num_init_states))  # type: ignore[arg-type]
    num_eval = cfg.env.tabletop_num_eval_init_states
    ids = list(range(num_init_states))
    return ids[-num_eval:] if split == "eval" else ids[:-num_eval]


def mode_label(temperature: float | None) -> str:
    """How an evaluation decodes actions: "greedy" (`temperature` None), or "sampled T=<temperature>"."""
    return "greedy" if temperature is None else f"sampled T={temperature:g}"


@dataclass
class EvalResult:
    """Per-task success on held-out states, greedy (`temperature` None) or sampled at `temperature`."""

    success_rate: dict[int, float]
    instructions: dict[int, str]
    num_episodes: dict[int, int]
    trajectories: list[Trajectory]
    temperature: float | None = None

    @property
    def mode(self) -> str:
        """"greedy", or "sampled T=<temperature>"."""
        return mode_label(self.temperature)

    @property
    def mean(self) -> float:
        return float(np.mean(list(self.success_rate.values())))

    @property
    def num_successes(self) -> int:
        """Successful episodes over all tasks."""
        return sum(bool(t.success) for t in self.trajectories)

    def episode_records(self) -> list[dict[str, Any]]:
        """Per episode, in run order: task, init state, outcome and length (eval.json's "episodes")."""
        return [{"task_id": t.task_id, "init_state_id": t.init_state_id, "success": bool(t.success),
                 "num_steps": t.finish_step} for t in self.trajectories]

    def metrics(self) -> dict[str, float]:
        out = {f"eval/success_rate_task{t}": r for t, r in self.success_rate.items()}
        out["eval/success_rate"] = self.mean
        # Pooled counts, for binomial intervals (before_after_line).
        out["eval/num_successes"] = float(self.num_successes)
        out["eval/num_episodes"] = float(sum(self.num_episodes.values()))
        return out

    def table(self) -> str:
        lines = [f"{'task':>4} {'episodes':>8} {'success':>8}  instruction"]
        for t, r in self.success_rate.items():
            lines.append(f"{t:>4} {self.num_episodes[t]:>8} {r:>8.3f}  {self.instructions[t]}")
        lines.append(f"{'mean':>4} {sum(self.num_episodes.values()):>8} {self.mean:>8.3f}")
        return "\n".join(lines)


def _check_temperature(temperature: float | None, cfg: TrainConfig) -> None:
    if temperature is not None and not (math.isfinite(temperature) and temperature > 0):
        raise SrpoError(f"temperature={temperature} is invalid for a sampled evaluation: set a float > 0, e.g. the "
                        f"training temperature {cfg.algo.temperature} (algo.temperature), or leave it out for greedy")


def evaluate_policy(
    engine: RolloutEngine,
    policy: Policy,
    specs: list[TaskSpec],
    cfg: TrainConfig,
    episodes_per_task: int,
    temperature: float | None = None,
    on_episode: Callable[[Trajectory], None] | None = None,
) -> EvalResult:
    """Episodes on each task's held-out init states (cycling through them if more episodes are asked).

    Greedy (the arg-max bins) when `temperature` is None; otherwise sampled at `temperature` from the global torch
    RNG, so a caller that seeds it gets a repeatable evaluation. A greedy episode of an init state repeats exactly,
    a sampled one does not: more sampled episodes than held-out states measure the sampled policy more finely.
    `on_episode` is called with each episode as it finishes (`RolloutEngine.collect`).
    """
    _check_temperature(temperature, cfg)
    requests: list[EpisodeRequest] = []
    for spec in specs:
        ids = init_state_split(cfg, spec.num_init_states, "eval")
        for k in range(episodes_per_task):
            requests.append(EpisodeRequest(spec.task_id, ids[k % len(ids)], len(requests), len(requests)))
    if temperature is None:
        trajs, _ = engine.collect(policy, requests, cfg.algo.temperature, greedy=True, on_episode=on_episode)
    else:
        trajs, _ = engine.collect(policy, requests, temperature, greedy=False, on_episode=on_episode)
    rates, counts = {}, {}
    for spec in specs:
        s = [t.success for t in trajs if t.task_id == spec.task_id]
        rates[spec.task_id] = float(np.mean(s))
        counts[spec.task_id] = len(s)
    return EvalResult(rates, {s.task_id: s.instruction for s in specs}, counts, trajs, temperature)


def evaluate_checkpoint(
    cfg: TrainConfig,
    checkpoint: str | None,
    episodes_per_task: int,
    videos_per_task: int,
    out_dir: str | Path,
    temperature: float | None = None,
    show_progress: bool = True,
) -> EvalResult:
    """`srpo eval`: load a policy checkpoint, evaluate it (greedy, or sampled at `temperature` with the torch RNG
    seeded by `cfg.seed`), write eval.json and labelled videos. `show_progress`: a bar over the episodes with their
    running success count and an ETA (stderr)."""
    from tqdm import tqdm

    from srpo.video import write_labelled_video

    if episodes_per_task < 1:
        raise SrpoError(f"--episodes={episodes_per_task} is invalid: set it to an int >= 1 (episodes per task)")
    if videos_per_task < 0:
        raise SrpoError(f"--videos={videos_per_task} is invalid: set it to an int >= 0 (videos per task)")
    _check_temperature(temperature, cfg)
    if checkpoint is not None:
        cfg = replace(cfg, policy=replace(cfg.policy, checkpoint=checkpoint))
    apply_torch_threads(cfg)  # the threads training ran with, so that this evaluation repeats the in-run one
    policy = make_policy(cfg)
    factory = make_env_factory(cfg)
    specs = factory.task_specs()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if temperature is not None:
        torch.manual_seed(cfg.seed)  # after the policy is built: the sampled actions depend on the seed alone
    bar = tqdm(total=episodes_per_task * len(specs), desc=f"srpo eval ({mode_label(temperature)})", unit="episode",
               disable=not show_progress, dynamic_ncols=True)
    successes = 0

    def finished(traj: Trajectory) -> None:
        nonlocal successes
        successes += bool(traj.success)
        bar.set_postfix(successes=successes, refresh=False)
        bar.update(1)

    try:
        with RolloutEngine(factory, cfg.rollout) as engine:
            result = evaluate_policy(engine, policy, specs, cfg, episodes_per_task, temperature, finished)
    finally:
        bar.close()
    for spec in specs:
        for t in [t for t in result.trajectories if t.task_id == spec.task_id][:videos_per_task]:
            outcome = "success" if t.success else "failure"
            write_labelled_video(out / f"task{t.task_id}_init{t.init_state_id}_{outcome}.mp4", t.frames,
                                 f"task {t.task_id} {outcome}", 1.0 if t.success else 0.0, t.success)
    num_episodes = sum(result.num_episodes.values())
    (out / "eval.json").write_text(json.dumps({
        "checkpoint": cfg.policy.checkpoint,
        "mode": "greedy" if temperature is None else "sampled",
        "temperature": temperature,
        "seed": None if temperature is None else cfg.seed,
        "success_rate": {str(k): v for k, v in result.success_rate.items()},
        "mean": result.mean,
        "episodes_per_task": episodes_per_task,
        "num_successes": result.num_successes,
        "num_episodes": num_episodes,
        "wilson95": list(wilson_interval(result.num_successes, num_episodes)),
        # Per episode, in run order: two evaluations of the same states pair episode by episode (more episodes
        # than held-out states cycle through them, so a (task, init state) pair can repeat).
        "episodes": result.episode_records(),
        "instructions": {str(k): v for k, v in result.instructions.items()},
    }, indent=2))
    return result
