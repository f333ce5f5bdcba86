"""benchmarks/checkpoint_curve.py: held-out success of a run's checkpoints, evaluated after the run."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmark_module import load_benchmark
from srpo.build import make_policy
from srpo.config.train import load_config
from srpo.evaluate import wilson_interval
from srpo.run_dir import STEPS_DIR, read_eval_arrays
from tiny_config import as_sets, tiny_tabletop

bench = load_benchmark("checkpoint_curve")

TINY = tiny_tabletop(8, "env.tabletop.num_tasks=1", "env.tabletop.num_init_states=6",
                     "env.tabletop_num_eval_init_states=2", "tensorboard=false")


def test_parse_checkpoints_sorts_by_step_and_refuses_bad_items() -> None:
    assert bench.parse_checkpoints(["10=b", "0=a"]) == [(0, "a"), (10, "b")]
    for bad in (["a"], ["x=a"], ["1="], ["-1=a"]):
        with pytest.raises(ValueError, match="write STEP=DIR"):
            bench.parse_checkpoints(bad)
    with pytest.raises(ValueError, match="distinct"):
        bench.parse_checkpoints(["1=a", "1=b"])


def test_curve_summary_hand_computed() -> None:
    # Rates 0.1, 0.2, 0.3 at steps 0, 10, 20: slope 0.01 per step = 1.0 per 100 steps; last - first = +0.2.
    points = [{"step": s, "num_successes": k, "num_episodes": 10} for s, k in ((0, 1), (10, 2), (20, 3))]
    out = bench.curve_summary(points)
    assert out["slope_per_100_steps"] == pytest.approx(1.0)
    lo, hi = out["slope_per_100_steps_ci95"]
    assert lo < 1.0 < hi
    assert out["last_minus_first"] == pytest.approx(0.2)
    assert out["points"][1]["wilson95"] == list(wilson_interval(2, 10))
    assert out["points"][1]["rate"] == pytest.approx(0.2)


def test_main_evaluates_caches_and_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    ckpts = []
    for seed in (0, 1):
        policy = make_policy(load_config(preset="tabletop", overrides=[*TINY, f"policy.seed={seed}"]))
        ckpts.append(policy.save_pretrained(tmp_path / f"ckpt{seed}"))
    argv = ["checkpoint_curve.py", "--preset", "tabletop", *as_sets(TINY), "--checkpoint", f"5={ckpts[1]}",
            "--checkpoint", f"0={ckpts[0]}", "--sample-temperature", "1.0", "--episodes", "4",
            "--work-dir", str(tmp_path / "work"), "--out", str(tmp_path / "curve.json")]
    monkeypatch.setattr(sys, "argv", argv)
    bench.main()
    report = json.loads((tmp_path / "curve.json").read_text())
    assert [p["step"] for p in report["points"]] == [0, 5]
    assert all(p["num_episodes"] == 4 for p in report["points"])
    assert (report["mode"], report["temperature"], report["seed"]) == ("sampled", 1.0, 0)
    assert (tmp_path / "curve.png").stat().st_size > 0
    # 1 task, 2 held-out states played twice each: 4 episode slots over 2 states, paired between the checkpoints.
    assert report["slope_paired"]["steps"] == [0, 5]
    assert (report["slope_paired"]["num_episodes"], report["slope_paired"]["num_clusters"]) == (4, 2)
    [vs_start] = report["vs_start_paired"]
    assert vs_start["step"] == 5 and vs_start["num_pairs"] == 4
    rates = [p["num_successes"] / 4 for p in report["points"]]
    assert vs_start["difference"] == pytest.approx(rates[1] - rates[0])
    assert report["greedy_run"] is None and "episodes" not in report["points"][0]
    cached = json.loads((tmp_path / "work" / "step000005" / "eval.json").read_text())
    assert cached["checkpoint"] == str(ckpts[1]) and cached["mode"] == "sampled"

    # A second run reads the cached evaluations back instead of evaluating again.
    calls = []
    import srpo.evaluate

    monkeypatch.setattr(srpo.evaluate, "evaluate_checkpoint", lambda *a, **k: calls.append(a))
    bench.main()
    assert calls == []
    assert json.loads((tmp_path / "curve.json").read_text())["points"] == report["points"]
    # Another sampling seed is another evaluation: the cache does not answer for it.
    monkeypatch.setattr(sys, "argv", [*argv, "--set", "seed=1"])
    bench.main()
    assert len(calls) == 2
    assert "slope per 100 steps" in capsys.readouterr().out
    # The run's own greedy evaluations go beside the curve, from its steps/eval_*.npz.
    write_evals(tmp_path / "run", {0: ([0, 1], [False, True]), 5: ([0, 1], [True, True])})
    monkeypatch.setattr(sys, "argv", [*argv, "--greedy-run", str(tmp_path / "run")])
    bench.main()
    greedy = json.loads((tmp_path / "curve.json").read_text())["greedy_run"]
    assert [p["num_successes"] for p in greedy["points"]] == [1, 2]
    assert greedy["vs_start_paired"][0]["b_only"] == 1
    assert "the run's own evaluations" in capsys.readouterr().out
    # Against itself (the same work dir): every paired difference is 0, pooled too.
    monkeypatch.setattr(sys, "argv", [*argv, "--against", str(tmp_path / "work")])
    bench.main()
    against = json.loads((tmp_path / "curve.json").read_text())["against"]
    assert [d["difference"] for d in against["this_minus_that"]] == [0.0, 0.0]
    assert against["this_minus_that_after_start"]["difference"] == 0.0
    # Split at init state 5: the tiny env's held-out states 4 and 5 fall one on each side, two slots each.
    monkeypatch.setattr(sys, "argv", [*argv, "--split-init-state", "5"])
    bench.main()
    split = json.loads((tmp_path / "curve.json").read_text())["split"]
    assert set(split) == {"train", "held_out"}
    assert [p["num_episodes"] for p in split["train"]["points"]] == [2, 2]
    # Another sampling seed does not pair with the cached curve: refused before anything is evaluated.
    monkeypatch.setattr(sys, "argv", [*argv, "--set", "seed=3", "--against", str(tmp_path / "work")])
    with pytest.raises(SystemExit):
        bench.main()
    assert "was evaluated otherwise" in capsys.readouterr().err


def write_evals(run_dir: Path, evals: dict[int, tuple[list[int], list[bool]]]) -> None:
    """steps/eval_<step>.npz as the trainer writes them (task 0, the given init states and outcomes)."""
    (run_dir / STEPS_DIR).mkdir(parents=True)
    for step, (states, success) in evals.items():
        np.savez(run_dir / STEPS_DIR / f"eval_{step:06d}.npz", task_ids=np.zeros(len(states), dtype=np.int64),
                 init_state_ids=np.asarray(states, dtype=np.int64), success=np.asarray(success, dtype=bool),
                 finish_step=np.ones(len(states), dtype=np.int64))


def test_episode_arrays_read_eval_json_records_as_the_trainer_arrays(tmp_path: Path) -> None:
    write_evals(tmp_path, {4: ([7, 3], [True, False])})
    records = [{"task_id": 0, "init_state_id": 7, "success": True, "num_steps": 1},
               {"task_id": 0, "init_state_id": 3, "success": False, "num_steps": 1}]
    ours, trainer = bench.episode_arrays(records), read_eval_arrays(tmp_path)[4]
    for key in ("task_ids", "init_state_ids", "success"):
        assert ours[key].dtype == trainer[key].dtype
        np.testing.assert_array_equal(ours[key], trainer[key])


def test_greedy_run_curve_summarises_the_runs_own_evaluations(tmp_path: Path) -> None:
    # Steps 0, 10, 20 on states 5 and 6: 0/2, 1/2, 2/2 successes, a slope of 5 per 100 steps; state 5 is won from
    # step 10 on, state 6 at step 20 only.
    write_evals(tmp_path, {0: ([5, 6], [False, False]), 10: ([6, 5], [False, True]), 20: ([5, 6], [True, True])})
    out = bench.greedy_run_curve(tmp_path)
    assert out["run_dir"] == str(tmp_path)
    assert [(p["step"], p["num_successes"], p["num_episodes"]) for p in out["points"]] == [(0, 0, 2), (10, 1, 2),
                                                                                           (20, 2, 2)]
    assert out["slope_per_100_steps"] == pytest.approx(5.0)
    assert out["slope_paired"]["slope_per_100_steps"] == pytest.approx(5.0)
    assert [(d["step"], d["difference"], d["b_only"], d["a_only"]) for d in out["vs_start_paired"]] == [
        (10, pytest.approx(0.5), 1, 0), (20, pytest.approx(1.0), 2, 0)]
    one = tmp_path / "one"
    write_evals(one, {0: ([5], [True])})
    with pytest.raises(FileNotFoundError, match="at least twice"):
        bench.greedy_run_curve(one)


def write_eval_json(work_dir: Path, step: int, states: list[int], success: list[bool], **how: Any) -> None:
    """A step<NNNNNN>/eval.json as `srpo eval` writes it (task 0), sampled at T = 0.7 with seed 0 unless `how`."""
    out = work_dir / f"step{step:06d}"
    out.mkdir(parents=True)
    fields = {"mode": "sampled", "temperature": 0.7, "seed": 0, "episodes_per_task": len(states), **how}
    out.joinpath("eval.json").write_text(json.dumps({
        **fields, "checkpoint": f"ckpt{step}", "num_successes": sum(success), "num_episodes": len(states),
        "episodes": [{"task_id": 0, "init_state_id": s, "success": ok, "num_steps": 1}
                     for s, ok in zip(states, success, strict=True)]}))


HOW = {"mode": "sampled", "temperature": 0.7, "seed": 0, "episodes_per_task": 2}


def test_against_pairs_two_curves_by_episode_hand_computed(tmp_path: Path) -> None:
    # That curve (e.g. GRPO): step 0 wins state 5, step 10 wins nothing. This one: step 0 the same start, step 10
    # wins both states. Step 10: +1 (2 episodes won only here); step 0: 0. Pooled after step 0: +1 over 2 states.
    write_eval_json(tmp_path / "that", 0, [5, 6], [True, False])
    write_eval_json(tmp_path / "that", 10, [5, 6], [False, False])
    (tmp_path / "that" / "stepxyz").mkdir()  # not a step: skipped
    reports = bench.read_against(tmp_path / "that", HOW)
    assert sorted(reports) == [0, 10]
    evals = {0: bench.episode_arrays(reports[0]["episodes"]),
             10: bench.episode_arrays([{"task_id": 0, "init_state_id": s, "success": True} for s in (6, 5)])}
    out = bench.against_curve(tmp_path / "that", reports, evals)
    assert [(p["step"], p["num_successes"]) for p in out["points"]] == [(0, 1), (10, 0)]
    assert [(d["step"], d["difference"], d["b_only"], d["a_only"]) for d in out["this_minus_that"]] == [
        (0, 0.0, 0, 0), (10, pytest.approx(1.0), 2, 0)]
    pooled = out["this_minus_that_after_start"]
    assert pooled["steps"] == [10] and pooled["difference"] == pytest.approx(1.0) and pooled["num_clusters"] == 2


def test_against_refuses_curves_that_do_not_pair(tmp_path: Path) -> None:
    write_eval_json(tmp_path / "one", 0, [5, 6], [True, False])
    with pytest.raises(ValueError, match="holds 1 step"):
        bench.read_against(tmp_path / "one", HOW)
    write_eval_json(tmp_path / "hot", 0, [5, 6], [True, False])
    write_eval_json(tmp_path / "hot", 10, [5, 6], [True, False], temperature=1.0)
    with pytest.raises(ValueError, match=r"step 10 was evaluated otherwise \(\{'temperature': \(1.0, 0.7\)\}"):
        bench.read_against(tmp_path / "hot", HOW)


def test_split_by_init_state_separates_training_and_held_out_episodes() -> None:
    # States 0, 1 are training states (first held-out: 2), 2 and 3 held out; run order is kept within each half.
    records = [{"task_id": 0, "init_state_id": s, "success": ok} for s, ok in
               ((3, True), (0, False), (2, False), (1, True))]
    evals = {0: bench.episode_arrays(records),
             10: bench.episode_arrays([{**r, "success": True} for r in records])}
    parts = bench.split_by_init_state(evals, 2)
    assert parts["train"][0]["init_state_ids"].tolist() == [0, 1]
    assert parts["train"][0]["success"].tolist() == [False, True]
    assert parts["held_out"][0]["init_state_ids"].tolist() == [3, 2]
    out = bench.split_summaries(evals, 2)
    # Training: 1/2 -> 2/2; held out: 1/2 -> 2/2; each gains the one episode it lost at step 0.
    for name in ("train", "held_out"):
        assert [p["num_successes"] for p in out[name]["points"]] == [1, 2]
        [d] = out[name]["vs_start_paired"]
        assert (d["difference"], d["b_only"], d["a_only"]) == (pytest.approx(0.5), 1, 0)
    # A half without two evaluations is left out.
    assert set(bench.split_summaries(evals, 9)) == {"train"}
