"""`srpo compare`: SRPO and GRPO from the same initial policy, seeds and tasks; success against step for both
(with Wilson intervals where the evaluations logged their counts), the number of steps each needs to reach a
target success, each run's trend (least-squares slope of held-out success per step, with its interval), and each
arm's gain over its start across seeds (did it learn at all), beside the arms' differences paired by seed."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from srpo.config.train import TrainConfig
from srpo.errors import SrpoError
from srpo.evaluate import SlopeEstimate, success_slope, wilson_interval
from srpo.policies.base import TrainablePolicy
from srpo.report import plot_success_curves
from srpo.run_dir import list_checkpoints, read_metrics
from srpo.trainer import Trainer


@dataclass
class CompareResult:
    """Per algorithm: per seed, the (step, value) curve, steps to target (None = not reached), final value."""

    metric: str
    target: float
    curves: dict[str, list[list[tuple[int, float]]]] = field(default_factory=dict)
    steps_to_target: dict[str, list[int | None]] = field(default_factory=dict)
    final: dict[str, list[float]] = field(default_factory=dict)
    # Per algorithm, per seed: (step, low, high) Wilson intervals and the slope, when the run logged counts.
    intervals: dict[str, list[list[tuple[int, float, float]]]] = field(default_factory=dict)
    slopes: dict[str, list[SlopeEstimate | None]] = field(default_factory=dict)
    # Per algorithm, per run summarised: its seed, the last step on disk and the steps it is configured for
    # (a run still in progress, or stopped, has steps_done < num_steps).
    runs: dict[str, list[dict[str, int]]] = field(default_factory=dict)
    # Per algorithm, per seed: the mean of the metric over the evaluations after step 0 (the curve's mean height,
    # its area under the curve over the run when evaluations are evenly spaced); None without such an evaluation.
    mean_after_start: dict[str, list[float | None]] = field(default_factory=dict)

    def seeds_of(self, algo: str) -> list[int]:
        return [r["seed"] for r in self.runs.get(algo, [])]

    def differences(self) -> list[dict[str, Any]]:
        """The first algorithm minus each other one, paired by seed (seeds both summarised): per seed and as the
        mean over seeds with a percentile bootstrap 95 % interval that resamples seeds, for the final value and
        the mean after the start. Seeds vary more than episodes, so this is the interval to quote across seeds;
        with one seed it is that seed's difference (its episode noise is in the per-run intervals)."""
        from srpo.diversity import bootstrap_ci

        first, *others = list(self.curves)
        scalars: dict[str, dict[str, list[float | None]]] = {
            "final": {k: list(v) for k, v in self.final.items()}, "mean_after_start": self.mean_after_start}
        out = []
        for other in others:
            seeds = [s for s in self.seeds_of(first) if s in self.seeds_of(other)]
            if not seeds:
                continue
            row: dict[str, Any] = {"difference": f"{first} - {other}", "seeds": seeds}
            for key, values in scalars.items():
                a = dict(zip(self.seeds_of(first), values[first], strict=True))
                b = dict(zip(self.seeds_of(other), values[other], strict=True))
                per_seed: list[float | None] = []
                for s in seeds:
                    x, y = a[s], b[s]
                    per_seed.append(None if x is None or y is None else x - y)
                known = [d for d in per_seed if d is not None]
                row[key] = {"per_seed": per_seed,
                            "mean": float(np.mean(known)) if known else None,
                            "ci95": list(bootstrap_ci(known)) if known else None}
            out.append(row)
        return out

    def unfinished(self) -> list[str]:
        """'algo seed<k> at step s/n' for every summarised run that has not reached its last step."""
        return [f"{algo} seed{r['seed']} at step {r['steps_done']}/{r['num_steps']}"
                for algo, runs in self.runs.items() for r in runs if r["steps_done"] < r["num_steps"]]

    def summary_rows(self) -> list[dict[str, Any]]:
        from srpo.diversity import bootstrap_ci

        rows = []
        for algo, finals in self.final.items():
            reached = [s for s in self.steps_to_target[algo] if s is not None]
            heights = [h for h in self.mean_after_start.get(algo, []) if h is not None]
            gains = [gain_over_start(c) for c in self.curves[algo]]
            known_gains = [g for g in gains if g is not None]
            gains_across = across_seeds(known_gains) if known_gains else None
            known_slopes = [e.slope for e in self.slopes.get(algo, []) if e is not None]
            rows.append({
                "algo": algo,
                "num_seeds": len(finals),
                "final_mean": float(np.mean(finals)),
                "final_std": float(np.std(finals)),
                "final_min": float(np.min(finals)),
                "final_max": float(np.max(finals)),
                "final_ci95": list(bootstrap_ci(finals)),
                "mean_after_start": self.mean_after_start.get(algo, []),
                "mean_after_start_mean": float(np.mean(heights)) if heights else None,
                "mean_after_start_ci95": list(bootstrap_ci(heights)) if heights else None,
                "gain_over_start": gains,
                "gain_over_start_mean": float(np.mean(known_gains)) if known_gains else None,
                "gain_over_start_ci95": gains_across["bootstrap_ci"] if gains_across else None,
                # Student's t over seeds: with few seeds the bootstrap interval above is too narrow.
                "gain_over_start_t_ci95": gains_across["t_ci"] if gains_across else None,
                # Each seed's least-squares slope of held-out success per step, averaged over seeds: does the
                # curve rise across seeds, where one run's slope interval holds only its episode noise.
                "slope_across_seeds": across_seeds(known_slopes) if known_slopes else None,
                "num_reached_target": len(reached),
                "steps_to_target_mean": float(np.mean(reached)) if reached else None,
                "steps_to_target": self.steps_to_target[algo],
                "slopes": [None if e is None else
                           {"slope": e.slope, "ci95": [e.low, e.high], "num_points": e.num_points}
                           for e in self.slopes.get(algo, [])],
                "runs": self.runs.get(algo, []),
            })
        return rows

    def table(self) -> str:
        lines = [f"metric {self.metric}, target {self.target:g}",
                 f"{'algo':<6} {'seeds':>5} {'final mean ± std':>18} {'[min, max]':>14} {'reached':>8} "
                 f"{'steps to target (per seed)':>28}"]
        rows = self.summary_rows()
        for r in rows:
            steps = ", ".join("–" if s is None else str(s) for s in r["steps_to_target"])
            lines.append(
                f"{r['algo']:<6} {r['num_seeds']:>5} {r['final_mean']:>10.3f} ± {r['final_std']:.3f} "
                f"[{r['final_min']:.2f}, {r['final_max']:.2f}] {r['num_reached_target']:>4}/{r['num_seeds']:<3} "
                f"{steps:>28}"
            )
        for algo, estimates in self.slopes.items():
            seeds = [r["seed"] for r in self.runs.get(algo, [])] or list(range(len(estimates)))
            for seed, estimate in zip(seeds, estimates, strict=True):
                if estimate is not None:
                    lines.append(f"{algo} seed{seed}: slope {estimate.text()}")
        for r in rows:
            if r["gain_over_start_mean"] is not None:
                per_seed = ", ".join("–" if g is None else f"{g:+.3f}" for g in r["gain_over_start"])
                low, high = r["gain_over_start_ci95"]
                t_part = "" if r["gain_over_start_t_ci95"] is None else (
                    f", [{r['gain_over_start_t_ci95'][0]:+.3f}, {r['gain_over_start_t_ci95'][1]:+.3f}] (t)")
                lines.append(f"{r['algo']}: mean after start − step 0, per seed {per_seed}; mean "
                             f"{r['gain_over_start_mean']:+.3f} [{low:+.3f}, {high:+.3f}] (bootstrap over seeds)"
                             + t_part)
            across = r["slope_across_seeds"]
            if across is not None and across["num_seeds"] > 1:
                b_low, b_high = across["bootstrap_ci"]
                t_low, t_high = across["t_ci"]
                lines.append(f"{r['algo']}: slope per 100 steps, mean over {across['num_seeds']} seeds "
                             f"{100 * across['mean']:+.3f} [{100 * t_low:+.3f}, {100 * t_high:+.3f}] (t), "
                             f"[{100 * b_low:+.3f}, {100 * b_high:+.3f}] (bootstrap over seeds)")
        for d in self.differences():
            parts = [f"{key.replace('_', ' ')} {d[key]['mean']:+.3f} [{d[key]['ci95'][0]:+.3f}, "
                     f"{d[key]['ci95'][1]:+.3f}]"
                     for key in ("final", "mean_after_start") if d[key]["mean"] is not None]
            lines.append(f"{d['difference']}, paired by seed over seeds {d['seeds']} (bootstrap over seeds): "
                         + "; ".join(parts))
        if self.unfinished():
            lines.append("not finished (re-run the same command to resume): " + ", ".join(self.unfinished()))
        return "\n".join(lines)


