"""Experiment files and ``--set`` overrides: the plain dict a run config is parsed from.

An experiment file ``experiments/<name>.py`` defines ``get_config() -> dict`` (no arguments).
Overrides name a dotted key that must already exist in the resolved dict
(``optimizer.learning_rate=3e-4``) — only the keys of ``augment`` may be new
(``augment.shift=2``); the value is parsed as a Python literal and must have the
type of the value it replaces (an int may replace a float). Every problem is a
:class:`~mtl_jax.errors.ConfigError` with one line naming the fix.
"""

from __future__ import annotations

import ast
import copy
import difflib
import importlib.util
import inspect
from pathlib import Path
from typing import Any, Iterable

from mtl_jax.errors import ConfigError

EXAMPLE = "experiments/multi_mnist_pcgrad.py"
NAME_OR_NAMES = ("dataset",)  # keys taking one name or a list of names
FLAG_OR_NAME = ("gradient_stats",)  # keys taking True, False or a name ("per_layer")
OPEN_MAPPINGS = ("augment",)  # dicts whose keys --set may add (augment.shift=2); the run config checks them


def _error_text(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text[:200]}" if text else type(error).__name__


def load_config(path: str | Path) -> dict[str, Any]:
    """Import the experiment file ``path`` and return its ``get_config()``, a dict."""
    path = Path(path)
    shown = repr(str(path))
    if not path.is_file():
        raise ConfigError(f"config file {shown} does not exist; pass e.g. --config {EXAMPLE}")
    if path.suffix != ".py":
        raise ConfigError(f"config file {shown} is not a Python file (.py); pass an experiment file such as {EXAMPLE}")
    spec = importlib.util.spec_from_file_location(f"mtl_jax_config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except BaseException as error:  # a broken file (even SystemExit), reported as one line
        if isinstance(error, KeyboardInterrupt):
            raise
        raise ConfigError(f"config file {shown} failed to load: {_error_text(error)}") from error
    get_config = getattr(module, "get_config", None)
    if not callable(get_config):
        raise ConfigError(f"config file {shown} defines no get_config(); add `def get_config() -> dict`")
    try:
        required = [
            name for name, p in inspect.signature(get_config).parameters.items()
            if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
    except (TypeError, ValueError):
        required = []
    if required:
        raise ConfigError(
            f"config file {shown}: get_config takes the arguments {required}; define it without"
            " arguments (`def get_config() -> dict`) and use --set for variants"
        )
    try:
        config = get_config()
    except BaseException as error:
        if isinstance(error, KeyboardInterrupt):
            raise
        raise ConfigError(f"config file {shown}: get_config() raised {_error_text(error)}") from error
    if not isinstance(config, dict):
        raise ConfigError(
            f"config file {shown}: get_config() returned a {type(config).__name__}, not a dict;"
            " return the config as a dict of keys to values"
        )
    return config


def _parse_value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text


def _kind(value: Any) -> str:
    return "True or False" if isinstance(value, bool) else f"a value of type {type(value).__name__}"


def _check_type(key: str, old: Any, new: Any) -> Any:
    if key in NAME_OR_NAMES and isinstance(new, (str, list)):
        return new  # the run config checks the names
    if key in FLAG_OR_NAME and isinstance(new, (bool, str)):
        return new  # the run config checks the value
    if isinstance(old, bool) or isinstance(new, bool):
        if type(old) is not type(new):
            raise ConfigError(f"--set {key}: expected {_kind(old)} (like {old!r}), got {new!r}")
        return new
    if isinstance(old, float) and isinstance(new, int):
        return float(new)
    if old is not None and not isinstance(new, type(old)):
        raise ConfigError(f"--set {key}: expected {_kind(old)} (like {old!r}), got {new!r}")
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
            if depth == 1 == len(parts) - 1 and parts[0] in OPEN_MAPPINGS and isinstance(node, dict):
                node[part] = _parse_value(text)
                break
            if not isinstance(node, dict) or part not in node:
                known = sorted(node) if isinstance(node, dict) else []
                close = difflib.get_close_matches(part, known, n=1)
                hint = f"; did you mean {'.'.join(parts[:depth] + close)!r}?" if close else ""
                raise ConfigError(
                    f"--set {key}: unknown key {'.'.join(parts[: depth + 1])!r}{hint}"
                    f" Accepted keys here: {', '.join(known) or 'none'}"
                )
            if depth == len(parts) - 1:
                node[part] = _check_type(key, node[part], _parse_value(text))
            else:
                node = node[part]
    return config
