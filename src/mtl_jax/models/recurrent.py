"""Text trunk: a stack of bidirectional LSTM or GRU layers over the token embeddings.

Cells are Flax's ``nnx.OptimizedLSTMCell`` (Hochreiter & Schmidhuber 1997, with a forget
gate) and ``nnx.GRUCell`` (Cho et al. 2014), scanned over time with ``jax.lax.scan``. Padding
is masked rather than cut: at a padding position the carry is passed on unchanged and the
output is 0, in both directions. The backward direction scans from the end, so it starts at
padding with the initial (zero) carry and meets the last real token in that same state:
appending padding changes none of a sequence's outputs (tested).

Per-token features: [h→_i; h←_i] of the last layer (2·hidden). Pooled: their masked mean.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from mtl_jax.models.representation import POOLED, TOKENS, Representation, masked_mean, zero_padding
from mtl_jax.types import Batch
from mtl_jax.models.text_inputs import token_ids_and_mask, word_dropout

CELLS = ("lstm", "gru")


def _make_cell(kind: str, in_features: int, hidden: int, dtype, rngs: nnx.Rngs) -> nnx.Module:
    if kind == "lstm":
        return nnx.OptimizedLSTMCell(in_features, hidden, dtype=dtype, rngs=rngs)
    if kind == "gru":
        return nnx.GRUCell(in_features, hidden, dtype=dtype, rngs=rngs)
    raise ValueError(f"unknown recurrent cell {kind!r}; accepted: {CELLS}")


def masked_scan(cell: nnx.Module, x: jax.Array, mask: jax.Array, reverse: bool) -> jax.Array:
    """Outputs (B, L, H) of ``cell`` over x (B, L, D); the carry skips masked positions."""
    # zeros_like of a slice of x: under shard_map the carry must vary over the batch axis too
    zeros = jnp.broadcast_to(jnp.zeros_like(x[:, 0, :1]), (x.shape[0], cell.hidden_features))
    carry = (zeros, zeros) if isinstance(cell, nnx.OptimizedLSTMCell) else zeros
    graphdef, state = nnx.split(cell)

    def step(carry, inputs):
        x_t, m_t = inputs
        new_carry, y_t = nnx.merge(graphdef, state)(carry, x_t)
        keep = m_t[:, None]
        carry = jax.tree.map(lambda new, old: jnp.where(keep, new, old), new_carry, carry)
        return carry, jnp.where(keep, y_t, jnp.zeros((), y_t.dtype))

    time_major = (jnp.swapaxes(x, 0, 1), jnp.swapaxes(mask, 0, 1))
    _, outputs = jax.lax.scan(step, carry, time_major, reverse=reverse)
    return jnp.swapaxes(outputs, 0, 1)


class BiRecurrentTrunk(nnx.Module):
    """``{"tokens": (B, L, 2·hidden), "pooled": (B, 2·hidden)}`` from ``batch[input_key]``."""

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int,
        hidden: int,
        *,
        cell: str = "lstm",
        num_layers: int = 1,
        input_key: str = "tokens",
        dropout: float = 0.0,
        word_dropout: float = 0.0,
        dtype: jnp.dtype | None = None,
        rngs: nnx.Rngs,
    ):
        self.embed = nnx.Embed(vocab_size, embed_dim, dtype=dtype, rngs=rngs)
        sizes = [embed_dim] + [2 * hidden] * num_layers
        self.forward_cells = nnx.List(
            [_make_cell(cell, d, hidden, dtype, rngs) for d in sizes[:-1]]
        )
        self.backward_cells = nnx.List(
            [_make_cell(cell, d, hidden, dtype, rngs) for d in sizes[:-1]]
        )
        self.dropout = nnx.Dropout(dropout)
        self.word_dropout = word_dropout
        self.input_key = input_key
        self.dtype = dtype
        self.features = 2 * hidden

    def __call__(self, batch: Batch, *, rngs: nnx.Rngs | None = None) -> Representation:
        ids, mask = token_ids_and_mask(batch, self.input_key)
        ids = word_dropout(ids, mask, self.word_dropout, rngs)
        x = self.embed(ids)
        for forward, backward in zip(self.forward_cells, self.backward_cells):
            x = self.dropout(x, rngs=rngs, deterministic=rngs is None)
            x = jnp.concatenate(
                [masked_scan(forward, x, mask, False), masked_scan(backward, x, mask, True)], -1
            )
        if self.dtype is not None:
            x = x.astype(self.dtype)
        tokens = self.dropout(zero_padding(x, mask), rngs=rngs, deterministic=rngs is None)
        return {TOKENS: tokens, POOLED: masked_mean(tokens, mask)}
