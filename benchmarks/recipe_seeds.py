"""Does a recipe learn across seeds? One recipe's runs gathered from wherever they were written (several `srpo
compare` or `srpo train` output folders, reruns of a seed on other machines), each run's held-out curve cut at a
common horizon, and across seeds: the mean slope of held-out success per step, the mean gain over the start
(success pooled over the evaluations after step 0 minus step 0) and the final success, each with Student's t and
bootstrap-over-seeds 95 % intervals (`srpo.compare.across_seeds`), and the same with every rerun seed at its lowest
and at its highest run (how much the averaging matters). Optionally a second arm (e.g. GRPO) and the arms'
differences paired by seed.

One run's slope interval holds its episode noise only; seeds vary more than episodes (docs: experiments.md), so
"the recipe's held-out curve rises" is a claim about the mean over seeds. Runs of one seed (reruns) are averaged
into one value per seed before the seeds are pooled: they are not independent draws of the seed. Each run must
have an evaluation at the horizon (a shorter run is refused, not silently dropped). Reads metrics.jsonl (and
steps/eval_*.npz, where saved, for each run's paired slope); runs nothing.

    python benchmarks/recipe_seeds.py --horizon 20 \\
        --run srpo:0=benchmarks/results/libero_preset_b32_20/srpo/seed0 \\
        --run srpo:1=benchmarks/results/libero_lean_b32_trajmean/srpo/seed1 \\
        --run grpo:1=benchmarks/results/libero_lean_b32_trajmean/grpo/seed1 \\
        --out benchmarks/results/libero_recipe_seeds/recipe_seeds.json
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import numpy as np

from bench_common import save_figure, write_report
from checkpoint_curve import heldout_slope_paired

RUN_ITEM = re.compile(r"^(?:(?P<arm>[A-Za-z0-9_.-]+):)?(?P<seed>\d+)=(?P<path>.+)$")
SCALARS = ("slope_per_100_steps", "gain_over_start", "final", "mean_after_start")


def parse_runs(items: list[str], default_arm: str = "srpo") -> list[tuple[str, int, Path]]:
    """[ARM:]SEED=RUN_DIR items as (arm, seed, run dir), in the order given; the arm defaults to `default_arm`."""
    out = []
    for item in items:
        match = RUN_ITEM.match(item)
        if match is None:
            raise ValueError(f"--run {item!r}: write [ARM:]SEED=RUN_DIR, e.g. srpo:0=runs/x/srpo/seed0")
        out.append((match["arm"] or default_arm, int(match["seed"]), Path(match["path"])))
    if len({(arm, str(path)) for arm, _, path in out}) < len(out):
        raise ValueError("a run directory is given twice for one arm: each run counts once")
    return out


def run_summary(records: list[dict[str, Any]], evals: dict[int, dict[str, np.ndarray]], horizon: int,
                name: str) -> dict[str, Any]:
    """One run's held-out curve up to `horizon` and its scalars.

    Args:
        records: The run's metrics.jsonl records.
        evals: Its saved evaluation arrays by step (empty for runs made before they were saved).
        horizon: Last step counted; the run must have an evaluation with counts at exactly this step and at step 0.
        name: How errors name the run.

    Returns:
        {"points": [[step, successes, episodes], ...], "slope_per_100_steps" (least squares over the points),
        "slope_ci95" (the run's own interval: paired over init states where its evaluations were saved, else
        binomial), "slope_interval": which of the two, "gain_over_start", "final", "mean_after_start"}.
    """
    from srpo.compare import eval_counts, gain_over_start, mean_after_start
    from srpo.evaluate import success_slope

    counts = [c for c in eval_counts(records) if c[0] <= horizon]
    steps = [s for s, _, _ in counts]
    if 0 not in steps or horizon not in steps:
        raise ValueError(f"{name}: evaluations at steps {steps} (up to the horizon): the run needs one at step 0 and "
                         f"one at step {horizon}; finish the run or lower --horizon")
    curve = [(s, k / n) for s, k, n in counts]
    slope = success_slope(steps, [k for _, k, _ in counts], [n for _, _, n in counts])
    paired = heldout_slope_paired({s: a for s, a in evals.items() if s <= horizon})
    if paired is not None and paired["steps"] == steps:
        slope_ci, slope_interval = paired["slope_per_100_steps_ci95"], "paired over init states"
    else:
        slope_ci, slope_interval = [100 * slope.low, 100 * slope.high], "binomial"
    gain = gain_over_start(curve)
    height = mean_after_start(curve)
    assert gain is not None and height is not None  # steps 0 and horizon > 0 are both there
    return {
        "points": [list(c) for c in counts],
        "slope_per_100_steps": 100 * slope.slope,
        "slope_ci95": slope_ci,
        "slope_interval": slope_interval,
        "gain_over_start": gain,
        "final": curve[-1][1],
        "mean_after_start": height,
    }


def summarise(runs: list[tuple[str, int, Path]], horizon: int) -> dict[str, Any]:
    """Every run's summary, each arm's values per seed and across seeds, and each later arm's difference to the
    first one paired by seed."""
    from srpo.compare import across_seeds, mean_per_seed
    from srpo.run_dir import read_eval_arrays, read_metrics

    if horizon < 1:
        raise ValueError(f"--horizon {horizon} must be >= 1 (the step of the last evaluation compared)")
    report: dict[str, Any] = {"horizon": horizon, "arms": {}}
    for arm, seed, run_dir in runs:
        if not (run_dir / "metrics.jsonl").exists():
            raise FileNotFoundError(f"{run_dir} has no metrics.jsonl: give a run directory (<out>/<algo>/seed<k>)")
        entry = run_summary(read_metrics(run_dir), read_eval_arrays(run_dir), horizon, str(run_dir))
        report["arms"].setdefault(arm, {"runs": []})["runs"].append({"seed": seed, "run_dir": str(run_dir), **entry})
    for body in report["arms"].values():
        seeds = [r["seed"] for r in body["runs"]]
        body["per_seed"] = {}
        body["across_seeds"] = {}
        for key in SCALARS:
            ordered, values = mean_per_seed([r[key] for r in body["runs"]], seeds)
            body["per_seed"][key] = dict(zip(ordered, values, strict=True))
            body["across_seeds"][key] = across_seeds(values)
        body["rerun_bounds"] = rerun_bounds(body["runs"])
        body["seeds"] = sorted(set(seeds))
        body["mean_curve"] = mean_curve(body["runs"])
    arms = list(report["arms"])
    report["differences"] = []
    for other in arms[1:]:
        first, second = report["arms"][arms[0]], report["arms"][other]
        shared = [s for s in first["seeds"] if s in second["seeds"]]
        if not shared:
            continue
        row: dict[str, Any] = {"difference": f"{arms[0]} - {other}", "seeds": shared}
        for key in SCALARS:
            per_seed = [first["per_seed"][key][s] - second["per_seed"][key][s] for s in shared]
            row[key] = {"per_seed": per_seed, **across_seeds(per_seed)}
        report["differences"].append(row)
    return report


def rerun_bounds(runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """How much averaging a seed's reruns matters: every scalar across seeds again with each seed that has several
    runs represented by its lowest run ("low") and by its highest ("high") instead of their mean; None when no
    seed has more than one run."""
    from srpo.compare import across_seeds

    by_seed: dict[int, list[dict[str, Any]]] = {}
    for r in runs:
        by_seed.setdefault(r["seed"], []).append(r)
    if all(len(v) == 1 for v in by_seed.values()):
        return None
    out: dict[str, Any] = {"seeds_with_reruns": sorted(s for s, v in by_seed.items() if len(v) > 1)}
    for key in SCALARS:
        out[key] = {bound: across_seeds([pick(r[key] for r in by_seed[s]) for s in sorted(by_seed)])
                    for bound, pick in (("low", min), ("high", max))}
    return out


def mean_curve(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean held-out success over seeds at every step that all of an arm's seeds evaluated (a seed's reruns
    averaged first), with Student's t interval over seeds."""
    from srpo.compare import across_seeds, mean_per_seed

    by_run = [{s: k / n for s, k, n in r["points"]} for r in runs]
    common = sorted(set.intersection(*(set(c) for c in by_run)))
    out = []
    for step in common:
        _, values = mean_per_seed([c[step] for c in by_run], [r["seed"] for r in runs])
        stats = across_seeds(values)
        out.append({"step": step, "mean": stats["mean"], "t_ci": stats["t_ci"], "num_seeds": stats["num_seeds"]})
    return out


