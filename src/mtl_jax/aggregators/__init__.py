"""Aggregators: pure functions from task-gradient Gramians (or losses) to task weights."""

from __future__ import annotations

from typing import Callable

from mtl_jax.aggregators.base import Aggregator, WeightingInputs
from mtl_jax.aggregators.ew import ew_mean, ew_sum
from mtl_jax.aggregators.gramian import gramian, weighted_sum
from mtl_jax.aggregators.pcgrad import pcgrad, pcgrad_weights, random_visit_orders

REGISTRY: dict[str, tuple[Callable[[], Aggregator], str]] = {
    "sum": (ew_sum, "EW: plain sum of the task gradients"),
    "mean": (ew_mean, "EW: mean of the task gradients"),
    "pcgrad": (pcgrad, "PCGrad (Yu et al. 2020): project away conflicting components"),
}


def get_aggregator(name: str) -> Aggregator:
    """The aggregator registered under ``name``; a clear error naming the choices otherwise."""
    if name not in REGISTRY:
        raise KeyError(
            f"unknown aggregator {name!r}; accepted values: {', '.join(sorted(REGISTRY))}"
        )
    return REGISTRY[name][0]()


__all__ = [
    "Aggregator",
    "WeightingInputs",
    "REGISTRY",
    "get_aggregator",
    "gramian",
    "weighted_sum",
    "pcgrad_weights",
    "random_visit_orders",
]
