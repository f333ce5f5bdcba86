"""Held-out success of a run's checkpoints, evaluated after the run: greedy, or sampled at a temperature.

A run evaluates itself greedily every `eval_every` steps. Greedy and sampled success can differ a lot (the
compact VLA's lean start: 7/40 greedy on held-out states, ~30 % sampled at T = 0.7 on training states), and
RL trains the sampled policy. This evaluates checkpoints of one run, in step order, with `srpo eval`'s
evaluation (`srpo.evaluate.evaluate_checkpoint`; sampled episodes draw from the torch RNG seeded by `seed`, the
same stream for every checkpoint), and reports each one's success with its Wilson 95 % interval, the
least-squares slope over steps with its interval (`srpo.evaluate.success_slope`), and last minus first
(Newcombe). Each checkpoint's eval.json is kept in `--work-dir`, so a stopped run of this script resumes where it
stopped. Prints a table, writes JSON and a plot.

Checkpoints are given as STEP=DIR (DIR a policy checkpoint: `<run>/ckpt-000010/policy`, or the SFT start for
step 0). A run deletes all but its newest `keep_last_checkpoints`; train with `--set keep_checkpoint_every=10` to
keep every 10th as well.

    MUJOCO_GL=egl python benchmarks/checkpoint_curve.py --set env.libero.render_quality=lean \
        --checkpoint 0=checkpoints/compact_libero_spatial_sft_lean/final \
        --checkpoint 10=runs/lean_b32_keep/srpo/ckpt-000010/policy ... \
        --sample-temperature 0.7 --episodes 40 --work-dir runs/curve_T0.7 \
        --out benchmarks/results/libero_lean_b32/sampled_curve.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from bench_common import machine_info, use_headless_gl, write_report


def parse_checkpoints(items: list[str]) -> list[tuple[int, str]]:
    """["10=a", "0=b"] -> [(0, "b"), (10, "a")]: sorted by step; steps must be distinct ints >= 0."""
    out: list[tuple[int, str]] = []
    for item in items:
        step, sep, path = item.partition("=")
        if not sep or not path or not step.strip().isdigit():
            raise ValueError(f"--checkpoint {item!r} is invalid: write STEP=DIR, e.g. 10=runs/x/ckpt-000010/policy")
        out.append((int(step), path))
    steps = [s for s, _ in out]
    if len(set(steps)) != len(steps):
        raise ValueError(f"--checkpoint steps must be distinct, got {sorted(steps)}")
    return sorted(out)


def curve_summary(points: list[dict[str, Any]]) -> dict[str, Any]:
    """Wilson intervals per point, the slope per 100 steps over all points, and last minus first.

    Args:
        points: [{"step", "num_successes", "num_episodes", ...}] in step order, at least two distinct steps.
    """
    from srpo.evaluate import difference_interval, success_slope, wilson_interval

    steps = [p["step"] for p in points]
    ks = [p["num_successes"] for p in points]
    ns = [p["num_episodes"] for p in points]
    slope = success_slope(steps, ks, ns)
    first, last = points[0], points[-1]
    diff_lo, diff_hi = difference_interval(first["num_successes"], first["num_episodes"],
                                           last["num_successes"], last["num_episodes"])
    return {
        "points": [{**p, "rate": p["num_successes"] / p["num_episodes"],
                    "wilson95": list(wilson_interval(p["num_successes"], p["num_episodes"]))} for p in points],
        "slope_per_100_steps": 100 * slope.slope,
        "slope_per_100_steps_ci95": [100 * slope.low, 100 * slope.high],
        "last_minus_first": last["num_successes"] / last["num_episodes"]
        - first["num_successes"] / first["num_episodes"],
        "last_minus_first_ci95": [diff_lo, diff_hi],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="cpu", choices=["cpu", "tabletop", "paper"])
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override, as for srpo (repeatable); use the run's render quality and env")
    parser.add_argument("--checkpoint", dest="checkpoints", action="append", required=True, metavar="STEP=DIR",
                        help="a policy checkpoint and the training step it was saved at (repeatable, >= 2)")
    parser.add_argument("--sample-temperature", type=float, default=None, metavar="T",
                        help="sample at T (seeded by the config's seed) instead of greedy")
    parser.add_argument("--episodes", type=int, default=20, help="episodes per task per checkpoint")
    parser.add_argument("--work-dir", type=Path, required=True, help="each checkpoint's eval.json (the cache)")
    parser.add_argument("--out", type=Path, required=True, help="JSON report; the plot goes beside it (.png)")
    args = parser.parse_args()
    try:
        checkpoints = parse_checkpoints(args.checkpoints)
    except ValueError as e:
        parser.error(str(e))
    if len(checkpoints) < 2:
        parser.error("give at least two --checkpoint STEP=DIR (a curve needs two steps)")
    use_headless_gl()
    from tqdm import tqdm

    from srpo.config.train import load_config
    from srpo.evaluate import evaluate_checkpoint
    from srpo.report import plot_success_curves

    cfg = load_config(preset=args.preset, overrides=args.overrides)
    mode = "greedy" if args.sample_temperature is None else "sampled"
    points: list[dict[str, Any]] = []
    for step, ckpt in tqdm(checkpoints, desc="checkpoint curve", unit="ckpt"):
        work = args.work_dir / f"step{step:06d}"
        cached = work / "eval.json"
        report = json.loads(cached.read_text()) if cached.exists() else None
        expected = {"checkpoint": ckpt, "mode": mode, "temperature": args.sample_temperature,
                    "seed": None if args.sample_temperature is None else cfg.seed, "episodes_per_task": args.episodes}
        if report is None or any(report.get(k) != v for k, v in expected.items()):
            evaluate_checkpoint(cfg, ckpt, args.episodes, 0, work, args.sample_temperature)
            report = json.loads(cached.read_text())
        points.append({"step": step, "checkpoint": ckpt, "num_successes": report["num_successes"],
                       "num_episodes": report["num_episodes"], "per_task": report["success_rate"]})
        tqdm.write(f"step {step:>4}: {report['num_successes']}/{report['num_episodes']}")
    summary = curve_summary(points)
    label = "greedy" if args.sample_temperature is None else f"sampled T={args.sample_temperature:g}"
    print(f"{'step':>6} {'success':>9} {'rate':>6}  Wilson 95 %  ({label}, seed {cfg.seed})")
    for p in summary["points"]:
        print(f"{p['step']:>6} {p['num_successes']:>4}/{p['num_episodes']:<4} {p['rate']:>6.3f}  "
              f"[{p['wilson95'][0]:.3f}, {p['wilson95'][1]:.3f}]")
    lo, hi = summary["slope_per_100_steps_ci95"]
    dlo, dhi = summary["last_minus_first_ci95"]
    print(f"slope per 100 steps {summary['slope_per_100_steps']:+.3f} [{lo:+.3f}, {hi:+.3f}]; last - first "
          f"{summary['last_minus_first']:+.3f} [{dlo:+.3f}, {dhi:+.3f}]")
    png = args.out.with_suffix(".png")
    png.parent.mkdir(parents=True, exist_ok=True)
    curve_label = f"{label}, slope {summary['slope_per_100_steps']:+.3f} / 100 steps [{lo:+.3f}, {hi:+.3f}]"
    plot_success_curves({curve_label: [[(p["step"], p["rate"]) for p in summary["points"]]]}, png, None,
                        ylabel=f"held-out success, {args.episodes} episodes/task",
                        intervals={curve_label: [[(p["step"], *p["wilson95"]) for p in summary["points"]]]})
    write_report(args.out, {"preset": args.preset, "overrides": args.overrides, "mode": mode,
                            "temperature": args.sample_temperature, "seed": cfg.seed,
                            "episodes_per_task": args.episodes, **summary, "plot": png.name, **machine_info()})


if __name__ == "__main__":
    main()
