"""Trajectory diversity: the metric maths by hand, the end-effector path on rollout records, `srpo diversity`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from srpo import cli
from srpo.config.base import ConfigError
from srpo.config.diversity import DiversityConfig
from srpo.config.rollout import RolloutConfig
from srpo.diversity import (
    bootstrap_ci,
    bootstrap_difference_ci,
    mean_pairwise_distance,
    occupied_cells,
    path_diversity,
    positions_at_fractions,
    resample_path,
    spread_at_fractions,
    workspace_coverage,
)
from srpo.rollout import RolloutEngine, make_group_requests
from srpo.types import Trajectory
from test_rollout import FACTORY, HashPolicy
from tiny_config import as_sets

UNIT_LOW, UNIT_HIGH = np.zeros(3), np.ones(3)


def p(*points: tuple[float, float, float]) -> np.ndarray:
    return np.array(points, dtype=np.float64)


# -- metric maths ------------------------------------------------------------------------------------------


def test_resample_path_interpolates_linearly_in_normalised_time() -> None:
    path = p((0, 0, 0), (1, 0, 0), (1, 1, 0))  # T = 3: normalised times 0, 0.5, 1
    # 5 points at s = 0, .25, .5, .75, 1 → fractional steps 0, 0.5, 1, 1.5, 2.
    expected = p((0, 0, 0), (0.5, 0, 0), (1, 0, 0), (1, 0.5, 0), (1, 1, 0))
    np.testing.assert_allclose(resample_path(path, 5), expected)
    np.testing.assert_allclose(resample_path(p((2, 3, 4)), 3), p((2, 3, 4), (2, 3, 4), (2, 3, 4)))
    with pytest.raises(ValueError, match="num_points"):
        resample_path(path, 1)
    with pytest.raises(ValueError, match=r"\(T >= 1, 3\)"):
        resample_path(np.zeros((4, 2)), 5)


def test_occupied_cells_and_coverage_count_each_cell_once_and_clip_to_the_box() -> None:
    a = p((0.1, 0.1, 0.1), (0.12, 0.1, 0.1), (0.9, 0.1, 0.1))  # cells (0,0,0) twice, (1,0,0)
    b = p((1.0, 1.0, 1.0), (-5.0, 0.6, 2.0))  # upper face → (1,1,1); outside → nearest boundary cell (0,1,1)
    assert occupied_cells([a, b], UNIT_LOW, UNIT_HIGH, 2) == {(0, 0, 0), (1, 0, 0), (1, 1, 1), (0, 1, 1)}
    assert workspace_coverage([a, b], UNIT_LOW, UNIT_HIGH, 2) == 4 / 8
    assert workspace_coverage([a], UNIT_LOW, UNIT_HIGH, 1) == 1.0
    # A non-unit box: x in [-1, 1] with 4 cells of width 0.5; x = -0.6 lies in cell 0, x = 0.1 in cell 2.
    cells = occupied_cells([p((-0.6, 0, 0), (0.1, 0, 0))], np.array([-1, 0, 0]), np.array([1, 1, 1]), 4)
    assert cells == {(0, 0, 0), (2, 0, 0)}
    with pytest.raises(ValueError, match="high > low"):
        occupied_cells([a], UNIT_HIGH, UNIT_LOW, 2)


def test_positions_at_fractions_round_to_the_nearest_step() -> None:
    path = np.arange(15, dtype=np.float64).reshape(5, 3)  # step k holds (3k, 3k+1, 3k+2)
    # f · (T − 1) = 0, 1.0, 1.2, 2, 4 → steps 0, 1, 1, 2, 4.
    got = positions_at_fractions(path, [0.0, 0.25, 0.3, 0.5, 1.0])
    np.testing.assert_array_equal(got[:, 0], [0, 3, 3, 6, 12])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        positions_at_fractions(path, [1.5])


def test_spread_is_the_rms_distance_to_the_centroid() -> None:
    # Two still paths at x = 0 and x = 2: centroid x = 1, distances 1 and 1 → spread 1 at every fraction.
    np.testing.assert_allclose(spread_at_fractions([p((0, 0, 0), (0, 0, 0)), p((2, 0, 0))], [0, 1]), [1, 1])
    # Three paths ending at x = 0, 0, 3 (starting together): at f = 1 centroid 1, squared distances 1, 1, 4.
    paths = [p((0, 0, 0), (0, 0, 0)), p((0, 0, 0), (0, 0, 0)), p((0, 0, 0), (3, 0, 0))]
    np.testing.assert_allclose(spread_at_fractions(paths, [0.0, 1.0]), [0.0, math.sqrt(2.0)])
    assert spread_at_fractions([p((5, 5, 5))], [0.5])[0] == 0.0


def test_mean_pairwise_distance_by_hand() -> None:
    a = p((0, 0, 0), (1, 0, 0))
    b = p((0, 1, 0), (1, 1, 0))  # a shifted by 1 in y: distance 1 at every point
    c = p((0, 0, 3), (1, 0, 3))  # a shifted by 3 in z
    assert mean_pairwise_distance([a, b, c], 10) == pytest.approx((1 + 3 + math.sqrt(10)) / 3)
    # Resampling to a common length: the same segment sampled at 3 steps is the same path.
    assert mean_pairwise_distance([a, p((0, 0, 0), (0.5, 0, 0), (1, 0, 0))], 7) == pytest.approx(0.0, abs=1e-12)
    # Still path at the origin vs a path from (0,0,0) to (2,0,0): resampled at s = 0, .5, 1 → distances 0, 1, 2.
    assert mean_pairwise_distance([p((0, 0, 0)), p((0, 0, 0), (2, 0, 0))], 3) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="at least two"):
        mean_pairwise_distance([a], 5)


def test_bootstrap_ci_of_the_mean() -> None:
    assert bootstrap_ci([0.3]) == (0.3, 0.3)
    assert bootstrap_ci([1.0, 1.0, 1.0]) == (1.0, 1.0)
    # Two values 0 and 1: a resample's mean is 0 (p = 1/4), 0.5 (1/2) or 1 (1/4) → 2.5 % / 97.5 % quantiles 0, 1.
    assert bootstrap_ci([0.0, 1.0], num_resamples=20_000) == (0.0, 1.0)
    values = np.random.default_rng(3).normal(5.0, 1.0, size=12)
    lo, hi = bootstrap_ci(values)
    assert lo < values.mean() < hi and hi - lo < 2.0
    assert bootstrap_ci(values, seed=1) == bootstrap_ci(values, seed=1)
    with pytest.raises(ValueError, match="finite"):
        bootstrap_ci([])
    assert bootstrap_difference_ci([2.0, 2.0], [1.0, 1.0]) == (1.0, 1.0)
    lo, hi = bootstrap_difference_ci([0.0, 1.0], [0.0, 0.0], num_resamples=20_000)
    assert (lo, hi) == (0.0, 1.0)


def test_path_diversity_averages_per_state_metrics() -> None:
    state0 = [p((0.1, 0.1, 0.1), (0.1, 0.1, 0.1)), p((0.1, 0.1, 0.1), (0.9, 0.1, 0.1))]
    state1 = [p((0.9, 0.9, 0.9)), p((0.9, 0.9, 0.9))]  # identical still paths: no diversity
    m = path_diversity({0: state0, 1: state1}, UNIT_LOW, UNIT_HIGH, 2, fractions=(0.0, 1.0), num_points=3)
    assert set(m) == {"diversity/coverage", "diversity/pairwise_distance", "diversity/spread_f0",
                      "diversity/spread_f100"}
    assert m["diversity/coverage"] == pytest.approx((2 / 8 + 1 / 8) / 2)
    # State 0: resampled at s = 0, .5, 1 the second path is at x = .1, .5, .9 → distances 0, .4, .8 → 0.4.
    assert m["diversity/pairwise_distance"] == pytest.approx(0.4 / 2)
    assert m["diversity/spread_f0"] == 0.0
    assert m["diversity/spread_f100"] == pytest.approx(0.4 / 2)  # state 0: ends 0.8 apart → 0.4 each
    with pytest.raises(ValueError, match="at least 2 per state"):
        path_diversity({0: state0[:1]}, UNIT_LOW, UNIT_HIGH, 2)


@pytest.mark.parametrize("num_cells", [0, -2])
def test_coverage_grid_needs_at_least_one_cell(num_cells: int) -> None:
    path = p((0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match=rf"num_cells={num_cells} must be >= 1"):
        occupied_cells([path], UNIT_LOW, UNIT_HIGH, num_cells)
    with pytest.raises(ValueError, match=rf"num_cells={num_cells} must be >= 1"):
        workspace_coverage([path], UNIT_LOW, UNIT_HIGH, num_cells)
    # The edge just inside: one cell, the whole box.
    assert occupied_cells([path], UNIT_LOW, UNIT_HIGH, 1) == {(0, 0, 0)}


def test_spread_and_path_diversity_refuse_no_paths() -> None:
    with pytest.raises(ValueError, match=r"spread_at_fractions needs at least one path"):
        spread_at_fractions([], [0.5])
    with pytest.raises(ValueError, match=r"path_diversity needs paths of at least one initial state"):
        path_diversity({}, UNIT_LOW, UNIT_HIGH, 2)


@pytest.mark.parametrize(
    ("level", "num_resamples", "message"),
    [
        (0.0, 100, r"level=0\.0 must lie in \(0, 1\)"),
        (1.0, 100, r"level=1\.0 must lie in \(0, 1\)"),
        (-0.5, 100, r"level=-0\.5 must lie"),
        (1.5, 100, r"level=1\.5 must lie"),
        (0.95, 0, r"num_resamples=0 be >= 1"),
        (0.95, -3, r"num_resamples=-3 be >= 1"),
    ],
)
def test_bootstrap_intervals_refuse_bad_level_or_resamples(level: float, num_resamples: int, message: str) -> None:
    # bootstrap_ci checks before its one-value shortcut, so a single value is refused too.
    for values in ([0.3], [0.0, 1.0]):
        with pytest.raises(ValueError, match=message):
            bootstrap_ci(values, num_resamples=num_resamples, level=level)
    with pytest.raises(ValueError, match=message):
        bootstrap_difference_ci([0.0, 1.0], [0.5], num_resamples=num_resamples, level=level)


def test_bootstrap_intervals_accept_the_edges_inside_the_limits() -> None:
    # One resample of a constant group is that constant; a level near 1 or 0 still gives an ordered interval.
    assert bootstrap_ci([2.0, 2.0], num_resamples=1) == (2.0, 2.0)
    assert bootstrap_difference_ci([2.0], [0.5], num_resamples=1) == (1.5, 1.5)
    lo, hi = bootstrap_ci([0.0, 1.0], num_resamples=500, level=0.999)
    assert 0.0 <= lo <= hi <= 1.0
    lo, hi = bootstrap_difference_ci([0.0, 1.0], [0.0, 1.0], num_resamples=500, level=1e-6)
    assert -1.0 <= lo <= hi <= 1.0


@pytest.mark.parametrize(
    ("values_a", "values_b", "message"),
    [
        ([], [1.0], r"got \[\], \[1\.0\]"),
        ([1.0], [], r"got \[1\.0\], \[\]"),
        ([[1.0, 2.0]], [1.0], r"got \[\[1\.0, 2\.0\]\]"),
        ([1.0], np.ones((2, 2)), r"got \[1\.0\], \[\[1\. 1\.\]"),
        ([1.0, math.nan], [1.0], r"got \[1\.0, nan\]"),
        ([1.0], [math.inf, 2.0], r"got \[1\.0\], \[inf, 2\.0\]"),
    ],
)
def test_bootstrap_difference_ci_refuses_empty_2d_or_non_finite_groups(
    values_a: object, values_b: object, message: str
) -> None:
    with pytest.raises(ValueError, match=r"bootstrap_difference_ci needs non-empty 1-D finite arrays, " + message):
        bootstrap_difference_ci(values_a, values_b)  # type: ignore[arg-type]


def test_diversity_config_names_the_bad_field() -> None:
    with pytest.raises(ConfigError, match=r"diversity\.episodes_per_state"):
        DiversityConfig(episodes_per_state=1)
    with pytest.raises(ConfigError, match=r"diversity\.workspace_low"):
        DiversityConfig(workspace_low=(0, 0, 0))
    with pytest.raises(ConfigError, match=r"diversity\.workspace_high"):
        DiversityConfig(workspace_low=(0, 0, 0), workspace_high=(1, 0, 1))
    with pytest.raises(ConfigError, match=r"diversity\.states_per_task"):
        DiversityConfig(states_per_task=0)


# -- the end-effector path on rollout records ----------------------------------------------------------------


def test_rollout_records_the_gripper_path_after_every_step() -> None:
    requests = make_group_requests([0, 1], [2, 3], 2)
    with RolloutEngine(FACTORY, RolloutConfig(num_workers=0)) as engine:
        trajs, _ = engine.collect(HashPolicy(noise="sequential"), requests, 1.0)
    for t in trajs:
        assert t.eef_pos.shape == (t.finish_step, 3) and t.eef_pos.dtype == np.float32
        # Replaying the executed actions in a fresh env reproduces the path: row k is the gripper after action k.
        env = FACTORY.make(t.task_id)
        env.reset(t.init_state_id)
        replay = [env.step(a, False, False).state[:3] for a in t.actions]
        np.testing.assert_allclose(t.eef_pos, np.stack(replay), atol=1e-6)
        assert t.eef_pos is not trajs[0].eef_pos or t is trajs[0]


def test_records_without_a_path_still_load_and_bad_shapes_are_refused() -> None:
    kw = dict(task_id=0, instruction="x", init_state_id=0, group_id=0, rollout_id=0,
              frames=np.zeros((1, 4, 4, 3), np.uint8), policy_images=np.zeros((1, 4, 4, 3), np.uint8),
              policy_states=np.zeros((1, 0), np.float32), action_tokens=np.zeros((1, 14), np.int64),
              log_probs=np.zeros((1, 14), np.float32), token_mask=np.ones((1, 14), bool),
              actions=np.zeros((2, 7), np.float32), success=False, finish_step=2)
    old = Trajectory(**kw)  # type: ignore[arg-type]
    assert old.eef_pos.shape == (0, 3)
    assert Trajectory(**kw, eef_pos=np.zeros((2, 3), np.float32)).eef_pos.shape == (2, 3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="eef_pos"):
        Trajectory(**kw, eef_pos=np.zeros((3, 3), np.float32))  # type: ignore[arg-type]


# -- `srpo diversity` through the real entry point ------------------------------------------------------------

TINY = ["env.tabletop.num_tasks=1", "env.tabletop.num_init_states=10", "env.tabletop.max_steps=12",
        "env.tabletop.image_size=32", "env.tabletop.embed_image_size=32", "env.tabletop_num_eval_init_states=2",
        "policy.image_size=32",
        "policy.d_model=32", "policy.num_layers=1", "policy.num_heads=2", "policy.ff_dim=64", "policy.chunk_size=4",
        "encoder.name=pixel", "encoder.num_frames=4", "encoder.pixel_size=4", "algo.group_size=2",
        "algo.num_prompts_per_step=2",
        "algo.num_minibatches=1", "num_eval_episodes_per_task=0", "eval_every=0", "num_videos_per_step=0",
        "tensorboard=false"]


def test_srpo_diversity_cli_writes_json_and_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sets = as_sets(TINY)
    for algo in ("srpo", "grpo"):
        rc = cli.main(["train", "--preset", "tabletop", "--algo", algo, "--steps", "1",
                       "--run-dir", str(tmp_path / algo), *sets])
        assert rc == 0
    out = tmp_path / "div"
    rc = cli.main(["diversity", str(tmp_path / "srpo"), str(tmp_path / "grpo"), "--episodes-per-state", "3",
                   "--out", str(out)])
    captured = capsys.readouterr()
    stdout = captured.out
    assert rc == 0
    assert "srpo - grpo (95% CI)" in stdout and "pairwise_distance" in stdout
    assert "srpo diversity" in captured.err and "2/2" in captured.err   # the progress bar over runs
    data = json.loads((out / "diversity.json").read_text())
    assert set(data) == {"config", "prompts", "runs", "groups", "difference", "provenance"}
    assert {"commit", "command", "time"} <= set(data["provenance"])
    assert data["prompts"] == [[0, 8], [0, 9]]  # the 2 held-out init states of the tabletop's 10
    assert [r["algo"] for r in data["runs"]] == ["srpo", "grpo"]
    for run in data["runs"]:
        assert run["num_episodes"] == 2 * 3
        assert run["temperature"] > 0 and run["checkpoint"].endswith("policy")
        assert 0 < run["diversity/coverage"] <= 1 and run["diversity/pairwise_distance"] >= 0
        assert {"diversity/spread_f25", "diversity/spread_f50", "diversity/spread_f75",
                "diversity/spread_f100"} <= set(run)
    assert set(data["groups"]) == {"grpo", "srpo"}
    for stats in data["groups"].values():
        s = stats["diversity/coverage"]
        assert s["ci_low"] <= s["mean"] <= s["ci_high"] and s["num_runs"] == 1
    assert set(data["difference"]) == {"success_rate", *[k for k in data["runs"][0] if k.startswith("diversity/")]}
    assert (out / "diversity.png").stat().st_size > 1000
    # --states-per-task keeps the first N held-out states of each task.
    rc = cli.main(["diversity", str(tmp_path / "srpo"), "--episodes-per-state", "2", "--states-per-task", "1",
                   "--out", str(tmp_path / "div1")])
    data = json.loads((tmp_path / "div1" / "diversity.json").read_text())
    assert rc == 0 and data["prompts"] == [[0, 8]] and data["runs"][0]["num_episodes"] == 2


def test_srpo_diversity_rejects_a_directory_without_checkpoints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["diversity", str(tmp_path)]) == 2
    assert "not an srpo run directory" in capsys.readouterr().err


def test_srpo_diversity_needs_a_trained_run_and_at_least_one(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    from srpo.config.train import load_config, save_config
    from srpo.diversity_eval import run_diversity
    from srpo.errors import SrpoError

    save_config(load_config(preset="tabletop"), tmp_path / "config.yaml")  # configured, never trained
    assert cli.main(["diversity", str(tmp_path)]) == 2
    assert "has no complete checkpoint (ckpt-*/): train it first with `srpo train`" in capsys.readouterr().err
    with pytest.raises(SrpoError, match="give at least one RUN_DIR"):
        run_diversity([], DiversityConfig(out_dir=str(tmp_path / "out")), show_progress=False)
