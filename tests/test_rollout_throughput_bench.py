"""The repeat statistics of benchmarks/rollout_throughput.py (the LIBERO runs themselves are a benchmark)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmark_module import load_benchmark

bench = load_benchmark("rollout_throughput")


def test_repeat_ratios_use_the_floors_on_either_side() -> None:
    # Floors 20, 22, 18 s; the setting took 21 s then 25 s. Repeat 0 sits between 20 and 22 (mean 21),
    # repeat 1 between 22 and 18 (mean 20).
    ratios = bench.repeat_ratios([20.0, 22.0, 18.0], [21.0, 25.0])
    np.testing.assert_allclose(ratios, [1.0, 0.8])


def test_repeat_ratios_reject_mismatched_or_nonpositive_times() -> None:
    with pytest.raises(ValueError, match="R \\+ 1 floor runs"):
        bench.repeat_ratios([20.0, 22.0], [21.0, 25.0])
    with pytest.raises(ValueError, match="R \\+ 1 floor runs"):
        bench.repeat_ratios([20.0], [])
    with pytest.raises(ValueError, match="positive"):
        bench.repeat_ratios([20.0, 0.0], [21.0])


def test_mean_interval_is_the_student_t_interval() -> None:
    # Values 0.8, 0.9, 1.0: mean 0.9, sd 0.1, n 3, t(0.975, 2) = 4.302653 -> half width 0.248414.
    mean, low, high = bench.mean_interval([0.8, 0.9, 1.0])
    assert mean == pytest.approx(0.9)
    assert low == pytest.approx(0.9 - 0.248414, abs=1e-6)
    assert high == pytest.approx(0.9 + 0.248414, abs=1e-6)


def test_mean_interval_of_one_repeat_has_no_interval() -> None:
    mean, low, high = bench.mean_interval([0.85])
    assert mean == 0.85 and math.isnan(low) and math.isnan(high)
    with pytest.raises(ValueError, match="non-empty"):
        bench.mean_interval([])


def test_mean_run_averages_numbers_keeps_peak_memory_max_and_the_runs() -> None:
    runs = [{"wall_s": 10.0, "peak_rss_mb": 100.0, "num_workers": 1, "render_quality": "fast"},
            {"wall_s": 14.0, "peak_rss_mb": 300.0, "num_workers": 1, "render_quality": "fast"}]
    merged = bench._mean_run(runs)
    assert merged["wall_s"] == 12.0 and merged["peak_rss_mb"] == 300.0 and merged["num_workers"] == 1
    assert merged["render_quality"] == "fast" and merged["runs"] == runs
