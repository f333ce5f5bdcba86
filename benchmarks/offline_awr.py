"""Offline SRPO: four arms from the same start on the same recorded dataset (tabletop env or LIBERO).

1. Start policy. Tabletop: SFT a compact VLA on noisy scripted demos (the learning_efficiency recipe: keypoint
   encoder, object state, random-walk starts, chunks of 2), never in a held-out layout. LIBERO (`--env libero`):
   the `cpu` preset's policy (the shipped compact LIBERO-Spatial SFT checkpoint) or `--init CHECKPOINT`.
2. `srpo record`: roll it out at temperature T from the training init states of 2 tasks (mixed outcomes), as a
   LeRobot v3 dataset.
3. `srpo offline` per arm and seed: bc (all episodes), filtered_bc (successes only), awr_binary, awr_srpo
   (EfficientNet-lite0 world-model encoder), the same optimiser steps, lr and batch size.
4. Greedy success on held-out init states (one episode per held-out state, --eval-states per task) before and
   after; Wilson 95 % intervals over the pooled episodes, and the per-seed spread.

Prints a table and writes benchmarks/results/offline_awr.json (offline_awr_libero.json with --env libero).
Resumable: finished stages under --out are reused (the recording continues batch by batch).

    python benchmarks/offline_awr.py --out runs/offline_awr [--seeds 0 1 2] [--steps 300]
    MUJOCO_GL=egl python benchmarks/offline_awr.py --env libero --out runs/offline_libero --seeds 0 \
        --train-states 10 --temperature 0.7 --batch-size 32 --record-batch 8
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, get_args

import numpy as np
import torch

from srpo.config.libero import RenderQuality
from srpo.config.train import TrainConfig, load_config
from srpo.evaluate import paired_success_difference, wilson_interval

RESULTS = Path(__file__).parent / "results"
ARMS = ("bc", "filtered_bc", "awr_binary", "awr_srpo")


def base_config(args: argparse.Namespace, overrides: list[str]) -> TrainConfig:
    if args.env == "libero":
        # The main job's env, rollout, policy and world-model encoder (`--preset cpu`), on the first --tasks
        # LIBERO-Spatial tasks: recorded from the first --train-states init states, evaluated on the last
        # --eval-states (disjoint: LIBERO has 50 per task).
        return load_config(preset="cpu", overrides=[
            f"env.libero.task_ids=[{','.join(str(t) for t in range(args.tasks))}]",
            f"env.libero.num_train_init_states={args.train_states}",
            f"env.libero.num_eval_init_states={args.eval_states}",
            "num_videos_per_step=0",
            "tensorboard=false",
            "torch_num_threads=1",
            *([f"env.libero.render_quality={args.render_quality}"] if args.render_quality else []),
            *overrides,
        ])
    return load_config(preset="tabletop", overrides=[
        f"env.tabletop.num_tasks={args.tasks}",
        "env.tabletop.object_state=true",
        f"env.tabletop.num_init_states={args.train_states + args.eval_states}",
        f"env.tabletop_num_eval_init_states={args.eval_states}",
        "policy.image_size=64",
        f"policy.feature_cache_size={args.cache}",
        "num_videos_per_step=0",
        "tensorboard=false",
        "torch_num_threads=1",
        *overrides,
    ])


def make_initial_policy(out: Path, args: argparse.Namespace) -> Path:
    """Behaviour-clone the start policy (skipped when out/final exists)."""
    from srpo.config.policy import PolicyConfig
    from srpo.config.sft import SFTConfig
    from srpo.envs.tabletop import demo_layout_pool, record_tabletop_demos
    from srpo.policies.compact import CompactVLA
    from srpo.sft import train_sft

    if args.env == "libero":
        return Path(args.init) if args.init else Path(base_config(args, []).policy.checkpoint or "")
    final = out / "final"
    if final.exists():
        return final
    cfg = base_config(args, [])
    factory, demo_states = demo_layout_pool(cfg.env.tabletop, args.eval_states, args.demo_layouts)
    tasks = list(range(args.tasks))
    demos = record_tabletop_demos(factory, tasks, args.demos_per_task + 4, seed=1234, noise_std=0.1,
                                  init_state_ids=demo_states, max_random_prefix_steps=24)
    # The image encoder stays frozen at its random initialisation and nothing is augmented, so every image's
    # features are computed once and cached: on a loaded 2-core machine this is what makes the benchmark
    # affordable. The object-state proprioception carries the positions the policy needs.
    policy = CompactVLA(PolicyConfig(vision_encoder="conv_keypoints", text_encoder="hashed", image_size=64,
                                     d_model=64, num_layers=2, ff_dim=128, state_dim=demos[0].states.shape[1],
                                     freeze_vision=True, feature_cache_size=args.cache, chunk_size=2, seed=0))
    result = train_sft(policy, demos, SFTConfig(num_demos_per_task=args.demos_per_task, num_steps=args.sft_steps,
                                                checkpoint_dir=str(out), augment=False,
                                                progress=True))
    assert result.checkpoint is not None
    return result.checkpoint


def greedy_eval(cfg: TrainConfig) -> dict[str, Any]:
    from srpo.build import make_env_factory, make_policy
    from srpo.evaluate import evaluate_policy
    from srpo.rollout import RolloutEngine

    policy = make_policy(cfg)
    factory = make_env_factory(cfg)
    with RolloutEngine(factory, cfg.rollout) as engine:
        result = evaluate_policy(engine, policy, factory.task_specs(), cfg, cfg.num_eval_episodes_per_task)
    return eval_summary(result.trajectories)


def eval_summary(trajs: list[Any]) -> dict[str, Any]:
    per_task: dict[str, list[int]] = {}
    for t in trajs:
        per_task.setdefault(str(t.task_id), []).append(int(t.success))
    wins = sum(sum(v) for v in per_task.values())
    n = sum(len(v) for v in per_task.values())
    return {"success": wins / n, "num_episodes": n, "num_successes": wins, "wilson95": wilson_interval(wins, n),
            "per_task": {k: float(np.mean(v)) for k, v in per_task.items()},
            # One greedy episode per held-out (task, init state): the key pairs arms episode by episode.
            "outcomes": {f"{t.task_id}/{t.init_state_id}": int(t.success) for t in trajs}}


def paired_difference(runs_a: list[dict[str, Any]], runs_b: list[dict[str, Any]]) -> dict[str, Any]:
    """Success of b minus success of a, paired by (seed, task, held-out init state).

    Args:
        runs_a, runs_b: Per-seed results, each with "seed" and eval["outcomes"] ({"task/init": 0|1}); a run list
            of length 1 without a seed (the start policy) pairs with every seed of the other.

    Returns:
        `srpo.evaluate.paired_success_difference` over the N pairs: {"difference", "ci95" (percentile
        bootstrap), "num_pairs", "b_only", "a_only", "mcnemar_p"}.
    """
    by_seed_a = {r.get("seed"): r["eval"]["outcomes"] for r in runs_a}
    pairs: list[tuple[int, int]] = []
    for rb in runs_b:
        outcomes_a = by_seed_a.get(rb.get("seed"), by_seed_a.get(None))
        if outcomes_a is None:
            continue
        pairs += [(outcomes_a[key], won) for key, won in rb["eval"]["outcomes"].items() if key in outcomes_a]
    if not pairs:
        raise ValueError("paired_difference: the two arms share no (seed, task, init state) episode")
    return paired_success_difference(pairs)


def run_arm(cfg: TrainConfig, show_progress: bool = False) -> dict[str, Any]:
    from srpo.offline import OfflineTrainer

    done = Path(cfg.run_dir) / "result.json"
    if done.exists():
        return dict(json.loads(done.read_text()))
    t0 = time.perf_counter()
    with OfflineTrainer(cfg, show_progress=show_progress, evaluate_start=False) as trainer:
        history = trainer.train()
        final = trainer.last_eval
    assert final is not None
    prep = trainer.prepare_metrics
    out = {"eval": eval_summary(final.trajectories), "wall_s": time.perf_counter() - t0,
           "loss_first": history[0]["loss/policy"], "loss_last": history[-1]["loss/policy"],
           "dataset": {k: v for k, v in prep.items() if not k.startswith("time/")}}
    done.write_text(json.dumps(out, indent=2))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", choices=("tabletop", "libero"), default="tabletop")
    parser.add_argument("--init", default=None, help="LIBERO: start checkpoint (default: the cpu preset's)")
    parser.add_argument("--render-quality", choices=get_args(RenderQuality), default=None,
                        help="LIBERO: env.libero.render_quality (default: the cpu preset's)")
    parser.add_argument("--out", default="runs/offline_awr")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    parser.add_argument("--tasks", type=int, default=2)
    parser.add_argument("--train-states", type=int, default=50, help="init states per task recorded from")
    parser.add_argument("--eval-states", type=int, default=40, help="held-out init states per task (greedy eval)")
    parser.add_argument("--demos-per-task", type=int, default=100)
    parser.add_argument("--cache", type=int, default=40000, help="policy.feature_cache_size (frozen image features)")
    parser.add_argument("--demo-layouts", type=int, default=1000)
    parser.add_argument("--sft-steps", type=int, default=1500)
    parser.add_argument("--episodes-per-task", type=int, default=100, help="recorded episodes per task")
    parser.add_argument("--temperature", type=float, default=1.0, help="recording temperature")
    parser.add_argument("--record-batch", type=int, default=50, help="episodes per recording batch / file")
    parser.add_argument("--steps", type=int, default=300, help="offline optimiser steps per arm")
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--beta", type=float, default=0.5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    libero = args.env == "libero"
    t0 = time.perf_counter()
    init = make_initial_policy(out / "init_sft", args)
    # LIBERO keeps the preset's checkpoint string unless --init names another, so that a recording started
    # with `srpo record --preset cpu` (same seed, temperature and batch) is continued rather than refused.
    common = [f"num_eval_episodes_per_task={args.eval_states}"]
    if args.env == "tabletop" or args.init:
        common.insert(0, f"policy.checkpoint={init}")
    print(f"initial policy {init}; SFT done at {time.perf_counter() - t0:.0f} s", flush=True)

    init_path = out / "initial_eval.json"
    if not init_path.exists():
        init_path.write_text(json.dumps(greedy_eval(base_config(args, common)), indent=2))
    initial = json.loads(init_path.read_text())
    print(f"initial greedy held-out success {initial['success']:.3f}", flush=True)

    from srpo.record import record_dataset

    dataset = out / "dataset"
    rec = record_dataset(base_config(args, common), dataset, args.episodes_per_task, args.temperature,
                         batch_episodes=args.record_batch, show_progress=libero)
    print(f"recorded {dataset}:\n{rec.table()}", flush=True)

    results: dict[str, list[dict[str, Any]]] = {}
    for seed in args.seeds:
        for arm in args.arms:
            cfg = base_config(args, [*common, f"seed={seed}", f"run_dir={out / 'runs' / arm / f'seed{seed}'}",
                                     f"offline.dataset={dataset}", f"offline.arm={arm}", f"offline.beta={args.beta}",
                                     f"offline.batch_size={args.batch_size}", f"num_steps={args.steps}",
                                     f"algo.lr={args.lr}", f"checkpoint_every={args.steps}", "eval_every=0",
                                     # LIBERO keeps the cpu preset's encoder (EfficientNet-lite0, 16 frames).
                                     *([] if libero else ["encoder.name=efficientnet", "encoder.num_frames=8",
                                                          "encoder.dtype=float32", "encoder.device=cpu"])])
            r = run_arm(cfg, show_progress=libero)
            results.setdefault(arm, []).append({"seed": seed, **r})
            print(f"{arm:12s} seed {seed}: held-out greedy {r['eval']['success']:.3f} "
                  f"({r['wall_s']:.0f} s)", flush=True)

    rows = []
    for arm, runs in results.items():
        wins = sum(r["eval"]["num_successes"] for r in runs)
        n = sum(r["eval"]["num_episodes"] for r in runs)
        per_seed = [r["eval"]["success"] for r in runs]
        rows.append({"arm": arm, "seeds": [r["seed"] for r in runs], "success_pooled": wins / n, "num_episodes": n,
                     "wilson95": wilson_interval(wins, n), "per_seed": per_seed, "seed_std": float(np.std(per_seed)),
                     "weights": {k: runs[0]["dataset"].get(k) for k in ("weights/success_mean", "weights/failure_mean",
                                                                        "weights/effective_sample_fraction")}})
    print(f"\ninitial policy: {initial['success']:.3f} greedy on {initial['num_episodes']} held-out episodes "
          f"(95 % CI {initial['wilson95'][0]:.3f}–{initial['wilson95'][1]:.3f})")
    print(f"{'arm':12s} {'held-out greedy (pooled)':>26s} {'95 % Wilson':>14s}  per seed")
    for row in rows:
        lo, hi = row["wilson95"]
        print(f"{row['arm']:12s} {row['success_pooled']:>18.3f} (n={row['num_episodes']}) {lo:>6.3f}–{hi:.3f}  "
              + ", ".join(f"{s:.3f}" for s in row["per_seed"]))
    # Paired by held-out episode: every arm against the start policy, and every other arm against awr_srpo.
    start = [{"eval": initial}]
    paired: dict[str, dict[str, Any]] = {}
    for arm, runs in results.items():
        if "outcomes" in initial:
            paired[f"{arm} - start"] = paired_difference(start, runs)
        if arm != "awr_srpo" and "awr_srpo" in results:
            paired[f"awr_srpo - {arm}"] = paired_difference(runs, results["awr_srpo"])
    if paired:
        print(f"\n{'paired difference (same held-out episodes)':44s} {'mean':>7s} {'95 % bootstrap':>17s}  won/lost")
    for name, d in paired.items():
        print(f"{name:44s} {d['difference']:>+7.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]  "
              f"{d['b_only']}/{d['a_only']} of {d['num_pairs']}")
    first_runs = next(iter(results.values()))
    summary = {
        "complete": all(len(v) == len(args.seeds) for v in results.values()) and len(results) == len(args.arms),
        "command": "python benchmarks/offline_awr.py " + " ".join(
            f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in
            vars(args).items() if v is not None),  # an option left unset (e.g. --init) is left out
        "args": vars(args), "initial": initial, "recording": {"episodes": rec.num_episodes,
                                                              "successes": rec.num_successes},
        "dataset": first_runs[0]["dataset"], "arms": rows, "paired": paired, "runs": results,
        "wall_s": time.perf_counter() - t0,
    }
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / ("offline_awr_libero.json" if libero else "offline_awr.json")
    path.write_text(json.dumps(summary, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
