"""The rollout engine: order, frame ownership, token masks, render stride, worker processes and faults.

Every trajectory is checked against a fresh replay of its actions in the real tabletop env, so the tests
catch wrong frames, stale images and lost or extra steps, not only wrong shapes.
"""

from __future__ import annotations

import os
import signal
import time
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from srpo.config.base import ConfigError
from srpo.config.env import TabletopConfig
from srpo.config.rollout import RolloutConfig
from srpo.envs.base import Observation
from srpo.envs.tabletop import TabletopEnv, TabletopEnvFactory, tabletop_expert_action
from srpo.rollout import EpisodeRequest, RolloutEngine, RolloutError, make_group_requests
from srpo.types import ACTION_DIM, Trajectory

# Spawned workers import this module to unpickle FaultyTabletopFactory, so torch (needed only for the policy
# records and token_log_probs) is imported inside the policy methods: the workers start in ~1 s, not ~5 s.

CHUNK = 8
NUM_BINS = 256
EDGES = np.linspace(-1.0, 1.0, NUM_BINS)
CENTRES = (EDGES[:-1] + EDGES[1:]) / 2.0  # 255 bin centres, as in srpo.policies.tokenizer
CONFIG = TabletopConfig(num_tasks=4, num_init_states=10, max_steps=20)  # 20 steps: the last chunk is cut short
FACTORY = TabletopEnvFactory(CONFIG)


def decode(tokens: np.ndarray) -> np.ndarray:
    return CENTRES[np.clip(tokens, 0, NUM_BINS - 2)].astype(np.float32)


def encode(actions: np.ndarray) -> np.ndarray:
    return np.clip(np.digitize(actions, EDGES) - 1, 0, NUM_BINS - 1).astype(np.int64)


class HashPolicy:
    """A tiny real policy: fixed random logits shifted linearly by the proprioceptive state.

    With noise="observation" its sampling noise is seeded by a hash of the observation, so what it samples for
    an episode does not depend on the batch the episode is in: runs with different batching (workers, re-runs
    after faults) must agree; the rollouts of a group are then identical. noise="sequential" draws from one
    generator, so the rollouts of a group differ.
    """

    action_dim = ACTION_DIM
    num_bins = NUM_BINS

    def __init__(self, chunk_size: int = CHUNK, seed: int = 0, noise: str = "observation") -> None:
        self.chunk_size = chunk_size
        self.noise = noise
        rng = np.random.default_rng(seed)
        self.rng = np.random.default_rng(seed + 1)
        num_tokens = chunk_size * ACTION_DIM
        self.bias = rng.normal(0.0, 1.0, size=(num_tokens, NUM_BINS))
        self.weight = rng.normal(0.0, 1.0, size=(4, num_tokens, NUM_BINS))
        self.batch_sizes: list[int] = []

    def _log_softmax(self, states: np.ndarray, temperature: float) -> np.ndarray:
        logits = (self.bias[None] + np.einsum("bs,slk->blk", states.astype(np.float64), self.weight)) / temperature
        logits -= logits.max(axis=-1, keepdims=True)
        return logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))

    def sample(self, batch: Any, temperature: float, greedy: bool = False) -> Any:
        from srpo.policies.base import ActionSample

        self.batch_sizes.append(len(batch.images))
        logp = self._log_softmax(batch.states, temperature)
        if greedy:
            tokens = logp.argmax(axis=-1)
        else:
            tokens = np.empty(logp.shape[:2], dtype=np.int64)
            for b in range(len(logp)):
                key = batch.images[b].tobytes() + batch.states[b].tobytes() + batch.instructions[b].encode()
                rng = np.random.default_rng(zlib.crc32(key)) if self.noise == "observation" else self.rng
                gumbel = rng.gumbel(size=logp.shape[1:])
                tokens[b] = (logp[b] + gumbel).argmax(axis=-1)
        log_probs = np.take_along_axis(logp, tokens[..., None], axis=-1)[..., 0].astype(np.float32)
        actions = decode(tokens).reshape(len(tokens), self.chunk_size, ACTION_DIM)
        return ActionSample(tokens=tokens.astype(np.int64), log_probs=log_probs, actions=actions)

    def token_log_probs(self, batch: Any, tokens: Any, temperature: float) -> Any:
        import torch

        logp = torch.as_tensor(self._log_softmax(batch.states, temperature))
        entropy = -(logp.exp() * logp).sum(-1)
        return logp.gather(-1, tokens[..., None]).squeeze(-1), entropy


