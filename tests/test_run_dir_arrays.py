"""The per-step and per-evaluation arrays under a run's steps/ folder: written, read back keyed by step, and stray
files in the folder ignored rather than crashing `srpo report` or `run_diagnostics`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from srpo.run_dir import STEPS_DIR, read_eval_arrays, read_step_arrays, write_eval_arrays, write_step_arrays
from srpo.types import Trajectory


def traj(task_id: int, init_state_id: int, success: bool, finish_step: int, group_id: int = 0) -> Trajectory:
    return Trajectory(
        task_id=task_id, instruction="pick", init_state_id=init_state_id, group_id=group_id, rollout_id=0,
        frames=np.zeros((1, 4, 4, 3), np.uint8), policy_images=np.zeros((1, 4, 4, 3), np.uint8),
        policy_states=np.zeros((1, 0), np.float32), action_tokens=np.zeros((1, 7), np.int64),
        log_probs=np.zeros((1, 7), np.float32), token_mask=np.ones((1, 7), bool),
        actions=np.zeros((finish_step, 7), np.float32), success=success, finish_step=finish_step,
    )


def test_eval_arrays_round_trip_by_step(tmp_path: Path) -> None:
    write_eval_arrays(tmp_path, 0, [traj(1, 40, False, 220), traj(2, 41, True, 97)])
    write_eval_arrays(tmp_path, 10, [traj(1, 40, True, 120), traj(2, 41, True, 90)])
    evals = read_eval_arrays(tmp_path)
    assert sorted(evals) == [0, 10]
    np.testing.assert_array_equal(evals[0]["task_ids"], [1, 2])
    np.testing.assert_array_equal(evals[0]["init_state_ids"], [40, 41])
    np.testing.assert_array_equal(evals[0]["success"], [False, True])
    np.testing.assert_array_equal(evals[10]["finish_step"], [120, 90])
    assert read_step_arrays(tmp_path) == {}  # evaluations are not training steps


def test_step_arrays_round_trip_and_stray_files_skipped(tmp_path: Path) -> None:
    trajs = [traj(0, 3, True, 50, group_id=0), traj(0, 3, False, 220, group_id=0)]
    write_step_arrays(tmp_path, 7, trajs, rewards=np.array([1.0, 0.4]), advantages=np.array([0.7, -0.7]),
                      distance=np.array([np.nan, 1.5]))
    np.savez(tmp_path / STEPS_DIR / "step_backup.npz", rewards=np.zeros(2))  # a user's copy: not a step
    steps = read_step_arrays(tmp_path)
    assert list(steps) == [7]
    np.testing.assert_allclose(steps[7]["rewards"], [1.0, 0.4])
    np.testing.assert_allclose(steps[7]["advantages"], [0.7, -0.7])
    np.testing.assert_array_equal(steps[7]["success"], [True, False])
    assert np.isnan(steps[7]["distance"][0]) and steps[7]["distance"][1] == 1.5
    assert read_eval_arrays(tmp_path) == {}


def test_no_steps_folder_reads_empty(tmp_path: Path) -> None:
    assert read_step_arrays(tmp_path) == {} and read_eval_arrays(tmp_path) == {}
