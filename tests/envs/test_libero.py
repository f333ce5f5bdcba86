"""LIBERO env, factory, scripted controller and config.

Config and import tests run by default; tests that build a simulator are opt-in (`pytest -m libero`, needs
`pip install 'srpo[libero]'` and a headless GL: MUJOCO_GL=egl or osmesa). Each LIBERO env takes ~5 s to build,
so the env is shared by the tests of this module.
"""

from __future__ import annotations

import pickle
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from srpo.config.base import ConfigError
from srpo.config.libero import LiberoConfig
from srpo.envs.libero import LiberoEnv, LiberoEnvFactory, quat_to_axis_angle

SIZE = 96
MOVE_DOWN = np.array([0.0, 0.0, -1.0, 0.0, 0.0, 0.0, -1.0])


# ---------------------------------------------------------------------------------------------- config (default)


def test_default_split_is_disjoint_and_covers_train_then_eval() -> None:
    config = LiberoConfig()
    train, evaluation = config.init_state_ids("train"), config.init_state_ids("eval")
    assert train == list(range(40)) and evaluation == list(range(40, 50))
    assert not set(train) & set(evaluation)


def test_overlapping_split_needs_the_explicit_flag() -> None:
    with pytest.raises(ConfigError, match=r"libero\.num_train_init_states"):
        LiberoConfig(num_train_init_states=50)
    config = LiberoConfig(num_train_init_states=50, train_on_eval_states=True)
    assert set(config.init_state_ids("eval")) <= set(config.init_state_ids("train"))


def test_horizons_per_suite_and_official() -> None:
    expected = {"libero_spatial": 220, "libero_object": 280, "libero_goal": 300, "libero_10": 520}
    for suite, steps in expected.items():
        assert LiberoConfig(suite=suite).resolved_max_steps == steps  # type: ignore[arg-type]
        assert LiberoConfig(suite=suite, horizon="official").resolved_max_steps == 512  # type: ignore[arg-type]
    assert LiberoConfig(max_steps=7, horizon="official").resolved_max_steps == 7


def test_config_rejects_bad_values_naming_the_field() -> None:
    with pytest.raises(ConfigError, match=r"libero\.suite"):
        LiberoConfig(suite="libero_100")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"libero\.task_ids"):
        LiberoConfig(task_ids=(10,))
    assert LiberoConfig(suite="libero_90", task_ids=(89,)).resolved_task_ids == (89,)
    with pytest.raises(ConfigError, match=r"libero\.render_backend"):
        LiberoConfig(render_backend="glfw")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"libero\.render_quality"):
        LiberoConfig(render_quality="medium")  # type: ignore[arg-type]


def test_quat_to_axis_angle_matches_a_hand_computed_rotation() -> None:
    angle = 0.7
    axis = np.array([0.0, 0.6, 0.8])
    quat = np.concatenate([axis * np.sin(angle / 2), [np.cos(angle / 2)]])  # x y z w
    np.testing.assert_allclose(quat_to_axis_angle(quat), axis * angle, atol=1e-9)
    np.testing.assert_allclose(quat_to_axis_angle(np.array([0.0, 0.0, 0.0, 1.0])), np.zeros(3))


def test_missing_libero_tells_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    # None in sys.modules makes `import libero.libero` raise ImportError, as if LIBERO were not installed.
    monkeypatch.setitem(sys.modules, "libero", None)
    monkeypatch.setitem(sys.modules, "libero.libero", None)
    factory = LiberoEnvFactory(LiberoConfig(task_ids=(0,)))
    with pytest.raises(ImportError, match=r"pip install 'srpo\[libero\]'"):
        factory.task_specs()


def test_factory_pickles_to_an_equal_factory() -> None:
    factory = LiberoEnvFactory(LiberoConfig(suite="libero_object", task_ids=(2, 5), image_size=SIZE))
    assert pickle.loads(pickle.dumps(factory)) == factory


# ------------------------------------------------------------------------------------------------ LIBERO (opt-in)


@pytest.fixture(scope="module")
def factory() -> LiberoEnvFactory:
    return LiberoEnvFactory(
        LiberoConfig(suite="libero_spatial", task_ids=(0, 1), image_size=SIZE, embed_image_size=SIZE + 32,
                     use_wrist_camera=True)
    )


@pytest.fixture(scope="module")
def env(factory: LiberoEnvFactory) -> Iterator[LiberoEnv]:
    built = factory.make(0)
    yield built
    built.close()


def _mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


@pytest.mark.libero
def test_task_specs_have_language_horizon_and_init_states(factory: LiberoEnvFactory) -> None:
    specs = factory.task_specs()
    assert [s.task_id for s in specs] == [0, 1]
    assert specs[0].instruction == "pick up the black bowl between the plate and the ramekin and place it on the plate"
    assert all(s.max_steps == 220 and s.num_init_states == 50 and s.suite == "libero_spatial" for s in specs)