class ReplayExpertPolicy(HashPolicy):
    """Plays the scripted expert's (quantised) actions as tokens with log-prob 0.

    The expert needs privileged state, which lives in the workers; so its runs are precomputed here and an
    episode is located by its (instruction, proprioceptive state) at the start of each chunk.
    """

    def __init__(self, factory: TabletopEnvFactory, init_state_ids: list[int]) -> None:
        super().__init__()
        self.table: dict[tuple[str, bytes], np.ndarray] = {}
        self.lengths: dict[tuple[int, int], int] = {}
        idle = encode(np.array([0, 0, 0, 0, 0, 0, -1.0]))
        for spec in factory.task_specs():
            env = factory.make(spec.task_id)
            for init_state_id in init_state_ids:
                obs = env.reset(init_state_id)
                states, tokens = [obs.state], []
                while not obs.success and len(tokens) < spec.max_steps:
                    tokens.append(encode(tabletop_expert_action(env)))
                    obs = env.step(decode(tokens[-1]), False, False)
                    states.append(obs.state)
                assert obs.success
                self.lengths[(spec.task_id, init_state_id)] = len(tokens)
                tokens += [idle] * CHUNK
                for t in range(0, len(states) - 1, CHUNK):
                    key = (spec.instruction, states[t].tobytes())
                    assert key not in self.table
                    self.table[key] = np.concatenate(tokens[t : t + CHUNK])

    def sample(self, batch: Any, temperature: float, greedy: bool = False) -> Any:
        from srpo.policies.base import ActionSample

        tokens = np.stack([self.table[(i, s.tobytes())] for i, s in zip(batch.instructions, batch.states,
                                                                        strict=True)])
        actions = decode(tokens).reshape(len(tokens), CHUNK, ACTION_DIM)
        return ActionSample(tokens=tokens, log_probs=np.zeros(tokens.shape, np.float32), actions=actions)


@dataclass(frozen=True)
class FaultyTabletopFactory:
    """The tabletop factory, except that one (task, init state) faults at one step.

    mode: "raise" (like a MuJoCo instability error), "hang" (sleeps for an hour) or "exit" (the process dies).
    The fault fires only while `marker` does not exist (firing creates it), so a re-run succeeds; with an empty
    marker it fires every time.
    """

    config: TabletopConfig
    mode: str
    task_id: int
    init_state_id: int
    step: int
    marker: str = ""

    def task_specs(self) -> list[Any]:
        return TabletopEnvFactory(self.config).task_specs()

    def make(self, task_id: int) -> FaultyEnv:
        return FaultyEnv(TabletopEnv(self.config, task_id), self)


@dataclass
class FaultyEnv:
    env: TabletopEnv
    fault: FaultyTabletopFactory
    init_state_id: int = -1
    spec: Any = field(init=False)

    def __post_init__(self) -> None:
        self.spec = self.env.spec

    def reset(self, init_state_id: int) -> Observation:
        self.init_state_id = init_state_id
        return self.env.reset(init_state_id)

    def step(self, action: np.ndarray, render_policy: bool, render_embed: bool) -> Observation:
        obs = self.env.step(action, render_policy, render_embed)
        f = self.fault
        here = (self.spec.task_id, self.init_state_id, self.env.num_steps) == (f.task_id, f.init_state_id, f.step)
        if here and self._fire():
            if f.mode == "raise":
                raise FloatingPointError("simulated physics instability: qacc is NaN")
            if f.mode == "hang":
                time.sleep(3600)
            os._exit(3)
        return obs

    def render(self, render_policy: bool, render_embed: bool) -> Observation:
        return self.env.render(render_policy, render_embed)

    def close(self) -> None:
        self.env.close()

    def _fire(self) -> bool:
        if not self.fault.marker:
            return True
        if os.path.exists(self.fault.marker):
            return False
        Path(self.fault.marker).touch()
        return True


def requests_batch() -> list[EpisodeRequest]:
    """Three groups of four, tasks out of order, then two singletons."""
    groups = make_group_requests([2, 0, 3], [5, 1, 5], group_size=4)
    return [*groups, EpisodeRequest(1, 9, 3, 12), EpisodeRequest(0, 1, 4, 13)]


