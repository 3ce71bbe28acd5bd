"""COSMOS (Ruchte & Grabocka 2021): the weights are the gradient of rᵀL − λ cos(r, L) with
respect to the losses, checked against float64 central differences of that objective."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtl_jax.aggregators.cosmos import cosmos
from mtl_jax.aggregators.kinds import WeightingInputs


def objective(losses: np.ndarray, ray: np.ndarray, penalty: float) -> float:
    cosine = ray @ losses / (np.linalg.norm(ray) * np.linalg.norm(losses))
    return float(ray @ losses - penalty * cosine)


def central_difference(f, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    return np.array([(f(x + h * e) - f(x - h * e)) / (2 * h) for e in np.eye(len(x))])


def weigh(aggregator, losses: np.ndarray, key: int = 0) -> np.ndarray:
    inputs = WeightingInputs(None, jnp.asarray(losses, jnp.float32), jax.random.key(key), jnp.asarray(0))
    weights, state = jax.jit(aggregator.weigh)(inputs, aggregator.init(len(losses)))
    assert weights.shape == losses.shape and weights.dtype == jnp.float32
    return np.asarray(weights, np.float64)


def fresh_losses(rng: np.random.Generator, num_tasks: int) -> np.ndarray:
    return np.exp(rng.uniform(-2.0, 2.0, num_tasks))


@pytest.mark.parametrize("num_tasks", [2, 3, 7])
@pytest.mark.parametrize("penalty", [0.0, 1.0, 8.0])
def test_weights_are_the_gradient_of_the_objective(rng, num_tasks, penalty):
    losses = fresh_losses(rng, num_tasks)
    ray = rng.dirichlet(np.ones(num_tasks))
    w = weigh(cosmos(penalty=penalty, preference=list(ray)), losses)
    expected = central_difference(lambda x: objective(x, ray, penalty), losses)
    np.testing.assert_allclose(w, expected, rtol=2e-5, atol=2e-5 * np.abs(expected).max())
    # the penalty's gradient is orthogonal to L (cos is scale-invariant in L)
    np.testing.assert_allclose((w - ray) @ losses, 0.0, atol=1e-5 * np.abs(w).max() * np.linalg.norm(losses))


def test_default_ray_is_uniform_and_preference_is_normalised(rng):
    losses = fresh_losses(rng, 4)
    uniform = np.full(4, 0.25)
    expected = central_difference(lambda x: objective(x, uniform, 1.0), losses)
    np.testing.assert_allclose(weigh(cosmos(), losses), expected, rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(weigh(cosmos(preference=[3, 3, 3, 3]), losses), expected, rtol=2e-5, atol=1e-6)


def test_degenerate_losses_leave_the_linear_part(rng):
    ray = rng.dirichlet(np.ones(3))
    aggregator = cosmos(penalty=2.0, preference=list(ray))
    # zero losses: the cosine is undefined, w = r
    np.testing.assert_allclose(weigh(aggregator, np.zeros(3)), ray, rtol=1e-6)
    # losses on the ray: the cosine is at its maximum, its gradient vanishes
    np.testing.assert_allclose(weigh(aggregator, 4.2 * ray), ray, rtol=1e-5, atol=1e-6)
    # one task: cos(r, L) = 1 for any L > 0
    np.testing.assert_allclose(weigh(cosmos(penalty=2.0), fresh_losses(rng, 1)), [1.0], rtol=1e-6)


def test_sampled_ray_is_a_deterministic_simplex_point(rng):
    losses = fresh_losses(rng, 5)
    linear = cosmos(penalty=0.0, dirichlet_alpha=1.2)  # w = r exactly
    first, again, other = weigh(linear, losses, 3), weigh(linear, losses, 3), weigh(linear, losses, 4)
    np.testing.assert_array_equal(first, again)
    assert np.all(first > 0) and abs(first.sum() - 1) < 1e-6
    assert not np.allclose(first, other)
    # with the same key the penalised weights follow the same ray
    penalised = weigh(cosmos(penalty=1.5, dirichlet_alpha=1.2), losses, 3)
    expected = central_difference(lambda x: objective(x, first, 1.5), losses)
    np.testing.assert_allclose(penalised, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "options,match",
    [
        ({"penalty": -1.0}, "penalty"),
        ({"penalty": float("inf")}, "penalty"),
        ({"preference": [0.0, 0.0]}, "not all zero"),
        ({"preference": [1.0, -0.5]}, "non-negative"),
        ({"preference": "uniform"}, "list of numbers"),
        ({"dirichlet_alpha": 0.0}, "dirichlet_alpha"),
        ({"dirichlet_alpha": 1.0, "preference": [1.0, 1.0]}, "not both"),
    ],
)
def test_bad_options_are_refused(options, match):
    with pytest.raises(ValueError, match=match):
        cosmos(**options)


def test_preference_of_the_wrong_length_is_refused_at_init():
    with pytest.raises(ValueError, match="2 numbers for 3 tasks"):
        cosmos(preference=[1.0, 2.0]).init(3)


def test_registry_turns_bad_options_into_one_config_error():
    from mtl_jax.aggregators import get_aggregator
    from mtl_jax.errors import ConfigError

    assert get_aggregator("cosmos", penalty=2.0, dirichlet_alpha=1.2).name == "cosmos"
    with pytest.raises(ConfigError, match=r"aggregator 'cosmos' rejects options .*penalty"):
        get_aggregator("cosmos", penalty=-1.0)
