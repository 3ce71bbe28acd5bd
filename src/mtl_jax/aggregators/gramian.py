"""Gramian and weighted sum of a stacked per-task gradient pytree.

A "Jacobian pytree" has the structure of the differentiated variables with a leading axis of
size T on every leaf: leaf[t] is task t's gradient. These two functions are the only places
where the step touches the P-sized data; everything in between is T×T.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mtl_jax.types import PyTree


def _rows(leaf: jax.Array) -> jax.Array:
    return leaf.reshape(leaf.shape[0], -1)


def gramian(jacobian: PyTree) -> jax.Array:
    """G = J Jᵀ, G_ij = ⟨g_i, g_j⟩ summed over every leaf (docs/design.md, "The Gramian").

    Computed in float32 at the highest matmul precision: conflict tests (G_ij < 0) must not
    be decided by TF32 rounding on accelerators.
    """
    leaves = jax.tree.leaves(jacobian)
    if not leaves:
        raise ValueError("gramian() got an empty Jacobian pytree: there are no shared parameters.")
    return sum(
        jnp.matmul(
            _rows(x).astype(jnp.float32),
            _rows(x).astype(jnp.float32).T,
            precision=jax.lax.Precision.HIGHEST,
        )
        for x in leaves
    )


def weighted_sum(weights: jax.Array, jacobian: PyTree) -> PyTree:
    """d = Jᵀ w = Σ_t w_t g_t, leaf by leaf (docs/design.md, "The Gramian")."""
    return jax.tree.map(
        lambda x: jnp.tensordot(
            weights.astype(x.dtype), x, axes=1, precision=jax.lax.Precision.HIGHEST
        ),
        jacobian,
    )
