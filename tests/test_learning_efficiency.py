"""The statistics of benchmarks/learning_efficiency.py (the SRPO-vs-GRPO headline), on hand-made run dirs."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from benchmark_module import load_benchmark


@pytest.fixture(scope="module")
def le() -> ModuleType:
    return load_benchmark("learning_efficiency")


def test_curve_auc_and_first_step_by_hand(le: ModuleType) -> None:
    steps = np.array([0, 5, 10])
    # Trapezoids 5·(0 + 0.2)/2 + 5·(0.2 + 0.4)/2 = 2.0 over a range of 10.
    assert le.curve_auc(steps, np.array([0.0, 0.2, 0.4])) == pytest.approx(0.2)
    assert le.first_step_reaching(steps, np.array([0.0, 0.2, 0.4]), 0.2) == 5
    assert le.first_step_reaching(steps, np.array([0.0, 0.2, 0.4]), 0.5) is None


def test_bootstrap_ci(le: ModuleType) -> None:
    assert le.bootstrap_ci(np.full(5, 0.3)) == pytest.approx((0.3, 0.3))
    assert all(math.isnan(v) for v in le.bootstrap_ci(np.array([1.0])))
    lo, hi = le.bootstrap_ci(np.array([0.0, 1.0] * 10))
    assert 0.2 < lo < 0.5 < hi < 0.8


def _write_run(run_dir: Path, curve: list[float], num_steps: int) -> None:
    run_dir.mkdir(parents=True)
    rows = [{"step": 0, "eval/success_rate": curve[0]}]
    for step in range(1, num_steps + 1):
        row = {"step": step, "rollout/success_rate": 0.1, "rollout/num_trajectories": 10 * (1 + step % 2),
               "advantage/share_groups_with_signal": 0.5, "advantage/abs_mean": 0.2}
        if step % 5 == 0:
            row["eval/success_rate"] = curve[step // 5]
        rows.append(row)
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_a_duplicated_evaluation_counts_once_the_last_one_written(le: ModuleType, tmp_path: Path) -> None:
    _write_run(tmp_path / "run", [0.1, 0.2, 0.3], 10)
    metrics = tmp_path / "run" / "metrics.jsonl"
    metrics.write_text(json.dumps({"step": 0, "eval/success_rate": 0.9}) + "\n" + metrics.read_text())
    assert le.read_run(tmp_path / "run")["eval"] == [(0, 0.1), (5, 0.2), (10, 0.3)]


def test_summary_is_paired_over_seeds(le: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(le, "RESULTS", tmp_path / "results")
    curves = {("grpo", 0): [0.0, 0.0, 0.2], ("grpo", 1): [0.0, 0.2, 0.2],
              ("srpo", 0): [0.0, 0.2, 0.4], ("srpo", 1): [0.0, 0.2, 0.2],
              ("srpo_mean", 0): [0.0, 0.0, 0.4], ("srpo_mean", 1): [0.0, 0.4, 0.4]}
    sampled = {("grpo", 0): 0.01, ("grpo", 1): 0.03, ("srpo", 0): 0.05, ("srpo", 1): 0.03,
               ("srpo_mean", 0): 0.05, ("srpo_mean", 1): 0.05}
    for (arm, seed), curve in curves.items():
        _write_run(tmp_path / "out" / "runs" / arm / f"seed{seed}", curve, 10)
        (tmp_path / "out" / "runs" / arm / f"seed{seed}" / le.SAMPLED_FINAL).write_text(
            json.dumps({"sampled_success_held_out": sampled[arm, seed]}))
    args = argparse.Namespace(arms=["grpo", "srpo", "srpo_mean"], seeds=[0, 1], steps=10, results_name="le_test",
                              tasks=2, demos_per_task=8, max_start_success=0.1)
    payload = le.summarise(args, tmp_path / "out", {"greedy": 0.0})
    assert payload["complete"]
    grpo, srpo = payload["summary"]["grpo"], payload["summary"]["srpo"]
    # AUCs by hand: grpo 0.05, 0.15; srpo 0.2, 0.15; target = GRPO's final mean 0.2.
    assert grpo["auc_per_seed"] == pytest.approx([0.05, 0.15]) and srpo["auc_per_seed"] == pytest.approx([0.2, 0.15])
    assert srpo["auc_diff_vs_grpo_per_seed"] == pytest.approx([0.15, 0.0])
    assert srpo["final_diff_vs_grpo_mean"] == pytest.approx(0.1)
    assert srpo["sampled_final_mean"] == pytest.approx(0.04)
    assert srpo["sampled_final_diff_vs_grpo_per_seed"] == pytest.approx([0.04, 0.0])
    # Successes trained on: 0.1 × 10 or 20 trajectories a step, alternating, over 10 steps = 5·1 + 5·2.
    assert srpo["train_successes_per_seed"] == [15.0, 15.0] and srpo["train_successes_diff_vs_grpo_mean"] == 0.0
    assert payload["target_grpo_final_mean"] == pytest.approx(0.2)
    assert grpo["steps_to_target_per_seed"] == [10, 5] and srpo["steps_to_target_per_seed"] == [5, 5]
    assert srpo["steps_ratio_vs_grpo"] == pytest.approx(5 / 7.5)
    # An ablation arm is also paired with SRPO (AUCs 0.1, 0.3 − SRPO's 0.2, 0.15); SRPO and GRPO are not.
    ablation = payload["summary"]["srpo_mean"]
    assert ablation["auc_diff_vs_srpo_per_seed"] == pytest.approx([-0.1, 0.15])
    assert ablation["final_diff_vs_srpo_mean"] == pytest.approx(0.1)
    assert "auc_diff_vs_srpo_mean" not in grpo and "auc_diff_vs_srpo_mean" not in srpo
    table = (tmp_path / "results" / "le_test.md").read_text().splitlines()
    row = next(line for line in table if line.startswith("| srpo_mean |"))
    # final 0.4 (both seeds), AUC 0.2, steps to 0.2: 10 and 5 → 7.5, ratio 1.0; AUC − SRPO +0.025, final +0.1.
    assert row.startswith("| srpo_mean | 2 | 0.400 [0.400, 0.400] | 0.200 [")
    assert "| 7.5 (0 of 2 not reached) (1.00" in row
    assert "| +0.025 [" in row and "| +0.100 [" in row
    assert (tmp_path / "results" / "le_test.json").exists() and (tmp_path / "results" / "le_test.png").exists()
    # A seed missing in one arm leaves the result partial, with statistics over the paired seeds only.
    _write_run(tmp_path / "out" / "runs" / "grpo" / "seed2", [0.0, 0.0, 0.0], 10)
    args.seeds = [0, 1, 2]
    payload = le.summarise(args, tmp_path / "out", {"greedy": 0.0})
    assert not payload["complete"] and payload["summary"]["srpo"]["seeds"] == [0, 1]


def test_printed_table_shows_intervals_only_where_seeds_allow(le: ModuleType, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(le, "RESULTS", tmp_path / "results")
    for arm, curve in (("grpo", [0.0, 0.1, 0.2]), ("srpo", [0.0, 0.2, 0.3])):
        _write_run(tmp_path / "out" / "runs" / arm / "seed0", curve, 10)
    args = argparse.Namespace(arms=["grpo", "srpo"], seeds=[0], steps=10, results_name="le_one",
                              tasks=2, demos_per_task=8, max_start_success=0.1)
    le.summarise(args, tmp_path / "out", {"greedy": 0.0})
    printed = capsys.readouterr().out
    # One seed: no bootstrap interval, so the mean stands alone (never "[nan, nan]").
    assert "nan" not in printed
    srpo_row = next(line for line in printed.splitlines() if line.startswith("srpo "))
    assert "0.300   0.175" in srpo_row   # final 0.3, AUC (0.1 + 0.25) / 2
    assert "srpo − grpo, paired over seeds: AUC +0.075, final +0.100" in printed
    for arm, curve in (("grpo", [0.0, 0.0, 0.4]), ("srpo", [0.0, 0.2, 0.1])):
        _write_run(tmp_path / "out" / "runs" / arm / "seed1", curve, 10)
    args.seeds = [0, 1]
    le.summarise(args, tmp_path / "out", {"greedy": 0.0})
    printed = capsys.readouterr().out
    srpo_row = next(line for line in printed.splitlines() if line.startswith("srpo "))
    assert "0.200 [0.100, 0.300]" in srpo_row


def test_every_arm_differs_from_srpo_in_one_setting_and_loads(le: ModuleType, tmp_path: Path) -> None:
    from srpo.config.train import config_to_dict, load_config

    parser_defaults = {"tasks": 2, "object_state": True, "num_init_states": 100, "num_eval_init_states": 50,
                       "encoder": "efficientnet", "encoder_crop": 64, "steps": 30, "eval_every": 5, "lr": 3e-5,
                       "prompts": 8, "sampling_rounds": 1, "num_frames": 8, "set": []}
    base = le.base_config(argparse.Namespace(**parser_defaults), tmp_path / "init")
    configs = {}
    for arm in le.ARMS:
        path = le.run_config(base, tmp_path / "out", arm, seed=3, vjepa2_weights="weights/vjepa2")
        configs[arm] = config_to_dict(load_config(path))
        assert configs[arm]["seed"] == 3

    def flat(tree: dict[str, object], prefix: str = "") -> dict[str, object]:
        out: dict[str, object] = {}
        for k, v in tree.items():
            out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
        return out

    srpo = flat(configs["srpo"])
    for arm, tree in configs.items():
        diff = {k for k, v in flat(tree).items() if srpo[k] != v and k != "run_dir"}
        expected = {"grpo": {"algo_name"}, "srpo": set(), "srpo_pixel": {"encoder.name", "encoder.crop_size"},
                    # The encoder setting: the model, its weights, its own input size, its device and dtype.
                    "srpo_vjepa2": {"encoder.name", "encoder.crop_size", "encoder.weights", "encoder.device",
                                    "encoder.dtype"}}
        assert len(diff) == 1 or diff == expected.get(arm), (arm, diff)
    assert configs["srpo_vjepa2"]["encoder"]["weights"] == "weights/vjepa2"
    with pytest.raises(SystemExit, match="--vjepa2-weights"):
        le.run_config(base, tmp_path / "out", "srpo_vjepa2", seed=3)
