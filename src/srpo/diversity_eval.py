"""`srpo diversity`: how varied the end-effector paths of trained policies are, SRPO vs GRPO.

For each run directory: its final checkpoint is loaded with the run's own config, and K episodes per held-out
initial state (the evaluation split of `srpo.evaluate`) are *sampled* at the run's training temperature through
the rollout engine, under torch seed `cfg.seed` (paired runs of one seed sample the same stream). The paths
(`Trajectory.eef_pos`) are scored by `srpo.diversity.path_diversity`; runs are grouped by `algo_name` and each
group gets the mean over its runs with a bootstrap 95 % interval, and SRPO − GRPO a bootstrap interval of the
difference. Writes diversity.json and diversity.png (top-down paths, green = success, red = failure).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from srpo.config.diversity import LIBERO_WORKSPACE, TABLETOP_WORKSPACE, DiversityConfig
from srpo.config.train import TrainConfig
from srpo.diversity import bootstrap_ci, bootstrap_difference_ci, path_diversity
from srpo.errors import InputFileError, SrpoError
from srpo.provenance import provenance
from srpo.types import Trajectory

DIVERSITY_JSON = "diversity.json"
DIVERSITY_PLOT = "diversity.png"


def workspace_bounds(cfg: TrainConfig, dcfg: DiversityConfig) -> tuple[np.ndarray, np.ndarray]:
    """(3,) lower and upper corners of the coverage grid: the configured box, else the env's default."""
    if dcfg.workspace_low is not None and dcfg.workspace_high is not None:
        low, high = dcfg.workspace_low, dcfg.workspace_high
    elif cfg.env.kind == "tabletop":
        low, high = TABLETOP_WORKSPACE
    elif cfg.env.kind == "libero":
        low, high = LIBERO_WORKSPACE
    else:
        raise SrpoError(f"env.kind={cfg.env.kind!r} has no default workspace box: set diversity.workspace_low/high")
    return np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)


def final_policy_checkpoint(run_dir: Path) -> Path:
    """The policy directory of a run's newest complete checkpoint."""
    from srpo.run_dir import POLICY_DIR, list_checkpoints

    ckpts = list_checkpoints(run_dir)
    if not ckpts:
        raise InputFileError(f"{run_dir} has no complete checkpoint (ckpt-*/): train it first with `srpo train`")
    return ckpts[-1] / POLICY_DIR


@dataclass
class RunDiversity:
    """The sampled rollouts of one run's final policy and their diversity metrics."""

    run_dir: str
    algo: str
    seed: int
    checkpoint: str
    temperature: float
    success_rate: float
    num_episodes: int
    metrics: dict[str, float]
    prompts: list[tuple[int, int]]  # (task_id, init_state_id) per group id
    trajectories: list[Trajectory] = field(repr=False)

    def summary(self) -> dict[str, Any]:
        return {"run_dir": self.run_dir, "algo": self.algo, "seed": self.seed, "checkpoint": self.checkpoint,
                "temperature": self.temperature, "success_rate": self.success_rate,
                "num_episodes": self.num_episodes, **self.metrics}


