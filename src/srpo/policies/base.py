"""The policy contracts: `Policy` (what rollouts need) and `TrainablePolicy` (what training needs).

A policy maps a batch of observations + instructions to a chunk of discrete action tokens (chunk_size ×
action_dim tokens, each one of num_bins bins) with exact log-probabilities, and can re-score given tokens
differentiably.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch
from torch import nn

if TYPE_CHECKING:
    from typing_extensions import Self

    from srpo.config.policy import PolicyConfig
    from srpo.policies.tokenizer import ActionTokenizer


@dataclass
class PolicyInput:
    """A batch of policy inputs.

    Attributes:
        images: (B, H, W, 3) uint8 policy camera images.
        states: (B, S) float32 proprioception (S may be 0).
        instructions: B instruction strings.
    """

    images: np.ndarray
    states: np.ndarray
    instructions: list[str]

    def __post_init__(self) -> None:
        if not (len(self.images) == len(self.states) == len(self.instructions)):
            raise ValueError(
                f"PolicyInput batch sizes differ: images {len(self.images)}, states {len(self.states)}, "
                f"instructions {len(self.instructions)}"
            )


@dataclass
class ActionSample:
    """A sampled action chunk for each batch element.

    Attributes:
        tokens: (B, L) int64 bin indices, L = chunk_size · action_dim, ordered step-major
            (token j belongs to step j // action_dim, dimension j % action_dim).
        log_probs: (B, L) float32 log-probabilities of the tokens at the sampling temperature.
        actions: (B, chunk_size, action_dim) float32 continuous env actions decoded from the tokens.
    """

    tokens: np.ndarray
    log_probs: np.ndarray
    actions: np.ndarray


class Policy(Protocol):
    """What rollouts and evaluation need: sampling (and re-scoring) action tokens.

    Every `TrainablePolicy` is one; tests may roll out lighter objects that only sample.
    """

    chunk_size: int
    action_dim: int
    num_bins: int

    def sample(self, batch: PolicyInput, temperature: float, greedy: bool = False) -> ActionSample:
        """Sample one action chunk per element without gradients (greedy takes the arg-max bin)."""
        ...

    def token_log_probs(
        self, batch: PolicyInput, tokens: torch.Tensor, temperature: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Differentiable (B, L) log-probs and (B, L) entropies of `tokens` (B, L) at `temperature`."""
        ...


class TrainablePolicy(nn.Module, abc.ABC):
    """A policy the trainer can train and save: an `nn.Module` with the `Policy` methods, a checkpoint format,
    and a way back from it.

    Implementations: `srpo.policies.compact.CompactVLA`, `srpo.policies.openvla_oft.OpenVLAOFTPolicy`. Being a
    module gives the contract's other half for free: `parameters()` (the optimiser's, filtered on
    `requires_grad`), `train()`/`eval()`, `requires_grad_()` (the frozen KL reference), `state_dict()` /
    `load_state_dict()` (what the data-parallel learners replicate and hand back), `to(device)`.
    """

    chunk_size: int
    action_dim: int
    num_bins: int
    tokenizer: ActionTokenizer
    """Action chunk ↔ token ids (SFT fits it on demos, offline training encodes dataset actions with it)."""

    @property
    def input_image_size(self) -> int | None:
        """Side of the square images the policy reads; None when it resizes any image itself (its processor)."""
        return None

    @abc.abstractmethod
    def sample(self, batch: PolicyInput, temperature: float, greedy: bool = False) -> ActionSample:
        """Sample one action chunk per element without gradients (greedy takes the arg-max bin)."""

    @abc.abstractmethod
    def token_log_probs(
        self, batch: PolicyInput, tokens: torch.Tensor, temperature: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Differentiable (B, L) log-probs and (B, L) entropies of `tokens` (B, L) at `temperature`."""

    @abc.abstractmethod
    def save_pretrained(self, directory: str | Path) -> Path:
        """Write a checkpoint directory (atomically: never half-written under its final name); returns it."""

    @classmethod
    @abc.abstractmethod
    def from_checkpoint(cls, directory: str | Path, config: PolicyConfig) -> Self:
        """Load a `save_pretrained` directory onto config.device (and config.dtype where the format has none)."""


TORCH_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
"""policy.dtype names → torch dtypes."""


def torch_dtype(name: str) -> torch.dtype:
    """The torch dtype of a policy.dtype name ("float32", "bfloat16" or "float16")."""
    if name not in TORCH_DTYPES:
        raise ValueError(f"unknown dtype {name!r}: 'float32', 'bfloat16' or 'float16'")
    return TORCH_DTYPES[name]
