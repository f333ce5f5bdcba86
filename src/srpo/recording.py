"""Recording labelled trajectory sets with scripted experts: successes and graded failures, each labelled by the
env's own success check and, with a probe, by its progress stage and positions at every frame.

One episode loop (`run_scripted_episode`) serves every recorder; `record_labelled_set` draws initial states,
acts out the failure kinds, keeps only episodes whose env verdict matches their kind, and can write each kept
episode at once to a folder it resumes from. Tabletop and LIBERO supply their graded failure scripts and stage
probes here (`tabletop_failure_policy` / `tabletop_probe`, `libero_failure_policy` / `LiberoProbe`).
"""

from __future__ import annotations

import csv
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from srpo.errors import SrpoError
from srpo.reward.labelled import (
    FRAME_LABEL_KEYS,
    FRAMES_KEY,
    LABEL_COLUMNS,
    LABELS_FILE,
    LabelledSet,
    load_folder,
    parse_bool,
)
from srpo.types import ACTION_DIM, GRIPPER_DIM

if TYPE_CHECKING:
    from srpo.envs.base import Env, EnvFactory
    from srpo.envs.libero import LiberoEnv
    from srpo.envs.tabletop import TabletopEnv

FAILURE_KINDS = ("stall", "noisy")  # failure kinds any env with a scripted expert can act out
# Tabletop failures cycle through these, graded by how far they get (see `tabletop_failure_policy`).
TABLETOP_FAILURE_KINDS = ("next_to_target", "wrong_object", "reach_only", "drop", "random", "stall", "noisy")
# LIBERO failures, likewise (see `libero_failure_policy`).
LIBERO_FAILURE_KINDS = TABLETOP_FAILURE_KINDS


# expert(env, step, noise_std, rng) → (7,) action; `step` is 0 on the first action after env.reset, so a stateful
# controller can restart there.
ExpertFn = Callable[["Env", int, float, np.random.Generator], np.ndarray]
# policy(env, step) → (7,) action, `step` counted from 0 after env.reset.
PolicyFn = Callable[["Env", int], np.ndarray]
# probe(env) → (stage, gripper xyz (3,), target-object xyz (3,)): the env's privileged progress label of its
# current state, read after reset and after every step.
ProbeFn = Callable[["Env"], tuple[int, np.ndarray, np.ndarray]]
# failure_policy(kind, env, init_state, rng) → a policy that acts out the graded failure `kind` from
# `init_state`, or None when the kind cannot be acted out from there (the attempt is skipped).
FailurePolicyFn = Callable[[str, "Env", int, np.random.Generator], PolicyFn | None]


@dataclass
class Episode:
    """One recorded episode: frames after reset and after every step, and the labels of those frames.

    Attributes:
        frames: (T, H, W, 3) uint8 embedding-camera frames.
        success: The env's success flag after the last step.
        frame_stages: (T,) int64 stage of every frame, or None without a probe.
        gripper_pos: (T, 3) float32 gripper position of every frame, or None without a probe.
        object_pos: (T, 3) float32 target-object position of every frame, or None without a probe.
    """

    frames: np.ndarray
    success: bool
    frame_stages: np.ndarray | None = None
    gripper_pos: np.ndarray | None = None
    object_pos: np.ndarray | None = None


