"""Task heads: an optional MLP tower and a linear output layer on one representation leaf.

Output conventions (what the losses read and what the trainer's metrics receive), always
float32 whatever the compute dtype:

* classification: (B, C) logits;
* tagging: (B, L, C) logits, one row per token;
* multilabel: (B, K) logits (one sigmoid per label);
* regression: (B,) prediction in normalised units (value = prediction · std + mean).

The tower is the "task-specific tower" of MMoE / PLE (Ma et al. 2018, eq. 5): Dense → ReLU →
Dropout per hidden layer; with no hidden layer the head is the linear classifier of
hard parameter sharing.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from mtl_jax.models.multitask import TaskModule
from mtl_jax.models.representation import KEY_OF_TASK_KIND, as_representation
from mtl_jax.types import Batch


class Head(TaskModule):
    """Maps ``z[KEY_OF_TASK_KIND[kind]]`` to the task's outputs (see module docstring)."""

    def __init__(
        self,
        kind: str,
        in_features: int,
        num_outputs: int,
        *,
        hidden: Sequence[int] = (),
        dropout: float = 0.0,
        dtype: jnp.dtype | None = None,
        rngs: nnx.Rngs,
    ):
        sizes = [in_features, *hidden]
        self.kind = kind
        self.key = KEY_OF_TASK_KIND[kind]
        self.tower = nnx.List(
            [nnx.Linear(a, b, dtype=dtype, rngs=rngs) for a, b in zip(sizes[:-1], sizes[1:])]
        )
        self.dropout = nnx.Dropout(dropout)
        self.output = nnx.Linear(sizes[-1], num_outputs, dtype=dtype, rngs=rngs)

    def __call__(self, z, batch: Batch, *, rngs: nnx.Rngs | None = None) -> jax.Array:
        del batch
        x = as_representation(z)[self.key]
        for layer in self.tower:
            x = self.dropout(nnx.relu(layer(x)), rngs=rngs, deterministic=rngs is None)
        out = self.output(x).astype(jnp.float32)
        return out[..., 0] if self.kind == "regression" else out


def head_factory(
    kind: str,
    num_outputs: int,
    *,
    hidden: Sequence[int] = (),
    dropout: float = 0.0,
    dtype: jnp.dtype | None = None,
):
    """``(feature_dim, rngs) -> Head``: the ``make_head`` of a ``Task``."""

    def make(feature_dim: int, rngs: nnx.Rngs) -> Head:
        return Head(
            kind, feature_dim, num_outputs, hidden=hidden, dropout=dropout, dtype=dtype, rngs=rngs
        )

    return make
