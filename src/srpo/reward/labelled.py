"""Labelled trajectory sets for judging a world-model encoder as a progress reward: the record and its folder format.

A folder holds `labels.csv` (header `path,success,task_id`, optionally `kind` and `stage`; one row per trajectory;
`path` relative to the folder; success 1/0/true/false) and one file per trajectory: `.npz` with a `frames` array
(T, H, W, 3) uint8 and optionally per-frame labels (`frame_stages` (T,), `gripper_pos` (T, 3), `object_pos`
(T, 3)), or a video file (`.mp4`, read with imageio). numpy only (imageio for video files).
"""

from __future__ import annotations

import csv
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

LABELS_FILE = "labels.csv"
LABEL_COLUMNS = ("path", "success", "task_id")
FRAMES_KEY = "frames"
# Optional per-frame label arrays of an .npz trajectory file (LabelledSet attributes of the same names).
FRAME_LABEL_KEYS = ("frame_stages", "gripper_pos", "object_pos")


@dataclass
class LabelledSet:
    """Trajectories to evaluate, optionally with the simulator's privileged progress labels.

    Attributes:
        videos: N arrays (T_i, H, W, 3) uint8, upright, T_i >= 1.
        success: (N,) bool.
        task_ids: (N,) int64.
        names: N identifiers (file names or demo keys).
        kinds: N recording kinds ("success", "stall", "drop", ...) or None.
        stages: (N,) int64 furthest progress stage each trajectory reached (env-specific scale, higher is
            further; e.g. tabletop none 0 → reach 1 → grasp 2 → carry 3 → place 4) or None.
        frame_stages: N arrays (T_i,) int64, the stage at every frame, or None.
        gripper_pos: N arrays (T_i, 3) float32, the gripper position at every frame, or None.
        object_pos: N arrays (T_i, 3) float32, the task's target object position at every frame, or None.
    """

    videos: list[np.ndarray]
    success: np.ndarray
    task_ids: np.ndarray
    names: list[str]
    kinds: list[str] | None = None
    stages: np.ndarray | None = None
    frame_stages: list[np.ndarray] | None = None
    gripper_pos: list[np.ndarray] | None = None
    object_pos: list[np.ndarray] | None = None

    def __post_init__(self) -> None:
        n = len(self.videos)
        if n == 0:
            raise ValueError("the labelled set is empty: give at least one success and one failure")
        if self.success.shape != (n,) or self.task_ids.shape != (n,) or len(self.names) != n:
            raise ValueError(
                f"labelled set: {n} videos but success {self.success.shape}, task_ids {self.task_ids.shape}, "
                f"{len(self.names)} names"
            )
        for name, video in zip(self.names, self.videos, strict=True):
            if video.ndim != 4 or video.shape[-1] != 3 or video.dtype != np.uint8:
                raise ValueError(f"{name}: frames must be (T, H, W, 3) uint8, got {video.shape} {video.dtype}")
            if video.shape[0] == 0:
                raise ValueError(f"{name}: trajectory has zero frames; remove it from the labelled set")
        if self.kinds is not None and len(self.kinds) != n:
            raise ValueError(f"labelled set: {n} videos but {len(self.kinds)} kinds")
        if self.stages is not None and np.shape(self.stages) != (n,):
            raise ValueError(f"labelled set: {n} videos but stages of shape {np.shape(self.stages)}")
        for label, per_frame, width in (
            ("frame_stages", self.frame_stages, None), ("gripper_pos", self.gripper_pos, 3),
            ("object_pos", self.object_pos, 3),
        ):
            if per_frame is None:
                continue
            if len(per_frame) != n:
                raise ValueError(f"labelled set: {n} videos but {len(per_frame)} {label} arrays")
            for name, video, arr in zip(self.names, self.videos, per_frame, strict=True):
                want = (video.shape[0],) if width is None else (video.shape[0], width)
                if arr.shape != want:
                    raise ValueError(f"{name}: {label} must have shape {want} (one row per frame), got {arr.shape}")

    def head(self, k: int) -> LabelledSet:
        """The first `k` trajectories, labels included."""

        def cut(values: list[Any] | None) -> list[Any] | None:
            return None if values is None else values[:k]

        return LabelledSet(
            self.videos[:k], self.success[:k], self.task_ids[:k], self.names[:k], cut(self.kinds),
            None if self.stages is None else self.stages[:k], cut(self.frame_stages), cut(self.gripper_pos),
            cut(self.object_pos),
        )


def parse_bool(text: str, where: str) -> bool:
    """A labels.csv success cell: 1/0/true/false/yes/no (any case); `where` names the cell in the error."""
    value = text.strip().lower()
    if value in ("1", "true", "yes"):
        return True
    if value in ("0", "false", "no"):
        return False
    raise ValueError(f"{where}: success must be 1/0/true/false, got {text!r}")


