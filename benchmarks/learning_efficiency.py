"""SRPO vs GRPO, and SRPO's ablations, on the built-in tabletop env from one SFT start.

Protocol: one initial policy (SFT on `--demos-per-task` noisy scripted demos per task, held-out layouts
excluded; the start is the SFT checkpoint with the most sampled successes on training states within
`--max-start-success`), the same tasks and seeds for every arm. Arms: GRPO, SRPO (official dynamic-sampling
filter), SRPO-keep (also keeps all-failure groups whose task has a reference success and whose shaped rewards
spread, see `algo.keep_referenced_failure_groups`), and the ablations of `ARMS`, each differing from SRPO in
exactly one setting (alpha, centres, reference source, encoder). Every few steps each run is evaluated greedily
on held-out initial states never used in training or in the demos. Per arm: mean success curve with a 95 %
bootstrap interval over seeds, area under the curve, final success, steps to reach GRPO's final mean success
(per seed; arm ÷ GRPO), paired per-seed differences to GRPO (and, for ablations, to SRPO), and the share of
rolled-out groups that carried any learning signal per step.

Each run is its own `srpo train` process (`--resume` after a kill; finished runs are skipped), at most `--jobs`
at a time, one torch thread each. Results (JSON with the commit and command of every run, and a plot with CI
bands, and the README table as markdown) go to benchmarks/results/<--results-name>.{json,png,md} after every
finished run; `complete` says whether
every arm × seed has finished.

    # the sparse start of issue #17 (8 demos per task)
    python benchmarks/learning_efficiency.py --out runs/le_sparse            # all phases, resumable
    python benchmarks/learning_efficiency.py --out runs/le_sparse --summarise  # results from what exists
    # the ablations of issue #13 (300 demos per task, a start with <= 15 % sampled success, 20 steps)
    python benchmarks/learning_efficiency.py --out runs/le_mid --demos-per-task 300 --max-start-success 0.15 \
        --steps 20 --results-name learning_efficiency_mid --seeds 0 1 2 3 --arms grpo srpo srpo_alpha0.5 \
        srpo_alpha0.8 srpo_nearest srpo_mean srpo_external srpo_pixel
    # the V-JEPA 2 row, where its weights are on disk (a GPU machine): same --out, one more arm
    python benchmarks/learning_efficiency.py --out runs/le_mid ... --arms srpo_vjepa2 \
        --vjepa2-weights weights/vjepa2-vitl-fpc64-256
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from srpo.config.train import TrainConfig, load_config, save_config
from srpo.provenance import provenance

RESULTS = Path(__file__).parent / "results"
ROOT = Path(__file__).resolve().parent.parent
ARMS: dict[str, list[str]] = {
    "grpo": ["algo_name=grpo"],
    "srpo": ["algo_name=srpo"],
    "srpo_keep": ["algo_name=srpo", "algo.keep_referenced_failure_groups=true"],
    # Ablations (issue #13): each differs from "srpo" in exactly one setting.
    "srpo_alpha0.5": ["algo_name=srpo", "reward.alpha=0.5"],
    "srpo_alpha0.8": ["algo_name=srpo", "reward.alpha=0.8"],
    "srpo_nearest": ["algo_name=srpo", "reward.centres=nearest"],
    "srpo_mean": ["algo_name=srpo", "reward.centres=mean"],
    "srpo_external": ["algo_name=srpo", "reward.reference_source=external"],
    "srpo_pixel": ["algo_name=srpo", "encoder.name=pixel", "encoder.crop_size=null"],
    # The paper's world model: needs local weights (--vjepa2-weights) and, to be affordable, a GPU.
    "srpo_vjepa2": ["algo_name=srpo", "encoder.name=vjepa2", "encoder.crop_size=null", "encoder.device=auto",
                    "encoder.dtype=bfloat16"],
}
MAIN_ARMS = ("grpo", "srpo", "srpo_keep")
COLOURS = {"grpo": "tab:orange", "srpo": "tab:blue", "srpo_keep": "tab:green", "srpo_alpha0.5": "tab:purple",
           "srpo_alpha0.8": "tab:brown", "srpo_nearest": "tab:pink", "srpo_mean": "tab:gray",
           "srpo_external": "tab:olive", "srpo_pixel": "tab:cyan", "srpo_vjepa2": "tab:red"}
RUN_INFO = "run_info.json"


def tabletop_overrides(args: argparse.Namespace) -> list[str]:
    """The env settings shared by the SFT, the initial evaluation and every run."""
    return [f"env.tabletop.num_tasks={args.tasks}", f"env.tabletop.object_state={str(args.object_state).lower()}",
            f"env.tabletop.num_init_states={args.num_init_states}",
            f"env.tabletop_num_eval_init_states={args.num_eval_init_states}"]


def make_initial_policy(out: Path, args: argparse.Namespace) -> Path:
    """SFT a compact VLA on `--demos-per-task` noisy scripted demos per task, then pick the sparse start.

    Demos come from layouts that exclude the held-out evaluation ones; each starts after an unrecorded random walk
    (recovery data); the spatial-softmax keypoint encoder is trained. The SFT writes a checkpoint every
    `--sft-checkpoint-every` steps; the start is the checkpoint whose success sampled at the training
    temperature on the *training* initial states lies in (0, `--max-start-success`] and is highest (`--start-rule
    most`; `first` takes the earliest eligible one): a few successes per batch, most groups without one. No
    held-out state is used to choose it. Its vision encoder is then frozen for
    RL (PPO re-scores cached image features). The scan is written to init_sft/checkpoint_scan.json.
    """
    from srpo.config.policy import PolicyConfig
    from srpo.config.sft import SFTConfig
    from srpo.envs.tabletop import demo_layout_pool, record_tabletop_demos
    from srpo.policies.compact import CompactVLA
    from srpo.sft import train_sft

    final = out / "final"
    if final.exists():
        return final
    sft_dir = out / "sft"
    base = load_config(preset="tabletop", overrides=[*tabletop_overrides(args), "algo.temperature=1.0"])
    tabletop = base.env.tabletop
    if not (sft_dir / "final").exists():
        factory, demo_states = demo_layout_pool(tabletop, args.num_eval_init_states, args.demo_layouts)
        # Two spare demos per task: a noisy expert occasionally fails (skipped), and a lucky walk is dropped.
        demos = record_tabletop_demos(factory, list(range(args.tasks)), args.demos_per_task + 2, seed=1234,
                                      noise_std=args.demo_noise, init_state_ids=demo_states,
                                      max_random_prefix_steps=args.random_prefix)
        policy = CompactVLA(PolicyConfig(vision_encoder="conv_keypoints", text_encoder="hashed",
                                         image_size=tabletop.image_size, d_model=64, num_layers=2, ff_dim=128,
                                         state_dim=demos[0].states.shape[1], freeze_vision=False,
                                         chunk_size=args.chunk_size, seed=0))
        cfg = SFTConfig(num_demos_per_task=args.demos_per_task, num_steps=args.sft_steps, checkpoint_dir=str(sft_dir),
                        checkpoint_every=args.sft_checkpoint_every, crop_scale=1.0, color_jitter=0.1,
                        progress=False)
        train_sft(policy, demos, cfg)
    scan_path = out / "checkpoint_scan.json"
    scan: list[dict[str, Any]] = json.loads(scan_path.read_text()) if scan_path.exists() else []
    done = {row["checkpoint"] for row in scan}
    for ckpt in [*sorted(sft_dir.glob("step_*")), sft_dir / "final"]:
        if str(ckpt) not in done:
            rate = sampled_success(replace(base, policy=replace(base.policy, checkpoint=str(ckpt))), "train")
            scan.append({"checkpoint": str(ckpt), "sampled_success_train_states": rate})
            scan_path.write_text(json.dumps(scan, indent=2) + "\n")
            print(f"{ckpt}: sampled success on training states {rate:.3f}", flush=True)
        row = next(r for r in scan if r["checkpoint"] == str(ckpt))
        if args.start_rule == "first" and 0.0 < row["sampled_success_train_states"] <= args.max_start_success:
            break
    eligible = [r for r in scan if 0.0 < r["sampled_success_train_states"] <= args.max_start_success]
    if not eligible:
        rates = [(r["checkpoint"], r["sampled_success_train_states"]) for r in scan]
        raise SystemExit(f"no SFT checkpoint has a sampled success on training states in (0, "
                         f"{args.max_start_success}]: {rates}; change --demos-per-task / --sft-steps and use another "
                         "--out")
    # "first": the earliest eligible checkpoint; "most": the most successes within the cap (earliest on ties), so
    # that batches hold a few successes to learn from while most groups hold none.
    chosen = eligible[0] if args.start_rule == "first" else max(
        eligible, key=lambda r: (r["sampled_success_train_states"], -eligible.index(r)))
    policy = CompactVLA.from_pretrained(chosen["checkpoint"])
    policy.freeze_vision_encoder()
    policy.save_pretrained(final)
    (out / "chosen.json").write_text(json.dumps({**chosen, "rule": args.start_rule}, indent=2) + "\n")
    return final


def sampled_success(cfg: TrainConfig, split: str, repeats: int = 2) -> float:
    """Success sampled at cfg.algo.temperature, every initial state of `split` `repeats` times per task."""
    from srpo.build import make_env_factory, make_policy
    from srpo.evaluate import init_state_split
    from srpo.rollout import EpisodeRequest, RolloutEngine

    torch.manual_seed(0)
    policy = make_policy(cfg)
    factory = make_env_factory(cfg)
    requests: list[EpisodeRequest] = []
    for spec in factory.task_specs():
        for state in init_state_split(cfg, spec.num_init_states, split) * repeats:
            requests.append(EpisodeRequest(spec.task_id, state, len(requests), len(requests)))
    with RolloutEngine(factory, cfg.rollout) as engine:
        trajs, _ = engine.collect(policy, requests, cfg.algo.temperature, greedy=False)
    return float(np.mean([t.success for t in trajs]))


SAMPLED_FINAL = "sampled_final.json"


def sampled_final_success(run_dir: Path, base: TrainConfig) -> float:
    """Success of a finished run's final policy sampled at the training temperature on the held-out init states
    (each twice per task, as the initial policy's `sampled_T1`); cached in run_dir/sampled_final.json. Greedy
    success is the headline; at a sparse start it can stay 0 while the sampled rate moves, so this is the second
    line experiments.md asks for."""
    from srpo.diversity_eval import final_policy_checkpoint

    path = run_dir / SAMPLED_FINAL
    if not path.exists():
        ckpt = final_policy_checkpoint(run_dir)
        rate = sampled_success(replace(base, policy=replace(base.policy, checkpoint=str(ckpt))), "eval")
        path.write_text(json.dumps({"checkpoint": str(ckpt), "sampled_success_held_out": rate,
                                    "provenance": provenance()}, indent=2) + "\n")
    return float(json.loads(path.read_text())["sampled_success_held_out"])


def initial_success(base: TrainConfig) -> dict[str, float]:
    """The initial policy on held-out init states: greedy (the evaluation of every run), and sampled at the
    training temperature (each held-out state twice)."""
    from srpo.build import make_env_factory, make_policy
    from srpo.evaluate import evaluate_policy, init_state_split
    from srpo.rollout import RolloutEngine

    torch.manual_seed(0)
    policy = make_policy(base)
    factory = make_env_factory(base)
    specs = factory.task_specs()
    num_held_out = len(init_state_split(base, specs[0].num_init_states, "eval"))  # the same for every tabletop task
    with RolloutEngine(factory, base.rollout) as engine:
        greedy = evaluate_policy(engine, policy, specs, base, base.num_eval_episodes_per_task)
        sampled = evaluate_policy(engine, policy, specs, base, 2 * num_held_out, base.algo.temperature)
    return {"greedy": greedy.mean, "greedy_episodes": sum(greedy.num_episodes.values()),
            f"sampled_T{base.algo.temperature:g}": float(np.mean([t.success for t in sampled.trajectories])),
            "sampled_episodes": len(sampled.trajectories)}


def base_config(args: argparse.Namespace, init: Path) -> TrainConfig:
    """The config every run shares; arms differ only by ARMS[arm], runs by seed and run_dir."""
    encoder = ["encoder.name=pixel"] if args.encoder == "pixel" else [
        "encoder.name=efficientnet", f"encoder.crop_size={args.encoder_crop}", "encoder.dtype=float32",
        "encoder.device=cpu"]
    return load_config(preset="tabletop", overrides=[
        f"policy.checkpoint={init}", *tabletop_overrides(args),
        f"num_steps={args.steps}", f"eval_every={args.eval_every}",
        # One greedy episode per held-out state and task.
        f"num_eval_episodes_per_task={args.num_eval_init_states}",
        "num_videos_per_step=0", "tensorboard=false", "torch_num_threads=1", "checkpoint_every=1",
        f"algo.lr={args.lr}", f"algo.num_prompts_per_step={args.prompts}", "algo.group_size=8",
        # The official dynamic-sampling filter for every arm.
        "algo.dynamic_sampling=true", "algo.filter_low=0.1", "algo.filter_high=0.9",
        f"algo.max_sampling_rounds={args.sampling_rounds}",
        *encoder, f"encoder.num_frames={args.num_frames}", *args.set,
    ])


def run_config(base: TrainConfig, out: Path, arm: str, seed: int, vjepa2_weights: str | None = None) -> Path:
    """Write the run's full config (what `srpo train --config` reads) and return its path."""
    tree_overrides = [*ARMS[arm], f"seed={seed}", f"run_dir={out / 'runs' / arm / f'seed{seed}'}"]
    if "encoder.name=vjepa2" in ARMS[arm]:
        if not vjepa2_weights:
            from srpo.config.encoder import VJEPA2_WEIGHTS_HELP

            raise SystemExit(f"arm {arm} needs --vjepa2-weights PATH. {VJEPA2_WEIGHTS_HELP}")
        tree_overrides.append(f"encoder.weights={vjepa2_weights}")
    path = out / "configs" / f"{arm}_seed{seed}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    base_path = out / "configs" / "base.yaml"
    save_config(base, base_path)
    save_config(load_config(base_path, preset="tabletop", overrides=tree_overrides), path)
    return path


def run_finished(run_dir: Path, num_steps: int) -> bool:
    from srpo.run_dir import read_metrics

    return any(int(m.get("step", 0)) >= num_steps for m in read_metrics(run_dir))


def launch(out: Path, cfg_path: Path, run_dir: Path) -> tuple[subprocess.Popen[bytes], list[str]]:
    """Start (or resume) one run as its own `srpo train` process, one torch thread, output to run_dir/train.log."""
    from srpo.run_dir import list_checkpoints

    cmd = [sys.executable, "-m", "srpo.cli", "train"]
    cmd += ["--resume", str(run_dir)] if list_checkpoints(run_dir) else ["--config", str(cfg_path)]
    run_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    log = open(run_dir / "train.log", "ab")  # noqa: SIM115 (closed with the process)
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT), cmd


