"""Text trunk: word embeddings, masked average pooling, one dense layer.

The seed articles' sentence classifier (as in Iyyer et al. 2015, "Deep Unordered
Composition", eq. 1–3 with one hidden layer): pooled = ReLU(W · mean_{i: mask_i} E[w_i] + b).
The per-token features apply the same layer to each embedding, ReLU(W · E[w_i] + b), so the
trunk also serves tagging tasks (a context-free baseline).
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

from mtl_jax.models.representation import POOLED, TOKENS, Representation, masked_mean, zero_padding
from mtl_jax.types import Batch
from mtl_jax.models.text_inputs import token_ids_and_mask, word_dropout


class BagOfEmbeddingsTrunk(nnx.Module):
    """``{"tokens": (B, L, features), "pooled": (B, features)}`` from ``batch[input_key]``."""

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int,
        features: int,
        *,
        input_key: str = "tokens",
        dropout: float = 0.0,
        word_dropout: float = 0.0,
        dtype: jnp.dtype | None = None,
        rngs: nnx.Rngs,
    ):
        self.embed = nnx.Embed(vocab_size, embed_dim, dtype=dtype, rngs=rngs)
        self.dense = nnx.Linear(embed_dim, features, dtype=dtype, rngs=rngs)
        self.dropout = nnx.Dropout(dropout)
        self.word_dropout = word_dropout
        self.input_key = input_key
        self.features = features

    def __call__(self, batch: Batch, *, rngs: nnx.Rngs | None = None) -> Representation:
        ids, mask = token_ids_and_mask(batch, self.input_key)
        ids = word_dropout(ids, mask, self.word_dropout, rngs)
        embedded = self.dropout(self.embed(ids), rngs=rngs, deterministic=rngs is None)
        tokens = zero_padding(nnx.relu(self.dense(embedded)), mask)
        pooled = nnx.relu(self.dense(masked_mean(embedded, mask)))
        drop = lambda x: self.dropout(x, rngs=rngs, deterministic=rngs is None)  # noqa: E731
        return {TOKENS: drop(tokens), POOLED: drop(pooled)}
