"""Greedy evaluation on held-out initial states: per-task success (`srpo eval`, and the trainer's evaluate phase)."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from srpo.build import make_env_factory, make_policy
from srpo.config.train import TrainConfig
from srpo.envs.base import TaskSpec
from srpo.policies.base import Policy
from srpo.rollout import EpisodeRequest, RolloutEngine
from srpo.types import Trajectory


def init_state_split(cfg: TrainConfig, num_init_states: int, split: str) -> list[int]:
    """Initial-state ids of the train or eval split; disjoint unless the user opted in (LIBERO's
    `train_on_eval_states`)."""
    if split not in ("train", "eval"):
        raise ValueError(f"split={split!r}: choose 'train' or 'eval'")
    if cfg.env.kind == "libero":
        return list(cfg.env.libero.init_state_ids(split, num_init_states))  # type: ignore[arg-type]
    num_eval = cfg.env.tabletop_num_eval_init_states
    ids = list(range(num_init_states))
    return ids[-num_eval:] if split == "eval" else ids[:-num_eval]


@dataclass
class EvalResult:
    """Per-task greedy success on held-out states."""

    success_rate: dict[int, float]
    instructions: dict[int, str]
    num_episodes: dict[int, int]
    trajectories: list[Trajectory]

    @property
    def mean(self) -> float:
        return float(np.mean(list(self.success_rate.values())))

    def metrics(self) -> dict[str, float]:
        out = {f"eval/success_rate_task{t}": r for t, r in self.success_rate.items()}
        out["eval/success_rate"] = self.mean
        return out

    def table(self) -> str:
        lines = [f"{'task':>4} {'episodes':>8} {'success':>8}  instruction"]
        for t, r in self.success_rate.items():
            lines.append(f"{t:>4} {self.num_episodes[t]:>8} {r:>8.3f}  {self.instructions[t]}")
        lines.append(f"{'mean':>4} {sum(self.num_episodes.values()):>8} {self.mean:>8.3f}")
        return "\n".join(lines)


def evaluate_policy(
    engine: RolloutEngine, policy: Policy, specs: list[TaskSpec], cfg: TrainConfig, episodes_per_task: int
) -> EvalResult:
    """Greedy episodes on each task's held-out init states (cycling through them if more episodes are asked)."""
    requests: list[EpisodeRequest] = []
    for spec in specs:
        ids = init_state_split(cfg, spec.num_init_states, "eval")
        for k in range(episodes_per_task):
            requests.append(EpisodeRequest(spec.task_id, ids[k % len(ids)], len(requests), len(requests)))
    trajs, _ = engine.collect(policy, requests, cfg.algo.temperature, greedy=True)
    rates, counts = {}, {}
    for spec in specs:
        s = [t.success for t in trajs if t.task_id == spec.task_id]
        rates[spec.task_id] = float(np.mean(s))
        counts[spec.task_id] = len(s)
    return EvalResult(rates, {s.task_id: s.instruction for s in specs}, counts, trajs)


def evaluate_checkpoint(
    cfg: TrainConfig, checkpoint: str | None, episodes_per_task: int, videos_per_task: int, out_dir: str | Path
) -> EvalResult:
    """`srpo eval`: load a policy checkpoint, evaluate it greedily, write eval.json and labelled videos."""
    from srpo.video import write_labelled_video

    if checkpoint is not None:
        cfg = replace(cfg, policy=replace(cfg.policy, checkpoint=checkpoint))
    policy = make_policy(cfg)
    factory = make_env_factory(cfg)
    specs = factory.task_specs()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with RolloutEngine(factory, cfg.rollout) as engine:
        result = evaluate_policy(engine, policy, specs, cfg, episodes_per_task)
    for spec in specs:
        for t in [t for t in result.trajectories if t.task_id == spec.task_id][:videos_per_task]:
            outcome = "success" if t.success else "failure"
            write_labelled_video(out / f"task{t.task_id}_init{t.init_state_id}_{outcome}.mp4", t.frames,
                                 f"task {t.task_id} {outcome}", 1.0 if t.success else 0.0, t.success)
    (out / "eval.json").write_text(json.dumps({
        "checkpoint": cfg.policy.checkpoint,
        "success_rate": {str(k): v for k, v in result.success_rate.items()},
        "mean": result.mean,
        "episodes_per_task": episodes_per_task,
        "instructions": {str(k): v for k, v in result.instructions.items()},
    }, indent=2))
    return result
