"""EW (sum and mean) and the Gramian / weighted-sum primitives against float64 NumPy."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtl_jax.aggregators import get_aggregator, gramian, weighted_sum
from mtl_jax.aggregators.kinds import UniformWeighting, WeightingInputs
from mtl_jax.errors import ConfigError
from tests.aggregators.jacobians import random_jacobian


def split_into_pytree(jac: np.ndarray) -> dict:
    """The rows of a (T, P) Jacobian spread over a pytree of differently shaped leaves."""
    num_tasks = jac.shape[0]
    return {
        "a": jnp.asarray(jac[:, :12].reshape(num_tasks, 3, 4), jnp.float32),
        "b": {"c": jnp.asarray(jac[:, 12:20], jnp.float32), "d": jnp.asarray(jac[:, 20:], jnp.float32)},
    }


def flatten(tree: dict) -> np.ndarray:
    return np.concatenate([np.asarray(tree["a"]).reshape(-1), np.asarray(tree["b"]["c"]), np.asarray(tree["b"]["d"])])


@pytest.mark.parametrize("num_tasks", [1, 2, 5, 8])
def test_gramian_of_a_pytree_is_the_inner_products_of_its_rows(rng, num_tasks):
    jac = random_jacobian(rng, num_tasks, dim=50)
    np.testing.assert_allclose(np.asarray(gramian(split_into_pytree(jac))), jac @ jac.T, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("num_tasks", [1, 3, 8])
def test_weighted_sum_of_a_pytree_is_jacobian_transpose_times_weights(rng, num_tasks):
    jac = random_jacobian(rng, num_tasks, dim=50)
    weights = rng.standard_normal(num_tasks)
    got = flatten(weighted_sum(jnp.asarray(weights, jnp.float32), split_into_pytree(jac)))
    np.testing.assert_allclose(got, weights @ jac, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name, expected", [("sum", lambda jac: jac.sum(0)), ("mean", lambda jac: jac.mean(0))])
@pytest.mark.parametrize("num_tasks", [1, 2, 7])
def test_ew_update_is_the_sum_or_mean(rng, name, expected, num_tasks):
    jac = random_jacobian(rng, num_tasks)
    aggregator = get_aggregator(name)
    losses = jnp.asarray(rng.uniform(0.1, 3.0, num_tasks), jnp.float32)
    inputs = WeightingInputs(None, losses, jax.random.key(0), jnp.array(0))
    weights, _ = jax.jit(aggregator.weigh)(inputs, aggregator.init(num_tasks))
    np.testing.assert_allclose(np.asarray(weights, np.float64) @ jac, expected(jac), rtol=1e-6)
    assert isinstance(aggregator, UniformWeighting)
    assert aggregator.weight(num_tasks) == pytest.approx(float(weights[0]))


def test_unknown_aggregator_names_the_accepted_values():
    with pytest.raises(ConfigError, match="accepted values: .*pcgrad"):
        get_aggregator("pcgard")
