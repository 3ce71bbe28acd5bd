"""Equal weighting (EW): the plain sum or mean of the task gradients, d = Σ_t g_t (or /T).

The baseline of every MTL comparison (e.g. Sener & Koltun 2018, Table 1 "uniform scaling").
The weights are uniform constants, so the step may skip the Jacobian entirely and
back-propagate the summed loss once.
"""

from __future__ import annotations

import jax.numpy as jnp

from mtl_jax.aggregators.base import Aggregator, WeightingInputs, no_state


def _uniform(scale_for: "callable") -> "callable":
    def weigh(inputs: WeightingInputs, state):
        num_tasks = inputs.losses.shape[0]
        return jnp.full((num_tasks,), scale_for(num_tasks), inputs.losses.dtype), state

    return weigh


def _one(num_tasks: int) -> float:
    del num_tasks
    return 1.0


def _inverse(num_tasks: int) -> float:
    return 1.0 / num_tasks


def ew_sum() -> Aggregator:
    """d = Σ_t g_t."""
    return Aggregator("sum", no_state, _uniform(_one), needs_gramian=False, uniform_weight=_one)


def ew_mean() -> Aggregator:
    """d = (1/T) Σ_t g_t."""
    return Aggregator(
        "mean", no_state, _uniform(_inverse), needs_gramian=False, uniform_weight=_inverse
    )