def across_seeds(values: Sequence[float], level: float = 0.95, num_resamples: int = 10_000,
                 seed: int = 0) -> dict[str, Any]:
    """Mean of one value per seed with two intervals: the percentile bootstrap that resamples seeds (the
    convention of `srpo compare`), and Student's t, mean ± t_{R−1} s / √R (s the sample standard deviation over
    the R seeds). With few seeds the bootstrap interval is too narrow (its resampled means spread by s √((R−1)/R)
    / √R and take only a handful of distinct values); the t interval is the one to quote below about 10 seeds.

    Args:
        values: (R,) R >= 1 finite values, one per seed (average several runs of one seed first: they are not
            independent draws of the seed).
        level: Coverage in (0, 1).
        num_resamples: Bootstrap resamples (>= 1).
        seed: Seed of the resampling.

    Returns:
        {"mean", "num_seeds": R, "std": sample standard deviation (None for R = 1), "bootstrap_ci":
        [low, high], "t_ci": [low, high] (None for R = 1)}.
    """
    from scipy.stats import t as student_t

    from srpo.diversity import bootstrap_ci

    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or len(v) < 1 or not np.all(np.isfinite(v)):
        raise ValueError(f"across_seeds needs one finite value per seed, got {list(values)}")
    if not 0 < level < 1:
        raise ValueError(f"level={level} must lie in (0, 1)")
    mean = float(v.mean())
    out: dict[str, Any] = {"mean": mean, "num_seeds": len(v), "std": None,
                           "bootstrap_ci": list(bootstrap_ci(v, num_resamples, seed, level)), "t_ci": None}
    if len(v) > 1:
        std = float(v.std(ddof=1))
        half = float(student_t.ppf((1 + level) / 2, len(v) - 1)) * std / math.sqrt(len(v))
        out.update(std=std, t_ci=[mean - half, mean + half])
    return out


