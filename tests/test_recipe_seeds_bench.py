"""benchmarks/recipe_seeds.py: one recipe's runs gathered from several folders, each cut at a common horizon, and
their held-out slope, gain over the start and final success across seeds (reruns of a seed averaged first)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmark_module import load_benchmark

bench = load_benchmark("recipe_seeds")


def fake_run(path: Path, points: list[tuple[int, int]], episodes: int = 40) -> Path:
    """A run directory whose metrics.jsonl holds one evaluation with counts per (step, successes)."""
    path.mkdir(parents=True)
    lines = [json.dumps({"step": s, "eval/num_successes": k, "eval/num_episodes": episodes,
                         "eval/success_rate": k / episodes}) for s, k in points]
    lines.insert(1, json.dumps({"step": 1, "loss/policy": 0.1}))  # training records are skipped
    (path / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    return path


def test_parse_runs_arms_seeds_and_refusals() -> None:
    assert bench.parse_runs(["0=a", "grpo:3=b/c"]) == [("srpo", 0, Path("a")), ("grpo", 3, Path("b/c"))]
    for bad in (["a=x"], ["0"], ["srpo:=x"], [":0=x"], ["0="]):
        with pytest.raises(ValueError, match=r"write \[ARM:\]SEED=RUN_DIR"):
            bench.parse_runs(bad)
    with pytest.raises(ValueError, match="given twice"):
        bench.parse_runs(["0=x", "1=x"])
    assert len(bench.parse_runs(["0=x", "grpo:0=x"])) == 2  # one folder may not be two runs of an arm only


def test_summarise_hand_computed(tmp_path: Path) -> None:
    # Seed 0 twice: run A 4, 8, 12 of 40 at steps 0, 10, 20 (slope 0.2 / 20 steps = +1.0 per 100, gain
    # mean(0.2, 0.3) - 0.1 = +0.15, final 0.3) and run B 4, 8 at steps 0, 20 (+0.5, +0.1, 0.2); its evaluation at
    # step 30 lies past the horizon and is cut. Seed 0's values are the means: slope +0.75, gain +0.125.
    # Seed 1: 4, 4 at steps 0, 20: slope 0, gain 0, final 0.1.
    a = fake_run(tmp_path / "a", [(0, 4), (10, 8), (20, 12)])
    b = fake_run(tmp_path / "b", [(0, 4), (20, 8), (30, 40)])
    c = fake_run(tmp_path / "c", [(0, 4), (20, 4)])
    g0 = fake_run(tmp_path / "g0", [(0, 4), (20, 4)])
    g1 = fake_run(tmp_path / "g1", [(0, 4), (20, 8)])
    report = bench.summarise([("srpo", 0, a), ("srpo", 0, b), ("srpo", 1, c), ("grpo", 0, g0), ("grpo", 1, g1)],
                             horizon=20)
    srpo = report["arms"]["srpo"]
    assert [r["slope_per_100_steps"] for r in srpo["runs"]] == pytest.approx([1.0, 0.5, 0.0])
    assert srpo["runs"][1]["points"] == [[0, 4, 40], [20, 8, 40]]
    assert srpo["runs"][0]["slope_interval"] == "binomial"  # no saved evaluation arrays
    assert srpo["per_seed"]["slope_per_100_steps"] == {0: pytest.approx(0.75), 1: pytest.approx(0.0)}
    assert srpo["per_seed"]["gain_over_start"] == {0: pytest.approx(0.125), 1: pytest.approx(0.0)}
    assert srpo["per_seed"]["final"] == {0: pytest.approx(0.25), 1: pytest.approx(0.1)}
    across = srpo["across_seeds"]["slope_per_100_steps"]
    # Two seeds: mean 0.375, sd 0.75 / sqrt(2) = 0.530330, t_{1, 0.975} = 12.706205, half-width 4.764827.
    assert across["num_seeds"] == 2 and across["mean"] == pytest.approx(0.375)
    assert across["t_ci"] == pytest.approx([0.375 - 4.764827, 0.375 + 4.764827], abs=1e-5)
    assert srpo["seeds"] == [0, 1]
    # The mean curve: steps every run evaluated (0 and 20), seed 0's two runs averaged first.
    assert [(p["step"], p["num_seeds"]) for p in srpo["mean_curve"]] == [(0, 2), (20, 2)]
    assert srpo["mean_curve"][1]["mean"] == pytest.approx((0.25 + 0.1) / 2)
    # Seed 0 at its lowest run (B: slope +0.5) and its highest (A: +1.0), seed 1 at its only one (0): t half-widths
    # 12.706205 * sd / sqrt(2), sd 0.353553 and 0.707107: 3.176551 and 6.353103.
    bounds = srpo["rerun_bounds"]
    assert bounds["seeds_with_reruns"] == [0]
    assert bounds["slope_per_100_steps"]["low"]["mean"] == pytest.approx(0.25)
    assert bounds["slope_per_100_steps"]["high"]["mean"] == pytest.approx(0.5)
    assert bounds["final"]["low"]["mean"] == pytest.approx((0.2 + 0.1) / 2)
    assert report["arms"]["grpo"]["rerun_bounds"] is None  # one run a seed
    (diff,) = report["differences"]
    assert diff["difference"] == "srpo - grpo" and diff["seeds"] == [0, 1]
    # grpo: seed 0 slope 0, seed 1 slope +0.5: differences +0.75 and -0.5 per seed.
    assert diff["slope_per_100_steps"]["per_seed"] == pytest.approx([0.75, -0.5])
    assert diff["slope_per_100_steps"]["mean"] == pytest.approx(0.125)
    text = bench.table(report)
    assert "srpo, mean over 2 seeds [0, 1] (95 %):" in text and "slope per 100 steps  +0.375 [-4.390, +5.140] t" in text
    assert "srpo - grpo, paired by seed over seeds [0, 1]" in text
    assert "with seeds [0] at their lowest / highest run" in text
    assert "slope per 100 steps  +0.250 [-2.927, +3.427] t / +0.500 [-5.853, +6.853] t" in text


def test_paired_slope_interval_where_evaluations_were_saved(tmp_path: Path) -> None:
    run = fake_run(tmp_path / "r", [(0, 1), (20, 3)], episodes=4)
    (run / "steps").mkdir()
    for step, wins in ((0, [1, 0, 0, 0]), (20, [1, 1, 1, 0])):  # the files srpo.run_dir.write_eval_arrays writes
        np.savez(run / "steps" / f"eval_{step:06d}.npz", task_ids=np.zeros(4, np.int64),
                 init_state_ids=np.arange(4), success=np.asarray(wins, dtype=bool), finish_step=np.full(4, 10))
    (r,) = bench.summarise([("srpo", 0, run)], horizon=20)["arms"]["srpo"]["runs"]
    assert r["slope_interval"] == "paired over init states"
    assert r["slope_per_100_steps"] == pytest.approx(2.5)  # (0.75 - 0.25) / 20 steps
    low, high = r["slope_ci95"]
    assert low <= 2.5 <= high
    across = bench.summarise([("srpo", 0, run)], horizon=20)["arms"]["srpo"]["across_seeds"]["slope_per_100_steps"]
    assert across["t_ci"] is None and "(one seed)" in bench.interval_text(across)


def test_runs_without_an_evaluation_at_the_horizon_are_refused(tmp_path: Path) -> None:
    short = fake_run(tmp_path / "short", [(0, 4), (16, 8)])
    with pytest.raises(ValueError, match="one at step 0 and one at step 20; finish the run or lower --horizon"):
        bench.summarise([("srpo", 0, short)], horizon=20)
    late = fake_run(tmp_path / "late", [(4, 4), (20, 8)])
    with pytest.raises(ValueError, match="one at step 0"):
        bench.summarise([("srpo", 0, late)], horizon=20)
    with pytest.raises(FileNotFoundError, match=r"has no metrics\.jsonl"):
        bench.summarise([("srpo", 0, tmp_path / "missing")], horizon=20)
    with pytest.raises(ValueError, match="--horizon 0 must be >= 1"):
        bench.summarise([("srpo", 0, short)], horizon=0)


def test_main_writes_report_and_plot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    a = fake_run(tmp_path / "a", [(0, 4), (10, 8), (20, 12)])
    b = fake_run(tmp_path / "b", [(0, 6), (10, 6), (20, 10)])
    out = tmp_path / "res" / "seeds.json"
    monkeypatch.setattr(sys, "argv", ["recipe_seeds.py", "--horizon", "20", "--run", f"0={a}", "--run", f"1={b}",
                                      "--out", str(out)])
    bench.main()
    report = json.loads(out.read_text())
    assert report["horizon"] == 20 and report["arms"]["srpo"]["seeds"] == [0, 1]
    assert out.with_suffix(".png").stat().st_size > 0
    assert "srpo, mean over 2 seeds" in capsys.readouterr().out


def test_main_plots_the_paired_differences_beside_the_curves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    curves = {"s0": [(0, 4), (20, 12)], "s1": [(0, 6), (20, 10)], "g0": [(0, 4), (20, 6)], "g1": [(0, 6), (20, 9)]}
    runs = {name: fake_run(tmp_path / name, points) for name, points in curves.items()}
    out = tmp_path / "seeds.json"
    monkeypatch.setattr(sys, "argv", ["recipe_seeds.py", "--horizon", "20", "--run", f"0={runs['s0']}", "--run",
                                      f"1={runs['s1']}", "--run", f"grpo:0={runs['g0']}", "--run",
                                      f"grpo:1={runs['g1']}", "--out", str(out)])
    drawn: list[list[dict[str, object]]] = []
    monkeypatch.setattr(bench, "plot_differences", lambda differences, ax: drawn.append(differences))
    bench.main()
    assert len(drawn) == 1 and drawn[0][0]["difference"] == "srpo - grpo"
    # gains: srpo +0.2, +0.1; grpo +0.05, +0.075: per-seed differences +0.15 and +0.025
    assert drawn[0][0]["gain_over_start"]["per_seed"] == pytest.approx([0.15, 0.025])
    assert out.with_suffix(".png").stat().st_size > 0


def test_plot_differences_draws_each_seed_and_the_mean() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stats = {"per_seed": [0.1, -0.05, 0.2], "mean": 0.25 / 3, "t_ci": [-0.2, 0.35]}
    fig, ax = plt.subplots()
    bench.plot_differences([{"difference": "srpo - grpo", "seeds": [0, 1, 2], "gain_over_start": stats,
                             "final": {**stats, "t_ci": None}}], ax)
    dots = [c for c in ax.collections if len(c.get_offsets()) == 3]
    assert len(dots) == 2  # one scatter of the three seeds per quantity
    assert sorted(np.asarray(dots[0].get_offsets())[:, 1].tolist()) == pytest.approx([-0.05, 0.1, 0.2])
    assert ax.get_legend().get_texts()[0].get_text() == "srpo - grpo, 3 seeds"
    plt.close(fig)
