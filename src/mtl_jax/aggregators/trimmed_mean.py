"""TrimmedMean — coordinate-wise trimmed mean of the task gradients, as in torchjd's
``TrimmedMean``; from Byzantine-robust aggregation (Yin, Chen, Ramchandran & Bartlett,
"Byzantine-Robust Distributed Learning: Towards Optimal Statistical Rates", ICML 2018,
Definition 2). Hyper-parameter: ``trim`` = the number of values dropped at each end
(default 1; T must exceed 2·trim).

Per coordinate k, sort g_{1,k}, …, g_{T,k} into g_{(1),k} ≤ … ≤ g_{(T),k} and average the
middle ones:

    d_k = 1/(T − 2·trim) · Σ_{r = trim+1}^{T − trim} g_{(r),k}.

Element-wise, so it needs J itself; its weights are reported as NaN. For T ≤ 32 the per-
coordinate sort is an odd–even transposition network of T(T−1)/2 element-wise min/max pairs
(XLA's generic sort along a short axis of a P-sized array is far slower on CPU); larger T use
``jnp.sort``. In representation mode
the coordinates are those of ∂L_t/∂z, one per example and feature, so each device trims its
own rows and the result does not depend on the device count.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mtl_jax.aggregators.kinds import EmptyState, JacobianAggregator, JacobianUpdate, WeightingInputs
from mtl_jax.types import PyTree

DEFAULT_TRIM = 1
NETWORK_MAX_TASKS = 32


def check_trim(num_tasks: int, trim: int) -> None:
    if num_tasks <= 2 * trim:
        raise ValueError(
            f"trimmed_mean with trim={trim} needs more than {2 * trim} tasks, the model has "
            f"{num_tasks}; lower trim (trim=0 is the mean)"
        )


def sorted_rows(rows: jax.Array) -> list[jax.Array]:
    """The T rows sorted coordinate-wise (ascending), by an odd–even transposition network."""
    values = list(rows)
    for round_index in range(len(values)):
        for i in range(round_index % 2, len(values) - 1, 2):
            values[i], values[i + 1] = jnp.minimum(values[i], values[i + 1]), jnp.maximum(values[i], values[i + 1])
    return values


def trimmed_mean_direction(jacobian: PyTree, trim: int = DEFAULT_TRIM) -> PyTree:
    """Coordinate-wise mean of the T − 2·trim middle values, leaf by leaf."""

    def leaf(rows: jax.Array) -> jax.Array:
        num_tasks = rows.shape[0]
        check_trim(num_tasks, trim)
        if num_tasks > NETWORK_MAX_TASKS:
            return jnp.sort(rows, axis=0)[trim : num_tasks - trim].mean(axis=0)
        kept = sorted_rows(rows)[trim : num_tasks - trim]
        return sum(kept) / len(kept)

    return jax.tree.map(leaf, jacobian)


def trimmed_mean(trim: int = DEFAULT_TRIM) -> JacobianAggregator:
    """TrimmedMean (torchjd, trim=1): coordinate-wise mean without the trim largest and smallest (Jacobian level)."""
    if int(trim) != trim or trim < 0:
        raise ValueError(f"trimmed_mean needs an integer trim >= 0, got {trim}")
    trim = int(trim)

    def init(num_tasks: int, shared_params: PyTree) -> EmptyState:
        del shared_params
        check_trim(num_tasks, trim)
        return EmptyState()

    def combine(jacobian: PyTree, inputs: WeightingInputs, state):
        weights = jnp.full(inputs.losses.shape, jnp.nan, jnp.float32)
        return JacobianUpdate(trimmed_mean_direction(jacobian, trim), weights, state)

    return JacobianAggregator("trimmed_mean", init, combine)
