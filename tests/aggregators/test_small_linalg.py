"""The loop-free T × T building blocks of the accelerator path against float64 NumPy: the
unrolled Gauss–Jordan PSD solve (``small_solve``) and the support-enumeration QP of
``qp.nonnegative_qp`` against its KKT conditions."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtl_jax.aggregators.qp import force_solver, nonnegative_qp
from mtl_jax.aggregators.small_solve import psd_solve


@pytest.mark.parametrize("num", [1, 2, 5, 8])
def test_psd_solve_matches_numpy(rng, num):
    factor = rng.standard_normal((num, num + 2))
    matrix = factor @ factor.T
    rhs = rng.standard_normal((num, 3))
    with jax.enable_x64(True):
        solution, nonsingular = jax.jit(psd_solve)(jnp.asarray(matrix), jnp.asarray(rhs))
        solution, nonsingular = np.asarray(solution), bool(nonsingular)
    assert nonsingular
    np.testing.assert_allclose(solution, np.linalg.solve(matrix, rhs), rtol=1e-8, atol=1e-10)


def test_psd_solve_flags_singular_systems(rng):
    factor = rng.standard_normal((3, 5))
    factor = np.vstack([factor, 2.0 * factor[1]])  # 4th row parallel to the 2nd
    _, nonsingular = jax.jit(psd_solve)(
        jnp.asarray(factor @ factor.T, jnp.float32), jnp.ones((4, 1), jnp.float32)
    )
    assert not bool(nonsingular)


@pytest.mark.parametrize("num", [2, 5, 8])
def test_enumerated_nonnegative_qp_satisfies_kkt(rng, num):
    """z ≥ 0, Qz + c ≥ 0, z ⊙ (Qz + c) = 0 (Lawson–Hanson's optimality conditions)."""
    factor = rng.standard_normal((num, num + 3))
    quad = factor @ factor.T
    linear = quad @ rng.standard_normal(num)  # c ∈ range(Q): bounded below
    with jax.enable_x64(True), force_solver("accelerator"):
        z = np.asarray(jax.jit(lambda q, c: nonnegative_qp(q, c))(jnp.asarray(quad), jnp.asarray(linear)))
    grad = quad @ z + linear
    tol = 1e-9 * (np.abs(quad).max() * np.abs(z).max() + np.abs(linear).max())
    assert np.all(z >= 0)
    assert np.all(grad >= -tol), grad
    assert np.all(np.abs(z * grad) <= tol * max(1.0, np.abs(z).max())), (z, grad)