def assert_replays(traj: Trajectory, stride: int, factory: TabletopEnvFactory = FACTORY) -> None:
    """`traj` is exactly what its actions produce in a fresh env, recorded as the engine documents."""
    t_len = traj.finish_step
    num_chunks = -(-t_len // CHUNK)
    assert traj.frames.dtype == np.uint8 and traj.policy_images.dtype == np.uint8
    assert traj.policy_images.shape == (num_chunks, 64, 64, 3)
    assert traj.policy_states.shape == (num_chunks, 4) and traj.policy_states.dtype == np.float32
    assert traj.action_tokens.shape == (num_chunks, CHUNK * ACTION_DIM) and traj.action_tokens.dtype == np.int64
    assert traj.log_probs.shape == traj.action_tokens.shape and traj.log_probs.dtype == np.float32
    assert traj.token_mask.dtype == np.bool_
    assert traj.actions.shape == (t_len, ACTION_DIM) and traj.actions.dtype == np.float32
    # Only the tokens of executed actions are marked, step-major.
    flat_mask = traj.token_mask.reshape(-1)
    assert flat_mask[: t_len * ACTION_DIM].all() and not flat_mask[t_len * ACTION_DIM :].any()
    decoded = decode(traj.action_tokens).reshape(-1, ACTION_DIM)[:t_len]
    np.testing.assert_array_equal(traj.actions, decoded)

    env = factory.make(traj.task_id)
    obs = env.reset(traj.init_state_id)
    frames, images, states = [obs.embed_frame], [obs.image], [obs.state]
    for t, action in enumerate(traj.actions, start=1):
        assert not obs.success, "the episode ran past its success"
        obs = env.step(action, True, True)
        if t % stride == 0 or t == t_len:
            frames.append(obs.embed_frame)
        if t % CHUNK == 0 and t < t_len:
            images.append(obs.image)
            states.append(obs.state)
    assert traj.success == obs.success
    assert traj.success or t_len == env.spec.max_steps
    np.testing.assert_array_equal(traj.frames, np.stack(frames))  # type: ignore[arg-type]
    np.testing.assert_array_equal(traj.policy_images, np.stack(images))  # type: ignore[arg-type]
    np.testing.assert_array_equal(traj.policy_states, np.stack(states))


def assert_same(a: list[Trajectory], b: list[Trajectory]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert (x.task_id, x.init_state_id, x.group_id, x.rollout_id, x.success, x.finish_step) == (
            y.task_id, y.init_state_id, y.group_id, y.rollout_id, y.success, y.finish_step)
        for name in ("frames", "policy_images", "policy_states", "action_tokens", "log_probs", "token_mask",
                     "actions"):
            np.testing.assert_array_equal(getattr(x, name), getattr(y, name), err_msg=name)


@pytest.fixture(scope="module")
def reference() -> list[Trajectory]:
    """The batch rolled out in-process without faults."""
    with RolloutEngine(FACTORY, RolloutConfig(num_envs_per_worker=5)) as engine:
        trajectories, _ = engine.collect(HashPolicy(), requests_batch(), temperature=1.0)
    for traj in trajectories:
        assert_replays(traj, stride=CHUNK)
    return trajectories


def test_make_group_requests_repeats_each_prompt_as_one_group():
    requests = make_group_requests([3, 1], [7, 2], group_size=3, first_rollout_id=10)
    assert requests == [
        EpisodeRequest(3, 7, 0, 10), EpisodeRequest(3, 7, 0, 11), EpisodeRequest(3, 7, 0, 12),
        EpisodeRequest(1, 2, 1, 13), EpisodeRequest(1, 2, 1, 14), EpisodeRequest(1, 2, 1, 15),
    ]
    with pytest.raises(ValueError, match="2 task_ids but 1 init_state_ids"):
        make_group_requests([0, 1], [0], group_size=2)
    with pytest.raises(ValueError, match="group_size=0 must be >= 1"):
        make_group_requests([0], [0], group_size=0)


def test_collect_returns_replayable_trajectories_in_request_order():
    requests = requests_batch()
    policy = HashPolicy(noise="sequential")
    with RolloutEngine(FACTORY, RolloutConfig(num_envs_per_worker=5)) as engine:
        trajectories, stats = engine.collect(policy, requests, temperature=1.0)
        _, second_stats = engine.collect(HashPolicy(), requests, temperature=1.0)
    assert [(t.task_id, t.init_state_id, t.group_id, t.rollout_id) for t in trajectories] == [
        tuple(r) for r in requests
    ]
    for traj, request in zip(trajectories, requests, strict=True):
        assert traj.instruction == FACTORY.task_specs()[request.task_id].instruction and traj.suite == "tabletop"
        assert traj.num_restarts == 0
        assert_replays(traj, stride=CHUNK)
    # Batched: one policy call serves up to num_envs_per_worker episodes, never more.
    assert max(policy.batch_sizes) == 5 and len(policy.batch_sizes) < sum(t.num_chunks for t in trajectories)
    assert stats.num_episodes == len(requests) and stats.num_env_steps == sum(t.finish_step for t in trajectories)
    assert stats.num_worker_restarts == 0 and stats.num_episode_retries == 0
    assert stats.extra["rollout/num_policy_calls"] == len(policy.batch_sizes)
    # Envs are reused across episodes and across collect calls: the second batch builds none.
    assert stats.extra["rollout/num_env_constructions"] < len(requests)
    assert second_stats.extra["rollout/num_env_constructions"] == 0


def test_every_trajectory_owns_its_frames():
    with RolloutEngine(FACTORY, RolloutConfig(num_envs_per_worker=4)) as engine:
        policy = HashPolicy(noise="sequential")
        trajectories, _ = engine.collect(policy, make_group_requests([1], [3], group_size=4), 1.0)
    arrays = [a for t in trajectories for a in (t.frames, t.policy_images, t.actions, t.action_tokens)]
    for i, a in enumerate(arrays):
        for b in arrays[i + 1 :]:
            assert not np.shares_memory(a, b)
    # Same prompt, different samples: the group's rollouts diverge, and so do their frames.
    assert not np.array_equal(trajectories[0].frames[-1], trajectories[1].frames[-1])
    before = trajectories[1].frames.copy()
    trajectories[0].frames[:] = 0
    np.testing.assert_array_equal(trajectories[1].frames, before)


def test_successes_end_mid_chunk_with_their_final_frame():
    factory = TabletopEnvFactory(TabletopConfig(num_tasks=4, num_init_states=10, max_steps=48))
    policy = ReplayExpertPolicy(factory, init_state_ids=[0, 1, 2, 3])
    requests = make_group_requests([0, 1, 2, 3, 0, 3], [0, 1, 2, 3, 3, 0], group_size=1)
    with RolloutEngine(factory, RolloutConfig(num_envs_per_worker=3)) as engine:
        trajectories, stats = engine.collect(policy, requests, temperature=1.0)
    assert stats.extra["rollout/success_rate"] == 1.0
    for traj in trajectories:
        assert traj.success and traj.finish_step == policy.lengths[(traj.task_id, traj.init_state_id)]
        assert_replays(traj, stride=CHUNK, factory=factory)
    assert any(t.finish_step % CHUNK for t in trajectories)  # some ended mid-chunk: partial token masks


@dataclass(frozen=True)
class PlainTabletopFactory:
    """Tabletop envs without the optional `render` method (like an env that can only render when stepping)."""

    config: TabletopConfig

    def task_specs(self) -> list[Any]:
        return TabletopEnvFactory(self.config).task_specs()

    def make(self, task_id: int) -> PlainEnv:
        return PlainEnv(TabletopEnv(self.config, task_id))


class PlainEnv:
    def __init__(self, env: TabletopEnv) -> None:
        self.env, self.spec = env, env.spec

    def reset(self, init_state_id: int) -> Observation:
        return self.env.reset(init_state_id)

    def step(self, action: np.ndarray, render_policy: bool, render_embed: bool) -> Observation:
        return self.env.step(action, render_policy, render_embed)

    def close(self) -> None:
        self.env.close()


def test_env_without_render_still_records_the_horizon_frame(reference: list[Trajectory]):
    with RolloutEngine(PlainTabletopFactory(CONFIG), RolloutConfig(num_envs_per_worker=5)) as engine:
        trajectories, _ = engine.collect(HashPolicy(), requests_batch(), temperature=1.0)
    assert_same(trajectories, reference)  # the horizon (20) is off the stride (8): its frame is asked for


def test_embed_stride_one_records_every_step(reference: list[Trajectory]):
    with RolloutEngine(FACTORY, RolloutConfig(num_envs_per_worker=5, embed_stride=1)) as engine:
        trajectories, _ = engine.collect(HashPolicy(), requests_batch()[:5], temperature=1.0)
    for traj in trajectories:
        assert traj.frames.shape[0] == traj.finish_step + 1
        assert_replays(traj, stride=1)
    # The stride changes what is recorded, not what happens.
    for traj, ref in zip(trajectories, reference, strict=False):
        np.testing.assert_array_equal(traj.actions, ref.actions)


def test_greedy_sampling_is_passed_to_the_policy():
    # Sequential noise: sampled rollouts of one group differ, so only a greedy engine makes them agree.
    requests = make_group_requests([0], [0], 2)
    with RolloutEngine(FACTORY, RolloutConfig()) as engine:
        sampled, _ = engine.collect(HashPolicy(noise="sequential"), requests, 1.0, greedy=False)
        greedy, _ = engine.collect(HashPolicy(noise="sequential"), requests, 1.0, greedy=True)
    assert not np.array_equal(sampled[0].action_tokens, sampled[1].action_tokens)
    np.testing.assert_array_equal(greedy[0].action_tokens, greedy[1].action_tokens)
    # Each greedy chunk is the arg-max at the state the policy saw.
    policy = HashPolicy()
    for traj in greedy:
        expected = policy._log_softmax(traj.policy_states, 1.0).argmax(axis=-1)
        np.testing.assert_array_equal(traj.action_tokens, expected)


def test_worker_processes_give_the_in_process_result(reference: list[Trajectory]):
    config = RolloutConfig(num_workers=2, num_envs_per_worker=3)
    policy = HashPolicy()
    with RolloutEngine(FACTORY, config) as engine:
        first, stats = engine.collect(policy, requests_batch(), temperature=1.0)
        second, second_stats = engine.collect(HashPolicy(), requests_batch(), temperature=1.0)
    assert max(policy.batch_sizes) == 6  # one policy call serves the episodes of both workers
    assert second_stats.extra["rollout/num_env_constructions"] == 0  # the workers kept their envs
    assert_same(first, reference)
    assert_same(second, reference)
    assert stats.num_worker_restarts == 0 and stats.num_episode_retries == 0


class KillingPolicy(HashPolicy):
    """Kills a worker process (SIGKILL) just before its `kill_at`-th sample call: mid-rollout."""

    def __init__(self, engine: RolloutEngine, kill_at: int) -> None:
        super().__init__()
        self.engine, self.kill_at, self.num_calls = engine, kill_at, 0
        self.killed_pid = -1

    def sample(self, batch: Any, temperature: float, greedy: bool = False) -> Any:
        self.num_calls += 1
        if self.num_calls == self.kill_at:
            self.killed_pid = self.engine.worker_pids()[0]
            os.kill(self.killed_pid, signal.SIGKILL)
        return super().sample(batch, temperature, greedy)


def test_killed_worker_is_restarted_and_the_batch_is_complete_and_correct(reference: list[Trajectory]):
    with RolloutEngine(FACTORY, RolloutConfig(num_workers=2, num_envs_per_worker=3)) as engine:
        policy = KillingPolicy(engine, kill_at=2)
        trajectories, stats = engine.collect(policy, requests_batch(), temperature=1.0)
        assert policy.killed_pid not in engine.worker_pids()
    assert_same(trajectories, reference)  # nothing lost, duplicated or mixed up
    assert stats.num_worker_restarts == 1 and stats.extra["rollout/num_worker_crashes"] == 1
    # The killed worker held 3 episodes mid-flight; all were re-run from their initial states.
    assert stats.num_episode_retries == 3 == sum(t.num_restarts for t in trajectories)


def test_env_that_raises_once_is_rebuilt_and_its_episode_rerun(tmp_path: Path, reference: list[Trajectory]):
    factory = FaultyTabletopFactory(CONFIG, "raise", task_id=0, init_state_id=1, step=11,
                                    marker=str(tmp_path / "fired"))
    with RolloutEngine(factory, RolloutConfig(num_envs_per_worker=5)) as engine:
        trajectories, stats = engine.collect(HashPolicy(), requests_batch(), temperature=1.0)
    assert (tmp_path / "fired").exists()
    assert_same(trajectories, reference)
    assert stats.num_episode_retries == 1 and stats.num_worker_restarts == 0
    assert stats.extra["rollout/num_env_errors"] == 1
    assert stats.extra["rollout/num_discarded_env_steps"] == 8  # the fault hit in the second chunk
    assert sum(t.num_restarts for t in trajectories) == 1


@pytest.mark.parametrize("mode", ["hang", "exit"])
def test_hung_or_dying_worker_is_replaced(tmp_path: Path, reference: list[Trajectory], mode: str):
    factory = FaultyTabletopFactory(CONFIG, mode, task_id=3, init_state_id=5, step=3,
                                    marker=str(tmp_path / "fired"))
    config = RolloutConfig(num_workers=1, num_envs_per_worker=4, step_timeout_s=0.25)  # 2 s per chunk
    finished: list[Trajectory] = []
    with RolloutEngine(factory, config) as engine:
        trajectories, stats = engine.collect(HashPolicy(), requests_batch(), temperature=1.0,
                                             on_episode=finished.append)
    assert_same(trajectories, reference)
    # Each episode is reported once, when its final run finishes (the faulted run is not), as the returned object.
    assert len(finished) == len(trajectories) and {id(t) for t in finished} == {id(t) for t in trajectories}
    assert stats.num_worker_restarts == 1
    counter = "rollout/num_worker_timeouts" if mode == "hang" else "rollout/num_worker_crashes"
    assert stats.extra[counter] == 1
    assert stats.num_episode_retries >= 1 and sum(t.num_restarts for t in trajectories) == stats.num_episode_retries


NUM_LIVE_ENVS = [0, 0]  # live now, most ever (in-process only)


@dataclass(frozen=True)
class CountingTabletopFactory:
    """Tabletop envs that count how many are constructed and not yet closed."""

    config: TabletopConfig

    def task_specs(self) -> list[Any]:
        return TabletopEnvFactory(self.config).task_specs()

    def make(self, task_id: int) -> CountedEnv:
        NUM_LIVE_ENVS[0] += 1
        NUM_LIVE_ENVS[1] = max(NUM_LIVE_ENVS)
        return CountedEnv(TabletopEnv(self.config, task_id))


class CountedEnv(PlainEnv):
    def close(self) -> None:
        NUM_LIVE_ENVS[0] -= 1


def test_max_envs_per_worker_closes_least_recently_used_envs(reference: list[Trajectory]):
    NUM_LIVE_ENVS[:] = [0, 0]
    config = RolloutConfig(num_envs_per_worker=2, max_envs_per_worker=3)
    with RolloutEngine(CountingTabletopFactory(CONFIG), config) as engine:
        trajectories, stats = engine.collect(HashPolicy(), requests_batch(), temperature=1.0)
    assert NUM_LIVE_ENVS == [0, 3]  # never more than 3 at once (4 tasks), all closed by close()
    assert stats.extra["rollout/num_env_constructions"] > 3
    assert_same(trajectories, reference)


def test_gives_up_after_max_retries_with_a_clear_error():
    factory = FaultyTabletopFactory(CONFIG, "raise", task_id=2, init_state_id=5, step=2)  # fires every time
    with RolloutEngine(factory, RolloutConfig(max_episode_retries=2)) as engine:
        with pytest.raises(RolloutError, match=r"task_id=2 init_state_id=5 .*faulted 3 times .*max_episode_retries=2"):
            engine.collect(HashPolicy(), requests_batch(), temperature=1.0)
        # The engine stays usable after giving up.
        trajectories, _ = engine.collect(HashPolicy(), [EpisodeRequest(1, 0, 0, 0)], temperature=1.0)
    assert len(trajectories) == 1


def test_collect_rejects_bad_requests():
    with RolloutEngine(FACTORY, RolloutConfig()) as engine:
        assert engine.collect(HashPolicy(), [], 1.0)[0] == []
        with pytest.raises(ValueError, match="task_id"):
            engine.collect(HashPolicy(), [EpisodeRequest(9, 0, 0, 0)], 1.0)
        with pytest.raises(ValueError, match="init_state_id"):
            engine.collect(HashPolicy(), [EpisodeRequest(0, 10, 0, 0)], 1.0)
        with pytest.raises(ValueError, match="not unique"):
            engine.collect(HashPolicy(), [EpisodeRequest(0, 0, 0, 0), EpisodeRequest(0, 1, 0, 0)], 1.0)
        with pytest.raises(ValueError, match=r"policy\.sample returned"):  # chunk size mismatch
            short = HashPolicy(chunk_size=4)
            liar = SimpleNamespace(chunk_size=8, action_dim=ACTION_DIM, num_bins=NUM_BINS, sample=short.sample,
                                   token_log_probs=short.token_log_probs)
            engine.collect(liar, [EpisodeRequest(0, 0, 0, 0)], 1.0)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="after close"):
        engine.collect(HashPolicy(), [EpisodeRequest(0, 0, 0, 0)], 1.0)


def test_policy_with_other_action_dimension_is_refused_before_any_env_step():
    wrong = HashPolicy()
    wrong.action_dim = ACTION_DIM + 1  # type: ignore[misc]
    message = rf"policy.action_dim={ACTION_DIM + 1}, but envs take {ACTION_DIM}-D"
    with RolloutEngine(FACTORY, RolloutConfig()) as engine, pytest.raises(ValueError, match=message):
        engine.collect(wrong, [EpisodeRequest(0, 0, 0, 0)], 1.0)


@dataclass(frozen=True)
class BlindTabletopFactory(PlainTabletopFactory):
    """Tabletop envs that do not return the policy image: at reset ("reset") or when asked to render ("step")."""

    where: str

    def make(self, task_id: int) -> BlindEnv:
        return BlindEnv(TabletopEnv(self.config, task_id), self.where)


class BlindEnv(PlainEnv):
    def __init__(self, env: TabletopEnv, where: str) -> None:
        super().__init__(env)
        self.where = where

    def reset(self, init_state_id: int) -> Observation:
        obs = self.env.reset(init_state_id)
        return replace(obs, image=None) if self.where == "reset" else obs

    def step(self, action: np.ndarray, render_policy: bool, render_embed: bool) -> Observation:
        obs = self.env.step(action, render_policy, render_embed)
        return replace(obs, image=None) if self.where == "step" else obs


@pytest.mark.parametrize(("where", "message"), [("reset", "reset must render both the policy image"),
                                                 ("step", r"step\(render_policy=True\) returned no policy image")])
def test_env_that_returns_no_policy_image_is_a_fault_naming_the_task(where: str, message: str):
    # The policy would otherwise see a stale or missing image; the engine treats it as an env fault, retries,
    # and then gives up with the cause in the error.
    engine = RolloutEngine(BlindTabletopFactory(CONFIG, where), RolloutConfig(max_episode_retries=1))
    with engine, pytest.raises(RolloutError, match=rf"faulted 2 times(.|\n)*task 2: {message}"):
        engine.collect(HashPolicy(), [EpisodeRequest(2, 0, 0, 0)], 1.0)


def test_gives_up_after_max_worker_restarts_with_a_clear_error():
    # A worker that dies every time (a native crash in the simulator, say) is restarted at most
    # max_worker_restarts times per collect, however many retries each episode still has.
    factory = FaultyTabletopFactory(CONFIG, "exit", task_id=2, init_state_id=5, step=2)  # fires every time
    config = RolloutConfig(num_workers=1, max_worker_restarts=1, max_episode_retries=10)
    message = r"2 worker restarts in one collect exceed rollout.max_worker_restarts=1"
    with RolloutEngine(factory, config) as engine, pytest.raises(RolloutError, match=message):
        engine.collect(HashPolicy(), [EpisodeRequest(2, 5, 0, 0)], 1.0)


def test_rollout_config_rejects_invalid_values_naming_the_field():
    with pytest.raises(ConfigError, match=r"rollout\.num_workers"):
        RolloutConfig(num_workers=-1)
    with pytest.raises(ConfigError, match=r"rollout\.embed_stride"):
        RolloutConfig(embed_stride=0)
    with pytest.raises(ConfigError, match=r"rollout\.start_method"):
        RolloutConfig(start_method="thread")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"rollout\.max_envs_per_worker"):
        RolloutConfig(num_envs_per_worker=8, max_envs_per_worker=4)
