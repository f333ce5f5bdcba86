"""The built-in tabletop env: determinism, rendering, stages, the scripted expert and demo recording."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from srpo.config.base import ConfigError
from srpo.config.env import TabletopConfig
from srpo.envs.tabletop import (
    _BLOCK_RGB,
    OBJECT_STATE_DIM,
    STAGE_CARRY,
    STAGE_GRASP,
    STAGE_NONE,
    STAGE_PLACE,
    STAGE_REACH,
    STATE_DIM,
    TabletopEnv,
    TabletopEnvFactory,
    record_tabletop_demos,
    tabletop_expert_action,
)

CONFIG = TabletopConfig(num_init_states=50, max_steps=64)


def run_expert(env: TabletopEnv, init_state_id: int, noise_std: float = 0.0, seed: int = 0) -> tuple[bool, int]:
    rng = np.random.default_rng(seed)
    env.reset(init_state_id)
    for step in range(1, env.spec.max_steps + 1):
        obs = env.step(tabletop_expert_action(env, noise_std, rng), False, False)
        if obs.success:
            return True, step
    return False, env.spec.max_steps


def block_centroid(image: np.ndarray, block: int) -> np.ndarray:
    """(x, y) pixel centroid of a block's colour in an image."""
    rows, cols = np.nonzero((image == _BLOCK_RGB[block]).all(axis=-1))
    assert len(rows) > 0, "block not visible"
    return np.array([cols.mean() + 0.5, rows.mean() + 0.5])


def test_task_specs_describe_at_least_four_distinct_tasks():
    specs = TabletopEnvFactory(CONFIG).task_specs()
    assert len(specs) >= 4
    assert [s.task_id for s in specs] == list(range(len(specs)))
    assert len({s.instruction for s in specs}) == len(specs)
    assert all(s.suite == "tabletop" and s.max_steps == 64 and s.num_init_states == 50 for s in specs)
    assert specs[0].instruction == "put the red block on the yellow plate"
    assert len(TabletopEnvFactory(TabletopConfig(num_tasks=4)).task_specs()) == 4


def test_factory_is_picklable_and_builds_the_requested_task():
    factory = pickle.loads(pickle.dumps(TabletopEnvFactory(CONFIG)))
    env = factory.make(3)
    assert env.spec == factory.task_specs()[3]
    with pytest.raises(IndexError):
        factory.make(CONFIG.num_tasks)


def test_reset_is_deterministic_and_init_states_differ():
    env_a, env_b = TabletopEnvFactory(CONFIG).make(1), TabletopEnvFactory(CONFIG).make(1)
    first, again = env_a.reset(7), env_b.reset(7)
    assert first.image is not None and again.image is not None
    np.testing.assert_array_equal(first.image, again.image)
    np.testing.assert_array_equal(first.state, again.state)
    other = env_a.reset(8)
    assert not np.array_equal(other.image, first.image)
    reseeded = TabletopEnvFactory(TabletopConfig(seed=1)).make(1).reset(7)
    assert not np.array_equal(reseeded.image, first.image)
    with pytest.raises(IndexError):
        env_a.reset(CONFIG.num_init_states)


def test_episodes_are_deterministic_given_init_state_and_actions():
    actions = np.random.default_rng(0).uniform(-1, 1, size=(30, 7))
    runs = []
    for _ in range(2):
        env = TabletopEnvFactory(CONFIG).make(2)
        env.reset(4)
        runs.append(np.stack([env.step(a, True, False).image for a in actions]))  # type: ignore[misc]
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0][0], runs[0][-1])  # the scene did change


def test_step_renders_only_what_is_asked_at_the_configured_sizes():
    env = TabletopEnvFactory(TabletopConfig(image_size=48, embed_image_size=32)).make(0)
    obs = env.reset(0)
    assert obs.image is not None and obs.image.shape == (48, 48, 3) and obs.image.dtype == np.uint8
    assert obs.embed_frame is not None and obs.embed_frame.shape == (32, 32, 3)
    assert obs.state.shape == (4,) and obs.state.dtype == np.float32
    a = np.zeros(7)
    assert env.step(a, False, False).image is None and env.step(a, False, False).embed_frame is None
    only_policy = env.step(a, True, False)
    assert only_policy.image is not None and only_policy.embed_frame is None
    only_embed = env.step(a, False, True)
    assert only_embed.image is None and only_embed.embed_frame is not None


def test_policy_image_and_embed_frame_are_separate_arrays():
    env = TabletopEnvFactory(CONFIG).make(0)
    obs = env.reset(0)
    assert obs.image is not None and obs.embed_frame is not None
    np.testing.assert_array_equal(obs.image, obs.embed_frame)
    assert not np.shares_memory(obs.image, obs.embed_frame)


