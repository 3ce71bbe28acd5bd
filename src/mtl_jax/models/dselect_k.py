"""DSelect-k gate (Hazimeh et al. 2021, "DSelect-k: Differentiable Selection in the Mixture
of Experts with Applications to Multi-Task Learning", §3, eq. 4–8), per-example version.

k single-expert selectors, each a binary code of m = ⌈log₂ E⌉ smooth bits:

    S(t) = 0 (t ≤ -γ/2),  -2/γ³ t³ + 3/(2γ) t + 1/2 (|t| < γ/2),  1 (t ≥ γ/2)    (eq. 4)
    r(z)_e = Π_j [S(z_j) if bit j of e is 1 else 1 - S(z_j)]                     (eq. 5)
    q(x) = Σ_i softmax(α(x))_i r(z_i(x)),  z_i(x) = W_i x,  α(x) = A x            (eq. 7–8)

S reaches exactly 0 and 1, so the trained gate selects at most k experts. When E is not a
power of two the codes beyond E are dropped and r renormalised. The paper's entropy
regulariser (pushing S to 0/1 faster) is not included. z starts near 0 (S ≈ ½: every expert
equally likely), from a small initialisation of W.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx


def smooth_step(t: jax.Array, gamma: float) -> jax.Array:
    """The cubic smooth-step S of eq. 4."""
    cubic = -2.0 / gamma**3 * t**3 + 3.0 / (2.0 * gamma) * t + 0.5
    return jnp.where(t <= -gamma / 2, 0.0, jnp.where(t >= gamma / 2, 1.0, cubic))


def expert_codes(num_experts: int) -> np.ndarray:
    """(E, m) 0/1 matrix: row e is the binary code of expert e."""
    bits = max(1, math.ceil(math.log2(num_experts)))
    return ((np.arange(num_experts)[:, None] >> np.arange(bits)[None, :]) & 1).astype(np.float32)


def selector_distribution(z: jax.Array, num_experts: int, gamma: float) -> jax.Array:
    """r(z) of eq. 5 for z (…, m), renormalised over the E real experts: (…, E)."""
    codes = jnp.asarray(expert_codes(num_experts))
    s = smooth_step(z, gamma)[..., None, :]  # (…, 1, m)
    r = jnp.prod(codes * s + (1 - codes) * (1 - s), axis=-1)  # (…, E)
    return r / jnp.maximum(jnp.sum(r, axis=-1, keepdims=True), 1e-12)


class DSelectKGate(nnx.Module):
    """(…, D) → (…, E) expert weights, at most k of them nonzero once S saturates."""

    def __init__(
        self, in_features: int, num_experts: int, *, k: int = 2, gamma: float = 1.0, dtype=None, rngs: nnx.Rngs
    ):
        self.bits = expert_codes(num_experts).shape[1]
        small = nnx.initializers.normal(0.05 / math.sqrt(in_features))
        self.selectors = nnx.Linear(in_features, k * self.bits, kernel_init=small, dtype=dtype, rngs=rngs)
        self.selector_logits = nnx.Linear(in_features, k, dtype=dtype, rngs=rngs)
        self.num_experts, self.k, self.gamma = num_experts, k, gamma

    def __call__(self, x: jax.Array) -> jax.Array:
        z = self.selectors(x).astype(jnp.float32).reshape(*x.shape[:-1], self.k, self.bits)
        r = selector_distribution(z, self.num_experts, self.gamma)  # (…, k, E)
        alpha = jax.nn.softmax(self.selector_logits(x).astype(jnp.float32), axis=-1)  # (…, k)
        return jnp.einsum("...i,...ie->...e", alpha, r)
