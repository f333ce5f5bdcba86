"""`srpo reward-eval`: how good is an encoder's latent space as an SRPO progress reward?

Given labelled trajectories (videos + success + task ids), for each encoder:

  1. embed   every trajectory's growing prefixes video[:L_j], L_j = ceil(j · T / C), j = 1..C (C = num_cuts);
             the last cut is the whole trajectory, so its embedding is the trajectory's embedding.
  2. reward  the SRPO reward of every whole trajectory, self-referential per task: the reference set is the
             task's successes (`compute_progress_rewards`, reference_scope="task"; successes get 1.0).
  3. score   every whole trajectory — successes included — by the same shaped progress as a failure: its
             distance to the task's success centres, min–max normalised over all trajectories of the task, then
             scale · sigmoid(k · (offset − d_norm)). The actual reward gives every success exactly 1.0, which
             makes the success distribution a point mass and MMD / JS / SMD trivially large; the score compares
             what the latent space itself says about successes and failures. A success is part of its own
             reference set here, exactly as in SRPO's batches.
  4. curve   every prefix is scored the same way against the centres of the task's *whole* successes, with the
             min–max normalisation taken over all prefixes of all trajectories of that task, so the C points of
             one curve — and curves of one task — share one scale. A good latent space makes success curves
             rise towards the success cluster.
  5. metrics SC (Spearman of a curve with time) and Mono (share of non-decreasing steps), averaged over the
             successful trajectories (a failure's progress need not rise); MMD (RBF, median heuristic), JS
             divergence (20 shared bins) and SMD (Cohen's d) between the success and failure scores, pooled
             over tasks. A task without a success has no reference: its trajectories get no score or curve and
             are counted in `num_unreferenced`. AUROC: how often a success scores above a failure (pooled).
  6. labels  with a privileged progress label per trajectory (the furthest stage the simulator saw it reach,
             e.g. reach → grasp → carry/lift → place): Spearman between each failure's SRPO reward and its stage,
             pooled over tasks (`stage_rho`) and the mean of the per-task values (`stage_rho_task`). With a stage
             per frame, each failure's curve against the furthest stage within each prefix
             (`srpo.reward.quality.failure_curve_progress`): `fail_curve_rho` (Spearman of the two), `fail_rise`
             (curve gain until progress stops, > 0 is good) and `fail_after` (gain after it stopped, best ≈ 0).

Data sources:
  * `--data DIR`: a folder with `labels.csv` (header `path,success,task_id`; one row per trajectory; `path`
    relative to DIR; success 1/0/true/false) and one file per trajectory: `.npz` with a `frames` array
    (T, H, W, 3) uint8, or a video file (`.mp4`, read with imageio).
  * `--hdf5 FILE ...`: LIBERO / robomimic demo files (`srpo.demos.read_demos`; upright `agentview_rgb`
    frames, success from the file; task id from the file's `srpo_task_id`, else the file's position).
  * `--record tabletop|libero`: first record a labelled set into `--record-dir` (default OUTPUT/labelled, as
    npz + labels.csv with extra `kind` and `stage` columns, and per-frame `frame_stages`, `gripper_pos`,
    `object_pos` arrays in each npz) with a scripted expert — successes, plus graded failures, each labelled by
    the env's own success check and stage. "tabletop" is the built-in env (seconds): failures placed next to
    the plate, the wrong block moved, reached but never grasped, grasped and dropped, random motion, the expert
    stalling part-way, and a noisy expert. "libero" drives LIBERO pick-and-place tasks (`--suite`, `--tasks`)
    with `srpo.envs.libero_scripted.PickPlaceController` (about 0.2 s per rendered step on a small CPU, so
    minutes per task).

Recipe (real LIBERO trajectories, all three encoders; V-JEPA 2 needs local weights, see EncoderConfig.weights):

    MUJOCO_GL=egl srpo reward-eval --record libero --suite libero_spatial --tasks 0 1 \
        --num-success 6 --num-failure 6 --encoders efficientnet pixel vjepa2 --weights weights/vjepa2-vitg-fpc64-384 \
        --output-dir runs/reward_eval_libero
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from srpo.config.encoder import ENCODER_NAMES, EncoderConfig
from srpo.config.reward import RewardConfig
from srpo.provenance import provenance
from srpo.reward.quality import failure_curve_progress, spearman, stage_at_cuts
from srpo.types import ACTION_DIM, GRIPPER_DIM

if TYPE_CHECKING:
    from srpo.envs.base import Env, EnvFactory
    from srpo.envs.tabletop import TabletopEnv
    from srpo.reward.encoders.base import VideoEncoder

LABELS_FILE = "labels.csv"
LABEL_COLUMNS = ("path", "success", "task_id")
FRAMES_KEY = "frames"
# Optional per-frame label arrays of an .npz trajectory file (LabelledSet attributes of the same names).
FRAME_LABEL_KEYS = ("frame_stages", "gripper_pos", "object_pos")
# SC, Mono (success curves), MMD, JS, SMD, AUROC (success vs failure scores); with stage labels Spearman(failure
# reward, stage) pooled and mean over tasks; with per-frame stages the failure-curve progress metrics.
METRIC_NAMES = (
    "sc", "mono", "mmd", "js", "smd", "auroc", "stage_rho", "stage_rho_task", "fail_curve_rho", "fail_rise",
    "fail_after",
)
JS_BINS = 20
RECORD_SOURCES = ("tabletop", "libero")
FAILURE_KINDS = ("stall", "noisy")  # failure kinds any env with a scripted expert can act out
# Tabletop failures cycle through these, graded by how far they get (see `tabletop_failure_policy`).
TABLETOP_FAILURE_KINDS = ("next_to_target", "wrong_object", "reach_only", "drop", "random", "stall", "noisy")


@dataclass
class LabelledSet:
    """Trajectories to evaluate, optionally with the simulator's privileged progress labels.

    Attributes:
        videos: N arrays (T_i, H, W, 3) uint8, upright, T_i >= 1.
        success: (N,) bool.
        task_ids: (N,) int64.
        names: N identifiers (file names or demo keys).
        kinds: N recording kinds ("success", "stall", "drop", ...) or None.
        stages: (N,) int64 furthest progress stage each trajectory reached (env-specific scale, higher is
            further; e.g. tabletop none 0 → reach 1 → grasp 2 → carry 3 → place 4) or None.
        frame_stages: N arrays (T_i,) int64, the stage at every frame, or None.
        gripper_pos: N arrays (T_i, 3) float32, the gripper position at every frame, or None.
        object_pos: N arrays (T_i, 3) float32, the task's target object position at every frame, or None.
    """

    videos: list[np.ndarray]
    success: np.ndarray
    task_ids: np.ndarray
    names: list[str]
    kinds: list[str] | None = None
    stages: np.ndarray | None = None
    frame_stages: list[np.ndarray] | None = None
    gripper_pos: list[np.ndarray] | None = None
    object_pos: list[np.ndarray] | None = None

    def __post_init__(self) -> None:
        n = len(self.videos)
        if n == 0:
            raise ValueError("the labelled set is empty: give at least one success and one failure")
        if self.success.shape != (n,) or self.task_ids.shape != (n,) or len(self.names) != n:
            raise ValueError(
                f"labelled set: {n} videos but success {self.success.shape}, task_ids {self.task_ids.shape}, "
                f"{len(self.names)} names"
            )
        for name, video in zip(self.names, self.videos, strict=True):
            if video.ndim != 4 or video.shape[-1] != 3 or video.dtype != np.uint8:
                raise ValueError(f"{name}: frames must be (T, H, W, 3) uint8, got {video.shape} {video.dtype}")
            if video.shape[0] == 0:
                raise ValueError(f"{name}: trajectory has zero frames; remove it from the labelled set")
        if self.kinds is not None and len(self.kinds) != n:
            raise ValueError(f"labelled set: {n} videos but {len(self.kinds)} kinds")
        if self.stages is not None and np.shape(self.stages) != (n,):
            raise ValueError(f"labelled set: {n} videos but stages of shape {np.shape(self.stages)}")
        for label, per_frame, width in (
            ("frame_stages", self.frame_stages, None), ("gripper_pos", self.gripper_pos, 3),
            ("object_pos", self.object_pos, 3),
        ):
            if per_frame is None:
                continue
            if len(per_frame) != n:
                raise ValueError(f"labelled set: {n} videos but {len(per_frame)} {label} arrays")
            for name, video, arr in zip(self.names, self.videos, per_frame, strict=True):
                want = (video.shape[0],) if width is None else (video.shape[0], width)
                if arr.shape != want:
                    raise ValueError(f"{name}: {label} must have shape {want} (one row per frame), got {arr.shape}")

    def head(self, k: int) -> LabelledSet:
        """The first `k` trajectories, labels included."""

        def cut(values: list[Any] | None) -> list[Any] | None:
            return None if values is None else values[:k]

        return LabelledSet(
            self.videos[:k], self.success[:k], self.task_ids[:k], self.names[:k], cut(self.kinds),
            None if self.stages is None else self.stages[:k], cut(self.frame_stages), cut(self.gripper_pos),
            cut(self.object_pos),
        )


def _parse_bool(text: str, where: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes"):
        return True
    if value in ("0", "false", "no"):
        return False
    raise ValueError(f"{where}: success must be 1/0/true/false, got {text!r}")


def read_video_file(path: Path) -> np.ndarray:
    """Frames of one trajectory file: `.npz` (array `frames`) or a video file read with imageio.

    Returns:
        (T, H, W, 3) uint8.
    """
    if path.suffix == ".npz":
        with np.load(path) as data:
            if FRAMES_KEY not in data:
                raise ValueError(f"{path}: no '{FRAMES_KEY}' array (found {list(data.keys())})")
            return np.asarray(data[FRAMES_KEY])
    try:
        import imageio.v3 as iio
    except ImportError as err:
        raise ImportError("reading video files needs imageio[ffmpeg]: pip install 'srpo[logging]'") from err
    frames = np.asarray(iio.imread(path, index=None))
    if frames.ndim == 4 and frames.shape[-1] == 4:
        frames = frames[..., :3]  # drop alpha
    return np.ascontiguousarray(frames.astype(np.uint8, copy=False))


def _read_frame_labels(path: Path) -> dict[str, np.ndarray]:
    """The per-frame label arrays (FRAME_LABEL_KEYS) an `.npz` trajectory file holds; {} for other files."""
    if path.suffix != ".npz":
        return {}
    with np.load(path) as data:
        return {key: np.asarray(data[key]) for key in FRAME_LABEL_KEYS if key in data}


def load_folder(directory: str | Path) -> LabelledSet:
    """A labelled set from a folder with labels.csv (see the module docstring for the format).

    Optional columns `kind` and `stage` and optional per-frame arrays in the .npz files (`frame_stages`,
    `gripper_pos`, `object_pos`) become the set's progress labels when every trajectory has them.
    """
    root = Path(directory)
    labels = root / LABELS_FILE
    if not labels.is_file():
        raise ValueError(f"{root}: no {LABELS_FILE}; expected a CSV with header {','.join(LABEL_COLUMNS)}")
    videos, success, task_ids, names = [], [], [], []
    kinds: list[str] = []
    stages: list[int] = []
    per_frame: dict[str, list[np.ndarray]] = {key: [] for key in FRAME_LABEL_KEYS}
    with labels.open(newline="") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        missing = [c for c in LABEL_COLUMNS if c not in columns]
        if missing:
            raise ValueError(f"{labels}: missing column(s) {missing}; header must include {','.join(LABEL_COLUMNS)}")
        for line, row in enumerate(reader, start=2):
            where = f"{labels}:{line}"
            path = root / row["path"]
            if not path.is_file():
                raise ValueError(f"{where}: trajectory file {path} does not exist")
            videos.append(read_video_file(path))
            success.append(_parse_bool(row["success"], where))
            try:
                task_ids.append(int(row["task_id"]))
                if "stage" in columns:
                    stages.append(int(row["stage"]))
            except ValueError as err:
                raise ValueError(f"{where}: task_id and stage must be integers, got {row}") from err
            if "kind" in columns:
                kinds.append(row["kind"])
            for key, arr in _read_frame_labels(path).items():
                per_frame[key].append(arr)
            names.append(row["path"])
    n = len(videos)
    complete = {key: (arrs if len(arrs) == n else None) for key, arrs in per_frame.items()}
    return LabelledSet(
        videos, np.array(success, dtype=bool), np.array(task_ids, dtype=np.int64), names,
        kinds=kinds if "kind" in columns else None,
        stages=np.array(stages, dtype=np.int64) if "stage" in columns else None,
        frame_stages=complete["frame_stages"], gripper_pos=complete["gripper_pos"], object_pos=complete["object_pos"],
    )


def load_hdf5(paths: Sequence[str | Path], image_key: str = "agentview_rgb") -> LabelledSet:
    """A labelled set from LIBERO / robomimic demo files (one task per file)."""
    from srpo.demos import read_demos

    videos, success, task_ids, names = [], [], [], []
    for position, path in enumerate(paths):
        for i, demo in enumerate(read_demos(path, image_key=image_key)):
            videos.append(demo.images)
            success.append(demo.success)
            task_ids.append(demo.task_id if demo.task_id >= 0 else position)
            names.append(f"{Path(path).name}/demo_{i}")
    return LabelledSet(videos, np.array(success, dtype=bool), np.array(task_ids, dtype=np.int64), names)


def save_folder(data: LabelledSet, directory: str | Path, extra: dict[str, list[str]] | None = None) -> Path:
    """Write a labelled set as one .npz per trajectory plus labels.csv (readable by `load_folder`).

    The set's kinds and stages become the `kind` and `stage` columns, its per-frame labels arrays in the .npz
    files; `extra` adds further columns.
    """
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    columns: dict[str, list[Any]] = {}
    if data.kinds is not None:
        columns["kind"] = list(data.kinds)
    if data.stages is not None:
        columns["stage"] = [int(v) for v in data.stages]
    columns.update(extra or {})
    with (root / LABELS_FILE).open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*LABEL_COLUMNS, *columns])
        for i, video in enumerate(data.videos):
            name = f"traj_{i:05d}.npz"
            arrays = {FRAMES_KEY: video}
            for key, per_frame in (
                ("frame_stages", data.frame_stages), ("gripper_pos", data.gripper_pos), ("object_pos", data.object_pos)
            ):
                if per_frame is not None:
                    arrays[key] = per_frame[i]
            np.savez_compressed(root / name, **arrays)  # type: ignore[arg-type]
            writer.writerow([name, int(data.success[i]), int(data.task_ids[i]), *(v[i] for v in columns.values())])
    return root


# --- recording a labelled set with a scripted expert ----------------------------------------------------------


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


def _run_episode(
    env: Env, init_state_id: int, policy: PolicyFn, max_steps: int, probe: ProbeFn | None = None
) -> Episode:
    """Roll out `policy(env, step)` until success or `max_steps`; frames are the embed frame after reset and after
    every step, each labelled by `probe` when given."""
    obs = env.reset(init_state_id)
    if obs.embed_frame is None:
        raise RuntimeError("env.reset returned no embed_frame; the recorder needs the world-model camera")
    frames = [obs.embed_frame]
    labels = [probe(env)] if probe is not None else []
    for step in range(max_steps):
        obs = env.step(policy(env, step), render_policy=False, render_embed=True)
        assert obs.embed_frame is not None
        frames.append(obs.embed_frame)
        if probe is not None:
            labels.append(probe(env))
        if obs.success:
            break
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


def _expert_failure_policy(
    kind: str, env: Env, init_state: int, expert: ExpertFn, rng: np.random.Generator, noise: float, max_steps: int
) -> PolicyFn | None:
    """The env-independent failure kinds: "noisy" (the expert with heavy translation noise, near misses) and
    "stall" (see `_stalled_expert`)."""
    if kind == "noisy":
        return lambda e, step: expert(e, step, noise, rng)
    if kind != "stall":
        raise ValueError(f"no policy for failure kind {kind!r}: pass a failure_policy that knows it")
    # A clean run first tells how long the expert needs from this state; the stall cuts 20–80 % into it.
    clean = _run_episode(env, init_state, lambda e, step: expert(e, step, 0.0, rng), max_steps)
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
        task_ids: Tasks to record.
        num_success: Successes per task.
        num_failure: Failures per task.
        seed: Seeds initial states, noise, cut points and the failure policies.
        success_noise: Expert noise of the successes (diversity).
        failure_noise: Expert noise of the "noisy" failures.
        max_attempts_factor: Give up on a task after this many attempts per requested trajectory.
        verbose: Print one line per kept or discarded episode to stderr (LIBERO episodes take minutes).
        failure_kinds: The kinds failures cycle through.
        failure_policy: Acts out the kinds other than "stall" and "noisy".
        probe: Labels every frame with the env's stage and positions; with it the set carries `stages`,
            `frame_stages`, `gripper_pos` and `object_pos`.
        init_state_ids: Initial states to draw from (default: all of the task's).

    Returns:
        The labelled set, its `kinds` set ("success" or a failure kind).
    """
    rng = np.random.default_rng(seed)
    specs = factory.task_specs()
    episodes: list[Episode] = []
    tasks: list[int] = []
    kinds: list[str] = []
    for task_id in task_ids:
        spec = specs[task_id]
        pool = np.arange(spec.num_init_states) if init_state_ids is None else np.asarray(init_state_ids)
        env = factory.make(task_id)
        try:
            budget = max_attempts_factor * (num_success + num_failure)
            got_success = got_failure = 0
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
                    policy = lambda e, step: expert(e, step, success_noise, rng)  # noqa: E731
                elif kind in FAILURE_KINDS:
                    policy = _expert_failure_policy(kind, env, init_state, expert, rng, failure_noise, spec.max_steps)
                elif failure_policy is not None:
                    policy = failure_policy(kind, env, init_state, rng)
                else:
                    raise ValueError(f"failure kind {kind!r} needs a failure_policy")
                if policy is None:
                    continue
                episode = _run_episode(env, init_state, policy, spec.max_steps, probe)
                ok = episode.success
                if verbose:
                    verdict = "kept" if ok == (kind == "success") else "discarded"
                    stage = "" if episode.frame_stages is None else f", stage {int(episode.frame_stages.max())}"
                    print(f"task {task_id} init {init_state}: {kind} episode, {episode.frames.shape[0]} frames, "
                          f"success={ok}{stage} ({verdict})", file=sys.stderr, flush=True)
                if ok != (kind == "success"):
                    # The expert failed a success run, or a perturbed run succeeded anyway: discard it, so every
                    # kept trajectory's label is the env's own verdict and the requested counts hold.
                    continue
                episodes.append(episode)
                tasks.append(task_id)
                kinds.append(kind)
                got_success += ok
                got_failure += not ok
        finally:
            env.close()
    return _labelled_set(episodes, tasks, kinds)


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
    from srpo.envs.tabletop import TabletopEnvFactory, tabletop_expert_action

    factory = TabletopEnvFactory()
    num_tasks = len(factory.task_specs())
    bad = [t for t in task_ids if not 0 <= t < num_tasks]
    if bad:
        raise ValueError(f"--tasks {bad} out of range: tabletop has tasks 0..{num_tasks - 1}")
    return record_labelled_set(
        factory,
        lambda env, _step, noise, rng: tabletop_expert_action(env, noise, rng),  # type: ignore[arg-type]
        task_ids,
        num_success,
        num_failure,
        seed,
        failure_kinds=TABLETOP_FAILURE_KINDS,
        failure_policy=tabletop_failure_policy,
        probe=tabletop_probe,
    )


