"""Rollout throughput on LIBERO: the srpo engine vs a peer-style loop vs the physics floor.

Same fixed policy (zero motion, gripper open), same tasks, same initial states and the same episode length in
all variants; 10 settle steps after every reset in all:

(a) srpo: `RolloutEngine` with `LiberoEnvFactory` — persistent worker(s), envs built once per task and reused
    (soft reset + set_init_state), the 224² agentview rendered once per 8-step action chunk for the policy
    and reused as the embedding frame (embed_stride = chunk size), at `libero.render_quality="fast"`
    (reflections, shadows and multisampling off; see benchmarks/render_quality.py) and at "lean" (fast, with the
    dense meshes drawn from simplified copies). Measured after a warm-up batch that builds the envs;
    construction time is reported separately. More srpo settings beside them: (a') the same at
    render_quality="full" (LIBERO's own settings), and (a'') "fast" and "lean" with the embedding camera
    rendered on every control step (embed_stride = 1, what the official reward sees). `--settings` picks some.
(b) peer: the loop of the official LIBERO / OpenVLA evaluation — one env per task, a hard reset per episode
    (robosuite rebuilds the MuJoCo model and GL context), both cameras (agentview + wrist) rendered at 256²
    on every step as camera observations.
(c) floor: physics only — the same soft reset + set_init_state + steps as (a), nothing rendered.

The floor runs before the srpo settings and again after each round of them, and each round's ratios use the mean
of the floors on either side of it (load drifts on a shared machine); ratios are given in wall time and in CPU
time (user + system of every process involved, worker render threads included), the latter being what a variant
costs whatever else shares the cores. `--repeats R` times R rounds (each srpo setting's engine stays open and
warm, and the settings alternate within a round) and gives every ratio a Student-t 95 % interval over rounds,
and lean against fast a paired one.

Wall times exclude building the envs (once per task in every variant; reported as construct_s / warmup_s).
Each variant runs in its own process(es) so peak memory (VmHWM) is per process. Prints a table and the ratios
(targets: a/b >= 4, a/c >= 0.8) and writes JSON.

    MUJOCO_GL=egl python benchmarks/rollout_throughput.py [--quick] [--num-workers 1] [--skip-peer] [--repeats 5]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench_common import machine_info, use_headless_gl, write_report

CHUNK_SIZE = 8
NUM_BINS = 256
# Zero motion with the gripper open: identical in all three variants and never succeeds, so every episode
# runs the full length.
FIXED_ACTION = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0], dtype=np.float32)
PEER_IMAGE_SIZE = 256
SRPO_IMAGE_SIZE = 224
RESULTS = Path(__file__).resolve().parent / "results" / "rollout_throughput.json"
# (key, libero.render_quality, rollout.embed_stride, table label): None = one embedding frame per action chunk
# (srpo's default), 1 = the embedding camera rendered on every control step (what the official reward sees).
SRPO_SETTINGS = [
    ("srpo", "fast", None, "(a) srpo, per chunk, fast"),
    ("srpo_lean", "lean", None, "(a) per chunk, lean"),
    ("srpo_full_render", "full", None, "(a') per chunk, full"),
    ("srpo_embed_every_step", "fast", 1, "(a'') every step, fast"),
    ("srpo_lean_embed_every_step", "lean", 1, "(a'') every step, lean"),
]


@dataclass(frozen=True)
class Workload:
    """What every variant runs: episodes = tasks × init states, each exactly `num_steps` steps."""

    suite: str
    task_ids: tuple[int, ...]
    init_state_ids: tuple[int, ...]
    num_steps: int
    num_settle_steps: int = 10

    @property
    def num_episodes(self) -> int:
        return len(self.task_ids) * len(self.init_state_ids)


class FixedActionPolicy:
    """A policy that always emits FIXED_ACTION chunks (the engine only needs `sample`)."""

    chunk_size = CHUNK_SIZE
    action_dim = 7
    num_bins = NUM_BINS

    def sample(self, batch: Any, temperature: float, greedy: bool = False) -> Any:
        from srpo.policies.base import ActionSample

        num = len(batch.images)
        length = self.chunk_size * self.action_dim
        actions = np.broadcast_to(FIXED_ACTION, (num, self.chunk_size, self.action_dim)).copy()
        bins = np.clip(((actions + 1) / 2 * (NUM_BINS - 1)).round(), 0, NUM_BINS - 1).astype(np.int64)
        return ActionSample(tokens=bins.reshape(num, length), log_probs=np.zeros((num, length), np.float32),
                            actions=actions)


def _peak_rss_mb(pid: int | str = "self") -> float:
    """Peak resident memory (VmHWM) of a process in MiB, from /proc."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_s(pid: int | str = "self") -> float:
    """CPU seconds (user + system, all threads, incl. Mesa's render threads) a process has used, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _bddl_and_states(suite: str, task_id: int) -> tuple[str, np.ndarray]:
    from libero.libero import benchmark, get_libero_path

    task = benchmark.get_benchmark(suite)().get_task(task_id)
    bddl = os.path.join(get_libero_path("bddl_files"), task.problem_folder, task.bddl_file)
    return bddl, np.asarray(benchmark.get_benchmark(suite)().get_task_init_states(task_id))


def run_peer(work: Workload, queue: Any) -> None:
    """(b) Official-style loop: hard reset per episode, agentview + wrist rendered every step at 256²."""
    from libero.libero.envs import OffScreenRenderEnv

    construct_s = 0.0
    start = time.perf_counter()
    num_steps = 0
    checksum = 0.0
    for task_id in work.task_ids:
        bddl, states = _bddl_and_states(work.suite, task_id)
        t0 = time.perf_counter()
        env = OffScreenRenderEnv(bddl_file_name=bddl, camera_heights=PEER_IMAGE_SIZE, camera_widths=PEER_IMAGE_SIZE)
        construct_s += time.perf_counter() - t0
        for init_id in work.init_state_ids:
            env.reset()  # hard_reset=True: the LIBERO default the official evaluation runs with
            env.set_init_state(states[init_id])
            for _ in range(work.num_settle_steps):
                obs, _, _, _ = env.step(FIXED_ACTION)
            for _ in range(work.num_steps):
                obs, _, _, _ = env.step(FIXED_ACTION)
                # The consumer's preprocessing (OpenVLA rotates both views by 180°).
                image = obs["agentview_image"][::-1, ::-1]
                wrist = obs["robot0_eye_in_hand_image"][::-1, ::-1]
                checksum += float(image[0, 0, 0]) + float(wrist[0, 0, 0])
                num_steps += 1
        env.close()
    # Env construction (once per task) is excluded, as it is from (a), whose envs are built in the warm-up.
    queue.put({"wall_s": time.perf_counter() - start - construct_s, "construct_s": construct_s,
               "num_env_steps": num_steps, "peak_rss_mb": _peak_rss_mb(), "checksum": checksum})


def run_floor(work: Workload, queue: Any) -> None:
    """(c) Physics floor: soft reset + set_init_state + steps, no camera observations, nothing rendered."""
    from libero.libero.envs import OffScreenRenderEnv

    construct_s = construct_cpu_s = 0.0
    start, start_cpu = time.perf_counter(), _cpu_s()
    num_steps = 0
    for task_id in work.task_ids:
        bddl, states = _bddl_and_states(work.suite, task_id)
        t0, c0 = time.perf_counter(), _cpu_s()
        env = OffScreenRenderEnv(bddl_file_name=bddl, use_camera_obs=False, hard_reset=False, ignore_done=True)
        construct_s += time.perf_counter() - t0
        construct_cpu_s += _cpu_s() - c0
        for init_id in work.init_state_ids:
            env.reset()
            env.set_init_state(states[init_id])
            for _ in range(work.num_settle_steps + work.num_steps):
                env.step(FIXED_ACTION)
            num_steps += work.num_steps
        env.close()
    queue.put({"wall_s": time.perf_counter() - start - construct_s, "construct_s": construct_s,
               "cpu_s": _cpu_s() - start_cpu - construct_cpu_s,
               "num_env_steps": num_steps, "peak_rss_mb": _peak_rss_mb()})


class SrpoRunner:
    """(a) The srpo engine for one setting: opened once, warmed up (builds the envs), then timed batch by batch.

    Args:
        work: The workload.
        num_workers: Engine worker processes.
        render_quality: `LiberoConfig.render_quality`: "full", "fast" or "lean".
        embed_stride: `RolloutConfig.embed_stride`: None = one embedding frame per action chunk, 1 = every step.
    """

    def __init__(self, work: Workload, num_workers: int, render_quality: str = "fast",
                 embed_stride: int | None = None) -> None:
        from srpo.config.libero import LiberoConfig
        from srpo.config.rollout import RolloutConfig
        from srpo.envs.libero import LiberoEnvFactory
        from srpo.rollout import EpisodeRequest, RolloutEngine

        self.work, self.num_workers = work, num_workers
        self.render_quality, self.embed_stride = render_quality, embed_stride
        factory = LiberoEnvFactory(LiberoConfig(
            suite=work.suite,  # type: ignore[arg-type]
            task_ids=work.task_ids,
            image_size=SRPO_IMAGE_SIZE,
            embed_image_size=SRPO_IMAGE_SIZE,
            max_steps=work.num_steps,
            num_settle_steps=work.num_settle_steps,
            render_quality=render_quality,  # type: ignore[arg-type]
        ))
        self.requests = [
            EpisodeRequest(task_id=k, init_state_id=init_id, group_id=k, rollout_id=r)
            for r, (k, init_id) in enumerate(
                (k, i) for k in range(len(work.task_ids)) for i in work.init_state_ids)
        ]
        envs_per_worker = -(-len(self.requests) // max(1, num_workers))
        # Generous timeouts: on an oversubscribed machine building an env can take minutes of wall time, and a
        # worker killed for it would be timed again from scratch (this measures throughput, not fault handling).
        config = RolloutConfig(num_workers=num_workers, num_envs_per_worker=envs_per_worker,
                               embed_stride=embed_stride, step_timeout_s=600.0, reset_timeout_s=3600.0)
        self.policy = FixedActionPolicy()
        self.engine = RolloutEngine(factory, config)
        self.warmup_s = float("nan")

    def __enter__(self) -> SrpoRunner:
        self.engine.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.engine.__exit__(*exc)

    def warm_up(self) -> None:
        """Builds every env the timed batches need (one per concurrent episode), as a training run's first batch
        does; later batches reuse them."""
        start = time.perf_counter()
        self.engine.collect(self.policy, self.requests, temperature=1.0)  # type: ignore[arg-type]
        self.warmup_s = time.perf_counter() - start

    def timed_batch(self) -> dict[str, Any]:
        """One batch of the workload, timed in wall and CPU seconds (workers and this process)."""
        pids = self.engine.worker_pids()
        processes: list[int | str] = [*pids, "self"]
        cpu_before = sum(_cpu_s(pid) for pid in processes)
        start = time.perf_counter()
        trajectories, stats = self.engine.collect(self.policy, self.requests, temperature=1.0)  # type: ignore[arg-type]
        wall_s = time.perf_counter() - start
        cpu_s = sum(_cpu_s(pid) for pid in processes) - cpu_before
        worker_rss = [_peak_rss_mb(pid) for pid in pids] if pids else [_peak_rss_mb()]
        assert all(t.finish_step == self.work.num_steps for t in trajectories)
        return {
            "wall_s": wall_s, "cpu_s": cpu_s, "warmup_s": self.warmup_s, "num_env_steps": stats.num_env_steps,
            "peak_rss_mb": max(worker_rss), "peak_rss_mb_per_worker": worker_rss,
            "num_policy_images": int(sum(t.num_chunks for t in trajectories)),
            "num_embed_frames": int(sum(len(t.frames) for t in trajectories)),
            "num_env_constructions_timed_batch": stats.extra.get("rollout/num_env_constructions", 0.0),
            "num_workers": self.num_workers, "render_quality": self.render_quality,
            "embed_stride": self.embed_stride,
        }


def _in_subprocess(target: Any, work: Workload) -> dict[str, Any]:
    context = mp.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=target, args=(work, queue))
    process.start()
    result: dict[str, Any] = queue.get()
    process.join()
    return result


def repeat_ratios(floor_values: Sequence[float], setting_values: Sequence[float]) -> np.ndarray:
    """Per-repeat throughput of a setting over the physics floor, for the same work.

    The floor runs before the first repeat and after every repeat; repeat r is compared with the mean of the
    floors on either side of it (the load drifts on a shared machine). Same episodes in both, so the ratio of
    throughputs is the inverse ratio of times.

    Args:
        floor_values: (R + 1,) floor wall (or CPU) seconds, in run order.
        setting_values: (R,) the setting's wall (or CPU) seconds, repeat r between floors r and r + 1.

    Returns:
        (R,) floor seconds / setting seconds: > 1 is faster than the floor.
    """
    floors = np.asarray(floor_values, dtype=np.float64)
    setting = np.asarray(setting_values, dtype=np.float64)
    if floors.ndim != 1 or setting.ndim != 1 or len(floors) != len(setting) + 1 or len(setting) == 0:
        raise ValueError(f"need R >= 1 setting runs and R + 1 floor runs, got {setting.shape} and {floors.shape}")
    if (floors <= 0).any() or (setting <= 0).any():
        raise ValueError("times must be positive")
    return (floors[:-1] + floors[1:]) / 2 / setting


def mean_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean of repeated measurements and its two-sided Student-t interval.

    Args:
        values: (n,) one number per repeat.
        confidence: Coverage of the interval.

    Returns:
        (mean, low, high); low = high = nan when n = 1 (no spread to estimate).
    """
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or len(x) == 0:
        raise ValueError(f"need a non-empty 1-D sequence, got shape {x.shape}")
    mean = float(x.mean())
    if len(x) == 1:
        return mean, float("nan"), float("nan")
    from scipy import stats

    half = float(stats.t.ppf(0.5 + confidence / 2, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x)))
    return mean, mean - half, mean + half


