"""MoDo (Chen et al. 2023), single-batch form: λ ← Π_Δ(λ − γ(G + ρI)λ), d = Jᵀλ — several
steps against a NumPy reference with its own simplex projection, on every Jacobian case."""

from __future__ import annotations

import numpy as np
import pytest

from mtl_jax.aggregators.modo import modo
from tests.aggregators.test_moco import project_simplex_reference
from tests.aggregators.weighting_harness import CASE_IDS, CASES, assert_update_close, run

NUM_STEPS = 3


@pytest.mark.parametrize(("make", "num_tasks"), CASES, ids=CASE_IDS)
@pytest.mark.parametrize("gamma,rho", [(1e-3, 0.1), (0.2, 0.0)])
def test_trajectory(rng, make, num_tasks, gamma, rho):
    aggregator = modo(gamma, rho)
    lam, state = np.full(num_tasks, 1.0 / num_tasks), None
    for _ in range(NUM_STEPS):
        jac = make(rng, num_tasks)
        lam = project_simplex_reference(lam - gamma * (jac @ jac.T @ lam + rho * lam))
        weights, state = run(aggregator, jac, x64=False, state=state)
        np.testing.assert_allclose(weights, lam, atol=2e-6 * max(1.0, gamma * np.abs(jac @ jac.T).max()))
        np.testing.assert_allclose(state.weights, weights, atol=1e-7)
        assert_update_close(weights @ jac, lam @ jac, jac, 1e-5)


def test_large_steps_reach_the_min_norm_point(rng):
    """With ρ = 0 the λ iteration is projected gradient descent on ½‖Jᵀλ‖²: MGDA's optimum."""
    jac = np.array([[1.0, 0.0], [0.0, 2.0]])
    state, aggregator = None, modo(0.1, 0.0)  # one aggregator: its weigh compiles once
    for _ in range(300):
        weights, state = run(aggregator, jac, x64=True, state=state)
    np.testing.assert_allclose(weights, [0.8, 0.2], atol=1e-6)  # min over λ of λ1² + 4λ2²
