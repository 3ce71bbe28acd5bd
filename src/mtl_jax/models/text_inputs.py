"""Text inputs: token ids, their padding mask, and word dropout.

Batch convention (``mtl_jax.data.spec``): ``tokens`` int32 (B, L) with 0 = padding and
1 = unknown, ``tokens_mask`` bool (B, L).

Word dropout (Iyyer et al. 2015, "Deep Unordered Composition Rivals Syntactic Methods for
Text Classification", §3.1; as token masking in Bowman et al. 2016): at train time each real
token is replaced by the unknown id with probability p, so the model cannot lean on any
single word. Padding stays padding, so masks and sequence lengths do not change.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from mtl_jax.types import Batch, mask_key

PAD_ID = 0
UNKNOWN_ID = 1


def token_ids_and_mask(batch: Batch, input_key: str) -> tuple[jax.Array, jax.Array]:
    """(B, L) int32 ids and (B, L) bool mask; without ``<key>_mask`` the mask is ids != 0."""
    ids = jnp.asarray(batch[input_key]).astype(jnp.int32)
    mask = batch.get(mask_key(input_key))
    mask = ids != PAD_ID if mask is None else jnp.asarray(mask).astype(bool)
    return ids, mask


def word_dropout(ids: jax.Array, mask: jax.Array, rate: float, rngs: nnx.Rngs | None) -> jax.Array:
    """Replace each unmasked id by ``UNKNOWN_ID`` with probability ``rate`` (train time only).

    ``rngs=None`` (evaluation) or ``rate=0`` returns ``ids`` unchanged. Draws from the
    ``dropout`` stream, like ``nnx.Dropout``.
    """
    if rngs is None or rate <= 0.0:
        return ids
    drop = jax.random.bernoulli(rngs.dropout(), rate, ids.shape) & mask
    return jnp.where(drop, UNKNOWN_ID, ids)
