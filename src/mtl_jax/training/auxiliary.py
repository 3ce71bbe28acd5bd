"""Auxiliary tasks: trained, and part of the surgery, but not what a run is judged by.

``auxiliary_tasks`` in the run config names some of the trained tasks. They have heads and
losses, their gradients enter the Gramian (or Jacobian) like any other task's, and the
aggregator weighs them; but the primary tasks (the others) alone make up

- ``best_metric``'s ``mean/<metric>`` (:func:`mtl_jax.evaluation.best.select_metric`), and
- Δm% (Maninis et al. 2019: the mean relative change over the compared primary tasks).

PCD (:mod:`mtl_jax.aggregators.pcd`) takes its primary objective from the split: with
auxiliary tasks, its ``primary`` option becomes the indices of the primary tasks in the
step's task order, and giving ``aggregator_options.primary`` as well is refused (two sources
for one choice). Without auxiliary tasks PCD keeps its own default, the first task.
"""

from __future__ import annotations

import inspect
from typing import Any, Sequence

from mtl_jax.aggregators import REGISTRY
from mtl_jax.config import RunConfig
from mtl_jax.config.checks import one_of
from mtl_jax.data.spec import TaskSpec
from mtl_jax.errors import ConfigError
from mtl_jax.evaluation.task_metrics import METRICS_BY_KIND

PRIMARY_OPTION = "primary"  # an aggregator option naming the primary tasks' indices (PCD)


def primary_tasks(names: Sequence[str], auxiliary: Sequence[str]) -> tuple[str, ...]:
    """The tasks of ``names`` that are not auxiliary, in order."""
    return tuple(name for name in names if name not in set(auxiliary))


def takes_primary(aggregator: str) -> bool:
    """Whether the aggregator's factory has a ``primary`` option (PCD)."""
    return PRIMARY_OPTION in inspect.signature(REGISTRY[aggregator][0]).parameters


def aggregator_options(config: RunConfig, names: Sequence[str]) -> dict[str, Any]:
    """``config.aggregator_options``, with ``primary`` = the primary tasks' indices in
    ``names`` (the step's order) when there are auxiliary tasks and the aggregator takes it."""
    options = dict(config.aggregator_options)
    if not config.auxiliary_tasks or not takes_primary(config.aggregator):
        return options
    if PRIMARY_OPTION in options:
        raise ConfigError(
            f"aggregator {config.aggregator!r}: give the primary tasks once, either as auxiliary_tasks"
            f" {list(config.auxiliary_tasks)} (the others are primary) or as aggregator_options.primary"
        )
    auxiliary = set(config.auxiliary_tasks)
    return {**options, PRIMARY_OPTION: [i for i, name in enumerate(names) if name not in auxiliary]}


def check_auxiliary(config: RunConfig, tasks: Sequence[TaskSpec]) -> None:
    """ConfigError (one line) for auxiliary tasks that are not trained, for no primary task
    left, for a ``mean/<metric>`` no primary task reports, and for baselines of auxiliary
    tasks only (Δm% would compare nothing)."""
    names = [task.name for task in tasks]
    for name in config.auxiliary_tasks:
        one_of("auxiliary_tasks", name, names)
    primary = primary_tasks(names, config.auxiliary_tasks)
    if not primary:
        raise ConfigError(
            f"config key 'auxiliary_tasks' names every task {names}; leave at least one primary task"
            " (the run is judged by the primary ones)"
        )
    if not config.auxiliary_tasks:
        return
    task, _, metric = config.best_metric.partition("/")
    kinds = {spec.kind for spec in tasks if spec.name in primary}
    if task == "mean" and metric != "loss" and not any(metric in METRICS_BY_KIND[kind] for kind in kinds):
        raise ConfigError(
            f"config key 'best_metric' is {config.best_metric!r}, but no primary task {list(primary)} reports"
            f" {metric!r} (auxiliary tasks are left out of the mean); choose a metric of the primary tasks"
        )
    if config.baselines and not set(config.baselines) & set(primary):
        raise ConfigError(
            f"config key 'baselines' names only auxiliary tasks {sorted(config.baselines)}, which Δm% leaves"
            f" out; give baselines for the primary tasks {list(primary)}"
        )