def mean_per_seed(values: Sequence[float], seeds: Sequence[int]) -> tuple[list[int], list[float]]:
    """Average the values of runs that share a seed (reruns of one seed on other machines or code versions),
    so that each seed counts once across seeds; seeds in ascending order.

    Args:
        values: (N,) one value per run.
        seeds: (N,) the seed of each run.

    Returns:
        (the distinct seeds ascending, the mean value of each).
    """
    if len(values) != len(seeds) or not values:
        raise ValueError(f"one seed per value and at least one value, got {len(values)} values and {len(seeds)} "
                         "seeds")
    by_seed: dict[int, list[float]] = {}
    for value, s in zip(values, seeds, strict=True):
        by_seed.setdefault(int(s), []).append(float(value))
    ordered = sorted(by_seed)
    return ordered, [float(np.mean(by_seed[s])) for s in ordered]


def steps_to_reach(curve: list[tuple[int, float]], target: float) -> int | None:
    """First step at which the curve reaches the target (step 0 = the initial policy)."""
    for step, value in curve:
        if value >= target:
            return step
    return None


def mean_after_start(curve: list[tuple[int, float]]) -> float | None:
    """Mean of the curve's values at steps > 0 (None when it has none)."""
    after = [v for step, v in curve if step > 0]
    return float(np.mean(after)) if after else None


def gain_over_start(curve: list[tuple[int, float]]) -> float | None:
    """How far a run rose above its start: `mean_after_start` minus the value at step 0 (the last one logged at
    step 0), or None when the curve lacks either. Across seeds this answers whether an arm learns at all, beside
    the arms' difference (`CompareResult.differences`)."""
    after = mean_after_start(curve)
    start = [v for step, v in curve if step == 0]
    return None if after is None or not start else after - start[-1]


def metric_curve(records: list[dict[str, Any]], metric: str) -> list[tuple[int, float]]:
    """(step, value) of every metric record that holds `metric`, in file order."""
    return [(int(m["step"]), float(m[metric])) for m in records if metric in m]


def eval_counts(records: list[dict[str, Any]]) -> list[tuple[int, int, int]]:
    """(step, successes, episodes) of every evaluation that logged its counts, one per step (the last written),
    in step order."""
    by_step: dict[int, tuple[int, int]] = {}
    for r in records:
        if r.get("eval/num_episodes", 0) > 0 and "eval/num_successes" in r:
            by_step[int(r["step"])] = (int(r["eval/num_successes"]), int(r["eval/num_episodes"]))
    return [(step, k, n) for step, (k, n) in sorted(by_step.items())]


def curve_statistics(records: list[dict[str, Any]]) -> tuple[list[tuple[int, float, float]], SlopeEstimate | None]:
    """Wilson 95 % interval of every evaluation with counts, and the least-squares slope of success per step
    (None with fewer than two evaluated steps)."""
    counts = eval_counts(records)
    intervals = [(step, *wilson_interval(k, n)) for step, k, n in counts]
    if len(counts) < 2:
        return intervals, None
    steps, wins, episodes = zip(*counts, strict=True)
    return intervals, success_slope(steps, wins, episodes)


