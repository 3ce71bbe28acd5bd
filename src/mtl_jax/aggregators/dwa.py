"""DWA — Dynamic Weight Average, "End-to-End Multi-Task Learning with Attention", Liu, Johns &
Davison, CVPR 2019, Sec. 3.3. Hyper-parameter: the temperature T_w (paper: 2).

    w_t(k) = T · exp(r_t(k−1) / T_w) / Σ_s exp(r_s(k−1) / T_w),    r_t(k−1) = L_t(k−1) / L_t(k−2),

with w = 1 for the first two steps (no ratio yet); the update is d = Jᵀw.

**Deviation:** the paper's L_t(k) is the average loss of epoch k; the train step knows no
epochs, so here k counts steps and L_t(k) is the step's loss (the state keeps the last two).
Per-step ratios are noisier; the temperature bounds the weights' spread in any case.
A loss-level weighting: no Jacobian.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from mtl_jax.aggregators.kinds import LossWeighting, WeightingInputs

DEFAULT_TEMPERATURE = 2.0


class DWAState(NamedTuple):
    """The losses of the last two steps and how many steps were seen (at most 2).

    Attributes:
      before: (T,) L(k−2).
      count: the number of steps seen, capped at 2.
      previous: (T,) L(k−1).
    """

    before: jax.Array
    count: jax.Array
    previous: jax.Array


def dwa_update(losses: jax.Array, state: DWAState, temperature: float) -> tuple[jax.Array, DWAState]:
    """(w(k), state with the losses of steps k and k−1)."""
    previous = state.previous.astype(losses.dtype)
    before = state.before.astype(losses.dtype)
    ratios = previous / jnp.where(before > 0, before, 1.0)
    softmax = jax.nn.softmax(ratios / temperature)
    weights = jnp.where(state.count >= 2, losses.shape[0] * softmax, jnp.ones_like(losses))
    new_state = DWAState(
        previous=losses.astype(state.previous.dtype),
        before=state.previous,
        count=jnp.minimum(state.count + 1, 2),
    )
    return weights, new_state


def dwa(temperature: float = DEFAULT_TEMPERATURE) -> LossWeighting:
    """DWA (Liu et al. 2019, T=2): softmax of per-step loss ratios."""
    if temperature <= 0.0:
        raise ValueError(f"dwa needs temperature > 0, got {temperature}")

    def init(num_tasks: int) -> DWAState:
        return DWAState(
            previous=jnp.ones((num_tasks,), jnp.float32),
            before=jnp.ones((num_tasks,), jnp.float32),
            count=jnp.zeros((), jnp.int32),
        )

    def weigh(inputs: WeightingInputs, state: DWAState):
        return dwa_update(inputs.losses, state, temperature)

    return LossWeighting("dwa", init, weigh)
