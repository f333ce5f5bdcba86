"""Why a run does (not) learn: training success, entropy and the loss's net push, block by block, beside its
held-out curve; several runs side by side, each against the first.

Reads what every run writes (metrics.jsonl and steps/step_*.npz; a folder with metrics.jsonl alone, such as a
results folder, gives everything but the token-weighted advantage); runs nothing. Per block of `--block` steps:
the sampled training successes with their Wilson 95 % interval, the mean policy entropy, the mean PPO policy loss,
and the token-weighted mean advantage Σ A_i T_i / Σ T_i (T_i the episode's executed env steps, proportional to its
action tokens). Group advantages are centred per group, so that weighted mean is 0 only when successes and
failures run equally long; under the "token-mean" aggregation a negative value means the update pushes the
sampled tokens down as a whole, which raises entropy step after step (see `srpo.algo.advantages.
loss_weighted_advantage_mean`). Per step, where the advantage mass goes: the share of Σ|A| that all-failure groups
carry (0 under binary GRPO; SRPO's z-scored failure ranking alone) and the share of the positive push that lands
on failed episodes (`srpo.algo.advantages.advantage_mass`). Each run's held-out evaluations get their slope and
last − first with intervals; each later run's blocks and evaluations get their difference to the first run's
(Newcombe 95 %), and so does its held-out success pooled over the evaluations after step 0 (the curve's mean
height); where both runs saved their evaluations' episodes (steps/eval_*.npz), each evaluation is also compared
episode by episode (paired bootstrap, exact McNemar), and pooled over the evaluations after step 0 with a
bootstrap over init states. Runs started from the same checkpoint and seed are paired by design (their first
step's rollouts are identical), but a training block's episodes are not independent draws: read block intervals
as signs, held-out ones as tests.

    python benchmarks/run_diagnostics.py --run token-mean=runs/lean_b32/srpo/seed0 \
        --run traj-mean=runs/lean_b32_trajmean/srpo/seed0 --block 10 \
        --out benchmarks/results/libero_lean_b32_trajmean/diagnostics.json
"""

from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from bench_common import save_figure, write_report
from checkpoint_curve import (
    curve_summary,
    heldout_slope_paired,
    paired_heldout,
    paired_heldout_after_start,
    paired_text,
    pooled_text,
    vs_start_paired,
)


def parse_runs(items: list[str]) -> list[tuple[str, Path]]:
    """["a=runs/x", ...] -> [("a", Path("runs/x")), ...] in the given order; names must be distinct."""
    out: list[tuple[str, Path]] = []
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name.strip() or not path:
            raise ValueError(f"--run {item!r} is invalid: write NAME=RUN_DIR, e.g. srpo=runs/x/srpo/seed0")
        out.append((name.strip(), Path(path)))
    names = [n for n, _ in out]
    if len(set(names)) != len(names):
        raise ValueError(f"--run names must be distinct, got {names}")
    return out


def entropy_key(runs_metrics: list[list[dict[str, Any]]]) -> str:
    """Which entropy the runs are compared on: "policy/entropy" (token-mean under any aggregation) when every
    training record of every run logged it, else "loss/entropy" for all of them (runs logged before policy/entropy
    existed have only that one; it is weighted as the run's loss weighs tokens, so it compares runs with the same
    aggregation). One key for all runs, so that no plot sets one weighting beside another."""
    train = [r for metrics in runs_metrics for r in metrics if "loss/policy" in r]
    return "policy/entropy" if train and all("policy/entropy" in r for r in train) else "loss/entropy"


def entropy_of(record: dict[str, Any], key: str = "policy/entropy") -> float:
    """A training record's entropy under `key` (`entropy_key`), or its loss/entropy where it lacks that key."""
    return float(record[key] if key in record else record["loss/entropy"])


