"""Constant weights: validated at build, init and trace time; the update is Jᵀw."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtl_jax.aggregators.constant import constant
from mtl_jax.aggregators.kinds import GramianWeighting, LossWeighting, UniformWeighting, WeightingInputs
from tests.aggregators.weighting_harness import TASK_COUNTS


def inputs_for(num_tasks: int) -> WeightingInputs:
    return WeightingInputs(None, jnp.ones(num_tasks), jax.random.key(0), jnp.asarray(0))


@pytest.mark.parametrize("num_tasks", TASK_COUNTS)
def test_returns_the_given_weights(rng, num_tasks):
    given = rng.uniform(-1.0, 2.0, num_tasks)
    aggregator = constant(given)
    weights, state = jax.jit(aggregator.weigh)(inputs_for(num_tasks), aggregator.init(num_tasks))
    np.testing.assert_allclose(np.asarray(weights), given, rtol=1e-6)
    jac = rng.standard_normal((num_tasks, 20))
    np.testing.assert_allclose(np.asarray(weights, np.float64) @ jac, given @ jac, rtol=1e-5, atol=1e-6)
    assert not isinstance(aggregator, GramianWeighting) and state == ()


def test_build_time_validation():
    with pytest.raises(ValueError, match="empty"):
        constant([])
    with pytest.raises(ValueError, match="finite"):
        constant([1.0, float("nan")])
    with pytest.raises(TypeError):
        constant(3.0)


def test_length_mismatch_at_init_and_trace_time():
    aggregator = constant([1.0, 2.0])
    with pytest.raises(ValueError, match="2 weights .* 3 tasks"):
        aggregator.init(3)
    with pytest.raises(ValueError, match="2 weights .* 3 tasks"):
        jax.jit(aggregator.weigh)(inputs_for(3), ())


def test_equal_weights_are_a_uniform_weighting():
    assert isinstance(constant([1.0, 2.0]), LossWeighting)
    aggregator = constant([0.5, 0.5, 0.5])
    assert isinstance(aggregator, UniformWeighting)
    assert aggregator.weight(3) == 0.5
    with pytest.raises(ValueError):
        aggregator.weight(2)
    with pytest.raises(ValueError):
        aggregator.init(2)