def run_scripted_episode(
    env: Env, init_state_id: int, policy: PolicyFn, max_steps: int, probe: ProbeFn | None = None,
    frame_stride: int = 1,
) -> Episode:
    """Roll out `policy(env, step)` until success or `max_steps`.

    Frames are the embed frame after reset, after every `frame_stride`-th step and after the last step (LIBERO
    renders cost ~6 control steps each; the encoders sample a fixed number of frames per video anyway). Each
    frame is labelled by `probe`: the furthest stage seen since the previous frame (so a stage held between two
    frames is not lost) and the positions at the frame.
    """
    obs = env.reset(init_state_id)
    if obs.embed_frame is None:
        raise RuntimeError("env.reset returned no embed_frame; the recorder needs the world-model camera")
    render = getattr(env, "render", None)
    if frame_stride > 1 and render is None:
        raise ValueError(f"frame_stride={frame_stride} needs an env with render(); use frame_stride=1")
    frames = [obs.embed_frame]
    labels = [probe(env)] if probe is not None else []
    pending_stage = -1  # furthest stage since the last frame
    steps = 0
    for step in range(max_steps):
        steps = step + 1
        due = steps % frame_stride == 0
        obs = env.step(policy(env, step), render_policy=False, render_embed=due)
        if probe is not None:
            label = probe(env)
            pending_stage = max(pending_stage, label[0])
        if obs.success and not due:
            assert render is not None
            obs = render(False, True)
            due = True
        if due:
            assert obs.embed_frame is not None
            frames.append(obs.embed_frame)
            if probe is not None:
                labels.append((pending_stage, label[1], label[2]))
                pending_stage = -1
        if obs.success:
            break
    if steps % frame_stride != 0 and not obs.success and steps > 0:
        assert render is not None
        frames.append(render(False, True).embed_frame)
        if probe is not None:
            labels.append((pending_stage, label[1], label[2]))
    episode = Episode(np.stack(frames), bool(obs.success))
    if probe is not None:
        episode.frame_stages = np.array([label[0] for label in labels], dtype=np.int64)
        episode.gripper_pos = np.stack([label[1] for label in labels]).astype(np.float32)
        episode.object_pos = np.stack([label[2] for label in labels]).astype(np.float32)
    return episode


def _stalled_expert(expert: ExpertFn, cut: int, rng: np.random.Generator) -> PolicyFn:
    """The noiseless expert for `cut` steps, then zero translation with the expert's last gripper command (so a
    held object stays held and progress freezes part-way)."""
    last = np.zeros(ACTION_DIM, dtype=np.float32)

    def policy(env: Env, step: int) -> np.ndarray:
        nonlocal last
        if step < cut:
            last = expert(env, step, 0.0, rng)
            return last
        held = np.zeros(ACTION_DIM, dtype=np.float32)
        held[GRIPPER_DIM] = last[GRIPPER_DIM]
        return held

    return policy


def _with_noise(expert: ExpertFn, noise: float, rng: np.random.Generator) -> PolicyFn:
    """The expert as a policy, with translation noise `noise`."""
    return lambda env, step: expert(env, step, noise, rng)


def _expert_failure_policy(
    kind: str, env: Env, init_state: int, expert: ExpertFn, rng: np.random.Generator, noise: float, max_steps: int
) -> PolicyFn | None:
    """The env-independent failure kinds: "noisy" (the expert with heavy translation noise, near misses) and
    "stall" (see `_stalled_expert`)."""
    if kind == "noisy":
        return _with_noise(expert, noise, rng)
    if kind != "stall":
        raise ValueError(f"no policy for failure kind {kind!r}: pass a failure_policy that knows it")
    # A clean run first tells how long the expert needs from this state; the stall cuts 20–80 % into it.
    clean = run_scripted_episode(env, init_state, lambda e, step: expert(e, step, 0.0, rng), max_steps)
    if not clean.success:
        return None
    cut = max(1, int(rng.uniform(0.2, 0.8) * (clean.frames.shape[0] - 1)))
    return _stalled_expert(expert, cut, rng)


