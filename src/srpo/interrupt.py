"""Ctrl-C and SIGTERM during a long command: stop at a step boundary, or abandon the step on a second signal.

The first SIGINT / SIGTERM only records a stop request: the loop finishes the step in flight, writes a
checkpoint and returns, so the run directory ends on a complete, resumable step. A second signal abandons the
step in flight at once (raising `Interrupted`); the run directory is still consistent, because checkpoints are
written to a temporary directory and renamed, and a resume re-runs the steps after the newest checkpoint.

    with StopOnSignal("srpo train") as stop:
        trainer.train(should_stop=stop.requested)
    if stop.signum is not None:
        ...  # print where the run stopped and how to resume; exit with stop.exit_code

Rollout worker processes ignore SIGINT (a terminal's Ctrl-C reaches the whole process group): the driver
decides when they stop, and closing the rollout engine ends them.
"""

from __future__ import annotations

import shlex
import signal
import sys
import threading
from types import FrameType, TracebackType
from typing import Any

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """A second SIGINT / SIGTERM: abandon the step in flight. BaseException, so `except Exception` in a phase
    cannot swallow it."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"abandoned on {signal.Signals(signum).name}")
        self.signum = signum


class StopOnSignal:
    """Turns SIGINT / SIGTERM into a stop request (first signal) or `Interrupted` (second), restoring the
    previous handlers on exit. Outside the main thread (where Python cannot install handlers) it does nothing.

    Args:
        command: Named in the one-line notice printed on the first signal.
    """

    def __init__(self, command: str) -> None:
        self.command = command
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def requested(self) -> bool:
        """Whether a stop was requested."""
        return self.signum is not None

    @property
    def exit_code(self) -> int:
        """The shell convention 128 + signal number (130 for SIGINT, 143 for SIGTERM); 0 without a signal."""
        return 128 + self.signum if self.signum is not None else 0

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else ""

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            raise Interrupted(signum)
        self.signum = signum
        print(f"{self.command}: {signal.Signals(signum).name} received: stopping after the step in flight "
              "(send it again to abandon the step now)", file=sys.stderr, flush=True)

    def __enter__(self) -> StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            for sig in HANDLED_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()


def interrupted_message(command: str, signal_name: str, run_dir: str, checkpoint_step: int | None,
                        num_steps: int) -> str:
    """The one line printed when a run stops on a signal: the step it reached and the exact resume command.

    Args:
        command: E.g. "srpo train".
        signal_name: "SIGINT" or "SIGTERM".
        run_dir: The run directory.
        checkpoint_step: Step of the newest complete checkpoint, None when there is none yet.
        num_steps: The run's target number of steps.
    """
    if checkpoint_step is None:
        return (f"{command}: stopped by {signal_name} before the first checkpoint; nothing to resume: run the same "
                f"command again to start over (or remove {run_dir})")
    return (f"{command}: stopped by {signal_name} at step {checkpoint_step} of {num_steps} (checkpoint written); "
            f"resume with: srpo train --resume {shlex.quote(run_dir)}")
