"""LeRobot v3 datasets: write/read round trip, `srpo record` through the rollout engine, bad datasets, HDF5."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from srpo.config.train import load_config
from srpo.errors import InputFileError, SrpoError
from srpo.lerobot import (
    DATA_PATH,
    EPISODES_PATH,
    IMAGE_KEY,
    INFO_PATH,
    TASKS_PATH,
    VIDEO_PATH,
    DatasetEpisode,
    LeRobotWriter,
    read_dataset,
    read_hdf5_episodes,
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


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"episodes_per_task": 0}, r"--episodes-per-task \(0\) and --batch-episodes \(2\) must be >= 1"),
    ({"batch_episodes": 0}, r"--episodes-per-task \(3\) and --batch-episodes \(0\) must be >= 1"),
    ({"temperature": 0.0}, r"--temperature 0\.0 is invalid: set it to a float > 0"),
])
def test_record_refuses_bad_arguments_before_writing(tmp_path: Path, kwargs: dict[str, float], match: str) -> None:
    cfg = load_config(preset="tabletop", overrides=TINY_RECORD)
    args = {"episodes_per_task": 3, "temperature": 1.0, "batch_episodes": 2, **kwargs}
    with pytest.raises(SrpoError, match=match):
        record_dataset(cfg, tmp_path / "rec", show_progress=False, **args)  # type: ignore[arg-type]
    assert not (tmp_path / "rec").exists()


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


@pytest.mark.parametrize(("images", "states", "actions", "match"), [
    pytest.param((0, 16, 16, 3), (0, 5), (0, 4, 7), r"episode 4 has no frames: drop it from the dataset",
                 id="no-frames"),
    pytest.param((2, 16, 16, 3), (3, 5), (3, 4, 7),
                 r"episode 4: 2 images, 3 states and 3 actions; every row needs one of each", id="fewer-images"),
    pytest.param((3, 16, 16, 3), (4, 5), (3, 4, 7),
                 r"episode 4: 3 images, 4 states and 3 actions; every row needs one of each", id="more-states"),
    pytest.param((3, 16, 16), (3, 5), (3, 7),
                 r"episode 4: images must be \(T, H, W, 3\), got \(3, 16, 16\)", id="gray-images"),
    pytest.param((3, 16, 16, 4), (3, 5), (3, 7),
                 r"episode 4: images must be \(T, H, W, 3\), got \(3, 16, 16, 4\)", id="rgba-images"),
    pytest.param((3, 16, 16, 3), (3, 5), (3,),
                 r"episode 4: actions must be \(T, A\) or \(T, K, A\) chunks, got \(3,\)", id="flat-actions"),
])
def test_episode_record_refuses_bad_arrays(
    images: tuple[int, ...], states: tuple[int, ...], actions: tuple[int, ...], match: str,
) -> None:
    with pytest.raises(SrpoError, match=match):
        DatasetEpisode(4, 0, "x", np.zeros(images, np.uint8), np.zeros(states, np.float32),
                       np.zeros(actions, np.float32), success=False)


def test_writer_refuses_another_fps_or_an_existing_dataset(dataset: Path) -> None:
    with pytest.raises(SrpoError, match=r"ds was recorded at fps=10, not 20: use another folder"):
        LeRobotWriter(dataset, fps=20)
    with pytest.raises(SrpoError, match=r"ds already holds a dataset: choose a new folder or append with "
                                        r"LeRobotWriter"):
        write_lerobot_dataset(dataset, random_episodes(1))
    assert len(read_lerobot_dataset(dataset)) == 3


@pytest.mark.parametrize(("make", "match"), [
    pytest.param(lambda ep: (ep.images[:, :8, :8], ep.states, ep.actions),
                 r"observation\.images\.image has shape \[8, 8, 3\] but the dataset .*ds stores \[16, 16, 3\]",
                 id="image"),
    pytest.param(lambda ep: (ep.images, np.zeros((ep.num_rows, 6), np.float32), ep.actions),
                 r"observation\.state has shape \[6\] but the dataset .*ds stores \[5\]", id="state"),
    pytest.param(lambda ep: (ep.images, ep.states, ep.actions[:, :2]),
                 r"action has shape \[2, 7\] but the dataset .*ds stores \[4, 7\]", id="action-chunk"),
])
def test_writer_refuses_episodes_of_another_shape(
    dataset: Path, make: Callable[[DatasetEpisode], tuple[np.ndarray, ...]], match: str,
) -> None:
    ep = random_episodes(1, seed=1)[0]
    odd = DatasetEpisode(0, 0, "odd one", *make(ep), success=True)
    with pytest.raises(SrpoError, match=r"episode of task 'odd one': " + match):
        LeRobotWriter(dataset).add([ep, odd])
    # The check runs before any file is written: the dataset still reads as its 3 episodes.
    assert json.loads((dataset / INFO_PATH).read_text())["total_episodes"] == 3
    assert len(read_lerobot_dataset(dataset)) == 3


# Each damage turns the valid `dataset` fixture into one a user could hand the reader.

DATA_FILE = DATA_PATH.format(chunk_index=0, file_index=0)
EPISODES_FILE = EPISODES_PATH.format(chunk_index=0, file_index=0)
VIDEO_FILE = VIDEO_PATH.format(video_key=IMAGE_KEY, chunk_index=0, file_index=0)


def _edit_info(root: Path, edit: Callable[[dict], object]) -> None:
    info = json.loads((root / INFO_PATH).read_text())
    edit(info)
    (root / INFO_PATH).write_text(json.dumps(info))


def _drop_column(root: Path, file: str, column: str) -> None:
    table = pq.read_table(root / file)
    pq.write_table(table.drop_columns([column]), root / file)


def _write_tasks(root: Path, **columns: list[object]) -> None:
    pq.write_table(pa.table(columns), root / TASKS_PATH)


def _images_as_dtype_image(root: Path) -> None:
    """Declare the camera an `image` feature (pixels in the data files) instead of a video."""
    _edit_info(root, lambda info: info["features"][IMAGE_KEY].update(dtype="image"))


def _image_cells_without_bytes(root: Path) -> None:
    _images_as_dtype_image(root)
    table = pq.read_table(root / DATA_FILE)
    cells = pa.array([{"bytes": None, "path": f"frames/{i}.png"} for i in range(table.num_rows)],
                     pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
    pq.write_table(table.append_column(IMAGE_KEY, cells), root / DATA_FILE)


@pytest.mark.parametrize(("damage", "error", "match"), [
    pytest.param(lambda root: (root / INFO_PATH).unlink(), InputFileError,
                 r"ds/meta/info\.json is missing: .*ds is not a LeRobot dataset folder", id="info-missing"),
    pytest.param(lambda root: (root / INFO_PATH).write_text('{"fps": 10,'), InputFileError,
                 r"ds/meta/info\.json is not valid JSON \(Expecting", id="info-not-json"),
    pytest.param(lambda root: _edit_info(root, lambda info: info["features"].pop(IMAGE_KEY)), SrpoError,
                 r"ds: no camera feature \(dtype video or image\) in meta/info\.json features \['action', ",
                 id="no-camera"),
    pytest.param(lambda root: (root / TASKS_PATH).unlink(), InputFileError,
                 r"ds/meta/tasks\.parquet is missing: a LeRobot v3 dataset lists its tasks there", id="tasks-missing"),
    pytest.param(lambda root: _write_tasks(root, task=["task 0", "task 1"]), InputFileError,
                 r"ds/meta/tasks\.parquet: expected a task_index column .* found columns \['task'\]",
                 id="tasks-without-task-index"),
    pytest.param(lambda root: _write_tasks(root, name=["task 0", "task 1"], task_index=[0, 1]), InputFileError,
                 r"ds/meta/tasks\.parquet: expected .*task strings .* found columns \['name', 'task_index'\]",
                 id="tasks-without-text"),
    pytest.param(lambda root: _write_tasks(root, task=["task 0"], task_index=[0]), SrpoError,
                 r"ds: episode 1 names task_index 1, which meta/tasks\.parquet does not list \(\[0\]\)",
                 id="unknown-task-index"),
    pytest.param(lambda root: (root / DATA_FILE).unlink(), InputFileError,
                 r"ds: no data files \(data/chunk-\*/file-\*\.parquet\); is this a LeRobot v3 dataset\?",
                 id="no-data-files"),
    pytest.param(lambda root: (root / EPISODES_FILE).unlink(), InputFileError,
                 r"ds: no episodes metadata files \(meta/episodes/chunk-\*/file-\*\.parquet\)",
                 id="no-episodes-files"),
    pytest.param(lambda root: (root / DATA_FILE).write_bytes(b"PAR1 cut short"), InputFileError,
                 r"ds/data/chunk-000/file-000\.parquet is not a readable parquet file: ", id="data-damaged"),
    pytest.param(lambda root: (root / EPISODES_FILE).write_bytes(b"\0" * 64), InputFileError,
                 r"ds/meta/episodes/chunk-000/file-000\.parquet is not a readable parquet file: ",
                 id="episodes-damaged"),
    pytest.param(lambda root: _drop_column(root, DATA_FILE, "episode_index"), SrpoError,
                 r"ds: data column 'episode_index' is missing; data columns: \['action', ", id="data-episode-index"),
    pytest.param(lambda root: _drop_column(root, DATA_FILE, "task_index"), SrpoError,
                 r"ds: data column 'task_index' is missing", id="data-task-index"),
    pytest.param(lambda root: _drop_column(root, DATA_FILE, "action"), SrpoError,
                 r"ds: data column 'action' is missing", id="data-action"),
    pytest.param(lambda root: _drop_column(root, EPISODES_FILE, "episode_index"), SrpoError,
                 r"ds: episodes metadata lacks 'episode_index'; fields: \['data/chunk_index', ",
                 id="episodes-episode-index"),
    pytest.param(lambda root: _drop_column(root, EPISODES_FILE, "length"), SrpoError,
                 r"ds: episodes metadata lacks 'length'", id="episodes-length"),
    pytest.param(lambda root: _drop_column(root, EPISODES_FILE, f"videos/{IMAGE_KEY}/from_timestamp"), SrpoError,
                 r"ds: episodes metadata lacks \['videos/observation\.images\.image/from_timestamp'\] for video "
                 r"feature 'observation\.images\.image'", id="episodes-video-timestamp"),
    pytest.param(lambda root: (root / VIDEO_FILE).unlink(), InputFileError,
                 r"video .*ds/videos/observation\.images\.image/chunk-000/file-000\.mp4 is missing",
                 id="video-missing"),
    pytest.param(_images_as_dtype_image, SrpoError,
                 r"ds: image column 'observation\.images\.image' is missing from the data files",
                 id="image-column-missing"),
    pytest.param(_image_cells_without_bytes, InputFileError,
                 r"ds episode 0: image cell holds no bytes \(path 'frames/0\.png' only\)", id="image-cell-path-only"),
])
def test_damaged_dataset_is_refused(
    dataset: Path, damage: Callable[[Path], object], error: type[SrpoError], match: str,
) -> None:
    damage(dataset)
    with pytest.raises(error, match=match) as err:
        read_lerobot_dataset(dataset)
    assert str(dataset) in str(err.value)


def test_video_that_decodes_to_no_frames(dataset: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # imageio-ffmpeg fails on a real mp4 with no frames ("Could not load meta information", which the reader
    # reports as "cannot be decoded"); another decoder backend may yield nothing instead: stand one in.
    import imageio.v2 as imageio

    monkeypatch.setattr(imageio, "get_reader", lambda path: contextlib.nullcontext([]))
    with pytest.raises(InputFileError, match=r"video .*ds/videos/observation\.images\.image/chunk-000/file-000\.mp4 "
                                             r"holds no frames"):
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


def test_hdf5_file_missing(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match=r"nowhere\.hdf5 does not exist"):
        read_hdf5_episodes([tmp_path / "nowhere.hdf5"])


def _write_one_demo(path: Path) -> None:
    from srpo.demos import write_demos
    from srpo.types import Demo

    write_demos(path, [Demo(images=np.zeros((2, 8, 8, 3), np.uint8), states=np.zeros((2, 8), np.float32),
                            actions=np.zeros((2, 7), np.float32), instruction="open the drawer", task_id=0,
                            suite="s", success=True)])


@pytest.mark.parametrize(("damage", "match"), [
    # The key's name comes inside h5py's own KeyError text, whose wording varies between h5py versions.
    pytest.param(lambda f: f.pop("data"), "'data'", id="no-data-group"),
    pytest.param(lambda f: f["data"].attrs.pop("problem_info"), "'problem_info'", id="no-problem-info"),
    pytest.param(lambda f: f["data/demo_0/obs"].pop("gripper_states"), "'gripper_states'", id="no-gripper-states"),
])
def test_hdf5_file_lacking_a_key(tmp_path: Path, damage: Callable[[object], object], match: str) -> None:
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "task0.hdf5"
    _write_one_demo(path)
    assert len(read_hdf5_episodes([path])) == 1
    with h5py.File(path, "r+") as f:
        damage(f)
    with pytest.raises(SrpoError, match=r"task0\.hdf5: missing HDF5 key .*" + match + r".*; expected the LIBERO "
                                        r"layout \(see srpo\.demos\)"):
        read_hdf5_episodes([path])


@pytest.mark.parametrize(("damage", "match"), [
    pytest.param(lambda root: (root / INFO_PATH).write_bytes(b"\xff\xfe{"), r"info\.json is not valid JSON",
                 id="info-not-text"),
    pytest.param(lambda root: (root / INFO_PATH).write_text("[1, 2]"),
                 r"info\.json must hold a JSON object of dataset fields, got list", id="info-a-list"),
    pytest.param(lambda root: (root / TASKS_PATH).write_bytes(b"PAR1 cut short"),
                 r"ds/meta/tasks\.parquet is not a readable parquet file: ", id="tasks-damaged"),
])
def test_damaged_metadata_is_refused_by_reader_and_writer(dataset: Path, damage: Callable[[Path], object],
                                                          match: str) -> None:
    # Appending to a dataset reads the same metadata as reading it: both must name the damaged file.
    damage(dataset)
    with pytest.raises(InputFileError, match=match):
        read_lerobot_dataset(dataset)
    with pytest.raises(InputFileError, match=match):
        LeRobotWriter(dataset)


def test_hdf5_file_that_is_not_hdf5_or_holds_bad_arrays(tmp_path: Path) -> None:
    h5py = pytest.importorskip("h5py")
    fake = tmp_path / "task0.hdf5"
    fake.write_text("not an HDF5 file")
    with pytest.raises(InputFileError, match=r"task0\.hdf5 is not a readable HDF5 file"):
        read_hdf5_episodes([fake])
    path = tmp_path / "task1.hdf5"
    _write_one_demo(path)
    with h5py.File(path, "r+") as f:
        del f["data/demo_0/actions"]
        f["data/demo_0/actions"] = np.zeros((2, 6), np.float32)
    with pytest.raises(SrpoError, match=r"task1\.hdf5/demo_0: actions must be \(T, 7\), got \(2, 6\)"):
        read_hdf5_episodes([path])
