"""One-line checks of config values: each raises a ConfigError naming the key and the fix."""

from __future__ import annotations

import difflib
import math
from typing import Any, Iterable

from mtl_jax.errors import ConfigError

MAX_INT = 2**31 - 1  # the step counter and the data iterator's positions are int32


def hint(value: Any, accepted: Iterable[str]) -> str:
    close = difflib.get_close_matches(str(value), sorted(accepted), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def one_of(key: str, value: Any, accepted: Iterable[str]) -> str:
    """``value`` if it is one of ``accepted``; else a ConfigError naming them (and a close one)."""
    accepted = sorted(accepted)
    if not isinstance(value, str) or value not in accepted:
        raise ConfigError(f"config key {key!r} is {value!r}{hint(value, accepted) or '.'} Accepted values: {', '.join(accepted)}")
    return value


def integer(key: str, value: Any, *, low: int, high: int = MAX_INT) -> int:
    """``value`` if it is an int in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        kind = "a positive integer" if low == 1 else "a non-negative integer" if low == 0 else f"an integer >= {low}"
        raise ConfigError(f"config key {key!r} must be {kind}, got {value!r}")
    if value > high:
        raise ConfigError(f"config key {key!r} is {value}, larger than the largest accepted value {high}; use a smaller value")
    return value


def positive_number(key: str, value: Any) -> float:
    """``value`` if it is a finite number > 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"config key {key!r} must be a positive number, got {value!r}")
    return value


def string(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"config key {key!r} must be a string, got {value!r}")
    return value


def boolean(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"config key {key!r} must be True or False, got {value!r}")
    return value


def mapping(key: str, value: Any) -> dict:
    if not isinstance(value, dict):
        raise ConfigError(f"config key {key!r} must be a dict, got {type(value).__name__} {value!r}")
    return value


def known_keys(prefix: str, given: Iterable[str], accepted: Iterable[str]) -> None:
    """ConfigError for the first key of ``given`` not in ``accepted`` (``prefix``: dotted parent)."""
    accepted = sorted(accepted)
    for key in sorted(set(given) - set(accepted)):
        where = f"{prefix}.{key}" if prefix else key
        close = hint(key, accepted)
        listing = ", ".join(f"{prefix}.{k}" if prefix else k for k in accepted)
        raise ConfigError(f"unknown config key {where!r}{close} Accepted keys: {listing}")