def libero_expert() -> ExpertFn:
    """The scripted LIBERO pick-and-place controller (`srpo.envs.libero_scripted`) as an ExpertFn.

    A new controller starts at step 0 of every episode; noise is added to the translation dims and clipped.
    """
    from srpo.envs.libero_scripted import PickPlaceController

    controller: list[PickPlaceController] = []

    def expert(env: Env, step: int, noise: float, rng: np.random.Generator) -> np.ndarray:
        if step == 0 or not controller or controller[0].env is not env:
            controller[:] = [PickPlaceController(env)]  # type: ignore[arg-type]
        action = np.asarray(controller[0].act(), dtype=np.float32).copy()
        if noise > 0.0:
            action[:3] += rng.normal(0.0, noise, size=3).astype(np.float32)
        return np.clip(action, -1.0, 1.0)

    return expert


def record_libero(
    suite: str, task_ids: Sequence[int], num_success: int, num_failure: int, seed: int, embed_size: int = 128
) -> LabelledSet:
    """`record_labelled_set` on LIBERO pick-and-place tasks with the scripted controller.

    Successes are noiseless (the controller's own success rate is the limit); "noisy" failures use translation
    noise 1.0 (5 cm set-point jitter per step). Frames are the upright agentview render at `embed_size`²
    (rendering cost barely depends on the size; memory does). Task ids in the set are the suite's.
    """
    from srpo.config.libero import LiberoConfig
    from srpo.envs.libero import LiberoEnvFactory

    config = LiberoConfig(suite=suite, task_ids=tuple(task_ids), embed_image_size=embed_size)  # type: ignore[arg-type]
    factory = LiberoEnvFactory(config)
    data = record_labelled_set(
        factory, libero_expert(), list(range(len(task_ids))), num_success, num_failure, seed,
        success_noise=0.0, failure_noise=1.0, verbose=True,
    )
    data.task_ids = np.asarray(config.resolved_task_ids, dtype=np.int64)[data.task_ids]
    return data


