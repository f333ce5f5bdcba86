"""Configuration of the phase watchdog (`srpo.watchdog`): how long the learner and encoder phases may run."""

from __future__ import annotations

from dataclasses import dataclass

from srpo.config.base import require


@dataclass(frozen=True)
class WatchdogConfig:
    """Time limits that turn a hung phase into an error naming it, instead of a run that stalls silently.

    A hung rollout worker is already caught per env step (rollout.step_timeout_s); these cover the phases that
    run in the driver or on a learner group: the world-model encoder and the PPO update.
    """

    embed_timeout_s: float = 1800.0
    """Longest the embed phase (world-model encoder over the step's videos) may run, in seconds (0 = no limit).
    Generous: V-JEPA 2 on 512 CPU videos takes minutes, not half an hour."""
    update_timeout_s: float = 3600.0
    """Longest the update phase (PPO over mini-batches, on the learner group when there is one) may run, in
    seconds (0 = no limit)."""
    grace_s: float = 30.0
    """After a limit passes, the phase is interrupted; if it does not return within this many seconds (a hang
    inside native code that ignores signals), the process prints the error, ends its workers and exits with
    status 2."""

    def __post_init__(self) -> None:
        require(self.embed_timeout_s >= 0, "watchdog.embed_timeout_s", self.embed_timeout_s,
                "seconds >= 0 (0 = no limit), e.g. 1800")
        require(self.update_timeout_s >= 0, "watchdog.update_timeout_s", self.update_timeout_s,
                "seconds >= 0 (0 = no limit), e.g. 3600")
        require(self.grace_s > 0, "watchdog.grace_s", self.grace_s, "seconds > 0, e.g. 30")
