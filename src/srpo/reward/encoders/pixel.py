"""Pixel baseline: the sampled frames themselves, downsampled and flattened (the paper's weakest baseline)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from srpo.config.encoder import EncoderConfig
from srpo.reward.frames import prefix_frame_rows, preprocess_frames, sample_videos


class PixelEncoder:
    """Embeds a video as its K sampled frames, each shrunk to size × size, scaled to [0, 1] and flattened.

    No model and no normalisation statistics: distances in this space are plain pixel distances, which is why
    the paper uses it as the floor of its reward-quality table.

    Attributes:
        dim: K · size · size · 3.
    """

    def __init__(self, config: EncoderConfig) -> None:
        if config.name != "pixel":
            raise ValueError(f"PixelEncoder needs encoder.name='pixel', got {config.name!r}")
        self.config = config
        self.size = config.crop_size if config.crop_size is not None else config.pixel_size
        self.dim = config.num_frames * self.size * self.size * 3

    def _downsample(self, frames: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 → (N, 3 · size²) float32 in [0, 1]."""
        import torch

        with torch.inference_mode():
            # Shrink the short side straight to `size` (antialiased) and centre-crop: no 256/224 margin, the
            # baseline should see the whole frame.
            x = preprocess_frames(
                torch.from_numpy(frames), self.size, resize_size=self.size, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)
            )
        return x.reshape(frames.shape[0], -1).numpy()

    def encode(self, videos: Sequence[np.ndarray]) -> np.ndarray:
        """Embed B videos.

        Args:
            videos: B arrays (T, H, W, 3) uint8, T >= 1.

        Returns:
            (B, K · size² · 3) float32, frame-major, then channel, row, column.
        """
        sampled = sample_videos(videos, self.config.num_frames, self.config.rotate_180)
        return np.stack([self._downsample(f).reshape(-1) for f in sampled.frames])

    def encode_prefixes(self, video: np.ndarray, lengths: Sequence[int]) -> np.ndarray:
        """Embeddings of the prefixes video[:L], equal to encode([video[:L] for L in lengths]), downsampling
        each distinct frame once.

        Args:
            video: (T, H, W, 3) uint8.
            lengths: C prefix lengths in [1, T].

        Returns:
            (C, dim) float32.
        """
        frames, rows = prefix_frame_rows(video, lengths, self.config.num_frames, self.config.rotate_180)
        small = self._downsample(frames)
        return np.stack([small[r].reshape(-1) for r in rows])
