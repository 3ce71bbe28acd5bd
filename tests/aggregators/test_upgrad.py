"""UPGrad against a float64 reference: mean over i of argmin_{v ≥ e_i} vᵀGv (KKT enumeration)."""

from __future__ import annotations

import numpy as np
import pytest

from mtl_jax.aggregators.upgrad import upgrad
from tests.aggregators.references import (
    assert_in_dual_cone,
    CASE_IDS,
    CASES,
    lower_bounded_qp,
    make_jacobian,
    run_jitted,
    scale_of,
)

AGG = upgrad()
# float32 vs float64: d agrees to 1e-4 of max_i ‖g_i‖ (projections are well conditioned:
# the dual-cone projection is 1-Lipschitz in the projected vector).
D_RTOL = 1e-4
# ⟨d, g_i⟩ ≥ −1e-5 · max_i ‖g_i‖² (float32 round-off on an exact 0 at active constraints).
CONE_TOL = 1e-5


def reference(gram: np.ndarray) -> np.ndarray:
    num = gram.shape[0]
    return np.mean([lower_bounded_qp(gram, np.eye(num)[i]) for i in range(num)], axis=0)


@pytest.mark.parametrize(("name", "num_tasks"), CASES, ids=CASE_IDS)
def test_matches_reference(rng, name, num_tasks):
    jac = make_jacobian(rng, name, num_tasks)
    gram = jac @ jac.T
    w = run_jitted(AGG, gram)
    err = np.linalg.norm(jac.T @ (w - reference(gram)))
    assert err <= D_RTOL * scale_of(jac), err


@pytest.mark.parametrize(("name", "num_tasks"), CASES, ids=CASE_IDS)
def test_result_in_dual_cone(rng, name, num_tasks):
    """The aggregate never conflicts with a task: ⟨Jᵀw, g_i⟩ ≥ 0 for every i."""
    jac = make_jacobian(rng, name, num_tasks)
    gram = jac @ jac.T
    w = run_jitted(AGG, gram)
    assert_in_dual_cone(jac, w, CONE_TOL)


def test_aligned_is_mean(rng):
    """With no conflict every g_i is already in the dual cone: UPGrad = mean gradient."""
    jac = make_jacobian(rng, "aligned", 5)
    gram = jac @ jac.T
    assert np.all(gram > 0)
    w = run_jitted(AGG, gram)
    np.testing.assert_allclose(w, np.full(5, 0.2), rtol=1e-5)


def test_single_task_is_identity(rng):
    jac = make_jacobian(rng, "random", 1)
    np.testing.assert_allclose(run_jitted(AGG, jac @ jac.T), [1.0], rtol=1e-6)
