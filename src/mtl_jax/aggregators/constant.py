"""Constant weighting: d = Σ_t w_t g_t = Jᵀw with user-given fixed weights w (linear
scalarisation with a static weighted sum of the losses). No paper; no default weights.

The number of weights is checked when the aggregator is built (non-empty, finite, 1-D), again
when the state is created (``init(num_tasks)``) and at trace time (the number of losses), with
an error naming both counts. Unequal weights are a loss weighting (one weighted backward
pass); equal weights c·1 are a uniform weighting, so the step skips the Jacobian as for EW.
"""

from __future__ import annotations

import math
from typing import Sequence

import jax.numpy as jnp

from mtl_jax.aggregators.kinds import EmptyState, LossWeighting, UniformWeighting, WeightingInputs, float_dtype


def constant(weights: Sequence[float]) -> LossWeighting | UniformWeighting:
    """Constant: fixed user weights, option weights=[w_1, ..., w_T] (required).

    One weight per task, in task order.
    """
    try:
        values = tuple(float(w) for w in weights)
    except TypeError as error:
        raise TypeError(f"constant weights must be a sequence of numbers, got {weights!r}") from error
    if not values:
        raise ValueError("constant weights must not be empty")
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"constant weights must be finite, got {values}")

    def check(num_tasks: int) -> None:
        if num_tasks != len(values):
            raise ValueError(
                f"constant aggregator has {len(values)} weights {values} but the model has "
                f"{num_tasks} tasks"
            )

    if all(v == values[0] for v in values):

        def weight(num_tasks: int) -> float:
            check(num_tasks)
            return values[0]

        return UniformWeighting("constant", weight)

    def init(num_tasks: int) -> EmptyState:
        check(num_tasks)
        return EmptyState()

    def weigh(inputs: WeightingInputs, state):
        check(inputs.losses.shape[0])
        return jnp.asarray(values, float_dtype(inputs.losses)), state

    return LossWeighting("constant", init, weigh)
