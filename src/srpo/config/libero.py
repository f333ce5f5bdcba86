"""Configuration of the LIBERO simulator: suite, tasks, cameras, horizons and the train/eval init-state split."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from srpo.config.base import ConfigError, require, require_choice

LiberoSuite = Literal["libero_spatial", "libero_object", "libero_goal", "libero_10", "libero_90"]
RenderBackend = Literal["egl", "osmesa"]
RenderQuality = Literal["full", "fast", "lean"]
HorizonPreset = Literal["suite", "official"]
InitStateSplit = Literal["train", "eval"]

LIBERO_SUITES: tuple[str, ...] = ("libero_spatial", "libero_object", "libero_goal", "libero_10", "libero_90")
# The usual OpenVLA horizons (longest demonstration of the suite plus a margin), in env steps after settling.
SUITE_MAX_STEPS: dict[str, int] = {
    "libero_spatial": 220,
    "libero_object": 280,
    "libero_goal": 300,
    "libero_10": 520,
    "libero_90": 400,
}
# The official SRPO runs use one horizon for every suite.
OFFICIAL_MAX_STEPS = 512
# Every LIBERO task ships exactly 50 fixed initial states.
NUM_INIT_STATES = 50


@dataclass(frozen=True)
class LiberoConfig:
    """Which LIBERO tasks to build and how they are observed.

    Training and evaluation start from disjoint fixed initial states by default: the first
    `num_train_init_states` of each task's 50 states are for training, the last `num_eval_init_states` for
    evaluation. The official SRPO code trains and evaluates on the same states; reproducing that needs
    `train_on_eval_states=True`.
    """

    suite: LiberoSuite = "libero_spatial"
    """Benchmark suite: libero_spatial, libero_object, libero_goal, libero_10 (Long) or libero_90."""
    task_ids: tuple[int, ...] | None = None
    """Tasks of the suite to build (indices into the suite); None means all of them (10, or 90 for
    libero_90)."""
    image_size: int = 224
    """Side of the square policy camera image (agentview, and the wrist image when enabled); OpenVLA uses 224."""
    embed_image_size: int = 224
    """Side of the square third-person frame rendered for the world-model embedding (agentview)."""
    use_wrist_camera: bool = False
    """Also render the wrist (eye-in-hand) camera for the policy. Roughly doubles render cost."""
    horizon: HorizonPreset = "suite"
    """"suite": per-suite horizons 220/280/300/520 (spatial/object/goal/10; 400 for libero_90).
    "official": 512 for every suite, as in the official SRPO runs."""
    max_steps: int | None = None
    """Explicit episode horizon in env steps after settling; overrides `horizon` when set."""
    num_settle_steps: int = 10
    """No-op steps [0,0,0,0,0,0,-1] after setting the initial state: objects spawn a few cm up and drop, so
    the first ~8 steps are not settled."""
    num_train_init_states: int = 40
    """Initial states 0 .. num_train_init_states-1 of every task are for training."""
    num_eval_init_states: int = 10
    """The last num_eval_init_states initial states (50 - n .. 49) are for evaluation."""
    train_on_eval_states: bool = False
    """Allow the training and evaluation init states to overlap (the official code trains on its eval
    states). Must be set explicitly to do so."""
    fixed_fixture_placement: bool = True
    """Make the scene a function of the init state. LIBERO's init states hold qpos/qvel only, while every reset
    re-samples the pose of fixtures without a free joint (cabinet, stove: up to ~1 cm and a small yaw, written
    into model.body_pos) from numpy's global RNG. True seeds that draw from (task, init state), so every
    rollout of a GRPO group sees the same scene; False re-samples it on each reset, as the official code does."""
    render_quality: RenderQuality = "full"
    """"full": LIBERO's own render settings (floor reflections, shadows, 4× multisampling, a 640×480 offscreen
    buffer), the images the official code and its checkpoints see. "fast": reflections, shadows and
    multisampling off and the offscreen buffer sized to the largest image asked for, ~3× cheaper with Mesa's
    software rasteriser; objects, robot and layout are unchanged, edges are aliased and the table shows no
    mirror image (benchmarks/results/render_quality_*.png). "lean": "fast" with the dense meshes (>= 2000
    triangles: bowls, plates, the robot's links) drawn from vertex-clustered copies (64 cells along each mesh's
    longest edge; physics keeps the full meshes), ~2× cheaper again per frame; silhouettes move by at most a
    cell, shading of curved surfaces changes a little. A policy trained on one should be evaluated on the
    same."""
    render_backend: RenderBackend = "egl"
    """MuJoCo offscreen backend (sets MUJOCO_GL/PYOPENGL_PLATFORM before the first MuJoCo import): "egl"
    (GPU or Mesa's EGL) or "osmesa" (software; needs Debian's libosmesa6)."""

    def __post_init__(self) -> None:
        require_choice(self.suite, "libero.suite", LIBERO_SUITES)
        require_choice(self.horizon, "libero.horizon", get_args(HorizonPreset))
        require_choice(self.render_backend, "libero.render_backend", get_args(RenderBackend))
        require_choice(self.render_quality, "libero.render_quality", get_args(RenderQuality))
        num_tasks = 90 if self.suite == "libero_90" else 10
        if self.task_ids is not None:
            require(len(self.task_ids) > 0, "libero.task_ids", self.task_ids, "None (all tasks) or e.g. (0, 1)")
            require(all(0 <= t < num_tasks for t in self.task_ids), "libero.task_ids", self.task_ids,
                    f"indices in [0, {num_tasks - 1}] for {self.suite}")
            require(len(set(self.task_ids)) == len(self.task_ids), "libero.task_ids", self.task_ids,
                    "a tuple without duplicates")
        require(16 <= self.image_size <= 1024, "libero.image_size", self.image_size, "an int in [16, 1024], e.g. 224")
        require(16 <= self.embed_image_size <= 1024, "libero.embed_image_size", self.embed_image_size,
                "an int in [16, 1024], e.g. 224")
        if self.max_steps is not None:
            require(self.max_steps >= 1, "libero.max_steps", self.max_steps, "None (use horizon) or an int >= 1")
        require(self.num_settle_steps >= 0, "libero.num_settle_steps", self.num_settle_steps, "an int >= 0, e.g. 10")
        require(1 <= self.num_train_init_states <= NUM_INIT_STATES, "libero.num_train_init_states",
                self.num_train_init_states, f"an int in [1, {NUM_INIT_STATES}], e.g. 40")
        require(1 <= self.num_eval_init_states <= NUM_INIT_STATES, "libero.num_eval_init_states",
                self.num_eval_init_states, f"an int in [1, {NUM_INIT_STATES}], e.g. 10")
        overlap = self.num_train_init_states + self.num_eval_init_states > NUM_INIT_STATES
        if overlap and not self.train_on_eval_states:
            require(False, "libero.num_train_init_states", self.num_train_init_states,
                    f"at most {NUM_INIT_STATES - self.num_eval_init_states} so that training never sees the "
                    f"{self.num_eval_init_states} evaluation states (or set libero.train_on_eval_states=True to "
                    "train on them deliberately)")

    @property
    def resolved_task_ids(self) -> tuple[int, ...]:
        """The task indices this config builds."""
        if self.task_ids is not None:
            return self.task_ids
        return tuple(range(90 if self.suite == "libero_90" else 10))

    @property
    def resolved_max_steps(self) -> int:
        """Episode horizon in env steps (after the settle steps)."""
        if self.max_steps is not None:
            return self.max_steps
        if self.horizon == "official":
            return OFFICIAL_MAX_STEPS
        if self.horizon == "suite":
            return SUITE_MAX_STEPS[self.suite]
        raise ConfigError(f"env.libero.horizon={self.horizon!r} is invalid: choose one of 'suite', 'official'")

    def init_state_ids(self, split: InitStateSplit, num_available: int = NUM_INIT_STATES) -> list[int]:
        """Initial-state indices of a task for one split.

        Args:
            split: "train" or "eval".
            num_available: Number of init states the task ships (50 for every LIBERO task).

        Returns:
            Sorted indices. With the default split, train = [0, 40) and eval = [40, 50), disjoint. With
            `train_on_eval_states=True` and an overlapping split, train may include eval states.
        """
        num_train = min(self.num_train_init_states, num_available)
        num_eval = min(self.num_eval_init_states, num_available)
        if split == "train":
            return list(range(num_train))
        if split == "eval":
            return list(range(num_available - num_eval, num_available))
        raise ValueError(f"unknown init-state split {split!r}: choose 'train' or 'eval'")