def record_invocation(run_dir: Path, cmd: list[str], started: float, rc: int) -> None:
    """Append one invocation (commit, command, wall time, exit code) to run_dir/run_info.json."""
    path = run_dir / RUN_INFO
    info = json.loads(path.read_text()) if path.exists() else {"invocations": []}
    info["invocations"].append({**provenance(cmd), "wall_s": time.time() - started, "returncode": rc})
    info["wall_s_total"] = sum(i["wall_s"] for i in info["invocations"])
    path.write_text(json.dumps(info, indent=2) + "\n")


def run_all(args: argparse.Namespace, out: Path, base: TrainConfig, init_success: dict[str, float]) -> None:
    """Every arm × seed, seeds outermost (a partial result holds whole seeds of every arm), `--jobs` at a time."""
    queue = [(arm, seed) for seed in args.seeds for arm in args.arms]
    running: list[tuple[subprocess.Popen[bytes], list[str], Path, float]] = []
    while queue or running:
        while queue and len(running) < args.jobs:
            arm, seed = queue.pop(0)
            run_dir = out / "runs" / arm / f"seed{seed}"
            if run_finished(run_dir, args.steps):
                continue
            cfg_path = run_config(base, out, arm, seed, args.vjepa2_weights)
            proc, cmd = launch(out, cfg_path, run_dir)
            print(f"started {arm} seed {seed}: {' '.join(cmd)}", flush=True)
            running.append((proc, cmd, run_dir, time.time()))
        time.sleep(5)
        for item in list(running):
            proc, cmd, run_dir, started = item
            if proc.poll() is None:
                continue
            running.remove(item)
            record_invocation(run_dir, cmd, started, proc.returncode)
            print(f"finished {run_dir} (exit {proc.returncode}, {(time.time() - started) / 60:.1f} min)", flush=True)
            summarise(args, out, init_success)


