"""V-JEPA 2 through transformers' VJEPA2Model: the paper's world-model encoder.

Only the encoder runs (`skip_predictor=True`); a trajectory's vector is the mean over all output tokens of its
K sampled frames (official: ViT-g/16 at 384², 64 frames, 1408-d). Weights load offline from

  * a transformers directory or a model id already in the local Hugging Face cache (`from_pretrained` with
    local_files_only=True), or
  * an original facebookresearch/vjepa2 checkpoint (`torch.load(path, weights_only=True)["encoder"]`), whose
    keys are mapped onto the transformers model with a strict check: any missing, unexpected or mis-shaped key
    is reported, never skipped (the official code loads with strict=False and only logs the message).

Where to get the weights: `srpo.config.encoder.VJEPA2_WEIGHTS_HELP`.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from srpo.config.encoder import VJEPA2_WEIGHTS_HELP, EncoderConfig
from srpo.errors import InputFileError, MissingFileError
from srpo.files import load_torch
from srpo.reward.frames import batches, preprocess_frames, resolve_device, sample_videos

if TYPE_CHECKING:
    import torch
    from transformers import VJEPA2Config, VJEPA2Model

# The original checkpoints do not record the head count; these are the published widths.
HEADS_BY_WIDTH: dict[int, int] = {1024: 16, 1280: 16, 1408: 22}
# Prefixes the original training wrappers put in front of the encoder keys (DDP's `module.`, the multi-crop
# wrapper's `backbone.`), stripped from the front of each key.
WRAPPER_PREFIXES = ("module.", "backbone.")
# Trajectories per forward pass on the CPU when batch_size is automatic.
CPU_BATCH_SIZE = 2
# Largest automatic CUDA batch; beyond it throughput no longer improves and latency grows.
MAX_AUTO_BATCH = 32

_BLOCK_KEY = re.compile(r"^blocks\.(\d+)\.(.+)$")
_LAYER_KEY = re.compile(r"^encoder\.layer\.(\d+)\.(.+)$")
# Inside one transformer block: original name → transformers name (qkv is split separately).
_BLOCK_RENAMES = {
    "norm1.": "norm1.",
    "norm2.": "norm2.",
    "attn.proj.": "attention.proj.",
    "mlp.fc1.": "mlp.fc1.",
    "mlp.fc2.": "mlp.fc2.",
}
_TOP_RENAMES = {
    "patch_embed.proj.weight": "encoder.embeddings.patch_embeddings.proj.weight",
    "patch_embed.proj.bias": "encoder.embeddings.patch_embeddings.proj.bias",
    "norm.weight": "encoder.layernorm.weight",
    "norm.bias": "encoder.layernorm.bias",
}


class CheckpointKeyError(InputFileError, ValueError):
    """An original checkpoint whose keys or shapes do not match the transformers encoder."""


def strip_wrapper_prefixes(state: Mapping[str, Any]) -> dict[str, Any]:
    """Remove leading `module.` / `backbone.` (in any order and number) from every key."""
    out: dict[str, Any] = {}
    for key, value in state.items():
        stripped = key
        changed = True
        while changed:
            changed = False
            for prefix in WRAPPER_PREFIXES:
                if stripped.startswith(prefix):
                    stripped = stripped[len(prefix) :]
                    changed = True
        if stripped in out:
            raise CheckpointKeyError(f"keys {key!r} and another collapse to {stripped!r} after stripping prefixes")
        out[stripped] = value
    return out


def original_to_hf_state_dict(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Map original vjepa2 encoder keys onto VJEPA2Model keys.

    blocks.i.attn.qkv.{weight,bias} (3D, ...) is split in order into encoder.layer.i.attention.{query,key,value}.

    Args:
        state: Original encoder state dict, wrapper prefixes already stripped.

    Returns:
        The mapped state dict and the original keys that have no counterpart (to be reported as unexpected).
    """
    mapped: dict[str, torch.Tensor] = {}
    unmapped: list[str] = []
    for key, value in state.items():
        if key in _TOP_RENAMES:
            mapped[_TOP_RENAMES[key]] = value
            continue
        match = _BLOCK_KEY.match(key)
        if match is None:
            unmapped.append(key)
            continue
        layer, rest = match.group(1), match.group(2)
        prefix = f"encoder.layer.{layer}."
        if rest in ("attn.qkv.weight", "attn.qkv.bias"):
            if value.shape[0] % 3 != 0:
                raise CheckpointKeyError(f"{key} has shape {tuple(value.shape)}; its first dim must be 3 · hidden")
            suffix = rest.rsplit(".", 1)[1]
            for name, part in zip(("query", "key", "value"), value.chunk(3, dim=0), strict=True):
                mapped[f"{prefix}attention.{name}.{suffix}"] = part.contiguous()
            continue
        for old, new in _BLOCK_RENAMES.items():
            if rest.startswith(old):
                mapped[prefix + new + rest[len(old) :]] = value
                break
        else:
            unmapped.append(key)
    return mapped, unmapped


