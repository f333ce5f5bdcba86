"""A policy's greedy LIBERO success under each `libero.render_quality`, paired episode by episode.

"fast" and "lean" change the pixels the policy sees (benchmarks/render_quality.py shows the frames); a policy
behaviour-cloned on LIBERO's own ("full") frames may not tolerate that. This runs `srpo eval` (greedy, same tasks,
same init states; repeatable on one machine, and since the env-reset fix of 2026-12-05 also within one process,
benchmarks/eval_repeat.py; not bit-stable across machines) once per quality and compares the qualities on the same
episodes: per quality the success count with its Wilson 95 % interval, and between every two qualities the paired
difference (mean of per-episode differences, percentile-bootstrap 95 % interval over the episode pairs), the
discordant pairs and the exact McNemar p-value. Every quality's eval.json (per-episode outcomes) and one video per
task stay under --out-dir; re-running reuses a finished quality. --baseline-checkpoint adds a second policy on the
same episodes (e.g. a new SFT start against the shipped one), and --also NAME=CHECKPOINT any further ones under the
first quality (e.g. the final checkpoints of two arms of a long run against their start).
Prints a table and writes JSON.

    MUJOCO_GL=egl python benchmarks/render_policy_success.py --qualities full fast lean --eval-states 40
    MUJOCO_GL=egl python benchmarks/render_policy_success.py --checkpoint NEW/final --qualities lean full \
        --baseline-checkpoint checkpoints/compact_libero_spatial_sft/final --baseline-qualities fast lean \
        --out benchmarks/results/sft_start.json
    MUJOCO_GL=egl python benchmarks/render_policy_success.py --qualities fast --eval-states 20 \
        --also srpo-60=runs/preset60/srpo/seed0/ckpt-000060/policy grpo-60=runs/preset60/grpo/seed0/ckpt-000060/policy \
        --out-dir runs/preset60_paired --out benchmarks/results/libero_preset60/paired_final.json
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, get_args

from bench_common import machine_info, use_headless_gl, write_report
from srpo.config.libero import RenderQuality
from srpo.evaluate import paired_success_difference

RESULTS = Path(__file__).resolve().parent / "results" / "render_policy_success.json"
QUALITIES: tuple[str, ...] = get_args(RenderQuality)
NUM_INIT_STATES = 50  # LIBERO's fixed initial states per task


def paired_difference(episodes_a: list[dict[str, Any]], episodes_b: list[dict[str, Any]],
                      num_resamples: int = 10_000, seed: int = 0) -> dict[str, Any]:
    """Success of b minus success of a on the episodes both ran, paired by (task, init state).

    Args:
        episodes_a, episodes_b: eval.json "episodes" lists ({"task_id", "init_state_id", "success", ...}); a
            (task, init state) that appears more than once in either list is an error (pairing would be ambiguous).
        num_resamples: Bootstrap resamples of the episode pairs.
        seed: Seed of the resampling.

    Returns:
        {"difference": mean paired difference, "ci95": percentile bootstrap interval, "num_pairs",
        "b_only", "a_only", "mcnemar_p"}.
    """
    def by_key(episodes: list[dict[str, Any]], name: str) -> dict[tuple[int, int], bool]:
        keyed = {(int(e["task_id"]), int(e["init_state_id"])): bool(e["success"]) for e in episodes}
        if len(keyed) != len(episodes):
            raise ValueError(f"{name} repeats a (task, init state): evaluate at most one episode per state")
        return keyed

    a, b = by_key(episodes_a, "episodes_a"), by_key(episodes_b, "episodes_b")
    keys = sorted(a.keys() & b.keys())
    if not keys:
        raise ValueError("the two evaluations share no (task, init state) episode")
    return paired_success_difference([(a[k], b[k]) for k in keys], num_resamples=num_resamples, seed=seed)


def quality_overrides(quality: str, eval_states: int) -> list[str]:
    """Config overrides: the render quality, and the last `eval_states` init states of each task for evaluation."""
    if quality not in QUALITIES:
        raise ValueError(f"unknown render quality {quality!r}: choose from {', '.join(QUALITIES)}")
    if not 1 <= eval_states <= NUM_INIT_STATES - 1:
        raise ValueError(f"--eval-states={eval_states} is invalid: choose 1..{NUM_INIT_STATES - 1}")
    return [f"env.libero.render_quality={quality}",
            f"env.libero.num_train_init_states={NUM_INIT_STATES - eval_states}",
            f"env.libero.num_eval_init_states={eval_states}"]


def evaluate_quality(args: argparse.Namespace, quality: str, checkpoint: str | None = None,
                     name: str | None = None) -> dict[str, Any]:
    """One (checkpoint, quality) evaluation, or the finished one on disk if it ran with the same checkpoint and states.

    `checkpoint` defaults to --checkpoint (else the preset's); the evaluation lives in --out-dir/`name` (default: the
    quality).
    """
    from srpo.config.train import load_config
    from srpo.evaluate import evaluate_checkpoint

    out = Path(args.out_dir) / (name or quality)
    done = out / "eval.json"
    cfg = load_config(preset=args.preset, overrides=quality_overrides(quality, args.eval_states))
    checkpoint = checkpoint or args.checkpoint or cfg.policy.checkpoint
    if done.exists():
        saved = json.loads(done.read_text())
        if saved.get("checkpoint") == checkpoint and saved.get("episodes_per_task") == args.eval_states \
                and "wall_s" in saved:
            return dict(saved)
    start = time.perf_counter()
    evaluate_checkpoint(cfg, checkpoint, args.eval_states, args.videos, out)
    saved = json.loads(done.read_text())
    saved["wall_s"] = time.perf_counter() - start
    saved["render_quality"] = quality
    done.write_text(json.dumps(saved, indent=2))
    return dict(saved)


def parse_also(items: list[str]) -> list[tuple[str, str]]:
    """`--also` values "NAME=CHECKPOINT" as (name, checkpoint) pairs, in order."""
    pairs = []
    for item in items:
        name, sep, checkpoint = item.partition("=")
        if not sep or not name or not checkpoint or name in QUALITIES or name.startswith("baseline-"):
            raise ValueError(f"--also {item!r} is invalid: write NAME=CHECKPOINT with a NAME that is not a render "
                             f"quality and does not start with 'baseline-', e.g. srpo-60=runs/x/ckpt-000060/policy")
        pairs.append((name, checkpoint))
    return pairs


def arms(qualities: list[str], baseline_checkpoint: str | None, baseline_qualities: list[str] | None,
         also: Sequence[tuple[str, str]] = ()) -> list[tuple[str, str | None, str]]:
    """The evaluations to run, as (name, checkpoint or None for the main one, quality); the first is the reference.

    The main checkpoint runs under every quality of `qualities` (named by the quality); a baseline checkpoint, if
    given, under every quality of `baseline_qualities` (default: the reference quality), named "baseline-<quality>";
    every `also` (name, checkpoint) under the reference quality, named by its name.
    """
    if baseline_qualities and not baseline_checkpoint:
        raise ValueError("--baseline-qualities needs --baseline-checkpoint")
    runs: list[tuple[str, str | None, str]] = [(q, None, q) for q in qualities]
    if baseline_checkpoint:
        runs += [(f"baseline-{q}", baseline_checkpoint, q) for q in (baseline_qualities or qualities[:1])]
    runs += [(name, checkpoint, qualities[0]) for name, checkpoint in also]
    names = [name for name, _, _ in runs]
    if len(set(names)) != len(names):
        raise ValueError(f"a quality or --also name is listed twice: {', '.join(names)}")
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="cpu", choices=["cpu", "paper"])
    parser.add_argument("--checkpoint", default=None, help="policy checkpoint (default: the preset's)")
    parser.add_argument("--qualities", nargs="+", default=list(QUALITIES), choices=QUALITIES,
                        help="render qualities, the first being the reference of the paired differences")
    parser.add_argument("--eval-states", type=int, default=40,
                        help="greedy episodes per task, on its last N init states (default 40: states 10-49)")
    parser.add_argument("--baseline-checkpoint", default=None,
                        help="a second policy (e.g. the shipped one), evaluated on the same episodes and compared")
    parser.add_argument("--baseline-qualities", nargs="+", default=None, choices=QUALITIES,
                        help="render qualities of the baseline (default: the first of --qualities)")
    parser.add_argument("--also", nargs="+", default=[], metavar="NAME=CHECKPOINT",
                        help="further policies, evaluated under the first quality on the same episodes and paired")
    parser.add_argument("--videos", type=int, default=1, help="videos per task and quality")
    parser.add_argument("--out-dir", default="runs/render_policy_success")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    for quality in args.qualities + (args.baseline_qualities or []):
        quality_overrides(quality, args.eval_states)  # bad values fail before any evaluation runs
    runs = arms(args.qualities, args.baseline_checkpoint, args.baseline_qualities, parse_also(args.also))
    use_headless_gl()
    from srpo.evaluate import wilson_interval

    evals: dict[str, dict[str, Any]] = {}
    for name, checkpoint, quality in runs:
        evals[name] = evaluate_quality(args, quality, checkpoint, name)
        print(f"{name}: {evals[name]['num_successes']}/{evals[name]['num_episodes']} "
              f"({evals[name]['wall_s']:.0f} s)", flush=True)
    reference = runs[0][0]
    rows: dict[str, dict[str, Any]] = {}
    print(f"\n{'arm':<14}{'success':>10}{'rate [95% CI]':>24}{'- ' + reference + ' [95% CI]':>28}"
          f"{'only ref / only this':>22}{'McNemar p':>11}{'eval s':>8}")
    for name, ev in evals.items():
        k, n = ev["num_successes"], ev["num_episodes"]
        row: dict[str, Any] = {"successes": k, "episodes": n, "rate": k / n, "wilson95": list(wilson_interval(k, n)),
                               "per_task": ev["success_rate"], "wall_s": ev["wall_s"],
                               "checkpoint": ev["checkpoint"], "render_quality": ev["render_quality"]}
        paired = ""
        if name != reference:
            row["paired_vs_" + reference] = diff = paired_difference(evals[reference]["episodes"], ev["episodes"])
            paired = (f"{diff['difference']:>+10.3f} [{diff['ci95'][0]:+.3f}, {diff['ci95'][1]:+.3f}]"
                      f"{diff['a_only']:>13} / {diff['b_only']:<8}{diff['mcnemar_p']:>11.3f}")
        low, high = row["wilson95"]
        print(f"{name:<14}{k:>6}/{n:<3}{k / n:>10.3f} [{low:.3f}, {high:.3f}]{paired:>61}{ev['wall_s']:>8.0f}")
        rows[name] = row
    # Every other pair too (e.g. lean against fast), on the same episodes.
    names = list(evals)
    pairs = {f"{b} - {a}": paired_difference(evals[a]["episodes"], evals[b]["episodes"])
             for i, a in enumerate(names) for b in names[i + 1:]}
    for name, diff in pairs.items():
        print(f"{name}: {diff['difference']:+.3f} [{diff['ci95'][0]:+.3f}, {diff['ci95'][1]:+.3f}], "
              f"only first {diff['b_only']} / only second {diff['a_only']}, McNemar p {diff['mcnemar_p']:.3f}")
    report = {"preset": args.preset, "checkpoint": evals[reference]["checkpoint"], "eval_states": args.eval_states,
              "init_states": f"{NUM_INIT_STATES - args.eval_states}-{NUM_INIT_STATES - 1} of each task",
              "tasks": sorted(int(t) for t in evals[reference]["success_rate"]), "reference": reference,
              "baseline_checkpoint": args.baseline_checkpoint, "qualities": rows, "pairs": pairs,
              **machine_info()}
    write_report(args.out, report)


if __name__ == "__main__":
    main()
