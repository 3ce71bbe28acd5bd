"""IMTL-L — "Towards Impartial Multi-task Learning", Liu et al., ICLR 2021, Sec. 3.2 (loss
balance). Hyper-parameters: the learning rate of the inner step (default 1e-2;
ours — the paper trains s with the network's optimiser); scales start at s = 0.

Every task loss gets a learnable scale e^{s_t} (the aggregator state) and a regulariser that
keeps it from collapsing:

    L = Σ_t (e^{s_t} L_t − s_t),

so the shared update is d = Jᵀw with w_t = e^{s_t}, and ∂L/∂s_t = e^{s_t} L_t − 1; its fixed
point e^{s_t} L_t = 1 makes every scaled loss equal to 1. Every step uses the current s, then
takes one inner gradient-descent step s ← s − lr · ∂L/∂s. A loss-level weighting.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from mtl_jax.aggregators.kinds import LossWeighting, WeightingInputs

DEFAULT_LEARNING_RATE = 1e-2


class IMTLLState(NamedTuple):
    """log_scales: (T,) the learnable s_t of the loss scales e^{s_t}."""

    log_scales: jax.Array


def imtl_l_update(losses: jax.Array, scales: jax.Array, learning_rate: float) -> tuple[jax.Array, jax.Array]:
    """(w = e^s, s − lr · (e^s L − 1))."""
    s = scales.astype(losses.dtype)
    weights = jnp.exp(s)
    return weights, (s - learning_rate * (weights * losses - 1.0)).astype(scales.dtype)


def imtl_l(learning_rate: float = DEFAULT_LEARNING_RATE) -> LossWeighting:
    """IMTL-L (Liu et al. 2021): learnable loss scales, L = sum exp(s) L - s (lr=1e-2)."""
    if learning_rate <= 0.0:
        raise ValueError(f"imtl_l needs learning_rate > 0, got {learning_rate}")

    def init(num_tasks: int) -> IMTLLState:
        return IMTLLState(log_scales=jnp.zeros((num_tasks,), jnp.float32))

    def weigh(inputs: WeightingInputs, state: IMTLLState):
        weights, log_scales = imtl_l_update(inputs.losses, state.log_scales, learning_rate)
        return weights, IMTLLState(log_scales=log_scales)

    return LossWeighting("imtl_l", init, weigh)
