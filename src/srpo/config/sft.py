"""Configuration of behaviour cloning (SFT) from a few demonstrations per task."""

from __future__ import annotations

from dataclasses import dataclass

from srpo.config.base import require


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
