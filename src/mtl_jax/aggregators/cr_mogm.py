"""CR-MOGM — "On the Convergence of Stochastic Multi-Objective Gradient Manipulation and
Beyond", Zhou et al., NeurIPS 2022, Sec. 4 (correlation-reduced composite weights).
Hyper-parameter: the averaging coefficient α of the past weights (default 0.9, see below).

Stochastic gradient-manipulation methods take d = Σ_t λ_t g_t with weights λ computed from the
same mini-batch gradients; the correlation between λ and the gradient noise biases d and can
prevent convergence to a Pareto-optimal point. CR-MOGM instead exponentially averages the
weights over steps:

    λ̂_k = argmin_{λ ∈ Δ_T} ‖Jᵀ_k λ‖²                 (MGDA min-norm weights, here)
    λ_k = α λ_{k−1} + (1 − α) λ̂_k,                   d_k = Jᵀ_k λ_k.

The averaged λ_{k−1} is the aggregator state, started at the simplex centre 1/T. The update
is exactly Jᵀλ_k (a convex combination, so λ_k stays on the simplex).

The min-norm weights λ̂ come from the shared simplex QP solver through MGDA
(``mtl_jax.aggregators.mgda.mgda_weights``, i.e. ``qp.min_norm_in_hull``), or from any
``solver(gramian) -> weights`` passed to :func:`cr_mogm`. Where λ̂ is not unique (a zero
gradient, parallel gradients) the averaged λ depends on the solver's choice; d̂ = Jᵀλ̂ does not.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from mtl_jax.aggregators.kinds import GramianWeighting, WeightingInputs
from mtl_jax.aggregators.mgda import mgda_weights

DEFAULT_ALPHA = 0.9


class CRMOGMState(NamedTuple):
    """weights: (T,) the averaged simplex weights λ_{k−1}."""

    weights: jax.Array

Solver = Callable[[jax.Array], jax.Array]


def cr_mogm_weights(instant_weights: jax.Array, previous: jax.Array, alpha: float) -> jax.Array:
    """λ_k = α λ_{k−1} + (1 − α) λ̂_k."""
    return alpha * previous.astype(instant_weights.dtype) + (1.0 - alpha) * instant_weights


def cr_mogm(alpha: float = DEFAULT_ALPHA, solver: Solver | None = None) -> GramianWeighting:
    """CR-MOGM (Zhou et al. 2022): EMA (alpha=0.9) of MGDA min-norm weights.

    ``solver(gramian) -> weights`` replaces MGDA's min-norm solver if given.
    """
    if not 0.0 <= alpha < 1.0:
        raise ValueError(f"cr_mogm needs 0 <= alpha < 1, got {alpha}")

    def init(num_tasks: int) -> CRMOGMState:
        return CRMOGMState(weights=jnp.full((num_tasks,), 1.0 / num_tasks, jnp.float32))

    def weigh(inputs: WeightingInputs, state: CRMOGMState):
        solve = solver if solver is not None else mgda_weights
        weights = cr_mogm_weights(solve(inputs.gramian), state.weights, alpha)
        return weights, CRMOGMState(weights=weights.astype(state.weights.dtype))

    return GramianWeighting("cr_mogm", init, weigh)
