"""benchmarks/env_memory.py: an env worker's memory as it builds the envs of the configured tasks."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from benchmark_module import load_benchmark
from tiny_config import as_sets, tiny_tabletop

bench = load_benchmark("env_memory")


def test_envs_held_per_worker_hand_computed() -> None:
    assert bench.envs_held_per_worker(4, 2, 0) == 8  # 4 per task, no cap
    assert bench.envs_held_per_worker(4, 2, 5) == 5  # capped
    assert bench.envs_held_per_worker(4, 1, 6) == 4  # the cap does not add envs


def test_worker_estimate_hand_computed() -> None:
    # 0.3 bare + 1.3 first env + 7 more at 0.8 = 7.2 GiB.
    assert bench.worker_estimate_gib(0.3, 1.3, 0.8, 8) == pytest.approx(7.2)
    assert bench.worker_estimate_gib(0.3, 1.3, 0.8, 1) == pytest.approx(1.6)


def test_rss_is_this_process_and_grows_with_what_it_holds() -> None:
    before = bench.rss_gib()
    block = bytearray(64 * 2**20)
    block[:: 4096] = b"x" * len(block[:: 4096])  # touch every page
    assert bench.rss_gib() - before > 0.05
    del block


def test_main_builds_what_one_worker_holds_and_writes_the_estimate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    sets = as_sets(tiny_tabletop(8, "env.tabletop.num_tasks=2", "rollout.num_workers=2",
                                 "rollout.num_envs_per_worker=3", "rollout.max_envs_per_worker=5"))
    monkeypatch.setattr(sys, "argv", ["env_memory.py", "--preset", "tabletop", *sets, "--steps", "2",
                                      "--out", str(tmp_path / "mem.json")])
    bench.main()
    report = json.loads((tmp_path / "mem.json").read_text())
    # 3 per task × 2 tasks capped at 5 envs; built: ceil(5 / 2) = 3 per task, round robin over the tasks.
    assert report["envs_held_per_worker"] == 5 and report["envs_per_task"] == 3
    assert [(e["task_id"], e["copy"]) for e in report["envs"]] == [(0, 0), (1, 0), (0, 1), (1, 1), (0, 2), (1, 2)]
    expected = bench.worker_estimate_gib(report["base_rss_gib"], report["first_env_gib"], report["per_env_gib"], 5)
    assert report["worker_estimate_gib"] == pytest.approx(expected)
    assert report["workers_estimate_gib"] == pytest.approx(2 * expected)
    assert "GiB for the workers" in capsys.readouterr().out
