"""Frame handling shared by every video encoder: validation, temporal sampling, rotation, torch preprocessing.

A video is a uint8 array (T, H, W, 3). Every encoder sees the same K frames of it:

  * T >= K: indices np.linspace(0, T − 1, K, dtype=int), exactly the official call (siiRL video_emb.py). numpy
    computes the float grid and truncates toward zero, so index i = floor(i · (T − 1) / (K − 1)) up to float
    round-off; we call the same function instead of re-deriving the formula so round-off matches bit for bit.
  * T < K: the clip is looped cyclically, indices np.resize(np.arange(T), K) = [0, 1, …, T−1, 0, 1, …]
    (np.resize repeats the flattened input in order; it never reflects or pads with the last frame).
  * T == 0: an error naming the video, unless the caller asks to skip empty videos; then they are left out and a
    validity mask says which — never a silently zero-filled embedding (the official code gives such a
    trajectory a zero vector).

Preprocessing follows the vjepa2 evaluation transform: resize the short side to int(crop · 256 / 224) with
bilinear interpolation, centre-crop crop × crop, scale to [0, 1], normalise with the ImageNet mean/std.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

    from srpo.reward.encoders.base import VideoEncoder

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
DEFAULT_NUM_FRAMES = 64


def check_video(video: np.ndarray, index: int = 0) -> None:
    """Raise ValueError unless `video` is a uint8 (T, H, W, 3) array (T may be 0).

    Args:
        video: The video to check.
        index: Its position in the batch, for the message.
    """
    if not isinstance(video, np.ndarray):
        raise ValueError(f"video {index} must be a numpy array, got {type(video).__name__}")
    if video.ndim != 4 or video.shape[-1] != 3:
        raise ValueError(f"video {index} must have shape (T, H, W, 3), got {video.shape}")
    if video.dtype != np.uint8:
        raise ValueError(f"video {index} must be uint8 (0..255), got dtype {video.dtype}")
    if video.shape[0] > 0 and (video.shape[1] == 0 or video.shape[2] == 0):
        raise ValueError(f"video {index} has empty frames of shape {video.shape[1:]}")


def sample_frame_indices(num_video_frames: int, num_samples: int = DEFAULT_NUM_FRAMES) -> np.ndarray:
    """Indices of the K frames an encoder sees (see the module docstring for the exact rule).

    Args:
        num_video_frames: T, the number of frames in the video, >= 1.
        num_samples: K, the number of frames to sample, >= 1.

    Returns:
        (K,) int64 indices into the video, non-decreasing for T >= K, cyclic for T < K.
    """
    if num_video_frames < 1:
        raise ValueError(f"cannot sample frames from a video with {num_video_frames} frames")
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    if num_video_frames >= num_samples:
        return np.linspace(0, num_video_frames - 1, num=num_samples, dtype=int).astype(np.int64)
    return np.resize(np.arange(num_video_frames, dtype=np.int64), num_samples)


def prefix_frame_rows(
    video: np.ndarray, lengths: Sequence[int], num_samples: int, rotate_180: bool = False
) -> tuple[np.ndarray, list[np.ndarray]]:
    """The distinct frames that the prefixes video[:L] sample, and each prefix's rows into them.

    Frame features do not depend on the other frames, so an encoder that embeds the returned frames once and
    reads each prefix's rows gets the same result as encoding every prefix on its own (a 10-cut progress curve
    costs about one trajectory's worth of frames, not ten).

    Args:
        video: (T, H, W, 3) uint8.
        lengths: C prefix lengths, each in [1, T].
        num_samples: K frames sampled per prefix (`sample_frame_indices`).
        rotate_180: Rotate the returned frames by 180°.

    Returns:
        frames: (U, H, W, 3) uint8, the U distinct sampled frames in time order.
        rows: C arrays (K,) int64 of row indices into `frames`, one per prefix.
    """
    check_video(video)
    index_sets = []
    for length in lengths:
        if not 1 <= length <= video.shape[0]:
            raise ValueError(f"prefix length {length} is outside [1, {video.shape[0]}]")
        index_sets.append(sample_frame_indices(int(length), num_samples))
    needed = np.unique(np.concatenate(index_sets))
    frames = video[needed]
    if rotate_180:
        frames = np.ascontiguousarray(frames[:, ::-1, ::-1])
    row_of = np.full(video.shape[0], -1, dtype=np.int64)
    row_of[needed] = np.arange(needed.size)
    return frames, [row_of[idx] for idx in index_sets]


def sample_frames(video: np.ndarray, num_samples: int = DEFAULT_NUM_FRAMES, rotate_180: bool = False) -> np.ndarray:
    """The K frames an encoder sees, optionally rotated by 180°.

    Args:
        video: (T, H, W, 3) uint8, T >= 1.
        num_samples: K.
        rotate_180: Flip both image axes ([::-1, ::-1], the official LIBERO fix for OpenGL's origin).

    Returns:
        (K, H, W, 3) uint8, a new contiguous array.
    """
    check_video(video)
    frames = video[sample_frame_indices(video.shape[0], num_samples)]
    if rotate_180:
        frames = frames[:, ::-1, ::-1]
    return np.ascontiguousarray(frames)


@dataclass
class SampledVideos:
    """Sampled frames of the non-empty videos of a batch.

    Attributes:
        frames: One (K, H, W, 3) uint8 array per valid video, in input order (sizes may differ per video).
        valid: (B,) bool, False where the input video had zero frames and was skipped.
    """

    frames: list[np.ndarray]
    valid: np.ndarray


def sample_videos(
    videos: Sequence[np.ndarray],
    num_samples: int = DEFAULT_NUM_FRAMES,
    rotate_180: bool = False,
    skip_empty: bool = False,
) -> SampledVideos:
    """Validate and sample a batch of videos.

    Args:
        videos: B arrays (T_b, H_b, W_b, 3) uint8.
        num_samples: K frames per video.
        rotate_180: Rotate every frame by 180°.
        skip_empty: Leave zero-frame videos out (and mark them in `valid`) instead of raising.

    Returns:
        SampledVideos with len(frames) == valid.sum().

    Raises:
        ValueError: on a malformed video, or on a zero-frame video when skip_empty is False (naming it).
    """
    if len(videos) == 0:
        raise ValueError("no videos to encode: pass at least one (T, H, W, 3) uint8 video")
    valid = np.ones(len(videos), dtype=bool)
    frames: list[np.ndarray] = []
    for i, video in enumerate(videos):
        check_video(video, i)
        if video.shape[0] == 0:
            if not skip_empty:
                raise ValueError(
                    f"video {i} has zero frames; a trajectory without frames cannot be embedded. Record at least "
                    "one frame, or ask to skip empty videos (skip_empty=True) and exclude them from the reward"
                )
            valid[i] = False
            continue
        frames.append(sample_frames(video, num_samples, rotate_180))
    return SampledVideos(frames=frames, valid=valid)


def encode_skipping_empty(encoder: VideoEncoder, videos: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Embed the non-empty videos of a batch and say which ones they were.

    Args:
        encoder: Any VideoEncoder.
        videos: B arrays (T_b, H, W, 3) uint8; some may have T_b == 0.

    Returns:
        embeddings (n_valid, D) float32 of the non-empty videos in input order, and valid (B,) bool.
    """
    valid = np.array([np.asarray(v).shape[0] > 0 for v in videos], dtype=bool)
    if not valid.any():
        return np.zeros((0, encoder.dim), dtype=np.float32), valid
    kept = [v for v, ok in zip(videos, valid, strict=True) if ok]
    return encoder.encode(kept), valid


def resize_size_for_crop(crop_size: int) -> int:
    """Short side before the centre crop: int(crop · 256 / 224) (384 → 438, 256 → 292, 224 → 256)."""
    return int(256.0 / 224 * crop_size)


def preprocess_frames(
    frames: torch.Tensor,
    crop_size: int,
    resize_size: int | None = None,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> torch.Tensor:
    """Resize, centre-crop, scale and normalise a stack of frames, on the frames' device.

    The short side becomes `resize_size` and the long side int(resize_size · long / short) (the vjepa2
    transform's rule); bilinear with align_corners=False, antialiased only when shrinking (enlarging is
    unaffected by antialias; shrinking without it aliases, unlike PIL/cv2 area-aware resizing). The crop offset is
    round((size − crop) / 2).

    Args:
        frames: (N, H, W, 3) uint8 tensor.
        crop_size: Side of the square output.
        resize_size: Short side before cropping; None for int(crop_size · 256 / 224).
        mean: Per-channel mean subtracted after scaling to [0, 1].
        std: Per-channel std divided by after subtracting the mean.

    Returns:
        (N, 3, crop_size, crop_size) float32.
    """
    import torch
    import torch.nn.functional as F

    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (N, H, W, 3), got {tuple(frames.shape)}")
    if frames.dtype != torch.uint8:
        raise ValueError(f"frames must be uint8, got {frames.dtype}")
    size = resize_size_for_crop(crop_size) if resize_size is None else resize_size
    if size < crop_size:
        raise ValueError(f"resize_size={size} is smaller than crop_size={crop_size}")
    _, h, w, _ = frames.shape
    if h <= w:
        new_h, new_w = size, int(size * w / h)
    else:
        new_h, new_w = int(size * h / w), size
    x = frames.permute(0, 3, 1, 2).float()
    if (new_h, new_w) != (h, w):
        shrinking = new_h < h or new_w < w
        x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=shrinking)
    top = round((new_h - crop_size) / 2.0)
    left = round((new_w - crop_size) / 2.0)
    x = x[:, :, top : top + crop_size, left : left + crop_size]
    x = x / 255.0
    mean_t = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return ((x - mean_t) / std_t).contiguous()


def resolve_device(device: str) -> torch.device:
    """"auto" → cuda when available, else cpu; anything else as given (cuda without CUDA is an error)."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"encoder.device={device!r} but CUDA is not available: set encoder.device='cpu'")
    return resolved


def batches(num_items: int, batch_size: int) -> list[slice]:
    """Consecutive slices covering range(num_items), each at most batch_size long."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return [slice(i, min(i + batch_size, num_items)) for i in range(0, num_items, batch_size)]