def test_unused_action_dims_are_ignored_and_actions_are_clipped():
    rng = np.random.default_rng(1)
    base = rng.uniform(-1, 1, size=(20, 7))
    noisy = base.copy()
    noisy[:, 3:6] = rng.uniform(-1, 1, size=(20, 3))
    scaled = base * 5.0  # beyond [-1, 1]: clipped to the same full-speed moves as sign(base)
    clipped = np.clip(scaled, -1, 1)
    states = []
    for actions in (base, noisy, scaled, clipped):
        env = TabletopEnvFactory(CONFIG).make(0)
        env.reset(0)
        states.append(np.stack([env.step(a, False, False).state for a in actions]))
    np.testing.assert_array_equal(states[0], states[1])
    np.testing.assert_array_equal(states[2], states[3])
    with pytest.raises(ValueError):
        env.step(np.full(7, np.nan), False, False)


def test_grasp_needs_a_low_gripper_over_the_block_and_release_drops_it():
    env = TabletopEnvFactory(CONFIG).make(0)
    env.reset(0)
    block = env.block_xy[env.target_block]
    # Move above the block but stay high, then close: nothing is grasped.
    for _ in range(40):
        delta = (block - env.gripper_xyz[:2]) / CONFIG.action_scale
        env.step(np.r_[np.clip(delta, -1, 1), 0.0, 0, 0, 0, -1.0], False, False)
    env.step(np.r_[0, 0, 0, 0, 0, 0, 1.0], False, False)
    assert env.held_block is None
    # Open, go low, close: grasped; carry it and open: it stays where it was dropped.
    env.step(np.r_[0, 0, 0, 0, 0, 0, -1.0], False, False)
    for _ in range(25):
        env.step(np.r_[0, 0, -1.0, 0, 0, 0, -1.0], False, False)
    env.step(np.r_[0, 0, 0, 0, 0, 0, 1.0], False, False)
    assert env.held_block == env.target_block
    for _ in range(3):
        env.step(np.r_[1.0, 0, 0, 0, 0, 0, 1.0], False, False)
    dropped = env.gripper_xyz[:2]
    env.step(np.r_[0, 0, 0, 0, 0, 0, -1.0], False, False)
    env.step(np.r_[-1.0, -1.0, 0, 0, 0, 0, -1.0], False, False)
    assert env.held_block is None
    np.testing.assert_allclose(env.block_xy[env.target_block], dropped)


@pytest.mark.parametrize("task_id", range(CONFIG.num_tasks))
def test_expert_solves_every_task(task_id: int):
    env = TabletopEnvFactory(CONFIG).make(task_id)
    results = [run_expert(env, i) for i in range(CONFIG.num_init_states)]
    success_rate = np.mean([ok for ok, _ in results])
    assert success_rate >= 0.95
    assert max(steps for ok, steps in results if ok) <= CONFIG.max_steps - 8  # margin below the horizon


def test_noisy_expert_still_succeeds_and_varies():
    env = TabletopEnvFactory(CONFIG).make(4)
    outcomes = [run_expert(env, i, noise_std=0.3, seed=i) for i in range(20)]
    assert np.mean([ok for ok, _ in outcomes]) >= 0.9
    clean = [run_expert(env, i)[1] for i in range(20)]
    assert [steps for _, steps in outcomes] != clean


def test_random_policy_rarely_succeeds():
    rng = np.random.default_rng(0)
    factory = TabletopEnvFactory(CONFIG)
    num_success = 0
    for task_id in range(CONFIG.num_tasks):
        env = factory.make(task_id)
        for init_state_id in range(40):
            env.reset(init_state_id)
            for _ in range(CONFIG.max_steps):
                if env.step(rng.uniform(-1, 1, size=7), False, False).success:
                    num_success += 1
                    break
    assert num_success / (CONFIG.num_tasks * 40) <= 0.05


def test_stages_progress_in_order_and_show_in_frames():
    env = TabletopEnvFactory(CONFIG).make(5)
    obs = env.reset(3)
    initial_block = env.block_xy[env.target_block]
    stages, frames = [env.stage], [obs.embed_frame]
    for _ in range(CONFIG.max_steps):
        obs = env.step(tabletop_expert_action(env), False, True)
        stages.append(env.stage)
        frames.append(obs.embed_frame)
        if obs.success:
            break
    assert obs.success
    first_seen = [stages.index(s) for s in (STAGE_REACH, STAGE_GRASP, STAGE_CARRY, STAGE_PLACE)]
    assert stages[0] == STAGE_NONE and first_seen == sorted(first_seen)
    assert env.max_stage == STAGE_PLACE
    # Visible: the block's colour moves from its start to the plate's centre, and it is drawn larger while held.
    size = CONFIG.embed_image_size
    start, end = block_centroid(frames[0], env.target_block), block_centroid(frames[-1], env.target_block)
    np.testing.assert_allclose(start, initial_block * size, atol=1.0)
    plate_px = env.plate_xy[env.target_plate] * size
    assert np.linalg.norm(end - plate_px) < 0.1 * size < np.linalg.norm(start - plate_px)
    carried = frames[first_seen[2]]
    pixels = lambda f: int((f == _BLOCK_RGB[env.target_block]).all(axis=-1).sum())  # noqa: E731
    assert pixels(carried) > pixels(frames[0])