def block_summary(
    steps: dict[int, dict[str, np.ndarray]], metrics: list[dict[str, Any]], block: int,
    entropy: str = "policy/entropy",
) -> list[dict[str, Any]]:
    """Per block of `block` training steps (1..block, block+1..2·block, ...; the last may be shorter).

    A step without arrays (a results folder that kept only metrics.jsonl) counts through its logged
    rollout/success_rate × rollout/num_trajectories; the token-weighted advantage needs every episode's advantage
    and length, so it covers only the block's steps with arrays ("num_steps_with_arrays"; NaN when none).

    Args:
        steps: {step: arrays of `srpo.run_dir.write_step_arrays`} (success, advantages, finish_step: (N,)).
        metrics: The run's metrics.jsonl records; training records carry loss/policy and the entropy
            (`entropy_of`).
        block: Steps per block, >= 1.
        entropy: The entropy key (`entropy_key`).

    Returns:
        [{"first_step", "last_step", "num_steps", "train_successes", "train_episodes", "train_rate", "wilson95",
          "entropy_mean", "policy_loss_mean", "token_weighted_advantage_mean", "num_steps_with_arrays"}], blocks
        with no step left out.
    """
    from srpo.algo.advantages import loss_weighted_advantage_mean
    from srpo.evaluate import wilson_interval

    if block < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    train = {int(r["step"]): r for r in metrics if "loss/policy" in r}
    counted = {s: r for s, r in train.items() if "rollout/success_rate" in r and "rollout/num_trajectories" in r}
    out: list[dict[str, Any]] = []
    last = max([*steps, *train], default=0)
    for first in range(1, last + 1, block):
        members = [s for s in range(first, first + block) if s in steps or s in counted]
        if not members:
            continue
        arrays = [s for s in members if s in steps]
        k, n = 0, 0
        for s in members:
            if s in steps:
                success = np.asarray(steps[s]["success"], dtype=bool)
                k, n = k + int(success.sum()), n + int(success.size)
            else:  # no step arrays (e.g. a results folder that kept only metrics.jsonl): the logged counts
                n_s = int(counted[s]["rollout/num_trajectories"])
                k, n = k + round(float(counted[s]["rollout/success_rate"]) * n_s), n + n_s
        token_weighted = float("nan")
        if arrays:  # needs every episode's advantage and length: only steps with arrays count
            adv = np.concatenate([np.asarray(steps[s]["advantages"], dtype=np.float64) for s in arrays])
            length = np.concatenate([np.asarray(steps[s]["finish_step"], dtype=np.float64) for s in arrays])
            # Executed env steps are proportional to executed action tokens, all the token-mean weight needs.
            token_weighted = loss_weighted_advantage_mean(adv, length, length, "token-mean")
        recs = [train[s] for s in members if s in train]
        out.append({
            "first_step": members[0], "last_step": members[-1], "num_steps": len(members),
            "train_successes": k, "train_episodes": n, "train_rate": k / n if n else float("nan"),
            "wilson95": list(wilson_interval(k, n)) if n else [float("nan"), float("nan")],
            "entropy_mean": float(np.mean([entropy_of(r, entropy) for r in recs])) if recs else float("nan"),
            "policy_loss_mean": float(np.mean([r["loss/policy"] for r in recs])) if recs else float("nan"),
            "token_weighted_advantage_mean": token_weighted,
            "num_steps_with_arrays": len(arrays),
        })
    return out


def advantage_mass_per_step(steps: dict[int, dict[str, np.ndarray]]) -> list[dict[str, Any]]:
    """`srpo.algo.advantages.advantage_mass` of every step whose arrays hold group ids, in step order, each with
    its "step" and "successes" / "episodes"."""
    from srpo.algo.advantages import advantage_mass

    out = []
    for step in sorted(steps):
        arrays = steps[step]
        if "group_ids" not in arrays:
            continue
        success = np.asarray(arrays["success"], dtype=bool)
        out.append({"step": step, "successes": int(success.sum()), "episodes": int(success.size),
                    **advantage_mass(success, arrays["advantages"], arrays["group_ids"])})
    return out


