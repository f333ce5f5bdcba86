"""OpenVLA-OFT adapter: a local OpenVLA-OFT checkpoint (Llama-2 7B + fused vision) as an srpo `Policy`.

One forward pass decodes all chunk_size × action_dim = 56 action tokens in parallel, the OpenVLA-OFT way:

    text ids   = [BOS, "In: What action should the robot take to {instruction}?\\nOut:", "▁"(29871)]
                 + 56 placeholders + [STOP]
    embeddings = text embeddings with the 56 placeholder embeddings zeroed
    sequence   = [BOS, image patches (projected), rest of the text]          (Prismatic inserts the patches)
    logits[t]  = LM logits at sequence position num_patches + num_prompt_tokens + t,  t = 0 .. 55
                 (the position *before* placeholder t: the usual one-step shift of a causal LM head)

num_prompt_tokens counts the text ids before the placeholders minus BOS, as in OpenVLA-OFT's
`predict_action`. Attention is bidirectional over the whole sequence by default: OpenVLA-OFT's transformers
fork runs Llama with is_causal=False and no mask (openvla-oft issue #89), which we reproduce on stock
transformers with an all-zero additive 4-D mask; `attention="causal"` restores the plain causal LM.

Action bins live at the end of the Llama vocabulary: bin b ∈ [0, 256) is token id vocab_size − 1 − b, where
vocab_size is the tokenizer's 32000 (the embedding matrix is padded to 32064; OpenVLA's `self.vocab_size =
text_config.vocab_size − pad_to_multiple_of`). So the bin logits are logits[..., vocab_size − 256 :
vocab_size] reversed, and sampling is restricted to that slice: the model cannot emit a non-action token.
Decoding uses OpenVLA's 255 bin centres and un-normalises with the checkpoint's dataset_statistics.json q01/q99
(gripper: [0, 1] → binarise → invert; see srpo.policies.tokenizer, convention "openvla").

The real checkpoint's remote code (modeling_prismatic.py, shipped in the checkpoint directory) is loaded with
trust_remote_code from that directory only (local_files_only); OpenVLA-OFT's code also imports the `prismatic`
package from the openvla-oft repository, which must be installed on the GPU machine. Without real weights,
`build_tiny_vla` makes a randomly initialised model with the same module layout (vision_backbone, projector,
language_model = a real `LlamaForCausalLM`) on which the tests check layout, slicing and log-prob maths.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from srpo.config.base import ConfigError
from srpo.config.policy import PolicyConfig
from srpo.errors import InputFileError
from srpo.files import read_json
from srpo.manifest import verify_manifest, write_manifest
from srpo.policies.base import ActionSample, PolicyInput, TrainablePolicy, torch_dtype
from srpo.policies.compact import categorical_log_probs, sample_tokens
from srpo.policies.tokenizer import ActionTokenizer
from srpo.types import ACTION_DIM, DEFAULT_CHUNK_SIZE, DEFAULT_NUM_BINS

PROMPT_TEMPLATE = "In: What action should the robot take to {instruction}?\nOut:"
# Llama's "▁" token: OpenVLA's training prompts end with it after "Out:", so predict_action appends it.
EMPTY_TOKEN_ID = 29871
STOP_TOKEN_ID = 2  # Llama </s>, OpenVLA-OFT's STOP_INDEX
PLACEHOLDER_TOKEN_ID = 1  # any id: placeholder embeddings are zeroed before the LM sees them
OPENVLA_VOCAB_SIZE = 32000
OPENVLA_IMAGE_SIZE = 224
# OpenVLA-OFT trains LIBERO with random crops of 90 % of the area and evaluates on the matching centre crop.
CENTER_CROP_AREA = 0.9

AttentionKind = Literal["bidirectional", "causal"]
Tokenize = Callable[[str], list[int]]
"""Maps a prompt to token ids that start with BOS."""
PreprocessImages = Callable[[np.ndarray], torch.Tensor]
"""Maps (B, H, W, 3) uint8 images to the vision backbone's pixel_values (B, C, H', W')."""


def action_prompt(instruction: str) -> str:
    """The OpenVLA prompt for one instruction (lower-cased, as OpenVLA's LIBERO eval does)."""
    return PROMPT_TEMPLATE.format(instruction=instruction.lower().strip())


def action_token_ids(vocab_size: int, num_bins: int = DEFAULT_NUM_BINS) -> torch.Tensor:
    """(num_bins,) token id of each bin: bin b ↔ id vocab_size − 1 − b."""
    return vocab_size - 1 - torch.arange(num_bins)


