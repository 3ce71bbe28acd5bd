"""STCH — "Smooth Tchebycheff Scalarization for Multi-Objective Optimization", Lin et al.,
ICML 2024, Sec. 3 (smooth Tchebycheff scalarisation). Hyper-parameters:
the smoothing μ (default 1, the authors' MTL setting) and the number of warm-up steps that
estimate the nadir point (default 100; ours — the authors warm up for 4 epochs).

The Tchebycheff scalarisation max_t λ_t (f_t − z*_t) is smoothed with a log-sum-exp:

    g_μ(θ) = μ log Σ_t exp(λ_t (f_t(θ) − z*_t) / μ),

whose gradient is Σ_t softmax(λ (f − z*)/μ)_t λ_t ∇f_t. As in the authors' multi-task code,
the objectives are normalised log-losses f_t = log(L_t / n_t + ε) with the ideal point z* = 0,
uniform preferences λ = 1, the result scaled by T, and the nadir n_t = the mean loss over the
warm-up steps (the state accumulates it). Since ∇f_t = g_t / (L_t + ε n_t):

    w_t = T · softmax(f / μ)_t / (L_t + ε n_t)      after warm-up,
    w_t = 1 / (L_t + ε)                              during warm-up (sum of log-losses).

ε = 1e-8. A loss-level weighting: no Jacobian.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from mtl_jax.aggregators.kinds import LossWeighting, WeightingInputs

DEFAULT_MU = 1.0
DEFAULT_WARMUP_STEPS = 100
EPS = 1e-8


class STCHState(NamedTuple):
    """The warm-up's running loss sum (for the nadir) and the step count.

    Attributes:
      count: the number of steps seen, capped at the warm-up length.
      loss_sum: (T,) the sum of the warm-up steps' losses (the nadir times the warm-up length).
    """

    count: jax.Array
    loss_sum: jax.Array


def stch_weights(losses: jax.Array, nadir: jax.Array, mu: float) -> jax.Array:
    """w_t = T softmax(log(L/n + ε)/μ)_t / (L_t + ε n_t)."""
    objectives = jnp.log(losses / nadir + EPS)
    return losses.shape[0] * jax.nn.softmax(objectives / mu) / (losses + EPS * nadir)


def stch_update(losses: jax.Array, state: STCHState, mu: float, warmup_steps: int) -> tuple[jax.Array, STCHState]:
    """(weights, new state): warm-up weights until the nadir is known."""
    warming = state.count < warmup_steps
    loss_sum = jnp.where(warming, state.loss_sum + losses.astype(state.loss_sum.dtype), state.loss_sum)
    nadir = (state.loss_sum / warmup_steps).astype(losses.dtype)
    safe_nadir = jnp.where(nadir > 0, nadir, 1.0)
    weights = jnp.where(warming, 1.0 / (losses + EPS), stch_weights(losses, safe_nadir, mu))
    return weights, STCHState(loss_sum=loss_sum, count=jnp.minimum(state.count + 1, warmup_steps))


def stch(mu: float = DEFAULT_MU, warmup_steps: int = DEFAULT_WARMUP_STEPS) -> LossWeighting:
    """STCH (Lin et al. 2024, mu=1, warmup_steps=100): smooth Tchebycheff of nadir-normalised log-losses."""
    if mu <= 0.0 or int(warmup_steps) != warmup_steps or warmup_steps < 1:
        raise ValueError(f"stch needs mu > 0 and an integer warmup_steps >= 1, got {mu}, {warmup_steps}")
    warmup_steps = int(warmup_steps)

    def init(num_tasks: int) -> STCHState:
        return STCHState(loss_sum=jnp.zeros((num_tasks,), jnp.float32), count=jnp.zeros((), jnp.int32))

    def weigh(inputs: WeightingInputs, state: STCHState):
        return stch_update(inputs.losses, state, mu, warmup_steps)

    return LossWeighting("stch", init, weigh)
