"""The Ray backend on a local 2-CPU cluster: rollouts equal the single-machine engine's, killed actors are replaced
without losing or duplicating episodes, resource errors name what is missing, and a 2-learner update equals the
single-process update.
"""

from __future__ import annotations

import copy
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ray = pytest.importorskip("ray")

import torch  # noqa: E402

from distributed.env_helpers import SlowTabletopFactory  # noqa: E402
from srpo.config.base import ConfigError  # noqa: E402
from srpo.config.distributed import DistributedConfig  # noqa: E402
from srpo.config.encoder import EncoderConfig  # noqa: E402
from srpo.config.env import TabletopConfig  # noqa: E402
from srpo.config.policy import PolicyConfig  # noqa: E402
from srpo.config.rollout import RolloutConfig  # noqa: E402
from srpo.config.train import AlgoConfig  # noqa: E402
from srpo.distributed.cluster import ClusterResourceError  # noqa: E402
from srpo.distributed.encoder import RayEncoder  # noqa: E402
from srpo.distributed.learner import RayLearnerGroup, shard_weights  # noqa: E402
from srpo.distributed.ray_rollout import RayRolloutEngine  # noqa: E402
from srpo.policies.compact import CompactVLA  # noqa: E402
from srpo.reward.encoders import make_encoder  # noqa: E402
from srpo.rollout import RolloutEngine, make_group_requests  # noqa: E402
from srpo.types import Trajectory  # noqa: E402
from srpo.update import ChunkBatch, batched_log_probs, minibatch_step  # noqa: E402
from test_rollout import CONFIG, FACTORY, FaultyTabletopFactory, HashPolicy  # noqa: E402

TESTS_DIR = Path(__file__).resolve().parents[1]
# Fractions of a CPU per actor: the engines of consecutive tests overlap while Ray reaps killed actors.
SMALL = 0.25
RAY_CONFIG = DistributedConfig(backend="ray", cpus_per_worker=SMALL, learner_num_cpus=SMALL, encoder_num_cpus=SMALL)
REQUESTS = make_group_requests([0, 1, 2, 3], [1, 4, 2, 7], 3)  # 12 episodes, 3 per group


@pytest.fixture(scope="module", autouse=True)
def cluster() -> Any:
    # A private 2-CPU cluster; PYTHONPATH lets actors unpickle the test factories defined in tests/.
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(TESTS_DIR)}})
    yield
    ray.shutdown()


def assert_same(a: list[Trajectory], b: list[Trajectory]) -> None:
    assert [t.rollout_id for t in a] == [t.rollout_id for t in b]
    for x, y in zip(a, b, strict=True):
        for name in ("frames", "policy_images", "policy_states", "action_tokens", "log_probs", "token_mask",
                     "actions"):
            assert np.array_equal(getattr(x, name), getattr(y, name)), (x.rollout_id, name)
        assert (x.success, x.finish_step, x.task_id, x.init_state_id, x.group_id) == (
            y.success, y.finish_step, y.task_id, y.init_state_id, y.group_id)


def test_same_trajectories_as_the_multiprocess_engine() -> None:
    # "sequential" noise draws from one generator across the batch, so equality needs the same policy batches
    # in the same order, not only the same per-episode physics. Two collects: the second reuses the envs.
    config = RolloutConfig(num_workers=2, num_envs_per_worker=3)
    with RolloutEngine(FACTORY, config) as engine:
        policy = HashPolicy(noise="sequential")
        expected = [engine.collect(policy, REQUESTS, 1.0) for _ in range(2)]
    with RayRolloutEngine(FACTORY, config, RAY_CONFIG) as engine:
        assert len(set(engine.worker_pids())) == 2
        policy = HashPolicy(noise="sequential")
        got = [engine.collect(policy, REQUESTS, 1.0) for _ in range(2)]
    for (want_trajs, want_stats), (trajs, stats) in zip(expected, got, strict=True):
        assert_same(trajs, want_trajs)
        assert stats.num_env_steps == want_stats.num_env_steps
        for key in ("rollout/num_policy_calls", "rollout/num_env_constructions", "rollout/success_rate"):
            assert stats.extra[key] == want_stats.extra[key], key
    assert got[0][1].extra["rollout/num_env_constructions"] > 0
    assert got[1][1].extra["rollout/num_env_constructions"] == 0  # envs are built once per task and reused


