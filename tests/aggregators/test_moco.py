"""MoCo (Fernando et al. 2023, Alg. 1): tracked gradients Y, projected λ step, d = Yᵀλ — the
state trajectory over several steps against a float64 NumPy reference."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from mtl_jax.aggregators.moco import DEFAULTS, moco
from tests.aggregators.jacobian_harness import from_pytree, run_combine
from tests.aggregators.jacobians import jacobian_cases, aligned_jacobian, random_jacobian, with_parallel_rows, with_zero_row

NUM_STEPS = 4


def project_simplex_reference(v: np.ndarray) -> np.ndarray:
    """argmin_{λ∈Δ} ‖λ − v‖² by bisection on the threshold θ of max(v − θ, 0) (Σ = 1)."""
    low, high = v.min() - 1.0, v.max()
    for _ in range(200):
        theta = 0.5 * (low + high)
        low, high = (theta, high) if np.maximum(v - theta, 0).sum() > 1 else (low, theta)
    return np.maximum(v - 0.5 * (low + high), 0)


def reference_step(y, lam, k, jac, losses, beta, beta_sigma, gamma, gamma_sigma, rho, normalize):
    h = jac / (np.linalg.norm(jac, axis=1, keepdims=True) + 1e-8) * losses[:, None] if normalize else jac
    y = y - beta / k**beta_sigma * (y - h)
    lam = project_simplex_reference(lam - gamma / k**gamma_sigma * (y @ y.T + rho * np.eye(len(lam))) @ lam)
    return y, lam, y.T @ lam


@pytest.mark.parametrize(("make", "num_tasks"), jacobian_cases([random_jacobian, aligned_jacobian, with_zero_row, with_parallel_rows], [1, 2, 5]))
@pytest.mark.parametrize("normalize", [True, False])
def test_state_trajectory_matches_reference(rng, make, num_tasks, normalize):
    options = dict(DEFAULTS, gamma=0.05, normalize=normalize)
    aggregator = moco(**options)
    y, lam = np.zeros((num_tasks, 50)), np.full(num_tasks, 1.0 / num_tasks)
    state = None
    for k in range(1, NUM_STEPS + 1):
        jac = make(rng, num_tasks)
        losses = rng.uniform(0.2, 3.0, num_tasks)
        y, lam, d_ref = reference_step(y, lam, k, jac, losses, **options)
        d, weights, state = run_combine(aggregator, jac, losses, state=state)
        scale = np.abs(y).max()
        np.testing.assert_allclose(weights, lam, atol=2e-5)
        np.testing.assert_allclose(from_pytree(state.tracked), y, atol=1e-5 * scale)
        np.testing.assert_allclose(d, d_ref, atol=3e-5 * np.linalg.norm(y, axis=1).max() + 1e-7)
        assert int(state.count) == k
        np.testing.assert_allclose(weights.sum(), 1.0, atol=1e-6)
        assert np.all(weights >= 0)


def test_projection_matches_bisection(rng):
    from mtl_jax.aggregators.simplex import project_onto_simplex

    for size in (1, 2, 5, 8):
        for scale in (0.1, 1.0, 10.0):
            v = scale * rng.standard_normal(size)
            np.testing.assert_allclose(
                np.asarray(project_onto_simplex(jax.numpy.asarray(v))), project_simplex_reference(v), atol=1e-6
            )


def test_full_mode_only_and_params_shaped_state(rng):
    aggregator = moco()
    assert aggregator.modes == ("full",)
    shared = {"kernel": np.zeros((4, 2), np.float32), "bias": np.zeros((2,), np.float32)}
    state = aggregator.init(3, shared)
    assert {k: v.shape for k, v in state.tracked.items()} == {"kernel": (3, 4, 2), "bias": (3, 2)}
    np.testing.assert_array_equal(state.weights, np.full(3, 1 / 3, np.float32))


@pytest.mark.parametrize("option", [{"beta": 0.0}, {"gamma": -1.0}, {"rho": -0.1}])
def test_rejects_bad_hyper_parameters(option):
    with pytest.raises(ValueError, match="moco needs"):
        moco(**option)
