"""GradDrop (Chen et al. 2020): per-coordinate sign purity P = ½(1 + Σg/Σ|g|), one uniform draw
U per coordinate, keep the positive parts where P > U and the negative parts where P < U."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from mtl_jax.aggregators.graddrop import graddrop
from tests.aggregators.jacobian_harness import from_pytree, run_combine, shared_params_like, to_pytree
from tests.aggregators.jacobians import jacobian_cases, random_jacobian, with_parallel_rows, with_zero_row

AGGREGATOR = graddrop()
LEAKY = graddrop(0.3)


def uniform_draws(key: jax.Array, jac: np.ndarray) -> np.ndarray:
    """The U the implementation draws: one split key per leaf, in leaf order (bias, kernel)."""
    like = to_pytree(jac)
    leaves, treedef = jax.tree.flatten(like)
    keys = jax.random.split(key, len(leaves))
    draws = [jax.random.uniform(k, x.shape[1:], x.dtype) for x, k in zip(leaves, keys)]
    tree = jax.tree.unflatten(treedef, [d[None] for d in draws])
    return from_pytree(tree)[0]


def reference(jac: np.ndarray, uniform: np.ndarray, leak: float) -> np.ndarray:
    """Chen et al. 2020, Sec. 3: P_k, then M_{t,k}, then Σ_t (ℓ + (1−ℓ) M_{t,k}) g_{t,k}."""
    magnitude = np.abs(jac).sum(axis=0)
    purity = 0.5 * (1.0 + jac.sum(axis=0) / np.where(magnitude > 0, magnitude, 1.0))
    d = np.zeros(jac.shape[1])
    for row in jac:
        keep = ((purity > uniform) & (row > 0)) | ((purity < uniform) & (row < 0))
        d += (leak + (1 - leak) * keep) * row
    return d


@pytest.mark.parametrize(("make", "num_tasks"), jacobian_cases([random_jacobian, with_zero_row, with_parallel_rows], [1, 2, 3, 8]))
@pytest.mark.parametrize("aggregator,leak", [(AGGREGATOR, 0.0), (LEAKY, 0.3)], ids=["leak0", "leak0.3"])
def test_direction_matches_reference(rng, make, num_tasks, aggregator, leak):
    jac = make(rng, num_tasks)
    key = jax.random.key(int(rng.integers(1 << 30)))
    d, weights, state = run_combine(aggregator, jac, key=key)
    # float32 inputs: the purity test P ≷ U may flip only where |P − U| ~ 1e-7 (measure zero)
    np.testing.assert_allclose(d, reference(jac, uniform_draws(key, jac), leak), rtol=1e-5, atol=1e-6)
    assert np.all(np.isnan(weights)) and state == ()


def test_agreeing_signs_keep_everything_and_single_task_is_identity(rng):
    """P = 1 or 0 where all tasks agree: every component survives, d = Σ g (and T=1: d = g)."""
    base = np.abs(rng.standard_normal(50)) * np.sign(rng.standard_normal(50))
    jac = np.abs(rng.standard_normal((4, 50))) * np.sign(base)
    d, _, _ = run_combine(AGGREGATOR, jac, key=jax.random.key(1))
    np.testing.assert_allclose(d, jac.sum(axis=0), rtol=1e-6)
    single = rng.standard_normal((1, 50))
    np.testing.assert_allclose(run_combine(AGGREGATOR, single)[0], single[0], rtol=1e-6)


def test_opposite_gradients_keep_one_sign_per_coordinate(rng):
    """g and −g: P = ½, every coordinate keeps exactly one of the two, so |d| = |g|."""
    g = rng.standard_normal(50)
    d, _, _ = run_combine(AGGREGATOR, np.stack([g, -g]), key=jax.random.key(2))
    np.testing.assert_allclose(np.abs(d), np.abs(g), rtol=1e-6)
    assert 5 < np.sum(np.isclose(d, g, rtol=1e-6)) < 45  # both signs get picked (P = ½)


def test_rejects_a_bad_leak():
    with pytest.raises(ValueError, match="leak"):
        graddrop(1.5)


def test_needs_no_params_shaped_state(rng):
    jac = rng.standard_normal((3, 50))
    assert AGGREGATOR.init(3, shared_params_like(jac)) == () and AGGREGATOR.modes == ("full", "representation")
    assert shared_params_like(jac)["bias"].shape == (20,)
