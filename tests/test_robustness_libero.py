"""Robustness smoke tests on the real simulators (opt-in: `pytest -m libero`).

LIBERO-PRO: one task per perturbation, built in this environment. LIBERO-Plus: one task per dimension that runs
from PyPI packages, built in the LIBERO-Plus environment (`make robust`; SRPO_ROBUST_PYTHON overrides the
interpreter) through RemoteEnv; the dimensions that need the asset archive must be reported, not run.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from srpo.config.train import load_config
from srpo.envs.libero import LiberoEnv
from srpo.envs.libero_variants import VariantEnvFactory, VariantLiberoEnv
from srpo.robustness import plan_libero_plus, plan_libero_pro, probe_plus_environment

pytestmark = pytest.mark.libero

REPO = Path(__file__).resolve().parents[1]
ROBUST_PYTHON = os.environ.get("SRPO_ROBUST_PYTHON", str(REPO / ".venv-robust" / "bin" / "python"))
ZERO = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0])


def test_libero_pro_builds_one_task_per_perturbation() -> None:
    cfg = load_config(preset="cpu", overrides=["env.libero.task_ids=[0]", "robustness.benchmark=libero-pro"])
    plan = plan_libero_pro(cfg)
    assert [t.dimension for t in plan.tasks] == ["object", "swap", "language", "task"] and not plan.unavailable
    base = plan.tasks[0].instruction
    assert plan.tasks[1].instruction == base  # swap keeps the instruction
    assert plan.tasks[2].instruction != base  # the paraphrase comes from the variant's BDDL
    for k, task in enumerate(plan.tasks):
        env = VariantLiberoEnv(cfg.env.libero, task, k)
        try:
            obs = env.reset(40)
            assert obs.image is not None and obs.image.shape == (128, 128, 3)
            assert env.step(ZERO, render_policy=True, render_embed=False).image is not None
        finally:
            env.close()


@pytest.mark.skipif(not Path(ROBUST_PYTHON).exists(), reason="no LIBERO-Plus environment: run `make robust`")
def test_libero_plus_runs_one_task_per_available_dimension() -> None:
    # Four drawn per dimension, so that the layout draw holds a moved-object variant (added-object ones need the
    # asset archive and are reported unavailable); the first runnable task of each dimension is built.
    cfg = load_config(preset="cpu", overrides=["env.libero.task_ids=[0]", "robustness.tasks_per_dimension=4",
                                               f"robustness.python={ROBUST_PYTHON}"])
    plan = plan_libero_plus(cfg, probe_plus_environment(ROBUST_PYTHON))
    assert {u.dimension for u in plan.unavailable} >= {"light", "background"}
    first = {t.dimension: t for t in reversed(plan.tasks)}
    assert set(first) == {"camera", "robot", "language", "noise", "layout"}
    factory = VariantEnvFactory(tuple(first.values()), cfg.env.libero, ROBUST_PYTHON, None)
    base = LiberoEnv(cfg.env.libero, 0)
    try:
        base_obs = base.reset(40)
        for k, task in enumerate(factory.tasks):
            env = factory.make(k)
            try:
                init = 0 if task.num_init_states == 1 else 40
                obs = env.reset(init)
                assert obs.image is not None and obs.image.shape == (128, 128, 3), task.key
                assert env.step(ZERO, render_policy=True, render_embed=False).image is not None
                if task.dimension == "robot":  # the variant's arm pose survives the base init state
                    assert np.abs(obs.state[:3] - base_obs.state[:3]).max() > 0.005, task.key
                diff = np.abs(obs.image.astype(int) - base_obs.image.astype(int)).mean()
                print(f"{task.dimension}: mean abs pixel difference to the base task {diff:.2f}")
                if task.dimension == "camera":
                    assert diff > 5, task.key
                if task.dimension == "noise":  # srpo's own corruption reached the policy image (measured 7.2,
                    assert diff > 4, task.key   # against 1.9 for the language variant's unchanged scene)
            finally:
                env.close()
    finally:
        base.close()