def test_two_actors_step_in_parallel() -> None:
    # 10 ms of sleep per step: one actor runs its 4 episodes' chunks back to back, two actors overlap them. A
    # transport that waited for one actor before sending to the next would show no gain.
    factory = SlowTabletopFactory(TabletopConfig(num_tasks=4, num_init_states=10, max_steps=16), step_s=0.01)
    requests = make_group_requests([0, 1], [1, 2], 2)
    env_s = {}
    for num_workers in (1, 2):
        config = RolloutConfig(num_workers=num_workers, num_envs_per_worker=4 // num_workers)
        with RayRolloutEngine(factory, config, RAY_CONFIG) as engine:
            engine.collect(HashPolicy(), requests, 1.0)  # warm-up: actors start, envs are built
            _, stats = engine.collect(HashPolicy(), requests, 1.0)
        env_s[num_workers] = stats.extra["time/rollout_env_s"]
    assert env_s[1] > 0.64  # 4 episodes × 16 steps × 10 ms in one actor
    assert env_s[2] < 0.8 * env_s[1], env_s


class KillingPolicy(HashPolicy):
    """Kills rollout actor 0 with ray.kill just before its `at_call`-th sample: its episodes are mid-flight."""

    def __init__(self, engine: RayRolloutEngine, at_call: int) -> None:
        super().__init__(noise="observation")
        self.engine = engine
        self.at_call = at_call
        self.killed_pid: int | None = None

    def sample(self, batch: Any, temperature: float, greedy: bool = False) -> Any:
        if len(self.batch_sizes) + 1 == self.at_call:
            self.killed_pid = self.engine.worker_pids()[0]
            ray.kill(self.engine.actors()[0])
        return super().sample(batch, temperature, greedy)


def test_killed_actor_is_replaced_and_its_episodes_rerun() -> None:
    # Observation-seeded noise: an episode re-run from its init state replays exactly, so the faulted batch must
    # equal an unfaulted one, trajectory for trajectory.
    config = RolloutConfig(num_workers=2, num_envs_per_worker=3)
    with RolloutEngine(FACTORY, replace_workers(config, 0)) as engine:
        expected, _ = engine.collect(HashPolicy(noise="observation"), REQUESTS, 1.0)
    with RayRolloutEngine(FACTORY, config, RAY_CONFIG) as engine:
        policy = KillingPolicy(engine, at_call=2)
        trajs, stats = engine.collect(policy, REQUESTS, 1.0)
        assert policy.killed_pid is not None
        assert policy.killed_pid not in engine.worker_pids()  # a new actor took its place
        again, again_stats = engine.collect(HashPolicy(noise="observation"), REQUESTS, 1.0)  # still usable
    assert_same(trajs, expected)
    assert_same(again, expected)
    assert stats.num_worker_restarts == 1
    assert stats.extra["rollout/num_worker_crashes"] == 1
    rerun = [t for t in trajs if t.num_restarts > 0]
    assert 1 <= len(rerun) <= 3  # at most the 3 episodes actor 0 was running
    assert stats.num_episode_retries == len(rerun)
    assert stats.extra["rollout/num_discarded_env_steps"] > 0
    assert again_stats.num_worker_restarts == 0


def test_actor_process_exit_mid_episode(tmp_path: Path) -> None:
    # The env kills its own actor process (os._exit) in the middle of a chunk, once.
    factory = FaultyTabletopFactory(CONFIG, "exit", task_id=1, init_state_id=4, step=5,
                                    marker=str(tmp_path / "fired"))
    with RolloutEngine(FACTORY, RolloutConfig(num_workers=0, num_envs_per_worker=6)) as engine:
        expected, _ = engine.collect(HashPolicy(), REQUESTS, 1.0)
    with RayRolloutEngine(factory, RolloutConfig(num_workers=2, num_envs_per_worker=3), RAY_CONFIG) as engine:
        trajs, stats = engine.collect(HashPolicy(), REQUESTS, 1.0)
    assert os.path.exists(tmp_path / "fired")
    assert_same(trajs, expected)
    # One injected exit; on a loaded machine Ray's memory monitor may take a second actor, which the engine
    # must absorb the same way (the trajectories above are still exact).
    assert stats.extra["rollout/num_worker_crashes"] >= 1
    assert any(t.num_restarts > 0 and (t.task_id, t.init_state_id) == (1, 4) for t in trajs)


def test_hung_actor_is_killed_and_replaced(tmp_path: Path) -> None:
    # The env hangs (sleeps for an hour) once; the actor misses its deadline, is killed and replaced.
    factory = FaultyTabletopFactory(CONFIG, "hang", task_id=2, init_state_id=2, step=3,
                                    marker=str(tmp_path / "fired"))
    with RolloutEngine(FACTORY, RolloutConfig(num_workers=0, num_envs_per_worker=6)) as engine:
        expected, _ = engine.collect(HashPolicy(), REQUESTS, 1.0)
    # 3 jobs per call × 8 steps × 0.3 s: a hang is detected after ~7 s; a healthy round takes milliseconds (but a
    # loaded machine can stall one, so a spurious extra timeout is tolerated: it re-runs episodes, loses none).
    config = RolloutConfig(num_workers=2, num_envs_per_worker=3, step_timeout_s=0.3, reset_timeout_s=10.0)
    with RayRolloutEngine(factory, config, RAY_CONFIG) as engine:
        trajs, stats = engine.collect(HashPolicy(), REQUESTS, 1.0)
    assert os.path.exists(tmp_path / "fired")
    assert_same(trajs, expected)
    assert stats.extra["rollout/num_worker_timeouts"] >= 1
    assert stats.num_worker_restarts == stats.extra["rollout/num_worker_timeouts"]
    assert any(t.num_restarts > 0 and (t.task_id, t.init_state_id) == (2, 2) for t in trajs)


def replace_workers(config: RolloutConfig, num_workers: int) -> RolloutConfig:
    # In-process with the same total capacity: observation-seeded noise makes batching irrelevant.
    return replace(config, num_workers=num_workers, num_envs_per_worker=config.num_envs_per_worker * 2)


def test_resource_errors_name_what_is_missing() -> None:
    with pytest.raises(ClusterResourceError, match=r"needs 3 CPU in all.*cluster has 2 CPU.*num_rollout_workers"):
        RayRolloutEngine(FACTORY, RolloutConfig(), DistributedConfig(backend="ray", num_rollout_workers=3))
    with pytest.raises(ClusterResourceError, match=r"needs 4 CPU, but the largest node has 2 CPU"):
        RayRolloutEngine(FACTORY, RolloutConfig(), DistributedConfig(backend="ray", num_rollout_workers=1,
                                                                     cpus_per_worker=4))
    with pytest.raises(ClusterResourceError, match=r"learners needs 1 GPU.*learner_num_gpus"):
        RayLearnerGroup(torch.nn.Linear(2, 2), AlgoConfig(), DistributedConfig(backend="ray", learner_num_gpus=1))
    with pytest.raises(ClusterResourceError, match=r"encoder actors needs 0.5 GPU.*encoder_num_gpus"):
        RayEncoder(EncoderConfig(name="pixel"), DistributedConfig(backend="ray", encoder_num_gpus=0.5))
    with pytest.raises(ConfigError, match=r"distributed\.backend"):
        DistributedConfig(backend="dask")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"distributed\.cpus_per_worker"):
        DistributedConfig(backend="ray", cpus_per_worker=0)


