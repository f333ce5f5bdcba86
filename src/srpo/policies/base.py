"""The policy interface shared by rollout, PPO and SFT.

A policy maps a batch of observations + instructions to a chunk of discrete action tokens (chunk_size ×
action_dim tokens, each one of num_bins bins) with exact log-probabilities, and can re-score given tokens
differentiably.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch


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
    """Implementations: `srpo.policies.compact.CompactVLA`, `srpo.policies.openvla_oft.OpenVLAOFTPolicy`."""

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


class TrainablePolicy(Policy, Protocol):
    """A `Policy` that can be trained and saved: what the trainer, the update step and the learners need.

    Both implementations are `torch.nn.Module`s, so `parameters`, `train`, `requires_grad_`, `state_dict` and
    `load_state_dict` are the module's own; the weights the learners replicate are the module's state dict.
    """

    def parameters(self, recurse: bool = True) -> Iterator[torch.nn.Parameter]:
        """Every weight (frozen ones too: filter on `requires_grad` for the optimiser)."""
        ...

    def train(self, mode: bool = True) -> TrainablePolicy:
        """Training mode (dropout on) or, with mode=False, evaluation mode."""
        ...

    def requires_grad_(self, requires_grad: bool = True) -> TrainablePolicy:
        """Freeze or unfreeze every weight (the KL reference policy is frozen)."""
        ...

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write a checkpoint directory that the implementation's `from_pretrained` reads back."""
        ...


TORCH_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
"""policy.dtype names → torch dtypes."""


def torch_dtype(name: str) -> torch.dtype:
    """The torch dtype of a policy.dtype name ("float32", "bfloat16" or "float16")."""
    if name not in TORCH_DTYPES:
        raise ValueError(f"unknown dtype {name!r}: 'float32', 'bfloat16' or 'float16'")
    return TORCH_DTYPES[name]
