"""Euclidean projection onto the probability simplex Δ_T = {λ ≥ 0, Σ λ = 1}.

Duchi, Shalev-Shwartz, Singer & Chandra, "Efficient Projections onto the ℓ1-Ball for Learning
in High Dimensions", ICML 2008, Fig. 1: with u the entries of v sorted in decreasing order,
ρ = max{j : u_j − (Σ_{r≤j} u_r − 1)/j > 0} and θ = (Σ_{r≤ρ} u_r − 1)/ρ,

    Π_Δ(v) = max(v − θ, 0).

Used by the projected-gradient λ updates of MoCo and MoDo. O(T log T), exact, no iterations.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def project_onto_simplex(values: jax.Array) -> jax.Array:
    """argmin_{λ ∈ Δ_T} ‖λ − values‖² for a (T,) vector."""
    ordered = jnp.sort(values)[::-1]
    ranks = jnp.arange(1, values.shape[0] + 1, dtype=values.dtype)
    thresholds = (jnp.cumsum(ordered) - 1.0) / ranks
    support = jnp.sum(ordered > thresholds)  # ρ ≥ 1: the first entry always qualifies
    theta = thresholds[support - 1]
    return jnp.maximum(values - theta, 0.0)
