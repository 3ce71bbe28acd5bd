"""SDMGrad (deterministic) against a float64 reference written on the unshifted problem:
w* = argmin_{w ∈ simplex} ½ wᵀGw + (λ/T) wᵀG1 (KKT enumeration), weights (w* + λ/T)/(1+λ)."""

from __future__ import annotations

import numpy as np
import pytest

from mtl_jax.aggregators.mgda import mgda
from mtl_jax.aggregators.sdmgrad import sdmgrad
from tests.aggregators.references import (
    CASE_IDS,
    CASES,
    make_jacobian,
    run_jitted,
    scale_of,
    simplex_qp,
)

AGG = sdmgrad()  # λ = 0.3
AGG_LAM0 = sdmgrad(lam=0.0)
AGG_LAM5 = sdmgrad(lam=5.0)
MGDA = mgda()
D_RTOL = 1e-4  # d vs float64, absolute in units of max_i ‖g_i‖ (as for MGDA)


def reference(gram: np.ndarray, lam: float) -> np.ndarray:
    num = gram.shape[0]
    mean = np.full(num, 1.0 / num)
    w_star = simplex_qp(gram, lam * gram @ mean)
    return (w_star + lam * mean) / (1 + lam)


@pytest.mark.parametrize(("name", "num_tasks"), CASES, ids=CASE_IDS)
def test_matches_reference(rng, name, num_tasks):
    jac = make_jacobian(rng, name, num_tasks)
    gram = jac @ jac.T
    w = run_jitted(AGG, gram)
    assert abs(w.sum() - 1) < 1e-5 and np.all(w >= 0.3 / num_tasks / 1.3 - 1e-6)
    err = np.linalg.norm(jac.T @ (w - reference(gram, 0.3)))
    assert err <= D_RTOL * scale_of(jac), err


@pytest.mark.parametrize("name", ["random", "conflicting", "zero_row"])
def test_large_lambda_matches_reference(rng, name):
    jac = make_jacobian(rng, name, 5)
    gram = jac @ jac.T
    err = np.linalg.norm(jac.T @ (run_jitted(AGG_LAM5, gram) - reference(gram, 5.0)))
    assert err <= D_RTOL * scale_of(jac)


@pytest.mark.parametrize("name", ["random", "conflicting", "parallel"])
def test_lambda_zero_is_mgda(rng, name):
    jac = make_jacobian(rng, name, 5)
    gram = jac @ jac.T
    err = np.linalg.norm(jac.T @ (run_jitted(AGG_LAM0, gram) - run_jitted(MGDA, gram)))
    assert err <= D_RTOL * scale_of(jac)
