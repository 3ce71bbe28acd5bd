"""DualProj against a float64 reference: argmin_{v ≥ 1/T} vᵀGv (KKT enumeration)."""

from __future__ import annotations

import numpy as np
import pytest

from mtl_jax.aggregators.dualproj import dualproj
from tests.aggregators.references import (
    assert_in_dual_cone,
    CASE_IDS,
    CASES,
    lower_bounded_qp,
    make_jacobian,
    run_jitted,
    scale_of,
)

AGG = dualproj()
D_RTOL = 1e-4  # as in test_upgrad.py
CONE_TOL = 1e-5


@pytest.mark.parametrize(("name", "num_tasks"), CASES, ids=CASE_IDS)
def test_matches_reference(rng, name, num_tasks):
    jac = make_jacobian(rng, name, num_tasks)
    gram = jac @ jac.T
    w = run_jitted(AGG, gram)
    w_ref = lower_bounded_qp(gram, np.full(num_tasks, 1.0 / num_tasks))
    err = np.linalg.norm(jac.T @ (w - w_ref))
    assert err <= D_RTOL * scale_of(jac), err


@pytest.mark.parametrize(("name", "num_tasks"), CASES, ids=CASE_IDS)
def test_result_in_dual_cone(rng, name, num_tasks):
    jac = make_jacobian(rng, name, num_tasks)
    gram = jac @ jac.T
    w = run_jitted(AGG, gram)
    assert_in_dual_cone(jac, w, CONE_TOL)


def test_aligned_is_mean(rng):
    jac = make_jacobian(rng, "aligned", 5)
    w = run_jitted(AGG, jac @ jac.T)
    np.testing.assert_allclose(w, np.full(5, 0.2), rtol=1e-5)
