"""What `torch_learner_threads` saves: the embed and update phases of one training step at 1 and at 2 intra-op
threads, on a batch shaped like the LIBERO runs' (32 episodes of ~23 action chunks, 128² images).

The env worker processes wait while the driver embeds the batch and updates the policy, so on a 2-core machine
those phases can use both cores. The batch is synthetic (random images, frames and advantages; action tokens
sampled by the policy itself) because the phases' cost depends on its shapes, not its content; the policy, its
KL reference and the reward encoder are the ones the config builds (by default the fourth LIBERO run's command,
docs/libero_runs.md). The thread counts alternate within each repeat, so both see the same machine load.
Also reported: how far the two counts' results drift apart (log-probs and embeddings), since a run's numbers
depend on its thread counts.

Prints a table and writes benchmarks/results/learner_threads.json.

    python benchmarks/learner_threads.py [--repeats 3] [--episodes 32] [--chunks 23] [--set key=value ...]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench_common import machine_info, write_report
from srpo.build import make_policy, make_reward_encoder
from srpo.config.train import TrainConfig, load_config
from srpo.policies.base import PolicyInput, TrainablePolicy
from srpo.reward.encoders.base import VideoEncoder
from srpo.types import Trajectory
from srpo.update import local_update, make_minibatches, make_optimizer, prepare_batch

RESULTS = Path(__file__).resolve().parent / "results"
# The fourth LIBERO run's recipe (docs/libero_runs.md): what a step of the recorded runs updates.
FOURTH_RUN = (
    "env.libero.render_quality=lean",
    "policy.checkpoint=checkpoints/compact_libero_spatial_sft_lean/final",
    "algo.group_size=8", "algo.num_prompts_per_step=4", "algo.num_minibatches=4", "algo.lr=5e-5",
    "algo.ppo_epochs=4", "algo.aggregation=traj-mean-token-mean",
)
INSTRUCTION = "pick up the black bowl between the plate and the ramekin and place it on the plate"


def synthetic_batch(policy: TrainablePolicy, cfg: TrainConfig, num_episodes: int, num_chunks: int,
                    seed: int) -> list[Trajectory]:
    """`num_episodes` trajectories of `num_chunks` chunks: random policy images and embedding frames (one per chunk
    plus the first, as the per-chunk rollout records them), tokens sampled by `policy` at the config's
    temperature, every token executed."""
    rng = np.random.default_rng(seed)
    size = cfg.policy.image_size
    embed_size = cfg.env.libero.embed_image_size if cfg.env.kind == "libero" else cfg.env.tabletop.embed_image_size
    # A checkpoint's own policy config wins over cfg.policy (the LIBERO starts read 8 proprioception dims).
    state_dim = getattr(getattr(policy, "config", cfg.policy), "state_dim", cfg.policy.state_dim)
    trajs = []
    for i in range(num_episodes):
        images = rng.integers(0, 256, size=(num_chunks, size, size, 3), dtype=np.uint8)
        states = rng.normal(size=(num_chunks, state_dim)).astype(np.float32)
        with torch.no_grad():
            sample = policy.sample(PolicyInput(images, states, [INSTRUCTION] * num_chunks), cfg.algo.temperature)
        steps = num_chunks * policy.chunk_size
        trajs.append(Trajectory(
            task_id=i % 2, instruction=INSTRUCTION, init_state_id=i // cfg.algo.group_size,
            group_id=i // cfg.algo.group_size, rollout_id=i,
            frames=rng.integers(0, 256, size=(num_chunks + 1, embed_size, embed_size, 3), dtype=np.uint8),
            policy_images=images, policy_states=states, action_tokens=sample.tokens, log_probs=sample.log_probs,
            token_mask=np.ones_like(sample.tokens, dtype=bool),
            actions=sample.actions.reshape(steps, -1).astype(np.float32), success=bool(i % 3 == 0),
            finish_step=steps))
    return trajs


def time_phases(policy: TrainablePolicy, reference: TrainablePolicy | None, encoder: VideoEncoder | None,
                cfg: TrainConfig, trajs: list[Trajectory], advantages: np.ndarray, threads: int,
                seed: int) -> dict[str, Any]:
    """Seconds of the embed phase (`encoder.encode` of every trajectory's frames) and of the update phase (the
    trainer's: learner log-probs, then algo.ppo_epochs × num_minibatches optimiser steps) at `threads` threads.
    The policy is updated in place; the caller restores it between measurements."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        start = time.perf_counter()
        embeddings = (np.asarray(encoder.encode([t.frames for t in trajs]), dtype=np.float32)
                      if encoder is not None else np.zeros((len(trajs), 0), dtype=np.float32))
        embed_s = time.perf_counter() - start
        optimizer = make_optimizer([p for p in policy.parameters() if p.requires_grad], cfg.algo)
        start = time.perf_counter()
        batch, _ = prepare_batch(policy, reference, trajs, advantages, cfg.algo.temperature)
        learner_lp = batch.old_log_probs.copy()
        local_update(policy, optimizer, batch, make_minibatches(len(batch), cfg.algo, np.random.default_rng(seed)),
                     cfg.algo, 0)
        update_s = time.perf_counter() - start
    finally:
        torch.set_num_threads(before)
    return {"embed_s": embed_s, "update_s": update_s, "embeddings": embeddings, "learner_log_probs": learner_lp,
            "mask": batch.mask}


def measure(cfg: TrainConfig, num_episodes: int, num_chunks: int, thread_counts: tuple[int, ...], repeats: int,
            seed: int = 0) -> dict[str, Any]:
    """Median embed and update seconds per thread count over `repeats` interleaved rounds, their ratios against
    the first count, and the largest result differences against it (same batch, same starting weights: the policy
    is reset before every measurement, and `max_abs_repeat_log_prob_diff` checks that a repeat reproduces the
    first one)."""
    torch.manual_seed(seed)
    policy = make_policy(cfg)
    reference = make_policy(cfg) if cfg.algo.uses_reference else None
    encoder = make_reward_encoder(cfg) if cfg.algo_name == "srpo" else None
    start_weights = {k: v.detach().clone() for k, v in policy.state_dict().items()}
    trajs = synthetic_batch(policy, cfg, num_episodes, num_chunks, seed)
    advantages = np.random.default_rng(seed).normal(size=num_episodes).astype(np.float32)
    times: dict[int, dict[str, list[float]]] = {n: {"embed_s": [], "update_s": []} for n in thread_counts}
    outputs: dict[int, dict[str, Any]] = {}
    repeat_drift = dict.fromkeys(thread_counts, 0.0)
    for r in range(repeats):
        for n in thread_counts:
            policy.load_state_dict(start_weights)
            out = time_phases(policy, reference, encoder, cfg, trajs, advantages, n, seed)
            times[n]["embed_s"].append(out["embed_s"])
            times[n]["update_s"].append(out["update_s"])
            print(f"repeat {r + 1}/{repeats}, {n} thread(s): embed {out['embed_s']:.2f} s, "
                  f"update {out['update_s']:.2f} s", flush=True)
            if n in outputs:  # same weights, batch and count: a repeat must give the same log-probs
                repeat_drift[n] = max(repeat_drift[n], float(np.abs(out["learner_log_probs"]
                                                                    - outputs[n]["learner_log_probs"]).max()))
            outputs.setdefault(n, out)
    base = thread_counts[0]
    base_embed, base_update = (statistics.median(times[base][k]) for k in ("embed_s", "update_s"))
    rows = []
    for n in thread_counts:
        embed, update = statistics.median(times[n]["embed_s"]), statistics.median(times[n]["update_s"])
        mask = outputs[n]["mask"]
        rows.append({
            "threads": n, "embed_s_median": embed, "update_s_median": update, "embed_plus_update_s": embed + update,
            "embed_speedup": base_embed / embed, "update_speedup": base_update / update,
            "embed_plus_update_speedup": (base_embed + base_update) / (embed + update),
            "embed_s": times[n]["embed_s"], "update_s": times[n]["update_s"],
            "max_abs_learner_log_prob_diff": float(np.abs(outputs[n]["learner_log_probs"]
                                                          - outputs[base]["learner_log_probs"])[mask].max()),
            "max_abs_embedding_diff": float(np.abs(outputs[n]["embeddings"] - outputs[base]["embeddings"]).max())
            if outputs[n]["embeddings"].size else 0.0,
            "max_abs_repeat_log_prob_diff": repeat_drift[n],
        })
    return {"rows": rows, "num_episodes": num_episodes, "num_chunks": num_chunks, "repeats": repeats,
            "baseline_threads": base, "algo": cfg.algo_name, "encoder": cfg.encoder.name,
            "policy_checkpoint": cfg.policy.checkpoint, "ppo_epochs": cfg.algo.ppo_epochs,
            "num_minibatches": cfg.algo.num_minibatches, "kl_coef": cfg.algo.kl_coef,
            "machine": machine_info()}


def print_table(report: dict[str, Any]) -> None:
    print(f"{'threads':>8}{'embed s':>10}{'update s':>10}{'sum s':>9}{'embed x':>9}{'update x':>10}{'sum x':>8}"
          f"{'max |dlogp|':>13}{'max |demb|':>12}")
    for r in report["rows"]:
        print(f"{r['threads']:>8}{r['embed_s_median']:>10.2f}{r['update_s_median']:>10.2f}"
              f"{r['embed_plus_update_s']:>9.2f}{r['embed_speedup']:>9.2f}{r['update_speedup']:>10.2f}"
              f"{r['embed_plus_update_speedup']:>8.2f}{r['max_abs_learner_log_prob_diff']:>13.1e}"
              f"{r['max_abs_embedding_diff']:>12.1e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--set", dest="overrides", action="append", default=None,
                        help="config override key=value (repeatable); default: the fourth LIBERO run's recipe")
    parser.add_argument("--episodes", type=int, default=32)
    parser.add_argument("--chunks", type=int, default=23, help="chunks per episode (the runs' mean: 754 / 32)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(RESULTS / "learner_threads.json"))
    args = parser.parse_args()
    overrides = list(FOURTH_RUN) if args.overrides is None else args.overrides
    cfg = load_config(preset=args.preset, overrides=overrides)
    report = measure(cfg, args.episodes, args.chunks, tuple(args.threads), args.repeats)
    report["overrides"] = overrides
    print_table(report)
    write_report(Path(args.out), report)


if __name__ == "__main__":
    main()