def heldout_points(metrics: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The run's held-out evaluations: [{"step", "num_successes", "num_episodes"}] in step order (the last record
    of a step wins, as a resumed run may evaluate a step again)."""
    points: dict[int, dict[str, Any]] = {}
    for r in metrics:
        if "eval/num_successes" in r and "eval/num_episodes" in r:
            points[int(r["step"])] = {"step": int(r["step"]), "num_successes": int(r["eval/num_successes"]),
                                      "num_episodes": int(r["eval/num_episodes"])}
    return [points[s] for s in sorted(points)]


def paired_differences(base: list[dict[str, Any]], other: list[dict[str, Any]], key: str, k_key: str,
                       n_key: str) -> list[dict[str, Any]]:
    """other − base rate at every `key` value both have (blocks: the same first and last step), with its Newcombe
    95 % interval."""
    from srpo.evaluate import difference_interval

    by_key = {b[key]: b for b in base}
    out = []
    for o in other:
        b = by_key.get(o[key])
        if b is None or b[n_key] == 0 or o[n_key] == 0 or b.get("last_step") != o.get("last_step"):
            continue  # a block still in progress is not compared with a whole one
        lo, hi = difference_interval(b[k_key], b[n_key], o[k_key], o[n_key])
        out.append({key: o[key], "difference": o[k_key] / o[n_key] - b[k_key] / b[n_key], "ci95": [lo, hi]})
    return out


def mean_after_start_difference(base: list[dict[str, Any]], other: list[dict[str, Any]]) -> dict[str, Any] | None:
    """other − base held-out success pooled over the evaluations both runs made after step 0 (with equal episodes
    per evaluation, the mean height of the curve after the start: its area under the curve), with the Newcombe 95 %
    interval of the pooled counts. The pooled episodes repeat the same held-out states at every evaluation, so the
    interval treats them as independent draws: approximate, and only the difference between two runs evaluated on
    the same states is meant to be read off it. None when the runs share no evaluation after step 0.

    Args:
        base, other: `heldout_points` of the two runs ([{"step", "num_successes", "num_episodes"}]).
    """
    from srpo.evaluate import difference_interval

    base_by_step = {p["step"]: p for p in base if p["step"] > 0}
    common = sorted(p["step"] for p in other if p["step"] in base_by_step)
    if not common:
        return None
    other_by_step = {p["step"]: p for p in other}
    kb = sum(base_by_step[s]["num_successes"] for s in common)
    nb = sum(base_by_step[s]["num_episodes"] for s in common)
    ko = sum(other_by_step[s]["num_successes"] for s in common)
    no = sum(other_by_step[s]["num_episodes"] for s in common)
    if nb == 0 or no == 0:
        return None
    lo, hi = difference_interval(kb, nb, ko, no)
    return {"steps": common, "base": [kb, nb], "other": [ko, no], "difference": ko / no - kb / nb, "ci95": [lo, hi]}


def gain_over_start_paired(evals: dict[int, dict[str, np.ndarray]]) -> dict[str, Any] | None:
    """A run against its own start: held-out success pooled over its evaluations after step 0 minus its step-0
    evaluation, paired by task and init state (each later evaluation's episode against the same state's step-0
    episode), with a bootstrap over init states (`paired_heldout_after_start` with the step-0 episodes as the base
    at every later step). Did this run learn, beyond the episode noise of its held-out states; None without a
    step-0 evaluation and a later one on disk.

    Args:
        evals: {step: `srpo.run_dir.write_eval_arrays` arrays} of one run (`srpo.run_dir.read_eval_arrays`).
    """
    if 0 not in evals:
        return None
    return paired_heldout_after_start({step: evals[0] for step in evals}, evals)


def episodes_per_step(run_dir: Path) -> int:
    """The episodes one training step of the run trains on: `algo.group_size` × `algo.num_prompts_per_step` of
    its config.yaml (under dynamic sampling the batch it keeps, not every episode it sampled)."""
    import yaml

    path = run_dir / "config.yaml"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: --x episodes reads each run's batch size from its config.yaml")
    algo = (yaml.safe_load(path.read_text()) or {}).get("algo") or {}
    try:
        n = int(algo["group_size"]) * int(algo["num_prompts_per_step"])
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{path} has no int algo.group_size and algo.num_prompts_per_step") from err
    if n < 1:
        raise ValueError(f"{path}: algo.group_size × algo.num_prompts_per_step = {n}, expected >= 1")
    return n


def rescale_steps(by_step: dict[int, Any], scale: Fraction) -> dict[int, Any]:
    """{step: v} -> {step · scale: v}, keeping the steps that land on a whole step of the new axis.

    With scale = (the run's episodes per step) / (the first run's), a run's step k goes to the first run's step
    of equal training episodes: the 64-episode run's step 2 to the 32-episode run's step 4; its step 3 with
    scale 2/3 (step 2) has none and is dropped."""
    out: dict[int, Any] = {}
    for step, value in by_step.items():
        new = step * scale
        if new.denominator == 1:
            out[int(new)] = value
    return out


def diagnose(runs: list[tuple[str, Path]], block: int, x: str = "step") -> dict[str, Any]:
    """Blocks, held-out curve and its summary of each run, and each later run's differences to the first.

    With x="episodes" each later run's held-out evaluations are compared with the first run's at equal training
    episodes (`rescale_steps` onto the first run's step axis, its steps named in "base_steps"); its training blocks
    are then compared only where the two runs' steps hold the same episodes. Each run's own curve, slope and gain
    stay on its own steps."""
    from srpo.run_dir import read_eval_arrays, read_metrics, read_step_arrays

    if x not in ("step", "episodes"):
        raise ValueError(f"x must be 'step' or 'episodes', got {x!r}")
    for _, run_dir in runs:
        if not (run_dir / "metrics.jsonl").exists():
            raise FileNotFoundError(f"{run_dir} has no metrics.jsonl: give a run directory (<out>/<algo>/seed<k>)")
    all_metrics = [read_metrics(run_dir) for _, run_dir in runs]
    entropy = entropy_key(all_metrics)
    report: dict[str, Any] = {"block": block, "entropy_key": entropy, "x": x, "runs": {}}
    base_name = runs[0][0]
    base_evals = read_eval_arrays(runs[0][1])
    base_episodes = episodes_per_step(runs[0][1]) if x == "episodes" else None
    for (name, run_dir), metrics in zip(runs, all_metrics, strict=True):
        points = heldout_points(metrics)
        own_evals = base_evals if name == base_name else read_eval_arrays(run_dir)
        steps = read_step_arrays(run_dir)
        entry: dict[str, Any] = {
            "run_dir": str(run_dir),
            "blocks": block_summary(steps, metrics, block, entropy),
            "heldout": curve_summary(points) if len({p["step"] for p in points}) >= 2 else {"points": points},
            "entropy_per_step": [[int(r["step"]), entropy_of(r, entropy)] for r in metrics if "loss/entropy" in r],
            "advantage_mass_per_step": advantage_mass_per_step(steps),
            "gain_over_start_paired": gain_over_start_paired(own_evals),
            "heldout_vs_start_paired": vs_start_paired(own_evals),
            "heldout_slope_paired": heldout_slope_paired(own_evals),
        }
        if base_episodes is not None:
            entry["episodes_per_step"] = base_episodes if name == base_name else episodes_per_step(run_dir)
        if name != base_name:
            base = report["runs"][base_name]
            scale = Fraction(1) if base_episodes is None else Fraction(entry["episodes_per_step"], base_episodes)
            by_step = {p["step"]: p for p in points}
            other_points = [{**p, "step": s} for s, p in sorted(rescale_steps(by_step, scale).items())]
            other_evals = rescale_steps(own_evals, scale)
            entry["vs_" + base_name] = {
                "base_steps": [p["step"] for p in other_points],
                "train_blocks": paired_differences(base["blocks"], entry["blocks"], "first_step",
                                                   "train_successes", "train_episodes") if scale == 1 else [],
                "heldout": paired_differences(base["heldout"]["points"], other_points, "step",
                                              "num_successes", "num_episodes"),
                "heldout_mean_after_start": mean_after_start_difference(base["heldout"]["points"], other_points),
                "heldout_paired": paired_heldout(base_evals, other_evals),
                "heldout_paired_after_start": paired_heldout_after_start(base_evals, other_evals),
            }
        report["runs"][name] = entry
    return report


def plot(report: dict[str, Any], path: Path) -> None:
    """Four panels: held-out success (Wilson bars), training success per block (Wilson bars), entropy per step,
    and the all-failure groups' share of each step's advantage mass."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(20, 4))
    by_episodes = report.get("x") == "episodes"
    for name, run in report["runs"].items():
        per = run["episodes_per_step"] if by_episodes else 1  # x: training episodes, or training steps
        pts = run["heldout"]["points"]
        if pts:
            rates = [p["num_successes"] / p["num_episodes"] for p in pts]
            lows = [r - p.get("wilson95", [r, r])[0] for r, p in zip(rates, pts, strict=True)]
            highs = [p.get("wilson95", [r, r])[1] - r for r, p in zip(rates, pts, strict=True)]
            axes[0].errorbar([p["step"] * per for p in pts], rates, yerr=[lows, highs], marker="o", capsize=3,
                             label=name)
        blocks = run["blocks"]
        if blocks:
            mid = [(b["first_step"] - 1 + b["last_step"]) / 2 * per for b in blocks] if by_episodes else \
                [(b["first_step"] + b["last_step"]) / 2 for b in blocks]
            rates = [b["train_rate"] for b in blocks]
            axes[1].errorbar(mid, rates, yerr=[[r - b["wilson95"][0] for r, b in zip(rates, blocks, strict=True)],
                                               [b["wilson95"][1] - r for r, b in zip(rates, blocks, strict=True)]],
                             marker="s", capsize=3, label=name)
        ent = run["entropy_per_step"]
        if ent:
            axes[2].plot([s * per for s, _ in ent], [e for _, e in ent], label=name)
        mass = run["advantage_mass_per_step"]
        if mass:
            axes[3].plot([m["step"] * per for m in mass], [m["failure_group_abs_share"] for m in mass], marker=".",
                         label=name)
    for ax, title in zip(axes, ("held-out success (greedy)", f"training success per {report['block']} steps",
                                f"entropy per token ({report['entropy_key']})",
                                "all-failure groups' share of the step's |advantage|"), strict=True):
        ax.set_title(title)
        ax.set_xlabel("training episodes" if by_episodes else "training step")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:  # a panel no run has data for (a results folder) gets no legend
            ax.legend()
    save_figure(fig, path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", dest="runs", action="append", required=True, metavar="NAME=RUN_DIR",
                        help="a run directory (<out>/<algo>/seed<k>) and its label (repeatable; the first is the "
                             "baseline the others are compared with)")
    parser.add_argument("--block", type=int, default=10, help="training steps per block [10]")
    parser.add_argument("--out", type=Path, required=True, help="JSON report; the plot goes beside it (.png)")
    parser.add_argument("--x", choices=("step", "episodes"), default="step",
                        help="compare the later runs' held-out evaluations with the first run's at the same step "
                             "[step], or at the same training episodes (episodes: a run of 64 episodes per step "
                             "at its step 2 against a run of 32 at its step 4)")
    args = parser.parse_args()
    try:
        runs = parse_runs(args.runs)
    except ValueError as e:
        parser.error(str(e))
    if args.block < 1:
        parser.error(f"--block must be >= 1, got {args.block}")
    report = diagnose(runs, args.block, args.x)
    print(f"entropy: {report['entropy_key']} (the one every run logged)")
    for name, run in report["runs"].items():
        print(f"\n{name} ({run['run_dir']})")
        print(f"{'steps':>9} {'train success':>15} {'Wilson 95 %':>16} {'entropy':>8} {'loss/policy':>11} "
              f"{'token-weighted A':>16}")
        for b in run["blocks"]:
            print(f"{b['first_step']:>4}-{b['last_step']:<4} {b['train_successes']:>6}/{b['train_episodes']:<8} "
                  f"[{b['wilson95'][0]:.3f}, {b['wilson95'][1]:.3f}] {b['entropy_mean']:>8.3f} "
                  f"{b['policy_loss_mean']:>+11.3f} {b['token_weighted_advantage_mean']:>+16.3f}")
        if run["advantage_mass_per_step"]:
            print("per step: successes/episodes, all-failure groups/groups, their share of |A|, share of the "
                  "positive A on failures")
            print("  " + "; ".join(
                f"{m['step']}: {m['successes']}/{m['episodes']} {m['num_failure_groups']}/{m['num_groups']} "
                f"{m['failure_group_abs_share']:.2f} {m['positive_on_failures_share']:.2f}"
                for m in run["advantage_mass_per_step"]))
        held = run["heldout"]
        print("held-out: " + ", ".join(f"{p['step']}: {p['num_successes']}/{p['num_episodes']}"
                                       for p in held["points"]))
        if "slope_per_100_steps" in held:
            lo, hi = held["slope_per_100_steps_ci95"]
            dlo, dhi = held["last_minus_first_ci95"]
            print(f"slope per 100 steps {held['slope_per_100_steps']:+.3f} [{lo:+.3f}, {hi:+.3f}]; last - first "
                  f"{held['last_minus_first']:+.3f} [{dlo:+.3f}, {dhi:+.3f}]")
        paired_slope = run["heldout_slope_paired"]
        if paired_slope is not None:
            lo, hi = paired_slope["slope_per_100_steps_ci95"]
            print(f"slope per 100 steps, paired by init state over steps {paired_slope['steps']}: "
                  f"{paired_slope['slope_per_100_steps']:+.3f} [{lo:+.3f}, {hi:+.3f}] (bootstrap over "
                  f"{paired_slope['num_clusters']} init states)")
        if run["heldout_vs_start_paired"]:
            print("each evaluation - step 0, paired by episode: " + "; ".join(
                f"{d['step']}: {paired_text(d, 'at step 0')}" for d in run["heldout_vs_start_paired"]))
        gain = run["gain_over_start_paired"]
        if gain is not None:
            print(f"held-out after step 0 (steps {gain['steps']}) - step 0, paired by init state: "
                  f"{gain['difference']:+.3f} [{gain['ci95'][0]:+.3f}, {gain['ci95'][1]:+.3f}] (bootstrap over "
                  f"{gain['num_clusters']} init states; won only after {gain['b_only']}, only at step 0 "
                  f"{gain['a_only']})")
        for key, diff in run.items():
            if key.startswith("vs_"):
                if report["x"] == "episodes":
                    print(f"{key} at equal training episodes ({run['episodes_per_step']} per step against "
                          f"{report['runs'][key[3:]]['episodes_per_step']}): steps on the first run's axis "
                          f"{diff['base_steps']}")
                for kind in ("train_blocks", "heldout"):
                    print(f"{kind} {key}: " + "; ".join(
                        f"{d.get('first_step', d.get('step'))}: {d['difference']:+.3f} "
                        f"[{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]" for d in diff[kind]))
                if diff["heldout_paired"]:
                    print(f"held-out paired by episode {key}: " + "; ".join(
                        f"{d['step']}: {d['difference']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}] "
                        f"(won only here {d['b_only']}, only there {d['a_only']}, McNemar p {d['mcnemar_p']:.2f})"
                        for d in diff["heldout_paired"]))
                pooled_pairs = diff["heldout_paired_after_start"]
                if pooled_pairs is not None:
                    print(f"held-out paired by episode, pooled over steps {pooled_pairs['steps']} {key}: "
                          f"{pooled_text(pooled_pairs)}")
                pooled = diff["heldout_mean_after_start"]
                if pooled is not None:
                    print(f"held-out pooled over steps {pooled['steps']} {key}: {pooled['other'][0]}/"
                          f"{pooled['other'][1]} vs {pooled['base'][0]}/{pooled['base'][1]}, "
                          f"{pooled['difference']:+.3f} [{pooled['ci95'][0]:+.3f}, {pooled['ci95'][1]:+.3f}]")
    png = args.out.with_suffix(".png")
    plot(report, png)
    write_report(args.out, {**report, "plot": png.name})


if __name__ == "__main__":
    main()
