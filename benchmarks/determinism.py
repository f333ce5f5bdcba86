"""Is a run a function of its command and commit? The same short tabletop run (tests/test_determinism.py's tiny
config) as separate `srpo train` processes: twice with one torch thread (once under another PYTHONHASHSEED), and
once with two threads. Prints the largest relative difference of every logged metric and of the final weights,
and writes benchmarks/results/determinism.json.

    python benchmarks/determinism.py [--steps 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from srpo.provenance import provenance
from test_determinism import TINY

RESULTS = Path(__file__).parent / "results"
ROOT = Path(__file__).resolve().parent.parent


def run(run_dir: Path, threads: int, steps: int, hash_seed: str) -> tuple[list[dict[str, float]], np.ndarray]:
    overrides = [o for o in TINY if not o.startswith(("torch_num_threads", "num_steps"))]
    cmd = [sys.executable, "-m", "srpo.cli", "train", "--preset", "tabletop", "--run-dir", str(run_dir),
           "--steps", str(steps), *[a for o in overrides for a in ("--set", o)],
           "--set", f"torch_num_threads={threads}"]
    env = {**os.environ, "PYTHONHASHSEED": hash_seed,
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    subprocess.run(cmd, check=True, env=env, cwd=ROOT, capture_output=True)
    from safetensors.torch import load_file

    from srpo.run_dir import list_checkpoints, read_metrics

    state = load_file(str(list_checkpoints(run_dir)[-1] / "policy" / "model.safetensors"))
    weights = np.concatenate([v.double().flatten().numpy() for _, v in sorted(state.items())])
    return [m for m in read_metrics(run_dir) if m["step"] > 0], weights


def max_rel_diff(a: list[dict[str, float]], b: list[dict[str, float]]) -> dict[str, float]:
    out = {}
    for key in a[0]:
        if key.startswith("time/") or key not in b[0]:
            continue
        x = np.asarray([m[key] for m in a], dtype=np.float64)
        y = np.asarray([m[key] for m in b], dtype=np.float64)
        out[key] = float(np.max(np.abs(x - y) / np.maximum(np.abs(x), 1e-12)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as d:
        base, w_base = run(Path(d) / "a", 1, args.steps, "0")
        again, w_again = run(Path(d) / "b", 1, args.steps, "7")
        two, w_two = run(Path(d) / "c", 2, args.steps, "0")
    comparisons: dict[str, dict[str, Any]] = {
        "same_command_other_hashseed": {"max_rel_diff": max_rel_diff(base, again),
                                        "weights_max_abs_diff": float(np.abs(w_base - w_again).max())},
        "two_threads_vs_one": {"max_rel_diff": max_rel_diff(base, two),
                               "weights_max_abs_diff": float(np.abs(w_base - w_two).max())},
    }
    result = {"provenance": provenance(), "config": f"tests/test_determinism.py TINY, steps {args.steps}",
              **comparisons}
    for name, comparison in comparisons.items():
        diffs: dict[str, float] = comparison["max_rel_diff"]
        worst = max(diffs, key=lambda k: diffs[k])
        print(f"{name}: largest metric difference {diffs[worst]:.2e} ({worst}); weights max |Δ| "
              f"{comparison['weights_max_abs_diff']:.2e}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "determinism.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
