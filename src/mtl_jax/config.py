"""Experiment configs: plain dicts from ``experiments/<name>.py``, with typed ``--set`` overrides.

A config file defines ``get_config() -> dict``. Overrides name a dotted key that must already
exist (``optimizer.learning_rate=3e-4``); the value is parsed as a Python literal and must
have the type of the default it replaces (an int may replace a float).
"""

from __future__ import annotations

import ast
import copy
import difflib
import importlib.util
from pathlib import Path
from typing import Any, Iterable

from mtl_jax.errors import ConfigError




def load_config(path: str | Path) -> dict[str, Any]:
    """Import ``path`` and return its ``get_config()``."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist; pass e.g. --config experiments/multi_mnist_pcgrad.py")
    spec = importlib.util.spec_from_file_location(f"mtl_jax_config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as error:  # a broken config file, reported as one line
        raise ConfigError(f"config file {str(path)!r} failed to load: {type(error).__name__}: {error}") from error
    if not hasattr(module, "get_config"):
        raise ConfigError(f"config file {str(path)!r} defines no get_config(); add `def get_config() -> dict`")
    return module.get_config()


def _parse_value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


NAME_OR_NAMES = ("dataset",)  # keys taking one name or a list of names


def _check_type(key: str, old: Any, new: Any) -> Any:
    if key in NAME_OR_NAMES and isinstance(new, (str, list)):
        return new  # the trainer checks the names
    if isinstance(old, bool) or isinstance(new, bool):
        if type(old) is not type(new):
            raise ConfigError(f"--set {key}: expected True or False, got {new!r}")
        return new
    if isinstance(old, float) and isinstance(new, int):
        return float(new)
    if old is not None and not isinstance(new, type(old)):
        raise ConfigError(
            f"--set {key}: expected a value of type {type(old).__name__} (like {old!r}), got {new!r}"
        )
    return new


def apply_overrides(config: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """A copy of ``config`` with each ``key=value`` of ``overrides`` applied."""
    config = copy.deepcopy(config)
    for override in overrides:
        key, sep, text = override.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {override!r}: expected key=value, e.g. --set steps=200")
        node = config
        parts = key.split(".")
        for depth, part in enumerate(parts):
            if not isinstance(node, dict) or part not in node:
                known = sorted(node) if isinstance(node, dict) else []
                close = difflib.get_close_matches(part, known, n=1)
                hint = f"; did you mean {'.'.join(parts[:depth] + close)!r}?" if close else ""
                raise ConfigError(
                    f"--set {key}: unknown key {'.'.join(parts[: depth + 1])!r}{hint}"
                    f" Accepted keys here: {', '.join(known)}"
                )
            if depth == len(parts) - 1:
                node[part] = _check_type(key, node[part], _parse_value(text))
            else:
                node = node[part]
    return config
