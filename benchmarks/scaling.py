"""Rollout throughput on Ray with 1 vs 2 rollout actors, and a projection to N nodes.

Workload: the built-in tabletop env, the tabletop preset's compact VLA (conv vision, 64² images) sampling at
temperature 1, GRPO groups of 8; every variant rolls out the same requests with the same total number of envs
(so the same policy batch sizes). Variants:

    inprocess   RolloutEngine(num_workers=0): envs stepped in the driver (reference, no transport)
    ray-1       RayRolloutEngine, 1 actor × E envs
    ray-2       RayRolloutEngine, 2 actors × E/2 envs

Each variant first runs one warm-up collect (actors start, envs are constructed), then `--repeats` timed collects.
Reported: episodes/min and env steps/s of the timed collects, and the split of their wall time into policy
(driver), env rounds (actors stepping + transport) and the rest.

Projection. A collect alternates two serial phases (the driver samples one chunk for every ready episode, then
every actor steps its chunks), so with measured rates r_w (env steps per second of env-round time, per actor)
and r_p (env steps per second of policy time in the driver), N nodes × W actors per node give about

    steps/s(N) ≈ 1 / (1 / (N · W · r_w) + 1 / r_p)

The policy term caps scaling (Amdahl): more actors only help while the driver's batched policy keeps up. The
JSON holds the measured rates, the formula's prediction for the 2-actor run measured here (a check of the
model), and projections for N = 1, 2, 4, 8, 16 nodes; for LIBERO it uses the per-worker rate recorded by
benchmarks/rollout_throughput.py (the env dominates there: ~14 steps/s per worker on this CPU).

    nice python benchmarks/scaling.py [--episodes 64] [--envs 16] [--repeats 2]
    MUJOCO_GL=egl nice python benchmarks/scaling.py --env libero --policy fixed --episodes 4 --envs 4 \
        --max-steps 48 --repeats 1

Results go to benchmarks/results/scaling.json under the key "<env>/<policy>" (other runs are kept).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results" / "scaling.json"
LIBERO_RESULTS = Path(__file__).resolve().parent / "results" / "rollout_throughput.json"
PROJECTION_NODES = (1, 2, 4, 8, 16)


def make_policy(kind: str) -> Any:
    """"compact": the tabletop preset's compact VLA; "fixed": zero motion, no compute (isolates the envs)."""
    if kind == "fixed":
        from rollout_throughput import FixedActionPolicy  # benchmarks/ is on sys.path when run as a script

        return FixedActionPolicy()
    elif kind == "compact":
        from srpo.config.train import TrainConfig
        from srpo.policies.compact import CompactVLA

        return CompactVLA(TrainConfig.preset("tabletop").policy)
    else:
        raise ValueError(f"unknown policy {kind!r}: choose 'compact' or 'fixed'")


def make_factory(env: str, max_steps: int) -> Any:
    if env == "tabletop":
        from srpo.config.env import TabletopConfig
        from srpo.envs.tabletop import TabletopEnvFactory

        return TabletopEnvFactory(TabletopConfig(num_tasks=4, max_steps=max_steps))
    elif env == "libero":
        from srpo.config.libero import LiberoConfig
        from srpo.envs.libero import LiberoEnvFactory

        return LiberoEnvFactory(LiberoConfig(suite="libero_spatial", task_ids=(0, 1), image_size=224,
                                             embed_image_size=224, max_steps=max_steps))
    else:
        raise ValueError(f"unknown env {env!r}: choose 'tabletop' or 'libero'")