def hf_to_original_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of `original_to_hf_state_dict` over the encoder keys (query/key/value fused back into qkv).

    Args:
        state: A VJEPA2Model state dict (predictor keys are ignored).

    Returns:
        Original-format encoder keys (no wrapper prefixes).
    """
    import torch

    top_inverse = {v: k for k, v in _TOP_RENAMES.items()}
    block_inverse = {v: k for k, v in _BLOCK_RENAMES.items()}
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key in top_inverse:
            out[top_inverse[key]] = value
            continue
        match = _LAYER_KEY.match(key)
        if match is None:
            continue
        layer, rest = match.group(1), match.group(2)
        if rest.startswith(("attention.query.", "attention.key.", "attention.value.")):
            continue
        for new, old in block_inverse.items():
            if rest.startswith(new):
                out[f"blocks.{layer}.{old}{rest[len(new):]}"] = value
                break
    layers = {int(m.group(1)) for k in state if (m := _LAYER_KEY.match(k))}
    for layer in sorted(layers):
        for suffix in ("weight", "bias"):
            parts = [state.get(f"encoder.layer.{layer}.attention.{n}.{suffix}") for n in ("query", "key", "value")]
            if all(p is not None for p in parts):
                out[f"blocks.{layer}.attn.qkv.{suffix}"] = torch.cat(parts, dim=0)  # type: ignore[arg-type]
    return out


def vjepa2_config_from_original(
    state: Mapping[str, torch.Tensor], crop_size: int, num_frames: int, num_heads: int | None = None
) -> VJEPA2Config:
    """The VJEPA2Config of an original encoder state dict (prefixes stripped).

    Width, depth, patch and tubelet sizes, MLP width and qkv bias are read from the tensors; the head count and
    the crop size are not recorded in the file and come from the caller (heads default by width).

    Args:
        state: Original encoder state dict.
        crop_size: Input side the checkpoint was trained at (256 for ViT-L/H/g, 384 for the *-384 models).
        num_frames: Frames per clip (sets the config's frames_per_clip).
        num_heads: Attention heads; None infers them from the width (HEADS_BY_WIDTH).

    Returns:
        A VJEPA2Config with SDPA attention.
    """
    from transformers import VJEPA2Config

    if "patch_embed.proj.weight" not in state:
        raise CheckpointKeyError(
            "not a vjepa2 encoder state dict: 'patch_embed.proj.weight' is missing (first keys: "
            f"{sorted(state)[:5]})"
        )
    hidden, in_chans, tubelet, patch, _ = state["patch_embed.proj.weight"].shape
    depth = 1 + max((int(m.group(1)) for k in state if (m := _BLOCK_KEY.match(k))), default=-1)
    if depth == 0:
        raise CheckpointKeyError("the checkpoint has no transformer blocks ('blocks.<i>.*' keys)")
    if num_heads is None:
        if hidden not in HEADS_BY_WIDTH:
            raise CheckpointKeyError(
                f"cannot infer the head count of a width-{hidden} encoder: set encoder.vjepa2_num_heads "
                f"(known widths: {HEADS_BY_WIDTH})"
            )
        num_heads = HEADS_BY_WIDTH[hidden]
    mlp_hidden = int(state["blocks.0.mlp.fc1.weight"].shape[0])
    mlp_ratio = mlp_hidden / hidden
    # transformers sizes the MLP as int(hidden · ratio); nudge the ratio up if float round-off would truncate.
    while int(hidden * mlp_ratio) < mlp_hidden:
        mlp_ratio = math.nextafter(mlp_ratio, math.inf)
    config = VJEPA2Config(
        hidden_size=int(hidden),
        num_hidden_layers=depth,
        num_attention_heads=num_heads,
        in_chans=int(in_chans),
        tubelet_size=int(tubelet),
        patch_size=int(patch),
        crop_size=crop_size,
        frames_per_clip=num_frames,
        mlp_ratio=mlp_ratio,
        qkv_bias="blocks.0.attn.qkv.bias" in state,
    )
    config._attn_implementation = "sdpa"
    return config


def load_vjepa2_original(
    path: str, crop_size: int, num_frames: int, num_heads: int | None = None
) -> VJEPA2Model:
    """Load an original vjepa2 checkpoint file into a VJEPA2Model, strictly.

    Args:
        path: File saved by the vjepa2 training code ({"encoder": state_dict, ...}).
        crop_size: Input side the checkpoint was trained at.
        num_frames: Frames per clip.
        num_heads: Attention heads (None: inferred from the width).

    Returns:
        The model in eval mode on the CPU, predictor randomly initialised (it never runs).

    Raises:
        FileNotFoundError: with instructions when the file does not exist.
        CheckpointKeyError: listing missing, unexpected and mis-shaped keys.
    """
    from transformers import VJEPA2Model

    if not os.path.isfile(path):
        raise MissingFileError(f"no V-JEPA 2 checkpoint file at {path}. {VJEPA2_WEIGHTS_HELP}")
    checkpoint = load_torch(path, "torch checkpoint",
                            hint=f"it is truncated, damaged or of another kind. {VJEPA2_WEIGHTS_HELP}")
    if not isinstance(checkpoint, Mapping) or "encoder" not in checkpoint:
        keys = sorted(checkpoint)[:10] if isinstance(checkpoint, Mapping) else type(checkpoint).__name__
        raise CheckpointKeyError(f"{path} has no 'encoder' entry (found {keys}); is it a vjepa2 checkpoint?")
    state = strip_wrapper_prefixes(checkpoint["encoder"])
    config = vjepa2_config_from_original(state, crop_size, num_frames, num_heads)
    model = VJEPA2Model(config)
    mapped, unmapped = original_to_hf_state_dict(state)
    expected = {k: v.shape for k, v in model.state_dict().items() if k.startswith("encoder.")}
    missing = sorted(set(expected) - set(mapped))
    unexpected = sorted(unmapped + [k for k in mapped if k not in expected])
    mis_shaped = sorted(
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(expected[k])}"
        for k, v in mapped.items()
        if k in expected and v.shape != expected[k]
    )
    if missing or unexpected or mis_shaped:
        raise CheckpointKeyError(
            f"{path} does not match the V-JEPA 2 encoder ({config.hidden_size}-d, {config.num_hidden_layers} "
            f"layers): {len(missing)} missing {missing[:20]}, {len(unexpected)} unexpected {unexpected[:20]}, "
            f"{len(mis_shaped)} mis-shaped {mis_shaped[:20]}"
        )
    # strict=False only because the predictor is absent from the file; the encoder was checked key by key above.
    model.load_state_dict(mapped, strict=False)
    return model.eval()


def load_vjepa2_hf(name_or_path: str) -> VJEPA2Model:
    """Load a transformers V-JEPA 2 from a local directory or the local Hugging Face cache, offline.

    Args:
        name_or_path: A directory with config.json and weights, or a model id already in the local cache.

    Returns:
        The model in eval mode on the CPU, in float32, with SDPA attention.
    """
    import torch
    from transformers import VJEPA2Model

    try:
        model = VJEPA2Model.from_pretrained(
            name_or_path, local_files_only=True, attn_implementation="sdpa", dtype=torch.float32
        )
    except (OSError, ValueError) as err:
        # OSError: not a directory and not in the cache; ValueError: a path-like string that is not a valid id.
        raise MissingFileError(
            f"cannot load V-JEPA 2 from {name_or_path!r} offline ({err}). {VJEPA2_WEIGHTS_HELP}"
        ) from err
    return model.eval()


def load_vjepa2(config: EncoderConfig) -> VJEPA2Model:
    """Load the V-JEPA 2 model named by `config.weights` in `config.weights_format`."""
    if config.weights is None:
        raise MissingFileError(f"encoder.weights is not set. {VJEPA2_WEIGHTS_HELP}")
    fmt = config.weights_format
    if fmt == "auto":
        fmt = "original" if os.path.isfile(config.weights) else "hf"
    if fmt == "original":
        # The crop of an original checkpoint is not in the file: take the config's, else the official 384.
        crop = config.crop_size if config.crop_size is not None else 384
        return load_vjepa2_original(config.weights, crop, config.num_frames, config.vjepa2_num_heads)
    if fmt == "hf":
        return load_vjepa2_hf(config.weights)
    raise ValueError(f"unknown encoder.weights_format {fmt!r}: choose 'auto', 'hf' or 'original'")


def activation_bytes_per_video(config: VJEPA2Config, num_frames: int, bytes_per_value: int = 2) -> int:
    """Rough peak activation memory of one video in one encoder layer at inference (SDPA, no attention matrix).

    Counts the residual stream, qkv, the attention output and the 4× MLP hidden, plus the float32 input clip.
    """
    patch = int(config.patch_size)  # type: ignore[arg-type]
    num_tokens = (max(num_frames, config.tubelet_size) // config.tubelet_size) * (config.crop_size // patch) ** 2
    per_layer = num_tokens * config.hidden_size * (1 + 3 + 1 + 1 + config.mlp_ratio) * bytes_per_value
    clip = num_frames * 3 * config.crop_size**2 * 4
    return int(2 * per_layer + clip)


class VJEPA2Encoder:
    """Trajectory embeddings from V-JEPA 2: mean over all encoder output tokens of the K sampled frames.

    Attributes:
        dim: The model's hidden size (1408 for ViT-g, 1024 for ViT-L).
    """

    def __init__(self, model: VJEPA2Model, config: EncoderConfig) -> None:
        if config.name != "vjepa2":
            raise ValueError(f"VJEPA2Encoder needs encoder.name='vjepa2', got {config.name!r}")
        crop = int(model.config.crop_size)
        if config.crop_size is not None and config.crop_size != crop:
            # RoPE positions come from config.crop_size // patch_size, so another input size would be misplaced.
            raise ValueError(
                f"encoder.crop_size={config.crop_size} but the V-JEPA 2 model was built for {crop}: set "
                f"encoder.crop_size={crop} or None"
            )
        self.config = config
        self.crop_size = crop
        self.device = resolve_device(config.device)
        self.model = model
        self.model.to(self.device)  # type: ignore[arg-type]
        self.model.eval()
        self.dim = int(model.config.hidden_size)

    @classmethod
    def from_config(cls, config: EncoderConfig) -> VJEPA2Encoder:
        """Load the weights named by `config` and wrap them."""
        return cls(load_vjepa2(config), config)

    def auto_batch_size(self) -> int:
        """Trajectories per forward: from free CUDA memory (60 % of it) or CPU_BATCH_SIZE on the CPU."""
        if self.config.batch_size > 0:
            return self.config.batch_size
        if self.device.type != "cuda":
            return CPU_BATCH_SIZE
        import torch

        free, _ = torch.cuda.mem_get_info(self.device)
        bytes_per_value = 4 if self.config.dtype == "float32" else 2
        per_video = activation_bytes_per_video(self.model.config, self.config.num_frames, bytes_per_value)
        return int(max(1, min(MAX_AUTO_BATCH, (0.6 * free) // per_video)))

    def embed_clips(self, clips: torch.Tensor) -> torch.Tensor:
        """Mean output token of preprocessed clips.

        Args:
            clips: (B, K, 3, crop, crop) float32 normalised frames on the model's device.

        Returns:
            (B, D) float32.
        """
        import torch

        use_autocast = self.device.type == "cuda" and self.config.dtype != "float32"
        with torch.autocast(self.device.type, dtype=getattr(torch, self.config.dtype), enabled=use_autocast):
            out = self.model(pixel_values_videos=clips, skip_predictor=True)
        return out.last_hidden_state.float().mean(dim=1)

    def encode(self, videos: Sequence[np.ndarray]) -> np.ndarray:
        """Embed B videos.

        Args:
            videos: B arrays (T, H, W, 3) uint8, T >= 1.

        Returns:
            (B, D) float32.
        """
        import torch

        sampled = sample_videos(videos, self.config.num_frames, self.config.rotate_180)
        out = np.empty((len(sampled.frames), self.dim), dtype=np.float32)
        with torch.inference_mode():
            for batch in batches(len(sampled.frames), self.auto_batch_size()):
                clips = torch.stack(
                    [
                        preprocess_frames(torch.from_numpy(f).to(self.device), self.crop_size)
                        for f in sampled.frames[batch]
                    ]
                )
                out[batch] = self.embed_clips(clips).cpu().numpy()
        return out
