"""A privileged-state scripted controller for LIBERO pick-and-place tasks, and a demo recorder.

The controller reads the BDDL goal (`env.parsed_problem["goal_state"]`, e.g. `[["on", "akita_black_bowl_1",
"plate_1"]]` or `[["in", "alphabet_soup_1", "basket_1_contain_region"]]`) and the simulator state (object
bodies, geometry bounding boxes, region sites) and drives the 7-D OSC action through named phases:
approach above the grasp point, descend, close, lift, carry above the target, lower, release, retreat.
Geometry comes from MuJoCo's per-geom bounding boxes, not from the objects' nominal offsets (LIBERO leaves
most of those at robosuite's defaults).

It handles goals `on(obj, target)` and `in(obj, region)` — every libero_spatial and libero_object task and the
pick-and-place tasks of libero_goal / libero_90; other predicates (open, turn_on, ...) raise
`UnsupportedTaskError`.

`srpo scripted-demos` measures its success rate per task and optionally records HDF5 demos:

    MUJOCO_GL=egl srpo scripted-demos --suite libero_spatial --num-episodes 3 \
        --json benchmarks/results/libero_scripted.json [--demo-dir demos/]
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from srpo.config.libero import LiberoConfig, LiberoSuite, RenderQuality
from srpo.demos import DemoExtras, write_demos
from srpo.envs.libero import AGENTVIEW_CAMERA, WRIST_CAMERA, LiberoEnv, LiberoEnvFactory, proprio_state
from srpo.types import ACTION_DIM, Demo

# robosuite's OSC_POSE maps an action of 1 to a 5 cm position set-point offset (output_max 0.05).
OSC_POS_SCALE = 0.05
GRIPPER_OPEN = -1.0
GRIPPER_CLOSE = 1.0
# Heights above the table top / objects, in metres.
APPROACH_CLEARANCE = 0.10
CARRY_CLEARANCE = 0.12
PLACE_CLEARANCE = 0.02
# Set-point gain: OSC lags its set-point (gravity, the carried load), so aim past the goal.
POSITION_GAIN = 2.0
# Travel height above the tallest fixture or object top near the path, and how near counts (m).
TRAVEL_CLEARANCE = 0.05
PATH_MARGIN = 0.06
# A set-point counts as reached within this distance (m).
POSITION_TOLERANCE = 0.01
# Gripper close / open phases last this many steps (the Panda fingers need ~10 control steps to close).
NUM_GRIPPER_STEPS = 15
# A phase that has not converged after this many steps gives way to the next one (e.g. a descent blocked by
# contact), so the controller never stalls.
MAX_PHASE_STEPS = 80
PHASES = ("rise", "approach", "descend", "close", "lift", "carry", "lower", "release", "retreat", "done")


class UnsupportedTaskError(ValueError):
    """The task's goal is not a single pick-and-place (on / in) predicate."""


@dataclass(frozen=True)
class PickPlaceGoal:
    """A pick-and-place goal from the BDDL file.

    Attributes:
        relation: "on" or "in".
        obj: Name of the object to move (a key of env.objects_dict).
        target: Name of the target object or region site.
    """

    relation: str
    obj: str
    target: str


def parse_pick_place_goal(goal_state: list[list[str]]) -> PickPlaceGoal:
    """Extract the pick-and-place goal from a parsed BDDL goal.

    Args:
        goal_state: `env.parsed_problem["goal_state"]`, a list of predicates like ["on", "bowl_1", "plate_1"].

    Returns:
        The goal.

    Raises:
        UnsupportedTaskError: The goal has several predicates or a predicate other than on / in.
    """
    if len(goal_state) != 1 or len(goal_state[0]) != 3 or goal_state[0][0].lower() not in ("on", "in"):
        raise UnsupportedTaskError(f"scripted controller handles one on/in predicate, got goal {goal_state}")
    relation, obj, target = goal_state[0]
    return PickPlaceGoal(relation=relation.lower(), obj=obj, target=target)


