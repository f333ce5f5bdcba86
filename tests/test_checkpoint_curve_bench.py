"""benchmarks/checkpoint_curve.py: held-out success of a run's checkpoints, evaluated after the run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from benchmark_module import load_benchmark
from srpo.build import make_policy
from srpo.config.train import load_config
from srpo.evaluate import wilson_interval
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
