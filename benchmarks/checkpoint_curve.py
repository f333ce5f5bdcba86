"""Held-out success of a run's checkpoints, evaluated after the run: greedy, or sampled at a temperature.

A run evaluates itself greedily every `eval_every` steps. Greedy and sampled success can differ a lot (the
compact VLA's lean start: 7/40 greedy on held-out states, ~30 % sampled at T = 0.7 on training states), and
RL trains the sampled policy. This evaluates checkpoints of one run, in step order, with `srpo eval`'s
evaluation (`srpo.evaluate.evaluate_checkpoint`; sampled episodes draw from the torch RNG seeded by `seed`, the
same stream for every checkpoint), and reports each one's success with its Wilson 95 % interval, the
least-squares slope over steps with its interval (`srpo.evaluate.success_slope`), and last minus first
(Newcombe). Each checkpoint's eval.json is kept in `--work-dir`, so a stopped run of this script resumes where it
stopped. Prints a table, writes JSON and a plot.

Every checkpoint plays the same held-out init states, so the evaluations are paired: the report also gives the
slope with an interval that resamples init states and each checkpoint against step 0 episode by episode (paired
bootstrap, exact McNemar), as `benchmarks/run_diagnostics.py` does for a run's in-run evaluations. With
`--greedy-run RUN_DIR` the run's own greedy evaluations (its steps/eval_*.npz) are summarised the same way and
drawn beside the curve. With `--against WORK_DIR`, another curve's work dir evaluated the same way (e.g. the GRPO
arm of the same command, whose step-0 checkpoint is the same start), this curve minus that one is reported at every
step both have, paired by episode, and pooled over the steps after 0 with a bootstrap over init states.

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

import numpy as np

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


def slot_outcomes(arrays: dict[str, np.ndarray]) -> list[tuple[tuple[int, int], int, bool]]:
    """((task, init state), k, succeeded) for every episode of one evaluation, k counting the plays of that
    (task, state) in order (the slot `keyed_episode_pairs` pairs on)."""
    seen: dict[tuple[int, int], int] = {}
    out = []
    for task, state, ok in zip(arrays["task_ids"], arrays["init_state_ids"], arrays["success"], strict=True):
        key = (int(task), int(state))
        out.append((key, seen.get(key, 0), bool(ok)))
        seen[key] = seen.get(key, 0) + 1
    return out


def keyed_episode_pairs(base: dict[str, np.ndarray], other: dict[str, np.ndarray]
                        ) -> list[tuple[tuple[int, int], bool, bool]]:
    """((task, init state), base succeeded, other succeeded) for every episode of one evaluation that both runs
    played on the same task and init state (the k-th episode of a (task, state) in one run pairs with the k-th in
    the other), in (task, state, k) order.

    Args:
        base, other: `srpo.run_dir.write_eval_arrays` arrays (task_ids, init_state_ids, success: (N,)).
    """
    def keyed(arrays: dict[str, np.ndarray]) -> dict[tuple[int, int, int], bool]:
        return {(*state, k): ok for state, k, ok in slot_outcomes(arrays)}

    b, o = keyed(base), keyed(other)
    return [((k[0], k[1]), b[k], o[k]) for k in sorted(b) if k in o]


def episode_pairs(base: dict[str, np.ndarray], other: dict[str, np.ndarray]) -> list[tuple[bool, bool]]:
    """`keyed_episode_pairs` without the keys: (base succeeded, other succeeded) per shared episode."""
    return [(b, o) for _, b, o in keyed_episode_pairs(base, other)]


def paired_heldout(base: dict[int, dict[str, np.ndarray]], other: dict[int, dict[str, np.ndarray]]
                   ) -> list[dict[str, Any]]:
    """other − base held-out success at every step both runs saved episode outcomes for (steps/eval_*.npz),
    paired by task and init state: the difference with its paired bootstrap 95 % interval, the episodes only one
    run won, and the exact McNemar p (`srpo.evaluate.paired_success_difference`). Runs made before eval arrays
    were written give nothing here (their counts are compared unpaired above)."""
    from srpo.evaluate import paired_success_difference

    out = []
    for step in sorted(set(base) & set(other)):
        pairs = episode_pairs(base[step], other[step])
        if pairs:
            out.append({"step": step, **paired_success_difference(pairs)})
    return out


def paired_heldout_after_start(base: dict[int, dict[str, np.ndarray]], other: dict[int, dict[str, np.ndarray]]
                               ) -> dict[str, Any] | None:
    """other − base held-out success pooled over every evaluation after step 0 that both runs saved episodes for,
    paired by task and init state, with a bootstrap over init states (`srpo.evaluate.clustered_paired_difference`):
    each state is played again at every evaluation, so its episodes are one cluster, not independent draws. The
    paired counterpart of `mean_after_start_difference`; None when the runs share no such evaluation."""
    from srpo.evaluate import clustered_paired_difference

    steps = sorted(s for s in set(base) & set(other) if s > 0)
    keyed = [(state, b, o) for s in steps for state, b, o in keyed_episode_pairs(base[s], other[s])]
    if not keyed:
        return None
    result = clustered_paired_difference([(b, o) for _, b, o in keyed], [state for state, _, _ in keyed])
    return {"steps": steps, **result}


def vs_start_paired(evals: dict[int, dict[str, np.ndarray]]) -> list[dict[str, Any]]:
    """Each evaluation after step 0 against the run's own step 0, paired by task and init state (`paired_heldout`
    with the step-0 episodes as the base at every step): the difference, its paired bootstrap interval, the
    episodes won only at that step / only at step 0, exact McNemar p. Empty without a step-0 evaluation on disk.

    Args:
        evals: {step: `srpo.run_dir.write_eval_arrays` arrays} of one run (`srpo.run_dir.read_eval_arrays`).
    """
    if 0 not in evals:
        return []
    return paired_heldout({step: evals[0] for step in evals if step > 0}, evals)


def heldout_slope_paired(evals: dict[int, dict[str, np.ndarray]]) -> dict[str, Any] | None:
    """The held-out curve's slope per 100 steps with the pairing kept: every evaluation of a run plays the same
    held-out init states, so the evaluations are not independent binomial samples (what `curve_summary`'s
    interval assumes); this one resamples init states (`srpo.evaluate.paired_success_slope`). Only the episode
    slots (task, init state, k-th play) that every saved evaluation played count; None with fewer than two saved
    evaluations or no slot they all share.

    Args:
        evals: {step: `srpo.run_dir.write_eval_arrays` arrays} of one run (`srpo.run_dir.read_eval_arrays`).
    """
    from srpo.evaluate import paired_success_slope

    steps = sorted(evals)
    if len(steps) < 2:
        return None
    keyed = [{(state, k): ok for state, k, ok in slot_outcomes(evals[s])} for s in steps]
    shared = sorted(set.intersection(*(set(row) for row in keyed)))
    if not shared:
        return None
    outcomes = np.asarray([[row[key] for key in shared] for row in keyed], dtype=bool)
    est = paired_success_slope(steps, outcomes, [state for state, _ in shared])
    return {"steps": steps, "num_episodes": len(shared), "num_clusters": len({state for state, _ in shared}),
            "slope_per_100_steps": 100 * est.slope, "slope_per_100_steps_ci95": [100 * est.low, 100 * est.high]}


def episode_arrays(records: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """eval.json's "episodes" records as the arrays `srpo.run_dir.write_eval_arrays` writes (task_ids,
    init_state_ids, success: (N,), in run order), so that the paired helpers above read both."""
    return {"task_ids": np.asarray([int(r["task_id"]) for r in records], dtype=np.int64),
            "init_state_ids": np.asarray([int(r["init_state_id"]) for r in records], dtype=np.int64),
            "success": np.asarray([bool(r["success"]) for r in records], dtype=bool)}


def paired_summary(evals: dict[int, dict[str, np.ndarray]]) -> dict[str, Any]:
    """The paired half of a curve's report: the slope resampling init states (None with fewer than two
    evaluations sharing a slot) and each evaluation against step 0 (empty without step 0)."""
    return {"slope_paired": heldout_slope_paired(evals), "vs_start_paired": vs_start_paired(evals)}


def arrays_curve(evals: dict[int, dict[str, np.ndarray]]) -> dict[str, Any]:
    """`curve_summary` of the evaluations' success counts and their `paired_summary`; at least two steps.

    Args:
        evals: {step: `episode_arrays` or `srpo.run_dir.read_eval_arrays` arrays}; arrays (N,).
    """
    points = [{"step": step, "num_successes": int(a["success"].sum()), "num_episodes": len(a["success"])}
              for step, a in sorted(evals.items())]
    return {**curve_summary(points), **paired_summary(evals)}


def greedy_run_curve(run_dir: Path) -> dict[str, Any]:
    """A run's own greedy held-out evaluations (steps/eval_*.npz): `curve_summary` and `paired_summary`.

    Raises:
        FileNotFoundError: the run saved fewer than two evaluations' episodes.
    """
    from srpo.run_dir import read_eval_arrays

    evals = read_eval_arrays(run_dir)
    if len(evals) < 2:
        raise FileNotFoundError(f"{run_dir}/steps has {len(evals)} eval_*.npz file(s): --greedy-run needs a run "
                                "directory (<out>/<algo>/seed<k>) that evaluated at least twice")
    return {"run_dir": str(run_dir), **arrays_curve(evals)}


def read_work_dir(work_dir: Path) -> dict[int, dict[str, Any]]:
    """Every step<NNNNNN>/eval.json of a --work-dir, keyed by step (other entries are skipped)."""
    out = {}
    for path in sorted(work_dir.glob("step*/eval.json")):
        digits = path.parent.name[len("step"):]
        if digits.isdigit():
            out[int(digits)] = json.loads(path.read_text())
    return out


def read_against(work_dir: Path, expected: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """Another curve's evaluations (`read_work_dir`), checked to pair with this one's before anything runs.

    Args:
        work_dir: the other curve's --work-dir.
        expected: mode, temperature, seed and episodes_per_task of this curve; the other's must match them.

    Raises:
        ValueError: the other work dir has fewer than two evaluations, one evaluated otherwise, or one without
            per-episode records.
    """
    reports = read_work_dir(work_dir)
    if len(reports) < 2:
        raise ValueError(f"--against {work_dir} holds {len(reports)} step*/eval.json: give another curve's "
                         "--work-dir with at least two evaluated checkpoints")
    for step, report in reports.items():
        differs = {k: (report.get(k), v) for k, v in expected.items() if report.get(k) != v}
        if differs or "episodes" not in report:
            raise ValueError(f"--against {work_dir}: step {step} was evaluated otherwise ({differs or 'no episodes'}"
                             "); the two curves pair episode by episode only when both evaluate the same way")
    return reports


def against_curve(work_dir: Path, reports: dict[int, dict[str, Any]], evals: dict[int, dict[str, np.ndarray]]
                  ) -> dict[str, Any]:
    """This curve's `evals` minus another curve's `reports` (`read_against`): `curve_summary` of that curve, the
    paired difference at every shared step (`paired_heldout`) and pooled after step 0 (`paired_heldout_after_start`).
    """
    other = {step: episode_arrays(r["episodes"]) for step, r in reports.items()}
    points = [{"step": step, "num_successes": r["num_successes"], "num_episodes": r["num_episodes"]}
              for step, r in sorted(reports.items())]
    return {"work_dir": str(work_dir), **curve_summary(points), "this_minus_that": paired_heldout(other, evals),
            "this_minus_that_after_start": paired_heldout_after_start(other, evals)}


def split_by_init_state(evals: dict[int, dict[str, np.ndarray]], first_held_out: int
                        ) -> dict[str, dict[int, dict[str, np.ndarray]]]:
    """The episodes of every evaluation split by init state: "train" (ids < `first_held_out`) and "held_out"
    (the rest), each kept in run order, for an evaluation over every init state
    (`--set env.libero.train_on_eval_states=true --set env.libero.num_eval_init_states=50`).

    Args:
        evals: {step: `episode_arrays`}; arrays (N,).
        first_held_out: the first held-out init state (`env.libero.num_train_init_states` of the run).
    """
    out: dict[str, dict[int, dict[str, np.ndarray]]] = {"train": {}, "held_out": {}}
    for step, arrays in evals.items():
        train = arrays["init_state_ids"] < first_held_out
        for name, mask in (("train", train), ("held_out", ~train)):
            if mask.any():
                out[name][step] = {k: v[mask] for k, v in arrays.items()}
    return out


def split_summaries(evals: dict[int, dict[str, np.ndarray]], first_held_out: int) -> dict[str, Any]:
    """`arrays_curve` of each half of `split_by_init_state` (a half with fewer than two evaluations is left out)."""
    return {name: arrays_curve(part) for name, part in split_by_init_state(evals, first_held_out).items()
            if len(part) >= 2}


def paired_text(d: dict[str, Any], other: str = "there") -> str:
    """One paired difference (`paired_heldout`) as printed: difference, interval, discordant episodes, McNemar p;
    `other` names the evaluation the difference is taken against."""
    return (f"{d['difference']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}] (won only here {d['b_only']}, "
            f"only {other} {d['a_only']}, McNemar p {d['mcnemar_p']:.3f})")


def pooled_text(d: dict[str, Any]) -> str:
    """One pooled paired difference (`paired_heldout_after_start`) as printed: difference, interval, counts."""
    return (f"{d['difference']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}] ({d['num_pairs']} pairs over "
            f"{d['num_clusters']} init states; won only here {d['b_only']}, only there {d['a_only']})")


def print_curve(name: str, summary: dict[str, Any]) -> None:
    """The table and the slope lines of one curve."""
    print(f"{name}\n{'step':>6} {'success':>9} {'rate':>6}  Wilson 95 %")
    for p in summary["points"]:
        print(f"{p['step']:>6} {p['num_successes']:>4}/{p['num_episodes']:<4} {p['rate']:>6.3f}  "
              f"[{p['wilson95'][0]:.3f}, {p['wilson95'][1]:.3f}]")
    lo, hi = summary["slope_per_100_steps_ci95"]
    dlo, dhi = summary["last_minus_first_ci95"]
    print(f"slope per 100 steps {summary['slope_per_100_steps']:+.3f} [{lo:+.3f}, {hi:+.3f}] (binomial); last - "
          f"first {summary['last_minus_first']:+.3f} [{dlo:+.3f}, {dhi:+.3f}]")
    paired = summary.get("slope_paired")
    if paired is not None:
        lo, hi = paired["slope_per_100_steps_ci95"]
        print(f"slope per 100 steps {paired['slope_per_100_steps']:+.3f} [{lo:+.3f}, {hi:+.3f}] (paired: bootstrap "
              f"over {paired['num_clusters']} init states, {paired['num_episodes']} episode slots)")
    for d in summary.get("vs_start_paired", []):
        print(f"step {d['step']:>4} - step 0: {paired_text(d, 'at step 0')}")


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
    parser.add_argument("--greedy-run", type=Path, default=None, metavar="RUN_DIR",
                        help="the run the checkpoints come from: its own greedy evaluations are reported and drawn "
                             "beside the curve")
    parser.add_argument("--label", default=None, help="this curve's name in the plot (default: how it evaluates)")
    parser.add_argument("--against-label", default=None,
                        help="the --against curve's name in the plot (default: its work dir's name)")
    parser.add_argument("--split-init-state", type=int, default=None, metavar="N",
                        help="also report the episodes on init states < N (training states: the run's "
                             "env.libero.num_train_init_states) and >= N (held out) apart, for an evaluation over "
                             "every init state")
    parser.add_argument("--against", type=Path, default=None, metavar="WORK_DIR",
                        help="another curve's --work-dir, evaluated the same way: this curve minus that one, paired "
                             "by episode, per step and pooled after step 0")
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
    from srpo.evaluate import evaluate_checkpoint, mode_label
    from srpo.report import plot_success_curves

    cfg = load_config(preset=args.preset, overrides=args.overrides)
    mode = "greedy" if args.sample_temperature is None else "sampled"
    how = {"mode": mode, "temperature": args.sample_temperature,
           "seed": None if args.sample_temperature is None else cfg.seed, "episodes_per_task": args.episodes}
    against_reports = None
    if args.against is not None:
        try:
            against_reports = read_against(args.against, how)
        except ValueError as e:
            parser.error(str(e))
    points: list[dict[str, Any]] = []
    evals: dict[int, dict[str, np.ndarray]] = {}
    for step, ckpt in tqdm(checkpoints, desc="checkpoint curve", unit="ckpt"):
        work = args.work_dir / f"step{step:06d}"
        cached = work / "eval.json"
        report = json.loads(cached.read_text()) if cached.exists() else None
        expected = {"checkpoint": ckpt, **how}
        if report is None or any(report.get(k) != v for k, v in expected.items()):
            evaluate_checkpoint(cfg, ckpt, args.episodes, 0, work, args.sample_temperature)
            report = json.loads(cached.read_text())
        points.append({"step": step, "checkpoint": ckpt, "num_successes": report["num_successes"],
                       "num_episodes": report["num_episodes"], "per_task": report["success_rate"]})
        if "episodes" in report:  # eval.json files written before it was added give the binomial summary alone
            evals[step] = episode_arrays(report["episodes"])
        tqdm.write(f"step {step:>4}: {report['num_successes']}/{report['num_episodes']}")
    summary = {**curve_summary(points), **paired_summary(evals)}
    label = mode_label(args.sample_temperature)
    print_curve(f"{label}, seed {cfg.seed}, {args.episodes} episodes per task", summary)
    split = split_summaries(evals, args.split_init_state) if args.split_init_state is not None else None
    for name, part in (split or {}).items():
        print()
        print_curve(f"{label}, init states {'<' if name == 'train' else '>='} {args.split_init_state} ({name})", part)
    greedy = greedy_run_curve(args.greedy_run) if args.greedy_run is not None else None
    if greedy is not None:
        print()
        print_curve(f"greedy, the run's own evaluations ({args.greedy_run})", greedy)
    against = None
    if against_reports is not None:
        against = against_curve(args.against, against_reports, evals)
        print(f"\nthis curve - {args.against}, paired by episode:")
        for d in against["this_minus_that"]:
            print(f"step {d['step']:>4}: {paired_text(d)}")
        pooled = against["this_minus_that_after_start"]
        if pooled is not None:
            print(f"pooled over steps {pooled['steps']}: {pooled_text(pooled)}, bootstrap over init states")
    png = args.out.with_suffix(".png")
    png.parent.mkdir(parents=True, exist_ok=True)
    curves, intervals = {}, {}
    against_name = args.against_label or (f"{label}, {args.against.name}" if args.against else "")
    named = ((args.label or label, summary), ("greedy (the run's own evaluations)", greedy), (against_name, against))
    for name, curve in named:
        if curve is None:
            continue
        lo, hi = curve["slope_per_100_steps_ci95"]
        curve_label = f"{name}, slope {curve['slope_per_100_steps']:+.3f} / 100 steps [{lo:+.3f}, {hi:+.3f}]"
        curves[curve_label] = [[(p["step"], p["rate"]) for p in curve["points"]]]
        intervals[curve_label] = [[(p["step"], *p["wilson95"]) for p in curve["points"]]]
    plot_success_curves(curves, png, None, ylabel="held-out success", intervals=intervals)
    write_report(args.out, {"preset": args.preset, "overrides": args.overrides, "mode": mode,
                            "temperature": args.sample_temperature, "seed": cfg.seed,
                            "episodes_per_task": args.episodes, **summary, "split_init_state": args.split_init_state,
                            "split": split, "greedy_run": greedy, "against": against,
                            "plot": png.name,
                            **machine_info()})


if __name__ == "__main__":
    main()