def test_partial_progress_without_success():
    env = TabletopEnvFactory(CONFIG).make(0)
    env.reset(2)
    for _ in range(CONFIG.max_steps):
        if env.stage >= STAGE_GRASP:
            break
        env.step(tabletop_expert_action(env), False, False)
    assert env.stage == STAGE_GRASP
    for _ in range(3):  # carry a little (the plate is >= 0.25 away), then stop the episode
        obs = env.step(tabletop_expert_action(env), False, False)
    assert not obs.success and env.max_stage == STAGE_GRASP


def test_record_demos_match_the_env_and_respect_the_init_state_pool():
    factory = TabletopEnvFactory(TabletopConfig(num_init_states=20))
    demos = record_tabletop_demos(factory, [1, 3], num_per_task=3, seed=0, init_state_ids=[4, 5, 6])
    assert [d.task_id for d in demos] == [1, 1, 1, 3, 3, 3]
    for demo in demos:
        assert demo.success and demo.suite == "tabletop"
        t = demo.actions.shape[0]
        assert demo.images.shape == (t, 64, 64, 3) and demo.states.shape == (t, 4)
        assert demo.actions.dtype == np.float32 and np.abs(demo.actions).max() <= 1.0
        env = factory.make(demo.task_id)
        starts = {i: env.reset(i).image for i in (4, 5, 6)}
        init_state_id = next(i for i, img in starts.items() if np.array_equal(img, demo.images[0]))
        # Replaying the demo's actions reproduces its images and ends in success.
        obs = env.reset(init_state_id)
        for image, action in zip(demo.images, demo.actions, strict=True):
            np.testing.assert_array_equal(obs.image, image)
            obs = env.step(action, True, False)
        assert obs.success
        assert demo.instruction == env.spec.instruction
    again = record_tabletop_demos(factory, [1, 3], num_per_task=3, seed=0, init_state_ids=[4, 5, 6])
    assert all(np.array_equal(a.actions, b.actions) for a, b in zip(demos, again, strict=True))


def test_random_prefix_demos_start_off_the_reset_states_and_still_succeed():
    factory = TabletopEnvFactory(TabletopConfig(num_init_states=20))
    demos = record_tabletop_demos(factory, [0, 2], num_per_task=8, seed=3, max_random_prefix_steps=20)
    resets = {t: [factory.make(t).reset(i).state for i in range(20)] for t in (0, 2)}
    off_reset = 0
    for demo in demos:
        assert demo.success  # the expert recovers from wherever the walk left it, wrong block in hand included
        off_reset += not any(np.allclose(demo.states[0], s) for s in resets[demo.task_id])
    assert len(demos) >= 14  # a walk that solves the task by chance is dropped; that is rare
    assert off_reset >= len(demos) // 2  # most walks move the gripper before the recording starts
    with pytest.raises(ValueError, match="max_random_prefix_steps"):
        record_tabletop_demos(factory, [0], 1, seed=0, max_random_prefix_steps=-1)


def test_object_state_appends_block_and_plate_centres():
    plain = TabletopEnvFactory(TabletopConfig()).make(1)
    env = TabletopEnvFactory(TabletopConfig(object_state=True)).make(1)
    obs, ref = env.reset(3), plain.reset(3)
    assert obs.state.shape == (STATE_DIM + OBJECT_STATE_DIM,) and obs.state.dtype == np.float32
    np.testing.assert_array_equal(obs.state[:STATE_DIM], ref.state)
    np.testing.assert_allclose(obs.state[STATE_DIM:], np.concatenate([env.block_xy.ravel(), env.plate_xy.ravel()]),
                               rtol=0, atol=1e-6)
    np.testing.assert_array_equal(obs.image, ref.image)
    while env.held_block is None:  # carry the task's block: its entry follows the gripper
        obs = env.step(tabletop_expert_action(env), True, False)
    obs = env.step(np.array([0.5, 0.5, 0, 0, 0, 0, 1.0]), True, False)
    held = env.held_block
    np.testing.assert_allclose(obs.state[STATE_DIM + 2 * held: STATE_DIM + 2 * held + 2], obs.state[:2], atol=1e-6)


def test_config_rejects_invalid_values_naming_the_field():
    with pytest.raises(ConfigError, match=r"tabletop\.num_tasks"):
        TabletopConfig(num_tasks=0)
    with pytest.raises(ConfigError, match=r"tabletop\.num_tasks"):
        TabletopConfig(num_tasks=7)
    with pytest.raises(ConfigError, match=r"tabletop\.image_size"):
        TabletopConfig(image_size=4)
    with pytest.raises(ConfigError, match=r"tabletop\.max_steps"):
        TabletopConfig(max_steps=0)


def test_misuse_of_the_env_and_the_demo_split_is_refused() -> None:
    from srpo.envs.tabletop import demo_layout_pool

    env = TabletopEnv(CONFIG, 0)
    with pytest.raises(RuntimeError, match="step called before reset"):
        env.step(np.zeros(7), False, False)
    env.reset(0)
    with pytest.raises(ValueError, match="pass rng when noise_std > 0"):
        tabletop_expert_action(env, 0.1)
    with pytest.raises(ValueError, match="num_eval_init_states=50 leaves no training initial states out of 50"):
        demo_layout_pool(CONFIG, 50)