def test_encoder_actor_matches_local_encoder() -> None:
    config = EncoderConfig(name="pixel", num_frames=4, pixel_size=4)
    videos = [np.random.default_rng(i).integers(0, 255, size=(5 + i, 16, 16, 3), dtype=np.uint8) for i in range(3)]
    remote = RayEncoder(config, RAY_CONFIG)
    try:
        got = remote.encode(videos)
    finally:
        remote.close()
    want = make_encoder(config).encode(videos)
    assert got.shape == (3, remote.dim) and np.array_equal(got, want)


# -- learner -------------------------------------------------------------------------------------------------


def tiny_policy() -> CompactVLA:
    return CompactVLA(PolicyConfig(vision_encoder="conv", text_encoder="hashed", image_size=32, d_model=32,
                                   num_heads=2, num_layers=1, ff_dim=64, feature_cache_size=0))


def random_batch(policy: Any, num_chunks: int = 12) -> ChunkBatch:
    rng = np.random.default_rng(0)
    length = policy.num_action_tokens
    images = rng.integers(0, 255, size=(num_chunks, 32, 32, 3), dtype=np.uint8)
    states = rng.normal(size=(num_chunks, 4)).astype(np.float32)
    tokens = rng.integers(0, policy.num_bins, size=(num_chunks, length))
    # Uneven masks (episodes ending mid-chunk): shards hold different token counts, so a plain mean of per-shard
    # losses would differ from the mini-batch loss.
    mask = np.ones((num_chunks, length), dtype=bool)
    for row, keep in enumerate(rng.integers(0, length, size=num_chunks)):
        if row % 3 == 0:
            mask[row, keep:] = False
    batch = ChunkBatch(images=images, states=states, instructions=[f"task {i % 3}" for i in range(num_chunks)],
                       tokens=tokens, mask=mask, old_log_probs=np.zeros((num_chunks, length), np.float32),
                       advantages=rng.normal(size=num_chunks).astype(np.float32))
    # Chunks of trajectories of 1 to 4 chunks, as ChunkBatch.from_trajectories weighs them.
    traj_of_row = np.sort(rng.integers(0, num_chunks // 2, size=num_chunks))
    executed = np.bincount(traj_of_row, weights=mask.sum(axis=1))
    batch.row_weights = (1.0 / np.maximum(executed, 1))[traj_of_row].astype(np.float32)
    old, _ = batched_log_probs(policy, batch, 1.0)
    batch.old_log_probs = old + rng.normal(0, 0.1, size=old.shape).astype(np.float32)  # ratios away from 1
    return batch


def test_shard_weights_recompose_the_minibatch_loss() -> None:
    mask = np.array([[1, 1, 0], [1, 0, 0], [0, 0, 0], [1, 1, 1]], dtype=bool)
    shards = [np.array([0, 1]), np.array([2, 3])]
    loss_w, token_w = shard_weights(mask, shards, "token-mean")
    assert np.allclose(loss_w, [3 / 6, 3 / 6]) and np.allclose(token_w, loss_w)
    loss_w, _ = shard_weights(mask, shards, "seq-mean-token-mean")
    assert np.allclose(loss_w, [2 / 3, 1 / 3])  # row 2 has no tokens and does not count
    # Rows 0 and 1 are one trajectory of 3 tokens, row 3 another of 3: each trajectory weighs the same.
    row_weights = np.array([1 / 3, 1 / 3, 1.0, 1 / 3])
    loss_w, _ = shard_weights(mask, shards, "traj-mean-token-mean", row_weights)
    assert np.allclose(loss_w, [1 / 2, 1 / 2])
    with pytest.raises(ValueError, match="needs the batch's row_weights"):
        shard_weights(mask, shards, "traj-mean-token-mean")


MINIBATCHES = [np.array([0, 3, 5, 6, 9, 10, 11]), np.array([1, 2, 4, 7, 8])]
ALGO = AlgoConfig(lr=1e-3, temperature=1.0, grad_clip=0.5)


def single_process_update(policy: Any, batch: ChunkBatch, minibatches: list[np.ndarray], algo: AlgoConfig
                          ) -> tuple[list[dict[str, float]], dict[str, torch.Tensor], dict[str, Any]]:
    """The reference: `srpo.update.minibatch_step` on a copy of `policy`; (stats, weights, AdamW state)."""
    single = copy.deepcopy(policy)
    params = [p for p in single.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=algo.lr, weight_decay=algo.weight_decay)
    single.train(True)
    stats = [minibatch_step(single, optimizer, batch, idx, algo, step=0) for idx in minibatches]
    return stats, single.state_dict(), optimizer.state_dict()


def assert_same_update(got: list[dict[str, float]], state: dict[str, torch.Tensor], initial: dict[str, torch.Tensor],
                       want: list[dict[str, float]], want_state: dict[str, torch.Tensor], lr: float) -> None:
    changed = 0
    assert state.keys() == want_state.keys()
    for name, value in state.items():
        # atol of a tenth of lr: Adam scales a gradient that is only float noise (the attention key bias, which
        # softmax ignores) up to an lr-sized step, so such parameters differ by summation order. The gradients
        # themselves are checked tightly through grad/norm below.
        torch.testing.assert_close(value, want_state[name], rtol=1e-5, atol=lr / 10, msg=name)
        changed += int(not torch.equal(value, initial[name]))
    assert changed > 0  # the update moved the weights (so equality is not vacuous)
    for w, g in zip(want, got, strict=True):
        for key in ("loss/policy", "loss/total", "loss/entropy", "policy/entropy", "ppo/clip_fraction",
                    "ppo/ratio_mean", "grad/norm"):
            assert g[key] == pytest.approx(w[key], rel=1e-5, abs=1e-6), key


@pytest.mark.parametrize("aggregation", ["token-mean", "traj-mean-token-mean"])
def test_two_learners_equal_the_single_process_update(aggregation: str) -> None:
    policy = tiny_policy()
    batch = random_batch(policy)
    algo = replace(ALGO, aggregation=aggregation)
    want, want_state, _ = single_process_update(policy, batch, MINIBATCHES, algo)
    group = RayLearnerGroup(policy, algo, replace(RAY_CONFIG, num_learners=2))
    try:
        got = group.update(batch, MINIBATCHES)
        digests = group.param_digests()
        state = group.state_dict()
    finally:
        group.close()
    assert digests[0] == digests[1]  # replicas bit-identical after two steps
    assert_same_update(got, state, policy.state_dict(), want, want_state, ALGO.lr)


def test_learners_step_at_the_rate_they_are_given() -> None:
    # The trainer passes each step's scheduled rate (algo.lr_schedule): the replicas must step at it, not at the
    # algo.lr their optimiser was built with. The reference steps at a third of ALGO.lr.
    policy = tiny_policy()
    batch = random_batch(policy)
    lr = ALGO.lr / 3
    want, want_state, _ = single_process_update(policy, batch, MINIBATCHES, replace(ALGO, lr=lr))
    group = RayLearnerGroup(policy, ALGO, replace(RAY_CONFIG, num_learners=2))
    try:
        got = group.update(batch, MINIBATCHES, lr)
        state = group.state_dict()
        rates = [g["lr"] for g in group.optimizer_state_dict()["param_groups"]]
    finally:
        group.close()
    assert rates == pytest.approx([lr] * len(rates))
    assert_same_update(got, state, policy.state_dict(), want, want_state, lr)


def test_fsdp_learners_equal_the_single_process_update() -> None:
    # Each TransformerEncoderLayer is an FSDP unit, the rest of the policy the root unit; gradients are
    # reduce-scattered (summed, not averaged), the norm clipped over the shards. The third mini-batch has one row,
    # so rank 1's shard is empty (it must still join the gathers). The AdamW state gathered afterwards must
    # equal the single-process one.
    policy = tiny_policy()
    batch = random_batch(policy)
    minibatches = [*MINIBATCHES, np.array([4])]
    want, want_state, want_optimizer = single_process_update(policy, batch, minibatches, ALGO)
    group = RayLearnerGroup(policy, ALGO, replace(RAY_CONFIG, num_learners=2, learner_strategy="fsdp"))
    try:
        assert group.optimizer_state_dict()["state"] == {}  # gathering a fresh AdamW must not step it
        got = group.update(batch, minibatches)
        state = group.state_dict()
        optimizer = group.optimizer_state_dict()
        assert len(set(group.param_digests())) == 1
    finally:
        group.close()
    assert_same_update(got, state, policy.state_dict(), want, want_state, ALGO.lr)
    assert optimizer["param_groups"][0]["params"] == want_optimizer["param_groups"][0]["params"]
    assert optimizer["state"].keys() == want_optimizer["state"].keys()
    for i, moments in want_optimizer["state"].items():
        assert float(optimizer["state"][i]["step"]) == float(moments["step"]) == len(minibatches)
        torch.testing.assert_close(optimizer["state"][i]["exp_avg"], moments["exp_avg"], rtol=1e-4, atol=1e-7)


def test_fsdp_learners_on_the_tiny_openvla_oft_adapter() -> None:
    # The OpenVLA-OFT adapter over a real (tiny) LlamaForCausalLM: each LlamaDecoderLayer is an FSDP unit; the
    # embeddings, vision backbone, projector and LM head are in the root unit and run outside the language
    # model's forward, which the root's forward (the policy's token_log_probs) covers.
    from srpo.policies.openvla_oft import build_tiny_vla

    policy = build_tiny_vla(hidden=32, num_layers=2)
    assert len([m for m in policy.model.modules() if type(m).__name__ == "LlamaDecoderLayer"]) == 2
    batch = random_batch(policy, num_chunks=6)
    minibatches = [np.array([0, 2, 5]), np.array([1, 3, 4])]
    want, want_state, _ = single_process_update(policy, batch, minibatches, ALGO)
    group = RayLearnerGroup(policy, ALGO, replace(RAY_CONFIG, num_learners=2, learner_strategy="fsdp"))
    try:
        got = group.update(batch, minibatches)
        state = group.state_dict()
    finally:
        group.close()
    assert_same_update(got, state, policy.state_dict(), want, want_state, ALGO.lr)


@pytest.mark.parametrize("strategy", ["allreduce", "fsdp"])
def test_dead_learner_is_replaced_and_the_update_rerun(strategy: str, tmp_path: Path) -> None:
    # Rank 1 ends its process in its third forward, the second mini-batch of the second update (after a warm-up
    # update, and after this update's first step): rank 0 has stepped
    # and is waiting in a collective. The group must notice, restart both learners from the weights and AdamW
    # state of before the update, and re-run it: the same result as the single-process update.
    from distributed.env_helpers import ExitingCompactVLA

    marker = tmp_path / "exited"
    policy = ExitingCompactVLA(tiny_policy().config, exit_rank=1, exit_at_call=3, marker=str(marker))
    batch = random_batch(policy)
    # A step before the failing update: the restore must bring back this AdamW state, not a fresh one.
    warmup = [np.arange(12)]
    want, want_state, _ = single_process_update(policy, batch, warmup + MINIBATCHES, ALGO)
    group = RayLearnerGroup(policy, ALGO, replace(RAY_CONFIG, num_learners=2, learner_strategy=strategy))
    try:
        got = group.update(batch, warmup)
        before = group.worker_pids()
        got += group.update(batch, MINIBATCHES)
        assert marker.exists(), "rank 1 never exited: the test did not test a failure"
        assert group.num_restarts == 1
        assert not set(group.worker_pids()) & set(before)  # the whole group was re-formed
        digests = group.param_digests()
        state = group.state_dict()
    finally:
        group.close()
    assert len(set(digests)) == 1
    assert_same_update(got, state, policy.state_dict(), want, want_state, ALGO.lr)


def test_learner_restarts_are_bounded(tmp_path: Path) -> None:
    from distributed.env_helpers import ExitingCompactVLA
    from srpo.distributed.learner import LearnerGroupError

    policy = ExitingCompactVLA(tiny_policy().config, exit_rank=1, exit_at_call=1, marker=str(tmp_path / "exited"))
    group = RayLearnerGroup(policy, ALGO, replace(RAY_CONFIG, num_learners=2, max_learner_restarts=0))
    try:
        with pytest.raises(LearnerGroupError, match=r"max_learner_restarts=0"):
            group.update(random_batch(policy), MINIBATCHES)
    finally:
        group.close()
    with pytest.raises(ConfigError, match=r"distributed\.max_learner_restarts"):
        DistributedConfig(backend="ray", num_learners=2, max_learner_restarts=-1)
    with pytest.raises(ConfigError, match=r"distributed\.learner_strategy.*num_learners > 1"):
        DistributedConfig(backend="ray", learner_strategy="fsdp")
    with pytest.raises(ConfigError, match=r"distributed\.learner_strategy"):
        DistributedConfig(backend="ray", num_learners=2, learner_strategy="ddp")  # type: ignore[arg-type]


# -- the CLI ---------------------------------------------------------------------------------------------------


def test_srpo_train_checks_all_roles_together(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # 2 rollout workers fit the 2 CPUs, and so would the encoder actor alone: together they do not, which must
    # fail at once with the sum, not after actor_start_timeout_s of waiting.
    from srpo.cli import main

    code = main(["train", "--preset", "tabletop", "--steps", "1", "--run-dir", str(tmp_path / "run"),
                 "--set", "distributed.backend=ray", "--set", "distributed.num_rollout_workers=2",
                 "--set", "tensorboard=false"])
    err = capsys.readouterr().err
    assert code == 2
    assert "the run needs 3 CPU in all (2 rollout workers × 1 CPU; 1 encoder actors × 1 CPU)" in err


@pytest.mark.slow  # two short training runs: ~15 s idle, up to a minute on a loaded 2-core machine
def test_srpo_train_with_the_ray_backend_matches_the_single_machine_run(tmp_path: Path) -> None:
    from srpo.cli import main
    from srpo.run_dir import read_metrics

    common = ["train", "--preset", "tabletop", "--steps", "1", "--set", "algo.num_prompts_per_step=2",
              "--set", "algo.group_size=2", "--set", "num_eval_episodes_per_task=0",
              "--set", "num_videos_per_step=0", "--set", "tensorboard=false"]
    assert main([*common, "--run-dir", str(tmp_path / "plain")]) == 0
    on_ray_args = ["--set", "distributed.backend=ray", "--set", f"distributed.cpus_per_worker={SMALL}",
                   "--set", f"distributed.encoder_num_cpus={SMALL}"]
    assert main([*common, "--run-dir", str(tmp_path / "ray"), *on_ray_args]) == 0
    plain, on_ray = read_metrics(tmp_path / "plain"), read_metrics(tmp_path / "ray")
    assert len(on_ray) == len(plain) == 1
    for want, got in zip(plain, on_ray, strict=True):
        # Same seed, same batching (one actor with the in-process engine's capacity): the same step, bit for bit.
        assert {k: v for k, v in got.items() if not k.startswith("time/")} == {
            k: v for k, v in want.items() if not k.startswith("time/")}
    assert on_ray[0]["rollout/num_trajectories"] == 4


@pytest.mark.parametrize("strategy", ["allreduce", "fsdp"])
def test_trainer_with_two_learners_matches_the_single_process_step(strategy: str, tmp_path: Path) -> None:
    """`num_learners=2`: the trainer's update runs data-parallel over the learner group (replicated or FSDP-sharded)
    and lands on (float-close) the same weights as the single-process update; the driver's copy and the learners'
    gathered weights stay in sync."""
    import torch

    from srpo.config.train import load_config
    from srpo.trainer import Trainer

    common = ["num_steps=1", "algo.num_prompts_per_step=2", "algo.group_size=2", "algo.entropy_coef=0.01",
              "num_eval_episodes_per_task=0", "num_videos_per_step=0", "tensorboard=false", "algo_name=grpo",
              "env.tabletop.max_steps=16", "policy.d_model=32", "policy.num_layers=1", "policy.ff_dim=64"]
    plain_cfg = load_config(preset="tabletop", overrides=[*common, f"run_dir={tmp_path / 'plain'}"])
    with Trainer(plain_cfg, show_progress=False) as trainer:
        initial = {k: v.detach().clone() for k, v in trainer.policy.state_dict().items()}
        trainer.train()
        want = {k: v.detach().clone() for k, v in trainer.policy.state_dict().items()}
    dp_cfg = load_config(preset="tabletop", overrides=[
        *common, f"run_dir={tmp_path / 'dp'}", "distributed.backend=ray", "distributed.num_learners=2",
        f"distributed.learner_strategy={strategy}",
        f"distributed.cpus_per_worker={SMALL}", f"distributed.learner_num_cpus={SMALL}"])
    with Trainer(dp_cfg, show_progress=False) as trainer:
        history = trainer.train()
        got = trainer.policy.state_dict()
        digests = trainer.learners.param_digests()
        replica = trainer.learners.state_dict()
    assert len(set(digests)) == 1
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=1e-4, atol=1e-6, msg=k)
        torch.testing.assert_close(replica[k], got[k], rtol=0, atol=0, msg=k)
    assert any(not torch.equal(got[k], initial[k]) for k in initial), "the data-parallel step changed nothing"
    assert np.isfinite(history[0]["loss/total"])
    assert history[0]["learner/num_restarts"] == 0
