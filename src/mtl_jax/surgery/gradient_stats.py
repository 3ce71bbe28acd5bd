"""Gradient-conflict statistics read off the Gramian at no extra pass over the parameters.

cos_ij = G_ij / sqrt(G_ii G_jj) (docs/design.md); a pair conflicts when cos_ij < 0
(Yu et al. 2020, Definition 1).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def gradient_norms(gramian: jax.Array) -> jax.Array:
    """‖g_t‖ = sqrt(G_tt), (T,)."""
    return jnp.sqrt(jnp.maximum(jnp.diagonal(gramian), 0.0))


def cosine_matrix(gramian: jax.Array) -> jax.Array:
    """(T, T) cosine similarities; rows and columns of zero-norm tasks are 0."""
    norms = gradient_norms(gramian)
    outer = norms[:, None] * norms[None, :]
    return jnp.where(outer > 0, gramian / jnp.where(outer > 0, outer, 1.0), 0.0)


def conflict_fraction(gramian: jax.Array) -> jax.Array:
    """Fraction of the T(T−1)/2 task pairs whose gradients have a negative inner product."""
    num_tasks = gramian.shape[0]
    if num_tasks < 2:
        return jnp.zeros((), gramian.dtype)
    upper = jnp.triu(jnp.ones((num_tasks, num_tasks), bool), k=1)
    conflicts = jnp.sum((gramian < 0) & upper)
    return conflicts / (num_tasks * (num_tasks - 1) / 2)


def gradient_statistics(gramian: jax.Array) -> dict[str, jax.Array]:
    """The step's gradient metrics: norms, cosine matrix and conflicting-pair fraction."""
    return {
        "grad_norm": gradient_norms(gramian),
        "grad_cosine": cosine_matrix(gramian),
        "conflict_fraction": conflict_fraction(gramian),
    }
