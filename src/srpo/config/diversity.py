"""Configuration of `srpo diversity`: trajectory diversity of trained policies' end-effector paths."""

from __future__ import annotations

from dataclasses import dataclass

from srpo.config.base import require

TABLETOP_WORKSPACE: tuple[tuple[float, float, float], tuple[float, float, float]] = ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
"""The tabletop gripper's reachable box: x, y, z each clipped to [0, 1] by the env."""
LIBERO_WORKSPACE: tuple[tuple[float, float, float], tuple[float, float, float]] = ((-0.5, -0.5, 0.8), (0.5, 0.5, 1.5))
"""A box (robosuite world frame, metres) around the LIBERO table top in which the Panda's end effector works;
a chosen convention, not read from the simulator: set `workspace_low/high` to use another. Positions outside
count in the nearest boundary cell."""


@dataclass(frozen=True)
class DiversityConfig:
    """Sampled rollouts of each run's final policy on the held-out init states, and how their paths are scored."""

    episodes_per_state: int = 8
    """K sampled episodes per (task, held-out init state); the pairwise distance needs K >= 2 [8, a GRPO group]."""
    states_per_task: int | None = None
    """Use the first N held-out init states of each task (None: all); K episodes are sampled from each."""
    temperature: float | None = None
    """Sampling temperature; None uses each run's training temperature (`algo.temperature`)."""
    num_cells: int = 8
    """G cells per axis of the coverage grid over the workspace box (G³ cells)."""
    time_fractions: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)
    """Fractions of each episode's duration at which the spread of positions is measured."""
    num_points: int = 50
    """Points each path is resampled to for the pairwise distance."""
    num_bootstrap: int = 10_000
    """Bootstrap resamples of the 95 % interval over runs (seeds) of one algo."""
    workspace_low: tuple[float, float, float] | None = None
    """Lower corner of the coverage grid's box; None uses the env's default (tabletop unit cube, LIBERO box)."""
    workspace_high: tuple[float, float, float] | None = None
    """Upper corner of the coverage grid's box; None uses the env's default."""
    num_plot_states: int = 4
    """Initial states drawn in the top-down path plot (one row per run, one column per state)."""
    out_dir: str = "runs/diversity"
    """Where diversity.json and diversity.png go."""

    def __post_init__(self) -> None:
        require(self.episodes_per_state >= 2, "diversity.episodes_per_state", self.episodes_per_state,
                "an int >= 2 (pairwise distances need two paths per state), e.g. 8")
        require(self.states_per_task is None or self.states_per_task >= 1, "diversity.states_per_task",
                self.states_per_task, "None (all held-out states) or an int >= 1")
        require(self.temperature is None or self.temperature > 0, "diversity.temperature", self.temperature,
                "None (the run's training temperature) or a float > 0")
        require(self.num_cells >= 1, "diversity.num_cells", self.num_cells, "an int >= 1, e.g. 8")
        require(len(self.time_fractions) > 0 and all(0 <= f <= 1 for f in self.time_fractions),
                "diversity.time_fractions", self.time_fractions, "a non-empty list of values in [0, 1]")
        require(self.num_points >= 2, "diversity.num_points", self.num_points, "an int >= 2, e.g. 50")
        require(self.num_bootstrap >= 1, "diversity.num_bootstrap", self.num_bootstrap, "an int >= 1, e.g. 10000")
        require((self.workspace_low is None) == (self.workspace_high is None), "diversity.workspace_low",
                self.workspace_low, "a value together with diversity.workspace_high (or both None)")
        if self.workspace_low is not None and self.workspace_high is not None:
            require(len(self.workspace_low) == 3 and len(self.workspace_high) == 3
                    and all(h > lo for lo, h in zip(self.workspace_low, self.workspace_high, strict=True)),
                    "diversity.workspace_high", self.workspace_high, "3 values, each above workspace_low's")
        require(self.num_plot_states >= 1, "diversity.num_plot_states", self.num_plot_states, "an int >= 1")
