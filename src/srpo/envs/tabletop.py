"""A small, fast, top-down pick-and-place tabletop rendered with numpy.

LIBERO costs ~25 ms per control step and seconds per reset on a CPU; this env costs microseconds, so tests and
learning-efficiency experiments can run thousands of episodes. It keeps what matters to the rest of srpo:
the `Env` interface, image observations, a language instruction that decides the goal, the 7-D action layout
(dims 0–2 translation deltas, dim 6 gripper −1 open / +1 close, dims 3–5 ignored), fixed numbered initial
states, and multi-stage success (reach → grasp → carry → place) whose partial progress is visible in frames.

World: the unit square seen from above (x → image column, y → image row), a gripper at height z ∈ [0, 1],
three blocks (red, green, blue) and two plates (yellow, purple). Closing the gripper while it is low
(z ≤ GRASP_HEIGHT) and within GRASP_RADIUS of a block grasps the nearest such block; the block then follows
the gripper until it opens, when the block drops where it is. A task succeeds when its block rests (is not
held) within PLATE_RADIUS of its plate's centre. The gripper's shade encodes its height (dark = low) and its
finger gap encodes open / closed; a held block is drawn larger (lifted towards the camera).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from srpo.config.env import NUM_TABLETOP_TASKS, TabletopConfig
from srpo.envs.base import Observation, TaskSpec
from srpo.types import ACTION_DIM, GRIPPER_DIM, Demo

SUITE = "tabletop"
BLOCK_NAMES = ("red", "green", "blue")
PLATE_NAMES = ("yellow", "purple")
# Every (block, plate) pair is one task; the scene always holds all blocks and plates, so the instruction is
# the only thing that tells the policy which block and which plate matter.
TABLETOP_TASKS: tuple[tuple[int, int], ...] = tuple(
    (block, plate) for plate in range(len(PLATE_NAMES)) for block in range(len(BLOCK_NAMES))
)
if len(TABLETOP_TASKS) != NUM_TABLETOP_TASKS:
    raise RuntimeError(f"srpo.config.env.NUM_TABLETOP_TASKS must be {len(TABLETOP_TASKS)}")

STATE_DIM = 4  # gripper x, y, z and gripper command (+1 closed, −1 open)
OBJECT_STATE_DIM = 10  # with TabletopConfig.object_state: + 3 block centres and 2 plate centres (x, y)
BLOCK_HALF = 0.04  # half side of a block, workspace widths (≈ 5 px at 64²)
PLATE_RADIUS = 0.1
GRASP_RADIUS = 0.045  # gripper–block centre distance (xy) within which closing grasps the block
GRASP_HEIGHT = 0.1  # the gripper must be at most this high to grasp
REACH_RADIUS = 0.08  # stage "reach": the open gripper is this close (xy) to the task's block

# Progress stages, in order. `TabletopEnv.stage` reports the current one, `max_stage` the best of the episode.
STAGE_NONE, STAGE_REACH, STAGE_GRASP, STAGE_CARRY, STAGE_PLACE = range(5)
STAGE_NAMES = ("none", "reach", "grasp", "carry", "place")

_TABLE_RGB = np.array([176, 148, 112], dtype=np.uint8)
_BLOCK_RGB = np.array([[215, 40, 40], [40, 165, 60], [45, 75, 215]], dtype=np.uint8)
_PLATE_RGB = np.array([[235, 205, 45], [150, 70, 185]], dtype=np.uint8)
_PLATE_RIM_RGB = np.array([[250, 240, 190], [215, 185, 230]], dtype=np.uint8)


def task_instruction(task_id: int) -> str:
    """The language instruction of tabletop task `task_id`."""
    block, plate = TABLETOP_TASKS[_check_task_id(task_id)]
    return f"put the {BLOCK_NAMES[block]} block on the {PLATE_NAMES[plate]} plate"


def _check_task_id(task_id: int) -> int:
    """`task_id` if it names a tabletop task, else an IndexError that gives the valid range (a negative id would
    otherwise index from the end and silently pick another task)."""
    if not 0 <= task_id < len(TABLETOP_TASKS):
        raise IndexError(f"task_id {task_id} outside [0, {len(TABLETOP_TASKS)}): the tabletop env has "
                         f"{len(TABLETOP_TASKS)} tasks")
    return task_id


@dataclass(frozen=True)
class TabletopLayout:
    """One fixed initial state: where everything starts.

    Attributes:
        gripper: (3,) float64 gripper x, y, z (open at the start).
        blocks: (3, 2) float64 block centres, rows in BLOCK_NAMES order.
        plates: (2, 2) float64 plate centres, rows in PLATE_NAMES order.
    """

    gripper: np.ndarray
    blocks: np.ndarray
    plates: np.ndarray


def tabletop_layout(config: TabletopConfig, task_id: int, init_state_id: int) -> TabletopLayout:
    """Initial state `init_state_id` of task `task_id`, derived from (config.seed, task_id, init_state_id).

    Objects do not overlap, no block starts on a plate, and the task's block starts at least 0.35 from its
    plate, so every episode needs a real carry.
    """
    if not 0 <= init_state_id < config.num_init_states:
        raise IndexError(f"init_state_id {init_state_id} outside [0, {config.num_init_states})")
    target_block, target_plate = TABLETOP_TASKS[_check_task_id(task_id)]
    rng = np.random.default_rng([config.seed, task_id, init_state_id])
    while True:  # rejection sampling; ~10 draws on average
        plates = rng.uniform(0.15, 0.85, size=(len(PLATE_NAMES), 2))
        if np.linalg.norm(plates[0] - plates[1]) < 0.35:
            continue
        blocks = rng.uniform(0.1, 0.9, size=(len(BLOCK_NAMES), 2))
        block_gaps = np.linalg.norm(blocks[:, None] - blocks[None], axis=-1)[np.triu_indices(len(blocks), 1)]
        to_plates = np.linalg.norm(blocks[:, None] - plates[None], axis=-1)
        if block_gaps.min() < 0.15 or to_plates.min() < PLATE_RADIUS + 0.06:
            continue
        if to_plates[target_block, target_plate] < 0.35:
            continue
        gripper = np.array([*rng.uniform(0.1, 0.9, size=2), rng.uniform(0.6, 1.0)])
        return TabletopLayout(gripper=gripper, blocks=blocks, plates=plates)


class TabletopEnv:
    """One tabletop task (implements `srpo.envs.base.Env`). Deterministic given the initial state.

    Also offers `render(render_policy, render_embed)`, which renders the current state without stepping (the
    rollout engine uses it for the final frame of an episode that succeeds between strided frames).
    """

    def __init__(self, config: TabletopConfig, task_id: int) -> None:
        if not 0 <= task_id < config.num_tasks:
            raise IndexError(f"task_id {task_id} outside [0, tabletop.num_tasks={config.num_tasks})")
        self.config = config
        self.spec = TaskSpec(
            suite=SUITE,
            task_id=task_id,
            instruction=task_instruction(task_id),
            max_steps=config.max_steps,
            num_init_states=config.num_init_states,
        )
        self.target_block, self.target_plate = TABLETOP_TASKS[task_id]
        self._x = self._y = self._z = 0.0
        self._closed = False
        self._held: int | None = None
        self._blocks = np.zeros((len(BLOCK_NAMES), 2))
        self._plates = np.zeros((len(PLATE_NAMES), 2))
        self._backgrounds: dict[int, np.ndarray] = {}
        self._layouts: dict[int, TabletopLayout] = {}
        self._pixel_grids: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.num_steps = 0
        self._success = False
        self.max_stage = STAGE_NONE
        self._episode_started = False

    # Privileged state (for the scripted expert and tests; the policy sees only images and `state`).
    @property
    def gripper_xyz(self) -> np.ndarray:
        """(3,) gripper position."""
        return np.array([self._x, self._y, self._z])

    @property
    def gripper_closed(self) -> bool:
        return self._closed

    @property
    def held_block(self) -> int | None:
        """Index of the block in the gripper, or None."""
        return self._held

    @property
    def block_xy(self) -> np.ndarray:
        """(3, 2) block centres (a copy)."""
        return self._blocks.copy()

    @property
    def plate_xy(self) -> np.ndarray:
        """(2, 2) plate centres (a copy)."""
        return self._plates.copy()

    @property
    def success(self) -> bool:
        """The goal holds: the task's block rests within PLATE_RADIUS of the task's plate."""
        return self._success

    def _goal_holds(self) -> bool:
        if self._held == self.target_block:
            return False
        bx, by = self._blocks[self.target_block]
        px, py = self._plates[self.target_plate]
        return (bx - px) ** 2 + (by - py) ** 2 < PLATE_RADIUS * PLATE_RADIUS

    @property
    def stage(self) -> int:
        """Current progress stage: STAGE_NONE, STAGE_REACH, STAGE_GRASP, STAGE_CARRY or STAGE_PLACE."""
        if self.success:
            return STAGE_PLACE
        bx, by = self._blocks[self.target_block]
        if self._held == self.target_block:
            px, py = self._plates[self.target_plate]
            return STAGE_CARRY if (bx - px) ** 2 + (by - py) ** 2 < PLATE_RADIUS**2 else STAGE_GRASP
        if (self._x - bx) ** 2 + (self._y - by) ** 2 < REACH_RADIUS**2 and not self._closed:
            return STAGE_REACH
        return STAGE_NONE

    def reset(self, init_state_id: int) -> Observation:
        """Start an episode from fixed initial state `init_state_id`; renders both images."""
        layout = self._layouts.get(init_state_id)
        if layout is None:  # rejection sampling costs ~0.5 ms; an env resets to the same states many times
            layout = self._layouts[init_state_id] = tabletop_layout(self.config, self.spec.task_id, init_state_id)
        self._x, self._y, self._z = (float(v) for v in layout.gripper)
        self._closed = False
        self._held = None
        self._blocks = layout.blocks.copy()
        self._plates = layout.plates.copy()
        self._backgrounds = {}  # plates moved: the static background must be redrawn
        self.num_steps = 0
        self._success = self._goal_holds()
        self.max_stage = self.stage
        self._episode_started = True
        return self._observation(True, True)

    def step(self, action: np.ndarray, render_policy: bool, render_embed: bool) -> Observation:
        """Apply one (7,) action in [-1, 1] (clipped); render only the images asked for.

        Raises:
            RuntimeError: if called before `reset`.
            ValueError: if the action is not (7,) or not finite.
        """
        if not self._episode_started:
            raise RuntimeError("TabletopEnv.step called before reset")
        a = np.asarray(action, dtype=np.float64)
        if a.shape != (ACTION_DIM,) or not np.isfinite(a).all():
            raise ValueError(f"action must be a finite ({ACTION_DIM},) array, got {a.shape}: {a}")
        s = self.config.action_scale
        self._x = min(max(self._x + s * min(max(float(a[0]), -1.0), 1.0), 0.0), 1.0)
        self._y = min(max(self._y + s * min(max(float(a[1]), -1.0), 1.0), 0.0), 1.0)
        self._z = min(max(self._z + s * min(max(float(a[2]), -1.0), 1.0), 0.0), 1.0)
        close = float(a[GRIPPER_DIM]) > 0.0
        if close and not self._closed:
            self._held = self._grasp_candidate()
        elif not close and self._closed:
            self._held = None  # the block drops straight down where it is
        self._closed = close
        if self._held is not None:
            self._blocks[self._held, 0] = self._x
            self._blocks[self._held, 1] = self._y
        self.num_steps += 1
        self._success = self._goal_holds()  # once per step: stage, observation and expert all read it
        self.max_stage = max(self.max_stage, self.stage)
        return self._observation(render_policy, render_embed)

    def render(self, render_policy: bool, render_embed: bool) -> Observation:
        """Observe the current state without stepping."""
        return self._observation(render_policy, render_embed)

    def close(self) -> None:
        """Nothing to release (pure numpy); kept for the Env interface."""
        self._backgrounds = {}

    def _grasp_candidate(self) -> int | None:
        if self._z > GRASP_HEIGHT:
            return None
        d = np.hypot(self._blocks[:, 0] - self._x, self._blocks[:, 1] - self._y)
        nearest = int(np.argmin(d))
        return nearest if d[nearest] < GRASP_RADIUS else None

    def _observation(self, render_policy: bool, render_embed: bool) -> Observation:
        image = self._render(self.config.image_size) if render_policy else None
        embed: np.ndarray | None = None
        if render_embed:
            same = image is not None and self.config.embed_image_size == self.config.image_size
            # A copy, not the same array: the policy image and the embedding frame go to different owners.
            embed = image.copy() if same and image is not None else self._render(self.config.embed_image_size)
        state = np.array([self._x, self._y, self._z, 1.0 if self._closed else -1.0], dtype=np.float32)
        if self.config.object_state:
            state = np.concatenate([state, self._blocks.ravel(), self._plates.ravel()]).astype(np.float32)
        eef = np.array([self._x, self._y, self._z], dtype=np.float32)
        return Observation(image=image, embed_frame=embed, state=state, success=self.success, eef_pos=eef)

    def _render(self, size: int) -> np.ndarray:
        """(size, size, 3) uint8 top-down view of the current state."""
        img = self._background(size).copy()
        for i in range(len(BLOCK_NAMES)):
            if i != self._held:
                _fill_rect(img, self._blocks[i], BLOCK_HALF, BLOCK_HALF, _BLOCK_RGB[i])
        # Gripper: two fingers and a palm, shaded by height (dark when low). Open fingers stand apart; closed
        # ones touch, or clasp the sides of a held block, which is drawn larger (lifted towards the camera) and
        # left unoccluded so that grasp and carry are visible.
        centre = np.array([self._x, self._y])
        finger_half = 0.045
        if self._held is not None:
            lifted = BLOCK_HALF * (1.25 + 0.5 * self._z)
            _fill_rect(img, centre, lifted, lifted, _BLOCK_RGB[self._held])
            gap, finger_half = lifted + 0.012, lifted
        else:
            gap = 0.015 if self._closed else 0.055
        shade = np.full(3, int(40 + 200 * self._z), dtype=np.uint8)
        for side in (-1.0, 1.0):
            _fill_rect(img, centre + np.array([side * gap, 0.0]), 0.012, finger_half, shade)
        _fill_rect(img, centre + np.array([0.0, -finger_half - 0.01]), gap + 0.012, 0.01, shade)
        return img

    def _background(self, size: int) -> np.ndarray:
        bg = self._backgrounds.get(size)
        if bg is None:
            if size not in self._pixel_grids:
                centres = (np.arange(size) + 0.5) / size
                self._pixel_grids[size] = (centres[None, :], centres[:, None])
            xs, ys = self._pixel_grids[size]
            bg = np.empty((size, size, 3), dtype=np.uint8)
            bg[:] = _TABLE_RGB
            for p, (px, py) in enumerate(self._plates):
                dist2 = (xs - px) ** 2 + (ys - py) ** 2
                bg[dist2 < PLATE_RADIUS**2] = _PLATE_RIM_RGB[p]
                bg[dist2 < (0.75 * PLATE_RADIUS) ** 2] = _PLATE_RGB[p]
            self._backgrounds[size] = bg
        return bg


def _fill_rect(img: np.ndarray, centre: np.ndarray, half_w: float, half_h: float, rgb: np.ndarray) -> None:
    """Paint an axis-aligned rectangle given in workspace units, at least one pixel, clipped to the image."""
    size = img.shape[0]
    cx, cy = float(centre[0]) * size, float(centre[1]) * size
    c0, c1 = round(cx - half_w * size), round(cx + half_w * size)
    r0, r1 = round(cy - half_h * size), round(cy + half_h * size)
    c1, r1 = max(c1, c0 + 1), max(r1, r0 + 1)
    c0, r0 = max(c0, 0), max(r0, 0)
    if c0 < size and r0 < size and c1 > 0 and r1 > 0:
        img[r0:r1, c0:c1] = rgb


@dataclass(frozen=True)
class TabletopEnvFactory:
    """Builds tabletop envs (implements `srpo.envs.base.EnvFactory`); picklable, so it can go to workers."""

    config: TabletopConfig = field(default_factory=TabletopConfig)

    def task_specs(self) -> list[TaskSpec]:
        """All tasks, indexed by position == TaskSpec.task_id."""
        return [
            TaskSpec(SUITE, t, task_instruction(t), self.config.max_steps, self.config.num_init_states)
            for t in range(self.config.num_tasks)
        ]

    def make(self, task_id: int) -> TabletopEnv:
        """Construct the env of task `task_id` (cheap)."""
        return TabletopEnv(self.config, task_id)


def tabletop_expert_action(
    env: TabletopEnv, noise_std: float = 0.0, rng: np.random.Generator | None = None
) -> np.ndarray:
    """A scripted closed-loop expert that reads the privileged state and solves every task.

    Phases: move above the task's block (hovering at 0.3) → descend → close → carry to the plate's centre →
    open. It recovers from mistakes (a wrong block in hand is dropped, a missed grasp is retried).

    Args:
        env: The env, after reset.
        noise_std: Std of Gaussian noise added to the translation dims (before clipping), for diverse demos.
        rng: Noise generator; required when noise_std > 0.

    Returns:
        (7,) float32 action in [-1, 1].
    """
    scale = env.config.action_scale
    x, y, z = env.gripper_xyz
    block = env.block_xy[env.target_block]
    plate = env.plate_xy[env.target_plate]
    held = env.held_block
    target = np.array([x, y, z])
    grip = -1.0
    if env.success:
        target[2] = 0.3  # done: back off, gripper open
    elif held == env.target_block:
        grip = 1.0
        if max(abs(plate[0] - x), abs(plate[1] - y)) < 0.04:
            grip = -1.0  # release over the plate's centre
        else:
            target = np.array([plate[0], plate[1], 0.3])
    elif held is not None:
        grip = -1.0  # wrong block in hand: drop it
    else:
        # Tolerances well inside GRASP_RADIUS and PLATE_RADIUS, so a noisy expert still succeeds.
        aligned = max(abs(block[0] - x), abs(block[1] - y)) < 0.02
        target = np.array([block[0], block[1], 0.3 if not aligned else 0.5 * GRASP_HEIGHT])
        if aligned and z <= GRASP_HEIGHT and not env.gripper_closed:
            grip = 1.0
    action = np.zeros(ACTION_DIM, dtype=np.float64)
    action[:3] = (target - np.array([x, y, z])) / scale
    if noise_std > 0.0:
        if rng is None:
            raise ValueError("tabletop_expert_action: pass rng when noise_std > 0")
        action[:3] += rng.normal(0.0, noise_std, size=3)
    action[GRIPPER_DIM] = grip
    return np.clip(action, -1.0, 1.0).astype(np.float32)


def demo_layout_pool(
    config: TabletopConfig, num_eval_init_states: int, num_layouts: int | None = None
) -> tuple[TabletopEnvFactory, list[int]]:
    """A factory and the initial-state ids to record demos in, never one of the held-out evaluation states.

    Layout i of a task depends only on (config.seed, task, i), so a config with more initial states offers more
    layouts while keeping the held-out ones (the last `num_eval_init_states` of `config.num_init_states`, the
    split `srpo.evaluate.init_state_split` evaluates on) the same. Demos in a few dozen layouts are memorised.

    Args:
        config: The env config that training and evaluation use.
        num_eval_init_states: Held-out states at the end of config.num_init_states.
        num_layouts: Draw from layouts 0..num_layouts−1 (None or fewer than config.num_init_states: the training
            states only).

    Raises:
        ValueError: no training state is left.
    """
    num_train_states = config.num_init_states - num_eval_init_states
    if num_train_states < 1:
        raise ValueError(f"num_eval_init_states={num_eval_init_states} leaves no training initial states out of "
                         f"{config.num_init_states}")
    pool = max(num_layouts or 0, config.num_init_states)
    held_out = range(num_train_states, config.num_init_states)
    factory = TabletopEnvFactory(replace(config, num_init_states=pool))
    return factory, [i for i in range(pool) if i not in held_out]


def record_tabletop_demos(
    factory: TabletopEnvFactory,
    task_ids: Sequence[int],
    num_per_task: int,
    seed: int,
    noise_std: float = 0.0,
    init_state_ids: Sequence[int] | None = None,
    max_random_prefix_steps: int = 0,
) -> list[Demo]:
    """Record scripted-expert demonstrations.

    Args:
        factory: The tabletop factory (its config sets image size, horizon and initial states).
        task_ids: Tasks to record.
        num_per_task: Demonstrations per task.
        seed: Picks the initial states (without replacement while enough exist) and the action noise.
        noise_std: Expert translation noise (see `tabletop_expert_action`).
        init_state_ids: Initial states to draw from (default: all). Pass the training split here to keep
            evaluation states unseen.
        max_random_prefix_steps: Before the expert takes over, run a random walk of 0..N steps (uniform; each
            step a random translation, and a closed gripper with probability 0.2) that is *not* recorded. The
            recorded demo then starts wherever the walk ended, possibly holding the wrong block. Behaviour
            cloning on expert-only paths sees nothing but the expert's narrow tube of states; once the clone
            drifts out of it (it always does) its actions are meaningless. Random starts teach the expert's
            recovery from the states a clone's mistakes lead to (cheaper than DAgger, no policy in the loop).
            The expert still gets the full `max_steps` after the walk; a walk that happens to solve the task
            leaves nothing to demonstrate and is dropped (so a task may return fewer than `num_per_task`).

    Returns:
        Demos in task order; each has images (T, H, W, 3) seen before each action, states (T, 4), actions (T, 7),
        and `success` set from the env (the expert may rarely fail under heavy noise; such demos are kept and
        marked, so callers can filter).
    """
    if max_random_prefix_steps < 0:
        raise ValueError(f"max_random_prefix_steps={max_random_prefix_steps} must be >= 0 (0: start at reset)")
    rng = np.random.default_rng(seed)
    pool = np.arange(factory.config.num_init_states) if init_state_ids is None else np.asarray(init_state_ids)
    if pool.size == 0:
        raise ValueError("init_state_ids is empty: give the init states to draw demos from, or None for all")
    demos: list[Demo] = []
    for task_id in task_ids:
        env = factory.make(task_id)
        chosen = rng.choice(pool, size=num_per_task, replace=num_per_task > len(pool))
        for init_state_id in chosen:
            obs = env.reset(int(init_state_id))
            for _ in range(int(rng.integers(0, max_random_prefix_steps + 1)) if max_random_prefix_steps else 0):
                walk = np.zeros(ACTION_DIM, dtype=np.float32)
                walk[:3] = rng.uniform(-1.0, 1.0, size=3)
                walk[GRIPPER_DIM] = 1.0 if rng.random() < 0.2 else -1.0
                obs = env.step(walk, render_policy=True, render_embed=False)
            if obs.success:  # the walk solved the task by chance: nothing left to demonstrate
                continue
            images, states, actions = [], [], []
            for _ in range(env.spec.max_steps):
                assert obs.image is not None
                action = tabletop_expert_action(env, noise_std, rng)
                images.append(obs.image)
                states.append(obs.state)
                actions.append(action)
                obs = env.step(action, render_policy=True, render_embed=False)
                if obs.success:
                    break
            demos.append(
                Demo(
                    images=np.stack(images),
                    states=np.stack(states),
                    actions=np.stack(actions),
                    instruction=env.spec.instruction,
                    task_id=task_id,
                    suite=SUITE,
                    success=obs.success,
                )
            )
        env.close()
    return demos
