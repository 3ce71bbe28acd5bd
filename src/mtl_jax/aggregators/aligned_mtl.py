"""Aligned-MTL — "Independent Component Alignment for Multi-Task Learning", Senushkin et al.,
CVPR 2023, Algorithm 1. Hyper-parameters: the task preferences w (uniform by default) and the
scale of the aligned system (the paper's default, the smallest singular value).

Let the gradient matrix have the task gradients as columns, J ᵀ = [g_1 … g_T] (P × T), and
M = J Jᵀ = G its Gram matrix with eigen-decomposition M = V Λ Vᵀ, rank R. Aligned-MTL
replaces the gradient system by one with condition number 1 (all singular values equal):

    Σ⁻¹ = diag(1/√λ_1, …, 1/√λ_R),
    B   = √λ_R · V Σ⁻¹ Vᵀ                       (balance transformation)
    Jᵀ_aligned = Jᵀ B,   update d = Jᵀ_aligned w = Jᵀ (B w),

with λ_R the smallest non-zero eigenvalue ("min" scaling, the paper's default; it keeps the
update no larger than the weakest independent component). In SVD terms, Jᵀ = U S Vᵀ gives
Jᵀ B = σ_min U Vᵀ: the orthogonal polar factor of the gradient system, scaled by σ_min.

The update is exactly Jᵀ w' with the weights w' = B w, so it is a pure function of G.
Numerically, eigenvalues below ``rtol · λ_max`` count as zero (rank deficiency: a zero
gradient, parallel gradients, T > P); λ_R is the smallest eigenvalue kept. Because the result
divides by √λ, its float32 error grows with the condition number of G.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

from mtl_jax.aggregators.kinds import EmptyState, GramianWeighting, WeightingInputs
from mtl_jax.aggregators.psd import DEFAULT_RTOL, psd_spectrum, safe_inverse


def balance_transformation(gramian: jax.Array, rtol: float = DEFAULT_RTOL) -> jax.Array:
    """B = √λ_R V Σ⁻¹ Vᵀ over the eigen-pairs kept (Algorithm 1); zero for a zero Gramian."""
    eigenvalues, eigenvectors, keep = psd_spectrum(gramian, rtol)
    smallest_kept = jnp.min(jnp.where(keep, eigenvalues, jnp.inf))
    smallest_kept = jnp.where(jnp.any(keep), smallest_kept, 0.0)
    inverse_sqrt = jnp.where(keep, safe_inverse(jnp.sqrt(eigenvalues)), 0.0)
    return jnp.sqrt(smallest_kept) * (eigenvectors * inverse_sqrt) @ eigenvectors.T


def aligned_mtl_weights(
    gramian: jax.Array, preferences: jax.Array, rtol: float = DEFAULT_RTOL
) -> jax.Array:
    """Weights B w, so that d = Jᵀ B w is the aligned update."""
    return balance_transformation(gramian, rtol) @ preferences.astype(gramian.dtype)


def aligned_mtl(preferences: Sequence[float] | None = None, rtol: float = DEFAULT_RTOL) -> GramianWeighting:
    """Aligned-MTL (Senushkin et al. 2023): condition-number-1 aligned gradient system, min-eigenvalue scale.

    Task preferences w default to uniform 1/T.
    """
    fixed = None if preferences is None else tuple(float(p) for p in preferences)

    def check(num_tasks: int) -> None:
        if fixed is not None and len(fixed) != num_tasks:
            raise ValueError(
                f"aligned_mtl got {len(fixed)} preferences for {num_tasks} tasks"
            )

    def init(num_tasks: int) -> EmptyState:
        check(num_tasks)
        return EmptyState()

    def weigh(inputs: WeightingInputs, state):
        num_tasks = inputs.gramian.shape[0]
        check(num_tasks)
        if fixed is None:
            prefs = jnp.full((num_tasks,), 1.0 / num_tasks, inputs.gramian.dtype)
        else:
            prefs = jnp.asarray(fixed, inputs.gramian.dtype)
        return aligned_mtl_weights(inputs.gramian, prefs, rtol), state

    return GramianWeighting("aligned_mtl", init, weigh)