# ---------------------------------------------------------------------------------------------------------------
# Statistics.


def bootstrap_ci(values: np.ndarray, stat: Any = np.mean, num_boot: int = 10_000, seed: int = 0
                 ) -> tuple[float, float]:
    """95 % percentile bootstrap interval of `stat` over the first axis (seeds) of `values` (n, ...)."""
    v = np.asarray(values, dtype=np.float64)
    if v.shape[0] < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, v.shape[0], size=(num_boot, v.shape[0]))
    boots = np.array([stat(v[i]) for i in idx])
    return float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))


def curve_auc(steps: np.ndarray, success: np.ndarray) -> float:
    """Area under the success curve (trapezoids) divided by the step range: the mean success over training."""
    trapezoid = getattr(np, "trapezoid", None) or np.trapz  # numpy >= 2 renamed it
    return float(trapezoid(success, steps) / (steps[-1] - steps[0])) if steps.size > 1 else float(success[0])


def first_step_reaching(steps: np.ndarray, success: np.ndarray, target: float) -> int | None:
    hits = np.flatnonzero(success >= target - 1e-9)
    return int(steps[hits[0]]) if hits.size else None


def read_run(run_dir: Path) -> dict[str, Any]:
    from srpo.run_dir import read_metrics

    records = read_metrics(run_dir)
    # One evaluation per step, the last one written: a run started before the fresh-start fix (7165db5) after an
    # attempt stopped before its first checkpoint holds that attempt's step-0 evaluation before its own.
    evals = sorted({int(m["step"]): float(m["eval/success_rate"])
                    for m in records if "eval/success_rate" in m}.items())
    per_step = [m for m in records if int(m["step"]) > 0 and "rollout/success_rate" in m]

    def series(key: str) -> list[float | None]:
        return [m.get(key) for m in per_step]

    info_path = run_dir / RUN_INFO
    return {
        "eval": evals,
        "sampled_final": (json.loads((run_dir / SAMPLED_FINAL).read_text())["sampled_success_held_out"]
                          if (run_dir / SAMPLED_FINAL).exists() else None),
        "steps": [int(m["step"]) for m in per_step],
        "share_groups_with_signal": series("advantage/share_groups_with_signal"),
        "num_groups_sampled": series("rollout/num_groups_sampled"),
        "num_failure_groups_kept": series("rollout/num_failure_groups_kept"),
        "rollout_success": series("rollout/success_rate"),
        # Successes among the step's trained trajectories (kept groups, or the whole fallback batch): every
        # success of the step except those in groups above filter_high, so ~the sampled successes per step.
        "train_successes": [round(float(m.get("rollout/success_rate", 0.0)) * int(m.get("rollout/num_trajectories", 0)))
                            for m in per_step],
        "advantage_abs_mean": series("advantage/abs_mean"),
        "failure_progress_mean": series("reward/failure_progress_mean"),
        "num_episodes": series("rollout/num_episodes_total"),
        "step_time_s": [sum(m.get(f"time/{p}_s", 0.0) for p in ("rollout", "embed", "reward", "advantage", "update",
                                                                  "evaluate", "checkpoint")) for m in per_step],
        "embed_time_s": series("time/embed_s"),
        "run_info": json.loads(info_path.read_text()) if info_path.exists() else None,
    }


