"""RLW — "Reasonable Effectiveness of Random Weighting: A Litmus Test for Multi-Task Learning",
Lin et al., TMLR 2022, Sec. 3. Hyper-parameter: the distribution p(λ̃) of the raw weights;
the paper's default (and ours) is the standard normal N(0, I).

Every step draws λ̃ ~ p(λ̃) and uses the weights λ = softmax(λ̃) (positive, Σλ = 1):

    L = Σ_t λ_t L_t,    so the shared update is d = Σ_t λ_t g_t = Jᵀ λ.

The draw comes from the step key, identical on every device. RLW needs no Gramian. Note that
the paper weights the losses, so λ_t also scales the gradients of task t's own head; in this
contract the aggregator only weights the shared gradient.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mtl_jax.aggregators.base import Aggregator, WeightingInputs, no_state


def rlw_weights(key: jax.Array, num_tasks: int, dtype=jnp.float32) -> jax.Array:
    """softmax(λ̃), λ̃ ~ N(0, I_T) drawn from ``key``."""
    return jax.nn.softmax(jax.random.normal(key, (num_tasks,), dtype))


def rlw() -> Aggregator:
    """Random loss weighting with softmax-normalised standard-normal weights."""

    def weigh(inputs: WeightingInputs, state):
        dtype = inputs.losses.dtype if jnp.issubdtype(inputs.losses.dtype, jnp.floating) else jnp.float32
        return rlw_weights(inputs.key, inputs.losses.shape[0], dtype), state

    return Aggregator("rlw", no_state, weigh, needs_gramian=False)
