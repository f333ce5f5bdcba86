"""Rollout videos a person can read at a glance: a banner in the outcome's colour with a bar for the reward.

Text is in the file name (matplotlib-free, no font dependency); the banner's colour says success (green) or
failure (red) and its white bar's length is the reward in [0, 1].
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def label_frames(frames: np.ndarray, reward: float, success: bool, banner_px: int | None = None) -> np.ndarray:
    """Add a banner above every frame.

    Args:
        frames: (F, H, W, 3) uint8.
        reward: Reward in [0, 1] drawn as the bar's length (clipped).
        success: Banner colour: green for success, red for failure.
        banner_px: Banner height; default max(4, H // 10).

    Returns:
        (F, H + banner_px, W, 3) uint8.
    """
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (F, H, W, 3), got {frames.shape}")
    if banner_px is not None and banner_px < 0:
        raise ValueError(f"banner_px={banner_px} must be >= 0 (0 or None: max(4, H // 10))")
    f, h, w, _ = frames.shape
    bh = banner_px or max(4, h // 10)
    banner = np.zeros((bh, w, 3), dtype=np.uint8)
    banner[:] = (40, 160, 60) if success else (180, 40, 40)
    filled = int(np.rint(np.clip(reward, 0.0, 1.0) * w))
    banner[bh // 4 : bh - bh // 4, :filled] = 255
    return np.concatenate([np.broadcast_to(banner, (f, bh, w, 3)), frames], axis=1)


def write_labelled_video(
    path: str | Path, frames: np.ndarray, title: str, reward: float, success: bool, fps: int = 10
) -> Path:
    """Write an mp4 of the frames with the outcome banner; `title` goes into the file's metadata comment.

    Needs imageio with ffmpeg (`pip install 'srpo[logging]'`); without it the frames are written as a .npz next
    to the requested path, so no run fails for want of a video codec.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    labelled = label_frames(frames, reward, success)
    # Even sizes keep H.264 encoders happy.
    h, w = labelled.shape[1] // 2 * 2, labelled.shape[2] // 2 * 2
    labelled = np.ascontiguousarray(labelled[:, :h, :w])
    try:
        import imageio.v2 as imageio

        with imageio.get_writer(path, fps=fps, codec="libx264", quality=7, macro_block_size=1,
                                output_params=["-metadata", f"comment={title}"]) as writer:
            for frame in labelled:
                writer.append_data(frame)  # type: ignore[attr-defined]
        return path
    except (ImportError, RuntimeError, OSError):
        fallback = path.with_suffix(".npz")
        np.savez_compressed(fallback, frames=labelled, title=title)
        return fallback
