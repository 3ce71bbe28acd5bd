"""Row-wise helpers for Jacobian pytrees (every leaf has a leading task axis T)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mtl_jax.types import PyTree


def row_squared_norms(jacobian: PyTree) -> jax.Array:
    """(T,) ‖g_t‖² summed over every leaf, in at least float32."""
    return sum(
        jnp.sum(jnp.square(at_least_float32(x).reshape(x.shape[0], -1)), axis=1)
        for x in jax.tree.leaves(jacobian)
    )


def at_least_float32(x: jax.Array) -> jax.Array:
    """``x`` promoted to float32 if narrower (bfloat16 gradients), else unchanged."""
    return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def scale_rows(scales: jax.Array, jacobian: PyTree) -> PyTree:
    """Row t multiplied by ``scales[t]``, leaf by leaf."""
    return jax.tree.map(
        lambda x: x * scales.astype(x.dtype).reshape((-1,) + (1,) * (x.ndim - 1)), jacobian
    )


def zeros_rows(num_tasks: int, shared_params: PyTree) -> PyTree:
    """A float32 Jacobian pytree of zeros with T rows shaped like ``shared_params``."""
    return jax.tree.map(lambda p: jnp.zeros((num_tasks, *jnp.shape(p)), jnp.float32), shared_params)
