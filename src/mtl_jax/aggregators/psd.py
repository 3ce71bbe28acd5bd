"""Small spectral helpers shared by the Gramian-based aggregators (IMTL-G, Aligned-MTL, ConFIG).

The train step forms G = J Jᵀ in float32. A Gramian is positive semi-definite and its
eigenvalues are the *squared* singular values of J, so float32 rounding leaves the
eigenvalues of exactly dependent gradients at about ``eps·λ_max`` rather than 0. Every
pseudo-inverse here therefore drops eigenvalues below ``rtol·λ_max`` with a default
``rtol = 1e-5``: gradients whose Jacobian singular values are below ~3e-3 of the largest
one are treated as exactly dependent (a zero gradient, two parallel gradients, T > rank).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

DEFAULT_RTOL = 1e-5


def safe_inverse(values: jax.Array) -> jax.Array:
    """1/x where x > 0, else 0 (the pseudo-inverse of a non-negative diagonal)."""
    positive = values > 0
    return jnp.where(positive, 1.0 / jnp.where(positive, values, 1.0), 0.0)


def psd_spectrum(matrix: jax.Array, rtol: float = DEFAULT_RTOL) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Eigen-decomposition of a symmetric PSD matrix with its numerical rank mask.

    Returns ``(eigenvalues, eigenvectors, keep)``: eigenvalues ascending (clipped at 0),
    eigenvectors as columns, and ``keep[k]`` true when ``λ_k > rtol·λ_max`` (never true for
    the zero matrix).
    """
    eigenvalues, eigenvectors = jnp.linalg.eigh(matrix)
    eigenvalues = jnp.maximum(eigenvalues, 0.0)
    largest = eigenvalues[-1]
    keep = (eigenvalues > rtol * largest) & (largest > 0)
    return eigenvalues, eigenvectors, keep


def psd_pinv(matrix: jax.Array, rtol: float = DEFAULT_RTOL) -> jax.Array:
    """Moore–Penrose pseudo-inverse of a symmetric PSD matrix, dropping λ ≤ rtol·λ_max."""
    eigenvalues, eigenvectors, keep = psd_spectrum(matrix, rtol)
    inverse = jnp.where(keep, safe_inverse(eigenvalues), 0.0)
    return (eigenvectors * inverse) @ eigenvectors.T


def inverse_norms(gramian: jax.Array) -> jax.Array:
    """(T,) 1/‖g_t‖ from the diagonal of G; 0 for a zero gradient."""
    return safe_inverse(jnp.sqrt(jnp.maximum(jnp.diagonal(gramian), 0.0)))