def record_labelled_set(
    factory: EnvFactory,
    expert: ExpertFn,
    task_ids: Sequence[int],
    num_success: int,
    num_failure: int,
    seed: int,
    success_noise: float = 0.1,
    failure_noise: float = 2.0,
    max_attempts_factor: int = 5,
    verbose: bool = False,
    failure_kinds: Sequence[str] = FAILURE_KINDS,
    failure_policy: FailurePolicyFn | None = None,
    probe: ProbeFn | None = None,
    init_state_ids: Sequence[int] | None = None,
    directory: str | Path | None = None,
    task_labels: Sequence[int] | None = None,
    frame_stride: int = 1,
) -> LabelledSet:
    """Record scripted successes and graded failures per task.

    Failures cycle through `failure_kinds`; each is labelled by the env (an episode that succeeds anyway is
    discarded, as is a success run the expert fails). "stall" runs the expert for a random 20–80 % of its own
    success length and then stops moving, keeping its gripper command, until the horizon (progress stops
    part-way; a full-length video like a real failure); "noisy" runs the expert with heavy translation noise;
    any other kind comes from `failure_policy`.

    Args:
        factory: Builds one env per task (`Env` protocol; the embed camera must render).
        expert: expert(env, step, noise_std, rng) → (7,) action, closed-loop on the env's state.
        task_ids: Tasks to record (positions in the factory's task list).
        num_success: Successes per task.
        num_failure: Failures per task.
        seed: Seeds initial states, noise, cut points and the failure policies (per task and resume point).
        success_noise: Expert noise of the successes (diversity).
        failure_noise: Expert noise of the "noisy" failures.
        max_attempts_factor: Give up on a task after this many attempts per requested trajectory.
        verbose: Print one line per kept or discarded episode to stderr (LIBERO episodes take minutes).
        failure_kinds: The kinds failures cycle through.
        failure_policy: Acts out the kinds other than "stall" and "noisy".
        probe: Labels every frame with the env's stage and positions; with it the set carries `stages`,
            `frame_stages`, `gripper_pos` and `object_pos`.
        init_state_ids: Initial states to draw from (default: all of the task's).
        directory: Write every kept episode there at once (npz + a labels.csv row) and resume: episodes already
            in the folder count towards the requested numbers. The returned set is the folder's.
        task_labels: The task id written for each factory position (default: the position).
        frame_stride: Render a frame every this many steps (see `_run_episode`).

    Returns:
        The labelled set, its `kinds` set ("success" or a failure kind).
    """
    specs = factory.task_specs()
    bad_tasks = [t for t in task_ids if not 0 <= t < len(specs)]
    if bad_tasks:
        raise ValueError(f"task_ids {bad_tasks} outside [0, {len(specs)}): positions in the factory's task list")
    if num_failure > 0 and not failure_kinds:
        raise ValueError(f"num_failure={num_failure} with no failure_kinds: give at least one kind, e.g. "
                         f"{tuple(FAILURE_KINDS)}")
    if init_state_ids is not None and len(init_state_ids) == 0:
        raise ValueError("init_state_ids is empty: give the init states to draw from, or None for all")
    writer = _EpisodeWriter(Path(directory), with_stage=probe is not None) if directory is not None else None
    episodes: list[Episode] = []
    tasks: list[int] = []
    kinds: list[str] = []
    for task_id in task_ids:
        spec = specs[task_id]
        label = int(task_labels[task_id]) if task_labels is not None else task_id
        got_success, got_failure = writer.counts(label) if writer is not None else (0, 0)
        if got_success >= num_success and got_failure >= num_failure:
            continue
        rng = np.random.default_rng([seed, task_id, got_success, got_failure])
        pool = np.arange(spec.num_init_states) if init_state_ids is None else np.asarray(init_state_ids)
        env = factory.make(task_id)
        try:
            budget = max_attempts_factor * (num_success + num_failure)
            while got_success < num_success or got_failure < num_failure:
                if budget == 0:
                    raise RuntimeError(
                        f"task {task_id}: gave up after {max_attempts_factor * (num_success + num_failure)} "
                        f"episodes with {got_success} successes and {got_failure} failures"
                    )
                budget -= 1
                init_state = int(rng.choice(pool))
                want_success = got_success < num_success
                kind = "success" if want_success else failure_kinds[got_failure % len(failure_kinds)]
                policy: PolicyFn | None
                if kind == "success":
                    policy = _with_noise(expert, success_noise, rng)
                elif kind in FAILURE_KINDS:
                    policy = _expert_failure_policy(kind, env, init_state, expert, rng, failure_noise, spec.max_steps)
                elif failure_policy is not None:
                    policy = failure_policy(kind, env, init_state, rng)
                else:
                    raise ValueError(f"failure kind {kind!r} needs a failure_policy")
                if policy is None:
                    continue
                start = time.perf_counter()
                episode = run_scripted_episode(env, init_state, policy, spec.max_steps, probe, frame_stride)
                ok = episode.success
                if verbose:
                    verdict = "kept" if ok == (kind == "success") else "discarded"
                    stage = "" if episode.frame_stages is None else f", stage {int(episode.frame_stages.max())}"
                    print(f"task {label} init {init_state}: {kind} episode, {episode.frames.shape[0]} frames, "
                          f"success={ok}{stage} ({verdict}, {time.perf_counter() - start:.0f}s)", file=sys.stderr,
                          flush=True)
                if ok != (kind == "success"):
                    # The expert failed a success run, or a perturbed run succeeded anyway: discard it, so every
                    # kept trajectory's label is the env's own verdict and the requested counts hold.
                    continue
                if writer is not None:
                    writer.write(episode, label, kind)
                else:
                    episodes.append(episode)
                    tasks.append(label)
                    kinds.append(kind)
                got_success += ok
                got_failure += not ok
        finally:
            env.close()
    if writer is not None:
        return load_folder(writer.root)
    return _labelled_set(episodes, tasks, kinds)


