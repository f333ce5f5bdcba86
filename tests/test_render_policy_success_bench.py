"""benchmarks/render_policy_success.py: the paired comparison of two evaluations and its configuration."""

from __future__ import annotations

import pytest

from benchmark_module import load_benchmark
from srpo.evaluate import mcnemar_exact_p

bench = load_benchmark("render_policy_success")


def _episodes(outcomes: dict[tuple[int, int], bool]) -> list[dict[str, object]]:
    return [{"task_id": t, "init_state_id": i, "success": s, "num_steps": 10} for (t, i), s in outcomes.items()]


def test_paired_difference_pairs_by_task_and_init_state() -> None:
    a = _episodes({(0, 10): True, (0, 11): False, (1, 10): True, (1, 11): False, (1, 12): True})
    # b: loses (0, 10), wins (0, 11) and (1, 11), same on (1, 10); (1, 12) is missing, (2, 0) only in b.
    b = _episodes({(0, 10): False, (0, 11): True, (1, 10): True, (1, 11): True, (2, 0): True})
    diff = bench.paired_difference(a, list(reversed(b)))
    assert diff["num_pairs"] == 4 and diff["b_only"] == 2 and diff["a_only"] == 1
    assert diff["difference"] == pytest.approx((2 - 1) / 4)
    low, high = diff["ci95"]
    assert -1 <= low <= diff["difference"] <= high <= 1
    assert diff["mcnemar_p"] == pytest.approx(mcnemar_exact_p(1, 2))


def test_paired_difference_rejects_ambiguous_or_disjoint_evaluations() -> None:
    a = _episodes({(0, 10): True})
    with pytest.raises(ValueError, match="repeats"):
        bench.paired_difference(a + a, a)
    with pytest.raises(ValueError, match="share no"):
        bench.paired_difference(a, _episodes({(0, 11): True}))


def test_quality_overrides_hold_out_the_last_states() -> None:
    assert bench.quality_overrides("lean", 40) == [
        "env.libero.render_quality=lean", "env.libero.num_train_init_states=10", "env.libero.num_eval_init_states=40"]
    with pytest.raises(ValueError, match="unknown render quality"):
        bench.quality_overrides("ultra", 40)
    with pytest.raises(ValueError, match="--eval-states=50"):
        bench.quality_overrides("fast", 50)


def test_the_overrides_make_a_valid_cpu_config() -> None:
    from srpo.config.train import load_config

    cfg = load_config(preset="cpu", overrides=bench.quality_overrides("full", 40))
    libero = cfg.env.libero
    assert libero.render_quality == "full"
    assert list(libero.init_state_ids("eval", 50)) == list(range(10, 50))


def test_arms_run_the_main_checkpoint_per_quality_then_the_baseline() -> None:
    assert bench.arms(["lean", "full"], None, None) == [("lean", None, "lean"), ("full", None, "full")]
    assert bench.arms(["lean"], "old/final", None) == [("lean", None, "lean"), ("baseline-lean", "old/final", "lean")]
    assert bench.arms(["lean"], "old/final", ["fast", "lean"])[1:] == [
        ("baseline-fast", "old/final", "fast"), ("baseline-lean", "old/final", "lean")]
    with pytest.raises(ValueError, match="needs --baseline-checkpoint"):
        bench.arms(["lean"], None, ["fast"])
    with pytest.raises(ValueError, match="listed twice"):
        bench.arms(["lean", "lean"], None, None)


def test_also_adds_named_checkpoints_under_the_reference_quality() -> None:
    also = bench.parse_also(["srpo-60=runs/a/ckpt-000060/policy", "grpo-60=runs/b/ckpt=60"])
    assert also == [("srpo-60", "runs/a/ckpt-000060/policy"), ("grpo-60", "runs/b/ckpt=60")]
    assert bench.arms(["fast", "lean"], None, None, also) == [
        ("fast", None, "fast"), ("lean", None, "lean"),
        ("srpo-60", "runs/a/ckpt-000060/policy", "fast"), ("grpo-60", "runs/b/ckpt=60", "fast")]
    for bad in ["srpo-60", "=ckpt", "srpo-60=", "fast=ckpt", "baseline-fast=ckpt"]:
        with pytest.raises(ValueError, match="NAME=CHECKPOINT"):
            bench.parse_also([bad])
    with pytest.raises(ValueError, match="listed twice"):
        bench.arms(["fast"], None, None, [("a", "x"), ("a", "y")])
