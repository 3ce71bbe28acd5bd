"""The trainer's config: defaults, the resolved config, and checks made before any work.

A config file gives at least the ``REQUIRED`` keys; ``resolve`` adds the ``DEFAULTS`` it
leaves out, so the saved ``config.json`` is complete and ``--set`` can reach every key.
``check_config`` verifies names, types and ranges against the registries and the device
count without touching data, disk or the compiler; ``check_against_dataset`` then checks
the task names and the best-so-far metric against the opened dataset's spec.
"""

from __future__ import annotations

import copy
import difflib
from typing import Any, Iterable, Mapping

from mtl_jax.errors import ConfigError
from mtl_jax.data.spec import DatasetSpec
from mtl_jax.data.mix import STRATEGIES
from mtl_jax.evaluation.task_metrics import METRICS_BY_KIND
from mtl_jax.models.factory import DEFAULTS as MODEL_DEFAULTS
from mtl_jax.training.model_source import check_model_config

REQUIRED = ("dataset", "model", "aggregator", "optimizer", "batch_size", "steps")
DEFAULTS: dict[str, Any] = {
    "dataset_options": {},  # mixed datasets: {name: {...}} per dataset
    "mixing": {"strategy": "proportional", "temperature": 1.0},  # when "dataset" lists several
    "tasks": [],  # empty: every task of the dataset
    "aggregator_options": {},
    "mode": "full",
    "eval_batch_size": 256,
    "seed": 0,
    "log_every": 20,
    "eval_every": 0,  # 0: evaluate only at the end
    "eval_split": "validation",
    "test_split": "test",
    "best_metric": "mean/loss",
    "checkpoint": {"every": 100, "keep": 3},
    "nonfinite": "skip",
    "baselines": {},
    "gradient_stats": True,
    "jacobian_chunk": 0,  # 0: every task cotangent at once
}
NONFINITE = ("skip", "stop")
POSITIVE_INTS = ("batch_size", "eval_batch_size", "steps", "log_every", "checkpoint.every", "checkpoint.keep")
NON_NEGATIVE_INTS = ("eval_every", "jacobian_chunk", "seed")


