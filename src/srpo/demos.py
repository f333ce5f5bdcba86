"""Demonstrations on disk: LIBERO / robomimic HDF5 files ↔ `srpo.types.Demo`.

The layout is the one LIBERO's `scripts/create_dataset.py` writes for the official datasets:

    data                               attrs: problem_info (JSON with language_instruction, problem_name,
    │                                         domain_name), env_name, env_args (JSON), bddl_file_name,
    │                                         bddl_file_content, macros_image_convention, num_demos, total
    └── demo_<i>                       attrs: num_samples, init_state, model_file
        ├── actions        (T, 7)      OSC deltas in [-1, 1], gripper -1 open / +1 close
        ├── states         (T, D)      flattened MuJoCo states
        ├── rewards        (T,)        uint8, 1 on the last step of a success
        ├── dones          (T,)        uint8, 1 on the last step
        └── obs
            ├── agentview_rgb    (T, H, W, 3) uint8
            ├── eye_in_hand_rgb  (T, H, W, 3) uint8
            ├── ee_states        (T, 6)  eef pos (3), eef axis-angle (3)
            ├── ee_pos / ee_ori  (T, 3)  the two halves of ee_states
            ├── gripper_states   (T, 2)  finger joint positions
            └── joint_states     (T, 7)  arm joint positions

Images in the official files are stored as rendered, upside down ("opengl" convention); a `Demo` holds them
upright (rotated 180°, as `srpo.envs.libero` renders them). Files written here use the official convention,
so that LIBERO's and robomimic's tools read them unchanged (official files also carry `robot_states`, which
srpo neither reads nor writes), and record srpo's suite, task id and per-demo
success in extra attributes (`srpo_suite`, `srpo_task_id`, `srpo_success`) that other tools ignore.

h5py is imported lazily so that `import srpo.demos` works without it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from srpo.errors import InputFileError, MissingFileError
from srpo.types import ACTION_DIM, Demo

# robosuite's IMAGE_CONVENTION values: "opengl" frames are upside down (origin bottom-left), "opencv" upright.
IMAGE_CONVENTION_OPENGL = "opengl"
IMAGE_CONVENTION_OPENCV = "opencv"
POLICY_IMAGE_KEY = "agentview_rgb"
WRIST_IMAGE_KEY = "eye_in_hand_rgb"
# Proprioception of a Demo: eef pos (3), eef axis-angle (3), gripper qpos (2); same as srpo.envs.libero.
DEMO_STATE_DIM = 8


@dataclass
class DemoExtras:
    """Per-step data an HDF5 demo file carries beyond a `Demo`; optional when writing.

    Attributes:
        wrist_images: (T, H, W, 3) uint8 wrist-camera images, upright.
        joint_states: (T, 7) arm joint positions.
        sim_states: (T, D) flattened MuJoCo states (state before each action).
        init_state: (D,) flattened MuJoCo state the episode started from.
    """

    wrist_images: np.ndarray | None = None
    joint_states: np.ndarray | None = None
    sim_states: np.ndarray | None = None
    init_state: np.ndarray | None = None


def _import_h5py() -> Any:
    try:
        import h5py
    except ImportError as err:
        raise ImportError("reading and writing demo files needs h5py: pip install 'srpo[libero]' (or h5py)") from err
    return h5py


def _rotate_180(images: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) → the same frames rotated by 180°; its own inverse."""
    return np.ascontiguousarray(images[:, ::-1, ::-1])


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _demo_keys(data: Any) -> list[str]:
    """demo_0, demo_1, ... in numeric order (HDF5 lists them lexicographically: demo_10 before demo_2)."""
    keys = [k for k in data if k.startswith("demo_")]
    return sorted(keys, key=lambda k: int(k.split("_", 1)[1]))


def read_instruction(path: str | Path) -> str:
    """The task language of a LIBERO demo file (from the `problem_info` attribute of `data`)."""
    h5py = _import_h5py()
    with h5py.File(path, "r") as f:
        return str(json.loads(_text(f["data"].attrs["problem_info"]))["language_instruction"])


