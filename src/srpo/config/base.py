"""Shared helpers for the typed config tree: one error type whose message names the field and a fix."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from srpo.errors import SrpoError


class ConfigError(SrpoError, ValueError):
    """An invalid config value. The message names the field, the bad value and what to set instead."""


def require(condition: bool, field: str, value: Any, fix: str) -> None:
    """Raise ConfigError unless `condition` holds.

    Args:
        condition: The validity check.
        field: Dotted field name as the user writes it, e.g. "reward.eps".
        value: The offending value.
        fix: What to set instead, e.g. "a float > 0 such as 0.5".
    """
    if not condition:
        raise ConfigError(f"{field}={value!r} is invalid: set it to {fix}")


def require_choice(value: Any, field: str, choices: Iterable[Any]) -> None:
    """Raise ConfigError unless `value` is one of `choices`."""
    options = list(choices)
    if value not in options:
        raise ConfigError(f"{field}={value!r} is invalid: choose one of {', '.join(map(repr, options))}")
