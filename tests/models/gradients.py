"""Per-task gradients of every parameter, for the partition and coverage tests."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from mtl_jax.models.multitask import MultiTaskModel


def task_losses(model: MultiTaskModel, params, batch, rng=None) -> jax.Array:
    """(T,) mean loss per task (no device reduction)."""
    outputs = model.apply(params, batch, rng)
    stats = [task.loss(outputs[task.name], batch) for task in model.tasks]
    return jnp.stack([s.total / jnp.maximum(s.count, 1.0) for s in stats])


def per_task_gradients(model: MultiTaskModel, params, batch, rng=None):
    """Every leaf (T, *shape): row t = ∂L_t/∂leaf, as NumPy float64."""
    jac = jax.jit(jax.jacrev(lambda p: task_losses(model, p, batch, rng)))(params)
    return jax.tree.map(lambda x: np.asarray(x, np.float64), jac)


def tasks_reaching(leaf_jacobian: np.ndarray) -> set[int]:
    """The tasks whose gradient on this leaf is not exactly zero."""
    rows = leaf_jacobian.reshape(leaf_jacobian.shape[0], -1)
    return {t for t in range(rows.shape[0]) if np.any(rows[t] != 0)}
