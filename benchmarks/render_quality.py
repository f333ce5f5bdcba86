"""What `libero.render_quality` "fast" and "lean" change in the policy's image, and what they save.

For each task, one env per quality ("full", "fast", "lean") renders the agentview of the same states (an init
state after the settle steps, then after a few scripted-free moves of the arm), at the policy's image size.
Prints the render time per frame and the pixel differences (full vs fast, and fast vs lean: what the mesh
simplification adds), and writes a small before/after PNG per task (full | fast | lean | |full − fast| × 4 |
|fast − lean| × 4, one row per state) plus JSON under benchmarks/results/. Physics is the same in all three
(the envs take the same actions; the JSON records the largest state difference).

    MUJOCO_GL=egl python benchmarks/render_quality.py [--size 128] [--tasks 0 1]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, get_args

import numpy as np

from bench_common import machine_info, use_headless_gl, write_report
from srpo.config.libero import RenderQuality

RESULTS = Path(__file__).resolve().parent / "results"
# A move that brings the gripper over the table, so the frame shows the arm near objects and their reflections.
MOVE = np.array([0.4, 0.2, -0.4, 0.0, 0.0, 0.0, -1.0])
QUALITIES: tuple[str, ...] = get_args(RenderQuality)
# Image differences reported: what "fast" changes against LIBERO's own frames, and what "lean" adds to "fast".
PAIRS = ("full-fast", "fast-lean")


def _timed_render(env: Any, size: int, repeats: int) -> tuple[np.ndarray, float]:
    env.render_camera("agentview", size)  # the first call applies the settings (fast: rebuilds the context)
    start = time.perf_counter()
    for _ in range(repeats):
        image = env.render_camera("agentview", size)
    return image, (time.perf_counter() - start) / repeats


def measure_task(task_id: int, size: int, init_state_id: int, num_moves: int, repeats: int) -> dict[str, Any]:
    """Render the same two states at both qualities; return times, differences and the frames."""
    from srpo.config.libero import LiberoConfig
    from srpo.envs.libero import LiberoEnv

    envs = {q: LiberoEnv(LiberoConfig(task_ids=(task_id,), image_size=size, embed_image_size=size,
                                      render_quality=q), 0)
            for q in QUALITIES}
    out: dict[str, Any] = {"task_id": task_id, "frames": {}, "render_ms": {q: [] for q in QUALITIES},
                           "mean_abs_diff": {p: [] for p in PAIRS}, "frac_pixels_diff_gt_10": {p: [] for p in PAIRS},
                           "max_state_diff": 0.0}
    try:
        for env in envs.values():
            env.reset(init_state_id)
        for stage in ("settled", "moved"):
            if stage == "moved":
                for env in envs.values():
                    for _ in range(num_moves):
                        env.step(MOVE, render_policy=False, render_embed=False)
            frames = {}
            for quality, env in envs.items():
                frames[quality], seconds = _timed_render(env, size, repeats)
                out["render_ms"][quality].append(1000 * seconds)
            for pair in PAIRS:
                a, b = pair.split("-")
                diff = np.abs(frames[a].astype(np.int16) - frames[b].astype(np.int16))
                out["mean_abs_diff"][pair].append(float(diff.mean()))
                out["frac_pixels_diff_gt_10"][pair].append(float((diff.max(-1) > 10).mean()))
            states = [env.raw_obs["robot0_eef_pos"] for env in envs.values()]
            out["max_state_diff"] = max(out["max_state_diff"], float(np.ptp(np.stack(states), axis=0).max()))
            out["frames"][stage] = frames
    finally:
        for env in envs.values():
            env.close()
    return out


def write_png(path: Path, rows: list[dict[str, np.ndarray]]) -> None:
    """One row per state: full | fast | lean | |full − fast| × 4 | |fast − lean| × 4."""
    from PIL import Image

    lines = []
    for frames in rows:
        gap = np.full((frames["full"].shape[0], 4, 3), 255, np.uint8)
        tiles = [frames[q] for q in QUALITIES]
        for pair in PAIRS:
            a, b = pair.split("-")
            tiles.append(np.clip(np.abs(frames[a].astype(np.int16) - frames[b].astype(np.int16)) * 4, 0,
                                 255).astype(np.uint8))
        lines.append(np.concatenate([x for tile in tiles for x in (tile, gap)][:-1], axis=1))
    Image.fromarray(np.concatenate(lines, axis=0)).save(path, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=128, help="image side (the cpu preset renders 128²)")
    parser.add_argument("--tasks", type=int, nargs="+", default=[0, 1], help="libero_spatial task ids")
    parser.add_argument("--init-state", type=int, default=40, help="an evaluation init state")
    parser.add_argument("--moves", type=int, default=25, help="env steps of MOVE before the second frame")
    parser.add_argument("--repeats", type=int, default=10, help="renders timed per frame")
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    args = parser.parse_args()
    use_headless_gl()

    args.out_dir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"size": args.size, "init_state_id": args.init_state, "num_moves": args.moves,
                              "machine": machine_info(),
                              "tasks": []}
    print(f"{'task':>4} {'state':>8} {'full ms':>8} {'fast ms':>8} {'lean ms':>8}   full→fast mean|Δ| px|Δ|>10"
          f"   fast→lean mean|Δ| px|Δ|>10")
    for task_id in args.tasks:
        result = measure_task(task_id, args.size, args.init_state, args.moves, args.repeats)
        frames = result.pop("frames")
        png = args.out_dir / f"render_quality_task{task_id}.png"
        write_png(png, list(frames.values()))
        result["png"] = png.name
        report["tasks"].append(result)
        times = result["render_ms"]
        for k, stage in enumerate(frames):
            diffs = "".join(f" {result['mean_abs_diff'][p][k]:>17.2f} {result['frac_pixels_diff_gt_10'][p][k]:>9.3f}"
                            for p in PAIRS)
            print(f"{task_id:>4} {stage:>8}" + "".join(f" {times[q][k]:>8.1f}" for q in QUALITIES) + diffs,
                  flush=True)
    mean_ms = {q: float(np.mean([m for t in report["tasks"] for m in t["render_ms"][q]])) for q in QUALITIES}
    report["mean_render_ms"] = mean_ms
    report["speedup"] = {"fast_vs_full": mean_ms["full"] / mean_ms["fast"],
                         "lean_vs_fast": mean_ms["fast"] / mean_ms["lean"],
                         "lean_vs_full": mean_ms["full"] / mean_ms["lean"]}
    print("mean render: " + ", ".join(f"{q} {ms:.1f} ms" for q, ms in mean_ms.items())
          + f" (fast {report['speedup']['fast_vs_full']:.2f}x full, lean {report['speedup']['lean_vs_fast']:.2f}x"
          " fast)")
    path = args.out_dir / "render_quality.json"
    write_report(path, report)


if __name__ == "__main__":
    main()
