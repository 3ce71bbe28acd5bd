"""FairGrad — Ban & Ji, "Fair Resource Allocation in Multi-Task Learning", ICML 2024.

FairGrad maximises an α-fair utility of the per-task improvements ⟨g_i, d⟩ over a ball;
the optimal d = Σ_i w_i g_i has weights solving (Sec. 4, the "GᵀG w = w^{-1/α}" system)

    G w = w^{-1/α},   w > 0,   i.e. ⟨g_i, d⟩ = w_i^{-1/α} for every task i.

α = 1 is proportional fairness (the same system as Nash-MTL), α → ∞ approaches max-min
fairness (MGDA-like), α → 0 approaches the plain average. Default α = 1 here (the paper
tunes α per benchmark; the implementation in its code uses least squares on the residual).

The system is the stationarity condition of the strictly convex
½ wᵀGw − Σ_i h(w_i), h'(w) = w^{-1/α}, solved inside ``jit`` by ``qp.inverse_power_weights``
(globalised Newton, ≤ 100 steps, stop at max_i |(Gw)_i w_i^{1/α} − 1| ≤ 64·eps(float32)),
with the same documented guards as Nash-MTL: a relative ridge G + 1e-6·diag(G) (finite weights at
Pareto-stationary points, where the system has no solution) and weight 0 for tasks with an
exactly zero gradient.
"""

from __future__ import annotations

import functools

import jax

from mtl_jax.aggregators.kinds import GramianWeighting, WeightingInputs, no_state
from mtl_jax.aggregators.qp import inverse_power_weights


def fairgrad_weights(gramian: jax.Array, alpha: float = 1.0) -> jax.Array:
    """w > 0 solving G w = w^{-1/α}."""
    return inverse_power_weights(gramian, alpha=alpha)


def _weigh(inputs: WeightingInputs, state, alpha: float):
    return fairgrad_weights(inputs.gramian, alpha), state


def fairgrad(alpha: float = 1.0) -> GramianWeighting:
    """FairGrad (Ban & Ji 2024, alpha=1): alpha-fair weights, G w = w^(-1/alpha)."""
    if alpha <= 0:
        raise ValueError(f"FairGrad needs alpha > 0, got {alpha}")
    return GramianWeighting("fairgrad", no_state, functools.partial(_weigh, alpha=float(alpha)))