def _body_subtree(model: Any, root_id: int) -> list[int]:
    """Ids of `root_id` and every body below it."""
    ids = []
    for body_id in range(model.nbody):
        current = body_id
        while current != 0 and current != root_id:
            current = int(model.body_parentid[current])
        if current == root_id:
            ids.append(body_id)
    return ids


def geometry_bounds(sim: Any, root_body: str) -> tuple[np.ndarray, np.ndarray]:
    """World-frame axis-aligned bounds of every geom under a body, from MuJoCo's per-geom boxes.

    Args:
        sim: robosuite MjSim.
        root_body: Name of the object's root body.

    Returns:
        (low, high), each (3,) in metres.
    """
    model, data = sim.model._model, sim.data._data
    bodies = set(_body_subtree(model, model.body(root_body).id))
    corners = []
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=np.float64)
    for geom_id in range(model.ngeom):
        if int(model.geom_bodyid[geom_id]) not in bodies:
            continue
        centre, half = model.geom_aabb[geom_id, :3], model.geom_aabb[geom_id, 3:]
        local = centre + signs * half
        rotation = data.geom_xmat[geom_id].reshape(3, 3)
        corners.append(data.geom_xpos[geom_id] + local @ rotation.T)
    if not corners:
        raise ValueError(f"body {root_body!r} has no geoms")
    points = np.concatenate(corners)
    return points.min(axis=0), points.max(axis=0)


