"""The shared representation handed from the trunk to the heads.

A trunk returns a dict of feature arrays (a pytree), every leaf with the batch axis first
and the feature axis last:

* ``"pooled"``: (B, D), one vector per example (sentence, image, molecule, row);
* ``"tokens"``: (B, L, D), one vector per token (text trunks only), zero at padding.

Heads pick the leaf their task needs (``POOLED`` for classification, multi-label and
regression, ``TOKENS`` for tagging). Multi-task architectures map every leaf with the same
weights (a token is treated like one more example), so a text model can serve sentence and
token tasks at once. A plain array (the legacy ``MLPTrunk``) stands for ``{"pooled": x}``.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import jax
import jax.numpy as jnp

POOLED = "pooled"
TOKENS = "tokens"
Representation = dict[str, jax.Array]

KEY_OF_TASK_KIND: Mapping[str, str] = {
    "classification": POOLED,
    "multilabel": POOLED,
    "regression": POOLED,
    "tagging": TOKENS,
}


def as_representation(features: jax.Array | Mapping[str, jax.Array]) -> Representation:
    """``features`` as a dict of leaves; a bare (B, D) array becomes ``{"pooled": x}``."""
    if isinstance(features, Mapping):
        return dict(features)
    return {POOLED: features}


def keys_for_task_kinds(kinds: Iterable[str]) -> tuple[str, ...]:
    """The representation leaves some tasks read, in a fixed order."""
    needed = {KEY_OF_TASK_KIND[kind] for kind in kinds}
    return tuple(key for key in (POOLED, TOKENS) if key in needed)


def masked_mean(x: jax.Array, mask: jax.Array) -> jax.Array:
    """Mean of x (B, L, D) over the positions where mask (B, L) is True; 0 where none is."""
    weights = mask.astype(x.dtype)[..., None]
    total = jnp.sum(x * weights, axis=-2)
    count = jnp.maximum(jnp.sum(weights, axis=-2), 1)
    return total / count


def zero_padding(x: jax.Array, mask: jax.Array) -> jax.Array:
    """x (B, L, D) with the positions where mask (B, L) is False set to 0."""
    return jnp.where(mask[..., None], x, jnp.zeros((), x.dtype))
