"""Constant weighting: d = Σ_t w_t g_t = Jᵀw with user-given fixed weights w (linear
scalarisation with a static weighted sum of the losses). No paper; no default weights.

The number of weights is checked when the aggregator is built (non-empty, finite, 1-D), again
when the state is created (``init(num_tasks)``) and at trace time (the number of losses), with
an error naming both counts. Equal weights c·1 declare ``uniform_weight``, so the step may skip
the Jacobian as it does for EW.
"""

from __future__ import annotations

import math
from typing import Sequence

import jax.numpy as jnp

from mtl_jax.aggregators.base import Aggregator, WeightingInputs


def constant(weights: Sequence[float]) -> Aggregator:
    """Fixed task weights ``weights`` (one per task, in task order)."""
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

    def init(num_tasks: int):
        check(num_tasks)
        return ()

    def weigh(inputs: WeightingInputs, state):
        check(inputs.losses.shape[0])
        dtype = inputs.losses.dtype if jnp.issubdtype(inputs.losses.dtype, jnp.floating) else jnp.float32
        return jnp.asarray(values, dtype), state

    uniform_weight = None
    if all(v == values[0] for v in values):

        def uniform_weight(num_tasks: int) -> float:
            check(num_tasks)
            return values[0]

    return Aggregator("constant", init, weigh, needs_gramian=False, uniform_weight=uniform_weight)
