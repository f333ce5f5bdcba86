"""HDF5 demo files: round trip, the official layout and image orientation, on small synthetic data."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from srpo.demos import DemoExtras, demo_files, read_demo_files, read_demos, read_instruction, write_demos
from srpo.errors import InputFileError, MissingFileError
from srpo.types import Demo

INSTRUCTION = "pick up the black bowl next to the ramekin and place it on the plate"


def _demo(num_steps: int, seed: int, success: bool = True) -> Demo:
    rng = np.random.default_rng(seed)
    return Demo(
        images=rng.integers(0, 256, size=(num_steps, 8, 6, 3), dtype=np.uint8),
        states=rng.normal(size=(num_steps, 8)).astype(np.float32),
        actions=rng.uniform(-1, 1, size=(num_steps, 7)).astype(np.float32),
        instruction=INSTRUCTION,
        task_id=3,
        suite="libero_spatial",
        success=success,
    )


def test_round_trip_preserves_every_field(tmp_path: Path) -> None:
    demos = [_demo(5, 0), _demo(3, 1, success=False)]
    path = tmp_path / "task.hdf5"
    write_demos(path, demos)
    loaded = read_demos(path)
    assert len(loaded) == 2
    for original, back in zip(demos, loaded, strict=True):
        np.testing.assert_array_equal(back.images, original.images)
        np.testing.assert_allclose(back.states, original.states)
        np.testing.assert_allclose(back.actions, original.actions)
        assert back.images.dtype == np.uint8 and back.states.dtype == np.float32
        assert (back.instruction, back.task_id, back.suite, back.success) == (
            INSTRUCTION, 3, "libero_spatial", original.success
        )
    assert read_instruction(path) == INSTRUCTION


def test_file_has_the_official_layout_and_upside_down_images(tmp_path: Path) -> None:
    demo = _demo(4, 2)
    extras = DemoExtras(
        wrist_images=np.full((4, 8, 6, 3), 7, np.uint8),
        joint_states=np.ones((4, 7)),
        sim_states=np.arange(4 * 9, dtype=np.float64).reshape(4, 9),
    )
    path = tmp_path / "task.hdf5"
    write_demos(path, [demo], extras=[extras], problem_name="libero_tabletop_manipulation")
    with h5py.File(path, "r") as f:
        data = f["data"]
        assert json.loads(data.attrs["problem_info"])["language_instruction"] == INSTRUCTION
        assert data.attrs["macros_image_convention"] == "opengl"
        assert data.attrs["num_demos"] == 1 and data.attrs["total"] == 4
        group = data["demo_0"]
        for key in ("actions", "states", "rewards", "dones"):
            assert key in group, key
        for key in ("agentview_rgb", "eye_in_hand_rgb", "ee_states", "gripper_states", "joint_states"):
            assert key in group["obs"], key
        # Stored the way robosuite renders them (OpenGL origin): row 0 is the bottom of the upright image and
        # columns are mirrored, i.e. rotated by 180°.
        np.testing.assert_array_equal(group["obs/agentview_rgb"][0], demo.images[0][::-1, ::-1])
        np.testing.assert_allclose(group["obs/ee_states"][()], demo.states[:, :6], rtol=1e-6)
        np.testing.assert_allclose(group["obs/gripper_states"][()], demo.states[:, 6:], rtol=1e-6)
        assert group["obs/joint_states"].shape == (4, 7)
        np.testing.assert_array_equal(group["states"][()], extras.sim_states)
        np.testing.assert_array_equal(group.attrs["init_state"], extras.sim_states[0])  # type: ignore[index]
        assert list(group["dones"][()]) == [0, 0, 0, 1] and list(group["rewards"][()]) == [0, 0, 0, 1]


def _write_official_style(path: Path, num_demos: int) -> np.ndarray:
    """A file as LIBERO's create_dataset.py writes it (no srpo attributes). Returns demo_0's raw images."""
    rng = np.random.default_rng(3)
    raw = rng.integers(0, 256, size=(num_demos, 4, 8, 8, 3), dtype=np.uint8)
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        data.attrs["problem_info"] = json.dumps(
            {"problem_name": "libero_tabletop_manipulation", "domain_name": "robosuite",
             "language_instruction": INSTRUCTION}
        )
        data.attrs["macros_image_convention"] = "opengl"
        for i in range(num_demos):
            group = data.create_group(f"demo_{i}")
            group.create_dataset("actions", data=np.full((4, 7), i, dtype=np.float64))
            group.create_dataset("rewards", data=np.array([0, 0, 0, 1], np.uint8))
            group.create_dataset("dones", data=np.array([0, 0, 0, 1], np.uint8))
            obs = group.create_group("obs")
            obs.create_dataset("agentview_rgb", data=raw[i])
            obs.create_dataset("eye_in_hand_rgb", data=raw[i])
            obs.create_dataset("ee_states", data=np.zeros((4, 6)))
            obs.create_dataset("gripper_states", data=np.zeros((4, 2)))
    return raw[0]


def test_reads_official_files_upright_in_numeric_demo_order(tmp_path: Path) -> None:
    path = tmp_path / "official.hdf5"
    raw = _write_official_style(path, num_demos=12)
    demos = read_demos(path, suite="libero_spatial", task_id=1)
    assert len(demos) == 12
    # demo_10 sorts before demo_2 as text; the reader must keep numeric order.
    assert [int(d.actions[0, 0]) for d in demos] == list(range(12))
    np.testing.assert_array_equal(demos[0].images, raw[:, ::-1, ::-1])
    assert all(d.success for d in demos)
    assert (demos[0].suite, demos[0].task_id, demos[0].states.shape) == ("libero_spatial", 1, (4, 8))
    assert len(read_demos(path, max_demos=3)) == 3


def test_write_rejects_demos_of_different_tasks(tmp_path: Path) -> None:
    other = _demo(2, 4)
    other.task_id = 4
    with pytest.raises(ValueError, match="one task per file"):
        write_demos(tmp_path / "x.hdf5", [_demo(2, 3), other])


def test_write_rejects_states_without_the_libero_proprio_layout(tmp_path: Path) -> None:
    demo = _demo(2, 5)
    demo.states = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match=r"\(T, 8\)"):
        write_demos(tmp_path / "x.hdf5", [demo])


def test_read_demo_files_numbers_unlabelled_files_by_position(tmp_path: Path) -> None:
    """Official files carry no task id: each takes its position; a file with `srpo_task_id` keeps its own."""
    _write_official_style(tmp_path / "a_official.hdf5", num_demos=2)
    _write_official_style(tmp_path / "b_official.hdf5", num_demos=1)
    write_demos(tmp_path / "c_srpo.hdf5", [_demo(3, 0)])  # srpo_task_id = 3
    files = demo_files(tmp_path)
    assert [f.name for f in files] == ["a_official.hdf5", "b_official.hdf5", "c_srpo.hdf5"]
    per_file = read_demo_files(files, suite="libero_spatial")
    assert [[d.task_id for d in demos] for demos in per_file] == [[0, 0], [1], [3]]
    assert all(d.suite == "libero_spatial" for demos in per_file for d in demos)
    assert demo_files(files[2]) == [files[2]]


def test_read_demo_files_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(MissingFileError, match="nowhere does not exist"):
        demo_files(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputFileError, match=r"no \.hdf5 files found"):
        demo_files(tmp_path / "empty")
    with h5py.File(tmp_path / "foreign.hdf5", "w") as f:
        f.create_dataset("x", data=np.zeros(3))
    with pytest.raises(InputFileError, match=r"foreign.hdf5 is not a readable LIBERO / robomimic demo file \(KeyError"):
        read_demo_files([tmp_path / "foreign.hdf5"])