def t_text(stats: dict[str, Any], mark: str = " t") -> str:
    """"+0.379 [+0.075, +0.683] t" from an `across_seeds` result (`mark` after the interval); "+0.250 (one seed)"
    without an interval."""
    if stats["t_ci"] is None:
        return f"{stats['mean']:+.3f} (one seed)"
    return f"{stats['mean']:+.3f} [{stats['t_ci'][0]:+.3f}, {stats['t_ci'][1]:+.3f}]{mark}"


def interval_text(stats: dict[str, Any]) -> str:
    """`t_text` and, with two or more seeds, the bootstrap-over-seeds interval beside it."""
    if stats["t_ci"] is None:
        return t_text(stats)
    b_low, b_high = stats["bootstrap_ci"]
    return f"{t_text(stats)}, [{b_low:+.3f}, {b_high:+.3f}] bootstrap"


def table(report: dict[str, Any]) -> str:
    lines = [f"held-out success up to step {report['horizon']}"]
    for arm, body in report["arms"].items():
        for r in body["runs"]:
            curve = ", ".join(f"{s}:{k}/{n}" for s, k, n in r["points"])
            lines.append(f"{arm} seed {r['seed']} ({r['run_dir']}): {curve}; slope {r['slope_per_100_steps']:+.3f} "
                         f"[{r['slope_ci95'][0]:+.3f}, {r['slope_ci95'][1]:+.3f}] per 100 steps "
                         f"({r['slope_interval']}); gain over start {r['gain_over_start']:+.3f}")
        across = body["across_seeds"]
        lines.append(f"{arm}, mean over {len(body['seeds'])} seeds {body['seeds']} (95 %):")
        lines.append(f"  slope per 100 steps  {interval_text(across['slope_per_100_steps'])}")
        for key in ("gain_over_start", "final", "mean_after_start"):
            lines.append(f"  {key.replace('_', ' '):<20} {interval_text(across[key])}")
        bounds = body["rerun_bounds"]
        if bounds is not None:
            lines.append(f"  with seeds {bounds['seeds_with_reruns']} at their lowest / highest run instead of "
                         "their mean:")
            for key in SCALARS:
                lines.append(f"  {key.replace('_', ' '):<20} " + " / ".join(
                    t_text(bounds[key][bound]) for bound in ("low", "high")))
    for d in report["differences"]:
        lines.append(f"{d['difference']}, paired by seed over seeds {d['seeds']} (95 %):")
        for key in SCALARS:
            lines.append(f"  {key.replace('_', ' '):<20} {interval_text(d[key])}")
    return "\n".join(lines)


