"""From a search space to Optuna suggestions, and from a trial's parameters back to config values.

A key drawn at the top of the space is an Optuna parameter of the same name
(``optimizer.learning_rate``). A key of a sub-space is named with the choices that drew it
(``aggregator_options.c | aggregator=cagrad``), so two methods may give one option
different ranges without Optuna seeing one parameter with two distributions.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from mtl_jax.tuning.space import Choice, Float, Int, Space


def param_name(key: str, conditions: tuple) -> str:
    if not conditions:
        return key
    return f"{key} | " + ", ".join(f"{parent}={value}" for parent, value in conditions)


def _walk(space: Space, pick: Callable[[str, Any], Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}

    def walk(sub: Mapping[str, Any], conditions: tuple) -> None:
        for key, dist in sub.items():
            value = pick(param_name(key, conditions), dist)
            values[key] = value
            if isinstance(dist, Choice) and value in dist.when:
                walk(dist.when[value], conditions + ((key, value),))

    walk(space, ())
    return values


def suggest_one(trial: Any, name: str, dist: Any) -> Any:
    if isinstance(dist, Float):
        return trial.suggest_float(name, float(dist.low), float(dist.high), log=dist.log, step=dist.step)
    if isinstance(dist, Int):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    return trial.suggest_categorical(name, list(dist.values))


def draw(trial: Any, space: Space) -> dict[str, Any]:
    """{config key: value} drawn by ``trial`` (an ``optuna.Trial``) from ``space``."""
    return _walk(space, lambda name, dist: suggest_one(trial, name, dist))


def values_of(params: Mapping[str, Any], space: Space) -> dict[str, Any]:
    """{config key: value} of a finished trial's ``params``."""
    return _walk(space, lambda name, dist: params[name])
