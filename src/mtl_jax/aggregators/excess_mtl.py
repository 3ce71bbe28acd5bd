"""ExcessMTL — "Robust Multi-Task Learning with Excess Risks", He et al., ICML 2024, Sec. 4 and
Algorithm 1. Hyper-parameter: the robust step size η (default 1e-2, the authors' code).

Task weights follow the tasks' *excess* risks (distance to their own optimum) rather than
their losses, so noisy tasks with a high irreducible loss do not take over. The excess risk
of task t is estimated by a second-order expansion with a diagonal AdaGrad-style curvature
H_t = diag(√(Σ_{s≤k} g_{t,s}² + 1e-7)) accumulated over steps:

    E_t = g_tᵀ H_t⁻¹ g_t,

normalised by its first value E_t⁽⁰⁾ (scale invariance across tasks), and the weights take an
exponentiated-gradient (mirror ascent) step on the scaled simplex Σ w = T:

    w_t ← w_t exp(η E_t / E_t⁽⁰⁾),    w ← T w / Σ w,      d = Jᵀ w.

The first step only records E⁽⁰⁾ and uses w = 1. A task whose first estimate is 0 (no
gradient) gets ratio 0. The accumulated squares Σ g² are shaped like the shared parameters
(aggregator state), so ExcessMTL is Jacobian-level and supports only the full mode. As
everywhere in this package the weights scale the shared gradient only; the heads get their
plain gradients.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from mtl_jax.aggregators.gramian import weighted_sum
from mtl_jax.aggregators.jacobian_ops import at_least_float32, zeros_rows
from mtl_jax.aggregators.kinds import JacobianAggregator, JacobianUpdate, WeightingInputs
from mtl_jax.types import PyTree

DEFAULT_STEP_SIZE = 1e-2
CURVATURE_EPS = 1e-7


class ExcessMTLState(NamedTuple):
    """ExcessMTL's accumulated squared gradients, first risk estimates, weights and count.

    Attributes:
      count: the number of steps seen.
      initial: (T,) E⁽⁰⁾, the first excess-risk estimates.
      squared_sum: Σ_s g_{t,s}², a Jacobian pytree shaped like the shared parameters.
      weights: (T,) w (Σ w = T).
    """

    count: jax.Array
    initial: jax.Array
    squared_sum: PyTree
    weights: jax.Array


def excess_risk_estimates(jacobian: PyTree, squared_sum: PyTree) -> jax.Array:
    """(T,) E_t = Σ_k g_{t,k}² / √(S_{t,k} + 1e-7) over every leaf (S already includes g²)."""
    return sum(
        jnp.sum(
            (jnp.square(at_least_float32(g)) / jnp.sqrt(s + CURVATURE_EPS)).reshape(g.shape[0], -1),
            axis=1,
        )
        for g, s in zip(jax.tree.leaves(jacobian), jax.tree.leaves(squared_sum))
    )


def excess_mtl_update(jacobian: PyTree, state: ExcessMTLState, step_size: float) -> JacobianUpdate:
    """One ExcessMTL step: (d, w, new state)."""
    squared_sum = jax.tree.map(
        lambda s, g: s + jnp.square(g.astype(s.dtype)), state.squared_sum, jacobian
    )
    risks = excess_risk_estimates(jacobian, squared_sum)
    first = state.count == 0
    initial = jnp.where(first, risks, state.initial)
    ratio = jnp.where(initial > 0, risks / jnp.where(initial > 0, initial, 1.0), 0.0)
    raised = state.weights * jnp.exp(step_size * ratio)
    raised = raised.shape[0] * raised / raised.sum()
    weights = jnp.where(first, state.weights, raised)
    new_state = ExcessMTLState(squared_sum=squared_sum, initial=initial, weights=weights, count=state.count + 1)
    return JacobianUpdate(weighted_sum(weights, jacobian), weights, new_state)


def excess_mtl(robust_step_size: float = DEFAULT_STEP_SIZE) -> JacobianAggregator:
    """ExcessMTL (He et al. 2024, step 1e-2): weights by AdaGrad-estimated excess risks (full mode only)."""
    if robust_step_size <= 0.0:
        raise ValueError(f"excess_mtl needs robust_step_size > 0, got {robust_step_size}")

    def init(num_tasks: int, shared_params: PyTree) -> ExcessMTLState:
        return ExcessMTLState(
            squared_sum=zeros_rows(num_tasks, shared_params),
            initial=jnp.zeros((num_tasks,), jnp.float32),
            weights=jnp.ones((num_tasks,), jnp.float32),
            count=jnp.zeros((), jnp.int32),
        )

    def combine(jacobian: PyTree, inputs: WeightingInputs, state: ExcessMTLState):
        return excess_mtl_update(jacobian, state, robust_step_size)

    return JacobianAggregator("excess_mtl", init, combine, modes=("full",))