def arm_summary(runs: dict[int, dict[str, Any]], num_steps: int, target: float | None) -> dict[str, Any]:
    """Scalars over the finished seeds of one arm (see the module docstring)."""
    seeds = sorted(runs)
    steps = np.asarray([s for s, _ in runs[seeds[0]]["eval"]])
    curves = np.asarray([[v for _, v in runs[s]["eval"]] for s in seeds])
    aucs = np.asarray([curve_auc(steps, c) for c in curves])
    finals = curves[:, -1]
    out: dict[str, Any] = {
        "seeds": seeds, "eval_steps": steps.tolist(),
        "mean_curve": curves.mean(0).tolist(),
        "ci_curve": [bootstrap_ci(curves[:, j]) for j in range(steps.size)],
        "auc_per_seed": aucs.tolist(), "auc_mean": float(aucs.mean()), "auc_ci": bootstrap_ci(aucs),
        "final_per_seed": finals.tolist(), "final_mean": float(finals.mean()), "final_ci": bootstrap_ci(finals),
    }
    if target is not None:
        reached = [first_step_reaching(steps, c, target) for c in curves]
        # "Not reached" counts as the run length (and is counted separately).
        as_steps = np.asarray([num_steps if r is None else r for r in reached], dtype=np.float64)
        out.update({"steps_to_target_per_seed": reached, "num_not_reached": sum(r is None for r in reached),
                    "steps_to_target_mean": float(as_steps.mean()), "steps_to_target_ci": bootstrap_ci(as_steps),
                    "_steps_to_target": as_steps})
    successes = np.asarray([sum(runs[s].get("train_successes", [])) for s in seeds], dtype=np.float64)
    out.update({"train_successes_per_seed": successes.tolist(), "train_successes_mean": float(successes.mean()),
                "train_successes_ci": bootstrap_ci(successes)})
    sampled = [runs[s].get("sampled_final") for s in seeds]
    if all(v is not None for v in sampled):
        arr = np.asarray(sampled, dtype=np.float64)
        out.update({"sampled_final_per_seed": arr.tolist(), "sampled_final_mean": float(arr.mean()),
                    "sampled_final_ci": bootstrap_ci(arr)})
    signal = np.asarray([[np.nan if v is None else v for v in runs[s]["share_groups_with_signal"]] for s in seeds])
    out["share_groups_with_signal_per_step"] = np.nanmean(signal, 0).tolist() if signal.size else []
    out["share_groups_with_signal_mean"] = float(np.nanmean(signal)) if signal.size else None
    adv = np.asarray([[np.nan if v is None else v for v in runs[s]["advantage_abs_mean"]] for s in seeds])
    out["advantage_abs_mean"] = float(np.nanmean(adv)) if adv.size else None
    return out


