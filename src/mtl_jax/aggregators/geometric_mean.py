"""Geometric mean (log-loss) scalarisation: minimise log (Π_t L_t)^{1/T} = (1/T) Σ_t log L_t.
The scale-invariant form of GLS (Chennupati et al. 2019): the same direction as
GLS divided by the geometric mean, and DB-MTL's loss-scale balancing (Lin et al. 2023,
Sec. 3.1) without its gradient balancing. No hyper-parameters.

    ∇ (1/T) Σ_t log L_t = Σ_t w_t g_t,      w_t = 1 / (T · L_t).

Multiplying a task loss by a constant leaves the update unchanged. Losses are floored at 1e-8.
A loss-level weighting.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mtl_jax.aggregators.kinds import LossWeighting, WeightingInputs, no_state

LOSS_FLOOR = 1e-8


def geometric_mean_weights(losses: jax.Array) -> jax.Array:
    """w_t = 1 / (T L_t)."""
    return 1.0 / (losses.shape[0] * jnp.maximum(losses, LOSS_FLOOR))


def _weigh(inputs: WeightingInputs, state):
    return geometric_mean_weights(inputs.losses), state


def geometric_mean() -> LossWeighting:
    """Geometric mean: minimise the mean log-loss (scale-invariant GLS)."""
    return LossWeighting("geometric_mean", no_state, _weigh)