def bin_logits_from_vocab_logits(
    logits: torch.Tensor, vocab_size: int, num_bins: int = DEFAULT_NUM_BINS
) -> torch.Tensor:
    """Restrict LM logits (..., V_padded) to the action bins: (..., num_bins), index b = bin b."""
    return logits[..., vocab_size - num_bins : vocab_size].flip(-1)


def center_crop(images: np.ndarray, area: float = CENTER_CROP_AREA) -> np.ndarray:
    """(B, H, W, 3) uint8 → centre crop keeping `area` of the image, resized back to (H, W) (bilinear)."""
    _, h, w, _ = images.shape
    side = float(np.sqrt(area))
    ch, cw = round(h * side), round(w * side)
    top, left = (h - ch) // 2, (w - cw) // 2
    x = torch.from_numpy(np.ascontiguousarray(images[:, top : top + ch, left : left + cw])).permute(0, 3, 1, 2)
    x = F.interpolate(x.float(), size=(h, w), mode="bilinear", antialias=True, align_corners=False)
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def load_norm_stats(checkpoint_dir: str | Path, unnorm_key: str | None) -> ActionTokenizer:
    """Action tokenizer from the checkpoint's dataset_statistics.json (q01/q99, mask → gripper dim).

    Raises:
        InputFileError: The file is missing, not JSON, or its entry lacks or mangles the action stats.
        ConfigError: `unnorm_key` is not in the file, or is None and the file holds several datasets; the
            message lists the available keys.
    """
    path = Path(checkpoint_dir) / "dataset_statistics.json"
    if not path.is_file():
        raise InputFileError(f"{path} is missing: OpenVLA checkpoints carry their action norm stats there")
    stats = read_json(path)
    if not isinstance(stats, dict) or not stats:
        raise InputFileError(f"{path} must map dataset names to their statistics, got {stats!r:.80}")
    if unnorm_key is None:
        if len(stats) != 1:
            raise ConfigError(f"{path} holds several datasets {sorted(stats)}: set policy.unnorm_key to one of them")
        unnorm_key = next(iter(stats))
    if unnorm_key not in stats:
        raise ConfigError(f"policy.unnorm_key={unnorm_key!r} is not in {path}: choose one of {sorted(stats)}")
    try:
        action = stats[unnorm_key]["action"]
        q01 = np.asarray(action["q01"], dtype=np.float64)
        q99 = np.asarray(action["q99"], dtype=np.float64)
        mask = np.asarray(action.get("mask", [True] * (len(q01) - 1) + [False]), dtype=bool)
    except (KeyError, TypeError, ValueError) as err:
        raise InputFileError(f"{path}[{unnorm_key!r}] needs action.q01 and action.q99 lists of numbers: "
                             f"{type(err).__name__}: {err}") from err
    if q01.ndim != 1 or q01.shape != q99.shape or mask.shape != q01.shape:
        raise InputFileError(f"{path}[{unnorm_key!r}]: action.q01, action.q99 and action.mask must be flat lists of "
                             f"one length, got shapes {q01.shape}, {q99.shape} and {mask.shape}")
    unmasked = np.flatnonzero(~mask)
    if len(unmasked) > 1:
        raise InputFileError(f"{path}[{unnorm_key!r}]: more than one un-normalised dimension {unmasked.tolist()}")
    gripper = int(unmasked[0]) if len(unmasked) else None
    try:
        return ActionTokenizer(q01=q01, q99=q99, num_bins=DEFAULT_NUM_BINS, gripper_dim=gripper,
                               gripper_convention="openvla")
    except ValueError as err:
        raise InputFileError(f"{path}[{unnorm_key!r}]: {err}") from err


