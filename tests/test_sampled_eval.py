"""`srpo eval --sample-temperature`: held-out success of the sampled policy, repeatable under a seed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from srpo import cli
from srpo.config.train import TrainConfig, load_config
from srpo.errors import SrpoError
from srpo.evaluate import EvalResult, evaluate_checkpoint
from tiny_config import as_sets, tiny_tabletop

# One task, two held-out init states, so that 4 episodes per task visit each state twice.
TINY = tiny_tabletop(8, "env.tabletop.num_tasks=1", "env.tabletop.num_init_states=6",
                     "env.tabletop_num_eval_init_states=2", "tensorboard=false")


def config(*extra: str) -> TrainConfig:
    return load_config(preset="tabletop", overrides=[*TINY, *extra])


def tokens(result: EvalResult) -> list[np.ndarray]:
    return [t.action_tokens for t in result.trajectories]


def test_sampled_evaluation_repeats_under_its_seed_and_differs_from_greedy(tmp_path: Path) -> None:
    first = evaluate_checkpoint(config(), None, 4, 0, tmp_path / "a", temperature=1.0)
    again = evaluate_checkpoint(config(), None, 4, 0, tmp_path / "b", temperature=1.0)
    other_seed = evaluate_checkpoint(config("seed=1"), None, 4, 0, tmp_path / "c", temperature=1.0)
    greedy = evaluate_checkpoint(config(), None, 4, 0, tmp_path / "d")

    assert [t.init_state_id for t in first.trajectories] == [4, 5, 4, 5]
    for x, y in zip(tokens(first), tokens(again), strict=True):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, y) for x, y in zip(tokens(first), tokens(other_seed), strict=True))
    # The same init state twice: sampled episodes differ, greedy ones repeat.
    assert not np.array_equal(tokens(first)[0], tokens(first)[2])
    np.testing.assert_array_equal(tokens(greedy)[0], tokens(greedy)[2])

    report = json.loads((tmp_path / "a" / "eval.json").read_text())
    assert (report["mode"], report["temperature"], report["seed"]) == ("sampled", 1.0, 0)
    assert json.loads((tmp_path / "d" / "eval.json").read_text())["mode"] == "greedy"
    assert (first.mode, greedy.mode) == ("sampled T=1", "greedy")


@pytest.mark.parametrize("temperature", [0.0, -1.0, float("nan"), float("inf")])
def test_a_temperature_that_cannot_sample_is_refused_before_anything_runs(tmp_path: Path, temperature: float) -> None:
    with pytest.raises(SrpoError, match="sampled evaluation: set a float > 0"):
        evaluate_checkpoint(config(), None, 1, 0, tmp_path / "eval", temperature=temperature)
    assert not (tmp_path / "eval").exists()


def test_cli_eval_sample_temperature(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = cli.main(["eval", "--preset", "tabletop", *as_sets(TINY), "--episodes", "2", "--videos", "0",
                   "--sample-temperature", "0.7", "--out", str(tmp_path / "eval")])
    assert rc == 0
    assert "sampled T=0.7 success on held-out init states" in capsys.readouterr().out
    assert json.loads((tmp_path / "eval" / "eval.json").read_text())["temperature"] == 0.7


def test_evaluation_shows_a_progress_bar_over_its_episodes(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    result = evaluate_checkpoint(config(), None, 4, 0, tmp_path / "a", temperature=0.7)
    err = capsys.readouterr().err
    assert "srpo eval (sampled T=0.7)" in err and "4/4" in err
    assert f"successes={result.num_successes}" in err
    evaluate_checkpoint(config(), None, 2, 0, tmp_path / "b", show_progress=False)
    assert "srpo eval" not in capsys.readouterr().err
