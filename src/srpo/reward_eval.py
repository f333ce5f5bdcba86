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
             are counted in `num_unreferenced`.

Data sources:
  * `--data DIR`: a folder with `labels.csv` (header `path,success,task_id`; one row per trajectory; `path`
    relative to DIR; success 1/0/true/false) and one file per trajectory: `.npz` with a `frames` array
    (T, H, W, 3) uint8, or a video file (`.mp4`, read with imageio).
  * `--hdf5 FILE ...`: LIBERO / robomimic demo files (`srpo.demos.read_demos`; upright `agentview_rgb`
    frames, success from the file; task id from the file's `srpo_task_id`, else the file's position).
  * `--record tabletop|libero`: first record a labelled set into `--record-dir` (default OUTPUT/labelled, as
    npz + labels.csv with an extra `kind` column) with a scripted expert — successes, plus failures that stall
    after part of the task ("stall") or act under heavy noise ("noisy"), each labelled by the env's own success
    check — then evaluate it. "tabletop" is the built-in env (seconds); "libero" drives LIBERO pick-and-place
    tasks (`--suite`, `--tasks`) with `srpo.envs.libero_scripted.PickPlaceController` (about 0.2 s per rendered
    step on a small CPU, so minutes per task).

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
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from srpo.config.encoder import ENCODER_NAMES, EncoderConfig
from srpo.config.reward import RewardConfig
from srpo.errors import InputFileError, SrpoError
from srpo.types import ACTION_DIM, GRIPPER_DIM

if TYPE_CHECKING:
    from srpo.envs.base import Env, EnvFactory
    from srpo.reward.encoders.base import VideoEncoder

LABELS_FILE = "labels.csv"
LABEL_COLUMNS = ("path", "success", "task_id")
FRAMES_KEY = "frames"
METRIC_NAMES = ("sc", "mono", "mmd", "js", "smd")
JS_BINS = 20
RECORD_SOURCES = ("tabletop", "libero")
FAILURE_KINDS = ("stall", "noisy")


@dataclass
class LabelledSet:
    """Trajectories to evaluate.

    Attributes:
        videos: N arrays (T_i, H, W, 3) uint8, upright, T_i >= 1.
        success: (N,) bool.
        task_ids: (N,) int64.
        names: N identifiers (file names or demo keys).
    """

    videos: list[np.ndarray]
    success: np.ndarray
    task_ids: np.ndarray
    names: list[str]

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
        try:
            data = np.load(path, allow_pickle=False)
        except (OSError, EOFError, ValueError, zipfile.BadZipFile) as err:
            raise ValueError(f"{path} is not a readable .npz file ({type(err).__name__}: {err})") from err
        with data:
            if not hasattr(data, "files") or FRAMES_KEY not in data:
                raise ValueError(f"{path}: no '{FRAMES_KEY}' array (found {list(getattr(data, 'files', []))})")
            return np.asarray(data[FRAMES_KEY])
    try:
        import imageio.v3 as iio
    except ImportError as err:
        raise ImportError("reading video files needs imageio[ffmpeg]: pip install 'srpo[logging]'") from err
    frames = np.asarray(iio.imread(path, index=None))
    if frames.ndim == 4 and frames.shape[-1] == 4:
        frames = frames[..., :3]  # drop alpha
    return np.ascontiguousarray(frames.astype(np.uint8, copy=False))


def load_folder(directory: str | Path) -> LabelledSet:
    """A labelled set from a folder with labels.csv (see the module docstring for the format)."""
    root = Path(directory)
    labels = root / LABELS_FILE
    if not labels.is_file():
        raise ValueError(f"{root}: no {LABELS_FILE}; expected a CSV with header {','.join(LABEL_COLUMNS)}")
    videos, success, task_ids, names = [], [], [], []
    with labels.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in LABEL_COLUMNS if c not in (reader.fieldnames or [])]
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
            except ValueError as err:
                raise ValueError(f"{where}: task_id must be an integer, got {row['task_id']!r}") from err
            names.append(row["path"])
    return LabelledSet(videos, np.array(success, dtype=bool), np.array(task_ids, dtype=np.int64), names)


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
    """Write a labelled set as one .npz per trajectory plus labels.csv (readable by `load_folder`)."""
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    extra = extra or {}
    with (root / LABELS_FILE).open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*LABEL_COLUMNS, *extra])
        for i, video in enumerate(data.videos):
            name = f"traj_{i:05d}.npz"
            np.savez_compressed(root / name, **{FRAMES_KEY: video})
            writer.writerow([name, int(data.success[i]), int(data.task_ids[i]), *(v[i] for v in extra.values())])
    return root


# --- recording a labelled set with a scripted expert ----------------------------------------------------------


# expert(env, step, noise_std, rng) → (7,) action; `step` is 0 on the first action after env.reset, so a stateful
# controller can restart there.
ExpertFn = Callable[["Env", int, float, np.random.Generator], np.ndarray]