def read_video_file(path: Path) -> np.ndarray:
    """Frames of one trajectory file: `.npz` (array `frames`) or a video file read with imageio.

    Returns:
        (T, H, W, 3) uint8.
    """
    if path.suffix == ".npz":
        try:
            data = np.load(path, allow_pickle=False)
        except (OSError, EOFError, ValueError, zipfile.BadZipFile) as err:
            raise ValueError(f"{path} is not a readable .npz file ({type(err).__name__}: {err})") from err
        with data:
            if not hasattr(data, "files") or FRAMES_KEY not in data:
                raise ValueError(f"{path}: no '{FRAMES_KEY}' array (found {list(getattr(data, 'files', []))})")
            try:
                return np.asarray(data[FRAMES_KEY])
            except ValueError as err:  # e.g. an object array, which needs pickle
                raise ValueError(f"{path}: '{FRAMES_KEY}' is not a plain array ({err}); save uint8 frames "
                                 f"(T, H, W, 3)") from err
    try:
        import imageio.v3 as iio
    except ImportError as err:
        raise ImportError("reading video files needs imageio[ffmpeg]: pip install 'srpo[logging]'") from err
    frames = np.asarray(iio.imread(path, index=None))
    if frames.ndim == 4 and frames.shape[-1] == 4:
        frames = frames[..., :3]  # drop alpha
    return np.ascontiguousarray(frames.astype(np.uint8, copy=False))


def _read_frame_labels(path: Path) -> dict[str, np.ndarray]:
    """The per-frame label arrays (FRAME_LABEL_KEYS) an `.npz` trajectory file holds; {} for other files."""
    if path.suffix != ".npz":
        return {}
    with np.load(path) as data:
        return {key: np.asarray(data[key]) for key in FRAME_LABEL_KEYS if key in data}


def load_folder(directory: str | Path) -> LabelledSet:
    """A labelled set from a folder with labels.csv (see the module docstring for the format).

    Optional columns `kind` and `stage` and optional per-frame arrays in the .npz files (`frame_stages`,
    `gripper_pos`, `object_pos`) become the set's progress labels when every trajectory has them.
    """
    root = Path(directory)
    labels = root / LABELS_FILE
    if not labels.is_file():
        raise ValueError(f"{root}: no {LABELS_FILE}; expected a CSV with header {','.join(LABEL_COLUMNS)}")
    videos, success, names = [], [], []
    task_ids: list[int] = []
    kinds: list[str] = []
    stages: list[int] = []
    per_frame: dict[str, list[np.ndarray]] = {key: [] for key in FRAME_LABEL_KEYS}
    with labels.open(newline="") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        missing = [c for c in LABEL_COLUMNS if c not in columns]
        if missing:
            raise ValueError(f"{labels}: missing column(s) {missing}; header must include {','.join(LABEL_COLUMNS)}")
        for line, row in enumerate(reader, start=2):
            where = f"{labels}:{line}"
            if None in row:  # csv.DictReader files surplus cells under the key None
                raise ValueError(f"{where}: {len(columns) + len(row[None])} cells for {len(columns)} header columns "
                                 f"({','.join(columns)}); remove the extra cells or quote a cell that holds a comma")
            empty = [c for c in columns if row[c] is None]  # a short row: its last columns have no cell
            if empty:
                raise ValueError(f"{where}: no cell for column(s) {empty}; each row needs one cell per header "
                                 f"column ({','.join(columns)})")
            path = root / row["path"]
            if not path.is_file():
                raise ValueError(f"{where}: trajectory file {path} does not exist")
            videos.append(read_video_file(path))
            success.append(parse_bool(row["success"], where))
            for column, values in (("task_id", task_ids), ("stage", stages)):
                if column not in columns:
                    continue
                try:
                    values.append(int(row[column]))
                except ValueError as err:
                    raise ValueError(f"{where}: {column} must be an integer, got {row[column]!r}") from err
            if "kind" in columns:
                kinds.append(row["kind"])
            for key, arr in _read_frame_labels(path).items():
                per_frame[key].append(arr)
            names.append(row["path"])
    n = len(videos)
    complete = {key: (arrs if len(arrs) == n else None) for key, arrs in per_frame.items()}
    return LabelledSet(
        videos, np.array(success, dtype=bool), np.array(task_ids, dtype=np.int64), names,
        kinds=kinds if "kind" in columns else None,
        stages=np.array(stages, dtype=np.int64) if "stage" in columns else None,
        frame_stages=complete["frame_stages"], gripper_pos=complete["gripper_pos"], object_pos=complete["object_pos"],
    )


def save_folder(data: LabelledSet, directory: str | Path, extra: dict[str, list[str]] | None = None) -> Path:
    """Write a labelled set as one .npz per trajectory plus labels.csv (readable by `load_folder`).

    The set's kinds and stages become the `kind` and `stage` columns, its per-frame labels arrays in the .npz
    files; `extra` adds further columns.
    """
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    columns: dict[str, list[Any]] = {}
    if data.kinds is not None:
        columns["kind"] = list(data.kinds)
    if data.stages is not None:
        columns["stage"] = [int(v) for v in data.stages]
    columns.update(extra or {})
    with (root / LABELS_FILE).open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*LABEL_COLUMNS, *columns])
        for i, video in enumerate(data.videos):
            name = f"traj_{i:05d}.npz"
            arrays = {FRAMES_KEY: video}
            for key, per_frame in (
                ("frame_stages", data.frame_stages), ("gripper_pos", data.gripper_pos), ("object_pos", data.object_pos)
            ):
                if per_frame is not None:
                    arrays[key] = per_frame[i]
            np.savez_compressed(root / name, **arrays)
            writer.writerow([name, int(data.success[i]), int(data.task_ids[i]), *(v[i] for v in columns.values())])
    return root