# --- evaluation -----------------------------------------------------------------------------------------------


def prefix_lengths(num_frames: int, num_cuts: int) -> np.ndarray:
    """Cut points L_j = ceil(j · T / C), j = 1..C: (C,) int64, non-decreasing, the last equal to T."""
    if num_frames < 1 or num_cuts < 1:
        raise ValueError(f"prefix_lengths needs num_frames >= 1 and num_cuts >= 1, got {num_frames}, {num_cuts}")
    return np.array([max(1, math.ceil(j * num_frames / num_cuts)) for j in range(1, num_cuts + 1)], dtype=np.int64)


def embed_prefixes(encoder: VideoEncoder, videos: Sequence[np.ndarray], num_cuts: int) -> np.ndarray:
    """(N, C, D) embeddings of every trajectory's C growing prefixes (the last is the whole trajectory).

    Encoders with an `encode_prefixes(video, lengths)` method (frame-wise ones, e.g. EfficientNet) embed each
    distinct frame once; the others embed the C prefix videos.
    """
    fast = getattr(encoder, "encode_prefixes", None)
    out = np.empty((len(videos), num_cuts, encoder.dim), dtype=np.float32)
    for i, video in enumerate(videos):
        lengths = prefix_lengths(video.shape[0], num_cuts)
        if fast is not None:
            out[i] = fast(video, [int(n) for n in lengths])
        else:
            out[i] = encoder.encode([video[:n] for n in lengths])
    return out


