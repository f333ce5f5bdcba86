"""`srpo compare`: the slope of a learning curve and its interval, evaluation counts, and the end-to-end runner on
the tabletop env (both arms, resume, intervals in the JSON and the plot)."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest

from srpo.compare import (
    CompareResult,
    across_seeds,
    curve_statistics,
    eval_counts,
    gain_over_start,
    mean_after_start,
    mean_per_seed,
    run_compare,
)
from srpo.config.train import load_config
from srpo.evaluate import SlopeEstimate, success_slope, wilson_interval
from srpo.run_dir import read_metrics
from test_trainer import TINY


def test_success_slope_hand_computed() -> None:
    # Rates 0.2, 0.4, 0.6 at steps 0, 10, 20: c = (-0.05, 0, 0.05), slope 0.02 per step.
    est = success_slope([0, 10, 20], [2, 4, 6], [10, 10, 10])
    assert est.slope == pytest.approx(0.02)
    # Add-one rates 3/12 and 7/12 at the ends: Var = 0.05² (0.25·0.75 + 7/12·5/12) / 10.
    var = 0.0025 * (0.25 * 0.75 + (7 / 12) * (5 / 12)) / 10
    half = 1.959963984540054 * math.sqrt(var)
    assert (est.low, est.high) == (pytest.approx(0.02 - half), pytest.approx(0.02 + half))
    assert est.num_points == 3
    bounds = f"[{100 * (0.02 - half):+.3f}, {100 * (0.02 + half):+.3f}]"
    assert est.text() == f"+2.000 {bounds} per 100 steps (3 evaluations)"


def test_success_slope_of_a_flat_curve_of_zeros_has_a_nonzero_interval() -> None:
    est = success_slope([0, 10, 20, 30], [0, 0, 0, 0], [40, 40, 40, 40])
    assert est.slope == 0.0 and est.low < 0.0 < est.high


def test_a_clear_rise_excludes_zero_and_noise_does_not() -> None:
    rising = success_slope([0, 10, 20, 30, 40], [4, 10, 16, 22, 28], [40] * 5)
    assert rising.low > 0
    flat = success_slope([0, 10, 20, 30, 40], [4, 6, 3, 5, 4], [40] * 5)
    assert flat.low < 0 < flat.high


def test_success_slope_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="two or more different steps"):
        success_slope([5, 5], [1, 2], [10, 10])
    with pytest.raises(ValueError, match="0 <= successes <= trials"):
        success_slope([0, 1], [11, 2], [10, 10])
    with pytest.raises(ValueError, match="one length"):
        success_slope([0, 1, 2], [1, 2], [10, 10])


def test_eval_counts_keep_the_last_record_per_step_in_step_order() -> None:
    records = [{"step": 10, "eval/num_successes": 3, "eval/num_episodes": 40},
               {"step": 0, "eval/num_successes": 1, "eval/num_episodes": 40},
               {"step": 10, "eval/num_successes": 5, "eval/num_episodes": 40},  # a resumed run's re-evaluation
               {"step": 5, "loss/policy": 0.1},
               {"step": 20, "eval/num_successes": 0, "eval/num_episodes": 0}]
    assert eval_counts(records) == [(0, 1, 40), (10, 5, 40)]
    intervals, slope = curve_statistics(records)
    assert intervals == [(0, *wilson_interval(1, 40)), (10, *wilson_interval(5, 40))]
    assert slope is not None and slope.slope == pytest.approx((5 / 40 - 1 / 40) / 10)
    assert curve_statistics(records[1:2]) == ([(0, *wilson_interval(1, 40))], None)


def result_of(curves: dict[str, dict[int, list[tuple[int, float]]]]) -> CompareResult:
    """A CompareResult filled as run_compare fills it, from {algo: {seed: curve}}."""
    result = CompareResult(metric="eval/success_rate", target=0.5)
    for algo, by_seed in curves.items():
        for seed, curve in by_seed.items():
            result.curves.setdefault(algo, []).append(curve)
            result.final.setdefault(algo, []).append(curve[-1][1])
            result.mean_after_start.setdefault(algo, []).append(mean_after_start(curve))
            result.steps_to_target.setdefault(algo, []).append(None)
            result.runs.setdefault(algo, []).append({"seed": seed, "steps_done": curve[-1][0],
                                                     "num_steps": curve[-1][0]})
    return result


def test_differences_pair_seeds_and_bootstrap_over_seeds() -> None:
    result = result_of({
        "srpo": {0: [(0, 0.2), (10, 0.4), (20, 0.5)], 1: [(0, 0.2), (10, 0.3), (20, 0.3)],
                 2: [(0, 0.2), (10, 0.1)]},
        "grpo": {1: [(0, 0.2), (10, 0.2), (20, 0.4)], 0: [(0, 0.2), (10, 0.3), (20, 0.3)]},
    })
    assert result.mean_after_start["srpo"] == [pytest.approx(0.45), pytest.approx(0.3), pytest.approx(0.1)]
    (d,) = result.differences()
    # Seed 2 has no grpo run: left out. Seed 0: final 0.5 - 0.3, mean after start 0.45 - 0.3; seed 1: 0.3 - 0.4,
    # 0.3 - 0.3. Two seeds: every bootstrap mean is one of the per-seed values or their average.
    assert d["difference"] == "srpo - grpo" and d["seeds"] == [0, 1]
    assert d["final"]["per_seed"] == [pytest.approx(0.2), pytest.approx(-0.1)]
    assert d["final"]["mean"] == pytest.approx(0.05) and d["final"]["ci95"] == pytest.approx([-0.1, 0.2])
    assert d["mean_after_start"]["per_seed"] == [pytest.approx(0.15), pytest.approx(0.0)]
    assert d["mean_after_start"]["ci95"] == pytest.approx([0.0, 0.15])
    rows = {r["algo"]: r for r in result.summary_rows()}
    assert rows["srpo"]["mean_after_start_mean"] == pytest.approx(0.85 / 3)
    low, high = rows["srpo"]["mean_after_start_ci95"]
    assert 0.1 <= low <= 0.85 / 3 <= high <= 0.45
    assert rows["grpo"]["final_ci95"] == pytest.approx([0.3, 0.4])
    assert "srpo - grpo, paired by seed over seeds [0, 1]" in result.table()
    assert mean_after_start([(0, 0.5)]) is None
    assert result_of({"srpo": {0: [(0, 0.2)]}, "grpo": {1: [(0, 0.2)]}}).differences() == []
    # Runs evaluated only at step 0 have a final value but no mean after the start.
    start_only = result_of({"srpo": {0: [(0, 0.3)]}, "grpo": {0: [(0, 0.1)]}})
    (d,) = start_only.differences()
    assert d["final"]["per_seed"] == [pytest.approx(0.2)] and d["final"]["ci95"] == pytest.approx([0.2, 0.2])
    assert d["mean_after_start"] == {"per_seed": [None], "mean": None, "ci95": None}
    assert "final +0.200" in start_only.table() and "mean after start" not in start_only.table()


def test_gain_over_start_per_seed_and_across_seeds() -> None:
    # Hand-computed: seed 0 rises 0.2 -> mean(0.4, 0.5) = 0.45, gain +0.25; seed 1 0.2 -> 0.3, +0.1;
    # seed 2 starts at 0.3 and falls to 0.1, -0.2. A resumed run's second step-0 record is the one used.
    assert gain_over_start([(0, 0.2), (10, 0.4), (20, 0.5)]) == pytest.approx(0.25)
    assert gain_over_start([(0, 0.1), (0, 0.3), (10, 0.1)]) == pytest.approx(-0.2)
    assert gain_over_start([(0, 0.2)]) is None  # nothing after the start
    assert gain_over_start([(10, 0.2), (20, 0.4)]) is None  # no step-0 evaluation
    result = result_of({"srpo": {0: [(0, 0.2), (10, 0.4), (20, 0.5)], 1: [(0, 0.2), (10, 0.3), (20, 0.3)],
                                 2: [(0, 0.3), (10, 0.1)]},
                        "grpo": {0: [(0, 0.2)]}})
    rows = {r["algo"]: r for r in result.summary_rows()}
    assert rows["srpo"]["gain_over_start"] == [pytest.approx(0.25), pytest.approx(0.1), pytest.approx(-0.2)]
    assert rows["srpo"]["gain_over_start_mean"] == pytest.approx(0.05)
    low, high = rows["srpo"]["gain_over_start_ci95"]
    assert -0.2 <= low < 0.05 < high <= 0.25  # a bootstrap mean lies between the smallest and largest seed
    assert rows["grpo"]["gain_over_start"] == [None] and rows["grpo"]["gain_over_start_ci95"] is None
    table = result.table()
    assert "srpo: mean after start − step 0, per seed +0.250, +0.100, -0.200; mean +0.050" in table
    assert "grpo: mean after start" not in table


def test_across_seeds_hand_computed() -> None:
    # Values 0.1, 0.2, 0.3, 0.6: mean 0.3, sample sd sqrt(0.14 / 3) = 0.216025, t_{3, 0.975} = 3.182446,
    # half-width 3.182446 * 0.216025 / 2 = 0.343743.
    out = across_seeds([0.1, 0.2, 0.3, 0.6])
    assert out["mean"] == pytest.approx(0.3) and out["num_seeds"] == 4
    assert out["std"] == pytest.approx(0.216025, abs=1e-6)
    assert out["t_ci"] == pytest.approx([0.3 - 0.343743, 0.3 + 0.343743], abs=2e-6)
    low, high = out["bootstrap_ci"]
    assert 0.1 <= low < 0.3 < high <= 0.6  # resampled means lie between the smallest and largest seed
    assert high - low < out["t_ci"][1] - out["t_ci"][0]  # with 4 seeds the bootstrap is the narrower
    assert across_seeds([0.1, 0.2, 0.3, 0.6], level=0.5)["t_ci"][1] < out["t_ci"][1]
    one = across_seeds([0.25])
    assert one == {"mean": 0.25, "num_seeds": 1, "std": None, "bootstrap_ci": [0.25, 0.25], "t_ci": None}
    for bad in ([], [0.1, float("nan")], [[0.1, 0.2]]):
        with pytest.raises(ValueError, match="one finite value per seed"):
            across_seeds(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"level=1\.0 must lie in"):
        across_seeds([0.1, 0.2], level=1.0)


def test_mean_per_seed_averages_reruns_of_a_seed() -> None:
    assert mean_per_seed([0.1, 0.4, 0.3], [2, 0, 2]) == ([0, 2], [pytest.approx(0.4), pytest.approx(0.2)])
    with pytest.raises(ValueError, match="one seed per value"):
        mean_per_seed([0.1], [0, 1])
    with pytest.raises(ValueError, match="at least one value"):
        mean_per_seed([], [])


def test_summary_rows_average_slopes_across_seeds() -> None:
    result = result_of({"srpo": {0: [(0, 0.2), (10, 0.4)], 1: [(0, 0.2), (10, 0.3)], 2: [(0, 0.3), (10, 0.1)]}})
    result.slopes["srpo"] = [SlopeEstimate(0.02, 0.0, 0.04, 2), SlopeEstimate(0.01, -0.01, 0.03, 2), None]
    (row,) = result.summary_rows()
    across = row["slope_across_seeds"]
    assert across["mean"] == pytest.approx(0.015) and across["num_seeds"] == 2  # the seed without a slope is out
    # t_{1, 0.975} = 12.706205, sd of (0.02, 0.01) = 0.0070711: half-width 0.0635310.
    assert across["t_ci"] == pytest.approx([0.015 - 0.063531, 0.015 + 0.063531], abs=1e-6)
    # Gains +0.2, +0.1, -0.2: mean 1/30, sd 0.208167, t_{2, 0.975} = 4.302653, half-width 0.517115.
    assert row["gain_over_start_t_ci95"] == pytest.approx([1 / 30 - 0.517115, 1 / 30 + 0.517115], abs=2e-6)
    assert "srpo: slope per 100 steps, mean over 2 seeds +1.500 [-4.853, +7.853] (t)" in result.table()
    assert "+0.033 [" in result.table() and "(t)" in result.table()


def test_run_compare_runs_both_arms_with_intervals_and_resumes(tmp_path: Path) -> None:
    base = load_config(preset="tabletop", overrides=[*TINY, "num_steps=2", "eval_every=1", "tensorboard=false",
                                                     "num_videos_per_step=0"])
    out = tmp_path / "cmp"
    result = run_compare(base, out, seeds=[0], algos=("srpo", "grpo"), target=0.5, show_progress=False)
    assert set(result.curves) == {"srpo", "grpo"}
    for algo in ("srpo", "grpo"):
        records = read_metrics(out / algo / "seed0")
        assert [s for s, _, _ in result.intervals[algo][0]] == [0, 1, 2]
        slope = result.slopes[algo][0]
        assert slope is not None and slope.num_points == 3 and slope.low <= slope.slope <= slope.high
        assert result.intervals[algo][0] == curve_statistics(records)[0]
    saved = json.loads((out / "compare.json").read_text())
    assert saved["intervals"]["srpo"][0][0][0] == 0
    assert {"slope", "ci95", "num_points"} <= set(saved["rows"][0]["slopes"][0])
    assert (out / "compare.png").stat().st_size > 0
    assert "slope" in result.table()
    # Finished runs are read back, not trained again.
    mtime = (out / "srpo" / "seed0" / "metrics.jsonl").stat().st_mtime_ns
    again = run_compare(base, out, seeds=[0], algos=("srpo",), show_progress=False)
    assert (out / "srpo" / "seed0" / "metrics.jsonl").stat().st_mtime_ns == mtime
    assert again.slopes["srpo"][0] == result.slopes["srpo"][0]
    # A shorter horizon reads the finished runs up to it: both arms over the same steps, none unfinished.
    shorter = run_compare(replace(base, num_steps=1), out, seeds=[0], train=False, show_progress=False)
    assert [s for s, _ in shorter.curves["srpo"][0]] == [0, 1] and shorter.unfinished() == []
    assert shorter.runs["grpo"] == [{"seed": 0, "steps_done": 1, "num_steps": 1}]
    assert shorter.final["srpo"] == [result.curves["srpo"][0][1][1]]
    assert json.loads((out / "compare.json").read_text())["differences"][0]["seeds"] == [0]


def test_a_stop_checkpoints_the_run_in_flight_starts_no_other_and_resume_finishes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from srpo.errors import SrpoError
    from srpo.trainer import Trainer

    base = load_config(preset="tabletop", overrides=[*TINY, "num_steps=2", "eval_every=1", "tensorboard=false",
                                                     "num_videos_per_step=0"])
    out = tmp_path / "cmp"
    with pytest.raises(SrpoError, match="nothing to compare"):
        run_compare(base, out, seeds=[0], train=False, show_progress=False)

    # A signal arrives during the first training step of the first arm.
    requested: list[bool] = []
    original = Trainer.train_step

    def step_then_request_stop(self: Trainer) -> dict[str, float]:
        metrics = original(self)
        requested.append(True)
        return metrics

    monkeypatch.setattr(Trainer, "train_step", step_then_request_stop)
    result = run_compare(base, out, seeds=[0], algos=("srpo", "grpo"), show_progress=False,
                         should_stop=lambda: bool(requested))
    assert len(requested) == 1  # one step ran, and the grpo arm never started
    assert not (out / "grpo").exists()
    assert [p.name for p in (out / "srpo" / "seed0").glob("ckpt-*")] == ["ckpt-000001"]
    assert result.runs == {"srpo": [{"seed": 0, "steps_done": 1, "num_steps": 2}]}
    assert result.unfinished() == ["srpo seed0 at step 1/2"] and "not finished" in result.table()
    saved = json.loads((out / "compare.json").read_text())
    assert saved["unfinished"] == ["srpo seed0 at step 1/2"] and set(saved["curves"]) == {"srpo"}

    # --no-train summarises what is on disk and trains nothing.
    requested.clear()
    look = run_compare(base, out, seeds=[0], algos=("srpo", "grpo"), show_progress=False, train=False)
    assert not requested and look.unfinished() == ["srpo seed0 at step 1/2"]
    assert [s for s, _ in look.curves["srpo"][0]] == [0, 1]

    # Re-running resumes the stopped run from its checkpoint and then runs the other arm.
    done = run_compare(base, out, seeds=[0], algos=("srpo", "grpo"), show_progress=False)
    assert len(requested) == 1 + 2  # srpo's second step, then grpo's two
    assert done.unfinished() == [] and [s for s, _ in done.curves["srpo"][0]] == [0, 1, 2]
    assert done.runs["grpo"] == [{"seed": 0, "steps_done": 2, "num_steps": 2}]
