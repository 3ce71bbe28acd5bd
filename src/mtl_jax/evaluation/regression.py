"""Regression: mean absolute error in the target's original units.

Predictions (B,) and targets (B,) are normalised, value = normalised · std + mean, so the
absolute error in the original units is std · |prediction − target|.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def absolute_error_sum(
    predictions: jax.Array, targets: jax.Array, mask: jax.Array | None, target_std: float
) -> jax.Array:
    """(2,) float32: Σ std·|ŷ − y| over the unmasked examples, and their count."""
    predictions = predictions.reshape(targets.shape).astype(jnp.float32)
    weights = jnp.ones(targets.shape, jnp.float32) if mask is None else mask.astype(jnp.float32)
    errors = jnp.abs(predictions - targets.astype(jnp.float32)) * abs(target_std)
    return jnp.stack([jnp.sum(errors * weights), jnp.sum(weights)])