@dataclass
class DiversityResult:
    """Every run's metrics, and per algo the mean over runs with a bootstrap 95 % interval."""

    runs: list[RunDiversity]
    groups: dict[str, dict[str, dict[str, float]]]  # algo -> metric -> {mean, ci_low, ci_high, num_runs}
    difference: dict[str, dict[str, float]]  # metric -> {mean, ci_low, ci_high} of srpo − grpo (both present)
    config: DiversityConfig

    def metric_names(self) -> list[str]:
        return ["success_rate", *self.runs[0].metrics]

    def table(self) -> str:
        names = self.metric_names()
        short = [n.removeprefix("diversity/") for n in names]
        lines = [f"{'run':<28} {'algo':>5} {'seed':>4} " + " ".join(f"{s:>22}" for s in short)]
        for r in self.runs:
            values = [r.success_rate, *r.metrics.values()]
            lines.append(f"{Path(r.run_dir).name[:28]:<28} {r.algo:>5} {r.seed:>4} "
                         + " ".join(f"{v:>22.4f}" for v in values))
        for algo, stats in self.groups.items():
            cells = [f"{s['mean']:.3f} [{s['ci_low']:.3f},{s['ci_high']:.3f}]" for s in stats.values()]
            lines.append(f"{'mean ' + algo + ' (95% CI)':<28} {'':>5} {len(self.runs_of(algo)):>4} "
                         + " ".join(f"{c:>22}" for c in cells))
        if self.difference:
            cells = [f"{s['mean']:+.3f} [{s['ci_low']:+.3f},{s['ci_high']:+.3f}]" for s in self.difference.values()]
            lines.append(f"{'srpo - grpo (95% CI)':<28} {'':>5} {'':>4} " + " ".join(f"{c:>22}" for c in cells))
        return "\n".join(lines)

    def runs_of(self, algo: str) -> list[RunDiversity]:
        return [r for r in self.runs if r.algo == algo]

    def to_json(self) -> dict[str, Any]:
        return {"config": {"episodes_per_state": self.config.episodes_per_state,
                           "states_per_task": self.config.states_per_task,
                           "temperature": self.config.temperature, "num_cells": self.config.num_cells,
                           "time_fractions": list(self.config.time_fractions), "num_points": self.config.num_points,
                           "num_bootstrap": self.config.num_bootstrap},
                "prompts": [list(p) for p in self.runs[0].prompts],
                "runs": [r.summary() for r in self.runs], "groups": self.groups, "difference": self.difference}


def rollout_final_policy(run_dir: Path, dcfg: DiversityConfig) -> RunDiversity:
    """Sample K episodes per held-out init state with a run's final policy and score their paths."""
    import torch

    from srpo.build import apply_torch_threads, make_env_factory, make_policy
    from srpo.evaluate import init_state_split
    from srpo.rollout import RolloutEngine, make_group_requests
    from srpo.run_dir import resume_config

    cfg = resume_config(run_dir)
    ckpt = final_policy_checkpoint(run_dir)
    cfg = replace(cfg, policy=replace(cfg.policy, checkpoint=str(ckpt)))
    temperature = dcfg.temperature if dcfg.temperature is not None else cfg.algo.temperature
    apply_torch_threads(cfg)  # as training ran: the thread count changes the logits (build.py)
    policy = make_policy(cfg)
    factory = make_env_factory(cfg)
    prompts = [(spec.task_id, s) for spec in factory.task_specs()
               for s in init_state_split(cfg, spec.num_init_states, "eval")[: dcfg.states_per_task]]
    requests = make_group_requests([p[0] for p in prompts], [p[1] for p in prompts], dcfg.episodes_per_state)
    torch.manual_seed(cfg.seed)  # SRPO and GRPO runs of one seed sample the same stream
    with RolloutEngine(factory, cfg.rollout) as engine:
        trajs, _ = engine.collect(policy, requests, temperature, greedy=False)
    missing = [t.rollout_id for t in trajs if t.eef_pos.shape[0] != t.finish_step or t.finish_step == 0]
    if missing:
        raise SrpoError(f"{run_dir}: env.kind={cfg.env.kind!r} reported no end-effector position for "
                        f"{len(missing)} episode(s); diversity needs Observation.eef_pos at every step")
    paths: dict[int, list[np.ndarray]] = defaultdict(list)
    for t in trajs:
        paths[t.group_id].append(t.eef_pos)
    low, high = workspace_bounds(cfg, dcfg)
    metrics = path_diversity(paths, low, high, dcfg.num_cells, dcfg.time_fractions, dcfg.num_points)
    return RunDiversity(str(run_dir), cfg.algo_name, cfg.seed, str(ckpt), float(temperature),
                        float(np.mean([t.success for t in trajs])), len(trajs), metrics, prompts, trajs)


