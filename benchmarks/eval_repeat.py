"""Does a greedy evaluation repeat inside one process? The same checkpoint evaluated several times on one engine.

`srpo train` evaluates with the env hosts that ran its training episodes, and `srpo eval` with fresh ones. If an
env carried anything from one episode into the next (solver warm start, controller state, a cache), or the
policy did, the same weights on the same init states would score differently by history. This evaluates one
checkpoint `--repeats` times in a row on one rollout engine (greedy, held-out init states, the preset's render
quality) and compares every repeat with the first, episode by episode: outcome and episode length. Prints a table
and writes JSON.

    MUJOCO_GL=egl python benchmarks/eval_repeat.py --checkpoint runs/preset60/grpo/seed0/ckpt-000060/policy \
        --repeats 2 --out benchmarks/results/libero_preset60/eval_repeat.json
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from bench_common import machine_info, use_headless_gl, write_report

RESULTS = Path(__file__).resolve().parent / "results" / "eval_repeat.json"


def compare_repeats(first: list[dict[str, Any]], other: list[dict[str, Any]]) -> dict[str, int]:
    """Per-episode agreement of two evaluations in run order (same tasks and init states, in the same order).

    Returns:
        {"num_episodes", "same_outcome", "same_length", "first_only" (won only by the first), "other_only"}.
    """
    keys_a = [(e["task_id"], e["init_state_id"]) for e in first]
    keys_b = [(e["task_id"], e["init_state_id"]) for e in other]
    if keys_a != keys_b:
        raise ValueError("the two evaluations ran different episodes: compare evaluations of one request list")
    return {
        "num_episodes": len(first),
        "same_outcome": sum(a["success"] == b["success"] for a, b in zip(first, other, strict=True)),
        "same_length": sum(a["num_steps"] == b["num_steps"] for a, b in zip(first, other, strict=True)),
        "first_only": sum(a["success"] and not b["success"] for a, b in zip(first, other, strict=True)),
        "other_only": sum(b["success"] and not a["success"] for a, b in zip(first, other, strict=True)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="cpu", choices=["cpu", "paper"])
    parser.add_argument("--checkpoint", default=None, help="policy checkpoint (default: the preset's)")
    parser.add_argument("--repeats", type=int, default=2, help="evaluations in a row on one engine (>= 2)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override, as for srpo (repeatable)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.repeats < 2:
        parser.error(f"--repeats={args.repeats} is invalid: choose 2 or more")
    use_headless_gl()
    from dataclasses import replace

    from srpo.build import apply_torch_threads, make_env_factory, make_policy
    from srpo.config.train import load_config
    from srpo.evaluate import evaluate_policy
    from srpo.rollout import RolloutEngine

    cfg = load_config(preset=args.preset, overrides=args.overrides)
    if args.checkpoint:
        cfg = replace(cfg, policy=replace(cfg.policy, checkpoint=args.checkpoint))
    apply_torch_threads(cfg)
    policy = make_policy(cfg)
    factory = make_env_factory(cfg)
    specs = factory.task_specs()
    per_task = cfg.num_eval_episodes_per_task
    runs: list[dict[str, Any]] = []
    with RolloutEngine(factory, cfg.rollout) as engine:
        for r in range(args.repeats):
            start = time.perf_counter()
            result = evaluate_policy(engine, policy, specs, cfg, per_task)
            episodes = result.episode_records()
            runs.append({"num_successes": result.num_successes, "num_episodes": len(episodes),
                         "wall_s": time.perf_counter() - start, "episodes": episodes})
            print(f"repeat {r}: {result.num_successes}/{len(episodes)} ({runs[-1]['wall_s']:.0f} s)", flush=True)
    comparisons = [compare_repeats(runs[0]["episodes"], run["episodes"]) for run in runs[1:]]
    print(f"\n{'repeat':<8}{'successes':>11}{'same outcome':>14}{'same length':>13}{'only 1st / only this':>22}")
    print(f"{0:<8}{runs[0]['num_successes']:>7}/{runs[0]['num_episodes']:<3}")
    for r, c in enumerate(comparisons, start=1):
        print(f"{r:<8}{runs[r]['num_successes']:>7}/{runs[r]['num_episodes']:<3}{c['same_outcome']:>10}/{c['num_episodes']:<3}"
              f"{c['same_length']:>9}/{c['num_episodes']:<3}{c['first_only']:>12} / {c['other_only']}")
    report = {"preset": args.preset, "checkpoint": cfg.policy.checkpoint, "overrides": args.overrides,
              "render_quality": cfg.env.libero.render_quality if cfg.env.kind == "libero" else None,
              "torch_num_threads": cfg.torch_num_threads, "repeats": runs, "against_first": comparisons,
              **machine_info()}
    write_report(args.out, report)


if __name__ == "__main__":
    main()
