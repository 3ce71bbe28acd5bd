"""Confusion matrices and the metrics read off them: accuracy and macro-F1.

Used for single-label classification (logits (B, C), labels (B,)) and tagging (logits
(B, L, C), labels (B, L)); masked examples or tokens (padding) are left out. Rows are the true
class, columns the predicted class, so C[i, j] counts items of class i predicted as j.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def confusion_matrix(logits: jax.Array, labels: jax.Array, mask: jax.Array | None) -> jax.Array:
    """(C, C) int32 counts of (true, arg-max predicted) pairs over the unmasked items."""
    num_classes = logits.shape[-1]
    predicted = jnp.argmax(logits, axis=-1).reshape(-1)
    labels = labels.reshape(-1).astype(jnp.int32)
    weights = jnp.ones_like(labels) if mask is None else mask.reshape(-1).astype(jnp.int32)
    flat = labels * num_classes + predicted
    counts = jnp.zeros(num_classes * num_classes, jnp.int32).at[flat].add(weights, mode="drop")
    return counts.reshape(num_classes, num_classes)


def accuracy(confusion: np.ndarray) -> float:
    """Fraction of counted items on the diagonal (0 if nothing was counted)."""
    total = confusion.sum()
    return float(np.trace(confusion) / total) if total else 0.0


def per_class_f1(confusion: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(F1_c, present_c): F1_c = 2TP / (2TP + FP + FN); present_c: the class occurs in the
    labels or the predictions (2TP + FP + FN > 0). Absent classes get F1 0."""
    confusion = np.asarray(confusion, np.float64)
    true_positive = np.diag(confusion)
    false_positive = confusion.sum(axis=0) - true_positive
    false_negative = confusion.sum(axis=1) - true_positive
    denominator = 2 * true_positive + false_positive + false_negative
    present = denominator > 0
    f1 = np.where(present, 2 * true_positive / np.where(present, denominator, 1.0), 0.0)
    return f1, present


def macro_f1(confusion: np.ndarray) -> float:
    """Unweighted mean of the per-class F1 over the classes present in labels or predictions
    (the convention of scikit-learn's ``f1_score(average="macro")``)."""
    f1, present = per_class_f1(confusion)
    return float(f1[present].mean()) if present.any() else 0.0