class _EpisodeWriter:
    """Appends kept episodes to a labelled-set folder (npz + a labels.csv row each) so recording resumes."""

    def __init__(self, root: Path, with_stage: bool) -> None:
        self.root = root
        self.columns = [*LABEL_COLUMNS, "kind", *(["stage"] if with_stage else [])]
        self._rows: list[dict[str, str]] = []
        labels = root / LABELS_FILE
        if labels.is_file():
            with labels.open(newline="") as f:
                reader = csv.DictReader(f)
                if list(reader.fieldnames or []) != self.columns:
                    raise ValueError(f"{labels}: columns {reader.fieldnames} differ from {self.columns}; "
                                     "record into an empty folder")
                self._rows = list(reader)
        else:
            root.mkdir(parents=True, exist_ok=True)
            with labels.open("w", newline="") as f:
                csv.writer(f).writerow(self.columns)

    def counts(self, task: int) -> tuple[int, int]:
        """(successes, failures) of `task` already in the folder."""
        rows = [r for r in self._rows if int(r["task_id"]) == task]
        num_success = sum(parse_bool(r["success"], str(self.root)) for r in rows)
        return num_success, len(rows) - num_success

    def write(self, episode: Episode, task: int, kind: str) -> None:
        name = f"traj_{len(self._rows):05d}.npz"
        arrays = {FRAMES_KEY: episode.frames}
        for key in FRAME_LABEL_KEYS:
            value = getattr(episode, key)
            if value is not None:
                arrays[key] = value
        np.savez_compressed(self.root / name, **arrays)
        row = {"path": name, "success": str(int(episode.success)), "task_id": str(task), "kind": kind}
        if "stage" in self.columns:
            assert episode.frame_stages is not None
            row["stage"] = str(int(episode.frame_stages.max()))
        with (self.root / LABELS_FILE).open("a", newline="") as f:  # the row last: a killed write leaves no row
            csv.writer(f).writerow([row[c] for c in self.columns])
        self._rows.append(row)


def _labelled_set(episodes: Sequence[Episode], tasks: Sequence[int], kinds: Sequence[str]) -> LabelledSet:
    """Episodes → LabelledSet (progress labels kept when every episode has them)."""
    names = [f"task{t}_{i:04d}_{k}" for i, (t, k) in enumerate(zip(tasks, kinds, strict=True))]
    labelled = all(e.frame_stages is not None for e in episodes)
    frame_stages = [e.frame_stages for e in episodes if e.frame_stages is not None] if labelled else None
    return LabelledSet(
        [e.frames for e in episodes],
        np.array([e.success for e in episodes], dtype=bool),
        np.array(tasks, dtype=np.int64),
        names,
        kinds=list(kinds),
        stages=np.array([int(s.max()) for s in frame_stages], dtype=np.int64) if frame_stages is not None else None,
        frame_stages=frame_stages,
        gripper_pos=[e.gripper_pos for e in episodes if e.gripper_pos is not None] if labelled else None,
        object_pos=[e.object_pos for e in episodes if e.object_pos is not None] if labelled else None,
    )


