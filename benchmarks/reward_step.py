"""Time the SRPO reward step: 512 trajectories × 1408-d embeddings (V-JEPA 2 ViT-g), 10 tasks, both presets.

Baseline in the same run: a straightforward per-trajectory loop (per task: scaler + DBSCAN, then a Python loop
over failures computing the distance to every centre with np.linalg.norm), the shape of the official code.
Prints a table and writes benchmarks/results/reward_step.json. Target: srpo ≤ 50 ms median on 2 CPU cores.

    python benchmarks/reward_step.py [--repeats 30]
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
from sklearn.cluster import DBSCAN
from sklearn.preprocessing import StandardScaler

from srpo.algo.advantages import group_advantages
from srpo.config.reward import RewardConfig
from srpo.reward.progress import compute_progress_rewards
from srpo.scoring import make_synthetic_batch


def loop_baseline(emb: np.ndarray, success: np.ndarray, tasks: np.ndarray) -> np.ndarray:
    """Official-style reward: per task, per failure, a Python loop over centres."""
    rewards = success.astype(np.float64).copy()
    for task in np.unique(tasks):
        rows = np.flatnonzero(tasks == task)
        succ = emb[rows[success[rows]]]
        fails = rows[~success[rows]]
        if len(succ) == 0 or len(fails) == 0:
            continue
        labels = DBSCAN(eps=0.5, min_samples=2).fit_predict(StandardScaler().fit_transform(succ))
        centres = [succ[labels == k].mean(axis=0) for k in set(labels) if k != -1] or [succ.mean(axis=0)]
        dists = []
        for i in fails:
            dists.append(min(float(np.linalg.norm(emb[i] - c)) for c in centres))
        d = np.asarray(dists)
        d = np.full_like(d, 0.5) if d.max() - d.min() < 1e-6 else (d - d.min()) / (d.max() - d.min())
        rewards[fails] = 0.6 / (1.0 + np.exp(-10.0 * (0.5 - d)))
    return rewards


def time_call(fn, repeats: int) -> list[float]:
    fn()  # warm-up (imports, allocator)
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "reward_step.json"))
    args = parser.parse_args()

    # 64 prompts × 8 rollouts = 512 trajectories, as in one official step.
    batch = make_synthetic_batch(num_tasks=8, num_groups_per_task=8, group_size=8, dim=1408, seed=0)
    emb, success, tasks, groups = batch["embeddings"], batch["success"], batch["task_ids"], batch["group_ids"]
    # Re-assign the 64 groups round-robin to 10 tasks so the batch has 10 tasks, as in the target.
    tasks = (groups % 10).astype(np.int64)
    n, dim = emb.shape

    rows = []
    for preset in ("official", "paper"):
        cfg = RewardConfig.preset(preset)

        def srpo_step(cfg: RewardConfig = cfg) -> None:
            out = compute_progress_rewards(emb, success, tasks, groups, cfg)
            group_advantages(out.rewards, groups)

        times = time_call(srpo_step, args.repeats)
        rows.append(
            {
                "impl": f"srpo ({preset})",
                "median_ms": statistics.median(times),
                "p90_ms": float(np.percentile(times, 90)),
            }
        )

    base = time_call(lambda: loop_baseline(emb, success, tasks), max(5, args.repeats // 3))
    rows.append(
        {
            "impl": "per-trajectory loop (official shape)",
            "median_ms": statistics.median(base),
            "p90_ms": float(np.percentile(base, 90)),
        }
    )
    # Same rewards as the baseline, to be sure the comparison is like for like.
    ours = compute_progress_rewards(emb, success, tasks, groups, RewardConfig.preset("official")).rewards
    np.testing.assert_allclose(
        ours, loop_baseline(emb, success, tasks), rtol=1e-5, atol=1e-6
    )  # baseline works in float32

    baseline_ms = rows[-1]["median_ms"]
    print(f"reward step: N={n} trajectories, D={dim}, {len(np.unique(tasks))} tasks, {len(np.unique(groups))} groups")
    print(f"{'implementation':<40} {'median ms':>10} {'p90 ms':>8} {'speed-up':>9}")
    for r in rows:
        r["speedup_vs_loop"] = baseline_ms / r["median_ms"]
        print(f"{r['impl']:<40} {r['median_ms']:>10.2f} {r['p90_ms']:>8.2f} {r['speedup_vs_loop']:>8.2f}x")
    target_ok = all(r["median_ms"] <= 50.0 for r in rows[:2])
    print(f"target ≤ 50 ms median (both presets): {'met' if target_ok else 'NOT met'}")

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(
        json.dumps(
            {
                "benchmark": "reward_step",
                "num_trajectories": n,
                "dim": dim,
                "num_tasks": len(np.unique(tasks)),
                "repeats": args.repeats,
                "machine": {
                    "cpu_count": os.cpu_count(),
                    "platform": platform.platform(),
                    "python": platform.python_version(),
                },
                "rows": rows,
                "target_ms": 50.0,
                "target_met": target_ok,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