def summarise_groups(runs: Sequence[RunDiversity], num_bootstrap: int
                     ) -> tuple[dict[str, dict[str, dict[str, float]]], dict[str, dict[str, float]]]:
    """Per algo and metric: mean over runs and bootstrap 95 % interval; and srpo − grpo where both exist."""
    names = ["success_rate", *runs[0].metrics]

    def values(rs: Sequence[RunDiversity], name: str) -> list[float]:
        return [r.success_rate if name == "success_rate" else r.metrics[name] for r in rs]

    by_algo: dict[str, list[RunDiversity]] = defaultdict(list)
    for r in runs:
        by_algo[r.algo].append(r)
    groups: dict[str, dict[str, dict[str, float]]] = {}
    for algo, rs in sorted(by_algo.items()):
        groups[algo] = {}
        for name in names:
            v = values(rs, name)
            lo, hi = bootstrap_ci(v, num_bootstrap)
            groups[algo][name] = {"mean": float(np.mean(v)), "ci_low": lo, "ci_high": hi, "num_runs": float(len(v))}
    difference: dict[str, dict[str, float]] = {}
    if "srpo" in by_algo and "grpo" in by_algo:
        for name in names:
            a, b = values(by_algo["srpo"], name), values(by_algo["grpo"], name)
            lo, hi = bootstrap_difference_ci(a, b, num_bootstrap)
            difference[name] = {"mean": float(np.mean(a) - np.mean(b)), "ci_low": lo, "ci_high": hi}
    return groups, difference


def plot_paths(result: DiversityResult, low: np.ndarray, high: np.ndarray, path: Path) -> None:
    """Top-down (x, y) paths: one row per run, one column per plotted init state; green success, red failure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    num_cols = min(result.config.num_plot_states, len(result.runs[0].prompts))
    num_rows = len(result.runs)
    fig, axes = plt.subplots(num_rows, num_cols, figsize=(2.6 * num_cols, 2.6 * num_rows), squeeze=False)
    for i, run in enumerate(result.runs):
        for g in range(num_cols):
            ax = axes[i][g]
            for t in run.trajectories:
                if t.group_id == g:
                    ax.plot(t.eef_pos[:, 0], t.eef_pos[:, 1], color="tab:green" if t.success else "tab:red",
                            alpha=0.6, linewidth=0.9)
                    ax.plot(t.eef_pos[-1, 0], t.eef_pos[-1, 1], "o", color="black", markersize=2)
            ax.set_xlim(low[0], high[0])
            ax.set_ylim(low[1], high[1])
            ax.set_aspect("equal")
            ax.tick_params(labelsize=6)
            task, state = run.prompts[g]
            ax.set_title(f"{run.algo} seed {run.seed}: task {task} init {state}", fontsize=7)
    fig.suptitle("end-effector paths, top-down (x, y); green = success, red = failure, dot = end", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_diversity(run_dirs: Sequence[str | Path], dcfg: DiversityConfig,
                  show_progress: bool = True) -> DiversityResult:
    """`srpo diversity`: roll out every run's final policy, score, group by algo, write JSON and plot (a progress
    bar with ETA over the runs, on stderr)."""
    from tqdm import tqdm

    if not run_dirs:
        raise SrpoError("give at least one RUN_DIR")
    runs = [rollout_final_policy(Path(d), dcfg)
            for d in tqdm(run_dirs, desc="srpo diversity", unit="run", disable=not show_progress)]
    for r in runs[1:]:
        if r.prompts != runs[0].prompts:
            raise SrpoError(f"{r.run_dir} evaluates other held-out (task, init state) prompts than {runs[0].run_dir}: "
                            "compare runs of the same env config (env.*) only")
    groups, difference = summarise_groups(runs, dcfg.num_bootstrap)
    result = DiversityResult(runs, groups, difference, dcfg)
    out = Path(dcfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # The commit and command behind the numbers, as in every result file.
    (out / DIVERSITY_JSON).write_text(json.dumps({**result.to_json(), "provenance": provenance()}, indent=2))
    from srpo.run_dir import resume_config

    low, high = workspace_bounds(resume_config(run_dirs[0]), dcfg)
    plot_paths(result, low, high, out / DIVERSITY_PLOT)
    return result
