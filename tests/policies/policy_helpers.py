"""Tiny configs of the real policy classes and random batches for the policy tests (no mocks)."""

from __future__ import annotations

import numpy as np

from srpo.config.policy import PolicyConfig
from srpo.policies.base import PolicyInput


def tiny_config(**overrides: object) -> PolicyConfig:
    fields: dict[str, object] = dict(
        vision_encoder="conv", image_size=32, text_encoder="hashed", state_dim=3, d_model=32, num_heads=2,
        num_layers=2, ff_dim=64, freeze_vision=False,
    )
    fields.update(overrides)
    return PolicyConfig(**fields)  # type: ignore[arg-type]


def make_batch(batch_size: int = 4, image_size: int = 32, state_dim: int = 3, seed: int = 0) -> PolicyInput:
    rng = np.random.default_rng(seed)
    return PolicyInput(
        images=rng.integers(0, 256, (batch_size, image_size, image_size, 3), dtype=np.uint8),
        states=rng.standard_normal((batch_size, state_dim)).astype(np.float32),
        instructions=[f"put the block on plate {i % 2}" for i in range(batch_size)],
    )


