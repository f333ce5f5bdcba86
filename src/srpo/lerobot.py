"""Recorded episodes on disk: LeRobotDataset v3 folders (read and write) and LIBERO / robomimic HDF5 (read).

Why not the `lerobot-dataset` package: its 0.4.4 wheel leaves torch out of its requirements but imports
torchvision at module level (`datasets/video_utils.py`, `datasets/utils.py`), and pulls in HF `datasets`,
`huggingface_hub`, opencv and cmake. srpo never installs torchvision, so this module reads and writes the
documented v3 layout with pyarrow (tables) and imageio-ffmpeg (videos).

The v3 layout (facts this module relies on; `codebase_version` "v3.0"):

    meta/info.json                     fps, features {name: {dtype, shape, names, info}}, totals, chunks_size,
                                       data_path  "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
                                       video_path "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    meta/tasks.parquet                 one row per task: the task string (LeRobot keeps it as the pandas index)
                                       and `task_index`
    meta/episodes/chunk-*/file-*.parquet
                                       one row per episode: episode_index, tasks (list of strings), length,
                                       data/chunk_index, data/file_index, dataset_from_index, dataset_to_index,
                                       videos/<key>/{chunk_index, file_index, from_timestamp, to_timestamp};
                                       extra per-episode fields may sit beside them (srpo writes `success`)
    data/chunk-*/file-*.parquet        one row per frame, many episodes per file: timestamp, frame_index,
                                       episode_index, index, task_index and one column per non-video feature
    videos/<key>/chunk-*/file-*.mp4    the frames of many episodes back to back; an episode's frames start at
                                       its from_timestamp (seconds) in that file

Rows written by `srpo record` are the policy's decisions, not env steps: the rollout engine renders the policy
image once per action chunk, so row c holds the image and proprioception the policy saw before chunk c and
`action` holds that chunk (chunk_size, action_dim) as executed, padded by repeating its last executed action when
the episode ended inside it (`action.num_executed` says how many were executed). `fps` is nominal. Datasets with
one action per row (the usual LeRobot recording) are read as they are; the offline trainer then builds each
row's chunk from the following rows.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from srpo.errors import InputFileError, SrpoError
from srpo.files import read_json

log = logging.getLogger(__name__)

CODEBASE_VERSION = "v3.0"
INFO_PATH = "meta/info.json"
TASKS_PATH = "meta/tasks.parquet"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
CHUNKS_SIZE = 1000  # files per chunk folder, LeRobot's default

IMAGE_KEY = "observation.images.image"
STATE_KEY = "observation.state"
ACTION_KEY = "action"
NUM_EXECUTED_KEY = "action.num_executed"
SUCCESS_KEY = "success"  # per-episode field srpo writes into the episodes table
NEXT_SUCCESS_KEY = "next.success"
NEXT_DONE_KEY = "next.done"
INDEX_COLUMNS = ("timestamp", "frame_index", "episode_index", "index", "task_index")


@dataclass
class DatasetEpisode:
    """One recorded episode, rows in time order.

    Attributes:
        episode_index: Index of the episode in its dataset.
        task_index: Index of the task in the dataset (LIBERO HDF5: the file's task id).
        instruction: The task's language instruction.
        images: (T, H, W, 3) uint8 camera frames, upright, one per row.
        states: (T, S) float32 proprioception per row (S may be 0).
        actions: (T, A) float32 one action per row, or (T, K, A) one action chunk per row.
        success: Whether the episode reached its goal.
        num_executed: (T,) int, with chunk rows: how many actions of each row's chunk were executed (the rest
            repeat the last executed one); None means all of them.
    """

    episode_index: int
    task_index: int
    instruction: str
    images: np.ndarray
    states: np.ndarray
    actions: np.ndarray
    success: bool
    num_executed: np.ndarray | None = None

    def __post_init__(self) -> None:
        t = self.actions.shape[0]
        if t == 0:
            raise SrpoError(f"episode {self.episode_index} has no frames: drop it from the dataset")
        if self.images.shape[0] != t or self.states.shape[0] != t:
            raise SrpoError(
                f"episode {self.episode_index}: {self.images.shape[0]} images, {self.states.shape[0]} states and "
                f"{t} actions; every row needs one of each"
            )
        if self.images.ndim != 4 or self.images.shape[-1] != 3:
            raise SrpoError(f"episode {self.episode_index}: images must be (T, H, W, 3), got {self.images.shape}")
        if self.actions.ndim not in (2, 3):
            raise SrpoError(
                f"episode {self.episode_index}: actions must be (T, A) or (T, K, A) chunks, got {self.actions.shape}"
            )

    @property
    def num_rows(self) -> int:
        return int(self.actions.shape[0])


# ---------------------------------------------------------------------------------------------------------------
# Writing.


def _import_pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as err:
        raise ImportError("LeRobot datasets need pyarrow: pip install 'srpo[datasets]' (or pyarrow)") from err
    return pa, pq


def _write_video(path: Path, frames: np.ndarray, fps: int, crf: int) -> None:
    import imageio.v2 as imageio

    path.parent.mkdir(parents=True, exist_ok=True)
    # H.264 in 4:4:4 with a low CRF: 4:2:0 halves the colour resolution, which blurs the few-pixel coloured
    # objects of small sim renders (CRF 0 is lossless in YUV; any ffmpeg/PyAV decoder reads it).
    with imageio.get_writer(path, fps=fps, codec="libx264", pixelformat="yuv444p", macro_block_size=1,
                            ffmpeg_params=["-crf", str(crf), "-g", "1"]) as writer:
        for frame in frames:
            writer.append_data(frame)  # type: ignore[attr-defined]


class LeRobotWriter:
    """Appends episodes to a LeRobotDataset v3 folder, one data/video/episodes file per `add` call.

    A call writes its files under new file indices and then rewrites meta/info.json and meta/tasks.parquet, so a
    recording killed between calls leaves a complete dataset of the earlier calls; `LeRobotWriter(root)` on an
    existing folder continues it (files a killed call left behind are overwritten).

    Args:
        root: Dataset folder (created if missing).
        fps: Frames per second stored in info.json and used for timestamps.
        robot_type: Free-form robot name stored in info.json.
        crf: H.264 constant rate factor of the videos (0 = lossless).
    """

    def __init__(self, root: str | Path, fps: int = 10, robot_type: str = "srpo", crf: int = 0) -> None:
        self.root = Path(root)
        self.fps = fps
        self.robot_type = robot_type
        self.crf = crf
        self.info: dict[str, Any] | None = None
        self.tasks: dict[str, int] = {}
        self.num_files = 0
        self.num_episodes = 0
        self.num_frames = 0
        self.video_seconds = 0.0
        if (self.root / INFO_PATH).exists():
            self.info = _read_info(self.root / INFO_PATH)
            if int(self.info.get("fps", fps)) != fps:
                raise SrpoError(f"{self.root} was recorded at fps={self.info['fps']}, not {fps}: use another folder")
            missing = [k for k in ("total_episodes", "total_frames") if k not in self.info]
            if missing:
                raise InputFileError(f"{self.root / INFO_PATH} lacks {missing}: it was not written by a LeRobot v3 "
                                     "writer; use another folder")
            self.tasks = dict(_read_tasks(self.root))
            self.num_episodes = int(self.info["total_episodes"])
            self.num_frames = int(self.info["total_frames"])
            self.num_files = int(self.info.get("srpo_num_files", 0))

    def add(self, episodes: Sequence[DatasetEpisode]) -> None:
        """Write `episodes` (their episode_index is reassigned consecutively after the existing ones)."""
        if not episodes:
            return
        pa, pq = _import_pyarrow()
        first = episodes[0]
        info = self.info or self._new_info(first)
        self._check_shapes(info, episodes)
        file_index = self.num_files
        chunk_index, file_in_chunk = divmod(file_index, CHUNKS_SIZE)
        where = {"chunk_index": chunk_index, "file_index": file_in_chunk}
        columns: dict[str, list[Any]] = {k: [] for k in [*INDEX_COLUMNS, STATE_KEY, ACTION_KEY, NUM_EXECUTED_KEY,
                                                         NEXT_DONE_KEY, NEXT_SUCCESS_KEY]}
        rows_meta: dict[str, list[Any]] = {k: [] for k in (
            "episode_index", "tasks", "length", "data/chunk_index", "data/file_index", "dataset_from_index",
            "dataset_to_index", f"videos/{IMAGE_KEY}/chunk_index", f"videos/{IMAGE_KEY}/file_index",
            f"videos/{IMAGE_KEY}/from_timestamp", f"videos/{IMAGE_KEY}/to_timestamp", "meta/episodes/chunk_index",
            "meta/episodes/file_index", SUCCESS_KEY)}
        frames: list[np.ndarray] = []
        video_start = 0.0
        index = self.num_frames
        for k, ep in enumerate(episodes):
            episode_index = self.num_episodes + k
            task_index = self.tasks.setdefault(ep.instruction, len(self.tasks))
            t = ep.num_rows
            columns["timestamp"] += [np.float32(i / self.fps) for i in range(t)]
            columns["frame_index"] += list(range(t))
            columns["episode_index"] += [episode_index] * t
            columns["index"] += list(range(index, index + t))
            columns["task_index"] += [task_index] * t
            columns[STATE_KEY] += [row.astype(np.float32) for row in ep.states]
            columns[ACTION_KEY] += [row.astype(np.float32).ravel() for row in ep.actions]
            if ep.num_executed is not None:
                columns[NUM_EXECUTED_KEY] += [int(n) for n in ep.num_executed]
            else:
                columns[NUM_EXECUTED_KEY] += [ep.actions.shape[1] if ep.actions.ndim == 3 else 1] * t
            columns[NEXT_DONE_KEY] += [False] * (t - 1) + [True]
            columns[NEXT_SUCCESS_KEY] += [False] * (t - 1) + [bool(ep.success)]
            frames.append(ep.images)
            duration = t / self.fps
            for key, value in (("episode_index", episode_index), ("tasks", [ep.instruction]), ("length", t),
                               ("data/chunk_index", chunk_index), ("data/file_index", file_in_chunk),
                               ("dataset_from_index", index), ("dataset_to_index", index + t),
                               (f"videos/{IMAGE_KEY}/chunk_index", chunk_index),
                               (f"videos/{IMAGE_KEY}/file_index", file_in_chunk),
                               (f"videos/{IMAGE_KEY}/from_timestamp", video_start),
                               (f"videos/{IMAGE_KEY}/to_timestamp", video_start + duration),
                               ("meta/episodes/chunk_index", chunk_index), ("meta/episodes/file_index", file_in_chunk),
                               (SUCCESS_KEY, bool(ep.success))):
                rows_meta[key].append(value)
            video_start += duration
            index += t
        _write_video(self.root / VIDEO_PATH.format(video_key=IMAGE_KEY, **where), np.concatenate(frames), self.fps,
                     self.crf)
        data_path = self.root / DATA_PATH.format(**where)
        data_path.parent.mkdir(parents=True, exist_ok=True)
        table = pa.table({
            "timestamp": pa.array(columns["timestamp"], pa.float32()),
            **{k: pa.array(columns[k], pa.int64()) for k in INDEX_COLUMNS[1:]},
            STATE_KEY: pa.array(columns[STATE_KEY], pa.list_(pa.float32())),
            ACTION_KEY: pa.array(columns[ACTION_KEY], pa.list_(pa.float32())),
            NUM_EXECUTED_KEY: pa.array(columns[NUM_EXECUTED_KEY], pa.int64()),
            NEXT_DONE_KEY: pa.array(columns[NEXT_DONE_KEY], pa.bool_()),
            NEXT_SUCCESS_KEY: pa.array(columns[NEXT_SUCCESS_KEY], pa.bool_()),
        })
        pq.write_table(table, data_path)
        episodes_path = self.root / EPISODES_PATH.format(**where)
        episodes_path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table(rows_meta), episodes_path)
        self.num_files += 1
        self.num_episodes += len(episodes)
        self.num_frames = index
        info["total_episodes"] = self.num_episodes
        info["total_frames"] = self.num_frames
        info["total_tasks"] = len(self.tasks)
        info["splits"] = {"train": f"0:{self.num_episodes}"}
        info["srpo_num_files"] = self.num_files
        self.info = info
        self._write_tasks(pa, pq)
        # info.json last: a reader (or a resumed writer) only ever sees files a finished call wrote.
        tmp = self.root / (INFO_PATH + ".tmp")
        tmp.write_text(json.dumps(info, indent=2))
        tmp.replace(self.root / INFO_PATH)

    def _new_info(self, first: DatasetEpisode) -> dict[str, Any]:
        h, w = first.images.shape[1:3]
        action_shape = list(first.actions.shape[1:])
        return {
            "codebase_version": CODEBASE_VERSION,
            "robot_type": self.robot_type,
            "total_episodes": 0,
            "total_frames": 0,
            "total_tasks": 0,
            "chunks_size": CHUNKS_SIZE,
            "data_files_size_in_mb": 100,
            "video_files_size_in_mb": 500,
            "fps": self.fps,
            "splits": {"train": "0:0"},
            "data_path": DATA_PATH,
            "video_path": VIDEO_PATH,
            "features": {
                IMAGE_KEY: {"dtype": "video", "shape": [h, w, 3], "names": ["height", "width", "channels"],
                            "info": {"video.height": h, "video.width": w, "video.codec": "h264",
                                     "video.pix_fmt": "yuv444p", "video.is_depth_map": False,
                                     "video.fps": self.fps, "video.channels": 3, "has_audio": False}},
                STATE_KEY: {"dtype": "float32", "shape": [int(first.states.shape[1])], "names": None},
                ACTION_KEY: {"dtype": "float32", "shape": action_shape, "names": None},
                NUM_EXECUTED_KEY: {"dtype": "int64", "shape": [1], "names": None},
                NEXT_DONE_KEY: {"dtype": "bool", "shape": [1], "names": None},
                NEXT_SUCCESS_KEY: {"dtype": "bool", "shape": [1], "names": None},
                "timestamp": {"dtype": "float32", "shape": [1], "names": None},
                **{k: {"dtype": "int64", "shape": [1], "names": None} for k in INDEX_COLUMNS[1:]},
            },
        }

    def _check_shapes(self, info: dict[str, Any], episodes: Sequence[DatasetEpisode]) -> None:
        feats = info["features"]
        for ep in episodes:
            got = {IMAGE_KEY: list(ep.images.shape[1:]), STATE_KEY: [int(ep.states.shape[1])],
                   ACTION_KEY: list(ep.actions.shape[1:])}
            for key, shape in got.items():
                if list(feats[key]["shape"]) != shape:
                    raise SrpoError(f"episode of task {ep.instruction!r}: {key} has shape {shape} but the dataset "
                                    f"{self.root} stores {feats[key]['shape']}")

    def _write_tasks(self, pa: Any, pq: Any) -> None:
        names = sorted(self.tasks, key=self.tasks.__getitem__)
        table = pa.table({"task_index": pa.array([self.tasks[n] for n in names], pa.int64()),
                          "task": pa.array(names, pa.string())})
        # pandas metadata that makes `task` the DataFrame index, as LeRobot's own tasks.parquet has it.
        pandas_meta = {"index_columns": ["task"], "column_indexes": [], "columns": [
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64",
             "metadata": None},
            {"name": None, "field_name": "task", "pandas_type": "unicode", "numpy_type": "object", "metadata": None},
        ], "creator": {"library": "pyarrow", "version": pa.__version__}, "pandas_version": "2.2.0"}
        table = table.replace_schema_metadata({b"pandas": json.dumps(pandas_meta).encode()})
        path = self.root / TASKS_PATH
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path)


def write_lerobot_dataset(root: str | Path, episodes: Sequence[DatasetEpisode], fps: int = 10) -> Path:
    """Write `episodes` as a new LeRobotDataset v3 folder (see `LeRobotWriter` for appending)."""
    root = Path(root)
    if (root / INFO_PATH).exists():
        raise SrpoError(f"{root} already holds a dataset: choose a new folder or append with LeRobotWriter")
    LeRobotWriter(root, fps=fps).add(episodes)
    return root


# ---------------------------------------------------------------------------------------------------------------
# Reading.


def _read_info(path: Path) -> dict[str, Any]:
    """meta/info.json as a dict; an undecodable file or one that is not a JSON object is an InputFileError."""
    info = read_json(path)
    if not isinstance(info, dict):
        raise InputFileError(f"{path} must hold a JSON object of dataset fields, got {type(info).__name__}")
    fps = info.get("fps", 1)
    if isinstance(fps, bool) or not isinstance(fps, int | float) or not fps > 0:
        raise InputFileError(f"{path}: fps must be a positive number, got {fps!r}")
    for key in ("total_episodes", "total_frames"):
        value = info.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InputFileError(f"{path}: {key} must be an int >= 0, got {value!r}")
    features = info.get("features", {})
    if not isinstance(features, dict) or not all(isinstance(f, dict) for f in features.values()):
        raise InputFileError(f"{path}: features must map each feature name to an object with its dtype and shape, "
                             f"got {features!r:.80}")
    for name, feature in features.items():
        shape = feature.get("shape", [])
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1
                                                  for d in shape):
            raise InputFileError(f"{path}: features.{name}.shape must be a list of positive ints, got {shape!r}")
    return info


def _read_tasks(root: Path) -> dict[str, int]:
    _, pq = _import_pyarrow()
    path = root / TASKS_PATH
    if not path.exists():
        raise InputFileError(f"{path} is missing: a LeRobot v3 dataset lists its tasks there")
    try:
        table = pq.read_table(path).to_pydict()
    except Exception as err:  # pyarrow raises several types for a damaged file
        raise InputFileError(f"{path} is not a readable parquet file: {err}") from err
    text_column = next((c for c in ("task", "__index_level_0__", "tasks") if c in table), None)
    if text_column is None or "task_index" not in table:
        raise InputFileError(f"{path}: expected a task_index column and the task strings (index or `task` column), "
                             f"found columns {sorted(table)}")
    return {str(t): int(i) for t, i in zip(table[text_column], table["task_index"], strict=True)}


def read_parquet_dir(root: Path, pattern: str, what: str) -> dict[str, list[Any]]:
    """All files matching `pattern` under root, concatenated (files in chunk/file order)."""
    pa, pq = _import_pyarrow()
    files = sorted(root.glob(pattern))
    if not files:
        raise InputFileError(f"{root}: no {what} files ({pattern}); is this a LeRobot v3 dataset?")
    tables = []
    for f in files:
        try:
            tables.append(pq.read_table(f))
        except Exception as err:  # pyarrow raises several types for a damaged file
            raise InputFileError(f"{f} is not a readable parquet file: {err}") from err
    return dict(pa.concat_tables(tables, promote_options="default").to_pydict())


class _VideoCache:
    """Decodes each mp4 once (all frames), since episodes share files."""

    def __init__(self) -> None:
        self.path: Path | None = None
        self.frames: np.ndarray | None = None

    def get(self, path: Path) -> np.ndarray:
        if self.path != path or self.frames is None:
            if not path.exists():
                raise InputFileError(f"video {path} is missing")
            try:
                import imageio.v2 as imageio

                with imageio.get_reader(path) as reader:
                    frames = [np.asarray(f) for f in reader]  # type: ignore[attr-defined]
            except (OSError, RuntimeError, ValueError, IndexError) as err:
                raise InputFileError(f"video {path} cannot be decoded ({type(err).__name__}: {err}); re-encode it "
                                     "with ffmpeg or re-record the dataset") from err
            if not frames:
                raise InputFileError(f"video {path} holds no frames")
            self.path, self.frames = path, np.stack(frames)
        return self.frames


def _decode_image_cell(cell: Any, where: str) -> np.ndarray:
    """An `image` feature cell: a struct {bytes, path} (HF datasets' Image) or a nested list of pixels."""
    import imageio.v3 as iio

    if isinstance(cell, dict):
        if cell.get("bytes"):
            return np.asarray(iio.imread(cell["bytes"]))
        raise InputFileError(f"{where}: image cell holds no bytes (path {cell.get('path')!r} only)")
    return np.asarray(cell, dtype=np.uint8)


def _success_of(
    key: str | None, meta: dict[str, list[Any]], meta_row: int, data: dict[str, list[Any]], last_row: int,
    root: Path,
) -> bool:
    """Per-episode success from the named field (episodes table first, then the last data row), else from
    `success` in the episodes table, else the last row's next.success, else its next.done."""
    if key is not None:
        if key in meta:
            return bool(meta[key][meta_row])
        if key in data:
            return bool(np.asarray(data[key][last_row]).ravel()[0])
        raise SrpoError(f"{root}: success key {key!r} is neither an episodes field ({sorted(meta)}) nor a data "
                        f"column ({sorted(data)}); set offline.success_key to one of them")
    if SUCCESS_KEY in meta:
        return bool(meta[SUCCESS_KEY][meta_row])
    for flag in (NEXT_SUCCESS_KEY, NEXT_DONE_KEY):
        if flag in data:
            return bool(np.asarray(data[flag][last_row]).ravel()[0])
    raise SrpoError(f"{root}: no success label (no `success` episodes field, no next.success or next.done column); "
                    "name the column or field that holds it with offline.success_key")


def read_lerobot_dataset(
    root: str | Path,
    image_key: str | None = None,
    state_key: str = STATE_KEY,
    action_key: str = ACTION_KEY,
    success_key: str | None = None,
    max_episodes: int | None = None,
) -> list[DatasetEpisode]:
    """Read a LeRobotDataset v3 folder from local disk.

    Args:
        root: The dataset folder (with meta/info.json).
        image_key: Camera feature (dtype video or image); None picks the first `observation.images.*` feature.
        state_key: Proprioception feature; a dataset without it gets (T, 0) states.
        action_key: Action feature: (A,) per row, or (K, A) chunks per row as `srpo record` writes.
        success_key: Per-episode success: an episodes-table field or a data column (last row of the episode);
            None tries `success`, then `next.success`, then `next.done`.
        max_episodes: Read only the first this many episodes.

    Returns:
        Episodes in episode_index order.

    Raises:
        InputFileError: Missing or unreadable files, a version other than v3, an undecodable video.
        SrpoError: Missing keys, episodes with no frames, lengths that disagree, no success label.
    """
    root = Path(root)
    info_path = root / INFO_PATH
    if not info_path.exists():
        raise InputFileError(f"{info_path} is missing: {root} is not a LeRobot dataset folder")
    info = _read_info(info_path)
    version = str(info.get("codebase_version", "?"))
    if not version.startswith("v3"):
        raise InputFileError(f"{root} is a LeRobot {version} dataset; srpo reads v3 (convert it with LeRobot's "
                             "convert_dataset_v21_to_v30 script)")
    features: dict[str, Any] = info.get("features", {})
    fps = float(info.get("fps", 0)) or 1.0
    if image_key is None:
        cameras = [k for k, f in features.items() if f.get("dtype") in ("video", "image")]
        if not cameras:
            raise SrpoError(f"{root}: no camera feature (dtype video or image) in meta/info.json features "
                            f"{sorted(features)}; srpo's policies need images")
        image_key = cameras[0]
    for key in (image_key, action_key):
        if key not in features:
            raise SrpoError(f"{root}: feature {key!r} not in meta/info.json; available: {sorted(features)}")
    tasks = {i: t for t, i in _read_tasks(root).items()}
    meta = read_parquet_dir(root, "meta/episodes/chunk-*/file-*.parquet", "episodes metadata")
    data = read_parquet_dir(root, "data/chunk-*/file-*.parquet", "data")
    for key in ("episode_index", "task_index", action_key):
        if key not in data:
            raise SrpoError(f"{root}: data column {key!r} is missing; data columns: {sorted(data)}")
    for key in ("episode_index", "length"):
        if key not in meta:
            raise SrpoError(f"{root}: episodes metadata lacks {key!r}; fields: {sorted(meta)}")
    is_video = features[image_key].get("dtype") == "video"
    video_template = str(info.get("video_path") or VIDEO_PATH)
    ep_col = np.asarray(data["episode_index"], dtype=np.int64)
    order = np.argsort(np.asarray(meta["episode_index"]), kind="stable")
    if max_episodes is not None:
        order = order[:max_episodes]
    action_shape = tuple(features[action_key].get("shape", []))
    videos = _VideoCache()
    episodes: list[DatasetEpisode] = []
    for m in order:
        episode_index = int(meta["episode_index"][m])
        rows = np.flatnonzero(ep_col == episode_index)
        if "frame_index" in data and rows.size:
            rows = rows[np.argsort(np.asarray(data["frame_index"])[rows], kind="stable")]
        length = int(meta["length"][m])
        if rows.size == 0 or length == 0:
            raise SrpoError(f"{root}: episode {episode_index} has no frames (length {length}, {rows.size} data rows); "
                            "remove it from the dataset")
        if rows.size != length:
            raise SrpoError(f"{root}: episode {episode_index} has {rows.size} data rows but its metadata says "
                            f"length {length}")
        actions = np.asarray([np.asarray(data[action_key][r], dtype=np.float32) for r in rows])
        if len(action_shape) == 2:
            if actions.size != rows.size * action_shape[0] * action_shape[1]:
                raise SrpoError(f"{root}: episode {episode_index}'s {action_key!r} rows hold "
                                f"{actions.size // rows.size} values each, but meta/info.json gives the feature "
                                f"shape {list(action_shape)}")
            actions = actions.reshape(rows.size, *action_shape)
        if state_key in data:
            states = np.asarray([np.asarray(data[state_key][r], dtype=np.float32).ravel() for r in rows])
        else:
            states = np.zeros((rows.size, 0), np.float32)
        if is_video:
            images = _episode_video_frames(root, video_template, image_key, meta, int(m), rows.size, fps, videos,
                                           episode_index)
        else:
            if image_key not in data:
                raise SrpoError(f"{root}: image column {image_key!r} is missing from the data files")
            images = np.stack([_decode_image_cell(data[image_key][r], f"{root} episode {episode_index}")
                               for r in rows])
        if images.ndim == 4 and images.shape[1] == 3 and images.shape[-1] != 3:
            images = np.ascontiguousarray(images.transpose(0, 2, 3, 1))  # channel-first storage
        task_index = int(data["task_index"][rows[0]])
        if task_index not in tasks:
            raise SrpoError(f"{root}: episode {episode_index} names task_index {task_index}, which "
                            f"meta/tasks.parquet does not list ({sorted(tasks)})")
        success = _success_of(success_key, meta, int(m), data, int(rows[-1]), root)
        num_executed = (np.asarray([data[NUM_EXECUTED_KEY][r] for r in rows], dtype=np.int64)
                        if NUM_EXECUTED_KEY in data and actions.ndim == 3 else None)
        episodes.append(DatasetEpisode(episode_index, task_index, tasks[task_index], images.astype(np.uint8), states,
                                       actions, success, num_executed))
    return episodes


def _episode_video_frames(
    root: Path, template: str, key: str, meta: dict[str, list[Any]], m: int, num_rows: int, fps: float,
    videos: _VideoCache, episode_index: int,
) -> np.ndarray:
    fields = [f"videos/{key}/{name}" for name in ("chunk_index", "file_index", "from_timestamp")]
    missing = [f for f in fields if f not in meta]
    if missing:
        raise SrpoError(f"{root}: episodes metadata lacks {missing} for video feature {key!r}")
    path = root / template.format(video_key=key, chunk_index=int(meta[fields[0]][m]),
                                  file_index=int(meta[fields[1]][m]))
    frames = videos.get(path)
    # Frame numbers from the episode's start time in the file; round, since timestamps are float seconds.
    start = math.floor(float(meta[fields[2]][m]) * fps + 0.5)
    if start + num_rows > frames.shape[0]:
        raise SrpoError(f"{root}: episode {episode_index} needs frames {start}..{start + num_rows - 1} of {path}, "
                        f"which has {frames.shape[0]}: the video and the data disagree in length")
    return frames[start:start + num_rows]


def read_hdf5_episodes(paths: Sequence[str | Path]) -> list[DatasetEpisode]:
    """LIBERO / robomimic HDF5 files (one task per file, `srpo.demos` layout) as dataset episodes.

    The task index is the file's position in `paths`; success is the demo's `srpo_success` attribute, else
    reward 1 on its last step (the official datasets hold successes only).
    """
    from srpo.demos import read_demos

    episodes: list[DatasetEpisode] = []
    for task_index, path in enumerate(paths):
        if not Path(path).exists():
            raise InputFileError(f"{path} does not exist")
        try:
            demos = read_demos(path)
        except KeyError as err:
            raise SrpoError(f"{path}: missing HDF5 key {err}; expected the LIBERO layout (see srpo.demos)") from err
        except OSError as err:  # h5py: not an HDF5 file, or a truncated one
            raise InputFileError(f"{path} is not a readable HDF5 file: {err}") from err
        except ValueError as err:  # srpo.demos: arrays of the wrong shape or an unknown image convention
            raise SrpoError(str(err) if str(path) in str(err) else f"{path}: {err}") from err
        for demo in demos:
            episodes.append(DatasetEpisode(len(episodes), task_index, demo.instruction, demo.images, demo.states,
                                           demo.actions, demo.success))
    return episodes


def read_dataset(
    path: str | Path,
    image_key: str | None = None,
    state_key: str = STATE_KEY,
    action_key: str = ACTION_KEY,
    success_key: str | None = None,
    max_episodes: int | None = None,
) -> list[DatasetEpisode]:
    """A LeRobot v3 folder, one LIBERO HDF5 file, or a folder of them (*.hdf5, sorted = task order)."""
    p = Path(path)
    if not p.exists():
        raise InputFileError(f"dataset {p} does not exist")
    if p.is_dir() and (p / INFO_PATH).exists():
        return read_lerobot_dataset(p, image_key, state_key, action_key, success_key, max_episodes)
    files = [p] if p.is_file() else sorted(p.glob("*.hdf5"))
    if not files:
        raise InputFileError(f"{p} is neither a LeRobot v3 folder (meta/info.json) nor HDF5 demo files (*.hdf5)")
    return read_hdf5_episodes(files)[:max_episodes]
