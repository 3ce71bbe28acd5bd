"""CAGrad against a float64 SLSQP solution of its dual, plus primal optimality: d is feasible
(‖d − g0‖ ≤ c‖g0‖) and attains the dual optimum, min_i ⟨g_i, d⟩ = F* (strong duality)."""

from __future__ import annotations

import numpy as np
import pytest

from mtl_jax.aggregators.cagrad import cagrad
from tests.aggregators.references import (
    CASE_IDS,
    CASES,
    cagrad_dual_reference,
    make_jacobian,
    run_jitted,
    scale_of,
)

AGG = cagrad()  # c = 0.4
AGG_C09 = cagrad(c=0.9)
AGG_C0 = cagrad(c=0.0)
# Value of the primal objective vs F*: weak duality gives min_i ⟨g_i, d⟩ ≤ F* for every
# feasible d, so ≥ F* − tol certifies optimality. Units of max_i ‖g_i‖²; the float32 bisection
# and inner solves reach ~1e-6, SLSQP's F* is accurate to ~1e-9.
VALUE_TOL = 1e-5
# d vs the SLSQP d: looser (5e-4 of max_i ‖g_i‖) because the dual's minimiser w is only
# determined to ~sqrt(SLSQP tolerance) in flat directions and d depends on g_w/‖g_w‖.
D_RTOL = 5e-4


def primal(jac: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d = jac.T @ w
    return d, jac.mean(axis=0)


@pytest.mark.parametrize("c", [0.4, 0.9])
@pytest.mark.parametrize(("name", "num_tasks"), CASES, ids=CASE_IDS)
def test_primal_optimality(rng, name, num_tasks, c):
    jac = make_jacobian(rng, name, num_tasks)
    gram = jac @ jac.T
    w = run_jitted(AGG if c == 0.4 else AGG_C09, gram)
    d, g0 = primal(jac, w)
    radius = c * np.linalg.norm(g0)
    scale = scale_of(jac)
    assert np.linalg.norm(d - g0) <= radius + 1e-5 * scale
    f_star, _ = cagrad_dual_reference(jac, c)
    assert np.min(jac @ d) >= f_star - VALUE_TOL * scale**2, (np.min(jac @ d), f_star)


@pytest.mark.parametrize(("name", "num_tasks"), CASES, ids=CASE_IDS)
def test_matches_reference(rng, name, num_tasks):
    jac = make_jacobian(rng, name, num_tasks)
    gram = jac @ jac.T
    _, d_ref = cagrad_dual_reference(jac, 0.4)
    d = jac.T @ run_jitted(AGG, gram)
    assert np.linalg.norm(d - d_ref) <= D_RTOL * scale_of(jac)


def test_c_zero_is_mean(rng):
    jac = make_jacobian(rng, "random", 5)
    np.testing.assert_allclose(run_jitted(AGG_C0, jac @ jac.T), np.full(5, 0.2), rtol=1e-6)


def test_aligned_single_task(rng):
    """T = 1: d = g + c‖g‖ g/‖g‖ = (1 + c) g."""
    jac = make_jacobian(rng, "aligned", 1)
    np.testing.assert_allclose(run_jitted(AGG, jac @ jac.T), [1.4], rtol=1e-5)


def test_rescale_divides_by_one_plus_c_squared(rng):
    jac = make_jacobian(rng, "random", 3)
    gram = jac @ jac.T
    np.testing.assert_allclose(
        run_jitted(cagrad(rescale=True), gram), run_jitted(AGG, gram) / 1.16, rtol=1e-5
    )