class OpenVLAOFTPolicy(TrainablePolicy):
    """srpo `TrainablePolicy` over an OpenVLA-OFT-style model (parallel decoding of discrete action tokens).

    A module whose one child is `model`: parameters, train/eval, freezing and state dicts are the module's
    own (state-dict keys carry the "model." prefix); `save_pretrained` writes the wrapped model's transformers
    checkpoint.

    Args:
        model: Module with `vision_backbone(pixel_values) → (B, P, Dv)`, `projector(·) → (B, P, D)` and
            `language_model` (a transformers causal LM taking `inputs_embeds`): the Prismatic layout.
        tokenize: Prompt → token ids starting with BOS.
        preprocess_images: (B, H, W, 3) uint8 → pixel_values.
        action_tokenizer: Norm stats (gripper convention "openvla").
        vocab_size: Unpadded vocabulary size; bins are the last `num_bins` ids below it.
        chunk_size: Actions per chunk (OpenVLA*: 8).
        action_dim: Action dimensions (7).
        empty_token_id: Appended after the prompt when the tokenizer did not produce it (None: never).
        attention: "bidirectional" (OpenVLA-OFT) or "causal".
        center_crop_area: Centre-crop images to this area before preprocessing (None: no crop).
    """

    def __init__(
        self,
        model: nn.Module,
        tokenize: Tokenize,
        preprocess_images: PreprocessImages,
        action_tokenizer: ActionTokenizer,
        vocab_size: int = OPENVLA_VOCAB_SIZE,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        action_dim: int = ACTION_DIM,
        empty_token_id: int | None = EMPTY_TOKEN_ID,
        stop_token_id: int = STOP_TOKEN_ID,
        attention: AttentionKind = "bidirectional",
        center_crop_area: float | None = CENTER_CROP_AREA,
    ) -> None:
        if attention not in ("bidirectional", "causal"):
            raise ValueError(f"attention={attention!r}: choose 'bidirectional' or 'causal'")
        if action_tokenizer.action_dim != action_dim:
            raise ValueError(f"norm stats have {action_tokenizer.action_dim} dims, policy has {action_dim}")
        super().__init__()
        self.model = model
        self.tokenize = tokenize
        self.preprocess_images = preprocess_images
        self.tokenizer = action_tokenizer
        self.vocab_size = vocab_size
        self.chunk_size = chunk_size
        self.action_dim = action_dim
        self.num_bins = action_tokenizer.num_bins
        self.num_action_tokens = chunk_size * action_dim
        self.empty_token_id = empty_token_id
        self.stop_token_id = stop_token_id
        self.attention = attention
        self.center_crop_area = center_crop_area
        self.source_dir: Path | None = None  # set by from_pretrained; save_pretrained copies its extra files

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write a checkpoint directory that `from_pretrained` reads back.

        The model goes through transformers' `save_pretrained` (safetensors shards + config.json); the files it
        does not write — the remote modelling code, processor/tokenizer files and dataset_statistics.json —
        are copied from the directory the policy was loaded from. Written to a temporary sibling and renamed,
        so an interrupted save never leaves a half-written checkpoint under the final name.
        """
        import shutil
        import uuid

        target = Path(directory)
        if self.source_dir is None:
            raise ValueError("this OpenVLAOFTPolicy was not loaded from a checkpoint directory; cannot copy its "
                             "remote code and processor files")
        tmp = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
        tmp.mkdir(parents=True)
        try:
            for src in self.source_dir.iterdir():
                if src.is_file() and not src.name.endswith((".safetensors", ".bin")) and src.name not in (
                    "model.safetensors.index.json", "pytorch_model.bin.index.json", "config.json"
                ):
                    shutil.copy2(src, tmp / src.name)
            model: Any = self.model
            model.save_pretrained(str(tmp), safe_serialization=True)
            write_manifest(tmp)
            if target.exists():
                shutil.rmtree(target)
            tmp.rename(target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return target

    # -- inputs ---------------------------------------------------------------------------------------------

    def prompt_ids(self, instruction: str) -> list[int]:
        """BOS + prompt (+ the "▁" token) — everything before the action placeholders."""
        ids = list(self.tokenize(action_prompt(instruction)))
        if self.empty_token_id is not None and ids[-1] != self.empty_token_id:
            ids.append(self.empty_token_id)
        return ids

    def input_ids(self, instruction: str) -> torch.Tensor:
        """(T,) prompt ids + num_action_tokens placeholders + STOP."""
        ids = self.prompt_ids(instruction)
        ids += [PLACEHOLDER_TOKEN_ID] * self.num_action_tokens + [self.stop_token_id]
        return torch.tensor(ids, dtype=torch.long)

    # -- forward --------------------------------------------------------------------------------------------

    def action_logits(self, batch: PolicyInput) -> torch.Tensor:
        """(B, L, num_bins) bin logits, one LM forward per group of equal prompt length."""
        b = len(batch.instructions)
        images = batch.images if self.center_crop_area is None else center_crop(batch.images, self.center_crop_area)
        pixel_values = self.preprocess_images(images).to(self.device, self.dtype)
        groups: dict[int, list[int]] = defaultdict(list)
        ids = [self.input_ids(text) for text in batch.instructions]
        for i, x in enumerate(ids):
            groups[len(x)].append(i)  # equal lengths need no padding, so positions match single-sample runs
        out: torch.Tensor | None = None
        for members in groups.values():
            logits = self._group_logits(torch.stack([ids[i] for i in members]), pixel_values[members])
            if out is None:
                out = logits.new_empty(b, *logits.shape[1:])
            out[members] = logits
        assert out is not None
        return out

    def _group_logits(self, input_ids: torch.Tensor, pixel_values: torch.Tensor) -> torch.Tensor:
        input_ids = input_ids.to(self.device)
        model: Any = self.model  # the Prismatic layout is duck-typed (remote code or TinyPrismaticVLA)
        lm = model.language_model
        embeds = lm.get_input_embeddings()(input_ids)
        num_prompt = input_ids.shape[1] - self.num_action_tokens - 1  # without the placeholders and STOP
        is_action = torch.zeros(input_ids.shape, dtype=torch.bool, device=self.device)
        is_action[:, num_prompt : num_prompt + self.num_action_tokens] = True
        # OpenVLA-OFT zeroes the placeholder embeddings: the action positions carry only position information.
        embeds = embeds * (~is_action).unsqueeze(-1).to(embeds.dtype)
        patches = model.projector(model.vision_backbone(pixel_values))
        seq = torch.cat([embeds[:, :1], patches.to(embeds.dtype), embeds[:, 1:]], dim=1)
        mask = None
        if self.attention == "bidirectional":
            # An explicit 4-D additive mask is used as given by transformers' Llama: all zeros = no masking.
            mask = torch.zeros(seq.shape[0], 1, seq.shape[1], seq.shape[1], dtype=seq.dtype, device=self.device)
        logits = lm(inputs_embeds=seq, attention_mask=mask, use_cache=False).logits
        start = patches.shape[1] + (num_prompt - 1)  # num_prompt − 1 = OpenVLA-OFT's NUM_PROMPT_TOKENS
        action_logits = logits[:, start : start + self.num_action_tokens]
        return bin_logits_from_vocab_logits(action_logits, self.vocab_size, self.num_bins)

    def sample(
        self,
        batch: PolicyInput,
        temperature: float,
        greedy: bool = False,
        generator: torch.Generator | None = None,
    ) -> ActionSample:
        """Sample one chunk per element at `temperature` among the action bins only (no gradients)."""
        with torch.no_grad():
            logits = self.action_logits(batch).float()
            tokens, log_probs = sample_tokens(logits.cpu(), temperature, greedy, generator)
        tokens_np = tokens.numpy().astype(np.int64)
        return ActionSample(
            tokens=tokens_np,
            log_probs=log_probs.numpy().astype(np.float32),
            actions=self.tokenizer.decode_tokens(tokens_np, self.chunk_size),
        )

    def token_log_probs(
        self, batch: PolicyInput, tokens: torch.Tensor, temperature: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Differentiable (B, L) log-probs and entropies of bin `tokens` (B, L), over the bin slice, at T."""
        tokens = torch.as_tensor(tokens, device=self.device)
        return categorical_log_probs(self.action_logits(batch), tokens, temperature)

    # -- loading --------------------------------------------------------------------------------------------

    @classmethod
    def from_config(cls, config: PolicyConfig) -> OpenVLAOFTPolicy:
        """Load `config.checkpoint` (kind "openvla_oft") on `config.device` in `config.dtype`."""
        if config.kind != "openvla_oft" or config.checkpoint is None:
            raise ConfigError("policy.kind='openvla_oft' needs policy.checkpoint: set it to a local OpenVLA-OFT "
                              "checkpoint directory")
        if (config.chunk_size, config.action_dim) != (DEFAULT_CHUNK_SIZE, ACTION_DIM):
            raise ConfigError(
                f"policy.chunk_size={config.chunk_size}, policy.action_dim={config.action_dim}: OpenVLA-OFT "
                f"checkpoints decode {DEFAULT_CHUNK_SIZE} × {ACTION_DIM}; set those values"
            )
        return cls.from_pretrained(config.checkpoint, config.unnorm_key, config.device, torch_dtype(config.dtype))

    @classmethod
    def from_checkpoint(cls, directory: str | Path, config: PolicyConfig) -> OpenVLAOFTPolicy:
        """`from_pretrained` with config.unnorm_key on config.device in config.dtype."""
        return cls.from_pretrained(directory, config.unnorm_key, config.device, torch_dtype(config.dtype))

    @classmethod
    def from_pretrained(
        cls,
        checkpoint_dir: str | Path,
        unnorm_key: str | None = None,
        device: str = "cuda",
        dtype: torch.dtype = torch.bfloat16,
        attention: AttentionKind = "bidirectional",
    ) -> OpenVLAOFTPolicy:
        """Load a local OpenVLA-OFT checkpoint directory (weights, remote code, processor, norm stats)."""
        from transformers import AutoProcessor
        from transformers.dynamic_module_utils import get_class_from_dynamic_module

        directory = Path(checkpoint_dir)
        verify_manifest(directory)  # a checkpoint srpo wrote: sizes and checksums (a downloaded one has none)
        config_path = directory / "config.json"
        if not config_path.is_file():
            raise InputFileError(f"{config_path} is missing: policy.checkpoint must be a local checkpoint dir")
        auto_map = json.loads(config_path.read_text()).get("auto_map", {})
        ref = auto_map.get("AutoModelForVision2Seq") or auto_map.get("AutoModelForImageTextToText")
        if ref is None:
            raise InputFileError(f"{config_path} has no auto_map entry for AutoModelForVision2Seq: not an OpenVLA "
                                 "dir")
        model_cls: Any = get_class_from_dynamic_module(ref, str(directory), local_files_only=True)
        model = model_cls.from_pretrained(
            str(directory), torch_dtype=dtype, trust_remote_code=True, local_files_only=True,
            low_cpu_mem_usage=True,
        ).to(device)
        processor = AutoProcessor.from_pretrained(str(directory), trust_remote_code=True, local_files_only=True)
        text_config = model.config.text_config
        vocab_size = int(text_config.vocab_size) - int(getattr(model.config, "pad_to_multiple_of", 0) or 0)

        def tokenize(prompt: str) -> list[int]:
            return list(processor.tokenizer(prompt, add_special_tokens=True)["input_ids"])

        def preprocess(images: np.ndarray) -> torch.Tensor:
            from PIL import Image

            pil = [Image.fromarray(img).convert("RGB") for img in images]
            return processor.image_processor(pil, return_tensors="pt")["pixel_values"]

        policy = cls(model, tokenize, preprocess, load_norm_stats(directory, unnorm_key), vocab_size=vocab_size,
                     attention=attention)
        policy.source_dir = directory
        return policy


