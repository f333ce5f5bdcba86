"""Input checks no other test reaches: each bad input gets its own error type and a message that names it.

One test per check, through the public function or class, without LIBERO, a GPU or the network.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import srpo.robustness
from srpo.compare import run_compare
from srpo.config.encoder import EncoderConfig
from srpo.config.env import TabletopConfig
from srpo.config.train import load_config
from srpo.envs.tabletop import (
    TABLETOP_TASKS,
    TabletopEnvFactory,
    record_tabletop_demos,
    tabletop_layout,
    task_instruction,
)
from srpo.errors import SrpoError
from srpo.evaluate import init_state_split
from srpo.lerobot import DatasetEpisode, LeRobotWriter
from srpo.record import RECORD_INFO, record_dataset, trajectory_to_episode
from srpo.recording import record_labelled_set, tabletop_expert
from srpo.reward.encoders.feature_grid import GridSpec
from srpo.reward.encoders.pixel import PixelEncoder
from srpo.robustness import RobustnessPlan, probe_plus_environment, run_robustness
from srpo.types import Trajectory
from srpo.video import label_frames
from tiny_config import tiny_tabletop


def test_init_state_split_names_an_unknown_split() -> None:
    cfg = load_config(preset="tabletop")
    assert init_state_split(cfg, 50, "eval") == list(range(40, 50))  # the good splits still work
    with pytest.raises(ValueError, match=r"split='test': choose 'train' or 'eval'"):
        init_state_split(cfg, 50, "test")


@pytest.mark.parametrize(("shape", "match"), [
    ((8, 8, 3), r"frames must be \(F, H, W, 3\), got \(8, 8, 3\)"),
    ((2, 8, 8, 4), r"frames must be \(F, H, W, 3\), got \(2, 8, 8, 4\)"),
])
def test_label_frames_refuses_frames_that_are_not_a_colour_video(shape: tuple[int, ...], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        label_frames(np.zeros(shape, np.uint8), reward=0.5, success=True)


def test_pixel_encoder_refuses_the_config_of_another_encoder() -> None:
    assert PixelEncoder(EncoderConfig(name="pixel", num_frames=2, pixel_size=4)).dim == 2 * 4 * 4 * 3
    with pytest.raises(ValueError, match=r"PixelEncoder needs encoder\.name='pixel', got 'efficientnet'"):
        PixelEncoder(EncoderConfig(name="efficientnet"))


def test_grid_spec_refuses_an_empty_tap_list() -> None:
    with pytest.raises(ValueError, match=r"GridSpec\.taps is empty: give at least one \(tap, grid\) pair"):
        GridSpec(taps=())


def test_plus_probe_names_a_missing_interpreter(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "python"
    with pytest.raises(SrpoError, match=r"robustness\.python='[^']*/nope/python' does not exist: create the "
                                        r"LIBERO-Plus environment with `make robust`"):
        probe_plus_environment(str(missing))


def test_robustness_refuses_an_out_dir_that_holds_another_run(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # The plan itself needs LIBERO; the check under test only compares it with the plan.json already there.
    monkeypatch.setattr(srpo.robustness, "make_plan",
                        lambda cfg: RobustnessPlan("libero-pro", "libero_spatial", ["base"], []))
    out = tmp_path / "robust"
    out.mkdir()
    old = json.dumps({"tasks": [{"key": "libero-pro/other/task"}], "checkpoint": "other/ckpt"})
    (out / "plan.json").write_text(old)
    cfg = load_config(preset="cpu", overrides=[f"robustness.out_dir={out}"])
    with pytest.raises(SrpoError, match=r"holds a run with other tasks or another checkpoint: choose a new "
                                        r"robustness\.out_dir \(--out\) or delete it"):
        run_robustness(cfg, checkpoint=str(tmp_path / "ckpt"))
    assert (out / "plan.json").read_text() == old  # the other run's plan is left as it was
    assert sorted(p.name for p in out.iterdir()) == ["plan.json"]


def test_compare_names_a_finished_run_that_never_logged_the_metric(tmp_path: Path) -> None:
    run = tmp_path / "srpo" / "seed0"
    run.mkdir(parents=True)
    (run / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "train/loss": 0.1}) + "\n" for s in (1, 2)))
    cfg = load_config(preset="tabletop", overrides=["num_steps=2"])
    with pytest.raises(SrpoError, match=r"logged no 'eval/success_rate'; is evaluation enabled \(eval_every, "
                                        r"num_eval_episodes_per_task\)\?"):
        run_compare(cfg, tmp_path, seeds=[0], algos=("srpo",), show_progress=False, train=False)
    assert not (tmp_path / "compare.json").exists()


def test_trajectory_to_episode_refuses_a_mask_that_disagrees_with_the_steps() -> None:
    mask = np.zeros((2, 28), bool)
    mask[0] = True  # 4 actions marked executed, but the episode ran 6
    traj = Trajectory(task_id=1, instruction="x", init_state_id=0, group_id=0, rollout_id=7,
                      frames=np.zeros((2, 8, 8, 3), np.uint8), policy_images=np.zeros((2, 8, 8, 3), np.uint8),
                      policy_states=np.zeros((2, 3), np.float32), action_tokens=np.zeros((2, 28), np.int64),
                      log_probs=np.zeros((2, 28), np.float32), token_mask=mask,
                      actions=np.zeros((6, 7), np.float32), success=False, finish_step=6)
    with pytest.raises(RuntimeError, match=r"rollout 7: token mask covers 4 actions, the episode executed 6"):
        trajectory_to_episode(traj, chunk_size=4, action_dim=7)


def test_record_refuses_a_folder_whose_episodes_are_not_whole_batches(tmp_path: Path) -> None:
    cfg = load_config(preset="tabletop", overrides=tiny_tabletop(8, "tensorboard=false", "torch_num_threads=0"))
    root = tmp_path / "rec"
    # One episode of a recording in batches of 2 (2 tasks × 1 episode): a folder no recording leaves behind.
    LeRobotWriter(root, robot_type="srpo-tabletop").add([DatasetEpisode(
        0, 0, "put the red block on the yellow plate", np.zeros((2, 16, 16, 3), np.uint8),
        np.zeros((2, 4), np.float32), np.zeros((2, 4, 7), np.float32), success=False)])
    settings = {"episodes_per_task": 1, "temperature": 1.0, "split": "train", "batch_episodes": 2,
                "seed": cfg.seed, "policy_checkpoint": cfg.policy.checkpoint}
    (root / RECORD_INFO).write_text(json.dumps({"settings": settings}))
    with pytest.raises(SrpoError, match=r"rec holds 1 episodes, not a multiple of --batch-episodes 2"):
        record_dataset(cfg, root, episodes_per_task=1, temperature=1.0, batch_episodes=2, show_progress=False)


@pytest.mark.parametrize("task_id", [len(TABLETOP_TASKS), -1])
def test_tabletop_refuses_a_task_id_it_does_not_have(task_id: int) -> None:
    # -1 used to index from the end and silently build another task's layout.
    config = TabletopEnvFactory().config
    assert task_instruction(0).startswith("put the ")
    with pytest.raises(IndexError, match=rf"task_id {task_id} outside \[0, {len(TABLETOP_TASKS)}\)"):
        task_instruction(task_id)
    with pytest.raises(IndexError, match=rf"task_id {task_id} outside \[0, {len(TABLETOP_TASKS)}\)"):
        tabletop_layout(config, task_id, 0)


def test_tabletop_demos_refuse_an_empty_init_state_pool() -> None:
    with pytest.raises(ValueError, match=r"init_state_ids is empty"):
        record_tabletop_demos(TabletopEnvFactory(), [0], 1, seed=0, init_state_ids=[])


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"task_ids": [5]}, r"task_ids \[5\] outside \[0, 1\)"),
    ({"task_ids": [-1]}, r"task_ids \[-1\] outside \[0, 1\)"),
    ({"failure_kinds": ()}, r"num_failure=1 with no failure_kinds"),
    ({"init_state_ids": []}, r"init_state_ids is empty"),
])
def test_record_labelled_set_refuses_requests_it_cannot_fill(kwargs: dict, match: str, tmp_path: Path) -> None:
    factory = TabletopEnvFactory(TabletopConfig(num_tasks=1))
    args = {"task_ids": [0], "failure_kinds": ("stall",), "init_state_ids": None, **kwargs}
    with pytest.raises(ValueError, match=match):
        record_labelled_set(factory, tabletop_expert(), args["task_ids"], 1, 1, seed=0, directory=tmp_path / "set",
                            failure_kinds=args["failure_kinds"], init_state_ids=args["init_state_ids"])
    assert not (tmp_path / "set").exists()  # refused before anything is written


@pytest.mark.parametrize("taps", [(("head",),), (("head", "2"),), ("head",)])
def test_grid_spec_refuses_a_tap_that_is_not_a_name_and_grid_pair(taps: tuple) -> None:
    with pytest.raises(ValueError, match=r"each tap is a \(tap name, grid side\) pair such as \('head', 2\)"):
        GridSpec(taps=taps)


def test_label_frames_refuses_a_negative_banner() -> None:
    assert label_frames(np.zeros((1, 8, 8, 3), np.uint8), 0.5, True, banner_px=2).shape == (1, 10, 8, 3)
    with pytest.raises(ValueError, match=r"banner_px=-2 must be >= 0"):
        label_frames(np.zeros((1, 8, 8, 3), np.uint8), 0.5, True, banner_px=-2)
