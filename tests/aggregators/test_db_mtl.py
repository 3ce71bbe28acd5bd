"""DB-MTL (Lin et al. 2023): EMA of log-loss gradients, every task rescaled to the largest
EMA norm — the buffer trajectory against NumPy."""

from __future__ import annotations

import numpy as np
import pytest

from mtl_jax.aggregators.db_mtl import db_mtl
from tests.aggregators.jacobian_harness import from_pytree, run_combine
from tests.aggregators.jacobians import jacobian_cases, random_jacobian, with_parallel_rows, with_zero_row

NUM_STEPS = 4


@pytest.mark.parametrize(("make", "num_tasks"), jacobian_cases([random_jacobian, with_zero_row, with_parallel_rows], [1, 3, 5]))
@pytest.mark.parametrize("beta,beta_sigma", [(0.9, 0.0), (0.5, 0.5)])
def test_trajectory_matches_reference(rng, make, num_tasks, beta, beta_sigma):
    aggregator, state = db_mtl(beta, beta_sigma), None
    buffer = np.zeros((num_tasks, 50))
    for k in range(1, NUM_STEPS + 1):
        jac, losses = make(rng, num_tasks), rng.uniform(0.1, 4.0, num_tasks)
        h = jac / (losses[:, None] + 1e-8)
        buffer = h + beta / k**beta_sigma * (buffer - h)
        norms = np.linalg.norm(buffer, axis=1)
        alpha = norms.max() / (norms + 1e-8)
        d, weights, state = run_combine(aggregator, jac, losses, state=state)
        np.testing.assert_allclose(from_pytree(state.buffer), buffer, rtol=1e-5, atol=1e-6 * np.abs(buffer).max())
        np.testing.assert_allclose(weights, alpha, rtol=1e-5)
        np.testing.assert_allclose(d, alpha @ buffer, rtol=1e-4, atol=1e-5 * np.abs(alpha @ buffer).max())


def test_every_task_contributes_the_largest_norm(rng):
    jac = random_jacobian(rng, 3)
    d, weights, state = run_combine(db_mtl(0.0), jac, np.array([0.5, 1.0, 2.0]))
    contributions = weights[:, None] * from_pytree(state.buffer)
    norms = np.linalg.norm(contributions, axis=1)
    np.testing.assert_allclose(norms, norms.max(), rtol=1e-5)
    np.testing.assert_allclose(d, contributions.sum(axis=0), rtol=1e-4, atol=1e-6)
    assert db_mtl().modes == ("full",)
