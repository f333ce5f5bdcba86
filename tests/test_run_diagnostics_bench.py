"""benchmarks/run_diagnostics.py: a run's training success, entropy and net loss push by block, beside its held-out
curve, read from what the trainer writes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark_module import load_benchmark
from srpo.config.train import load_config
from srpo.evaluate import difference_interval, wilson_interval
from srpo.trainer import Trainer
from tiny_config import tiny_tabletop

bench = load_benchmark("run_diagnostics")
curve = load_benchmark("checkpoint_curve")  # the paired helpers run_diagnostics imports from it


def step_arrays(success: list[bool], adv: list[float], length: list[int]) -> dict[str, np.ndarray]:
    return {"success": np.array(success), "advantages": np.array(adv), "finish_step": np.array(length)}


def test_parse_runs_keeps_order_and_refuses_bad_items() -> None:
    assert bench.parse_runs(["b=x", "a=y"]) == [("b", Path("x")), ("a", Path("y"))]
    for bad in (["x"], ["=x"], ["a="]):
        with pytest.raises(ValueError, match="write NAME=RUN_DIR"):
            bench.parse_runs(bad)
    with pytest.raises(ValueError, match="distinct"):
        bench.parse_runs(["a=x", "a=y"])


def test_block_summary_hand_computed() -> None:
    # Steps 1 and 2 form block 1; step 3 (block 2) is the last, shorter block. Successes run 100 env steps with
    # A = +1, failures 300 with A = -1: the token-weighted mean advantage of block 1 is (200 - 600) / 800 = -0.5.
    steps = {1: step_arrays([True, False], [1.0, -1.0], [100, 300]),
             2: step_arrays([True, False], [1.0, -1.0], [100, 300]),
             3: step_arrays([True, True, False], [0.5, 0.5, -1.0], [100, 100, 100])}
    metrics = [{"step": 0, "eval/num_successes": 1, "eval/num_episodes": 4},
               {"step": 1, "loss/policy": 0.4, "loss/entropy": 0.2},
               {"step": 2, "loss/policy": 0.6, "loss/entropy": 0.4},
               {"step": 3, "loss/policy": 0.0, "loss/entropy": 9.0, "policy/entropy": 0.5}]
    blocks = bench.block_summary(steps, metrics, block=2)
    assert [(b["first_step"], b["last_step"], b["num_steps"]) for b in blocks] == [(1, 2, 2), (3, 3, 1)]
    first = blocks[0]
    assert (first["train_successes"], first["train_episodes"]) == (2, 4)
    assert first["wilson95"] == list(wilson_interval(2, 4))
    assert first["entropy_mean"] == pytest.approx(0.3) and first["policy_loss_mean"] == pytest.approx(0.5)
    assert first["token_weighted_advantage_mean"] == pytest.approx(-0.5)
    assert blocks[1]["token_weighted_advantage_mean"] == pytest.approx(0.0)  # equal lengths: the plain mean
    assert blocks[1]["entropy_mean"] == 0.5  # policy/entropy (token-mean) wins over loss/entropy
    with pytest.raises(ValueError, match="block must be >= 1"):
        bench.block_summary(steps, metrics, block=0)


def test_advantage_mass_per_step_skips_steps_without_group_ids() -> None:
    # Steps without group ids (results saved before they were) are left out of the per-step list.
    steps = {1: step_arrays([True, False], [1.0, -1.0], [10, 10]),
             2: {**step_arrays([True, False], [1.0, -1.0], [10, 10]), "group_ids": np.array([7, 7])}}
    per_step = bench.advantage_mass_per_step(steps)
    assert [m["step"] for m in per_step] == [2] and per_step[0]["successes"] == 1
    assert per_step[0]["failure_group_abs_share"] == 0.0  # its one group holds a success


def test_block_summary_counts_steps_without_arrays_from_metrics() -> None:
    # Step 1 has arrays, step 2 only its metrics record (3 of 4 successes logged as a rate): the block counts
    # 1 + 3 of 2 + 4 episodes; the token-weighted advantage covers step 1 alone. A block with no arrays at all
    # keeps its counts and gives NaN for the advantage.
    steps = {1: step_arrays([True, False], [1.0, -1.0], [100, 300])}
    metrics = [{"step": 1, "loss/policy": 0.1, "loss/entropy": 0.2},
               {"step": 2, "loss/policy": 0.3, "loss/entropy": 0.4, "rollout/success_rate": 0.75,
                "rollout/num_trajectories": 4},
               {"step": 3, "loss/policy": 0.0, "loss/entropy": 0.5, "rollout/success_rate": 0.0,
                "rollout/num_trajectories": 4}]
    first, second = bench.block_summary(steps, metrics, block=2)
    assert (first["train_successes"], first["train_episodes"], first["num_steps"]) == (4, 6, 2)
    assert first["num_steps_with_arrays"] == 1
    assert first["token_weighted_advantage_mean"] == pytest.approx(-0.5)
    assert first["policy_loss_mean"] == pytest.approx(0.2)
    assert (second["train_successes"], second["train_episodes"], second["num_steps_with_arrays"]) == (0, 4, 0)
    assert np.isnan(second["token_weighted_advantage_mean"])


def test_entropy_key_is_one_for_all_runs() -> None:
    new_run = [{"step": 0, "eval/num_successes": 1}, {"step": 1, "loss/policy": 0.0, "loss/entropy": 0.9,
                                                      "policy/entropy": 0.3}]
    old_run = [{"step": 1, "loss/policy": 0.0, "loss/entropy": 0.4}]
    assert bench.entropy_key([new_run, new_run]) == "policy/entropy"
    assert bench.entropy_key([new_run, old_run]) == "loss/entropy"  # the old run has only loss/entropy
    assert bench.entropy_of(new_run[1], "loss/entropy") == 0.9 and bench.entropy_of(new_run[1]) == 0.3
    assert bench.entropy_of(old_run[0], "policy/entropy") == 0.4  # a record without the key falls back


def test_heldout_points_and_paired_differences() -> None:
    metrics = [{"step": 0, "eval/num_successes": 2, "eval/num_episodes": 10},
               {"step": 10, "eval/num_successes": 1, "eval/num_episodes": 10},
               {"step": 10, "eval/num_successes": 3, "eval/num_episodes": 10}]  # a resumed run's re-evaluation
    points = bench.heldout_points(metrics)
    assert points == [{"step": 0, "num_successes": 2, "num_episodes": 10},
                      {"step": 10, "num_successes": 3, "num_episodes": 10}]
    other = [{"step": 10, "num_successes": 6, "num_episodes": 10}, {"step": 20, "num_successes": 1,
                                                                    "num_episodes": 10}]
    diff = bench.paired_differences(points, other, "step", "num_successes", "num_episodes")
    assert diff == [{"step": 10, "difference": pytest.approx(0.3), "ci95": list(difference_interval(3, 10, 6, 10))}]
    # Blocks compare only when both cover the same steps (a block in progress is left out).
    base = [{"first_step": 1, "last_step": 10, "train_successes": 3, "train_episodes": 80}]
    partial = [{"first_step": 1, "last_step": 4, "train_successes": 3, "train_episodes": 32}]
    assert bench.paired_differences(base, partial, "first_step", "train_successes", "train_episodes") == []


def test_mean_after_start_difference_pools_the_shared_evaluations_after_step_0() -> None:
    base = [{"step": 0, "num_successes": 7, "num_episodes": 40}, {"step": 10, "num_successes": 9, "num_episodes": 40},
            {"step": 20, "num_successes": 11, "num_episodes": 40}]
    other = [{"step": 0, "num_successes": 7, "num_episodes": 40}, {"step": 10, "num_successes": 11,
                                                                   "num_episodes": 40},
             {"step": 20, "num_successes": 15, "num_episodes": 40}, {"step": 30, "num_successes": 40,
                                                                     "num_episodes": 40}]
    # Steps 10 and 20 are shared (0 is the start, 30 only the other run's): 26/80 vs 20/80.
    out = bench.mean_after_start_difference(base, other)
    assert out == {"steps": [10, 20], "base": [20, 80], "other": [26, 80], "difference": pytest.approx(6 / 80),
                   "ci95": list(difference_interval(20, 80, 26, 80))}
    assert bench.mean_after_start_difference(base[:1], other) is None


def eval_arrays(tasks: list[int], states: list[int], success: list[bool]) -> dict[str, np.ndarray]:
    return {"task_ids": np.array(tasks), "init_state_ids": np.array(states), "success": np.array(success)}


def test_episode_pairs_and_paired_heldout_match_episodes_by_task_and_state() -> None:
    # Run order differs; state 5 of task 0 is played twice (its k-th episode pairs with the other run's k-th);
    # task 1 state 9 exists in the base only and is left out.
    base = eval_arrays([0, 0, 0, 1], [5, 5, 6, 9], [True, False, False, True])
    other = eval_arrays([0, 0, 0], [6, 5, 5], [True, True, True])
    assert curve.episode_pairs(base, other) == [(True, True), (False, True), (False, True)]
    out = curve.paired_heldout({0: base, 10: base}, {10: other, 20: other})
    assert [d["step"] for d in out] == [10]
    assert (out[0]["difference"], out[0]["b_only"], out[0]["a_only"]) == (pytest.approx(2 / 3), 2, 0)
    assert out[0]["mcnemar_p"] == pytest.approx(0.5)  # 2 discordant pairs, both one way: 2 · (1/2)²
    assert curve.paired_heldout({}, {10: other}) == []


def test_paired_heldout_after_start_pools_steps_and_clusters_by_state() -> None:
    # Step 0 is left out; steps 10 and 20 each pair 3 episodes over 2 states of task 0 (state 5 twice).
    base = eval_arrays([0, 0, 0], [5, 5, 6], [False, False, True])
    other = eval_arrays([0, 0, 0], [5, 6, 5], [True, True, False])
    out = curve.paired_heldout_after_start({0: base, 10: base, 20: base}, {0: other, 10: other, 20: other, 30: other})
    assert out is not None and out["steps"] == [10, 20]
    # Per step: state 5 pairs (F, T), (F, F); state 6 (T, T): differences +1, 0, 0 -> pooled 2 / 6.
    assert out["num_pairs"] == 6 and out["num_clusters"] == 2 and out["difference"] == pytest.approx(1 / 3)
    assert (out["b_only"], out["a_only"]) == (2, 0)
    # Resamples of the 2 states: (5, 5) gives 2/4, (6, 6) 0, mixed 2/6; the interval spans [0, 0.5].
    assert out["ci95"] == [0.0, 0.5]
    assert curve.paired_heldout_after_start({0: base}, {0: other}) is None


def test_gain_over_start_pairs_each_later_evaluation_with_step_0() -> None:
    # Step 0: state 5 lost, state 6 won. Step 10 wins both; step 20 wins 5 and loses 6. Differences against step 0:
    # state 5 +1, +1; state 6 0, -1 -> pooled 1/4. Resamples of the 2 states: (5, 5) 1, (6, 6) -1/2, mixed 1/4.
    start = eval_arrays([0, 0], [5, 6], [False, True])
    evals = {0: start, 10: eval_arrays([0, 0], [6, 5], [True, True]), 20: eval_arrays([0, 0], [5, 6], [True, False])}
    out = bench.gain_over_start_paired(evals)
    assert out is not None and out["steps"] == [10, 20]
    assert out["difference"] == pytest.approx(0.25) and out["num_pairs"] == 4 and out["num_clusters"] == 2
    assert (out["b_only"], out["a_only"]) == (2, 1)
    assert out["ci95"] == [-0.5, 1.0]
    assert bench.gain_over_start_paired({10: start, 20: start}) is None  # no step-0 evaluation
    assert bench.gain_over_start_paired({0: start}) is None  # nothing after it


def test_vs_start_pairs_each_evaluation_with_step_0_on_its_own() -> None:
    # The evaluations of the test above, one at a time: step 10 wins state 5 only there (+1/2, McNemar 1 vs 0);
    # step 20 wins 5 and loses 6 against step 0 (0, one each way).
    start = eval_arrays([0, 0], [5, 6], [False, True])
    evals = {0: start, 10: eval_arrays([0, 0], [6, 5], [True, True]), 20: eval_arrays([0, 0], [5, 6], [True, False])}
    out = curve.vs_start_paired(evals)
    assert [d["step"] for d in out] == [10, 20]
    assert out[0]["difference"] == pytest.approx(0.5) and (out[0]["b_only"], out[0]["a_only"]) == (1, 0)
    assert out[1]["difference"] == pytest.approx(0.0) and (out[1]["b_only"], out[1]["a_only"]) == (1, 1)
    assert out[0]["mcnemar_p"] == 1.0 and out[0]["num_pairs"] == 2
    assert curve.vs_start_paired({10: start, 20: start}) == []  # no step-0 evaluation


def test_heldout_slope_paired_keeps_the_slots_every_evaluation_played() -> None:
    # Steps 0, 10, 20 over task 0: state 5 (played twice) and state 6; step 20 also plays state 7, which the
    # others did not, so it is left out. Slot rates: 0 -> 1/3 -> 2/3 (state 6 lost, then won; state 5's first
    # play won from step 20), a slope of 1/30 per step = 10/3 per 100 steps.
    evals = {0: eval_arrays([0, 0, 0], [5, 5, 6], [False, False, False]),
             10: eval_arrays([0, 0, 0], [6, 5, 5], [True, False, False]),
             20: eval_arrays([0, 0, 0, 0], [5, 6, 7, 5], [True, True, True, False])}
    out = curve.heldout_slope_paired(evals)
    assert out is not None and out["steps"] == [0, 10, 20]
    assert (out["num_episodes"], out["num_clusters"]) == (3, 2)
    assert out["slope_per_100_steps"] == pytest.approx(10 / 3)
    # Resamples of the 2 states: (5, 5) slope 1/40 per step, (6, 6) 1/20, mixed 1/30: all positive.
    assert out["slope_per_100_steps_ci95"] == pytest.approx([2.5, 5.0])
    assert curve.heldout_slope_paired({0: evals[0]}) is None
    assert curve.heldout_slope_paired({0: evals[0], 10: eval_arrays([1], [5], [True])}) is None  # no shared slot


def test_main_reads_what_the_trainer_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "run"
    cfg = load_config(preset="tabletop", overrides=tiny_tabletop(
        8, "env.tabletop.num_tasks=1", "env.tabletop.num_init_states=6", "env.tabletop_num_eval_init_states=2",
        "tensorboard=false", "num_videos_per_step=0", "num_steps=3", "eval_every=3",
        "algo.aggregation=traj-mean-token-mean", f"run_dir={run_dir}"))
    torch.manual_seed(0)
    with Trainer(cfg, show_progress=False) as trainer:
        trainer.train()
    run_dirs = [run_dir, run_dir]  # the same run twice: every difference is 0
    out = tmp_path / "diag" / "d.json"
    monkeypatch.setattr(sys, "argv", ["run_diagnostics.py", "--run", f"token={run_dirs[0]}",
                                      "--run", f"traj={run_dirs[1]}", "--block", "2", "--out", str(out)])
    bench.main()
    report = json.loads(out.read_text())
    token, traj = report["runs"]["token"], report["runs"]["traj"]
    assert [(b["first_step"], b["last_step"]) for b in token["blocks"]] == [(1, 2), (3, 3)]
    assert [p["step"] for p in token["heldout"]["points"]] == [0, 3]
    assert "slope_per_100_steps" in token["heldout"]
    assert [s for s, _ in traj["entropy_per_step"]] == [1, 2, 3]
    assert report["entropy_key"] == "policy/entropy"
    assert [d["first_step"] for d in traj["vs_token"]["train_blocks"]] == [1, 3]
    assert [d["step"] for d in traj["vs_token"]["heldout"]] == [0, 3]
    assert all(d["difference"] == 0.0 for d in traj["vs_token"]["heldout"] + traj["vs_token"]["train_blocks"])
    assert traj["vs_token"]["heldout_mean_after_start"]["steps"] == [3]
    assert traj["vs_token"]["heldout_mean_after_start"]["difference"] == 0.0
    # The trainer saved each evaluation's episodes, so the same run against itself pairs every episode.
    paired = traj["vs_token"]["heldout_paired"]
    assert [d["step"] for d in paired] == [0, 3]
    episodes = {p["step"]: p["num_episodes"] for p in token["heldout"]["points"]}
    assert all(d["difference"] == 0.0 and d["a_only"] == d["b_only"] == 0 and d["num_pairs"] == episodes[d["step"]]
               for d in paired)
    pooled = traj["vs_token"]["heldout_paired_after_start"]
    assert pooled["steps"] == [3] and pooled["difference"] == 0.0 and pooled["ci95"] == [0.0, 0.0]
    assert pooled["num_pairs"] == episodes[3]
    # Each run against its own step 0: the step-3 evaluation paired with the step-0 one, state by state.
    for run in (token, traj):
        gain = run["gain_over_start_paired"]
        assert gain["steps"] == [3] and gain["num_pairs"] == episodes[3]
        points = {p["step"]: p["num_successes"] for p in token["heldout"]["points"]}
        assert gain["difference"] == pytest.approx((points[3] - points[0]) / episodes[3])
    # The trainer logs the aggregation's net advantage; under traj-mean-token-mean it is the plain mean, 0.
    logged = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert all(abs(r["advantage/loss_weighted_mean"]) < 1e-9 for r in logged if "loss/policy" in r)
    assert (out.parent / "d.png").stat().st_size > 0
    printed = capsys.readouterr().out
    assert "token-weighted A" in printed
    assert [m["step"] for m in token["advantage_mass_per_step"]] == [1, 2, 3]
    assert "all-failure groups/groups, their share of |A|" in printed
    assert "held-out after step 0 (steps [3]) - step 0, paired by init state" in printed
    for run in (token, traj):
        slope = run["heldout_slope_paired"]
        assert slope["steps"] == [0, 3] and slope["num_episodes"] == episodes[3]
        assert slope["slope_per_100_steps"] == pytest.approx(run["heldout"]["slope_per_100_steps"])
    assert "slope per 100 steps, paired by init state over steps [0, 3]" in printed
    monkeypatch.setattr(sys, "argv", ["run_diagnostics.py", "--run", f"x={tmp_path}", "--out", str(out)])
    with pytest.raises(FileNotFoundError, match=r"has no metrics\.jsonl"):
        bench.main()


def test_rescale_steps_keeps_whole_steps_only() -> None:
    from fractions import Fraction

    assert bench.rescale_steps({0: "a", 2: "b", 3: "c"}, Fraction(2)) == {0: "a", 4: "b", 6: "c"}
    assert bench.rescale_steps({0: "a", 2: "b", 3: "c"}, Fraction(2, 3)) == {0: "a", 2: "c"}  # step 2 -> 4/3: none
    assert bench.rescale_steps({5: "a"}, Fraction(1)) == {5: "a"}


def write_run(run_dir: Path, group_size: int, prompts: int, evals: dict[int, list[bool]]) -> None:
    """A results-style run folder: config.yaml with the batch size, metrics.jsonl and steps/eval_*.npz, every
    evaluation over states 30, 31, 32, 33 of task 0."""
    (run_dir / "steps").mkdir(parents=True)
    (run_dir / "config.yaml").write_text(f"algo:\n  group_size: {group_size}\n  num_prompts_per_step: {prompts}\n")
    records = []
    for step, success in evals.items():
        records.append({"step": step, "eval/num_successes": sum(success), "eval/num_episodes": len(success)})
        np.savez(run_dir / "steps" / f"eval_{step:06d}.npz", task_ids=np.zeros(4, dtype=np.int64),
                 init_state_ids=np.arange(30, 34), success=np.array(success), finish_step=np.full(4, 100))
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def test_diagnose_on_the_episodes_axis_pairs_equal_training_episodes(tmp_path: Path) -> None:
    # The base trains on 2 × 4 = 8 episodes a step and evaluates at steps 0, 2, 4; the other on 16 a step at
    # steps 0, 1, 2, 3. On the episodes axis the other's step 1 meets the base's step 2 and its step 2 the base's
    # step 4; its step 3 (48 episodes = base step 6) has no partner.
    base, other = tmp_path / "b32", tmp_path / "b64"
    lose, win = [False] * 4, [True] * 4
    write_run(base, 2, 4, {0: lose, 2: lose, 4: [True, False, False, False]})
    write_run(other, 4, 4, {0: lose, 1: [True, True, False, False], 2: win, 3: lose})
    report = bench.diagnose([("b32", base), ("b64", other)], block=2, x="episodes")
    vs = report["runs"]["b64"]["vs_b32"]
    assert report["runs"]["b64"]["episodes_per_step"] == 16 and report["runs"]["b32"]["episodes_per_step"] == 8
    assert vs["base_steps"] == [0, 2, 4, 6]
    assert [d["step"] for d in vs["heldout"]] == [0, 2, 4]
    assert [d["difference"] for d in vs["heldout"]] == pytest.approx([0.0, 0.5, 0.75])
    pooled = vs["heldout_paired_after_start"]
    assert pooled["steps"] == [2, 4] and pooled["num_pairs"] == 8
    assert pooled["difference"] == pytest.approx((2 + 3) / 8)  # 6 wins against 1 over the same states
    assert vs["heldout_mean_after_start"]["other"] == [6, 8] and vs["heldout_mean_after_start"]["base"] == [1, 8]
    # Its own curve stays on its own steps.
    assert [p["step"] for p in report["runs"]["b64"]["heldout"]["points"]] == [0, 1, 2, 3]
    # On the step axis only the same step numbers meet: 0 and 2.
    by_step = bench.diagnose([("b32", base), ("b64", other)], block=2)["runs"]["b64"]["vs_b32"]
    assert [d["step"] for d in by_step["heldout"]] == [0, 2]
    assert by_step["heldout"][1]["difference"] == pytest.approx(1.0)
    (other / "config.yaml").write_text("algo:\n  group_size: 4\n")
    with pytest.raises(ValueError, match="num_prompts_per_step"):
        bench.diagnose([("b32", base), ("b64", other)], block=2, x="episodes")
    (other / "config.yaml").unlink()
    with pytest.raises(FileNotFoundError, match="reads each run's batch size"):
        bench.diagnose([("b32", base), ("b64", other)], block=2, x="episodes")
    with pytest.raises(ValueError, match="x must be"):
        bench.diagnose([("b32", base)], block=2, x="time")


def test_main_on_the_episodes_axis_prints_the_mapping_and_plots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    base, other = tmp_path / "b32", tmp_path / "b64"
    write_run(base, 2, 4, {0: [False] * 4, 2: [True, False, False, False]})
    write_run(other, 4, 4, {0: [False] * 4, 1: [True] * 4})
    out = tmp_path / "d.json"
    monkeypatch.setattr(sys, "argv", ["run_diagnostics.py", "--run", f"b32={base}", "--run", f"b64={other}",
                                      "--x", "episodes", "--out", str(out)])
    bench.main()
    printed = capsys.readouterr().out
    assert "vs_b32 at equal training episodes (16 per step against 8): steps on the first run's axis [0, 2]" in printed
    assert json.loads(out.read_text())["x"] == "episodes" and (tmp_path / "d.png").stat().st_size > 0
