"""Cost of running an env in a child process (srpo.envs.remote.RemoteEnv) instead of in the worker.

The built-in tabletop env steps in well under a millisecond, so the difference between the two is the transport:
one pickle round trip over a socket per env call. Prints a table and writes JSON.

    python benchmarks/remote_env_overhead.py --json benchmarks/results/remote_env_overhead.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from srpo.config.env import TabletopConfig
from srpo.envs.remote import RemoteEnv
from srpo.envs.tabletop import TabletopEnvFactory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--image-size", type=int, default=128, help="policy image side (the cpu preset: 128)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    factory = TabletopEnvFactory(TabletopConfig(image_size=args.image_size))
    envs = {"local": factory.make(0), "remote": RemoteEnv(sys.executable, factory, 0, factory.task_specs()[0])}
    action = np.zeros(7)
    rows = {}
    for name, env in envs.items():
        env.reset(0)
        for render in (False, True):
            times = []
            for _ in range(args.steps):
                start = time.perf_counter()
                env.step(action, render_policy=render, render_embed=False)
                times.append(time.perf_counter() - start)
            rows[f"{name}/{'image' if render else 'no_image'}_ms"] = 1e3 * float(np.median(times))
        env.close()
    for render in ("no_image", "image"):
        extra = rows[f"remote/{render}_ms"] - rows[f"local/{render}_ms"]
        rows[f"overhead/{render}_ms"] = extra
        print(f"step {render.replace('_', ' '):>9}: local {rows[f'local/{render}_ms']:.3f} ms, remote "
              f"{rows[f'remote/{render}_ms']:.3f} ms, transport {extra:.3f} ms per call (median of {args.steps})")
    if args.json:
        args.json.write_text(json.dumps({"image_size": args.image_size, "steps": args.steps, **rows}, indent=2))


if __name__ == "__main__":
    main()