def score_against_successes(
    references: np.ndarray, candidates: np.ndarray, config: RewardConfig
) -> np.ndarray:
    """Shaped progress of candidates, treated as failures, against a reference set of successes.

    Args:
        references: (M, D) whole-success embeddings of one task, M >= 1.
        candidates: (n, D) embeddings to score (trajectories or prefixes); normalised among themselves.
        config: Reward configuration (centres, distance, normalisation, sigmoid).

    Returns:
        (n,) progress in (0, sigmoid_scale).
    """
    from srpo.reward.progress import compute_progress_rewards

    m, n = references.shape[0], candidates.shape[0]
    embeddings = np.concatenate([references, candidates]).astype(np.float64)
    success = np.concatenate([np.ones(m, dtype=bool), np.zeros(n, dtype=bool)])
    zeros = np.zeros(m + n, dtype=np.int64)
    out = compute_progress_rewards(embeddings, success, zeros, zeros, config)
    return np.asarray(out.diagnostics.progress[m:], dtype=np.float64)


@dataclass
class EncoderReport:
    """Everything reward-eval computes for one encoder.

    Attributes:
        name: Encoder name.
        dim: Embedding width.
        metrics: sc, mono, mmd, js, smd (NaN where undefined).
        rewards: (N,) SRPO reward of each whole trajectory (successes 1.0).
        scores: (N,) shaped progress of each whole trajectory (NaN without a reference success).
        curves: (N, C) progress of the growing prefixes (NaN rows without a reference success).
        embed_seconds: Wall time of embedding all prefixes.
        extra: Further numbers (success/failure curve metrics, counts).
    """

    name: str
    dim: int
    metrics: dict[str, float]
    rewards: np.ndarray
    scores: np.ndarray
    curves: np.ndarray
    embed_seconds: float
    extra: dict[str, float] = field(default_factory=dict)


