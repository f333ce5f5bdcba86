"""Configuration of behaviour cloning (SFT) from a few demonstrations per task."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from srpo.config.base import ConfigError, require, require_choice
from srpo.config.policy import PolicyConfig


@dataclass(frozen=True)
class SFTConfig:
    """Cross-entropy over action tokens on N demonstrations per task (N = 1: the paper's OpenVLA*-One)."""

    num_demos_per_task: int = 1
    """Demonstrations used per task, taken in the order given (successful ones only, see
    `only_successful_demos`). 1 is the paper's one-shot setting."""
    only_successful_demos: bool = True
    """Skip demonstrations marked `success=False` (a noisy scripted expert may fail)."""
    num_steps: int = 2000
    """Optimiser steps."""
    batch_size: int = 32
    """(observation, action chunk) samples per step, drawn in shuffled epochs over all demo steps."""
    learning_rate: float = 3e-4
    """AdamW learning rate (constant)."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    max_grad_norm: float = 1.0
    """Gradient-norm clip; 0 disables it."""
    fit_action_stats: bool = True
    """Fit the tokenizer's 1st/99th percentile stats on the selected demonstrations before training (they are
    saved with the checkpoint). False keeps the policy's current stats (e.g. when fine-tuning a checkpoint
    whose stats must not move)."""
    augment: bool = True
    """Random crop + colour jitter on the policy images (one demonstration per task overfits without it)."""
    crop_scale: float = 0.9
    """Random-resized-crop keeps this fraction of the image area at least (OpenVLA: 0.9), resized back."""
    color_jitter: float = 0.2
    """Maximum relative change of brightness, contrast and saturation."""
    seed: int = 0
    """Seed of batch order, augmentation and weight initialisation of new layers."""
    checkpoint_dir: str | None = None
    """Where checkpoints go: `<dir>/step_<k>` every `checkpoint_every` steps and `<dir>/final` at the end.
    None writes nothing."""
    checkpoint_every: int = 0
    """Steps between intermediate checkpoints; 0 writes only the final one."""
    log_every: int = 25
    """Steps between progress-bar metric updates."""
    progress: bool = True
    """Show a tqdm progress bar with ETA."""

    def __post_init__(self) -> None:
        require(self.num_demos_per_task >= 1, "sft.num_demos_per_task", self.num_demos_per_task,
                "an int >= 1 (1 = one-shot)")
        require(self.num_steps >= 1, "sft.num_steps", self.num_steps, "an int >= 1, e.g. 2000")
        require(self.batch_size >= 1, "sft.batch_size", self.batch_size, "an int >= 1, e.g. 32")
        require(self.learning_rate > 0, "sft.learning_rate", self.learning_rate, "a float > 0, e.g. 3e-4")
        require(self.weight_decay >= 0, "sft.weight_decay", self.weight_decay, "a float >= 0, e.g. 0.0")
        require(self.max_grad_norm >= 0, "sft.max_grad_norm", self.max_grad_norm, "0 (off) or a float > 0")
        require(0.1 <= self.crop_scale <= 1.0, "sft.crop_scale", self.crop_scale, "a float in [0.1, 1], e.g. 0.9")
        require(0.0 <= self.color_jitter < 1.0, "sft.color_jitter", self.color_jitter,
                "a float in [0, 1), e.g. 0.2")
        require(self.checkpoint_every >= 0, "sft.checkpoint_every", self.checkpoint_every,
                "0 (final checkpoint only) or a positive step count")
        require(self.log_every >= 1, "sft.log_every", self.log_every, "an int >= 1, e.g. 25")


@dataclass(frozen=True)
class SFTRunConfig:
    """`srpo sft`: where the demonstrations come from, the compact VLA they are cloned into, the training
    settings (`sft`) and the greedy evaluation after it. The CLI maps its flags onto these fields."""

    out: str
    """Checkpoint directory: writes `<out>/final` (and `<out>/eval` after the evaluation)."""
    demos: str | None = None
    """An .hdf5 demo file or a folder of them (one file per task). Exactly one of `demos` and `env`."""
    env: Literal["tabletop"] | None = None
    """Record demos with this env's scripted expert instead of reading files."""
    suite: str | None = None
    """Suite name for HDF5 files that do not record one (the evaluation's LIBERO suite; default
    libero_spatial)."""
    tasks: tuple[int, ...] | None = None
    """Task ids to train on (None: all)."""
    init: str | None = None
    """Start from this CompactVLA checkpoint instead of a fresh policy."""
    vision_encoder: Literal["efficientnet_lite0", "conv", "conv_keypoints"] = "efficientnet_lite0"
    """Image encoder of a fresh policy."""
    fine_tune_vision: bool = False
    """Train the image encoder too (frozen otherwise)."""
    text_encoder: Literal["minilm", "hashed"] = "minilm"
    """Instruction encoder of a fresh policy."""
    chunk_size: int | None = None
    """Actions per chunk of a fresh policy (None: the policy default, 8)."""
    image_size: int | None = None
    """Policy image side (None: 128; 64 on tabletop)."""
    d_model: int | None = None
    """Width of a fresh policy's action transformer (None: the policy default, 128)."""
    num_layers: int | None = None
    """Transformer layers of a fresh policy (None: the policy default, 3)."""
    num_heads: int | None = None
    """Attention heads of a fresh policy; must divide its width (None: the policy default, 4)."""
    ff_dim: int | None = None
    """Hidden size of a fresh policy's transformer MLPs (None: the policy default, 256)."""
    device: str = "cpu"
    """Torch device of the policy."""
    demo_noise: float = 0.0
    """Tabletop: expert translation noise std."""
    random_prefix: int = 0
    """Tabletop: start each demo after an unrecorded random walk of up to this many steps (recovery data)."""
    demo_layouts: int | None = None
    """Tabletop: record demos in layouts 0..N-1 (minus the held-out ones) instead of the training init states."""
    object_state: bool = False
    """Tabletop: block and plate centres in the proprioception (env.tabletop.object_state)."""
    num_eval_init_states: int = 10
    """Tabletop: the last N initial states are held out for evaluation and never used for demos (keep equal to
    env.tabletop_num_eval_init_states)."""
    num_eval_episodes_per_task: int = 10
    """Greedy evaluation episodes per task on held-out init states after SFT (0 = skip)."""
    num_eval_videos_per_task: int = 1
    """Evaluation videos per task."""
    sft: SFTConfig = field(default_factory=SFTConfig)
    """The training settings (steps, batch size, learning rate, augmentation, seed, checkpoints)."""

    def __post_init__(self) -> None:
        if (self.demos is None) == (self.env is None):
            raise ConfigError("give exactly one demonstration source: demos=FILE_OR_DIR (--demos) or env=tabletop "
                              "(--env tabletop)")
        if self.env is not None:
            require_choice(self.env, "env", ["tabletop"])
        require(self.chunk_size is None or self.chunk_size >= 1, "chunk_size", self.chunk_size,
                "an int >= 1, or null for the policy default")
        for name in ("d_model", "num_layers", "num_heads", "ff_dim"):
            value = getattr(self, name)
            if value is not None and self.init is not None:
                raise ConfigError(f"{name}={value} sizes a fresh policy, but init={self.init!r} loads "
                                  f"one whose architecture is fixed: drop --{name.replace('_', '-')} or --init")
        self.sized(PolicyConfig())  # PolicyConfig's own checks of the size (each >= 1, heads dividing the width)
        require(self.num_eval_episodes_per_task >= 0, "num_eval_episodes_per_task",
                self.num_eval_episodes_per_task, "an int >= 0 (0 skips the evaluation)")
        require(self.random_prefix >= 0, "random_prefix", self.random_prefix, "an int >= 0 (0: start at reset)")

    def sized(self, policy: PolicyConfig) -> PolicyConfig:
        """`policy` with this run's size fields (chunk_size, d_model, num_layers, num_heads, ff_dim) applied; a
        field left None keeps the policy's value. PolicyConfig validates the result."""
        return replace(
            policy,
            chunk_size=policy.chunk_size if self.chunk_size is None else self.chunk_size,
            d_model=policy.d_model if self.d_model is None else self.d_model,
            num_layers=policy.num_layers if self.num_layers is None else self.num_layers,
            num_heads=policy.num_heads if self.num_heads is None else self.num_heads,
            ff_dim=policy.ff_dim if self.ff_dim is None else self.ff_dim,
        )