PAIRED_KEYS = ("auc", "final", "sampled_final", "train_successes")


def add_paired_differences(summaries: dict[str, Any], base: str, skip: tuple[str, ...] = ()) -> None:
    """Paired differences (same seed, same start, same first batch): arm − `base` per seed, with mean and
    bootstrap CI, as `{key}_diff_vs_{base}_{per_seed,mean,ci}` in every other arm's summary (not `skip`)."""
    for arm, s in summaries.items():
        if arm == base or arm in skip:
            continue
        for key in PAIRED_KEYS:
            if f"{key}_per_seed" not in s or f"{key}_per_seed" not in summaries[base]:
                continue
            diff = np.asarray(s[f"{key}_per_seed"]) - np.asarray(summaries[base][f"{key}_per_seed"])
            s[f"{key}_diff_vs_{base}_per_seed"] = diff.tolist()
            s[f"{key}_diff_vs_{base}_mean"] = float(diff.mean())
            s[f"{key}_diff_vs_{base}_ci"] = bootstrap_ci(diff)


def summarise(args: argparse.Namespace, out: Path, init_success: dict[str, float]) -> dict[str, Any]:
    """Read every run under out/runs, write results JSON + plot (partial results are labelled)."""
    runs: dict[str, dict[int, dict[str, Any]]] = {}
    finished: dict[str, list[int]] = {}
    for arm in args.arms:
        for seed in args.seeds:
            run_dir = out / "runs" / arm / f"seed{seed}"
            if not (run_dir / "metrics.jsonl").exists():
                continue
            runs.setdefault(arm, {})[seed] = read_run(run_dir)
            if run_finished(run_dir, args.steps):
                finished.setdefault(arm, []).append(seed)
    # Summary statistics use finished runs only, and only seeds finished in every arm (paired).
    paired = sorted(set(args.seeds).intersection(*(set(finished.get(a, [])) for a in args.arms)))
    complete = paired == sorted(args.seeds)
    summaries: dict[str, Any] = {}
    target = None
    if paired and "grpo" in args.arms:
        grpo = arm_summary({s: runs["grpo"][s] for s in paired}, args.steps, None)
        target = grpo["final_mean"]
    for arm in args.arms if paired else []:
        summaries[arm] = arm_summary({s: runs[arm][s] for s in paired}, args.steps, target)
    ratio = None
    if target is not None:
        g = summaries["grpo"].pop("_steps_to_target")
        for arm in args.arms:
            if arm == "grpo":
                continue
            a = summaries[arm].pop("_steps_to_target")
            summaries[arm]["steps_ratio_vs_grpo"] = float(a.mean() / g.mean()) if g.mean() > 0 else None
            pairs = np.stack([a, g], axis=1)
            summaries[arm]["steps_ratio_vs_grpo_ci"] = bootstrap_ci(
                pairs, stat=lambda p: p[:, 0].mean() / max(p[:, 1].mean(), 1e-9))
        ratio = {arm: summaries[arm].get("steps_ratio_vs_grpo") for arm in args.arms if arm != "grpo"}
        add_paired_differences(summaries, "grpo")
    if paired and "srpo" in args.arms:
        # The ablation arms differ from SRPO in one setting each: their paired differences to SRPO.
        add_paired_differences(summaries, "srpo", skip=("grpo",))
    payload = {
        "benchmark": "learning_efficiency",
        "complete": complete,
        "status": ("complete" if complete else
                   f"partial: finished runs {{arm: seeds}} = {finished}; statistics over the seeds finished in "
                   f"every arm: {paired}"),
        "provenance": provenance(),
        "args": {k: v for k, v in vars(args).items()},
        "initial_success_held_out": init_success,
        "target_grpo_final_mean": target,
        "summary": summaries,
        "steps_ratio_vs_grpo": ratio,
        "runs": {arm: {str(s): r for s, r in per.items()} for arm, per in runs.items()},
    }
    RESULTS.mkdir(exist_ok=True)
    name = args.results_name
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=1, default=_json_default) + "\n")
    plot(args, runs, summaries, paired, RESULTS / f"{name}.png", complete)
    status = "" if complete else f"PARTIAL: {payload['status']}\n\n"
    (RESULTS / f"{name}.md").write_text(status + markdown_table(summaries, target))
    print(summary_table(summaries, target), flush=True)
    return payload