def _mean_metric(curves: np.ndarray, fn: Callable[[np.ndarray], float]) -> float:
    values = [fn(c) for c in curves if np.isfinite(c).all()]
    return float(np.mean(values)) if values else float("nan")


def _stage_correlations(
    rewards: np.ndarray, stages: np.ndarray, task_ids: np.ndarray, failures: np.ndarray
) -> tuple[float, float, dict[int, float]]:
    """Spearman(reward, furthest stage) over the failures: pooled over tasks (SRPO rewards are normalised per
    task, so they share a scale), the mean over tasks, and each task's (NaN where a task's stages are all equal).
    """
    def rho(mask: np.ndarray) -> float:
        return spearman(rewards[mask], stages[mask]) if mask.sum() >= 2 else float("nan")

    per_task = {int(t): rho(failures & (task_ids == t)) for t in np.unique(task_ids[failures])}
    finite = [v for v in per_task.values() if math.isfinite(v)]
    return rho(failures), float(np.mean(finite)) if finite else float("nan"), per_task


def _failure_curve_metrics(
    curves: np.ndarray, frame_stages: Sequence[np.ndarray], failures: np.ndarray
) -> tuple[float, float, float]:
    """Means over the failures of `failure_curve_progress` (rho, rise, after); each is averaged over the
    failures where it is defined. Curve cut j covers frames[:L_j], as in `embed_prefixes`."""
    values: list[tuple[float, float, float]] = []
    for i in np.flatnonzero(failures):
        lengths = prefix_lengths(frame_stages[i].shape[0], curves.shape[1])
        values.append(failure_curve_progress(curves[i], stage_at_cuts(frame_stages[i], lengths)))
    out = []
    for k in range(3):
        finite = [v[k] for v in values if math.isfinite(v[k])]
        out.append(float(np.mean(finite)) if finite else float("nan"))
    return out[0], out[1], out[2]


