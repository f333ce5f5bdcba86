"""Losing a node of a multi-node Ray cluster in the middle of a collect: a head node and one worker node, simulated
on this machine with `ray.cluster_utils.Cluster` (separate raylets and object stores, one host)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray")

from ray.cluster_utils import Cluster  # noqa: E402

from distributed.env_helpers import ResetLoggingTabletopFactory  # noqa: E402
from distributed.test_ray import REQUESTS, assert_same  # noqa: E402
from srpo.config.distributed import DistributedConfig  # noqa: E402
from srpo.config.rollout import RolloutConfig  # noqa: E402
from srpo.distributed.ray_rollout import RayRolloutEngine  # noqa: E402
from srpo.rollout import RolloutEngine  # noqa: E402
from test_rollout import CHUNK, CONFIG, FACTORY, HashPolicy  # noqa: E402

TESTS_DIR = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cluster() -> Any:
    # Head: 2 CPUs (one rollout actor, and room for the replacement of the one lost with the worker node).
    # Worker: 1 CPU. Actors reserve 1 CPU each, so SPREAD places the second actor on the worker node.
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False})
    worker = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(TESTS_DIR)}})
    yield cluster, worker
    ray.shutdown()
    cluster.shutdown()


class NodeRemovingPolicy(HashPolicy):
    """Removes the cluster's worker node just before its `at_call`-th sample (between two env rounds: the
    worker node's actor has episodes mid-flight and gets its next jobs after the loss)."""

    def __init__(self, cluster: Cluster, node: Any, at_call: int, log_path: Path) -> None:
        super().__init__(noise="observation")
        self.cluster = cluster
        self.node = node
        self.at_call = at_call
        self.log_path = log_path
        self.num_starts_before_loss: int | None = None

    def sample(self, batch: Any, temperature: float, greedy: bool = False) -> Any:
        if len(self.batch_sizes) + 1 == self.at_call:
            self.num_starts_before_loss = len(self.log_path.read_text().splitlines())
            self.cluster.remove_node(self.node)
        return super().sample(batch, temperature, greedy)


def test_node_loss_mid_collect_keeps_finished_episodes_and_reruns_lost_ones(cluster: Any, tmp_path: Path) -> None:
    cluster, worker = cluster
    head_id = cluster.head_node.node_id
    log_path = tmp_path / "starts.log"
    log_path.touch()
    # Observation-seeded noise: an episode re-run from its init state replays exactly, so the collect must equal
    # the single-machine engine's whatever was lost.
    with RolloutEngine(FACTORY, RolloutConfig(num_workers=0, num_envs_per_worker=4)) as engine:
        expected, _ = engine.collect(HashPolicy(noise="observation"), REQUESTS, 1.0)
    factory = ResetLoggingTabletopFactory(CONFIG, str(log_path))
    # 2 actors × 2 envs: the 12 episodes run in 3 waves of 4. An episode is 20 steps = 3 chunks of CHUNK=8, so
    # policy calls 1-3 step wave 1 (which then finishes), call 4 is wave 2's first chunk: the node goes at call 5,
    # with wave 1 finished (2 of its episodes on the worker node) and 2 of wave 2 running there.
    assert CHUNK == 8 and CONFIG.max_steps == 20
    config = RolloutConfig(num_workers=2, num_envs_per_worker=2, reset_timeout_s=60.0)
    with RayRolloutEngine(factory, config, DistributedConfig(backend="ray", cpus_per_worker=1.0)) as engine:
        assert sorted(engine.node_ids()) == sorted([head_id, worker.node_id])  # one actor per node
        policy = NodeRemovingPolicy(cluster, worker, at_call=5, log_path=log_path)
        trajs, stats = engine.collect(policy, REQUESTS, 1.0)
        num_starts = len(log_path.read_text().splitlines())
        assert engine.node_ids() == [head_id, head_id]  # the replacement runs on the surviving node
        again, again_stats = engine.collect(HashPolicy(noise="observation"), REQUESTS, 1.0)  # still usable
    assert policy.num_starts_before_loss is not None, "the node was never removed: the test did not test a loss"
    assert_same(trajs, expected)
    assert_same(again, expected)
    assert stats.extra["rollout/num_worker_crashes"] == 1 and stats.num_worker_restarts == 1
    assert again_stats.num_worker_restarts == 0

    # Episode starts of the faulted collect, in order: (task, init state) and node.
    starts = [line.split() for line in log_path.read_text().splitlines()[:num_starts]]
    before, after = starts[: policy.num_starts_before_loss], starts[policy.num_starts_before_loss:]
    rerun = [t for t in trajs if t.num_restarts > 0]
    # Exactly the worker node's two running episodes were re-run; nothing else started twice, so the two episodes
    # that had finished on the worker node before it was lost were kept, not re-run.
    assert len(rerun) == 2 and all(t.num_restarts == 1 for t in rerun)
    assert len(starts) == len(REQUESTS) + len(rerun)
    on_worker = [(int(task), int(init)) for task, init, node in before if node == worker.node_id]
    assert len(on_worker) == 4  # 2 finished (wave 1) + 2 lost (wave 2)
    lost = Counter((t.task_id, t.init_state_id) for t in rerun)
    finished_there = Counter(on_worker) - lost
    assert sum(finished_there.values()) == 2
    kept = [t for t in trajs if t.num_restarts == 0 and (t.task_id, t.init_state_id) in finished_there]
    assert len(kept) >= 2
    # Everything that started after the loss (the two re-runs and wave 3) ran on the surviving head node.
    assert len(after) == len(rerun) + 4 and all(node == head_id for _, _, node in after)
