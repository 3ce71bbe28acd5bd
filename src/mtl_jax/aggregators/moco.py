"""MoCo — "Mitigating Gradient Bias in Multi-objective Learning: A Provably Convergent
Approach", Fernando et al., ICLR 2023, Sec. 3 and Algorithm 1. Hyper-parameters (the
defaults of the authors' code, as distributed with LibMTL): β = 0.5, σ_β = 0.5, γ = 0.1,
σ_γ = 0.5, ρ = 0; step sizes β_k = β / k^σ_β, γ_k = γ / k^σ_γ at step k = 1, 2, ….

The stochastic gradients h_{k,t} bias MGDA-type weights; MoCo tracks the true gradients with
a moving average Y (T × P, the aggregator state, started at 0) and takes a projected
gradient step on the simplex weights λ (started at 1/T):

    y_{k+1,t} = y_{k,t} − β_k (y_{k,t} − h_{k,t})
    λ_{k+1} = Π_Δ(λ_k − γ_k (Y_{k+1} Y_{k+1}ᵀ + ρ I) λ_k)
    d_k = Y_{k+1}ᵀ λ_{k+1}.

With ``normalize=True`` (default, as in the authors' code) each task gradient is first
rescaled to norm L_t: h_t = L_t g_t / (‖g_t‖ + 1e-8); ``normalize=False`` tracks the raw
gradients of Algorithm 1. The paper projects onto Δ (here ``simplex.project_onto_simplex``);
LibMTL replaces the projection by a softmax.

Y is shaped like the shared parameters, so MoCo is Jacobian-level and supports only the
full mode: in representation mode the rows would belong to a different batch every step.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from mtl_jax.aggregators.gramian import gramian, weighted_sum
from mtl_jax.aggregators.jacobian_ops import at_least_float32, row_squared_norms, scale_rows, zeros_rows
from mtl_jax.aggregators.kinds import JacobianAggregator, JacobianUpdate, WeightingInputs
from mtl_jax.aggregators.simplex import project_onto_simplex
from mtl_jax.types import PyTree

DEFAULTS = {"beta": 0.5, "beta_sigma": 0.5, "gamma": 0.1, "gamma_sigma": 0.5, "rho": 0.0}


class MoCoState(NamedTuple):
    """MoCo's tracked gradients, simplex weights and step count.

    Attributes:
      count: k, the number of steps taken.
      tracked: Y, a Jacobian pytree (T rows shaped like the shared parameters).
      weights: (T,) λ_k.
    """

    count: jax.Array
    tracked: PyTree
    weights: jax.Array


def moco_update(
    jacobian: PyTree,
    losses: jax.Array,
    state: MoCoState,
    *,
    beta: float,
    beta_sigma: float,
    gamma: float,
    gamma_sigma: float,
    rho: float,
    normalize: bool,
) -> JacobianUpdate:
    """One MoCo step: (d_k, λ_{k+1}, new state)."""
    count = state.count + 1
    k = count.astype(jnp.float32)
    if normalize:
        norms = jnp.sqrt(row_squared_norms(jacobian))
        jacobian = scale_rows(at_least_float32(losses) / (norms + 1e-8), jacobian)
    beta_k = beta / k**beta_sigma
    tracked = jax.tree.map(
        lambda y, h: y - beta_k * (y - h.astype(y.dtype)), state.tracked, jacobian
    )
    gram = gramian(tracked) + rho * jnp.eye(losses.shape[0], dtype=jnp.float32)
    gamma_k = gamma / k**gamma_sigma
    weights = project_onto_simplex(state.weights - gamma_k * gram @ state.weights)
    direction = weighted_sum(weights, tracked)
    return JacobianUpdate(direction, weights, MoCoState(tracked=tracked, weights=weights, count=count))


def moco(
    beta: float = DEFAULTS["beta"],
    beta_sigma: float = DEFAULTS["beta_sigma"],
    gamma: float = DEFAULTS["gamma"],
    gamma_sigma: float = DEFAULTS["gamma_sigma"],
    rho: float = DEFAULTS["rho"],
    normalize: bool = True,
) -> JacobianAggregator:
    """MoCo (Fernando et al. 2023, beta=0.5, gamma=0.1): tracked task gradients and projected lambda step (full mode only).

    Tracking rate β/k^σ_β and λ step γ/k^σ_γ.
    """
    if not 0.0 < beta <= 1.0:
        raise ValueError(f"moco needs 0 < beta <= 1, got {beta}")
    if gamma <= 0.0 or rho < 0.0 or beta_sigma < 0.0 or gamma_sigma < 0.0:
        raise ValueError(
            f"moco needs gamma > 0 and rho, beta_sigma, gamma_sigma >= 0, got gamma={gamma}, "
            f"rho={rho}, beta_sigma={beta_sigma}, gamma_sigma={gamma_sigma}"
        )
    options = dict(beta=beta, beta_sigma=beta_sigma, gamma=gamma, gamma_sigma=gamma_sigma, rho=rho, normalize=normalize)

    def init(num_tasks: int, shared_params: PyTree) -> MoCoState:
        return MoCoState(
            tracked=zeros_rows(num_tasks, shared_params),
            weights=jnp.full((num_tasks,), 1.0 / num_tasks, jnp.float32),
            count=jnp.zeros((), jnp.int32),
        )

    def combine(jacobian: PyTree, inputs: WeightingInputs, state: MoCoState):
        return moco_update(jacobian, inputs.losses, state, **options)

    return JacobianAggregator("moco", init, combine, modes=("full",))
