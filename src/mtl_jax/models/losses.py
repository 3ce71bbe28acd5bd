"""Losses and metrics for the four task kinds, as (total, count) statistics in float32.

Masks follow ``mtl_jax.data.spec``: ``batch[mask_key(label_key)]`` (``mtl_jax.types.mask_key``) (True = counts), (B,)
for classification, multi-label and regression, (B, L) for tagging.

* classification and tagging: softmax cross-entropy with label smoothing (Szegedy et al.
  2016, §7: targets (1 - ε)·onehot + ε/C), summed over unmasked examples or tokens —
  ``classification.cross_entropy`` works on any leading shape;
* multi-label: sigmoid binary cross-entropy, averaged over the K labels of an example and
  summed over unmasked examples (so its scale does not grow with K);
* regression: squared error by default — the Gaussian negative log-likelihood, smooth at 0,
  and the usual training loss for QM9 in the MTL literature (e.g. Navon et al. 2022) — or
  absolute error (``"l1"``, robust to outliers, matches the MAE that is reported).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from mtl_jax.models.task import Statistic
from mtl_jax.types import Batch, mask_key

REGRESSION_LOSSES: tuple[str, ...] = ("mse", "l1")


def label_weights(batch: Batch, label_key: str, example_dims: int = 1) -> jax.Array:
    """Float weights, 1.0 where a label counts, from the optional ``<label_key>_mask``.

    The weights cover the first ``example_dims`` axes of the labels: 1 for one label (or one
    vector of labels) per example, 2 for a tag per token. Without a mask every entry counts."""
    labels = batch[label_key]
    mask = batch.get(mask_key(label_key))
    if mask is None:
        return jnp.ones(labels.shape[:example_dims], jnp.float32)
    return jnp.asarray(mask).astype(jnp.float32)


def sigmoid_cross_entropy(label_key: str):
    """Multi-label loss: mean over labels of the sigmoid BCE, summed over unmasked examples."""

    def loss(logits: jax.Array, batch: Batch) -> Statistic:
        targets = jnp.asarray(batch[label_key]).astype(jnp.float32)
        per_example = jnp.mean(
            optax.sigmoid_binary_cross_entropy(logits.astype(jnp.float32), targets), axis=-1
        )
        weights = label_weights(batch, label_key)
        return Statistic(jnp.sum(per_example * weights), jnp.sum(weights))

    return loss


def label_accuracy(label_key: str):
    """Multi-label: fraction of (example, label) pairs whose thresholded logit is right."""

    def metric(logits: jax.Array, batch: Batch) -> Statistic:
        targets = jnp.asarray(batch[label_key]) > 0.5
        correct = ((logits > 0) == targets).astype(jnp.float32)
        weights = label_weights(batch, label_key)[:, None] * jnp.ones_like(correct)
        return Statistic(jnp.sum(correct * weights), jnp.sum(weights))

    return metric


def regression_loss(label_key: str, kind: str = "mse"):
    """Squared (``"mse"``) or absolute (``"l1"``) error in normalised units."""
    if kind not in REGRESSION_LOSSES:
        raise ValueError(f"unknown regression loss {kind!r}; accepted: {REGRESSION_LOSSES}")

    def loss(prediction: jax.Array, batch: Batch) -> Statistic:
        error = prediction.astype(jnp.float32) - jnp.asarray(batch[label_key]).astype(jnp.float32)
        per_example = jnp.square(error) if kind == "mse" else jnp.abs(error)
        weights = label_weights(batch, label_key)
        return Statistic(jnp.sum(per_example * weights), jnp.sum(weights))

    return loss


def mean_absolute_error(label_key: str, target_std: float = 1.0):
    """MAE in the original units: |prediction - target| · std over unmasked examples."""

    def metric(prediction: jax.Array, batch: Batch) -> Statistic:
        error = jnp.abs(prediction.astype(jnp.float32) - jnp.asarray(batch[label_key]).astype(jnp.float32))
        weights = label_weights(batch, label_key)
        return Statistic(jnp.sum(error * weights) * target_std, jnp.sum(weights))

    return metric
