"""FairGrad against a float64 root of G w = w^{-1/α} (SciPy hybrid Powell)."""

from __future__ import annotations

import numpy as np
import pytest

from mtl_jax.aggregators.fairgrad import fairgrad
from mtl_jax.aggregators.nashmtl import nash_mtl
from tests.aggregators.references import (
    CASES,
    inverse_power_reference,
    make_jacobian,
    run_jitted,
)

AGGS = {1.0: fairgrad(), 2.0: fairgrad(alpha=2.0), 0.5: fairgrad(alpha=0.5)}
NASH = nash_mtl()
SOLVABLE = [(n, t) for n, t in CASES if n != "conflicting"]  # see test_nashmtl.py
SOLVABLE_IDS = [f"{n}-T{t}" for n, t in SOLVABLE]
W_RTOL = 1e-4  # as in test_nashmtl.py
OPT_TOL = 5e-5


@pytest.mark.parametrize("alpha", [1.0, 2.0, 0.5])
@pytest.mark.parametrize(("name", "num_tasks"), SOLVABLE, ids=SOLVABLE_IDS)
def test_matches_reference(rng, name, num_tasks, alpha):
    jac = make_jacobian(rng, name, num_tasks)
    gram = jac @ jac.T
    w = run_jitted(AGGS[alpha], gram)
    w_ref = inverse_power_reference(gram, alpha)
    assert np.linalg.norm(w - w_ref) <= W_RTOL * np.linalg.norm(w_ref), (w, w_ref)
    active = np.diag(gram) > 0
    residual = (gram @ w)[active] * w[active] ** (1 / alpha) - 1
    assert np.max(np.abs(residual)) <= OPT_TOL


def test_alpha_one_is_nash_mtl(rng):
    jac = make_jacobian(rng, "random", 5)
    gram = jac @ jac.T
    np.testing.assert_allclose(run_jitted(AGGS[1.0], gram), run_jitted(NASH, gram), rtol=1e-6)


def test_pareto_stationary_stays_finite(rng):
    jac = make_jacobian(rng, "conflicting", 5)
    for agg in AGGS.values():
        w = run_jitted(agg, jac @ jac.T)
        assert np.all(w > 0)


def test_rejects_non_positive_alpha():
    with pytest.raises(ValueError):
        fairgrad(alpha=0.0)
