"""Choose the `cpu` preset's recipe by measurement: fresh `srpo train --preset cpu` runs per recipe and seed.

Each recipe is a list of `--set` overrides on top of the preset; every (recipe, seed) run is one real main-job
command (`srpo train --preset cpu`, the same evaluation before and after training on the held-out init
states). Runs go one at a time, each in its own run directory; a run whose metrics already hold its final
evaluation is not run again, so the script can be stopped and restarted. Prints one row per run and a
summary per recipe (before → after with Wilson 95 % intervals, wall time) and writes JSON.

    MUJOCO_GL=egl nice -n 10 python benchmarks/cpu_recipe.py --recipes preset --seeds 0 1 2 --root runs/cpu_recipe
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench_common import use_headless_gl

RESULTS = Path(__file__).resolve().parent / "results" / "cpu_recipes.json"

LEAN_START = ["env.libero.render_quality=lean",
              "policy.checkpoint=checkpoints/compact_libero_spatial_sft_lean/final"]
# The preset until 2026-12-06 (8 steps of groups 4 x 2 prompts from the shipped start under `fast` frames, one epoch
# of 2 mini-batches at lr 2e-5, token-mean): the base of every recipe measured before then, so that each recorded
# recipe still runs what it ran.
PRESET_DEC05 = ["env.libero.render_quality=fast", "policy.checkpoint=checkpoints/compact_libero_spatial_sft/final",
                "num_steps=8", "algo.group_size=4", "algo.num_prompts_per_step=2", "algo.num_minibatches=2",
                "algo.lr=2e-5", "algo.ppo_epochs=1", "algo.aggregation=token-mean"]
# Overrides on top of `--preset cpu`; "preset" is the preset as shipped.
RECIPES: dict[str, list[str]] = {
    "preset": [],
    # The preset before 2026-12-06 (cpu_recipes.json, cpu_recipes_fixed.json, cpu_recipes_skip.json).
    "preset_dec05": PRESET_DEC05,
    # The recipe the main job shipped with before that (lr 1e-4, T 1.0, no KL, no memory, 4 steps).
    "old": [*PRESET_DEC05, "algo.lr=1e-4", "algo.temperature=1.0", "algo.kl_coef=0.0", "reward.memory_size=0",
            "num_steps=4"],
    # Larger steps: the Dec-05 preset with 3× the learning rate.
    "lr6e-5": [*PRESET_DEC05, "algo.lr=6e-5"],
    # Updates sized for PPO's trust region: the Dec-05 preset's steps moved the policy by approx KL ~1e-4 with clip
    # fraction ~0; 2.5x the learning rate and 4 epochs over each batch give ~4e-3 per step.
    "lr5e-5_ppo4": [*PRESET_DEC05, "algo.lr=5e-5", "algo.ppo_epochs=4"],
    # Binary outcome reward from the same start (only the reward differs).
    "grpo": [*PRESET_DEC05, "algo_name=grpo"],
    # The start behaviour-cloned on lean frames, under lean frames; then also groups of 8 and 12 steps (3x the
    # episodes, still < 20 min).
    "lean_start": [*PRESET_DEC05, *LEAN_START],
    "lean_start_g8x12": [*PRESET_DEC05, *LEAN_START, "algo.group_size=8", "num_steps=12"],
    # The long runs' recipe (docs/libero_runs.md, "fourth run"; all four seeds rose by step 10) cut to the steps
    # that fit the main job's ~20 min: 32 episodes a step, 4 epochs x 4 mini-batches at lr 5e-5, each
    # trajectory weighted equally in the loss. The preset since 2026-12-06 (cpu_recipes_b32.json).
    "b32_trajmean_s4": [*LEAN_START, "algo.group_size=8", "algo.num_prompts_per_step=4", "algo.num_minibatches=4",
                        "algo.lr=5e-5", "algo.ppo_epochs=4", "algo.aggregation=traj-mean-token-mean",
                        "num_steps=4"],
    # The preset with the binary outcome reward (GRPO): the same start, batches and updates; only the reward
    # differs, so its runs pair with the preset's of the same seed episode by episode.
    "grpo_b32": ["algo_name=grpo"],
}


def _evals(metrics_path: Path) -> list[dict[str, Any]]:
    if not metrics_path.exists():
        return []
    records = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    return [r for r in records if "eval/num_episodes" in r]


def run_one(name: str, overrides: list[str], seed: int, root: Path, log_dir: Path) -> dict[str, Any]:
    """One fresh main-job run (or the finished run already on disk); returns its before/after counts."""
    import yaml

    from srpo.evaluate import difference_interval, wilson_interval

    run_dir = root / f"{name}_seed{seed}"
    timing_file = run_dir / "wall_s.txt"
    evals = _evals(run_dir / "metrics.jsonl")
    config = run_dir / "config.yaml"
    num_steps = None
    if config.exists():
        num_steps = yaml.safe_load(config.read_text())["num_steps"]
    finished = len(evals) >= 2 and evals[-1]["step"] == num_steps and timing_file.exists()
    if not finished:
        has_checkpoint = any(run_dir.glob("ckpt-*"))
        if run_dir.exists() and not has_checkpoint:
            import shutil

            shutil.rmtree(run_dir)  # cut short before its first checkpoint: start it again
        if has_checkpoint:
            # Cut short after a checkpoint: continue it (same run from the same start; wall time adds up).
            cmd = [sys.executable, "-m", "srpo.cli", "train", "--resume", str(run_dir)]
        else:
            cmd = [sys.executable, "-m", "srpo.cli", "train", "--preset", "cpu", "--run-dir", str(run_dir),
                   "--set", f"seed={seed}", "--set", "tensorboard=false"]
            for item in overrides:
                cmd += ["--set", item]
        log_dir.mkdir(parents=True, exist_ok=True)
        spent = float(timing_file.read_text()) if timing_file.exists() else 0.0
        start = time.perf_counter()
        try:
            with open(log_dir / f"{name}_seed{seed}.log", "a") as log:
                subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=True)
        finally:
            if run_dir.exists():
                timing_file.write_text(f"{spent + time.perf_counter() - start:.1f}\n")
        evals = _evals(run_dir / "metrics.jsonl")
    ran = yaml.safe_load(config.read_text())
    first, last = evals[0], evals[-1]
    k0, n0 = int(first["eval/num_successes"]), int(first["eval/num_episodes"])
    k1, n1 = int(last["eval/num_successes"]), int(last["eval/num_episodes"])
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    train = [r for r in records if "rollout/success_rate" in r]
    return {
        "recipe": name, "overrides": overrides, "seed": seed, "run_dir": str(run_dir),
        # What the run actually started from and rendered (the preset's defaults change over time).
        "checkpoint": ran["policy"]["checkpoint"], "render_quality": ran["env"]["libero"]["render_quality"],
        "wall_s": float(timing_file.read_text()), "num_steps": last["step"],
        "before": {"successes": k0, "episodes": n0, "rate": k0 / n0, "wilson95": wilson_interval(k0, n0),
                   "per_task": {k: v for k, v in first.items() if k.startswith("eval/success_rate_task")}},
        "after": {"successes": k1, "episodes": n1, "rate": k1 / n1, "wilson95": wilson_interval(k1, n1),
                  "per_task": {k: v for k, v in last.items() if k.startswith("eval/success_rate_task")}},
        "change": k1 / n1 - k0 / n0,
        "change_ci95": difference_interval(k0, n0, k1, n1),
        "rollout_success_per_step": [r["rollout/success_rate"] for r in train],
        "num_failures_shaped_per_step": [r.get("reward/num_failures_shaped") for r in train],
        **paired_before_after(run_dir, last["step"]),
    }


def paired_before_after(run_dir: Path, last_step: int) -> dict[str, Any]:
    """The after-evaluation against the before-evaluation episode by episode (same task and init state), from the
    run's steps/eval_*.npz: {"episode_pairs": [[task, state, before, after], ...], "paired_change": difference,
    bootstrap interval over the pairs, episodes only one evaluation won, exact McNemar p}; {} for runs without
    the arrays."""
    from checkpoint_curve import keyed_episode_pairs
    from srpo.evaluate import paired_success_difference
    from srpo.run_dir import read_eval_arrays

    evals = read_eval_arrays(run_dir)
    if 0 not in evals or last_step not in evals:
        return {}
    keyed = keyed_episode_pairs(evals[0], evals[last_step])
    return {"episode_pairs": [[task, state, b, a] for (task, state), b, a in keyed],
            "paired_change": paired_success_difference([(b, a) for _, b, a in keyed])}


def recipe_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One recipe over its runs (seeds): the spread of the per-run changes, and the pooled change.

    Pooled: every run's after-evaluation (different trained policies, so independent episodes) against the
    before-evaluation. The runs share their start and held-out states and the evaluation is greedy, so their
    before-evaluations are normally one and the same 40 episodes: then it is counted once (pooling identical
    copies would shrink its interval); if they differ, they are pooled too.

    Returns:
        {"num_runs", "mean_change", "min_change", "max_change", "mean_wall_min", "pooled_before": [k, n],
        "pooled_after": [k, n], "pooled_change", "pooled_change_ci95": Newcombe 95 % interval, and when every run
        kept its episodes "paired_pooled": the same change paired by task and init state, with a bootstrap over
        the states (`srpo.evaluate.clustered_paired_difference`)}.
    """
    from srpo.evaluate import clustered_paired_difference, difference_interval

    if not runs:
        raise ValueError("recipe_summary needs at least one run")
    changes = [r["change"] for r in runs]
    befores = {(r["before"]["successes"], r["before"]["episodes"]) for r in runs}
    if len(befores) == 1:
        k0, n0 = befores.pop()
    else:
        k0, n0 = sum(r["before"]["successes"] for r in runs), sum(r["before"]["episodes"] for r in runs)
    k1, n1 = sum(r["after"]["successes"] for r in runs), sum(r["after"]["episodes"] for r in runs)
    out = {"num_runs": len(runs), "mean_change": sum(changes) / len(changes), "min_change": min(changes),
           "max_change": max(changes), "mean_wall_min": sum(r["wall_s"] for r in runs) / len(runs) / 60,
           "pooled_before": [k0, n0], "pooled_after": [k1, n1], "pooled_change": k1 / n1 - k0 / n0,
           "pooled_change_ci95": list(difference_interval(k0, n0, k1, n1))}
    if all("episode_pairs" in r for r in runs):
        # Every run's after-episode against its own before-episode of the same (task, init state); a state is
        # played once per run, so its pairs are one cluster of the bootstrap (an easy state stays easy).
        pairs = [p for r in runs for p in r["episode_pairs"]]
        out["paired_pooled"] = clustered_paired_difference([(b, a) for _, _, b, a in pairs],
                                                           [(task, state) for task, state, _, _ in pairs])
    return out