def evaluate_embeddings(
    prefix_embeddings: np.ndarray, data: LabelledSet, config: RewardConfig, name: str = "", seconds: float = 0.0
) -> EncoderReport:
    """Rewards, scores, curves and metrics from (N, C, D) prefix embeddings (see the module docstring)."""
    from srpo.reward.progress import compute_progress_rewards
    from srpo.reward.quality import (
        auroc,
        js_divergence,
        mmd_rbf,
        monotonicity,
        spearman_vs_time,
        standardized_mean_difference,
    )

    n, num_cuts, dim = prefix_embeddings.shape
    whole = prefix_embeddings[:, -1].astype(np.float64)
    rewards = compute_progress_rewards(whole, data.success, data.task_ids, data.task_ids, config).rewards
    scores = np.full(n, np.nan)
    curves = np.full((n, num_cuts), np.nan)
    for task in np.unique(data.task_ids):
        rows = np.flatnonzero(data.task_ids == task)
        refs = whole[rows[data.success[rows]]]
        if refs.shape[0] == 0:
            continue
        scores[rows] = score_against_successes(refs, whole[rows], config)
        flat = prefix_embeddings[rows].reshape(-1, dim).astype(np.float64)
        curves[rows] = score_against_successes(refs, flat, config).reshape(rows.size, num_cuts)

    referenced = np.isfinite(scores)
    succ, fail = data.success & referenced, ~data.success & referenced
    metrics = dict.fromkeys(METRIC_NAMES, float("nan"))
    if num_cuts >= 2:
        metrics["sc"] = _mean_metric(curves[succ], spearman_vs_time)
        metrics["mono"] = _mean_metric(curves[succ], monotonicity)
    if succ.any() and fail.any():
        metrics["mmd"] = mmd_rbf(scores[succ], scores[fail])
        metrics["js"] = js_divergence(scores[succ], scores[fail], num_bins=JS_BINS)
        metrics["auroc"] = auroc(scores[succ], scores[fail])
        if succ.sum() + fail.sum() >= 3:
            metrics["smd"] = standardized_mean_difference(scores[succ], scores[fail])
    extra = {
        "sc_failures": _mean_metric(curves[fail], spearman_vs_time) if num_cuts >= 2 else float("nan"),
        "mono_failures": _mean_metric(curves[fail], monotonicity) if num_cuts >= 2 else float("nan"),
        "score_mean_success": float(scores[succ].mean()) if succ.any() else float("nan"),
        "score_mean_failure": float(scores[fail].mean()) if fail.any() else float("nan"),
        "reward_mean_failure": float(rewards[~data.success].mean()) if (~data.success).any() else float("nan"),
        "num_success": float(succ.sum()),
        "num_failure": float(fail.sum()),
        "num_unreferenced": float((~referenced).sum()),
    }
    if data.stages is not None:
        metrics["stage_rho"], metrics["stage_rho_task"], per_task = _stage_correlations(
            rewards, data.stages, data.task_ids, fail
        )
        extra.update({f"stage_rho_task{t}": v for t, v in per_task.items()})
    if data.frame_stages is not None and num_cuts >= 2:
        rho, rise, after = _failure_curve_metrics(curves, data.frame_stages, fail)
        metrics["fail_curve_rho"], metrics["fail_rise"], metrics["fail_after"] = rho, rise, after
    return EncoderReport(name, dim, metrics, rewards, scores, curves, seconds, extra)


def evaluate_encoder(
    encoder: VideoEncoder, data: LabelledSet, config: RewardConfig, num_cuts: int, name: str = ""
) -> EncoderReport:
    """Embed the prefixes of every trajectory with `encoder` and evaluate them."""
    start = time.perf_counter()
    prefixes = embed_prefixes(encoder, data.videos, num_cuts)
    seconds = time.perf_counter() - start
    return evaluate_embeddings(prefixes, data, config, name=name, seconds=seconds)


# Table columns: (metric key, header, width). AUROC and the stage metrics judge a reward against the labels.
TABLE_COLUMNS = (
    ("sc", "SC", 7), ("mono", "Mono", 7), ("mmd", "MMD", 7), ("js", "JS", 7), ("smd", "SMD", 8),
    ("auroc", "AUROC", 7), ("stage_rho", "rho_stg", 8), ("stage_rho_task", "rho_task", 9),
    ("fail_curve_rho", "f_rho", 7), ("fail_rise", "f_rise", 8), ("fail_after", "f_after", 8),
)


