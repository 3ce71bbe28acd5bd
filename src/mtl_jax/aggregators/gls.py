"""GLS — Geometric Loss Strategy, "MultiNet++: Multi-Stream Feature Aggregation and Geometric
Loss Strategy for Multi-Task Learning", Chennupati et al., CVPR Workshops 2019, Sec. 3.2.
No hyper-parameters.

The multi-task loss is the geometric mean of the task losses, L = (Π_t L_t)^{1/T}, whose
gradient is

    ∇L = Σ_t w_t g_t,      w_t = L / (T · L_t).

Losses are floored at 1e-8 (a zero loss would make w_t = 0/0). A loss-level weighting.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mtl_jax.aggregators.kinds import LossWeighting, WeightingInputs, no_state

LOSS_FLOOR = 1e-8


def gls_weights(losses: jax.Array) -> jax.Array:
    """w_t = (Π_s L_s)^{1/T} / (T L_t), computed in log space."""
    floored = jnp.maximum(losses, LOSS_FLOOR)
    geometric_mean = jnp.exp(jnp.mean(jnp.log(floored)))
    return geometric_mean / (losses.shape[0] * floored)


def _weigh(inputs: WeightingInputs, state):
    return gls_weights(inputs.losses), state


def gls() -> LossWeighting:
    """GLS (Chennupati et al. 2019): minimise the geometric mean of the losses."""
    return LossWeighting("gls", no_state, _weigh)
