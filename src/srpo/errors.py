"""The one error type a user can fix: the CLI prints its message on one line and exits with status 2.

Everything else (a bug, an unexpected library failure) keeps its traceback. Subclasses name the kind of input
that was wrong; the message says what was wrong and what to do instead.
"""

from __future__ import annotations


class SrpoError(Exception):
    """Bad input the user can fix: a config value, a missing or damaged file, a dataset in the wrong shape.

    The message is one line that names the offending input (field, path, row) and a fix.
    """


class InputFileError(SrpoError):
    """A file or folder the command reads is missing, empty, truncated, of the wrong kind or version."""


class CheckpointCorruptError(InputFileError):
    """A checkpoint whose files do not match its manifest, or that cannot be read as what it claims to be."""


class MissingFileError(InputFileError, FileNotFoundError):
    """A file or folder the command needs does not exist (also a FileNotFoundError for library callers)."""


class PhaseTimeoutError(SrpoError):
    """A training phase (embed, update) ran past its watchdog limit: a hang, or a limit set too low."""
