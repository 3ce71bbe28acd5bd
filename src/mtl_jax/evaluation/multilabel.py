"""Multi-label metrics: per-label F1 and their macro average.

Logits (B, K), targets 0/1 (B, K); label k is predicted when its logit is positive
(probability > 0.5). F1_k = 2TP_k / (2TP_k + FP_k + FN_k), 0 when the label is neither true
nor predicted anywhere (scikit-learn's ``zero_division=0``); macro-F1 is the mean over all K
labels (scikit-learn's ``average="macro"`` for multi-label targets).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def label_counts(logits: jax.Array, targets: jax.Array, mask: jax.Array | None) -> jax.Array:
    """(3, K) int32 rows TP, FP, FN per label over the unmasked examples."""
    predicted = (logits > 0).astype(jnp.int32)
    truth = (targets > 0.5).astype(jnp.int32)
    weights = jnp.ones(logits.shape[:1], jnp.int32) if mask is None else mask.astype(jnp.int32)
    weights = weights[:, None]
    true_positive = jnp.sum(predicted * truth * weights, axis=0)
    false_positive = jnp.sum(predicted * (1 - truth) * weights, axis=0)
    false_negative = jnp.sum((1 - predicted) * truth * weights, axis=0)
    return jnp.stack([true_positive, false_positive, false_negative])


def per_label_f1(counts: np.ndarray) -> np.ndarray:
    """(K,) F1 per label from the (3, K) counts."""
    true_positive, false_positive, false_negative = np.asarray(counts, np.float64)
    denominator = 2 * true_positive + false_positive + false_negative
    return np.where(denominator > 0, 2 * true_positive / np.where(denominator > 0, denominator, 1.0), 0.0)
