"""PBI (Zhang & Li 2007, MOEA/D): the weights are the gradient of d1 + θ d2 with respect to
the losses, checked against float64 central differences of that scalarisation; the running
ideal point is the per-task minimum of the losses seen so far."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtl_jax.aggregators.kinds import WeightingInputs
from mtl_jax.aggregators.pbi import pbi, pbi_weights


def scalarisation(losses: np.ndarray, ray: np.ndarray, ideal: np.ndarray, theta: float) -> float:
    unit = ray / np.linalg.norm(ray)
    d1 = abs((losses - ideal) @ unit)
    d2 = np.linalg.norm(losses - (ideal + d1 * unit))
    return float(d1 + theta * d2)


def central_difference(f, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    return np.array([(f(x + h * e) - f(x - h * e)) / (2 * h) for e in np.eye(len(x))])


def weigh_steps(aggregator, losses: list[np.ndarray]):
    state = aggregator.init(len(losses[0]))
    jitted = jax.jit(aggregator.weigh)
    out = []
    for step, step_losses in enumerate(losses):
        inputs = WeightingInputs(None, jnp.asarray(step_losses, jnp.float32), jax.random.key(step), jnp.asarray(step))
        weights, state = jitted(inputs, state)
        assert weights.shape == step_losses.shape and weights.dtype == jnp.float32
        out.append((np.asarray(weights, np.float64), jax.device_get(state)))
    return out


def fresh_losses(rng: np.random.Generator, num_tasks: int) -> np.ndarray:
    return np.exp(rng.uniform(-2.0, 2.0, num_tasks))


@pytest.mark.parametrize("num_tasks", [2, 3, 7])
@pytest.mark.parametrize("theta", [0.0, 5.0])
def test_weights_are_the_gradient_of_the_scalarisation(rng, num_tasks, theta):
    losses = fresh_losses(rng, num_tasks)
    ray = rng.dirichlet(np.ones(num_tasks))
    [(w, _)] = weigh_steps(pbi(theta=theta, preference=list(ray)), [losses])
    expected = central_difference(lambda x: scalarisation(x, ray, np.zeros(num_tasks), theta), losses)
    np.testing.assert_allclose(w, expected, rtol=2e-5, atol=2e-5 * np.abs(expected).max())


def test_losses_below_the_ideal_point_flip_the_sign_along_the_ray(rng):
    """p = (L − z*)ᵀu < 0 (only reachable with a fixed ideal above some loss): the |·| branch."""
    ray = rng.dirichlet(np.ones(3))
    ideal = np.full(3, 10.0)
    losses = fresh_losses(rng, 3)
    with jax.enable_x64():
        w = np.asarray(pbi_weights(jnp.asarray(losses), jnp.asarray(ray), jnp.asarray(ideal), 5.0))
    expected = central_difference(lambda x: scalarisation(x, ray, ideal, 5.0), losses)
    np.testing.assert_allclose(w, expected, rtol=1e-7, atol=1e-7)


def test_running_min_ideal_point(rng):
    losses = [fresh_losses(rng, 4) for _ in range(4)]
    ray = rng.dirichlet(np.ones(4))
    results = weigh_steps(pbi(preference=list(ray), ideal="running_min"), losses)
    # step 0: L = z*, so d1 = d2 = 0 and w = u (the subgradient taken at the ray's origin)
    np.testing.assert_allclose(results[0][0], ray / np.linalg.norm(ray), rtol=1e-6)
    for k, (w, state) in enumerate(results):
        ideal = np.min(losses[: k + 1], axis=0)
        np.testing.assert_allclose(state.ideal, ideal, rtol=1e-6)
        if k:
            expected = central_difference(lambda x: scalarisation(x, ray, ideal, 5.0), losses[k], h=1e-7)
            # central differences straddle no kink: each task's loss is ≥ its ideal value
            np.testing.assert_allclose(w, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_degenerate_losses(rng):
    ray = rng.dirichlet(np.ones(3))
    unit = ray / np.linalg.norm(ray)
    aggregator = pbi(preference=list(ray))
    # on the ray d2 = 0: only the distance along it counts
    [(on_ray, _)] = weigh_steps(aggregator, [3.0 * ray])
    np.testing.assert_allclose(on_ray, unit, rtol=1e-5, atol=1e-6)
    # zero losses sit at the ideal point
    [(zero, _)] = weigh_steps(aggregator, [np.zeros(3)])
    np.testing.assert_allclose(zero, unit, rtol=1e-6)
    # one task: g = |L|, w = 1
    [(single, _)] = weigh_steps(pbi(), [fresh_losses(rng, 1)])
    np.testing.assert_allclose(single, [1.0], rtol=1e-6)
    # the d2 part is a unit vector orthogonal to the ray, scaled by θ
    losses = fresh_losses(rng, 3)
    [(w, _)] = weigh_steps(aggregator, [losses])
    np.testing.assert_allclose((w - unit) @ unit, 0.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(w - unit), 5.0, rtol=1e-5)


@pytest.mark.parametrize(
    "options,match",
    [
        ({"theta": -1.0}, "theta"),
        ({"theta": float("nan")}, "theta"),
        ({"preference": [0.0, 0.0]}, "not all zero"),
        ({"preference": [1, True]}, "numbers"),
        ({"ideal": "nadir"}, "'zero', 'running_min'"),
    ],
)
def test_bad_options_are_refused(options, match):
    with pytest.raises(ValueError, match=match):
        pbi(**options)


def test_preference_of_the_wrong_length_is_refused_at_init():
    with pytest.raises(ValueError, match="3 numbers for 2 tasks"):
        pbi(preference=[1.0, 2.0, 3.0]).init(2)


def test_registry_turns_bad_options_into_one_config_error():
    from mtl_jax.aggregators import get_aggregator
    from mtl_jax.errors import ConfigError

    assert get_aggregator("pbi", theta=2.0, ideal="running_min").name == "pbi"
    with pytest.raises(ConfigError, match=r"aggregator 'pbi' rejects options .*ideal"):
        get_aggregator("pbi", ideal="nadir")