def _run_episode(
    env: Env, init_state_id: int, policy: Callable[[Env, int], np.ndarray], max_steps: int
) -> tuple[np.ndarray, bool]:
    """Roll out `policy(env, step)`; frames are the embed frame after reset and after every step."""
    obs = env.reset(init_state_id)
    if obs.embed_frame is None:
        raise RuntimeError("env.reset returned no embed_frame; the recorder needs the world-model camera")
    frames = [obs.embed_frame]
    for step in range(max_steps):
        obs = env.step(policy(env, step), render_policy=False, render_embed=True)
        assert obs.embed_frame is not None
        frames.append(obs.embed_frame)
        if obs.success:
            break
    return np.stack(frames), bool(obs.success)


def _stalled_expert(expert: ExpertFn, cut: int, rng: np.random.Generator) -> Callable[[Env, int], np.ndarray]:
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


def _record_episode(
    env: Env, kind: str, init_state: int, expert: ExpertFn, rng: np.random.Generator, noise: float, max_steps: int
) -> tuple[np.ndarray, bool] | None:
    """One episode of `kind` ("success" / "noisy": the expert with `noise`; "stall": see `_stalled_expert`)."""
    if kind in ("success", "noisy"):
        return _run_episode(env, init_state, lambda e, step: expert(e, step, noise, rng), max_steps)
    # A clean run first tells how long the expert needs from this state; the stall cuts 20–80 % into it.
    clean, clean_ok = _run_episode(env, init_state, lambda e, step: expert(e, step, 0.0, rng), max_steps)
    if not clean_ok:
        return None
    cut = max(1, int(rng.uniform(0.2, 0.8) * (clean.shape[0] - 1)))
    return _run_episode(env, init_state, _stalled_expert(expert, cut, rng), max_steps)


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
) -> tuple[LabelledSet, list[str]]:
    """Record scripted successes and perturbed failures per task.

    Failures alternate between two kinds, both labelled by the env (an episode that succeeds anyway is
    discarded): "stall" runs the expert for a random 20–80 % of its own success length and then stops moving,
    keeping its gripper command, until the horizon (progress stops part-way; a full-length video like a real
    failure); "noisy" runs the expert with heavy translation noise.

    Args:
        factory: Builds one env per task (`Env` protocol; the embed camera must render).
        expert: expert(env, step, noise_std, rng) → (7,) action, closed-loop on the env's state.
        task_ids: Tasks to record.
        num_success: Successes per task.
        num_failure: Failures per task.
        seed: Seeds initial states, noise and cut points.
        success_noise: Expert noise of the successes (diversity).
        failure_noise: Expert noise of the "noisy" failures.
        max_attempts_factor: Give up on a task after this many attempts per requested trajectory.
        verbose: Print one line per kept or discarded episode to stderr (LIBERO episodes take minutes).

    Returns:
        The labelled set and each trajectory's kind ("success", "stall" or "noisy").
    """
    rng = np.random.default_rng(seed)
    specs = factory.task_specs()
    videos: list[np.ndarray] = []
    success: list[bool] = []
    tasks: list[int] = []
    kinds: list[str] = []
    for task_id in task_ids:
        spec = specs[task_id]
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
                init_state = int(rng.integers(spec.num_init_states))
                want_success = got_success < num_success
                kind = "success" if want_success else FAILURE_KINDS[got_failure % len(FAILURE_KINDS)]
                noise = success_noise if kind == "success" else failure_noise
                episode = _record_episode(env, kind, init_state, expert, rng, noise, spec.max_steps)
                if episode is None:
                    continue
                frames, ok = episode
                if verbose:
                    verdict = "kept" if ok == (kind == "success") else "discarded"
                    print(f"task {task_id} init {init_state}: {kind} episode, {frames.shape[0]} frames, "
                          f"success={ok} ({verdict})", file=sys.stderr)
                if ok != (kind == "success"):
                    # The expert failed a success run, or a perturbed run succeeded anyway: discard it, so every
                    # kept trajectory's label is the env's own verdict and the requested counts hold.
                    continue
                videos.append(frames)
                success.append(ok)
                tasks.append(task_id)
                kinds.append(kind)
                got_success += ok
                got_failure += not ok
        finally:
            env.close()
    names = [f"task{t}_{i:04d}_{k}" for i, (t, k) in enumerate(zip(tasks, kinds, strict=True))]
    data = LabelledSet(videos, np.array(success, dtype=bool), np.array(tasks, dtype=np.int64), names)
    return data, kinds


def record_tabletop(
    task_ids: Sequence[int], num_success: int, num_failure: int, seed: int
) -> tuple[LabelledSet, list[str]]:
    """`record_labelled_set` on the built-in tabletop env with its scripted expert."""
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
) -> tuple[LabelledSet, list[str]]:
    """`record_labelled_set` on LIBERO pick-and-place tasks with the scripted controller.

    Successes are noiseless (the controller's own success rate is the limit); "noisy" failures use translation
    noise 1.0 (5 cm set-point jitter per step). Frames are the upright agentview render at `embed_size`²
    (rendering cost barely depends on the size; memory does). Task ids in the set are the suite's.
    """
    from srpo.config.libero import LiberoConfig
    from srpo.envs.libero import LiberoEnvFactory

    config = LiberoConfig(suite=suite, task_ids=tuple(task_ids), embed_image_size=embed_size)  # type: ignore[arg-type]
    factory = LiberoEnvFactory(config)
    data, kinds = record_labelled_set(
        factory, libero_expert(), list(range(len(task_ids))), num_success, num_failure, seed,
        success_noise=0.0, failure_noise=1.0, verbose=True,
    )
    data.task_ids = np.asarray(config.resolved_task_ids, dtype=np.int64)[data.task_ids]
    return data, kinds


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


