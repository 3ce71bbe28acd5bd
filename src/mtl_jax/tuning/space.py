"""The search space of a sweep: distributions over dotted config keys.

An experiment file may define ``get_sweep() -> dict`` next to ``get_config()``::

    from mtl_jax.tuning.space import Choice, Float, Int

    def get_sweep():
        return {
            "optimizer.learning_rate": Float(1e-4, 1e-2, log=True),
            "model.dropout": Float(0.0, 0.4),
            "batch_size": Choice([32, 64, 128]),
            "aggregator": Choice(["sum", "pcgrad", "cagrad"],
                                 when={"cagrad": {"aggregator_options.c": Float(0.1, 0.9)}}),
            "model.architecture": Choice(["hard", "mmoe"], when={"mmoe": {"model.num_experts": Int(2, 8)}}),
        }

A key names an entry of the resolved config (``--set`` spelling). ``Choice(..., when=...)``
gives per-value sub-spaces, sampled only when that value is drawn (conditional, as in
Optuna's define-by-run API); ``aggregator_options.<name>`` keys are allowed there (the
aggregator checks the option names). When the space draws ``aggregator``, the base
config's ``aggregator_options`` are dropped first (they belong to the base method).

This module imports neither Optuna nor JAX: the space is plain data, checked against the
config by :func:`check_space` (in ``mtl_jax.tuning.runs``), described as JSON for the study
(:func:`describe`, :func:`from_description`) and compared (:func:`space_differences`).
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import json
import math
from typing import Any, Iterator, Mapping, Union

from mtl_jax.errors import ConfigError

Scalar = Union[str, int, float, bool, None]
FREE_DICTS = ("aggregator_options",)  # dict keys whose entries a space may add


@dataclasses.dataclass(frozen=True)
class Float:
    """A real number in [low, high]; ``log=True``: log-uniform (low > 0); ``step``: a grid."""

    low: float
    high: float
    log: bool = False
    step: float | None = None

    def corners(self) -> tuple[float, ...]:
        return (float(self.low), float(self.high))


@dataclasses.dataclass(frozen=True)
class Int:
    """An integer in [low, high] (both included) on a grid of ``step``; ``log=True``: log scale."""

    low: int
    high: int
    step: int = 1
    log: bool = False

    def corners(self) -> tuple[int, ...]:
        return (int(self.low), int(self.high))


@dataclasses.dataclass(frozen=True)
class Choice:
    """One of ``values`` (scalars); ``when[value]`` is a sub-space drawn only with that value."""

    values: tuple
    when: Mapping[Any, Mapping[str, Any]] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", tuple(self.values))
        object.__setattr__(self, "when", dict(self.when))

    def corners(self) -> tuple:
        return self.values


Distribution = Union[Float, Int, Choice]
Space = Mapping[str, Distribution]


# --------------------------------------------------------------------------- shape checks


def _check_distribution(key: str, dist: Any) -> None:
    """ConfigError when ``dist`` is not a well-formed distribution (independent of the config)."""
    where = f"sweep space key {key!r}"
    if isinstance(dist, Float):
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (dist.low, dist.high)):
            raise ConfigError(f"{where}: Float bounds must be finite numbers, got {dist.low!r}, {dist.high!r}")
        if dist.low > dist.high:
            raise ConfigError(f"{where}: Float low {dist.low!r} is above high {dist.high!r}; swap them")
        if dist.log and dist.low <= 0:
            raise ConfigError(f"{where}: a log-uniform Float needs low > 0, got {dist.low!r}; use log=False or a positive low")
        if dist.step is not None and (dist.log or not dist.step > 0):
            raise ConfigError(f"{where}: Float step must be positive and not combined with log=True, got step={dist.step!r}")
    elif isinstance(dist, Int):
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (dist.low, dist.high, dist.step)):
            raise ConfigError(f"{where}: Int low, high and step must be integers, got {dist.low!r}, {dist.high!r}, {dist.step!r}")
        if dist.low > dist.high or dist.step < 1:
            raise ConfigError(f"{where}: Int needs low <= high and step >= 1, got low={dist.low}, high={dist.high}, step={dist.step}")
        if dist.log and (dist.low < 1 or dist.step != 1):
            raise ConfigError(f"{where}: a log-scale Int needs low >= 1 and step 1")
    elif isinstance(dist, Choice):
        if not dist.values:
            raise ConfigError(f"{where}: Choice needs at least one value")
        for value in dist.values:
            if value is not None and not isinstance(value, (str, int, float, bool)):
                raise ConfigError(
                    f"{where}: Choice values must be str, int, float, bool or None (Optuna's categorical), got"
                    f" {value!r}; for a tuple-valued key list the tuples in the experiment file and pick one by index"
                )
        if len(set(map(repr, dist.values))) != len(dist.values):
            raise ConfigError(f"{where}: Choice lists a value twice: {list(dist.values)}")
        for value, sub in dist.when.items():
            if value not in dist.values:
                raise ConfigError(f"{where}: when= names {value!r}, which is not among the values {list(dist.values)}")
            if not isinstance(sub, Mapping):
                raise ConfigError(f"{where}: when[{value!r}] must be a dict of config key -> distribution")
    else:
        raise ConfigError(
            f"{where}: {dist!r} is not a distribution; use Float(low, high[, log]), Int(low, high[, step])"
            " or Choice(values[, when]) from mtl_jax.tuning.space"
        )


def iter_keys(space: Space, parent: tuple = ()) -> Iterator[tuple[str, Distribution, tuple]]:
    """(key, distribution, conditions) for every key, sub-spaces included; ``conditions`` is
    the chain of ((parent key, value), ...) under which the key is drawn."""
    for key, dist in space.items():
        yield key, dist, parent
        if isinstance(dist, Choice):
            for value, sub in dist.when.items():
                yield from iter_keys(sub, parent + ((key, value),))


def check_shape(space: Any) -> None:
    """ConfigError unless ``space`` is a dict {dotted key: distribution} (sub-spaces too) in
    which no key appears twice along one branch."""
    if not isinstance(space, Mapping) or not space:
        raise ConfigError(
            f"get_sweep() must return a non-empty dict {{config key: Float|Int|Choice}}, got {type(space).__name__}"
        )

    def walk(sub: Mapping, seen: frozenset) -> None:
        for key, dist in sub.items():
            if not isinstance(key, str) or not key:
                raise ConfigError(f"sweep space keys must be dotted config keys (strings), got {key!r}")
            if key in seen:
                raise ConfigError(f"sweep space key {key!r} appears twice on one branch; keep one")
            _check_distribution(key, dist)
            if isinstance(dist, Choice):
                names = seen | set(sub)
                for child in dist.when.values():
                    walk(child, frozenset(names))

    walk(space, frozenset())


# --------------------------------------------------------------------------- keys vs config


def lookup(config: Mapping[str, Any], key: str) -> tuple[bool, Any]:
    """(found, value) of dotted ``key`` in ``config``."""
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _unknown_key(config: Mapping[str, Any], key: str) -> ConfigError:
    parts = key.split(".")
    node: Any = config
    for depth, part in enumerate(parts):
        if not isinstance(node, Mapping) or part not in node:
            known = sorted(node) if isinstance(node, Mapping) else []
            close = difflib.get_close_matches(part, known, n=1)
            hint = f"; did you mean {'.'.join(parts[:depth] + close)!r}?" if close else ""
            here = ".".join(parts[:depth]) or "the config"
            return ConfigError(
                f"sweep space key {key!r} is not a key of the config{hint} Keys of {here}: {', '.join(known) or 'none'}"
            )
        node = node[part]
    return ConfigError(f"sweep space key {key!r} is not a key of the config")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _fits(value: Any, default: Any) -> bool:
    """Whether a sampled ``value`` may replace ``default`` (the ``--set`` typing rule)."""
    if default is None:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return type(value) is type(default)
    if isinstance(default, float):
        return _is_number(value)
    if isinstance(default, int):
        return isinstance(value, int)
    return isinstance(value, type(default))


def check_types(space: Space, config: Mapping[str, Any], option_defaults: Mapping[str, Any] | None = None) -> None:
    """ConfigError for a key missing from ``config`` or a distribution that does not fit the
    key's type. ``option_defaults``: {aggregator_options.<name>: default} where known."""
    option_defaults = option_defaults or {}
    for key, dist, _ in iter_keys(space):
        found, default = lookup(config, key)
        free = key.split(".")[0] in FREE_DICTS and key.count(".") == 1
        if not found and not free:
            raise _unknown_key(config, key)
        if not found:
            default = option_defaults.get(key)
        if isinstance(default, (dict, list, tuple)):
            raise ConfigError(
                f"sweep space key {key!r} holds a {type(default).__name__} ({default!r}); draw its scalar entries"
                " instead (e.g. 'model.hidden', not 'model')"
            )
        kind = type(default).__name__
        if isinstance(dist, Float) and default is not None and not (isinstance(default, float) or (not found and _is_number(default))):
            raise ConfigError(
                f"sweep space key {key!r} is a {kind} ({default!r}) but the space draws a Float;"
                f" use {'Int(low, high)' if isinstance(default, int) and not isinstance(default, bool) else 'Choice([...])'}"
            )
        if isinstance(dist, Int) and default is not None and (isinstance(default, bool) or not isinstance(default, (int, float))):
            raise ConfigError(f"sweep space key {key!r} is a {kind} ({default!r}) but the space draws an Int; use Choice([...])")
        if isinstance(dist, Choice):
            for value in dist.values:
                if not _fits(value, default):
                    raise ConfigError(
                        f"sweep space key {key!r} is a {kind} ({default!r}) but its Choice offers {value!r}"
                        f" ({type(value).__name__}); offer values of type {kind}"
                    )