def _ci_text(mean: float, ci: Any, fmt: str) -> str:
    lo, hi = ci
    if np.isnan(lo):
        return format(mean, fmt)
    return f"{format(mean, fmt)} [{format(lo, fmt)}, {format(hi, fmt)}]"


def markdown_table(summaries: dict[str, Any], target: float | None) -> str:
    """The results table (docs/tabletop_experiments.md): one row per arm, means over seeds with 95 % bootstrap
    intervals, paired differences."""
    head = ("| arm | seeds | final held-out success | AUC of the success curve | steps to GRPO's final mean "
            "(ratio to GRPO) | AUC − SRPO (paired) | final − SRPO (paired) | AUC − GRPO (paired) | "
            "share of groups with signal |")
    lines = [f"GRPO's final mean success (the target): {target if target is None else f'{target:.3f}'}", "",
             head, "|" + "---|" * 9]
    for arm, s in summaries.items():
        steps = s.get("steps_to_target_per_seed")
        if steps is None:
            reach = "—"
        else:
            ratio = s.get("steps_ratio_vs_grpo")
            reach = (f"{s['steps_to_target_mean']:.1f} ({s['num_not_reached']} of {len(steps)} not reached)"
                     + ("" if ratio is None else f" ({_ci_text(ratio, s['steps_ratio_vs_grpo_ci'], '.2f')})"))
        cells = [arm, str(len(s["seeds"])), _ci_text(s["final_mean"], s["final_ci"], ".3f"),
                 _ci_text(s["auc_mean"], s["auc_ci"], ".3f"), reach]
        for key, base in (("auc", "srpo"), ("final", "srpo"), ("auc", "grpo")):
            m = s.get(f"{key}_diff_vs_{base}_mean")
            cells.append("—" if m is None else _ci_text(m, s[f"{key}_diff_vs_{base}_ci"], "+.3f"))
        share = s.get("share_groups_with_signal_mean")
        cells.append("—" if share is None else f"{share:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _json_default(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    raise TypeError(f"not JSON serialisable: {type(v).__name__}")


def summary_table(summaries: dict[str, Any], target: float | None) -> str:
    """The table printed at the end of a run: the markdown table's numbers as plain lines, plus diagnostics."""
    lines = [f"target (GRPO final mean) = {target}",
             "arm        seeds  final [95% CI]          AUC [95% CI]            steps to target (ratio vs GRPO)  "
             "share of groups with signal"]
    for arm, s in summaries.items():
        steps = s.get("steps_to_target_per_seed")
        ratio = s.get("steps_ratio_vs_grpo")
        lines.append(
            f"{arm:<10} {len(s['seeds']):>5}  {_ci_text(s['final_mean'], s['final_ci'], '.3f')}"
            f"   {_ci_text(s['auc_mean'], s['auc_ci'], '.3f')}   {steps}"
            f"{'' if ratio is None else f' ({ratio:.2f})'}   {s['share_groups_with_signal_mean']}")
    for arm, s in summaries.items():
        for key, label, digits in (("train_successes", "successes trained on per run", 1),
                                   ("sampled_final", "final policy sampled on held-out states", 3)):
            if f"{key}_mean" not in s:
                continue
            line = f"{arm}: {label} {_ci_text(s[f'{key}_mean'], s[f'{key}_ci'], f'.{digits}f')}"
            if f"{key}_diff_vs_grpo_mean" in s:
                diff = _ci_text(s[f"{key}_diff_vs_grpo_mean"], s[f"{key}_diff_vs_grpo_ci"], f"+.{digits}f")
                line += f", − grpo paired {diff}"
            lines.append(line)
        for base in ("grpo", "srpo"):
            if f"auc_diff_vs_{base}_mean" in s:
                auc = _ci_text(s[f"auc_diff_vs_{base}_mean"], s[f"auc_diff_vs_{base}_ci"], "+.3f")
                fin = _ci_text(s[f"final_diff_vs_{base}_mean"], s[f"final_diff_vs_{base}_ci"], "+.3f")
                lines.append(f"{arm} − {base}, paired over seeds: AUC {auc}, final {fin}")
    return "\n".join(lines)


def plot(args: argparse.Namespace, runs: dict[str, dict[int, dict[str, Any]]], summaries: dict[str, Any],
         paired: list[int], path: Path, complete: bool) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(17, 4.4), gridspec_kw={"width_ratios": [1.2, 1.0, 0.8]})
    for arm, per_seed in runs.items():
        colour = COLOURS.get(arm)
        for r in per_seed.values():  # thin: every seed, finished or not
            if r["eval"]:
                xs, ys = zip(*r["eval"], strict=True)
                axes[0].plot(xs, ys, "-", lw=0.6, color=colour, alpha=0.3)
            if r["steps"]:
                axes[1].plot(r["steps"], r["share_groups_with_signal"], "-", lw=0.6, color=colour, alpha=0.3)
        s = summaries.get(arm)
        if s:
            lo, hi = zip(*s["ci_curve"], strict=True)
            axes[0].fill_between(s["eval_steps"], lo, hi, color=colour, alpha=0.2)
            axes[0].plot(s["eval_steps"], s["mean_curve"], "-o", ms=3, lw=2, color=colour,
                         label=f"{arm} (mean, 95% CI, {len(s['seeds'])} seeds)")
            axes[1].plot(range(1, len(s["share_groups_with_signal_per_step"]) + 1),
                         s["share_groups_with_signal_per_step"], lw=2, color=colour, label=arm)
    arms = [a for a in args.arms if a in summaries]
    for y, arm in enumerate(arms):
        s = summaries[arm]
        lo, hi = s["auc_ci"]
        lo, hi = (s["auc_mean"], s["auc_mean"]) if np.isnan(lo) else (lo, hi)
        axes[2].errorbar(s["auc_mean"], y, xerr=[[s["auc_mean"] - lo], [hi - s["auc_mean"]]], fmt="o", capsize=3,
                         color=COLOURS.get(arm))
    axes[2].set_yticks(range(len(arms)), arms, fontsize=8)
    axes[2].invert_yaxis()
    axes[2].set(xlabel="area under the held-out success curve (mean, 95% CI)", title="per arm")
    axes[0].set(xlabel="RL step", ylabel="held-out success (greedy)", title="evaluation on held-out init states")
    axes[1].set(xlabel="RL step", ylabel="share", title="groups rolled out that carried learning signal")
    for ax in axes[:2]:
        ax.legend(fontsize=7)
    for ax in axes:
        ax.grid(alpha=0.3)
    tag = "" if complete else f" (PARTIAL: statistics over seeds {paired})"
    fig.suptitle(f"tabletop, {args.tasks} tasks, start with {args.demos_per_task} demos per task, sampled success "
                 f"<= {args.max_start_success} on training states: {', '.join(args.arms)}{tag}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# Arguments that may change between invocations on one --out: which runs, how many at a time, what to write.
FREE_ARGS = ("out", "arms", "seeds", "jobs", "summarise", "init_only", "results_name", "sampled_eval",
             "vjepa2_weights")


def check_settings(out: Path, args: argparse.Namespace) -> None:
    """Refuse to mix runs made with other settings into one result. The old benchmark reused whatever SFT policy
    and runs an --out held, so a result file could come from runs of older code and settings (its JSON recorded
    a 4-second invocation that recomputed nothing); now settings are pinned per --out and every run records the
    commit of each invocation."""
    settings = {k: v for k, v in vars(args).items() if k not in FREE_ARGS}
    path = out / "settings.json"
    if path.exists():
        old = json.loads(path.read_text())
        changed = {k: (old.get(k), v) for k, v in settings.items() if old.get(k) != v}
        if changed:
            raise SystemExit(f"{out} holds runs made with other settings {changed} (old, new): choose another --out")
    else:
        path.write_text(json.dumps(settings, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/learning_efficiency")
    parser.add_argument("--arms", nargs="+", default=list(MAIN_ARMS), choices=list(ARMS),
                        help="the main comparison by default; ablation arms (srpo_*) share --out and its start")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(8)))
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--eval-every", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time (one torch thread each)")
    parser.add_argument("--tasks", type=int, default=2, help="tabletop tasks 0..N-1")
    parser.add_argument("--num-init-states", type=int, default=100, help="initial states per task")
    parser.add_argument("--num-eval-init-states", type=int, default=50,
                        help="the last N per task are held out: never in training, never in demos; one greedy "
                             "evaluation episode each")
    parser.add_argument("--prompts", type=int, default=8, help="groups of 8 kept per step")
    parser.add_argument("--sampling-rounds", type=int, default=1,
                        help="dynamic-sampling rounds at most (1: filter only; each extra round costs a full batch)")
    parser.add_argument("--lr", type=float, default=3e-5)
    parser.add_argument("--encoder", choices=["efficientnet", "pixel"], default="efficientnet")
    parser.add_argument("--encoder-crop", type=int, default=64,
                        help="EfficientNet input side (64: the cheapest; see results/learning_efficiency_status.md for "
                             "its reward quality at 64, 128 and 224)")
    parser.add_argument("--num-frames", type=int, default=8, help="frames sampled per trajectory for the reward")
    parser.add_argument("--demos-per-task", type=int, default=8, help="scripted demos per task for the SFT start")
    parser.add_argument("--demo-layouts", type=int, default=None,
                        help="record demos in layouts 0..N-1 minus the held-out ones (default: the training layouts)")
    parser.add_argument("--demo-noise", type=float, default=0.1)
    parser.add_argument("--random-prefix", type=int, default=24)
    parser.add_argument("--chunk-size", type=int, default=2)
    parser.add_argument("--sft-steps", type=int, default=3000)
    parser.add_argument("--sft-checkpoint-every", type=int, default=250)
    parser.add_argument("--max-start-success", type=float, default=0.1,
                        help="the start: an SFT checkpoint with sampled success on training states in (0, this]")
    parser.add_argument("--start-rule", choices=["first", "most"], default="most",
                        help="which eligible checkpoint: the first, or the one with most successes (ties: earliest)")
    parser.add_argument("--no-object-state", dest="object_state", action="store_false")
    parser.add_argument("--set", action="append", default=[], help="extra config override for every arm")
    parser.add_argument("--results-name", default="learning_efficiency_sparse")
    parser.add_argument("--summarise", action="store_true", help="only write results from the runs that exist")
    parser.add_argument("--sampled-eval", action="store_true",
                        help="also sample each finished run's final policy on the held-out states (T of training, "
                             "each state twice; cached per run) and report it beside the greedy curve")
    parser.add_argument("--init-only", action="store_true", help="stop after the initial policy and its success")
    parser.add_argument("--vjepa2-weights", help="V-JEPA 2 weights for the srpo_vjepa2 arm (local directory or file)")
    args = parser.parse_args()

    if "srpo_vjepa2" in args.arms and not args.vjepa2_weights and not args.summarise:
        parser.error("--arms srpo_vjepa2 needs --vjepa2-weights PATH (V-JEPA 2 weights on local disk)")
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    check_settings(out, args)
    init = make_initial_policy(out / "init_sft", args)
    base = base_config(args, init)
    init_path = out / "init_sft" / "initial_success.json"
    if not init_path.exists():
        init_path.write_text(json.dumps({**initial_success(base), "provenance": provenance()}, indent=2))
    init_success = json.loads(init_path.read_text())
    print(f"initial policy on held-out init states: {init_success}", flush=True)
    if args.init_only:
        return
    if not args.summarise:
        run_all(args, out, replace(base), init_success)
    if args.sampled_eval:
        for arm in args.arms:
            for seed in args.seeds:
                run_dir = out / "runs" / arm / f"seed{seed}"
                if run_finished(run_dir, args.steps):
                    rate = sampled_final_success(run_dir, base)
                    print(f"{arm} seed {seed}: sampled held-out success of the final policy {rate:.3f}", flush=True)
    summarise(args, out, init_success)


if __name__ == "__main__":
    main()