@pytest.mark.libero
def test_reset_renders_every_image_upright_with_proprio(env: LiberoEnv) -> None:
    obs = env.reset(0)
    assert obs.image is not None and obs.image.shape == (SIZE, SIZE, 3) and obs.image.dtype == np.uint8
    assert obs.wrist_image is not None and obs.wrist_image.shape == (SIZE, SIZE, 3)
    assert obs.embed_frame is not None and obs.embed_frame.shape == (SIZE + 32, SIZE + 32, 3)
    assert obs.state.shape == (8,) and obs.state.dtype == np.float32
    assert not obs.success
    # Upright agentview: the wooden table fills the bottom of the frame (reddish-brown: R well above B); the
    # grey floor and wall behind the robot are at the top. Rendered as-is (OpenGL origin) it is the other way
    # round.
    bottom, top = obs.image[-SIZE // 4:].reshape(-1, 3).mean(0), obs.image[: SIZE // 8].reshape(-1, 3).mean(0)
    assert bottom[0] - bottom[2] > 25, bottom
    assert abs(top[0] - top[2]) < 15, top


@pytest.mark.libero
def test_step_renders_only_what_is_asked(env: LiberoEnv) -> None:
    env.reset(0)
    obs = env.step(MOVE_DOWN, render_policy=False, render_embed=False)
    assert obs.image is None and obs.embed_frame is None and obs.wrist_image is None
    assert obs.state.shape == (8,)
    obs = env.step(MOVE_DOWN, render_policy=False, render_embed=True)
    assert obs.image is None and obs.wrist_image is None and obs.embed_frame is not None
    obs = env.step(MOVE_DOWN, render_policy=True, render_embed=False)
    assert obs.image is not None and obs.wrist_image is not None and obs.embed_frame is None
    # Observing without stepping (the rollout engine's RenderableEnv capability) shows the same state.
    still = env.render(render_policy=True, render_embed=True)
    assert still.image is not None and still.embed_frame is not None
    np.testing.assert_array_equal(still.image, obs.image)
    np.testing.assert_array_equal(still.state, obs.state)
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(6), render_policy=False, render_embed=False)
    with pytest.raises(ValueError, match="finite"):
        env.step(np.full(7, np.nan), render_policy=False, render_embed=False)


@pytest.mark.libero
def test_fast_render_quality_shows_the_same_scene_without_the_costly_options(env: LiberoEnv) -> None:
    import mujoco

    fast = LiberoEnv(replace(env.config, render_quality="fast"), 0)
    try:
        full_obs, fast_obs = env.reset(3), fast.reset(3)
        context = fast.robosuite_env.sim._render_context_offscreen
        assert context.scn.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] == 0
        assert context.model.vis.quality.offsamples == 0
        assert (context.con.offWidth, context.con.offHeight) == (SIZE + 32, SIZE + 32)  # the largest image
        assert fast_obs.image is not None and full_obs.image is not None and fast_obs.embed_frame is not None
        assert fast_obs.image.shape == full_obs.image.shape and fast_obs.embed_frame.shape == (SIZE + 32,) * 2 + (3,)
        # Same scene, state and layout: the images differ only at edges and in the floor's mirror image. (The
        # states agree to within settling noise: a soft reset of an env that has been stepped before does not
        # reproduce a fresh env's settle steps bit for bit.)
        np.testing.assert_allclose(fast_obs.state, full_obs.state, atol=1e-3)
        assert 0.0 < _mean_abs_diff(fast_obs.image, full_obs.image) < 6.0
        # The settings survive a new episode (soft reset keeps the render context).
        again = fast.reset(4)
        assert context is fast.robosuite_env.sim._render_context_offscreen
        assert again.image is not None and context.model.vis.quality.offsamples == 0
    finally:
        fast.close()


@pytest.mark.libero
def test_lean_render_quality_draws_simplified_meshes_and_leaves_physics_alone(env: LiberoEnv) -> None:
    envs = {q: LiberoEnv(replace(env.config, render_quality=q), 0) for q in ("fast", "lean")}
    try:
        model = envs["lean"].robosuite_env.sim.model._model
        faces_before = model.mesh_face.copy()
        obs = {q: e.reset(3) for q, e in envs.items()}
        for _ in range(10):
            obs = {q: e.step(MOVE_DOWN, render_policy=True, render_embed=False) for q, e in envs.items()}
        # The render context was rebuilt with simplified meshes; the model the physics runs on is unchanged, and
        # both envs moved the same way.
        np.testing.assert_array_equal(model.mesh_face, faces_before)
        np.testing.assert_array_equal(obs["lean"].state, obs["fast"].state)
        lean, fast = obs["lean"].image, obs["fast"].image
        assert lean is not None and fast is not None and lean.shape == fast.shape
        # Same scene: small differences at the silhouettes and shading of the simplified meshes only.
        assert 0.0 < _mean_abs_diff(lean, fast) < 3.0
    finally:
        for e in envs.values():
            e.close()


