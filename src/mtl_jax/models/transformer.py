"""Text trunk: a pre-LayerNorm Transformer encoder (Vaswani et al. 2017; pre-LN as in Xiong
et al. 2020, "On Layer Normalization in the Transformer Architecture", eq. in Fig. 1 right):

    x ← x + MHA(LN(x), mask),    x ← x + W₂ GELU(W₁ LN(x)),    tokens = LN(x).

Positions are added to the embeddings: learned (one vector per position up to
``max_length``) or sinusoidal (PE(p, 2i) = sin(p / 10000^{2i/D}), PE(p, 2i+1) = cos(·),
Vaswani et al. §3.5). Attention only attends to real tokens (a key padding mask), and
padding outputs are zeroed, so appending padding changes no real token's features.
Pooled: the masked mean of the tokens.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from mtl_jax.models.representation import POOLED, TOKENS, Representation, masked_mean, zero_padding
from mtl_jax.types import Batch
from mtl_jax.models.text_inputs import token_ids_and_mask, word_dropout

POSITIONS = ("learned", "sinusoidal")


def sinusoidal_positions(length: int, dim: int) -> np.ndarray:
    """(length, dim) float32 table of Vaswani et al. §3.5."""
    positions = np.arange(length, dtype=np.float64)[:, None]
    rates = 1.0 / np.power(10000.0, np.arange(0, dim, 2, dtype=np.float64) / dim)
    table = np.zeros((length, dim))
    table[:, 0::2] = np.sin(positions * rates)
    table[:, 1::2] = np.cos(positions * rates[: dim // 2])
    return table.astype(np.float32)


class EncoderBlock(nnx.Module):
    """One pre-LN block: self-attention then a GELU MLP, each in a residual branch."""

    def __init__(self, dim: int, heads: int, mlp_dim: int, dropout: float, dtype, rngs: nnx.Rngs):
        self.attention_norm = nnx.LayerNorm(dim, dtype=dtype, rngs=rngs)
        self.attention = nnx.MultiHeadAttention(
            heads, dim, dtype=dtype, decode=False, keep_rngs=False, rngs=rngs
        )
        self.mlp_norm = nnx.LayerNorm(dim, dtype=dtype, rngs=rngs)
        self.mlp_in = nnx.Linear(dim, mlp_dim, dtype=dtype, rngs=rngs)
        self.mlp_out = nnx.Linear(mlp_dim, dim, dtype=dtype, rngs=rngs)
        self.dropout = nnx.Dropout(dropout)

    def __call__(self, x: jax.Array, attention_mask: jax.Array, rngs: nnx.Rngs | None) -> jax.Array:
        drop = lambda y: self.dropout(y, rngs=rngs, deterministic=rngs is None)  # noqa: E731
        x = x + drop(self.attention(self.attention_norm(x), mask=attention_mask, deterministic=True))
        return x + drop(self.mlp_out(nnx.gelu(self.mlp_in(self.mlp_norm(x)))))


class TransformerTrunk(nnx.Module):
    """``{"tokens": (B, L, dim), "pooled": (B, dim)}`` from ``batch[input_key]``."""

    def __init__(
        self,
        vocab_size: int,
        dim: int,
        *,
        num_layers: int = 2,
        num_heads: int = 4,
        mlp_dim: int | None = None,
        max_length: int = 512,
        positions: str = "sinusoidal",
        input_key: str = "tokens",
        dropout: float = 0.0,
        word_dropout: float = 0.0,
        dtype: jnp.dtype | None = None,
        rngs: nnx.Rngs,
    ):
        if positions not in POSITIONS:
            raise ValueError(f"unknown positions {positions!r}; accepted: {POSITIONS}")
        self.embed = nnx.Embed(vocab_size, dim, dtype=dtype, rngs=rngs)
        self.positions = positions
        if positions == "learned":
            init = nnx.initializers.normal(0.02)
            self.position_table = nnx.Param(init(rngs.params(), (max_length, dim), jnp.float32))
        self.max_length = max_length
        self.blocks = nnx.List(
            [EncoderBlock(dim, num_heads, mlp_dim or 4 * dim, dropout, dtype, rngs) for _ in range(num_layers)]
        )
        self.final_norm = nnx.LayerNorm(dim, dtype=dtype, rngs=rngs)
        self.dropout = nnx.Dropout(dropout)
        self.word_dropout = word_dropout
        self.input_key = input_key
        self.dim = dim
        self.features = dim

    def _position_table(self, length: int) -> jax.Array:
        if length > self.max_length:
            raise ValueError(
                f"sequence length {length} exceeds max_length={self.max_length}; raise the"
                " model's max_length or truncate the data"
            )
        if self.positions == "learned":
            return self.position_table[...][:length]
        return jnp.asarray(sinusoidal_positions(length, self.dim))

    def __call__(self, batch: Batch, *, rngs: nnx.Rngs | None = None) -> Representation:
        ids, mask = token_ids_and_mask(batch, self.input_key)
        ids = word_dropout(ids, mask, self.word_dropout, rngs)
        x = self.embed(ids)
        x = x + self._position_table(ids.shape[1]).astype(x.dtype)
        x = self.dropout(x, rngs=rngs, deterministic=rngs is None)
        attention_mask = nnx.make_attention_mask(mask, mask)  # (B, 1, L, L)
        for block in self.blocks:
            x = block(x, attention_mask, rngs)
        tokens = zero_padding(self.final_norm(x), mask)
        return {TOKENS: tokens, POOLED: masked_mean(tokens, mask)}
