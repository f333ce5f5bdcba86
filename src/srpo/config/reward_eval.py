"""Configuration of `srpo reward-eval`: which labelled trajectories, which encoders, how the curves are cut."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from srpo.config.base import ConfigError, require, require_choice
from srpo.config.encoder import ENCODER_NAMES, EncoderName
from srpo.config.reward import CentreMethod

RecordSource = Literal["tabletop", "libero"]
RECORD_SOURCES: tuple[str, ...] = ("tabletop", "libero")


@dataclass(frozen=True)
class RewardEvalConfig:
    """Reward quality of world-model encoders on one labelled set (`srpo.reward_eval.run_reward_eval`).

    Exactly one source: `data` (a folder with labels.csv), `hdf5` (LIBERO / robomimic demo files) or `record`
    (record a labelled set with a scripted expert first, into `record_dir`).
    """

    data: str | None = None
    """Folder with labels.csv (path,success,task_id[,kind,stage]) and one .npz / video file per trajectory."""
    hdf5: tuple[str, ...] | None = None
    """LIBERO / robomimic demo files, one task per file."""
    record: RecordSource | None = None
    """Record a labelled set with this env's scripted expert (successes and graded failures) first."""
    record_dir: str | None = None
    """Where `record` writes the set; None: OUTPUT_DIR/labelled."""
    tasks: tuple[int, ...] = (0, 1)
    """`record`: task ids."""
    num_success: int = 8
    """`record`: successes per task."""
    num_failure: int = 8
    """`record`: graded failures per task."""
    seed: int = 0
    """`record`: seed of the expert noise and the failure kinds' draws."""
    suite: str = "libero_spatial"
    """`record libero`: suite (pick-and-place tasks)."""
    embed_size: int = 128
    """`record libero`: side of the recorded frames."""
    frame_stride: int = 1
    """`record libero`: render a frame every N control steps."""
    init_split: Literal["train", "eval"] | None = None
    """`record libero`: draw initial states from this split (eval: held out from training); None: states 0..n-1."""
    image_key: str = "agentview_rgb"
    """`hdf5`: obs dataset with the frames."""
    encoders: tuple[EncoderName, ...] = ("efficientnet", "pixel")
    """Encoders to compare, each one row of the table."""
    weights: str | None = None
    """V-JEPA 2 weights: a local transformers folder, a cached model id or a vjepa2 .pt file."""
    num_frames: int = 64
    """Frames sampled per (prefix) video."""
    num_cuts: int = 10
    """Points on each progress curve (prefixes of growing length); >= 2."""
    rotate_180: bool = False
    """Rotate frames by 180° (raw LIBERO renders)."""
    segments: int = 1
    """EfficientNet temporal segments."""
    crop_size: int | None = None
    """Input side of EfficientNet / V-JEPA 2 (encoder.crop_size); None: the model's own."""
    device: str = "auto"
    """auto | cpu | cuda[:N]."""
    batch_size: int = 0
    """Trajectories per forward; 0: automatic."""
    reward_preset: Literal["official", "paper"] = "official"
    """The reward constants (`RewardConfig.preset`)."""
    whiten: bool = False
    """Standardise embeddings with the task's successes' statistics before distances (`reward.whiten`)."""
    centres: CentreMethod | None = None
    """Reference centres (`reward.centres`: dbscan | nearest | mean); None: the preset's (dbscan)."""
    alpha: float | None = None
    """Weight of the progress value for failures (`reward.alpha`); None: the preset's."""
    max_trajectories: int | None = None
    """Evaluate only the first N trajectories."""
    output_dir: str = "runs/reward_eval"
    """Where reward_eval.json and reward_eval.png go."""
    plots: bool = True
    """Write the matplotlib figure."""

    def __post_init__(self) -> None:
        sources = [name for name, value in (("--data", self.data), ("--hdf5", self.hdf5), ("--record", self.record))
                   if value is not None]
        if len(sources) != 1:
            raise ConfigError(f"reward-eval needs exactly one source of trajectories, got {sources or 'none'}: "
                              "pass one of --data DIR, --hdf5 FILE [FILE ...], --record tabletop|libero")
        if self.record is not None:
            require_choice(self.record, "--record", RECORD_SOURCES)
        if self.hdf5 is not None:
            require(len(self.hdf5) > 0, "--hdf5", list(self.hdf5), "one or more .hdf5 files")
        require(len(self.tasks) > 0 and all(t >= 0 for t in self.tasks), "--tasks", list(self.tasks),
                "one or more task ids >= 0, e.g. 0 1")
        require(self.num_success >= 0, "--num-success", self.num_success, "an int >= 0, e.g. 8")
        require(self.num_failure >= 0, "--num-failure", self.num_failure, "an int >= 0, e.g. 8")
        require(self.num_success + self.num_failure > 0, "--num-success", self.num_success,
                "a value that with --num-failure records at least one trajectory per task")
        require(self.embed_size >= 16, "--embed-size", self.embed_size, "an int >= 16, e.g. 128")
        require(self.frame_stride >= 1, "--frame-stride", self.frame_stride, "an int >= 1")
        require_choice(self.init_split, "--init-split", [None, "train", "eval"])
        require(len(self.encoders) > 0 and all(e in ENCODER_NAMES for e in self.encoders), "--encoders",
                list(self.encoders), f"one or more of {', '.join(ENCODER_NAMES)}")
        require(len(set(self.encoders)) == len(self.encoders), "--encoders", list(self.encoders),
                "a list without duplicates")
        require(self.num_frames >= 1, "--num-frames", self.num_frames, "an int >= 1, e.g. 64")
        require(self.num_cuts >= 2, "--num-cuts", self.num_cuts, "an int >= 2, e.g. 10")
        require(self.segments >= 1, "--segments", self.segments, "an int >= 1")
        require(self.crop_size is None or self.crop_size >= 16, "--crop-size", self.crop_size,
                "None (the model's own) or an int >= 16, e.g. 64")
        require(self.batch_size >= 0, "--batch-size", self.batch_size, "0 (automatic) or an int >= 1")
        require_choice(self.reward_preset, "--reward-preset", ["official", "paper"])
        require_choice(self.centres, "--centres", [None, *get_args(CentreMethod)])
        require(self.alpha is None or 0.0 <= self.alpha <= 1.0, "--alpha", self.alpha,
                "None (the preset's) or a float in [0, 1], e.g. 0.8")
        require(self.max_trajectories is None or self.max_trajectories >= 1, "--max-trajectories",
                self.max_trajectories, "None (all) or an int >= 1")
