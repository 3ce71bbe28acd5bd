"""Run a (loss- or Gramian-level) aggregator's ``weigh`` for several steps under jit in float32,
carrying its state, as the train step does; references are float64 NumPy."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from mtl_jax.aggregators import gramian
from mtl_jax.aggregators.kinds import Aggregator, WeightingInputs


@functools.lru_cache(maxsize=None)
def _jitted(weigh):
    return jax.jit(weigh)


def weigh_steps(
    aggregator: Aggregator, losses: list[np.ndarray], jacobians: list[np.ndarray] | None = None
) -> tuple[list[np.ndarray], list]:
    """(weights per step as float64, states per step) over the given per-step losses."""
    num_tasks = len(losses[0])
    state = aggregator.init(num_tasks)
    weights, states = [], []
    for step, step_losses in enumerate(losses):
        gram = None if jacobians is None else gramian(jnp.asarray(jacobians[step], jnp.float32))
        inputs = WeightingInputs(gram, jnp.asarray(step_losses, jnp.float32), jax.random.key(step), jnp.asarray(step))
        w, state = _jitted(aggregator.weigh)(inputs, state)
        assert w.shape == (num_tasks,)
        weights.append(np.asarray(w, np.float64))
        states.append(jax.device_get(state))
    return weights, states


def random_losses(rng: np.random.Generator, num_steps: int, num_tasks: int) -> list[np.ndarray]:
    """Positive losses spread over two orders of magnitude, drifting between steps."""
    base = np.exp(rng.uniform(-2.0, 2.0, num_tasks))
    return [base * np.exp(rng.normal(0.0, 0.3, num_tasks)) for _ in range(num_steps)]
