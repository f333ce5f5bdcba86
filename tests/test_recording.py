"""Scripted recording: strided frames keep every stage, and a folder recording resumes where it stopped."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from srpo.envs.tabletop import TabletopEnvFactory, tabletop_expert_action
from srpo.recording import (
    libero_failure_policy,
    record_labelled_set,
    run_scripted_episode,
    scripted_expert,
    tabletop_failure_policy,
    tabletop_probe,
)


def _expert(env, step, noise, rng):  # type: ignore[no-untyped-def]
    del step
    return tabletop_expert_action(env, noise, rng)


def test_strided_frames_keep_the_furthest_stage_and_the_last_frame() -> None:
    factory = TabletopEnvFactory()
    env = factory.make(0)
    rng = np.random.default_rng(0)
    full = run_scripted_episode(env, 3, lambda e, s: _expert(e, s, 0.0, rng), 64, tabletop_probe)
    strided = run_scripted_episode(env, 3, lambda e, s: _expert(e, s, 0.0, rng), 64, tabletop_probe, frame_stride=4)
    assert full.success and strided.success
    num_steps = full.frames.shape[0] - 1
    # Reset frame, one per 4 steps, and the final (success) frame when the episode ends between two.
    assert strided.frames.shape[0] == 1 + num_steps // 4 + (num_steps % 4 != 0)
    np.testing.assert_array_equal(strided.frames[-1], full.frames[-1])
    np.testing.assert_array_equal(strided.frames[1], full.frames[4])
    assert full.frame_stages is not None and strided.frame_stages is not None
    # Frame k of the strided episode carries the furthest stage of steps 4(k−1)+1 .. 4k.
    for k in range(1, strided.frames.shape[0] - 1):
        assert strided.frame_stages[k] == full.frame_stages[4 * (k - 1) + 1 : 4 * k + 1].max()
    assert set(strided.frame_stages.tolist()) == set(full.frame_stages.tolist())


def test_folder_recording_resumes(tmp_path: Path) -> None:
    factory = TabletopEnvFactory()
    first = record_labelled_set(factory, _expert, [0], 1, 1, seed=0, probe=tabletop_probe, directory=tmp_path)
    assert first.success.tolist() == [True, False]
    # Asking for more keeps what is there and records only the missing ones.
    second = record_labelled_set(factory, _expert, [0], 2, 2, seed=0, probe=tabletop_probe, directory=tmp_path)
    assert second.success.tolist() == [True, False, True, False]
    np.testing.assert_array_equal(second.videos[0], first.videos[0])
    assert second.stages is not None and second.stages[0] == 4
    # Asking for what is already there records nothing.
    third = record_labelled_set(factory, _expert, [0], 2, 2, seed=0, probe=tabletop_probe, directory=tmp_path)
    assert len(third.videos) == 4


class _Wrapped:
    """A tabletop env without `render` (and, with blind=True, without the world-model camera at reset)."""

    def __init__(self, env, blind: bool = False) -> None:  # type: ignore[no-untyped-def]
        self.env, self.spec, self.blind = env, env.spec, blind

    def reset(self, init_state_id: int):  # type: ignore[no-untyped-def]
        obs = self.env.reset(init_state_id)
        return replace(obs, embed_frame=None) if self.blind else obs

    def step(self, action, render_policy, render_embed):  # type: ignore[no-untyped-def]
        return self.env.step(action, render_policy, render_embed)

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        if name == "render":
            raise AttributeError(name)
        return getattr(self.env, name)


def test_recorder_refuses_envs_it_cannot_film() -> None:
    env = TabletopEnvFactory().make(0)
    rng = np.random.default_rng(0)
    with pytest.raises(RuntimeError, match=r"env\.reset returned no embed_frame"):
        run_scripted_episode(_Wrapped(env, blind=True), 3, lambda e, s: _expert(e, s, 0.0, rng), 8)
    with pytest.raises(ValueError, match="frame_stride=4 needs an env with render"):
        run_scripted_episode(_Wrapped(env), 3, lambda e, s: _expert(e, s, 0.0, rng), 8, frame_stride=4)
    assert run_scripted_episode(_Wrapped(env), 3, lambda e, s: _expert(e, s, 0.0, rng), 8).frames.shape[0] == 9


def test_unknown_failure_kinds_and_env_kinds_are_refused(tmp_path: Path) -> None:
    factory = TabletopEnvFactory()
    with pytest.raises(ValueError, match="failure kind 'drop' needs a failure_policy"):
        record_labelled_set(factory, _expert, [0], 0, 1, seed=0, failure_kinds=["drop"])
    env = factory.make(0)
    with pytest.raises(ValueError, match="tabletop failure kind 'bogus': choose one of"):
        tabletop_failure_policy("bogus", env, 0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="LIBERO failure kind 'bogus': choose one of"):
        libero_failure_policy("bogus", env, 0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="env kind 'robomimic' has no scripted expert"):
        scripted_expert("robomimic")


def test_recording_into_a_folder_of_another_layout_is_refused(tmp_path: Path) -> None:
    # Appending rows of other columns would leave a labels.csv no reader can parse.
    (tmp_path / "labels.csv").write_text("path,success\ntraj_00000.npz,1\n")
    with pytest.raises(ValueError, match=r"columns \['path', 'success'\] differ from .*record into an empty folder"):
        record_labelled_set(TabletopEnvFactory(), _expert, [0], 1, 0, seed=0, directory=tmp_path)
    assert (tmp_path / "labels.csv").read_text() == "path,success\ntraj_00000.npz,1\n"