def run_variant(name: str, num_workers: int, num_envs: int, requests: list[Any], args: argparse.Namespace
                ) -> dict[str, Any]:
    """Warm-up collect, then `args.repeats` timed collects; rates over the timed ones."""
    import torch

    from srpo.config.distributed import DistributedConfig
    from srpo.config.rollout import RolloutConfig
    from srpo.distributed.ray_rollout import RayRolloutEngine
    from srpo.rollout import RolloutEngine

    factory = make_factory(args.env, args.max_steps)
    config = RolloutConfig(num_workers=0, num_envs_per_worker=num_envs)
    torch.manual_seed(0)
    policy = make_policy(args.policy)
    # Give Ray time to reap the previous variant's actors, so the variants do not share the CPUs.
    time.sleep(2.0)
    start = time.perf_counter()
    if num_workers == 0:
        engine: RolloutEngine = RolloutEngine(factory, config)
    else:
        engine = RayRolloutEngine(factory, config, DistributedConfig(
            backend="ray", num_rollout_workers=num_workers, num_envs_per_worker=num_envs,
            cpus_per_worker=1.0))
    with engine:
        engine.collect(policy, requests, 1.0)
        warmup_s = time.perf_counter() - start
        wall = policy_s = env_s = 0.0
        steps = episodes = 0
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            trajs, stats = engine.collect(policy, requests, 1.0)
            wall += time.perf_counter() - t0
            policy_s += stats.extra["time/rollout_policy_s"]
            env_s += stats.extra["time/rollout_env_s"]
            steps += stats.num_env_steps
            episodes += len(trajs)
    return {
        "variant": name, "num_workers": num_workers, "num_envs_per_worker": num_envs, "warmup_s": warmup_s,
        "wall_s": wall, "policy_s": policy_s, "env_round_s": env_s, "other_s": wall - policy_s - env_s,
        "num_episodes": episodes, "num_env_steps": steps,
        "episodes_per_min": 60.0 * episodes / wall, "env_steps_per_s": steps / wall,
        # Per actor: env steps per second of env-round time, divided among the actors that ran in parallel.
        "env_steps_per_s_per_worker": steps / env_s / max(num_workers, 1),
        "env_steps_per_policy_s": steps / policy_s if policy_s > 0 else None,
    }


