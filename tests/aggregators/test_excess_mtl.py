"""ExcessMTL (He et al. 2024): AdaGrad-diagonal excess-risk estimates, normalised by the first
step's, drive exponentiated-gradient weights on Σw = T — the trajectory against NumPy."""

from __future__ import annotations

import numpy as np
import pytest

from mtl_jax.aggregators.excess_mtl import excess_mtl
from tests.aggregators.jacobian_harness import from_pytree, run_combine
from tests.aggregators.jacobians import jacobian_cases, random_jacobian, with_parallel_rows, with_zero_row

NUM_STEPS = 4
STEP_SIZE = 0.5  # larger than the default 1e-2, so the weights visibly move in 4 steps


def reference_trajectory(jacobians: list[np.ndarray], step_size: float):
    """(weights per step, final Σg²) from the paper's update with explicit loops."""
    num_tasks, dim = jacobians[0].shape
    squares, weights, initial, out = np.zeros((num_tasks, dim)), np.ones(num_tasks), None, []
    for jac in jacobians:
        squares = squares + jac**2
        risks = np.array([np.sum(jac[t] ** 2 / np.sqrt(squares[t] + 1e-7)) for t in range(num_tasks)])
        if initial is None:
            initial = risks
        else:
            ratio = np.array([r / i if i > 0 else 0.0 for r, i in zip(risks, initial)])
            weights = weights * np.exp(step_size * ratio)
            weights = num_tasks * weights / weights.sum()
        out.append(weights.copy())
    return out, squares


@pytest.mark.parametrize(("make", "num_tasks"), jacobian_cases([random_jacobian, with_zero_row, with_parallel_rows], [1, 2, 5]))
def test_trajectory_matches_reference(rng, make, num_tasks):
    jacobians = [make(rng, num_tasks) for _ in range(NUM_STEPS)]
    expected, squares = reference_trajectory(jacobians, STEP_SIZE)
    aggregator, state = excess_mtl(STEP_SIZE), None
    for jac, weights_ref in zip(jacobians, expected):
        d, weights, state = run_combine(aggregator, jac, state=state)
        np.testing.assert_allclose(weights, weights_ref, rtol=2e-5)
        np.testing.assert_allclose(d, weights_ref @ jac, rtol=1e-4, atol=1e-5 * np.abs(jac).max())
    np.testing.assert_allclose(from_pytree(state.squared_sum), squares, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(state.weights).sum(), num_tasks, rtol=1e-6)


def test_first_step_uses_unit_weights_and_a_zero_task_keeps_ratio_zero(rng):
    jac = with_zero_row(rng, 3)
    d, weights, state = run_combine(excess_mtl(), jac)
    np.testing.assert_array_equal(weights, np.ones(3))
    np.testing.assert_allclose(d, jac.sum(axis=0), rtol=1e-5)
    _, weights2, _ = run_combine(excess_mtl(), with_zero_row(rng, 3), state=state)
    assert weights2[0] < weights2[1:].min()  # the gradient-free task's weight only shrinks
    assert excess_mtl().modes == ("full",)