def _mean_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One result dict for repeated runs: numbers averaged (peak memory: the maximum), each run kept."""
    merged: dict[str, Any] = dict(runs[0])
    for key, value in runs[0].items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            values = [run[key] for run in runs]
            merged[key] = max(values) if key.startswith("peak_rss") else float(np.mean(values))
    merged["runs"] = runs
    return merged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 task × 2 episodes × 48 steps (~1.5 min)")
    parser.add_argument("--suite", default="libero_spatial")
    parser.add_argument("--num-workers", type=int, default=1,
                        help="srpo engine worker processes (b and c run in one process: keep 1 for a per-core "
                             "comparison)")
    parser.add_argument("--skip-peer", action="store_true", help="leave out (b), the slowest variant (~5 min)")
    parser.add_argument("--settings", nargs="+", default=[k for k, _, _, _ in SRPO_SETTINGS],
                        choices=[k for k, _, _, _ in SRPO_SETTINGS], help="srpo settings to time (default: all)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="timed batches per srpo setting, the settings alternating and a floor run after each "
                             "round; the ratios get a Student-t 95%% interval over repeats (and lean vs fast a "
                             "paired one). Every selected setting keeps its worker (4-6 GB on LIBERO) for the "
                             "whole run: select at most three on a 24 GB machine")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    # Choose the backend before any child imports robosuite; children inherit the environment.
    use_headless_gl()
    if args.quick:
        work = Workload(args.suite, task_ids=(0,), init_state_ids=(0, 1), num_steps=48)
    else:
        work = Workload(args.suite, task_ids=(0, 1), init_state_ids=(0, 1), num_steps=128)

    results: dict[str, dict[str, Any]] = {}
    print(f"workload: {work}, {args.repeats} repeat(s)", flush=True)
    floors = [_in_subprocess(run_floor, work)]
    print(f"(c) floor done in {floors[0]['wall_s']:.1f} s", flush=True)
    if not args.skip_peer:
        results["peer"] = _in_subprocess(run_peer, work)
        print(f"(b) peer done in {results['peer']['wall_s']:.1f} s", flush=True)
    srpo_settings = [(key, quality, stride) for key, quality, stride, _ in SRPO_SETTINGS if key in args.settings]
    runs: dict[str, list[dict[str, Any]]] = {key: [] for key, _, _ in srpo_settings}
    with ExitStack() as stack:
        # Every selected setting's engine stays open (one worker process each, 4-6 GB on LIBERO) and is warmed
        # up once; the repeats then alternate between them, so each repeat compares the settings minutes apart.
        runners = {key: stack.enter_context(SrpoRunner(work, args.num_workers, quality, stride))
                   for key, quality, stride in srpo_settings}
        for key, runner in runners.items():
            runner.warm_up()
            print(f"(a) {key} warmed up in {runner.warmup_s:.1f} s", flush=True)
        for repeat in range(args.repeats):
            for key, runner in runners.items():
                runs[key].append(runner.timed_batch())
                print(f"[{repeat + 1}/{args.repeats}] (a) {key} done in {runs[key][-1]['wall_s']:.1f} s",
                      flush=True)
            # The floor after every repeat: on a shared machine the load drifts over the minutes between runs,
            # so each repeat's ratios use the mean of the floors on either side of it (all recorded).
            floors.append(_in_subprocess(run_floor, work))
            print(f"[{repeat + 1}/{args.repeats}] (c) floor again done in {floors[-1]['wall_s']:.1f} s",
                  flush=True)
    results["floor"] = _mean_run(floors)
    results["floor"]["wall_s_runs"] = [f["wall_s"] for f in floors]
    results["floor"]["cpu_s_runs"] = [f["cpu_s"] for f in floors]
    for key, _, _ in srpo_settings:
        results[key] = _mean_run(runs[key])

    for result in results.values():
        result["episodes_per_min"] = 60 * work.num_episodes / result["wall_s"]
        result["env_steps_per_s"] = result["num_env_steps"] / result["wall_s"]
    # Wall-time ratios are what a user waits on an otherwise idle machine; the same ratios in CPU time (floor CPU
    # s / variant CPU s for the same work) are what a variant costs whatever else shares the cores.
    per_repeat: dict[str, list[float]] = {}
    for key, _, _ in srpo_settings:
        per_repeat[f"{key}_over_floor"] = repeat_ratios(
            [f["wall_s"] for f in floors], [r["wall_s"] for r in runs[key]]).tolist()
        per_repeat[f"{key}_over_floor_cpu"] = repeat_ratios(
            [f["cpu_s"] for f in floors], [r["cpu_s"] for r in runs[key]]).tolist()
    # Lean against fast, paired within each repeat (same floors, minutes apart): > 1 means lean is faster.
    for lean, fast in (("srpo_lean", "srpo"), ("srpo_lean_embed_every_step", "srpo_embed_every_step")):
        if lean in runs and fast in runs:
            per_repeat[f"{lean}_over_{fast}"] = [
                f["wall_s"] / n["wall_s"] for f, n in zip(runs[fast], runs[lean], strict=True)]
    summary = {name: mean_interval(values) for name, values in per_repeat.items()}
    ratios = {name: mean for name, (mean, _, _) in summary.items()}
    # None where one repeat leaves no spread to estimate.
    intervals = {name: [low, high] if np.isfinite(low) else None for name, (_, low, high) in summary.items()}
    if "peer" in results and "srpo" in results:
        ratios["srpo_over_peer"] = results["srpo"]["episodes_per_min"] / results["peer"]["episodes_per_min"]
    rows = [*((label, key) for key, _, _, label in SRPO_SETTINGS), ("(b) peer loop", "peer"),
            ("(c) physics floor", "floor")]
    print(f"\n{'variant':<28}{'episodes/min':>14}{'env steps/s':>13}{'wall s':>9}{'peak RSS MiB':>14}"
          f"{'/ floor':>9}{'95% CI':>16}")
    for label, key in rows:
        if key not in results:
            continue
        r = results[key]
        name = f"{key}_over_floor"
        # srpo settings: the mean of the per-repeat ratios; peer and floor: the ratio of their mean rates.
        ratio = ratios.get(name, r["episodes_per_min"] / results["floor"]["episodes_per_min"])
        interval = intervals.get(name)
        ci = f"[{interval[0]:.2f}, {interval[1]:.2f}]" if interval else ""
        print(f"{label:<28}{r['episodes_per_min']:>14.2f}{r['env_steps_per_s']:>13.2f}{r['wall_s']:>9.1f}"
              f"{r['peak_rss_mb']:>14.0f}{ratio:>9.2f}{ci:>16}")
    print()
    for name, value in ratios.items():
        interval = intervals.get(name)
        print(f"{name} = {value:.2f}" + (f" [{interval[0]:.2f}, {interval[1]:.2f}]" if interval else ""))
    print("(targets: srpo/floor >= 0.8, srpo/peer >= 4; intervals: Student t over repeats)")

    report = {
        "workload": {"suite": work.suite, "task_ids": list(work.task_ids),
                     "init_state_ids": list(work.init_state_ids), "num_steps": work.num_steps,
                     "num_settle_steps": work.num_settle_steps, "num_episodes": work.num_episodes,
                     "chunk_size": CHUNK_SIZE, "policy": "fixed zero-motion action, gripper open"},
        "machine": {**machine_info(), "cpu_affinity": sorted(os.sched_getaffinity(0))},
        "quick": args.quick,
        "repeats": args.repeats,
        "results": results,
        "ratios": ratios,
        "ratio_intervals_95": intervals,
        "ratios_per_repeat": per_repeat,
        "targets": {"srpo_over_peer": 4.0, "srpo_over_floor": 0.8},
    }
    write_report(args.out, report)


if __name__ == "__main__":
    main()