# ---------------------------------------------------------------------------------------------------------
# A tiny randomly initialised model with the Prismatic layout, for tests and CPU smoke runs.


class PatchEncoder(nn.Module):
    """Non-overlapping patches → linear features: (B, 3, S, S) → (B, (S/patch)², dim)."""

    def __init__(self, patch: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, patch, stride=patch)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.proj(pixel_values).flatten(2).transpose(1, 2)


class TinyPrismaticVLA(nn.Module):
    """vision_backbone + projector + a real `LlamaForCausalLM`, randomly initialised and tiny."""

    def __init__(self, vocab_size: int, padded_vocab: int, image_size: int, patch: int, hidden: int,
                 num_layers: int, seed: int) -> None:
        super().__init__()
        from transformers import LlamaConfig, LlamaForCausalLM

        torch.manual_seed(seed)
        self.vision_backbone = PatchEncoder(patch, 24)
        self.projector = nn.Sequential(nn.Linear(24, hidden), nn.GELU(), nn.Linear(hidden, hidden))
        config = LlamaConfig(
            vocab_size=padded_vocab, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=num_layers,
            num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512, bos_token_id=1,
            eos_token_id=STOP_TOKEN_ID, pad_token_id=0,
        )
        config._attn_implementation = "sdpa"
        self.language_model = LlamaForCausalLM(config)
        self.image_size = image_size


