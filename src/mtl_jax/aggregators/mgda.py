"""MGDA — the min-norm element of the convex hull of the task gradients.

Désidéri, "Multiple-gradient descent algorithm (MGDA) for multiobjective optimization",
C. R. Math. 2012; Sener & Koltun, "Multi-Task Learning as Multi-Objective Optimization",
NeurIPS 2018, Eq. (3):

    min_w ‖Σ_t w_t g_t‖² = wᵀGw    s.t.  Σ_t w_t = 1,  w_t ≥ 0,                      (3)

and the update is d = Σ_t w_t g_t = Jᵀw, the common descent direction of all tasks (d = 0
exactly at a Pareto-stationary point). Sener & Koltun solve (3) with Frank–Wolfe
(their Alg. 2); here it is solved *exactly* by the active-set solver of ``qp.py``
(``min_norm_in_hull``), whose KKT conditions are the optimality certificate

    (Gw)_i ≥ wᵀGw for all i, with equality where w_i > 0.

No hyper-parameters. Sener & Koltun optionally normalise the gradients (by norm or loss)
before solving; this implementation does not (the paper's method, "none").

MGDA-UB (Sener & Koltun 2018, Sec. 3.3) is the same weights computed from the gradients of
the losses w.r.t. the shared representation Z rather than the shared parameters; in this
package that is the train step's representation mode (the Gramian it passes is then the
Gramian of ∂L_t/∂Z); ``mgda_ub`` is MGDA restricted to that mode.
"""

from __future__ import annotations

import jax

from mtl_jax.aggregators.kinds import GramianWeighting, WeightingInputs, no_state
from mtl_jax.aggregators.qp import min_norm_in_hull


def mgda_weights(gramian: jax.Array) -> jax.Array:
    """The simplex weights w of the min-norm point Jᵀw of the convex hull of the g_i."""
    weights, _ = min_norm_in_hull(gramian)
    return weights


def _weigh(inputs: WeightingInputs, state):
    return mgda_weights(inputs.gramian), state


def mgda() -> GramianWeighting:
    """MGDA (Sener & Koltun 2018): exact min-norm point of the hull of task gradients (MGDA-UB in representation mode)."""
    return GramianWeighting("mgda", no_state, _weigh)


def mgda_ub() -> GramianWeighting:
    """MGDA-UB (Sener & Koltun 2018): MGDA on the representation gradients (representation mode only)."""
    return GramianWeighting("mgda_ub", no_state, _weigh, modes=("representation",))