def t_error(stats: dict[str, Any]) -> list[float]:
    """[below, above] the mean to the ends of its Student's t interval, for an error bar; [0, 0] without one (one
    seed). `stats` holds "mean" and "t_ci" (an `across_seeds` result or a `mean_curve` point)."""
    if stats["t_ci"] is None:
        return [0.0, 0.0]
    return [stats["mean"] - stats["t_ci"][0], stats["t_ci"][1] - stats["mean"]]


def plot(report: dict[str, Any], path: Path) -> None:
    """Each run's held-out curve thin, each arm's mean over seeds bold with its t interval; with a second arm, a
    panel beside it of the paired differences per seed (`plot_differences`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if report["differences"]:
        fig, (ax, diff_ax) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [3, 2]})
        plot_differences(report["differences"], diff_ax)
    else:
        fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, (arm, body) in enumerate(report["arms"].items()):
        colour = f"C{i}"
        for r in body["runs"]:
            ax.plot([p[0] for p in r["points"]], [p[1] / p[2] for p in r["points"]], color=colour, alpha=0.3, lw=1)
        curve = body["mean_curve"]
        steps = [p["step"] for p in curve]
        means = [p["mean"] for p in curve]
        errors = [t_error(p) for p in curve]
        slope = body["across_seeds"]["slope_per_100_steps"]
        ax.errorbar(steps, means, yerr=np.asarray(errors).T, color=colour, lw=2.5, marker="o", capsize=4,
                    label=f"{arm}: mean of {len(body['seeds'])} seeds (t 95 %), slope "
                          f"{t_text(slope, mark='')} /100 steps")
    ax.set_xlabel("training step")
    ax.set_ylabel("held-out success (greedy)")
    ax.set_title(f"Held-out success per seed (thin) and mean over seeds, up to step {report['horizon']}")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    save_figure(fig, path, dpi=120)


def plot_differences(differences: list[dict[str, Any]], ax: Any) -> None:
    """Per difference row (first arm minus a later one): each seed's differences in gain over start and in final
    success as dots, their mean over seeds with its Student's t interval as a bar, and 0 as a line."""
    keys = ("gain_over_start", "final")
    width = 0.8 / len(differences)
    for i, d in enumerate(differences):
        for j, key in enumerate(keys):
            x = j + (i - (len(differences) - 1) / 2) * width
            stats = d[key]
            ax.scatter([x] * len(stats["per_seed"]), stats["per_seed"], color=f"C{i + 2}", alpha=0.5, s=18)
            ax.errorbar([x], [stats["mean"]], yerr=np.asarray([t_error(stats)]).T, color=f"C{i + 2}",
                        marker="D", capsize=6, lw=2,
                        label=f"{d['difference']}, {len(d['seeds'])} seeds" if j == 0 else None)
    ax.axhline(0.0, color="black", lw=0.8)
    ax.set_xticks(range(len(keys)), ["gain over start", "final success"])
    ax.set_xlim(-0.6, len(keys) - 0.4)
    ax.set_ylabel("difference in held-out success")
    ax.set_title("Paired by seed: per seed (dots), mean with t 95 %")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", action="append", required=True, metavar="[ARM:]SEED=RUN_DIR",
                        help="a run of the recipe (repeat); the arm defaults to srpo")
    parser.add_argument("--horizon", type=int, required=True, help="last step compared; every run needs an "
                        "evaluation there")
    parser.add_argument("--out", type=Path, required=True, help="JSON report; the plot goes beside it (.png)")
    args = parser.parse_args()
    report = summarise(parse_runs(args.run), args.horizon)
    print(table(report))
    write_report(args.out, report)
    plot(report, args.out.with_suffix(".png"))


if __name__ == "__main__":
    main()
