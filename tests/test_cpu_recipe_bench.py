"""benchmarks/cpu_recipe.py: the per-recipe summary over seeds (the runs themselves are the benchmark)."""

from __future__ import annotations

import pytest

from benchmark_module import load_benchmark
from srpo.evaluate import difference_interval

bench = load_benchmark("cpu_recipe")


def _run(before: tuple[int, int], after: tuple[int, int], wall_s: float = 600.0) -> dict[str, object]:
    return {"before": {"successes": before[0], "episodes": before[1]},
            "after": {"successes": after[0], "episodes": after[1]},
            "change": after[0] / after[1] - before[0] / before[1], "wall_s": wall_s}


def test_identical_before_evaluations_are_counted_once() -> None:
    # Three seeds from the same start: the greedy before-evaluation is the same 3/40 each time.
    summary = bench.recipe_summary([_run((3, 40), (7, 40)), _run((3, 40), (4, 40)), _run((3, 40), (8, 40))])
    assert summary["num_runs"] == 3 and summary["mean_wall_min"] == pytest.approx(10.0)
    assert summary["mean_change"] == pytest.approx((0.1 + 0.025 + 0.125) / 3)
    assert summary["min_change"] == pytest.approx(0.025) and summary["max_change"] == pytest.approx(0.125)
    assert summary["pooled_before"] == [3, 40] and summary["pooled_after"] == [19, 120]
    assert summary["pooled_change"] == pytest.approx(19 / 120 - 3 / 40)
    assert summary["pooled_change_ci95"] == pytest.approx(list(difference_interval(3, 40, 19, 120)))


def test_different_before_evaluations_are_pooled() -> None:
    summary = bench.recipe_summary([_run((3, 40), (7, 40)), _run((5, 40), (4, 40))])
    assert summary["pooled_before"] == [8, 80] and summary["pooled_after"] == [11, 80]
    assert summary["pooled_change"] == pytest.approx(3 / 80)


def test_no_runs_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one run"):
        bench.recipe_summary([])


def test_every_recipe_is_a_valid_cpu_config() -> None:
    from srpo.config.train import load_config

    for name, overrides in bench.RECIPES.items():
        cfg = load_config(preset="cpu", overrides=overrides)
        assert cfg.env.kind == "libero", name
    lean = load_config(preset="cpu", overrides=bench.RECIPES["lean_start_g8x12"])
    assert lean.env.libero.render_quality == "lean" and lean.policy.checkpoint.endswith("sft_lean/final")
    assert lean.algo.group_size == 8 and lean.num_steps == 12 and lean.algo.num_prompts_per_step == 2


def _write_eval(run_dir, step: int, success: list[bool]) -> None:  # type: ignore[no-untyped-def]
    import numpy as np

    (run_dir / "steps").mkdir(exist_ok=True)
    n = len(success)
    np.savez(run_dir / "steps" / f"eval_{step:06d}.npz", task_ids=np.arange(n) % 2,
             init_state_ids=30 + np.arange(n) // 2, success=np.asarray(success), finish_step=np.zeros(n, np.int64))


def test_before_and_after_are_paired_episode_by_episode(tmp_path) -> None:  # type: ignore[no-untyped-def]
    _write_eval(tmp_path, 0, [True, False, False, False])
    _write_eval(tmp_path, 4, [True, True, True, False])
    out = bench.paired_before_after(tmp_path, 4)
    assert out["episode_pairs"] == [[0, 30, True, True], [0, 31, False, True], [1, 30, False, True],
                                    [1, 31, False, False]]
    change = out["paired_change"]
    assert change["difference"] == pytest.approx(0.5) and (change["b_only"], change["a_only"]) == (2, 0)
    assert bench.paired_before_after(tmp_path, 8) == {}  # no after-evaluation on disk: nothing to pair


def test_pooled_paired_change_clusters_by_state() -> None:
    # Two runs over the same two states: state (0, 30) gains in both runs, (1, 30) in neither.
    a = {**_run((0, 2), (1, 2)), "episode_pairs": [[0, 30, False, True], [1, 30, False, False]]}
    b = {**_run((0, 2), (1, 2)), "episode_pairs": [[0, 30, False, True], [1, 30, True, True]]}
    paired = bench.recipe_summary([a, b])["paired_pooled"]
    assert paired["difference"] == pytest.approx(0.5) and paired["num_clusters"] == 2 and paired["num_pairs"] == 4
    low, high = paired["ci95"]
    assert low == pytest.approx(0.0) and high == pytest.approx(1.0)  # resampling the 2 states: 0, 0.5 or 1
    assert "paired_pooled" not in bench.recipe_summary([a, _run((0, 2), (1, 2))])  # an older run without pairs


def test_two_recipes_are_paired_by_seed_and_state() -> None:
    base = [{"seed": 0, "episode_pairs": [[0, 30, False, True], [1, 30, False, False]]},
            {"seed": 1, "episode_pairs": [[0, 30, False, True], [1, 30, False, True]]}]
    other = [{"seed": 0, "episode_pairs": [[0, 30, False, False], [1, 30, False, False]]},
             {"seed": 2, "episode_pairs": [[0, 30, False, True], [1, 30, False, True]]}]  # seed 2: no partner
    vs = bench.paired_between(base, other)
    assert vs is not None and vs["seeds"] == [0]
    assert vs["num_pairs"] == 2 and vs["difference"] == pytest.approx(-0.5) and vs["a_only"] == 1
    assert bench.paired_between(base, [other[1]]) is None