class PickPlaceController:
    """Scripted top-down pick-and-place from privileged state.

    Grasp: the Panda fingers close along world y in LIBERO's home pose, and the controller never rotates the
    hand. Objects narrower than the open gripper are grasped at their centre, a little below their top.
    Bowls (wider than the gripper) are grasped by the rim on the side facing -y, fingers straddling the wall.
    """

    def __init__(self, env: LiberoEnv, obj: str | None = None, target_offset: np.ndarray | None = None) -> None:
        """A controller for the env's task; `obj` and `target_offset` script graded failures instead.

        Args:
            env: The task's env.
            obj: Move this object instead of the goal's (e.g. the wrong object).
            target_offset: (3,) world-frame offset (m) added to the place point (e.g. next to the target).
        """
        robosuite_env = env.robosuite_env
        self.env = env
        self.goal = parse_pick_place_goal(robosuite_env.parsed_problem["goal_state"])
        if obj is not None:
            self.goal = PickPlaceGoal(relation=self.goal.relation, obj=obj, target=self.goal.target)
        self._target_offset = np.zeros(3) if target_offset is None else np.asarray(target_offset, dtype=np.float64)
        if self.goal.obj not in robosuite_env.objects_dict:
            raise UnsupportedTaskError(f"goal object {self.goal.obj!r} is not a movable object")
        self.phase = PHASES[0]
        self._phase_steps = 0
        self._travel_height = 0.0
        self._rim_side = -1.0
        self._grasp_offset = np.zeros(3)
        self._carry_height = 0.0
        self._bottom_to_eef = 0.0

    def reset(self) -> None:
        """Start a new episode (call after env.reset): choose the grasp side and the travel height."""
        self.phase = PHASES[0]
        self._phase_steps = 0
        self._rim_side = -1.0
        self._rim_side = self._clearer_rim_side()
        eef = np.asarray(self.env.raw_obs["robot0_eef_pos"], dtype=np.float64)
        self._travel_height = self._path_height(eef, self._grasp_point())

    def _obstacles(self) -> list[tuple[np.ndarray, np.ndarray]]:
        robosuite_env = self.env.robosuite_env
        names = [*robosuite_env.objects_dict, *robosuite_env.fixtures_dict]
        return [self._object_bounds(name) for name in names if name != self.goal.obj]

    def _path_height(self, start: np.ndarray, end: np.ndarray) -> float:
        """Eef height that clears, by TRAVEL_CLEARANCE, every obstacle near the straight xy path start → end.

        OSC has no collision avoidance: a tall fixture (the cabinet next to a bowl) blocks a straight diagonal
        move. Only obstacles near the path count; rising over far ones would stretch the arm to its reach
        limit for distant objects, where it cannot descend any more.
        """
        points = start[:2] + np.linspace(0.0, 1.0, 25)[:, None] * (end[:2] - start[:2])
        height = 0.0
        for low, high in self._obstacles():
            near = np.all((points >= low[:2] - PATH_MARGIN) & (points <= high[:2] + PATH_MARGIN), axis=1)
            if near.any():
                height = max(height, float(high[2]) + TRAVEL_CLEARANCE)
        return height

    def _clearer_rim_side(self) -> float:
        """For a bowl: -1 or +1, the y side whose rim has more room from obstacles standing above the rim."""
        if not self._rim_grasp():
            return -1.0
        clearances = []
        for side in (-1.0, 1.0):
            self._rim_side = side
            point = self._grasp_point()
            gaps = [
                float(np.linalg.norm(np.maximum(0.0, np.maximum(o_low[:2] - point[:2], point[:2] - o_high[:2]))))
                for o_low, o_high in self._obstacles()
                if o_high[2] > point[2] - 0.02
            ]
            clearances.append(min(gaps, default=np.inf))
        return -1.0 if clearances[0] >= clearances[1] else 1.0

    @property
    def done(self) -> bool:
        return self.phase == "done"

    def _sim(self) -> Any:
        return self.env.robosuite_env.sim

    def _object_bounds(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        robosuite_env = self.env.robosuite_env
        entity = robosuite_env.objects_dict.get(name) or robosuite_env.fixtures_dict.get(name)
        if entity is None:
            raise UnsupportedTaskError(f"unknown object {name!r}")
        return geometry_bounds(self._sim(), entity.root_body)

    def _grasp_point(self) -> np.ndarray:
        low, high = self._object_bounds(self.goal.obj)
        centre = (low + high) / 2
        height = high[2] - low[2]
        if self._rim_grasp():
            # Wider than the open gripper (~8 cm): straddle the rim wall on the chosen y side.
            rim_y = low[1] + 0.012 if self._rim_side < 0 else high[1] - 0.012
            point = np.array([centre[0], rim_y, high[2] - 0.015])
        else:
            point = np.array([centre[0], centre[1], high[2] - min(0.03, 0.5 * height)])
        return point

    def _rim_grasp(self) -> bool:
        """Whether the object is a bowl, grasped by its rim.

        Decided by name: the world-frame box of a yawed can (built from many small rotated collision boxes) is
        as wide as a bowl's, so width alone misclassifies the 7 cm cans of libero_object.
        """
        return "bowl" in self.goal.obj

    def _target_point(self) -> tuple[np.ndarray, float]:
        """Centre of the target's top surface (x, y, z) plus the target offset, and the height above it to
        release at."""
        point, clearance = self._target_centre()
        return point + self._target_offset, clearance

    def target_bounds(self) -> tuple[np.ndarray, np.ndarray] | None:
        """World-frame (low, high) corners of the target object, or None when the target is a region site."""
        robosuite_env = self.env.robosuite_env
        if self.goal.target in robosuite_env.objects_dict or self.goal.target in robosuite_env.fixtures_dict:
            return self._object_bounds(self.goal.target)
        return None

    def _target_centre(self) -> tuple[np.ndarray, float]:
        sim = self._sim()
        robosuite_env = self.env.robosuite_env
        target = self.goal.target
        if target in robosuite_env.objects_dict or target in robosuite_env.fixtures_dict:
            low, high = self._object_bounds(target)
            return np.array([(low[0] + high[0]) / 2, (low[1] + high[1]) / 2, high[2]]), PLACE_CLEARANCE
        # A region site such as basket_1_contain_region: its position is the region's centre.
        site_id = sim.model._model.site(target).id
        return np.array(sim.data._data.site_xpos[site_id]), 0.06

    def act(self) -> np.ndarray:
        """The next (7,) action for the env's current state."""
        eef = np.asarray(self.env.raw_obs["robot0_eef_pos"], dtype=np.float64)
        self._phase_steps += 1
        gripper = GRIPPER_OPEN
        goal_pos = eef
        if self.phase == "rise":
            grasp = self._grasp_point()
            goal_pos = np.array([eef[0], eef[1], max(self._travel_height, grasp[2] + APPROACH_CLEARANCE)])
            # Only rising is needed: when the hand is already above the travel height, go straight on.
            if eef[2] >= goal_pos[2] - 0.02:
                self._next_phase()
                goal_pos = eef
        elif self.phase == "approach":
            grasp = self._grasp_point()
            goal_pos = grasp + np.array([0.0, 0.0, APPROACH_CLEARANCE])
            if not self._above(eef, grasp):
                # Travel at the safe height until above the grasp point, then drop to the approach height.
                goal_pos[2] = max(goal_pos[2], min(eef[2], self._travel_height))
            self._advance_when(eef, goal_pos)
        elif self.phase == "descend":
            goal_pos = self._grasp_point()
            self._advance_when(eef, goal_pos, tolerance=0.006)
        elif self.phase == "close":
            gripper = GRIPPER_CLOSE
            if self._phase_steps >= NUM_GRIPPER_STEPS:
                obj_low, obj_high = self._object_bounds(self.goal.obj)
                self._grasp_offset = eef - (obj_low + obj_high) / 2
                self._bottom_to_eef = eef[2] - obj_low[2]
                target, _ = self._target_point()
                # Carry the object's bottom CARRY_CLEARANCE above the higher of its resting height and the
                # target's top, fixed once here (recomputing it while lifting would chase the rising object).
                path_height = self._path_height(eef, target + self._grasp_offset)
                self._carry_height = max(max(target[2], obj_low[2]) + CARRY_CLEARANCE + self._bottom_to_eef,
                                         path_height - TRAVEL_CLEARANCE + 0.02 + self._bottom_to_eef)
                self._next_phase()
        elif self.phase == "lift":
            gripper = GRIPPER_CLOSE
            goal_pos = np.array([eef[0], eef[1], self._carry_height])
            self._advance_when(eef, goal_pos, tolerance=0.02)
        elif self.phase == "carry":
            gripper = GRIPPER_CLOSE
            target, _ = self._target_point()
            goal_pos = np.array([target[0] + self._grasp_offset[0], target[1] + self._grasp_offset[1],
                                 self._carry_height])
            self._advance_when(eef, goal_pos, tolerance=0.015)
        elif self.phase == "lower":
            gripper = GRIPPER_CLOSE
            target, clearance = self._target_point()
            goal_pos = np.array([target[0] + self._grasp_offset[0], target[1] + self._grasp_offset[1],
                                 target[2] + clearance + self._bottom_to_eef])
            self._advance_when(eef, goal_pos, tolerance=0.01)
        elif self.phase == "release":
            gripper = GRIPPER_OPEN
            if self._phase_steps >= NUM_GRIPPER_STEPS // 2:
                self._next_phase()
        elif self.phase == "retreat":
            goal_pos = eef + np.array([0.0, 0.0, 0.05])
            if self._phase_steps >= 10:
                self._next_phase()
        elif self.phase == "done":
            goal_pos = eef
        else:
            raise ValueError(f"unknown phase {self.phase!r}: one of {PHASES}")
        action = np.zeros(ACTION_DIM)
        action[:3] = np.clip(POSITION_GAIN * (goal_pos - eef) / OSC_POS_SCALE, -1.0, 1.0)
        action[6] = gripper
        return action

    @staticmethod
    def _above(eef: np.ndarray, point: np.ndarray, radius: float = 0.03) -> bool:
        return bool(np.linalg.norm(eef[:2] - point[:2]) < radius)

    def _advance_when(self, eef: np.ndarray, goal: np.ndarray, tolerance: float = POSITION_TOLERANCE) -> None:
        if np.linalg.norm(goal - eef) < tolerance or self._phase_steps >= MAX_PHASE_STEPS:
            self._next_phase()

    def _next_phase(self) -> None:
        self.phase = PHASES[PHASES.index(self.phase) + 1]
        self._phase_steps = 0


@dataclass
class ScriptedEpisode:
    """One scripted episode.

    Attributes:
        success: Whether the BDDL goal held at the end.
        num_steps: Env steps executed (after settling).
        demo: The recorded Demo (only when recording).
        extras: Wrist images, joint and MuJoCo states (only when recording).
    """

    success: bool
    num_steps: int
    demo: Demo | None = None
    extras: DemoExtras | None = None


def run_episode(env: LiberoEnv, init_state_id: int, record: bool = False) -> ScriptedEpisode:
    """Run the scripted controller from one initial state until success or the task's horizon.

    Args:
        env: The task's env.
        init_state_id: Which of the task's initial states to start from.
        record: Render and keep images and states every step (slow: ~2 renders per step).

    Returns:
        The episode's outcome (and its Demo + extras when recording).
    """
    controller = PickPlaceController(env)
    obs = env.reset(init_state_id)
    controller.reset()
    images: list[np.ndarray] = []
    wrists: list[np.ndarray] = []
    states: list[np.ndarray] = []
    joints: list[np.ndarray] = []
    sim_states: list[np.ndarray] = []
    actions: list[np.ndarray] = []
    success = obs.success
    num_steps = 0
    sim = env.robosuite_env.sim
    while not success and num_steps < env.spec.max_steps:
        if record:
            images.append(env.render_camera(AGENTVIEW_CAMERA, env.config.image_size))
            wrists.append(env.render_camera(WRIST_CAMERA, env.config.image_size))
            states.append(proprio_state(env.raw_obs))
            joints.append(np.asarray(env.raw_obs["robot0_joint_pos"], dtype=np.float64))
            sim_states.append(np.asarray(sim.get_state().flatten()))
        action = controller.act()
        actions.append(action)
        obs = env.step(action, render_policy=False, render_embed=False)
        num_steps += 1
        success = obs.success
    if not record:
        return ScriptedEpisode(success=success, num_steps=num_steps)
    demo = Demo(
        images=np.stack(images) if images else np.zeros((0, env.config.image_size, env.config.image_size, 3), np.uint8),
        states=np.stack(states) if states else np.zeros((0, 8), np.float32),
        actions=np.stack(actions).astype(np.float32) if actions else np.zeros((0, ACTION_DIM), np.float32),
        instruction=env.spec.instruction,
        task_id=env.suite_task_id,
        suite=env.spec.suite,
        success=success,
    )
    extras = DemoExtras(
        wrist_images=np.stack(wrists) if wrists else None,
        joint_states=np.stack(joints) if joints else None,
        sim_states=np.stack(sim_states) if sim_states else None,
        init_state=env.init_states[init_state_id],
    )
    return ScriptedEpisode(success=success, num_steps=num_steps, demo=demo, extras=extras)


def _problem_name(env: LiberoEnv) -> str:
    return str(env.robosuite_env.parsed_problem["problem_name"])


def record_demos(
    env: LiberoEnv, init_state_ids: list[int], path: str | Path | None = None, successes_only: bool = True
) -> list[Demo]:
    """Record scripted demos of one task, optionally writing them to an HDF5 file (LIBERO layout).

    Args:
        env: The task's env.
        init_state_ids: Initial states to start from, one episode each.
        path: Output .hdf5 path; None keeps the demos in memory only.
        successes_only: Drop failed episodes.

    Returns:
        The kept demos.
    """
    demos: list[Demo] = []
    extras: list[DemoExtras] = []
    for init_state_id in init_state_ids:
        episode = run_episode(env, init_state_id, record=True)
        if episode.demo is None or episode.extras is None or (successes_only and not episode.success):
            continue
        demos.append(episode.demo)
        extras.append(episode.extras)
    if path is not None and demos:
        write_demos(path, demos, extras=extras, bddl_file_name=env.bddl_file, problem_name=_problem_name(env),
                    env_name=type(env.robosuite_env).__name__)
    return demos


def measure_scripted_expert(
    suites: Sequence[LiberoSuite],
    task_ids: Sequence[int] | None = None,
    num_episodes: int = 3,
    json_path: Path | None = None,
    demo_dir: Path | None = None,
    image_size: int = 128,
    render_quality: RenderQuality = "full",
) -> dict[str, Any]:
    """`srpo scripted-demos`: the scripted controller's success rate per task, optionally recording demos.

    Args:
        suites: LIBERO suites to run.
        task_ids: Suite task ids (None: all).
        num_episodes: Episodes per task, on train init states 0..num_episodes-1.
        json_path: Merge the per-task results into this JSON file (rewritten after each suite).
        demo_dir: Record the successful episodes as <suite>/task<id>_demo.hdf5 here (renders every step).
        image_size: Image side of recorded demos.
        render_quality: `LiberoConfig.render_quality` of the recorded images: record with the quality the policy
            will be trained and run under ("full", LIBERO's own frames, by default).

    Returns:
        Results by suite, then by suite task id.
    """
    results: dict[str, Any] = {}
    if json_path is not None and json_path.exists():
        results = json.loads(json_path.read_text())
    for suite in suites:
        config = LiberoConfig(suite=suite, task_ids=tuple(task_ids) if task_ids else None,
                              image_size=image_size, embed_image_size=image_size, render_quality=render_quality)
        factory = LiberoEnvFactory(config)
        init_ids = config.init_state_ids("train")[:num_episodes]
        suite_results: dict[str, Any] = results.get(suite, {})
        for k, suite_task_id in enumerate(config.resolved_task_ids):
            env = factory.make(k)
            try:
                start = time.perf_counter()
                try:
                    PickPlaceController(env)
                except UnsupportedTaskError as err:
                    print(f"{suite} task {suite_task_id}: skipped ({err})")
                    continue
                record = demo_dir is not None
                episodes = [run_episode(env, i, record=record) for i in init_ids]
                if record:
                    demos = [e.demo for e in episodes if e.success and e.demo is not None]
                    extras = [e.extras for e in episodes if e.success and e.extras is not None]
                    if demos and demo_dir is not None:
                        out = demo_dir / suite / f"task{suite_task_id}_demo.hdf5"
                        out.parent.mkdir(parents=True, exist_ok=True)
                        write_demos(out, demos, extras=extras,
                                    bddl_file_name=env.bddl_file, problem_name=_problem_name(env),
                                    env_name=type(env.robosuite_env).__name__)
                num_success = sum(e.success for e in episodes)
                suite_results[str(suite_task_id)] = {
                    "instruction": env.spec.instruction,
                    "num_episodes": len(episodes),
                    "num_success": num_success,
                    "success_rate": num_success / max(1, len(episodes)),
                    "init_state_ids": init_ids,
                    "mean_steps": float(np.mean([e.num_steps for e in episodes])),
                    "wall_s": round(time.perf_counter() - start, 1),
                }
                print(f"{suite} task {suite_task_id}: {num_success}/{len(episodes)} "
                      f"({env.spec.instruction})", flush=True)
            finally:
                env.close()
        results[suite] = suite_results
        if json_path is not None:
            json_path.parent.mkdir(parents=True, exist_ok=True)
            json_path.write_text(json.dumps(results, indent=2) + "\n")
    return results
