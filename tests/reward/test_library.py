"""srpo.reward as a library: importable with torch, envs and policies blocked, and `srpo_advantages` is the one
reward → advantage pipeline (equal to its parts, to `srpo score` and to the trainer's reward phase)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from srpo.algo.advantages import group_advantages
from srpo.config.reward import RewardConfig
from srpo.reward import SuccessMemory, compute_progress_rewards, srpo_advantages

BLOCKED_IMPORT = """
import importlib.abc
import sys

BLOCKED = ("torch", "srpo.envs", "srpo.policies", "srpo.rollout", "srpo.trainer")


class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if any(name == b or name.startswith(b + ".") for b in BLOCKED):
            raise ImportError(f"{name} is blocked")
        return None


sys.meta_path.insert(0, Block())
import numpy as np
from srpo.reward import RewardConfig, SuccessMemory, compute_progress_rewards, srpo_advantages
from srpo.reward import quality
rng = np.random.default_rng(0)
scored = srpo_advantages(rng.normal(size=(8, 5)), np.arange(8) % 3 == 0, np.zeros(8, int), np.arange(8) // 4,
                         RewardConfig.preset("official"), memory=SuccessMemory(4))
assert scored.rewards.shape == scored.advantages.shape == (8,)
assert not [m for m in sys.modules if any(m == b or m.startswith(b + ".") for b in BLOCKED)]
print("ok")
"""


def test_reward_library_imports_without_torch_envs_or_policies() -> None:
    out = subprocess.run([sys.executable, "-c", BLOCKED_IMPORT], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def batch(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = 16
    return (rng.normal(size=(n, 6)), rng.random(n) < 0.4, np.repeat([0, 1], n // 2), np.repeat(np.arange(4), 4))


def test_srpo_advantages_equals_reward_then_group_advantages() -> None:
    emb, success, tasks, groups = batch()
    config = RewardConfig.preset("official")
    scored = srpo_advantages(emb, success, tasks, groups, config, adv_eps=1e-3, adv_std="biased")
    want = compute_progress_rewards(emb, success, tasks, groups, config)
    np.testing.assert_array_equal(scored.rewards, want.rewards)
    np.testing.assert_array_equal(scored.advantages, group_advantages(want.rewards, groups, 1e-3, "biased"))
    np.testing.assert_array_equal(scored.distance, want.diagnostics.distance)


def test_without_embeddings_the_rewards_are_the_outcomes() -> None:
    _, success, tasks, groups = batch()
    scored = srpo_advantages(None, success, tasks, groups, RewardConfig())
    np.testing.assert_array_equal(scored.rewards, success.astype(float))
    assert scored.output is None and np.isnan(scored.distance).all()


def test_memory_is_consulted_then_updated() -> None:
    emb, success, tasks, groups = batch()
    config = RewardConfig(memory_size=8)
    memory = SuccessMemory(8)
    srpo_advantages(emb, success, tasks, groups, config, memory=memory)
    stored = memory.as_mapping()
    assert sum(len(v) for v in stored.values()) == int(success.sum())
    # A later batch without any success is shaped by the remembered successes of its task.
    emb2, _, tasks2, groups2 = batch(1)
    no_success = np.zeros(16, dtype=bool)
    scored = srpo_advantages(emb2, no_success, tasks2, groups2, config, memory=memory)
    assert scored.output is not None
    assert set(scored.output.diagnostics.reference_kind[np.isin(tasks2, list(stored))]) == {"memory"}