# --- tabletop: graded failures and the stage probe --------------------------------------------------------------


def _tabletop_move(env: TabletopEnv, xyz: np.ndarray, grip: float) -> np.ndarray:
    """The action that heads for `xyz` at full speed (clipped per axis) with gripper command `grip`."""
    action = np.zeros(ACTION_DIM, dtype=np.float64)
    action[:3] = (np.asarray(xyz, dtype=np.float64) - env.gripper_xyz) / env.config.action_scale
    action[GRIPPER_DIM] = grip
    return np.clip(action, -1.0, 1.0).astype(np.float32)


def _tabletop_pick_place(env: TabletopEnv, block: int, goal_xy: np.ndarray) -> np.ndarray:
    """The expert's pick-and-place phases for any block and drop point: approach, descend, close, carry at
    height 0.3, open over `goal_xy`, then back off. A wrong block in hand is dropped, a missed grasp retried."""
    from srpo.envs.tabletop import GRASP_HEIGHT

    x, y, z = env.gripper_xyz
    here = np.array([x, y, z])
    start = env.block_xy[block]
    held = env.held_block
    if held == block:
        if max(abs(goal_xy[0] - x), abs(goal_xy[1] - y)) < 0.04:
            return _tabletop_move(env, here, -1.0)  # release over the drop point
        return _tabletop_move(env, np.array([goal_xy[0], goal_xy[1], 0.3]), 1.0)
    if held is not None:
        return _tabletop_move(env, here, -1.0)
    if max(abs(start[0] - goal_xy[0]), abs(start[1] - goal_xy[1])) < 0.05:
        return _tabletop_move(env, np.array([x, y, 0.3]), -1.0)  # placed: back off, gripper open
    aligned = max(abs(start[0] - x), abs(start[1] - y)) < 0.02
    target = np.array([start[0], start[1], 0.3 if not aligned else 0.5 * GRASP_HEIGHT])
    grip = 1.0 if aligned and z <= GRASP_HEIGHT and not env.gripper_closed else -1.0
    return _tabletop_move(env, target, grip)


def tabletop_failure_policy(kind: str, env: Env, init_state: int, rng: np.random.Generator) -> PolicyFn | None:
    """Graded tabletop failures, ordered here from least to most progress (the env's stage labels them):

    * "random": a random walk (a new random direction every 8 steps, gripper closed 20 % of the time).
    * "wrong_object": picks one of the other blocks and puts it on the task's plate.
    * "reach_only": reaches the task's block and hovers low over it with the gripper open, never grasping.
    * "drop": grasps the task's block and opens 15–60 % of the way to the plate.
    * "next_to_target": carries the task's block to 2–7 cm beyond the plate's rim (on the block's side) and
      places it there.

    Args:
        kind: One of TABLETOP_FAILURE_KINDS other than "stall" and "noisy".
        env: A `TabletopEnv` (its privileged state drives the script).
        init_state: The initial state the episode starts from.
        rng: Draws the random choices.

    Returns:
        policy(env, step) → (7,) action.
    """
    from srpo.envs.tabletop import BLOCK_NAMES, PLATE_RADIUS

    del init_state  # the goals depend on the layout, read at step 0 after reset
    goal: list[np.ndarray] = []
    fraction = float(rng.uniform(0.15, 0.6))
    margin = float(rng.uniform(0.02, 0.07))
    other = int(rng.integers(len(BLOCK_NAMES) - 1))
    walk = np.zeros(ACTION_DIM, dtype=np.float32)

    def policy(e: Env, step: int) -> np.ndarray:
        t: TabletopEnv = e  # type: ignore[assignment]
        block0, plate = t.block_xy[t.target_block], t.plate_xy[t.target_plate]
        if kind == "random":
            if step % 8 == 0:
                walk[:3] = rng.uniform(-1.0, 1.0, size=3)
                walk[GRIPPER_DIM] = 1.0 if rng.random() < 0.2 else -1.0
            return walk.copy()
        if kind == "reach_only":
            from srpo.envs.tabletop import GRASP_HEIGHT

            aligned = float(np.abs(block0 - t.gripper_xyz[:2]).max()) < 0.02
            target = np.array([block0[0], block0[1], 0.3 if not aligned else 0.5 * GRASP_HEIGHT])
            return _tabletop_move(t, target, -1.0)
        if step == 0:  # the drop point, from the layout after reset
            if kind == "wrong_object":
                goal[:] = [plate.copy()]
            elif kind == "drop":
                goal[:] = [block0 + fraction * (plate - block0)]
            elif kind == "next_to_target":
                away = (block0 - plate) / max(float(np.linalg.norm(block0 - plate)), 1e-9)
                goal[:] = [np.clip(plate + (PLATE_RADIUS + margin) * away, 0.03, 0.97)]
            else:
                raise ValueError(f"tabletop failure kind {kind!r}: choose one of {TABLETOP_FAILURE_KINDS}")
        block = t.target_block
        if kind == "wrong_object":
            block = [b for b in range(len(BLOCK_NAMES)) if b != t.target_block][other]
        return _tabletop_pick_place(t, block, goal[0])

    if kind not in TABLETOP_FAILURE_KINDS or kind in FAILURE_KINDS:
        raise ValueError(f"tabletop failure kind {kind!r}: choose one of {TABLETOP_FAILURE_KINDS}")
    return policy


