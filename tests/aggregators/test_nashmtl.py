"""Nash-MTL against a float64 root of Gα = 1/α (SciPy hybrid Powell), and its optimality
condition α_i (Gα)_i = 1."""

from __future__ import annotations

import numpy as np
import pytest

from mtl_jax.aggregators.nashmtl import nash_mtl
from tests.aggregators.references import (
    CASES,
    inverse_power_reference,
    make_jacobian,
    run_jitted,
)

AGG = nash_mtl()
# "conflicting" rows have 0 in their convex hull (Pareto-stationary): Gα = 1/α has no
# solution there, so those cases are tested separately.
SOLVABLE = [(n, t) for n, t in CASES if n != "conflicting"]
SOLVABLE_IDS = [f"{n}-T{t}" for n, t in SOLVABLE]
# α is unique. The solver stops at max_i |α_i(Gα)_i − 1| ≤ 64·eps(float32) ≈ 7.6e-6 and its
# ridge is a 1e-6 relative backward error, so with cond(G) ≲ 1e2 here (parallel rows make G
# singular, but α stays well determined: the objective is strictly convex) the observed
# relative errors of α are ≤ 1e-5 over 40 seeds; 1e-4 leaves a 10× margin.
W_RTOL = 1e-4
# α_i(Gα)_i = 1, evaluated in float64 with the returned float32 α (observed ≤ 1e-5).
OPT_TOL = 5e-5


@pytest.mark.parametrize(("name", "num_tasks"), SOLVABLE, ids=SOLVABLE_IDS)
def test_matches_reference(rng, name, num_tasks):
    jac = make_jacobian(rng, name, num_tasks)
    gram = jac @ jac.T
    w = run_jitted(AGG, gram)
    w_ref = inverse_power_reference(gram, 1.0)
    assert np.linalg.norm(w - w_ref) <= W_RTOL * np.linalg.norm(w_ref), (w, w_ref)


@pytest.mark.parametrize(("name", "num_tasks"), SOLVABLE, ids=SOLVABLE_IDS)
def test_optimality_condition(rng, name, num_tasks):
    """α_i ⟨g_i, d⟩ = 1 for every task with a gradient; a zero-gradient task gets α = 0."""
    jac = make_jacobian(rng, name, num_tasks)
    gram = jac @ jac.T
    w = run_jitted(AGG, gram)
    active = np.diag(gram) > 0
    np.testing.assert_allclose((w * (gram @ w))[active], 1.0, atol=OPT_TOL)
    assert np.all(w[active] > 0) and np.all(w[~active] == 0)
    # ‖d‖² = αᵀGα = number of tasks with a gradient.
    np.testing.assert_allclose(w @ gram @ w, active.sum(), rtol=OPT_TOL)


@pytest.mark.parametrize("num_tasks", [2, 3, 5, 8])
def test_pareto_stationary_stays_finite(rng, num_tasks):
    """No solution exists; the ridge keeps α finite and positive and d small."""
    jac = make_jacobian(rng, "conflicting", num_tasks)
    gram = jac @ jac.T
    w = run_jitted(AGG, gram)
    assert np.all(w > 0) and np.all(w < 1e5 / np.sqrt(np.min(np.diag(gram))))


def test_two_orthogonal_tasks_closed_form(rng):
    """G = diag(a, b) ⇒ α = (a^{-1/2}, b^{-1/2})."""
    q, _ = np.linalg.qr(rng.standard_normal((50, 2)))
    jac = (q * np.array([0.7, 3.0])).T
    w = run_jitted(AGG, jac @ jac.T)
    np.testing.assert_allclose(w, [1 / 0.7, 1 / 3.0], rtol=1e-5)
