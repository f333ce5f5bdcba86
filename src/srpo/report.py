"""`srpo report RUN_DIR`: a self-contained HTML page (PNGs embedded, also written beside it) of one run:
success-rate curve, reward distributions of successes vs failures per step, progress reward vs distance, and
time per phase. `srpo compare` plots several runs' success against step (see `plot_success_curves`)."""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from srpo.errors import InputFileError
from srpo.run_dir import PHASES, VIDEOS_DIR, read_metrics, read_step_arrays


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_success(metrics: Sequence[Mapping[str, Any]], path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    train = [(m["step"], m["rollout/success_rate"]) for m in metrics if "rollout/success_rate" in m]
    evals = [(m["step"], m["eval/success_rate"]) for m in metrics if "eval/success_rate" in m]
    if train:
        ax.plot(*zip(*train, strict=True), "o-", label="rollout (sampled, train states)")
    if evals:
        ax.plot(*zip(*evals, strict=True), "s-", label="eval (greedy, held-out states)")
    ax.set(xlabel="step", ylabel="success rate", ylim=(-0.02, 1.02), title="Success rate")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_reward_distributions(steps: Mapping[int, Mapping[str, np.ndarray]], path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    keys = sorted(steps)
    rng = np.random.default_rng(0)
    for k in keys:
        r, s = steps[k]["rewards"], steps[k]["success"].astype(bool)
        for mask, colour, dx in ((s, "tab:green", -0.15), (~s, "tab:red", 0.15)):
            if mask.any():
                ax.scatter(k + dx + rng.uniform(-0.08, 0.08, mask.sum()), r[mask], s=6, c=colour, alpha=0.5)
    ax.scatter([], [], c="tab:green", label="successes")
    ax.scatter([], [], c="tab:red", label="failures")
    ax.set(xlabel="step", ylabel="reward", title="Rewards of successes vs failures per step")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_reward_vs_distance(steps: Mapping[int, Mapping[str, np.ndarray]], path: Path) -> bool:
    """Scatter of failures' reward against their distance to the nearest success centre. False if no data."""
    plt = _pyplot()
    xs, ys, cs = [], [], []
    for k, arr in steps.items():
        fail = ~arr["success"].astype(bool) & np.isfinite(arr["distance"])
        xs.append(arr["distance"][fail])
        ys.append(arr["rewards"][fail])
        cs.append(np.full(fail.sum(), k))
    if not xs or sum(len(x) for x in xs) == 0:
        return False
    fig, ax = plt.subplots(figsize=(6, 3.5))
    sc = ax.scatter(np.concatenate(xs), np.concatenate(ys), c=np.concatenate(cs), s=8, cmap="viridis")
    fig.colorbar(sc, ax=ax, label="step")
    ax.set(xlabel="distance to nearest success centre", ylabel="progress reward",
           title="Failures: progress reward vs distance")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_phase_times(metrics: Sequence[Mapping[str, Any]], path: Path) -> None:
    plt = _pyplot()
    rows = [m for m in metrics if any(f"time/{p}_s" in m for p in PHASES) and m["step"] > 0]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    bottom = np.zeros(len(rows))
    x = [m["step"] for m in rows]
    for phase in PHASES:
        vals = np.asarray([m.get(f"time/{phase}_s", 0.0) for m in rows])
        if vals.any():
            ax.bar(x, vals, bottom=bottom, label=phase)
            bottom += vals
    ax.set(xlabel="step", ylabel="seconds", title="Time per phase")
    ax.legend(fontsize=7, ncol=4)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_success_curves(curves: Mapping[str, Sequence[Sequence[tuple[int, float]]]], path: Path, target: float | None,
                        ylabel: str = "success rate",
                        intervals: Mapping[str, Sequence[Sequence[tuple[int, float, float]]]] | None = None) -> None:
    """Mean of several seeds per label (e.g. "srpo", "grpo"), each seed's curve thin behind it in a min/max band;
    a label with one run and `intervals` ((step, low, high) per evaluation, e.g. Wilson 95 %) shows them as error
    bars instead."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for label, runs in curves.items():
        steps = sorted({s for run in runs for s, _ in run})
        table = np.full((len(runs), len(steps)), np.nan)
        for i, run in enumerate(runs):
            for s, v in run:
                table[i, steps.index(s)] = v
        mean = np.nanmean(table, axis=0)
        bars = intervals.get(label) if intervals else None
        if len(runs) == 1 and bars and bars[0]:
            by_step = {step: (low, high) for step, low, high in bars[0]}
            have = [k for k, step in enumerate(steps) if step in by_step]
            low = np.array([mean[k] - by_step[steps[k]][0] for k in have])
            high = np.array([by_step[steps[k]][1] - mean[k] for k in have])
            line = ax.errorbar([steps[k] for k in have], mean[have], yerr=[low, high], fmt="o-", capsize=3,
                               label=f"{label} (95 % Wilson intervals)")
            missing = [k for k in range(len(steps)) if k not in have]
            if missing:
                ax.plot([steps[k] for k in missing], mean[missing], "o", color=line[0].get_color())
            continue
        line = ax.plot(steps, mean, "o-", label=f"{label} (mean of {len(runs)}; thin: each run)")
        for row in table:  # every seed thinly behind the mean
            ax.plot(steps, row, "-", lw=0.8, alpha=0.45, color=line[0].get_color())
        ax.fill_between(steps, np.nanmin(table, axis=0), np.nanmax(table, axis=0), alpha=0.12,
                        color=line[0].get_color())
    if target is not None:
        ax.axhline(target, ls="--", c="grey", lw=1, label=f"target {target:g}")
    ax.set(xlabel="step", ylabel=ylabel, ylim=(-0.02, 1.02))
    ax.grid(alpha=0.3)
    # below the axes: labels that carry a slope and its interval are wider than the axes and covered the curves
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def build_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write report.html (+ PNGs) for a run directory; returns the HTML path."""
    run_dir = Path(run_dir)
    metrics = read_metrics(run_dir)
    if not metrics:
        raise InputFileError(f"{run_dir} has no metrics.jsonl records: is it an srpo run directory?")
    out_dir = Path(out) if out else run_dir / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    steps = read_step_arrays(run_dir)
    figures = []
    plot_success(metrics, out_dir / "success.png")
    figures.append(("Success rate", out_dir / "success.png"))
    if steps:
        plot_reward_distributions(steps, out_dir / "rewards.png")
        figures.append(("Reward distributions", out_dir / "rewards.png"))
        if plot_reward_vs_distance(steps, out_dir / "reward_vs_distance.png"):
            figures.append(("Progress reward vs distance", out_dir / "reward_vs_distance.png"))
    plot_phase_times(metrics, out_dir / "phase_times.png")
    figures.append(("Time per phase", out_dir / "phase_times.png"))

    last = metrics[-1]
    summary_keys = [k for k in ("rollout/success_rate", "eval/success_rate", "reward/mean", "loss/policy",
                                "ppo/approx_kl", "ppo/clip_fraction") if k in last]
    first_eval = next((m["eval/success_rate"] for m in metrics if "eval/success_rate" in m), None)
    last_eval = next((m["eval/success_rate"] for m in reversed(metrics) if "eval/success_rate" in m), None)
    config_text = (run_dir / "config.yaml").read_text() if (run_dir / "config.yaml").exists() else ""
    videos = sorted((run_dir / VIDEOS_DIR).glob("*.mp4"))[-6:] if (run_dir / VIDEOS_DIR).exists() else []
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>srpo report</title>",
        "<style>body{font-family:sans-serif;max-width:900px;margin:auto}img{max-width:100%}"
        "td,th{padding:2px 8px;text-align:right}pre{background:#f4f4f4;padding:8px;font-size:11px}</style>",
        f"</head><body><h1>srpo run: {html.escape(str(run_dir))}</h1>",
        f"<p>{last['step']} steps.",
    ]
    if first_eval is not None and last_eval is not None:
        parts.append(f" Evaluation success {first_eval:.3f} → {last_eval:.3f}.")
    parts.append("</p><table><tr><th>metric (last step)</th><th>value</th></tr>")
    parts += [f"<tr><td>{html.escape(k)}</td><td>{last[k]:.4f}</td></tr>" for k in summary_keys]
    parts.append("</table>")
    for title, png in figures:
        data = base64.b64encode(png.read_bytes()).decode()
        parts.append(f"<h2>{html.escape(title)}</h2><img src='data:image/png;base64,{data}' alt='{title}'>")
    if videos:
        parts.append("<h2>Latest rollout videos</h2><ul>")
        parts += [f"<li><a href='{html.escape(str(v.resolve()))}'>{html.escape(v.name)}</a></li>" for v in videos]
        parts.append("</ul>")
    parts.append(f"<h2>Config</h2><pre>{html.escape(config_text)}</pre>")
    parts.append("<h2>Metrics (JSON lines)</h2><pre>")
    parts += [html.escape(json.dumps(m)) + "\n" for m in metrics[-5:]]
    parts.append("</pre></body></html>")
    page = out_dir / "report.html"
    page.write_text("".join(parts))
    return page
