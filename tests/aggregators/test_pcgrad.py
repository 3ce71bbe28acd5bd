"""PCGrad against a float64 NumPy transcription of Yu et al. 2020, Algorithm 1."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtl_jax.aggregators import get_aggregator, gramian, pcgrad_weights, random_visit_orders
from mtl_jax.aggregators.kinds import WeightingInputs
from tests.aggregators.jacobians import (
    aligned_jacobian,
    conflicting_jacobian,
    random_jacobian,
    with_parallel_rows,
    with_zero_row,
)


def reference_pcgrad(jac: np.ndarray, orders: np.ndarray) -> np.ndarray:
    """Algorithm 1 on explicit vectors: g_i^PC -= (g_i^PC·g_j)/‖g_j‖² g_j if negative; Σ_i g_i^PC."""
    num_tasks = jac.shape[0]
    total = np.zeros(jac.shape[1])
    for i in range(num_tasks):
        projected = jac[i].copy()
        for j in orders[i]:
            if j == i:
                continue
            inner = projected @ jac[j]
            if inner < 0:
                projected -= inner / (jac[j] @ jac[j]) * jac[j]
        total += projected
    return total


def jax_pcgrad_float64(jac: np.ndarray, orders: np.ndarray) -> np.ndarray:
    """The Gramian form, in float64 so that it can be compared to the reference exactly."""
    with jax.enable_x64(True):
        gram = jnp.asarray(jac @ jac.T, jnp.float64)
        weights = jax.jit(pcgrad_weights)(gram, jnp.asarray(orders))
        return np.asarray(weights) @ jac


def jax_pcgrad_float32(jac: np.ndarray, key: jax.Array) -> tuple[np.ndarray, np.ndarray]:
    """The registered aggregator as the step runs it (float32, orders from the key)."""
    aggregator = get_aggregator("pcgrad")
    jac32 = jnp.asarray(jac, jnp.float32)
    inputs = WeightingInputs(gramian(jac32), jnp.zeros(jac.shape[0]), key, jnp.array(0))
    weights, _ = jax.jit(aggregator.weigh)(inputs, aggregator.init(jac.shape[0]))
    orders = np.asarray(random_visit_orders(key, jac.shape[0]))
    return np.asarray(weights, np.float64) @ jac, orders


def random_orders(rng: np.random.Generator, num_tasks: int) -> np.ndarray:
    return np.stack([rng.permutation(num_tasks) for _ in range(num_tasks)])


@pytest.mark.parametrize("make", [random_jacobian, conflicting_jacobian, with_zero_row])
def test_two_tasks_is_order_free_and_exact(rng, make):
    jac = make(rng, 2)
    expected = reference_pcgrad(jac, np.array([[0, 1], [0, 1]]))
    for orders in ([[0, 1], [0, 1]], [[1, 0], [1, 0]], [[0, 1], [1, 0]]):
        np.testing.assert_allclose(jax_pcgrad_float64(jac, np.array(orders)), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("num_tasks", [3, 4, 5, 6, 7, 8])
@pytest.mark.parametrize(
    "make", [random_jacobian, conflicting_jacobian, with_zero_row, with_parallel_rows]
)
def test_matches_reference_given_the_same_orders(rng, num_tasks, make):
    jac = make(rng, num_tasks)
    orders = random_orders(rng, num_tasks)
    np.testing.assert_allclose(
        jax_pcgrad_float64(jac, orders), reference_pcgrad(jac, orders), rtol=1e-10, atol=1e-10
    )


@pytest.mark.parametrize("num_tasks", [2, 3, 5, 8])
def test_float32_aggregator_matches_reference_with_its_own_orders(rng, num_tasks):
    jac = random_jacobian(rng, num_tasks)
    key = jax.random.key(int(rng.integers(2**31)))
    got, orders = jax_pcgrad_float32(jac, key)
    expected = reference_pcgrad(jac, orders)
    np.testing.assert_allclose(got, expected, rtol=2e-4, atol=2e-4 * np.abs(expected).max())


@pytest.mark.parametrize("num_tasks", [2, 3, 8])
def test_without_conflict_the_update_is_the_plain_sum(rng, num_tasks):
    jac = aligned_jacobian(rng, num_tasks)
    orders = random_orders(rng, num_tasks)
    np.testing.assert_allclose(jax_pcgrad_float64(jac, orders), jac.sum(0), rtol=1e-12)


@pytest.mark.parametrize("num_tasks", [3, 5, 8])
def test_with_every_pair_conflicting_the_update_differs_from_the_sum(rng, num_tasks):
    jac = conflicting_jacobian(rng, num_tasks)
    orders = random_orders(rng, num_tasks)
    got = jax_pcgrad_float64(jac, orders)
    np.testing.assert_allclose(got, reference_pcgrad(jac, orders), rtol=1e-10, atol=1e-10)
    assert np.linalg.norm(got - jac.sum(0)) > 1e-3 * np.linalg.norm(jac)


def test_two_conflicting_tasks_get_a_non_negative_inner_product_with_both(rng):
    checked = 0
    while checked < 20:
        jac = random_jacobian(rng, 2, dim=int(rng.integers(2, 40)))
        if jac[0] @ jac[1] >= 0:
            continue
        checked += 1
        update, _ = jax_pcgrad_float32(jac, jax.random.key(int(rng.integers(2**31))))
        assert np.linalg.norm(update) > 0
        scale = np.linalg.norm(update) * np.linalg.norm(jac, axis=1)
        assert np.all(jac @ update >= -1e-5 * scale)


def test_orders_are_permutations_fresh_per_task_and_deterministic_per_key():
    key = jax.random.key(7)
    orders = np.asarray(random_visit_orders(key, 6))
    assert all(sorted(row) == list(range(6)) for row in orders)
    assert len({tuple(row) for row in orders}) > 1
    np.testing.assert_array_equal(orders, np.asarray(random_visit_orders(key, 6)))
    assert not np.array_equal(orders, np.asarray(random_visit_orders(jax.random.key(8), 6)))


def test_every_visiting_order_of_three_tasks_is_drawn():
    draws = {
        tuple(np.asarray(random_visit_orders(jax.random.key(seed), 3))[0])
        for seed in range(200)
    }
    assert draws == set(itertools.permutations(range(3)))