def run_compare(
    base: TrainConfig,
    out_dir: str | Path,
    seeds: list[int],
    algos: tuple[str, ...] = ("srpo", "grpo"),
    target: float = 0.5,
    metric: str = "eval/success_rate",
    show_progress: bool = True,
    policy_factory: Callable[[], TrainablePolicy] | None = None,
    train: bool = True,
    should_stop: Callable[[], bool] | None = None,
) -> CompareResult:
    """Train every (algo, seed) pair from the same initial policy and collect the metric curves.

    Args:
        base: Config shared by all runs (same tasks, initial policy checkpoint, hyper-parameters).
        out_dir: Runs go to out_dir/<algo>/seed<k>; compare.json and compare.png beside them. A run on disk longer
            than base.num_steps is summarised up to that step (every seed over the same horizon).
        seeds: Training seeds (rollout sampling, prompt order); the initial policy is the same for all.
        algos: Which reward variants to run.
        target: Success level for "steps to target".
        metric: Metric key to compare (evaluation success on held-out states by default).
        show_progress: Progress bars of each run.
        policy_factory: Optional callable returning a fresh copy of the initial policy (else base.policy).
        train: False summarises the runs on disk as they are (finished, in progress or stopped) and trains
            nothing: a look at a long comparison while it runs. Runs with nothing on disk are left out.
        should_stop: Polled after each training step (`srpo.interrupt.StopOnSignal.requested`): when it returns
            True the run in flight is checkpointed and stops, no further run starts, and what is on disk is
            summarised. Re-running resumes.
    """
    out = Path(out_dir)
    stop = should_stop or (lambda: False)
    result = CompareResult(metric=metric, target=target)
    for algo in algos:
        for seed in seeds:
            run_dir = out / algo / f"seed{seed}"
            cfg = replace(base, algo_name=algo, seed=seed, run_dir=str(run_dir))  # type: ignore[arg-type]
            done = [m["step"] for m in read_metrics(run_dir)]
            if train and not stop() and (not done or max(done) < cfg.num_steps):
                # Fresh, or resumed after an interruption (a finished run is reused as it is).
                resume = bool(list_checkpoints(run_dir))
                policy = policy_factory() if policy_factory is not None and not resume else None
                with Trainer(cfg, resume=resume, policy=policy, show_progress=show_progress) as trainer:
                    trainer.train(should_stop=stop)
            # The comparison's horizon is num_steps: a longer run on disk (an earlier, longer comparison) is read
            # up to it, so that every seed is summarised over the same steps.
            records = [m for m in read_metrics(run_dir) if int(m["step"]) <= cfg.num_steps]
            steps_done = max((int(m["step"]) for m in records), default=0)
            curve = metric_curve(records, metric)
            if not curve:
                if steps_done < cfg.num_steps:
                    continue  # not started (or stopped before its first evaluation): nothing to show yet
                raise SrpoError(f"run {run_dir} logged no {metric!r}; is evaluation enabled (eval_every, "
                                 "num_eval_episodes_per_task)?")
            result.runs.setdefault(algo, []).append(
                {"seed": seed, "steps_done": steps_done, "num_steps": cfg.num_steps})
            result.curves.setdefault(algo, []).append(curve)
            result.steps_to_target.setdefault(algo, []).append(steps_to_reach(curve, target))
            result.final.setdefault(algo, []).append(curve[-1][1])
            result.mean_after_start.setdefault(algo, []).append(mean_after_start(curve))
            intervals, slope = curve_statistics(records) if metric == "eval/success_rate" else ([], None)
            result.intervals.setdefault(algo, []).append(intervals)
            result.slopes.setdefault(algo, []).append(slope)
    if not result.curves:
        raise SrpoError(f"no run under {out} has logged {metric!r} yet: nothing to compare"
                        + ("" if train else " (drop --no-train to start the runs)"))
    plot_success_curves(result.curves, out / "compare.png", target, ylabel=metric,
                        intervals=result.intervals if metric == "eval/success_rate" else None)
    (out / "compare.json").write_text(json.dumps({
        "metric": metric,
        "target": target,
        "seeds": seeds,
        "rows": result.summary_rows(),
        "differences": result.differences(),
        "curves": result.curves,
        "intervals": result.intervals,
        "unfinished": result.unfinished(),
    }, indent=2))
    return result