def format_table(reports: Sequence[EncoderReport]) -> str:
    """One row per encoder: SC, Mono, MMD, JS, SMD, AUROC, Spearman(failure reward, stage) pooled and mean over
    tasks, failure-curve rho / rise / after (see `srpo.reward.quality.failure_curve_progress`; higher is better
    except f_after, best near 0), plus width and embedding time. NaN where the set lacks the labels."""
    header = f"{'encoder':<16}{'dim':>7}" + "".join(f"{h:>{w}}" for _, h, w in TABLE_COLUMNS) + f"{'embed_s':>9}"
    lines = [header, "-" * len(header)]
    for r in reports:
        cells = "".join(f"{r.metrics.get(k, float('nan')):>{w}.3f}" for k, _, w in TABLE_COLUMNS)
        lines.append(f"{r.name:<16}{r.dim:>7}{cells}{r.embed_seconds:>9.1f}")
    return "\n".join(lines)


def _finite_or_none(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def report_json(reports: Sequence[EncoderReport], data: LabelledSet, settings: dict[str, Any]) -> dict[str, Any]:
    """A JSON-serialisable record of the evaluation (NaN/inf written as null)."""
    return {
        "settings": settings,
        "num_trajectories": len(data.videos),
        "num_success": int(data.success.sum()),
        "num_tasks": int(np.unique(data.task_ids).size),
        "encoders": {
            r.name: {
                "dim": r.dim,
                "metrics": {k: _finite_or_none(v) for k, v in r.metrics.items()},
                "extra": {k: _finite_or_none(v) for k, v in r.extra.items()},
                "embed_seconds": r.embed_seconds,
                "trajectories": [
                    {
                        "name": data.names[i],
                        "task_id": int(data.task_ids[i]),
                        "success": bool(data.success[i]),
                        "num_frames": int(data.videos[i].shape[0]),
                        "kind": None if data.kinds is None else data.kinds[i],
                        "stage": None if data.stages is None else int(data.stages[i]),
                        "reward": _finite_or_none(r.rewards[i]),
                        "score": _finite_or_none(r.scores[i]),
                        "curve": [_finite_or_none(v) for v in r.curves[i]],
                    }
                    for i in range(len(data.videos))
                ],
            }
            for r in reports
        },
    }


def plot_reports(reports: Sequence[EncoderReport], data: LabelledSet, path: str | Path) -> Path:
    """One row per encoder: progress curves over normalised time (successes vs failures, thin lines and means)
    and histograms of the whole-trajectory scores."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(reports), 2, figsize=(10, 3.2 * len(reports)), squeeze=False)
    for row, r in enumerate(reports):
        ax_curve, ax_hist = axes[row]
        t = np.arange(1, r.curves.shape[1] + 1) / r.curves.shape[1]
        finite = r.scores[np.isfinite(r.scores)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        bins = np.linspace(lo, hi if hi > lo else lo + 1.0, JS_BINS + 1)  # shared, as in the JS metric
        for label, mask, colour in (("success", data.success, "tab:green"), ("failure", ~data.success, "tab:red")):
            curves = r.curves[mask & np.isfinite(r.curves).all(axis=1)]
            for c in curves:
                ax_curve.plot(t, c, color=colour, alpha=0.15, linewidth=0.8)
            if len(curves):
                ax_curve.plot(t, curves.mean(axis=0), color=colour, linewidth=2.5, label=f"{label} (n={len(curves)})")
            scores = r.scores[mask & np.isfinite(r.scores)]
            if scores.size:
                ax_hist.hist(scores, bins=bins, alpha=0.6, color=colour, label=label)
        m = r.metrics
        ax_curve.set_title(f"{r.name}: prefix progress (SC {m['sc']:.2f}, Mono {m['mono']:.2f})", fontsize=10)
        ax_curve.set_xlabel("normalised time (prefix length / T)")
        ax_curve.set_ylabel("progress score")
        ax_curve.legend(fontsize=8)
        ax_hist.set_title(f"{r.name}: trajectory scores (SMD {m['smd']:.2f}, JS {m['js']:.2f})", fontsize=10)
        ax_hist.set_xlabel("progress score")
        ax_hist.legend(fontsize=8)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


# --- command --------------------------------------------------------------------------------------------------


def add_reward_eval_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `reward-eval` on an argparse subparsers object; sets `func=run_reward_eval`."""
    p = subparsers.add_parser(
        "reward-eval",
        help="reward quality (SC, Mono, MMD, JS, SMD, AUROC, stage Spearman) of world-model encoders on labelled "
        "trajectories",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help=f"folder with {LABELS_FILE} ({','.join(LABEL_COLUMNS)}) and .npz/.mp4 files")
    source.add_argument("--hdf5", nargs="+", help="LIBERO / robomimic demo files (one task per file)")
    source.add_argument("--record", choices=RECORD_SOURCES, help="record a labelled set with a scripted expert first")
    p.add_argument("--record-dir", help="where --record writes the labelled set (default: OUTPUT_DIR/labelled)")
    p.add_argument("--tasks", type=int, nargs="+", default=[0, 1], help="--record: task ids")
    p.add_argument("--num-success", type=int, default=8, help="--record: successes per task")
    p.add_argument("--num-failure", type=int, default=8, help="--record: failures per task")
    p.add_argument("--seed", type=int, default=0, help="--record: seed")
    p.add_argument("--suite", default="libero_spatial", help="--record libero: suite (pick-and-place tasks)")
    p.add_argument("--embed-size", type=int, default=128, help="--record libero: side of the recorded frames")
    p.add_argument("--image-key", default="agentview_rgb", help="--hdf5: obs dataset with the frames")
    p.add_argument("--encoders", nargs="+", choices=ENCODER_NAMES, default=["efficientnet", "pixel"])
    p.add_argument("--weights", help="V-JEPA 2 weights: local transformers dir, cached model id or vjepa2 .pt")
    p.add_argument("--num-frames", type=int, default=64, help="frames sampled per (prefix) video")
    p.add_argument("--num-cuts", type=int, default=10, help="points on each progress curve")
    p.add_argument("--rotate-180", action="store_true", help="rotate frames by 180° (raw LIBERO renders)")
    p.add_argument("--segments", type=int, default=1, help="EfficientNet temporal segments")
    p.add_argument("--crop-size", type=int, default=None,
                   help="input side of EfficientNet / V-JEPA 2 (encoder.crop_size; default: the model's own)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    p.add_argument("--batch-size", type=int, default=0, help="trajectories per forward (0: automatic)")
    p.add_argument("--reward-preset", choices=["official", "paper"], default="official")
    p.add_argument("--max-trajectories", type=int, help="evaluate only the first N trajectories")
    p.add_argument("--output-dir", default="runs/reward_eval", help="where the JSON and the plot go")
    p.add_argument("--no-plots", action="store_true", help="skip the matplotlib figure")
    p.set_defaults(func=run_reward_eval)
    return p


def _load(args: argparse.Namespace) -> LabelledSet:
    if args.record is not None:
        directory = Path(args.record_dir) if args.record_dir else Path(args.output_dir) / "labelled"
        start = time.perf_counter()
        if args.record == "tabletop":
            data = record_tabletop(args.tasks, args.num_success, args.num_failure, args.seed)
        elif args.record == "libero":
            data = record_libero(
                args.suite, args.tasks, args.num_success, args.num_failure, args.seed, args.embed_size
            )
        else:
            raise ValueError(f"--record {args.record!r}: choose one of {RECORD_SOURCES}")
        save_folder(data, directory)
        print(
            f"recorded {len(data.videos)} {args.record} trajectories ({int(data.success.sum())} successes) in "
            f"{time.perf_counter() - start:.1f}s → {directory}",
            file=sys.stderr,
        )
        return data
    if args.data is not None:
        return load_folder(args.data)
    return load_hdf5(args.hdf5, image_key=args.image_key)


def run_reward_eval(args: argparse.Namespace) -> int:
    """Run `srpo reward-eval`; returns the exit code (0 on success)."""
    from srpo.reward.encoders import make_encoder

    if args.num_cuts < 2:
        raise ValueError(f"--num-cuts={args.num_cuts} is invalid: set it to an int >= 2, e.g. 10")
    data = _load(args)
    if args.max_trajectories is not None:
        data = data.head(args.max_trajectories)
    if data.success.all() or not data.success.any():
        print("warning: the set has only successes or only failures; MMD, JS and SMD are undefined", file=sys.stderr)
    reward_config = RewardConfig.preset(args.reward_preset)
    reports = []
    for name in args.encoders:
        config = EncoderConfig(
            name=name,
            weights=args.weights if name == "vjepa2" else None,
            num_frames=args.num_frames,
            rotate_180=args.rotate_180,
            segments=args.segments if name == "efficientnet" else 1,
            device=args.device,
            batch_size=args.batch_size,
            crop_size=args.crop_size if name != "pixel" else None,
        )
        encoder = make_encoder(config)
        reports.append(evaluate_encoder(encoder, data, reward_config, args.num_cuts, name=name))
        print(f"{name}: embedded {len(data.videos)} × {args.num_cuts} prefixes in {reports[-1].embed_seconds:.1f}s",
              file=sys.stderr)
    print(
        f"\nReward quality on {len(data.videos)} trajectories ({int(data.success.sum())} successes, "
        f"{int(np.unique(data.task_ids).size)} tasks), {args.num_cuts}-point progress curves, "
        f"{args.reward_preset} reward (higher is better)"
    )
    print(format_table(reports))
    out_dir = Path(args.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = {
        k: v for k, v in vars(args).items() if k != "func" and isinstance(v, str | int | float | bool | list | None)
    }
    json_path = out_dir / "reward_eval.json"
    # The commit and command behind the numbers (issue #17: every result file says what made it).
    json_path.write_text(json.dumps({**report_json(reports, data, settings), "provenance": provenance()}, indent=1))
    print(f"wrote {json_path}", file=sys.stderr)
    if not args.no_plots:
        print(f"wrote {plot_reports(reports, data, out_dir / 'reward_eval.png')}", file=sys.stderr)
    return 0
