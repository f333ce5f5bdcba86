"""Pixel baseline: the sampled frames themselves, downsampled and flattened (the paper's weakest baseline)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from srpo.config.encoder import EncoderConfig
from srpo.reward.frames import preprocess_frames, sample_videos


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

    def encode(self, videos: Sequence[np.ndarray]) -> np.ndarray:
        """Embed B videos.

        Args:
            videos: B arrays (T, H, W, 3) uint8, T >= 1.

        Returns:
            (B, K · size² · 3) float32, frame-major then row, column, channel (channel-first per frame).
        """
        import torch

        sampled = sample_videos(videos, self.config.num_frames, self.config.rotate_180)
        out = np.empty((len(sampled.frames), self.dim), dtype=np.float32)
        with torch.inference_mode():
            for i, frames in enumerate(sampled.frames):
                # Shrink the short side straight to `size` (antialiased) and centre-crop: no 256/224 margin, the
                # baseline should see the whole frame.
                x = preprocess_frames(
                    torch.from_numpy(frames), self.size, resize_size=self.size, mean=(0.0, 0.0, 0.0),
                    std=(1.0, 1.0, 1.0),
                )
                out[i] = x.reshape(-1).numpy()
        return out