def projected_steps_per_s(num_actors: int, per_worker: float, policy_rate: float | None) -> float:
    """steps/s ≈ 1 / (1 / (actors · r_w) + 1 / r_p); without r_p, the env-bound upper bound actors · r_w."""
    env_time = 1.0 / (num_actors * per_worker)
    return 1.0 / (env_time + (1.0 / policy_rate if policy_rate else 0.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", choices=["tabletop", "libero"], default="tabletop")
    parser.add_argument("--policy", choices=["compact", "fixed"], default="compact")
    parser.add_argument("--max-steps", type=int, default=64, help="episode length limit")
    parser.add_argument("--episodes", type=int, default=64, help="episodes per collect (groups of 8)")
    parser.add_argument("--envs", type=int, default=16, help="envs in total (split over the actors)")
    parser.add_argument("--repeats", type=int, default=2, help="timed collects per variant")
    parser.add_argument("--num-cpus", type=int, default=2, help="CPUs of the local Ray cluster")
    parser.add_argument("--workers-per-node", type=int, default=16, help="W in the projection")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    import ray
    import torch

    from srpo.rollout import make_group_requests

    # One driver thread: the policy then costs the same in every variant instead of depending on how many
    # cores the actors leave free.
    torch.set_num_threads(1)
    num_tasks = 4 if args.env == "tabletop" else 2
    group = min(8, args.episodes)
    num_groups = max(1, args.episodes // group)
    requests = make_group_requests([g % num_tasks for g in range(num_groups)], list(range(num_groups)), group)
    ray.init(address="local", num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False)
    try:
        rows = [
            run_variant("inprocess", 0, args.envs, requests, args),
            run_variant("ray-1", 1, args.envs, requests, args),
            run_variant("ray-2", 2, args.envs // 2, requests, args),
        ]
    finally:
        ray.shutdown()

    one, two = rows[1], rows[2]
    per_worker = one["env_steps_per_s_per_worker"]
    policy_rate = one["env_steps_per_policy_s"]
    libero = None
    if LIBERO_RESULTS.exists():
        libero_srpo = json.loads(LIBERO_RESULTS.read_text())["results"]["srpo"]
        libero = {"source": str(LIBERO_RESULTS.relative_to(LIBERO_RESULTS.parents[2])),
                  "env_steps_per_s_per_worker": libero_srpo["env_steps_per_s"] / libero_srpo["num_workers"]}
    projection: dict[str, Any] = {
        "model": "steps/s(N) = 1 / (1 / (N * W * r_w) + 1 / r_p); env rounds and driver policy calls alternate",
        "workers_per_node": args.workers_per_node,
        args.env: {
            "r_w_env_steps_per_s_per_worker": per_worker, "r_p_env_steps_per_policy_s": policy_rate,
            "check_2_workers_predicted": projected_steps_per_s(2, per_worker, policy_rate),
            "check_2_workers_measured_env_plus_policy": two["num_env_steps"] / (two["env_round_s"] + two["policy_s"]),
            "nodes": {str(n): projected_steps_per_s(n * args.workers_per_node, per_worker, policy_rate)
                      for n in PROJECTION_NODES},
        },
    }
    if libero is not None and args.env != "libero":
        r_w = libero["env_steps_per_s_per_worker"]
        projection["libero_env_bound"] = {
            **libero,
            "note": "env-bound upper bound (policy term omitted: a GPU policy's batched call is not measured here)",
            "nodes": {str(n): projected_steps_per_s(n * args.workers_per_node, r_w, None) for n in PROJECTION_NODES},
        }
    result: dict[str, Any] = {
        "workload": {"env": args.env, "max_steps": args.max_steps, "episodes_per_collect": len(requests),
                     "envs_total": args.envs, "repeats": args.repeats,
                     "policy": {"compact": "compact VLA, tabletop preset (conv, 64x64, d_model 64), temperature 1",
                                "fixed": "fixed zero-motion action chunk, no compute"}[args.policy]},
        "machine": {"cpu_count": os.cpu_count(), "ray_num_cpus": args.num_cpus, "platform": platform.platform(),
                    "load_avg_1min": os.getloadavg()[0]},
        "results": rows,
        "ratios": {"ray2_over_ray1_steps_per_s": two["env_steps_per_s"] / one["env_steps_per_s"],
                   "ray2_over_ray1_env_round": one["env_round_s"] / two["env_round_s"],
                   "ray1_over_inprocess_steps_per_s": one["env_steps_per_s"] / rows[0]["env_steps_per_s"]},
        "projection": projection,
    }
    # One file for all runs, keyed by "env/policy": a LIBERO run keeps the tabletop numbers and vice versa.
    args.out.parent.mkdir(parents=True, exist_ok=True)
    runs = json.loads(args.out.read_text()) if args.out.exists() else {}
    runs[f"{args.env}/{args.policy}"] = result
    args.out.write_text(json.dumps(runs, indent=1) + "\n")

    header = f"{'variant':<10} {'workers':>7} {'envs/w':>6} {'episodes/min':>12} {'steps/s':>8} {'policy_s':>8} " \
             f"{'env_s':>7} {'other_s':>7} {'warmup_s':>8}"
    print(header)
    for r in rows:
        print(f"{r['variant']:<10} {r['num_workers']:>7} {r['num_envs_per_worker']:>6} {r['episodes_per_min']:>12.0f} "
              f"{r['env_steps_per_s']:>8.0f} {r['policy_s']:>8.2f} {r['env_round_s']:>7.2f} {r['other_s']:>7.2f} "
              f"{r['warmup_s']:>8.2f}")
    print(f"\nratio ray-2 / ray-1: {result['ratios']['ray2_over_ray1_steps_per_s']:.2f} (steps/s), "
          f"{result['ratios']['ray2_over_ray1_env_round']:.2f} (env rounds); load avg {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores")
    print(f"projection ({args.workers_per_node} actors/node, {args.env} r_w={per_worker:.0f}, "
          f"r_p={policy_rate or 0:.0f} steps/s): "
          + ", ".join(f"N={n}: {v:.0f}" for n, v in projection[args.env]["nodes"].items()))
    if "libero_env_bound" in projection:
        print("projection LIBERO (env-bound): " + ", ".join(
            f"N={n}: {v:.0f}" for n, v in projection["libero_env_bound"]["nodes"].items()) + " steps/s")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
