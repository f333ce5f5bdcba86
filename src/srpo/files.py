"""Reading the JSON and torch files a command is given, with one wording for a file that cannot be read.

Each reader turns the parser's exceptions into the caller's `SrpoError` subclass (a damaged checkpoint, a bad
input file), so the CLI prints one line naming the file instead of a traceback. What the content must hold is
the caller's check.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

from srpo.errors import InputFileError, SrpoError


def first_line(err: BaseException) -> str:
    """The first line of an exception's message (libraries' messages run to pages), or its type's name."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def read_json(path: str | Path, error: type[SrpoError] = InputFileError, hint: str = "") -> Any:
    """The JSON value in `path`.

    Args:
        path: A file that exists (the caller reports a missing one in its own words).
        error: Raised for a file that is not UTF-8 JSON.
        hint: Appended to the message, e.g. "; use an earlier checkpoint".

    Raises:
        `error`: "PATH is not valid JSON (parser message)HINT".
    """
    try:
        return json.loads(Path(path).read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise error(f"{path} is not valid JSON ({err}){hint}") from err


def load_torch(path: str | Path, what: str, error: type[SrpoError] = InputFileError,
               hint: str = "it is truncated, damaged or of another kind") -> Any:
    """`torch.load(path, map_location="cpu", weights_only=True)`: tensors and plain containers, never pickled code.

    Args:
        path: A file that exists.
        what: What the file should be, for the message ("torch weights file", "trainer state").
        error: Raised for a file torch cannot read that way.
        hint: The message's tail: why, and what to do.

    Raises:
        `error`: "PATH is not a readable WHAT (first line of torch's message): HINT".
    """
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, ValueError, EOFError, pickle.UnpicklingError, OSError) as err:
        raise error(f"{path} is not a readable {what} ({first_line(err)}): {hint}") from err
