"""RLW (Lin et al. 2022): λ = softmax(λ̃), λ̃ ~ N(0, I) from the step key."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtl_jax.aggregators.kinds import LossWeighting, WeightingInputs
from mtl_jax.aggregators.rlw import rlw
from tests.aggregators.weighting_harness import TASK_COUNTS, run

AGGREGATOR = rlw()


def weigh(num_tasks: int, key: jax.Array) -> np.ndarray:
    inputs = WeightingInputs(None, jnp.ones(num_tasks), key, jnp.asarray(0))
    weights, _ = jax.jit(AGGREGATOR.weigh)(inputs, AGGREGATOR.init(num_tasks))
    return np.asarray(weights, np.float64)


@pytest.mark.parametrize("num_tasks", TASK_COUNTS)
def test_weights_are_softmax_of_standard_normal_draws(num_tasks):
    for seed in range(5):
        key = jax.random.key(seed)
        weights = weigh(num_tasks, key)
        assert np.all(weights > 0)
        np.testing.assert_allclose(weights.sum(), 1.0, rtol=1e-6)
        draws = np.asarray(jax.random.normal(key, (num_tasks,)), np.float64)
        expected = np.exp(draws - draws.max()) / np.exp(draws - draws.max()).sum()
        np.testing.assert_allclose(weights, expected, rtol=1e-5)
        np.testing.assert_array_equal(weights, weigh(num_tasks, key))  # deterministic


def test_different_keys_give_different_weights():
    weights = [weigh(5, jax.random.key(seed)) for seed in range(10)]
    for a, b in zip(weights, weights[1:]):
        assert not np.allclose(a, b)


def test_needs_no_gramian_and_update_is_weighted_sum(rng):
    assert isinstance(AGGREGATOR, LossWeighting)
    jac = rng.standard_normal((3, 10))
    weights, _ = run(AGGREGATOR, jac, x64=False, key=jax.random.key(3))
    np.testing.assert_allclose(weights, weigh(3, jax.random.key(3)), rtol=1e-7)


def test_weights_are_spread_like_the_paper_prior():
    """Over many keys, the log-weight differences have the variance of N(0,1) − N(0,1) = 2."""
    keys = jax.random.split(jax.random.key(0), 200)
    weights = np.stack([weigh(2, k) for k in keys])
    log_ratio = np.log(weights[:, 0]) - np.log(weights[:, 1])
    assert 1.4 < log_ratio.var() < 2.8
