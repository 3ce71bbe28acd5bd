"""MoDo — "Three-Way Trade-Off in Multi-Objective Learning: Optimization, Generalization and
Conflict-Avoidance", Chen et al., NeurIPS 2023, Algorithm 1 (MoDo: multi-
objective gradient with double sampling). Hyper-parameters (the authors' code, as in
LibMTL): λ step size γ = 1e-3, regularisation ρ = 0.1.

MoDo takes a projected gradient step on the simplex weights λ (state, started at 1/T) and
then moves the model along the weighted gradient:

    λ_{k+1} = Π_Δ(λ_k − γ (J_{k,1} J_{k,2}ᵀ + ρ I) λ_k),      d_k = J_{k,3}ᵀ λ_{k+1},

where J_{k,1}, J_{k,2}, J_{k,3} are Jacobians on three independent mini-batches (double
sampling makes J_1 J_2ᵀ an unbiased estimate of the true Gramian).

**Deviation:** the train step computes one Jacobian per step, so here J_1 = J_2 = J_3 = J
and the λ step uses the Gramian G = J Jᵀ (biased by the gradient noise, by the trace of its
covariance). Splitting the batch in three would cost three Jacobians of a third of the batch.
With one batch MoDo is Gramian-level and works in both modes.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from mtl_jax.aggregators.kinds import GramianWeighting, WeightingInputs
from mtl_jax.aggregators.simplex import project_onto_simplex

DEFAULT_GAMMA = 1e-3
DEFAULT_RHO = 0.1


class MoDoState(NamedTuple):
    """weights: (T,) the simplex weights λ_k."""

    weights: jax.Array


def modo_weights(gramian: jax.Array, previous: jax.Array, gamma: float, rho: float) -> jax.Array:
    """λ_{k+1} = Π_Δ(λ_k − γ (G + ρ I) λ_k)."""
    previous = previous.astype(gramian.dtype)
    return project_onto_simplex(previous - gamma * (gramian @ previous + rho * previous))


def modo(gamma: float = DEFAULT_GAMMA, rho: float = DEFAULT_RHO) -> GramianWeighting:
    """MoDo (Chen et al. 2023, gamma=1e-3, rho=0.1): projected lambda step on the Gramian, single-batch approximation."""
    if gamma <= 0.0 or rho < 0.0:
        raise ValueError(f"modo needs gamma > 0 and rho >= 0, got gamma={gamma}, rho={rho}")

    def init(num_tasks: int) -> MoDoState:
        return MoDoState(weights=jnp.full((num_tasks,), 1.0 / num_tasks, jnp.float32))

    def weigh(inputs: WeightingInputs, state: MoDoState):
        weights = modo_weights(inputs.gramian, state.weights, gamma, rho)
        return weights, MoDoState(weights=weights.astype(state.weights.dtype))

    return GramianWeighting("modo", init, weigh)
