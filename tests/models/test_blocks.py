"""Building blocks against NumPy references written from the papers' equations."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from mtl_jax.models.cross_stitch import cross_stitch
from mtl_jax.models.dselect_k import DSelectKGate, smooth_step
from mtl_jax.models.experts import Experts, mix
from mtl_jax.models.message_passing import cosine_cutoff, gaussian_rbf, pairwise_distances
from mtl_jax.models.text_inputs import UNKNOWN_ID, word_dropout
from mtl_jax.models.transformer import sinusoidal_positions


def reference_smooth_step(t: np.ndarray, gamma: float) -> np.ndarray:
    """Hazimeh et al. 2021, eq. 4."""
    out = -2 / gamma**3 * t**3 + 3 / (2 * gamma) * t + 0.5
    return np.where(t <= -gamma / 2, 0.0, np.where(t >= gamma / 2, 1.0, out))


def test_dselect_k_gate_matches_equations(rng):
    num_experts, k, dim = 6, 3, 5  # 6 is not a power of two: codes 6, 7 dropped
    gate = DSelectKGate(dim, num_experts, k=k, gamma=1.5, rngs=nnx.Rngs(0))
    gate.selectors.kernel[...] = jnp.asarray(rng.standard_normal((dim, k * 3)), jnp.float32)
    x = rng.standard_normal((4, dim)).astype(np.float32)
    weights = np.asarray(gate(x), np.float64)

    x64 = x.astype(np.float64)
    z = (x64 @ np.asarray(gate.selectors.kernel[...], np.float64) + np.asarray(gate.selectors.bias[...])).reshape(4, k, 3)
    s = reference_smooth_step(z, 1.5)
    r = np.ones((4, k, 8))
    for e in range(8):
        for j in range(3):
            bit = (e >> j) & 1
            r[:, :, e] *= s[:, :, j] if bit else 1 - s[:, :, j]
    r = r[:, :, :num_experts] / r[:, :, :num_experts].sum(-1, keepdims=True)
    logits = x64 @ np.asarray(gate.selector_logits.kernel[...], np.float64) + np.asarray(gate.selector_logits.bias[...])
    alpha = np.exp(logits - logits.max(-1, keepdims=True))
    alpha /= alpha.sum(-1, keepdims=True)
    np.testing.assert_allclose(weights, np.einsum("bi,bie->be", alpha, r), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-5)
    t = rng.uniform(-2, 2, 50)
    np.testing.assert_allclose(np.asarray(smooth_step(jnp.asarray(t), 1.5)), reference_smooth_step(t, 1.5), atol=1e-6)


def test_experts_and_mixture_match_loops(rng):
    experts = Experts(3, 4, (5, 2), rngs=nnx.Rngs(0))
    x = rng.standard_normal((6, 4)).astype(np.float32)
    out = np.asarray(experts(x), np.float64)
    for e in range(3):
        h = x.astype(np.float64)
        for layer in experts.layers:
            h = np.maximum(h @ np.asarray(layer.kernel[...][e], np.float64) + np.asarray(layer.bias[...][e]), 0)
        np.testing.assert_allclose(out[:, e], h, rtol=1e-5, atol=1e-6)
    weights = rng.dirichlet(np.ones(3), 6)
    np.testing.assert_allclose(np.asarray(mix(jnp.asarray(weights, jnp.float32), jnp.asarray(out, jnp.float32))),
                               np.einsum("be,beh->bh", weights, out), rtol=1e-5, atol=1e-6)


def test_cross_stitch_mixes_columns(rng):
    alpha = rng.standard_normal((3, 3))
    columns = rng.standard_normal((4, 3, 5))
    ref = np.stack([sum(alpha[k, j] * columns[:, j] for j in range(3)) for k in range(3)], axis=1)
    got = cross_stitch(jnp.asarray(alpha, jnp.float32), jnp.asarray(columns, jnp.float32))
    np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-5, atol=1e-5)


def test_sinusoidal_positions_match_vaswani():
    table = sinusoidal_positions(11, 6)
    for p in range(11):
        for i in range(3):
            np.testing.assert_allclose(table[p, 2 * i], np.sin(p / 10000 ** (2 * i / 6)), atol=1e-6)
            np.testing.assert_allclose(table[p, 2 * i + 1], np.cos(p / 10000 ** (2 * i / 6)), atol=1e-6)


def test_distance_expansion_and_cutoff(rng):
    positions = rng.standard_normal((2, 5, 3)) * 2
    d = np.linalg.norm(positions[:, :, None] - positions[:, None], axis=-1)
    np.testing.assert_allclose(np.asarray(pairwise_distances(jnp.asarray(positions, jnp.float32))), d, rtol=1e-5, atol=1e-5)
    centers, gamma = np.linspace(0, 4.0, 9), 0.5 / 0.5**2
    np.testing.assert_allclose(
        np.asarray(gaussian_rbf(jnp.asarray(d, jnp.float32), 9, 4.0)),
        np.exp(-gamma * (d[..., None] - centers) ** 2), rtol=1e-4, atol=1e-6,
    )
    np.testing.assert_allclose(
        np.asarray(cosine_cutoff(jnp.asarray(d, jnp.float32), 4.0)),
        np.where(d < 4.0, 0.5 * (np.cos(np.pi * d / 4.0) + 1), 0.0), atol=1e-6,
    )


@pytest.mark.parametrize("rate", [0.1, 0.4])
def test_word_dropout_replaces_real_tokens_at_the_rate(rate, rng):
    ids = rng.integers(2, 50, (200, 50)).astype(np.int32)
    mask = rng.random((200, 50)) < 0.8
    ids = np.where(mask, ids, 0)
    dropped = np.asarray(word_dropout(jnp.asarray(ids), jnp.asarray(mask), rate, nnx.Rngs(dropout=jax.random.key(3))))
    assert np.all(dropped[~mask] == 0), "padding must stay padding"
    changed = dropped[mask] != ids[mask]
    assert np.all(dropped[mask][changed] == UNKNOWN_ID)
    n = mask.sum()
    assert abs(changed.sum() - rate * n) < 5 * np.sqrt(n * rate * (1 - rate))
    assert np.array_equal(np.asarray(word_dropout(jnp.asarray(ids), jnp.asarray(mask), rate, None)), ids)