def paired_between(base: list[dict[str, Any]], other: list[dict[str, Any]]) -> dict[str, Any] | None:
    """other − base held-out success after training, over the seeds both recipes ran, paired by seed, task and init
    state (the two runs of a seed start from the same policy and play the same states), with a bootstrap over the
    init states (`srpo.evaluate.clustered_paired_difference`); None when they share no seed with episodes kept.

    Args:
        base, other: `run_one` records of two recipes (each with "seed" and "episode_pairs").
    """
    from srpo.evaluate import clustered_paired_difference

    after = {(r["seed"], t, s): a for r in base if "episode_pairs" in r for t, s, _, a in r["episode_pairs"]}
    keyed = [(r["seed"], (t, s), after[(r["seed"], t, s)], a) for r in other if "episode_pairs" in r
             for t, s, _, a in r["episode_pairs"] if (r["seed"], t, s) in after]
    if not keyed:
        return None
    return {"seeds": sorted({seed for seed, _, _, _ in keyed}),
            **clustered_paired_difference([(b, o) for _, _, b, o in keyed], [k for _, k, _, _ in keyed])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", nargs="+", default=["preset"], choices=sorted(RECIPES))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--root", type=Path, default=Path("runs/cpu_recipe"))
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--baseline", choices=sorted(RECIPES), default=None,
                        help="also give every other recipe's held-out success after training minus this one's, "
                             "paired by seed and episode (summary[recipe]['vs_<baseline>'])")
    args = parser.parse_args()
    use_headless_gl()

    existing: dict[str, Any] = json.loads(args.out.read_text()) if args.out.exists() else {"runs": []}
    runs = {(r["recipe"], r["seed"]): r for r in existing["runs"]}
    print(f"{'recipe':<10}{'seed':>5}{'before':>14}{'after':>14}{'change [95% CI]':>27}{'wall min':>10}",
          flush=True)
    for name in args.recipes:
        for seed in args.seeds:
            result = run_one(name, RECIPES[name], seed, args.root, args.root / "logs")
            runs[(name, seed)] = result
            b, a = result["before"], result["after"]
            low, high = result["change_ci95"]
            print(f"{name:<10}{seed:>5}{b['successes']:>8}/{b['episodes']:<5}{a['successes']:>8}/{a['episodes']:<5}"
                  f"{result['change']:>+9.3f} [{low:+.3f}, {high:+.3f}]{result['wall_s'] / 60:>10.1f}", flush=True)
            summary = {recipe: recipe_summary([r for (n, _), r in runs.items() if n == recipe])
                       for recipe in sorted({r for r, _ in runs})}
            if args.baseline in summary:
                base = [r for (n, _), r in runs.items() if n == args.baseline]
                for recipe in summary:
                    if recipe != args.baseline:
                        vs = paired_between(base, [r for (n, _), r in runs.items() if n == recipe])
                        if vs is not None:
                            summary[recipe][f"vs_{args.baseline}"] = vs
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps({"recipes": {k: RECIPES[k] for k in summary}, "summary": summary,
                                            "runs": sorted(runs.values(), key=lambda r: (r["recipe"], r["seed"])),
                                            "load_avg_1min_at_write": os.getloadavg()[0]}, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
