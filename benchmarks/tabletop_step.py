"""Tabletop env speed: env steps per second with images rendered once per 8-step chunk (as the rollout engine
asks), on one core. Moved out of the test suite: a timing on a shared machine is a measurement, not a check.

Prints a table and writes benchmarks/results/tabletop_step.json.

    python benchmarks/tabletop_step.py [--steps 2000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

from srpo.config.env import TabletopConfig
from srpo.envs.tabletop import TabletopEnvFactory

CHUNK = 8


def steps_per_second(num_steps: int, seed: int) -> float:
    """Random actions in [-1, 1] from init state 0; both images rendered at the last step of each chunk."""
    env = TabletopEnvFactory(TabletopConfig(num_init_states=50, max_steps=64)).make(0)
    env.reset(0)
    actions = np.random.default_rng(seed).uniform(-1, 1, size=(num_steps, 7))
    start = time.perf_counter()
    for i, action in enumerate(actions):
        render = i % CHUNK == CHUNK - 1
        env.step(action, render, render)
    wall = time.perf_counter() - start
    env.close()
    return num_steps / wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "tabletop_step.json"))
    args = parser.parse_args()
    rates = [steps_per_second(args.steps, seed) for seed in range(args.repeats)]
    result = {"env_steps_per_s_median": statistics.median(rates), "env_steps_per_s": rates,
              "num_steps": args.steps, "repeats": args.repeats, "machine": platform.processor() or platform.machine(),
              "num_cpus": os.cpu_count(), "load_avg_1m": os.getloadavg()[0]}
    print(f"{'variant':<28}{'env steps/s (median)':>22}")
    print(f"{'tabletop, render 1 in 8':<28}{result['env_steps_per_s_median']:>22.0f}")
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