def tabletop_probe(env: Env) -> tuple[int, np.ndarray, np.ndarray]:
    """Stage (`TabletopEnv.stage`: none 0, reach 1, grasp 2, carry 3, place 4), gripper xyz and the task's block
    xyz (its z is the gripper's while held, else 0: it rests on the table)."""
    t: TabletopEnv = env  # type: ignore[assignment]
    gripper = t.gripper_xyz
    block = t.block_xy[t.target_block]
    z = gripper[2] if t.held_block == t.target_block else 0.0
    return int(t.stage), gripper, np.array([block[0], block[1], z])


def record_tabletop(task_ids: Sequence[int], num_success: int, num_failure: int, seed: int) -> LabelledSet:
    """`record_labelled_set` on the built-in tabletop env: scripted-expert successes and graded failures
    (TABLETOP_FAILURE_KINDS, in that order), every frame labelled with the env's stage and positions."""
    from srpo.envs.tabletop import TabletopEnvFactory

    factory = TabletopEnvFactory()
    num_tasks = len(factory.task_specs())
    bad = [t for t in task_ids if not 0 <= t < num_tasks]
    if bad:
        raise SrpoError(f"--tasks {bad} out of range: tabletop has tasks 0..{num_tasks - 1}")
    return record_labelled_set(
        factory,
        tabletop_expert(),
        task_ids,
        num_success,
        num_failure,
        seed,
        failure_kinds=TABLETOP_FAILURE_KINDS,
        failure_policy=tabletop_failure_policy,
        probe=tabletop_probe,
    )


def tabletop_expert() -> ExpertFn:
    """The tabletop env's privileged scripted expert (`srpo.envs.tabletop.tabletop_expert_action`) as an ExpertFn."""
    from srpo.envs.tabletop import tabletop_expert_action

    def expert(env: Env, step: int, noise: float, rng: np.random.Generator) -> np.ndarray:
        del step  # closed-loop on the state alone
        return tabletop_expert_action(env, noise, rng)  # type: ignore[arg-type]

    return expert


def scripted_expert(env_kind: str) -> ExpertFn:
    """The scripted expert of an env kind ("tabletop" or "libero")."""
    if env_kind == "tabletop":
        return tabletop_expert()
    if env_kind == "libero":
        return libero_expert()
    raise ValueError(f"env kind {env_kind!r} has no scripted expert: choose 'tabletop' or 'libero'")


