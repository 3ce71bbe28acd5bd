"""ConFIG — "ConFIG: Towards Conflict-free Training of Physics Informed Neural Networks",
Liu, Chu & Thuerey, ICLR 2025 (arXiv 2024), Sec. 3 (the ConFIG update). No hyper-parameters
(the momentum variant M-ConFIG is not implemented).

With U(x) = x/‖x‖ and Â = [U(g_1), …, U(g_T)]ᵀ (T × P) the update is

    g_u = U(Â⁺ 1_T),        g_ConFIG = (Σ_i g_iᵀ g_u) · g_u,

where Â⁺ is the Moore–Penrose pseudo-inverse: Â⁺1 is the minimum-norm direction with equal
(unit) projection on every unit gradient, and the length is the sum of the projections of
the gradients on that direction.

Gramian form. With N = diag(1/‖g_t‖), Â = N J and C = Â Âᵀ = N G N (the cosine matrix),
Â⁺ 1 = Âᵀ C⁺ 1 = Jᵀ α with α = N C⁺ 1. Writing ĝ = Jᵀα, ‖ĝ‖² = 1ᵀ C⁺ 1 and
Σ_i g_i·ĝ = 1ᵀ G α, so

    g_ConFIG = Jᵀ w,   w = α · (1ᵀ G α) / ‖ĝ‖².

The final update is a rescaled g_u, not Jᵀ of a simplex weight, but it stays in the span of
the g_i; w above expresses it exactly.

Degenerate cases: a zero gradient has no unit vector and is left out of Â (its row of N is 0),
and its own projection term is 0. C⁺ drops eigenvalues below ``rtol · λ_max`` (parallel
gradients, T > rank). When 1 is (numerically) orthogonal to the range of C — the unit vectors
sum to zero with positive coefficients, so no direction has a positive projection on all of
them — Â⁺1 = 0, g_u is undefined and we return w = 0.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mtl_jax.aggregators.kinds import GramianWeighting, WeightingInputs, no_state
from mtl_jax.aggregators.psd import DEFAULT_RTOL, inverse_norms, psd_spectrum, safe_inverse

# ‖Π 1‖² / T below this (Π the projector on range(C)) means "1 is orthogonal to range(C)".
UNREACHABLE = 1e-6


def config_weights(gramian: jax.Array, rtol: float = DEFAULT_RTOL) -> jax.Array:
    """ConFIG weights w with g_ConFIG = Jᵀw (0 if no conflict-free direction exists)."""
    num_tasks = gramian.shape[0]
    inv_norms = inverse_norms(gramian)
    cosines = inv_norms[:, None] * gramian * inv_norms[None, :]
    eigenvalues, eigenvectors, keep = psd_spectrum(cosines, rtol)
    coordinates = jnp.where(keep, eigenvectors.T @ jnp.ones((num_tasks,), gramian.dtype), 0.0)
    inverse = jnp.where(keep, safe_inverse(eigenvalues), 0.0)
    alpha = inv_norms * (eigenvectors @ (inverse * coordinates))  # ĝ = Â⁺1 = Jᵀα
    squared_norm = jnp.sum(inverse * coordinates**2)  # ‖ĝ‖² = 1ᵀC⁺1
    projection_sum = jnp.sum(gramian @ alpha)  # Σ_i g_i·ĝ
    reachable = jnp.sum(coordinates**2) > UNREACHABLE * num_tasks
    ok = reachable & (squared_norm > 0)
    return jnp.where(ok, alpha * projection_sum / jnp.where(ok, squared_norm, 1.0), 0.0)


def config(rtol: float = DEFAULT_RTOL) -> GramianWeighting:
    """ConFIG (Liu et al. 2024): pseudo-inverse of unit gradients, rescaled by the sum of projections."""

    def weigh(inputs: WeightingInputs, state):
        return config_weights(inputs.gramian, rtol), state

    return GramianWeighting("config", no_state, weigh)
