"""The task abstraction: a name, a head, a loss and metrics.

Losses and metrics are returned as *sufficient statistics* ``(total, count)`` over the local
examples (or tokens). The train step divides the all-reduced total by the all-reduced count,
so a loss is the exact global mean whatever the device count, padding or task masks.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Mapping, NamedTuple

import jax
from flax import nnx

from mtl_jax.types import Batch



class Statistic(NamedTuple):
    """A quantity as a (total, count) pair; its value is total / count."""

    total: jax.Array
    count: jax.Array


HeadFactory = Callable[[int, nnx.Rngs], nnx.Module]
LossFn = Callable[[jax.Array, Batch], Statistic]
MetricFn = Callable[[jax.Array, Batch], Statistic]


@dataclasses.dataclass(frozen=True)
class Task:
    """One task of a multi-task model.

    Attributes:
      name: unique task name; also the key of its outputs and head parameters.
      make_head: ``(feature_dim, rngs) -> nnx.Module`` mapping shared features to outputs.
      loss: ``(outputs, batch) -> Statistic`` summed over the local examples.
      metrics: name -> ``(outputs, batch) -> Statistic`` for evaluation.
    """

    name: str
    make_head: HeadFactory
    loss: LossFn
    metrics: Mapping[str, MetricFn] = dataclasses.field(default_factory=dict)
