"""GradDrop — "Just Pick a Sign: Optimizing Deep Multitask Models with Gradient Sign Dropout",
Chen et al., NeurIPS 2020, Sec. 3. Hyper-parameter: the leak ℓ ∈ [0, 1]
(paper default 0: full sign dropout).

Per coordinate k of the stacked task gradients g_t, the sign purity is

    P_k = ½ (1 + Σ_t g_{t,k} / Σ_t |g_{t,k}|)  ∈ [0, 1],

then with one U_k ~ Uniform(0, 1) per coordinate every task keeps only the sign the draw picks:
M_{t,k} = 1[P_k > U_k]·1[g_{t,k} > 0] + 1[P_k < U_k]·1[g_{t,k} < 0], and

    d_k = Σ_t (ℓ + (1 − ℓ) M_{t,k}) g_{t,k}.

Element-wise, so it needs J itself (a Jacobian-level aggregator); its weights are reported as
NaN. In full mode the coordinates are the shared parameters (as in torchjd's GradDrop) and
the draw comes from the step key, identical on every device. In representation mode the
coordinates are the entries of ∂L_t/∂z, one per example and feature, with independent draws
per device; the paper's own variant multiplies by the sign of the layer input and sums over
the batch before computing P — not done here.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mtl_jax.aggregators.kinds import JacobianAggregator, JacobianUpdate, WeightingInputs, no_jacobian_state
from mtl_jax.types import PyTree

DEFAULT_LEAK = 0.0


def graddrop_leaf(rows: jax.Array, uniform: jax.Array, leak: float) -> jax.Array:
    """Σ_t (ℓ + (1 − ℓ) M_t) ⊙ g_t for one leaf with a leading task axis; ``uniform`` = U."""
    total = rows.sum(axis=0)
    magnitude = jnp.abs(rows).sum(axis=0)
    purity = 0.5 * (1.0 + total / jnp.where(magnitude > 0, magnitude, 1.0))
    keep = ((purity > uniform) & (rows > 0)) | ((purity < uniform) & (rows < 0))
    return jnp.sum((leak + (1.0 - leak) * keep.astype(rows.dtype)) * rows, axis=0)


def graddrop_direction(jacobian: PyTree, key: jax.Array, leak: float = DEFAULT_LEAK) -> PyTree:
    """GradDrop's direction for a Jacobian pytree, one uniform draw per coordinate."""
    leaves, treedef = jax.tree.flatten(jacobian)
    keys = jax.random.split(key, len(leaves))
    return jax.tree.unflatten(
        treedef,
        [
            graddrop_leaf(x, jax.random.uniform(k, x.shape[1:], x.dtype), leak)
            for x, k in zip(leaves, keys)
        ],
    )


def graddrop(leak: float = DEFAULT_LEAK) -> JacobianAggregator:
    """GradDrop (Chen et al. 2020, leak=0): per-coordinate sign dropout by sign purity (Jacobian level)."""
    if not 0.0 <= leak <= 1.0:
        raise ValueError(f"graddrop needs 0 <= leak <= 1, got {leak}")

    def combine(jacobian: PyTree, inputs: WeightingInputs, state):
        weights = jnp.full(inputs.losses.shape, jnp.nan, jnp.float32)
        return JacobianUpdate(graddrop_direction(jacobian, inputs.key, leak), weights, state)

    return JacobianAggregator("graddrop", no_jacobian_state, combine)
