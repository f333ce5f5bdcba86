"""What `libero.render_quality="fast"` changes in the policy's image, and what it saves.

For each task, one env per quality renders the agentview of the same states (an init state after the settle
steps, then after a few scripted-free moves of the arm), at the policy's image size. Prints the render time per
frame and the pixel difference, and writes a small before/after PNG per task (full left, fast right, and the
absolute difference ×4 on the far right) plus JSON under benchmarks/results/.

    MUJOCO_GL=egl python benchmarks/render_quality.py [--size 128] [--tasks 0 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
# A move that brings the gripper over the table, so the frame shows the arm near objects and their reflections.
MOVE = np.array([0.4, 0.2, -0.4, 0.0, 0.0, 0.0, -1.0])


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
            for q in ("full", "fast")}
    out: dict[str, Any] = {"task_id": task_id, "frames": {}, "render_ms": {"full": [], "fast": []},
                           "mean_abs_diff": [], "frac_pixels_diff_gt_10": []}
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
            diff = np.abs(frames["full"].astype(np.int16) - frames["fast"].astype(np.int16))
            out["mean_abs_diff"].append(float(diff.mean()))
            out["frac_pixels_diff_gt_10"].append(float((diff.max(-1) > 10).mean()))
            out["frames"][stage] = frames
    finally:
        for env in envs.values():
            env.close()
    return out


def write_png(path: Path, rows: list[tuple[np.ndarray, np.ndarray]]) -> None:
    """One row per state: full | fast | |full − fast| × 4."""
    from PIL import Image

    lines = []
    for full, fast in rows:
        diff = np.clip(np.abs(full.astype(np.int16) - fast.astype(np.int16)) * 4, 0, 255).astype(np.uint8)
        gap = np.full((full.shape[0], 4, 3), 255, np.uint8)
        lines.append(np.concatenate([full, gap, fast, gap, diff], axis=1))
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
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])

    args.out_dir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"size": args.size, "init_state_id": args.init_state, "num_moves": args.moves,
                              "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                                          "mujoco_gl": os.environ.get("MUJOCO_GL"),
                                          "load_avg_1min": os.getloadavg()[0]},
                              "tasks": []}
    print(f"{'task':>4} {'state':>8} {'full ms':>8} {'fast ms':>8} {'mean|Δ|':>8} {'px |Δ|>10':>10}")
    for task_id in args.tasks:
        result = measure_task(task_id, args.size, args.init_state, args.moves, args.repeats)
        frames = result.pop("frames")
        png = args.out_dir / f"render_quality_task{task_id}.png"
        write_png(png, [(f["full"], f["fast"]) for f in frames.values()])
        result["png"] = png.name
        report["tasks"].append(result)
        times = result["render_ms"]
        for k, stage in enumerate(frames):
            print(f"{task_id:>4} {stage:>8} {times['full'][k]:>8.1f} {times['fast'][k]:>8.1f}"
                  f" {result['mean_abs_diff'][k]:>8.2f} {result['frac_pixels_diff_gt_10'][k]:>10.3f}", flush=True)
    full = np.mean([m for t in report["tasks"] for m in t["render_ms"]["full"]])
    fast = np.mean([m for t in report["tasks"] for m in t["render_ms"]["fast"]])
    report["mean_render_ms"] = {"full": float(full), "fast": float(fast)}
    report["speedup"] = float(full / fast)
    print(f"mean render: full {full:.1f} ms, fast {fast:.1f} ms ({full / fast:.2f}x)")
    path = args.out_dir / "render_quality.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
