"""``task_from_spec``: the ``Task`` (head, loss, metrics) for a dataset's ``TaskSpec``."""

from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp

from mtl_jax.data.spec import TaskSpec
from mtl_jax.models.classification import accuracy, cross_entropy
from mtl_jax.models.heads import head_factory
from mtl_jax.models.losses import (
    label_accuracy,
    mean_absolute_error,
    regression_loss,
    sigmoid_cross_entropy,
)
from mtl_jax.models.task import Task


def task_from_spec(
    spec: TaskSpec,
    *,
    label_smoothing: float = 0.0,
    regression_loss_kind: str = "mse",
    tower: Sequence[int] = (),
    dropout: float = 0.0,
    dtype: jnp.dtype | None = None,
) -> Task:
    """A task for ``spec`` (output conventions in ``mtl_jax.models.heads``).

    Args:
      spec: the dataset's description of the task.
      label_smoothing: ε of the smoothed targets (classification and tagging).
      regression_loss_kind: ``"mse"`` or ``"l1"`` (``mtl_jax.models.losses``).
      tower: hidden sizes of the head's MLP tower (empty: a linear head).
      dropout: dropout rate after each tower layer.
      dtype: compute dtype of the head (outputs are float32).
    """
    key = spec.label_key
    make_head = head_factory(
        spec.kind,
        1 if spec.kind == "regression" else spec.num_outputs,
        hidden=tuple(tower),
        dropout=dropout,
        dtype=dtype,
    )
    if spec.kind in ("classification", "tagging"):
        loss, metrics = cross_entropy(key, label_smoothing), {"accuracy": accuracy(key)}
    elif spec.kind == "multilabel":
        loss, metrics = sigmoid_cross_entropy(key), {"label_accuracy": label_accuracy(key)}
    else:
        loss = regression_loss(key, regression_loss_kind)
        metrics = {"mae": mean_absolute_error(key, spec.target_std)}
    return Task(name=spec.name, make_head=make_head, loss=loss, metrics=metrics)
