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
             reference set here, exactly as in SRPO's batches, except with `centres="nearest"`: there a
             success would be its own centre (distance 0), so each success is scored leave-one-out.
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

import json
import math
import sys
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from srpo.config.encoder import EncoderConfig
from srpo.config.reward import RewardConfig
from srpo.config.reward_eval import RewardEvalConfig
from srpo.config.train import config_to_dict
from srpo.errors import InputFileError, SrpoError
from srpo.provenance import provenance
from srpo.recording import LIBERO_FAILURE_KINDS, TABLETOP_FAILURE_KINDS, record_libero, record_tabletop
from srpo.reward.labelled import LABELS_FILE, LabelledSet, load_folder, save_folder
from srpo.reward.quality import (
    METRIC_NAMES,
    EncoderReport,
    evaluate_embeddings,
    prefix_lengths,
)

if TYPE_CHECKING:
    from srpo.reward.encoders.base import VideoEncoder

# The pieces reward-eval is built from, re-exported for callers that imported them from here.
__all__ = [
    "LIBERO_FAILURE_KINDS", "METRIC_NAMES", "TABLETOP_FAILURE_KINDS", "EncoderReport", "LabelledSet",
    "embed_prefixes", "evaluate_embeddings", "evaluate_encoder", "format_table",
    "load_folder", "load_hdf5", "prefix_lengths", "record_libero", "record_tabletop", "report_json",
    "run_reward_eval", "save_folder",
]


def load_hdf5(paths: Sequence[str | Path], image_key: str = "agentview_rgb") -> LabelledSet:
    """A labelled set from LIBERO / robomimic demo files (one task per file; task ids by `read_demo_files`)."""
    from srpo.demos import read_demo_files

    videos, success, task_ids, names = [], [], [], []
    for path, demos in zip(paths, read_demo_files(paths, image_key=image_key), strict=True):
        for i, demo in enumerate(demos):
            videos.append(demo.images)
            success.append(demo.success)
            task_ids.append(demo.task_id)
            names.append(f"{Path(path).name}/demo_{i}")
    return LabelledSet(videos, np.array(success, dtype=bool), np.array(task_ids, dtype=np.int64), names)


# --- evaluation -----------------------------------------------------------------------------------------------


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


# --- command --------------------------------------------------------------------------------------------------


def _load(cfg: RewardEvalConfig) -> LabelledSet:
    if cfg.record is not None:
        directory = Path(cfg.record_dir) if cfg.record_dir else Path(cfg.output_dir) / "labelled"
        start = time.perf_counter()
        if cfg.record == "tabletop":
            data = record_tabletop(list(cfg.tasks), cfg.num_success, cfg.num_failure, cfg.seed)
            save_folder(data, directory)
        else:
            data = record_libero(
                cfg.suite, list(cfg.tasks), cfg.num_success, cfg.num_failure, cfg.seed, cfg.embed_size,
                directory=directory, frame_stride=cfg.frame_stride, init_split=cfg.init_split,
            )
        print(
            f"recorded {len(data.videos)} {cfg.record} trajectories ({int(data.success.sum())} successes) in "
            f"{time.perf_counter() - start:.1f}s → {directory}",
            file=sys.stderr,
        )
        return data
    source = cfg.data if cfg.data is not None else " ".join(cfg.hdf5 or ())
    # The loaders' ValueErrors name the file and row; for the CLI they are input errors (one line, exit 2).
    try:
        data = load_folder(cfg.data) if cfg.data is not None else load_hdf5(list(cfg.hdf5 or ()), cfg.image_key)
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as err:
        if isinstance(err, SrpoError):
            raise
        reason = str(err) if isinstance(err, ValueError) else f"{source}: {type(err).__name__}: {err}"
        raise InputFileError(reason) from err
    if not data.videos:
        raise InputFileError(f"{source}: {LABELS_FILE} lists no trajectories")
    return data


def run_reward_eval(cfg: RewardEvalConfig) -> int:
    """Run `srpo reward-eval` (its flags map onto `cfg` in `srpo.cli`); returns the exit code (0 on success)."""
    from srpo.reward.encoders import make_encoder

    data = _load(cfg)
    if cfg.max_trajectories is not None:
        data = data.head(cfg.max_trajectories)
    if data.success.all() or not data.success.any():
        print("warning: the set has only successes or only failures; MMD, JS and SMD are undefined", file=sys.stderr)
    overrides: dict[str, object] = {"whiten": cfg.whiten}
    if cfg.centres is not None:
        overrides["centres"] = cfg.centres
    if cfg.alpha is not None:
        overrides["alpha"] = cfg.alpha
    reward_config = RewardConfig.preset(cfg.reward_preset, **overrides)
    # The row names the settings that differ from the preset, e.g. "efficientnet+white+nearest+alpha0.8".
    tags = ["white"] if cfg.whiten else []
    tags += [cfg.centres] if cfg.centres is not None else []
    tags += [f"alpha{cfg.alpha:g}"] if cfg.alpha is not None else []
    suffix = "".join(f"+{tag}" for tag in tags)
    reports = []
    for name in cfg.encoders:
        config = EncoderConfig(
            name=name,
            weights=cfg.weights if name == "vjepa2" else None,
            num_frames=cfg.num_frames,
            rotate_180=cfg.rotate_180,
            segments=cfg.segments if name == "efficientnet" else 1,
            device=cfg.device,
            batch_size=cfg.batch_size,
            crop_size=cfg.crop_size if name != "pixel" else None,
        )
        encoder = make_encoder(config)
        label = name + suffix
        reports.append(evaluate_encoder(encoder, data, reward_config, cfg.num_cuts, name=label))
        print(f"{name}: embedded {len(data.videos)} × {cfg.num_cuts} prefixes in {reports[-1].embed_seconds:.1f}s",
              file=sys.stderr)
    print(
        f"\nReward quality on {len(data.videos)} trajectories ({int(data.success.sum())} successes, "
        f"{int(np.unique(data.task_ids).size)} tasks), {cfg.num_cuts}-point progress curves, "
        f"{cfg.reward_preset} reward (higher is better)"
    )
    print(format_table(reports))
    out_dir = Path(cfg.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = config_to_dict(cfg)
    json_path = out_dir / "reward_eval.json"
    # The commit and command behind the numbers: every result file says what made it.
    json_path.write_text(json.dumps({**report_json(reports, data, settings), "provenance": provenance()}, indent=1))
    print(f"wrote {json_path}", file=sys.stderr)
    if cfg.plots:
        from srpo.reward.plots import plot_reports

        print(f"wrote {plot_reports(reports, data, out_dir / 'reward_eval.png')}", file=sys.stderr)
    return 0
