"""The tiny tabletop configuration that the trainer-level tests build on (a run of a few seconds on CPU).

Each test module adds what its point needs (`tiny_tabletop(max_steps, *extra)`); `as_sets` turns overrides into
the `--set` flags of the command line.
"""

from __future__ import annotations

from collections.abc import Iterable

# Two tasks, 32² frames, a one-layer policy with chunks of 4 actions.
TINY_TABLETOP: tuple[str, ...] = (
    "env.tabletop.num_tasks=2",
    "env.tabletop.image_size=32",
    "env.tabletop.embed_image_size=32",
    "policy.image_size=32",
    "policy.d_model=32",
    "policy.num_layers=1",
    "policy.num_heads=2",
    "policy.ff_dim=64",
    "policy.chunk_size=4",
)

# The pixel world model on 4 frames of 4² pixels: a reward without any network.
PIXEL_ENCODER: tuple[str, ...] = ("encoder.name=pixel", "encoder.num_frames=4", "encoder.pixel_size=4")


def tiny_tabletop(max_steps: int, *extra: str) -> list[str]:
    """The tiny configuration with episodes of at most `max_steps` steps, then `extra` (later overrides win)."""
    return [*TINY_TABLETOP, f"env.tabletop.max_steps={max_steps}", *extra]


def as_sets(overrides: Iterable[str]) -> list[str]:
    """["a=1", "b=2"] -> ["--set", "a=1", "--set", "b=2"]."""
    return [x for item in overrides for x in ("--set", item)]
