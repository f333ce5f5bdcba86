"""Configuration of the built-in tabletop env (`srpo.envs.tabletop`)."""

from __future__ import annotations

from dataclasses import dataclass

from srpo.config.base import require

# Number of distinct tabletop tasks (block colour × plate colour pairs); `srpo.envs.tabletop.TABLETOP_TASKS`
# has exactly this many entries and checks so at import. Kept here so the config validates without importing
# the env (the env imports this module).
NUM_TABLETOP_TASKS = 6


@dataclass(frozen=True)
class TabletopConfig:
    """A small, fast, numpy-rendered pick-and-place env for tests and quick learning-efficiency runs.

    The workspace is the unit square seen from above; one translation unit of an action moves the gripper by
    `action_scale` workspace widths. Every task is "put the <colour> block on the <colour> plate" in a scene
    with three blocks and two plates, so the instruction decides which object and which goal matter.
    """

    image_size: int = 64
    """Side in pixels of the square policy camera image."""
    embed_image_size: int = 64
    """Side in pixels of the square frame recorded for the world-model embedding."""
    num_tasks: int = NUM_TABLETOP_TASKS
    """How many of the built-in tasks to expose (task ids 0 .. num_tasks − 1)."""
    num_init_states: int = 50
    """Fixed initial states per task (LIBERO has 50); state i of task t is derived from (seed, t, i)."""
    max_steps: int = 64
    """Episode horizon in env steps. A scripted expert needs at most ~40; a chunk of 8 divides 64."""
    seed: int = 0
    """Seed of the initial-state layouts; the dynamics themselves are deterministic."""
    action_scale: float = 0.05
    """Gripper displacement per step, in workspace widths, for a translation action of ±1."""
    object_state: bool = False
    """Append every block's and plate's centre (3 blocks then 2 plates, x and y: 10 values) to the 4-value
    proprioception, like robosuite's "object-state" observations: a policy then need not localise the 5-px
    blocks in the image, but must still read the instruction to know which block and plate matter. Images are
    rendered either way (the policy sees them and the world-model reward embeds them)."""

    def __post_init__(self) -> None:
        require(self.image_size >= 16, "tabletop.image_size", self.image_size, "an int >= 16, e.g. 64")
        require(self.embed_image_size >= 16, "tabletop.embed_image_size", self.embed_image_size,
                "an int >= 16, e.g. 64")
        require(1 <= self.num_tasks <= NUM_TABLETOP_TASKS, "tabletop.num_tasks", self.num_tasks,
                f"an int in [1, {NUM_TABLETOP_TASKS}]")
        require(self.num_init_states >= 1, "tabletop.num_init_states", self.num_init_states,
                "an int >= 1, e.g. 50")
        require(self.max_steps >= 1, "tabletop.max_steps", self.max_steps, "an int >= 1, e.g. 64")
        require(0.005 <= self.action_scale <= 0.25, "tabletop.action_scale", self.action_scale,
                "a float in [0.005, 0.25], e.g. 0.05")
