"""Two training steps of the paper preset on a GPU, with random weights of the published shapes.

What it exercises: the `paper` preset's algorithm settings (n = 8 → `--group-size`, T = 1.6, clip 0.2/0.28,
lr 5e-6, the official reward), a V-JEPA 2 ViT-g/16 at 384² with 64 frames loaded through srpo's real
transformers-directory loader in fp16 autocast on CUDA, and an OpenVLA-OFT-layout policy whose language model has
Llama-2 7B's shape (hidden 4096, 32 heads, MLP 11008; `--num-layers` of 32) in bf16, sampling 56 parallel action
tokens and taking PPO-clip steps. Weights are random (no hub is reachable from the GPU machines) and the env is the
built-in tabletop one (LIBERO's simulator and assets are not on them), so success rates mean nothing: the point is
that every phase runs on CUDA at the paper's shapes, and how long each phase takes.

    python benchmarks/gpu_paper_smoke.py [--steps 2] [--num-layers 32] [--group-size 4] [--num-prompts 2]
    python benchmarks/gpu_paper_smoke.py --tiny     # CPU check of the script itself: tiny shapes, no CUDA

Prints a table of per-phase seconds per step and writes JSON (benchmarks/results/gpu_paper_smoke.json).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results" / "gpu_paper_smoke.json"
# Llama-2 7B (OpenVLA's backbone) and V-JEPA 2 ViT-g/16 at 384² (the official SRPO encoder).
LLAMA_7B = {"hidden_size": 4096, "intermediate_size": 11008, "num_attention_heads": 32, "num_key_value_heads": 32}
VJEPA2_VITG_384 = {"hidden_size": 1408, "num_hidden_layers": 40, "num_attention_heads": 22, "mlp_ratio": 48 / 11,
                   "crop_size": 384}
OPENVLA_VOCAB, OPENVLA_PADDED_VOCAB = 32000, 32064


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def save_random_vjepa2(directory: Path, tiny: bool, num_frames: int) -> Path:
    """A randomly initialised VJEPA2Model of the ViT-g/384 shape (or a tiny one) saved as a transformers dir."""
    import torch
    from transformers import VJEPA2Config, VJEPA2Model

    shape = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "crop_size": 32} if tiny \
        else VJEPA2_VITG_384
    config = VJEPA2Config(frames_per_clip=num_frames, pred_num_hidden_layers=1, pred_hidden_size=64,
                          pred_num_attention_heads=2, num_pooler_layers=1, **shape)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        VJEPA2Model(config).save_pretrained(directory)
    return directory


def build_policy(tiny: bool, num_layers: int, device: str) -> Any:
    """An OpenVLA-OFT-layout policy: tiny vision tower, a Llama of 7B width (or tiny), bf16 on `device`."""
    import torch
    from torch import nn
    from transformers import LlamaConfig, LlamaForCausalLM

    from srpo.policies.openvla_oft import build_tiny_vla

    if tiny:
        return build_tiny_vla()
    policy = build_tiny_vla(vocab_size=OPENVLA_VOCAB, pad_to=OPENVLA_PADDED_VOCAB, image_size=224, patch=14,
                            hidden=64, num_layers=1)
    config = LlamaConfig(vocab_size=OPENVLA_PADDED_VOCAB, num_hidden_layers=num_layers, max_position_embeddings=2048,
                         bos_token_id=1, eos_token_id=2, pad_token_id=0, **LLAMA_7B)
    config._attn_implementation = "sdpa"
    hidden = LLAMA_7B["hidden_size"]
    with torch.device(device):
        torch.set_default_dtype(torch.bfloat16)
        try:
            policy.model.projector = nn.Sequential(nn.Linear(24, hidden), nn.GELU(), nn.Linear(hidden, hidden))
            policy.model.language_model = LlamaForCausalLM(config)
        finally:
            torch.set_default_dtype(torch.float32)
    policy.model.to(device=device, dtype=torch.bfloat16)
    return policy


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--num-layers", type=int, default=32, help="Llama layers (32 = Llama-2 7B)")
    parser.add_argument("--group-size", type=int, default=4, help="rollouts per prompt (paper: 8)")
    parser.add_argument("--num-prompts", type=int, default=2, help="prompts per step (paper: 64)")
    parser.add_argument("--num-frames", type=int, default=64, help="V-JEPA 2 frames per trajectory (paper: 64)")
    parser.add_argument("--tiny", action="store_true", help="tiny shapes on the CPU: checks the script, times nothing")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    import torch

    from srpo.config.train import load_config
    from srpo.trainer import Trainer

    if not args.tiny and not torch.cuda.is_available():
        print("gpu_paper_smoke.py needs a CUDA GPU (a 7B-shaped policy in bf16 and V-JEPA 2 ViT-g); "
              "torch.cuda.is_available() is False here. Use --tiny for a CPU check of the script.", file=sys.stderr)
        return 2
    device = "cpu" if args.tiny else "cuda"
    num_frames = 4 if args.tiny else args.num_frames
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        weights = save_random_vjepa2(Path(tmp) / "vjepa2", args.tiny, num_frames)
        policy = build_policy(args.tiny, args.num_layers, device)
        build_s = time.perf_counter() - t0
        overrides = [
            "env.kind=tabletop", "env.tabletop.num_tasks=2", "rollout.num_workers=0",
            f"algo.group_size={args.group_size}", f"algo.num_prompts_per_step={args.num_prompts}",
            "algo.dynamic_sampling=false", "algo.num_minibatches=2", f"num_steps={args.steps}",
            "num_eval_episodes_per_task=0", "tensorboard=false", "num_videos_per_step=0",
            f"encoder.weights={weights}", "encoder.weights_format=hf", f"encoder.num_frames={num_frames}",
            f"encoder.device={device}", f"run_dir={Path(tmp) / 'run'}",
            # The config tree pairs OpenVLA-OFT with LIBERO only; the policy is passed in ready-built, so the
            # config names the compact kind with the OFT chunk size (8 × 7 action tokens).
            "policy.kind=compact", "policy.checkpoint=null", "policy.chunk_size=8", f"policy.device={device}",
        ]
        if args.tiny:
            overrides += ["encoder.dtype=float32"]
        cfg = load_config(preset="paper", overrides=overrides)
        steps = []
        with Trainer(cfg, policy=policy, show_progress=False) as trainer:
            for _ in range(args.steps):
                if device == "cuda":
                    torch.cuda.reset_peak_memory_stats()
                metrics = trainer.train_step()
                trainer.step += 1
                if device == "cuda":
                    metrics["gpu/peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
                steps.append({k: float(v) for k, v in metrics.items()})
    keys = ["time/rollout_s", "time/embed_s", "time/reward_s", "time/update_s"]
    print(f"{'step':>4} " + " ".join(f"{k.split('/')[1]:>12}" for k in keys) + f" {'loss/policy':>12}")
    for i, m in enumerate(steps, 1):
        print(f"{i:>4} " + " ".join(f"{m.get(k, float('nan')):>12.2f}" for k in keys)
              + f" {m.get('loss/policy', float('nan')):>12.4f}")
    finite = all(abs(m.get("loss/policy", 0.0)) < float("inf") for m in steps)
    result = {
        "commit": _git_commit(), "command": " ".join(["python", *sys.argv]), "device": device,
        "gpu": torch.cuda.get_device_name(0) if device == "cuda" else None, "host": platform.node(),
        "torch": torch.__version__, "tiny": args.tiny, "num_layers": args.num_layers, "group_size": args.group_size,
        "num_prompts": args.num_prompts, "num_frames": num_frames, "build_s": build_s, "steps": steps,
        "losses_finite": finite, "complete": len(steps) == args.steps,
    }
    if not args.tiny:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
        print(f"wrote {args.out}")
    return 0 if finite else 1


if __name__ == "__main__":
    sys.exit(main())
