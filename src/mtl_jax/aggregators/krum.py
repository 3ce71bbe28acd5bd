"""Krum and Multi-Krum — "Machine Learning with Adversaries: Byzantine Tolerant Gradient
Descent", Blanchard et al., NeurIPS 2017, Sec. 4. Hyper-parameters: f, the number of Byzantine
vectors tolerated (default 1), and m, the number of vectors averaged (m = 1: Krum, the paper's
main rule; m > 1: Multi-Krum).

Here the n "workers" are the T task gradients. For each i, let i → j denote that g_j is one
of the n − f − 2 gradients closest to g_i (j ≠ i). The score of i is

    s(i) = Σ_{i→j} ‖g_i − g_j‖²,

Krum returns the gradient with the smallest score; Multi-Krum returns the average of the m
gradients with the smallest scores. The rule needs n > 2f + 2 (so T ≥ 2f + 3) and 1 ≤ m ≤ n.

Gramian form: ‖g_i − g_j‖² = G_ii + G_jj − 2 G_ij, and the result is Jᵀw with w = 1/m on the
m selected tasks, 0 elsewhere. Ties are broken towards the lower task index.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mtl_jax.aggregators.kinds import EmptyState, GramianWeighting, WeightingInputs


def check_krum(num_tasks: int, num_byzantine: int, num_selected: int) -> None:
    """The paper's conditions: T > 2f + 2 and 1 ≤ m ≤ T."""
    if num_tasks <= 2 * num_byzantine + 2:
        raise ValueError(
            f"krum with f={num_byzantine} needs more than 2f+2 = {2 * num_byzantine + 2} tasks, "
            f"got {num_tasks}"
        )
    if not 1 <= num_selected <= num_tasks:
        raise ValueError(f"krum needs 1 <= m <= {num_tasks} tasks, got m={num_selected}")


def krum_scores(gramian: jax.Array, num_byzantine: int) -> jax.Array:
    """(T,) s(i): sum of the n − f − 2 smallest squared distances from g_i to the others."""
    num_tasks = gramian.shape[0]
    squared_norms = jnp.diagonal(gramian)
    distances = jnp.maximum(squared_norms[:, None] + squared_norms[None, :] - 2 * gramian, 0.0)
    distances = jnp.where(jnp.eye(num_tasks, dtype=bool), jnp.inf, distances)
    neighbours = num_tasks - num_byzantine - 2
    return jnp.sort(distances, axis=1)[:, :neighbours].sum(axis=1)


def krum_weights(gramian: jax.Array, num_byzantine: int = 1, num_selected: int = 1) -> jax.Array:
    """w = 1/m on the m tasks with the smallest Krum scores."""
    num_tasks = gramian.shape[0]
    check_krum(num_tasks, num_byzantine, num_selected)
    selected = jnp.argsort(krum_scores(gramian, num_byzantine), stable=True)[:num_selected]
    return jnp.zeros((num_tasks,), gramian.dtype).at[selected].set(1.0 / num_selected)


def krum(f: int = 1, m: int = 1) -> GramianWeighting:
    """Krum (Blanchard et al. 2017): the task gradient with the smallest neighbour-distance score (f=1, needs T >= 5).

    Krum (m = 1) or Multi-Krum (m > 1, the mean of the m best) tolerating f outliers.
    """
    if f < 0:
        raise ValueError(f"krum needs f >= 0, got {f}")
    if m < 1:
        raise ValueError(f"krum needs m >= 1, got {m}")

    def init(num_tasks: int) -> EmptyState:
        check_krum(num_tasks, f, m)
        return EmptyState()

    def weigh(inputs: WeightingInputs, state):
        return krum_weights(inputs.gramian, f, m), state

    return GramianWeighting("krum" if m == 1 else "multi_krum", init, weigh)