# --------------------------------------------------------------------------- assignment


def set_key(config: dict[str, Any], key: str, value: Any) -> None:
    """Set dotted ``key`` of ``config`` in place (the parent dict must exist)."""
    *parents, last = key.split(".")
    node = config
    for part in parents:
        node = node[part]
    if isinstance(node.get(last), float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    node[last] = value


def apply(config: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``config`` with the drawn ``values`` ({config key: value}) set; drawing
    ``aggregator`` first clears the base ``aggregator_options``."""
    out = copy.deepcopy(dict(config))
    if "aggregator" in values and values["aggregator"] != config.get("aggregator"):
        out["aggregator_options"] = {}
    for key in sorted(values, key=lambda k: k.count(".")):
        set_key(out, key, values[key])
    return out


def corner_assignments(space: Space) -> Iterator[dict[str, Any]]:
    """One-at-a-time extreme assignments: each key at each of its corners (low, high, every
    choice), with the parent choices that make it drawn. Checking these configs finds a
    range that leaves the accepted values at a corner without a combinatorial sweep."""
    for key, dist, conditions in iter_keys(space):
        for value in dist.corners():
            yield {**dict(conditions), key: value}


# --------------------------------------------------------------------------- description


def _describe_one(dist: Distribution) -> dict[str, Any]:
    if isinstance(dist, Float):
        return {"type": "float", "low": float(dist.low), "high": float(dist.high), "log": dist.log, "step": dist.step}
    if isinstance(dist, Int):
        return {"type": "int", "low": dist.low, "high": dist.high, "step": dist.step, "log": dist.log}
    return {
        "type": "choice", "values": list(dist.values),
        "when": [[value, describe(sub)] for value, sub in dist.when.items()],
    }


def describe(space: Space) -> dict[str, Any]:
    """The space as plain JSON (stored in the study; workers rebuild it from this)."""
    return {key: _describe_one(dist) for key, dist in space.items()}


def from_description(described: Mapping[str, Any]) -> dict[str, Distribution]:
    """The inverse of :func:`describe`."""
    out: dict[str, Distribution] = {}
    for key, d in described.items():
        if d["type"] == "float":
            out[key] = Float(d["low"], d["high"], log=d["log"], step=d["step"])
        elif d["type"] == "int":
            out[key] = Int(d["low"], d["high"], step=d["step"], log=d["log"])
        else:
            out[key] = Choice(d["values"], when={value: from_description(sub) for value, sub in d["when"]})
    return out


def _flat(described: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    flat = {}
    for key, d in described.items():
        name = prefix + key
        if d["type"] == "choice":
            flat[name] = f"Choice({json.dumps(d['values'])})"
            for value, sub in d["when"]:
                flat.update(_flat(sub, f"{name}={json.dumps(value)} -> "))
        elif d["type"] == "float":
            extra = ", log=True" if d["log"] else (f", step={d['step']}" if d["step"] else "")
            flat[name] = f"Float({d['low']}, {d['high']}{extra})"
        else:
            extra = ", log=True" if d["log"] else (f", step={d['step']}" if d["step"] != 1 else "")
            flat[name] = f"Int({d['low']}, {d['high']}{extra})"
    return flat


def space_differences(stored: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Human-readable differences between two space descriptions ('key: old -> new')."""
    a, b = _flat(stored), _flat(new)
    return [f"{key}: {a.get(key, 'absent')} -> {b.get(key, 'absent')}" for key in sorted(set(a) | set(b)) if a.get(key) != b.get(key)]


def grid(space: Space) -> dict[str, list]:
    """{key: values} for Optuna's GridSampler; ConfigError unless every key is discrete and
    unconditional."""
    out = {}
    for key, dist in space.items():
        if isinstance(dist, Choice):
            if dist.when:
                raise ConfigError(
                    f"--sampler grid: sweep space key {key!r} has per-value sub-spaces (when=); the grid needs a flat"
                    " space: use --sampler tpe or random, or list the combinations as one Choice"
                )
            out[key] = list(dist.values)
        elif isinstance(dist, Int):
            out[key] = list(range(dist.low, dist.high + 1, dist.step))
        elif dist.step is not None:
            count = int(math.floor((dist.high - dist.low) / dist.step + 1e-9)) + 1
            out[key] = [dist.low + i * dist.step for i in range(count)]
        else:
            raise ConfigError(
                f"--sampler grid: sweep space key {key!r} is a continuous Float; give it a step"
                " (Float(low, high, step=...)) or use --sampler tpe or random"
            )
    return out


def grid_size(space: Space) -> int:
    return math.prod(len(values) for values in grid(space).values())
