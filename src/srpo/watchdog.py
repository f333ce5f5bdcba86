"""A watchdog for the phases of a training step that run in the driver: a hang becomes an error naming the phase.

Rollout workers have their own per-step timeout (rollout.step_timeout_s). The encoder (embed) and learner
(update) phases run in the driver or wait on a learner group; if one hangs — a deadlocked collective, a GPU
that stopped answering, an encoder actor that never replies — the run would stall without a word.

    watchdog = PhaseWatchdog({"embed": 1800.0, "update": 3600.0}, grace_s=30.0)
    with watchdog.watch("update", step=12):
        ...  # raises PhaseTimeoutError naming "update" if this runs longer than 3600 s

How: a daemon thread waits for the phase to end. When the limit passes it sends SIGALRM to the main thread,
whose handler raises inside the phase (a blocking system call is interrupted too). Native code that holds on
despite the signal gets `grace_s` more seconds; then the watchdog prints the error itself, kills this process's
worker processes and exits with status 2, so that nothing is left stalled. Only the main thread can be watched
(Python delivers signals there); elsewhere `watch` does nothing.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import FrameType
from typing import Any

from srpo.errors import PhaseTimeoutError

EXIT_STATUS = 2


class _PhaseExpired(BaseException):
    """Raised inside the watched phase by the SIGALRM handler; BaseException so that a phase's own
    `except Exception` cannot swallow it. Turned into PhaseTimeoutError when it leaves the phase."""


class PhaseWatchdog:
    """Time limits per phase name; `watch(phase)` enforces one around a block of code.

    Args:
        limits: Phase name → limit in seconds (0 or absent = no limit).
        grace_s: Seconds allowed after the interrupt before the process exits on its own.
        field_prefix: Config section named in messages, so the user knows what to raise.
    """

    def __init__(self, limits: Mapping[str, float], grace_s: float = 30.0, field_prefix: str = "watchdog") -> None:
        self.limits = dict(limits)
        self.grace_s = grace_s
        self.field_prefix = field_prefix
        self._lock = threading.Lock()
        self._expired: str | None = None  # message of the phase being interrupted, None otherwise

    def message(self, phase: str, step: int | None) -> str:
        limit = self.limits[phase]
        where = f" at step {step}" if step is not None else ""
        field = f"{self.field_prefix}.{phase}_timeout_s"
        return (f"the {phase} phase{where} ran longer than {field}={limit:g} s and was stopped: it is hung (see "
                f"the log above for the last thing it did) or slower than the limit; if it is only slow, raise "
                f"{field} (0 = no limit)")

    def _on_alarm(self, signum: int, frame: FrameType | None) -> None:
        if self._expired is not None:
            raise _PhaseExpired(self._expired)

    @contextmanager
    def watch(self, phase: str, step: int | None = None) -> Iterator[None]:
        """Run the block under the phase's limit.

        Raises:
            PhaseTimeoutError: The block ran longer than the limit (the message names the phase, the step and
                the config field).
        """
        limit = self.limits.get(phase, 0.0)
        if limit <= 0 or threading.current_thread() is not threading.main_thread():
            yield
            return
        message = self.message(phase, step)
        done = threading.Event()
        main_thread = threading.main_thread().ident
        assert main_thread is not None
        previous: Any = signal.signal(signal.SIGALRM, self._on_alarm)

        def wait() -> None:
            if done.wait(limit):
                return
            with self._lock:
                if done.is_set():
                    return
                self._expired = message
                signal.pthread_kill(main_thread, signal.SIGALRM)
            if done.wait(self.grace_s):
                return
            # Native code ignored the interrupt: report, end the workers, leave.
            print(f"srpo: error: {message} (it did not return within watchdog.grace_s={self.grace_s:g} s of "
                  "being interrupted; exiting)", file=sys.stderr, flush=True)
            for child in multiprocessing.active_children():
                child.kill()
            os._exit(EXIT_STATUS)

        watcher = threading.Thread(target=wait, name=f"srpo-watchdog-{phase}", daemon=True)
        watcher.start()
        try:
            yield
        except _PhaseExpired:
            raise PhaseTimeoutError(message) from None
        finally:
            with self._lock:
                done.set()
                self._expired = None
            # A SIGALRM sent just before the phase ended may still be on its way: our handler stays installed
            # (a no-op while nothing has expired) unless there was a Python handler to give back, because the
            # default action of SIGALRM is to terminate the process.
            if callable(previous):
                signal.signal(signal.SIGALRM, previous)
