"""Scripted recording: strided frames keep every stage, and a folder recording resumes where it stopped."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from srpo.envs.tabletop import TabletopEnvFactory, tabletop_expert_action
from srpo.recording import record_labelled_set, run_scripted_episode, tabletop_probe


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