def libero_expert() -> ExpertFn:
    """The scripted LIBERO pick-and-place controller (`srpo.envs.libero_scripted`) as an ExpertFn.

    A new controller starts (and plans its grasp side and travel height) at step 0 of every episode; noise is
    added to the translation dims and clipped.
    """
    from srpo.envs.libero_scripted import PickPlaceController

    controller: list[PickPlaceController] = []

    def expert(env: Env, step: int, noise: float, rng: np.random.Generator) -> np.ndarray:
        if step == 0 or not controller or controller[0].env is not env:
            controller[:] = [PickPlaceController(env)]  # type: ignore[arg-type]
            controller[0].reset()
        action = np.asarray(controller[0].act(), dtype=np.float32).copy()
        if noise > 0.0:
            action[:3] += rng.normal(0.0, noise, size=3).astype(np.float32)
        return np.clip(action, -1.0, 1.0)

    return expert


def libero_failure_policy(kind: str, env: Env, init_state: int, rng: np.random.Generator) -> PolicyFn | None:
    """Graded LIBERO failures scripted with `PickPlaceController` (the env's stage labels how far they got):

    * "random": a random walk (a new random direction every 10 steps, gripper closed 20 % of the time).
    * "wrong_object": picks another movable object and puts it on / in the target.
    * "reach_only": reaches the grasp point of the task's object and stays there, gripper open.
    * "drop": grasps and lifts the task's object, opens 5–40 steps into the carry.
    * "next_to_target": places the task's object 4–8 cm beyond the target's edge, in a random direction.

    Args:
        kind: One of LIBERO_FAILURE_KINDS other than "stall" and "noisy".
        env: A `LiberoEnv`.
        init_state: The initial state the episode starts from.
        rng: Draws the random choices.

    Returns:
        policy(env, step) → (7,) action, or None when the scene has no other movable object ("wrong_object").
    """
    from srpo.envs.libero_scripted import PickPlaceController

    del init_state
    if kind not in LIBERO_FAILURE_KINDS or kind in FAILURE_KINDS:
        raise ValueError(f"LIBERO failure kind {kind!r}: choose one of {LIBERO_FAILURE_KINDS}")
    libero: LiberoEnv = env  # type: ignore[assignment]
    objects = list(libero.robosuite_env.objects_dict)
    goal = PickPlaceController(libero).goal
    others = [name for name in objects if name not in (goal.obj, goal.target)]
    if kind == "wrong_object" and not others:
        return None
    other = others[int(rng.integers(len(others)))] if others else None
    angle = float(rng.uniform(0.0, 2.0 * np.pi))
    margin = float(rng.uniform(0.04, 0.08))
    drop_after = int(rng.integers(5, 41))
    walk = np.zeros(ACTION_DIM, dtype=np.float32)
    state: dict[str, Any] = {}

    def policy(e: Env, step: int) -> np.ndarray:
        if kind == "random":
            if step % 10 == 0:
                walk[:3] = rng.uniform(-1.0, 1.0, size=3)
                walk[GRIPPER_DIM] = 1.0 if rng.random() < 0.2 else -1.0
            return walk.copy()
        if step == 0:
            if kind == "wrong_object":
                controller = PickPlaceController(libero, obj=other)
            elif kind == "next_to_target":
                bounds = PickPlaceController(libero).target_bounds()
                half = 0.5 * float(np.max(bounds[1][:2] - bounds[0][:2])) if bounds is not None else 0.1
                offset = (half + margin) * np.array([np.cos(angle), np.sin(angle), 0.0])
                controller = PickPlaceController(libero, target_offset=offset)
            else:
                controller = PickPlaceController(libero)
            controller.reset()
            state.update(controller=controller, carry_steps=0, released=False)
        controller = state["controller"]
        action = np.asarray(controller.act(), dtype=np.float32)
        if kind == "reach_only" and controller.phase not in ("rise", "approach", "descend"):
            action = np.zeros(ACTION_DIM, dtype=np.float32)
            action[GRIPPER_DIM] = -1.0  # at the grasp point: stay, never close
        elif kind == "drop":
            if controller.phase == "carry":
                state["carry_steps"] += 1
            if state["released"] or state["carry_steps"] >= drop_after:
                state["released"] = True
                action = np.zeros(ACTION_DIM, dtype=np.float32)
                action[GRIPPER_DIM] = -1.0
        return np.clip(action, -1.0, 1.0)

    return policy


