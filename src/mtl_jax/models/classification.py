"""Classification tasks: a linear head, softmax cross-entropy and accuracy.

Labels are integers under ``batch[label_key]``; an optional boolean or 0/1 array under
``batch[mask_key(label_key)]`` (``mtl_jax.types.mask_key``) excludes examples (padding, or a task absent from a batch).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from mtl_jax.models.losses import label_weights
from mtl_jax.models.task import Statistic, Task
from mtl_jax.types import Batch


def cross_entropy(label_key: str, label_smoothing: float = 0.0):
    """Softmax cross-entropy summed over the unmasked examples, with optional label smoothing."""

    def loss(logits: jax.Array, batch: Batch) -> Statistic:
        labels = batch[label_key]
        weights = label_weights(batch, label_key, jnp.ndim(batch[label_key]))
        num_classes = logits.shape[-1]
        targets = optax.smooth_labels(jax.nn.one_hot(labels, num_classes), label_smoothing)
        per_example = optax.softmax_cross_entropy(logits.astype(jnp.float32), targets)
        return Statistic(jnp.sum(per_example * weights), jnp.sum(weights))

    return loss


def accuracy(label_key: str):
    """Fraction of unmasked examples whose arg-max class is the label."""

    def metric(logits: jax.Array, batch: Batch) -> Statistic:
        weights = label_weights(batch, label_key, jnp.ndim(batch[label_key]))
        correct = (jnp.argmax(logits, axis=-1) == batch[label_key]).astype(jnp.float32)
        return Statistic(jnp.sum(correct * weights), jnp.sum(weights))

    return metric


def linear_head(num_classes: int):
    """Head factory: one dense layer from the shared features to the class logits."""

    def make(feature_dim: int, rngs: nnx.Rngs) -> nnx.Module:
        return nnx.Linear(feature_dim, num_classes, rngs=rngs)

    return make


def classification_task(
    name: str, num_classes: int, label_key: str | None = None, label_smoothing: float = 0.0
) -> Task:
    """A classification task reading integer labels from ``batch[label_key or name]``."""
    key = label_key or name
    return Task(
        name=name,
        make_head=linear_head(num_classes),
        loss=cross_entropy(key, label_smoothing),
        metrics={"accuracy": accuracy(key)},
    )