def build_tiny_vla(
    vocab_size: int = 400,
    pad_to: int = 416,
    image_size: int = 32,
    patch: int = 8,
    hidden: int = 64,
    num_layers: int = 2,
    seed: int = 0,
    action_tokenizer: ActionTokenizer | None = None,
    attention: AttentionKind = "bidirectional",
) -> OpenVLAOFTPolicy:
    """An `OpenVLAOFTPolicy` over `TinyPrismaticVLA` with a byte-level prompt tokenizer (BOS = 1).

    The vocabulary is padded past `vocab_size` like OpenVLA's (32000 → 32064), so the tests see that the
    bins come from below `vocab_size`, not from the end of the logits.
    """
    model = TinyPrismaticVLA(vocab_size, pad_to, image_size, patch, hidden, num_layers, seed).eval()
    empty_id = 3

    def tokenize(prompt: str) -> list[int]:
        # Bytes mapped into ids 4 .. 131, well below the 256 action ids at the top of the vocabulary.
        return [1] + [4 + (b % 128) for b in prompt.encode()]

    def preprocess(images: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", antialias=True, align_corners=False)
        return (x - 0.5) / 0.5

    stats = action_tokenizer or ActionTokenizer(q01=-np.ones(ACTION_DIM), q99=np.ones(ACTION_DIM),
                                                gripper_convention="openvla")
    return OpenVLAOFTPolicy(model, tokenize, preprocess, stats, vocab_size=vocab_size, empty_token_id=empty_id,
                            attention=attention, center_crop_area=None)
