"""Video encoders: videos in, one (D,) float32 vector per video out (see base.VideoEncoder).

`make_encoder(config)` builds the one named by `config.name`. Each implementation imports torch, transformers or
the EfficientNet package only when it is built, so the reward core stays importable without them.
"""

from __future__ import annotations

from srpo.config.encoder import EncoderConfig
from srpo.reward.encoders.base import VideoEncoder


def make_encoder(config: EncoderConfig) -> VideoEncoder:
    """Build the encoder named by `config.name`.

    Args:
        config: Encoder configuration ("vjepa2" needs `weights`).

    Returns:
        A VideoEncoder ready to `encode` (B, T, H, W, 3) uint8 videos.
    """
    if config.name == "vjepa2":
        from srpo.reward.encoders.vjepa2 import VJEPA2Encoder

        return VJEPA2Encoder.from_config(config)
    elif config.name == "efficientnet":
        from srpo.reward.encoders.efficientnet import EfficientNetEncoder

        return EfficientNetEncoder(config)
    elif config.name == "pixel":
        from srpo.reward.encoders.pixel import PixelEncoder

        return PixelEncoder(config)
    else:
        raise ValueError(f"unknown encoder.name {config.name!r}: choose 'vjepa2', 'efficientnet' or 'pixel'")


__all__ = ["EncoderConfig", "VideoEncoder", "make_encoder"]
