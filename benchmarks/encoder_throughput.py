"""Encoder throughput: trajectories per second of each world-model encoder.

CPU mode (default): every encoder at its default settings (64 frames per trajectory) on this machine's CPU.
EfficientNet-lite0 and the pixel baseline are timed end to end (sampling, preprocessing, network). V-JEPA 2 at
default shape is far too slow to time whole on a small CPU, so its time is assembled from measured parts: the
preprocessing of one 64-frame clip plus the forward of a one-layer ViT-L/16 at 256² on the full 64-frame token
sequence, times 24 layers (every layer has the same cost). Random weights; timings do not depend on them.

GPU mode (--gpu): V-JEPA 2 ViT-L/16 at 256² and ViT-g/16 at 384² (the official SRPO encoder), random weights,
bf16 autocast with SDPA, through `VJEPA2Encoder.encode` (uint8 videos in, including preprocessing on the GPU):
trajectories/s, and the encoder forward alone: achieved TFLOP/s against --peak-tflops (dense bf16 of the card;
989 for an H100 SXM). Fails with a clear message without CUDA.

    python benchmarks/encoder_throughput.py                 # CPU, writes the "cpu" section
    python benchmarks/encoder_throughput.py --gpu --peak-tflops 989   # writes the "gpu" section

Results go to benchmarks/results/encoder_throughput.json (each mode replaces only its own section).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from srpo.config.encoder import EncoderConfig
from srpo.reward.encoders import make_encoder
from srpo.reward.frames import preprocess_frames, sample_frames

RESULTS = Path(__file__).parent / "results" / "encoder_throughput.json"
NUM_FRAMES = 64
# Trajectory videos as LIBERO records them for the embedding: 256² renders; 150 steps is a typical episode.
VIDEO_FRAMES = 150
VIDEO_SIZE = 256

# Published V-JEPA 2 encoder shapes (facebook/vjepa2-vitl-fpc64-256, facebook/vjepa2-vitg-fpc64-384).
VJEPA2_SHAPES: dict[str, dict[str, Any]] = {
    "vitl-256": {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16, "mlp_ratio": 4.0,
                 "crop_size": 256},
    "vitg-384": {"hidden_size": 1408, "num_hidden_layers": 40, "num_attention_heads": 22, "mlp_ratio": 48 / 11,
                 "crop_size": 384},
}


def vjepa2_flops(hidden: int, layers: int, mlp_hidden: int, crop: int, num_frames: int, patch: int = 16,
                 tubelet: int = 2) -> float:
    """Forward FLOPs of the V-JEPA 2 encoder on one clip (a multiply-add counts 2).

    Per layer: qkv 6ND², output projection 2ND², MLP 4N·D·H, attention scores and weighted sum 4N²D; plus the
    tubelet patch embedding 2N·(3·t·p²)·D. N = (frames / t) · (crop / p)².
    """
    n = (num_frames // tubelet) * (crop // patch) ** 2
    per_layer = 8 * n * hidden**2 + 4 * n * hidden * mlp_hidden + 4 * n * n * hidden
    patch_embed = 2 * n * 3 * tubelet * patch * patch * hidden
    return float(layers * per_layer + patch_embed)


def _videos(num: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (VIDEO_FRAMES, VIDEO_SIZE, VIDEO_SIZE, 3), dtype=np.uint8) for _ in range(num)]


CPU_SECONDS: list[float] = []


def _time(fn: Callable[[], object], repeats: int, sync: bool = False) -> float:
    """Best-of-`repeats` wall time of fn() after one warm-up call.

    Also appends the process CPU time of that best run to CPU_SECONDS: on a shared machine the wall time
    includes waiting for cores, the CPU time does not.
    """
    fn()
    best, best_cpu = float("inf"), float("nan")
    for _ in range(repeats):
        if sync:
            torch.cuda.synchronize()
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        if sync:
            torch.cuda.synchronize()
        wall = time.perf_counter() - start
        if wall < best:
            best, best_cpu = wall, time.process_time() - start_cpu
    CPU_SECONDS.append(best_cpu)
    return best


def _vjepa2_model(shape: dict[str, Any], num_layers: int | None = None) -> Any:
    """A randomly initialised VJEPA2Model of `shape` (optionally with fewer layers), SDPA attention, eval mode."""
    from transformers import VJEPA2Config, VJEPA2Model

    kwargs = dict(shape)
    if num_layers is not None:
        kwargs["num_hidden_layers"] = num_layers
    config = VJEPA2Config(frames_per_clip=NUM_FRAMES, pred_num_hidden_layers=1, pred_hidden_size=64,
                          pred_num_attention_heads=2, num_pooler_layers=1, **kwargs)
    config._attn_implementation = "sdpa"
    return VJEPA2Model(config).eval()


def run_cpu(repeats: int) -> list[dict[str, Any]]:
    """Trajectories/s of each encoder at default settings on the CPU."""
    from srpo.reward.encoders.vjepa2 import VJEPA2Encoder

    results = []
    for config, num_videos in ((EncoderConfig(name="pixel", device="cpu"), 4),
                               (EncoderConfig(name="efficientnet", device="cpu"), 2)):
        name = config.name
        encoder = make_encoder(config)
        videos = _videos(num_videos)
        seconds = _time(lambda enc=encoder, v=videos: enc.encode(v), repeats) / num_videos  # type: ignore[misc]
        results.append({"encoder": name, "dim": encoder.dim, "num_frames": NUM_FRAMES,
                        "seconds_per_trajectory": seconds, "trajectories_per_s": 1.0 / seconds,
                        "cpu_seconds_per_trajectory": CPU_SECONDS[-1] / num_videos, "measured": "whole"})
        print(f"{name:<14} {1.0 / seconds:8.3f} traj/s", file=sys.stderr)

    shape = VJEPA2_SHAPES["vitl-256"]
    model = _vjepa2_model(shape, num_layers=1)
    vjepa2_encoder = VJEPA2Encoder(
        model, EncoderConfig(name="vjepa2", weights="random", device="cpu", batch_size=1)
    )
    video = _videos(1)[0]
    clip = preprocess_frames(torch.from_numpy(sample_frames(video, NUM_FRAMES)), shape["crop_size"])[None]
    with torch.inference_mode():
        forward_1 = _time(lambda: vjepa2_encoder.embed_clips(clip), repeats)
    whole_1 = _time(lambda: vjepa2_encoder.encode([video]), repeats)
    layers = shape["num_hidden_layers"]
    seconds = (whole_1 - forward_1) + layers * forward_1
    cpu_forward, cpu_whole = CPU_SECONDS[-2], CPU_SECONDS[-1]
    flops = vjepa2_flops(shape["hidden_size"], layers, int(shape["hidden_size"] * shape["mlp_ratio"]),
                         shape["crop_size"], NUM_FRAMES)
    results.append({"encoder": "vjepa2 ViT-L/16 256", "dim": shape["hidden_size"], "num_frames": NUM_FRAMES,
                    "seconds_per_trajectory": seconds, "trajectories_per_s": 1.0 / seconds,
                    "cpu_seconds_per_trajectory": (cpu_whole - cpu_forward) + layers * cpu_forward,
                    "measured": f"1 of {layers} layers timed on the full 64-frame sequence, scaled by {layers}",
                    "achieved_gflops": flops / seconds / 1e9})
    print(f"{'vjepa2 ViT-L':<14} {1.0 / seconds:8.4f} traj/s (assembled)", file=sys.stderr)
    return results


def run_gpu(
    peak_tflops: float, repeats: int, batch_size: int, device: str = "cuda",
    shapes: dict[str, dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """V-JEPA 2 ViT-L and ViT-g trajectories/s and achieved TFLOP/s in bf16 on the GPU.

    `device` and `shapes` exist so the same code can be dry-run on the CPU with a tiny shape.
    """
    from srpo.reward.encoders.vjepa2 import VJEPA2Encoder

    cuda = device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        raise SystemExit("--gpu needs a CUDA device, and torch.cuda.is_available() is False on this machine")
    results = []
    for shape_name, shape in (shapes or VJEPA2_SHAPES).items():
        torch.manual_seed(0)
        model = _vjepa2_model(shape)
        config = EncoderConfig(name="vjepa2", weights="random", device=device, dtype="bfloat16",
                               batch_size=batch_size)
        encoder = VJEPA2Encoder(model, config)
        auto_batch = VJEPA2Encoder(model, replace(config, batch_size=0)).auto_batch_size()
        videos = _videos(batch_size)
        end_to_end = _time(lambda enc=encoder, v=videos: enc.encode(v), repeats, sync=cuda)  # type: ignore[misc]
        clips = torch.randn(batch_size, NUM_FRAMES, 3, shape["crop_size"], shape["crop_size"], device=device)
        with torch.inference_mode():
            forward = _time(lambda enc=encoder, c=clips: enc.embed_clips(c), repeats, sync=cuda)  # type: ignore[misc]
        flops = batch_size * vjepa2_flops(shape["hidden_size"], shape["num_hidden_layers"],
                                          int(shape["hidden_size"] * shape["mlp_ratio"]), shape["crop_size"],
                                          NUM_FRAMES)
        achieved = flops / forward / 1e12
        results.append({
            "encoder": f"vjepa2 {shape_name}", "dim": shape["hidden_size"], "num_frames": NUM_FRAMES,
            "batch_size": batch_size, "auto_batch_size": auto_batch,
            "trajectories_per_s": batch_size / end_to_end, "forward_trajectories_per_s": batch_size / forward,
            "tflop_per_trajectory": flops / batch_size / 1e12, "achieved_tflops": achieved,
            "peak_tflops": peak_tflops, "mfu": achieved / peak_tflops,
            "max_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
        })
        print(f"vjepa2 {shape_name}: {batch_size / end_to_end:.2f} traj/s end to end, {achieved:.1f} TFLOP/s "
              f"({100 * achieved / peak_tflops:.0f}% of {peak_tflops:.0f})", file=sys.stderr)
        del encoder, model, clips
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpu", action="store_true", help="V-JEPA 2 ViT-L / ViT-g shapes on CUDA in bf16")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="the card's dense bf16 peak (H100 SXM: 989)")
    parser.add_argument("--batch-size", type=int, default=8, help="--gpu: trajectories per forward")
    parser.add_argument("--repeats", type=int, default=2, help="timed repetitions after a warm-up (best is kept)")
    parser.add_argument("--json", type=Path, default=RESULTS, help="results file (only this mode's section changes)")
    args = parser.parse_args(argv)

    if args.gpu:
        section = "gpu"
        results = run_gpu(args.peak_tflops, args.repeats, args.batch_size)
        device = torch.cuda.get_device_name()
    else:
        section = "cpu"
        results = run_cpu(args.repeats)
        cpu = platform.processor() or platform.machine()
        device = f"{cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"
    load = os.getloadavg()[0]

    print(f"\n{section.upper()} ({device}), {NUM_FRAMES} frames per trajectory, "
          f"{VIDEO_FRAMES}×{VIDEO_SIZE}² input videos")
    print(f"{'encoder':<22}{'dim':>6}{'traj/s':>10}{'s/traj':>10}{'cpu_s/traj':>11}  note")
    for r in results:
        note = r.get("measured", "") or ""
        if "achieved_tflops" in r:
            note = f"{r['achieved_tflops']:.0f} TFLOP/s = {100 * r['mfu']:.0f}% of peak"
        cpu_s = r.get("cpu_seconds_per_trajectory", float("nan"))
        print(f"{r['encoder']:<22}{r['dim']:>6}{r['trajectories_per_s']:>10.3f}"
              f"{1.0 / r['trajectories_per_s']:>10.2f}{cpu_s:>11.2f}  {note}")

    record: dict[str, Any] = json.loads(args.json.read_text()) if args.json.exists() else {}
    record[section] = {
        "device": device, "torch": torch.__version__, "video": [VIDEO_FRAMES, VIDEO_SIZE, VIDEO_SIZE, 3],
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load_average_1m_at_end": load,
        "note": "wall-clock best of --repeats after a warm-up; cpu_seconds_* is process CPU time (all threads), "
        "less sensitive to other jobs sharing the cores",
        "results": results,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
