"""SDMGrad — Xiao, Ban & Ji, "Direction-oriented Multi-objective Learning: Simple and Provable
Stochastic Algorithms", NeurIPS 2023 (arXiv:2305.18409).

SDMGrad regularises MGDA's common descent direction towards a target direction, the mean
gradient g0 = (1/T) Σ_i g_i. The Lagrangian relaxation of the paper's direction-oriented
problem (Sec. 3) gives d = g_w + λ g0 with simplex weights

    w*_λ = argmin_{w ∈ simplex} ½ ‖g_w + λ g0‖²
         = argmin_{w ∈ simplex} ½ wᵀGw + (λ/T) wᵀG1,                  (as a function of G)

and the update direction (g_w + λ g0) / (1 + λ). λ = 0 is MGDA, λ → ∞ is the mean gradient.
Default λ = 0.3 (the paper's multi-task supervised-learning setting).

Deterministic variant implemented here: the paper (Alg. 1) runs a few projected SGD steps on
w per iteration with double-sampled stochastic gradients (and an optional ρ‖w‖² term); here
w*_λ is computed exactly from the full Gramian (ρ = 0): ‖g_w + λ g0‖ is the norm of the point
Σ_i w_i (g_i + λ g0), so w*_λ is the min-norm point of the hull of the shifted gradients
(``qp.shifted_gramian`` + ``qp.min_norm_in_hull``).

The final update is not Jᵀw*_λ but (g_w + λ g0)/(1 + λ); as weights:
w = (w*_λ + λ/T) / (1 + λ), which sums to 1.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from mtl_jax.aggregators.kinds import GramianWeighting, WeightingInputs, no_state
from mtl_jax.aggregators.qp import min_norm_in_hull, shifted_gramian

_matmul = functools.partial(jnp.matmul, precision=jax.lax.Precision.HIGHEST)


def sdmgrad_weights(gramian: jax.Array, lam: float = 0.3) -> jax.Array:
    """w with Jᵀw = (g_{w*} + λ g0) / (1 + λ)."""
    num_tasks = gramian.shape[0]
    mean_weights = jnp.full((num_tasks,), 1.0 / num_tasks, gramian.dtype)
    inner = lam * _matmul(gramian, mean_weights)  # ⟨g_i, λ g0⟩
    sq_norm = lam**2 * (mean_weights @ _matmul(gramian, mean_weights))  # ‖λ g0‖²
    simplex_weights, _ = min_norm_in_hull(shifted_gramian(gramian, inner, sq_norm))
    return (simplex_weights + lam * mean_weights) / (1.0 + lam)


def _weigh(inputs: WeightingInputs, state, lam: float):
    return sdmgrad_weights(inputs.gramian, lam), state


def sdmgrad(lam: float = 0.3) -> GramianWeighting:
    """SDMGrad (Xiao et al. 2023, lambda=0.3): min-norm direction pulled toward the mean, deterministic."""
    if lam < 0:
        raise ValueError(f"SDMGrad needs lam >= 0, got {lam}")
    return GramianWeighting("sdmgrad", no_state, functools.partial(_weigh, lam=float(lam)))
