"""Time one forward/backward of a 7B-shaped Llama (random weights, bf16) on a batch of OpenVLA* action chunks.

The shape of one SRPO update micro-batch on the real OpenVLA-OFT policy: per sample, BOS + 256 image patches +
a ~30-token prompt + 56 action placeholders + STOP through Llama-2 7B (hidden 4096, 32 layers, vocab 32064),
bidirectional attention (OpenVLA-OFT), the 56 action positions' logits restricted to the 256 bin ids, token
log-probs at T = 1.6 and a PPO-style surrogate -(logπ · A).mean() backpropagated into every weight. Image
patches are random embeddings (the vision tower is small next to the LM and is often frozen). No optimiser
step: AdamW state for 7B full fine-tuning is a memory question (≈ 84 GB in fp32 moments), not a speed one.

Needs a CUDA GPU; fails with a clear message otherwise. Prints a table and writes JSON:

    python benchmarks/openvla_7b_step.py [--batch-sizes 1 4 8] [--repeats 3] [--grad-checkpointing]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

NUM_PATCHES = 256
NUM_PROMPT_TOKENS = 30
NUM_ACTION_TOKENS = 56
NUM_BINS = 256
VOCAB = 32000
PADDED_VOCAB = 32064


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--repeats", type=int, default=3, help="timed steps per batch size (after 1 warm-up)")
    parser.add_argument("--num-layers", type=int, default=32, help="32 for the real 7B; fewer for a smoke run")
    parser.add_argument("--grad-checkpointing", action="store_true")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "openvla_7b_step.json")
    args = parser.parse_args(argv)

    import torch

    if not torch.cuda.is_available():
        print(
            "openvla_7b_step.py needs a CUDA GPU (a 7B model in bf16 takes ~14 GB of weights plus gradients); "
            "torch.cuda.is_available() is False here. Run it on a GPU machine.",
            file=sys.stderr,
        )
        return 2
    from transformers import LlamaConfig, LlamaForCausalLM

    device = torch.device("cuda")
    config = LlamaConfig(
        vocab_size=PADDED_VOCAB, hidden_size=4096, intermediate_size=11008, num_hidden_layers=args.num_layers,
        num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=2048,
    )
    config._attn_implementation = "sdpa"
    t0 = time.perf_counter()
    torch.set_default_dtype(torch.bfloat16)
    with device:
        model = LlamaForCausalLM(config)
    torch.set_default_dtype(torch.float32)
    if args.grad_checkpointing:
        model.gradient_checkpointing_enable()
    model.train()
    build_s = time.perf_counter() - t0
    num_params = sum(p.numel() for p in model.parameters())

    seq_len = 1 + NUM_PATCHES + NUM_PROMPT_TOKENS + NUM_ACTION_TOKENS + 1
    start = NUM_PATCHES + NUM_PROMPT_TOKENS  # logits one position before each placeholder (see openvla_oft.py)
    rows = []
    for batch_size in args.batch_sizes:
        g = torch.Generator(device=device).manual_seed(0)
        embeds = torch.randn(batch_size, seq_len, 4096, device=device, dtype=torch.bfloat16, generator=g) * 0.02
        mask = torch.zeros(batch_size, 1, seq_len, seq_len, device=device, dtype=torch.bfloat16)
        tokens = torch.randint(0, NUM_BINS, (batch_size, NUM_ACTION_TOKENS), device=device, generator=g)
        advantages = torch.randn(batch_size, 1, device=device, generator=g)
        fwd_ms, bwd_ms = [], []
        torch.cuda.reset_peak_memory_stats()
        try:
            for i in range(args.repeats + 1):
                model.zero_grad(set_to_none=True)
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                logits = model(inputs_embeds=embeds, attention_mask=mask, use_cache=False).logits
                bins = logits[:, start : start + NUM_ACTION_TOKENS, VOCAB - NUM_BINS : VOCAB].flip(-1).float()
                log_p = torch.log_softmax(bins / 1.6, -1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
                loss = -(log_p * advantages).mean()
                torch.cuda.synchronize()
                t1 = time.perf_counter()
                loss.backward()
                torch.cuda.synchronize()
                t2 = time.perf_counter()
                if i > 0:  # the first step is warm-up (cuBLAS heuristics, allocator growth)
                    fwd_ms.append((t1 - t0) * 1e3)
                    bwd_ms.append((t2 - t1) * 1e3)
            peak_gb = torch.cuda.max_memory_allocated() / 2**30
            row = {
                "batch_size": batch_size, "seq_len": seq_len, "forward_ms": statistics.median(fwd_ms),
                "backward_ms": statistics.median(bwd_ms), "peak_memory_gb": peak_gb, "oom": False,
            }
            row["step_ms"] = row["forward_ms"] + row["backward_ms"]
            row["action_tokens_per_s"] = batch_size * NUM_ACTION_TOKENS / (row["step_ms"] / 1e3)
        except torch.cuda.OutOfMemoryError:
            row = {"batch_size": batch_size, "seq_len": seq_len, "oom": True}
        rows.append(row)
        del embeds, mask
        torch.cuda.empty_cache()

    print(f"\n7B-shaped Llama ({num_params / 1e9:.2f} B params, {args.num_layers} layers, bf16, "
          f"grad checkpointing {'on' if args.grad_checkpointing else 'off'}) on {torch.cuda.get_device_name()}")
    print(f"{'batch':>5} {'seq':>5} {'fwd ms':>9} {'bwd ms':>9} {'step ms':>9} {'act tok/s':>10} {'peak GB':>8}")
    for r in rows:
        if r["oom"]:
            print(f"{r['batch_size']:>5} {r['seq_len']:>5} {'out of memory':>40}")
        else:
            print(f"{r['batch_size']:>5} {r['seq_len']:>5} {r['forward_ms']:>9.1f} {r['backward_ms']:>9.1f} "
                  f"{r['step_ms']:>9.1f} {r['action_tokens_per_s']:>10.0f} {r['peak_memory_gb']:>8.1f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "device": torch.cuda.get_device_name(), "torch": torch.__version__, "python": platform.python_version(),
        "num_params": num_params, "num_layers": args.num_layers, "grad_checkpointing": args.grad_checkpointing,
        "build_s": build_s, "rows": rows,
    }, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