def read_demos(
    path: str | Path,
    suite: str | None = None,
    task_id: int | None = None,
    max_demos: int | None = None,
    image_key: str = POLICY_IMAGE_KEY,
) -> list[Demo]:
    """Read the demonstrations of one LIBERO / robomimic HDF5 file.

    Args:
        path: The .hdf5 file (official LIBERO datasets or files written by `write_demos`).
        suite: Suite name; defaults to the file's `srpo_suite` attribute, else "".
        task_id: Task index in the suite; defaults to the file's `srpo_task_id` attribute, else -1.
        max_demos: Read at most this many (in demo_0, demo_1, ... order); None reads all.
        image_key: obs dataset used as Demo.images ("agentview_rgb" or "eye_in_hand_rgb").

    Returns:
        One Demo per demo group: images (T, H, W, 3) uint8 upright, states (T, 8) float32 (eef pos,
        eef axis-angle, gripper qpos), actions (T, 7) float32.
    """
    h5py = _import_h5py()
    demos: list[Demo] = []
    with h5py.File(path, "r") as f:
        data = f["data"]
        instruction = str(json.loads(_text(data.attrs["problem_info"]))["language_instruction"])
        convention = _text(data.attrs.get("macros_image_convention", IMAGE_CONVENTION_OPENGL))
        if convention not in (IMAGE_CONVENTION_OPENGL, IMAGE_CONVENTION_OPENCV):
            raise ValueError(f"{path}: unknown macros_image_convention {convention!r}: expected 'opengl' or 'opencv'")
        file_suite = suite if suite is not None else _text(data.attrs.get("srpo_suite", ""))
        file_task = task_id if task_id is not None else int(data.attrs.get("srpo_task_id", -1))
        for key in _demo_keys(data)[:max_demos]:
            group = data[key]
            images = np.asarray(group["obs"][image_key], dtype=np.uint8)
            if convention == IMAGE_CONVENTION_OPENGL:
                images = _rotate_180(images)
            obs = group["obs"]
            states = np.concatenate([obs["ee_states"][()], obs["gripper_states"][()]], axis=1).astype(np.float32)
            actions = np.asarray(group["actions"], dtype=np.float32)
            if actions.ndim != 2 or actions.shape[1] != ACTION_DIM:
                raise ValueError(f"{path}/{key}: actions must be (T, {ACTION_DIM}), got {actions.shape}")
            if "srpo_success" in group.attrs:
                success = bool(group.attrs["srpo_success"])
            else:
                # The official datasets hold successes only and mark them with reward 1 on the last step.
                rewards = np.asarray(group["rewards"])
                success = bool(rewards.size > 0 and rewards[-1] > 0)
            demos.append(
                Demo(
                    images=images,
                    states=states,
                    actions=actions,
                    instruction=instruction,
                    task_id=file_task,
                    suite=file_suite,
                    success=success,
                )
            )
    return demos


def demo_files(source: str | Path) -> list[Path]:
    """The demo files a user named: a folder's `*.hdf5` files in sorted order, or the one file.

    Raises:
        MissingFileError: `source` does not exist.
        InputFileError: `source` is a folder without `.hdf5` files.
    """
    path = Path(source)
    if not path.exists():
        raise MissingFileError(f"{path} does not exist")
    if not path.is_dir():
        return [path]
    files = sorted(path.glob("*.hdf5"))
    if not files:
        raise InputFileError(f"{path}: no .hdf5 files found")
    return files


def read_demo_files(
    files: Sequence[str | Path], suite: str | None = None, image_key: str = POLICY_IMAGE_KEY
) -> list[list[Demo]]:
    """Read several demo files, one task per file; the task-id rule every srpo reader of HDF5 demos shares.

    A demo's task id is its file's `srpo_task_id` attribute; official LIBERO datasets record none, so a file
    without it takes its position in `files` (pass a suite's files in sorted order: LIBERO's benchmark task
    list sorts the same way).

    Args:
        files: The HDF5 files (e.g. from `demo_files`).
        suite: Suite name for every demo (see `read_demos`).
        image_key: obs dataset read as Demo.images.

    Returns:
        One list of demos per file, in `files` order, every `task_id` >= 0.

    Raises:
        InputFileError: a file is not a readable LIBERO / robomimic demo file (names the file and the reason).
    """
    per_file: list[list[Demo]] = []
    for position, path in enumerate(files):
        try:
            demos = read_demos(path, suite=suite, image_key=image_key)
        except (OSError, KeyError, ValueError) as err:  # h5py raises these for a foreign or damaged file
            raise InputFileError(
                f"{path} is not a readable LIBERO / robomimic demo file ({type(err).__name__}: {err})"
            ) from err
        for demo in demos:
            if demo.task_id < 0:
                demo.task_id = position
        per_file.append(demos)
    return per_file


