"""PCGrad — "Gradient Surgery for Multi-Task Learning", Yu et al., NeurIPS 2020, Algorithm 1.

For every task i, start from g_i^PC = g_i and visit the other tasks j in a random order; when
g_i^PC · g_j < 0, project the conflicting component away:

    g_i^PC ← g_i^PC − (g_i^PC · g_j / ‖g_j‖²) g_j                      (Alg. 1, line 6)

always against the *original* g_j. The update is Δθ = Σ_i g_i^PC (Alg. 1, line 9).

Every g_i^PC stays a linear combination of the original gradients, g_i^PC = Jᵀ w⁽ⁱ⁾, so the
whole algorithm runs on the T×T Gramian: g_i^PC · g_j = (G w⁽ⁱ⁾)_j and a projection is
w⁽ⁱ⁾_j −= (G w⁽ⁱ⁾)_j / G_jj. The final weights are w = Σ_i w⁽ⁱ⁾ (docs/design.md).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mtl_jax.aggregators.kinds import GramianWeighting, WeightingInputs, no_state


def random_visit_orders(key: jax.Array, num_tasks: int) -> jax.Array:
    """(T, T) int array; row i is a fresh uniform permutation of all tasks for task i.

    Task i skips itself while visiting, so row i orders the other tasks uniformly at random.
    """
    keys = jax.random.split(key, num_tasks)
    return jax.vmap(lambda k: jax.random.permutation(k, num_tasks))(keys)


def pcgrad_weights(gramian: jax.Array, visit_orders: jax.Array) -> jax.Array:
    """PCGrad weights w with Σ_i g_i^PC = Jᵀ w, given each task's visiting order.

    Args:
      gramian: (T, T) Gramian of the original task gradients.
      visit_orders: (T, T) int; row i lists the tasks in the order task i visits them
        (entry i itself is skipped).

    A task with a zero gradient (G_jj = 0) never conflicts and is never projected against.
    The visit loop is unrolled (T is static): a rolled loop runs as an XLA while loop, whose
    per-iteration predicate check cost 80 µs per step at T=8 on an H200.
    """
    num_tasks = gramian.shape[0]
    squared_norms = jnp.diagonal(gramian)
    safe_squared_norms = jnp.where(squared_norms > 0, squared_norms, 1.0)

    def surgery_for(task: jax.Array, order: jax.Array) -> jax.Array:
        def visit(weights: jax.Array, other: jax.Array):
            inner = gramian[other] @ weights  # g_i^PC · g_other
            conflict = (other != task) & (inner < 0) & (squared_norms[other] > 0)
            step = jnp.where(conflict, inner / safe_squared_norms[other], 0.0)
            return weights.at[other].add(-step), None

        start = jax.nn.one_hot(task, num_tasks, dtype=gramian.dtype)
        weights, _ = jax.lax.scan(visit, start, order, unroll=True)
        return weights

    return jax.vmap(surgery_for)(jnp.arange(num_tasks), visit_orders).sum(axis=0)


def _weigh(inputs: WeightingInputs, state):
    orders = random_visit_orders(inputs.key, inputs.gramian.shape[0])
    return pcgrad_weights(inputs.gramian, orders), state


def pcgrad() -> GramianWeighting:
    """PCGrad (Yu et al. 2020): project away conflicting components, random visiting orders.

    A fresh random visiting order per task and step, drawn from the step key.
    """
    return GramianWeighting("pcgrad", no_state, _weigh)
