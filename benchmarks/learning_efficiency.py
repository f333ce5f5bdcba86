"""SRPO vs GRPO on the built-in tabletop env: same initial policy (a short SFT on a few scripted demos), same
tasks, same seeds; evaluation success (greedy, held-out init states) against training step.

Prints a table (final success mean ± std over seeds, steps to reach the target) and writes
benchmarks/results/learning_efficiency.json and .png. Runs are resumable: re-running the script reuses finished
runs under --out.

    python benchmarks/learning_efficiency.py [--seeds 0 1 2] [--steps 12] [--target 0.6]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from srpo.compare import run_compare
from srpo.config.train import load_config

RESULTS = Path(__file__).parent / "results"


def make_initial_policy(out: Path, tasks: list[int], demos_per_task: int, sft_steps: int, image_size: int) -> Path:
    """SFT a compact VLA on a few scripted demos so that RL starts from non-zero but imperfect success."""
    from srpo.config.env import TabletopConfig
    from srpo.config.policy import PolicyConfig
    from srpo.config.sft import SFTConfig
    from srpo.envs.tabletop import TabletopEnvFactory, record_tabletop_demos
    from srpo.policies.compact import CompactVLA
    from srpo.sft import train_sft

    final = out / "final"
    if final.exists():
        return final
    factory = TabletopEnvFactory(TabletopConfig(image_size=image_size, num_tasks=max(tasks) + 1))
    demos = record_tabletop_demos(factory, tasks, demos_per_task + 2, seed=1234)
    policy = CompactVLA(PolicyConfig(vision_encoder="conv", text_encoder="hashed", image_size=image_size,
                                     d_model=64, num_layers=2, ff_dim=128, seed=0))
    cfg = SFTConfig(num_demos_per_task=demos_per_task, num_steps=sft_steps, checkpoint_dir=str(out),
                    progress=True)
    result = train_sft(policy, demos, cfg)
    assert result.checkpoint is not None
    return result.checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--target", type=float, default=0.6)
    parser.add_argument("--tasks", type=int, default=2, help="tabletop tasks 0..N-1")
    parser.add_argument("--demos-per-task", type=int, default=2)
    parser.add_argument("--sft-steps", type=int, default=150)
    parser.add_argument("--eval-every", type=int, default=2)
    parser.add_argument("--eval-episodes", type=int, default=10, help="per task, on held-out init states")
    parser.add_argument("--out", default="runs/learning_efficiency")
    parser.add_argument("--fresh", action="store_true", help="delete --out first")
    parser.add_argument("--set", action="append", default=[], help="extra config overrides key=value")
    args = parser.parse_args()

    out = Path(args.out)
    if args.fresh and out.exists():
        shutil.rmtree(out)
    t0 = time.perf_counter()
    init = make_initial_policy(out / "init_sft", list(range(args.tasks)), args.demos_per_task, args.sft_steps, 64)
    base = load_config(preset="tabletop", overrides=[
        f"policy.checkpoint={init}",
        f"env.tabletop.num_tasks={args.tasks}",
        f"num_steps={args.steps}",
        f"eval_every={args.eval_every}",
        f"num_eval_episodes_per_task={args.eval_episodes}",
        "num_videos_per_step=0",
        "tensorboard=false",
        *args.set,
    ])
    result = run_compare(base, out / "runs", seeds=args.seeds, target=args.target, show_progress=True)
    elapsed = time.perf_counter() - t0
    print(result.table())
    RESULTS.mkdir(exist_ok=True)
    shutil.copy(out / "runs" / "compare.png", RESULTS / "learning_efficiency.png")
    payload = {
        "benchmark": "learning_efficiency",
        "env": "tabletop",
        "num_tasks": args.tasks,
        "initial_policy": f"compact VLA (conv vision, hashed text) after {args.sft_steps} SFT steps on "
                          f"{args.demos_per_task} scripted demos per task",
        "steps": args.steps,
        "eval": f"greedy, {args.eval_episodes} episodes per task on held-out init states, "
                f"every {args.eval_every} steps",
        "seeds": args.seeds,
        "target": args.target,
        "rows": result.summary_rows(),
        "curves": result.curves,
        "wall_time_s": elapsed,
        "overrides": args.set,
    }
    (RESULTS / "learning_efficiency.json").write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {RESULTS / 'learning_efficiency.json'} and learning_efficiency.png ({elapsed / 60:.1f} min)")


if __name__ == "__main__":
    main()