def write_demos(
    path: str | Path,
    demos: list[Demo],
    extras: list[DemoExtras] | None = None,
    bddl_file_name: str = "",
    problem_name: str = "",
    env_name: str = "",
) -> None:
    """Write demonstrations of one task as a LIBERO / robomimic HDF5 file (the official layout).

    Args:
        path: Output .hdf5 file; overwritten.
        demos: Demos of a single task (same instruction, suite and task id); states must be (T, 8) (eef pos,
            eef axis-angle, gripper qpos) as produced by `srpo.envs.libero`.
        extras: Optional per-demo wrist images, joint states and MuJoCo states; datasets with no data are
            written with zero columns ((T, 0), or (T, 0, 0, 3) for images) so the layout stays complete.
        bddl_file_name: BDDL file of the task, stored with its content when it exists.
        problem_name: LIBERO problem class name (e.g. "libero_tabletop_manipulation").
        env_name: robosuite env name stored in the `env_name` attribute.
    """
    h5py = _import_h5py()
    if not demos:
        raise ValueError("write_demos needs at least one Demo")
    first = demos[0]
    for demo in demos:
        if (demo.instruction, demo.suite, demo.task_id) != (first.instruction, first.suite, first.task_id):
            raise ValueError(
                "write_demos writes one task per file: got demos of "
                f"{(first.suite, first.task_id, first.instruction)!r} and "
                f"{(demo.suite, demo.task_id, demo.instruction)!r}"
            )
        if demo.states.ndim != 2 or demo.states.shape[1] != DEMO_STATE_DIM:
            raise ValueError(
                f"Demo states must be (T, {DEMO_STATE_DIM}) (eef pos, eef axis-angle, gripper qpos) to fill "
                f"obs/ee_states and obs/gripper_states, got {demo.states.shape}"
            )
    if extras is not None and len(extras) != len(demos):
        raise ValueError(f"extras has {len(extras)} entries for {len(demos)} demos; give one per demo or None")
    bddl_path = Path(bddl_file_name) if bddl_file_name else None
    bddl_content = bddl_path.read_text() if bddl_path is not None and bddl_path.is_file() else ""
    problem_info = {"problem_name": problem_name, "domain_name": "robosuite", "language_instruction": first.instruction}
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        data.attrs["env_name"] = env_name
        data.attrs["problem_info"] = json.dumps(problem_info)
        data.attrs["macros_image_convention"] = IMAGE_CONVENTION_OPENGL
        data.attrs["bddl_file_name"] = bddl_file_name
        data.attrs["bddl_file_content"] = bddl_content
        data.attrs["env_args"] = json.dumps(
            {"type": 1, "env_name": env_name, "problem_name": problem_name, "bddl_file": bddl_file_name}
        )
        data.attrs["srpo_suite"] = first.suite
        data.attrs["srpo_task_id"] = first.task_id
        total = 0
        for i, demo in enumerate(demos):
            extra = extras[i] if extras is not None else DemoExtras()
            num_steps = demo.actions.shape[0]
            group = data.create_group(f"demo_{i}")
            obs = group.create_group("obs")
            # Stored upside down like the official files (rotation by 180° is its own inverse).
            obs.create_dataset(POLICY_IMAGE_KEY, data=_rotate_180(demo.images), compression="gzip", compression_opts=4)
            wrist = extra.wrist_images if extra.wrist_images is not None else np.zeros((num_steps, 0, 0, 3), np.uint8)
            obs.create_dataset(WRIST_IMAGE_KEY, data=_rotate_180(wrist), compression="gzip", compression_opts=4)
            states = demo.states.astype(np.float64)
            obs.create_dataset("ee_states", data=states[:, :6])
            obs.create_dataset("ee_pos", data=states[:, :3])
            obs.create_dataset("ee_ori", data=states[:, 3:6])
            obs.create_dataset("gripper_states", data=states[:, 6:8])
            joints = extra.joint_states if extra.joint_states is not None else np.zeros((num_steps, 0))
            obs.create_dataset("joint_states", data=joints)
            sim_states = extra.sim_states if extra.sim_states is not None else np.zeros((num_steps, 0))
            group.create_dataset("states", data=sim_states)
            group.create_dataset("actions", data=demo.actions.astype(np.float64))
            rewards = np.zeros(num_steps, dtype=np.uint8)
            dones = np.zeros(num_steps, dtype=np.uint8)
            if num_steps > 0:
                dones[-1] = 1
                rewards[-1] = 1 if demo.success else 0
            group.create_dataset("rewards", data=rewards)
            group.create_dataset("dones", data=dones)
            group.attrs["num_samples"] = num_steps
            group.attrs["srpo_success"] = bool(demo.success)
            if extra.init_state is not None:
                group.attrs["init_state"] = extra.init_state
            elif sim_states.shape[1] > 0:
                group.attrs["init_state"] = sim_states[0]
            total += num_steps
        data.attrs["num_demos"] = len(demos)
        data.attrs["total"] = total
