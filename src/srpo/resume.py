"""Choosing what `srpo train --resume` continues from: the newest checkpoint that is intact.

A checkpoint is intact when its manifest matches its files (sizes, SHA-256) and everything in it loads: the
trainer state (through `torch.load(weights_only=True)`, which refuses pickled code) and the policy. A damaged
newest checkpoint (a disk that filled up, a file edited by hand) is skipped with a warning naming it, and the
run continues from the one before; only when none is intact does resuming fail.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from srpo.errors import CheckpointCorruptError
from srpo.files import load_torch
from srpo.manifest import verify_manifest

log = logging.getLogger(__name__)

T = TypeVar("T")

TRAINER_STATE_KEYS = ("step", "optimizer", "torch_rng")


def read_trainer_state(path: Path) -> dict[str, Any]:
    """A trainer_state.pt written by `Trainer.save_checkpoint`, loaded without executing pickled code.

    Raises:
        CheckpointCorruptError: The file is missing, unreadable, not a torch file, holds objects other than
            tensors and plain containers, or lacks the trainer's keys.
    """
    if not path.is_file():
        raise CheckpointCorruptError(f"{path} is missing: the checkpoint is incomplete")
    state = load_torch(path, "trainer state", CheckpointCorruptError,
                       "it is truncated, damaged or not written by srpo")
    if not isinstance(state, dict) or any(k not in state for k in TRAINER_STATE_KEYS):
        found = sorted(map(str, state)) if isinstance(state, dict) else type(state).__name__
        raise CheckpointCorruptError(f"{path} is not an srpo trainer state: expected keys "
                                     f"{', '.join(TRAINER_STATE_KEYS)}, found {found}")
    if not isinstance(state["step"], int) or state["step"] < 0:
        raise CheckpointCorruptError(f"{path}: step {state['step']!r} is not a non-negative int")
    return state


def newest_intact(checkpoints: Sequence[Path], load: Callable[[Path], T]) -> tuple[Path, T]:
    """The newest checkpoint whose manifest verifies and which `load` reads, with what `load` returned.

    Args:
        checkpoints: Complete checkpoint directories, oldest first.
        load: Reads one checkpoint; raises CheckpointCorruptError when it is damaged.

    Returns:
        (checkpoint directory, load(directory)).

    Raises:
        CheckpointCorruptError: No checkpoint is intact (the message names each one and why).
    """
    problems = []
    for ckpt in reversed(checkpoints):
        try:
            verify_manifest(ckpt)
            loaded = load(ckpt)
        except CheckpointCorruptError as err:
            problems.append(f"{ckpt.name}: {err}")
            log.warning("checkpoint %s is damaged, skipping it: %s", ckpt, err)
            continue
        if problems:
            log.warning("resuming from %s, the newest intact checkpoint (skipped %d damaged)", ckpt, len(problems))
        return ckpt, loaded
    raise CheckpointCorruptError(f"no intact checkpoint to resume from: {'; '.join(problems)}")