def resolve(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` with every default filled in (nested dicts merged one level deep; the
    model's defaults come from :data:`mtl_jax.models.factory.DEFAULTS`)."""
    resolved = copy.deepcopy(DEFAULTS)
    for key, value in config.items():
        if isinstance(value, dict) and isinstance(resolved.get(key), dict) and resolved[key]:
            resolved[key] = {**resolved[key], **copy.deepcopy(value)}
        else:
            resolved[key] = copy.deepcopy(value)
    if isinstance(resolved.get("model"), dict):
        model_defaults = {k: list(v) if isinstance(v, tuple) else v for k, v in MODEL_DEFAULTS.items()}
        resolved["model"] = {**model_defaults, **resolved["model"]}
    return resolved


def _get(config: Mapping[str, Any], dotted: str) -> Any:
    node: Any = config
    for part in dotted.split("."):
        node = node[part]
    return node


def one_of(key: str, value: Any, accepted: Iterable[str]) -> str:
    """``value`` if it is one of ``accepted``; else a ConfigError naming them (and a close one)."""
    accepted = sorted(accepted)
    if value not in accepted:
        close = difflib.get_close_matches(str(value), accepted, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"config key {key!r} is {value!r}{hint} Accepted values: {', '.join(accepted)}")
    return value


def _check_keys(config: Mapping[str, Any]) -> None:
    known = set(REQUIRED) | set(DEFAULTS)
    for key in sorted(set(config) - known):
        close = difflib.get_close_matches(key, sorted(known), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown config key {key!r}{hint} Accepted keys: {', '.join(sorted(known))}")
    missing = [key for key in REQUIRED if key not in config]
    if missing:
        raise ConfigError(f"config misses the required keys {missing}; required: {', '.join(REQUIRED)}")
    extra = sorted(set(config["checkpoint"]) - set(DEFAULTS["checkpoint"])) if isinstance(config["checkpoint"], dict) else []
    if extra:
        raise ConfigError(f"unknown config key 'checkpoint.{extra[0]}'; accepted: checkpoint.every, checkpoint.keep")


def _check_types(config: Mapping[str, Any]) -> None:
    for key in POSITIVE_INTS + NON_NEGATIVE_INTS:
        value = _get(config, key)
        low = 1 if key in POSITIVE_INTS else 0
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            kind = "a positive integer" if low else "a non-negative integer"
            raise ConfigError(f"config key {key!r} must be {kind}, got {value!r}")
    for key in ("dataset_options", "mixing", "aggregator_options", "optimizer", "model", "baselines", "checkpoint"):
        if not isinstance(config[key], dict):
            raise ConfigError(f"config key {key!r} must be a dict, got {type(config[key]).__name__} {config[key]!r}")
    if not isinstance(config["tasks"], list) or not all(isinstance(t, str) for t in config["tasks"]):
        raise ConfigError(f"config key 'tasks' must be a list of task names, got {config['tasks']!r}")
    if not isinstance(config["gradient_stats"], bool):
        raise ConfigError(f"config key 'gradient_stats' must be True or False, got {config['gradient_stats']!r}")
    for key in ("eval_split", "test_split", "best_metric"):
        if not isinstance(config[key], str):
            raise ConfigError(f"config key {key!r} must be a string, got {config[key]!r}")


def _check_datasets(config: Mapping[str, Any], datasets: Iterable[str]) -> None:
    """``dataset`` is one name, or a list of distinct names mixed by ``mixing``."""
    names = config["dataset"]
    if isinstance(names, str):
        one_of("dataset", names, datasets)
        return
    if not isinstance(names, list) or len(names) < 2 or len(set(names)) != len(names):
        raise ConfigError(f"config key 'dataset' must be a name or a list of 2+ distinct names, got {names!r}")
    for name in names:
        one_of("dataset", name, datasets)
    unknown = sorted(set(config["dataset_options"]) - set(names))
    if unknown:
        raise ConfigError(
            f"config key 'dataset_options' names {unknown}, not among the mixed datasets;"
            f" with several datasets it maps each of {names} to its options"
        )
    mixing = config["mixing"]
    if set(mixing) != {"strategy", "temperature"}:
        raise ConfigError(f"config key 'mixing' must have exactly the keys strategy, temperature; got {sorted(mixing)}")
    one_of("mixing.strategy", mixing["strategy"], STRATEGIES)
    temperature = mixing["temperature"]
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or temperature <= 0:
        raise ConfigError(f"config key 'mixing.temperature' must be a positive number, got {temperature!r}")


def check_config(
    config: Mapping[str, Any],
    *,
    datasets: Iterable[str],
    aggregators: Iterable[str],
    optimizers: Iterable[str],
    modes: Iterable[str],
    num_devices: int,
) -> None:
    """Raise ConfigError for the first problem of a resolved ``config``."""
    _check_keys(config)
    _check_types(config)
    _check_datasets(config, datasets)
    check_model_config(config["model"])
    one_of("aggregator", config["aggregator"], aggregators)
    one_of("optimizer.name", config["optimizer"].get("name"), optimizers)
    one_of("mode", config["mode"], modes)
    one_of("nonfinite", config["nonfinite"], NONFINITE)
    for key in ("batch_size", "eval_batch_size"):
        if config[key] % num_devices:
            lower = config[key] - config[key] % num_devices
            raise ConfigError(
                f"config key {key!r} is {config[key]}, not divisible by the {num_devices} devices;"
                f" use a multiple of {num_devices} (e.g. {lower or num_devices} or {lower + num_devices})"
            )
    task, sep, metric = config["best_metric"].partition("/")
    if not sep or not task or not metric:
        raise ConfigError(
            f"config key 'best_metric' is {config['best_metric']!r}; expected '<task>/<metric>' or"
            " 'mean/<metric>', e.g. 'mean/loss' or 'mean/accuracy'"
        )


def check_against_dataset(config: Mapping[str, Any], spec: DatasetSpec, splits: Iterable[str]) -> list[str]:
    """The task names to train; ConfigError for unknown tasks, splits, baselines or metric."""
    available = [task.name for task in spec.tasks]
    tasks = list(config["tasks"]) or available
    for name in tasks:
        one_of("tasks", name, available)
    if len(set(tasks)) != len(tasks):
        raise ConfigError(f"config key 'tasks' lists a task twice: {tasks}")
    splits = sorted(splits)
    one_of("eval_split", config["eval_split"], splits)
    one_of("test_split", config["test_split"], splits)
    for name in config["baselines"]:
        one_of("baselines", name, tasks)
    task, _, metric = config["best_metric"].partition("/")
    if task != "mean":
        one_of("best_metric (task part)", task, ["mean", *tasks])
    kinds = [spec.task(task).kind] if task != "mean" else [spec.task(t).kind for t in tasks]
    metrics = sorted({"loss", *(m for kind in kinds for m in METRICS_BY_KIND[kind])})
    one_of("best_metric (metric part)", metric, metrics)
    return tasks
