"""SRPO vs GRPO on the built-in tabletop env: same initial policy (a short SFT on a few scripted demos), same
tasks, same seeds; evaluation success (greedy, held-out init states) against training step.

Prints a table (final success mean ± std over seeds, steps to reach the target) and writes
benchmarks/results/learning_efficiency.json and .png. Runs are resumable: re-running the script reuses finished
runs under --out.

    python benchmarks/learning_efficiency.py [--seeds 0 1 2] [--steps 40] [--target 0.1] [--lr 3e-5]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from srpo.compare import metric_curve, run_compare
from srpo.config.train import TrainConfig, load_config

RESULTS = Path(__file__).parent / "results"


def make_initial_policy(out: Path, tasks: list[int], args: argparse.Namespace, num_eval_init_states: int) -> Path:
    """SFT a compact VLA so that RL starts from non-zero but imperfect success on held-out init states.

    Recipe (what failed before it is in the README): noisy scripted-expert demos in many layouts (none of them a
    held-out evaluation layout), each started after an unrecorded random walk (`max_random_prefix_steps`) so
    that the clone sees how the expert recovers from off-path states; the spatial-softmax keypoint encoder (a
    pooled 4×4 conv grid never localised the 5-px block), trained; proprioception as a token (x, y, z, gripper;
    with --object-state also the block and plate centres); short chunks (closed loop often enough to correct
    itself); colour jitter without random crops (a crop shifts the image against the absolute proprioception).
    After SFT the encoder is frozen: RL adapts the action transformer, and PPO re-scores cached image features.
    """
    from srpo.config.env import TabletopConfig
    from srpo.config.policy import PolicyConfig
    from srpo.config.sft import SFTConfig
    from srpo.envs.tabletop import demo_layout_pool, record_tabletop_demos
    from srpo.policies.compact import CompactVLA
    from srpo.sft import train_sft

    final = out / "final"
    if final.exists():
        return final
    tabletop = TabletopConfig(num_tasks=max(tasks) + 1, object_state=args.object_state)
    # Demos in the 40 RL training layouts alone are memorised (the clone walks to where the block was in a
    # training layout), so they come from many more layouts, none of them held out for evaluation.
    factory, demo_states = demo_layout_pool(tabletop, num_eval_init_states, args.demo_layouts)
    # A few spare demos per task: a noisy expert occasionally fails (skipped), and a lucky walk is dropped.
    demos = record_tabletop_demos(factory, tasks, args.demos_per_task + 4, seed=1234, noise_std=args.demo_noise,
                                  init_state_ids=demo_states, max_random_prefix_steps=args.random_prefix)
    policy = CompactVLA(PolicyConfig(vision_encoder="conv_keypoints", text_encoder="hashed",
                                     image_size=tabletop.image_size, d_model=64, num_layers=2, ff_dim=128,
                                     state_dim=demos[0].states.shape[1], freeze_vision=False,
                                     chunk_size=args.chunk_size, seed=0))
    cfg = SFTConfig(num_demos_per_task=args.demos_per_task, num_steps=args.sft_steps, checkpoint_dir=str(out),
                    crop_scale=1.0, color_jitter=0.1, progress=True)
    result = train_sft(policy, demos, cfg)
    assert result.checkpoint is not None
    if args.freeze_vision_for_rl:
        policy.freeze_vision_encoder()
        policy.save_pretrained(result.checkpoint)
    return result.checkpoint


def initial_success(base: TrainConfig, episodes_per_task: int) -> dict[str, float]:
    """Success of the initial policy on held-out init states: greedy, and sampled at the rollout temperature."""
    from srpo.build import make_env_factory, make_policy
    from srpo.evaluate import evaluate_policy, init_state_split
    from srpo.rollout import EpisodeRequest, RolloutEngine

    policy = make_policy(base)
    factory = make_env_factory(base)
    specs = factory.task_specs()
    with RolloutEngine(factory, base.rollout) as engine:
        greedy = evaluate_policy(engine, policy, specs, base, episodes_per_task).mean
        requests: list[EpisodeRequest] = []
        for spec in specs:
            ids = init_state_split(base, spec.num_init_states, "eval")
            for k in range(3 * episodes_per_task):  # sampling: each held-out state three times
                requests.append(EpisodeRequest(spec.task_id, ids[k % len(ids)], len(requests), len(requests)))
        trajs, _ = engine.collect(policy, requests, base.algo.temperature, greedy=False)
    sampled = float(np.mean([t.success for t in trajs]))
    return {"greedy": greedy, f"sampled_T{base.algo.temperature:g}": sampled}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--target", type=float, default=0.1)
    parser.add_argument("--tasks", type=int, default=2, help="tabletop tasks 0..N-1")
    parser.add_argument("--demos-per-task", type=int, default=300, help="noisy scripted demos per task")
    parser.add_argument("--demo-layouts", type=int, default=1000,
                        help="demos are recorded in layouts 0..N-1 of each task, minus the held-out eval layouts")
    parser.add_argument("--demo-noise", type=float, default=0.1, help="scripted-expert translation noise std")
    parser.add_argument("--random-prefix", type=int, default=24,
                        help="each demo starts after an unrecorded random walk of up to this many steps")
    parser.add_argument("--chunk-size", type=int, default=4, help="actions per policy call")
    parser.add_argument("--sft-steps", type=int, default=3000)
    parser.add_argument("--object-state", action="store_true",
                        help="env.tabletop.object_state: block and plate centres in the proprioception vector")
    parser.add_argument("--no-freeze-vision-for-rl", dest="freeze_vision_for_rl", action="store_false",
                        help="keep training the image encoder during RL (slower: no feature cache)")
    parser.add_argument("--lr", type=float, default=3e-5,
                        help="RL learning rate (the tabletop preset's 3e-4 collapses this policy within 2 steps)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a loaded 2-core box)")
    parser.add_argument("--eval-every", type=int, default=5)
    parser.add_argument("--eval-episodes", type=int, default=10, help="per task, on held-out init states")
    parser.add_argument("--out", default="runs/learning_efficiency")
    parser.add_argument("--fresh", action="store_true", help="delete --out first")
    parser.add_argument("--set", action="append", default=[], help="extra config overrides key=value")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    if args.fresh and out.exists():
        shutil.rmtree(out)
    t0 = time.perf_counter()
    num_eval_states = load_config(preset="tabletop").env.tabletop_num_eval_init_states
    init = make_initial_policy(out / "init_sft", list(range(args.tasks)), args, num_eval_states)
    base = load_config(preset="tabletop", overrides=[
        f"policy.checkpoint={init}",
        f"env.tabletop.num_tasks={args.tasks}",
        f"env.tabletop.object_state={str(args.object_state).lower()}",
        f"num_steps={args.steps}",
        f"eval_every={args.eval_every}",
        f"num_eval_episodes_per_task={args.eval_episodes}",
        "num_videos_per_step=0",
        "tensorboard=false",
        f"algo.lr={args.lr}",
        *args.set,
    ])
    args.temperature_label = f"{base.algo.temperature:g}"
    init_path = out / "init_sft" / "initial_success.json"
    if not init_path.exists():
        init_path.write_text(json.dumps(initial_success(base, args.eval_episodes), indent=2))
    init_success = json.loads(init_path.read_text())
    print(f"initial policy on held-out init states: {init_success}")
    # One seed at a time (both algorithms), writing the results after each, so a run cut short still leaves a
    # labelled partial table; finished runs are reused on a re-run.
    for k in range(1, len(args.seeds) + 1):
        seeds = args.seeds[:k]
        result = run_compare(base, out / "runs", seeds=seeds, target=args.target, show_progress=True)
        elapsed = time.perf_counter() - t0
        print(result.table())
        secondary = {m: {algo: [metric_curve(out / "runs" / algo / f"seed{s}", m) for s in seeds]
                         for algo in result.curves} for m in SECONDARY}
        print(smoothed_table(smoothed_rows(result.curves, secondary["rollout/success_rate"])))
        write_results(args, seeds, init_success, result, secondary, elapsed, complete=k == len(args.seeds))


SECONDARY = ("rollout/success_rate", "reward/mean", "advantage/abs_mean", "reward/failure_progress_mean")


def _tail_mean(curve: list[tuple[int, float]], n: int) -> float | None:
    return float(np.mean([v for _, v in curve[-n:]])) if curve else None


def smoothed_rows(eval_curves: dict[str, list[list[tuple[int, float]]]],
                  rollout_curves: dict[str, list[list[tuple[int, float]]]]) -> list[dict[str, Any]]:
    """Less noisy summaries than the final evaluation alone (20 greedy episodes: ±0.1 binomial noise).

    Per seed: the mean of the last 3 evaluations, and the mean training-rollout success (sampled, all
    episodes of a step) over the first 5 and the last 10 steps; then mean ± std over seeds.
    """
    rows = []
    for algo, curves in eval_curves.items():
        def stats(values: list[float | None]) -> tuple[float, float]:
            v = [x for x in values if x is not None]
            return (float(np.mean(v)), float(np.std(v))) if v else (float("nan"), float("nan"))

        last3 = stats([_tail_mean(c, 3) for c in curves])
        first5 = stats([float(np.mean([v for _, v in c[:5]])) if c else None for c in rollout_curves[algo]])
        last10 = stats([_tail_mean(c, 10) for c in rollout_curves[algo]])
        rows.append({"algo": algo, "num_seeds": len(curves), "eval_last3_mean": last3[0], "eval_last3_std": last3[1],
                     "rollout_first5_mean": first5[0], "rollout_first5_std": first5[1],
                     "rollout_last10_mean": last10[0], "rollout_last10_std": last10[1]})
    return rows


def smoothed_table(rows: list[dict[str, Any]]) -> str:
    lines = ["algo   seeds   eval, mean of last 3   rollout success, first 5 steps → last 10 steps"]
    for r in rows:
        lines.append(f"{r['algo']:<6} {r['num_seeds']:>5}   {r['eval_last3_mean']:.3f} ± {r['eval_last3_std']:.3f}"
                     f"          {r['rollout_first5_mean']:.3f} ± {r['rollout_first5_std']:.3f} → "
                     f"{r['rollout_last10_mean']:.3f} ± {r['rollout_last10_std']:.3f}")
    return "\n".join(lines)


def write_results(args: argparse.Namespace, seeds: list[int], init_success: dict[str, float], result: Any,
                  secondary: dict[str, dict[str, list[list[tuple[int, float]]]]], elapsed: float,
                  complete: bool) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    RESULTS.mkdir(exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    colours = {"srpo": "tab:blue", "grpo": "tab:orange"}
    panels = [(result.curves, "held-out success (greedy eval)"),
              (secondary["rollout/success_rate"], f"training rollout success (T={args.temperature_label})")]
    for ax, (curves, title) in zip(axes, panels, strict=True):
        for algo, per_seed in curves.items():
            for curve in per_seed:  # thin lines: one per seed
                if curve:
                    xs, ys = zip(*curve, strict=True)
                    ax.plot(xs, ys, "-", lw=0.8, color=colours.get(algo), alpha=0.35)
            # Thick line: the mean over seeds at the steps every seed logged.
            common = sorted(set.intersection(*(set(dict(c)) for c in per_seed))) if per_seed else []
            if common:
                mean = [float(np.mean([dict(c)[x] for c in per_seed])) for x in common]
                ax.plot(common, mean, "-o", ms=3, lw=2.2, color=colours.get(algo),
                        label=f"{algo.upper()} (mean of {len(per_seed)} seeds)")
        ax.set_xlabel("RL step")
        ax.set_ylabel("success rate")
        ax.set_title(title)
        ax.set_ylim(-0.03, 1.03)
        ax.grid(alpha=0.3)
        ax.legend()
    tag = "" if complete else f" (PARTIAL: {len(seeds)} of {len(args.seeds)} seeds)"
    fig.suptitle(f"tabletop, {args.tasks} tasks: SRPO vs GRPO from the same SFT policy, seeds {seeds}{tag}")
    fig.tight_layout()
    fig.savefig(RESULTS / "learning_efficiency.png", dpi=110)
    plt.close(fig)

    def final(curves: list[list[tuple[int, float]]]) -> list[float | None]:
        return [c[-1][1] if c else None for c in curves]

    payload = {
        "benchmark": "learning_efficiency",
        "command": "python " + " ".join(sys.argv),
        "complete": complete,
        "note": "" if complete else f"partial: only seeds {seeds} of {args.seeds} finished",
        "env": "tabletop",
        "num_tasks": args.tasks,
        "initial_policy": f"compact VLA (conv_keypoints vision, hashed text, proprioception"
                          f"{' + object state' if args.object_state else ''}, chunk "
                          f"{args.chunk_size}) after {args.sft_steps} SFT steps on {args.demos_per_task} scripted "
                          f"demos per task (expert noise std {args.demo_noise}, random-walk prefix <= "
                          f"{args.random_prefix} steps, layouts drawn from {args.demo_layouts} minus the held-out "
                          f"eval ones, colour jitter, no crop); "
                          f"vision {'frozen' if args.freeze_vision_for_rl else 'trained'} during RL",
        "initial_success_held_out": init_success,
        "steps": args.steps,
        "eval": f"greedy, {args.eval_episodes} episodes per task on held-out init states, "
                f"every {args.eval_every} steps",
        "seeds": seeds,
        "target": args.target,
        "rows": result.summary_rows(),
        "table": result.table(),
        "curves": result.curves,
        "smoothed_rows": smoothed_rows(result.curves, secondary["rollout/success_rate"]),
        "smoothed_table": smoothed_table(smoothed_rows(result.curves, secondary["rollout/success_rate"])),
        "secondary_final": {m: {algo: final(c) for algo, c in v.items()} for m, v in secondary.items()},
        "secondary_curves": secondary,
        "wall_time_s": elapsed,
        "overrides": [f"algo.lr={args.lr}", *args.set],
    }
    (RESULTS / "learning_efficiency.json").write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {RESULTS / 'learning_efficiency.json'} and learning_efficiency.png ({elapsed / 60:.1f} min)")


if __name__ == "__main__":
    main()
