"""Run a Jacobian-level aggregator (``combine``) the way the full-mode step does: on a float32
Jacobian *pytree* (two leaves of different shapes, so leaf-wise code is exercised), under jit,
with its state carried between calls. References work on the flat T×P float64 matrix."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from mtl_jax.aggregators.kinds import Aggregator, WeightingInputs, initial_state

SPLIT = 30  # columns [0, 30) form a (T, 5, 6) leaf, the rest a (T, P − 30) leaf


def to_pytree(jac: np.ndarray) -> dict[str, jax.Array]:
    num_tasks = jac.shape[0]
    return {
        "kernel": jnp.asarray(jac[:, :SPLIT].reshape(num_tasks, 5, 6), jnp.float32),
        "bias": jnp.asarray(jac[:, SPLIT:], jnp.float32),
    }


def from_pytree(tree) -> np.ndarray:
    """Flatten a direction (or a state leaf-pair with a task axis) back to the column order."""
    kernel, bias = np.asarray(tree["kernel"], np.float64), np.asarray(tree["bias"], np.float64)
    if kernel.ndim == 2:
        return np.concatenate([kernel.reshape(-1), bias])
    return np.concatenate([kernel.reshape(kernel.shape[0], -1), bias], axis=1)


def shared_params_like(jac: np.ndarray) -> dict[str, jax.Array]:
    return {"kernel": jnp.zeros((5, 6), jnp.float32), "bias": jnp.zeros((jac.shape[1] - SPLIT,), jnp.float32)}


@functools.lru_cache(maxsize=None)
def _jitted(combine):
    return jax.jit(combine)


def run_combine(
    aggregator: Aggregator,
    jac: np.ndarray,
    losses: np.ndarray | None = None,
    *,
    state=None,
    key: jax.Array | None = None,
    step: int = 0,
):
    """(direction as flat float64, weights as float64, new state) of ``aggregator.combine``."""
    num_tasks = jac.shape[0]
    if state is None:
        state = initial_state(aggregator, num_tasks, shared_params_like(jac))
    losses = np.ones(num_tasks) if losses is None else losses
    inputs = WeightingInputs(
        None, jnp.asarray(losses, jnp.float32), jax.random.key(0) if key is None else key, jnp.asarray(step)
    )
    direction, weights, new_state = _jitted(aggregator.combine)(to_pytree(jac), inputs, state)
    return from_pytree(direction), np.asarray(weights, np.float64), new_state