@pytest.mark.libero
def test_frames_follow_the_state_across_resets(env: LiberoEnv) -> None:
    first = env.reset(0)
    assert first.image is not None
    z_start = float(first.state[2])
    for _ in range(15):
        moved = env.step(MOVE_DOWN, render_policy=True, render_embed=False)
    assert moved.image is not None
    assert moved.state[2] < z_start - 0.05, "the arm should have moved down"
    assert _mean_abs_diff(moved.image, first.image) > 1.0
    # Back to the same initial state: the frame must show the reset scene again, not the moved arm (a stale
    # render context would keep returning old frames).
    again = env.reset(0)
    assert again.image is not None
    # Same scene again (only the very first episode after construction differs, by ~0.02 grey levels); a
    # stale frame would equal `moved`.
    assert _mean_abs_diff(again.image, first.image) < 0.1
    np.testing.assert_allclose(again.state, first.state, atol=1e-3)
    other = env.reset(7)
    assert other.image is not None and _mean_abs_diff(other.image, first.image) > 0.5


@pytest.mark.libero
def test_fixture_placement_is_a_function_of_the_init_state(env: LiberoEnv) -> None:
    model = env.robosuite_env.sim.model._model
    env.reset(3)
    placed = model.body_pos.copy()
    env.reset(4)
    env.reset(3)
    np.testing.assert_array_equal(model.body_pos, placed)
    # Without the seeding, LIBERO re-samples fixture poses (model.body_pos) on every reset.
    seeded_config = env.config
    env.config = replace(seeded_config, fixed_fixture_placement=False)
    try:
        env.reset(3)
        assert not np.array_equal(model.body_pos, placed)
    finally:
        env.config = seeded_config


@pytest.mark.libero
def test_an_episode_starts_the_same_whatever_the_env_ran_before(factory: LiberoEnvFactory) -> None:
    """robosuite's soft reset keeps the gripper command of the last episode; reset must clear it, so that an init
    state gives the same settled state and frame on a fresh env and on one that just ran a closing grasp."""
    fresh, used = factory.make(0), factory.make(0)
    try:
        used.reset(5)
        close = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0])
        for _ in range(20):
            used.step(close, render_policy=False, render_embed=False)
        first, again = fresh.reset(5), used.reset(5)
        np.testing.assert_array_equal(used.robosuite_env.sim.get_state().flatten(),
                                      fresh.robosuite_env.sim.get_state().flatten())
        np.testing.assert_array_equal(again.image, first.image)
    finally:
        fresh.close()
        used.close()


@pytest.mark.libero
def test_two_envs_in_one_process_render_their_own_scene(factory: LiberoEnvFactory, env: LiberoEnv) -> None:
    before = env.reset(0).image
    second = factory.make(1)
    try:
        own = second.reset(0).image
        # Building the second env made its GL context current; rendering the first env must switch back.
        after = env.reset(0).image
        assert before is not None and own is not None and after is not None
        assert _mean_abs_diff(after, before) < 3.0
        assert _mean_abs_diff(own, after) > 3.0
        np.testing.assert_array_equal(second.render_camera("agentview", SIZE), own)
    finally:
        second.close()
    with pytest.raises(RuntimeError, match="closed"):
        second.reset(0)


@pytest.mark.libero
def test_scripted_controller_reaches_the_goal_and_env_reports_success(env: LiberoEnv) -> None:
    from srpo.envs.libero_scripted import run_episode

    episode = run_episode(env, init_state_id=0)
    assert episode.success
    assert episode.num_steps < env.spec.max_steps
    assert env.check_success()


@pytest.mark.libero
def test_recorded_demo_round_trips_through_hdf5(env: LiberoEnv, tmp_path: Path) -> None:
    from srpo.demos import read_demos
    from srpo.envs.libero_scripted import record_demos

    path = tmp_path / "demo.hdf5"
    demos = record_demos(env, [1], path)
    assert len(demos) == 1 and demos[0].success
    loaded = read_demos(path)
    assert loaded[0].instruction == env.spec.instruction and loaded[0].suite == "libero_spatial"
    np.testing.assert_array_equal(loaded[0].images, demos[0].images)
    np.testing.assert_allclose(loaded[0].actions, demos[0].actions)
    # The first recorded image is the scene right after the settle steps.
    reset_image = env.reset(1).image
    assert reset_image is not None
    assert _mean_abs_diff(demos[0].images[0], reset_image) < 0.1
    assert _mean_abs_diff(demos[0].images[0], demos[0].images[-1]) > 1.0
