"""Diagnostics of gradient conflict between tasks."""

from mtl_jax.diagnostics.gradient_stats import (
    conflict_fraction,
    cosine_matrix,
    gradient_norms,
    gradient_statistics,
)

__all__ = ["conflict_fraction", "cosine_matrix", "gradient_norms", "gradient_statistics"]
