"""Memory of an env worker: resident memory as envs of the configured tasks are built, reset and stepped.

An env worker keeps an env for every episode it has run concurrently, per task: up to
`rollout.num_envs_per_worker` envs of each task, or `rollout.max_envs_per_worker` in all when that is set (it
closes the least recently used idle env beyond it). A LIBERO env holds a MuJoCo model and an offscreen renderer, so
that count sets how much memory a run needs. This builds the envs one worker would hold, in this process, and reads
its resident set size (Linux /proc) after each: the first env (which also imports the simulator), every further
one, and after a few rendered steps on each (a leak would show there). From the mean cost of an env after the
first it estimates the workers' memory for the config. Prints a table, writes JSON.

    MUJOCO_GL=egl python benchmarks/env_memory.py --preset cpu --out benchmarks/results/env_memory.json
    MUJOCO_GL=egl python benchmarks/env_memory.py --preset cpu --set rollout.max_envs_per_worker=4 ...
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench_common import machine_info, use_headless_gl, write_report

GIB = 2**30


def rss_gib() -> float:
    """Resident set size of this process in GiB (Linux: /proc/self/statm)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / GIB


def envs_held_per_worker(num_envs_per_worker: int, num_tasks: int, max_envs_per_worker: int) -> int:
    """The most envs one worker keeps built: `num_envs_per_worker` per task, capped by `max_envs_per_worker`
    (0: no cap)."""
    held = num_envs_per_worker * num_tasks
    return held if max_envs_per_worker == 0 else min(held, max_envs_per_worker)


def worker_estimate_gib(base: float, first_env: float, per_env: float, held: int) -> float:
    """One worker's resident memory holding `held` envs: the bare process, the first env (with the simulator's
    import), and `per_env` for each further env."""
    return base + first_env + per_env * max(held - 1, 0)


def measure(factory: Any, task_ids: list[int], envs_per_task: int, steps: int) -> dict[str, Any]:
    """Build `envs_per_task` envs of every task (round robin over tasks), reset each on its first init state, then
    run `steps` zero-action steps with both cameras rendered on every env; the RSS after each phase."""
    base = rss_gib()
    rows: list[dict[str, Any]] = []
    envs = []
    for copy in range(envs_per_task):
        for task in task_ids:
            start = time.perf_counter()
            env = factory.make(task)
            env.reset(0)
            envs.append(env)
            rows.append({"task_id": task, "copy": copy, "rss_gib": rss_gib(),
                         "build_s": time.perf_counter() - start})
    before_steps = rss_gib()
    zero = np.zeros(7, dtype=np.float32)
    for env in envs:
        env.reset(0)
        for _ in range(steps):
            env.step(zero, True, True)
    after_steps = rss_gib()
    for env in envs:
        env.close()
    increments = np.diff([base] + [r["rss_gib"] for r in rows])
    return {"base_rss_gib": base, "envs": rows, "first_env_gib": float(increments[0]),
            "per_env_gib": float(np.mean(increments[1:])) if len(increments) > 1 else float(increments[0]),
            "rss_before_steps_gib": before_steps, "rss_after_steps_gib": after_steps,
            "growth_over_steps_gib": after_steps - before_steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="cpu", choices=["cpu", "tabletop", "paper"])
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override, as for srpo (repeatable)")
    parser.add_argument("--envs-per-task", type=int, default=None,
                        help="envs built per task (default: what one worker of the config holds, up to "
                             "rollout.num_envs_per_worker per task)")
    parser.add_argument("--steps", type=int, default=20, help="rendered steps per env after building them all")
    parser.add_argument("--out", type=Path, required=True, help="JSON report")
    args = parser.parse_args()
    if args.steps < 0 or (args.envs_per_task is not None and args.envs_per_task < 1):
        parser.error("--steps must be >= 0 and --envs-per-task >= 1")
    use_headless_gl()
    from srpo.build import make_env_factory
    from srpo.config.train import load_config

    cfg = load_config(preset=args.preset, overrides=args.overrides)
    factory = make_env_factory(cfg)
    task_ids = [spec.task_id for spec in factory.task_specs()]
    r = cfg.rollout
    held = envs_held_per_worker(r.num_envs_per_worker, len(task_ids), r.max_envs_per_worker)
    envs_per_task = args.envs_per_task or max(1, min(r.num_envs_per_worker, -(-held // len(task_ids))))
    result = measure(factory, task_ids, envs_per_task, args.steps)
    worker = worker_estimate_gib(result["base_rss_gib"], result["first_env_gib"], result["per_env_gib"], held)
    workers = max(1, r.num_workers)
    print(f"{'env':>4} {'task':>5} {'RSS GiB':>8} {'build s':>8}")
    for i, row in enumerate(result["envs"]):
        print(f"{i:>4} {row['task_id']:>5} {row['rss_gib']:>8.2f} {row['build_s']:>8.1f}")
    print(f"bare process {result['base_rss_gib']:.2f} GiB; first env +{result['first_env_gib']:.2f} GiB (with the "
          f"simulator's import), each further env +{result['per_env_gib']:.2f} GiB; {args.steps} rendered steps on "
          f"each env: {result['growth_over_steps_gib']:+.2f} GiB")
    print(f"config: {workers} worker(s) × up to {held} envs ({r.num_envs_per_worker} per task × {len(task_ids)} "
          f"tasks, max_envs_per_worker={r.max_envs_per_worker}): ~{worker:.1f} GiB per worker, "
          f"~{worker * workers:.1f} GiB for the workers")
    write_report(args.out, {"preset": args.preset, "overrides": args.overrides, "task_ids": task_ids,
                            "envs_per_task": envs_per_task, "steps": args.steps, **result,
                            "num_workers": r.num_workers, "num_envs_per_worker": r.num_envs_per_worker,
                            "max_envs_per_worker": r.max_envs_per_worker, "envs_held_per_worker": held,
                            "worker_estimate_gib": worker, "workers_estimate_gib": worker * workers,
                            **machine_info()})


if __name__ == "__main__":
    main()
