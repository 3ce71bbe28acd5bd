"""UW — "Multi-Task Learning Using Uncertainty to Weigh Losses for Scene Geometry and
Semantics", Kendall, Gal & Cipolla, CVPR 2018, Sec. 3.2 (the log-variance
parametrisation s = log σ²). Hyper-parameters: the initial log-variances s_t = log σ_t²
(default 0) and the learning rate of the inner step (default 1e-2; ours — the paper trains
s with the network's optimiser).

With learnable s (the aggregator state) the multi-task loss is

    L = Σ_t ½ exp(−s_t) L_t + ½ s_t,

so the shared update is d = Jᵀw with w_t = ½ exp(−s_t), and ∂L/∂s_t = ½ (1 − exp(−s_t) L_t).
Every step uses the current s, then takes one inner gradient-descent step
s ← s − lr · ∂L/∂s (fixed point: exp(s_t) = L_t). A loss-level weighting: no Jacobian.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from mtl_jax.aggregators.kinds import LossWeighting, WeightingInputs

DEFAULT_LEARNING_RATE = 1e-2
DEFAULT_INITIAL_LOG_VARIANCE = 0.0


class UWState(NamedTuple):
    """log_variances: (T,) the learnable s_t = log σ_t²."""

    log_variances: jax.Array


def uw_update(losses: jax.Array, log_variances: jax.Array, learning_rate: float) -> tuple[jax.Array, jax.Array]:
    """(w = ½ exp(−s), s − lr · ½ (1 − exp(−s) L))."""
    s = log_variances.astype(losses.dtype)
    precision = jnp.exp(-s)
    gradient = 0.5 * (1.0 - precision * losses)
    return 0.5 * precision, (s - learning_rate * gradient).astype(log_variances.dtype)


def uw(
    learning_rate: float = DEFAULT_LEARNING_RATE,
    initial_log_variance: float = DEFAULT_INITIAL_LOG_VARIANCE,
) -> LossWeighting:
    """UW (Kendall et al. 2018): learnable log-variances, w = exp(-s)/2 (lr=1e-2, s0=0)."""
    if learning_rate <= 0.0:
        raise ValueError(f"uw needs learning_rate > 0, got {learning_rate}")

    def init(num_tasks: int) -> UWState:
        return UWState(log_variances=jnp.full((num_tasks,), initial_log_variance, jnp.float32))

    def weigh(inputs: WeightingInputs, state: UWState):
        weights, log_variances = uw_update(inputs.losses, state.log_variances, learning_rate)
        return weights, UWState(log_variances=log_variances)

    return LossWeighting("uw", init, weigh)
