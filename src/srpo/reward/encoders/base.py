"""The video-encoder interface: videos in, one (D,) float32 vector per video out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np


class VideoEncoder(Protocol):
    """Implementations live beside this file (V-JEPA 2, EfficientNet-lite0, pixel baseline)."""

    dim: int

    def encode(self, videos: Sequence[np.ndarray]) -> np.ndarray:
        """Embed each (T, H, W, 3) uint8 video into a (len(videos), dim) float32 array."""
        ...
