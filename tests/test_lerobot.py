"""LeRobot v3 datasets: write/read round trip, `srpo record` through the rollout engine, bad datasets, HDF5."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from srpo.config.train import load_config
from srpo.errors import InputFileError, SrpoError
from srpo.lerobot import (
    EPISODES_PATH,
    INFO_PATH,
    DatasetEpisode,
    LeRobotWriter,
    read_dataset,
    read_lerobot_dataset,
    write_lerobot_dataset,
)
from srpo.record import record_dataset, trajectory_to_episode
from tiny_config import tiny_tabletop

TINY_RECORD = tiny_tabletop(10, "tensorboard=false")


def random_episodes(num: int, chunk: bool = True, seed: int = 0) -> list[DatasetEpisode]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(num):
        t = 3 + i
        actions = rng.uniform(-1, 1, (t, 4, 7) if chunk else (t, 7)).astype(np.float32)
        # Smooth images (video codecs are exact on those up to colour-space rounding).
        base = rng.integers(0, 255, (1, 1, 1, 3))
        images = np.clip(base + np.arange(16)[None, :, None, None] * 4 + np.arange(t)[:, None, None, None] * 9,
                         0, 255).astype(np.uint8) * np.ones((t, 16, 16, 3), np.uint8)
        out.append(DatasetEpisode(i, i % 2, f"task {i % 2}", images, rng.normal(size=(t, 5)).astype(np.float32),
                                  actions, success=i % 3 == 0))
    return out


@pytest.mark.parametrize("chunk", [True, False])
def test_round_trip_and_append(tmp_path: Path, chunk: bool) -> None:
    eps = random_episodes(5, chunk)
    write_lerobot_dataset(tmp_path / "ds", eps[:3])
    LeRobotWriter(tmp_path / "ds").add(eps[3:])  # a second writer continues the dataset
    info = json.loads((tmp_path / "ds" / INFO_PATH).read_text())
    assert info["codebase_version"] == "v3.0"
    assert info["total_episodes"] == 5 and info["total_frames"] == sum(e.num_rows for e in eps)
    assert info["total_tasks"] == 2
    back = read_lerobot_dataset(tmp_path / "ds")
    assert [b.episode_index for b in back] == list(range(5))
    for a, b in zip(eps, back, strict=True):
        assert b.instruction == a.instruction and b.success == a.success and b.task_index == a.task_index
        np.testing.assert_array_equal(b.actions, a.actions)
        np.testing.assert_array_equal(b.states, a.states)
        assert b.images.shape == a.images.shape
        assert np.abs(b.images.astype(int) - a.images).max() <= 3  # lossless H.264 up to RGB↔YUV rounding


def test_record_writes_the_rollouts(tmp_path: Path) -> None:
    cfg = load_config(preset="tabletop", overrides=TINY_RECORD)
    result = record_dataset(cfg, tmp_path / "rec", episodes_per_task=3, temperature=1.0, batch_episodes=2,
                            show_progress=False)
    assert result.num_episodes == {0: 3, 1: 3}
    eps = read_dataset(tmp_path / "rec")
    assert len(eps) == 6
    for e in eps:
        assert e.actions.shape[1:] == (4, 7) and e.images.shape[1:] == (32, 32, 3)
        assert e.num_executed is not None and e.num_executed.sum() <= 10  # max_steps
        assert e.instruction.startswith(("pick", "put", "move", "place")) or e.instruction
    # Running it again with the same arguments continues (here: nothing left to do), never duplicates.
    again = record_dataset(cfg, tmp_path / "rec", episodes_per_task=3, temperature=1.0, batch_episodes=2,
                           show_progress=False)
    assert again.num_episodes == {0: 3, 1: 3}
    with pytest.raises(SrpoError, match="recorded with"):
        record_dataset(cfg, tmp_path / "rec", episodes_per_task=4, temperature=1.0, batch_episodes=2,
                       show_progress=False)


def test_trajectory_to_episode_pads_the_last_chunk() -> None:
    from srpo.types import Trajectory

    actions = np.arange(6 * 7, dtype=np.float32).reshape(6, 7)  # 6 steps: chunks of 4 → 4 + 2 executed
    mask = np.zeros((2, 28), bool)
    mask[0] = True
    mask[1, :14] = True
    traj = Trajectory(task_id=1, instruction="x", init_state_id=0, group_id=0, rollout_id=7,
                      frames=np.zeros((2, 8, 8, 3), np.uint8), policy_images=np.zeros((2, 8, 8, 3), np.uint8),
                      policy_states=np.zeros((2, 3), np.float32), action_tokens=np.zeros((2, 28), np.int64),
                      log_probs=np.zeros((2, 28), np.float32), token_mask=mask, actions=actions, success=True,
                      finish_step=6)
    ep = trajectory_to_episode(traj, chunk_size=4, action_dim=7)
    np.testing.assert_array_equal(ep.num_executed, [4, 2])
    np.testing.assert_array_equal(ep.actions[0], actions[:4])
    np.testing.assert_array_equal(ep.actions[1], np.stack([actions[4], actions[5], actions[5], actions[5]]))


# -- bad datasets ---------------------------------------------------------------------------------------------


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return write_lerobot_dataset(tmp_path / "ds", random_episodes(3))


def _rewrite_episodes(root: Path, **changes: list[object]) -> None:
    path = root / EPISODES_PATH.format(chunk_index=0, file_index=0)
    table = pq.read_table(path).to_pydict()
    table.update(changes)
    pq.write_table(pa.table(table), path)


def test_missing_info_and_wrong_version(dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="does not exist"):
        read_dataset(tmp_path / "nowhere")
    info = json.loads((dataset / INFO_PATH).read_text())
    info["codebase_version"] = "v2.1"
    (dataset / INFO_PATH).write_text(json.dumps(info))
    with pytest.raises(InputFileError, match=r"v2\.1 dataset; srpo reads v3"):
        read_dataset(dataset)
    (dataset / INFO_PATH).unlink()
    with pytest.raises(InputFileError, match="neither a LeRobot v3 folder"):
        read_dataset(dataset)


def test_missing_keys(dataset: Path) -> None:
    with pytest.raises(SrpoError, match=r"feature .joint_action. not in meta/info\.json"):
        read_lerobot_dataset(dataset, action_key="joint_action")
    with pytest.raises(SrpoError, match="success key 'is_ok'"):
        read_lerobot_dataset(dataset, success_key="is_ok")


def test_episode_without_frames_and_mismatched_lengths(dataset: Path) -> None:
    _rewrite_episodes(dataset, length=[3, 0, 5])
    with pytest.raises(SrpoError, match="episode 1 has no frames"):
        read_lerobot_dataset(dataset)
    _rewrite_episodes(dataset, length=[3, 9, 5])
    with pytest.raises(SrpoError, match="episode 1 has 4 data rows but its metadata says length 9"):
        read_lerobot_dataset(dataset)


def test_video_shorter_than_data(dataset: Path) -> None:
    _rewrite_episodes(dataset, **{"videos/observation.images.image/from_timestamp": [0.0, 0.3, 5.0]})
    with pytest.raises(SrpoError, match=r"episode 2 needs frames 50\.\.54"):
        read_lerobot_dataset(dataset)


def test_unreadable_video(dataset: Path) -> None:
    video = next(dataset.glob("videos/**/*.mp4"))
    video.write_bytes(b"not an mp4 at all" * 10)
    with pytest.raises(InputFileError, match="cannot be decoded"):
        read_lerobot_dataset(dataset)


def test_success_from_flags_or_named_field(dataset: Path) -> None:
    # Without the `success` episodes field the last row's next.success decides: the same labels.
    expected = [e.success for e in read_lerobot_dataset(dataset)]
    path = dataset / EPISODES_PATH.format(chunk_index=0, file_index=0)
    table = pq.read_table(path).to_pydict()
    del table["success"]
    table["rated_good"] = [True, True, False]
    pq.write_table(pa.table(table), path)
    assert [e.success for e in read_lerobot_dataset(dataset)] == expected
    assert [e.success for e in read_lerobot_dataset(dataset, success_key="rated_good")] == [True, True, False]
    data_path = next(dataset.glob("data/**/*.parquet"))
    data = pq.read_table(data_path).to_pydict()
    del data["next.success"], data["next.done"]
    pq.write_table(pa.table(data), data_path)
    with pytest.raises(SrpoError, match="no success label"):
        read_lerobot_dataset(dataset)


def test_hdf5_demos_are_read(tmp_path: Path) -> None:
    pytest.importorskip("h5py")
    from srpo.demos import write_demos
    from srpo.types import Demo

    rng = np.random.default_rng(0)
    demos = [Demo(images=rng.integers(0, 255, (4, 8, 8, 3), dtype=np.uint8), states=np.zeros((4, 8), np.float32),
                  actions=rng.uniform(-1, 1, (4, 7)).astype(np.float32), instruction="open the drawer", task_id=3,
                  suite="s", success=ok) for ok in (True, False)]
    write_demos(tmp_path / "task3.hdf5", demos)
    eps = read_dataset(tmp_path)
    assert [e.success for e in eps] == [True, False]
    assert eps[0].instruction == "open the drawer" and eps[0].actions.shape == (4, 7)
    np.testing.assert_array_equal(eps[1].images, demos[1].images)
