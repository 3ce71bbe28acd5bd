"""Set2Set readout (Vinyals et al. 2016, "Order Matters: Sequence to sequence for sets",
eq. 3–7), as used for QM9 by Gilmer et al. 2017 (§5):

    q_t = LSTM(q*_{t-1}),  e_i = ⟨m_i, q_t⟩,  a = softmax_{i: mask_i}(e),
    r_t = Σ_i a_i m_i,     q*_t = [q_t; r_t],

for ``steps`` steps from q*_0 = 0; the output is q*_T (2·D). Order-invariant in the nodes,
and padding nodes get zero attention.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx


class Set2Set(nnx.Module):
    """(B, N, D) node features and (B, N) mask → (B, 2·D)."""

    def __init__(self, features: int, *, steps: int = 3, dtype=None, rngs: nnx.Rngs):
        self.cell = nnx.OptimizedLSTMCell(2 * features, features, dtype=dtype, rngs=rngs)
        self.features = features
        self.steps = steps

    def __call__(self, nodes: jax.Array, mask: jax.Array) -> jax.Array:
        batch = nodes.shape[0]
        zeros = jnp.zeros((batch, self.features), nodes.dtype)
        carry, q_star = (zeros, zeros), jnp.zeros((batch, 2 * self.features), nodes.dtype)
        very_negative = jnp.asarray(jnp.finfo(jnp.float32).min / 2, jnp.float32)
        for _ in range(self.steps):
            carry, q = self.cell(carry, q_star)
            scores = jnp.einsum("bnd,bd->bn", nodes, q.astype(nodes.dtype)).astype(jnp.float32)
            attention = jax.nn.softmax(jnp.where(mask, scores, very_negative), axis=-1)
            attention = attention * mask  # a molecule of padding only reads nothing
            read = jnp.einsum("bn,bnd->bd", attention.astype(nodes.dtype), nodes)
            q_star = jnp.concatenate([q.astype(nodes.dtype), read], axis=-1)
        return q_star
