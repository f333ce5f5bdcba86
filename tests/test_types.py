"""srpo.types: a Trajectory or Demo with arrays that do not line up is refused at construction, naming the field,
so that no malformed record reaches the reward or the update."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from srpo.types import Demo, Trajectory


def trajectory_fields(num_chunks: int = 3, chunk: int = 2, tokens: int = 4) -> dict[str, Any]:
    """A consistent trajectory: `num_chunks` chunks of `chunk` actions, `tokens` action tokens per chunk."""
    steps = num_chunks * chunk
    return dict(task_id=0, instruction="pick", init_state_id=1, group_id=0, rollout_id=5,
                frames=np.zeros((num_chunks + 1, 8, 8, 3), np.uint8),
                policy_images=np.zeros((num_chunks, 8, 8, 3), np.uint8),
                policy_states=np.zeros((num_chunks, 2), np.float32),
                action_tokens=np.zeros((num_chunks, tokens), np.int64),
                log_probs=np.zeros((num_chunks, tokens), np.float32),
                token_mask=np.ones((num_chunks, tokens), bool),
                actions=np.zeros((steps, 7), np.float32), success=False, finish_step=steps)


def test_a_consistent_trajectory_is_accepted() -> None:
    traj = Trajectory(**trajectory_fields())
    assert traj.num_chunks == 3 and traj.eef_pos.shape == (0, 3)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("policy_images", np.zeros((2, 8, 8, 3), np.uint8), "policy_images has 2 chunks but action_tokens has 3"),
    ("policy_states", np.zeros((4, 2), np.float32), "policy_states has 4 chunks"),
    ("log_probs", np.zeros((3, 5), np.float32), r"log_probs \(3, 5\) and token_mask \(3, 4\) must match"),
    ("token_mask", np.ones((3, 3), bool), r"log_probs \(3, 4\) and token_mask \(3, 3\) must match action_tokens"),
    ("frames", np.zeros((4, 8, 8), np.uint8), r"frames must be \(F, H, W, 3\), got \(4, 8, 8\)"),
    ("frames", np.zeros((4, 8, 8, 1), np.uint8), r"frames must be \(F, H, W, 3\)"),
    ("actions", np.zeros((5, 7), np.float32), "5 actions recorded but finish_step is 6"),
])
def test_misaligned_arrays_are_refused_naming_the_field(field: str, value: np.ndarray, message: str) -> None:
    fields = {**trajectory_fields(), field: value}
    with pytest.raises(ValueError, match=f"Trajectory 5: {message}"):
        Trajectory(**fields)


def test_empty_frames_are_allowed_when_nothing_was_recorded() -> None:
    # A GRPO rollout keeps no embedding frames: (0, H, W, C) of any C passes.
    assert Trajectory(**{**trajectory_fields(), "frames": np.zeros((0, 8, 8, 1), np.uint8)}).frames.shape[0] == 0


def test_demo_needs_one_row_per_step() -> None:
    images, states = np.zeros((4, 8, 8, 3), np.uint8), np.zeros((4, 2), np.float32)
    assert Demo(images, states, np.zeros((4, 7), np.float32), "pick", 0, "libero_spatial").success
    with pytest.raises(ValueError, match="Demo of task 2: images 4, states 4 and actions 3 must have one row per step"):
        Demo(images, states, np.zeros((3, 7), np.float32), "pick", 2, "libero_spatial")
    with pytest.raises(ValueError, match="states 5 and actions 4"):
        Demo(images, np.zeros((5, 2), np.float32), np.zeros((4, 7), np.float32), "pick", 2, "libero_spatial")
