"""Nash-MTL — Navon et al., "Multi-Task Learning as a Bargaining Game", ICML 2022.

The update is the Nash bargaining solution d = Σ_i α_i g_i, whose weights solve
(Sec. 3.1, Claim 3.1)

    G α = 1/α,   α > 0,    i.e.  α_i (Gα)_i = α_i ⟨g_i, d⟩ = 1 for every task i,

so ⟨g_i, d⟩ = 1/α_i > 0 for every task and ‖d‖² = αᵀGα = T.

The paper approximates the solution with a sequence of convex programs (CCP, Sec. 3.2,
20 cvxpy iterations in its code). Here the exact solution is computed inside ``jit``:
Gα = 1/α is the stationarity condition of the strictly convex ½ αᵀGα − Σ_i log α_i, which
``qp.inverse_power_weights`` minimises with a globalised Newton method (≤ 100 steps,
stop at max_i |α_i(Gα)_i − 1| ≤ 64·eps(float32) ≈ 8e-6, see ``qp.py``).

Deviations, all documented in ``qp.inverse_power_weights``:
- a relative ridge G + 1e-6·diag(G) keeps α finite at Pareto-stationary points,
  where Gα = 1/α has no solution (the paper assumes a non-stationary point);
- a task with an exactly zero gradient gets α_i = 0 (it cannot satisfy α_i(Gα)_i = 1 and
  does not change d);
- the paper's practical extras (solving only every few steps, gradient-norm clipping of the
  update) are train-loop/optimizer concerns and are not part of the weighting.
"""

from __future__ import annotations

import jax

from mtl_jax.aggregators.kinds import GramianWeighting, WeightingInputs, no_state
from mtl_jax.aggregators.qp import inverse_power_weights


def nash_mtl_weights(gramian: jax.Array) -> jax.Array:
    """α > 0 solving Gα = 1/α (see module doc for degenerate cases)."""
    return inverse_power_weights(gramian, alpha=1.0)


def _weigh(inputs: WeightingInputs, state):
    return nash_mtl_weights(inputs.gramian), state


def nash_mtl() -> GramianWeighting:
    """Nash-MTL (Navon et al. 2022): Nash bargaining weights, G a = 1/a (solved exactly by Newton)."""
    return GramianWeighting("nashmtl", no_state, _weigh)
