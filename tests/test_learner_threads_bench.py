"""benchmarks/learner_threads.py: the embed and update phases timed at two thread counts on one synthetic batch."""

from __future__ import annotations

import statistics

import numpy as np
import torch

from benchmark_module import load_benchmark
from srpo.config.train import load_config
from tiny_config import PIXEL_ENCODER, tiny_tabletop

bench = load_benchmark("learner_threads")


def _cfg(*extra: str):
    return load_config(preset="tabletop", overrides=[
        *tiny_tabletop(16, *PIXEL_ENCODER), "algo.group_size=2", "algo.num_prompts_per_step=2",
        "algo.num_minibatches=2", "algo.ppo_epochs=2", *extra])


def test_synthetic_batch_has_the_trainers_shapes_and_the_policys_own_tokens() -> None:
    cfg = _cfg()
    policy = bench.make_policy(cfg)
    trajs = bench.synthetic_batch(policy, cfg, num_episodes=4, num_chunks=3, seed=0)
    assert [t.group_id for t in trajs] == [0, 0, 1, 1]
    for t in trajs:
        assert t.action_tokens.shape == (3, policy.chunk_size * policy.action_dim)
        assert t.frames.shape == (4, 32, 32, 3) and t.policy_images.shape == (3, 32, 32, 3)
        assert t.actions.shape == (3 * policy.chunk_size, policy.action_dim) and t.token_mask.all()
        assert t.action_tokens.min() >= 0 and t.action_tokens.max() < policy.num_bins


def test_measure_reports_medians_ratios_against_the_first_count_and_result_drift() -> None:
    before = torch.get_num_threads()
    report = bench.measure(_cfg(), num_episodes=4, num_chunks=3, thread_counts=(1, 2), repeats=2)
    assert torch.get_num_threads() == before  # the benchmark leaves torch's thread count as it found it
    base, other = report["rows"]
    assert (base["threads"], other["threads"]) == (1, 2)
    assert base["embed_speedup"] == base["update_speedup"] == base["embed_plus_update_speedup"] == 1.0
    assert base["max_abs_learner_log_prob_diff"] == base["max_abs_embedding_diff"] == 0.0
    for row in report["rows"]:
        assert len(row["embed_s"]) == len(row["update_s"]) == 2
        assert row["embed_s_median"] == statistics.median(row["embed_s"])
        assert np.isclose(row["embed_plus_update_s"], row["embed_s_median"] + row["update_s_median"])
    assert np.isclose(other["update_speedup"], base["update_s_median"] / other["update_s_median"])
    # Two threads reorder float sums: the drift is round-off, not a different model.
    assert other["max_abs_learner_log_prob_diff"] < 1e-3 and other["max_abs_embedding_diff"] < 1e-3


def test_measure_restores_the_starting_weights_before_each_measurement() -> None:
    """Every measurement updates the same starting policy: a repeat's learner log-probs (taken before its update)
    equal the first's. Without the reset, the second repeat would score the batch with already-updated weights."""
    report = bench.measure(_cfg("algo.lr=1e-2"), num_episodes=4, num_chunks=3, thread_counts=(1, 2), repeats=2)
    assert [r["max_abs_repeat_log_prob_diff"] for r in report["rows"]] == [0.0, 0.0]
