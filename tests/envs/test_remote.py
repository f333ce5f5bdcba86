"""RemoteEnv: an env in a child process of another interpreter (here the same one), behind the Env interface.

The built-in tabletop env stands in for LIBERO-Plus: the transport must be invisible, i.e. observations and
whole rollout-engine trajectories equal those of the local env, errors in the child reach the caller with its
traceback, envs of one process share one child, and a dead child is replaced.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from srpo.config.rollout import RolloutConfig
from srpo.envs.remote import RemoteEnv, RemoteEnvError
from srpo.envs.tabletop import TabletopEnvFactory, tabletop_expert_action
from srpo.errors import SrpoError
from srpo.rollout import RolloutEngine, make_group_requests
from test_rollout import FACTORY, HashPolicy, assert_same  # type: ignore[import-not-found]


def _remote(task_id: int = 1) -> RemoteEnv:
    return RemoteEnv(sys.executable, FACTORY, task_id, FACTORY.task_specs()[task_id])


def test_remote_env_observes_exactly_what_the_local_env_does() -> None:
    local, remote = FACTORY.make(1), _remote(1)
    try:
        a, b = local.reset(3), remote.reset(3)
        assert np.array_equal(a.image, b.image) and np.array_equal(a.state, b.state)
        for _ in range(12):
            action = tabletop_expert_action(local)
            a = local.step(action, render_policy=True, render_embed=False)
            b = remote.step(action, render_policy=True, render_embed=False)
            assert np.array_equal(a.image, b.image) and np.array_equal(a.state, b.state)
            assert b.embed_frame is None and a.success == b.success
        assert remote.render(False, True).embed_frame is not None
    finally:
        local.close()
        remote.close()


def test_errors_in_the_child_carry_its_traceback_and_envs_share_one_child() -> None:
    remote, other = _remote(1), _remote(2)
    assert remote.pid == other.pid  # one child per interpreter and process, not one per env
    remote.reset(0)
    other.reset(0)
    with pytest.raises(RemoteEnvError, match=r"(?s)'step' failed in the env child.*ValueError"):
        remote.step(np.full(3, 0.5), render_policy=False, render_embed=False)  # wrong action shape
    assert remote.reset(1).image is not None  # the env survives a bad call
    remote.close()
    with pytest.raises(RuntimeError, match="closed"):
        remote.reset(0)
    assert other.reset(2).image is not None  # closing one env leaves the others
    other.close()


def test_a_dead_child_is_an_env_error_and_is_replaced(tmp_path: Any) -> None:
    remote = _remote()
    pid = remote.pid
    os.kill(pid, 9)
    with pytest.raises(RemoteEnvError, match="died"):
        remote.reset(0)
    remote.close()
    fresh = _remote()
    assert fresh.pid != pid and fresh.reset(0).image is not None
    fresh.close()
    with pytest.raises(SrpoError, match="make robust"):
        RemoteEnv(str(tmp_path / "python"), FACTORY, 0, FACTORY.task_specs()[0])


def test_the_child_exits_when_its_parent_does(tmp_path: Any) -> None:
    script = ("import sys; from srpo.envs.remote import RemoteEnv; from srpo.envs.tabletop import TabletopEnvFactory; "
              "f = TabletopEnvFactory(); e = RemoteEnv(sys.executable, f, 0, f.task_specs()[0]); print(e.pid)")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env)
    pid = int(out.stdout.split()[-1])
    with pytest.raises(ProcessLookupError):
        for _ in range(100):
            os.kill(pid, 0)
            time.sleep(0.1)


@dataclass(frozen=True)
class RemoteTabletopFactory:
    """Every env in its own child process, as VariantEnvFactory does for LIBERO-Plus."""

    local: TabletopEnvFactory

    def task_specs(self) -> Any:
        return self.local.task_specs()

    def make(self, task_id: int) -> RemoteEnv:
        return RemoteEnv(sys.executable, self.local, task_id, self.task_specs()[task_id])


def test_rollout_engine_trajectories_are_unchanged_through_remote_envs() -> None:
    requests = make_group_requests([0, 2], [1, 4], 2)
    config = RolloutConfig(num_workers=0, num_envs_per_worker=4)
    with RolloutEngine(FACTORY, config) as engine:
        local, _ = engine.collect(HashPolicy(), requests, 1.0, greedy=True)
    with RolloutEngine(RemoteTabletopFactory(FACTORY), config) as engine:
        remote, _ = engine.collect(HashPolicy(), requests, 1.0, greedy=True)
    assert_same(local, remote)
