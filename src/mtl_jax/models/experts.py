"""Mixture-of-experts building blocks (Ma et al. 2018, "Modeling Task Relationships in
Multi-task Learning with Multi-gate Mixture-of-Experts", eq. 4–5):

    f^k(x) = Σ_e g^k(x)_e f_e(x),    g^k(x) = softmax(W_gk x).

``Experts`` holds E independent MLPs as stacked kernels (E, in, out), evaluated with one
einsum per layer; they map any (…, D) array to (…, E, H), so a token is one more example.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

_stacked_lecun_normal = nnx.initializers.variance_scaling(
    1.0, "fan_in", "truncated_normal", in_axis=-2, out_axis=-1, batch_axis=(0,)
)


class StackedDense(nnx.Module):
    """E dense layers at once: (…, D) → (…, E, H) (``first``), else (…, E, D) → (…, E, H)."""

    def __init__(self, num: int, in_features: int, out_features: int, *, first: bool, dtype, rngs: nnx.Rngs):
        self.kernel = nnx.Param(_stacked_lecun_normal(rngs.params(), (num, in_features, out_features)))
        self.bias = nnx.Param(jnp.zeros((num, out_features)))
        self.first = first
        self.dtype = dtype

    def __call__(self, x: jax.Array) -> jax.Array:
        dtype = self.dtype or x.dtype
        kernel, bias = self.kernel[...].astype(dtype), self.bias[...].astype(dtype)
        pattern = "...d,edh->...eh" if self.first else "...ed,edh->...eh"
        return jnp.einsum(pattern, x.astype(dtype), kernel) + bias


class Experts(nnx.Module):
    """E MLPs (Dense → ReLU → Dropout per layer): (…, D) → (…, E, hidden[-1])."""

    def __init__(
        self,
        num_experts: int,
        in_features: int,
        hidden: Sequence[int],
        *,
        dropout: float = 0.0,
        dtype=None,
        rngs: nnx.Rngs,
    ):
        sizes = [in_features, *hidden]
        self.layers = nnx.List(
            [
                StackedDense(num_experts, a, b, first=index == 0, dtype=dtype, rngs=rngs)
                for index, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))
            ]
        )
        self.dropout = nnx.Dropout(dropout)
        self.num_experts = num_experts
        self.features = sizes[-1]

    def __call__(self, x: jax.Array, *, rngs: nnx.Rngs | None = None) -> jax.Array:
        for layer in self.layers:
            x = self.dropout(nnx.relu(layer(x)), rngs=rngs, deterministic=rngs is None)
        return x


class SoftmaxGate(nnx.Module):
    """MMoE's gate g(x) = softmax(W x) over E experts: (…, D) → (…, E) (eq. 5)."""

    def __init__(self, in_features: int, num_experts: int, *, dtype=None, rngs: nnx.Rngs):
        self.dense = nnx.Linear(in_features, num_experts, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return jax.nn.softmax(self.dense(x).astype(jnp.float32), axis=-1)


def mix(weights: jax.Array, experts: jax.Array) -> jax.Array:
    """Σ_e weights[…, e] · experts[…, e, :]: (…, E), (…, E, H) → (…, H)."""
    return jnp.einsum("...e,...eh->...h", weights.astype(experts.dtype), experts)