class LiberoProbe:
    """Stage and positions of a LIBERO pick-and-place task's object, from the simulator state.

    Stages: none 0, reach 1 (the gripper within 2 cm of the object's bounding box), grasp 2 (robosuite's grasp
    check: both fingers touch the object), lift 3 (grasped and the object's bottom 3 cm above where it rested
    after reset), place 4 (the BDDL goal holds). Positions: the end-effector and the object's bounding-box centre.
    """

    def __init__(self) -> None:
        self._rest_bottom: dict[int, float] = {}

    def __call__(self, env: Env) -> tuple[int, np.ndarray, np.ndarray]:
        from srpo.envs.libero_scripted import geometry_bounds, parse_pick_place_goal

        libero: LiberoEnv = env  # type: ignore[assignment]
        robosuite_env = libero.robosuite_env
        goal = parse_pick_place_goal(robosuite_env.parsed_problem["goal_state"])
        obj = robosuite_env.objects_dict[goal.obj]
        low, high = geometry_bounds(robosuite_env.sim, obj.root_body)
        eef = np.asarray(libero.raw_obs["robot0_eef_pos"], dtype=np.float64)
        centre = (low + high) / 2
        if libero.num_steps == 0:
            self._rest_bottom[id(env)] = float(low[2])
        if libero.check_success():
            return 4, eef, centre
        if robosuite_env._check_grasp(gripper=robosuite_env.robots[0].gripper, object_geoms=obj):
            lifted = float(low[2]) > self._rest_bottom.get(id(env), float(low[2])) + 0.03
            return (3 if lifted else 2), eef, centre
        gap = float(np.linalg.norm(np.maximum(0.0, np.maximum(low - eef, eef - high))))
        return (1 if gap < 0.02 else 0), eef, centre


def record_libero(
    suite: str, task_ids: Sequence[int], num_success: int, num_failure: int, seed: int, embed_size: int = 128,
    directory: str | Path | None = None, frame_stride: int = 1, init_split: str | None = None,
) -> LabelledSet:
    """`record_labelled_set` on LIBERO pick-and-place tasks with the scripted controller.

    Successes are noiseless (the controller's own success rate is the limit); failures cycle through
    LIBERO_FAILURE_KINDS ("noisy" uses translation noise 1.0, 5 cm set-point jitter per step), every frame
    labelled by `LiberoProbe`. Frames are the upright agentview render at `embed_size`² (rendering cost barely
    depends on the size; memory does), one every `frame_stride` steps. Task ids in the set are the suite's.

    Args:
        suite: LIBERO suite.
        task_ids: The suite's task indices.
        num_success: Successes per task.
        num_failure: Failures per task.
        seed: Recording seed.
        embed_size: Side of the recorded frames.
        directory: Write episodes there as they finish and resume from it (see `record_labelled_set`).
        frame_stride: Render a frame every this many control steps.
        init_split: "eval" draws initial states from the held-out split no training uses
            (`LiberoConfig.init_state_ids`), "train" from the training split; None from all 50.
    """
    from srpo.config.libero import LiberoConfig
    from srpo.envs.libero import LiberoEnvFactory

    config = LiberoConfig(suite=suite, task_ids=tuple(task_ids), embed_image_size=embed_size)  # type: ignore[arg-type]
    factory = LiberoEnvFactory(config)
    states = None if init_split is None else config.init_state_ids(init_split)  # type: ignore[arg-type]
    return record_labelled_set(
        factory, libero_expert(), list(range(len(task_ids))), num_success, num_failure, seed,
        success_noise=0.0, failure_noise=1.0, verbose=True, failure_kinds=LIBERO_FAILURE_KINDS,
        failure_policy=libero_failure_policy, probe=LiberoProbe(), init_state_ids=states, directory=directory,
        task_labels=list(config.resolved_task_ids), frame_stride=frame_stride,
    )
