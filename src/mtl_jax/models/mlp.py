"""Multi-layer perceptron trunk: flatten an input and apply Dense → ReLU layers.

The reference trunk of ``benchmarks/step_time.py`` (784→512→512→512) and of tabular data.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from mtl_jax.types import Batch


class MLPTrunk(nnx.Module):
    """Dense layers with ReLU on ``batch[input_key]`` flattened to (B, features)."""

    def __init__(
        self,
        in_features: int,
        hidden: Sequence[int],
        *,
        input_key: str,
        rngs: nnx.Rngs,
        dropout: float = 0.0,
        dtype: jnp.dtype | None = None,
    ):
        sizes = [in_features, *hidden]
        self.layers = nnx.List(
            [nnx.Linear(a, b, dtype=dtype, rngs=rngs) for a, b in zip(sizes[:-1], sizes[1:])]
        )
        self.dropout = nnx.Dropout(dropout)
        self.input_key = input_key
        self.features = sizes[-1]

    def __call__(self, batch: Batch, *, rngs: nnx.Rngs | None = None) -> jax.Array:
        x = batch[self.input_key]
        x = x.reshape(x.shape[0], -1).astype(jnp.float32)
        for layer in self.layers:
            x = self.dropout(nnx.relu(layer(x)), rngs=rngs, deterministic=rngs is None)
        return x
