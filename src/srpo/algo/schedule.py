"""Learning-rate schedules over a run's training steps. Pure functions of the step number, so a resumed run
continues the schedule from the step it restores, with no scheduler state in the checkpoint."""

from __future__ import annotations

import math

from srpo.types import LRSchedule


def lr_factor(step: int, num_steps: int, schedule: LRSchedule, warmup_steps: int = 0, min_ratio: float = 0.0) -> float:
    """Multiplier of the base learning rate for training step `step` (1-based) of `num_steps`.

    Warm-up: steps 1..W (W = `warmup_steps`) take s / W, reaching the full rate at step W. Then, over the
    D = num_steps − W decay steps, step s has progress p = (s − W − 1) / D, in [0, 1), and takes
        constant: 1
        linear:   m + (1 − m) · (1 − p)
        cosine:   m + (1 − m) · (1 + cos(π p)) / 2
    with m = `min_ratio`. The first step after warm-up takes the full rate and no step takes exactly m's floor
    (the last one takes m + (1 − m) / D under "linear"), so no step of the run is wasted at rate 0 when m = 0.
    Steps past `num_steps` (not taken by a run) keep the last step's progress.

    Args:
        step: The step about to be trained, >= 1.
        num_steps: Steps in the run, >= 1.
        schedule: "constant", "linear" or "cosine".
        warmup_steps: W >= 0 steps of linear warm-up (applies to every schedule, "constant" included).
        min_ratio: m in [0, 1], the rate the decay heads for, as a fraction of the base rate.

    Returns:
        The factor, in (0, 1].

    Raises:
        ValueError: An argument outside the ranges above, or an unknown schedule.
    """
    if step < 1 or num_steps < 1:
        raise ValueError(f"step and num_steps must be >= 1, got step={step}, num_steps={num_steps}")
    if not 0 <= warmup_steps <= num_steps:
        raise ValueError(f"warmup_steps must be in [0, num_steps={num_steps}], got {warmup_steps}")
    if not 0.0 <= min_ratio <= 1.0:
        raise ValueError(f"min_ratio must be in [0, 1], got {min_ratio}")
    if schedule not in ("constant", "linear", "cosine"):
        raise ValueError(f"unknown lr schedule {schedule!r}: choose 'constant', 'linear' or 'cosine'")
    if step <= warmup_steps:
        return step / warmup_steps
    if schedule == "constant":
        return 1.0
    decay_steps = num_steps - warmup_steps
    if decay_steps == 0:  # only reached past the run's end when warm-up spans the whole run
        return 1.0
    progress = min(step - warmup_steps - 1, decay_steps - 1) / decay_steps
    shape = 1.0 - progress if schedule == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))
    return min_ratio + (1.0 - min_ratio) * shape