def evaluate_embeddings(
    prefix_embeddings: np.ndarray, data: LabelledSet, config: RewardConfig, name: str = "", seconds: float = 0.0
) -> EncoderReport:
    """Rewards, scores, curves and metrics from (N, C, D) prefix embeddings (see the module docstring)."""
    from srpo.reward.progress import compute_progress_rewards
    from srpo.reward.quality import (
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
    metrics = {
        "sc": _mean_metric(curves[succ], spearman_vs_time) if num_cuts >= 2 else float("nan"),
        "mono": _mean_metric(curves[succ], monotonicity) if num_cuts >= 2 else float("nan"),
        "mmd": float("nan"),
        "js": float("nan"),
        "smd": float("nan"),
    }
    if succ.any() and fail.any():
        metrics["mmd"] = mmd_rbf(scores[succ], scores[fail])
        metrics["js"] = js_divergence(scores[succ], scores[fail], num_bins=JS_BINS)
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
    return EncoderReport(name, dim, metrics, rewards, scores, curves, seconds, extra)


def evaluate_encoder(
    encoder: VideoEncoder, data: LabelledSet, config: RewardConfig, num_cuts: int, name: str = ""
) -> EncoderReport:
    """Embed the prefixes of every trajectory with `encoder` and evaluate them."""
    start = time.perf_counter()
    prefixes = embed_prefixes(encoder, data.videos, num_cuts)
    seconds = time.perf_counter() - start
    return evaluate_embeddings(prefixes, data, config, name=name, seconds=seconds)


def format_table(reports: Sequence[EncoderReport]) -> str:
    """One row per encoder: SC, Mono, MMD, JS, SMD (higher is better), plus width and embedding time."""
    header = f"{'encoder':<14}{'dim':>7}{'SC':>8}{'Mono':>8}{'MMD':>8}{'JS':>8}{'SMD':>9}{'embed_s':>9}"
    lines = [header, "-" * len(header)]
    for r in reports:
        m = r.metrics
        lines.append(
            f"{r.name:<14}{r.dim:>7}{m['sc']:>8.3f}{m['mono']:>8.3f}{m['mmd']:>8.3f}{m['js']:>8.3f}"
            f"{m['smd']:>9.3f}{r.embed_seconds:>9.1f}"
        )
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
        help="reward quality (SC, Mono, MMD, JS, SMD) of world-model encoders on labelled trajectories",
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
            data, kinds = record_tabletop(args.tasks, args.num_success, args.num_failure, args.seed)
        elif args.record == "libero":
            data, kinds = record_libero(
                args.suite, args.tasks, args.num_success, args.num_failure, args.seed, args.embed_size
            )
        else:
            raise ValueError(f"--record {args.record!r}: choose one of {RECORD_SOURCES}")
        save_folder(data, directory, extra={"kind": kinds})
        print(
            f"recorded {len(data.videos)} {args.record} trajectories ({int(data.success.sum())} successes) in "
            f"{time.perf_counter() - start:.1f}s → {directory}",
            file=sys.stderr,
        )
        return data
    # The loaders' ValueErrors name the file and row; for the CLI they are input errors (one line, exit 2).
    try:
        data = load_folder(args.data) if args.data is not None else load_hdf5(args.hdf5, image_key=args.image_key)
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as err:
        if isinstance(err, SrpoError):
            raise
        source = args.data if args.data is not None else " ".join(args.hdf5)
        reason = str(err) if isinstance(err, ValueError) else f"{source}: {type(err).__name__}: {err}"
        raise InputFileError(reason) from err
    if not data.videos:
        raise InputFileError(f"{args.data or ' '.join(args.hdf5)}: {LABELS_FILE} lists no trajectories")
    return data


def run_reward_eval(args: argparse.Namespace) -> int:
    """Run `srpo reward-eval`; returns the exit code (0 on success)."""
    from srpo.reward.encoders import make_encoder

    if args.num_cuts < 2:
        raise SrpoError(f"--num-cuts={args.num_cuts} is invalid: set it to an int >= 2, e.g. 10")
    data = _load(args)
    if args.max_trajectories is not None:
        k = args.max_trajectories
        data = LabelledSet(data.videos[:k], data.success[:k], data.task_ids[:k], data.names[:k])
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
    json_path.write_text(json.dumps(report_json(reports, data, settings), indent=1))
    print(f"wrote {json_path}", file=sys.stderr)
    if not args.no_plots:
        print(f"wrote {plot_reports(reports, data, out_dir / 'reward_eval.png')}", file=sys.stderr)
    return 0
